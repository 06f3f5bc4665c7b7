"""Retry from failure of one-task runs, whose ``input`` Hatchet answers as the task's envelope
(``{"input": ..., "parents": {}, "triggered_by": ...}``), and of multi-task runs, whose input is bare: on Airflow 3.3
and 2.10 (``dag.test()``) against the simulator over loopback HTTP. ``tests/real/test_retry_from_failure.py`` runs
the same shapes on the real server.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_hatchet.client import endpoints
from airflow_provider_hatchet.client.models import RunDetails
from tests.airflow_helpers import task_state, xcom_value
from tests.real.recording import load_real_answers
from tests.test_rerun import make_dag

pytestmark = pytest.mark.af2

FAIL_ONCE = {"__sim__": {"behaviour": "fail_first_attempt"}}
OUTPUT_TASKS = {"demo-etl": {"run"}, "demo-multi": {"extract", "transform", "load"}}


def recorded_details(scenario: str) -> dict[str, Any]:
    """The real server's details of a scenario's run, as ``real_answers.json`` holds them (times normalised)."""
    [body] = [step.body for step in load_real_answers()[scenario] if step.name == "details"]
    return dict(body)


def details(run_input: Any, shape: int, tasks: int = 1) -> RunDetails:
    """Run details with this input, ``shape`` tasks in the workflow and ``tasks`` of them created."""
    return RunDetails.model_validate({
        "run": {"metadata": {"id": "r"}, "status": "FAILED", "input": run_input},
        "shape": [{"taskName": f"t{i}"} for i in range(shape)],
        "tasks": [{"status": "FAILED", "taskId": i} for i in range(tasks)],
    })


@pytest.mark.parametrize(("scenario", "sent"), [
    ("run_completed", {"n": 1, "nested": {"a": [1, 2]}}),  # demo-etl: one task
    ("run_failed", {"n": 1}),  # demo-fail: one task
    ("run_multi_task", {"n": 2}),  # demo-multi: three tasks
])
def test_the_trigger_input_of_a_run_as_the_real_server_answers_it(scenario: str, sent: dict[str, Any]) -> None:
    body = recorded_details(scenario)
    answered = details(body["run"]["input"], len(body["shape"]))

    assert answered.trigger_input() == sent


def test_a_multi_task_runs_input_that_looks_like_an_envelope_is_kept() -> None:
    lookalike = {"input": {"n": 1}, "parents": {}, "triggered_by": "manual"}

    # A DAG run that failed at its first task has one task so far: the workflow's shape still says three.
    assert details(lookalike, shape=3, tasks=1).trigger_input() == lookalike
    assert details({"n": 1}, shape=1).trigger_input() == {"n": 1}


@pytest.mark.parametrize("workflow", ["demo-etl", "demo-multi"])
def test_a_retry_replays_the_failed_run_in_place(
    hatchet: Any, dag_runner: Any, logs: Any, workflow: str
) -> None:
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

    with make_dag(f"replay_shape_{workflow}") as dag:
        HatchetRunWorkflowOperator(task_id="t", workflow_name=workflow, input={"n": 1, **FAIL_ONCE},
                                   poll_interval=0.1, wait_for_completion=True, retry_from_failure=True, retries=1,
                                   retry_delay=timedelta(seconds=0))
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    [run] = hatchet.runs
    retries = HatchetHook().send(endpoints.run_details(run.id)).retry_count()
    assert (xcom_value(dag_run, "t"), retries, hatchet.run_status(run.id)) == (run.id, 1, "COMPLETED")
    assert set(xcom_value(dag_run, "t", "output")) == OUTPUT_TASKS[workflow]
    text = logs()
    assert f"Replaying the failed run {run.id} in place" in text
    assert "input differs" not in text


def test_a_bulk_retry_replays_failed_one_task_and_multi_task_runs(
    hatchet: Any, dag_runner: Any, logs: Any
) -> None:
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowsOperator

    def first_try_settled(context: Any) -> None:
        # The first try's wait fails at the first failed run; the retry must find both failed, not one running.
        if context["ti"].try_number > 1:
            for _ in range(200):
                if all(hatchet.run_status(r.id) in ("COMPLETED", "FAILED") for r in hatchet.runs):
                    return
                time.sleep(0.05)

    items = [("demo-etl", {"i": 0}), ("demo-etl", {"i": 1, **FAIL_ONCE}), ("demo-multi", {"i": 2, **FAIL_ONCE})]
    with make_dag("replay_shape_bulk") as dag:
        HatchetRunWorkflowsOperator(
            task_id="t", transport="rest", wait_for_completion=True, poll_interval=0.1, retry_from_failure=True,
            retries=1, retry_delay=timedelta(seconds=0), pre_execute=first_try_settled,
            workflow_runs=[{"workflow_name": name, "input": run_input} for name, run_input in items])
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    by_index = {int(r.additional_metadata["airflow_batch_index"]): r for r in hatchet.runs}
    assert (len(hatchet.runs), sorted(by_index)) == (3, [0, 1, 2])
    assert xcom_value(dag_run, "t") == [by_index[i].id for i in range(3)]
    hook = HatchetHook()
    assert [hook.send(endpoints.run_details(by_index[i].id)).retry_count() for i in range(3)] == [0, 1, 1]
    assert {hatchet.run_status(r.id) for r in hatchet.runs} == {"COMPLETED"}
    text = logs()
    assert "Replaying 2 failed run(s) of the batch in place" in text
    assert "its input changed" not in text


def test_a_bulk_retry_ignores_a_batch_run_whose_index_is_not_a_plain_number(
    hatchet: Any, dag_runner: Any
) -> None:
    from airflow_provider_hatchet._identity import BATCH_INDEX_KEY, TI_KEY, ti_key
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook
    from tests.test_rerun import bulk_operator, rejects_item_on_try

    def forge_a_failed_run(context: Any) -> None:
        # Anyone who can trigger in the tenant can stamp the batch's key; "²" passes str.isdigit() but not int().
        if context["ti"].try_number == 2:
            forged = HatchetHook().run_workflow("demo-fail", {}, {TI_KEY: ti_key(context), BATCH_INDEX_KEY: "²"})
            for _ in range(200):
                if hatchet.run_status(forged) == "FAILED":
                    return
                time.sleep(0.05)

    hatchet.reject_trigger_if(rejects_item_on_try(1, 1), status=400, message="quota exceeded")
    with make_dag("replay_forged_index") as dag:
        bulk_operator(2, transport="rest", retries=1, retry_from_failure=True, pre_execute=forge_a_failed_run)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    items = {(r.additional_metadata.get("airflow_try_number"), r.additional_metadata[BATCH_INDEX_KEY]): r.id
             for r in hatchet.runs}
    assert sorted(items, key=str) == sorted([("1", "0"), ("2", "1"), (None, "²")], key=str)
    assert xcom_value(dag_run, "t") == [items["1", "0"], items["2", "1"]]
