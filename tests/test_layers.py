"""The client layer stays free of Airflow: no imports, and no Airflow metadata names (they are passed to it)."""

from __future__ import annotations

import re
from pathlib import Path

import airflow_provider_hatchet.client

CLIENT = Path(airflow_provider_hatchet.client.__file__).parent
# Airflow metadata names (``airflow_ti``, ...) and Airflow imports; the package's own name does not count.
AIRFLOW_WORD = re.compile(r"\bairflow_(?!provider_hatchet\b)\w+|^\s*(from|import) airflow\b")


def test_the_client_names_nothing_of_airflow() -> None:
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(CLIENT.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if AIRFLOW_WORD.search(line)
    ]
    assert found == []
