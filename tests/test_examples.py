"""Every example DAG in ``dags_examples/`` imports with Airflow's own DagBag on the running Airflow (2.10 and 3.x),
and the operator examples run under ``dag.test()`` against the simulator over loopback."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_hatchet._airflow_version import AIRFLOW_V_3_0_PLUS
from tests.airflow_helpers import example_bag, example_dag, task_state, xcom_value
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.af2, pytest.mark.matrix]

# File -> DAG id -> its task ids: every file of dags_examples/ must be listed here.
EXAMPLES: dict[str, dict[str, set[str]]] = {
    "example_hatchet_asset_watcher": {
        "example_hatchet_asset_watcher": {"handle_runs"},
        "example_hatchet_event_watcher": {"handle_orders"},
    },
    "example_hatchet_bulk": {"example_hatchet_bulk": {"build_batch", "export_all"}},
    "example_hatchet_deferrable": {"example_hatchet_deferrable": {"run_deferred"}},
    "example_hatchet_mapped": {"example_hatchet_mapped": {"per_region"}},
    "example_hatchet_params": {"example_hatchet_params": {"export_customer"}},
    "example_hatchet_sensor": {
        "example_hatchet_sensor_poke": {"trigger", "wait"},
        "example_hatchet_sensor_deferrable": {"trigger", "wait"},
    },
    "example_hatchet_sensor_bulk": {
        "example_hatchet_sensor_bulk_poke": {"trigger_batch", "wait_all"},
        "example_hatchet_sensor_bulk_deferrable": {"trigger_batch", "wait_all"},
    },
    "example_hatchet_trigger_and_forget": {"example_hatchet_trigger_and_forget": {"trigger"}},
    "example_hatchet_trigger_and_wait": {"example_hatchet_trigger_and_wait": {"run_pipeline", "report"}},
}
# Examples that need Airflow 3 by nature, and why.
AIRFLOW_3_ONLY = {"example_hatchet_asset_watcher": "AssetWatcher exists from Airflow 3.0"}


def test_every_example_file_is_listed() -> None:
    assert {path.stem for path in (REPO_ROOT / "dags_examples").glob("*.py")} == set(EXAMPLES)


@pytest.mark.parametrize("stem", sorted(EXAMPLES))
def test_example_imports_with_its_dags_and_tasks(stem: str) -> None:
    if stem in AIRFLOW_3_ONLY and not AIRFLOW_V_3_0_PLUS:
        pytest.skip(f"Airflow 3 only: {AIRFLOW_3_ONLY[stem]}")
    bag = example_bag(stem)

    assert bag.import_errors == {}
    assert {dag_id: set(dag.task_ids) for dag_id, dag in bag.dags.items()} == EXAMPLES[stem]


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
    # Long enough that the task's own first check finds it running and defers, however slow the machine.
    hatchet.register_workflow("demo-etl", "succeed", duration=5.0)
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


def test_bulk_from_params(hatchet: Any, dag_runner: Any) -> None:
    dag_run = dag_runner(example_dag("example_hatchet_bulk"), run_conf={"customers": ["acme", "globex"]})

    assert dag_run.state == "success"
    assert sorted(r.input["customer"] for r in hatchet.runs) == ["acme", "globex"]
    assert {r.input["day"] for r in hatchet.runs} == {"2026-01-31"}
    assert xcom_value(dag_run, "export_all") == [r.id for r in sorted(hatchet.runs, key=lambda r: r.input["customer"])]
