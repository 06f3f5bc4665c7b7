"""Which earlier run a new try of ``HatchetRunWorkflowOperator`` re-attaches to, decided by the clear generation.

A retry after a failed try re-attaches; a task cleared after it succeeded triggers a new run. Real Airflow
(``dag.test()``, on Airflow 3.3 and 2.10) against the simulator over loopback HTTP; the clear is Airflow's own
``clear_task_instances``, as the UI and the REST API use it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS
from tests.airflow_helpers import task_state, xcom_value

pytestmark = pytest.mark.af2


def make_dag(dag_id: str) -> Any:
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import DAG
    else:
        from airflow.models.dag import DAG

    return DAG(dag_id, schedule=None, start_date=datetime(2025, 1, 1), catchup=False)


def python_task(task_id: str, callable_: Callable[..., Any]) -> Any:
    if AIRFLOW_V_3_0_PLUS:
        from airflow.providers.standard.operators.python import PythonOperator
    else:
        from airflow.operators.python import PythonOperator

    return PythonOperator(task_id=task_id, python_callable=callable_)


def clear_upstream_once(**context: Any) -> None:
    """Clear the succeeded task ``t`` of this DAG run, as a person does to run its Hatchet workflow again."""
    from airflow.models.taskinstance import TaskInstance, clear_task_instances
    from airflow.utils.session import create_session
    from sqlalchemy import select

    ti = context["ti"]
    with create_session() as session:
        [done] = session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == ti.dag_id, TaskInstance.run_id == ti.run_id, TaskInstance.task_id == "t"))
        assert done.state == "success"
        # Airflow 2 finds the task's retries through the DAG, which DAG.clear passes and a test DAG needs.
        by_dag = {} if AIRFLOW_V_3_0_PLUS else {"dag": context["dag"]}
        clear_task_instances([done], session, dag_run_state=False, **by_dag)


def operator(**kwargs: Any) -> Any:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

    return HatchetRunWorkflowOperator(task_id="t", poll_interval=0.1, **kwargs)


def trigger_count(sim: Any) -> int:
    return sum(1 for r in sim.requests if r.path.endswith("/workflow-runs/trigger"))


@pytest.mark.parametrize("deferrable", [False, True], ids=["in-worker", "deferred"])
def test_clearing_a_succeeded_task_triggers_a_new_run(
    hatchet: Any, dag_runner: Callable[..., Any], logs: Callable[[], str], deferrable: bool
) -> None:
    with make_dag(f"rerun_cleared_{int(deferrable)}") as dag:
        operator(workflow_name="demo-etl", input={"n": 1}, wait_for_completion=True, deferrable=deferrable) >> (
            python_task("clear_t", clear_upstream_once))
    dag_run = dag_runner(dag)

    assert (task_state(dag_run, "t"), task_state(dag_run, "clear_t")) == ("success", "success")
    first, second = hatchet.runs
    assert [r.additional_metadata["airflow_try_number"] for r in (first, second)] == ["1", "2"]
    assert xcom_value(dag_run, "t") == second.id
    assert xcom_value(dag_run, "t", "hatchet_run_id") == second.id
    assert hatchet.run_status(second.id) == "COMPLETED"
    assert "Try 2 is the first since the task instance was cleared; triggering a new run" in logs()


@pytest.mark.proves_retry("HatchetRunWorkflowOperator")
def test_a_retry_after_a_failed_try_re_attaches_to_the_completed_run(
    hatchet: Any, dag_runner: Callable[..., Any], logs: Callable[[], str]
) -> None:
    hatchet.fail_next("details", 1, 403)  # the first try fails reading the output of its completed run
    with make_dag("rerun_retry") as dag:
        operator(workflow_name="demo-etl", wait_for_completion=True, retries=1, retry_delay=timedelta(0))
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    [run] = hatchet.runs
    assert trigger_count(hatchet) == 1
    assert xcom_value(dag_run, "t") == run.id
    assert xcom_value(dag_run, "t", "output")["run"]["echo"] == {}
    text = logs()
    assert f"re-attaching to earlier run {run.id}" in text or "Job already completed successfully" in text


def bulk_operator(n: int, **kwargs: Any) -> Any:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowsOperator

    return HatchetRunWorkflowsOperator(task_id="t", poll_interval=0.1, retry_delay=timedelta(0),
                                       workflow_runs=[{"workflow_name": "demo-etl", "input": {"i": i}}
                                                      for i in range(n)], **kwargs)


def runs_of_try(sim: Any, try_number: int) -> dict[int, Any]:
    """The simulator's runs created by one try, by batch index."""
    return {int(r.additional_metadata["airflow_batch_index"]): r for r in sim.runs
            if r.additional_metadata["airflow_try_number"] == str(try_number)}


