"""Fixtures (stored scenarios): create, list, get, update (a new version), delete (soft)."""

import math
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import AfterValidator, BaseModel, Field

from benchlib.spec import fixtures
from benchlib.store.records import Fixture

router = APIRouter(tags=["fixtures"])

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
Suite = Annotated[str, Path(pattern=NAME, description="The suite's name (suite.yaml `name`).")]
ScenarioId = Annotated[str, Path(pattern=NAME)]


def _finite(value: Any, where: str = "vars") -> Any:
    """NaN and Infinity (Python's JSON reader takes them) are not numbers JSON can store."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} = {value!r}: expected a finite number")
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        _finite(item, f"{where}.{key}")
    return value


Vars = Annotated[
    dict[str, Any],
    Field(min_length=1, description="The scenario's variables, as the templates read them."),
    AfterValidator(_finite),
]


class NewFixture(BaseModel):
    suite: str = Field(pattern=NAME, description="The suite's name (suite.yaml `name`).")
    scenario_id: str = Field(pattern=NAME)
    vars: Vars


class FixtureUpdate(BaseModel):
    vars: Vars


class Deleted(BaseModel):
    deleted_versions: int


@router.post("/fixtures", status_code=201)
def create_fixture(body: NewFixture) -> Fixture:
    """Version 1 (409 if the fixture exists: update it instead)."""
    return fixtures.create(body.suite, body.scenario_id, body.vars)


@router.get("/fixtures")
def list_fixtures(
    suite: Annotated[str | None, Query(pattern=NAME)] = None,
    version: Annotated[int | None, Query(ge=1)] = None,
    history: bool = False,
) -> list[Fixture]:
    """Live fixtures, latest version of each; `history` adds older versions, `version` keeps
    that version number only."""
    return fixtures.list_fixtures(suite, version, history)


@router.get("/fixtures/{suite}/{scenario_id}")
def get_fixture(
    suite: Suite, scenario_id: ScenarioId, version: Annotated[int | None, Query(ge=1)] = None
) -> Fixture:
    """The latest live version, or `version` (older versions stay readable)."""
    return fixtures.get(suite, scenario_id, version)


@router.put("/fixtures/{suite}/{scenario_id}")
def update_fixture(suite: Suite, scenario_id: ScenarioId, body: FixtureUpdate) -> Fixture:
    """Adds a version; the previous ones are kept as they were."""
    return fixtures.update(suite, scenario_id, body.vars)


@router.delete("/fixtures/{suite}/{scenario_id}")
def delete_fixture(suite: Suite, scenario_id: ScenarioId) -> Deleted:
    """Marks every version deleted (runs that used them keep their record)."""
    return Deleted(deleted_versions=fixtures.delete(suite, scenario_id))
