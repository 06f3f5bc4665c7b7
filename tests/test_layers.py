"""The import rules, as import-linter contracts (``[tool.importlinter]`` in pyproject.toml), and that the client
names nothing of Airflow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import airflow_provider_hatchet.client

CLIENT = Path(airflow_provider_hatchet.client.__file__).parent
ROOT = CLIENT.parent.parent
# Airflow metadata names (``airflow_ti``, ...) and Airflow imports; the package's own name does not count.
AIRFLOW_WORD = re.compile(r"\bairflow_(?!provider_hatchet\b)\w+|^\s*(from|import) airflow\b")


def test_the_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_client_names_nothing_of_airflow() -> None:
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(CLIENT.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if AIRFLOW_WORD.search(line)
    ]
    assert found == []


PACKAGE = CLIENT.parent
# What only the hook may do: build clients, and hand out the sync one.
HOOK_ONLY = re.compile(r"\bhook\.client\b|\b(Async)?HatchetClient\(")


def test_only_the_hook_builds_clients_and_no_task_reaches_through_it() -> None:
    found = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for layer in ("operators", "sensors", "triggers", "links")
        for path in sorted((PACKAGE / layer).glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if HOOK_ONLY.search(line)
    ]
    assert found == []


def test_the_waiter_is_handed_its_client() -> None:
    assert not HOOK_ONLY.search((CLIENT / "waiter.py").read_text())
