"""Hatchet's task logs in the Airflow task log, on real Airflow (``dag.test()``), against both servers.

The lines come from the worker (``e2e/hatchet/worker.py`` logs with ``ctx.log``; the simulator logs the same):
``<workflow>:<task> started``, ``input: <sorted JSON>``, ``line i of N`` for ``__sim__``'s ``log_lines``, then
``<workflow>:<task> failing: <message>`` or ``... done``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.airflow_helpers import task_state, xcom_value
from tests.real.conftest import Backend
from tests.real.test_operator_real import make_dag
from tests.test_log_forwarding import in_order

WAYS = ["operator-in-worker", "operator-deferred", "sensor-poking", "sensor-deferred"]


def waiting_task(way: str, backend: Backend, run_input: dict[str, Any], **forwarding: Any) -> Any:
    """Inside a DAG: the task that triggers a demo-fail run and waits on it, in the way asked."""
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator
    from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor

    if way.startswith("sensor"):
        start = HatchetRunWorkflowOperator(task_id="start", workflow_name="demo-fail", input=run_input,
                                           additional_metadata={"test_tag": backend.tag}, forward_logs="never")
        return start >> HatchetWorkflowRunSensor(task_id="t", run_id=start.output, poke_interval=0.2,
                                                  deferrable=way == "sensor-deferred", **forwarding)
    return HatchetRunWorkflowOperator(
        task_id="t", workflow_name="demo-fail", input=run_input, additional_metadata={"test_tag": backend.tag},
        wait_for_completion=True, poll_interval=0.2, deferrable=way == "operator-deferred", **forwarding,
    )


def run_id_of(dag_run: Any, way: str) -> str:
    return str(xcom_value(dag_run, "start" if way.startswith("sensor") else "t", "hatchet_run_id"))


@pytest.mark.parametrize("way", WAYS)
def test_a_failed_runs_last_lines_reach_the_task_log_under_a_header_and_a_cut_note(
    backend: Backend, airflow_conn: Any, dag_runner: Any, logs: Any, way: str
) -> None:
    backend.connect(airflow_conn)
    message = f"bad row {backend.tag}"
    with make_dag("real_logs_cap") as dag:
        waiting_task(way, backend, {"__sim__": {"log_lines": 30, "error_message": message}},
                     forward_logs_max_lines_per_task=10)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    out = logs()
    run_id = run_id_of(dag_run, way)
    assert f"----- Hatchet logs of run {run_id}, task run (" in out
    assert "attempt 1 -----" in out
    assert "(earlier lines cut: the last 10 are shown" in out
    # 33 lines in all: the last 10 are lines 22 to 30 and the failure, oldest first.
    shown = [f"line {n} of 30" for n in range(22, 31)] + [f"demo-fail:run failing: {message}"]
    assert in_order(out, shown), out[-4000:]
    assert "line 21 of 30" not in out
    assert "demo-fail:run started" not in out


@pytest.mark.parametrize("way", WAYS)
def test_a_secret_in_a_forwarded_line_is_masked(
    backend: Backend, airflow_conn: Any, dag_runner: Any, logs: Any, way: str
) -> None:
    from airflow_provider_hatchet._compat import mask_secret

    backend.connect(airflow_conn)
    secret = f"pw-{backend.tag}-x9"
    mask_secret(secret)
    with make_dag("real_logs_mask") as dag:
        waiting_task(way, backend, {"password": secret})
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    out = logs()
    assert "demo-fail:run started" in out
    assert 'input: {"password": "***"}' in out
    assert "demo-fail:run failing: simulated failure in demo-fail:run" in out
    assert secret not in out


def test_the_lines_of_all_tasks_together_stop_at_the_airflow_tasks_cap(
    backend: Backend, airflow_conn: Any, dag_runner: Any, logs: Any
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowsOperator
    from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor

    backend.connect(airflow_conn)
    with make_dag("real_logs_total_cap") as dag:
        start = HatchetRunWorkflowsOperator(
            task_id="start", wait_for_completion=False,
            workflow_runs=[{"workflow_name": "demo-fail", "input": {"__sim__": {"log_lines": 3}, "i": i},
                            "options": {"additional_metadata": {"test_tag": backend.tag}}} for i in range(3)],
        )
        # A wait ends at the first failure and reads only the runs that have ended: each run is waited on alone
        # first, so that all three have failed when "t" looks.
        each = [HatchetWorkflowRunSensor(task_id=f"each_{i}", run_id=f"{{{{ ti.xcom_pull(task_ids='start')[{i}] }}}}",
                                         poke_interval=0.2, forward_logs="never", trigger_rule="all_done")
                for i in range(3)]
        start >> each >> HatchetWorkflowRunSensor(task_id="t", run_id=start.output, poke_interval=0.2,
                                                  forward_logs_max_lines=8, trigger_rule="all_done")
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    out = logs()
    # Six lines per run: the first run's six, two of the second's, none of the third's.
    assert out.count("demo-fail:run started") == 1
    assert out.count("demo-fail:run failing:") == 2
    assert out.count("----- Hatchet logs of run") == 2
    assert "Hatchet logs of 1 more run(s) not read: forward_logs_max_lines (8) was reached." in out


def test_a_hostile_line_reaches_the_task_log_escaped(
    backend: Backend, airflow_conn: Any, dag_runner: Any, logs: Any
) -> None:
    """Hatchet keeps a line's newlines and escape sequences as they were sent; the task log gets them escaped, and
    each line after a newline marked as a continuation. (Rendering the templated input turns the carriage return
    into a newline, as Jinja does.)"""
    from tests.test_log_forwarding import FORGED

    backend.connect(airflow_conn)
    message = f"ok {backend.tag}\n{FORGED}\rback\x1b[2Kwiped\u202eflip"
    with make_dag("real_logs_hostile") as dag:
        waiting_task("operator-in-worker", backend, {"__sim__": {"error_message": message}})
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    shown = f"demo-fail:run failing: ok {backend.tag}\n    | {FORGED}\n    | back\\x1b[2Kwiped\\u202eflip"
    assert shown in logs()
