"""Where the simulator sits: no import cycle inside it, and no runtime module loads it.

The cycles are read from the source with ``ast``: every import that runs (module level or inside a function),
none under ``if TYPE_CHECKING:``. ``python -m tests.test_simulator_imports`` prints the cycles it finds.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import airflow_provider_hatchet.testing

TESTING = Path(airflow_provider_hatchet.testing.__file__).parent
PACKAGE = "airflow_provider_hatchet.testing"
pytestmark = pytest.mark.af2


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Yield every node of ``tree`` except what sits under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in (child, *_runtime_nodes(child)))
            continue
        yield node
        yield from _runtime_nodes(node)


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """Return the modules of the simulator one import statement loads.

    :param module: the importing module's name inside the simulator (``calendar``, ``__init__``).
    :param node: the import statement.
    """
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif node.level:
        parts = PACKAGE.split(".")[: len(PACKAGE.split(".")) - node.level + 1]
        base = ".".join(parts + ([node.module] if node.module else []))
        names = [base] + [f"{base}.{alias.name}" for alias in node.names]
    else:
        names = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
    local = {name.removeprefix(f"{PACKAGE}.").split(".")[0] for name in names if name.startswith(f"{PACKAGE}.")}
    return {name for name in local if (TESTING / f"{name}.py").exists()} - {module}


def import_graph() -> dict[str, set[str]]:
    """Return each simulator module's runtime imports of other simulator modules."""
    graph: dict[str, set[str]] = {}
    for path in sorted(TESTING.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        graph[path.stem] = {
            target
            for node in _runtime_nodes(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for target in _imported(path.stem, node)
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return one shortest cycle through each module that lies on any, without repeats.

    :param graph: module → the modules it imports.
    """
    found: dict[frozenset[str], list[str]] = {}
    for start in sorted(graph):
        paths = {start: [start]}
        frontier = [start]
        while frontier and start not in {t for m in frontier for t in graph[m]}:
            nxt = []
            for module in frontier:
                for target in sorted(graph[module] - paths.keys()):
                    paths[target] = [*paths[module], target]
                    nxt.append(target)
            frontier = nxt
        closing = sorted(m for m in frontier if start in graph[m])
        if closing:
            cycle = paths[closing[0]]
            found.setdefault(frozenset(cycle), [*cycle, start])
    return list(found.values())


def test_the_simulator_has_no_runtime_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_sees_a_function_local_import_and_skips_type_checking() -> None:
    source = "if TYPE_CHECKING:\n    from .b import X\ndef f():\n    from .c import Y\n"
    tree = ast.parse(source)
    imports = [n for n in _runtime_nodes(tree) if isinstance(n, ast.ImportFrom)]
    assert [n.module for n in imports] == ["c"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


RUNTIME_ENTRY_POINTS = [
    "airflow_provider_hatchet",
    "airflow_provider_hatchet.hooks.hatchet",
    "airflow_provider_hatchet.operators.hatchet",
    "airflow_provider_hatchet.sensors.hatchet",
    "airflow_provider_hatchet.triggers.hatchet",
]


def test_no_runtime_module_loads_the_simulator_or_its_servers() -> None:
    code = (f"import sys\nfor name in {RUNTIME_ENTRY_POINTS!r}: __import__(name)\n"
            f"print(sorted(m for m in sys.modules if m.startswith('{PACKAGE}') or m.split('.')[0] == 'uvicorn'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"  # Airflow may log to stdout first


if __name__ == "__main__":
    for cycle in cycles(import_graph()):
        print(" → ".join(cycle))
