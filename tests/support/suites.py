"""Small suites written from scratch, for tests that need content of their own."""

from pathlib import Path

from tests.conftest import TIPS


def write_suite(folder: Path, user: str, scenarios: str) -> Path:
    """A one-version suite (`versions/plain.yaml` with `user`), the tips rubric, any object."""
    (folder / "versions").mkdir(parents=True)
    (folder / "suite.yaml").write_text(f"name: {folder.name}\nscorers: [format_ok]\n")
    (folder / "versions" / "plain.yaml").write_text(f"user: {user!r}\n")
    (folder / "scenarios.yaml").write_text(scenarios)
    (folder / "schema.json").write_text('{"type": "object"}')
    (folder / "rubric.yaml").write_text((TIPS / "rubric.yaml").read_text())
    return folder
