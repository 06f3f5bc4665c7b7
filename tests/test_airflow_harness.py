"""The harness runs a real DAG through ``dag.test()`` against the session's SQLite metadata DB."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS
from tests.airflow_helpers import task_state, xcom_value

pytestmark = pytest.mark.af2


def _python_dag(dag_id: str) -> Any:
    if AIRFLOW_V_3_0_PLUS:
        from airflow.providers.standard.operators.python import PythonOperator
        from airflow.sdk import DAG
    else:
        from airflow.models.dag import DAG
        from airflow.operators.python import PythonOperator

    def produce(**context: Any) -> dict[str, Any]:
        return {"n": 21, "run_conf": dict(context["dag_run"].conf or {})}

    def consume(ti: Any) -> int:
        produced = ti.xcom_pull(task_ids="produce")
        return int(produced["n"]) * 2

    def explode() -> None:
        raise RuntimeError("boom")

    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
        produce_task = PythonOperator(task_id="produce", python_callable=produce)
        consume_task = PythonOperator(task_id="consume", python_callable=consume)
        produce_task >> consume_task
        PythonOperator(task_id="explode", python_callable=explode, retries=0)
    return dag


def test_dag_test_runs_tasks_and_passes_xcom(dag_runner: Callable[..., Any]) -> None:
    dag_run = dag_runner(_python_dag("harness_xcom"), run_conf={"who": "harness"})

    assert task_state(dag_run, "produce") == "success"
    assert task_state(dag_run, "consume") == "success"
    assert xcom_value(dag_run, "produce") == {"n": 21, "run_conf": {"who": "harness"}}
    assert xcom_value(dag_run, "consume") == 42


def test_failed_task_fails_the_run_without_raising(dag_runner: Callable[..., Any]) -> None:
    dag_run = dag_runner(_python_dag("harness_failure"))

    assert task_state(dag_run, "explode") == "failed"
    assert str(dag_run.state) == "failed"
    assert task_state(dag_run, "consume") == "success"


def test_airflow_conn_is_visible_to_airflow(airflow_conn: Callable[..., str]) -> None:
    from airflow_provider_hatchet._compat import BaseHook

    env_name = airflow_conn(
        "harness_conn", conn_type="http", host="example.test", password="s3cret", extra={"namespace": "dev_"}
    )

    conn = BaseHook.get_connection("harness_conn")
    assert env_name == "AIRFLOW_CONN_HARNESS_CONN"
    assert (conn.conn_type, conn.host, conn.password) == ("http", "example.test", "s3cret")
    assert conn.extra_dejson == {"namespace": "dev_"}
