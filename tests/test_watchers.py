"""The AssetWatcher triggers against the simulator over HTTP: one event per finished run or pushed event, never
twice, none lost across a restart, one poll shared by several watchers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS
from airflow_provider_hatchet.client import HatchetValidationError
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.triggers.hatchet import HatchetEventTrigger, HatchetWorkflowRunEventTrigger
from tests.conditions import until

pytestmark = pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="event-driven scheduling needs Airflow 3")

FAST = {"poll_interval": 0.05, "overlap": 1.0}


class StateStore:
    """The part of Airflow's ``AssetStateStoreAccessors`` a watcher uses, kept in a dict across restarts."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value


def requests_of(sim: Any, route: str = "list") -> Callable[[], int]:
    return lambda: sum(1 for r in sim.requests if r.route == route)


async def collect(source: AsyncIterator[Any], count: int, *, then_polls: int = 0,
                  polls: Callable[[], int] | None = None, limit: float = 20.0) -> list[dict[str, Any]]:
    """Take ``count`` events; then, while the source makes ``then_polls`` more requests, take any extra one."""
    events: list[dict[str, Any]] = []
    stream = source.__aiter__()

    async def take() -> dict[str, Any]:
        return dict((await stream.__anext__()).payload)

    for _ in range(count):
        events.append(await asyncio.wait_for(take(), limit))
    if then_polls and polls is not None:
        start = polls()
        extra = asyncio.ensure_future(take())
        await until(lambda: polls() >= start + then_polls or extra.done())
        if extra.done():
            events.append(extra.result())
        else:
            extra.cancel()
            await asyncio.gather(extra, return_exceptions=True)
    return events


def trigger_runs(n: int, workflow: str = "demo-etl", **metadata: str) -> list[str]:
    hook = HatchetHook()
    return [hook.run_workflow(workflow, {"i": i}, metadata or None) for i in range(n)]


def test_each_finished_run_fires_once_with_a_small_payload(hatchet: Any) -> None:
    trigger = HatchetWorkflowRunEventTrigger("demo-etl", include_output=True, **FAST)
    run_ids = trigger_runs(3, team="data")
    trigger_runs(1, "demo-fail")
    events = asyncio.run(collect(trigger.run(), 3, then_polls=6, polls=requests_of(hatchet)))
    assert sorted(e["run_id"] for e in events) == sorted(run_ids)
    event = next(e for e in events if e["run_id"] == run_ids[0])
    assert event["workflow"] == "demo-etl" and event["status"] == "COMPLETED"
    assert event["additional_metadata"] == {"team": "data"}
    assert event["url"].endswith(f"/runs/{run_ids[0]}")
    assert event["output"]["echo"] == {"i": 0}
    assert event["finished_at"] >= event["created_at"]
    assert len(json.dumps(event)) < 2048


def test_statuses_and_metadata_choose_the_runs(hatchet: Any) -> None:
    failed = trigger_runs(2, "demo-fail", team="a")
    trigger_runs(1, "demo-fail", team="b")
    trigger = HatchetWorkflowRunEventTrigger("demo-fail", statuses=["failed"], additional_metadata={"team": "a"},
                                             **FAST)
    events = asyncio.run(collect(trigger.run(), 2, then_polls=6, polls=requests_of(hatchet)))
    assert sorted(e["run_id"] for e in events) == sorted(failed)
    assert {e["status"] for e in events} == {"FAILED"}


def test_runs_finished_before_the_watcher_started_are_not_reported(hatchet: Any) -> None:
    old = trigger_runs(2)

    async def scenario() -> list[dict[str, Any]]:
        await until(lambda: {hatchet.run_status(i) for i in old} == {"COMPLETED"})
        trigger = HatchetWorkflowRunEventTrigger("demo-etl", **FAST)
        stream = trigger.run()
        first = asyncio.ensure_future(stream.__anext__())
        polls = requests_of(hatchet)
        start = polls()
        await until(lambda: polls() >= start + 2)
        new = trigger_runs(1)
        event = await asyncio.wait_for(first, 10)
        await stream.aclose()
        return [event.payload, {"new": new[0]}]

    event, new = asyncio.run(scenario())
    assert event["run_id"] == new["new"]


