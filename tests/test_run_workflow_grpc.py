"""HatchetRunWorkflowOperator over gRPC (``TriggerWorkflow``) on real Airflow (``dag.test()``), against the
simulator's two faces: how ``transport`` chooses, and that a run is never created twice when a gRPC trigger fails
or the try crashes after it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_hatchet._airflow_version import AIRFLOW_VERSION
from tests.airflow_helpers import task_state, xcom_value
from tests.test_bulk_grpc_operator import use_grpc
from tests.test_grpc_client import DeadUpstream, closed_port
from tests.test_rerun import make_dag, operator

pytestmark = pytest.mark.af2


@pytest.fixture
def face(hatchet: Any, hatchet_server: Any, airflow_conn: Any) -> Iterator[Any]:
    """The simulator's gRPC face, named by the ``hatchet_default`` connection."""
    with hatchet.grpc_server() as grpc_face:
        use_grpc(hatchet, hatchet_server, airflow_conn, grpc_face.address)
        yield grpc_face


def grpc_triggers(sim: Any) -> list[Any]:
    return [r for r in sim.requests if r.method == "GRPC" and r.path == "/WorkflowService/TriggerWorkflow"]


def rest_triggers(sim: Any) -> list[Any]:
    return [r for r in sim.requests if r.path.endswith("/workflow-runs/trigger")]


def run_behind(upstream: DeadUpstream, hatchet: Any, hatchet_server: Any, airflow_conn: Any, dag_runner: Any,
               dag_id: str, **kwargs: Any) -> Any:
    """Run one task whose connection's gRPC address is ``upstream``; its DAG run."""
    use_grpc(hatchet, hatchet_server, airflow_conn, upstream.address)
    with make_dag(dag_id) as dag:
        operator(workflow_name="demo-etl", **kwargs)
    return dag_runner(dag)


