"""HatchetWorkflowRunTrigger against the loopback simulator: events, serialization, cancellation and on_kill."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import time
from collections.abc import Callable, Iterator
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_hatchet._identity import TI_KEY
from airflow_provider_hatchet.client import (
    AsyncHatchetClient,
    ClientConfig,
    RetryPolicy,
    TriggerRequest,
    endpoints,
    run_wait,
)
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.testing import HatchetSimulator, SimulatorServer
from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunTrigger, WaitResume
from tests import conditions

pytestmark = pytest.mark.loopback

CONN_ID = "hatchet_trigger_tests"


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(HatchetSimulator(visibility_delay=0.0, cancel_delay=0.2)) as srv:
        yield srv


@pytest.fixture
def sim(server: SimulatorServer, airflow_conn: Callable[..., str]) -> HatchetSimulator:
    simulator = server.simulator
    simulator.reset()
    simulator.register_workflow("etl", "succeed", duration=0.05, output={"rows": 3})
    simulator.register_workflow("broken", "fail", duration=0.05, error_message="KeyError: 'day'")
    simulator.register_workflow("forever", "hang")
    airflow_conn(CONN_ID, conn_type="hatchet", host=server.url, password=simulator.token)
    return simulator


async def trigger_runs(sim: HatchetSimulator, workflow: str, n: int = 1, **metadata: str) -> list[str]:
    config = ClientConfig.from_token(sim.token)
    async with AsyncHatchetClient(config, retry=RetryPolicy(attempts=1)) as client:
        return [
            await client.send(endpoints.trigger(TriggerRequest(workflow, {"i": i}, dict(metadata))))
            for i in range(n)
        ]


def make(run_ids: list[str], **kwargs: Any) -> HatchetWorkflowRunTrigger:
    kwargs.setdefault("poll_interval", 0.05)
    return HatchetWorkflowRunTrigger(run_ids=run_ids, hatchet_conn_id=CONN_ID, **kwargs)


async def events_of(trigger: HatchetWorkflowRunTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


# The simulator's runs here take 0.05 s: look every 10 ms, and fail after 10 s.
until = partial(conditions.until, timeout=10.0, every=0.01)


def statuses(sim: HatchetSimulator, run_ids: list[str]) -> list[str]:
    return [sim.run_status(i) for i in run_ids]


def a_round_was_made(sim: HatchetSimulator) -> Callable[[], bool]:
    """Whether the trigger has asked about its runs (the simulator's request log, cleared before it started)."""
    return lambda: any(r.route in ("status", "list", "details") for r in sim.requests)


def test_serialize_round_trips_json_safe_without_the_token(sim: HatchetSimulator) -> None:
    trigger = HatchetWorkflowRunTrigger(
        run_ids=["a", "b"], hatchet_conn_id=CONN_ID, poll_interval=7, execution_deadline=1.7e9,
        fail_on_cancelled=False, batch_key="d|r|t|-1", fetch_outputs=False, cancel_on_kill=False,
        cancel_on_timeout=True, resume=WaitResume(started_at=1.6e9, not_found_grace=30, max_concurrency=8,
                                                  detect_batch=False, first_poll_at=1.65e9),
    )
    classpath, kwargs = trigger.serialize()
    text = json.dumps(kwargs)
    assert sim.token not in text
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(text))
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["run_ids"] == ["a", "b"] and kwargs["execution_deadline"] == 1.7e9
    assert kwargs["resume"] == {"started_at": 1.6e9, "not_found_grace": 30, "max_concurrency": 8,
                                "detect_batch": False, "first_poll_at": 1.65e9}
    assert kwargs["cancel_on_timeout"] is True
    # Every argument is written back; the task-to-trigger internals are grouped in resume.
    assert set(kwargs) == set(inspect.signature(HatchetWorkflowRunTrigger).parameters)
    assert len(kwargs) <= 10


