"""The simulator's gRPC calls: ``TriggerWorkflow``, ``BulkTriggerWorkflow``, ``Push`` and ``BulkPush``, on the
REST face's state.

Each run's body is what the REST trigger would have received, so lists, details and the request log read it the
same way. As on Hatchet v0.105.0: a run of an unknown workflow gets an id that never exists (as REST's
``return_only_id`` does), an empty bulk trigger answers no ids, and a run whose idempotency key is taken fails the
call with ALREADY_EXISTS naming the runs that hold the keys, while the call's other runs are created.

Faults use the routes ``trigger`` (shared with the REST trigger), ``bulk_trigger`` and ``events``: an injected
status maps to its gRPC code (429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, other 5xx INTERNAL), ``after_create`` fails
after the runs exist, and ``drop`` cancels the stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from airflow_provider_hatchet import _protos

from .auth import TokenAuthority
from .faults import Decision, FaultInjector
from .store import SimState, Tenant
from .versions import IDEMPOTENCY_KEY_SINCE, before, names_not_found
from .workflows import idempotency_value

_CODES = {429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
          400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 409: "ALREADY_EXISTS"}
# HTTP-like statuses for the request log: grpc-gateway's mapping.
STATUSES = {"OK": 200, "INVALID_ARGUMENT": 400, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "NOT_FOUND": 404,
            "ALREADY_EXISTS": 409, "RESOURCE_EXHAUSTED": 429, "INTERNAL": 500, "UNAVAILABLE": 503, "CANCELLED": 0}
# The names of grpc.StatusCode, for checking a status asked for without importing grpc.
GRPC_STATUS_NAMES = frozenset({
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
    "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"})
# BulkPush takes at most this many events.
MAX_BULK_EVENTS = 1000
ROUTE_OF = {_protos.TRIGGER: "trigger", _protos.BULK_TRIGGER: "bulk_trigger", _protos.PUSH_EVENT: "events",
            _protos.BULK_PUSH: "events"}


@dataclass(slots=True)
class GrpcAnswer:
    """What the simulator answers to one gRPC call.

    :param response: the response message, or None for an error.
    :param code: the gRPC status code name of an error.
    :param details: the error's text.
    :param delay: seconds to wait before answering.
    :param drop: cancel the stream instead of answering.
    :param status_details: a serialized ``google.rpc.Status`` for the error's trailing metadata.
    """

    response: Any = None
    code: str = "OK"
    details: str = ""
    delay: float = 0.0
    drop: bool = False
    status_details: bytes | None = None


def _error(code: str, details: str) -> GrpcAnswer:
    return GrpcAnswer(code=code, details=details)


def _json_value(text: str, field: str) -> Any:
    """A JSON field's value (``{}`` when empty), or the error the engine gives; ``field`` is the name its
    message uses (``payload`` for a trigger's input too)."""
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return _error("INVALID_ARGUMENT", f"Invalid request: invalid json in field `{field}`")


def _json_object(text: str, field: str) -> dict[str, Any] | GrpcAnswer:
    value = _json_value(text, field)
    if isinstance(value, (GrpcAnswer, dict)):
        return value
    return _error("INVALID_ARGUMENT", f"Invalid request: {field} is not a JSON object")


def _priority_error(priority: int) -> GrpcAnswer | None:
    if 1 <= priority <= 3:
        return None
    return _error("INVALID_ARGUMENT", f"priority must be between 1 and 3, got {priority}")


def timestamp_of(seconds: float) -> Any:
    """A ``google.protobuf.Timestamp`` of a UNIX time.

    :param seconds: the time.
    """
    return _protos.Timestamp(seconds=int(seconds), nanos=int(seconds % 1 * 1e9))


class HatchetGrpcApi:
    """Answers the gRPC calls; callers hold the simulator lock.

    :param state: the data.
    :param auth: token validation.
    :param faults: fault injection.
    :param settings: object with a ``version`` attribute: the Hatchet release answered as.
    """

    def __init__(self, state: SimState, auth: TokenAuthority, faults: FaultInjector, settings: Any) -> None:
        self.state = state
        self.auth = auth
        self.faults = faults
        self.settings = settings

    def handle(self, method: str, authorization: str | None, request: Any) -> GrpcAnswer:
        """Answer one call.

        :param method: the full method path.
        :param authorization: the ``authorization`` metadata value.
        :param request: the decoded request message.
        """
        tenant = self.tenant_of(authorization)
        if tenant is None:
            return _error("UNAUTHENTICATED", "invalid auth token")
        route = ROUTE_OF[method]
        decision = self.faults.decide(route)
        if decision is not None and decision.fails and not decision.after_create:
            return self._injected(decision)
        if method == _protos.TRIGGER:
            answer = self._trigger(tenant, request)
        elif method == _protos.BULK_TRIGGER:
            answer = self._bulk_trigger(tenant, list(request.workflows))
        else:
            answer = self._push(tenant, [request] if method == _protos.PUSH_EVENT else list(request.events),
                                single=method == _protos.PUSH_EVENT)
        if decision is not None and answer.code == "OK" and decision.fails:
            answer = self._injected(decision)
        if decision is not None:
            answer.delay += decision.delay
        return answer

    def tenant_of(self, authorization: str | None) -> Tenant | None:
        """The tenant whose valid token the ``authorization`` metadata carries, else ``None``.

        :param authorization: the ``authorization`` metadata value.
        """
        claims = self.auth.verify_grpc(authorization)
        return None if claims is None else self.state.tenants.get(str(claims.get("sub", "")).lower())

    @staticmethod
    def _injected(decision: Decision) -> GrpcAnswer:
        if decision.drop:
            return GrpcAnswer(code="CANCELLED", details="stream dropped", drop=True, delay=decision.delay)
        status = decision.status or 500
        return GrpcAnswer(code=_CODES.get(status, "INTERNAL"), details=f"simulated {status}", delay=decision.delay)

    def trigger_body(self, tenant: Tenant, request: Any) -> dict[str, Any] | GrpcAnswer:
        """The REST trigger body a ``TriggerWorkflowRequest`` stands for, or the error it gets.

        :param tenant: the caller's tenant.
        :param request: the message.
        """
        body: dict[str, Any] = {"workflowName": request.name}
        # The engine takes any JSON value as the input, and names the field ``payload`` when it is not JSON.
        run_input = _json_value(request.input, "payload")
        if isinstance(run_input, GrpcAnswer):
            return run_input
        body["input"] = run_input
        if request.HasField("additional_metadata"):
            metadata = _json_object(request.additional_metadata, "additionalMetadata")
            if isinstance(metadata, GrpcAnswer):
                return metadata
            body["additionalMetadata"] = metadata
        if request.HasField("priority"):
            wrong = _priority_error(request.priority)
            if wrong is not None:
                wrong.details = f"Invalid request: {wrong.details}"
                return wrong
            body["priority"] = request.priority
        return body

    def _bulk_trigger(self, tenant: Tenant, requests: list[Any]) -> GrpcAnswer:
        bodies: list[dict[str, Any]] = []
        for request in requests:
            body = self.trigger_body(tenant, request)
            if isinstance(body, GrpcAnswer):
                return body
            rejection = self.faults.rejection(body)
            if rejection is not None:
                status, text = rejection
                return _error(_CODES.get(status, "INTERNAL"), text or f"simulated {status}")
            bodies.append(body)
        refused = names_not_found(self.settings.version, [b["workflowName"] for b in bodies], tenant.workflows)
        if refused is not None:
            return _error("INVALID_ARGUMENT", refused)
        state = self.state
        now = state.clock()
        run_ids: list[str] = []
        collisions: list[Any] = []
        for body in bodies:
            spec = tenant.workflows.get(body["workflowName"])
            key: str | None = None
            if spec is not None and not before(self.settings.version, IDEMPOTENCY_KEY_SINCE):
                try:
                    key = idempotency_value(spec.idempotency_key, body)
                except ValueError:
                    spec = None  # the engine skips the run, as if the workflow did not exist
            if spec is None:
                run_ids.append(state.new_id())
                state.phantom_ids.append(run_ids[-1])
            elif key is not None and not state.claim_idempotency_key(tenant, spec, key, now):
                holder = next(r.id for r in reversed(tenant.runs) if r.workflow is spec and r.idempotency_key == key)
                collisions.append(_protos.IdempotencyCollisionError(existing_run_external_id=holder,
                                                                    colliding_run_external_id=state.new_id()))
            else:
                run_ids.append(state.create_run(tenant, spec, body, now, idempotency_key=key).id)
        if collisions:
            detail = _protos.BulkTriggerIdempotencyCollisionError(successful_workflow_run_external_ids=run_ids,
                                                                  collisions=collisions)
            status = _protos.Status(code=6, message="idempotency key collision", details=[_protos.Any_(
                type_url=_protos.TYPE_URL_PREFIX + _protos.BULK_IDEMPOTENCY_COLLISION,
                value=detail.SerializeToString())])
            return GrpcAnswer(code="ALREADY_EXISTS", details="idempotency key collision",
                              status_details=status.SerializeToString())
        return GrpcAnswer(_protos.BulkTriggerWorkflowResponse(workflow_run_ids=run_ids))

    def _trigger(self, tenant: Tenant, request: Any) -> GrpcAnswer:
        """``TriggerWorkflow``: the bulk trigger of one run, answered with its id; a collision's detail names only
        the run holding the key."""
        answer = self._bulk_trigger(tenant, [request])
        if answer.response is not None:
            return GrpcAnswer(_protos.TriggerWorkflowResponse(workflow_run_id=answer.response.workflow_run_ids[0]))
        if answer.status_details is not None:
            [detail] = _protos.Status.FromString(answer.status_details).details
            [collision] = _protos.BulkTriggerIdempotencyCollisionError.FromString(detail.value).collisions
            collision.ClearField("colliding_run_external_id")  # as Hatchet v0.105.0 sends it for one run
            answer.status_details = _protos.Status(code=6, message=answer.details, details=[_protos.Any_(
                type_url=_protos.TYPE_URL_PREFIX + _protos.IDEMPOTENCY_COLLISION,
                value=collision.SerializeToString())]).SerializeToString()
        return answer

    def _push(self, tenant: Tenant, requests: list[Any], *, single: bool) -> GrpcAnswer:
        if len(requests) > MAX_BULK_EVENTS:
            return _error("INVALID_ARGUMENT", f"too many events: {len(requests)} (at most {MAX_BULK_EVENTS})")
        if not requests:
            return _error("INVALID_ARGUMENT", "No events to ingest")
        events: list[tuple[Any, dict[str, Any], dict[str, Any]]] = []
        for request in requests:
            payload = _json_object(request.payload, "payload")
            if isinstance(payload, GrpcAnswer):
                return payload
            metadata = _json_object(request.additional_metadata if request.HasField("additional_metadata") else "",
                                    "additionalMetadata")
            if isinstance(metadata, GrpcAnswer):
                return metadata
            wrong = _priority_error(request.priority) if request.HasField("priority") else None
            if wrong is not None:
                return wrong
            events.append((request, payload, metadata))
        now = self.state.clock()
        answers = []
        for request, payload, metadata in events:
            event_id = self.state.calendar.push_event(
                self.state, tenant, request.key, payload, metadata,
                request.priority if request.HasField("priority") else None).id
            # The engine answers in proto3, which sends no empty field; the time is the server's when not given.
            answer = _protos.Event(tenant_id=tenant.id, event_id=event_id, event_timestamp=(
                request.event_timestamp if request.HasField("event_timestamp") else timestamp_of(self.state.wall(now))))
            for name in ("key", "payload", "additional_metadata"):
                if getattr(request, name):
                    setattr(answer, name, getattr(request, name))
            answers.append(answer)
        return GrpcAnswer(answers[0] if single else _protos.Events(events=answers))
