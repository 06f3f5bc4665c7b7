"""The async client's connection lanes, over real HTTP on 127.0.0.1: a wait for a lane that is cancelled neither
goes on nor loses the lane."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from airflow_provider_hatchet.client.lanes import LaneTransport


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
