"""The Hatchet REST endpoints: routing, the populator/authn/authz chain and the handlers."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

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
from .binding import CANCEL_FIELDS, CANCEL_STRUCT, TRIGGER_FIELDS, TRIGGER_STRUCT, BindError, bind_object, parse_uuid
from .calendar import CalendarApi, calendar_route
from .faults import Decision, FaultInjector
from .listing import FilterError, filtered_runs, list_runs, list_workflows
from .render import run_details, trigger_stub
from .runs import TERMINAL, Run
from .store import SimState, Tenant
from .task_logs import list_task_logs
from .versions import IDEMPOTENCY_KEY_SINCE, RETURN_ONLY_ID_SINCE, before, known_query, names_not_found
from .workers import list_workers
from .workflows import idempotency_value, tasks_for_run

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
INTERNAL_ERROR = "Internal Server Error"
# The trigger handler reads the run back up to 10 times, 1 s apart, before giving up with a 500.
TRIGGER_READ_ATTEMPTS = 10

Handler = Callable[[list[str], str, str | None, bytes, Decision | None], SimResponse]


def is_uuid(value: str) -> bool:
    """Tell whether a string is a UUID.

    :param value: the string.
    """
    return bool(_UUID.match(value))


class HatchetApi:
    """Answers Hatchet REST requests from the simulator state; callers hold the simulator lock.

    :param state: the data.
    :param auth: token validation.
    :param faults: fault injection.
    :param settings: object with ``cancel_delay``, ``unknown_workflow_delay`` and ``version`` attributes.
    """

    def __init__(self, state: SimState, auth: TokenAuthority, faults: FaultInjector, settings: Any) -> None:
        self.state = state
        self.auth = auth
        self.faults = faults
        self.settings = settings
        self.calendar = CalendarApi(state, state.calendar)

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
            elif parts[1] == "tenants" and n == 5 and parts[3] == "tasks" and parts[4] == "replay":
                table.append((True, "POST", "replay", self._replay))
            elif parts[1] == "workflow-runs" and n == 3:
                table.append((True, "GET", "details", self._details))
            elif parts[1] == "workflow-runs" and n == 4 and parts[3] == "status":
                table.append((True, "GET", "status", self._status))
            elif parts[1] == "tasks" and n == 4 and parts[3] == "logs":
                table.append((True, "GET", "logs", self._task_logs))
        elif n == 1 and parts[0] == "version":
            table.append((False, "GET", "version", self._version))
        elif n == 3 and parts[0] == "tenants" and parts[2] == "workflows":
            table.append((True, "GET", "workflows", self._workflows))
        elif n == 3 and parts[0] == "tenants" and parts[2] == "worker":
            table.append((True, "GET", "workers", self._workers))
        elif n == 3 and parts[0] == "workflows" and parts[2] == "trigger":
            table.append((False, "POST", "v0", self._v0_trigger))
        elif n == 5 and parts[0] == "tenants" and parts[2] == "workflows" and parts[4] == "worker-count":
            table.append((True, "GET", "v0", self._worker_count))
        elif n == 4 and parts[0] == "tenants" and parts[2] == "workflows" and parts[3] in ("cancel", "runs"):
            text = ("WorkflowRunCancel is deprecated; please use V1TaskCancel instead" if parts[3] == "cancel"
                    else "WorkflowRunList is deprecated; please use V1WorkflowRunList instead")
            table.append((False, "POST" if parts[3] == "cancel" else "GET", "v0", self._v0(text)))
        elif n == 4 and parts[0] == "tenants" and parts[2] == "workflow-runs":
            table.append((False, "GET", "v0", self._v0_run))
        if not table:
            calendar = self._calendar_route(method, parts)
            if calendar is not None:
                return calendar
            return message(404, "Not Found")
        _, expected, kind, handler = table[0]
        if method != expected:
            return message(405, "Method Not Allowed")
        return kind, handler

    def _calendar_route(self, method: str, parts: list[str]) -> tuple[str, Handler] | SimResponse | None:
        """Route the scheduled-run, cron and event endpoints to :class:`~.calendar.CalendarApi`."""
        found = calendar_route(parts)
        if found is None:
            return None
        kind, allowed, tenant_at = found
        if method not in allowed:
            return message(405, "Method Not Allowed")

        def handler(parts: list[str], query: str, authorization: str | None, body: bytes,
                    decision: Decision | None) -> SimResponse:
            tenant = self._tenant(parts[tenant_at], authorization)
            if isinstance(tenant, SimResponse):
                return tenant
            return self.calendar.handle(tenant, method, parts, query, body)

        return kind, handler

    def _populate_tenant(self, tenant_param: str) -> Tenant | SimResponse:
        if not is_uuid(tenant_param):
            return message(400, "invalid tenant id")
        tenant = self.state.tenants.get(tenant_param.lower())
        return not_found() if tenant is None else tenant

    def _tenant(self, tenant_param: str, authorization: str | None) -> Tenant | SimResponse:
        tenant = self._populate_tenant(tenant_param)
        if isinstance(tenant, SimResponse):
            return tenant
        claims = self.auth.verify(authorization)
        if claims is None or claims.get("sub") != tenant.id:
            return forbidden()
        return tenant

    def _run(self, run_param: str, authorization: str | None, now: float) -> Run | SimResponse:
        if not is_uuid(run_param):
            return message(400, "invalid workflow run id")
        run = self.state.lookup(run_param.lower(), now)
        if run is None:
            return not_found()
        claims = self.auth.verify(authorization)
        if claims is None or claims.get("sub") != run.tenant_id:
            return forbidden()
        return run

    def _v0(self, text: str) -> Handler:
        def handler(parts: list[str], query: str, authorization: str | None, body: bytes,
                    decision: Decision | None) -> SimResponse:
            tenant = self._tenant(parts[1], authorization)
            return tenant if isinstance(tenant, SimResponse) else api_errors(400, text)

        return handler

    def _v0_run(self, parts: list[str], query: str, authorization: str | None, body: bytes,
                decision: Decision | None) -> SimResponse:
        # The run populator answers before authentication does.
        tenant = self._populate_tenant(parts[1])
        return tenant if isinstance(tenant, SimResponse) else message(400, "This endpoint is deprecated.")

    def _v0_trigger(self, parts: list[str], query: str, authorization: str | None, body: bytes,
                    decision: Decision | None) -> SimResponse:
        if not is_uuid(parts[1]):
            return message(400, "invalid workflow id")
        wanted = parts[1].lower()
        spec = next((w for t in self.state.tenants.values() for w in t.workflows.values() if w.id == wanted), None)
        if spec is None:
            return not_found()
        claims = self.auth.verify(authorization)
        if claims is None or claims.get("sub") != spec.tenant_id:
            return forbidden()
        return api_errors(400, "WorkflowRunCreate is deprecated; please use V1WorkflowRunCreate instead")

    def _trigger(self, parts: list[str], query: str, authorization: str | None, body: bytes,
                 decision: Decision | None) -> SimResponse:
        tenant = self._tenant(parts[2], authorization)
        if isinstance(tenant, SimResponse):
            return tenant
        try:
            payload = bind_object(body, TRIGGER_FIELDS, TRIGGER_STRUCT)
        except BindError as exc:
            return message(400, str(exc))
        priority = payload.get("priority")
        if priority is not None and not 1 <= priority <= 3:
            return api_errors(400, f"priority must be between 1 and 3, got {priority}")
        rejection = self.faults.rejection(payload)
        if rejection is not None:
            status, text = rejection
            return api_errors(status, text) if text and status < 500 else injected_error(status)
        refused = names_not_found(self.settings.version, [payload.get("workflowName") or ""], tenant.workflows)
        if refused is not None:
            return api_errors(400, refused)
        state = self.state
        now = state.clock()
        spec = tenant.workflows.get(payload.get("workflowName") or "")
        only_id = payload.get("return_only_id") is True and not before(self.settings.version, RETURN_ONLY_ID_SINCE)
        key: str | None = None
        if spec is not None and not before(self.settings.version, IDEMPOTENCY_KEY_SINCE):
            try:
                key = idempotency_value(spec.idempotency_key, payload)
            except ValueError:
                spec = None  # the engine skips a run whose key does not evaluate: as if the workflow did not exist
        if spec is None:
            if only_id:
                phantom = state.new_id()
                state.phantom_ids.append(phantom)
                return json_response(200, trigger_stub(phantom, state.iso(now)))
            return SimResponse(500, dumps({"message": INTERNAL_ERROR}), delay=self.settings.unknown_workflow_delay)
        if key is not None and not state.claim_idempotency_key(tenant, spec, key, now):
            return message(500, INTERNAL_ERROR)  # the engine's AlreadyExists, unmapped by the handler
        run = state.create_run(tenant, spec, payload, now, idempotency_key=key)
        if decision is not None and decision.after_create:
            return injected_response(decision)
        if only_id:
            return json_response(200, trigger_stub(run.id, run.created_iso))
        return self._read_back(run, now)

    def _read_back(self, run: Run, now: float) -> SimResponse:
        """Answer a trigger without ``return_only_id`` as the server does once it could read the run back: the run
        is then readable everywhere; when it would stay unreadable through all the server's reads, a 500."""
        if self.state.visibility_delay >= TRIGGER_READ_ATTEMPTS - 1:
            return SimResponse(500, dumps({"message": INTERNAL_ERROR}), delay=float(TRIGGER_READ_ATTEMPTS))
        run.read_back = True
        return json_response(200, run_details(run, now, self.state.iso))

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

    def _version(self, parts: list[str], query: str, authorization: str | None, body: bytes,
                 decision: Decision | None) -> SimResponse:
        """``GET /api/v1/version``: no token needed."""
        return json_response(200, {"version": self.settings.version})

    def _task_logs(self, parts: list[str], query: str, authorization: str | None, body: bytes,
                   decision: Decision | None) -> SimResponse:
        if not is_uuid(parts[2]):
            return message(400, "invalid task id")
        state, now, task_id = self.state, self.state.clock(), parts[2].lower()
        run = state.lookup(task_id, now) or state.task_runs.get(task_id)
        if run is None or not state.visible(run, now) or task_id not in run.task_ids:
            return not_found()
        index = run.task_ids.index(task_id)
        if not run.task_exists(index, now):
            return not_found()
        claims = self.auth.verify(authorization)
        if claims is None or claims.get("sub") != run.tenant_id:
            return forbidden()
        return list_task_logs(run, index, known_query(self.settings.version, "logs", query), now, state.iso)

    def _list(self, parts: list[str], query: str, authorization: str | None, body: bytes,
              decision: Decision | None) -> SimResponse:
        tenant = self._tenant(parts[2], authorization)
        if isinstance(tenant, SimResponse):
            return tenant
        return list_runs(self.state, tenant, known_query(self.settings.version, "list", query), self.state.clock(),
                         drop_colon_filters=self.faults.faults.drop_colon_filters)

    def _selected(self, parts: list[str], authorization: str | None, body: bytes,
                  now: float) -> tuple[list[str], list[Run]] | SimResponse:
        """The ids a cancel or replay body names (echoed) and the tenant's runs among them."""
        tenant = self._tenant(parts[2], authorization)
        if isinstance(tenant, SimResponse):
            return tenant
        try:
            payload = bind_object(body, CANCEL_FIELDS, CANCEL_STRUCT)
            ids = [parse_uuid(i) for i in payload.get("externalIds") or []]
        except BindError as exc:
            return message(400, str(exc))
        flt = payload.get("filter")
        if ids and flt is not None:
            return message(500, INTERNAL_ERROR)  # the engine's InvalidArgument, unmapped by the handler
        if flt is not None:
            try:
                targets = filtered_runs(self.state, tenant, flt, now)
            except FilterError as exc:
                return message(exc.status, str(exc)) if exc.status >= 500 else api_errors(exc.status, str(exc))
            ids = [run.id for run in targets]
        runs = [run for run in (self.state.runs.get(i) or self.state.task_runs.get(i) for i in ids)
                if run is not None and run.tenant_id == tenant.id]
        return ids, runs

    def _cancel(self, parts: list[str], query: str, authorization: str | None, body: bytes,
                decision: Decision | None) -> SimResponse:
        now = self.state.clock()
        selected = self._selected(parts, authorization, body, now)
        if isinstance(selected, SimResponse):
            return selected
        ids, runs = selected
        for run in runs:
            self._cancel_run(run, now)
        return json_response(200, {"ids": ids})

    def _replay(self, parts: list[str], query: str, authorization: str | None, body: bytes,
                decision: Decision | None) -> SimResponse:
        """Replay in place: every task of each finished run again, one attempt later; the answer lists the tasks.
        A run still queued or running is listed and left alone (not modelled: what the server does to it)."""
        now = self.state.clock()
        selected = self._selected(parts, authorization, body, now)
        if isinstance(selected, SimResponse):
            return selected
        task_ids: list[str] = []
        for run in dict.fromkeys(selected[1]):
            if run.status(now) in TERMINAL:
                run.replay(tasks_for_run(run.workflow, run.input, run.retry_count + 1), now,
                           self.settings.replay_delay, self.settings.replay_gap)
            task_ids += run.task_ids
        return json_response(200, {"ids": task_ids})

    def _cancel_run(self, run: Run, now: float) -> None:
        if run.cancel_at is None and run.status(now) not in TERMINAL:
            run.cancel_at = now + self.settings.cancel_delay

    def _workflows(self, parts: list[str], query: str, authorization: str | None, body: bytes,
                   decision: Decision | None) -> SimResponse:
        tenant = self._tenant(parts[1], authorization)
        if isinstance(tenant, SimResponse):
            return tenant
        return list_workflows(tenant, query)

    def _worker_count(self, parts: list[str], query: str, authorization: str | None, body: bytes,
                      decision: Decision | None) -> SimResponse:
        """Hatchet v0.105.0's handler panics ("deprecated"): a 500 for a workflow the tenant has."""
        tenant = self._tenant(parts[1], authorization)
        if isinstance(tenant, SimResponse):
            return tenant
        if not any(spec.id == parts[3].lower() for spec in tenant.workflows.values()):
            return not_found()
        return message(500, INTERNAL_ERROR)

    def _workers(self, parts: list[str], query: str, authorization: str | None, body: bytes,
                 decision: Decision | None) -> SimResponse:
        tenant = self._tenant(parts[1], authorization)
        if isinstance(tenant, SimResponse):
            return tenant
        return list_workers(self.state, tenant, query)


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
