"""Trigger a Hatchet workflow run, then wait on it with ``HatchetWorkflowRunSensor``.

Two DAGs, one per way of waiting: ``example_hatchet_sensor_poke`` waits in the worker,
``example_hatchet_sensor_deferrable`` in the triggerer. The sensor's ``return_value`` XCom is the run's output
keyed by task name; its "Hatchet run" link opens the run in the dashboard. Run against the simulator with
``python -m airflow_provider_hatchet.testing`` (it registers ``demo-etl``).
"""

from __future__ import annotations

from datetime import datetime

from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator
from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.10
    from airflow import DAG

for mode in ("poke", "deferrable"):
    with DAG(
        dag_id=f"example_hatchet_sensor_{mode}",
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        tags=["example", "hatchet"],
    ) as dag:
        run = HatchetRunWorkflowOperator(
            task_id="trigger", workflow_name="demo-etl", input={"day": "{{ ds }}"}, wait_for_completion=False
        )
        HatchetWorkflowRunSensor(
            task_id="wait",
            run_id=run.output,
            deferrable=mode == "deferrable",
            poke_interval=1,
            timeout=300,
        )
    globals()[dag.dag_id] = dag
