"""The Hatchet REST endpoints: routing, the populator/authn/authz chain and the handlers."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from ._http import (
    SimResponse,
    api_errors,
    dumps,
    forbidden,
    injected_error,
    json_response,
    message,
    not_found,
)
from .auth import TokenAuthority
from .faults import Decision, FaultInjector
from .runs import STATUSES, TERMINAL, Run, run_details, run_summary, task_summary, trigger_stub
from .store import RunQuery, SimState, Tenant

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
UNKNOWN_WORKFLOW_ERROR = "rawWorkflowRun not populated, we are likely seeing high latency in writing workflow runs"
FILTER_CAP = 20000
DEFAULT_LIMIT = 50

Query = dict[str, list[str]]
Handler = Callable[[list[str], str, str | None, bytes, Decision | None], SimResponse]


class BadParam(ValueError):
    """A query parameter failed to bind; rendered as the server's ``Invalid format`` message."""


def is_uuid(value: str) -> bool:
    """Tell whether a string is a UUID.

    :param value: the string.
    """
    return bool(_UUID.match(value))


@functools.lru_cache(maxsize=256)
def ilike(pattern: str) -> re.Pattern[str]:
    """Compile a SQL ``ILIKE`` pattern (``%``, ``_``, backslash escapes) to a regex.

    :param pattern: the LIKE pattern.
    """
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def pagination(total: int, offset: int, limit: int) -> dict[str, int]:
    """Compute the server's ``PaginationResponse``.

    :param total: number of matching rows.
    :param offset: rows skipped.
    :param limit: page size.
    """
    limit = max(limit, 1)
    current = offset // limit + 1
    pages = -(-total // limit)
    return {"current_page": current, "next_page": min(current + 1, pages) if pages else 0, "num_pages": pages}


def parse_time(value: str) -> float:
    """Parse an RFC 3339 timestamp to a UNIX time.

    :param value: e.g. ``2026-01-01T00:00:00Z``.
    :raises ValueError: when it is not RFC 3339 with a zone.
    """
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if stamp.tzinfo is None or "T" not in value.upper():
        raise ValueError(f"parsing time {value!r} as RFC3339")
    return stamp.timestamp()


def _param(query: Query, name: str, required: bool = False) -> str | None:
    values = query.get(name)
    if not values:
        if required:
            raise BadParam(f"Invalid format for parameter {name}: query parameter '{name}' is required")
        return None
    return values[0]


def _int_param(query: Query, name: str, default: int) -> int:
    raw = _param(query, name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadParam(f"Invalid format for parameter {name}: error binding string parameter") from None


def _bool_param(query: Query, name: str, required: bool = False) -> bool | None:
    raw = _param(query, name, required)
    if raw is None:
        return None
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise BadParam(f"Invalid format for parameter {name}: error binding string parameter")


def _time_param(query: Query, name: str, required: bool = False) -> float | None:
    raw = _param(query, name, required)
    if raw is None:
        return None
    try:
        return parse_time(raw)
    except ValueError as exc:
        raise BadParam(f"Invalid format for parameter {name}: {exc}") from None


def metadata_pairs(values: list[str]) -> list[tuple[str, str]]:
    """Split ``k:v`` filters on the first colon; entries without one are ignored.

    :param values: the raw filters.
    """
    pairs = []
    for item in values:
        key, sep, value = item.partition(":")
        if sep:
            pairs.append((key, value))
    return pairs


class HatchetApi:
    """Answers Hatchet REST requests from the simulator state; callers hold the simulator lock.

    :param state: the data.
    :param auth: token validation.
    :param faults: fault injection.
    :param settings: object with ``cancel_delay`` and ``unknown_workflow_delay`` attributes.
    """

    def __init__(self, state: SimState, auth: TokenAuthority, faults: FaultInjector, settings: Any) -> None:
        self.state = state
        self.auth = auth
        self.faults = faults
        self.settings = settings

    def route(self, method: str, parts: list[str]) -> tuple[str, Handler] | SimResponse:
        """Match ``/api/v1/...`` path segments to a route kind and handler.

        :param method: HTTP method.
        :param parts: path segments after ``api/v1``.
        """
        n = len(parts)
        table: list[tuple[bool, str, str, Handler]] = []
        if n >= 2 and parts[0] == "stable":
            if parts[1] == "tenants" and n == 5 and parts[3] == "workflow-runs" and parts[4] == "trigger":
                table.append((True, "POST", "trigger", self._trigger))
            elif parts[1] == "tenants" and n == 4 and parts[3] == "workflow-runs":
                table.append((True, "GET", "list", self._list))
            elif parts[1] == "tenants" and n == 5 and parts[3] == "tasks" and parts[4] == "cancel":
                table.append((True, "POST", "cancel", self._cancel))
            elif parts[1] == "workflow-runs" and n == 3:
                table.append((True, "GET", "details", self._details))
            elif parts[1] == "workflow-runs" and n == 4 and parts[3] == "status":
                table.append((True, "GET", "status", self._status))
        elif n == 3 and parts[0] == "tenants" and parts[2] == "workflows":
            table.append((True, "GET", "workflows", self._workflows))
        elif n == 3 and parts[0] == "workflows" and parts[2] == "trigger":
            table.append((False, "POST", "v0", self._v0("WorkflowRunCreate is deprecated; please use "
                                                         "V1WorkflowRunCreate instead", tenant_in_path=False)))
        elif n == 4 and parts[0] == "tenants" and parts[2] == "workflows" and parts[3] in ("cancel", "runs"):
            text = ("WorkflowRunCancel is deprecated; please use V1TaskCancel instead" if parts[3] == "cancel"
                    else "WorkflowRunList is deprecated; please use V1WorkflowRunList instead")
            table.append((False, "POST" if parts[3] == "cancel" else "GET", "v0", self._v0(text)))
        elif n == 4 and parts[0] == "tenants" and parts[2] == "workflow-runs":
            table.append((False, "GET", "v0", self._v0("This endpoint is deprecated.")))
        if not table:
            return message(404, "Not Found")
        _, expected, kind, handler = table[0]
        if method != expected:
            return message(405, "Method Not Allowed")
        return kind, handler

    def _tenant_and_payload(self, tenant_param: str, authorization: str | None,
                            body: bytes) -> tuple[Tenant, Any] | SimResponse:
        tenant = self._tenant(tenant_param, authorization)
        if isinstance(tenant, SimResponse):
            return tenant
        try:
            return tenant, json.loads(body) if body else None
        except ValueError as exc:
            return message(400, f"can't decode JSON body: {exc}")

    def _tenant(self, tenant_param: str, authorization: str | None) -> Tenant | SimResponse:
        if not is_uuid(tenant_param):
            return message(400, "invalid tenant id")
        tenant = self.state.tenants.get(tenant_param.lower())
        if tenant is None:
            return not_found()
        claims = self.auth.verify(authorization)
        if claims is None or claims.get("sub") != tenant.id:
            return forbidden()
        return tenant

    def _run(self, run_param: str, authorization: str | None, now: float) -> Run | SimResponse:
        if not is_uuid(run_param):
            return message(400, f"Invalid format for parameter v1-workflow-run: invalid UUID {run_param!r}")
        run = self.state.lookup(run_param.lower(), now)
        if run is None:
            return not_found()
        claims = self.auth.verify(authorization)
        if claims is None or claims.get("sub") != run.tenant_id:
            return forbidden()
        return run

    def _v0(self, text: str, tenant_in_path: bool = True) -> Handler:
        def handler(parts: list[str], query: str, authorization: str | None, body: bytes,
                    decision: Decision | None) -> SimResponse:
            if tenant_in_path:
                tenant = self._tenant(parts[1], authorization)
                if isinstance(tenant, SimResponse):
                    return tenant
            elif self.auth.verify(authorization) is None:
                return forbidden()
            return api_errors(400, text)

        return handler

    def _trigger(self, parts: list[str], query: str, authorization: str | None, body: bytes,
                 decision: Decision | None) -> SimResponse:
        scoped = self._tenant_and_payload(parts[2], authorization, body)
        if isinstance(scoped, SimResponse):
            return scoped
        tenant, payload = scoped
        problem = _trigger_problem(payload)
        if problem:
            return api_errors(400, problem)
        assert isinstance(payload, dict)
        rejection = self.faults.rejection(payload)
        if rejection is not None:
            status, text = rejection
            return api_errors(status, text) if text and status < 500 else injected_error(status)
        state = self.state
        now = state.clock()
        spec = tenant.workflows.get(payload["workflowName"])
        only_id = payload.get("return_only_id") is True
        if spec is None:
            if only_id:
                phantom = state.new_id()
                state.phantom_ids.append(phantom)
                return json_response(200, trigger_stub(phantom, state.iso(now)))
            return SimResponse(500, dumps({"errors": [{"description": UNKNOWN_WORKFLOW_ERROR}]}),
                               delay=self.settings.unknown_workflow_delay)
        run = state.create_run(tenant, spec, payload, now)
        if decision is not None and decision.after_create:
            return injected_response(decision)
        if only_id:
            return json_response(200, trigger_stub(run.id, run.created_iso))
        return json_response(200, run_details(run, now, state.iso))

    def _details(self, parts: list[str], query: str, authorization: str | None, body: bytes,
                 decision: Decision | None) -> SimResponse:
        now = self.state.clock()
        run = self._run(parts[2], authorization, now)
        if isinstance(run, SimResponse):
            return run
        return json_response(200, run_details(run, now, self.state.iso))

    def _status(self, parts: list[str], query: str, authorization: str | None, body: bytes,
                decision: Decision | None) -> SimResponse:
        now = self.state.clock()
        run = self._run(parts[2], authorization, now)
        if isinstance(run, SimResponse):
            return run
        return SimResponse(200, b'"' + run.status(now).encode() + b'"')

    def _list(self, parts: list[str], query: str, authorization: str | None, body: bytes,
              decision: Decision | None) -> SimResponse:
        tenant = self._tenant(parts[2], authorization)
        if isinstance(tenant, SimResponse):
            return tenant
        q = parse_qs(query, keep_blank_values=True)
        state = self.state
        try:
            offset = _int_param(q, "offset", 0)
            limit = _int_param(q, "limit", DEFAULT_LIMIT)
            since = _time_param(q, "since", required=True)
            until = _time_param(q, "until")
            only_tasks = _bool_param(q, "only_tasks", required=True)
            include_payloads = _bool_param(q, "include_payloads") or False
        except BadParam as exc:
            return message(400, str(exc))
        assert since is not None
        statuses = q.get("statuses", [])
        bad = [s for s in statuses if s not in STATUSES]
        if bad:
            return api_errors(400, f"invalid status {bad[0]!r}")
        pairs = metadata_pairs(q.get("additional_metadata", []))
        operator = (_param(q, "additional_metadata_operator") or "OR").upper()
        now = state.clock()
        found = state.query(tenant, RunQuery(
            since=state.from_wall(since),
            until=state.from_wall(until) if until is not None else None,
            statuses=frozenset(statuses) if not only_tasks else frozenset(),
            metadata=pairs,
            match_all=operator == "AND" or len(pairs) == 1,
            workflow_ids=frozenset(w.lower() for w in q.get("workflow_ids", [])),
        ), now)
        rows: list[dict[str, Any]]
        if only_tasks:
            wanted = frozenset(statuses)
            tasks = [(run, i) for run in found for i in range(len(run.tasks) - 1, -1, -1)
                     if not wanted or run.task_status(i, now) in wanted]
            total = len(tasks)
            rows = [task_summary(run, i, now, state.iso, include_payloads=include_payloads)
                    for run, i in tasks[offset:offset + limit]]
        else:
            total = len(found)
            rows = [run_summary(run, now, state.iso, include_payloads=include_payloads)
                    for run in found[offset:offset + limit]]
        return json_response(200, {"pagination": pagination(total, offset, limit), "rows": rows})

    def _cancel(self, parts: list[str], query: str, authorization: str | None, body: bytes,
                decision: Decision | None) -> SimResponse:
        scoped = self._tenant_and_payload(parts[2], authorization, body)
        if isinstance(scoped, SimResponse):
            return scoped
        tenant, payload = scoped
        if not isinstance(payload, dict):
            return api_errors(400, "request body must be an object")
        ids, flt = payload.get("externalIds"), payload.get("filter")
        if bool(ids) == bool(flt):
            return message(500, "Internal Server Error")
        state = self.state
        now = state.clock()
        if ids:
            if not isinstance(ids, list) or not all(isinstance(i, str) and is_uuid(i) for i in ids):
                return api_errors(400, "externalIds must be a list of UUIDs")
            targets = [state.runs.get(i.lower()) or state.task_runs.get(i.lower()) for i in ids]
            for run in targets:
                if run is not None and run.tenant_id == tenant.id:
                    self._cancel_run(run, now)
            return json_response(200, {"ids": ids})
        query_or_error = self._filter_query(flt)
        if isinstance(query_or_error, SimResponse):
            return query_or_error
        found = state.query(tenant, query_or_error, now)[:FILTER_CAP]
        for run in found:
            self._cancel_run(run, now)
        return json_response(200, {"ids": [run.id for run in found]})

    def _filter_query(self, flt: Any) -> RunQuery | SimResponse:
        if not isinstance(flt, dict) or not isinstance(flt.get("since"), str):
            return api_errors(400, "filter.since is required")
        try:
            since = parse_time(flt["since"])
            until = parse_time(flt["until"]) if flt.get("until") else None
        except (ValueError, TypeError) as exc:
            return api_errors(400, f"invalid filter time: {exc}")
        statuses = flt.get("statuses") or []
        if not isinstance(statuses, list) or any(s not in STATUSES for s in statuses):
            return api_errors(400, "invalid filter statuses")
        meta = flt.get("additionalMetadata") or []
        workflow_ids = flt.get("workflowIds") or []
        if not isinstance(meta, list) or not isinstance(workflow_ids, list):
            return api_errors(400, "invalid filter")
        state = self.state
        return RunQuery(
            since=state.from_wall(since),
            until=state.from_wall(until) if until is not None else None,
            statuses=frozenset(statuses),
            metadata=metadata_pairs([str(m) for m in meta]),
            match_all=True,
            workflow_ids=frozenset(str(w).lower() for w in workflow_ids),
        )

    def _cancel_run(self, run: Run, now: float) -> None:
        if run.cancel_at is None and run.status(now) not in TERMINAL:
            run.cancel_at = now + self.settings.cancel_delay

    def _workflows(self, parts: list[str], query: str, authorization: str | None, body: bytes,
                   decision: Decision | None) -> SimResponse:
        tenant = self._tenant(parts[1], authorization)
        if isinstance(tenant, SimResponse):
            return tenant
        q = parse_qs(query, keep_blank_values=True)
        try:
            offset = _int_param(q, "offset", 0)
            limit = _int_param(q, "limit", DEFAULT_LIMIT)
        except BadParam as exc:
            return message(400, str(exc))
        name = _param(q, "name")
        specs = list(reversed(tenant.workflows.values()))
        if name:
            pattern = ilike(f"%{name}%")
            specs = [s for s in specs if pattern.fullmatch(s.name)]
        rows = [
            {"metadata": {"id": s.id, "createdAt": s.created_at, "updatedAt": s.created_at},
             "name": s.name, "description": s.description, "isPaused": False, "tenantId": s.tenant_id}
            for s in specs[offset:offset + limit]
        ]
        return json_response(200, {"rows": rows, "pagination": pagination(len(specs), offset, limit)})


def _injected(decision: Decision) -> SimResponse:
    assert decision.status is not None
    if decision.body is not None:
        return json_response(decision.status, decision.body)
    return injected_error(decision.status)


def injected_response(decision: Decision) -> SimResponse:
    """Render a failing fault decision (a broken connection or an injected status).

    :param decision: a decision whose ``fails`` is true.
    """
    if decision.drop:
        return SimResponse(0, b"", drop=True)
    return _injected(decision)


def _trigger_problem(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return "request body must be a JSON object"
    if not isinstance(payload.get("workflowName"), str):
        return "workflowName is required"
    if "input" not in payload:
        return "input is required"
    if not isinstance(payload["input"], dict):
        return "input must be a JSON object"
    meta = payload.get("additionalMetadata")
    if meta is not None and not isinstance(meta, dict):
        return "additionalMetadata must be a JSON object"
    only_id = payload.get("return_only_id")
    if only_id is not None and not isinstance(only_id, bool):
        return "return_only_id must be a boolean"
    priority = payload.get("priority")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)
                                 or not 1 <= priority <= 3):
        return f"priority must be between 1 and 3, got {priority}"
    return None
