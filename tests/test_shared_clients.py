"""The async clients a triggerer's event loop shares: one per connection however triggers start, new on rotation."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_hatchet.client import AsyncHatchetClient, ClientConfig, RetryPolicy, TriggerRequest, endpoints
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.testing import HatchetSimulator, SimulatorServer
from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunTrigger

pytestmark = [pytest.mark.af2, pytest.mark.loopback]

CONN_ID = "hatchet_shared_clients"


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(HatchetSimulator(visibility_delay=0.0)) as srv:
        yield srv


@pytest.fixture
def sim(server: SimulatorServer, airflow_conn: Callable[..., str]) -> HatchetSimulator:
    simulator = server.simulator
    simulator.reset()
    simulator.register_workflow("etl", "succeed", duration=0.0, output={"rows": 3})
    airflow_conn(CONN_ID, conn_type="hatchet", host=server.url, password=simulator.token)
    return simulator


def trigger_runs(sim: HatchetSimulator, n: int) -> list[str]:
    async def trigger() -> list[str]:
        async with AsyncHatchetClient(ClientConfig.from_token(sim.token), retry=RetryPolicy(attempts=1)) as client:
            return [await client.send(endpoints.trigger(TriggerRequest("etl", {"i": i}))) for i in range(n)]

    return asyncio.run(trigger())


async def only_event(trigger: HatchetWorkflowRunTrigger) -> dict[str, Any]:
    (event,) = [event.payload async for event in trigger.run()]
    return dict(event)


def sockets_to(port: int) -> int:
    """How many of this process's open file descriptors are TCP sockets connected to ``port`` on loopback.

    The simulator runs in this process too: its own ends of the connections, which it closes in its own time,
    are not counted.
    """
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor listdir itself used
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    with open("/proc/self/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sum(1 for row in rows if int(row[2].rsplit(":", 1)[1], 16) == port and row[9] in inodes)


def test_a_thousand_triggers_starting_together_share_one_client(
    sim: HatchetSimulator, server: SimulatorServer, count_async_clients: Callable[[], list[Any]]
) -> None:
    ids = trigger_runs(sim, 10)
    triggers = [
        HatchetWorkflowRunTrigger([ids[i % len(ids)]], CONN_ID, poll_interval=0.05, fetch_outputs=False)
        for i in range(1000)
    ]

    async def run_all() -> list[dict[str, Any]]:
        try:
            return await asyncio.gather(*(only_event(t) for t in triggers))
        finally:
            await HatchetHook.aclose_loop_clients()

    async def warm_up() -> None:
        await only_event(HatchetWorkflowRunTrigger([ids[0]], CONN_ID, poll_interval=0.05, fetch_outputs=False))
        await HatchetHook.aclose_loop_clients()

    asyncio.run(warm_up())
    clients = count_async_clients()
    events = asyncio.run(run_all())

    assert [e["status"] for e in events] == ["success"] * 1000
    assert sockets_to(int(server.url.rsplit(":", 1)[1])) == 0
    assert len(clients) == 1


def test_a_rotated_token_gives_new_triggers_a_new_client(
    sim: HatchetSimulator, server: SimulatorServer, airflow_conn: Callable[..., str],
    count_async_clients: Callable[[], list[Any]],
) -> None:
    old_token = sim.token
    ids = trigger_runs(sim, 1)
    clients = count_async_clients()

    async def wait(run_ids: list[str]) -> dict[str, Any]:
        return await only_event(HatchetWorkflowRunTrigger(run_ids, CONN_ID, poll_interval=0.05))

    async def rotate_in_one_loop() -> tuple[dict[str, Any], dict[str, Any]]:
        before = await wait(ids)
        new_token = sim.mint_token(sim.tenant_id)
        airflow_conn(CONN_ID, conn_type="hatchet", host=server.url, password=new_token)
        sim.revoke_token(old_token)
        after = await wait(ids)
        await HatchetHook.aclose_loop_clients()
        return before, after

    before, after = asyncio.run(rotate_in_one_loop())

    assert before["status"] == after["status"] == "success"
    assert [c.config.token == old_token for c in clients] == [True, False]
    assert old_token not in repr(clients) and old_token not in after["message"]


def test_the_replaced_client_is_closed_once_no_trigger_holds_it(
    sim: HatchetSimulator, server: SimulatorServer, airflow_conn: Callable[..., str],
    count_async_clients: Callable[[], list[Any]],
) -> None:
    clients = count_async_clients()
    closed: list[AsyncHatchetClient] = []

    async def scenario() -> list[int]:
        hook = HatchetHook(CONN_ID)
        counts = []
        async with hook.alease_client() as old:
            old_close = old.aclose

            async def aclose() -> None:
                closed.append(old)
                await old_close()

            old.aclose = aclose  # type: ignore[method-assign]
            airflow_conn(CONN_ID, conn_type="hatchet", host=server.url, password=sim.mint_token(sim.tenant_id))
            new = await HatchetHook(CONN_ID).aget_client()
            counts.append(len(closed))  # the old client is still leased
            await old.send(endpoints.list_workflows())  # and still works
        counts.append(len(closed))
        assert await HatchetHook(CONN_ID).aget_client() is new
        await HatchetHook.aclose_loop_clients()
        return counts

    assert asyncio.run(scenario()) == [0, 1]
    assert len(clients) == 2
