"""The simulator's gRPC calls: ``BulkTriggerWorkflow``, ``Push`` and ``BulkPush``, on the REST face's state.

A bulk trigger creates all its runs or none. Each run's body is what the REST trigger would have received, so lists,
details and the request log read it the same way. Faults use the routes ``bulk_trigger`` and ``events``: an
injected status maps to its gRPC code (429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, other 5xx INTERNAL), ``after_create``
fails after the runs exist, and ``drop`` cancels the stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from airflow_provider_hatchet import _protos

from .auth import TokenAuthority
from .faults import Decision, FaultInjector
from .store import SimState, Tenant

_CODES = {429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
          400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 409: "ALREADY_EXISTS"}
# HTTP-like statuses for the request log: grpc-gateway's mapping.
STATUSES = {"OK": 200, "INVALID_ARGUMENT": 400, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "NOT_FOUND": 404,
            "ALREADY_EXISTS": 409, "RESOURCE_EXHAUSTED": 429, "INTERNAL": 500, "UNAVAILABLE": 503, "CANCELLED": 0}
ROUTE_OF = {_protos.BULK_TRIGGER: "bulk_trigger", _protos.PUSH_EVENT: "events", _protos.BULK_PUSH: "events"}


@dataclass(slots=True)
class GrpcAnswer:
    """What the simulator answers to one gRPC call.

    :param response: the response message, or None for an error.
    :param code: the gRPC status code name of an error.
    :param details: the error's text.
    :param delay: seconds to wait before answering.
    :param drop: cancel the stream instead of answering.
    """

    response: Any = None
    code: str = "OK"
    details: str = ""
    delay: float = 0.0
    drop: bool = False


def _error(code: str, details: str) -> GrpcAnswer:
    return GrpcAnswer(code=code, details=details)


def _json_object(text: str, field: str) -> dict[str, Any] | GrpcAnswer:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return _error("INVALID_ARGUMENT", f"{field} is not valid JSON")
    return value if isinstance(value, dict) else _error("INVALID_ARGUMENT", f"{field} is not a JSON object")


class HatchetGrpcApi:
    """Answers the gRPC calls; callers hold the simulator lock.

    :param state: the data.
    :param auth: token validation.
    :param faults: fault injection.
    """

    def __init__(self, state: SimState, auth: TokenAuthority, faults: FaultInjector) -> None:
        self.state = state
        self.auth = auth
        self.faults = faults

    def handle(self, method: str, authorization: str | None, request: Any) -> GrpcAnswer:
        """Answer one call.

        :param method: the full method path.
        :param authorization: the ``authorization`` metadata value.
        :param request: the decoded request message.
        """
        claims = self.auth.verify(authorization)
        tenant = self.state.tenants.get(str((claims or {}).get("sub", "")).lower())
        if claims is None or tenant is None:
            return _error("UNAUTHENTICATED", "invalid auth token")
        route = ROUTE_OF[method]
        decision = self.faults.decide(route)
        if decision is not None and decision.fails and not decision.after_create:
            return self._injected(decision)
        if method == _protos.BULK_TRIGGER:
            answer = self._bulk_trigger(tenant, list(request.workflows))
        else:
            answer = self._push(tenant, [request] if method == _protos.PUSH_EVENT else list(request.events),
                                single=method == _protos.PUSH_EVENT)
        if decision is not None and answer.code == "OK" and decision.fails:
            answer = self._injected(decision)
        if decision is not None:
            answer.delay += decision.delay
        return answer

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
        run_input = _json_object(request.input, "input")
        if isinstance(run_input, GrpcAnswer):
            return run_input
        body["input"] = run_input
        if request.HasField("additional_metadata"):
            metadata = _json_object(request.additional_metadata, "additional_metadata")
            if isinstance(metadata, GrpcAnswer):
                return metadata
            body["additionalMetadata"] = metadata
        if request.HasField("priority"):
            if not 1 <= request.priority <= 3:
                return _error("INVALID_ARGUMENT", f"priority must be between 1 and 3, got {request.priority}")
            body["priority"] = request.priority
        if request.name not in tenant.workflows:
            return _error("NOT_FOUND", f"workflow {request.name} not found")
        return body

    def _bulk_trigger(self, tenant: Tenant, requests: list[Any]) -> GrpcAnswer:
        if not requests:
            return _error("INVALID_ARGUMENT", "no workflows to trigger")
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
        now = self.state.clock()
        run_ids = [self.state.create_run(tenant, tenant.workflows[body["workflowName"]], body, now).id
                   for body in bodies]
        return GrpcAnswer(_protos.BulkTriggerWorkflowResponse(workflow_run_ids=run_ids))

    def _push(self, tenant: Tenant, requests: list[Any], *, single: bool) -> GrpcAnswer:
        return _error("UNIMPLEMENTED", "events are not simulated")
