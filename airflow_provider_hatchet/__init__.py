"""Apache Airflow provider for Hatchet."""

from __future__ import annotations

from typing import Any

__version__ = "1.0.0"


def get_provider_info() -> dict[str, Any]:
    """Return the provider metadata Airflow's providers manager reads through the entry point."""
    from airflow_provider_hatchet.connection_ui import connection_type

    return {
        "package-name": "airflow-provider-hatchet",
        "name": "Hatchet",
        "description": "Trigger Hatchet workflow runs, one or thousands at a time, and wait on them.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": "Hatchet", "external-doc-url": "https://docs.hatchet.run", "tags": ["software"]}
        ],
        "hooks": [{"integration-name": "Hatchet", "python-modules": ["airflow_provider_hatchet.hooks.hatchet"]}],
        "operators": [
            {"integration-name": "Hatchet", "python-modules": ["airflow_provider_hatchet.operators.hatchet"]}
        ],
        "sensors": [{"integration-name": "Hatchet", "python-modules": ["airflow_provider_hatchet.sensors.hatchet"]}],
        "triggers": [
            {"integration-name": "Hatchet", "python-modules": ["airflow_provider_hatchet.triggers.hatchet"]}
        ],
        "connection-types": [connection_type()],
        "extra-links": ["airflow_provider_hatchet.links.hatchet.HatchetRunLink"],
    }
