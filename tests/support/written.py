"""What benchlib has written: files under BENCHLIB_HOME, rows in its database, MLflow
experiments and runs, Prefect flow runs. Two snapshots taken around a command show whether it
wrote anything; every store is read without being created or changed."""

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from prefect import get_client
from sqlalchemy import create_engine, func, inspect, select, table

from benchlib.settings import database_url, home

# SQLite's own side files come and go with connections: they are not something benchlib wrote.
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class Written:
    files: frozenset[tuple[str, int]]
    db_rows: dict[str, int]
    mlflow: dict[str, int]
    flow_runs: int

    def changes(self, later: "Written") -> list[str]:
        """What `later` holds that this snapshot did not, one line per store."""
        found = []
        if later.files != self.files:
            found.append(f"files: {sorted(later.files - self.files)}")
        for store in ("db_rows", "mlflow"):
            before, after = getattr(self, store), getattr(later, store)
            grown = {
                name: (before.get(name, 0), n)
                for name, n in after.items()
                if n != before.get(name, 0)
            }
            if grown:
                found.append(f"{store}: {grown}")
        if later.flow_runs != self.flow_runs:
            found.append(f"Prefect flow runs: {self.flow_runs} -> {later.flow_runs}")
        return found


def _files(root: Path) -> frozenset[tuple[str, int]]:
    """Every file with its size; databases by name only (their rows are counted instead)."""
    found = set()
    for path in root.rglob("*"):
        if not path.is_file() or path.name.endswith(_SQLITE_SIDE_FILES):
            continue
        size = 0 if path.suffix == ".db" else path.stat().st_size
        found.add((str(path.relative_to(root)), size))
    return frozenset(found)


def _db_rows(url: str) -> dict[str, int]:
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return {}
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                name: connection.execute(select(func.count()).select_from(table(name))).scalar_one()
                for name in inspect(connection).get_table_names()
            }
    finally:
        engine.dispose()


def _mlflow(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        return {
            name: connection.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            for name in ("experiments", "runs", "metrics", "params")
        }


def _flow_runs() -> int:
    with get_client(sync_client=True) as client:
        return client.count_flow_runs()


def snapshot() -> Written:
    """The state now (Prefect: the server PREFECT_API_URL points at, e.g. the test harness)."""
    root = home()
    return Written(
        files=_files(root),
        db_rows=_db_rows(database_url()),
        mlflow=_mlflow(root / "mlflow.db"),
        flow_runs=_flow_runs(),
    )