@pytest.mark.parametrize(("resume", "named"), [
    ({"started": 1.0}, "resume: started: Unexpected keyword argument"),
    ({"max_concurrency": "many"}, "resume: max_concurrency: Input should be a valid integer"),
])
def test_a_bad_resume_is_refused_naming_the_key(resume: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        HatchetWorkflowRunTrigger(run_ids=["a"], resume=resume)


def test_run_ids_must_be_a_list_of_ids() -> None:
    with pytest.raises(ValueError, match="run_ids must be a list"):
        HatchetWorkflowRunTrigger(run_ids="abc")


async def test_success_event_carries_outputs_in_order(sim: HatchetSimulator) -> None:
    sim.register_workflow("multi", "multi_task", duration=0.02)
    ids = await trigger_runs(sim, "etl") + await trigger_runs(sim, "multi")
    events = await events_of(make(ids))
    assert len(events) == 1
    event = events[0]
    assert event["status"] == "success"
    assert event["run_ids"] == ids
    assert event["statuses"] == {i: "COMPLETED" for i in ids}
    assert event["outputs"][0] == {"run": {"rows": 3}}
    assert set(event["outputs"][1]) == {"extract", "transform", "load"}
    json.dumps(event)


async def test_failure_event_names_the_failed_run(sim: HatchetSimulator) -> None:
    hanging = await trigger_runs(sim, "forever", 2)
    broken = await trigger_runs(sim, "broken")
    (event,) = await events_of(make(hanging + broken))
    assert event["status"] == "failed"
    assert event["errors"] == {broken[0]: {"run": "KeyError: 'day'"}}
    assert broken[0] in event["message"] and "KeyError: 'day'" in event["message"]
    assert "outputs" not in event
    assert [sim.run_status(i) for i in hanging] == ["RUNNING", "RUNNING"]


async def test_cancelled_event(sim: HatchetSimulator) -> None:
    hanging = await trigger_runs(sim, "forever")
    config = ClientConfig.from_token(sim.token)
    async with AsyncHatchetClient(config) as client:
        await client.send(endpoints.cancel(hanging))
    (event,) = await events_of(make(hanging))
    assert event["status"] == "cancelled"
    assert event["statuses"] == {hanging[0]: "CANCELLED"}


async def test_deadline_gives_a_timeout_event_and_leaves_runs_running(sim: HatchetSimulator) -> None:
    hanging = await trigger_runs(sim, "forever")
    (event,) = await events_of(make(hanging, execution_deadline=time.time() + 0.3))
    assert event["status"] == "timeout"
    assert "left running" in event["message"]
    assert sim.run_status(hanging[0]) == "RUNNING"


async def test_deadline_cancels_the_unfinished_runs_when_asked(sim: HatchetSimulator) -> None:
    hanging = await trigger_runs(sim, "forever")
    (event,) = await events_of(make(hanging, execution_deadline=time.time() + 0.3, cancel_on_timeout=True))
    assert event["status"] == "timeout"
    assert "(cancelled)" in event["message"]
    # The simulator applies a cancel after its cancel_delay.
    await until(lambda: statuses(sim, hanging) == ["CANCELLED"], "the run cancelled")


def test_a_deadline_cancels_once_when_the_loop_ends_after_the_first_event(sim: HatchetSimulator) -> None:
    # Airflow 3.3's dag.test() takes the first event and closes the loop, cancelling the open generator.
    hanging = asyncio.run(trigger_runs(sim, "forever"))
    trigger = make(hanging, execution_deadline=time.time() + 0.3, cancel_on_timeout=True)

    async def first_event() -> Any:
        return await anext(trigger.run(), None)

    event = asyncio.run(first_event())
    assert event.payload["status"] == "timeout"
    assert [r.route for r in sim.requests].count("cancel") == 1


async def test_forbidden_gives_an_error_event(
    sim: HatchetSimulator, airflow_conn: Callable[..., str], server: SimulatorServer
) -> None:
    ids = await trigger_runs(sim, "etl")
    airflow_conn(CONN_ID, conn_type="hatchet", host=server.url, password=sim.token_for(sim.add_tenant("x")))
    (event,) = await events_of(make(ids))
    assert event["status"] == "error"
    assert "403" in event["message"]


async def test_batch_key_polls_with_one_list_per_round(sim: HatchetSimulator) -> None:
    sim.register_workflow("slow", "succeed", duration=0.4)
    ids = await trigger_runs(sim, "slow", 12, **{TI_KEY: "dag|run|bulk|-1"})
    sim.clear_requests()
    (event,) = await events_of(make(ids, batch_key="dag|run|bulk|-1"))
    assert event["status"] == "success"
    kinds = [r.route for r in sim.requests]
    # The lists bring the outputs; one run's details name its task.
    assert kinds.count("details") == 1
    assert set(kinds) == {"list", "details"}
    async with AsyncHatchetClient(ClientConfig.from_token(sim.token)) as client:
        assert event["outputs"] == [(await client.send(endpoints.run_details(i))).task_outputs() for i in ids]


async def test_cancelling_the_trigger_propagates(sim: HatchetSimulator) -> None:
    hanging = await trigger_runs(sim, "forever")
    sim.clear_requests()
    task = asyncio.ensure_future(events_of(make(hanging)))
    await until(a_round_was_made(sim), "the trigger's first round")
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_on_kill_cancels_the_unfinished_runs(sim: HatchetSimulator) -> None:
    done = await trigger_runs(sim, "etl")
    hanging = await trigger_runs(sim, "forever", 2)
    await until(lambda: statuses(sim, done) == ["COMPLETED"], "the etl run finished")
    sim.clear_requests()
    trigger = make(done + hanging)
    task = asyncio.ensure_future(events_of(trigger))
    # Its first round over: a run it has no status for yet counts as unfinished, and on_kill would cancel it too.
    await until(lambda: len(trigger.wait.state.statuses) == 3, "the trigger's first round over")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    sim.clear_requests()
    await trigger.on_kill()
    cancel = [r for r in sim.requests if r.route == "cancel"]
    assert len(cancel) == 1 and sorted(cancel[0].json["externalIds"]) == sorted(hanging)
    await until(lambda: statuses(sim, hanging) == ["CANCELLED", "CANCELLED"], "both runs cancelled")
    assert sim.run_status(done[0]) == "COMPLETED"


async def test_on_kill_does_nothing_when_disabled(sim: HatchetSimulator) -> None:
    hanging = await trigger_runs(sim, "forever")
    trigger = make(hanging, cancel_on_kill=False)
    sim.clear_requests()
    await trigger.on_kill()
    assert sim.requests == []


async def test_triggers_in_one_loop_share_one_client(sim: HatchetSimulator) -> None:
    first = await HatchetHook(CONN_ID).aget_client()
    second = await HatchetHook(CONN_ID).aget_client()
    assert first is second


async def test_the_first_round_waits_for_first_poll_at(sim: HatchetSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deferring sensor's own check was the first round: the trigger's first comes one interval later (polling:
    the stream's side is in tests/test_stream_wait.py)."""
    ids = await trigger_runs(sim, "etl")
    slept: list[float] = []
    requests_when_slept: list[int] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        requests_when_slept.append(len(sim.requests))

    monkeypatch.setattr(run_wait, "asyncio", SimpleNamespace(sleep=sleep, CancelledError=asyncio.CancelledError))
    sim.clear_requests()
    (event,) = await events_of(make(ids, poll_interval=30,
                                       resume={"first_poll_at": time.time() + 30, "listen": "off"}))
    assert event["status"] == "success"
    assert 29 < slept[0] <= 30
    assert requests_when_slept[0] == 0


async def test_a_past_first_poll_at_starts_at_once(sim: HatchetSimulator) -> None:
    ids = await trigger_runs(sim, "etl")
    await until(lambda: statuses(sim, ids) == ["COMPLETED"], "the run finished")  # else the next round is 30 s on
    (event,) = await events_of(make(ids, poll_interval=30, resume={"first_poll_at": time.time() - 60}))
    assert event["status"] == "success"


async def test_detect_batch_false_reads_no_run_for_its_batch_key(sim: HatchetSimulator) -> None:
    ids = await trigger_runs(sim, "etl", 6, **{TI_KEY: "dag|run|bulk|-1"})
    await until(lambda: set(statuses(sim, ids)) == {"COMPLETED"}, "the runs finished")
    sim.clear_requests()
    (event,) = await events_of(make(ids, resume={"detect_batch": False}))
    assert event["status"] == "success"
    kinds = [r.route for r in sim.requests]
    assert kinds.count("details") == 1  # one run's, to name the task of the outputs the list brought
    assert kinds.index("list") < kinds.index("details")
