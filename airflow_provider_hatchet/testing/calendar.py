"""Scheduled runs, crons and events: their store and their REST handlers.

A scheduled run fires on the simulator clock, checked before every API request: it becomes a run with its input,
metadata and priority, and is deleted, so its GET answers 404 from then on (as on Hatchet v0.105.0). Crons are
stored, listed, enabled and deleted; they do not fire. Events are created by :meth:`Calendar.push_event` (the
real server takes them over gRPC only) and listed newest first.
"""

from __future__ import annotations

import heapq
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ._http import SimResponse, api_errors, json_response, message
from .binding import BindError, bind_object, metadata_filters, parse_int, parse_rfc3339, parse_time_param
from .paging import event_pagination, workflow_pagination

if TYPE_CHECKING:
    from .store import SimState, Tenant

SCHEDULE_FIELDS = {"input": "object", "additionalMetadata": "object", "triggerAt": "string", "priority": "int"}
SCHEDULE_STRUCT = "gen.ScheduleWorkflowRunRequest"
CRON_FIELDS = {"input": "object", "additionalMetadata": "object", "cronName": "string", "cronExpression": "string",
               "priority": "int"}
CRON_STRUCT = "gen.CreateCronWorkflowTriggerRequest"
DEFAULT_LIMIT = 50
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
SCHEDULE_NOT_FOUND = "scheduled workflow run not found"
INTERNAL_ERROR = "Internal Server Error"
GO_TIME_LAYOUT = "2006-01-02T15:04:05Z07:00"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _priority_problem(priority: int) -> str:
    condition = "max' [ 3 ]" if priority > 3 else "min' [ 1 ]"
    return ("error 400: 1 error occurred:\n\t* validation failed on field "
            f"'CreateScheduledWorkflowRunForWorkflowOpts.Priority': on condition '{condition}: got invalid type\n\n")


