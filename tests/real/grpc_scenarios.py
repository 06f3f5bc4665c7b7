"""Conformance scenarios for Hatchet's gRPC API: the single and bulk triggers, event push and bulk push, and the
Dispatcher's stream of finished runs.

Each sends raw messages (``airflow_provider_hatchet._protos``) through :meth:`Session.grpc`, so the simulator's
gRPC face and the real engine are compared on status codes, error texts and details, and replies, as the REST
scenarios compare HTTP answers.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from airflow_provider_hatchet import _protos
from tests.real.conformance import Scenario, Session
from tests.real.conftest import EVENT_KEY
from tests.real.grpc_stream import GrpcStream
from tests.real.scenarios import CANCEL, LIST, _until, run_path

# Seconds to listen for answers that must not come: longer than two of the server's 1 s polls.
QUIET_SECONDS = 2.5


def _request(s: Session, workflow: str, run_input: Any, priority: int | None = None, **metadata: str) -> Any:
    return _protos.TriggerWorkflowRequest(
        name=workflow, input=json.dumps(run_input), priority=priority,
        additional_metadata=json.dumps({"test_tag": s.tag, **metadata}))


def _bulk(s: Session, step: str, requests: list[Any], *, auth: str = "default") -> list[str]:
    reply = s.grpc(step, _protos.BULK_TRIGGER, _protos.BulkTriggerWorkflowRequest(workflows=requests),
                   _protos.BulkTriggerWorkflowResponse, auth=auth)
    return [] if reply is None else list(reply.workflow_run_ids)


def grpc_bulk_trigger(s: Session) -> None:
    """BulkTriggerWorkflow: ids in request order, each run listed with its metadata and finished; an empty batch;
    bad priority, input and metadata; unknown workflows; bad tokens; more than 1,000 runs in one call."""
    ids = _bulk(s, "three", [_request(s, "demo-etl", {"i": i}, None, i=str(i)) for i in range(3)])
    for number, run_id in enumerate(ids):
        s.name(run_id, f"run-{number}")
    # The first run's states; the others run alongside it, so a poller sees more or fewer of theirs.
    for number, run_id in enumerate(ids):
        s.watch("watch" if number == 0 else None, run_id)
    s.wait_listed(3)
    s.call("listed", "GET", LIST, params={"since": s.since, "only_tasks": "false",
                                          "additional_metadata": f"test_tag:{s.tag}", "limit": 10})
    _bulk(s, "empty", [])
    _bulk(s, "priority-high", [_request(s, "demo-etl", {}, 9)])
    _bulk(s, "priority-zero", [_request(s, "demo-etl", {}, 0)])
    _bulk(s, "input-not-json", [_protos.TriggerWorkflowRequest(name="demo-etl", input="{not json")])
    _bulk(s, "input-not-object", [_protos.TriggerWorkflowRequest(name="demo-etl", input="[1, 2]")])
    _bulk(s, "metadata-not-json", [_protos.TriggerWorkflowRequest(name="demo-etl", input="{}",
                                                                  additional_metadata="{nope")])
    _bulk(s, "no-name", [_protos.TriggerWorkflowRequest(input="{}")])
    phantom = _bulk(s, "unknown-workflow", [_request(s, f"demo-missing-{s.tag}", {})])
    for run_id in phantom:
        s.name(run_id, "phantom")
    for auth in ("forged", "garbage", "none"):
        _bulk(s, f"auth-{auth}", [_request(s, "demo-etl", {})], auth=auth)
    _bulk(s, "over-1000", [_request(s, f"demo-missing-{s.tag}", {}) for _ in range(1001)])


def _single(s: Session, step: str, request: Any, *, auth: str = "default") -> str | None:
    reply = s.grpc(step, _protos.TRIGGER, request, _protos.TriggerWorkflowResponse, auth=auth)
    return None if reply is None else str(reply.workflow_run_id)


def grpc_single_trigger(s: Session) -> None:
    """TriggerWorkflow (hatchet-sdk's ``run_no_wait``): the id it answers is the run's id in the REST API, the run
    listed with its metadata and priority and finished; bad priority, input and metadata; an unknown workflow; an
    idempotency key collision; bad tokens."""
    run_id = _single(s, "trigger", _request(s, "demo-etl", {"n": 1}, 2, single="yes"))
    if run_id is not None:
        s.name(run_id, "run")
        s.watch("watch", run_id)
        s.wait_listed(1)
        s.call("details", "GET", run_path(run_id))
        s.call("listed", "GET", LIST, params={"since": s.since, "only_tasks": "false",
                                              "additional_metadata": f"test_tag:{s.tag}", "limit": 10})
    _single(s, "priority-high", _request(s, "demo-etl", {}, 9))
    _single(s, "input-not-json", _protos.TriggerWorkflowRequest(name="demo-etl", input="{not json"))
    _single(s, "input-not-object", _protos.TriggerWorkflowRequest(name="demo-etl", input="[1, 2]"))
    _single(s, "metadata-not-json", _protos.TriggerWorkflowRequest(name="demo-etl", input="{}",
                                                                   additional_metadata="{nope"))
    _single(s, "no-name", _protos.TriggerWorkflowRequest(input="{}"))
    phantom = _single(s, "unknown-workflow", _request(s, f"demo-missing-{s.tag}", {}))
    if phantom:
        s.name(phantom, "phantom")
    key = uuid.uuid4().hex
    holder = _single(s, "holder", _request(s, "demo-idempotent", {"key": key}))
    if holder is not None:
        s.name(holder, "holder")
    _single(s, "collision", _request(s, "demo-idempotent", {"key": key}))
    for auth in ("forged", "none"):
        _single(s, f"auth-{auth}", _request(s, "demo-etl", {}), auth=auth)


def grpc_idempotency(s: Session) -> None:
    """An idempotency key collision in a bulk trigger: ALREADY_EXISTS whose details name the holder."""
    key = uuid.uuid4().hex
    [holder] = _bulk(s, "holder", [_request(s, "demo-idempotent", {"key": key})])
    s.name(holder, "holder")
    _bulk(s, "collision", [_request(s, "demo-idempotent", {"key": key}),
                           _request(s, "demo-idempotent", {"key": uuid.uuid4().hex})])
    _bulk(s, "collision-alone", [_request(s, "demo-idempotent", {"key": key})])


def _event(s: Session, key: str, payload: Any, **fields: Any) -> Any:
    return _protos.PushEventRequest(key=key, payload=json.dumps(payload),
                                    additional_metadata=json.dumps({"test_tag": s.tag}), **fields)


def grpc_events(s: Session) -> None:
    """Push and BulkPush: the events echoed back, an event running its subscribed workflow, bad payloads and
    metadata, an empty bulk push, bad tokens and the spellings of the bearer scheme."""
    event = s.grpc("push", _protos.PUSH_EVENT, _event(s, EVENT_KEY, {"n": 1}), _protos.Event)
    if event is not None:
        s.name(event.event_id, "event")
        runs: list[dict[str, Any]] = []

        def triggered() -> bool:
            runs[:] = s.list_runs(triggering_event_external_id=event.event_id)
            return bool(runs)

        _until(triggered)
        s.watch("triggered-run", s.name(runs[0]["metadata"]["id"], "triggered-run"))
    pushed = s.grpc("bulk-push", _protos.BULK_PUSH, _protos.BulkPushEventRequest(events=[
        _event(s, f"conformance:{s.tag}", {"n": 2}, priority=2, scope="tenant-a"),
        _event(s, f"conformance:{s.tag}", {"n": 3})]), _protos.Events)
    for number, one in enumerate(pushed.events if pushed is not None else []):
        s.name(one.event_id, f"bulk-event-{number}")
    s.grpc("bulk-push-empty", _protos.BULK_PUSH, _protos.BulkPushEventRequest(events=[]), _protos.Events)
    s.grpc("payload-not-json", _protos.PUSH_EVENT,
           _protos.PushEventRequest(key=f"conformance:{s.tag}", payload="{nope"), _protos.Event)
    s.grpc("metadata-not-json", _protos.PUSH_EVENT, _protos.PushEventRequest(
        key=f"conformance:{s.tag}", payload="{}", additional_metadata="{nope"), _protos.Event)
    s.grpc("priority-high", _protos.PUSH_EVENT, _event(s, f"conformance:{s.tag}", {}, priority=9), _protos.Event)
    s.grpc("no-key", _protos.PUSH_EVENT, _protos.PushEventRequest(payload="{}"), _protos.Event)
    s.grpc("auth-forged", _protos.PUSH_EVENT, _event(s, f"conformance:{s.tag}", {}), _protos.Event, auth="forged")
    # The scheme's case does not matter to the engine (hatchet-sdk sends "bearer"); its spacing does.
    for auth in ("lowercase-bearer", "uppercase-bearer", "two-spaces"):
        sent = s.grpc(f"auth-{auth}", _protos.PUSH_EVENT, _event(s, f"conformance:{s.tag}", {"auth": auth}),
                      _protos.Event, auth=auth)
        if sent is not None:
            s.name(sent.event_id, f"event-{auth}")
    _bulk(s, "bulk-trigger-empty-lowercase-bearer", [], auth="lowercase-bearer")


def _runs_stream(s: Session, auth: str = "default") -> GrpcStream:
    return s.stream(_protos.SUBSCRIBE_RUNS, _protos.WorkflowRunEvent, auth=auth)


def _subscribe(stream: GrpcStream, *run_ids: str) -> None:
    for run_id in run_ids:
        stream.send(_protos.SubscribeToWorkflowRunsRequest(workflow_run_id=run_id))


def _expect(stream: GrpcStream, steps: dict[str, str]) -> None:
    stream.expect(steps, key=lambda event: event.workflow_run_id)


def run_event_stream(s: Session) -> None:
    """SubscribeToWorkflowRuns (hatchet-sdk's wait for a result): the FINISHED event of a completed, a failed, a
    cancelled and a multi-task run; a run subscribed twice on one stream and on two streams; a run that had finished
    before it was subscribed, and one subscribed again after its event; unknown, malformed and another tenant's ids
    (never answered); the client's half-close with a run still pending; bad tokens."""
    first, second = _runs_stream(s), _runs_stream(s)
    completed = s.trigger(None, "demo-etl", {"n": 1}, name="completed")
    failed = s.trigger(None, "demo-fail", {}, name="failed")
    multi = s.trigger(None, "demo-multi", {"n": 2}, name="multi")
    cancelled = s.trigger(None, "demo-hang", {}, name="cancelled")
    _subscribe(first, completed, failed, multi, cancelled, completed)
    _subscribe(second, completed)
    s.watch(None, cancelled, on_running=lambda: s.call(None, "POST", CANCEL, body={"externalIds": [cancelled]}))
    _expect(first, {completed: "completed", failed: "failed", multi: "multi", cancelled: "cancelled"})
    _expect(second, {completed: "second-stream"})
    late = _runs_stream(s)
    _subscribe(late, completed)
    _expect(late, {completed: "already-finished"})
    _subscribe(first, failed)
    _expect(first, {failed: "subscribed-again"})
    strays = _runs_stream(s)
    # Not "id-<...>": v0.75.0 remembers such an id and its next poll crashes the engine (docs/hatchet-behaviour.md).
    _subscribe(strays, str(uuid.uuid4()), "not-a-uuid", "", multi)
    _expect(strays, {multi: "after-strays"})
    foreign = _runs_stream(s, auth="foreign")
    _subscribe(foreign, completed)
    pending = _runs_stream(s)
    hanging = s.trigger(None, "demo-hang", {}, name="hanging")
    _subscribe(pending, hanging)
    pending.close("half-close-pending")
    time.sleep(QUIET_SECONDS)  # for answers that must not come: duplicates, strays, another tenant's run
    for name, stream in (("first", first), ("second", second), ("late", late), ("strays", strays),
                         ("foreign", foreign)):
        stream.close(f"close-{name}")
    for auth in ("forged", "garbage", "none"):
        _runs_stream(s, auth=auth).close(f"auth-{auth}", half_close=False)


GRPC_SCENARIOS: dict[str, Scenario] = {
    scenario.__name__: scenario for scenario in (grpc_bulk_trigger, grpc_single_trigger, grpc_idempotency,
                                                  grpc_events, run_event_stream)
}
