"""Trigger a Hatchet workflow run and move on: the task returns the run id at once.

The run id is the task's ``return_value`` XCom, ready for ``HatchetWorkflowRunSensor`` or any downstream task;
the "Hatchet run" link opens the run in the Hatchet dashboard.
"""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.10
    from airflow import DAG

from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

with DAG(
    dag_id="example_hatchet_trigger_and_forget",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "hatchet"],
):
    HatchetRunWorkflowOperator(
        task_id="trigger",
        workflow_name="demo-etl",
        input={"day": "{{ ds }}", "source": "orders"},
    )
