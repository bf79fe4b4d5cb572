"""Suites: a folder of benchmark content (prompt versions, scenarios, output schema, rubric).

Layout of `prompts/<suite>/`:
    suite.yaml          name, description, file names below, policies
    versions/*.yaml     one prompt version per file: Jinja2 `system` and `user` templates
    scenarios.yaml      `scenarios:` (a list) or `matrix:` (axes whose cross product is the list)
    schema.json         JSON Schema of the expected output
    rubric.yaml         the human-judging rubric (see benchlib.spec.rubric)
A second suite needs no code: only these files.
"""

import difflib
import itertools
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import jinja2
import jinja2.meta
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jsonschema.exceptions import ValidationError as SchemaViolation
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from benchlib.errors import BenchlibError, describe_validation_error, did_you_mean, errors_at
from benchlib.evaluation.ranking import ALL, FINAL
from benchlib.spec.hashing import content_hash, scenario_content, scenario_hash
from benchlib.spec.integrity import check_integrity
from benchlib.spec.rubric import Rubric
from benchlib.spec.yamldoc import Loc, YamlDoc, read_yaml

# Longest string or list a template may build with `*`: `{{ 'x' * 10**9 }}` would take the
# worker's memory.
MAX_PRODUCT = 1_000_000


class _SuiteSandbox(ImmutableSandboxedEnvironment):
    """Suites are data people share: their templates run in Jinja2's sandbox (no attribute
    starting with `_`, no Python internals, no mutation of what they are given), and may not
    build huge values with `*` and `**`."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise SecurityError(f"power {right!r} is too large for a template")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if sized and len(seq) * times > MAX_PRODUCT:
                    raise SecurityError(
                        f"`*` would build {len(seq) * times} items, more than {MAX_PRODUCT}"
                    )
        return super().call_binop(context, operator, left, right)


_JINJA = _SuiteSandbox(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


@cache
def _template(source: str) -> jinja2.Template:
    """Compiled once per process: compiling cost more than rendering, for every cell."""
    return _JINJA.from_string(source)


M = TypeVar("M", bound=BaseModel)


class Policy(BaseModel):
    """Machine-checkable rules on one field of some steps' outputs (policy_compliance and
    overlong check them). A step whose output schema does not declare the field is not held to
    the policy: a reply's length limit says nothing about the triage step's JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: list[str] = Field(
        default_factory=list, description="Steps it applies to; empty = every step with `field`."
    )
    field: str = Field("", description="Output field checked; empty = the whole output text.")
    max_words: int = Field(0, ge=0, description="More words than this in the field = overlong.")
    forbidden_phrases: list[str] = Field(
        default_factory=list, description="Phrases the field must never contain (any case)."
    )
    allowed_tools: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Tool name -> allowed argument names, for the calls in `field` "
        "(default `tool_calls`).",
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
    policies: list[Policy] = Field(default_factory=list)
    scorers: list[ScorerSpec] = Field(
        default_factory=lambda: [ScorerSpec(name="schema_validity")],
        description="Objective scorers (benchlib.evaluation.scorers) run on every output.",
    )
    rank_on: str = Field(
        FINAL,
        min_length=1,
        description="What a leaderboard row is ranked on: `final` (each chain's last step), "
        "`all` (every step), or a step every prompt version has (benchlib.evaluation.ranking).",
    )

    @field_validator("policies", mode="before")
    @classmethod
    def _policies_are_a_list(cls, value: Any) -> Any:
        if isinstance(value, dict):  # the form before policies named their steps
            raise ValueError(
                "expected a list of policies, each naming the `field` (and `steps`) it applies "
                "to, e.g. `- {field: tip, max_words: 40}` (`text_field` is now `field`)"
            )
        return value


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


def template_lines(text: str) -> dict[str, int]:
    """Each name a template reads -> the template line it is first read on (for errors)."""
    lines: dict[str, int] = {}
    for node in _JINJA.parse(text).find_all(jinja2.nodes.Name):
        if node.ctx == "load":
            lines.setdefault(node.name, node.lineno)
    return lines


def output_fields(schema: dict[str, Any]) -> set[str]:
    """The fields an output schema declares: what a scorer or a policy may look at."""
    return set(schema.get("properties", {}))


def _unsafe_names(tree: jinja2.nodes.Template) -> list[tuple[str, int]]:
    """(name, line) of every attribute or key starting with `_` the template names: Python's
    internals (`__class__`, `__globals__`) are reached that way. The sandbox refuses them at
    render time too; this says so when the suite loads, before anything runs."""
    found = [(node.attr, node.lineno) for node in tree.find_all(jinja2.nodes.Getattr)]
    found += [
        (node.arg.value, node.lineno)
        for node in tree.find_all(jinja2.nodes.Getitem)
        if isinstance(node.arg, jinja2.nodes.Const) and isinstance(node.arg.value, str)
    ]
    found += [
        (arg.value, node.lineno)
        for node in tree.find_all(jinja2.nodes.Filter)
        if node.name == "attr"
        for arg in node.args
        if isinstance(arg, jinja2.nodes.Const) and isinstance(arg.value, str)
    ]
    return sorted((name, line) for name, line in found if name.startswith("_"))


