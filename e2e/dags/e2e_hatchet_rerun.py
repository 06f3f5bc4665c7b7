"""For the end-to-end run only: a task the harness clears through the REST API once it has succeeded.

The cleared task must trigger a second Hatchet run, not re-attach to its first one, and its XCom must then
hold the new run's id and output.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

with DAG(
    dag_id="e2e_hatchet_rerun",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["e2e"],
):
    HatchetRunWorkflowOperator(
        task_id="run_twice",
        workflow_name="demo-etl",
        input={"day": "{{ ds }}"},
        wait_for_completion=True,
        poll_interval=1,
    )
