"""A watcher against a server that accepts its requests and then fails them, or a state store that cannot be
reached: the failure is logged once, in text the server cannot use to forge lines of the triggerer's log, the
watcher keeps going, and nothing is lost."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS
from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunEventTrigger
from tests.test_watchers import FAST, StateStore, collect, requests_of, trigger_runs, until

pytestmark = pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="event-driven scheduling needs Airflow 3")

FORGED = "boom\nFORGED INFO - Polling Hatchet works again.\r\x1b[2K\u2028FORGED too"


def test_a_servers_error_text_cannot_forge_lines_of_the_triggerer_log(hatchet: Any, logs: Any) -> None:
    hatchet.fail_next("list", 1000, 400, body={"errors": [{"description": FORGED}]})
    trigger = HatchetWorkflowRunEventTrigger("demo-etl", **FAST)
    polls = requests_of(hatchet)

    async def scenario() -> None:
        stream = trigger.run()
        pending = asyncio.ensure_future(stream.__anext__())
        await until(lambda: polls() >= 4)
        assert not pending.done()  # nothing reported while every list fails
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        await stream.aclose()

    asyncio.run(scenario())
    logged = logs()
    assert logged.count("Polling Hatchet failed") == 1
    assert "boom" in logged and "\\x1b[2K" in logged
    assert not [line for line in logged.splitlines() if line.startswith("FORGED")]
    assert "\x1b" not in logged and "\r" not in logged and "\u2028" not in logged


class FlakyStore(StateStore):
    """A state store whose reads and writes fail while ``down`` (the API server or metadata DB unreachable)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.failed: list[str] = []

    async def aget(self, key: str, default: Any = None) -> Any:
        if self.down:
            self.failed.append("aget")
            raise RuntimeError("the asset state store is unreachable")
        return await super().aget(key, default)

    async def aset(self, key: str, value: Any) -> None:
        if self.down:
            self.failed.append("aset")
            raise RuntimeError("the asset state store is unreachable")
        await super().aset(key, value)


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="the watermark is stored from Airflow 3.3")
def test_a_failed_state_write_is_logged_and_written_at_a_later_poll(hatchet: Any, logs: Any) -> None:
    store = FlakyStore()
    trigger = HatchetWorkflowRunEventTrigger("demo-etl", **FAST)
    trigger.asset_state_store = store
    polls = requests_of(hatchet)

    async def scenario() -> tuple[list[str], list[dict[str, Any]]]:
        stream = trigger.run()
        pending = asyncio.ensure_future(stream.__anext__())
        await until(lambda: trigger.state_key in store.values)
        store.down = True
        run_ids = trigger_runs(2)
        events = [dict((await asyncio.wait_for(pending, 20)).payload)]
        events += await collect(stream, 1)
        # The poll's write fails; the watcher goes on polling, and writes once the store is back.
        more = asyncio.ensure_future(stream.__anext__())
        await until(lambda: "aset" in store.failed)
        start = polls()
        await until(lambda: polls() >= start + 4)
        store.down = False
        # Once back, the state stored covers the runs reported: a restart would not report them again.
        last = max(e["finished_at"] for e in events)
        await until(lambda: json.loads(store.values[trigger.state_key])["settled"] > last)
        assert not more.done()
        more.cancel()
        await asyncio.gather(more, return_exceptions=True)
        await stream.aclose()
        return run_ids, events

    run_ids, events = asyncio.run(scenario())
    assert sorted(e["run_id"] for e in events) == sorted(run_ids)
    assert len(re.findall("Storing the watermark hatchet_watermark_[0-9a-f]+ failed", logs())) == 1


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="the watermark is stored from Airflow 3.3")
def test_an_unreadable_state_store_is_waited_for_not_replaced(hatchet: Any, logs: Any) -> None:
    store = FlakyStore()

    def watcher() -> HatchetWorkflowRunEventTrigger:
        trigger = HatchetWorkflowRunEventTrigger("demo-etl", **FAST)
        trigger.asset_state_store = store
        return trigger

    async def scenario() -> tuple[list[str], list[dict[str, Any]]]:
        first = watcher()
        stream = first.run()
        pending = asyncio.ensure_future(stream.__anext__())
        await until(lambda: first.state_key in store.values)
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        await stream.aclose()
        # The triggerer restarts while the store cannot be read; runs finish meanwhile.
        store.down = True
        run_ids = trigger_runs(2)
        again = watcher().run()
        pending = asyncio.ensure_future(again.__anext__())
        await until(lambda: store.failed.count("aget") >= 3)
        assert not pending.done()
        store.down = False
        events = [dict((await asyncio.wait_for(pending, 20)).payload)]
        events += await collect(again, 1)
        await again.aclose()
        return run_ids, events

    run_ids, events = asyncio.run(scenario())
    assert sorted(e["run_id"] for e in events) == sorted(run_ids)
    assert len(re.findall("Reading the stored watermark hatchet_watermark_[0-9a-f]+ failed", logs())) == 1


def test_a_workflow_name_cannot_forge_lines_through_the_close_names(hatchet: Any, logs: Any) -> None:
    hatchet.register_workflow("demo-et\nFORGED")  # a name another team registered, close to the typo
    trigger = HatchetWorkflowRunEventTrigger("demo-et1", **FAST)
    looked_up = requests_of(hatchet, "workflows")

    async def scenario() -> None:
        stream = trigger.run()
        pending = asyncio.ensure_future(stream.__anext__())
        await until(lambda: looked_up() >= 2)
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        await stream.aclose()

    asyncio.run(scenario())
    logged = logs()
    assert "close names: demo-etl" in logged and "demo-et\n    | FORGED" in logged
    assert not [line for line in logged.splitlines() if line.startswith("FORGED")]
