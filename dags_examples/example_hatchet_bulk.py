"""Trigger a batch of Hatchet runs built from DAG params, in one task, and wait for all of them.

Trigger it with a conf such as ``{"customers": ["acme", "globex"], "day": "2026-01-31"}``. Each customer gets
one run; the task returns the run ids in the same order, and XCom ``output`` holds each run's output. A retry
of the task triggers only what the previous try did not create.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

try:
    from airflow.sdk import DAG, Param, task
except ImportError:  # Airflow 2.10
    from airflow import DAG
    from airflow.decorators import task
    from airflow.models.param import Param

from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowsOperator

with DAG(
    dag_id="example_hatchet_bulk",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={
        "customers": Param(["acme", "globex", "initech", "umbrella"], type="array"),
        "day": Param("2026-01-31", type="string"),
    },
    tags=["example", "hatchet"],
):

    @task
    def build_batch(params: dict[str, Any]) -> list[dict[str, Any]]:
        """One run per customer, in the shape of the TypeScript SDK's ``runWorkflows``."""
        return [
            {
                "workflow_name": "demo-etl",
                "input": {"customer": customer, "day": params["day"]},
                "options": {"additional_metadata": {"customer": customer}},
            }
            for customer in params["customers"]
        ]

    HatchetRunWorkflowsOperator(
        task_id="export_all",
        workflow_runs=build_batch(),
        max_concurrency=16,
        wait_for_completion=True,
        poll_interval=1,
        retries=1,
    )
