"""Waits that hear their runs finish on the run-event stream, against the simulator's REST API and a loopback gRPC
server that streams what each test tells it (drops, duplicates, events for runs nobody asked about, an event that
claims a run finished while REST says it runs): the stream wakes a wait, the REST round decides how it ends."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from airflow_provider_hatchet import _protos
from airflow_provider_hatchet.client import (
    AsyncHatchetClient,
    ClientConfig,
    HatchetValidationError,
    RetryPolicy,
    RunWait,
    TriggerRequest,
    WaitResume,
    WaitStatus,
    endpoints,
)
from airflow_provider_hatchet.client.grpc import run_events
from airflow_provider_hatchet.client.grpc.run_events import close_run_events
from airflow_provider_hatchet.client.run_wait import EARLY_UNHEARD
from airflow_provider_hatchet.testing import HatchetSimulator

pytestmark = pytest.mark.loopback
log = logging.getLogger("tests.stream_wait")


class ScriptedStream:
    """``Dispatcher.SubscribeToWorkflowRuns`` on loopback: remembers the ids each stream sends and sends the events
    the test asks for; ``cut`` ends every open stream with UNAVAILABLE."""

    def __init__(self) -> None:
        self.streams: list[asyncio.Queue[Any]] = []
        self.subscribed: list[set[str]] = []
        self.requests: list[str] = []
        self.opened = 0
        self.server: Any = None
        self.address = ""
        self.heard = asyncio.Event()

    async def start(self) -> None:
        handler = grpc.stream_stream_rpc_method_handler(
            self._serve, request_deserializer=_protos.SubscribeToWorkflowRunsRequest.FromString,
            response_serializer=lambda message: message.SerializeToString())
        self.server = grpc.aio.server()
        self.server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("Dispatcher", {"SubscribeToWorkflowRuns": handler})])
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        await self.server.start()

    async def _serve(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        self.opened += 1
        outbox: asyncio.Queue[Any] = asyncio.Queue()
        ids: set[str] = set()
        self.streams.append(outbox)
        self.subscribed.append(ids)

        async def read() -> None:
            async for request in requests:
                ids.add(request.workflow_run_id)
                self.requests.append(request.workflow_run_id)
                self.heard.set()

        reader = asyncio.ensure_future(read())
        try:
            while (item := await outbox.get()) is not None:
                if isinstance(item, grpc.StatusCode):
                    await context.abort(item, "cut by the test")
                yield item
        finally:
            reader.cancel()
            self.streams.remove(outbox)
            self.subscribed.remove(ids)

    async def until_subscribed(self, run_id: str, streams: int = 1) -> None:
        """Return once ``run_id`` was sent on the ``streams``-th stream."""
        while not (self.opened >= streams and any(run_id in ids for ids in self.subscribed)):
            self.heard.clear()
            await asyncio.wait_for(self.heard.wait(), 10)

    def send(self, run_id: str, *, error: str = "", times: int = 1) -> None:
        """Send a FINISHED event for ``run_id`` on every open stream, whether it asked or not."""
        result = _protos.StepRunResult(task_name="run", error=error, output="" if error else '{"ok": true}')
        for outbox in self.streams:
            for _ in range(times):
                outbox.put_nowait(_protos.WorkflowRunEvent(workflow_run_id=run_id, results=[result]))

    def cut(self) -> None:
        for outbox in list(self.streams):
            outbox.put_nowait(grpc.StatusCode.UNAVAILABLE)


@pytest.fixture
async def stream() -> AsyncIterator[ScriptedStream]:
    server = ScriptedStream()
    await server.start()
    yield server
    await server.server.stop(None)


@pytest.fixture
def sim(hatchet: HatchetSimulator) -> HatchetSimulator:
    hatchet.visibility_delay = 0.0
    return hatchet


def config(sim: HatchetSimulator, grpc_address: str | None) -> ClientConfig:
    chosen = ClientConfig.from_token(sim.token, grpc_address=grpc_address or "", grpc_tls=False)
    return chosen if grpc_address else dataclasses.replace(chosen, grpc_address=None)


async def trigger(client: AsyncHatchetClient, workflow: str) -> str:
    return await client.send(endpoints.trigger(TriggerRequest(workflow, {})))


async def finished(sim: HatchetSimulator, run_id: str) -> None:
    """Return once the simulator has finished the run (its runs end on its own real-time clock here)."""
    while sim.run_status(run_id) not in ("COMPLETED", "FAILED", "CANCELLED"):  # noqa: ASYNC110
        await asyncio.sleep(0.05)


def slow_wait(run_ids: list[str], deadline: float = 15.0, **resume: Any) -> RunWait:
    """A wait whose poll interval is an hour: only the stream (or its deadline) can end it sooner."""
    return RunWait(run_ids, poll_interval=3600, execution_deadline=time.time() + deadline,
                   resume=WaitResume(**resume))


@pytest.fixture
async def client(sim: HatchetSimulator, stream: ScriptedStream) -> AsyncIterator[AsyncHatchetClient]:
    async with AsyncHatchetClient(config(sim, stream.address), retry=RetryPolicy(attempts=1)) as client:
        yield client
    await close_run_events()


async def test_a_wait_ends_on_the_event_without_waiting_for_its_poll_interval(
    sim: HatchetSimulator, stream: ScriptedStream, client: AsyncHatchetClient
) -> None:
    run_id = await trigger(client, "demo-etl")
    wait = asyncio.ensure_future(slow_wait([run_id]).run(client, log))
    await stream.until_subscribed(run_id)
    await finished(sim, run_id)
    stream.send(run_id)
    event = await wait
    assert event.status is WaitStatus.SUCCESS, event.message


async def test_one_event_ends_every_wait_on_the_run_and_the_waits_share_one_stream(
    sim: HatchetSimulator, stream: ScriptedStream, client: AsyncHatchetClient
) -> None:
    run_id = await trigger(client, "demo-etl")
    waits = [asyncio.ensure_future(slow_wait([run_id]).run(client, log)) for _ in range(5)]
    await stream.until_subscribed(run_id)
    hub = run_events.run_events(client.config)
    assert hub.watched() == 1
    await finished(sim, run_id)
    stream.send(run_id)
    events = await asyncio.gather(*waits)
    assert [event.status for event in events] == [WaitStatus.SUCCESS] * 5
    assert stream.opened == 1
    # Each wait let go of its watch when it ended; a wait that starts now learns the event without asking.
    assert hub.watched() == 0
    late = hub.watch([run_id])
    assert late.finished == {run_id: False}
    # ... and sends the id again (a run replayed since its event finishes again: only a new subscription hears it).
    async def sent_again() -> None:
        while stream.requests.count(run_id) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(sent_again(), 10)
    late.close()
    assert stream.subscribed == [{run_id}]
    assert stream.requests == [run_id, run_id]


async def test_a_failed_run_ends_the_wait_at_once_while_another_still_runs(
    sim: HatchetSimulator, stream: ScriptedStream, client: AsyncHatchetClient
) -> None:
    failing, hanging = await trigger(client, "demo-fail"), await trigger(client, "demo-hang")
    wait = asyncio.ensure_future(slow_wait([failing, hanging]).run(client, log))
    await stream.until_subscribed(hanging)
    await finished(sim, failing)
    stream.send(failing, error="boom")
    event = await wait
    assert event.status is WaitStatus.FAILED
    assert event.statuses[hanging] == "RUNNING"


async def test_an_event_rest_does_not_confirm_does_not_end_the_wait(
    sim: HatchetSimulator, stream: ScriptedStream, client: AsyncHatchetClient
) -> None:
    """The stream claims a hanging run succeeded, twice, and sends an event for a run nobody asked about: REST says
    it runs, so the wait goes on (checking again after the claim) until its deadline."""
    hanging = await trigger(client, "demo-hang")
    sim.clear_requests()
    wait = asyncio.ensure_future(slow_wait([hanging], deadline=3).run(client, log))
    await stream.until_subscribed(hanging)
    stream.send("0b9a1f6e-0000-4000-8000-000000000000")
    stream.send(hanging, times=2)
    event = await wait
    assert event.status is WaitStatus.TIMEOUT
    assert event.statuses[hanging] == "RUNNING"
    # The first round, then the rounds that look again after the claim (at growing intervals).
    assert sum(1 for request in sim.requests if hanging in request.path) > 2


async def test_after_the_stream_is_cut_it_reconnects_and_nothing_is_lost(
    sim: HatchetSimulator, stream: ScriptedStream, client: AsyncHatchetClient
) -> None:
    """The run finishes while the stream is down and no event ever tells of it: the round after the reconnection
    finds it."""
    hanging = await trigger(client, "demo-hang")
    wait = asyncio.ensure_future(slow_wait([hanging]).run(client, log))
    await stream.until_subscribed(hanging)
    stream.cut()
    await client.send(endpoints.cancel([hanging]))
    await finished(sim, hanging)
    await stream.until_subscribed(hanging, streams=2)  # sent again on the new stream
    event = await wait
    assert event.status is WaitStatus.CANCELLED
    assert stream.opened == 2


def request_feeders() -> list[asyncio.Task[Any]]:
    """grpc's tasks that feed a stream its requests, one per stream call not yet over."""
    return [t for t in asyncio.all_tasks() if "_consume_request_iterator" in repr(t.get_coro())]


