"""The database: migrations (one head, equal to records.py), adopting a database from before
migrations, refusing a newer one, and several processes writing at once."""

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlmodel import Session, select

from benchlib import migrate
from benchlib.db import engine_for
from benchlib.errors import BenchlibError
from benchlib.records import Candidate, Cell, CellStatus, Run, RunStatus, Score

pytestmark = pytest.mark.db

PRE_MIGRATIONS = Path(__file__).parent / "data" / "benchlib-pre-migrations.sql"


def test_migrations_have_one_head_equal_to_the_tables(fresh_database_url: str) -> None:
    """A schema change in records.py without its revision (or two revisions on one parent)
    fails here: `make migration NAME=...` writes the missing one."""
    heads = migrate.script().get_heads()
    assert len(heads) == 1, f"several heads {heads}: re-chain the newest revision on the other"
    engine = engine_for(fresh_database_url)
    with engine.connect() as connection:
        assert migrate.current_revisions(connection) == tuple(heads)
    assert migrate.schema_drift(engine) == []


def _pre_migration_database(tmp_path: Path, sql: str) -> str:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(sql)
    return f"sqlite:///{path}"


def test_database_from_before_migrations_is_upgraded_and_keeps_its_data(tmp_path: Path) -> None:
    url = _pre_migration_database(tmp_path, PRE_MIGRATIONS.read_text())
    engine = engine_for(url)
    with engine.connect() as connection:
        assert migrate.current_revisions(connection) == tuple(migrate.script().get_heads())
    indexes = {index["name"] for index in inspect(engine).get_indexes("candidate")}
    assert "ix_candidate_run_cell_index" in indexes  # revision 0002 ran
    assert migrate.schema_drift(engine) == []
    with Session(engine) as s:
        run = s.get(Run, "run-before-migrations")
        assert run.status == RunStatus.completed and run.config["models"] == ["local:smollm2-135m"]
        assert s.get(Cell, "cell-1").status == CellStatus.completed
        (candidate,) = s.exec(select(Candidate)).all()
        assert candidate.text == "Drink water." and candidate.messages[0]["content"] == "hi"
        (score,) = s.exec(select(Score)).all()
        assert (score.candidate_id, score.value) == (candidate.id, 1.0)


def test_unversioned_database_missing_columns_is_refused_naming_them(tmp_path: Path) -> None:
    sql = PRE_MIGRATIONS.read_text().replace("\tcomment VARCHAR NOT NULL, \n", "")
    url = _pre_migration_database(tmp_path, sql)
    with pytest.raises(BenchlibError, match=r"lacks columns \['judgement\.comment'\]"):
        engine_for(url)
    with sqlite3.connect(tmp_path / "old.db") as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert migrate.VERSION_TABLE not in tables  # refused before anything was written


def test_database_newer_than_the_code_is_refused(fresh_database_url: str) -> None:
    migrate.upgrade(create_engine(fresh_database_url))
    with create_engine(fresh_database_url).begin() as connection:
        connection.execute(text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = '0999'"))
    with pytest.raises(BenchlibError, match="revision 0999, which this benchlib does not know"):
        engine_for(fresh_database_url)
