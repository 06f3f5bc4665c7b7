"""The two invariants of every operator, checked against the tests that prove them.

- Every operator that creates something in Hatchet (a subclass of ``HatchetTriggerOperatorBase``) is idempotent
  across tries of one task instance: some test marked ``proves_retry("<class name>")`` shows a retry re-attaching.
- No destructive selection reaches beyond what the task names: every operator that acts on existing runs (a
  subclass of ``HatchetRunsActionOperator``) has a test marked ``proves_scope("<class name>")``.

An operator exported from ``operators.hatchet`` that is neither kind fails here until it is classified, so a new
operator cannot slip past both rules.
"""

from __future__ import annotations

import ast
import inspect
from collections import defaultdict
from pathlib import Path

from airflow_provider_hatchet.operators import hatchet as exported
from airflow_provider_hatchet.operators._base import HatchetTriggerOperatorBase
from airflow_provider_hatchet.operators.run_lifecycle import HatchetRunsActionOperator

TESTS = Path(__file__).resolve().parent
MARKS = ("proves_retry", "proves_scope")


def operators() -> dict[str, type]:
    return {name: getattr(exported, name) for name in exported.__all__ if inspect.isclass(getattr(exported, name))}


def _mark(node: ast.expr) -> tuple[str, list[str]] | None:
    """``pytest.mark.proves_retry("A", "B")`` -> ("proves_retry", ["A", "B"])."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute) or node.func.attr not in MARKS:
        return None
    return node.func.attr, [arg.value for arg in node.args if isinstance(arg, ast.Constant)]


def marked_tests() -> dict[str, dict[str, list[str]]]:
    """mark -> operator class name -> the test functions (``file::name``) that carry it, read from the sources."""
    found: dict[str, dict[str, list[str]]] = {mark: defaultdict(list) for mark in MARKS}
    for path in sorted(TESTS.rglob("test_*.py")):
        tree = ast.parse(path.read_text())
        module_marks = [
            mark for node in tree.body if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)
            for item in (node.value.elts if isinstance(node.value, ast.List) else [node.value])
            if (mark := _mark(item)) is not None
        ]
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                for kind, names in module_marks + [m for d in node.decorator_list if (m := _mark(d))]:
                    for name in names:
                        found[kind][name].append(f"{path.relative_to(TESTS)}::{node.name}")
    return found


def test_every_exported_operator_either_creates_or_acts_on_existing_runs() -> None:
    unclassified = [name for name, cls in operators().items()
                    if not issubclass(cls, HatchetTriggerOperatorBase | HatchetRunsActionOperator)]
    assert unclassified == [], "classify these operators and prove their invariant"


def test_every_creating_operator_has_a_retry_test() -> None:
    proofs = marked_tests()["proves_retry"]
    creating = [name for name, cls in operators().items() if issubclass(cls, HatchetTriggerOperatorBase)]
    assert len(creating) >= 4
    assert [name for name in creating if not proofs.get(name)] == [], (
        "mark a test that retries the operator with pytest.mark.proves_retry('<class name>')")


def test_every_operator_acting_on_existing_runs_has_a_scoping_test() -> None:
    proofs = marked_tests()["proves_scope"]
    acting = [name for name, cls in operators().items() if issubclass(cls, HatchetRunsActionOperator)]
    assert len(acting) >= 2
    assert [name for name in acting if not proofs.get(name)] == [], (
        "mark a test that refuses an unscoped selection with pytest.mark.proves_scope('<class name>')")


def test_the_marks_name_only_exported_operators() -> None:
    names = set(operators())
    stray = {mark: sorted(set(found) - names) for mark, found in marked_tests().items() if set(found) - names}
    assert stray == {}
