"""HatchetRunWorkflowOperator on real Airflow (``dag.test()``) against the simulator and the real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_hatchet.client import HatchetClient, RunStatus, endpoints
from airflow_provider_hatchet.client.models import RunSummary
from tests.airflow_helpers import task_state, xcom_value
from tests.real.conftest import Backend
from tests.real.test_client_and_hook import wait_terminal

REPO = Path(__file__).resolve().parents[2]
START = datetime(2025, 1, 1)


def make_dag(dag_id: str) -> Any:
    from airflow.sdk import DAG

    return DAG(dag_id, schedule=None, start_date=START, catchup=False)


def operator(**kwargs: Any) -> Any:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

    kwargs.setdefault("poll_interval", 0.2)
    return HatchetRunWorkflowOperator(**kwargs)


def runs_of(client: HatchetClient, metadata: dict[str, str]) -> list[RunSummary]:
    """The runs carrying ``metadata``, newest first, after the read lag has passed."""
    time.sleep(1.0)
    return list(client.iter_rows(endpoints.runs(since=datetime.now(timezone.utc) - timedelta(minutes=30),
                                 additional_metadata=metadata)))


def priority_in_hatchet(backend: Backend, run_id: str) -> int:
    """The priority Hatchet stored for a single-task run: from the simulator's request, or from Postgres."""
    if not backend.is_real:
        [run] = [r for r in backend.sim.runs if r.id == run_id]
        return int(run.body["priority"])
    assert backend.database_url, "HATCHET_DATABASE_URL is needed to read the priority"
    out = subprocess.run(["psql", backend.database_url, "-Atc",
                          f"SELECT priority FROM v1_task WHERE external_id = '{run_id}'"],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip())


def test_namespace_metadata_and_priority_reach_hatchet(backend: Backend, airflow_conn: Any, dag_runner: Any) -> None:
    backend.connect(airflow_conn, namespace="AirflowTest")
    with make_dag("real_op_fields") as dag:
        operator(task_id="t", workflow_name="demo-etl", input={"day": "{{ ds }}"},
                 additional_metadata={"test_tag": backend.tag, "n": 7}, priority=3, wait_for_completion=True)
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    run_id = xcom_value(dag_run, "t")
    details = backend.client().send(endpoints.run_details(run_id))
    assert details.run.output["workflow"] == "airflowtest_demo-etl"
    assert details.run.output["echo"] == {"day": dag_run.logical_date.strftime("%Y-%m-%d")}
    metadata = details.run.additional_metadata
    assert (metadata["test_tag"], metadata["n"]) == (backend.tag, "7")
    assert metadata["airflow_ti"] == f"real_op_fields|{dag_run.run_id}|t|-1"
    assert metadata["airflow_try_number"] == "1"
    assert priority_in_hatchet(backend, run_id) == 3
    assert xcom_value(dag_run, "t", "output") == {"run": details.run.output}


@pytest.mark.parametrize("deferrable", [False, True], ids=["in-worker", "deferred"])
def test_waiting_gives_one_output_per_task(
    backend: Backend, airflow_conn: Any, dag_runner: Any, logs: Any, deferrable: bool
) -> None:
    backend.connect(airflow_conn)
    with make_dag("real_op_multi") as dag:
        operator(task_id="t", workflow_name="demo-multi", input={"n": 5},
                 additional_metadata={"test_tag": backend.tag}, wait_for_completion=True, deferrable=deferrable)
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    assert xcom_value(dag_run, "t", "output") == {
        task: {"workflow": "demo-multi", "task": task, "step": step, "echo": {"n": 5}}
        for step, task in enumerate(("extract", "transform", "load"))
    }
    assert ("running trigger in line" in logs()) is deferrable


@pytest.mark.parametrize("deferrable", [False, True], ids=["in-worker", "deferred"])
def test_a_failed_run_fails_the_task_with_the_workers_message(
    backend: Backend, airflow_conn: Any, dag_runner: Any, logs: Any, deferrable: bool
) -> None:
    backend.connect(airflow_conn)
    message = f"ValueError: bad row {backend.tag}"
    with make_dag("real_op_fail") as dag:
        operator(task_id="t", workflow_name="demo-fail", input={"__sim__": {"error_message": message}},
                 additional_metadata={"test_tag": backend.tag}, wait_for_completion=True, deferrable=deferrable)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    assert message in logs()
    [run] = runs_of(backend.client(), {"test_tag": backend.tag})
    assert run.status is RunStatus.FAILED


