"""The simulator's finished-run stream (``Dispatcher.SubscribeToWorkflowRuns``) over its gRPC face on loopback, on a
manual clock: what it sends, when, and its fault hooks (tests/real's ``run_event_stream`` holds it to Hatchet)."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_hatchet import _protos
from airflow_provider_hatchet.testing import HatchetSimulator, ManualClock

pytestmark = pytest.mark.loopback

# Real seconds to wait for a reply that must come (the face looks every 20 ms); never reached when all is well.
REPLY_TIMEOUT = 10.0


class Stream:
    """A raw client of the stream: run ids go out one by one, replies and the end are read with a timeout.

    :param channel: a grpcio channel to the face.
    :param token: the caller's token (empty: none).
    """

    def __init__(self, channel: Any, token: str) -> None:
        self._out: queue.Queue[Any] = queue.Queue()
        self._in: queue.Queue[Any] = queue.Queue()
        call = channel.stream_stream(_protos.SUBSCRIBE_RUNS, request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=_protos.WorkflowRunEvent.FromString)
        metadata = [("authorization", f"Bearer {token}")] if token else []
        self.call = call(iter(self._out.get, None), metadata=metadata, timeout=60)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        import grpc

        try:
            for event in self.call:
                self._in.put(event)
            self._in.put("OK")
        except grpc.RpcError as exc:
            self._in.put(exc.code().name)

    def subscribe(self, *run_ids: str) -> None:
        """Send run ids.

        :param run_ids: the ids.
        """
        for run_id in run_ids:
            self._out.put(_protos.SubscribeToWorkflowRunsRequest(workflow_run_id=run_id))

    def half_close(self) -> None:
        """End the client's side."""
        self._out.put(None)

    def next(self) -> Any:
        """The next event, or the status name the stream ended with."""
        return self._in.get(timeout=REPLY_TIMEOUT)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> HatchetSimulator:
    sim = HatchetSimulator(clock=clock, visibility_delay=0.0)
    sim.register_workflow("etl", duration=2.0)
    sim.register_workflow("boom", "fail", duration=2.0, error_message="Exception: no")
    sim.register_workflow("hang", "hang")
    sim.register_workflow("dag", "multi_task", duration=1.0)
    return sim


@pytest.fixture
def channel(sim: HatchetSimulator) -> Iterator[Any]:
    import grpc

    with sim.grpc_server() as face, grpc.insecure_channel(face.address) as opened:
        yield opened


def trigger(sim: HatchetSimulator, channel: Any, workflow: str, run_input: Any = None, token: str = "") -> str:
    call = channel.unary_unary(_protos.TRIGGER, request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=_protos.TriggerWorkflowResponse.FromString)
    request = _protos.TriggerWorkflowRequest(name=workflow, input=json.dumps(run_input or {}))
    return str(call(request, metadata=[("authorization", f"Bearer {token or sim.token}")]).workflow_run_id)


def cancel(sim: HatchetSimulator, run_id: str) -> None:
    response = sim.handle("POST", f"/api/v1/stable/tenants/{sim.tenant_id}/tasks/cancel",
                          authorization=f"Bearer {sim.token}", body=json.dumps({"externalIds": [run_id]}).encode())
    assert response.status == 200


def results(event: Any) -> list[tuple[str, str | None, str | None]]:
    return sorted((r.task_name, r.output if r.HasField("output") else None, r.error if r.HasField("error") else None)
                  for r in event.results)


def test_a_completed_run_is_sent_once_it_finishes_with_its_output(sim: HatchetSimulator, clock: ManualClock,
                                                                  channel: Any) -> None:
    run_id = trigger(sim, channel, "etl", {"n": 1})
    stream = Stream(channel, sim.token)
    stream.subscribe(run_id)
    clock.advance(1.0)
    barrier = trigger(sim, channel, "hang")
    stream.subscribe(barrier)
    sim.wait_run_subscribed([run_id, barrier])
    cancel(sim, barrier)
    clock.advance(0.1)

    assert stream.next().workflow_run_id == barrier  # the unfinished run said nothing meanwhile
    clock.advance(1.0)
    event = stream.next()

    assert event.workflow_run_id == run_id
    assert not event.HasField("event_type")  # FINISHED is the enum's zero: off the wire, as from Hatchet
    assert event.HasField("event_timestamp")
    assert results(event) == [("run", '{"workflow":"etl","task":"run","step":0,"echo":{"n":1}}', None)]
    assert [r.task_run_external_id for r in event.results] == [run_id]  # a one-task run is its task
    assert sim.open_run_streams() == [set()]