def crash_before_the_xcom_push(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the first try of every single-run task fail once its run exists, before the run id reaches XCom."""
    from airflow_provider_hatchet.operators.run_workflow import HatchetRunWorkflowOperator

    announce = HatchetRunWorkflowOperator._announce

    def crash_on_first_try(self: Any, context: Any, run_id: str) -> None:
        if context["ti"].try_number == 1:
            raise RuntimeError("the worker died before the run id reached XCom")
        announce(self, context, run_id)

    monkeypatch.setattr(HatchetRunWorkflowOperator, "_announce", crash_on_first_try)


def lines_with(text: str, part: str) -> list[str]:
    # Under Airflow 2.10, a handler an earlier test left on a closed stream reports "--- Logging error ---" with
    # the record's "Arguments: (...)": not a line the task logged.
    return [line for line in text.splitlines() if part in line and not line.startswith("Arguments: (")]


def logged_once(text: str, part: str) -> list[str]:
    """The one line holding ``part``; dag.test() on Airflow 2.10 and 3.0 captures each line twice, in two formats."""
    lines = lines_with(text, part)
    distinct = len(lines) if AIRFLOW_VERSION >= (3, 1, 0) else len({line[line.index(part):] for line in lines})
    assert distinct == 1, lines
    return lines[:1]


@pytest.mark.parametrize("transport", ["auto", "grpc"])
def test_the_run_goes_over_grpc_with_the_airflow_identity(
    hatchet: Any, face: Any, dag_runner: Any, logs: Any, transport: str
) -> None:
    with make_dag(f"single_grpc_{transport}") as dag:
        operator(workflow_name="demo-etl", input={"n": 1}, additional_metadata={"team": "data"}, priority=3,
                 transport=transport, wait_for_completion=True)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    [run] = hatchet.runs
    assert (len(grpc_triggers(hatchet)), rest_triggers(hatchet)) == (1, [])
    assert xcom_value(dag_run, "t") == run.id == xcom_value(dag_run, "t", "hatchet_run_id")
    assert (run.input, run.priority) == ({"n": 1}, 3)
    assert run.additional_metadata["team"] == "data"
    assert run.additional_metadata["airflow_ti"] == f"{dag.dag_id}|{dag_run.run_id}|t|-1"
    assert run.additional_metadata["airflow_try_number"] == "1"
    assert xcom_value(dag_run, "t", "output")["run"]["echo"] == {"n": 1}
    line = f"Triggered Hatchet workflow demo-etl over gRPC at {face.address}: run {run.id}"
    assert logged_once(logs(), line)


def test_rest_opens_no_grpc_channel(hatchet: Any, face: Any, dag_runner: Any, logs: Any) -> None:
    with make_dag("single_rest") as dag:
        operator(workflow_name="demo-etl", transport="rest")
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    assert (len(rest_triggers(hatchet)), [r for r in hatchet.requests if r.method == "GRPC"]) == (1, [])
    assert "Triggered Hatchet workflow demo-etl over REST: run" in logs()


def test_an_unknown_transport_is_refused_when_the_task_is_defined() -> None:
    with pytest.raises(ValueError, match="transport: must be one of auto, grpc, rest, got 'http'"):
        operator(workflow_name="demo-etl", transport="http")


def test_auto_triggers_over_rest_with_one_line_when_the_grpc_port_is_closed(
    hatchet: Any, hatchet_server: Any, airflow_conn: Any, dag_runner: Any, logs: Any
) -> None:
    use_grpc(hatchet, hatchet_server, airflow_conn, f"127.0.0.1:{closed_port()}")
    with make_dag("single_auto_closed") as dag:
        operator(workflow_name="demo-etl")
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    [run] = hatchet.runs
    assert len(rest_triggers(hatchet)) == 1 and xcom_value(dag_run, "t") == run.id
    [line] = logged_once(logs(), "did not accept a connection")
    assert "over REST: Hatchet's gRPC API at 127.0.0.1:" in line and run.id in line


def test_auto_triggers_over_rest_when_the_grpc_address_fails_the_probe(
    hatchet: Any, hatchet_server: Any, airflow_conn: Any, dag_runner: Any, logs: Any
) -> None:
    # A proxy with no healthy engine behind it: the empty probe fails, so the trigger itself is never sent there.
    with DeadUpstream("UNAVAILABLE") as upstream:
        dag_run = run_behind(upstream, hatchet, hatchet_server, airflow_conn, dag_runner, "single_auto_dead_upstream")

    assert task_state(dag_run, "t") == "success"
    assert len(hatchet.runs) == len(rest_triggers(hatchet)) == 1
    assert upstream.calls == [("/WorkflowService/BulkTriggerWorkflow", 0)]
    assert logged_once(logs(), "failed a gRPC call that creates nothing")


def test_auto_triggers_over_rest_when_the_grpc_trigger_is_unimplemented(
    hatchet: Any, hatchet_server: Any, airflow_conn: Any, dag_runner: Any, logs: Any
) -> None:
    # UNIMPLEMENTED creates nothing, so REST is safe.
    with DeadUpstream("UNIMPLEMENTED", answer_probe=True) as upstream:
        dag_run = run_behind(upstream, hatchet, hatchet_server, airflow_conn, dag_runner, "single_auto_unimplemented")

    assert task_state(dag_run, "t") == "success"
    assert len(hatchet.runs) == len(rest_triggers(hatchet)) == 1
    assert [method for method, _ in upstream.calls] == ["/WorkflowService/BulkTriggerWorkflow",
                                                        "/WorkflowService/TriggerWorkflow"]
    [line] = logged_once(logs(), "the gRPC trigger was refused before it created anything")
    assert "over REST" in line and "UNIMPLEMENTED" in line


def test_grpc_never_falls_back_to_rest(hatchet: Any, hatchet_server: Any, airflow_conn: Any, dag_runner: Any) -> None:
    with DeadUpstream("UNIMPLEMENTED", answer_probe=True) as upstream:
        dag_run = run_behind(upstream, hatchet, hatchet_server, airflow_conn, dag_runner, "single_grpc_unimplemented",
                             transport="grpc")

    assert task_state(dag_run, "t") == "failed"
    assert (hatchet.runs, rest_triggers(hatchet)) == ([], [])


def test_a_grpc_trigger_that_created_its_run_and_failed_is_resolved_without_a_second_run(
    hatchet: Any, face: Any, dag_runner: Any, logs: Any
) -> None:
    hatchet.fail_next("trigger", 1, drop=True, after_create=True)
    with make_dag("single_grpc_dropped") as dag:
        operator(workflow_name="demo-etl", wait_for_completion=True)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    [run] = hatchet.runs
    assert (len(grpc_triggers(hatchet)), rest_triggers(hatchet)) == (1, [])
    assert xcom_value(dag_run, "t") == run.id
    text = logs()
    assert "The gRPC trigger failed and may have created the run" in text
    assert f"over gRPC, found after the trigger failed: run {run.id}" in text


def test_a_grpc_trigger_that_failed_before_creating_fails_the_try_and_its_retry_triggers_once(
    hatchet: Any, face: Any, dag_runner: Any, logs: Any
) -> None:
    # UNAVAILABLE from the engine itself is ambiguous: the try looks, finds nothing, fails; its retry triggers.
    hatchet.fail_next("trigger", 1, 503)
    with make_dag("single_grpc_unavailable") as dag:
        operator(workflow_name="demo-etl", retries=1, retry_delay=timedelta(0))
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    [run] = hatchet.runs
    assert run.additional_metadata["airflow_try_number"] == "2"
    assert (len(grpc_triggers(hatchet)), rest_triggers(hatchet)) == (2, [])
    assert "Try 1 created no run that Hatchet lists; a retry looks again before it triggers one." in logs()


@pytest.mark.proves_retry("HatchetRunWorkflowOperator")
def test_a_retry_after_a_crash_between_the_grpc_trigger_and_the_xcom_push_re_attaches(
    hatchet: Any, face: Any, dag_runner: Any, logs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash_before_the_xcom_push(monkeypatch)
    with make_dag("single_grpc_crash") as dag:
        operator(workflow_name="demo-etl", wait_for_completion=True, retries=1, retry_delay=timedelta(0))
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    [run] = hatchet.runs
    assert len(grpc_triggers(hatchet)) == 1 and run.additional_metadata["airflow_try_number"] == "1"
    assert xcom_value(dag_run, "t") == run.id
    assert f"re-attaching to earlier run {run.id}" in logs()


def test_the_servers_error_text_cannot_forge_a_log_line(
    hatchet: Any, hatchet_server: Any, airflow_conn: Any, dag_runner: Any, logs: Any
) -> None:
    with DeadUpstream("UNIMPLEMENTED", answer_probe=True, details="nope\nERROR - forged line") as upstream:
        dag_run = run_behind(upstream, hatchet, hatchet_server, airflow_conn, dag_runner, "single_auto_forged")

    assert task_state(dag_run, "t") == "success"
    text = logs()
    [line] = logged_once(text, "the gRPC trigger was refused before it created anything")
    assert "nope" in line
    assert not [other for other in text.splitlines() if other.startswith("ERROR - forged line")]