def test_an_unknown_workflow_fails_the_task_before_anything_is_triggered(
    backend: Backend, airflow_conn: Any, dag_runner: Any, logs: Any
) -> None:
    backend.connect(airflow_conn)
    with make_dag("real_op_unknown") as dag:
        operator(task_id="t", workflow_name="demo-etll", additional_metadata={"test_tag": backend.tag})
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    out = logs()
    assert "no workflow named 'demo-etll'" in out
    assert "close names: demo-etl" in out
    assert runs_of(backend.client(), {"test_tag": backend.tag}) == []


@pytest.mark.parametrize("deferrable", [False, True], ids=["in-worker", "deferred"])
def test_a_timeout_cancels_the_run_in_hatchet(
    backend: Backend, airflow_conn: Any, dag_runner: Any, logs: Any, deferrable: bool
) -> None:
    backend.connect(airflow_conn)
    with make_dag("real_op_timeout") as dag:
        operator(task_id="t", workflow_name="demo-hang", additional_metadata={"test_tag": backend.tag},
                 wait_for_completion=True, deferrable=deferrable, timeout=3.0)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    assert "Hatchet runs not finished (cancelled)" in logs()
    client = backend.client()
    assert wait_terminal(client, xcom_value(dag_run, "t", "hatchet_run_id")) is RunStatus.CANCELLED


KILLED_TRY = """
import sys
from datetime import datetime, timezone
from tests.real.test_operator_real import kill_dag
from tests.airflow_helpers import run_dag
when = datetime.fromisoformat(sys.argv[1])
run_dag(kill_dag(sys.argv[2]), logical_date=when, run_after=when)
"""


def kill_dag(tag: str) -> Any:
    """The DAG of the kill test: one task waiting on a slow run, with a retry."""
    with make_dag("real_op_killed") as dag:
        operator(task_id="t", workflow_name="demo-slow", additional_metadata={"test_tag": tag},
                 wait_for_completion=True, retries=1, retry_delay=timedelta(seconds=0))
    return dag


def run_next_try(dag: Any, task_id: str) -> Any:
    """Run the next try of a task whose try died, as the scheduler would after its heartbeat stopped.

    ``dag.test()`` cannot do this: it deletes the DAG run of the same logical date and starts again at try 1.
    Returns the task instance after the try.
    """
    from airflow.models.dagrun import DagRun
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        [dag_run] = session.query(DagRun).filter(DagRun.dag_id == dag.dag_id).all()
        ti = dag_run.get_task_instance(task_id, session=session)
        assert ti is not None and ti.state == TaskInstanceState.RUNNING, "the killed try should still read running"
        ti.prepare_db_for_next_try(session)
        ti.try_number += 1
        ti.state = TaskInstanceState.SCHEDULED
        session.flush()
        session.expunge(ti)
    _run_task(ti=ti, task=dag.task_dict[task_id], run_triggerer=True)
    with create_session() as session:
        [dag_run] = session.query(DagRun).filter(DagRun.dag_id == dag.dag_id).all()
        return dag_run, dag_run.get_task_instance(task_id, session=session)


def test_a_retry_after_the_task_process_is_killed_re_attaches_to_its_run(
    backend: Backend, airflow_conn: Any, airflow_db: None, logs: Any
) -> None:
    from tests.airflow_helpers import register_dag

    backend.connect(airflow_conn)
    client = backend.client()
    when = datetime.now(timezone.utc).replace(microsecond=0)
    dag = kill_dag(backend.tag)
    register_dag(dag)
    # The first try runs in a process of its own, killed with SIGKILL as soon as its run exists in Hatchet.
    first = subprocess.Popen([sys.executable, "-c", KILLED_TRY, when.isoformat(), backend.tag], cwd=REPO,
                             env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    created: list[RunSummary] = []
    while not created and time.monotonic() < deadline and first.poll() is None:
        created = list(client.iter_rows(endpoints.runs(since=when - timedelta(minutes=1),
                                        additional_metadata={"test_tag": backend.tag})))
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert len(created) == 1, "the first try should have triggered exactly one run before it was killed"
    [run] = created
    assert client.send(endpoints.run_status(run.id)) in (RunStatus.QUEUED, RunStatus.RUNNING)

    dag_run, ti = run_next_try(dag, "t")

    assert (ti.state, ti.try_number) == ("success", 2)
    assert xcom_value(dag_run, "t") == run.id
    # Airflow 3.3's task state store re-attaches first; before 3.3 the metadata lookup does.
    text = logs()
    assert any(line in text for line in (f"re-attaching to earlier run {run.id}", "Reconnecting to existing job",
                                         "Job already completed successfully")), text[-3000:]
    [only] = runs_of(client, {"test_tag": backend.tag})
    assert only.id == run.id
    assert only.status is RunStatus.COMPLETED
