"""The hook finds a connection stored in the metadata DB (``airflow connections add``, the UI) from every place a
task looks it up: the worker, a wait's event loop in the worker, and the trigger, under ``dag.test()``."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_VERSION
from tests.airflow_helpers import conn_env_var, task_state, xcom_value

pytestmark = pytest.mark.af2


def make_dag(dag_id: str) -> Any:
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import DAG
    else:
        from airflow.models.dag import DAG
    return DAG(dag_id, schedule=None, start_date=dt.datetime(2025, 1, 1), catchup=False)


def add_connection_with_the_cli(conn_id: str, *fields: str) -> None:
    """``airflow connections add`` in a subprocess, on this session's metadata DB and with its Fernet key."""
    from airflow.configuration import conf

    airflow = Path(sys.executable).with_name("airflow")
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW_CONN_")}
    env["AIRFLOW__CORE__FERNET_KEY"] = conf.get("core", "fernet_key")
    done = subprocess.run([str(airflow), "connections", "add", conn_id, *fields], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert conn_env_var(conn_id) not in os.environ


def test_a_connection_added_with_the_cli_is_found_by_waits_in_the_worker_and_deferred(
    hatchet: Any, hatchet_server: Any, dag_runner: Any, logs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator
    from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor

    monkeypatch.delenv("HATCHET_CLIENT_TOKEN", raising=False)  # no environment fallback to hide a miss
    conn_id = f"hatchet_stored_{uuid.uuid4().hex[:8]}"
    add_connection_with_the_cli(conn_id, "--conn-type", "hatchet", "--conn-host", hatchet_server.url,
                                "--conn-password", hatchet.token)
    with make_dag("connection_from_the_metadata_db") as dag:
        worker = HatchetRunWorkflowOperator(task_id="worker", workflow_name="demo-etl", wait_for_completion=True,
                                            poll_interval=0.1, hatchet_conn_id=conn_id)
        HatchetRunWorkflowOperator(task_id="deferred", workflow_name="demo-etl", wait_for_completion=True,
                                   deferrable=True, poll_interval=0.1, hatchet_conn_id=conn_id)
        if AIRFLOW_V_3_0_PLUS:  # dag.test() on 2.10 cannot run a sensor on SQLite (see test_log_forwarding)
            HatchetWorkflowRunSensor(task_id="sensor", run_id=worker.output, poke_interval=0.1, deferrable=True,
                                     hatchet_conn_id=conn_id)
    dag_run = dag_runner(dag)

    out = logs()
    assert "does not exist" not in out
    assert task_state(dag_run, "worker") == "success", out[-3000:]
    assert task_state(dag_run, "deferred") == "success", out[-3000:]
    assert xcom_value(dag_run, "deferred", "output") == {"run": {"workflow": "demo-etl", "task": "run", "step": 0,
                                                                 "echo": {}}}
    if AIRFLOW_V_3_0_PLUS:
        assert task_state(dag_run, "sensor") == "success", out[-3000:]
    if AIRFLOW_V_3_0_PLUS and AIRFLOW_VERSION < (3, 1, 0):
        # dag.test()'s in-process supervisor on 3.0 logs each message at debug, a MaskSecret's value with it (the
        # real supervisor omits that body): Airflow's line, sent because the hook masks the token.
        out = "\n".join(line for line in out.splitlines() if "type='MaskSecret'" not in line)
    assert hatchet.token not in out
