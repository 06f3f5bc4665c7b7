"""For the end-to-end run only: a deferred task waiting on ``demo-hang``, a run that never ends on its own.

The harness marks the task failed through the REST API while it is deferred; the trigger's ``on_kill`` must
then cancel the Hatchet run.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

with DAG(
    dag_id="e2e_hatchet_cancel",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["e2e"],
):
    HatchetRunWorkflowOperator(
        task_id="wait_on_hang",
        workflow_name="demo-hang",
        input={"day": "{{ ds }}"},
        wait_for_completion=True,
        deferrable=True,
        poll_interval=1,
        timeout=900,
    )
