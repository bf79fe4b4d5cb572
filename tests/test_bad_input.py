"""Bad input, end to end: a catalogue of mistakes people make in configs, suites and judge
files. Each is refused by the CLI with exit code 2 and a message naming the file (and line) or
field, the value and what was expected, before anything is written or started: no database row,
no MLflow run, no Prefect flow run, no file under BENCHLIB_HOME. A control run proves the
checker sees writes when there are some.

Cases run `benchlib.cli.main`, the console script's entry point, in this process (a subprocess
per case would cost ~3 s of imports each); a few also run as a subprocess, to show that is the
same thing."""

import io
import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import pytest
import yaml

from benchlib import judging, runs
from benchlib.cli import main
from benchlib.errors import BenchlibError
from benchlib.hashing import scenario_hash
from benchlib.integrity import hashed_entries
from benchlib.suite import load_suite, scenarios_file
from benchlib.yamldoc import read_yaml
from tests.conftest import TIPS
from tests.support.cli import benchlib
from tests.support.suites import write_suite
from tests.support.written import snapshot

ANALYSTS = TIPS.parent / "analysts"

Edit = Callable[[Path, dict[str, str]], None]


@dataclass(frozen=True)
class Case:
    """`args` and `expected` use $suite (a private copy of the suite), $config (a file holding
    `config`), $llm, $ollama (servers on loopback), $run (a finished run), $judge, $tmp."""

    id: str
    args: str
    expected: tuple[str, ...]
    config: str = ""
    edit: Edit | None = None
    suite: Path = TIPS


def replace(file: str, old: str, new: str) -> Edit:
    def edit(folder: Path, _: dict[str, str]) -> None:
        path = folder / file
        text = path.read_text()
        assert old in text, f"{old!r} is not in {path}: the case would test nothing"
        path.write_text(text.replace(old, new, 1))

    return edit


def write(file: str, text: str) -> Edit:
    def edit(folder: Path, _: dict[str, str]) -> None:
        (folder / file).write_text(text)

    return edit


def change(file: str, change_data: Callable[[Any], None]) -> Edit:
    def edit(folder: Path, _: dict[str, str]) -> None:
        data = yaml.safe_load((folder / file).read_text())
        change_data(data)
        (folder / file).write_text(yaml.safe_dump(data, sort_keys=False))

    return edit


def remove(pattern: str) -> Edit:
    def edit(folder: Path, _: dict[str, str]) -> None:
        found = list(folder.glob(pattern))
        assert found, f"nothing matches {pattern} in {folder}"
        for path in found:
            path.unlink()

    return edit


def judge_file(change_items: Callable[[dict], None]) -> Edit:
    """The finished run's judge file, filled in by `ann`, then spoiled by `change_items`."""

    def edit(_: Path, values: dict[str, str]) -> None:
        data = json.loads(judging.export_file(runs.get_run(values["run"])).model_dump_json())
        data["judge"] = "ann"
        for item in data["items"]:
            item["scores"] = {"relevance": 4, "actionability": 3, "tone": 5}
        change_items(data)
        Path(values["judge"]).write_text(json.dumps(data))

    return edit


RUN = "run $suite --model openai:smollm2 --openai-base-url $llm/v1 --judge skip --no-cache"
CONFIG = "run $suite --config $config"
# Three good lines, so the bad one a case appends is line 4 of bench.yaml.
HEAD = "models: [openai:smollm2]\nopenai_base_url: $llm/v1\njudge: skip\n"
AT4 = "$config:4: "

