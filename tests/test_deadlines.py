"""A deferred wait ends at the earlier of ``timeout`` and ``execution_timeout``, counted from the try's start.

Real Airflow (``dag.test()``, on Airflow 3.3 and 2.10) against the simulator over loopback HTTP; ``demo-hang``
runs never finish on their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_hatchet.client import endpoints
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from tests.airflow_helpers import task_state

pytestmark = pytest.mark.af2

START = datetime(2025, 1, 1)
# The tasks' own timeout in these tests: a wait that ignored execution_timeout would run this long.
LONG = 120.0


def make_dag(dag_id: str) -> Any:
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import DAG
    else:
        from airflow.models.dag import DAG

    return DAG(dag_id, schedule=None, start_date=START, catchup=False)


def run_timed(dag_runner: Callable[..., Any], dag: Any) -> tuple[dict[str, str | None], float]:
    """Run the DAG; return its task states and the seconds it took.

    Airflow 2 fails a resumed try that is past its ``execution_timeout`` with ``AirflowTaskTimeout``, a
    ``BaseException`` its ``dag.test()`` lets through: the states are then read back from the metadata DB.
    """
    started = time.monotonic()
    try:
        dag_run = dag_runner(dag)
    except BaseException as exc:
        if AIRFLOW_V_3_0_PLUS or type(exc).__name__ != "AirflowTaskTimeout":
            raise
        from airflow.models.dagrun import DagRun

        [dag_run] = DagRun.find(dag_id=dag.dag_id)
    took = time.monotonic() - started
    return {ti.task_id: task_state(dag_run, ti.task_id) for ti in dag_run.get_task_instances()}, took


def lifetime(run_id: str) -> float:
    """Seconds from a run's creation to its end, by Hatchet's record."""
    run = HatchetHook().send(endpoints.run_details(run_id)).run
    assert run.created_at is not None and run.finished_at is not None
    return (run.finished_at - run.created_at).total_seconds()


def settled_status(sim: Any, run_id: str) -> str:
    time.sleep(0.3)  # the simulator applies a cancel after its cancel_delay
    return str(sim.run_status(run_id))


def start_then_dawdle(context: Any) -> None:
    """``pre_execute``: spend 6 s of the try before the operator runs.

    A scheduled try has its ``start_date`` from its start; Airflow 2's ``dag.test()`` leaves it unset, so it is
    set here as the scheduler would (Airflow 2 then also fails the resumed try itself, past its timeout).
    """
    ti = context["ti"]
    if ti.start_date is None:
        ti.start_date = datetime.now(timezone.utc)
    time.sleep(6)


def test_execution_timeout_ends_a_deferred_wait_from_the_tries_start_and_cancels_the_run(
    hatchet: Any, dag_runner: Callable[..., Any], logs: Callable[[], str]
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

    with make_dag("deadline_single") as dag:
        # The try spends 6 s before it triggers and defers: the run lives 2 s, 8 s if counted from the deferral.
        HatchetRunWorkflowOperator(
            task_id="t", workflow_name="demo-hang", wait_for_completion=True, deferrable=True, poll_interval=0.2,
            timeout=LONG, execution_timeout=timedelta(seconds=8), pre_execute=start_then_dawdle,
        )
    states, _ = run_timed(dag_runner, dag)

    assert states == {"t": "failed"}
    [run] = hatchet.runs
    assert settled_status(hatchet, run.id) == "CANCELLED"
    assert lifetime(run.id) < 6
    assert "The deadline passed: asked Hatchet to cancel 1 run(s)" in logs()


def test_execution_timeout_ends_a_deferred_bulk_wait_and_cancels_the_unfinished_runs(
    hatchet: Any, dag_runner: Callable[..., Any]
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowsOperator

    with make_dag("deadline_bulk") as dag:
        HatchetRunWorkflowsOperator(
            task_id="t", workflow_runs=[{"workflow_name": "demo-etl"}, {"workflow_name": "demo-hang"},
                                        {"workflow_name": "demo-hang"}],
            wait_for_completion=True, deferrable=True, poll_interval=0.2, timeout=LONG,
            # Long enough for demo-etl to finish on a loaded 2-core machine, where Airflow 3.0 and 3.1 take
            # seconds from the try's start to the deferral; still far below LONG.
            execution_timeout=timedelta(seconds=10),
        )
    states, _ = run_timed(dag_runner, dag)

    assert states == {"t": "failed"}
    statuses = {run.workflow_name: settled_status(hatchet, run.id) for run in hatchet.runs}
    assert statuses == {"demo-etl": "COMPLETED", "demo-hang": "CANCELLED"}
    assert all(lifetime(run.id) < LONG / 2 for run in hatchet.runs)


@pytest.mark.parametrize("limit", ["timeout", "execution_timeout"])
def test_the_deferred_sensor_fails_at_its_deadline_and_leaves_the_run_alone(
    hatchet: Any, dag_runner: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, limit: str
) -> None:
    from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor

    if not AIRFLOW_V_3_0_PLUS:  # Airflow 2's sensor dependency loads the configured executor: one for SQLite
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "SequentialExecutor")

    run_id = HatchetHook().run_workflow("demo-hang", {})
    limits: dict[str, Any] = (
        {"timeout": 3} if limit == "timeout" else {"timeout": LONG, "execution_timeout": timedelta(seconds=3)}
    )
    with make_dag(f"deadline_sensor_{limit}") as dag:
        HatchetWorkflowRunSensor(task_id="wait", run_id=run_id, deferrable=True, poke_interval=0.2, **limits)
    states, took = run_timed(dag_runner, dag)

    assert states == {"wait": "failed"}
    assert took < LONG / 2
    assert settled_status(hatchet, run_id) == "RUNNING"


def test_a_trigger_cancelled_by_airflow_after_the_deadline_still_cancels_the_runs(hatchet: Any) -> None:
    # Airflow 2 times a deferred task out at its execution_timeout by itself and cancels the trigger; when
    # that comes before the trigger's own timeout event, the runs must be cancelled all the same.
    from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunTrigger

    run_id = HatchetHook().run_workflow("demo-hang", {})

    async def cancel_after(trigger: HatchetWorkflowRunTrigger, seconds: float) -> None:
        async def consume() -> None:
            async for event in trigger.run():
                raise AssertionError(f"the trigger fired before Airflow cancelled it: {event}")

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(seconds)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await HatchetHook.aclose_loop_clients()

    for cancel_on_timeout, expected in ((False, "RUNNING"), (True, "CANCELLED")):
        hatchet.clear_faults()
        for route in ("status", "list", "details"):  # the trigger is still in its first round when cancelled
            hatchet.fail_next(route, 1, delay=5)
        trigger = HatchetWorkflowRunTrigger([run_id], poll_interval=0.2, execution_deadline=time.time() + 0.5,
                                            cancel_on_timeout=cancel_on_timeout)
        # The deadline cuts a round in flight short, so the trigger's own event normally comes first; keep the
        # round running past the deadline, as a trigger starved of CPU would, for Airflow's cancel to come first.
        trigger.wait._remaining = lambda: None  # type: ignore[method-assign]
        asyncio.run(cancel_after(trigger, 1.0))
        assert settled_status(hatchet, run_id) == expected
