"""HatchetPushEventOperator on real Airflow (``dag.test()``) against the simulator's gRPC and REST faces."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.airflow_helpers import task_state, xcom_value
from tests.test_bulk_operator import make_dag


@pytest.fixture
def face(hatchet: Any, hatchet_server: Any, airflow_conn: Any) -> Iterator[Any]:
    """The gRPC face, and ``hatchet_default`` pointing at both faces."""
    with hatchet.grpc_server() as grpc_face:
        airflow_conn("hatchet_default", conn_type="hatchet", host=hatchet_server.url, password=hatchet.token,
                     extra={"grpc_address": grpc_face.address, "grpc_tls": "false"})
        yield grpc_face


def push(**kwargs: Any) -> Any:
    from airflow_provider_hatchet.operators.hatchet import HatchetPushEventOperator

    kwargs.setdefault("poll_interval", 0.1)
    return HatchetPushEventOperator(**kwargs)


@pytest.mark.parametrize("deferrable", [False, True])
def test_an_event_triggers_the_subscribed_workflow_and_the_task_returns_its_output(
    hatchet: Any, face: Any, dag_runner: Any, deferrable: bool
) -> None:
    with make_dag("push_one") as dag:
        push(task_id="t", key="airflow:demo-event", payload={"day": "{{ ds }}"}, additional_metadata={"k": 1},
             priority=2, wait_for_runs=True, deferrable=deferrable)
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    [event_id] = xcom_value(dag_run, "t")
    [run] = hatchet.runs
    assert run.workflow_name == "demo-event" and run.input == {"day": dag_run.logical_date.strftime("%Y-%m-%d")}
    assert run.additional_metadata["hatchet__event_id"] == event_id
    assert run.additional_metadata["k"] == "1" and run.additional_metadata["airflow_task_id"] == "t"
    assert run.priority == 2
    assert xcom_value(dag_run, "t", "run_ids") == [run.id]
    [output] = xcom_value(dag_run, "t", "output")
    assert output["run"]["echo"] == run.input
    assert [r.path for r in hatchet.requests if r.method == "GRPC"] == ["/EventsService/Push"]


def test_a_list_of_events_goes_in_one_bulk_push_and_unsubscribed_keys_are_logged(
    hatchet: Any, face: Any, dag_runner: Any, logs: Any
) -> None:
    hatchet.register_workflow("second-listener", "succeed", duration=0.1, on_events=["airflow:demo-event"])
    with make_dag("push_many") as dag:
        push(task_id="t", wait_for_runs=True, settle_seconds=0.5, events=[
            {"key": "airflow:demo-event", "payload": {"i": 0}},
            {"key": "nobody:listens", "payload": {"i": 1}},
            {"key": "airflow:demo-event", "payload": {"i": 2}, "scope": "s"},
        ])
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    event_ids = xcom_value(dag_run, "t")
    assert len(event_ids) == 3
    by_event: dict[str, list[Any]] = {}
    for run in hatchet.runs:
        by_event.setdefault(run.additional_metadata["hatchet__event_id"], []).append(run)
    assert sorted(r.workflow_name for r in by_event[event_ids[0]]) == ["demo-event", "second-listener"]
    assert event_ids[1] not in by_event
    assert [r.input for r in by_event[event_ids[2]]] == [{"i": 2}, {"i": 2}]
    assert len(xcom_value(dag_run, "t", "output")) == 4
    assert f"Event {event_ids[1]} triggered no run" in logs()
    assert [r.path for r in hatchet.requests if r.method == "GRPC"] == ["/EventsService/BulkPush"]


def test_a_bad_event_fails_the_task_before_anything_is_pushed(hatchet: Any, face: Any, dag_runner: Any,
                                                              logs: Any) -> None:
    with make_dag("push_bad") as dag:
        push(task_id="t", events=[{"key": "a"}, {"key": "b", "priority": 7}])
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    assert "events[1].priority" in logs()
    assert not [r for r in hatchet.requests if r.method == "GRPC"]


def test_key_and_events_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="either key"):
        push(task_id="t")
    with pytest.raises(ValueError, match="either key"):
        push(task_id="t", key="k", events=[{"key": "k"}])
    with pytest.raises(ValueError, match="inside each of events"):
        push(task_id="t", events=[{"key": "k"}], payload={})
