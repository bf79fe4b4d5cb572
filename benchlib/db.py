"""Database engine and sessions: SQLite under .benchlib/ by default, or any SQLAlchemy URL
(PostgreSQL for a team: `postgresql+psycopg://...`). Opening a database migrates it."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from benchlib import migrate
from benchlib.settings import database_url


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL and a busy timeout: the worker, the CLI and the API may write at the same time.
    The timeout goes first, so that even switching to WAL waits for a busy database.
    synchronous=NORMAL: in WAL mode a commit then needs no fsync (a power cut may lose the
    last commits, never corrupt the file), which was most of a cell's database cost."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@cache
def engine_for(url: str) -> Engine:
    """The process's engine for a database, opened (and migrated) once."""
    engine = create_engine(url)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    migrate.upgrade(engine)
    return engine


def engine() -> Engine:
    return engine_for(database_url())


@contextmanager
def session() -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    with Session(engine(), expire_on_commit=False) as s, s.begin():
        yield s
