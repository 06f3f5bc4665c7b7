"""One run triggered over gRPC (``TriggerWorkflow``), on the simulator and the real server: its id is the one the
REST API uses, and the single-run operator's retry re-attaches to a run a crashed try triggered over gRPC."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_hatchet.client import RunStatus, endpoints
from airflow_provider_hatchet.client.grpc.channel import close_channels
from airflow_provider_hatchet.client.grpc.client import AsyncGrpcClient, trigger_request
from tests.airflow_helpers import task_state, xcom_value
from tests.real.conftest import Backend
from tests.real.test_client_and_hook import wait_terminal
from tests.real.test_operator_real import make_dag, operator, runs_of
from tests.test_run_workflow_grpc import crash_before_the_xcom_push


def test_the_grpc_trigger_answers_the_id_the_rest_api_reads(backend: Backend, grpc_address: str) -> None:
    config = backend.config(grpc_address=grpc_address, grpc_tls=False)

    async def call() -> str:
        try:
            return await AsyncGrpcClient(config).trigger(
                trigger_request("demo-etl", {"n": 2}, {"test_tag": backend.tag}, 2))
        finally:
            await close_channels()

    run_id = asyncio.run(call())

    client = backend.client()
    assert wait_terminal(client, run_id) is RunStatus.COMPLETED
    details = client.send(endpoints.run_details(run_id))
    assert details.run.id == run_id
    assert details.run.additional_metadata["test_tag"] == backend.tag
    assert details.run.output["echo"] == {"n": 2}
    [listed] = runs_of(client, {"test_tag": backend.tag})
    assert listed.id == run_id


def test_a_retry_after_a_crash_between_the_grpc_trigger_and_the_xcom_push_re_attaches(
    backend: Backend, grpc_address: str, airflow_conn: Any, dag_runner: Any, logs: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crash_before_the_xcom_push(monkeypatch)
    backend.connect(airflow_conn, grpc_address=grpc_address, grpc_tls="false")
    with make_dag(f"real_grpc_single_crash_{backend.tag}") as dag:
        operator(task_id="t", workflow_name="demo-etl", additional_metadata={"test_tag": backend.tag},
                 transport="grpc", wait_for_completion=True, retries=1, retry_delay=timedelta(0))
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    [run] = runs_of(backend.client(), {"test_tag": backend.tag})
    assert run.additional_metadata["airflow_try_number"] == "1"
    assert run.status is RunStatus.COMPLETED
    assert xcom_value(dag_run, "t") == run.id
    text = logs()
    assert f"over gRPC at {grpc_address}: run {run.id}" in text
    assert f"re-attaching to earlier run {run.id}" in text
