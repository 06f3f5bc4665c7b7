"""Fan out: one Hatchet run per region with dynamic task mapping, each waited on and linked separately."""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.10
    from airflow import DAG

from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

with DAG(
    dag_id="example_hatchet_mapped",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "hatchet"],
):
    HatchetRunWorkflowOperator.partial(
        task_id="per_region",
        workflow_name="demo-etl",
        wait_for_completion=True,
        poll_interval=1,
    ).expand(input=[{"region": "eu"}, {"region": "us"}, {"region": "apac"}])
