"""Scheduled runs, crons and events through the hook and the clients, against the simulator over HTTP."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_hatchet.client import HatchetNotFoundError, HatchetValidationError, scheduling
from airflow_provider_hatchet.hooks.hatchet import HatchetHook

pytestmark = pytest.mark.af2


def soon(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


def wait_for(condition: Any, limit: float = 10.0) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met")


def test_a_scheduled_run_fires_on_time_with_its_input_metadata_and_priority(hatchet: Any) -> None:
    hook = HatchetHook()
    # 2 s ahead: the reads below must see it before it fires, on a loaded machine too (0.4 s once was not enough).
    scheduled = hook.schedule_workflow("demo-etl", soon(2.0), {"day": 1}, {"team": "data", "n": 3}, priority=2)
    assert scheduled.workflow_name == "demo-etl"
    assert hook.send(scheduling.get_scheduled(scheduled.id)).additional_metadata == {"team": "data", "n": "3"}
    assert [s.id for s in hook.send(scheduling.list_scheduled()).rows] == [scheduled.id]
    assert hatchet.run_count() == 0

    run = wait_for(lambda: hatchet.runs)[0]
    assert (run.workflow_name, run.body["input"], run.body["additionalMetadata"], run.body["priority"]) == (
        "demo-etl", {"day": 1}, {"team": "data", "n": "3"}, 2)
    with pytest.raises(HatchetNotFoundError):
        hook.send(scheduling.get_scheduled(scheduled.id))
    assert hook.send(scheduling.list_scheduled()).rows == []
    assert hook.delete_scheduled_run(scheduled.id) is False


def test_a_deleted_schedule_never_fires(hatchet: Any) -> None:
    hook = HatchetHook()
    scheduled = hook.schedule_workflow("demo-etl", soon(1.5))
    assert hook.delete_scheduled_run(scheduled.id) is True
    time.sleep(2.0)  # past its time
    assert hook.send(scheduling.list_scheduled()).rows == []
    assert hatchet.run_count() == 0


def test_a_rescheduled_run_fires_at_its_new_time(hatchet: Any) -> None:
    hook = HatchetHook()
    scheduled = hook.schedule_workflow("demo-etl", soon(3600))
    moved = hook.reschedule_run(scheduled.id, soon(0.2).isoformat())
    assert moved.trigger_at < soon(60)
    wait_for(lambda: hatchet.run_count() == 1)


def test_the_schedule_uses_the_namespace(hatchet: Any, airflow_conn: Any, hatchet_server: Any) -> None:
    hatchet.register_workflow("team_a_etl")
    scheduled = HatchetHook(namespace="Team_A").schedule_workflow("etl", soon(3600))
    assert scheduled.workflow_name == "team_a_etl"


@pytest.mark.parametrize(("trigger_at", "problem"), [
    ("tomorrow", "ISO 8601"),
    (12, "got int"),
])
def test_a_bad_trigger_time_is_refused_before_anything_is_sent(hatchet: Any, trigger_at: Any,
                                                                problem: str) -> None:
    hatchet.clear_requests()
    with pytest.raises(HatchetValidationError, match=problem) as caught:
        HatchetHook().schedule_workflow("demo-etl", trigger_at)
    assert caught.value.field == "trigger_at"
    assert hatchet.requests == []


def test_crons_are_created_listed_disabled_enabled_and_deleted(hatchet: Any) -> None:
    hook = HatchetHook()
    cron = hook.create_cron("demo-etl", "nightly", "0 2 * * *", {"a": 1}, {"k": "v"})
    assert (cron.name, cron.cron, cron.enabled, cron.input) == ("nightly", "0 2 * * *", True, {"a": 1})
    hook.send(scheduling.set_cron_enabled(cron.id, False))
    assert [(c.id, c.enabled) for c in hook.list_crons("demo-etl").rows] == [(cron.id, False)]
    hook.send(scheduling.set_cron_enabled(cron.id, True))
    assert hook.list_crons(cron_name="nightly").rows[0].enabled is True
    assert hook.list_crons("demo-fail").rows == []
    hook.send(scheduling.delete_cron(cron.id))
    assert hook.list_crons().rows == []


def test_a_cron_needs_a_name_and_five_fields(hatchet: Any) -> None:
    with pytest.raises(HatchetValidationError, match="five-field"):
        HatchetHook().create_cron("demo-etl", "x", "* * *")
    with pytest.raises(HatchetValidationError) as caught:
        HatchetHook().create_cron("demo-etl", " ", "* * * * *")
    assert caught.value.field == "cron_name"


def test_events_are_listed_newest_first_by_key_time_and_metadata(hatchet: Any) -> None:
    start = datetime.now(timezone.utc) - timedelta(seconds=1)
    first = hatchet.push_event("orders:new", {"order": 1}, {"shop": "a"})
    hatchet.push_event("orders:cancelled", {"order": 1})
    third = hatchet.push_event("orders:new", {"order": 2}, {"shop": "b"})
    client = HatchetHook().client
    page = client.send(scheduling.list_events(since=start, keys=["orders:new"]))
    assert [(e.id, e.payload, e.additional_metadata) for e in page.rows] == [
        (third, {"order": 2}, {"shop": "b"}), (first, {"order": 1}, {"shop": "a"})]
    assert [e.id for e in client.send(scheduling.list_events(since=start, keys=["orders:new"],
                                             additional_metadata={"shop": "a"})).rows] == [first]
    assert client.send(scheduling.list_events(since=datetime.now(timezone.utc) + timedelta(seconds=5))).rows == []


def test_the_async_client_lists_events_and_schedules(hatchet: Any) -> None:
    hook = HatchetHook()
    hatchet.push_event("k", {"x": 1})

    async def read() -> tuple[int, int]:
        client = await hook.aget_client()
        events = await client.send(scheduling.list_events(since=soon(-60), keys=["k"]))
        schedules = await client.send(scheduling.list_scheduled())
        return len(events.rows), len(schedules.rows)

    assert asyncio.run(read()) == (1, 0)