CASES = [
    # --- configs: model specs and providers
    Case(
        "config-unknown-provider",
        CONFIG,
        ("$config:1: models:", "unknown provider 'bogus' in 'bogus:x'", "expected one of local,"),
        config="models: [bogus:x]\n",
    ),
    Case(
        "config-malformed-model-spec",
        "run $suite --model smollm2",
        ("command line: models:", "'smollm2' is not a model spec", "expected 'provider:model'"),
    ),
    Case(
        "config-model-spec-without-model",
        CONFIG,
        ("$config:1: models:", "'openai:' is not a model spec", "expected 'provider:model'"),
        config="models: ['openai:']\n",
    ),
    Case(
        "config-duplicate-models",
        "run $suite --model openai:smollm2 --model openai:smollm2",
        ("command line: models:", "duplicate model specs", "openai:smollm2"),
    ),
    Case(
        "config-empty-grid-no-models",
        CONFIG,
        ("$config:1: models:", "List should have at least 1 item", "(got [])"),
        config="models: []\n",
    ),
    Case(
        "config-unknown-local-model",
        "run $suite --model local:nope",
        ("local:nope: unknown local model", "expected 'smollm2-135m'"),
    ),
    Case(
        "config-local-gguf-missing",
        "run $suite --model local:mine --local-model mine=$tmp/mine.gguf",
        ("local:mine: GGUF file not found:", "$tmp/mine.gguf"),
    ),
    Case(
        "config-local-model-not-alias-path",
        RUN + " --local-model nopath",
        ("--local-model: expected ALIAS=PATH, got 'nopath'",),
    ),
    Case(
        "config-unreachable-openai-endpoint",
        "run $suite --model openai:m --openai-base-url http://127.0.0.1:9/v1",
        ("openai:m: endpoint http://127.0.0.1:9/v1 is unreachable", "set openai_base_url"),
    ),
    Case(
        "config-unreachable-ollama",
        "run $suite --model ollama:qwen2.5:0.5b --ollama-url http://127.0.0.1:9",
        ("ollama:qwen2.5:0.5b: Ollama at http://127.0.0.1:9 is unreachable", "set ollama_url"),
    ),
    Case(
        "config-unknown-openai-model",
        "run $suite --model openai:gpt-nope --openai-base-url $llm/v1",
        ("openai:gpt-nope: unknown model 'gpt-nope' at $llm/v1", "expected one of ['smollm2"),
    ),
    Case(
        "config-unknown-ollama-model",
        "run $suite --model ollama:nope --ollama-url $ollama",
        ("ollama:nope: model 'nope' not found on Ollama at $ollama", "ollama pull nope"),
    ),
    Case(
        "config-model-over-max-model-b",
        "run $suite --model ollama:smollm2:135m --ollama-url $ollama --max-model-b 0.1",
        ("ollama:smollm2:135m: model has 0.13B parameters", "more than max_model_b = 0.1B"),
    ),
    # --- configs: the grid and generation parameters
    Case(
        "config-unknown-prompt-version",
        RUN + " --prompt v9",
        ("prompts: unknown prompt version(s) ['v9']", "expected one of ['v1', 'v2-mentor'"),
    ),
    Case(
        "config-missing-template-variable",
        RUN,
        ("v1.yaml uses ['mood']", "scenario 'developer-morning'", "(it has ['persona',"),
        edit=replace("versions/v1.yaml", "{{ tasks }}.", "{{ tasks }}. Mood: {{ mood }}."),
    ),
    Case(
        "config-n-candidates-zero",
        CONFIG,
        (AT4 + "n_candidates:", "greater than or equal to 1", "(got 0)"),
        config=HEAD + "n_candidates: 0\n",
    ),
    Case(
        "config-n-candidates-negative-option",
        RUN + " --n-candidates -2",
        ("command line: n_candidates:", "greater than or equal to 1", "(got -2)"),
    ),
    Case(
        "config-n-tips-zero-old-name",
        CONFIG,
        (AT4 + "n_tips:", "greater than or equal to 1", "(got 0)"),
        config=HEAD + "n_tips: 0\n",
    ),
    Case(
        "config-n-scenarios-negative",
        CONFIG,
        (AT4 + "n_scenarios:", "greater than or equal to 0", "(got -1)"),
        config=HEAD + "n_scenarios: -1\n",
    ),
    Case(
        "config-temperature-above-range",
        CONFIG,
        (AT4 + "temperature:", "less than or equal to 2", "(got 2.5)"),
        config=HEAD + "temperature: 2.5\n",
    ),
    Case(
        "config-temperature-negative-option",
        RUN + " --temperature -0.5",
        ("command line: temperature:", "greater than or equal to 0", "(got -0.5)"),
    ),
    Case(
        "config-max-tokens-zero",
        CONFIG,
        (AT4 + "max_tokens:", "greater than or equal to 1", "(got 0)"),
        config=HEAD + "max_tokens: 0\n",
    ),
    Case(
        "config-request-timeout-zero",
        CONFIG,
        (AT4 + "request_timeout_s:", "greater than 0", "(got 0)"),
        config=HEAD + "request_timeout_s: 0\n",
    ),
    Case(
        "config-attempts-below-candidates",
        CONFIG,
        ("$config:5: max_attempts_per_cell (2) is lower than n_candidates (3)",),
        config=HEAD + "n_candidates: 3\nmax_attempts_per_cell: 2\n",
    ),
    Case(
        "config-judge-unknown-mode",
        CONFIG,
        ("$config:3: judge:", "Input should be 'human' or 'skip'", "(got 'maybe')"),
        config=HEAD.replace("judge: skip", "judge: maybe"),
    ),
    # --- configs: keys, types and syntax
    Case(
        "config-unknown-key-did-you-mean",
        CONFIG,
        (
            AT4 + "temprature: Extra inputs are not permitted (got 0.2)",
            "did you mean 'temperature'?",
        ),
        config=HEAD + "temprature: 0.2\n",
    ),
    Case(
        "config-unknown-key-listed",
        CONFIG,
        (
            AT4 + "colour: Extra inputs are not permitted (got 'red')",
            "expected one of allow_prompt",
        ),
        config=HEAD + "colour: red\n",
    ),
    Case(
        "config-wrong-type-integer",
        CONFIG,
        (AT4 + "n_candidates:", "Input should be a valid integer", "(got 'three')"),
        config=HEAD + "n_candidates: three\n",
    ),
    Case(
        "config-wrong-type-list",
        CONFIG,
        (AT4 + "prompts:", "Input should be a valid list", "(got 'v1')"),
        config=HEAD + "prompts: v1\n",
    ),
    Case(
        "config-wrong-type-boolean",
        CONFIG,
        (AT4 + "no_cache:", "Input should be a valid boolean", "(got 'perhaps')"),
        config=HEAD + "no_cache: perhaps\n",
    ),
    Case(
        "config-wrong-type-mapping",
        CONFIG,
        (AT4 + "local_models:", "Input should be a valid dictionary", "(got ['a.gguf'])"),
        config=HEAD + "local_models: [a.gguf]\n",
    ),
    Case(
        "config-yaml-syntax-error",
        CONFIG,
        ("$config:5: not valid YAML:", "expected ',' or ']'", "starts at line 4"),
        config=HEAD + "prompts: [v1, v2\n",
    ),
    Case(
        "config-yaml-tab-indentation",
        CONFIG,
        ("$config:5: not valid YAML:", "found character '\\t' that cannot start any token"),
        config=HEAD + "prompts:\n\t- v1\n",
    ),
    Case(
        "config-not-a-mapping",
        CONFIG,
        ("$config:1: expected a mapping of config keys, got list",),
        config="- openai:smollm2\n",
    ),
    Case(
        "config-file-missing",
        "run $suite --config $tmp/none.yaml",
        ("$tmp/none.yaml: config file not found",),
    ),
    Case(
        "config-suite-folder-missing",
        "run $tmp/nowhere --model openai:smollm2",
        ("$tmp/nowhere: not a suite folder (no suite.yaml)",),
    ),
    Case(
        "cli-option-wrong-type",
        RUN + " --n-candidates abc",
        ("Invalid value for '--n-candidates'", "Input should be a valid integer"),
    ),
    Case(
        "cli-unknown-option",
        RUN + " --temprature 0.2",
        ("No such option: --temprature", "Possible options: --temperature"),
    ),
    # --- configs: the baseline, checked before the run rather than after it
    Case(
        "config-baseline-unknown-run",
        RUN + " --baseline no-such-run",
        ("baseline: no run 'no-such-run' (got 'no-such-run')", "expected a run id"),
    ),
    Case(
        "config-baseline-latest-without-any",
        RUN + " --baseline latest --experiment never-run",
        ("baseline: 'latest'", "expected a completed run of experiment 'never-run'"),
    ),
    Case(
        "config-baseline-of-another-suite",
        RUN + " --baseline $run",
        ("baseline: run $run is of suite 'tips'", "expected a run of suite 'analysts'"),
        suite=ANALYSTS,
    ),
    # --- suites: suite.yaml
    Case(
        "suite-yaml-syntax-error",
        RUN,
        ("$suite/suite.yaml:15: not valid YAML:", "expected ',' or ']'", "starts at line 14"),
        edit=replace("suite.yaml", '"I cannot"]', '"I cannot"'),
    ),
    Case(
        "suite-unknown-key-did-you-mean",
        RUN,
        ("$suite/suite.yaml:15: scorer: Extra inputs are not permitted", "did you mean 'scorers'?"),
        edit=replace("suite.yaml", "scorers:", "scorer:"),
    ),
    Case(
        "suite-missing-name",
        RUN,
        ("$suite/suite.yaml:3: name: Field required",),
        edit=replace("suite.yaml", "name: tips\n", ""),
    ),
    Case(
        "suite-policy-wrong-type",
        RUN,
        ("$suite/suite.yaml:13: policies.max_words:", "valid integer", "(got 'lots')"),
        edit=replace("suite.yaml", "max_words: 40", "max_words: lots"),
    ),
    Case(
        "suite-unknown-scorer",
        RUN,
        ("$suite/suite.yaml: unknown scorer(s) ['vibes']", "expected names from ["),
        edit=replace("suite.yaml", "  - stability", "  - vibes"),
    ),
    # --- suites: prompt versions
    Case(
        "suite-version-yaml-syntax-error",
        RUN,
        ("$suite/versions/v1.yaml:2: not valid YAML:", "expected ',' or ']'"),
        edit=write("versions/v1.yaml", "user: [unclosed\n"),
    ),
    Case(
        "suite-version-key-typo",
        RUN,
        ("$suite/versions/v1.yaml:3: usr: Extra inputs are not permitted", "did you mean 'user'?"),
        edit=replace("versions/v1.yaml", "user: |-", "usr: |-"),
    ),
    Case(
        "suite-version-template-syntax-error",
        RUN,
        ("$suite/versions/v1.yaml: template syntax error", "expected name or number"),
        edit=replace("versions/v1.yaml", "{{ persona }}", "{{ persona. }}"),
    ),
    Case(
        "suite-version-reads-a-later-step",
        RUN,
        ("$suite/versions/chain.yaml:1:", "step 'first' reads steps ['second']", "earlier steps"),
        edit=write(
            "versions/chain.yaml",
            "steps:\n  - {name: first, user: 'Use {{ steps.second.tip }}'}\n"
            "  - {name: second, user: 'Tip for {{ persona }}'}\n",
        ),
    ),
    Case(
        "suite-version-not-a-mapping",
        RUN,
        ("$suite/versions/v1.yaml:1: expected a mapping with 'system' and 'user' templates",),
        edit=write("versions/v1.yaml", "- hello\n"),
    ),
    Case(
        "suite-no-prompt-versions",
        RUN,
        ("$suite/versions: no prompt versions", "expected one *.yaml file per version"),
        edit=remove("versions/*.yaml"),
    ),
    # --- suites: scenarios
    Case(
        "suite-scenarios-yaml-syntax-error",
        RUN,
        ("$suite/scenarios.yaml:", "not valid YAML:"),
        edit=replace("scenarios.yaml", "  time_slot:", "  time_slot: ["),
    ),
    Case(
        "suite-duplicate-scenario-ids",
        RUN,
        ("$suite/scenarios.yaml: duplicate scenario ids: 'aapl' at lines [3, 12]",),
        edit=replace("scenarios.yaml", "id: ko", "id: aapl"),
        suite=ANALYSTS,
    ),
    Case(
        "suite-duplicate-matrix-ids",
        RUN,
        ("$suite/scenarios.yaml: duplicate scenario ids: 'nurse-morning'",),
        edit=replace("scenarios.yaml", "id: teacher", "id: nurse"),
    ),
    Case(
        "suite-scenario-without-id",
        RUN,
        ("$suite/scenarios.yaml:30: scenarios.3: expected a mapping with an 'id'",),
        edit=replace("scenarios.yaml", "- id: f\n", "- name: f\n"),
        suite=ANALYSTS,
    ),
    Case(
        "suite-matrix-item-without-id",
        RUN,
        ("$suite/scenarios.yaml:22: matrix.time_slot.0: item has no 'id'", "(got keys"),
        edit=replace("scenarios.yaml", "- id: morning", "- name: morning"),
    ),
    Case(
        "suite-matrix-axis-not-a-list",
        RUN,
        ("$suite/scenarios.yaml:3: matrix: expected a mapping of axis name -> list of items",),
        edit=replace("scenarios.yaml", "  time_slot:\n", "  time_slot: morning\n  other:\n"),
    ),
    Case(
        "suite-empty-grid-no-scenarios",
        RUN,
        ("$suite/scenarios.yaml:2: no scenarios",),
        edit=write("scenarios.yaml", "# nothing yet\nscenarios: []\n"),
    ),
    Case(
        "suite-scenario-hash-mismatch",
        RUN,
        (
            "$suite/scenarios.yaml:4: scenario 'aapl': sha256 does not match its content:",
            "expected 96fb5d311c086776c0fc2ac48dc954a234c9a5e2e85405dd88a0972854ecf79b",
            "actual ",
            "benchlib suite hash $suite --write",
        ),
        edit=replace("scenarios.yaml", "price: 187.5", "price: 178.5"),
        suite=ANALYSTS,
    ),
    Case(
        "suite-matrix-item-hash-mismatch",
        RUN,
        (
            "$suite/scenarios.yaml:6: matrix persona item 'developer': sha256 does not match",
            "expected 06b8847520adbbaff0afa5c66e4dd9b35c42a67a17761f1a38841f5a573f603b",
        ),
        edit=replace("scenarios.yaml", "fix a login bug", "fix a logout bug"),
    ),
    Case(
        "suite-scenario-hash-malformed",
        RUN,
        ("$suite/scenarios.yaml:13: scenario 'ko': sha256 does not match", "expected abc123"),
        edit=replace("scenarios.yaml", "sha256: 1dc72917", "sha256: abc123 #"),
        suite=ANALYSTS,
    ),
    Case(
        "suite-scenarios-file-missing",
        RUN,
        ("$suite/cases.yaml: file not found",),
        edit=replace("suite.yaml", "scenarios: scenarios.yaml", "scenarios: cases.yaml"),
    ),
    # --- suites: output schemas
    Case(
        "suite-schema-not-json",
        RUN,
        ("$suite/schema.json: not valid JSON:", "line 1 column 2"),
        edit=write("schema.json", "{type: object}"),
    ),
    Case(
        "suite-schema-not-a-json-schema",
        RUN,
        ("$suite/schema.json: not a valid JSON Schema:", "'objekt' is not valid"),
        edit=write("schema.json", '{"type": "objekt"}'),
    ),
    Case(
        "suite-step-schema-missing",
        RUN,
        ("$suite/other.json: file not found",),
        edit=replace("versions/v1.yaml", "user: |-", "output_schema: other.json\nuser: |-"),
    ),
    # --- suites: the rubric
    Case(
        "suite-rubric-without-levels",
        RUN,
        (
            "$suite/rubric.yaml:",
            "criteria.0.levels: Field required",
        ),
        edit=change("rubric.yaml", lambda d: d["criteria"][0].pop("levels")),
    ),
    Case(
        "suite-rubric-one-level",
        RUN,
        ("$suite/rubric.yaml:", "criteria.0.levels: List should have at least 2 items"),
        edit=change(
            "rubric.yaml", lambda d: d["criteria"][0].update(levels=d["criteria"][0]["levels"][:1])
        ),
    ),
    Case(
        "suite-rubric-levels-not-consecutive",
        RUN,
        (
            "$suite/rubric.yaml:",
            "criterion 'relevance': levels must be consecutive scores",
            "got [1, 2, 4, 5]",
        ),
        edit=change("rubric.yaml", lambda d: d["criteria"][0]["levels"].pop(2)),
    ),
    Case(
        "suite-rubric-level-without-example",
        RUN,
        ("$suite/rubric.yaml:10: criteria.0.levels.0.example: Field required",),
        edit=replace(
            "rubric.yaml", '        example: \'"Drink more water."', "        exampel: '\"Drink"
        ),
    ),
    Case(
        "suite-rubric-composite-unknown-name",
        RUN,
        ("$suite/rubric.yaml:", "composite names ['clarity']", "neither criteria nor flags"),
        edit=change("rubric.yaml", lambda d: d["composite"].update(clarity=1)),
    ),
    Case(
        "suite-rubric-file-missing",
        RUN,
        ("$suite/rubric.yaml: file not found",),
        edit=remove("rubric.yaml"),
    ),
    # --- judge files through the CLI (their validation rules: tests/test_judging.py)
    Case(
        "judge-file-malformed-json",
        "judge apply $judge",
        ("$judge: malformed JSON",),
        edit=lambda _, values: Path(values["judge"]).write_text('{"run_id": '),
    ),
    Case(
        "judge-file-score-out-of-range",
        "judge apply $judge",
        ("relevance = 7 is out of range 1–5", "nothing applied"),
        edit=judge_file(lambda d: d["items"][0]["scores"].update(relevance=7)),
    ),
    Case(
        "judge-file-score-wrong-type",
        "judge apply $judge",
        ("$judge: items.0.scores.tone:", "valid number", "(got 'great')"),
        edit=judge_file(lambda d: d["items"][0]["scores"].update(tone="great")),
    ),
    Case(
        "judge-file-missing",
        "judge apply $tmp/none.json",
        ("Invalid value for 'file'", "'$tmp/none.json' does not exist"),
    ),
    # --- compare
    Case(
        "compare-unknown-baseline",
        "compare $run --baseline no-such-run",
        ("no run 'no-such-run'",),
    ),
    Case(
        "compare-run-against-itself",
        "compare $run --baseline $run",
        ("run $run cannot be its own baseline",),
    ),
]


