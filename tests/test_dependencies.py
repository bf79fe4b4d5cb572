"""What the package imports, it declares: a library that works only because another dependency
happens to pull it in breaks the day that dependency drops it."""

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from tests.conftest import ROOT

PACKAGES = ("benchlib", "flows", "tasks", "deployments")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules() -> dict[str, str]:
    """Top-level third-party module → a file that imports it."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in PACKAGES:
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_imported_distribution_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        _normalise(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0])
        for requirement in project["dependencies"]
    }
    distributions = packages_distributions()
    missing = {
        f"{module} ({', '.join(distributions.get(module, ['?']))}, imported by {where})"
        for module, where in imported_modules().items()
        if not declared.intersection(_normalise(d) for d in distributions.get(module, [module]))
    }
    assert not missing, f"imported but not in [project] dependencies: {sorted(missing)}"
