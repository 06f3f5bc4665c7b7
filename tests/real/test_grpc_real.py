"""Hatchet's gRPC API as the simulator and the real server answer it: bulk triggers, errors, the operator over gRPC."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_hatchet.client import ClientConfig, HatchetClient, endpoints
from airflow_provider_hatchet.client.endpoints import RUN_VISIBILITY_WINDOW
from airflow_provider_hatchet.client.errors import (
    HatchetAlreadyExistsError,
    HatchetAuthError,
    HatchetBadRequestError,
    HatchetNotFoundError,
)
from airflow_provider_hatchet.client.grpc.channel import close_channels
from airflow_provider_hatchet.client.grpc.client import AsyncGrpcClient, trigger_request
from airflow_provider_hatchet.client.grpc.errors import GrpcUnavailableError
from tests.airflow_helpers import task_state, xcom_value
from tests.real.conftest import EVENT_KEY, Backend
from tests.real.test_operator_real import make_dag


def bulk(config: ClientConfig, requests: list[Any]) -> list[str]:
    async def call() -> list[str]:
        try:
            return await AsyncGrpcClient(config).bulk_trigger(requests)
        finally:
            await close_channels()

    return asyncio.run(call())


def batch_rows(client: HatchetClient, metadata: dict[str, str], expected: int, timeout: float = 60) -> list[Any]:
    """The runs carrying ``metadata``, once ``expected`` distinct ones are listed and one visibility window later:
    the list pages by offset, so while rows are still being inserted a page can repeat rows of the last."""
    since = datetime.now(timezone.utc) - timedelta(minutes=30)
    deadline = time.monotonic() + timeout

    def distinct() -> list[Any]:
        rows = client.iter_rows(endpoints.runs(since=since, page_size=500, additional_metadata=metadata))
        return list({row.id: row for row in rows}.values())

    while len(distinct()) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(RUN_VISIBILITY_WINDOW)
    return distinct()


def test_a_bulk_trigger_creates_runs_the_rest_api_lists_in_order(backend: Backend, grpc_address: str) -> None:
    config = backend.config(grpc_address=grpc_address, grpc_tls=False)
    requests = [trigger_request("demo-etl", {"i": i}, {"test_tag": backend.tag, "i": str(i)}, 2 if i == 0 else None)
                for i in range(5)]

    run_ids = bulk(config, requests)

    rows = {row.id: row for row in batch_rows(backend.client(), {"test_tag": backend.tag}, 5)}
    assert len(rows) == 5
    assert [rows[run_id].additional_metadata["i"] for run_id in run_ids] == [str(i) for i in range(5)]
    assert bulk(config, []) == []


def test_bad_requests_tokens_and_unknown_workflows(backend: Backend, grpc_address: str) -> None:
    config = backend.config(grpc_address=grpc_address, grpc_tls=False)
    with pytest.raises(HatchetBadRequestError, match="priority must be between 1 and 3, got 9"):
        bulk(config, [trigger_request("demo-etl", {}, None, 9)])
    bad = backend.config(token=backend.token[:-3] + "abc", grpc_address=grpc_address, grpc_tls=False)
    with pytest.raises(HatchetAuthError, match="UNAUTHENTICATED: invalid auth token") as caught:
        bulk(bad, [trigger_request("demo-etl", {}, None, None)])
    assert caught.value.status_code == 401 and bad.token not in str(caught.value)

    # An unknown workflow gets an id that never exists, as REST's return_only_id trigger does.
    [phantom] = bulk(config, [trigger_request(f"no-such-{backend.tag}", {}, None, None)])
    time.sleep(2.0)
    with pytest.raises(HatchetNotFoundError):
        backend.client().send(endpoints.run_status(phantom))


def test_an_idempotency_collision_names_the_holder_and_creates_the_other_runs(
    backend: Backend, grpc_address: str
) -> None:
    config = backend.config(grpc_address=grpc_address, grpc_tls=False)
    key = uuid.uuid4().hex
    meta = {"test_tag": backend.tag}
    [holder] = bulk(config, [trigger_request("demo-idempotent", {"key": key}, meta, None)])

    with pytest.raises(HatchetAlreadyExistsError, match="idempotency key collision") as caught:
        bulk(config, [trigger_request("demo-idempotent", {"key": key}, meta, None),
                      trigger_request("demo-idempotent", {"key": uuid.uuid4().hex}, meta, None)])

    assert caught.value.existing_run_ids == [holder]
    assert len(batch_rows(backend.client(), meta, 2)) == 2


def test_the_operator_sends_a_batch_over_grpc_each_run_once_in_order(
    backend: Backend, grpc_address: str, airflow_conn: Any, dag_runner: Any
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowsOperator

    backend.connect(airflow_conn, grpc_address=grpc_address, grpc_tls="false")
    with make_dag(f"real_grpc_bulk_{backend.tag}") as dag:
        HatchetRunWorkflowsOperator(task_id="t", transport="grpc", workflow_runs=[
            {"workflow_name": "demo-etl", "input": {"i": i},
             "options": {"additional_metadata": {"test_tag": backend.tag}}} for i in range(1500)
        ])
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    ids = xcom_value(dag_run, "t")
    rows = batch_rows(backend.client(), {"test_tag": backend.tag}, 1500)
    index_of = {row.id: int(row.additional_metadata["airflow_batch_index"]) for row in rows}
    assert len(rows) == 1500
    assert [index_of[run_id] for run_id in ids] == list(range(1500))


@pytest.mark.parametrize("deferrable", [False, True])
def test_events_trigger_the_subscribed_workflow_and_the_task_waits_for_its_outputs(
    backend: Backend, grpc_address: str, airflow_conn: Any, dag_runner: Any, deferrable: bool
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetPushEventOperator

    backend.connect(airflow_conn, grpc_address=grpc_address, grpc_tls="false")
    with make_dag(f"real_events_{backend.tag}") as dag:
        HatchetPushEventOperator(task_id="t", wait_for_completion=True, deferrable=deferrable, poll_interval=0.2,
                                 settle_seconds=3, events=[
            {"key": EVENT_KEY, "payload": {"i": 0}, "additional_metadata": {"test_tag": backend.tag}},
            {"key": f"nobody-{backend.tag}", "payload": {"i": 1}},
            {"key": EVENT_KEY, "payload": {"i": 2}, "additional_metadata": {"test_tag": backend.tag}},
        ])
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    event_ids = xcom_value(dag_run, "t")
    assert len(event_ids) == 3
    rows = {row.additional_metadata["hatchet__event_id"]: row
            for row in batch_rows(backend.client(), {"test_tag": backend.tag}, 2)}
    assert sorted(rows) == sorted([event_ids[0], event_ids[2]])
    assert all(row.additional_metadata["hatchet__event_key"] == EVENT_KEY for row in rows.values())
    assert xcom_value(dag_run, "t", "run_ids") == [rows[event_ids[0]].id, rows[event_ids[2]].id]
    outputs = xcom_value(dag_run, "t", "output")
    assert [output["run"]["echo"] for output in outputs] == [{"i": 0}, {"i": 2}]


def test_auto_finds_grpc_served_by_a_call_that_creates_nothing(backend: Backend, grpc_address: str) -> None:
    from airflow_provider_hatchet.client.grpc.bulk import GrpcSender, choose_sender

    config = backend.config(grpc_address=grpc_address, grpc_tls=False)

    async def choose() -> tuple[Any, str]:
        try:
            return await choose_sender(config, "auto")
        finally:
            await close_channels()

    sender, how = asyncio.run(choose())

    assert isinstance(sender, GrpcSender), how
    assert sender.unusable(GrpcUnavailableError("gRPC failed: UNAVAILABLE", maybe_sent=True))


def test_events_over_3_mib_go_in_several_bulk_pushes_and_the_server_takes_each(
    backend: Backend, grpc_address: str
) -> None:
    from airflow_provider_hatchet.client.grpc.client import EventSpec

    config = backend.config(grpc_address=grpc_address, grpc_tls=False)
    # A key nobody subscribes to: the events are stored and trigger nothing.
    events = [EventSpec(f"nobody-{backend.tag}", {"i": i, "blob": "x" * 300_000}, {"test_tag": backend.tag})
              for i in range(14)]

    async def push() -> list[str]:
        try:
            return await AsyncGrpcClient(config).push_events(events)
        finally:
            await close_channels()

    event_ids = asyncio.run(push())

    assert len(set(event_ids)) == 14  # about 4.2 MB: two requests of 10 and 4 events
