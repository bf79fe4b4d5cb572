"""Database engine and sessions: SQLite under .benchlib/ by default, or any SQLAlchemy URL
(PostgreSQL for a team: `postgresql+psycopg://...`). Opening a database migrates it."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from sqlalchemy import event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlmodel import Session, create_engine

from benchlib.errors import BenchlibError
from benchlib.settings import DATABASE_URL_ENV, database_file, database_url
from benchlib.store import migrate


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
    """The process's engine for a database, opened (and migrated) once. A URL that does not
    parse, names a dialect SQLAlchemy has no driver for, or leads to a file that is not a
    database (or to no server) is bad input, said with the URL (its password hidden)."""
    try:
        engine = create_engine(url)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise BenchlibError(
            f"{DATABASE_URL_ENV}: {_shown(url)} is not a database URL benchlib can open ({exc}): "
            "expected e.g. sqlite:///path/benchlib.store.db or postgresql+psycopg://user@host/db"
        ) from None
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        migrate.upgrade(engine)
    except DBAPIError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise BenchlibError(
            f"database {_shown(url)} cannot be opened: {reason}: expected a benchlib database "
            f"(move a damaged file aside, or point {DATABASE_URL_ENV} elsewhere)"
        ) from None
    return engine


def _shown(url: str) -> str:
    try:
        return repr(make_url(url).render_as_string(hide_password=True))
    except ArgumentError:
        return repr(url[:200])


def exists() -> bool:
    """Whether there is a database to read, found without creating it: a read command (`runs`,
    `show`) in a folder benchlib never ran in finds nothing, and leaves nothing behind."""
    path = database_file()
    return path is None or path.is_file()


def engine() -> Engine:
    return engine_for(database_url())


@contextmanager
def session() -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    with Session(engine(), expire_on_commit=False) as s, s.begin():
        yield s
