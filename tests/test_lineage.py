"""OpenLineage facets and trace context of the trigger operators, on real Airflow against the simulator.

The OpenLineage events are the provider's own: its listener, with a file transport, runs inside ``dag.test()``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_helpers import task_state, xcom_value

START = datetime(2025, 1, 1)
LINEAGE_KEYS = {
    "openlineage_parent_job_namespace", "openlineage_parent_job_name", "openlineage_parent_run_id",
    "openlineage_root_parent_job_namespace", "openlineage_root_parent_job_name", "openlineage_root_parent_run_id",
}


def make_dag(dag_id: str, **kwargs: Any) -> Any:
    from airflow.sdk import DAG

    return DAG(dag_id, schedule=None, start_date=START, catchup=False, **kwargs)


def single(**kwargs: Any) -> Any:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

    return HatchetRunWorkflowOperator(poll_interval=0.1, **kwargs)


def bulk(**kwargs: Any) -> Any:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowsOperator

    return HatchetRunWorkflowsOperator(poll_interval=0.1, transport="rest", **kwargs)


def files(*paths: str) -> list[Any]:
    from airflow.sdk import Asset

    return [Asset(f"file://{path}") for path in paths]


def _clear_openlineage_settings() -> None:
    from airflow.providers.openlineage import conf

    for value in vars(conf).values():
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()


@pytest.fixture
def openlineage_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The provider's listener, with its events written to a file; yields ``events() -> list[dict]``."""
    from airflow.listeners.listener import get_listener_manager as get_core_listener_manager
    from airflow.providers.openlineage.plugins.listener import OpenLineageListener
    from airflow.sdk.listener import get_listener_manager

    path = tmp_path / "openlineage.jsonl"
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT",
                       json.dumps({"type": "file", "log_file_path": str(path), "append": True}))
    # Emit in a thread of the task's process rather than a forked child of the test process.
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD", "True")
    _clear_openlineage_settings()
    managers = [get_listener_manager(), get_core_listener_manager()]
    # The provider's plugin registers its listener only if OpenLineage was on when the plugins were first loaded.
    if not _openlineage_listeners(managers[0]):
        managers[0].add_listener(OpenLineageListener())

    def events() -> list[dict[str, Any]]:
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines if line.strip()]

    try:
        yield events
    finally:
        for manager in managers:
            for listener in _openlineage_listeners(manager):
                manager.pm.unregister(listener)
        monkeypatch.undo()
        _clear_openlineage_settings()


def _openlineage_listeners(manager: Any) -> list[Any]:
    from airflow.providers.openlineage.plugins.listener import OpenLineageListener

    return [plugin for plugin in manager.pm.get_plugins() if isinstance(plugin, OpenLineageListener)]


def completed_task_event(events: list[dict[str, Any]], task_id: str) -> dict[str, Any]:
    [event] = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"].endswith(f".{task_id}")]
    return event


@pytest.mark.parametrize("deferrable", [False, True], ids=["in-worker", "deferred"])
def test_the_task_event_names_the_run_its_url_and_the_inlets_and_outlets(
    hatchet: Any, hatchet_server: Any, dag_runner: Any, openlineage_events: Any, deferrable: bool
) -> None:
    with make_dag(f"ol_single_{int(deferrable)}") as dag:
        single(task_id="t", workflow_name="demo-etl", wait_for_completion=True, deferrable=deferrable,
               inlets=files("/data/orders.csv"), outlets=files("/data/report.csv", "/data/summary.csv"))
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    [run] = hatchet.runs
    event = completed_task_event(openlineage_events(), "t")
    assert event["run"]["facets"]["hatchet_runs"]["runCount"] == 1
    assert event["run"]["facets"]["hatchet_runs"]["runs"] == [
        {"runId": run.id, "url": xcom_value(dag_run, "t", "hatchet_run_url")}
    ]
    assert xcom_value(dag_run, "t", "hatchet_run_url") == (
        f"{hatchet_server.url}/tenants/{hatchet.tenant_id}/runs/{run.id}"
    )
    assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [("file", "/data/orders.csv")]
    assert [(d["namespace"], d["name"]) for d in event["outputs"]] == [
        ("file", "/data/report.csv"), ("file", "/data/summary.csv")
    ]


