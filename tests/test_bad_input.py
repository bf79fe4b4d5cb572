"""Bad input, end to end: the catalogue in tests/bad_inputs.yaml, mistakes people make in
configs, suites and judge files. Each is refused by the CLI with exit code 2 and a message
naming the file (and line) or field, the value and what was expected, before anything is
written or started: no database row, no MLflow run, no Prefect flow run, no file under
BENCHLIB_HOME. A control run proves the checker sees writes when there are some.

Cases run `benchlib.cli.main`, the console script's entry point, in this process (a subprocess
per case would cost ~3 s of imports each); a few also run as a subprocess, to show that is the
same thing."""

import io
import json
import math
import os
import re
import shlex
import shutil
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from string import Template
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.utils import validation
from pydantic import BaseModel, ConfigDict, Field

from benchlib.cli import main
from benchlib.config import BenchmarkConfig
from benchlib.errors import BenchlibError
from benchlib.evaluation import judging
from benchlib.spec import fixtures
from benchlib.spec.hashing import scenario_hash
from benchlib.spec.integrity import hashed_entries
from benchlib.spec.suite import load_suite, scenarios_file
from benchlib.spec.yamldoc import MAX_NODES, read_yaml
from benchlib.store import runs
from benchlib.store.db import session
from benchlib.store.records import Fixture
from benchlib.tracking import mlflow_run as tracking
from tests.conftest import TIPS
from tests.support.cli import benchlib
from tests.support.suites import write_suite
from tests.support.written import snapshot

RUN = "run $suite --model openai:smollm2 --openai-base-url $llm/v1 --judge skip --no-cache"
CONFIG = "run $suite --config $config"
CATALOGUE = Path(__file__).with_name("bad_inputs.yaml")
JUDGED = {"relevance": 4, "actionability": 3, "tone": 5}


