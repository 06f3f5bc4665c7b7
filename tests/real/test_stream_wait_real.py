"""Waits that hear their runs finish on Hatchet's run-event stream (``Dispatcher.SubscribeToWorkflowRuns``), on the
real server and on the simulator once it serves the stream.

Every wait here polls once an hour, so only the stream can end it before its deadline: a wait that ends with its
runs' outcome heard it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from airflow_provider_hatchet.client import (
    AsyncHatchetClient,
    ClientConfig,
    RunStatus,
    RunWait,
    TriggerRequest,
    WaitResume,
    WaitStatus,
    endpoints,
)
from airflow_provider_hatchet.client.grpc.run_events import close_run_events, run_events
from tests.airflow_helpers import task_state, xcom_value
from tests.real.conftest import Backend
from tests.real.test_client_and_hook import wait_terminal
from tests.real.test_operator_real import make_dag, operator

log = logging.getLogger("tests.stream_wait_real")
HOUR = 3600.0


async def serves_the_stream(config: ClientConfig) -> bool:
    """Whether the server answers the stream: it connects, or it refuses it for good (UNIMPLEMENTED)."""
    watch = run_events(config).watch()
    try:
        while not (watch.live or watch.final):
            watch.clear()
            if not await watch.wait(10):
                raise TimeoutError("the run-event stream neither connected nor was refused in 10 s")
        return watch.live
    finally:
        watch.close()
        await close_run_events()


@pytest.fixture
def config(backend: Backend, grpc_address: str) -> ClientConfig:
    chosen = backend.config(grpc_address=grpc_address, grpc_tls=False)
    if not backend.is_real and not asyncio.run(serves_the_stream(chosen)):
        pytest.skip("the simulator serves no run-event stream yet")
    return chosen


def hourly(run_ids: list[str], deadline: float = 60.0, **resume: Any) -> RunWait:
    return RunWait(run_ids, poll_interval=HOUR, execution_deadline=time.time() + deadline,
                   resume=WaitResume(**resume))


async def trigger(client: AsyncHatchetClient, backend: Backend, workflow: str) -> str:
    return await client.send(endpoints.trigger(TriggerRequest(workflow, {}, {"test_tag": backend.tag})))


def test_waits_end_on_the_stream_and_share_one_stream(backend: Backend, config: ClientConfig) -> None:
    """Three waits on one run and one on another, in one loop: one stream, each wait ends on its run's event."""

    async def scenario() -> tuple[list[WaitStatus], int, int]:
        async with AsyncHatchetClient(config) as client:
            try:
                first, second = await trigger(client, backend, "demo-etl"), await trigger(client, backend, "demo-multi")
                waits = [hourly([first]).run(client, log) for _ in range(3)] + [hourly([second]).run(client, log)]
                events = await asyncio.gather(*waits)
                hub = run_events(config)
                return [event.status for event in events], hub.streams_opened, hub.watched()
            finally:
                await close_run_events()

    statuses, opened, watched = asyncio.run(scenario())
    assert statuses == [WaitStatus.SUCCESS] * 4
    assert opened == 1
    assert watched == 0  # every wait let go of its runs when it ended


def test_a_failed_run_ends_the_wait_while_another_runs(backend: Backend, config: ClientConfig) -> None:
    async def scenario() -> tuple[Any, str]:
        async with AsyncHatchetClient(config) as client:
            try:
                failing, hanging = await trigger(client, backend, "demo-fail"), await trigger(client, backend,
                                                                                              "demo-hang")
                event = await hourly([failing, hanging]).run(client, log)
                await client.send(endpoints.cancel([hanging]))
                return event, hanging
            finally:
                await close_run_events()

    event, hanging = asyncio.run(scenario())
    assert event.status is WaitStatus.FAILED, event.message
    assert event.statuses[hanging] in ("QUEUED", "RUNNING")
    assert wait_terminal(backend.client(), hanging) is RunStatus.CANCELLED


def test_a_run_that_finished_before_the_wait_subscribed_is_heard(backend: Backend, config: ClientConfig) -> None:
    """As a deferred sensor's trigger starts: the run finished already, the first round is an hour away."""
    run_id = backend.client().send(endpoints.trigger(TriggerRequest("demo-etl", {}, {"test_tag": backend.tag})))
    assert wait_terminal(backend.client(), run_id) is RunStatus.COMPLETED

    async def scenario() -> Any:
        async with AsyncHatchetClient(config) as client:
            try:
                return await hourly([run_id], first_poll_at=time.time() + HOUR).run(client, log)
            finally:
                await close_run_events()

    assert asyncio.run(scenario()).status is WaitStatus.SUCCESS


