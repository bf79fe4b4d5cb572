"""The grid: one cell per (model, prompt version, scenario), expanded model-major.

Model-major order (all of one model's cells, then the next) means each model is loaded once.
"""

from typing import Any, Literal

from pydantic import BaseModel

from benchlib.config import BenchmarkConfig
from benchlib.errors import BenchlibError, did_you_mean
from benchlib.generation.providers import ModelInfo
from benchlib.spec.hashing import content_hash
from benchlib.spec.suite import PromptVersion, Scenario, Step, Suite, variable_sites


class StepPlan(BaseModel):
    step: Step
    output_schema: dict[str, Any]

    @property
    def response_schema(self) -> dict[str, Any] | None:
        """The schema to constrain decoding to, when the step asks for structured output."""
        return self.output_schema if self.step.structured_output else None


class CellPlan(BaseModel):
    """Everything a cell task needs to generate its candidates, with no further look-ups."""

    id: str
    run_id: str
    index: int
    model: str
    model_size_b: float | None
    model_digest: str | None
    prompt_version: str
    prompt_hash: str
    scenario_id: str
    scenario_hash: str
    rubric_version: str
    rubric_hash: str
    scenario_vars: dict[str, Any]
    steps: list[StepPlan]
    n_candidates: int
    temperature: float
    seed: int
    max_tokens: int
    attempt_budget: int
    cache: Literal["use", "refresh", "off"] = "use"

    @property
    def params(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
            "n_candidates": self.n_candidates,
        }

    @property
    def identity(self) -> str:
        """Two cells are comparable only when this matches (the run id is not part of it)."""
        return content_hash(
            {
                "model": self.model,
                "model_digest": self.model_digest,
                "prompt": [self.prompt_version, self.prompt_hash],
                "scenario": [self.scenario_id, self.scenario_hash],
                "rubric": [self.rubric_version, self.rubric_hash],
                "params": self.params,
            }
        )


def check_templates(suite: Suite, versions: list[PromptVersion], scenarios: list[Scenario]) -> None:
    """Every variable a template uses must be in every scenario it will be rendered with; a
    missing one is reported where the template reads it, with the name it probably meant."""
    problems = []
    for version in versions:
        variables = version.variables  # parses the templates: once, not once per scenario
        lacking: dict[str, list[Scenario]] = {}
        for scenario in scenarios:
            for name in sorted(variables - scenario.vars.keys()):
                lacking.setdefault(name, []).append(scenario)
        sites = variable_sites(suite, version) if lacking else {}
        for name, missing_in in lacking.items():
            first = missing_in[0]
            more = f" (and {len(missing_in) - 1} more)" if len(missing_in) > 1 else ""
            site = sites.get(name, f"{suite.path / suite.spec.versions / version.name}.yaml")
            problems.append(
                f"  - {site}: uses {name!r}, which scenario {first.id!r}{more} in "
                f"{suite.path / suite.spec.scenarios} lacks (it has {sorted(first.vars)})"
                f"{did_you_mean(name, sorted(first.vars))}"
            )
    if problems:
        raise BenchlibError("template variables missing from scenarios:\n" + "\n".join(problems))


def select_grid(
    config: BenchmarkConfig, suite: Suite
) -> tuple[list[PromptVersion], list[Scenario]]:
    """The prompt versions and scenarios a run uses, their templates checked against the
    scenarios: needs no model, so it runs before any model is contacted."""
    versions = suite.select_versions(config.prompts)
    scenarios = suite.select_scenarios(config.n_scenarios)
    check_templates(suite, versions, scenarios)
    return versions, scenarios


def expand_grid(
    run_id: str, config: BenchmarkConfig, suite: Suite, models: dict[str, ModelInfo]
) -> list[CellPlan]:
    versions, scenarios = select_grid(config, suite)
    rubric_hash = suite.rubric.hash  # hashes are computed, not stored: once each, not per cell
    cells: list[CellPlan] = []
    for model in config.models:
        for version in versions:
            prompt_hash = suite.version_hash(version)
            for scenario in scenarios:
                index = len(cells)
                cells.append(
                    CellPlan(
                        id=f"{run_id}-{index:04d}",
                        run_id=run_id,
                        index=index,
                        model=model,
                        model_size_b=models[model].size_b,
                        model_digest=models[model].digest,
                        prompt_version=version.name,
                        prompt_hash=prompt_hash,
                        scenario_id=scenario.id,
                        scenario_hash=scenario.hash,
                        rubric_version=suite.rubric.version,
                        rubric_hash=rubric_hash,
                        scenario_vars=scenario.vars,
                        steps=[
                            StepPlan(step=step, output_schema=suite.schema_for(step))
                            for step in version.steps
                        ],
                        n_candidates=config.n_candidates,
                        temperature=config.temperature,
                        seed=config.seed,
                        max_tokens=config.max_tokens,
                        attempt_budget=config.attempt_budget,
                        cache=config.cache_mode,
                    )
                )
    if not cells:
        raise BenchlibError("the grid is empty: no model × prompt version × scenario to run")
    return cells


def model_blocks(cells: list[CellPlan]) -> list[list[CellPlan]]:
    """Consecutive cells of the same model (the grid is model-major: one block per model)."""
    blocks: list[list[CellPlan]] = []
    for cell in cells:
        if blocks and blocks[-1][0].model == cell.model:
            blocks[-1].append(cell)
        else:
            blocks.append([cell])
    return blocks
