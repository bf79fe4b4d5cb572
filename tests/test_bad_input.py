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
from pydantic import BaseModel, ConfigDict, Field

from benchlib import fixtures, judging, runs
from benchlib.cli import main
from benchlib.db import session
from benchlib.errors import BenchlibError
from benchlib.hashing import scenario_hash
from benchlib.integrity import hashed_entries
from benchlib.records import Fixture
from benchlib.suite import load_suite, scenarios_file
from benchlib.yamldoc import read_yaml
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
    assert after.mlflow["runs"] == before.mlflow.get("runs", 0) + 1  # the run's MLflow run
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