async def test_a_stream_the_server_ended_leaves_no_task_feeding_it_requests(
    sim: HatchetSimulator, stream: ScriptedStream, client: AsyncHatchetClient
) -> None:
    """grpc cancels its request-feeding task only when it cancels a live call: after each stream the server ended,
    the feeder of the old call waited for an id forever (a task and the old call kept per reconnection)."""
    hanging = await trigger(client, "demo-hang")
    wait = asyncio.ensure_future(slow_wait([hanging]).run(client, log))
    await stream.until_subscribed(hanging)
    for opened in (2, 3, 4):
        stream.cut()
        await stream.until_subscribed(hanging, streams=opened)
    await asyncio.sleep(0)
    assert len(request_feeders()) == 1  # the live stream's
    wait.cancel()
    await asyncio.gather(wait, return_exceptions=True)


async def test_a_server_without_the_stream_is_polled_with_one_line_saying_why(
    sim: HatchetSimulator, client: AsyncHatchetClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    run_id = await trigger(client, "demo-etl")
    bare = grpc.aio.server()  # a gRPC server that serves nothing: UNIMPLEMENTED, as a REST-only address answers
    address = f"127.0.0.1:{bare.add_insecure_port('127.0.0.1:0')}"
    await bare.start()
    try:
        async with AsyncHatchetClient(config(sim, address)) as polling:
            event = await RunWait([run_id], poll_interval=0.1, execution_deadline=time.time() + 15).run(polling, log)
            assert run_events.run_events(polling.config).final
    finally:
        await bare.stop(None)
    assert event.status is WaitStatus.SUCCESS
    lines = [r.getMessage() for r in caplog.records if "without the run-event stream" in r.getMessage()]
    assert len(lines) == 1 and "UNIMPLEMENTED" in lines[0]


@pytest.mark.parametrize(("grpc_address", "listen", "why"), [
    (None, "auto", "the token has no gRPC address"),
    ("stream", "off", "listen='off'"),
])
async def test_without_an_address_or_with_listen_off_no_stream_opens(
    sim: HatchetSimulator, stream: ScriptedStream, caplog: pytest.LogCaptureFixture, grpc_address: str | None,
    listen: str, why: str
) -> None:
    caplog.set_level(logging.INFO)
    address = stream.address if grpc_address else None
    async with AsyncHatchetClient(config(sim, address)) as polling:
        run_id = await trigger(polling, "demo-etl")
        event = await RunWait([run_id], poll_interval=0.1, execution_deadline=time.time() + 15,
                              resume=WaitResume(listen=listen)).run(polling, log)  # type: ignore[arg-type]
    assert event.status is WaitStatus.SUCCESS
    assert stream.opened == 0
    assert any(why in r.getMessage() for r in caplog.records)


def test_listen_must_be_auto_or_off() -> None:
    with pytest.raises(ValueError, match=r"resume: listen: Input should be 'auto' or 'off'"):
        WaitResume.from_dict({"listen": "yes"})
    from airflow_provider_hatchet.client import check_listen

    with pytest.raises(HatchetValidationError, match=r"listen.*must be one of auto, off, got 'yes'"):
        check_listen("yes")


@pytest.mark.parametrize("lag", [0.0, 1.2])
async def test_a_batch_stored_as_its_key_is_heard_before_its_first_round(
    sim: HatchetSimulator, stream: ScriptedStream, client: AsyncHatchetClient, lag: float
) -> None:
    """As the triggerer rebuilds a deferred sensor's wait on a big batch (its key, size and digest, no ids) with its
    first round an hour away: the wait reads the ids at once (again, while the list lags the trigger) and ends when
    the stream tells the runs finished."""
    from airflow_provider_hatchet.client.batch_runs import ids_digest

    sim.visibility_delay = lag
    ids = [await client.send(endpoints.trigger(TriggerRequest("demo-etl", {}, {"batch": "b-1", "index": str(i)})))
           for i in range(3)]
    resume = WaitResume(run_count=3, run_ids_digest=ids_digest(ids), first_poll_at=time.time() + 3600)
    wait = RunWait([], poll_interval=3600, execution_deadline=time.time() + 15, batch_key="b-1",
                   batch_field="batch", index_key="index", resume=resume)
    running = asyncio.ensure_future(wait.run(client, log))
    for run_id in ids:
        await stream.until_subscribed(run_id)
        await finished(sim, run_id)
        stream.send(run_id)
    event = await running
    assert event.status is WaitStatus.SUCCESS, event.message
    assert event.run_ids == ids


async def test_rounds_that_confirm_the_stream_read_the_last_few_runs_of_a_batch_one_by_one(
    sim: HatchetSimulator, stream: ScriptedStream, client: AsyncHatchetClient
) -> None:
    """The stream tells that every run of a batch finished while REST still shows two running (as REST lags the
    event): the rounds that look again ask those two one by one, not the whole batch's list with its outputs. The
    one list comes as the last EARLY_UNHEARD runs are still unheard."""
    done = [await client.send(endpoints.trigger(TriggerRequest("demo-etl", {}, {"batch": "b-2"}))) for _ in range(70)]
    hanging = [await client.send(endpoints.trigger(TriggerRequest("demo-hang", {}, {"batch": "b-2"})))
               for _ in range(2)]
    wait = RunWait(done + hanging, poll_interval=3600, execution_deadline=time.time() + 3, batch_key="b-2",
                   batch_field="batch", index_key="index")
    running = asyncio.ensure_future(wait.run(client, log))
    for run_id in done + hanging:
        await stream.until_subscribed(run_id)
    for run_id in done:
        await finished(sim, run_id)
    sim.clear_requests()
    for run_id in done + hanging:
        stream.send(run_id)
    event = await running
    assert event.status is WaitStatus.TIMEOUT
    routes = [request.route for request in sim.requests]
    assert routes.count("list") == 1, routes  # the early round
    assert routes.count("status") >= 4 and set(routes) <= {"list", "status", "details"}, routes
    assert routes.index("list") < routes.index("status")


async def test_a_wait_on_many_runs_tests_each_event_cheaply(sim: HatchetSimulator, stream: ScriptedStream) -> None:
    """A wait on 3,000 runs is woken by each of their 3,000 events: only the one that leaves EARLY_UNHEARD runs
    unheard (the early round) and the last make it walk its pending runs (once per event would be 9 million steps;
    a triggerer holds many such waits)."""
    import uuid

    ids = [str(uuid.uuid4()) for _ in range(3000)]
    wait = slow_wait(ids)
    hub = run_events.run_events(config(sim, stream.address))
    wait._watch = hub.watch(ids)
    wait._mark()
    full_tests = 0
    says_done = wait._stream_says_done

    def counted() -> bool:
        nonlocal full_tests
        full_tests += 1
        return says_done()

    wait._stream_says_done = counted  # type: ignore[method-assign]
    ok = _protos.StepRunResult(task_name="run", output='{"ok": true}')
    woken = []
    for run_id in ids:
        hub._heard(_protos.WorkflowRunEvent(workflow_run_id=run_id, results=[ok]))
        woken.append(wait._woken())
    early = 3000 - EARLY_UNHEARD
    assert woken == [False] * (early - 1) + [True] + [False] * (EARLY_UNHEARD - 1) + [True]
    assert full_tests == 2
    # A failure heard is tested at once, however few runs were heard.
    more = [str(uuid.uuid4()) for _ in range(3000)]
    failing = slow_wait(more)
    failing._watch = hub.watch(more)
    failing._mark()
    boom = _protos.StepRunResult(task_name="run", error="boom")
    hub._heard(_protos.WorkflowRunEvent(workflow_run_id=more[5], results=[boom]))
    assert failing._woken()
    failing._watch.close()
    wait._watch.close()
    await close_run_events()


async def test_a_batch_stored_as_its_key_past_its_deadline_ends_at_once(
    sim: HatchetSimulator, stream: ScriptedStream, client: AsyncHatchetClient
) -> None:
    wait = RunWait([], poll_interval=3600, execution_deadline=time.time() - 1, batch_key="nothing-listed",
                   batch_field="batch", index_key="index",
                   resume=WaitResume(run_count=3, run_ids_digest="0" * 64, first_poll_at=time.time() + 3600))
    event = await asyncio.wait_for(wait.run(client, log), 10)
    assert event.status is WaitStatus.TIMEOUT


async def test_with_the_stream_a_queued_run_is_checked_when_it_passes_the_grace(
    sim: HatchetSimulator, stream: ScriptedStream, client: AsyncHatchetClient
) -> None:
    """Rounds are a minute apart while the stream is connected; a run not visible yet, then QUEUED with no worker to
    serve it, still gets its rounds in time for the worker check's grace (2 s here), not a minute later."""
    sim.register_workflow("unserved", "succeed", served=False)
    sim.visibility_delay = 0.3
    run_id = await trigger(client, "unserved")
    wait = RunWait([run_id], poll_interval=0.2, execution_deadline=time.time() + 15,
                   resume=WaitResume(check_workers="fail", workflows=("unserved",), queued_grace=2.0))
    event = await wait.run(client, log)
    assert event.status is WaitStatus.NO_WORKER, event.message
    assert run_events.run_events(client.config).live
