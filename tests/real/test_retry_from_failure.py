"""Retry from failure on real Airflow (``dag.test()``), against the simulator and the real server: a run that
fails at its last task is replayed in place by the retry and finishes on the same run id, for one-task workflows
(whose ``input`` Hatchet answers as the task's envelope) and multi-task ones (whose input is bare)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_hatchet.client import RunStatus, TriggerRequest, endpoints
from tests.airflow_helpers import task_state, xcom_value
from tests.real.conftest import Backend
from tests.real.test_operator_real import make_dag, operator

FAIL_ONCE = {"__sim__": {"behaviour": "fail_first_attempt"}}
OUTPUT_TASKS = {"demo-etl": {"run"}, "demo-multi": {"extract", "transform", "load"}}


def runs_tagged(backend: Backend, tag: str) -> list[Any]:
    time.sleep(1.0)  # past the list's read lag
    since = datetime.now(timezone.utc) - timedelta(minutes=30)
    return list(backend.client().iter_rows(endpoints.runs(since=since, additional_metadata={"test_tag": tag})))


def settled_before_retry(backend: Backend, tag: str) -> Any:
    """A ``pre_execute`` hook: before a retry, wait (bounded) until none of the tagged runs is queued or running,
    as the first try's wait ends at the first failed run while another may still be running."""

    def wait(context: Any) -> None:
        if context["ti"].try_number == 1:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(row.status.is_terminal for row in runs_tagged(backend, tag)):
                return

    return wait


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferred"])
@pytest.mark.parametrize("workflow", ["demo-etl", "demo-multi"], ids=["one-task", "multi-task"])
def test_a_retry_replays_the_failed_run_in_place(
    backend: Backend, airflow_conn: Any, dag_runner: Any, logs: Any, workflow: str, deferrable: bool
) -> None:
    backend.connect(airflow_conn)
    with make_dag(f"replay_in_place_{workflow}_{int(deferrable)}") as dag:
        operator(task_id="t", workflow_name=workflow, input={"n": 1, **FAIL_ONCE},
                 additional_metadata={"test_tag": backend.tag}, wait_for_completion=True, deferrable=deferrable,
                 retry_from_failure=True, retries=1, retry_delay=timedelta(seconds=0))
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    [only] = runs_tagged(backend, backend.tag)
    assert xcom_value(dag_run, "t") == only.id
    assert only.status is RunStatus.COMPLETED
    details = backend.client().send(endpoints.run_details(only.id))
    assert details.retry_count() == 1
    assert set(xcom_value(dag_run, "t", "output")) == OUTPUT_TASKS[workflow]
    text = logs()
    assert f"Replaying the failed run {only.id} in place" in text
    assert "input differs" not in text


def test_a_run_that_fails_again_is_replayed_not_triggered_anew(
    backend: Backend, airflow_conn: Any, dag_runner: Any, logs: Any
) -> None:
    # demo-fail's one task fails on every attempt: each retry replays the same run, and the task fails in the end.
    backend.connect(airflow_conn)
    with make_dag("replay_fails_again") as dag:
        operator(task_id="t", workflow_name="demo-fail", input={"n": 1}, additional_metadata={"test_tag": backend.tag},
                 wait_for_completion=True, retry_from_failure=True, retries=1, retry_delay=timedelta(seconds=0))
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    [only] = runs_tagged(backend, backend.tag)
    assert only.status is RunStatus.FAILED
    assert backend.client().send(endpoints.run_details(only.id)).retry_count() == 1
    text = logs()
    assert f"Replaying the failed run {only.id} in place" in text
    assert "input differs" not in text


def test_a_changed_input_triggers_a_new_run_instead(
    backend: Backend, airflow_conn: Any, dag_runner: Any, logs: Any
) -> None:
    backend.connect(airflow_conn)
    with make_dag("replay_changed_input") as dag:
        # The input holds the try's behaviour, so the retry's rendered input differs from the failed run's.
        behaviour = "{{ 'fail' if ti.try_number == 1 else 'succeed' }}"
        operator(task_id="t", workflow_name="demo-etl", input={"__sim__": {"behaviour": behaviour}},
                 additional_metadata={"test_tag": backend.tag}, wait_for_completion=True,
                 retry_from_failure=True, retries=1, retry_delay=timedelta(seconds=0))
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    newest, first = runs_tagged(backend, backend.tag)
    assert (first.status, newest.status) == (RunStatus.FAILED, RunStatus.COMPLETED)
    assert xcom_value(dag_run, "t") == newest.id
    assert "a replay cannot change the input, so a new run is triggered" in logs()


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferred"])
def test_a_bulk_retry_replays_the_failed_items_and_triggers_the_missing_ones(
    backend: Backend, airflow_conn: Any, dag_runner: Any, logs: Any, deferrable: bool
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowsOperator

    backend.connect(airflow_conn)
    tag = backend.tag
    # Item 2's first try collides with this run's idempotency key, so that try creates no run for it.
    backend.client().send(
        endpoints.trigger(TriggerRequest("demo-idempotent", {"key": f"{tag}-1"}, {"test_tag": f"holder-{tag}"}))
    )
    mine = {"additional_metadata": {"test_tag": tag}}
    with make_dag(f"bulk_replay_{int(deferrable)}") as dag:
        HatchetRunWorkflowsOperator(
            task_id="t",
            transport="rest",
            wait_for_completion=True,
            deferrable=deferrable,
            poll_interval=0.2,
            retry_from_failure=True,
            retries=1,
            retry_delay=timedelta(seconds=0),
            pre_execute=settled_before_retry(backend, tag),
            workflow_runs=[
                {"workflow_name": "demo-etl", "input": {"i": 0}, "options": mine},
                {"workflow_name": "demo-multi", "input": {"i": 1, **FAIL_ONCE}, "options": mine},
                {
                    "workflow_name": "demo-idempotent",
                    "input": {"key": f"{tag}-{{{{ ti.try_number }}}}"},
                    "options": mine,
                },
                {"workflow_name": "demo-etl", "input": {"i": 3, **FAIL_ONCE}, "options": mine},
            ],
        )
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    rows = runs_tagged(backend, tag)
    by_index = {int(row.additional_metadata["airflow_batch_index"]): row for row in rows}
    assert len(rows) == len(by_index) == 4
    assert xcom_value(dag_run, "t") == [by_index[i].id for i in range(4)]
    assert all(row.status is RunStatus.COMPLETED for row in rows)
    # Item 0 kept its run, items 1 (three tasks) and 3 (one task) were replayed in place, item 2 was triggered by
    # the retry.
    assert [by_index[i].additional_metadata["airflow_try_number"] for i in range(4)] == ["1", "1", "2", "1"]
    assert [backend.client().send(endpoints.run_details(by_index[i].id)).retry_count() for i in range(4)] == [
        0,
        1,
        0,
        1,
    ]
    text = logs()
    assert "Replaying 2 failed run(s) of the batch in place" in text
    assert "its input changed" not in text
