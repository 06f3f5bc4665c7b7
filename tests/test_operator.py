"""HatchetRunWorkflowOperator on real Airflow (``dag.test()``) against the simulator over loopback HTTP."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_3_PLUS, TaskDeferred
from airflow_provider_hatchet.client import HatchetValidationError
from tests.airflow_helpers import task_state, xcom_value

START = datetime(2025, 1, 1)


def make_dag(dag_id: str, **kwargs: Any) -> Any:
    from airflow.sdk import DAG

    return DAG(dag_id, schedule=None, start_date=START, catchup=False, **kwargs)


def operator(**kwargs: Any) -> Any:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

    kwargs.setdefault("poll_interval", 0.1)
    return HatchetRunWorkflowOperator(**kwargs)


def trigger_requests(sim: Any) -> list[Any]:
    return [r for r in sim.requests if r.path.endswith("/workflow-runs/trigger")]


def test_the_request_carries_rendered_input_namespace_metadata_and_priority(
    hatchet: Any, hatchet_server: Any, airflow_conn: Any, dag_runner: Any
) -> None:
    hatchet.register_workflow("staging_Export", "succeed")
    airflow_conn("hatchet_default", conn_type="hatchet", host=hatchet_server.url, password=hatchet.token,
                 extra={"namespace": "Staging"})
    with make_dag("op_rendered", params={"customer": "acme", "limit": 5}) as dag:
        operator(task_id="t", workflow_name="Export",
                 input={"customer": "{{ params.customer }}", "day": "{{ ds }}", "nested": {"limit": 5}},
                 additional_metadata={"customer": "{{ params.customer }}", "attempt": 1, "dry": False},
                 priority=3)
    dag_run = dag_runner(dag, run_conf={"customer": "globex"})

    assert dag_run.state == "success"
    [run] = hatchet.runs
    body = run.body
    assert body["workflowName"] == "staging_Export"
    assert body["input"] == {"customer": "globex", "day": dag_run.logical_date.strftime("%Y-%m-%d"),
                             "nested": {"limit": 5}}
    assert body["priority"] == 3
    assert body["additionalMetadata"] == {
        "customer": "globex", "attempt": "1", "dry": "false",
        "airflow_dag_id": "op_rendered", "airflow_run_id": dag_run.run_id, "airflow_task_id": "t",
        "airflow_map_index": "-1", "airflow_try_number": "1",
        "airflow_ti": f"op_rendered|{dag_run.run_id}|t|-1",
    }
    assert xcom_value(dag_run, "t") == run.id
    assert xcom_value(dag_run, "t", "hatchet_run_id") == run.id
    assert xcom_value(dag_run, "t", "hatchet_run_url") == (
        f"{hatchet_server.url}/tenants/{hatchet.tenant_id}/runs/{run.id}"
    )


def test_an_unknown_workflow_fails_before_triggering_and_names_close_ones(
    hatchet: Any, dag_runner: Any, logs: Any
) -> None:
    hatchet.register_workflow("export-orders", "succeed")
    with make_dag("op_unknown") as dag:
        operator(task_id="t", workflow_name="export-order")
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    assert trigger_requests(hatchet) == []
    out = logs()
    assert f"no workflow named 'export-order' in tenant {hatchet.tenant_id} (namespace 'none')" in out
    assert "close names: export-orders" in out


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"input": "{{ params.p }}"}, "input"),
        ({"input": {"when": "{{ dag_run }}"}, "render_template_as_native_obj": True}, "input"),
        ({"additional_metadata": {"tags": ["a", "b"]}}, "additional_metadata['tags']"),
        ({"workflow_name": "{{ params.empty }}"}, "workflow_name"),
    ],
)
def test_bad_input_fails_the_task_with_no_request_sent(
    hatchet: Any, dag_runner: Any, logs: Any, kwargs: dict[str, Any], field: str
) -> None:
    native = kwargs.pop("render_template_as_native_obj", False)
    kwargs.setdefault("workflow_name", "demo-etl")
    with make_dag("op_bad_input", params={"p": "x", "empty": ""}, render_template_as_native_obj=native) as dag:
        operator(task_id="t", **kwargs)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    assert hatchet.requests == []
    assert f"HatchetValidationError: {field}:" in logs()


@pytest.mark.parametrize("priority", [0, 4, "high"])
def test_a_bad_priority_is_rejected_when_the_dag_is_defined(priority: Any) -> None:
    with pytest.raises(HatchetValidationError, match="priority"):
        operator(task_id="t", workflow_name="demo-etl", priority=priority)


def test_wait_pushes_the_output_keyed_by_task_and_the_link(hatchet: Any, hatchet_server: Any, dag_runner: Any) -> None:
    with make_dag("op_wait") as dag:
        operator(task_id="t", workflow_name="demo-multi", input={"n": 1}, wait_for_completion=True)
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    [run] = hatchet.runs
    output = xcom_value(dag_run, "t", "output")
    assert set(output) == {"extract", "transform", "load"}
    assert output["load"]["echo"] == {"n": 1}
    # Airflow 3's task runner resolves extra links on the worker and stores them for the API server.
    url = f"{hatchet_server.url}/tenants/{hatchet.tenant_id}/runs/{run.id}"
    assert xcom_value(dag_run, "t", "_link_HatchetRunLink") == url


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_failed_run_fails_the_task_with_hatchets_error(
    hatchet: Any, dag_runner: Any, logs: Any, deferrable: bool
) -> None:
    hatchet.register_workflow("load", "fail", error_message="ValueError: bad row 7", tasks=["write"])
    with make_dag("op_fail") as dag:
        operator(task_id="t", workflow_name="load", wait_for_completion=True, deferrable=deferrable)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    out = logs()
    assert "ValueError: bad row 7" in out
    assert "write" in out
    assert xcom_value(dag_run, "t", "hatchet_run_url")  # the link works although the task failed


def cancel_when_running(sim: Any, token: str, url: str) -> threading.Thread:
    """Cancel the first run through the real API once it is running, as a person in the dashboard would."""
    import httpx

    def cancel() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            runs = sim.runs
            if runs and sim.run_status(runs[0].id) == "RUNNING":
                httpx.post(f"{url}/api/v1/stable/tenants/{sim.tenant_id}/tasks/cancel",
                           json={"externalIds": [runs[0].id]}, headers={"Authorization": f"Bearer {token}"})
                return
            time.sleep(0.05)

    thread = threading.Thread(target=cancel, daemon=True)
    thread.start()
    return thread


def test_a_cancelled_run_fails_the_task_saying_so(
    hatchet: Any, hatchet_server: Any, dag_runner: Any, logs: Any
) -> None:
    with make_dag("op_cancelled") as dag:
        operator(task_id="t", workflow_name="demo-hang", wait_for_completion=True)
    thread = cancel_when_running(hatchet, hatchet.token, hatchet_server.url)
    dag_run = dag_runner(dag)
    thread.join()

    assert task_state(dag_run, "t") == "failed"
    assert "cancelled" in logs().lower()


def test_deferrable_defers_then_resumes_with_the_output(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    # A task whose run has already finished does not defer: the run must outlast a slow trigger on a busy machine
    # (demo-etl's 0.5 s once did not, in CI).
    hatchet.register_workflow("op-deferrable-etl", "succeed", duration=3.0)
    with make_dag("op_deferrable") as dag:
        operator(task_id="t", workflow_name="op-deferrable-etl", input={"x": 1}, wait_for_completion=True,
                 deferrable=True)
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    assert "running trigger in line" in logs()
    assert xcom_value(dag_run, "t", "output")["run"]["echo"] == {"x": 1}


def test_the_deferred_trigger_round_trips_and_holds_no_token(hatchet: Any) -> None:
    from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunTrigger

    op = operator(task_id="t", workflow_name="demo-etl", wait_for_completion=True, deferrable=True, timeout=60,
                  execution_timeout=timedelta(seconds=90))
    started = datetime.now(timezone.utc) - timedelta(seconds=20)
    with pytest.raises(TaskDeferred) as deferred:
        op.wait_for_runs({"ti": SimpleNamespace(start_date=started)}, ["run-1"], defer=True)
    path, kwargs = deferred.value.trigger.serialize()
    assert path == "airflow_provider_hatchet.triggers.hatchet.HatchetWorkflowRunTrigger"
    assert HatchetWorkflowRunTrigger(**kwargs).serialize() == (path, kwargs)
    # The earlier of timeout and execution_timeout, from the try's start.
    assert kwargs["execution_deadline"] == started.timestamp() + 60
    assert kwargs["cancel_on_timeout"] is True
    assert hatchet.token not in repr(kwargs)


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_timeout_cancels_the_run_and_fails_the_task(
    hatchet: Any, dag_runner: Any, logs: Any, deferrable: bool
) -> None:
    with make_dag("op_timeout") as dag:
        operator(task_id="t", workflow_name="demo-hang", wait_for_completion=True, deferrable=deferrable,
                 timeout=1.0)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    [run] = hatchet.runs
    time.sleep(0.3)
    assert hatchet.run_status(run.id) == "CANCELLED"
    assert "Hatchet runs not finished (cancelled)" in logs()


def test_on_kill_cancels_the_run(hatchet: Any, dag_runner: Any) -> None:
    with make_dag("op_kill") as dag:
        operator(task_id="t", workflow_name="demo-hang", wait_for_completion=True,
                 execution_timeout=timedelta(seconds=2))
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    [run] = hatchet.runs
    time.sleep(0.3)
    assert hatchet.run_status(run.id) == "CANCELLED"


def test_a_retry_re_attaches_to_the_run_an_ambiguous_trigger_created(
    hatchet: Any, dag_runner: Any, logs: Any
) -> None:
    hatchet.visibility_delay = 2.0  # the retry looks before the first run is listed
    hatchet.fail_next("trigger", 1, drop=True, after_create=True)
    with make_dag("op_reattach") as dag:
        operator(task_id="t", workflow_name="demo-etl", wait_for_completion=True, retries=1,
                 retry_delay=timedelta(seconds=0))
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    [run] = hatchet.runs
    assert len(trigger_requests(hatchet)) == 1
    assert xcom_value(dag_run, "t") == run.id
    text = logs()
    assert "Try 2: no reusable earlier run listed; looking again" in text
    assert f"re-attaching to earlier run {run.id}" in text


def test_a_retry_ignores_another_dags_run_listed_by_a_server_that_drops_the_filter(
    hatchet: Any, dag_runner: Any
) -> None:
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook
    from airflow_provider_hatchet.testing import Faults

    hatchet.faults = Faults(drop_colon_filters=True)  # the run id holds a ":", so the lookup's filter is dropped
    other = HatchetHook().run_workflow("demo-etl", {}, {"airflow_ti": "other|manual__2025-01-01T00:00:00+00:00|t|-1"})
    hatchet.fail_next("trigger", 1, 503)
    with make_dag("op_foreign") as dag:
        operator(task_id="t", workflow_name="demo-etl", retries=1, retry_delay=timedelta(seconds=0))
    dag_run = dag_runner(dag)

    assert dag_run.state == "success" and ":" in dag_run.run_id
    mine = xcom_value(dag_run, "t")
    assert mine != other
    assert hatchet.get_run(mine).additional_metadata["airflow_ti"] == f"op_foreign|{dag_run.run_id}|t|-1"
    assert len(trigger_requests(hatchet)) == 3  # the other DAG's run, the 503, and the retry's own run


def test_a_retry_triggers_again_after_a_failed_run(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    hatchet.register_workflow("flaky", "fail")
    with make_dag("op_retrigger") as dag:
        operator(task_id="t", workflow_name="flaky", wait_for_completion=True, retries=1,
                 retry_delay=timedelta(seconds=0))
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    first, second = hatchet.runs
    assert (first.additional_metadata["airflow_try_number"], second.additional_metadata["airflow_try_number"]) == (
        "1", "2")
    text = logs()
    assert f"the earlier run {first.id} is FAILED; triggering a new one" in text
    assert "looking again" not in text  # the previous try's own run is listed: nothing newer can be hiding


def test_no_reuse_when_disabled(hatchet: Any, dag_runner: Any) -> None:
    hatchet.fail_next("trigger", 1, drop=True, after_create=True)
    with make_dag("op_noreuse") as dag:
        operator(task_id="t", workflow_name="demo-etl", reuse_existing_run=False, retries=1,
                 retry_delay=timedelta(seconds=0))
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    assert len(hatchet.runs) == 2


def test_mapped_fan_out_triggers_one_run_per_input_each_with_its_link(
    hatchet: Any, hatchet_server: Any, dag_runner: Any
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

    with make_dag("op_mapped") as dag:
        HatchetRunWorkflowOperator.partial(task_id="t", workflow_name="demo-etl", poll_interval=0.1).expand(
            input=[{"region": "eu"}, {"region": "us"}, {"region": "apac"}]
        )
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    by_index = {run.additional_metadata["airflow_map_index"]: run for run in hatchet.runs}
    assert {i: r.input["region"] for i, r in by_index.items()} == {"0": "eu", "1": "us", "2": "apac"}
    for index, run in by_index.items():
        assert xcom_value(dag_run, "t", "hatchet_run_url", map_index=int(index)).endswith(f"/runs/{run.id}")


def test_input_from_an_upstream_xcom(hatchet: Any, dag_runner: Any) -> None:
    from airflow.sdk import task

    with make_dag("op_xcomarg") as dag:

        @task
        def build() -> dict[str, Any]:
            return {"rows": [1, 2, 3]}

        operator(task_id="t", workflow_name="demo-etl", input=build())
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    assert hatchet.runs[0].input == {"rows": [1, 2, 3]}


def test_native_rendering_turns_a_param_into_the_input(hatchet: Any, dag_runner: Any) -> None:
    with make_dag("op_native", params={"payload": {"a": 1, "b": [2]}}, render_template_as_native_obj=True) as dag:
        operator(task_id="t", workflow_name="demo-etl", input="{{ params.payload }}")
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    assert hatchet.runs[0].input == {"a": 1, "b": [2]}


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="the task state store arrived in Airflow 3.3")
def test_the_task_state_store_re_attaches_a_retry(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    # The metadata lookup is off, so only the run id kept in the task state store can find the first run.
    hatchet.visibility_delay = 2.0  # the retry asks before the first run is readable
    hatchet.fail_next("status", 1, 403)
    with make_dag("op_state_store") as dag:
        operator(task_id="t", workflow_name="demo-etl", wait_for_completion=True, reuse_existing_run=False,
                 retries=1, retry_delay=timedelta(seconds=0))
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    [run] = hatchet.runs
    assert len(trigger_requests(hatchet)) == 1
    assert xcom_value(dag_run, "t") == run.id
    assert xcom_value(dag_run, "t", "output")["run"]["echo"] == {}
    text = logs()
    assert "Reconnecting to existing job" in text or "Job already completed successfully" in text
