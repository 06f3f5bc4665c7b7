"""HatchetScheduleWorkflowOperator on real Airflow (``dag.test()``) against the simulator over loopback HTTP."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from tests.airflow_helpers import task_state, xcom_value

pytestmark = pytest.mark.af2

START = datetime(2025, 1, 1)


def make_dag(dag_id: str, **kwargs: Any) -> Any:
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import DAG
    else:
        from airflow import DAG
    return DAG(dag_id, schedule=None, start_date=START, catchup=False, **kwargs)


def operator(**kwargs: Any) -> Any:
    from airflow_provider_hatchet.operators.hatchet import HatchetScheduleWorkflowOperator

    kwargs.setdefault("poll_interval", 0.1)
    return HatchetScheduleWorkflowOperator(**kwargs)


def soon(seconds: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat()


def test_it_schedules_with_namespace_metadata_and_priority_and_returns_the_id(
    hatchet: Any, dag_runner: Any, airflow_conn: Any, hatchet_server: Any
) -> None:
    hatchet.register_workflow("team_etl")
    airflow_conn("hatchet_default", conn_type="hatchet", host=hatchet_server.url, password=hatchet.token,
                 extra={"namespace": "team"})
    with make_dag("sched_plain") as dag:
        operator(task_id="t", workflow_name="etl", trigger_at="{{ params.at }}", input={"day": "{{ ds }}"},
                 additional_metadata={"k": "v"}, priority=3, params={"at": soon(3600)})
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    scheduled_id = xcom_value(dag_run, "t", "return_value")
    assert xcom_value(dag_run, "t", "hatchet_scheduled_id") == scheduled_id
    (scheduled,) = HatchetHook().list_scheduled_runs().rows
    assert (scheduled.id, scheduled.workflow_name, scheduled.priority) == (scheduled_id, "team_etl", 3)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", scheduled.input["day"])
    assert scheduled.additional_metadata["k"] == "v"
    assert scheduled.additional_metadata["airflow_task_id"] == "t"
    assert len(scheduled.additional_metadata["airflow_schedule_token"]) == 32
    assert hatchet.run_count() == 0


@pytest.mark.parametrize("deferrable", [False, True])
def test_it_waits_for_the_schedule_to_fire_then_for_the_run(
    hatchet: Any, dag_runner: Any, deferrable: bool
) -> None:
    with make_dag(f"sched_wait_{deferrable}") as dag:
        operator(task_id="t", workflow_name="demo-etl", trigger_at=soon(1.0), input={"x": 1},
                 wait_for_completion=True, deferrable=deferrable)
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    [run] = hatchet.runs
    assert xcom_value(dag_run, "t", "hatchet_run_id") == run.id
    assert xcom_value(dag_run, "t", "output")["run"]["echo"]["x"] == 1
    assert xcom_value(dag_run, "t", "return_value") == xcom_value(dag_run, "t", "hatchet_scheduled_id")


def test_a_schedule_deleted_before_it_fires_fails_the_waiting_task(
    hatchet: Any, dag_runner: Any, logs: Any
) -> None:
    with make_dag("sched_deleted") as dag:
        operator(task_id="t", workflow_name="demo-etl", trigger_at=soon(1.0), wait_for_completion=True)

    def delete_when_scheduled() -> None:
        hook = HatchetHook()
        for _ in range(200):
            rows = hook.list_scheduled_runs().rows
            if rows:
                hook.delete_scheduled_run(rows[0].id)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=delete_when_scheduled)
    thread.start()
    dag_run = dag_runner(dag)
    thread.join()

    assert task_state(dag_run, "t") == "failed"
    assert "was deleted before it fired" in logs()
    assert hatchet.run_count() == 0


def test_killing_the_task_before_the_schedule_fires_deletes_it(hatchet: Any, dag_runner: Any) -> None:
    with make_dag("sched_kill") as dag:
        operator(task_id="t", workflow_name="demo-etl", trigger_at=soon(3600), wait_for_completion=True,
                 execution_timeout=timedelta(seconds=2))
    if AIRFLOW_V_3_0_PLUS:
        assert task_state(dag_runner(dag), "t") == "failed"
    else:  # Airflow 2's dag.test() raises the task's timeout
        from airflow.exceptions import AirflowTaskTimeout

        with pytest.raises(AirflowTaskTimeout):
            dag_runner(dag)
    assert HatchetHook().list_scheduled_runs().rows == []


def test_the_deferred_trigger_deletes_an_unfired_schedule_on_kill(hatchet: Any) -> None:
    from airflow_provider_hatchet.triggers.scheduled import HatchetScheduledRunTrigger

    scheduled = HatchetHook().schedule_workflow("demo-etl", soon(3600))
    trigger = HatchetScheduledRunTrigger(scheduled.id, "token", scheduled.trigger_at.isoformat())
    path, kwargs = trigger.serialize()
    assert HatchetScheduledRunTrigger(**kwargs).serialize() == (path, kwargs)
    assert hatchet.token not in repr(kwargs)
    asyncio.run(trigger.on_kill())
    assert HatchetHook().list_scheduled_runs().rows == []


def test_a_bad_trigger_time_fails_before_anything_is_sent(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    with make_dag("sched_bad") as dag:
        operator(task_id="t", workflow_name="demo-etl", trigger_at="next tuesday")
    hatchet.clear_requests()
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    assert "trigger_at: must be an ISO 8601 date-time" in logs()
    assert hatchet.requests == []
