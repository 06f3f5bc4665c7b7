"""Deferred waits that hear their runs finish on the run-event stream, through the stream's faults.

Each wait is a :class:`HatchetWorkflowRunTrigger` run to its one event, as the triggerer runs it, with a
``poll_interval`` of a minute so that polling alone could not end it within the test's bound: it ends in time only
if the stream (or the round its reconnection wakes) tells it. The faults: the stream's TCP connection cut through
Toxiproxy while the run finishes (both servers); the server's gRPC face stopped and started again, and every stream
ended by the simulator's cut hook (as Hatchet's shutdown ends them); the triggerer stopped mid-wait and the trigger
rebuilt from its serialized arguments in a fresh event loop; an event the stream never sends (the simulator's
drop hook), which the reconciliation round must make up for; and, on the real server, hatchet-engine killed and
started again (run last: every later test would need the engine). Every wait must end with the right status, once.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_hatchet.client import HatchetClient, TriggerRequest, endpoints
from airflow_provider_hatchet.client.errors import HatchetNotFoundError
from airflow_provider_hatchet.client.grpc import run_events
from airflow_provider_hatchet.client.models import RunStatus
from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunTrigger
from tests.conditions import until
from tests.real.conftest import Backend, register_worker_workflows
from tests.real.faults import Toxiproxy

# Longer than any test here may take: a wait that ends at all ended through the stream or its reconnection.
POLL_INTERVAL = 60.0
BOUND = 45.0
RUN_SECONDS = 3.0
ROOT = Path(__file__).resolve().parents[2]
# Where `make hatchet-up` records the real server's processes, and the script that restarts its engine.
STACK_STATE = ROOT / "build" / "hatchet" / "state.json"
REAL_STACK = ROOT / "e2e" / "hatchet" / "real_stack.py"


def trigger_run(client: HatchetClient, tag: str, seconds: float = RUN_SECONDS, workflow: str = "demo-etl") -> str:
    """Trigger one run that takes ``seconds`` (both servers read ``__sim__``'s duration) and return its id."""
    return client.send(endpoints.trigger(
        TriggerRequest(workflow, {"__sim__": {"duration": seconds}}, {"test_tag": tag})))


async def finished(client: HatchetClient, run_id: str) -> None:
    """Wait until REST shows the run finished (so it finishes while the stream is down)."""
    deadline = time.monotonic() + 30
    while not await is_finished(client, run_id):
        assert time.monotonic() < deadline, f"run {run_id} did not finish in 30 s"
        await asyncio.sleep(0.1)


async def is_finished(client: HatchetClient, run_id: str) -> bool:
    """Whether REST shows the run finished (a run not visible yet is not)."""
    try:
        return (await asyncio.to_thread(client.send, endpoints.run_status(run_id))).is_terminal
    except HatchetNotFoundError:
        return False


def hub() -> run_events.RunEvents:
    """The running loop's one stream (one connection, so one hub)."""
    hubs = list(run_events._HUBS.get(asyncio.get_running_loop(), {}).values())
    assert len(hubs) == 1, hubs
    return hubs[0]


def watched(run_id: str) -> Callable[[], bool]:
    """Whether the loop's stream is connected and has been sent ``run_id``."""
    return lambda: bool(run_events._HUBS.get(asyncio.get_running_loop())) and hub().live and run_id in hub()._sent


async def events_of(trigger: HatchetWorkflowRunTrigger) -> list[dict[str, Any]]:
    """Every event the trigger yields, as the triggerer collects them."""
    return [event.payload async for event in trigger.run()]


def new_trigger(run_id: str) -> HatchetWorkflowRunTrigger:
    return HatchetWorkflowRunTrigger([run_id], poll_interval=POLL_INTERVAL)


def assert_one_success(events: list[dict[str, Any]], run_id: str) -> None:
    assert len(events) == 1, events
    assert events[0]["status"] == "success", events[0]
    assert events[0]["statuses"] == {run_id: "COMPLETED"}


def test_a_wait_rides_out_its_stream_cut_by_toxiproxy_while_the_run_finishes(
    backend: Backend, toxiproxy: Toxiproxy, grpc_address: str, airflow_conn: Callable[..., str],
) -> None:
    """The proxy in front of the gRPC face is disabled (its connections closed, new ones refused) until the run
    finished, then enabled: the stream reconnects, and the wait ends on the reconnection, not a minute later."""
    name = f"stream-{backend.tag}"
    front = toxiproxy.create_proxy(name, grpc_address)
    backend.connect(airflow_conn, grpc_address=front, grpc_tls="false")
    client = backend.client()

    async def scenario() -> int:
        run_id = trigger_run(client, backend.tag)
        waiting = asyncio.ensure_future(events_of(new_trigger(run_id)))
        await until(watched(run_id), "the stream subscribed the run")
        toxiproxy.set_enabled(name, False)
        await until(lambda: not hub().live, "the cut seen")
        await finished(client, run_id)
        toxiproxy.set_enabled(name, True)
        assert_one_success(await asyncio.wait_for(waiting, BOUND), run_id)
        await until(lambda: hub().live, "the stream connected again")
        return hub().streams_opened

    assert asyncio.run(scenario()) >= 2


@pytest.mark.parametrize("how", ["restart", "cut-ok", "cut-unavailable"])
def test_a_wait_ends_once_after_the_server_ends_its_stream(
    hatchet_server: Any, airflow_conn: Callable[..., str], how: str,
) -> None:
    """The simulator's gRPC face stopped and started again on the same port while the run finishes (a restart),
    or every stream ended by the cut hook, with OK as Hatchet's shutdown ends them or UNAVAILABLE as a dropped
    connection does."""
    from airflow_provider_hatchet.testing.server import bind_socket

    sim = hatchet_server.simulator
    sim.reset(keep_workflows=False)
    register_worker_workflows(sim)
    with bind_socket() as sock:  # a free port, kept for the restart
        port = int(sock.getsockname()[1])
    face = sim.grpc_server(port=port).start()
    try:
        airflow_conn("hatchet_default", conn_type="hatchet", host=hatchet_server.url, password=sim.token,
                     extra={"grpc_address": face.address, "grpc_tls": "false"})
        client = HatchetClient(sim_config(hatchet_server))

        async def scenario() -> int:
            run_id = trigger_run(client, how)
            waiting = asyncio.ensure_future(events_of(new_trigger(run_id)))
            await until(watched(run_id), "the stream subscribed the run")
            nonlocal face
            if how == "restart":
                await asyncio.to_thread(face.stop, 0)
                await until(lambda: not hub().live, "the stop seen")
                await finished(client, run_id)
                face = sim.grpc_server(port=port).start()
            else:
                assert sim.cut_run_streams("OK" if how == "cut-ok" else "UNAVAILABLE") == 1
            assert_one_success(await asyncio.wait_for(waiting, BOUND), run_id)
            return hub().streams_opened

        assert asyncio.run(scenario()) >= 2
        client.close()
    finally:
        face.stop(0)


def sim_config(hatchet_server: Any) -> Any:
    from airflow_provider_hatchet.client import ClientConfig

    return ClientConfig.from_token(hatchet_server.simulator.token, server_url=hatchet_server.url)


@pytest.mark.parametrize("finishes", ["while-stopped", "after-restart"])
def test_a_trigger_rebuilt_after_a_triggerer_restart_ends_right(
    backend: Backend, grpc_address: str, airflow_conn: Callable[..., str], finishes: str,
) -> None:
    """The triggerer stops mid-wait (its loop cancels the trigger and ends); a new one rebuilds the trigger from
    its serialized arguments in a fresh loop. A run that finished while no triggerer ran is noticed by the first
    round; one that finishes later is heard on the new loop's own stream."""
    backend.connect(airflow_conn, grpc_address=grpc_address, grpc_tls="false")
    client = backend.client()
    run_id = trigger_run(client, backend.tag, seconds=RUN_SECONDS if finishes == "while-stopped" else 6.0)
    path, kwargs = new_trigger(run_id).serialize()
    assert path == "airflow_provider_hatchet.triggers.hatchet.HatchetWorkflowRunTrigger"

    async def first_triggerer() -> None:
        waiting = asyncio.ensure_future(events_of(HatchetWorkflowRunTrigger(**kwargs)))
        await until(watched(run_id), "the stream subscribed the run")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    async def second_triggerer() -> list[dict[str, Any]]:
        if finishes == "while-stopped":
            await finished(client, run_id)
        else:
            assert not await is_finished(client, run_id), "the run finished before the second triggerer started"
        return await asyncio.wait_for(events_of(HatchetWorkflowRunTrigger(**kwargs)), BOUND)

    asyncio.run(first_triggerer())
    assert_one_success(asyncio.run(second_triggerer()), run_id)


def test_a_run_whose_event_is_never_sent_ends_the_wait_at_the_reconciliation(
    hatchet_server: Any, airflow_conn: Callable[..., str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Of two runs, the stream tells only one finished (the simulator drops the other's event): the wait does not
    end on the stream, and the slow reconciliation round (shortened here from a minute) ends it as a success."""
    monkeypatch.setattr(importlib.import_module("airflow_provider_hatchet.client.run_wait"), "RECONCILE_INTERVAL", 2.0)
    sim = hatchet_server.simulator
    sim.reset(keep_workflows=False)
    register_worker_workflows(sim)
    with sim.grpc_server() as face:
        airflow_conn("hatchet_default", conn_type="hatchet", host=hatchet_server.url, password=sim.token,
                     extra={"grpc_address": face.address, "grpc_tls": "false"})
        client = HatchetClient(sim_config(hatchet_server))
        heard, dropped = trigger_run(client, "drop", 0.5), trigger_run(client, "drop", 1.0)
        sim.drop_run_event(dropped)

        async def scenario() -> tuple[list[dict[str, Any]], dict[str, bool]]:
            trigger = HatchetWorkflowRunTrigger([heard, dropped], poll_interval=1.0)
            events = await asyncio.wait_for(events_of(trigger), BOUND)
            return events, dict(hub()._recent)

        events, recent = asyncio.run(scenario())
        client.close()

    assert len(events) == 1 and events[0]["status"] == "success", events
    assert events[0]["statuses"] == {heard: RunStatus.COMPLETED.value, dropped: RunStatus.COMPLETED.value}
    # The stream told of one run only: the other was found by a round.
    assert heard in recent and dropped not in recent


@pytest.mark.restarts_engine
def test_a_wait_ends_once_after_the_real_engine_is_killed_and_started_again(
    backend: Backend, grpc_address: str, airflow_conn: Callable[..., str],
) -> None:
    """hatchet-engine, which serves the stream, is killed with SIGKILL mid-wait and started again
    (``real_stack.py restart-engine``): the stream reconnects to the new engine, and the wait ends once, as a
    success, when the run finishes, far sooner than its hourly rounds would."""
    if not backend.is_real:
        pytest.skip("the simulator's restart is test_a_wait_ends_once_after_the_server_ends_its_stream")
    if not STACK_STATE.exists():
        pytest.skip(f"no {STACK_STATE}: the engine to restart is the one `make hatchet-up` started")
    backend.connect(airflow_conn, grpc_address=grpc_address, grpc_tls="false")
    client = backend.client()

    async def scenario() -> int:
        run_id = trigger_run(client, backend.tag, seconds=5.0)
        waiting = asyncio.ensure_future(events_of(HatchetWorkflowRunTrigger([run_id], poll_interval=3600.0)))
        await until(watched(run_id), "the stream subscribed the run")
        restarted = await asyncio.create_subprocess_exec(
            sys.executable, str(REAL_STACK), "restart-engine",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await restarted.communicate()
        assert restarted.returncode == 0, output.decode(errors="replace")
        assert_one_success(await asyncio.wait_for(waiting, 120), run_id)
        return hub().streams_opened

    assert asyncio.run(scenario()) >= 2
