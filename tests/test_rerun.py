"""Which earlier run a new try of ``HatchetRunWorkflowOperator`` re-attaches to, decided from Airflow's record.

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
        clear_task_instances([done], session, dag_run_state=False)


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
    assert f"an earlier try succeeded with run {first.id} (the task was cleared); triggering a new one" in logs()


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
