"""Trigger a Hatchet workflow and wait for it in the triggerer, freeing the worker slot.

The task checks the run once, then defers to ``HatchetWorkflowRunTrigger``. The wait has a deadline carried
by the trigger, so a run that outlives ``timeout`` is cancelled rather than left behind.
"""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.10
    from airflow import DAG

from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

with DAG(
    dag_id="example_hatchet_deferrable",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "hatchet"],
):
    HatchetRunWorkflowOperator(
        task_id="run_deferred",
        workflow_name="demo-etl",
        input={"day": "{{ ds }}"},
        wait_for_completion=True,
        deferrable=True,
        poll_interval=1,
        timeout=600,
    )