def test_runs_are_found_through_the_read_lag(hatchet: Any) -> None:
    hatchet.visibility_delay = 0.4
    run_ids = trigger_runs(5)
    trigger = HatchetWorkflowRunEventTrigger("demo-etl", poll_interval=0.05, overlap=2.0)
    events = asyncio.run(collect(trigger.run(), 5, then_polls=10, polls=requests_of(hatchet)))
    assert sorted(e["run_id"] for e in events) == sorted(run_ids)


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="the watermark is stored from Airflow 3.3")
def test_a_restarted_watcher_neither_loses_nor_repeats_a_run(hatchet: Any) -> None:
    store = StateStore()

    def watcher() -> HatchetWorkflowRunEventTrigger:
        trigger = HatchetWorkflowRunEventTrigger("demo-etl", **FAST)
        trigger.asset_state_store = store
        return trigger

    before = trigger_runs(3)
    # As the triggerer does, the watcher is asked for its next event right after each one, then stopped.
    first = asyncio.run(collect(watcher().run(), 3, then_polls=2, polls=requests_of(hatchet)))
    during = trigger_runs(3)  # while no triggerer runs
    after = asyncio.run(collect(watcher().run(), 3, then_polls=6, polls=requests_of(hatchet)))
    assert sorted(e["run_id"] for e in first) == sorted(before)
    assert sorted(e["run_id"] for e in after) == sorted(during)
    (state,) = store.values.values()
    assert len(state) < 2048


def test_kwargs_are_static_json_and_round_trip_without_the_token(hatchet: Any) -> None:
    from airflow.triggers.base import BaseEventTrigger

    for trigger in (
        HatchetWorkflowRunEventTrigger("demo-etl", statuses="COMPLETED", additional_metadata={"n": 1}),
        HatchetEventTrigger(["b", "a"], additional_metadata={"k": "v"}, namespace="team"),
    ):
        classpath, kwargs = trigger.serialize()
        again = type(trigger)(**kwargs)
        assert again.serialize() == (classpath, kwargs)
        assert json.loads(json.dumps(kwargs)) == kwargs
        assert BaseEventTrigger.hash(classpath, kwargs) == BaseEventTrigger.hash(*again.serialize())
        assert hatchet.token not in json.dumps(kwargs) and hatchet.token not in repr(trigger)
        module, _, name = classpath.rpartition(".")
        assert getattr(__import__(module, fromlist=[name]), name) is type(trigger)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"statuses": ["RUNNING"]}, "statuses"),
    ({"statuses": []}, "statuses"),
    ({"poll_interval": 0}, "poll_interval"),
    ({"overlap": 60, "lookback": 30}, "lookback"),
    ({"additional_metadata": {"a:b": "c"}}, "additional_metadata['a:b']"),
])
def test_bad_arguments_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(HatchetValidationError) as caught:
        HatchetWorkflowRunEventTrigger("demo-etl", **kwargs)
    assert caught.value.field == field