class Case(BaseModel):
    """One entry of tests/bad_inputs.yaml (its header says what each key means)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    suite: str = "tips"
    command: str = ""
    config: str = ""
    args: str = ""
    edits: list[dict[str, Any]] = []
    env: dict[str, str] = {}
    expected: list[str] = Field(min_length=1)

    def argv(self, values: dict[str, str]) -> list[str]:
        text = self.command or (CONFIG if self.config else f"{RUN} {self.args}")
        return shlex.split(Template(text).substitute(values))


CASES = [Case(**case) for case in yaml.safe_load(CATALOGUE.read_text())["cases"]]


def _edit_data(path: Path, dotted: str, value: Any = None, pop: bool = False) -> None:
    data = yaml.safe_load(path.read_text())
    *parents, last = [int(key) if key.isdigit() else key for key in dotted.split(".")]
    target = data
    for key in parents:
        target = target[key]
    if pop:
        target.pop(last)
    else:
        target[last] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def apply_edit(edit: dict[str, Any], suite: Path, values: dict[str, str]) -> None:
    match edit:
        case {"replace": [file, old, new]}:
            text = (suite / file).read_text()
            assert old in text, f"{old!r} is not in {file}: the case would test nothing"
            (suite / file).write_text(text.replace(old, new, 1))
        case {"write": [file, text]}:
            (suite / file).write_text(text)
        case {"remove": pattern}:
            found = list(suite.glob(pattern))
            assert found, f"nothing matches {pattern} in {suite}"
            for path in found:
                path.unlink()
        case {"pop": [file, dotted]}:
            _edit_data(suite / file, dotted, pop=True)
        case {"set": [file, dotted, value]}:
            _edit_data(suite / file, dotted, value)
        case {"judge_scores": scores}:
            run = runs.get_run(values["run"])
            data = json.loads(judging.export_file(run).model_dump_json()) | {"judge": "ann"}
            for item in data["items"]:
                item["scores"] = dict(JUDGED)
            data["items"][0]["scores"].update(scores)
            Path(values["judge"]).write_text(json.dumps(data))
        case {"fixture": {"suite": name, "id": scenario_id, "vars": stored, "now": changed}}:
            # Stored through benchlib, then changed behind its back (as a stray UPDATE would).
            fixture = fixtures.create(name, scenario_id, stored)
            with session() as s:
                s.get(Fixture, fixture.id).vars = changed
        case {"judge_text": text}:
            Path(values["judge"]).write_text(text)
        case {"judge_set": changes}:
            apply_edit({"judge_scores": {}}, suite, values)
            path = Path(values["judge"])
            data = json.loads(path.read_text())
            for dotted, value in changes.items():
                *parents, last = [int(k) if k.isdigit() else k for k in dotted.split(".")]
                target = data
                for key in parents:
                    target = target[key]
                target[last] = (
                    Template(value).substitute(values) if isinstance(value, str) else value
                )
            path.write_text(json.dumps(data))
        case {"tmp_file": [name, text]}:
            Path(values["tmp"], name).write_text(text)
        case {"tmp_sparse": [name, size]}:
            with Path(values["tmp"], name).open("wb") as stream:
                stream.truncate(size)
        case {"tmp_fifo": name}:
            os.mkfifo(Path(values["tmp"], name))
        case {"tmp_symlink": [name, target]}:
            Path(values["tmp"], name).symlink_to(Path(values["tmp"], target))
        case {"claim": run_id}:
            runs.claim_run_id(run_id)
        case _:
            raise ValueError(f"unknown edit {edit}")


def squeezed(text: str) -> str:
    """Text without whitespace or box edges: the console wraps long messages, and click's usage
    errors come in a box."""
    return re.sub(r"[\s│]+", "", text)


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`benchlib ARGS` through the console script's entry point (with `env` added to the
    environment): exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_env = sys.argv, dict(os.environ)
    sys.argv = ["benchlib", *args]
    os.environ.update(env or {})
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
    # the run's MLflow run and the child run of its one (model, prompt version)
    assert after.mlflow["runs"] == before.mlflow.get("runs", 0) + 2
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
    suite = shutil.copytree(TIPS.parent / case.suite, tmp_path / case.suite)
    values = servers | {
        "suite": str(suite),
        "config": str(tmp_path / "bench.yaml"),
        "judge": str(tmp_path / "judge.json"),
        "tmp": str(tmp_path),
        "long": "x" * 50_000,
    }
    if case.config:
        Path(values["config"]).write_text(Template(case.config).substitute(values))
    for edit in case.edits:
        apply_edit(edit, suite, values)
    return values


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_exits_2_naming_what_is_wrong_and_writes_nothing(
    case: Case, servers: dict[str, str], tmp_path: Path
) -> None:
    values = prepare(case, servers, tmp_path)
    env = {key: Template(value).substitute(values) for key, value in case.env.items()}
    before = snapshot()
    code, _, err = invoke(*case.argv(values), env=env)
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
    args = case.argv(values)
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
    for folder, entries in ((TIPS, 6), (TIPS.parent / "analysts", 4)):
        doc = read_yaml(scenarios_file(folder))
        assert [entry.status for entry in hashed_entries(doc)] == ["ok"] * entries
        assert load_suite(folder).scenarios


# --- Property-based: generated bad inputs for the config, suite and judge-file loaders, each
# through the CLI's entry point in this process; one snapshot around all of a test's examples.

PROPERTY = settings(
    max_examples=25,
    deadline=None,
    database=None,  # no .hypothesis/ folder: a test run writes nothing of its own either
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
LETTERS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
INT64 = 2**63


def _bounds(name: str) -> tuple[float | None, float | None]:
    """The config key's lowest and highest accepted values (None where there is none)."""
    low = high = None
    for rule in BenchmarkConfig.model_fields[name].metadata:
        low = getattr(rule, "ge", None) if getattr(rule, "ge", None) is not None else low
        low = getattr(rule, "gt", None) if getattr(rule, "gt", None) is not None else low
        high = getattr(rule, "le", None) if getattr(rule, "le", None) is not None else high
    return low, high


NUMBER_KEYS = sorted(
    name for name, field in BenchmarkConfig.model_fields.items() if field.annotation in (int, float)
)


@st.composite
def bad_number(draw: st.DrawFn) -> tuple[str, Any]:
    """A numeric config key and a value it must refuse: below or above its bounds (up to
    beyond int64), not finite, or not a number at all."""
    name = draw(st.sampled_from(NUMBER_KEYS))
    low, high = _bounds(name)
    choices = [st.sampled_from([math.inf, -math.inf, math.nan]), LETTERS.map(lambda s: s + "x")]
    if low is not None:
        choices.append(st.integers(-INT64 * 4, math.ceil(low) - 1))
    if high is not None:
        choices.append(st.integers(math.floor(high) + 1, INT64 * 4))
    return name, draw(st.one_of(choices))


