"""Every operator example DAG in ``dags_examples/`` runs under ``dag.test()`` against the simulator over loopback."""

from __future__ import annotations

from typing import Any

import pytest

from tests.airflow_helpers import example_dag, task_state, xcom_value

pytestmark = pytest.mark.matrix


def test_trigger_and_forget(hatchet: Any, dag_runner: Any) -> None:
    dag_run = dag_runner(example_dag("example_hatchet_trigger_and_forget"))

    assert dag_run.state == "success"
    [run] = hatchet.runs
    assert run.workflow_name == "demo-etl"
    assert run.input == {"day": dag_run.logical_date.strftime("%Y-%m-%d"), "source": "orders"}
    assert xcom_value(dag_run, "trigger") == run.id


def test_trigger_and_wait_passes_outputs_downstream(hatchet: Any, dag_runner: Any) -> None:
    dag_run = dag_runner(example_dag("example_hatchet_trigger_and_wait"))

    assert dag_run.state == "success"
    [run] = hatchet.runs
    assert run.input["tables"] == ["orders", "customers"]
    lines = xcom_value(dag_run, "report")
    assert sorted(line.split(":")[0] for line in lines) == ["extract", "load", "transform"]  # the server's order


def test_deferrable(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    dag_run = dag_runner(example_dag("example_hatchet_deferrable"))

    assert dag_run.state == "success"
    assert "running trigger in line" in logs()
    [run] = hatchet.runs
    assert xcom_value(dag_run, "run_deferred", "output") == {"run": {
        "workflow": "demo-etl", "task": "run", "step": 0, "echo": run.input}}


def test_mapped_fan_out(hatchet: Any, dag_runner: Any) -> None:
    dag_run = dag_runner(example_dag("example_hatchet_mapped"))

    assert dag_run.state == "success"
    assert sorted(r.input["region"] for r in hatchet.runs) == ["apac", "eu", "us"]
    assert all(task_state(dag_run, "per_region", i) == "success" for i in range(3))


def test_params_templated_input_with_metadata(hatchet: Any, dag_runner: Any) -> None:
    dag_run = dag_runner(example_dag("example_hatchet_params"), run_conf={"customer": "globex", "limit": 7})

    assert dag_run.state == "success"
    [run] = hatchet.runs
    assert run.input == {"customer": "globex", "limit": 7, "day": dag_run.logical_date.strftime("%Y-%m-%d")}
    assert run.body["priority"] == 2
    assert run.additional_metadata["customer"] == "globex"
    assert run.additional_metadata["source"] == "airflow"
    assert run.additional_metadata["airflow_dag_id"] == "example_hatchet_params"
