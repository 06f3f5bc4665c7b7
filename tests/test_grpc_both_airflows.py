"""The gRPC operators through ``dag.test()`` on Airflow 2.10 and 3.3: a bulk trigger and an event, with waits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS
from tests.airflow_helpers import xcom_value

pytestmark = pytest.mark.af2


def make_dag(dag_id: str) -> Any:
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import DAG
    else:
        from airflow.models.dag import DAG
    return DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False)


@pytest.fixture
def face(hatchet: Any, hatchet_server: Any, airflow_conn: Any) -> Iterator[Any]:
    with hatchet.grpc_server() as grpc_face:
        airflow_conn("hatchet_default", conn_type="hatchet", host=hatchet_server.url, password=hatchet.token,
                     extra={"grpc_address": grpc_face.address, "grpc_tls": "false"})
        yield grpc_face


def test_a_grpc_batch_and_an_event_run_and_wait(hatchet: Any, face: Any, dag_runner: Any) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetPushEventOperator, HatchetRunWorkflowsOperator

    with make_dag("grpc_both") as dag:
        HatchetRunWorkflowsOperator(task_id="bulk", transport="grpc", wait_for_completion=True, poll_interval=0.1,
                                    workflow_runs=[{"workflow_name": "demo-etl", "input": {"i": i}}
                                                   for i in range(30)])
        HatchetPushEventOperator(task_id="event", key="airflow:demo-event", payload={"e": 1}, wait_for_completion=True,
                                 poll_interval=0.1)
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    by_index = {int(r.additional_metadata["airflow_batch_index"]): r for r in hatchet.runs
                if "airflow_batch_index" in r.additional_metadata}
    assert xcom_value(dag_run, "bulk") == [by_index[i].id for i in range(30)]
    [event_run] = [r for r in hatchet.runs if r.workflow_name == "demo-event"]
    assert xcom_value(dag_run, "event") == [event_run.additional_metadata["hatchet__event_id"]]
    assert xcom_value(dag_run, "event", "output")[0]["run"]["echo"] == {"e": 1}
    assert [r.path for r in hatchet.requests if r.method == "GRPC"].count("/WorkflowService/BulkTriggerWorkflow") == 1