@st.composite
def bad_config(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A config file's text and what its error must say, by category."""
    kind = draw(st.sampled_from(["number", "empty", "duplicate", "aliases", "url", "top"]))
    base = "models: [openai:smollm2]\n"
    if kind == "number":
        name, value = draw(bad_number())
        shown = "" if isinstance(value, float) else repr(value)
        return base + yaml.safe_dump({name: value}), [":2:", f"{name}:", f"(got {shown}"]
    if kind == "empty":
        blank = st.lists(st.sampled_from(["\n", "   \n", "# a comment\n"]), max_size=4)
        nothing = st.sampled_from(["", "---\n", "~\n", "null\n", "--- ~\n", "--- null\n"])
        return "".join(draw(blank)) + draw(nothing), ["is empty"]
    if kind == "duplicate":
        name = draw(st.sampled_from(sorted(BenchmarkConfig.model_fields)))
        gap = draw(st.integers(0, 3))
        lines = [f"{name}: 1", *[f"# {i}" for i in range(gap)], f"{name}: 2"]
        return "\n".join(lines) + "\n", [f":{gap + 2}: {name}: duplicate key", "line 1"]
    if kind == "aliases":
        width = draw(st.integers(4, 12))
        depth = math.ceil(math.log(MAX_NODES, width)) + draw(st.integers(0, 2))
        lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
        for level in range(1, depth + 1):
            lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
        return "\n".join(lines) + "\n", ["expands (through its aliases)"]
    if kind == "url":
        name = draw(st.sampled_from(["openai_base_url", "ollama_url", "mlflow_url"]))
        value = draw(
            st.sampled_from(["htp://x", "http//127.0.0.1:1", "://", "http://", "ftp://h/x"])
            | LETTERS.map(lambda s: f"{s}x:/{s}")
        )
        return base + yaml.safe_dump({name: value}), [":2:", f"{name}:", f"(got {value!r})"]
    value = draw(st.lists(LETTERS, min_size=1, max_size=3) | st.integers() | LETTERS)
    return yaml.safe_dump(value), [":1: expected a mapping of config keys"]


def test_generated_bad_configs_exit_2_naming_the_file_and_write_nothing(
    prefect_api: str, tmp_path: Path
) -> None:
    suite = shutil.copytree(TIPS, tmp_path / "tips")
    before = snapshot()

    @PROPERTY
    @given(bad_config())
    def check(case: tuple[str, list[str]]) -> None:
        text, expected = case
        path = tmp_path / "bench.yaml"
        path.write_text(text)
        code, _, err = invoke("run", str(suite), "--config", str(path))
        assert code == 2, err
        assert "Traceback" not in err
        for fragment in [str(path), *expected]:
            assert squeezed(fragment) in squeezed(err), (fragment, err)

    check()
    assert before.changes(snapshot()) == []


CONTROL = st.characters(codec="utf-8", categories=["Cc"])
BAD_IDS = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "\t"]),
    st.booleans(),
    st.floats(allow_nan=False),
    st.lists(LETTERS, max_size=3),
    st.dictionaries(LETTERS, LETTERS, min_size=1, max_size=2),
    st.tuples(LETTERS, CONTROL, LETTERS).map("".join),
    st.text(alphabet="ab", min_size=201, max_size=400),
)


def test_generated_bad_scenario_ids_exit_2_naming_file_line_and_write_nothing(
    prefect_api: str, tmp_path: Path
) -> None:
    before = snapshot()

    @PROPERTY
    @given(ident=BAD_IDS, position=st.integers(0, 2), matrix=st.booleans())
    def check(ident: Any, position: int, matrix: bool) -> None:
        folder = tmp_path / "suite"
        shutil.rmtree(folder, ignore_errors=True)
        entries: list[Any] = [{"id": f"s{i}", "topic": f"t{i}"} for i in range(3)]
        entries[position] = {"id": ident, "topic": "bad"}
        data = {"matrix": {"topic": entries}} if matrix else {"scenarios": entries}
        write_suite(folder, "Tip on {{ topic }}?", yaml.safe_dump(data))
        line = 3 + 2 * position if matrix else 2 + 2 * position
        field = f"matrix.topic.{position}" if matrix else f"scenarios.{position}"
        code, _, err = invoke("run", str(folder), "--model", "openai:x")
        assert code == 2, err
        assert "Traceback" not in err
        assert squeezed(f"{folder / 'scenarios.yaml'}:{line}: {field}: id") in squeezed(err), err

    check()
    assert before.changes(snapshot()) == []


