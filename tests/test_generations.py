"""A retry against a clear, told apart by the clear generation (``first_try_of_generation``), on Airflow 3.3 and
2.10 (``dag.test()``) against the simulator over loopback HTTP.

A try that fails after ``execute()`` succeeded (here its ``post_execute`` raises, as an XCom backend or a lost
worker can) is retried, not cleared: the retry re-attaches to the run (or batch) it created. Clearing the task
starts a new generation, which never re-attaches to what an earlier generation created.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_hatchet._identity import first_try_of_generation
from tests.airflow_helpers import task_state, xcom_value
from tests.test_rerun import (
    bulk_operator,
    clear_upstream_once,
    make_dag,
    operator,
    python_task,
    runs_of_try,
    trigger_count,
)

pytestmark = pytest.mark.af2


def fail_after_execute_on_first_try(context: Any, result: Any = None) -> None:
    """A ``post_execute`` hook that fails the first try once ``execute()`` has succeeded."""
    if context["ti"].try_number == 1:
        raise RuntimeError("post_execute failed after execute() succeeded")


@pytest.mark.proves_retry("HatchetRunWorkflowOperator")
@pytest.mark.parametrize("deferrable", [False, True], ids=["in-worker", "deferred"])
def test_a_retry_after_a_try_that_failed_past_execute_re_attaches(
    hatchet: Any, dag_runner: Callable[..., Any], logs: Callable[[], str], deferrable: bool
) -> None:
    with make_dag(f"gen_post_execute_{int(deferrable)}") as dag:
        operator(workflow_name="demo-etl", input={"n": 1}, wait_for_completion=True, deferrable=deferrable,
                 retries=1, retry_delay=timedelta(0), post_execute=fail_after_execute_on_first_try)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    [run] = hatchet.runs
    assert trigger_count(hatchet) == 1
    assert xcom_value(dag_run, "t") == run.id
    assert xcom_value(dag_run, "t", "output")["run"]["echo"] == {"n": 1}
    assert "post_execute failed after execute() succeeded" in logs()


@pytest.mark.proves_retry("HatchetRunWorkflowsOperator")
@pytest.mark.parametrize("deferrable", [False, True], ids=["in-worker", "deferred"])
def test_a_bulk_retry_after_a_try_that_failed_past_execute_resumes_the_batch(
    hatchet: Any, dag_runner: Callable[..., Any], deferrable: bool
) -> None:
    with make_dag(f"gen_bulk_post_execute_{int(deferrable)}") as dag:
        bulk_operator(3, wait_for_completion=True, deferrable=deferrable, retries=1,
                      post_execute=fail_after_execute_on_first_try)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    first = runs_of_try(hatchet, 1)
    assert (sorted(first), len(hatchet.runs)) == ([0, 1, 2], 3)
    assert xcom_value(dag_run, "t") == [first[i].id for i in range(3)]
    assert xcom_value(dag_run, "t", "hatchet_batch_key") == first[0].additional_metadata["airflow_ti"]


def test_a_retry_in_a_new_generation_ignores_the_earlier_generations_run(
    hatchet: Any, dag_runner: Callable[..., Any], logs: Callable[[], str]
) -> None:
    # Try 2 (the first after the clear) is refused before it creates anything; its retry, try 3, must not take the
    # run try 1 completed for its own.
    hatchet.reject_trigger_if(lambda body: body.get("additionalMetadata", {}).get("airflow_try_number") == "2",
                              status=400, message="quota exceeded")
    with make_dag("gen_new_generation_retry") as dag:
        operator(workflow_name="demo-etl", wait_for_completion=True, retries=1, retry_delay=timedelta(0)) >> (
            python_task("clear_t", clear_upstream_once))
    dag_run = dag_runner(dag)

    assert (task_state(dag_run, "t"), task_state(dag_run, "clear_t")) == ("success", "success")
    first, third = hatchet.runs
    assert [r.additional_metadata["airflow_try_number"] for r in (first, third)] == ["1", "3"]
    assert xcom_value(dag_run, "t") == third.id
    assert "Try 3: no earlier Hatchet run of this task instance since try 2" in logs()


class _TI:
    def __init__(self, try_number: int, max_tries: Any) -> None:
        self.try_number, self.max_tries = try_number, max_tries


class _Task:
    def __init__(self, retries: Any) -> None:
        self.retries = retries


@pytest.mark.parametrize(("try_number", "max_tries", "retries", "first"), [
    (1, 2, 2, 1),    # created: max_tries = retries
    (3, 2, 2, 1),    # the last retry of the first generation
    (4, 5, 2, 4),    # cleared after try 3: max_tries = 3 + retries
    (5, 5, 2, 4),    # its retry
    (4, 3, 0, 4),    # cleared after try 3, no retries
    (2, 7, 2, 2),    # retries lowered since the clear: never after this try
    (1, -1, 0, 1),   # max_tries unset (Airflow's server default)
    (2, None, 1, 1),  # no max_tries at all: counted as the first generation
])
def test_first_try_of_generation(try_number: int, max_tries: Any, retries: int, first: int) -> None:
    context = {"ti": _TI(try_number, max_tries), "task": _Task(retries)}
    assert first_try_of_generation(context) == first
