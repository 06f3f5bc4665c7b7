"""Airflow 2.10: with tracing on, a run carries the traceparent of the span Airflow records for the task instance.

Airflow 2.10 runs a task in no OpenTelemetry span of its own; the scheduler records the task instance's span
afterwards, with ids derived from the DAG run and the task instance (``airflow.traces.utils``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS

pytestmark = [
    pytest.mark.af2,
    pytest.mark.skipif(AIRFLOW_V_3_0_PLUS, reason="Airflow 3 takes the task runner's span (tests/test_lineage.py)"),
]


@pytest.mark.parametrize("otel_on", [True, False], ids=["tracing-on", "tracing-off"])
def test_the_run_carries_the_task_instance_span_only_with_tracing_on(
    hatchet: Any, dag_runner: Any, monkeypatch: pytest.MonkeyPatch, otel_on: bool
) -> None:
    from airflow.models.dag import DAG
    from airflow.traces.utils import gen_span_id_from_ti_key, gen_trace_id

    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowsOperator

    monkeypatch.setenv("AIRFLOW__TRACES__OTEL_ON", str(otel_on))
    with DAG(f"af2_trace_{int(otel_on)}", schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
        HatchetRunWorkflowsOperator(task_id="t", workflow_runs=[{"workflow_name": "demo-etl"}], transport="rest")
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    [run] = hatchet.runs
    sent = run.body["additionalMetadata"]
    if not otel_on:
        assert "traceparent" not in sent
        return
    ti = dag_run.get_task_instance("t")
    assert sent["traceparent"] == f"00-{gen_trace_id(dag_run)}-{gen_span_id_from_ti_key(ti.key)}-01"
    assert run.additional_metadata["traceparent"] == sent["traceparent"]
