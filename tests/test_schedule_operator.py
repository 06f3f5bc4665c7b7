"""HatchetScheduleWorkflowOperator on real Airflow (``dag.test()``) against the simulator over loopback HTTP."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_VERSION
from airflow_provider_hatchet.client import scheduling
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
    (scheduled,) = HatchetHook().send(scheduling.list_scheduled()).rows
    assert (scheduled.id, scheduled.workflow_name, scheduled.priority) == (scheduled_id, "team_etl", 3)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", scheduled.input["day"])
    assert scheduled.additional_metadata["k"] == "v"
    assert scheduled.additional_metadata["airflow_task_id"] == "t"
    assert len(scheduled.additional_metadata["airflow_schedule_marker"]) == 32
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
    # trigger_at is rendered when the task starts, not when the DAG is defined: dag.test() takes seconds to reach
    # the task on Airflow 3.0 and 3.1, after which a time fixed at definition has passed and the schedule fires at once.
    in_3s = "{{ (macros.datetime.now(macros.dateutil.tz.UTC) + macros.timedelta(seconds=3)).isoformat() }}"
    with make_dag("sched_deleted") as dag:
        operator(task_id="t", workflow_name="demo-etl", trigger_at=in_3s, wait_for_completion=True)

    def delete_when_scheduled() -> None:
        hook = HatchetHook()
        for _ in range(1200):
            rows = hook.send(scheduling.list_scheduled()).rows
            if rows:
                hook.delete_scheduled_run(rows[0].id)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=delete_when_scheduled)
    thread.start()
    dag_run = dag_runner(dag)
    thread.join()

    assert task_state(dag_run, "t") == "failed"
    if AIRFLOW_VERSION[:2] != (3, 0):  # 3.0's dag.test() keeps the task's exception out of the captured log
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
    assert HatchetHook().send(scheduling.list_scheduled()).rows == []


def test_the_deferred_trigger_deletes_an_unfired_schedule_on_kill(hatchet: Any) -> None:
    from airflow_provider_hatchet.triggers.scheduled import HatchetScheduledRunTrigger

    scheduled = HatchetHook().schedule_workflow("demo-etl", soon(3600))
    trigger = HatchetScheduledRunTrigger(scheduled.id, "marker", scheduled.trigger_at.isoformat())
    path, kwargs = trigger.serialize()
    assert HatchetScheduledRunTrigger(**kwargs).serialize() == (path, kwargs)
    assert hatchet.token not in repr(kwargs)
    asyncio.run(trigger.on_kill())
    assert HatchetHook().send(scheduling.list_scheduled()).rows == []


def test_a_bad_trigger_time_fails_before_anything_is_sent(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    with make_dag("sched_bad") as dag:
        operator(task_id="t", workflow_name="demo-etl", trigger_at="next tuesday")
    hatchet.clear_requests()
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    assert "trigger_at: must be an ISO 8601 date-time" in logs()
    assert hatchet.requests == []


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00", "9999-12-31T23:59:59+00:00"])
def test_a_trigger_time_beyond_what_hatchet_keeps_fails_before_anything_is_sent(
    hatchet: Any, dag_runner: Any, logs: Any, when: str
) -> None:
    # Year 1 was accepted and scheduled, then the wait's margin overflowed datetime after the schedule existed.
    with make_dag("sched_far") as dag:
        operator(task_id="t", workflow_name="demo-etl", trigger_at=when, wait_for_completion=True)
    hatchet.clear_requests()
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    assert "must be between 1970 and 9000" in logs()
    assert hatchet.requests == []


def fail_first_try(context: Any, result: Any = None) -> None:
    """A ``post_execute`` that fails try 1 after the operator scheduled: a crash past the schedule."""
    if context["ti"].try_number == 1:
        raise RuntimeError("the worker died after scheduling")


def schedules_created(sim: Any) -> int:
    return sum(1 for r in sim.requests if r.method == "POST" and r.path.endswith("/scheduled"))


@pytest.mark.proves_retry("HatchetScheduleWorkflowOperator")
def test_a_retry_re_attaches_to_the_schedule_an_earlier_try_created(
    hatchet: Any, dag_runner: Any, logs: Any
) -> None:
    with make_dag("sched_retry") as dag:
        operator(task_id="t", workflow_name="demo-etl", trigger_at=soon(3600), retries=1,
                 retry_delay=timedelta(0), post_execute=fail_first_try)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    (scheduled,) = HatchetHook().send(scheduling.list_scheduled()).rows
    assert schedules_created(hatchet) == 1
    assert scheduled.additional_metadata["airflow_try_number"] == "1"
    assert xcom_value(dag_run, "t", "return_value") == scheduled.id
    assert xcom_value(dag_run, "t", "hatchet_scheduled_id") == scheduled.id
    assert f"Try 2: re-attaching to scheduled run {scheduled.id}" in logs()


# Not understood yet: under Airflow 3.0's dag.test() the deferred case reads back one successful try (the first
# try's return_value, no retry in the log) although post_execute fails that try; strict, so a fix shows.
@pytest.mark.parametrize("deferrable", [
    False,
    pytest.param(True, marks=pytest.mark.xfail(AIRFLOW_VERSION[:2] == (3, 0), strict=True,
                                               reason="Airflow 3.0's dag.test(): no retry seen after a resumed try")),
], ids=["in-worker", "deferred"])
def test_a_retry_after_the_schedule_fired_waits_on_its_run_and_schedules_nothing(
    hatchet: Any, dag_runner: Any, logs: Any, deferrable: bool
) -> None:
    def fail_once_fired(context: Any, result: Any = None) -> None:
        if context["ti"].try_number == 1:
            raise RuntimeError("the worker died once the run had finished")

    with make_dag(f"sched_retry_fired_{int(deferrable)}") as dag:
        operator(task_id="t", workflow_name="demo-etl", trigger_at=soon(0.5), input={"x": 2},
                 wait_for_completion=True, deferrable=deferrable, retries=1, retry_delay=timedelta(0),
                 post_execute=fail_once_fired)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    [run] = hatchet.runs
    assert schedules_created(hatchet) == 1
    assert xcom_value(dag_run, "t", "hatchet_run_id") == run.id
    assert xcom_value(dag_run, "t", "output")["run"]["echo"]["x"] == 2
    # Hatchet forgets a fired schedule's id: the retry returns none rather than a wrong one.
    assert xcom_value(dag_run, "t", "return_value") is None
    assert f"the schedule of an earlier try has fired: re-attaching to its run {run.id}" in logs()


@pytest.mark.proves_retry("HatchetScheduleWorkflowOperator")
def test_a_retry_after_the_scheduled_run_failed_schedules_a_new_run(
    hatchet: Any, dag_runner: Any, logs: Any
) -> None:
    with make_dag("sched_retry_failed") as dag:
        operator(task_id="t", workflow_name="demo-fail", trigger_at=soon(0.5), wait_for_completion=True,
                 retries=1, retry_delay=timedelta(0))
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    first, second = sorted(hatchet.runs, key=lambda run: run.additional_metadata["airflow_try_number"])
    assert [r.additional_metadata["airflow_try_number"] for r in (first, second)] == ["1", "2"]
    assert schedules_created(hatchet) == 2
    assert {hatchet.run_status(first.id), hatchet.run_status(second.id)} == {"FAILED"}
    assert f"the run {first.id} of an earlier try's schedule is FAILED; scheduling a new run" in logs()


def test_clearing_a_succeeded_schedule_task_schedules_anew(hatchet: Any, dag_runner: Any) -> None:
    from tests.test_rerun import clear_upstream_once, python_task

    with make_dag("sched_cleared") as dag:
        operator(task_id="t", workflow_name="demo-etl", trigger_at=soon(3600)) >> python_task(
            "clear_t", clear_upstream_once)
    dag_run = dag_runner(dag)

    assert (task_state(dag_run, "t"), task_state(dag_run, "clear_t")) == ("success", "success")
    rows = HatchetHook().send(scheduling.list_scheduled()).rows
    assert sorted(r.additional_metadata["airflow_try_number"] for r in rows) == ["1", "2"]
    assert schedules_created(hatchet) == 2
    [second] = [r for r in rows if r.additional_metadata["airflow_try_number"] == "2"]
    assert xcom_value(dag_run, "t", "return_value") == second.id


def test_a_trigger_at_in_the_past_is_scheduled_and_logged_as_firing_at_once(
    hatchet: Any, dag_runner: Any, logs: Any
) -> None:
    with make_dag("sched_past") as dag:
        operator(task_id="t", workflow_name="demo-etl", trigger_at=soon(-3600), wait_for_completion=True)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    [run] = hatchet.runs
    assert xcom_value(dag_run, "t", "hatchet_run_id") == run.id
    text = logs()
    assert "s before Hatchet's time" in text and "Hatchet starts the run at once" in text


def test_the_connection_id_is_templated(hatchet: Any, dag_runner: Any, airflow_conn: Any,
                                        hatchet_server: Any) -> None:
    airflow_conn("hatchet_templated", conn_type="hatchet", host=hatchet_server.url, password=hatchet.token)
    with make_dag("sched_conn_templated") as dag:
        operator(task_id="t", workflow_name="demo-etl", trigger_at=soon(3600), hatchet_conn_id="{{ params.conn }}",
                 params={"conn": "hatchet_templated"})
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    (scheduled,) = HatchetHook("hatchet_templated").send(scheduling.list_scheduled()).rows
    assert xcom_value(dag_run, "t") == scheduled.id



def test_a_templated_priority_is_rendered_then_checked(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    with make_dag("sched_priority_templated") as dag:
        operator(task_id="ok", workflow_name="demo-etl", trigger_at=soon(3600), priority="{{ params.p }}",
                 params={"p": 2})
        operator(task_id="bad", workflow_name="demo-etl", trigger_at=soon(3600), priority="{{ params.p + 5 }}",
                 params={"p": 2})
    dag_run = dag_runner(dag)

    assert (task_state(dag_run, "ok"), task_state(dag_run, "bad")) == ("success", "failed")
    (scheduled,) = HatchetHook().iter_rows(scheduling.scheduled_runs())
    assert (scheduled.id, scheduled.priority) == (xcom_value(dag_run, "ok"), 2)
    assert "priority: must be from 1 to 3, got 7" in logs()

def test_each_mapped_deferred_schedule_returns_its_own_scheduled_id(hatchet: Any, dag_runner: Any) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetScheduleWorkflowOperator

    with make_dag("sched_mapped_deferred") as dag:
        HatchetScheduleWorkflowOperator.partial(
            task_id="t", workflow_name="demo-etl", trigger_at=soon(0.5), wait_for_completion=True, deferrable=True,
            poll_interval=0.1,
        ).expand(input=[{"i": 0}, {"i": 1}])
    dag_run = dag_runner(dag)

    assert [task_state(dag_run, "t", i) for i in (0, 1)] == ["success", "success"]
    scheduled = [xcom_value(dag_run, "t", "hatchet_scheduled_id", map_index=i) for i in (0, 1)]
    assert len(set(scheduled)) == 2
    assert [xcom_value(dag_run, "t", map_index=i) for i in (0, 1)] == scheduled
