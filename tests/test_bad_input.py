"""Bad input, end to end: every case is refused with a message naming the file (and line) or
field, the value and what was expected."""

import re
from pathlib import Path

import pytest

from benchlib.errors import BenchlibError
from benchlib.hashing import scenario_hash
from benchlib.suite import load_suite
from tests.conftest import TIPS
from tests.support.cli import benchlib
from tests.support.suites import write_suite


def test_suite_hash_fills_in_hashes_keeping_comments_then_catches_an_edit(tmp_path: Path) -> None:
    text = (
        "# fact sheets\nscenarios:\n  - id: a  # first\n    ticker: AAA\n    price: 1.5\n"
        "  - {id: b, ticker: BBB}\n"
    )
    folder = write_suite(tmp_path / "facts", "Price of {{ ticker }}?", text)
    scenarios = folder / "scenarios.yaml"
    result = benchlib("suite", "hash", str(folder), "--write")
    assert result.returncode == 0, result.stderr
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
    assert re.search(r"scenarios\.yaml:4: scenario 'a': sha256 does not match", message)
    assert f"expected {expected_a}" in message and f"actual {actual}" in message
    assert f"benchlib suite hash {folder} --write" in message

    assert benchlib("suite", "hash", str(folder), "--write").returncode == 0
    assert load_suite(folder).scenarios[0].vars["price"] == 15


def test_shipped_suites_carry_matching_hashes() -> None:
    for folder in (TIPS, TIPS.parent / "analysts"):
        result = benchlib("suite", "hash", str(folder))
        assert result.returncode == 0, result.stderr
        assert "MISMATCH" not in result.stdout and "no hash" not in result.stdout
        assert load_suite(folder).scenarios
