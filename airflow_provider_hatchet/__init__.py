"""Apache Airflow provider for Hatchet."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """Return the provider metadata Airflow's providers manager reads through the entry point."""
    return {
        "package-name": "airflow-provider-hatchet",
        "name": "Hatchet",
        "description": "Trigger Hatchet workflow runs, one or thousands at a time, and wait on them.",
        "versions": [__version__],
    }