def test_a_failed_run_sends_its_error_and_a_cancelled_run_an_empty_one(sim: HatchetSimulator, clock: ManualClock,
                                                                       channel: Any) -> None:
    failed, hung = trigger(sim, channel, "boom"), trigger(sim, channel, "hang")
    stream = Stream(channel, sim.token)
    stream.subscribe(failed, hung)
    sim.wait_run_subscribed([failed, hung])
    clock.advance(3.0)
    cancel(sim, hung)
    clock.advance(0.1)

    events = {e.workflow_run_id: results(e) for e in (stream.next(), stream.next())}

    assert events == {failed: [("run", None, "Exception: no")], hung: [("run", None, "")]}


def test_a_multi_task_run_sends_one_result_per_task(sim: HatchetSimulator, clock: ManualClock, channel: Any) -> None:
    run_id = trigger(sim, channel, "dag")
    stream = Stream(channel, sim.token)
    stream.subscribe(run_id)
    sim.wait_run_subscribed([run_id])
    clock.advance(3.0)

    event = stream.next()

    assert [name for name, _, _ in results(event)] == ["extract", "load", "transform"]
    assert run_id not in {r.task_run_external_id for r in event.results}


def test_a_run_finished_before_it_was_subscribed_is_sent_at_the_next_poll_tick(
        sim: HatchetSimulator, clock: ManualClock, channel: Any) -> None:
    done = trigger(sim, channel, "etl")
    clock.advance(5.0)
    stream = Stream(channel, sim.token)
    stream.subscribe(done)
    pushed = trigger(sim, channel, "hang")
    stream.subscribe(pushed)
    sim.wait_run_subscribed([done, pushed])
    clock.advance(0.4)
    cancel(sim, pushed)
    clock.advance(0.1)

    assert stream.next().workflow_run_id == pushed  # a run finishing is pushed at once; the finished one waits
    clock.advance(0.6)  # past the tick, 1 s after the stream opened

    assert stream.next().workflow_run_id == done


def test_a_run_subscribed_twice_is_sent_once_and_again_when_subscribed_after_its_event(
        sim: HatchetSimulator, clock: ManualClock, channel: Any) -> None:
    run_id, other = trigger(sim, channel, "etl"), trigger(sim, channel, "boom")
    stream = Stream(channel, sim.token)
    marker = str(uuid.uuid4())  # read after both copies: the second must arrive before the run's event goes out
    stream.subscribe(run_id, run_id, marker)
    sim.wait_run_subscribed([run_id, marker])
    clock.advance(2.5)
    assert stream.next().workflow_run_id == run_id
    stream.subscribe(other)
    sim.wait_run_subscribed([other])
    clock.advance(1.0)

    assert stream.next().workflow_run_id == other  # no second event of run_id came before it
    stream.subscribe(run_id)
    sim.wait_run_subscribed([run_id])
    clock.advance(1.0)
    assert stream.next().workflow_run_id == run_id


def test_two_streams_of_one_run_each_get_its_event(sim: HatchetSimulator, clock: ManualClock, channel: Any) -> None:
    run_id = trigger(sim, channel, "etl")
    first, second = Stream(channel, sim.token), Stream(channel, sim.token)
    first.subscribe(run_id)
    second.subscribe(run_id)
    sim.wait_run_subscribed([run_id], streams=2)
    clock.advance(2.5)

    assert first.next().workflow_run_id == second.next().workflow_run_id == run_id


def test_unknown_malformed_and_foreign_ids_are_never_answered(sim: HatchetSimulator, clock: ManualClock,
                                                              channel: Any) -> None:
    foreign_tenant = sim.add_tenant("other")
    sim.register_workflow("etl", tenant_id=foreign_tenant, duration=0.1)
    foreign_run = trigger(sim, channel, "etl", token=sim.token_for(foreign_tenant))
    unknown = str(uuid.uuid4())
    done = trigger(sim, channel, "etl")
    clock.advance(3.0)
    stream = Stream(channel, sim.token)
    stream.subscribe(unknown, "not-a-uuid", "", "id-1", foreign_run, done)
    sim.wait_run_subscribed([unknown, foreign_run, done])
    clock.advance(1.5)

    assert stream.next().workflow_run_id == done
    # Remembered but never answered: an unknown run and another tenant's; the ids that are not UUIDs are dropped.
    assert sim.open_run_streams() == [{unknown, foreign_run}]


def test_the_client_half_close_ends_the_stream_with_ok(sim: HatchetSimulator, channel: Any) -> None:
    stream = Stream(channel, sim.token)
    hung = trigger(sim, channel, "hang")
    stream.subscribe(hung)
    sim.wait_run_subscribed([hung])
    stream.half_close()

    assert stream.next() == "OK"
    assert sim.open_run_streams() == []


@pytest.mark.parametrize("token", ["", "not-a-token"])
def test_a_bad_token_is_refused(sim: HatchetSimulator, channel: Any, token: str) -> None:
    assert Stream(channel, token).next() == "UNAUTHENTICATED"


