"""Retry from failure and the cancel and replay operators on Airflow 3.3 and 2.10 (``dag.test()``), against the
simulator over loopback HTTP. ``tests/real/test_retry_from_failure.py`` and ``test_run_lifecycle.py`` run the same
on the real server."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_hatchet.client import endpoints
from tests.airflow_helpers import task_state, xcom_value
from tests.test_rerun import make_dag

pytestmark = pytest.mark.af2

FAIL_ONCE = {"__sim__": {"behaviour": "fail_first_attempt"}}


def test_a_retry_replays_the_failed_run_in_place(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

    with make_dag("af_replay_in_place") as dag:
        HatchetRunWorkflowOperator(task_id="t", workflow_name="demo-multi", input=FAIL_ONCE, poll_interval=0.1,
                                   wait_for_completion=True, deferrable=False, retry_from_failure=True, retries=1,
                                   retry_delay=timedelta(seconds=0))
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    [run] = hatchet.runs
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook

    retries = HatchetHook().send(endpoints.run_details(run.id)).retry_count()
    assert (xcom_value(dag_run, "t"), retries, hatchet.run_status(run.id)) == (run.id, 1, "COMPLETED")
    assert f"Replaying the failed run {run.id} in place" in logs()


def test_the_operators_cancel_and_replay_by_filter(hatchet: Any, dag_runner: Any) -> None:
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook
    from airflow_provider_hatchet.operators.hatchet import HatchetCancelRunsOperator, HatchetReplayRunsOperator

    hook = HatchetHook()
    hanging = hook.run_workflow("demo-hang", {}, {"group": "a"})
    failed = hook.run_workflow("demo-etl", FAIL_ONCE, {"group": "b"})
    for _ in range(200):
        if hatchet.run_status(failed) == "FAILED":
            break
        time.sleep(0.05)
    with make_dag("af_cancel_replay") as dag:
        HatchetCancelRunsOperator(task_id="cancel", statuses=["QUEUED", "RUNNING"], additional_metadata={"group": "a"})
        HatchetReplayRunsOperator(task_id="replay", run_ids=[failed])
    dag_run = dag_runner(dag)

    assert xcom_value(dag_run, "cancel") == [hanging]
    assert xcom_value(dag_run, "replay") == [failed]
    for _ in range(200):  # a cancel takes effect a moment after it is answered, as on the real server
        if hatchet.run_status(hanging) == "CANCELLED":
            break
        time.sleep(0.05)
    assert hatchet.run_status(hanging) == "CANCELLED"
    for _ in range(200):  # past the replay's read lag, until it has run again
        if hatchet.run_status(failed) == "COMPLETED":
            break
        time.sleep(0.05)
    assert (hatchet.run_status(failed), hook.send(endpoints.run_details(failed)).retry_count()) == ("COMPLETED", 1)
