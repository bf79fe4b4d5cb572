"""Database engine and sessions: SQLite under .benchlib/ by default, or any SQLAlchemy URL."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine

from benchlib import records  # noqa: F401 - registers the tables on SQLModel.metadata
from benchlib.errors import BenchlibError
from benchlib.settings import database_url


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL and a busy timeout: the worker, the CLI and the API may write at the same time."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _check_columns(engine: Engine) -> None:
    """Refuse, with a clear message, a database written by an older schema."""
    inspector = inspect(engine)
    for table in SQLModel.metadata.sorted_tables:
        have = {column["name"] for column in inspector.get_columns(table.name)}
        missing = sorted(set(table.columns.keys()) - have)
        if missing:
            raise BenchlibError(
                f"database {engine.url.render_as_string(hide_password=True)}: table "
                f"{table.name!r} lacks columns {missing}: it was created by an older benchlib; "
                "move it aside (or point BENCHLIB_DATABASE_URL elsewhere) to start a new one"
            )


@cache
def _engine(url: str) -> Engine:
    engine = create_engine(url)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    SQLModel.metadata.create_all(engine)
    _check_columns(engine)
    return engine


def engine() -> Engine:
    return _engine(database_url())


@contextmanager
def session() -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    with Session(engine(), expire_on_commit=False) as s, s.begin():
        yield s