@pytest.mark.parametrize("code", ["UNAVAILABLE", "OK"])
def test_cut_run_streams_ends_every_open_stream_and_new_ones_work(sim: HatchetSimulator, clock: ManualClock,
                                                                   channel: Any, code: str) -> None:
    run_id = trigger(sim, channel, "etl")
    streams = [Stream(channel, sim.token) for _ in range(2)]
    for stream in streams:
        stream.subscribe(run_id)
    sim.wait_run_subscribed([run_id], streams=2)

    assert sim.cut_run_streams(code) == 2
    assert [stream.next() for stream in streams] == [code, code]
    assert sim.open_run_streams() == []
    again = Stream(channel, sim.token)
    again.subscribe(run_id)
    sim.wait_run_subscribed([run_id])
    clock.advance(2.5)
    assert again.next().workflow_run_id == run_id


def test_drop_run_event_loses_that_run_on_every_stream(sim: HatchetSimulator, clock: ManualClock,
                                                       channel: Any) -> None:
    lost, kept = trigger(sim, channel, "etl"), trigger(sim, channel, "boom")
    sim.drop_run_event(lost.upper())
    stream = Stream(channel, sim.token)
    stream.subscribe(lost, kept)
    sim.wait_run_subscribed([lost, kept])
    clock.advance(2.5)

    assert stream.next().workflow_run_id == kept
    assert sim.open_run_streams() == [set()]  # the lost one counts as sent


def test_as_v0_75_an_id_prefixed_non_uuid_crashes_every_stream_at_the_next_poll(clock: ManualClock) -> None:
    import grpc

    sim = HatchetSimulator(clock=clock, version="v0.75.0")
    with sim.grpc_server() as face, grpc.insecure_channel(face.address) as channel:
        bystander, crasher = Stream(channel, sim.token), Stream(channel, sim.token)
        unknown = str(uuid.uuid4())
        bystander.subscribe(unknown)
        crasher.subscribe("id-1", unknown)
        sim.wait_run_subscribed([unknown], streams=2)
        assert {"id-1", unknown} in sim.open_run_streams()  # remembered, unlike on later releases

        clock.advance(1.0)

        assert [bystander.next(), crasher.next()] == ["UNAVAILABLE", "UNAVAILABLE"]


def test_ten_thousand_subscriptions_on_one_stream_still_deliver(sim: HatchetSimulator, clock: ManualClock,
                                                               channel: Any) -> None:
    run_id = trigger(sim, channel, "etl")
    stream = Stream(channel, sim.token)
    unknown = [str(uuid.uuid4()) for _ in range(10_000)]
    stream.subscribe(*unknown, run_id)
    sim.wait_run_subscribed([unknown[0], run_id], timeout=60)
    clock.advance(2.5)

    assert stream.next().workflow_run_id == run_id
    assert [len(ids) for ids in sim.open_run_streams()] == [10_000]


def test_a_message_that_is_not_a_subscription_ends_the_stream_with_ok(sim: HatchetSimulator, channel: Any) -> None:
    # As on Hatchet, whose handler ends the stream when a read fails. The client never half-closes.
    outbox: queue.Queue[bytes | None] = queue.Queue()
    outbox.put(b"\xff\xff\xff")
    call = channel.stream_stream(_protos.SUBSCRIBE_RUNS, request_serializer=bytes,
                                 response_deserializer=_protos.WorkflowRunEvent.FromString)
    replies = call(iter(outbox.get, None), metadata=[("authorization", f"Bearer {sim.token}")],
                   timeout=REPLY_TIMEOUT)

    assert list(replies) == []
    assert replies.code().name == "OK"


def test_the_fault_hooks_are_on_the_admin_api_for_a_simulator_in_another_process(
        sim: HatchetSimulator, clock: ManualClock, channel: Any) -> None:
    lost, kept = trigger(sim, channel, "etl"), trigger(sim, channel, "boom")
    stream = Stream(channel, sim.token)
    stream.subscribe(lost, kept)
    sim.wait_run_subscribed([lost, kept])

    def admin(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        answer = sim.handle(method, f"/_simulator{path}", body=json.dumps(body).encode() if body else b"")
        return answer.status, json.loads(answer.body)

    assert admin("GET", "/run-streams") == (200, {"streams": [sorted([lost, kept])]})
    assert admin("POST", "/run-streams/drop", {"run_id": lost}) == (200, {})
    clock.advance(2.5)
    assert stream.next().workflow_run_id == kept
    status, refused = admin("POST", "/run-streams/cut", {"code": "GONE"})
    assert status == 400 and "code must be a gRPC status name" in refused["message"]
    assert admin("POST", "/run-streams/cut", {"code": "INTERNAL"}) == (200, {"cut": 1})
    assert stream.next() == "INTERNAL"