def test_each_event_fires_once_with_its_payload_and_metadata(hatchet: Any, airflow_conn: Any,
                                                           hatchet_server: Any) -> None:
    airflow_conn("hatchet_default", conn_type="hatchet", host=hatchet_server.url, password=hatchet.token,
                 extra={"namespace": "shop"})
    trigger = HatchetEventTrigger(["order:created"], **FAST)

    async def scenario() -> list[dict[str, Any]]:
        stream = trigger.run()
        first = asyncio.ensure_future(stream.__anext__())
        polls = requests_of(hatchet, "events")
        start = polls()
        await until(lambda: polls() >= start + 1)
        ids = [hatchet.push_event("shop_order:created", {"order": i}, {"src": "web"}) for i in range(2)]
        hatchet.push_event("shop_order:cancelled", {"order": 9})
        hatchet.push_event("order:created", {"order": 8})  # another namespace
        events = [(await asyncio.wait_for(first, 10)).payload]
        events += await collect(stream, 1, then_polls=6, polls=polls)
        assert sorted(e["event_id"] for e in events) == sorted(ids)
        return events

    events = asyncio.run(scenario())
    assert {e["key"] for e in events} == {"shop_order:created"}
    assert sorted(e["payload"]["order"] for e in events) == [0, 1]
    assert events[0]["additional_metadata"] == {"src": "web"}


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="shared streams are Airflow 3.3's")
def test_watchers_of_one_workflow_share_one_poll(hatchet: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.triggers.shared_stream import SharedStreamManager

    completed = HatchetWorkflowRunEventTrigger("demo-multi", **FAST)
    failed = HatchetWorkflowRunEventTrigger("demo-multi", statuses=["FAILED"], **FAST)
    tagged = HatchetWorkflowRunEventTrigger("demo-multi", additional_metadata={"team": "a"}, **FAST)
    keys = {t.shared_stream_key() for t in (completed, failed, tagged)}
    assert len(keys) == 1 and None not in keys
    assert HatchetWorkflowRunEventTrigger("demo-etl", **FAST).shared_stream_key() not in keys
    pollers: list[Any] = []
    real_poller = HatchetWorkflowRunEventTrigger._poller.__func__  # type: ignore[attr-defined]

    async def counted(cls: Any, kwargs: Any) -> Any:
        pollers.append(dict(kwargs))
        return await real_poller(cls, kwargs)

    monkeypatch.setattr(HatchetWorkflowRunEventTrigger, "_poller", classmethod(counted))

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
        manager = SharedStreamManager()
        (key,) = keys
        streams = [t.filter_shared_stream(manager.subscribe(trigger_id=i, trigger=t, key=key))
                   for i, t in enumerate((completed, tagged))]
        first = [asyncio.ensure_future(s.__anext__()) for s in streams]
        polls = requests_of(hatchet)
        await until(lambda: polls() >= 2)
        run_ids = trigger_runs(2, "demo-multi") + trigger_runs(1, "demo-multi", team="a")
        got_completed = [(await asyncio.wait_for(first[0], 20)).payload]
        got_completed += await collect(streams[0], 2)
        got_tagged = [(await asyncio.wait_for(first[1], 20)).payload]
        await manager.stop_all()
        return got_completed, got_tagged, run_ids

    got_completed, got_tagged, run_ids = asyncio.run(scenario())
    assert sorted(e["run_id"] for e in got_completed) == sorted(run_ids)
    assert [e["run_id"] for e in got_tagged] == run_ids[2:]
    assert len(pollers) == 1 and "statuses" not in pollers[0]


def test_a_watcher_started_before_its_connection_exists_keeps_polling(
    hatchet: Any, hatchet_server: Any, airflow_conn: Any, monkeypatch: pytest.MonkeyPatch, logs: Any
) -> None:
    monkeypatch.delenv("HATCHET_CLIENT_TOKEN", raising=False)
    trigger = HatchetWorkflowRunEventTrigger("demo-etl", hatchet_conn_id="hatchet_later", **FAST)

    logged: list[str] = []

    async def scenario() -> tuple[str, dict[str, Any]]:
        stream = trigger.run()
        first = asyncio.ensure_future(stream.__anext__())
        await until(lambda: "Polling Hatchet failed" in "".join(logged.append(logs()) or logged))
        airflow_conn("hatchet_later", conn_type="hatchet", host=hatchet_server.url, password=hatchet.token)
        polls = requests_of(hatchet)
        await until(lambda: polls() >= 2)
        (run_id,) = trigger_runs(1)
        event = (await asyncio.wait_for(first, 20)).payload
        await stream.aclose()
        return run_id, event

    run_id, event = asyncio.run(scenario())
    assert event["run_id"] == run_id
    assert "does not exist and HATCHET_CLIENT_TOKEN is not set" in "".join(logged)


def test_the_example_dag_schedules_on_hatchet_assets_with_watchers(hatchet: Any) -> None:
    import importlib.util
    from pathlib import Path

    from tests.airflow_helpers import example_dag

    path = Path(__file__).resolve().parent.parent / "dags_examples" / "example_hatchet_asset_watcher.py"
    spec = importlib.util.spec_from_file_location("example_hatchet_asset_watcher", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for dag_id, asset in (("example_hatchet_asset_watcher", module.ETL_COMPLETED),
                          ("example_hatchet_event_watcher", module.ORDER_CREATED)):
        dag = example_dag(f"example_hatchet_asset_watcher::{dag_id}")
        assert asset in dag.timetable.asset_condition.objects
        (watcher,) = asset.watchers
        classpath, kwargs = watcher.trigger.serialize()
        assert classpath.startswith("airflow_provider_hatchet.triggers.watchers.")
        assert hatchet.token not in json.dumps(kwargs)


def test_a_watcher_of_an_unknown_workflow_warns_once_with_close_names(hatchet: Any, logs: Any) -> None:
    trigger = HatchetWorkflowRunEventTrigger("demo-et1", **FAST)
    looked_up = requests_of(hatchet, "workflows")

    async def scenario() -> str:
        stream = trigger.run()
        pending = asyncio.ensure_future(stream.__anext__())
        await until(lambda: looked_up() >= 8)  # four polls, each looking the name up and listing the workflows
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        await stream.aclose()
        return str(logs())

    logged = asyncio.run(scenario())
    assert logged.count("no workflow named 'demo-et1'") == 1
    assert "close names: demo-etl" in logged
