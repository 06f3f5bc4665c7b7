"""Build a Hatchet run's input and metadata from DAG params and Jinja.

Trigger it with a conf such as ``{"customer": "acme", "limit": 50}``. The metadata shows in the Hatchet
dashboard, where it can be filtered on, beside the Airflow identity the operator adds to every run.
"""

from __future__ import annotations

from datetime import datetime

try:
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2.10
    from airflow import DAG
    from airflow.models.param import Param

from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

with DAG(
    dag_id="example_hatchet_params",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={"customer": Param("acme", type="string"), "limit": Param(100, type="integer")},
    render_template_as_native_obj=True,
    tags=["example", "hatchet"],
):
    HatchetRunWorkflowOperator(
        task_id="export_customer",
        workflow_name="demo-etl",
        input={"customer": "{{ params.customer }}", "limit": "{{ params.limit }}", "day": "{{ ds }}"},
        additional_metadata={"customer": "{{ params.customer }}", "source": "airflow"},
        priority=2,
        wait_for_completion=True,
        poll_interval=1,
    )
