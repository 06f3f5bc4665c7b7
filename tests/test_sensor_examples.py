"""The example DAGs of dags_examples/ (trigger-then-sense, bulk-then-sense) under dag.test(), poke and deferrable."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_hatchet._airflow_version import AIRFLOW_V_3_0_PLUS
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.testing import HatchetSimulator, SimulatorServer, register_demo_workflows
from tests.airflow_helpers import example_dag, task_state, xcom_value

pytestmark = [pytest.mark.af2, pytest.mark.matrix]


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(HatchetSimulator(visibility_delay=0.1)) as srv:
        register_demo_workflows(srv.simulator)
        yield srv


@pytest.fixture
def sim(server: SimulatorServer, airflow_conn: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> HatchetSimulator:
    if not AIRFLOW_V_3_0_PLUS:  # Airflow 2's sensor dependency loads the configured executor: one for SQLite
        monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "SequentialExecutor")
    airflow_conn("hatchet_default", conn_type="hatchet", host=server.url, password=server.simulator.token)
    server.simulator.clear_requests()
    return server.simulator


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_trigger_then_sense(sim: HatchetSimulator, dag_runner: Callable[..., Any], mode: str) -> None:
    dag_run = dag_runner(example_dag(f"example_hatchet_sensor::example_hatchet_sensor_{mode}"))
    assert task_state(dag_run, "wait") == "success"
    run_id = xcom_value(dag_run, "trigger")
    output = xcom_value(dag_run, "wait")
    assert output["run"]["echo"]["day"] == dag_run.logical_date.strftime("%Y-%m-%d")
    assert xcom_value(dag_run, "wait", "hatchet_run_url") == HatchetHook().run_url(run_id)


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_bulk_then_sense(sim: HatchetSimulator, dag_runner: Callable[..., Any], mode: str) -> None:
    dag_run = dag_runner(example_dag(f"example_hatchet_sensor_bulk::example_hatchet_sensor_bulk_{mode}"))
    assert task_state(dag_run, "wait_all") == "success"
    run_ids = xcom_value(dag_run, "trigger_batch")
    outputs = xcom_value(dag_run, "wait_all")
    assert len(outputs) == len(run_ids) == 20
    assert [o["run"]["echo"]["shard"] for o in outputs] == list(range(20))
    sensed = [r.route for r in sim.requests if r.route in ("status", "list")]
    assert "list" in sensed and "status" not in sensed