def test_a_deferrable_sensor_ends_on_the_stream(
    backend: Backend, grpc_address: str, config: ClientConfig, airflow_conn: Any, dag_runner: Any
) -> None:
    from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor

    run_id = backend.client().send(endpoints.trigger(TriggerRequest("demo-slow", {}, {"test_tag": backend.tag})))
    backend.connect(airflow_conn, grpc_address=grpc_address, grpc_tls="false")
    with make_dag(f"real_stream_sensor_{backend.tag}") as dag:
        HatchetWorkflowRunSensor(task_id="wait", run_id=run_id, deferrable=True, poke_interval=HOUR, timeout=120)
    dag_run = dag_runner(dag)
    assert task_state(dag_run, "wait") == "success"
    assert xcom_value(dag_run, "wait")["run"]["workflow"] == "demo-slow"


def test_a_deferred_trigger_operator_ends_on_the_stream(
    backend: Backend, grpc_address: str, config: ClientConfig, airflow_conn: Any, dag_runner: Any
) -> None:
    backend.connect(airflow_conn, grpc_address=grpc_address, grpc_tls="false")
    with make_dag(f"real_stream_operator_{backend.tag}") as dag:
        operator(task_id="t", workflow_name="demo-slow", additional_metadata={"test_tag": backend.tag},
                 wait_for_completion=True, deferrable=True, poll_interval=HOUR, timeout=120)
    dag_run = dag_runner(dag)
    assert task_state(dag_run, "t") == "success"


@pytest.mark.parametrize("stored", ["packed", "as its key"])
def test_a_deferred_wait_on_a_big_batch_ends_on_the_stream(
    backend: Backend, grpc_address: str, config: ClientConfig, airflow_conn: Any, stored: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the triggerer rebuilds a deferrable sensor's trigger on a bulk batch of more than ``INLINE_RUN_IDS`` runs
    from its serialized form (the ids packed, or, as a batch of more than ``PACKED_RUN_IDS`` runs, the batch's key,
    size and digest and no ids), with its first round an hour away."""
    from airflow_provider_hatchet._identity import BATCH_INDEX_KEY, TI_KEY
    from airflow_provider_hatchet.client import INLINE_RUN_IDS, run_wait
    from airflow_provider_hatchet.client.grpc.channel import close_channels
    from airflow_provider_hatchet.client.grpc.client import AsyncGrpcClient, trigger_request
    from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunTrigger

    if stored == "as its key":
        monkeypatch.setattr(run_wait, "PACKED_RUN_IDS", INLINE_RUN_IDS)
    backend.connect(airflow_conn, grpc_address=grpc_address, grpc_tls="false")
    key = f"stream-batch-{backend.tag}"
    count = INLINE_RUN_IDS + 1

    async def scenario() -> tuple[list[str], dict[str, Any], dict[str, Any]]:
        requests = [trigger_request("demo-etl", {"i": i}, {"test_tag": backend.tag, TI_KEY: key,
                                                           BATCH_INDEX_KEY: str(i)}, None) for i in range(count)]
        try:
            ids = await AsyncGrpcClient(config).bulk_trigger(requests)
            trigger = HatchetWorkflowRunTrigger(ids, poll_interval=HOUR, execution_deadline=time.time() + 120,
                                                batch_key=key, resume=WaitResume(first_poll_at=time.time() + HOUR))
            _, kwargs = trigger.serialize()
            async for event in HatchetWorkflowRunTrigger(**kwargs).run():
                return ids, kwargs, event.payload
            raise AssertionError("no event")
        finally:
            await close_run_events()
            await close_channels()

    ids, kwargs, payload = asyncio.run(scenario())
    assert kwargs["run_ids"] == []
    assert ("packed_run_ids" if stored == "packed" else "run_count") in kwargs["resume"]
    assert payload["status"] == "success", payload["message"]
    assert payload["run_ids"] == ids and len(payload["outputs"]) == count


@pytest.mark.parametrize("code", ["UNAVAILABLE", "OK"])
def test_on_the_simulator_a_cut_stream_reconnects_and_a_dropped_event_is_not_lost(
    backend: Backend, config: ClientConfig, code: str
) -> None:
    """Every stream is cut mid-wait (as a restart ends them, with UNAVAILABLE or OK) and the run's event is never
    sent: the wait opens a new stream, sends its id again, and the round after the reconnection finds the run."""
    if backend.is_real:
        pytest.skip("the fault hook is the simulator's (the real server's streams are cut in e2e-prod's crashes)")
    sim = backend.sim

    async def scenario() -> tuple[Any, int]:
        async with AsyncHatchetClient(config) as client:
            try:
                run_id = await trigger(client, backend, "demo-hang")
                sim.drop_run_event(run_id)
                wait = asyncio.ensure_future(hourly([run_id]).run(client, log))
                await asyncio.to_thread(sim.wait_run_subscribed, [run_id])
                await client.send(endpoints.cancel([run_id]))
                await asyncio.to_thread(wait_terminal, backend.client(), run_id)
                assert sim.cut_run_streams(code) == 1
                return await wait, run_events(config).streams_opened
            finally:
                await close_run_events()

    event, opened = asyncio.run(scenario())
    assert event.status is WaitStatus.CANCELLED, event.message
    # The simulator's gRPC server also sends GOAWAY for the channel's keepalive pings now and then: a third is fine.
    assert opened >= 2
