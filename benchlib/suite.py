"""Suites: a folder of benchmark content (prompt versions, scenarios, output schema, rubric).

Layout of `prompts/<suite>/`:
    suite.yaml          name, description, file names below, policies
    versions/*.yaml     one prompt version per file: Jinja2 `system` and `user` templates
    scenarios.yaml      `scenarios:` (a list) or `matrix:` (axes whose cross product is the list)
    schema.json         JSON Schema of the expected output
    rubric.yaml         the human-judging rubric (see benchlib.rubric)
A second suite needs no code: only these files.
"""

import difflib
import itertools
import json
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import jinja2
import jinja2.meta
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from benchlib.errors import BenchlibError, describe_validation_error
from benchlib.hashing import content_hash, scenario_content, scenario_hash
from benchlib.integrity import check_integrity
from benchlib.ranking import ALL, FINAL
from benchlib.rubric import Rubric
from benchlib.yamldoc import YamlDoc, read_yaml

_JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


@cache
def _template(source: str) -> jinja2.Template:
    """Compiled once per process: compiling cost more than rendering, for every cell."""
    return _JINJA.from_string(source)


M = TypeVar("M", bound=BaseModel)


class Policies(BaseModel):
    """Machine-checkable rules on an output (policy_compliance and overlong check them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text_field: str = Field("", description="Output field whose length is limited.")
    max_words: int = Field(0, ge=0, description="More words than this in text_field = overlong.")
    forbidden_phrases: list[str] = Field(
        default_factory=list, description="Phrases an output must never contain (any case)."
    )
    allowed_tools: dict[str, list[str]] = Field(
        default_factory=dict,
        description="For tool-using steps: tool name -> allowed argument names.",
    )


class ScorerSpec(BaseModel):
    """A scorer a suite runs, with its parameters (`- stability` or `- {name: .., params: ..}`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data


class SuiteFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    scenarios: str = "scenarios.yaml"
    output_schema: str = "schema.json"
    rubric: str = "rubric.yaml"
    versions: str = "versions"
    policies: Policies = Field(default_factory=Policies)
    scorers: list[ScorerSpec] = Field(
        default_factory=lambda: [ScorerSpec(name="schema_validity")],
        description="Objective scorers (registered in benchlib.scorers) run on every output.",
    )
    rank_on: str = Field(
        FINAL,
        min_length=1,
        description="What a leaderboard row is ranked on: `final` (each chain's last step), "
        "`all` (every step), or a step name every prompt version has (see benchlib.ranking).",
    )


def _template_names(text: str) -> tuple[set[str], set[str]]:
    """(variables a template uses, earlier steps it reads as `steps.NAME` or `steps['NAME']`)."""
    tree = _JINJA.parse(text)
    steps = {
        node.attr
        for node in tree.find_all(jinja2.nodes.Getattr)
        if isinstance(node.node, jinja2.nodes.Name) and node.node.name == "steps"
    } | {
        str(node.arg.value)
        for node in tree.find_all(jinja2.nodes.Getitem)
        if isinstance(node.node, jinja2.nodes.Name)
        and node.node.name == "steps"
        and isinstance(node.arg, jinja2.nodes.Const)
    }
    return jinja2.meta.find_undeclared_variables(tree) - {"steps"}, steps


class Step(BaseModel):
    """One prompt of a chain. Its templates see the scenario's variables and `steps`, the
    parsed outputs of the steps before it (`{{ steps.bull.thesis }}`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "output"
    system: str = ""
    user: str
    structured_output: bool = Field(
        False, description="Ask the server to constrain decoding to this step's output schema."
    )
    output_schema: str = Field("", description="Schema file for this step; empty = the suite's.")

    @property
    def variables(self) -> set[str]:
        return _template_names(self.system)[0] | _template_names(self.user)[0]

    @property
    def step_refs(self) -> set[str]:
        return _template_names(self.system)[1] | _template_names(self.user)[1]

    def render(self, context: dict[str, Any]) -> list[dict[str, str]]:
        messages = []
        if self.system:
            messages.append({"role": "system", "content": _template(self.system).render(context)})
        messages.append({"role": "user", "content": _template(self.user).render(context)})
        return messages


STEP_KEYS = ("system", "user", "structured_output", "output_schema")


class PromptVersion(BaseModel):
    """A prompt version: one step (`system` + `user` at the top level) or a chain (`steps:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Keys a single-step file writes at its top level (for "did you mean" on a typo).
    inline_keys: ClassVar[tuple[str, ...]] = STEP_KEYS

    name: str = ""
    description: str = ""
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _single_step(cls, data: Any) -> Any:
        if isinstance(data, dict) and "steps" not in data:
            step = {k: v for k, v in data.items() if k in STEP_KEYS}
            data = {k: v for k, v in data.items() if k not in STEP_KEYS} | {"steps": [step]}
        return data

    @model_validator(mode="after")
    def _steps_read_only_earlier_steps(self) -> "PromptVersion":
        seen: set[str] = set()
        for step in self.steps:
            if step.name in seen:
                raise ValueError(f"duplicate step name {step.name!r}")
            unknown = sorted(step.step_refs - seen)
            if unknown:
                raise ValueError(
                    f"step {step.name!r} reads steps {unknown}, which do not come before it "
                    f"(earlier steps: {sorted(seen) or 'none'})"
                )
            seen.add(step.name)
        return self

    @property
    def variables(self) -> set[str]:
        return set().union(*(step.variables for step in self.steps))


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    vars: dict[str, Any]

    @property
    def hash(self) -> str:
        return scenario_hash(self.vars)[:16]


class Suite(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    spec: SuiteFile
    versions: dict[str, PromptVersion]
    scenarios: list[Scenario]
    schemas: dict[str, dict[str, Any]] = Field(
        description="Output schemas by file name; the suite's default under its own name."
    )
    rubric: Rubric

    @property
    def name(self) -> str:
        return self.spec.name

    def schema_for(self, step: Step) -> dict[str, Any]:
        return self.schemas[step.output_schema or self.spec.output_schema]

    def version_hash(self, version: PromptVersion) -> str:
        """Changes with any step's text or with any schema a step is held to."""
        return content_hash([[step.model_dump(), self.schema_for(step)] for step in version.steps])

    def select_versions(self, names: list[str]) -> list[PromptVersion]:
        if not names:
            return list(self.versions.values())
        unknown = [name for name in names if name not in self.versions]
        if unknown:
            raise BenchlibError(
                f"prompts: unknown prompt version(s) {unknown} for suite {self.name!r}: expected "
                f"one of {sorted(self.versions)} (the files in {self.path / self.spec.versions})"
            )
        return [self.versions[name] for name in names]

    def select_scenarios(self, limit: int) -> list[Scenario]:
        return self.scenarios[:limit] if limit else list(self.scenarios)


def _validate(model: type[M], doc: YamlDoc) -> M:
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        message = describe_validation_error(exc, doc.where, model)
        raise BenchlibError(message) from None


def _load_versions(folder: Path) -> dict[str, PromptVersion]:
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise BenchlibError(f"{folder}: no prompt versions (expected one *.yaml file per version)")
    versions = {}
    for file in files:
        doc = read_yaml(file)
        if not isinstance(doc.data, dict):
            raise BenchlibError(
                f"{doc.where()}: expected a mapping with 'system' and 'user' templates"
            )
        doc.data.setdefault("name", file.stem)
        try:
            version = _validate(PromptVersion, doc)
        except jinja2.TemplateSyntaxError as exc:
            raise BenchlibError(
                f"{file}: template syntax error (line {exc.lineno} of the template): {exc}"
            ) from None
        versions[version.name] = version
    return versions


def _matrix_item(doc: YamlDoc, axis: str, index: int, item: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(item, dict):
        if "id" not in item:
            raise BenchlibError(
                f"{doc.where(['matrix', axis, index])}: matrix.{axis}.{index}: item has no "
                f"'id' (got keys {sorted(item)})"
            )
        return str(item["id"]), scenario_content(item) or {axis: item["id"]}
    return str(item), {axis: item}


def _load_scenarios(doc: YamlDoc, suite_folder: Path) -> list[Scenario]:
    data = doc.data
    if isinstance(data, dict) and "matrix" in data:
        axes = data["matrix"]
        if not isinstance(axes, dict) or not all(isinstance(v, list) for v in axes.values()):
            raise BenchlibError(
                f"{doc.where(['matrix'])}: matrix: expected a mapping of axis name -> list of "
                f"items (got {type(axes).__name__})"
            )
        items = [
            [_matrix_item(doc, axis, i, item) for i, item in enumerate(values)]
            for axis, values in axes.items()
        ]
        scenarios = []
        for combo in itertools.product(*items):
            merged: dict[str, Any] = {}
            for _, part in combo:
                merged.update(part)
            scenarios.append(Scenario(id="-".join(ident for ident, _ in combo), vars=merged))
    elif isinstance(data, dict) and isinstance(data.get("scenarios"), list):
        scenarios = []
        for index, entry in enumerate(data["scenarios"]):
            if not isinstance(entry, dict) or "id" not in entry:
                raise BenchlibError(
                    f"{doc.where(['scenarios', index])}: scenarios.{index}: expected a mapping "
                    f"with an 'id' (got {entry!r})"
                )
            scenarios.append(Scenario(id=str(entry["id"]), vars=scenario_content(entry)))
    else:
        raise BenchlibError(f"{doc.where()}: expected a 'scenarios:' list or a 'matrix:' of axes")
    if not scenarios:
        raise BenchlibError(f"{doc.where()}: no scenarios (an empty list or an empty axis)")
    check_integrity(doc, suite_folder)
    lines: dict[str, list[int]] = {}
    for index, scenario in enumerate(scenarios):
        lines.setdefault(scenario.id, []).append(doc.line(["scenarios", index]) or 0)
    duplicates = {ident: at for ident, at in lines.items() if len(at) > 1}
    if duplicates:
        where = "; ".join(
            f"{ident!r}" + (f" at lines {at}" if data.get("scenarios") else "")
            for ident, at in duplicates.items()
        )
        raise BenchlibError(f"{doc.path}: duplicate scenario ids: {where}; ids must be unique")
    return scenarios


def _load_schema(path: Path) -> dict[str, Any]:
    try:
        schema = json.loads(path.read_text())
    except FileNotFoundError:
        raise BenchlibError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise BenchlibError(f"{path}: not valid JSON: {exc}") from None
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise BenchlibError(f"{path}: not a valid JSON Schema: {exc.message}") from None
    return schema


def _suite_file(folder: Path) -> SuiteFile:
    if not (folder / "suite.yaml").is_file():
        raise BenchlibError(f"{folder}: not a suite folder (no suite.yaml)")
    return _validate(SuiteFile, read_yaml(folder / "suite.yaml"))


def scenarios_file(folder: Path) -> Path:
    """The suite's scenarios file (named in its suite.yaml)."""
    return folder / _suite_file(folder).scenarios


def _check_rank_on(folder: Path, spec: SuiteFile, versions: dict[str, PromptVersion]) -> None:
    """A named step must be in every prompt version: a row without it would have no answer."""
    if spec.rank_on in (FINAL, ALL):
        return
    steps = {name: [step.name for step in v.steps] for name, v in versions.items()}
    missing = sorted(name for name, names in steps.items() if spec.rank_on not in names)
    if not missing:
        return
    known = sorted({step for names in steps.values() for step in names})
    close = difflib.get_close_matches(spec.rank_on, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    doc = read_yaml(folder / "suite.yaml")
    raise BenchlibError(
        f"{doc.where(['rank_on'])}: rank_on: {spec.rank_on!r} is not a step of prompt version(s) "
        f"{missing}: expected 'final', 'all' or a step every version has (steps: "
        + ", ".join(f"{name}: {names}" for name, names in sorted(steps.items()))
        + f"){hint}"
    )


def load_suite(path: str | Path) -> Suite:
    folder = Path(path)
    spec = _suite_file(folder)
    versions = _load_versions(folder / spec.versions)
    _check_rank_on(folder, spec, versions)
    schema_files = {spec.output_schema} | {
        step.output_schema for version in versions.values() for step in version.steps
    }
    rubric_path = folder / spec.rubric
    return Suite(
        path=folder,
        spec=spec,
        versions=versions,
        scenarios=_load_scenarios(read_yaml(folder / spec.scenarios), folder),
        schemas={name: _load_schema(folder / name) for name in sorted(schema_files - {""})},
        rubric=_validate(Rubric, read_yaml(rubric_path)),
    )