def squeezed(text: str) -> str:
    """Text without whitespace or box edges: the console wraps long messages, and click's usage
    errors come in a box."""
    return re.sub(r"[\s│]+", "", text)


def invoke(*args: str) -> tuple[int, str, str]:
    """`benchlib ARGS` through the console script's entry point: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_env = sys.argv, dict(os.environ)
    sys.argv = ["benchlib", *args]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    finally:
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def control(prefect_api: str, small_config: dict, tmp_path_factory) -> dict:
    """A good run through the same entry point, with snapshots around it."""
    path = tmp_path_factory.mktemp("control") / "good.yaml"
    path.write_text(
        f"models: [openai:smollm2]\nopenai_base_url: {small_config['openai_base_url']}\n"
        "prompts: [v1]\nn_scenarios: 1\nn_candidates: 1\nmax_tokens: 24\njudge: skip\n"
        "no_cache: true\n"
    )
    before = snapshot()
    code, out, err = invoke("run", str(TIPS), "--config", str(path))
    assert code == 0, err
    return {"before": before, "after": snapshot(), "run": out.split("run id: ")[1].split()[0]}


def test_the_checker_sees_what_a_good_run_writes(control: dict) -> None:
    before, after = control["before"], control["after"]
    assert after.db_rows["run"] == before.db_rows.get("run", 0) + 1
    assert after.db_rows["candidate"] > before.db_rows.get("candidate", 0)
    assert after.mlflow["runs"] >= before.mlflow.get("runs", 0) + 2  # parent + a cell
    assert after.flow_runs > before.flow_runs
    assert after.files - before.files  # MLflow artifacts, at least
    assert len(before.changes(after)) == 4


@pytest.fixture(scope="module")
def servers(control: dict, small_config: dict, ollama_server) -> dict[str, str]:
    return {
        "llm": small_config["openai_base_url"].removesuffix("/v1"),
        "ollama": ollama_server[0],
        "run": control["run"],
    }


def prepare(case: Case, servers: dict[str, str], tmp_path: Path) -> dict[str, str]:
    suite = shutil.copytree(case.suite, tmp_path / case.suite.name)
    values = servers | {
        "suite": str(suite),
        "config": str(tmp_path / "bench.yaml"),
        "judge": str(tmp_path / "judge.json"),
        "tmp": str(tmp_path),
    }
    if case.config:
        Path(values["config"]).write_text(Template(case.config).substitute(values))
    if case.edit:
        case.edit(suite, values)
    return values


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_exits_2_naming_what_is_wrong_and_writes_nothing(
    case: Case, servers: dict[str, str], tmp_path: Path
) -> None:
    values = prepare(case, servers, tmp_path)
    before = snapshot()
    code, _, err = invoke(*shlex.split(Template(case.args).substitute(values)))
    assert code == 2, err
    for fragment in case.expected:
        assert squeezed(Template(fragment).substitute(values)) in squeezed(err)
    assert "Traceback" not in err
    assert before.changes(snapshot()) == []


SUBPROCESS = ("suite-scenario-hash-mismatch", "cli-unknown-option")


@pytest.mark.parametrize("case_id", SUBPROCESS)
def test_the_console_script_says_the_same(case_id: str, servers, tmp_path: Path) -> None:
    case = next(case for case in CASES if case.id == case_id)
    values = prepare(case, servers, tmp_path)
    args = shlex.split(Template(case.args).substitute(values))
    _, _, in_process = invoke(*args)
    result = benchlib(*args)
    assert result.returncode == 2
    assert " ".join(result.stderr.split()) == " ".join(in_process.split())


def test_suite_hash_fills_in_hashes_keeping_comments_then_catches_an_edit(tmp_path: Path) -> None:
    text = (
        "# fact sheets\nscenarios:\n  - id: a  # first\n    ticker: AAA\n    price: 1.5\n"
        "  - {id: b, ticker: BBB}\n"
    )
    folder = write_suite(tmp_path / "facts", "Price of {{ ticker }}?", text)
    scenarios = folder / "scenarios.yaml"
    code, _, err = invoke("suite", "hash", str(folder), "--write")
    assert code == 0, err
    text = scenarios.read_text()
    expected_a = scenario_hash({"ticker": "AAA", "price": 1.5})
    assert f"  - id: a\n    sha256: {expected_a}  # first\n" in text
    assert f"{{id: b, sha256: {scenario_hash({'ticker': 'BBB'})}, ticker: BBB}}" in text
    assert text.startswith("# fact sheets\n")
    suite = load_suite(folder)
    assert [s.vars for s in suite.scenarios] == [{"ticker": "AAA", "price": 1.5}, {"ticker": "BBB"}]
    assert suite.scenarios[0].hash == expected_a[:16]

    scenarios.write_text(text.replace("price: 1.5", "price: 15"))
    with pytest.raises(BenchlibError) as info:
        load_suite(folder)
    message = str(info.value)
    actual = scenario_hash({"ticker": "AAA", "price": 15})
    assert "scenarios.yaml:4: scenario 'a': sha256 does not match" in message
    assert f"expected {expected_a}" in message and f"actual {actual}" in message
    assert f"benchlib suite hash {folder} --write" in message

    assert invoke("suite", "hash", str(folder), "--write")[0] == 0
    assert load_suite(folder).scenarios[0].vars["price"] == 15


def test_shipped_suites_carry_matching_hashes() -> None:
    """Every matrix item (tips) and scenario (analysts) carries its hash, and it matches."""
    for folder, entries in ((TIPS, 6), (ANALYSTS, 4)):
        doc = read_yaml(scenarios_file(folder))
        assert [entry.status for entry in hashed_entries(doc)] == ["ok"] * entries
        assert load_suite(folder).scenarios
