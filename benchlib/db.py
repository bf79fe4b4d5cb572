"""Database engine and sessions: SQLite under .benchlib/ by default, or any SQLAlchemy URL."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine

from benchlib import records  # noqa: F401 - registers the tables on SQLModel.metadata
from benchlib.settings import database_url


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL and a busy timeout: the worker, the CLI and the API may write at the same time."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@cache
def _engine(url: str) -> Engine:
    engine = create_engine(url)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    SQLModel.metadata.create_all(engine)
    return engine


def engine() -> Engine:
    return _engine(database_url())


@contextmanager
def session() -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    with Session(engine(), expire_on_commit=False) as s, s.begin():
        yield s