def check_template(text: str) -> str:
    """The template, if it parses and reads no `_` attribute; else a ValueError naming the
    name and the template's line."""
    unsafe = _unsafe_names(_JINJA.parse(text))
    if unsafe:
        where = ", ".join(f"{name!r} at line {line} of the template" for name, line in unsafe)
        raise ValueError(
            f"unsafe template: reads {where}; templates may not read names starting with `_`"
        )
    return text


SafeTemplate = Annotated[str, AfterValidator(check_template)]


class Step(BaseModel):
    """One prompt of a chain. Its templates see the scenario's variables and `steps`, the
    parsed outputs of the steps before it (`{{ steps.bull.thesis }}`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "output"
    system: SafeTemplate = ""
    user: SafeTemplate
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
        seen: list[str] = []
        problems: list[tuple[Loc, str, Any]] = []
        for index, step in enumerate(self.steps):
            if step.name in seen:
                problems.append(
                    (("steps", index, "name"), f"duplicate step name {step.name!r}", step.name)
                )
            for key in ("system", "user"):
                unknown = sorted(_template_names(getattr(step, key))[1] - set(seen))
                if unknown:
                    why = (
                        f"step {step.name!r} reads steps {unknown}, which do not come before it "
                        f"(earlier steps: {seen or 'none'}){did_you_mean(unknown[0], seen)}"
                    )
                    problems.append((("steps", index, key), why, unknown))
            seen.append(step.name)
        if problems:
            raise errors_at(PromptVersion, problems)
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

    @property
    def steps(self) -> dict[str, list[Step]]:
        """Step name -> the steps of that name, across prompt versions."""
        named: dict[str, list[Step]] = {}
        for version in self.versions.values():
            for step in version.steps:
                named.setdefault(step.name, []).append(step)
        return named

    @property
    def output_fields(self) -> set[str]:
        """Every field some step's output schema declares."""
        schemas = [self.schema_for(step) for same in self.steps.values() for step in same]
        return set().union(*(output_fields(schema) for schema in schemas))

    def policies_for(self, step: Step) -> list[Policy]:
        """The policies `step`'s outputs are held to: those naming it (or naming no step) whose
        field its schema declares (or that check the whole text)."""
        fields = output_fields(self.schema_for(step))
        return [
            policy
            for policy in self.spec.policies
            if (not policy.steps or step.name in policy.steps)
            and (not policy.field or policy.field in fields)
        ]

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
        message = describe_validation_error(exc, lambda loc: _where(doc, loc), model)
        raise BenchlibError(message) from None


def _in_file(doc: YamlDoc, loc: Sequence[str | int]) -> Sequence[str | int]:
    """Where `loc` is written: a single-step prompt version has its step's keys (`steps.0.user`)
    at the top level."""
    single_step = isinstance(doc.data, dict) and "user" in doc.data and "steps" not in doc.data
    return loc[2:] if single_step and tuple(loc[:2]) == ("steps", 0) else loc


def _where(doc: YamlDoc, loc: Sequence[str | int]) -> str:
    return doc.where(_in_file(doc, loc))


def variable_sites(suite: "Suite", version: PromptVersion) -> dict[str, str]:
    """Each variable the version's templates read -> `file:line` where it is first read."""
    path = suite.path / suite.spec.versions / f"{version.name}.yaml"
    if not path.is_file():
        return {}
    doc = read_yaml(path)
    sites: dict[str, str] = {}
    for index, step in enumerate(version.steps):
        for key in ("system", "user"):
            loc = _in_file(doc, ("steps", index, key))
            node = doc.node_at(loc)
            for name, lineno in template_lines(getattr(step, key)).items():
                if node is None:
                    sites.setdefault(name, doc.where(loc))
                elif node.style == "|":  # a literal block keeps its lines, after its `|`
                    sites.setdefault(name, f"{path}:{node.start_mark.line + 1 + lineno}")
                else:  # folded or quoted text: lines do not map, its first line will do
                    sites.setdefault(name, f"{path}:{node.start_mark.line + 1}")
    return sites


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


MAX_SCENARIO_ID = 200


