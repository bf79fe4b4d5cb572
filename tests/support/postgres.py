"""A private PostgreSQL cluster on loopback for the tests, from the Debian package's binaries
(`apt-get install postgresql`): a temporary data folder, a free port, trust authentication,
and no durability (fsync off) since it is thrown away."""

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from benchlib.generation.providers.local import free_port

USER = "postgres"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major_version)
    if not found:
        raise RuntimeError("no PostgreSQL server binaries: apt-get install -y postgresql")
    return Path(found[-1]).parent


def _major_version(initdb: str) -> int:
    return int(Path(initdb).parent.parent.name)


def _as_owner(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: as root, run them as the package's user."""
    return ["runuser", "-u", USER, "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """Start a cluster; yield the SQLAlchemy URL of its `postgres` database; remove it all."""
    binaries = _bin_dir()
    folder = Path(tempfile.mkdtemp(prefix="benchlib-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, USER, USER)
    data, port = folder / "data", free_port()
    run = {"check": True, "capture_output": True}
    subprocess.run(
        _as_owner([str(binaries / "initdb"), "-D", str(data), "-U", USER, "--auth=trust"]), **run
    )
    options = (
        f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=200"
    )
    pg_ctl = [str(binaries / "pg_ctl"), "-D", str(data), "-w"]
    subprocess.run(
        _as_owner([*pg_ctl, "-l", str(folder / "server.log"), "-o", options, "start"]), **run
    )
    try:
        yield f"postgresql+psycopg://{USER}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_owner([*pg_ctl, "-m", "immediate", "stop"]), **run)
        shutil.rmtree(folder, ignore_errors=True)


def create_database(cluster_url: str, name: str) -> str:
    """A new empty database on the cluster; its SQLAlchemy URL."""
    with psycopg.connect(_libpq(cluster_url), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return cluster_url.rsplit("/", 1)[0] + f"/{name}"


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")
