"""The installed Airflow's version, read without importing Airflow (the test harness configures Airflow first)."""

from __future__ import annotations

import re
import sys
from importlib.metadata import PackageNotFoundError, version

__all__ = ["AIRFLOW_VERSION", "AIRFLOW_V_3_0_PLUS", "AIRFLOW_V_3_3_PLUS"]


def _installed_airflow_version() -> tuple[int, int, int]:
    loaded = sys.modules.get("airflow")
    raw = getattr(loaded, "__version__", None)
    if raw is None:
        try:
            raw = version("apache-airflow")
        except PackageNotFoundError:
            from airflow import __version__ as raw
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", str(raw))
    if match is None:
        raise RuntimeError(f"Cannot parse the Airflow version {raw!r}")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


AIRFLOW_VERSION: tuple[int, int, int] = _installed_airflow_version()
AIRFLOW_V_3_0_PLUS: bool = AIRFLOW_VERSION >= (3, 0, 0)
AIRFLOW_V_3_3_PLUS: bool = AIRFLOW_VERSION >= (3, 3, 0)