def check_scenario_id(value: Any, where: str) -> str:
    """A scenario id as it is recorded and shown: a non-empty string of printable characters
    (a whole number is taken as its digits). `where` says whose id it is (`file:line: field`).
    null, lists, mappings, booleans and floats are refused, not recorded as 'None' or "['a']"."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    expected = "expected a non-empty string of printable characters"
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        raise BenchlibError(f"{where}: id is {kind} (got {value!r}): {expected}")
    if not value.strip():
        raise BenchlibError(f"{where}: id is empty (got {value!r}): {expected}")
    if not value.isprintable():
        raise BenchlibError(f"{where}: id has control characters (got {value!r}): {expected}")
    if len(value) > MAX_SCENARIO_ID:
        raise BenchlibError(
            f"{where}: id has {len(value)} characters (got {value[:20]!r}...): expected at most "
            f"{MAX_SCENARIO_ID}"
        )
    return value


def _matrix_item(doc: YamlDoc, axis: str, index: int, item: Any) -> tuple[str, dict[str, Any]]:
    loc: list[str | int] = ["matrix", axis, index]
    where = f"{doc.where(loc)}: matrix.{axis}.{index}"
    if isinstance(item, dict):
        if "id" not in item:
            raise BenchlibError(f"{where}: item has no 'id' (got keys {sorted(item)})")
        ident = check_scenario_id(item["id"], f"{doc.where([*loc, 'id'])}: matrix.{axis}.{index}")
        return ident, scenario_content(item) or {axis: item["id"]}
    return check_scenario_id(item, where), {axis: item}


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
            where = f"{doc.where(['scenarios', index, 'id'])}: scenarios.{index}"
            ident = check_scenario_id(entry["id"], where)
            scenarios.append(Scenario(id=ident, vars=scenario_content(entry)))
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
    meta = validator_for(schema)
    at_path: dict[tuple[str | int, ...], list[SchemaViolation]] = {}
    for error in meta(meta.META_SCHEMA).iter_errors(schema):
        at_path.setdefault(tuple(error.absolute_path), []).append(error)
    if at_path:  # every problem, one line each, in the file's order
        problems = [_schema_error(path, best_match(errors)) for errors in at_path.values()]
        problems.sort(key=_line_of)
        raise BenchlibError("\n".join(problems))
    return schema


JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")


def _line_of(problem: str) -> int:
    """The line a `file:line: ...` problem names (0 when it names none)."""
    line = problem.split(": ", 1)[0].rpartition(":")[2]
    return int(line) if line.isdigit() else 0


def _schema_error(path: Path, exc: SchemaViolation) -> str:
    """`schema.json:7: not a valid JSON Schema at properties/order_id/type: ...`: the keyword
    path, and its line (JSON is YAML, so the YAML reader finds it; none if it cannot)."""
    keyword = list(exc.absolute_path)
    try:
        where = read_yaml(path).where(keyword)
    except BenchlibError:
        where = str(path)
    at = f" at {'/'.join(map(str, keyword))}" if keyword else ""
    hint = ""
    if keyword and keyword[-1] == "type" and isinstance(exc.instance, str):
        hint = did_you_mean(exc.instance, JSON_TYPES) or f"; expected one of {JSON_TYPES}"
    return f"{where}: not a valid JSON Schema{at}: {exc.message}{hint}"


def suite_doc(folder: Path) -> YamlDoc:
    """The suite's suite.yaml, read with its lines."""
    if not (folder / "suite.yaml").is_file():
        raise BenchlibError(f"{folder}: not a suite folder (no suite.yaml)")
    return read_yaml(folder / "suite.yaml")


def _suite_file(folder: Path) -> SuiteFile:
    return _validate(SuiteFile, suite_doc(folder))


def scenarios_file(folder: Path) -> Path:
    """The suite's scenarios file (named in its suite.yaml)."""
    return folder / _suite_file(folder).scenarios


def _check_policies(suite: Suite, doc: YamlDoc) -> None:
    """Every policy names steps some prompt version has, and a field those steps produce: a
    policy that can never apply is a mistake, not a rule."""
    steps, fields = suite.steps, sorted(suite.output_fields)
    problems = []
    for index, policy in enumerate(suite.spec.policies):
        for at, name in enumerate(policy.steps):
            if name not in steps:
                loc: list[str | int] = ["policies", index, "steps", at]
                problems.append(
                    f"{doc.where(loc)}: policies.{index}.steps.{at}: no prompt version has a "
                    f"step {name!r} (steps: {sorted(steps)}){did_you_mean(name, sorted(steps))}"
                )
        if not policy.field:
            continue
        named = [step for name in policy.steps or steps for step in steps.get(name, [])]
        lacking = sorted(
            {s.name for s in named if policy.field not in output_fields(suite.schema_for(s))}
        )
        where = f"{doc.where(['policies', index, 'field'])}: policies.{index}.field"
        if policy.field not in fields:
            problems.append(
                f"{where}: no step's output schema declares {policy.field!r} (fields: {fields})"
                f"{did_you_mean(policy.field, fields)}"
            )
        elif policy.steps and lacking:
            problems.append(
                f"{where}: the output schema of step(s) {lacking} does not declare "
                f"{policy.field!r}: those steps would never be held to this policy"
            )
    if problems:
        raise BenchlibError("\n".join(problems))


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
    doc = suite_doc(folder)
    spec = _validate(SuiteFile, doc)
    versions = _load_versions(folder / spec.versions)
    _check_rank_on(folder, spec, versions)
    schema_files = {spec.output_schema} | {
        step.output_schema for version in versions.values() for step in version.steps
    }
    rubric_path = folder / spec.rubric
    suite = Suite(
        path=folder,
        spec=spec,
        versions=versions,
        scenarios=_load_scenarios(read_yaml(folder / spec.scenarios), folder),
        schemas={name: _load_schema(folder / name) for name in sorted(schema_files - {""})},
        rubric=_validate(Rubric, read_yaml(rubric_path)),
    )
    _check_policies(suite, doc)
    return suite