def test_the_operators_facets_carry_the_hatchet_job_type_and_every_run_of_a_batch(
    hatchet: Any, hatchet_server: Any, dag_runner: Any, openlineage_events: Any
) -> None:
    with make_dag("ol_bulk") as dag:
        task = bulk(task_id="t", workflow_runs=[{"workflow_name": "demo-etl", "input": {"n": n}} for n in range(3)],
                    inlets=files("/data/in.csv"))
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    run_ids = xcom_value(dag_run, "t")
    assert sorted(run_ids) == sorted(run.id for run in hatchet.runs)
    event = completed_task_event(openlineage_events(), "t")
    assert event["run"]["facets"]["hatchet_runs"]["runs"] == [
        {"runId": run_id, "url": f"{hatchet_server.url}/tenants/{hatchet.tenant_id}/runs/{run_id}"}
        for run_id in run_ids
    ]
    assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [("file", "/data/in.csv")]
    # The listener reports the Airflow task's own job type; the operator's lineage carries Hatchet's.
    task.run_ids = run_ids
    lineage = task.get_openlineage_facets_on_complete(dag_run.get_task_instance("t"))
    job_type = lineage.job_facets["jobType"]
    assert (job_type.integration, job_type.jobType, job_type.processingType) == ("HATCHET", "WORKFLOW", "BATCH")
    assert lineage.run_facets["hatchet_runs"].runCount == 3


def test_inject_lineage_parent_stamps_the_ids_the_provider_emits(
    hatchet: Any, dag_runner: Any, openlineage_events: Any
) -> None:
    with make_dag("ol_parent") as dag:
        single(task_id="t", workflow_name="demo-etl", inject_lineage_parent=True,
               additional_metadata={"customer": "acme"})
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    [run] = hatchet.runs
    metadata = run.additional_metadata
    event = completed_task_event(openlineage_events(), "t")
    parent = event["run"]["facets"]["parent"]
    assert metadata["openlineage_parent_job_namespace"] == event["job"]["namespace"]
    assert metadata["openlineage_parent_job_name"] == event["job"]["name"] == "ol_parent.t"
    assert metadata["openlineage_parent_run_id"] == event["run"]["runId"]
    assert metadata["openlineage_root_parent_job_namespace"] == parent["root"]["job"]["namespace"]
    assert metadata["openlineage_root_parent_job_name"] == parent["root"]["job"]["name"] == "ol_parent"
    assert metadata["openlineage_root_parent_run_id"] == parent["root"]["run"]["runId"]
    assert metadata["customer"] == "acme"
    assert metadata["airflow_ti"] == f"ol_parent|{dag_run.run_id}|t|-1"
    # Tracing is off: the request carries no traceparent (the server stamps one of its own).
    assert "traceparent" not in run.body["additionalMetadata"]