def _ms(ts: float) -> str:
    stamp = datetime.fromtimestamp(ts, tz=timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


@dataclass
class Scheduled:
    """A scheduled run that has not fired."""

    id: str
    tenant_id: str
    workflow: str
    trigger_at: float  # UNIX time
    body: dict[str, Any]
    created: float  # UNIX time


@dataclass
class CronTrigger:
    """A cron trigger."""

    id: str
    tenant_id: str
    workflow: str
    name: str
    expression: str
    body: dict[str, Any]
    created: float
    enabled: bool = True


@dataclass
class Event:
    """An event."""

    id: str
    tenant_id: str
    key: str
    payload: dict[str, Any]
    metadata: dict[str, Any]
    created: float  # UNIX time


@dataclass
class Calendar:
    """Every tenant's scheduled runs, crons and events; callers hold the simulator lock."""

    scheduled: dict[str, Scheduled] = field(default_factory=dict)
    due: list[tuple[float, str]] = field(default_factory=list)
    crons: dict[str, CronTrigger] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    def clear(self) -> None:
        """Forget everything."""
        self.scheduled.clear()
        self.due.clear()
        self.crons.clear()
        self.events.clear()

    def fire_due(self, state: SimState, now: float) -> None:
        """Turn every scheduled run whose time has come into a run, and delete it.

        :param state: the data.
        :param now: the simulator clock.
        """
        wall = state.wall(now)
        while self.due and self.due[0][0] <= wall:
            _, scheduled_id = heapq.heappop(self.due)
            item = self.scheduled.get(scheduled_id)
            if item is None or item.trigger_at > wall:
                continue  # deleted, or rescheduled (a newer entry is queued)
            del self.scheduled[scheduled_id]
            tenant = state.tenants.get(item.tenant_id)
            spec = tenant.workflows.get(item.workflow) if tenant is not None else None
            if tenant is not None and spec is not None:
                state.create_run(tenant, spec, dict(item.body, workflowName=item.workflow), now)

    def push_event(self, state: SimState, tenant: Tenant, key: str, payload: dict[str, Any],
                   metadata: dict[str, Any], priority: int | None = None) -> Event:
        """Store an event and trigger its subscribers, as the engine does when it receives one over gRPC: the
        event list shows it from then on.

        :param state: the data.
        :param tenant: the tenant.
        :param key: the full event key.
        :param payload: the event payload.
        :param metadata: the event's additional metadata.
        :param priority: the event's priority, if it has one.
        """
        event = Event(state.new_id(), tenant.id, key, dict(payload), dict(metadata), state.wall(state.clock()))
        self.events.append(event)
        trigger_subscribed(state, tenant, event.id, key, payload, metadata, priority)
        return event


def trigger_subscribed(state: SimState, tenant: Tenant, event_id: str, key: str, payload: dict[str, Any],
                       metadata: dict[str, Any], priority: int | None = None) -> None:
    """Create a run of every workflow subscribed to the event's key, as the engine does when an event arrives.

    :param state: the data.
    :param tenant: the tenant.
    :param event_id: the event's id (the runs' ``triggering_event_external_id``).
    :param key: the full event key.
    :param payload: the event payload, the runs' input.
    :param metadata: the event's metadata, which the runs carry with the event's id and key.
    :param priority: the event's priority, if it has one.
    """
    run_metadata = {**metadata, "hatchet__event_id": event_id, "hatchet__event_key": key}
    now = state.clock()
    for spec in list(tenant.workflows.values()):
        if key in spec.on_events:
            body: dict[str, Any] = {"workflowName": spec.name, "input": payload, "additionalMetadata": run_metadata}
            if priority is not None:
                body["priority"] = priority
            state.create_run(tenant, spec, body, now, triggering_event=event_id)


def _scheduled_json(item: Scheduled, state: SimState, tenant: Tenant) -> dict[str, Any]:
    spec = tenant.workflows.get(item.workflow)
    return {
        "additionalMetadata": item.body.get("additionalMetadata"), "input": item.body.get("input") or {},
        "metadata": {"createdAt": _ms(item.created), "id": item.id, "updatedAt": _ms(item.created)},
        "method": "API", "priority": item.body.get("priority") or 1, "tenantId": tenant.id,
        "triggerAt": _ms(item.trigger_at),
        "workflowId": spec.id if spec else "", "workflowName": item.workflow, "workflowRunCreatedAt": GO_ZERO_TIME,
        "workflowRunName": "", "workflowVersionId": spec.version_id if spec else "",
    }


def _cron_json(item: CronTrigger, tenant: Tenant) -> dict[str, Any]:
    spec = tenant.workflows.get(item.workflow)
    return {
        "additionalMetadata": item.body.get("additionalMetadata") or {}, "cron": item.expression,
        "enabled": item.enabled, "input": item.body.get("input") or {},
        "metadata": {"createdAt": _ms(item.created), "id": item.id, "updatedAt": _ms(item.created)},
        "method": "API", "name": item.name, "priority": item.body.get("priority") or 1, "tenantId": tenant.id,
        "workflowId": spec.id if spec else "", "workflowName": item.workflow,
        "workflowVersionId": spec.version_id if spec else "",
    }


def _event_json(event: Event) -> dict[str, Any]:
    stamp = _ms(event.created)
    return {
        "additionalMetadata": event.metadata, "key": event.key,
        "metadata": {"createdAt": stamp, "id": event.id, "updatedAt": stamp}, "payload": event.payload,
        "seenAt": stamp, "tenantId": "", "triggeredRuns": None,
        "workflowRunSummary": {"cancelled": 0, "failed": 0, "queued": 0, "running": 0, "succeeded": 0},
    }


def _paging(q: dict[str, list[str]]) -> tuple[int, int]:
    offset = parse_int("offset", q["offset"][0]) if "offset" in q else 0
    limit = parse_int("limit", q["limit"][0]) if "limit" in q else DEFAULT_LIMIT
    return max(offset, 0), (limit if limit > 0 else DEFAULT_LIMIT)



def _carries(metadata: dict[str, Any], pairs: dict[str, str]) -> bool:
    return all(metadata.get(k) == v for k, v in pairs.items())


def calendar_route(parts: list[str]) -> tuple[str, tuple[str, ...], int] | None:
    """The route kind, its methods and the tenant's segment index of a path below ``/api/v1``, or None.

    :param parts: the path segments after ``api/v1``.
    """
    n = len(parts)
    if n == 4 and parts[:2] == ["stable", "tenants"] and parts[3] == "events":
        return "events", ("GET",), 2
    if n not in (4, 5) or parts[0] != "tenants" or parts[2] != "workflows":
        return None
    if n == 4 and parts[3] in ("scheduled", "crons"):
        return parts[3], ("GET",), 1
    if parts[3] in ("scheduled", "crons"):  # static segments win over a workflow named so
        return parts[3], ("GET", "DELETE", "PATCH"), 1
    if parts[4] in ("scheduled", "crons"):
        return parts[4], ("POST",), 1
    return None


class CalendarApi:
    """The REST handlers; each gets a tenant that authentication already resolved.

    :param state: the data.
    :param calendar: the schedules, crons and events.
    """

    def __init__(self, state: SimState, calendar: Calendar) -> None:
        self.state = state
        self.calendar = calendar

    def handle(self, tenant: Tenant, method: str, parts: list[str], query: str, body: bytes) -> SimResponse:
        """Answer a request that :func:`calendar_route` matched.

        :param tenant: the tenant.
        :param method: the HTTP method.
        :param parts: the path segments after ``api/v1``.
        :param query: the raw query string.
        :param body: the request body.
        """
        if parts[0] == "stable":
            return self.list_events(tenant, query)
        if len(parts) == 4:
            return self.list_scheduled(tenant, query) if parts[3] == "scheduled" else self.list_crons(tenant, query)
        if parts[3] == "scheduled":
            return self.scheduled(tenant, method, parts[4], body)
        if parts[3] == "crons":
            return self.cron(tenant, method, parts[4], body)
        if parts[4] == "scheduled":
            return self.create_scheduled(tenant, parts[3], body)
        return self.create_cron(tenant, parts[3], body)

    def create_scheduled(self, tenant: Tenant, workflow: str, body: bytes) -> SimResponse:
        """``POST .../workflows/{workflow}/scheduled``.

        :param tenant: the tenant.
        :param workflow: the workflow name from the path.
        :param body: the request body.
        """
        try:
            payload = bind_object(body, SCHEDULE_FIELDS, SCHEDULE_STRUCT)
        except BindError as exc:
            return message(400, str(exc))
        raw_time = payload.get("triggerAt")
        try:
            trigger_at = parse_rfc3339(raw_time) if isinstance(raw_time, str) else None
        except ValueError:
            return message(400, f'parsing time "{raw_time}" as "{GO_TIME_LAYOUT}": cannot parse "{raw_time}" as '
                                '"2006"')
        if workflow not in tenant.workflows:
            return api_errors(400, "workflow not found")
        priority = payload.get("priority")
        if priority is not None and not 1 <= priority <= 3:
            return api_errors(400, _priority_problem(priority))
        if trigger_at is None:
            return api_errors(400, 'ERROR: null value in column "triggerAt" of relation "WorkflowTriggerScheduledRef" '
                                   "violates not-null constraint (SQLSTATE 23502)")
        state = self.state
        item = Scheduled(state.new_id(), tenant.id, workflow, trigger_at,
                         {"input": payload.get("input") or {}, "additionalMetadata": payload.get("additionalMetadata"),
                          "priority": priority or 1},
                         state.wall(state.clock()))
        self.calendar.scheduled[item.id] = item
        heapq.heappush(self.calendar.due, (trigger_at, item.id))
        return json_response(200, _scheduled_json(item, state, tenant))

    def _find_scheduled(self, tenant: Tenant, scheduled_id: str) -> Scheduled | None:
        item = self.calendar.scheduled.get(scheduled_id.lower())
        return item if item is not None and item.tenant_id == tenant.id else None

    def scheduled(self, tenant: Tenant, method: str, scheduled_id: str, body: bytes) -> SimResponse:
        """``GET``, ``DELETE`` and ``PATCH .../workflows/scheduled/{id}``.

        :param tenant: the tenant.
        :param method: the HTTP method.
        :param scheduled_id: the id from the path.
        :param body: the request body.
        """
        if not _UUID.match(scheduled_id):
            return message(400, "invalid scheduled workflow run id")
        item = self._find_scheduled(tenant, scheduled_id)
        if item is None:
            return message(404, SCHEDULE_NOT_FOUND)
        if method == "DELETE":
            del self.calendar.scheduled[item.id]
            return SimResponse(204, b"")
        if method == "PATCH":
            try:
                payload = json.loads(body or b"{}")
                item.trigger_at = parse_rfc3339(str(payload.get("triggerAt") or ""))
            except (ValueError, AttributeError):
                return message(400, "invalid triggerAt")
            heapq.heappush(self.calendar.due, (item.trigger_at, item.id))
        return json_response(200, _scheduled_json(item, self.state, tenant))

    def list_scheduled(self, tenant: Tenant, query: str) -> SimResponse:
        """``GET .../workflows/scheduled``: newest first.

        :param tenant: the tenant.
        :param query: the raw query string.
        """
        q = parse_qs(query, keep_blank_values=True)
        try:
            offset, limit = _paging(q)
        except BindError as exc:
            return message(400, str(exc))
        raw = q.get("additionalMetadata", [])
        if any(item.count(":") != 1 for item in raw):
            # The handler splits each filter on ":" and wants exactly two parts.
            return api_errors(400, "Additional metadata filters must be in the format key:value.")
        pairs = metadata_filters(raw)
        workflow_id = (q.get("workflowId") or [""])[0].lower()
        if workflow_id and not _UUID.match(workflow_id):
            problem = (f"invalid UUID length: {len(workflow_id)}" if len(workflow_id) not in (32, 36)
                       else "invalid UUID format")
            return message(400, f"Invalid format for parameter workflowId: error unmarshaling '{workflow_id}' text "
                                f"as *uuid.UUID: {problem}")
        rows = [item for item in reversed(self.calendar.scheduled.values()) if item.tenant_id == tenant.id
                and _carries(item.body.get("additionalMetadata") or {}, pairs)
                and (not workflow_id or getattr(tenant.workflows.get(item.workflow), "id", "") == workflow_id)]
        return json_response(200, {"pagination": workflow_pagination(len(rows), offset, limit),
                                   "rows": [_scheduled_json(i, self.state, tenant)
                                            for i in rows[offset:offset + limit]]})

    def create_cron(self, tenant: Tenant, workflow: str, body: bytes) -> SimResponse:
        """``POST .../workflows/{workflow}/crons``.

        :param tenant: the tenant.
        :param workflow: the workflow name from the path.
        :param body: the request body.
        """
        try:
            payload = bind_object(body, CRON_FIELDS, CRON_STRUCT)
        except BindError as exc:
            return message(400, str(exc))
        if workflow not in tenant.workflows:
            return api_errors(400, "workflow not found")
        name, expression = str(payload.get("cronName") or ""), str(payload.get("cronExpression") or "")
        if any(c.tenant_id == tenant.id and c.workflow == workflow and (c.name, c.expression) == (name, expression)
               for c in self.calendar.crons.values()):
            return api_errors(400, "cron trigger with that name-expression pair already exists")
        item = CronTrigger(self.state.new_id(), tenant.id, workflow, str(payload.get("cronName") or ""),
                           str(payload.get("cronExpression") or ""),
                           {k: payload[k] for k in ("input", "additionalMetadata", "priority") if k in payload},
                           self.state.wall(self.state.clock()))
        self.calendar.crons[item.id] = item
        return json_response(200, _cron_json(item, tenant))

    def cron(self, tenant: Tenant, method: str, cron_id: str, body: bytes) -> SimResponse:
        """``GET``, ``DELETE`` and ``PATCH .../workflows/crons/{id}``.

        :param tenant: the tenant.
        :param method: the HTTP method.
        :param cron_id: the id from the path.
        :param body: the request body.
        """
        item = self.calendar.crons.get(cron_id.lower())
        if item is None or item.tenant_id != tenant.id:
            return message(500, INTERNAL_ERROR)  # the handler does not map the missing row to a 404
        if method == "DELETE":
            del self.calendar.crons[item.id]
            return SimResponse(204, b"")
        if method == "PATCH":
            try:
                enabled = json.loads(body or b"{}").get("enabled")
            except (ValueError, AttributeError):
                return message(400, "invalid body")
            if isinstance(enabled, bool):
                item.enabled = enabled
            return SimResponse(204, b"")
        return json_response(200, _cron_json(item, tenant))

    def list_crons(self, tenant: Tenant, query: str) -> SimResponse:
        """``GET .../workflows/crons``: newest first.

        :param tenant: the tenant.
        :param query: the raw query string.
        """
        q = parse_qs(query, keep_blank_values=True)
        try:
            offset, limit = _paging(q)
        except BindError as exc:
            return message(400, str(exc))
        workflow = (q.get("workflowName") or [""])[0]
        name = (q.get("cronName") or [""])[0]
        rows = [item for item in reversed(self.calendar.crons.values()) if item.tenant_id == tenant.id
                and (not workflow or item.workflow == workflow) and (not name or item.name == name)]
        return json_response(200, {"pagination": workflow_pagination(len(rows), offset, limit),
                                   "rows": [_cron_json(i, tenant) for i in rows[offset:offset + limit]]})

    def list_events(self, tenant: Tenant, query: str) -> SimResponse:
        """``GET /api/v1/stable/tenants/{tenant}/events``: newest first, filtered by key, time and metadata.

        :param tenant: the tenant.
        :param query: the raw query string.
        """
        q = parse_qs(query, keep_blank_values=True)
        if q.get("limit") == ["0"]:
            return message(500, INTERNAL_ERROR)  # a zero page size divides by zero
        try:
            offset, limit = _paging(q)
            since = parse_time_param("since", q["since"][0]) if "since" in q else None
            until = parse_time_param("until", q["until"][0]) if "until" in q else None
        except BindError as exc:
            return message(400, str(exc))
        keys = set(q.get("keys", []))
        raw = q.get("additionalMetadata", [])
        if any(not item.partition(":")[2] for item in raw):
            return message(500, INTERNAL_ERROR)  # a filter without ":" or with an empty value is not checked first
        pairs = metadata_filters(raw)
        rows = [e for e in reversed(self.calendar.events) if e.tenant_id == tenant.id
                and (not keys or e.key in keys) and (since is None or e.created >= since)
                and (until is None or e.created <= until) and _carries(e.metadata, pairs)]
        page = rows[offset:offset + limit]
        return json_response(200, {"pagination": event_pagination(len(rows), offset, limit, len(page)),
                                   "rows": [_event_json(e) for e in page]})
