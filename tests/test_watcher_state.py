"""What the AssetWatcher triggers write to the asset's state store: one write per poll, never one per event, and a
state that holds only the runs not yet settled, however far back a long run holds the horizon."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_3_PLUS
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunEventTrigger
from tests.test_watchers import FAST, StateStore, collect, requests_of, trigger_runs, until

pytestmark = pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="the watermark is stored from Airflow 3.3")


class CountingStore(StateStore):
    """A state store that also keeps every value written."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    async def aset(self, key: str, value: Any) -> None:
        self.writes.append(value)
        await super().aset(key, value)


def watcher(store: StateStore, **kwargs: Any) -> HatchetWorkflowRunEventTrigger:
    trigger = HatchetWorkflowRunEventTrigger("demo-etl", **{**FAST, **kwargs})
    trigger.asset_state_store = store
    return trigger


def test_catching_up_many_runs_writes_the_state_once_per_poll_not_once_per_event(hatchet: Any) -> None:
    n = 300
    store = CountingStore()
    polls = requests_of(hatchet)

    async def scenario() -> list[dict[str, Any]]:
        # A first watcher stores where watching began, then stops; the runs finish while none runs.
        first = watcher(store).run()
        pending = asyncio.ensure_future(first.__anext__())
        await until(lambda: bool(store.writes))
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        await first.aclose()
        run_ids = trigger_runs(n)
        await until(lambda: {hatchet.run_status(r) for r in run_ids} == {"COMPLETED"})
        store.writes.clear()
        start = polls()
        events = await collect(watcher(store).run(), n, then_polls=4, polls=polls)
        assert sorted(e["run_id"] for e in events) == sorted(run_ids)
        # Each poll lists twice (the unfinished runs, then the finished ones).
        assert len(store.writes) <= (polls() - start) // 2 + 1
        return events

    asyncio.run(scenario())
    # Written whole once per poll, never larger than the ids it holds (about 75 bytes each): a write per event
    # wrote 300 ever larger values, about n * n * 37 bytes, 3 MB here.
    assert max(len(w) for w in store.writes) < 150 * n
    assert len(json.loads(store.writes[-1])["seen"]) <= n


def held_back_and_empty(state: dict[str, Any]) -> bool:
    """The horizon is behind what is settled, and no id is kept."""
    return not state["seen"] and state["horizon"] < (state.get("settled") or "")


def test_the_state_forgets_settled_runs_while_a_long_run_holds_the_horizon(hatchet: Any) -> None:
    store = CountingStore()

    async def scenario() -> str:
        trigger = watcher(store, overlap=0.5)
        stream = trigger.run()
        pending = asyncio.ensure_future(stream.__anext__())
        await until(lambda: bool(store.writes))
        # A run of the watched workflow that never finishes: the horizon stays before it.
        hanging = HatchetHook().run_workflow("demo-etl", {"__sim__": {"behaviour": "hang"}})
        run_ids = trigger_runs(40)
        events = [dict((await asyncio.wait_for(pending, 20)).payload)]
        events += await collect(stream, len(run_ids) - 1)
        assert sorted(e["run_id"] for e in events) == sorted(run_ids)
        # Ask for more while Hatchet's clock moves past the overlap: the reported ids are settled and forgotten,
        # while the hanging run holds the horizon back.
        more = asyncio.ensure_future(stream.__anext__())
        await until(lambda: held_back_and_empty(json.loads(store.writes[-1])))
        more.cancel()
        await asyncio.gather(more, return_exceptions=True)
        await stream.aclose()
        return hanging

    hanging = asyncio.run(scenario())
    state = json.loads(store.writes[-1])
    assert hatchet.run_status(hanging) == "RUNNING"
    assert held_back_and_empty(state)
    assert len(store.writes[-1]) < 512


def test_an_unreadable_stored_watermark_is_logged_and_watching_starts_afresh(hatchet: Any, logs: Any) -> None:
    store = StateStore()
    trigger = watcher(store)
    store.values[trigger.state_key] = "{not json"

    async def scenario() -> list[dict[str, Any]]:
        stream = trigger.run()
        pending = asyncio.ensure_future(stream.__anext__())
        polls = requests_of(hatchet)
        await until(lambda: polls() >= 2)
        run_ids = trigger_runs(1)
        event = dict((await asyncio.wait_for(pending, 20)).payload)
        await stream.aclose()
        assert event["run_id"] == run_ids[0]
        return [event]

    asyncio.run(scenario())
    assert "is unreadable; watching starts afresh" in logs()
    assert json.loads(store.values[trigger.state_key])["not_before"]


def test_a_state_stored_before_the_settled_rule_repeats_no_run() -> None:
    from datetime import datetime, timedelta, timezone

    from airflow_provider_hatchet.client.watching import Item, Snapshot, Watermark

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def at(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    # Reported by the older version: created at 0, finished at 1.5; another run holds the horizon at -1.
    legacy = json.dumps({"horizon": at(-1).isoformat(), "not_before": at(-5).isoformat(),
                         "seen": {"run-1": at(0).isoformat()}})
    item = Item("run-1", at(0), at(1.5), "COMPLETED", {}, {"run_id": "run-1"})
    watermark = Watermark.from_json(legacy)
    for now in (2.0, 2.2, 3.0):  # overlap 1 s: settled at 1.0, 1.2, 2.0
        shot = Snapshot([item], horizon=at(-1), settled=at(now - 1), now=at(now))
        assert watermark.new_items(shot) == []
        watermark.advance(shot)
    assert json.loads(watermark.to_json())["settled"] == at(2).isoformat()
