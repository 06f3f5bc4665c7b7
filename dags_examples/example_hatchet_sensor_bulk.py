"""Trigger a batch of Hatchet workflow runs, then wait on all of them with ``HatchetWorkflowRunSensor``.

Two DAGs: ``example_hatchet_sensor_bulk_poke`` and ``example_hatchet_sensor_bulk_deferrable``. The runs of one
batch share the ``airflow_ti`` metadata, so each round of the sensor is a single list query, whatever the
batch size; outputs are fetched once per run at the end. ``return_value`` is the list of outputs, in batch
order; ``hatchet_run_urls`` holds the dashboard links.
"""

from __future__ import annotations

from datetime import datetime

from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowsOperator
from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.10
    from airflow import DAG

for mode in ("poke", "deferrable"):
    with DAG(
        dag_id=f"example_hatchet_sensor_bulk_{mode}",
        schedule=None,
        start_date=datetime(2025, 1, 1),
        catchup=False,
        tags=["example", "hatchet"],
    ) as dag:
        batch = HatchetRunWorkflowsOperator(
            task_id="trigger_batch",
            workflow_runs=[
                {"workflow_name": "demo-etl", "input": {"day": "{{ ds }}", "shard": shard}} for shard in range(20)
            ],
            wait_for_completion=False,
        )
        HatchetWorkflowRunSensor(
            task_id="wait_all",
            run_id=batch.output,
            deferrable=mode == "deferrable",
            poke_interval=1,
            timeout=600,
        )
    globals()[dag.dag_id] = dag
