"""Airflow discovers the provider through its ``apache_airflow_provider`` entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import airflow_provider_hatchet

pytestmark = pytest.mark.af2


def test_airflow_providers_list_shows_the_package() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
        stdin=subprocess.DEVNULL,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    tables = [line for line in result.stdout.splitlines() if line.startswith("[{")]
    assert tables, result.stdout[-3000:]
    providers = {row["package_name"]: row for row in json.loads(tables[0])}
    assert "airflow-provider-hatchet" in providers, sorted(providers)
    assert providers["airflow-provider-hatchet"]["version"] == airflow_provider_hatchet.__version__
