"""The database schema's version: every process that opens a database brings it to the head
revision of benchlib/store/migrations/ (Alembic) before using it, so nobody runs `alembic upgrade`.

The worker, the CLI and the API may open the same database at once: the upgrade runs in one
transaction that first takes a lock every other opener waits for (SQLite `BEGIN IMMEDIATE`,
PostgreSQL `pg_advisory_xact_lock`), and re-reads the version under it.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, inspect
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from benchlib.errors import BenchlibError
from benchlib.store import records  # noqa: F401 - registers the tables on SQLModel.metadata

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Not Alembic's default `alembic_version`: MLflow keeps one of its own, and a team may give
# both the same PostgreSQL database.
VERSION_TABLE = "benchlib_schema_version"
# The schema of every benchlib before migrations existed: an unversioned database is adopted
# at this revision.
BASELINE = "0001"
# Any constant: pg_advisory_xact_lock's key for "benchlib is migrating this database".
PG_LOCK_KEY = 0x62656E6368


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@cache
def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def current_revisions(connection: Connection) -> tuple[str, ...]:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return tuple(context.get_current_heads())


def upgrade(engine: Engine) -> None:
    """Bring the database to the code's head revision, or refuse one this code cannot read."""
    heads = tuple(script().get_heads())
    with engine.connect() as connection:
        if current_revisions(connection) == heads:
            return
    with engine.connect() as connection:
        _lock(connection)
        try:
            current = current_revisions(connection)
            if current == heads:
                return
            _refuse_unknown(engine, current)
            if not current and _benchlib_tables(connection):
                _check_baseline(engine, connection)
                command.stamp(alembic_config(connection), BASELINE)
            command.upgrade(alembic_config(connection), "head")
            connection.commit()
        finally:
            connection.rollback()
            _unlock(connection)


def _lock(connection: Connection) -> None:
    """Open the migration's transaction holding the database's write lock."""
    if connection.dialect.name == "sqlite":
        # Table rebuilds (batch mode) must not cascade or fail on foreign keys; the pragma is
        # ignored inside a transaction, so it goes first, and _unlock undoes it.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")


def _unlock(connection: Connection) -> None:
    """After the transaction: the pooled connection gets its foreign keys back."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")


def _refuse_unknown(engine: Engine, current: tuple[str, ...]) -> None:
    known = {revision.revision for revision in script().walk_revisions()}
    unknown = sorted(set(current) - known)
    if unknown:
        raise BenchlibError(
            f"database {_name(engine)} is at schema revision {', '.join(unknown)}, which this "
            f"benchlib does not know (its newest is {', '.join(script().get_heads())}): it was "
            "written by a newer benchlib; upgrade benchlib to use it"
        )


def _benchlib_tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) & set(SQLModel.metadata.tables)


def _check_baseline(engine: Engine, connection: Connection) -> None:
    """A database from before migrations must hold the baseline's columns to be adopted."""
    have = _columns(connection)
    missing = [
        f"{table}.{column}"
        for table, columns in sorted(_baseline_columns().items())
        for column in sorted(columns - have.get(table, set()))
    ]
    if missing:
        raise BenchlibError(
            f"database {_name(engine)} has benchlib tables but no schema revision, and lacks "
            f"columns {missing} of the first revision ({BASELINE}); it was not made by benchlib "
            "or was edited by hand: move it aside (or point BENCHLIB_DATABASE_URL elsewhere)"
        )


def _baseline_columns() -> dict[str, set[str]]:
    """The baseline's tables and columns, as its revision creates them in a scratch database."""
    with _scratch_database(BASELINE) as connection:
        columns = _columns(connection)
    columns.pop(VERSION_TABLE)
    return columns


@contextmanager
def _scratch_database(revision: str) -> Iterator[Connection]:
    """An in-memory SQLite database at `revision`."""
    scratch = create_engine("sqlite://")
    try:
        with scratch.connect() as connection:
            command.upgrade(alembic_config(connection), revision)
            yield connection
    finally:
        scratch.dispose()


def _columns(connection: Connection) -> dict[str, set[str]]:
    inspector = inspect(connection)
    return {
        table: {column["name"] for column in inspector.get_columns(table)}
        for table in inspector.get_table_names()
    }


def _name(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def schema_drift(engine: Engine) -> list:
    """What autogenerate would write for this database against the tables in records.py."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        return compare_metadata(context, SQLModel.metadata)


def new_revision(message: str) -> None:
    """`make migration NAME=...`: autogenerate the next revision against a scratch SQLite
    database at head, numbered after the newest one."""
    number = max((int(r.revision) for r in script().walk_revisions()), default=0) + 1
    with _scratch_database("head") as connection:
        command.revision(
            alembic_config(connection), message, autogenerate=True, rev_id=f"{number:04d}"
        )


if __name__ == "__main__":
    new_revision(" ".join(sys.argv[1:]))