BAD_LEVELS = st.one_of(
    st.booleans(),
    st.integers(1, 5).map(str),
    st.floats(allow_nan=True).filter(lambda x: not float(x).is_integer()),
    st.lists(st.integers(1, 5), max_size=2),
    LETTERS,
)


@st.composite
def bad_judge_file(draw: st.DrawFn, exported: dict) -> tuple[dict, list[str]]:
    """The run's judge file, filled in, then one thing made wrong; what the error must say."""
    data = json.loads(json.dumps(exported)) | {"judge": "ann"}
    for item in data["items"]:
        item["scores"] = dict(JUDGED)
    index = draw(st.integers(0, len(data["items"]) - 1))
    kind = draw(st.sampled_from(["level", "judge", "comment", "item_id"]))
    if kind == "level":
        criterion = draw(st.sampled_from(sorted(JUDGED)))
        data["items"][index]["scores"][criterion] = draw(BAD_LEVELS)
        return data, [f"items.{index}.scores.{criterion}:"]
    if kind == "judge":
        data["judge"] = draw(st.text(min_size=201, max_size=300))
        return data, ["judge:", "200 characters"]
    if kind == "comment":
        data["items"][index]["comment"] = "c" * draw(st.integers(10_001, 30_000))
        return data, [f"items.{index}.comment:", "10000 characters"]
    data["items"][index]["item_id"] = draw(st.text(alphabet="i", min_size=65, max_size=200))
    return data, [f"items.{index}.item_id:"]


def test_generated_bad_judge_files_exit_2_naming_the_field_and_write_nothing(
    servers: dict[str, str], tmp_path: Path
) -> None:
    exported = json.loads(judging.export_file(runs.get_run(servers["run"])).model_dump_json())
    before = snapshot()

    @PROPERTY
    @given(bad_judge_file(exported))
    def check(case: tuple[dict, list[str]]) -> None:
        data, expected = case
        path = tmp_path / "judge.json"
        path.write_text(json.dumps(data))
        code, _, err = invoke("judge", "apply", str(path))
        assert code == 2, err
        assert "Traceback" not in err
        for fragment in [str(path), *expected]:
            assert squeezed(fragment) in squeezed(err), (fragment, err)

    check()
    assert before.changes(snapshot()) == []


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("empty.yaml", "# nothing here\n", "the config file is empty"),
        ("twice.yaml", "seed: 1\nseed: 2\n", "seed: duplicate key (first given at line 1)"),
        ("huge.yaml", "seed: 9223372036854775807\n", "seed: Input should be less than or equal"),
    ],
)
def test_config_file_errors_say_the_same_from_the_console_script(
    name: str, text: str, expected: str, prefect_api: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_text(text)
    before = snapshot()
    result = benchlib("run", str(TIPS), "--config", str(path))
    assert result.returncode == 2, result.stderr
    assert squeezed(f"{path}") in squeezed(result.stderr)
    assert squeezed(expected) in squeezed(result.stderr)
    assert before.changes(snapshot()) == []


def test_metric_names_mlflow_refuses_are_mended_as_they_are_pushed(tmp_path: Path) -> None:
    """A model id such as `openai:m@q4_k_m` used to fail its run's every MLflow update."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow_id = tracking.client(uri).create_run(tracking.experiment_id(uri, "names")).info.run_id
    name = "openai:smollm2@q4_k_m/v1//relevance_mean"
    tracking.push_update(uri, "names", "names-run", mlflow_id, {"metrics": {name: 3.5}})
    metrics = tracking.client(uri).get_run(mlflow_id).data.metrics
    assert metrics == {"openai:smollm2_q4_k_m/v1/_/relevance_mean": 3.5}

    @settings(max_examples=200, deadline=None, database=None)
    @given(st.text(max_size=40))
    def check(name: str) -> None:
        validation._validate_metric_name(tracking.metric_name(name))

    check()
