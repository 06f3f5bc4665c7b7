"""The async client's request slots and its connection lanes, over real HTTP on 127.0.0.1: requests beyond the
pool wait for a slot before anything is built for them, their timeout counts from when they are sent, and a wait
for a lane that is cancelled neither goes on nor loses the lane."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from airflow_provider_hatchet.client import AsyncHatchetClient, ClientConfig, TriggerRequest, endpoints
from airflow_provider_hatchet.client.lanes import LaneTransport
from airflow_provider_hatchet.client.retry import RetryPolicy
from airflow_provider_hatchet.testing import Faults

ONCE = RetryPolicy(attempts=1)


@dataclass
class InFlight:
    """How many requests are being sent now (past their slot), and the most at once."""

    now: int = 0
    peak: int = 0


@pytest.fixture
def in_flight(monkeypatch: pytest.MonkeyPatch) -> InFlight:
    """Count the requests every ``AsyncHatchetClient`` sends at once, from slot taken to answer read."""
    count = InFlight()
    send_now = AsyncHatchetClient._send_now

    async def counted(self: AsyncHatchetClient, call: Any) -> Any:
        count.now += 1
        count.peak = max(count.peak, count.now)
        try:
            return await send_now(self, call)
        finally:
            count.now -= 1

    monkeypatch.setattr(AsyncHatchetClient, "_send_now", counted)
    return count


async def test_requests_queued_behind_the_pool_are_sent_once_each_within_their_timeout(hatchet: Any) -> None:
    """Twelve reads through a one-connection client, each answered 0.15 s late, take about 1.8 s together: longer
    than the 1 s timeout. Each is timed from when it is sent, so none times out, and none is sent twice."""
    sim = hatchet
    sim.visibility_delay = 0
    config = ClientConfig.from_token(sim.token, server_url=sim.server_url, timeout=1.0)
    async with AsyncHatchetClient(config, retry=ONCE, max_connections=1) as client:
        run_id = await client.send(endpoints.trigger(TriggerRequest("demo-etl", {})))
        sim.faults = Faults(latency=0.15, routes=("status",))
        statuses = await asyncio.gather(*(client.send(endpoints.run_status(run_id)) for _ in range(12)))

    assert len(statuses) == 12
    assert sum(1 for r in sim.requests if r.route == "status") == 12


async def test_no_more_requests_are_in_flight_than_the_pool_holds(hatchet: Any, in_flight: InFlight) -> None:
    sim = hatchet
    sim.faults = Faults(latency=0.02, routes=("trigger",))
    config = ClientConfig.from_token(sim.token, server_url=sim.server_url)
    async with AsyncHatchetClient(config, retry=ONCE, max_connections=3) as client:
        ids = await asyncio.gather(*(client.send(endpoints.trigger(TriggerRequest("demo-etl", {"i": i})))
                                     for i in range(20)))

    assert len(set(ids)) == 20
    assert in_flight.peak == 3


async def test_a_wait_for_a_lane_cancelled_as_the_lane_is_freed_ends_and_leaves_the_lane_free(hatchet: Any) -> None:
    """On Python 3.10 and 3.11, ``asyncio.wait_for`` returned the lane to a wait cancelled in the same loop turn
    as the lane was freed: the cancelled request went on."""
    sim = hatchet
    url = f"{sim.server_url}/api/v1/nothing-here"
    transport = LaneTransport(1)
    async with httpx.AsyncClient(transport=transport, timeout=5) as http:
        holder = await http.send(http.build_request("GET", url), stream=True)
        waiting = asyncio.create_task(http.get(url))
        await asyncio.sleep(0.05)  # the second request now waits for the only lane
        assert not waiting.done()

        await holder.aclose()  # frees the lane ...
        waiting.cancel()  # ... in the same loop turn as the wait is cancelled
        outcome = await asyncio.gather(waiting, return_exceptions=True)

        assert isinstance(outcome[0], asyncio.CancelledError)
        third = await asyncio.wait_for(http.get(url), 2)  # the lane is free, not lost
        assert third.status_code == 404


async def test_requests_cancelled_while_they_wait_for_a_slot_leave_every_slot_free(
    hatchet: Any, in_flight: InFlight,
) -> None:
    """Forty reads through two slots, every other one cancelled at a different moment (some as a slot frees):
    the rest answer, and a later batch still has both slots."""
    sim = hatchet
    sim.visibility_delay = 0
    config = ClientConfig.from_token(sim.token, server_url=sim.server_url)
    async with AsyncHatchetClient(config, retry=ONCE, max_connections=2) as client:
        run_id = await client.send(endpoints.trigger(TriggerRequest("demo-etl", {})))
        sim.faults = Faults(latency=0.01, routes=("status",))
        tasks = [asyncio.create_task(client.send(endpoints.run_status(run_id))) for _ in range(40)]
        for number, task in enumerate(tasks):
            if number % 2:
                await asyncio.sleep(0.002 * (number % 7))
                task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        answered = [o for o in outcomes if not isinstance(o, BaseException)]
        assert all(isinstance(o, asyncio.CancelledError) for o in outcomes if isinstance(o, BaseException))
        assert len(answered) >= 20

        in_flight.peak = 0
        later = await asyncio.wait_for(
            asyncio.gather(*(client.send(endpoints.run_status(run_id)) for _ in range(6))), 10)
    assert len(later) == 6
    assert in_flight.peak == 2
    assert in_flight.now == 0
