"""The layout is the architecture: stage sub-packages, no import cycles, and each heavy framework
imported only where its stage lives (read from the source, so it holds for every module)."""

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "benchlib"

# Where each framework may be imported (module-level or inside a function alike).
ALLOWED = {
    "prefect": ("benchlib.pipeline", "benchlib.cli", "benchlib.api"),
    "mlflow": ("benchlib.tracking",),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """Names imported by a module; with top_level_only, only what runs at import time (imports
    inside functions are deferred on purpose and cannot form a cycle at import)."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if top_level_only and isinstance(node, ast.If | ast.Try):
            if not (isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)):
                nodes.extend(node.body)  # runs at import; `if TYPE_CHECKING:` does not
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {
        name: {dep for dep in _imports(path, top_level_only=True) if dep in modules and dep != name}
        for name, path in modules.items()
    }
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


@pytest.mark.parametrize("framework", sorted(ALLOWED))
def test_framework_imports_stay_in_their_stage(framework: str) -> None:
    offenders = sorted(
        name
        for name, path in _modules().items()
        if not name.startswith(ALLOWED[framework])
        and any(
            dep == framework or dep.startswith(framework + ".")
            for dep in _imports(path, top_level_only=False)
        )
    )
    assert not offenders, f"{framework} imported outside {ALLOWED[framework]}: {offenders}"


def test_no_flat_modules_beyond_the_shared_ones() -> None:
    """A new module goes into the stage it belongs to, not beside the packages."""
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    shared = ["bounds.py", "config.py", "errors.py", "files.py", "settings.py"]
    assert flat == ["__init__.py", "__main__.py", *shared], flat
