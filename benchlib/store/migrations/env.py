"""Alembic's entry point, run by benchlib.store.migrate on a connection it opened and locked."""

from alembic import context
from sqlmodel import SQLModel

from benchlib.store import records  # noqa: F401 - registers the tables on SQLModel.metadata
from benchlib.store.migrate import VERSION_TABLE

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=SQLModel.metadata,
    version_table=VERSION_TABLE,
    # SQLite alters a column only by rebuilding its table.
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