def rejects_item_on_try(index: int, try_number: int) -> Callable[[dict[str, Any]], bool]:
    def matches(body: dict[str, Any]) -> bool:
        meta = body.get("additionalMetadata", {})
        return (meta.get("airflow_batch_index"), meta.get("airflow_try_number")) == (str(index), str(try_number))

    return matches


@pytest.mark.parametrize("deferrable", [False, True], ids=["in-worker", "deferred"])
def test_clearing_a_succeeded_bulk_task_triggers_a_new_batch(
    hatchet: Any, dag_runner: Callable[..., Any], logs: Callable[[], str], deferrable: bool
) -> None:
    with make_dag(f"rerun_bulk_cleared_{int(deferrable)}") as dag:
        bulk_operator(3, wait_for_completion=True, deferrable=deferrable) >> python_task(
            "clear_t", clear_upstream_once)
    dag_run = dag_runner(dag)

    assert (task_state(dag_run, "t"), task_state(dag_run, "clear_t")) == ("success", "success")
    first, second = runs_of_try(hatchet, 1), runs_of_try(hatchet, 2)
    assert (sorted(first), sorted(second), len(hatchet.runs)) == ([0, 1, 2], [0, 1, 2], 6)
    ti = first[0].additional_metadata["airflow_ti"]
    assert {r.additional_metadata["airflow_ti"] for r in second.values()} == {f"{ti}|gen2"}
    assert xcom_value(dag_run, "t") == [second[i].id for i in range(3)]
    assert xcom_value(dag_run, "t", "hatchet_batch_key") == f"{ti}|gen2"
    assert [o["run"]["echo"] for o in xcom_value(dag_run, "t", "output")] == [{"i": i} for i in range(3)]
    assert {hatchet.run_status(r.id) for r in second.values()} == {"COMPLETED"}
    assert "Try 2 is the first since the task instance was cleared; triggering a new batch" in logs()


@pytest.mark.proves_retry("HatchetRunWorkflowsOperator")
def test_a_bulk_retry_after_a_failed_try_resumes_the_same_batch(
    hatchet: Any, dag_runner: Callable[..., Any]
) -> None:
    hatchet.reject_trigger_if(rejects_item_on_try(1, 1), status=400, message="quota exceeded")
    with make_dag("rerun_bulk_retry") as dag:
        bulk_operator(3, retries=1)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    first, second = runs_of_try(hatchet, 1), runs_of_try(hatchet, 2)
    assert (sorted(first), sorted(second), len(hatchet.runs)) == ([0, 2], [1], 3)
    assert xcom_value(dag_run, "t") == [first[0].id, second[1].id, first[2].id]
    assert xcom_value(dag_run, "t", "hatchet_batch_key") == first[0].additional_metadata["airflow_ti"]


def test_a_retry_of_a_cleared_bulk_task_resumes_the_new_batch_only(
    hatchet: Any, dag_runner: Callable[..., Any]
) -> None:
    hatchet.reject_trigger_if(rejects_item_on_try(1, 2), status=400, message="quota exceeded")
    with make_dag("rerun_bulk_cleared_retry") as dag:
        bulk_operator(3, retries=1) >> python_task("clear_t", clear_upstream_once)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    first, second, third = runs_of_try(hatchet, 1), runs_of_try(hatchet, 2), runs_of_try(hatchet, 3)
    assert (sorted(first), sorted(second), sorted(third), len(hatchet.runs)) == ([0, 1, 2], [0, 2], [1], 6)
    ti = first[0].additional_metadata["airflow_ti"]
    assert third[1].additional_metadata["airflow_ti"] == f"{ti}|gen2"
    assert xcom_value(dag_run, "t") == [second[0].id, third[1].id, second[2].id]
    assert xcom_value(dag_run, "t", "hatchet_batch_key") == f"{ti}|gen2"