def test_with_tracing_on_the_run_carries_the_tasks_traceparent(
    hatchet: Any, dag_runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    monkeypatch.setenv("AIRFLOW__TRACES__OTEL_ON", "True")
    # Stands in for the span the task runner runs a task in (dag.test() runs the task without one).
    task_span = NonRecordingSpan(SpanContext(trace_id=0x0AF7651916CD43DD8448EB211C80319C,
                                             span_id=0xB7AD6B7169203331, is_remote=False,
                                             trace_flags=TraceFlags(TraceFlags.SAMPLED)))
    with make_dag("trace_on") as dag:
        bulk(task_id="t", workflow_runs=[{"workflow_name": "demo-etl"}, {"workflow_name": "demo-etl"}])
    with trace.use_span(task_span):
        dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    expected = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert [run.body["additionalMetadata"]["traceparent"] for run in hatchet.runs] == [expected, expected]
    # The simulator, like Hatchet, keeps a valid traceparent it was sent.
    assert [run.additional_metadata["traceparent"] for run in hatchet.runs] == [expected, expected]
    assert not LINEAGE_KEYS & set(hatchet.runs[0].additional_metadata)


def test_with_tracing_off_no_traceparent_is_sent_even_inside_a_span(hatchet: Any, dag_runner: Any) -> None:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    task_span = NonRecordingSpan(SpanContext(trace_id=1, span_id=2, is_remote=False,
                                             trace_flags=TraceFlags(TraceFlags.SAMPLED)))
    with make_dag("trace_off") as dag:
        single(task_id="t", workflow_name="demo-etl")
    with trace.use_span(task_span):
        dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    [run] = hatchet.runs
    assert "traceparent" not in run.body["additionalMetadata"]


def test_a_retry_re_attaches_to_the_run_stamped_by_the_try_that_created_it(
    hatchet: Any, dag_runner: Any, monkeypatch: pytest.MonkeyPatch, logs: Any
) -> None:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext

    monkeypatch.setenv("AIRFLOW__TRACES__OTEL_ON", "True")
    hatchet.visibility_delay = 2.0  # the retry looks before the first run is listed
    hatchet.fail_next("trigger", 1, drop=True, after_create=True)
    with make_dag("ol_reattach") as dag:
        single(task_id="t", workflow_name="demo-etl", inject_lineage_parent=True, wait_for_completion=True,
               retries=1, retry_delay=timedelta(0))
    with trace.use_span(NonRecordingSpan(SpanContext(trace_id=3, span_id=4, is_remote=False))):
        dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    [run] = hatchet.runs
    assert xcom_value(dag_run, "t") == run.id
    assert f"re-attaching to earlier run {run.id}" in logs()
    assert set(run.additional_metadata) >= LINEAGE_KEYS
    assert run.additional_metadata["traceparent"] == f"00-{3:032x}-{4:016x}-00"
    assert run.additional_metadata["airflow_try_number"] == "1"


def test_a_bulk_retry_resumes_its_batch_with_the_stamps_on(
    hatchet: Any, dag_runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext

    monkeypatch.setenv("AIRFLOW__TRACES__OTEL_ON", "True")
    hatchet.reject_trigger_if(
        lambda body: body.get("additionalMetadata", {}).get("airflow_batch_index") == "1"
        and body["additionalMetadata"].get("airflow_try_number") == "1",
        status=400, message="quota exceeded")
    with make_dag("ol_bulk_retry") as dag:
        bulk(task_id="t", inject_lineage_parent=True, retries=1, retry_delay=timedelta(0),
             workflow_runs=[{"workflow_name": "demo-etl", "input": {"i": i}} for i in range(3)])
    with trace.use_span(NonRecordingSpan(SpanContext(trace_id=5, span_id=6, is_remote=False))):
        dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    by_index = {int(r.additional_metadata["airflow_batch_index"]): r for r in hatchet.runs}
    assert sorted(by_index) == [0, 1, 2] and len(hatchet.runs) == 3
    assert [by_index[i].additional_metadata["airflow_try_number"] for i in range(3)] == ["1", "2", "1"]
    assert xcom_value(dag_run, "t") == [by_index[i].id for i in range(3)]
    # Each run names the try that created it as its OpenLineage parent.
    parents = [by_index[i].additional_metadata["openlineage_parent_run_id"] for i in range(3)]
    assert parents[0] == parents[2] != parents[1]


def test_a_non_boolean_inject_lineage_parent_is_rejected_when_the_dag_is_defined() -> None:
    with pytest.raises(ValueError, match="inject_lineage_parent must be True or False, got 'yes'"):
        single(task_id="t", workflow_name="demo-etl", inject_lineage_parent="yes")
