"""The real server's attempt numbering in task logs, after a retry, and what the forwarding makes of it.

``demo-retry`` (``e2e/hatchet/worker.py``) fails on both of its attempts and logs ``retry count <n>`` first on
each. The simulator has no retries, so these run against the real server only.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_hatchet.client import HatchetClient, TriggerRequest, endpoints
from airflow_provider_hatchet.client.errors import HatchetNotFoundError
from airflow_provider_hatchet.client.models import RunDetails
from tests.airflow_helpers import task_state, xcom_value
from tests.real.conftest import Backend
from tests.real.test_operator_real import make_dag


def only_real(backend: Backend) -> None:
    if not backend.is_real:
        pytest.skip("the simulator does not retry tasks")


def finished(client: HatchetClient, run_id: str) -> RunDetails:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            details = client.send(endpoints.run_details(run_id))
        except HatchetNotFoundError:
            details = None
        if details is not None and details.status.is_terminal:
            return details
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish")


def test_a_retried_tasks_lines_carry_their_attempt_and_the_details_name_the_latest(backend: Backend) -> None:
    only_real(backend)
    client = backend.client()
    details = finished(
        client, client.send(endpoints.trigger(TriggerRequest("demo-retry", {}, {"test_tag": backend.tag})))
    )
    [task] = details.tasks
    assert task.attempt == 2
    task_id = str(task.task_external_id)

    every = client.send(endpoints.task_logs(task_id))
    first = client.send(endpoints.task_logs(task_id, attempt=1))
    second = client.send(endpoints.task_logs(task_id, attempt=2))

    assert [line.message for line in first] == [
        "retry count 0",
        "demo-retry:run started",
        "input: {}",
        "demo-retry:run failing: simulated failure in demo-retry:run",
    ]
    assert [line.message for line in second] == ["retry count 1", *[line.message for line in first[1:]]]
    assert {line.attempt for line in first} == {1} and {line.attempt for line in second} == {2}
    assert every == first + second  # oldest first, both attempts
    assert client.send(endpoints.task_logs(task_id, attempt=3)) == []


def test_only_the_latest_attempts_lines_are_forwarded(
    backend: Backend, airflow_conn: Any, dag_runner: Any, logs: Any
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

    only_real(backend)
    backend.connect(airflow_conn)
    with make_dag("real_logs_retry") as dag:
        HatchetRunWorkflowOperator(
            task_id="t",
            workflow_name="demo-retry",
            wait_for_completion=True,
            poll_interval=0.2,
            additional_metadata={"test_tag": backend.tag},
        )
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    out = logs()
    assert f"----- Hatchet logs of run {xcom_value(dag_run, 't', 'hatchet_run_id')}, task run (" in out
    assert "), attempt 2 -----" in out
    assert "retry count 1" in out
    assert "retry count 0" not in out
