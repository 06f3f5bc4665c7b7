"""A watcher that joins a shared poll already under way (its triggerer died and another took it over, or Airflow
force-failed and restarted it) catches up from its own stored watermark: what finished while it was away is
reported, not lost behind the shared poll's horizon."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_3_PLUS
from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunEventTrigger
from tests.test_watchers import FAST, StateStore, collect, requests_of, trigger_runs, until

pytestmark = pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="shared streams and stored state are Airflow 3.3's")


def test_a_watcher_joining_a_running_shared_poll_reports_what_finished_while_it_was_away(hatchet: Any) -> None:
    from airflow.triggers.shared_stream import SharedStreamManager

    store = StateStore()

    def watcher(**kwargs: Any) -> HatchetWorkflowRunEventTrigger:
        trigger = HatchetWorkflowRunEventTrigger("demo-etl", **{**FAST, **kwargs})
        trigger.asset_state_store = store
        return trigger

    late, other = watcher(), watcher(statuses=["FAILED"])
    (key,) = {late.shared_stream_key(), other.shared_stream_key()}

    async def scenario() -> tuple[list[str], list[dict[str, Any]]]:
        # The watcher runs on a first triggerer long enough to store where watching began, then that one dies.
        first = SharedStreamManager()
        stream = late.filter_shared_stream(first.subscribe(trigger_id=1, trigger=late, key=key))
        pending = asyncio.ensure_future(stream.__anext__())
        await until(lambda: late.state_key in store.values)
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        await first.stop_all()
        away = trigger_runs(3)
        await until(lambda: {hatchet.run_status(r) for r in away} == {"COMPLETED"})
        # Another triggerer polls the same workflow for another watcher, past the overlap after those runs.
        second = SharedStreamManager()
        other_stream = other.filter_shared_stream(second.subscribe(trigger_id=2, trigger=other, key=key))
        other_pending = asyncio.ensure_future(other_stream.__anext__())
        polls = requests_of(hatchet)
        done = hatchet.now()
        await until(lambda: hatchet.now() > done + FAST["overlap"] + 1 and polls() >= 6)
        # The watcher is taken over by it and joins the running poll.
        again = watcher()
        events = await collect(again.filter_shared_stream(second.subscribe(trigger_id=3, trigger=again, key=key)),
                               3, limit=10)
        other_pending.cancel()
        await asyncio.gather(other_pending, return_exceptions=True)
        await second.stop_all()
        return away, events

    away, events = asyncio.run(scenario())
    assert sorted(e["run_id"] for e in events) == sorted(away)
