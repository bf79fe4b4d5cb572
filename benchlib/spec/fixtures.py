"""Fixtures: scenarios stored in the database (through the admin API), versioned and hashed.

A run with `fixtures: true` uses the latest live version of every fixture of its suite instead
of the suite's scenarios file. Versions are never overwritten; the hash stored with each one is
checked again when a run uses it, so a row changed behind benchlib's back stops the run.
"""

from sqlalchemy import func
from sqlmodel import col, select

from benchlib.errors import BenchlibError, Conflict, NotFound
from benchlib.spec.hashing import scenario_hash
from benchlib.spec.suite import Scenario, Suite, check_scenario_id
from benchlib.store.db import session
from benchlib.store.records import Fixture, utcnow


def _versions(suite: str, scenario_id: str) -> list[Fixture]:
    with session() as s:
        query = select(Fixture).where(Fixture.suite == suite, Fixture.scenario_id == scenario_id)
        return list(s.exec(query.order_by(col(Fixture.version))))


def _add_version(suite: str, scenario_id: str, vars: dict) -> Fixture:
    with session() as s:
        top = s.exec(
            select(func.max(Fixture.version)).where(
                Fixture.suite == suite, Fixture.scenario_id == scenario_id
            )
        ).one()
        fixture = Fixture(
            suite=suite,
            scenario_id=scenario_id,
            version=(top or 0) + 1,
            vars=vars,
            hash=scenario_hash(vars),
        )
        s.add(fixture)
    return fixture


def create(suite: str, scenario_id: str, vars: dict) -> Fixture:
    """Version 1, or the next version after a deleted one (ids are never reused silently)."""
    check_scenario_id(scenario_id, f"fixture {suite}/{scenario_id!r}")
    if any(f.deleted_at is None for f in _versions(suite, scenario_id)):
        raise Conflict(
            f"fixture {suite}/{scenario_id} exists: update it to add a version, or delete it first"
        )
    return _add_version(suite, scenario_id, vars)


def get(suite: str, scenario_id: str, version: int | None = None) -> Fixture:
    """The latest live version, or the given one (old versions stay readable)."""
    versions = _versions(suite, scenario_id)
    live = [f for f in versions if f.deleted_at is None]
    if version is None and live:
        return live[-1]
    found = [f for f in versions if f.version == version]
    if version is not None and found:
        return found[0]
    what = f"version {version} of fixture" if version is not None else "live fixture"
    raise NotFound(f"no {what} {suite}/{scenario_id}")


def update(suite: str, scenario_id: str, vars: dict) -> Fixture:
    get(suite, scenario_id)
    return _add_version(suite, scenario_id, vars)


def delete(suite: str, scenario_id: str) -> int:
    """Mark every version deleted; returns how many. Runs that used them keep their cells."""
    get(suite, scenario_id)
    with session() as s:
        rows = s.exec(
            select(Fixture).where(
                Fixture.suite == suite,
                Fixture.scenario_id == scenario_id,
                col(Fixture.deleted_at).is_(None),
            )
        ).all()
        for row in rows:
            row.deleted_at = utcnow()
            s.add(row)
    return len(rows)


def list_fixtures(
    suite: str | None = None, version: int | None = None, history: bool = False
) -> list[Fixture]:
    """Live fixtures, latest version of each; `history` keeps older versions, `version` picks
    that version number."""
    with session() as s:
        query = select(Fixture).where(col(Fixture.deleted_at).is_(None))
        if suite is not None:
            query = query.where(Fixture.suite == suite)
        rows = list(
            s.exec(
                query.order_by(col(Fixture.suite), col(Fixture.scenario_id), col(Fixture.version))
            )
        )
    if version is not None:
        return [f for f in rows if f.version == version]
    if history:
        return rows
    latest = {(f.suite, f.scenario_id): f for f in rows}
    return list(latest.values())


def verified(fixture: Fixture) -> Scenario:
    """The fixture as a scenario, once its content still matches the hash stored with it."""
    actual = scenario_hash(fixture.vars)
    if actual != fixture.hash:
        raise BenchlibError(
            f"fixture {fixture.suite}/{fixture.scenario_id} version {fixture.version}: content "
            f"hash {actual[:16]}… does not match the stored hash {fixture.hash[:16]}…; it was "
            "changed outside benchlib: store it again through the API"
        )
    return Scenario(id=fixture.scenario_id, vars=fixture.vars)


def use_fixtures(suite: Suite) -> Suite:
    """The suite with its stored fixtures as scenarios (a run with `fixtures: true`)."""
    stored = list_fixtures(suite.name)
    if not stored:
        raise BenchlibError(
            f"fixtures: true, but no fixtures are stored for suite {suite.name!r}: "
            "create some (POST /api/fixtures) or set fixtures: false"
        )
    return suite.model_copy(update={"scenarios": [verified(f) for f in stored]})
