"""``check_workers`` on both servers: the worker list as the hook reads it, a task that refuses to trigger for a
workflow no worker serves, and a wait that ends when its run stays QUEUED past the grace on Hatchet's clock."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_hatchet.client import (
    AsyncHatchetClient,
    TriggerRequest,
    WaitResume,
    WaitStatus,
    endpoints,
)
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.triggers.hatchet import run_wait
from tests.airflow_helpers import task_state
from tests.real.conformance import REGISTER_WORKFLOW, WORKER_PYTHON
from tests.real.conftest import Backend

UNSERVED = "demo-unserved"
START = datetime(2025, 1, 1)


def register_unserved(backend: Backend) -> str:
    """Register a workflow no worker serves: in the simulator with ``served=False``, on the real server with
    hatchet-sdk's ``PutWorkflow`` and no worker (re-registering it is harmless)."""
    if backend.is_real:
        subprocess.run([str(WORKER_PYTHON), str(REGISTER_WORKFLOW), UNSERVED],
                       env={**os.environ, "HATCHET_CLIENT_TOKEN": backend.token}, capture_output=True, text=True,
                       timeout=60, check=True)
    else:
        backend.sim.register_workflow(UNSERVED, served=False)
    return UNSERVED


def test_the_hook_counts_the_worker_that_serves_a_workflow(backend: Backend, airflow_conn: Any) -> None:
    unserved = register_unserved(backend)
    backend.connect(airflow_conn)
    hook = HatchetHook()
    assert hook.live_workers("demo-etl") >= 1
    assert hook.live_workers("demo-etl", namespace="AirflowTest") >= 1  # airflowtest_demo-etl
    assert hook.live_workers(unserved) == 0
    hook.close()


def test_fail_triggers_nothing_for_a_workflow_no_worker_serves(
    backend: Backend, airflow_conn: Any, dag_runner: Any, logs: Any
) -> None:
    from airflow.sdk import DAG

    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

    unserved = register_unserved(backend)
    backend.connect(airflow_conn)
    with DAG("real_worker_fail", schedule=None, start_date=START, catchup=False) as dag:
        HatchetRunWorkflowOperator(task_id="t", workflow_name=unserved, check_workers="fail",
                                   additional_metadata={"test_tag": backend.tag})
    dag_run = dag_runner(dag)
    assert task_state(dag_run, "t") == "failed"
    assert f"No live Hatchet worker serves workflow {unserved!r}" in logs()
    since = datetime.now(timezone.utc) - timedelta(minutes=10)
    assert list(backend.client().iter_rows(endpoints.runs(since=since, additional_metadata={
        "test_tag": backend.tag}))) == []


@pytest.mark.parametrize("mode", ["fail", "warn"])
async def test_a_run_queued_past_the_grace_ends_or_warns_the_wait(backend: Backend, mode: str) -> None:
    unserved = register_unserved(backend)
    async with AsyncHatchetClient(backend.config()) as client:
        run_id = await client.send(endpoints.trigger(TriggerRequest(unserved, {}, {"test_tag": backend.tag})))
        try:
            # Two seconds of Hatchet's time (its Date header), not the minute of the default grace.
            wait = run_wait([run_id], poll_interval=0.5, execution_deadline=None if mode == "fail" else
                            datetime.now(timezone.utc).timestamp() + 6.0,
                            resume=WaitResume(check_workers=mode, workflows=(unserved,), queued_grace=2.0))
            log = _Log()
            event = await wait.run(client, log)
        finally:
            await client.send(endpoints.cancel([run_id]))
    assert event.status is (WaitStatus.NO_WORKER if mode == "fail" else WaitStatus.TIMEOUT)
    assert event.statuses == {run_id: "QUEUED"}
    assert sum(f"No live Hatchet worker serves workflow {unserved!r}" in line for line in log.warnings) == 1


class _Log:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def info(self, msg: str, /, *args: object) -> None:
        """Progress is not kept."""

    def warning(self, msg: str, /, *args: object) -> None:
        self.warnings.append(msg % args)

    def exception(self, msg: str, /, *args: object) -> None:
        self.warnings.append(msg % args)
