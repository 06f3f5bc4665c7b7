"""The AssetWatcher triggers keep to Hatchet's clock: a triggerer whose clock is a minute off loses nothing, reports
nothing from before it started, and says so in its log. The skew is the simulator's: it runs its wall clock
(timestamps and ``Date`` headers) a minute away from the machine's."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_hatchet.client.server_clock import ServerClock
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.triggers.hatchet import HatchetEventTrigger, HatchetWorkflowRunEventTrigger
from tests.test_watchers import collect, requests_of, until

pytestmark = pytest.mark.loopback

CONN = "hatchet_skewed"
WATCH = {"hatchet_conn_id": CONN, "poll_interval": 0.05, "overlap": 30.0}
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def skewed(request: pytest.FixtureRequest, airflow_conn: Any) -> Iterator[Any]:
    """A simulator whose clock runs ``request.param`` seconds from the machine's, as connection ``CONN``."""
    from airflow_provider_hatchet.testing import HatchetSimulator, SimulatorServer, register_demo_workflows

    with SimulatorServer(HatchetSimulator(visibility_delay=0.0, wall_offset=request.param)) as server:
        sim = server.simulator
        register_demo_workflows(sim)
        airflow_conn(CONN, conn_type="hatchet", host=server.url, password=sim.token)
        yield sim


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="event-driven scheduling needs Airflow 3")
@pytest.mark.parametrize("skewed", [-60.0, 60.0], ids=["local-clock-ahead", "local-clock-behind"], indirect=True)
def test_a_skewed_local_clock_neither_loses_runs_nor_reports_old_ones(
    skewed: Any, logs: Any, request: pytest.FixtureRequest
) -> None:
    hook = HatchetHook(CONN)
    old = [hook.run_workflow("demo-etl", {"i": i}) for i in range(3)]

    async def scenario() -> tuple[list[str], list[dict[str, Any]]]:
        await until(lambda: {skewed.run_status(r) for r in old} == {"COMPLETED"})
        # Hatchet's Date header has whole seconds: the watcher may start up to one early, never late.
        done = skewed.now()
        await until(lambda: skewed.now() > done + 2)
        stream = HatchetWorkflowRunEventTrigger("demo-etl", **WATCH).run()
        first = asyncio.ensure_future(stream.__anext__())
        polls = requests_of(skewed)
        await until(lambda: polls() >= 4)
        new = [hook.run_workflow("demo-etl", {"i": i}) for i in range(20)]
        events = [dict((await asyncio.wait_for(first, 20)).payload)]
        events += await collect(stream, len(new) - 1, then_polls=6, polls=polls)
        await stream.aclose()
        await HatchetHook.aclose_loop_clients()
        return new, events

    new, events = asyncio.run(scenario())
    assert sorted(e["run_id"] for e in events) == sorted(new)
    logged = logs()
    direction = "ahead of" if request.node.callspec.params["skewed"] < 0 else "behind"
    assert re.search(rf"The local clock is (59|60|61) s {direction} Hatchet.s", logged)
    assert "more than the overlap (30 s)" in logged


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="event-driven scheduling needs Airflow 3")
@pytest.mark.parametrize("skewed", [-60.0], indirect=True)
def test_the_event_watcher_keeps_to_hatchets_clock(skewed: Any, logs: Any) -> None:
    async def scenario() -> tuple[list[str], list[dict[str, Any]]]:
        stream = HatchetEventTrigger("order:created", **WATCH).run()
        first = asyncio.ensure_future(stream.__anext__())
        polls = requests_of(skewed, "events")
        await until(lambda: polls() >= 2)
        pushed = [skewed.push_event("order:created", {"n": n}) for n in range(3)]
        events = [dict((await asyncio.wait_for(first, 20)).payload)]
        events += await collect(stream, 2, then_polls=6, polls=polls)
        await stream.aclose()
        await HatchetHook.aclose_loop_clients()
        return pushed, events

    pushed, events = asyncio.run(scenario())
    assert sorted(e["event_id"] for e in events) == sorted(pushed)
    assert re.search(r"The local clock is (59|60|61) s ahead of Hatchet.s", logs())


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(("sent", "received", "header", "offset"), [
    (0.2, 0.4, "Thu, 01 Jan 2026 12:00:00 GMT", 0.0),  # agrees to within the header's second: no correction
    (0.2, 0.4, "Thu, 01 Jan 2026 11:59:00 GMT", -60.4),  # local a minute ahead: Hatchet's earliest possible time
    (0.2, 0.4, "Thu, 01 Jan 2026 12:01:00 GMT", 59.6),  # local a minute behind
])
def test_the_server_clock_reads_hatchets_earliest_possible_time_when_the_clocks_disagree(
    sent: float, received: float, header: str, offset: float
) -> None:
    clock = ServerClock(local=lambda: at(received))
    clock.observe(at(sent), at(received), header)
    assert clock.offset == timedelta(seconds=offset)
    assert clock.now() == at(received + offset)


@pytest.mark.parametrize("header", [None, "", "soon"])
def test_answers_without_a_readable_date_leave_the_clock_unmeasured(header: str | None) -> None:
    clock = ServerClock(local=lambda: T0)
    clock.observe(T0, T0, header)
    assert clock.offset is None and clock.now() == T0


def test_one_answer_with_a_date_far_ahead_does_not_move_hatchets_time_forward() -> None:
    """A single answer an hour ahead (a replica or proxy whose clock is off) would settle the hour to come and put
    the watchers' horizon past every run created in it: those runs were never reported."""
    clock = ServerClock(local=lambda: at(10.4))
    for second in range(10):
        clock.observe(at(second + 0.2), at(second + 0.4), f"Thu, 01 Jan 2026 12:00:{second:02d} GMT")
    clock.observe(at(10.2), at(10.4), "Thu, 01 Jan 2026 13:00:10 GMT")
    assert clock.offset == timedelta(0) and clock.now() == at(10.4)


def test_a_date_that_jumps_back_is_followed_at_once() -> None:
    """Behind is the safe side: a window anchored to an earlier time lists more, never less."""
    clock = ServerClock(local=lambda: at(1.4))
    clock.observe(at(0.2), at(0.4), "Thu, 01 Jan 2026 12:00:00 GMT")
    clock.observe(at(1.2), at(1.4), "Thu, 01 Jan 2026 11:59:01 GMT")
    assert clock.offset == timedelta(seconds=-60.4)


def test_a_date_beyond_what_a_datetime_holds_leaves_the_clock_as_it_was() -> None:
    clock = ServerClock(local=lambda: T0)
    clock.observe(T0, T0, "Thu, 01 Jan 2026 12:00:00 GMT")
    clock.observe(T0, T0, "Fri, 31 Dec 9999 23:59:59 GMT")
    assert clock.offset == timedelta(0) and clock.now() == T0


@pytest.mark.parametrize("header", ["Thu, 01 Jan 1970 00:00:00 GMT", "Mon, 01 Jan 2024 00:00:00 GMT",
                                    "Sat, 01 Jan 2124 00:00:00 GMT"])
def test_a_date_years_off_is_garbage_not_hatchets_time(header: str) -> None:
    """A proxy or device that stamps the epoch would otherwise set where watching began in 1970: the first poll
    would report every run the workflow ever finished."""
    clock = ServerClock(local=lambda: T0)
    clock.observe(T0, T0, header)
    assert clock.offset is None and clock.now() == T0
