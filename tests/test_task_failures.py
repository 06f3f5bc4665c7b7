"""How tasks fail, on real Airflow (``dag.test()``) against the simulator: typed errors carrying the runs and
Hatchet's messages, no retry for bad arguments, and arguments checked when the DAG is defined."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS, AirflowFailException
from airflow_provider_hatchet.client import HatchetValidationError
from airflow_provider_hatchet.exceptions import (
    HatchetRunCancelledError,
    HatchetRunFailedError,
    HatchetRunTimeoutError,
)
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.operators.hatchet import (
    HatchetPushEventOperator,
    HatchetRunWorkflowOperator,
    HatchetRunWorkflowsOperator,
)
from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor
from tests.airflow_helpers import task_state
from tests.test_operator import cancel_when_running
from tests.tracebacks import chained

ERROR = "ValueError: bad row 7"


def make_dag(dag_id: str, **kwargs: Any) -> Any:
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import DAG
    else:
        from airflow.models.dag import DAG
    return DAG(dag_id, schedule=None, start_date=datetime(2025, 1, 1), catchup=False, **kwargs)


class Failures:
    """Collects the exception of each failed task, as Airflow hands it to ``on_failure_callback``."""

    def __init__(self) -> None:
        self.seen: dict[str, BaseException] = {}

    def __call__(self, context: Any) -> None:
        self.seen[context["ti"].task_id] = context["exception"]


@pytest.fixture
def failures() -> Failures:
    return Failures()



def try_number(dag_run: Any, task_id: str) -> int:
    return int(dag_run.get_task_instance(task_id).try_number)


# A run that ends badly raises a typed error carrying the runs and Hatchet's messages


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_a_failed_run_raises_hatchet_run_failed_error(
    hatchet: Any, dag_runner: Any, failures: Failures, deferrable: bool
) -> None:
    hatchet.register_workflow("load", "fail", error_message=ERROR, tasks=["write"])
    with make_dag(f"fail_typed_{int(deferrable)}") as dag:
        HatchetRunWorkflowOperator(task_id="t", workflow_name="load", wait_for_completion=True, deferrable=deferrable,
                                   poll_interval=0.1, on_failure_callback=failures)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    [run] = hatchet.runs
    error = failures.seen["t"]
    assert isinstance(error, HatchetRunFailedError)
    assert error.run_ids == [run.id]
    assert error.errors == {run.id: {"write": ERROR}}
    assert run.id in str(error) and ERROR in str(error)
    assert hatchet.token not in str(error)


def test_a_cancelled_run_raises_hatchet_run_cancelled_error(
    hatchet: Any, hatchet_server: Any, dag_runner: Any, failures: Failures
) -> None:
    with make_dag("cancelled_typed") as dag:
        HatchetRunWorkflowOperator(task_id="t", workflow_name="demo-hang", wait_for_completion=True,
                                   poll_interval=0.1, on_failure_callback=failures)
    thread = cancel_when_running(hatchet, hatchet.token, hatchet_server.url)
    dag_runner(dag)
    thread.join()

    [run] = hatchet.runs
    error = failures.seen["t"]
    assert isinstance(error, HatchetRunCancelledError)
    assert error.run_ids == [run.id]
    assert f"run {run.id} CANCELLED" in str(error)


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_a_timeout_raises_hatchet_run_timeout_error(
    hatchet: Any, dag_runner: Any, failures: Failures, deferrable: bool
) -> None:
    with make_dag(f"timeout_typed_{int(deferrable)}") as dag:
        HatchetRunWorkflowOperator(task_id="t", workflow_name="demo-hang", wait_for_completion=True,
                                   deferrable=deferrable, poll_interval=0.1, timeout=1.0,
                                   on_failure_callback=failures)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    [run] = hatchet.runs
    error = failures.seen["t"]
    assert isinstance(error, HatchetRunTimeoutError)
    assert error.run_ids == [run.id]
    assert run.id in str(error) and "not finished (cancelled)" in str(error)


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_a_failed_run_of_a_batch_raises_hatchet_run_failed_error_naming_it(
    hatchet: Any, dag_runner: Any, failures: Failures, deferrable: bool
) -> None:
    broken = {"__sim__": {"behaviour": "fail", "error_message": ERROR}}
    with make_dag(f"bulk_fail_typed_{int(deferrable)}") as dag:
        HatchetRunWorkflowsOperator(
            task_id="t", workflow_runs=[{"workflow_name": "demo-etl", "input": {"i": 0}},
                                        {"workflow_name": "demo-etl", "input": broken}],
            wait_for_completion=True, deferrable=deferrable, poll_interval=0.1, on_failure_callback=failures)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    [failed] = [run for run in hatchet.runs if run.input == broken]
    error = failures.seen["t"]
    assert isinstance(error, HatchetRunFailedError)
    assert error.run_ids == [failed.id]
    assert error.errors == {failed.id: {"run": ERROR}}
    assert failed.id in str(error) and ERROR in str(error)


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferred"])
def test_the_sensor_raises_typed_errors_for_a_failed_run_and_a_timeout(
    hatchet: Any, dag_runner: Any, failures: Failures, deferrable: bool
) -> None:
    hatchet.register_workflow("broken", "fail", duration=0.1, error_message=ERROR)
    hook = HatchetHook()
    broken, hanging = hook.run_workflow("broken"), hook.run_workflow("demo-hang")
    with make_dag(f"sensor_typed_{int(deferrable)}") as dag:
        HatchetWorkflowRunSensor(task_id="fails", run_id=broken, poke_interval=0.1, deferrable=deferrable,
                                 on_failure_callback=failures)
        HatchetWorkflowRunSensor(task_id="times_out", run_id=hanging, poke_interval=0.1, timeout=1,
                                 deferrable=deferrable, on_failure_callback=failures)
    dag_runner(dag)

    failed, timed_out = failures.seen["fails"], failures.seen["times_out"]
    assert isinstance(failed, HatchetRunFailedError)
    assert (failed.run_ids, failed.errors) == ([broken], {broken: {"run": ERROR}})
    assert broken in str(failed) and ERROR in str(failed)
    assert isinstance(timed_out, HatchetRunTimeoutError)
    assert timed_out.run_ids == [hanging]
    assert hanging in str(timed_out) and "timed out" in str(timed_out)
    # Poking goes through a sync-to-async bridge: nothing of it is chained to the failure.
    assert not any(isinstance(e, RuntimeError) for e in chained(failed) + chained(timed_out))
    assert hatchet.run_status(hanging) == "RUNNING"


def test_a_cancelled_run_fails_the_sensor_with_hatchet_run_cancelled_error(
    hatchet: Any, dag_runner: Any, failures: Failures
) -> None:
    hook = HatchetHook()
    run_id = hook.run_workflow("demo-hang")
    hook.cancel_runs([run_id])
    with make_dag("sensor_cancelled_typed") as dag:
        HatchetWorkflowRunSensor(task_id="w", run_id=run_id, poke_interval=0.1, on_failure_callback=failures)
    dag_runner(dag)

    error = failures.seen["w"]
    assert isinstance(error, HatchetRunCancelledError)
    assert error.run_ids == [run_id]


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="retry_policy arrived in Airflow 3.3")
def test_a_retry_policy_rule_on_the_typed_errors_decides_the_retry(hatchet: Any, dag_runner: Any) -> None:
    from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

    # The README's example.
    policy = ExceptionRetryPolicy(rules=[
        RetryRule(exception=HatchetRunFailedError, action=RetryAction.FAIL, reason="the workflow itself failed"),
        RetryRule(exception=[HatchetRunCancelledError, HatchetRunTimeoutError], action=RetryAction.RETRY,
                  retry_delay=timedelta(seconds=0)),
    ])
    hatchet.register_workflow("flaky", "fail")
    with make_dag("retry_policy_typed") as dag:
        for task_id, workflow in (("fails", "flaky"), ("times_out", "demo-hang")):
            HatchetRunWorkflowOperator(task_id=task_id, workflow_name=workflow, wait_for_completion=True,
                                       poll_interval=0.1, timeout=1.0, retries=1,
                                       retry_delay=timedelta(minutes=10), retry_policy=policy)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "fails") == task_state(dag_run, "times_out") == "failed"
    tries = [run.additional_metadata["airflow_try_number"] for run in hatchet.runs]
    assert sorted(tries) == ["1", "1", "2"]  # the failed run is not retried; the timed-out one is, at once
    assert (try_number(dag_run, "fails"), try_number(dag_run, "times_out")) == (1, 2)


# Bad arguments: a field error, not retried


@pytest.mark.parametrize(
    ("task", "field"),
    [
        (lambda: HatchetRunWorkflowOperator(task_id="t", workflow_name="demo-etl", input="{{ params.text }}"),
         "input"),
        (lambda: HatchetRunWorkflowOperator(task_id="t", workflow_name="nope"), "workflow_name"),
        (lambda: HatchetRunWorkflowOperator(task_id="t", workflow_name="demo-etl", priority="{{ params.five }}"),
         "priority"),
        (lambda: HatchetRunWorkflowsOperator(task_id="t", workflow_runs=[{"workflow_name": "demo-etl", "input": 1}]),
         "workflow_runs[0].input"),
        (lambda: HatchetWorkflowRunSensor(task_id="t", run_id="{{ params.text }}"), "run_id"),
        (lambda: HatchetWorkflowRunSensor(task_id="t", run_id="{{ params.list }}"), "run_id"),
        (lambda: HatchetPushEventOperator(task_id="t", key="{{ params.empty }}"), "events[0].key"),
        (lambda: HatchetPushEventOperator(task_id="t", events=[{"key": "k", "priority": 7}]), "events[0].priority"),
        (lambda: HatchetPushEventOperator(task_id="t", events="{{ params.list }}"), "events"),
    ],
    ids=["input", "unknown-workflow", "rendered-priority", "bulk-item", "rendered-run-id", "rendered-bad-list",
         "push-rendered-empty-key", "push-priority", "push-rendered-events"],
)
def test_bad_arguments_fail_at_once_without_a_retry_naming_the_field(
    hatchet: Any, dag_runner: Any, failures: Failures, task: Any, field: str
) -> None:
    with make_dag("bad_arguments", params={"text": "abc", "five": 5, "list": "[abc", "empty": ""},
                  default_args={"retries": 2, "retry_delay": timedelta(0), "on_failure_callback": failures}) as dag:
        task()
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    assert try_number(dag_run, "t") == 1
    error = failures.seen["t"]
    assert isinstance(error, AirflowFailException)
    assert str(error).startswith(f"{field}: ")
    assert [r for r in hatchet.requests if r.route not in ("workflows",)] == []


# Templated priority and connection


def test_priority_and_the_connection_are_rendered(
    hatchet: Any, hatchet_server: Any, airflow_conn: Any, dag_runner: Any
) -> None:
    airflow_conn("hatchet_other", conn_type="hatchet", host=hatchet_server.url, password=hatchet.token)
    with make_dag("templated_priority_conn", params={"priority": 2, "conn": "hatchet_other"}) as dag:
        single = HatchetRunWorkflowOperator(task_id="single", workflow_name="demo-etl",
                                            priority="{{ params.priority }}", hatchet_conn_id="{{ params.conn }}")
        bulk = HatchetRunWorkflowsOperator(task_id="bulk", workflow_runs=[{"workflow_name": "demo-etl"}],
                                           hatchet_conn_id="{{ params.conn }}")
        wait = HatchetWorkflowRunSensor(task_id="wait", run_id=single.output, hatchet_conn_id="{{ params.conn }}",
                                        poke_interval=0.1)
        single >> bulk >> wait
    # Only the rendered connection exists.
    airflow_conn("hatchet_default", conn_type="hatchet", host="http://127.0.0.1:9", password=hatchet.token)
    dag_run = dag_runner(dag)

    assert [task_state(dag_run, t) for t in ("single", "bulk", "wait")] == ["success"] * 3
    priorities = {run.additional_metadata["airflow_task_id"]: run.body.get("priority") for run in hatchet.runs}
    assert priorities == {"single": 2, "bulk": None}


@pytest.mark.af2
def test_a_templated_priority_is_checked_once_rendered_not_when_defined() -> None:
    # A literal one fails when defined: test_operator.py::test_a_bad_priority_is_rejected_when_the_dag_is_defined
    task = HatchetRunWorkflowOperator(task_id="t", workflow_name="demo-etl", priority="{{ params.p }}x")
    assert task.priority == "{{ params.p }}x"
    assert "priority" in task.template_fields and "hatchet_conn_id" in task.template_fields


# Checked when the task is defined (on Airflow 2.10 too)


@pytest.mark.af2
@pytest.mark.parametrize(
    ("make", "field", "value"),
    [
        (lambda v: HatchetRunWorkflowOperator(task_id="t", workflow_name="w", poll_interval=v), "poll_interval", 0),
        (lambda v: HatchetRunWorkflowOperator(task_id="t", workflow_name="w", poll_interval=v), "poll_interval", -1),
        (lambda v: HatchetRunWorkflowOperator(task_id="t", workflow_name="w", timeout=v), "timeout", 0),
        (lambda v: HatchetRunWorkflowOperator(task_id="t", workflow_name="w", timeout=v), "timeout", -1.5),
        (lambda v: HatchetRunWorkflowsOperator(task_id="t", workflow_runs=[], poll_interval=v), "poll_interval", 0),
        (lambda v: HatchetRunWorkflowsOperator(task_id="t", workflow_runs=[], timeout=v), "timeout", -1),
        # Airflow's own check rejects a sensor's negative values first.
        (lambda v: HatchetWorkflowRunSensor(task_id="t", run_id=str(uuid.uuid4()), poke_interval=v),
         "poke_interval", 0),
        (lambda v: HatchetWorkflowRunSensor(task_id="t", run_id=str(uuid.uuid4()), timeout=v), "timeout", 0),
    ],
    ids=["single-poll-0", "single-poll-negative", "single-timeout-0", "single-timeout-negative", "bulk-poll-0",
         "bulk-timeout-negative", "sensor-poke-0", "sensor-timeout-0"],
)
def test_intervals_and_timeouts_of_zero_or_less_fail_when_the_task_is_defined(
    make: Any, field: str, value: float
) -> None:
    with pytest.raises(HatchetValidationError, match=f"{field}: must be more than 0 seconds") as err:
        make(value)
    assert err.value.field == field


@pytest.mark.af2
@pytest.mark.parametrize("run_id", ["[abc", "not-a-uuid", ["a"], "[]"])
def test_a_literal_run_id_that_is_not_a_run_id_fails_when_the_sensor_is_defined(run_id: Any) -> None:
    with pytest.raises(HatchetValidationError) as err:
        HatchetWorkflowRunSensor(task_id="t", run_id=run_id)
    assert err.value.field in ("run_id", "run_id[0]")


@pytest.mark.af2
def test_a_templated_run_id_is_left_to_be_checked_once_rendered() -> None:
    HatchetWorkflowRunSensor(task_id="t", run_id="{{ ti.xcom_pull('x') }}")
    HatchetWorkflowRunSensor(task_id="u", run_id=[str(uuid.uuid4()), "{{ ti.xcom_pull('x') }}"])
