"""The public API: its listing is checked in, so a change to it is deliberate; Airflow's own operator checks.

Regenerate the listing after a deliberate change with
``UPDATE_PUBLIC_API=1 python -m pytest -q -p no:cacheprovider tests/test_public_api.py``.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import inspect
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

import airflow_provider_hatchet

PACKAGE = Path(airflow_provider_hatchet.__file__).parent
LISTING = Path(__file__).with_name("public_api.txt")
PUBLIC_MODULES = (
    "airflow_provider_hatchet.operators.hatchet",
    "airflow_provider_hatchet.sensors.hatchet",
    "airflow_provider_hatchet.triggers.hatchet",
    "airflow_provider_hatchet.hooks.hatchet",
    "airflow_provider_hatchet.exceptions",
    "airflow_provider_hatchet.client",
    "airflow_provider_hatchet.testing",
)
REGENERATE = "UPDATE_PUBLIC_API=1 python -m pytest -q -p no:cacheprovider tests/test_public_api.py"
# What apache/airflow's scripts/ci/prek/check_deferrable_default.py requires, compared as ast.unparse writes it.
DEFERRABLE_DEFAULT = "conf.getboolean('operators', 'default_deferrable', fallback=False)"


def public_names(module: Any) -> list[str]:
    """A module's ``__all__``, else the public classes and functions defined in it.

    :param module: the module.
    """
    if hasattr(module, "__all__"):
        return sorted(module.__all__)
    return sorted(name for name, value in vars(module).items() if not name.startswith("_")
                  and (inspect.isclass(value) or inspect.isfunction(value))
                  and value.__module__ == module.__name__)


def _stable(text: str) -> str:
    """``text`` without what changes from one process to the next: a function's address, a set's order."""
    text = re.sub(r" at 0x[0-9a-f]+>", ">", text)
    return re.sub(r"frozenset\(\{([^{}]*)\}\)", lambda m: f"frozenset({{{', '.join(sorted(m[1].split(', ')))}}})",
                  text)


def _signature(value: Any) -> str:
    try:
        return _stable(str(inspect.signature(value)))
    except (TypeError, ValueError):
        return "(...)"


def _describe(name: str, value: Any) -> list[str]:
    if not inspect.isclass(value):
        return [f"{name}{_signature(value)}" if callable(value) else f"{name} = {_stable(repr(value))}"]
    bases = ", ".join(base.__name__ for base in value.__bases__)
    lines = [f"class {name}({bases})", f"    __init__{_signature(value.__init__)}"]
    # The arguments a subclass passes on through **kwargs are public too.
    lines += [f"    {base.__name__}.__init__{_signature(vars(base)['__init__'])}" for base in value.__mro__[1:]
              if base.__module__.startswith("airflow_provider_hatchet") and "__init__" in vars(base)]
    if "template_fields" in vars(value) or hasattr(value, "template_fields"):
        lines.append(f"    template_fields = {tuple(value.template_fields)!r}")
    for attr, member in sorted(inspect.getmembers(value)):
        if attr.startswith("_") or not (inspect.isfunction(member) or inspect.ismethod(member)
                                        or isinstance(member, property | cached_property)):
            continue
        owner = next((klass for klass in value.__mro__ if attr in vars(klass)), None)
        if owner is None or not owner.__module__.startswith("airflow_provider_hatchet"):
            continue  # Airflow's and pydantic's own methods change with their releases, not ours
        lines.append(f"    .{attr} (property)" if isinstance(member, property | cached_property)
                     else f"    .{attr}{_signature(member)}")
    return lines


def listing() -> str:
    """The public names of every public module, with the signatures of their functions, classes and methods."""
    out: list[str] = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        out.append(f"== {module_name}")
        for name in public_names(module):
            out.extend(_describe(name, getattr(module, name)))
        out.append("")
    return "\n".join(out)


def test_the_public_api_is_the_checked_in_listing() -> None:
    current = listing()
    if os.environ.get("UPDATE_PUBLIC_API"):
        LISTING.write_text(current)
    recorded = LISTING.read_text() if LISTING.exists() else ""
    diff = "\n".join(difflib.unified_diff(recorded.splitlines(), current.splitlines(), str(LISTING), "now",
                                          lineterm=""))
    assert not diff, f"The public API changed; if that is deliberate, regenerate the listing:\n  {REGENERATE}\n{diff}"


def _public_task_classes() -> list[type]:
    from airflow_provider_hatchet.operators import hatchet as operators
    from airflow_provider_hatchet.sensors import hatchet as sensors

    return [getattr(operators, name) for name in operators.__all__] + [
        getattr(sensors, name) for name in public_names(sensors) if name.endswith("Sensor")]


@pytest.mark.parametrize("task_class", _public_task_classes(), ids=lambda c: c.__name__)
def test_every_operator_and_sensor_templates_its_connection(task_class: type) -> None:
    assert any("hatchet_conn_id" in inspect.signature(base.__init__).parameters for base in task_class.__mro__)
    assert "hatchet_conn_id" in task_class.template_fields  # type: ignore[attr-defined]


def test_an_argument_templated_on_one_operator_is_templated_on_every_operator_that_takes_it() -> None:
    classes = _public_task_classes()
    templated = {field for task_class in classes for field in task_class.template_fields}  # type: ignore[attr-defined]
    untemplated = {
        task_class.__name__: sorted(templated.intersection(inspect.signature(task_class.__init__).parameters)
                                    - set(task_class.template_fields))  # type: ignore[attr-defined]
        for task_class in classes
    }
    assert {name: fields for name, fields in untemplated.items() if fields} == {}


def _deferrable_defaults(path: Path) -> list[tuple[int, str | None]]:
    """Each ``__init__`` parameter named ``deferrable`` in a module: its line and its default as written."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.name != "__init__":
            continue
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
        for arg, default in [*zip(positional, defaults, strict=True), *zip(args.kwonlyargs, args.kw_defaults,
                                                                            strict=True)]:
            if arg.arg == "deferrable":
                found.append((arg.lineno, None if default is None else ast.unparse(default)))
    return found


def test_deferrable_defaults_to_airflows_setting_written_as_airflows_check_wants() -> None:
    modules = sorted([*PACKAGE.glob("operators/**/*.py"), *PACKAGE.glob("sensors/**/*.py")])
    defaults = {f"{path.relative_to(PACKAGE)}:{line}": default for path in modules
                for line, default in _deferrable_defaults(path)}
    wrong = {where: default for where, default in defaults.items() if default != DEFERRABLE_DEFAULT}

    assert len(defaults) >= 2  # the trigger operators' base and the sensor
    assert wrong == {}, f"deferrable must default to {DEFERRABLE_DEFAULT}"


def test_the_push_operator_waits_with_the_shared_wait_for_completion() -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetPushEventOperator

    assert HatchetPushEventOperator(task_id="push", key="k", wait_for_completion=True).wait_for_completion is True
    assert HatchetPushEventOperator(task_id="push", key="k").wait_for_completion is False


def test_no_public_argument_uses_a_retired_spelling() -> None:
    retired = {"reuse_existing_runs": "reuse_existing_run", "wait_for_runs": "wait_for_completion",
               "token": "schedule_marker (a trigger's marker; the API token is the connection's password)"}
    # Only the tasks' and triggers' modules: the client's and the hook's ``token`` is the API token.
    tasks = listing().split("== airflow_provider_hatchet.hooks.hatchet")[0]
    used = {old: new for old, new in retired.items() if f"({old}:" in tasks or f" {old}:" in tasks}
    assert used == {}, "spelled the old way (old -> new)"
