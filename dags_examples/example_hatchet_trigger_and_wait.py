"""Trigger a multi-task Hatchet workflow and wait for it in the worker.

When the run completes, XCom ``output`` holds every task's output keyed by task name (as hatchet-sdk's
``result()``); a failed run fails the task with Hatchet's error message, and a run still going after
``timeout`` seconds is cancelled.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.10
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

with DAG(
    dag_id="example_hatchet_trigger_and_wait",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "hatchet"],
):
    run = HatchetRunWorkflowOperator(
        task_id="run_pipeline",
        workflow_name="demo-multi",
        input={"day": "{{ ds }}", "tables": ["orders", "customers"]},
        wait_for_completion=True,
        poll_interval=1,
        timeout=600,
    )

    @task
    def report(outputs: dict[str, Any]) -> list[str]:
        """Print each Hatchet task's output."""
        lines = [f"{name}: {value}" for name, value in outputs.items()]
        for line in lines:
            print(line)
        return lines

    report(run.output["output"])
