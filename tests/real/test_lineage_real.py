"""The lineage and trace metadata the trigger operators stamp, read back from the simulator and the real server."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_hatchet.client import endpoints
from tests.airflow_helpers import xcom_value
from tests.real.conftest import Backend

START = datetime(2025, 1, 1)
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_the_parent_job_ids_and_the_traceparent_round_trip_and_the_run_is_found_by_its_identity(
    backend: Backend, airflow_conn: Any, dag_runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk import DAG
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

    backend.connect(airflow_conn)
    monkeypatch.setenv("AIRFLOW__TRACES__OTEL_ON", "True")
    span = NonRecordingSpan(SpanContext(trace_id=int(TRACEPARENT[3:35], 16), span_id=int(TRACEPARENT[36:52], 16),
                                        is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)))
    with DAG("real_lineage", schedule=None, start_date=START, catchup=False) as dag:
        HatchetRunWorkflowOperator(task_id="t", workflow_name="demo-etl", additional_metadata={"test_tag": backend.tag},
                                   inject_lineage_parent=True, wait_for_completion=True, poll_interval=0.2)
    with trace.use_span(span):
        dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    run_id = xcom_value(dag_run, "t")
    client = backend.client()
    metadata = client.send(endpoints.run_details(run_id)).run.additional_metadata
    assert metadata["traceparent"] == TRACEPARENT
    assert metadata["openlineage_parent_job_name"] == "real_lineage.t"
    assert metadata["openlineage_root_parent_job_name"] == "real_lineage"
    assert uuid.UUID(metadata["openlineage_parent_run_id"]) != uuid.UUID(metadata["openlineage_root_parent_run_id"])
    assert metadata["openlineage_parent_job_namespace"] == metadata["openlineage_root_parent_job_namespace"]
    mine = {"airflow_ti": f"real_lineage|{dag_run.run_id}|t|-1"}
    found = client.iter_rows(
        endpoints.runs(since=datetime.now(timezone.utc) - timedelta(minutes=30), additional_metadata=mine)
    )
    assert [run.id for run in found if run.has_metadata(mine)] == [run_id]
