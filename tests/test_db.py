"""The database: migrations (one head, equal to records.py), adopting a database from before
migrations, refusing a newer one, and several processes writing at once."""

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text
from sqlmodel import Session, select

from benchlib.errors import BenchlibError, Conflict
from benchlib.store import migrate, runs
from benchlib.store.db import engine_for
from benchlib.store.records import Candidate, Cell, CellStatus, Run, RunStatus, Score

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
    drift = migrate.schema_drift(engine)
    assert drift == [], f"records.py differs from the migrations: make migration NAME=... {drift}"


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


def test_queued_per_cell_mlflow_entries_become_cells_table_rewrites(tmp_path: Path) -> None:
    """Revision 0008 (cells as one MLflow table, not a child run each): what an older database
    still had queued for a cell's child run is turned into "the cells table is stale"."""
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as connection:
        command.upgrade(migrate.alembic_config(connection), "0007")
    queued = [
        ("run", None, {"params": {"seed": 1}}),
        ("cell", "c1", {"name": "child run", "metrics": {"wall_s": 1.0}}),
        ("update", "c1", {"metrics": {"format_ok": 1.0}}),
        ("update", None, {"status": "FINISHED"}),
    ]
    with engine.begin() as connection:
        for kind, cell_id, payload in queued:
            connection.execute(
                text(
                    "INSERT INTO mlflowpending (run_id, cell_id, kind, payload, attempts, "
                    "created_at) VALUES ('r1', :cell_id, :kind, :payload, 0, '2026-12-01')"
                ),
                {"cell_id": cell_id, "kind": kind, "payload": json.dumps(payload)},
            )
    migrate.upgrade(engine)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT kind, payload FROM mlflowpending ORDER BY id"))
        assert [(kind, json.loads(payload)) for kind, payload in rows] == [
            ("run", {"params": {"seed": 1}}),
            ("cell", {}),
            ("cell", {}),
            ("update", {"status": "FINISHED"}),
        ]
        assert "mlflow_run_id" not in {c["name"] for c in inspect(connection).get_columns("cell")}


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


# One writer process: waits for the others, then opens the (still empty) database, which all of
# them race to migrate, and records its own run and its cells one transaction at a time.
WRITER = """
import sys, time
from pathlib import Path
from benchlib.store.db import session
from benchlib.store.records import Cell, Run

name, folder, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
(folder / f"ready-{name}").touch()
while not (folder / "go").exists():
    time.sleep(0.01)
with session() as s:
    s.add(Run(id=name, suite="tips", experiment="e", config={}, rubric={}))
for index in range(n):
    with session() as s:
        s.add(Cell(id=f"{name}-{index}", run_id=name, index=index, model="m", prompt_version="v",
                   prompt_hash="p", scenario_id="s", scenario_hash="h", rubric_version="r",
                   rubric_hash="rh", params={}, identity="i", scenario_vars={}, steps=["output"]))
        s.get(Run, name).n_cells += 1
"""


def test_processes_writing_at_once_lose_nothing(fresh_database_url: str, tmp_path: Path) -> None:
    """The worker, the CLI and the API: three processes writing to one database at the same
    time, from its creation on; every write arrives, none fails on a lock."""
    names, n = ["worker", "cli", "api"], 60
    env = {**os.environ, "BENCHLIB_DATABASE_URL": fresh_database_url}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, name, str(tmp_path), str(n)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    while len(list(tmp_path.glob("ready-*"))) < len(names):
        assert all(writer.poll() is None for writer in writers), "a writer died before the start"
        time.sleep(0.05)
    (tmp_path / "go").touch()
    errors = [writer.communicate(timeout=300)[1] for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0, 0], errors
    with Session(engine_for(fresh_database_url)) as s:
        runs = {run.id: run.n_cells for run in s.exec(select(Run))}
        assert runs == dict.fromkeys(names, n)
        assert len(s.exec(select(Cell)).all()) == len(names) * n


def test_experiment_summaries_count_runs_and_name_the_latest(benchlib_home: Path) -> None:
    """One query over all experiments (window functions, on SQLite and PostgreSQL alike)."""
    from benchlib.store.db import session
    from benchlib.store.runs import experiment_summaries

    tag = uuid.uuid4().hex[:8]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    made = [("a", 0, RunStatus.completed), ("a", 2, RunStatus.failed), ("a", 1, RunStatus.running)]
    made += [("b", 3, RunStatus.completed)]
    with session() as s:
        for i, (experiment, day, status) in enumerate(made):
            s.add(
                Run(
                    id=f"{tag}-{i}",
                    suite="tips",
                    experiment=f"{tag}-{experiment}",
                    config={},
                    rubric={},
                    status=status,
                    created_at=start + timedelta(days=day),
                )
            )
    ours = [e for e in experiment_summaries() if e.name.startswith(tag)]
    assert [(e.name, e.runs, e.last_run_id, e.last_run_status) for e in ours] == [
        (f"{tag}-b", 1, f"{tag}-3", RunStatus.completed),
        (f"{tag}-a", 3, f"{tag}-1", RunStatus.failed),
    ]


def test_a_claimed_run_id_is_refused_until_its_run_ends(benchlib_home: Path) -> None:
    """Two runs started with one id at once: the second claim fails on the table's key (the
    check before it passes for both), and the id is free again once the first has ended
    without recording a run."""
    runs.claim_run_id("claimed-id")
    with pytest.raises(Conflict, match="'claimed-id' exists or is starting"):
        runs.claim_run_id("claimed-id")
    runs.release_run_id("claimed-id")
    runs.claim_run_id("claimed-id")
    runs.release_run_id("claimed-id")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "'not a url' is not a database URL benchlib can open"),
        ("nosuchdb://u@h/db", "'nosuchdb://u@h/db' is not a database URL benchlib can open"),
        ("postgresql+nodriver://u:secret@h/db", "'postgresql+nodriver://u:***@h/db'"),
    ],
)
def test_a_database_url_benchlib_cannot_open_is_said_with_the_url(url: str, expected: str) -> None:
    with pytest.raises(BenchlibError, match="BENCHLIB_DATABASE_URL") as info:
        engine_for(url)
    assert expected in str(info.value)
    assert "secret" not in str(info.value)


def test_a_file_that_is_not_a_database_is_said_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "benchlib.store.db"
    path.write_bytes(b"not a database, only some text " * 10)
    with pytest.raises(BenchlibError, match="cannot be opened") as info:
        engine_for(f"sqlite:///{path}")
    assert "expected a benchlib database" in str(info.value)
    assert path.read_bytes() == b"not a database, only some text " * 10
