"""Rubrics: versioned human-judging criteria, flags and the composite that weighs them.

A rubric is written so that two judges a week apart mean the same thing by a 4: every level of
every criterion is described and comes with a calibrated example.
"""

from pydantic import BaseModel, ConfigDict, Field, model_validator

from benchlib.errors import did_you_mean, errors_at
from benchlib.spec.hashing import content_hash


class Level(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    score: int
    description: str = Field(min_length=1)
    example: str = Field(min_length=1, description="A calibrated example that deserves this score.")


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    question: str
    levels: list[Level] = Field(min_length=2)

    @property
    def scores(self) -> list[int]:
        return [level.score for level in self.levels]

    @model_validator(mode="after")
    def _levels_are_a_scale(self) -> "Criterion":
        scores = self.scores
        expected = list(range(min(scores), max(scores) + 1))
        if sorted(scores) != expected:
            raise ValueError(
                f"criterion {self.name!r}: levels must be consecutive scores, got {scores}"
            )
        return self


class Flag(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    automatic: bool = Field(False, description="Computed by a scorer rather than by a judge.")


class Rubric(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    description: str = ""
    criteria: list[Criterion] = Field(min_length=1)
    flags: list[Flag] = Field(default_factory=list)
    composite: dict[str, float] = Field(
        description="Weight per criterion and flag; composite = sum of weight × value."
    )

    @model_validator(mode="after")
    def _composite_names_exist(self) -> "Rubric":
        known = sorted({c.name for c in self.criteria} | {f.name for f in self.flags})
        unknown = [name for name in self.composite if name not in known]
        if unknown:
            raise errors_at(
                Rubric,
                [
                    (
                        ("composite", name),
                        f"composite names {name!r}, which is neither a criterion nor a flag "
                        f"(known: {known}){did_you_mean(name, known)}",
                        name,
                    )
                    for name in unknown
                ],
            )
        return self

    @property
    def hash(self) -> str:
        return content_hash(self.model_dump(mode="json"))

    @property
    def automatic_weights(self) -> dict[str, float]:
        """The part of the composite that scorers compute, with no human in the loop."""
        automatic = {flag.name for flag in self.flags if flag.automatic}
        return {name: w for name, w in self.composite.items() if name in automatic}

    def composite_score(self, values: dict[str, float], automatic: bool = False) -> float | None:
        """The weighted sum (no `eval`), or None while a weighted value is still unknown."""
        weights = self.automatic_weights if automatic else self.composite
        if not weights or any(name not in values for name in weights):
            return None
        return sum(weight * values[name] for name, weight in weights.items())

    def formula(self, automatic: bool = False) -> str:
        weights = self.automatic_weights if automatic else self.composite
        return " + ".join(f"{w:g}·{name}" for name, w in weights.items())
