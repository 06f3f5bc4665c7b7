"""The REST API, one :class:`Call` per endpoint, and the mapping of answers to results and errors.

A :class:`Call` says what to send and how to read the answer; a client only sends it
(``client.send(endpoints.run_details(run_id))``). A path under the tenant holds ``{tenant}``, which the client
fills in from its config; a list read page after page is a :class:`~.paging.Pages` (``client.iter_rows(...)``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import pydantic

from airflow_provider_hatchet.client.errors import (
    HatchetAPIError,
    HatchetAuthError,
    HatchetBadRequestError,
    HatchetMalformedResponseError,
    HatchetNotFoundError,
    HatchetRateLimitError,
    HatchetServerError,
    HatchetTransportError,
    HatchetUnexpectedResponseError,
    HatchetValidationError,
)
from airflow_provider_hatchet.client.escaping import escape_controls, safe_text
from airflow_provider_hatchet.client.models import (
    LogLine,
    LogPage,
    RunDetails,
    RunPage,
    RunStatus,
    RunSummary,
    Workflow,
    WorkflowPage,
)
from airflow_provider_hatchet.client.paging import RUN_PAGE_SIZE, WORKFLOW_PAGE_SIZE, Pages
from airflow_provider_hatchet.client.validation import check_log_limit, check_run_id, is_uuid

if TYPE_CHECKING:
    from airflow_provider_hatchet.client.trigger_request import TriggerRequest

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

# Seconds a run may stay invisible to the status, details and list endpoints after its trigger returned: reads
# go to the OLAP copy, which lags the write. Whoever looks a run up to decide whether to trigger it again must
# wait this long after the run could last have been created.
RUN_VISIBILITY_WINDOW = 5.0

Params = list[tuple[str, str]]
# The tenant's segment of a path: filled in by the client that sends the call.
TENANT = "/api/v1/stable/tenants/{tenant}"
TRIGGER_PATH_SUFFIX = "/workflow-runs/trigger"
# A workflow-level idempotency key that is already held answers a bare 500 with no run id (gRPC AlreadyExists).
TRIGGER_500_HINT = (
    " (Hatchet also answers 500 when the workflow's idempotency key is already held by another run, or when a"
    " run of an unknown workflow is not readable after 10 s)"
)
_BEARER = re.compile(r"(?i)\bbearer\s+\S+")


@dataclass(frozen=True)
class Call(Generic[T_co]):
    """One API call.

    :param method: the HTTP method.
    :param path: the path below the server URL; ``{tenant}`` where the tenant id goes.
    :param parse: turns the decoded JSON body of a 2xx answer into the result.
    :param params: query parameters, repeated keys allowed.
    :param json: the JSON body, if any.
    :param idempotent: whether the call may be retried safely.
    :param template: the path with placeholders for ids, for messages (defaults to ``path``).
    """

    method: str
    path: str
    parse: Callable[[Any], T_co]
    params: tuple[tuple[str, str], ...] | None = None
    json: Any = None
    idempotent: bool = True
    template: str = ""

    @property
    def endpoint(self) -> str:
        """The method and path template, e.g. ``GET /api/v1/stable/workflow-runs/{id}/status``."""
        return f"{self.method} {self.template or self.path}"

    def for_tenant(self, tenant_id: str) -> Call[T_co]:
        """The call with the tenant id in its path (the template keeps ``{tenant}``).

        :param tenant_id: the tenant.
        """
        if "{tenant}" not in self.path:
            return self
        return replace(self, path=self.path.replace("{tenant}", segment(tenant_id)),
                       template=self.template or self.path)


def format_time(moment: datetime) -> str:
    """Format a datetime as the RFC 3339 UTC string the server expects (``...Z``).

    :param moment: an aware datetime, or a naive one taken as UTC.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def metadata_filter(metadata: Mapping[str, str]) -> list[str]:
    """Turn metadata into the server's ``key:value`` filter entries.

    :param metadata: keys and string values.
    """
    return [f"{key}:{value}" for key, value in metadata.items()]


class _ShapeError(ValueError):
    """A response without the expected shape; the message is safe to show (it holds no body values)."""


def segment(value: str) -> str:
    """Quote a value for one URL path segment, ``/`` included.

    :param value: the value, e.g. a tenant id.
    """
    return quote(value, safe="")


def _run_id(body: Any) -> str:
    try:
        run_id = body["run"]["metadata"]["id"]
    except (KeyError, TypeError):
        raise _ShapeError("the trigger response has no run.metadata.id") from None
    if not is_uuid(run_id):
        # An id is logged and put into XCom and URLs: one that is not a UUID (a line break in it forges a log line)
        # is the server's error, not a run.
        kind = ("empty" if run_id == "" else "null" if run_id is None else "not a UUID" if isinstance(run_id, str)
                else f"a {type(run_id).__name__}")
        raise _ShapeError(f"the trigger response's run.metadata.id is {kind}, not a run id")
    return run_id


def trigger(request: TriggerRequest) -> Call[str]:
    """``POST .../workflow-runs/trigger`` of one run (the workflow's full name, namespace applied); the result is
    the new run's id. Sent once, never retried: a failed trigger may have created the run.

    :param request: the run to trigger.
    """
    return Call("POST", TENANT + TRIGGER_PATH_SUFFIX, _run_id, json=request.body(), idempotent=False)


def run_details(run_id: str) -> Call[RunDetails]:
    """``GET /api/v1/stable/workflow-runs/{id}``.

    :param run_id: the run id.
    """
    path = f"/api/v1/stable/workflow-runs/{segment(check_run_id(run_id))}"
    return Call("GET", path, RunDetails.model_validate, template="/api/v1/stable/workflow-runs/{id}")


def run_status(run_id: str) -> Call[RunStatus]:
    """``GET /api/v1/stable/workflow-runs/{id}/status``, which answers a bare JSON string.

    :param run_id: the run id.
    """
    return Call("GET", f"/api/v1/stable/workflow-runs/{segment(check_run_id(run_id))}/status", RunStatus,
                template="/api/v1/stable/workflow-runs/{id}/status")


def list_runs(
    *,
    since: datetime,
    until: datetime | None = None,
    statuses: Iterable[RunStatus] = (),
    additional_metadata: Mapping[str, str] | None = None,
    workflow_ids: Iterable[str] = (),
    offset: int = 0,
    limit: int = 100,
    include_payloads: bool = False,
    triggering_event_external_id: str | None = None,
    idempotency_keys: Iterable[str] = (),
) -> Call[RunPage]:
    """``GET /api/v1/stable/tenants/{tenant}/workflow-runs``: workflow runs (not tasks), newest first.

    Several metadata pairs are ANDed: one pair is always ANDed by the server, and several are asked
    for with ``additional_metadata_operator=AND``.

    :param since: the earliest creation time.
    :param until: the latest creation time.
    :param statuses: only runs in these statuses.
    :param additional_metadata: only runs carrying all of these pairs.
    :param workflow_ids: only runs of these workflows.
    :param offset: rows to skip.
    :param limit: rows per page.
    :param include_payloads: include inputs and outputs (the server defaults to false).
    :param triggering_event_external_id: only runs this event (pushed over gRPC) triggered.
    :param idempotency_keys: only the runs holding these idempotency keys.
    """
    params: Params = [
        ("since", format_time(since)),
        ("only_tasks", "false"),
        ("offset", str(offset)),
        ("limit", str(limit)),
        ("include_payloads", "true" if include_payloads else "false"),
    ]
    if until is not None:
        params.append(("until", format_time(until)))
    params += [("statuses", RunStatus(s).value) for s in statuses]
    params += [("workflow_ids", w) for w in workflow_ids]
    if triggering_event_external_id:
        params.append(("triggering_event_external_id", triggering_event_external_id))
    params += [("idempotency_keys", key) for key in idempotency_keys]
    if additional_metadata:
        params += [("additional_metadata", kv) for kv in metadata_filter(additional_metadata)]
        params.append(("additional_metadata_operator", "AND"))
    return Call("GET", f"{TENANT}/workflow-runs", RunPage.model_validate, params=tuple(params))


def runs(*, since: datetime, page_size: int = RUN_PAGE_SIZE, **filters: Any) -> Pages[RunSummary]:
    """Every workflow run :func:`list_runs` selects, page after page.

    :param since: the earliest creation time.
    :param page_size: rows per request.
    :param filters: the other filters of :func:`list_runs`.
    """
    return Pages(lambda offset, limit: list_runs(since=since, offset=offset, limit=limit, **filters), page_size)


def task_logs(
    task_id: str,
    *,
    limit: int = 1000,
    since: datetime | None = None,
    until: datetime | None = None,
    attempt: int | None = None,
    newest_first: bool = False,
) -> Call[list[LogLine]]:
    """``GET /api/v1/stable/tasks/{task}/logs``: the lines a task logged, oldest first unless ``newest_first``.

    :param task_id: the task's external id (``taskExternalId``), not the run's.
    :param limit: the most lines, 1 to 10,000 (the server answers 500 outside that range).
    :param since: only lines created after this time (exclusive).
    :param until: only lines created before this time (exclusive).
    :param attempt: only the lines of this attempt, counted from 1.
    :param newest_first: newest lines first.
    """
    params: Params = [("limit", str(check_log_limit(limit)))]
    if since is not None:
        params.append(("since", format_time(since)))
    if until is not None:
        params.append(("until", format_time(until)))
    if attempt is not None:
        params.append(("attempt", str(attempt)))
    params.append(("order_by_direction", "DESC" if newest_first else "ASC"))
    path = f"/api/v1/stable/tasks/{segment(check_run_id(task_id, 'task_id'))}/logs"
    return Call("GET", path, _log_lines, params=tuple(params), template="/api/v1/stable/tasks/{task}/logs")


def _log_lines(body: Any) -> list[LogLine]:
    return LogPage.model_validate(body).rows


def _ids_or_filter(run_ids: Iterable[str], filter: Mapping[str, Any] | None) -> dict[str, Any]:
    ids = [check_run_id(i, "run_ids") for i in run_ids]
    if ids and filter is not None:
        raise HatchetValidationError("filter", "give run ids or a filter, not both (Hatchet answers 500)")
    if not ids and filter is None:
        raise HatchetValidationError("run_ids", "is empty and no filter is given: nothing would be selected")
    return {"externalIds": ids} if ids else {"filter": dict(filter or {})}


def _echoed_ids(body: Any) -> list[str]:
    return [str(i) for i in (body or {}).get("ids") or []]


def cancel(run_ids: Iterable[str] = (), *, filter: Mapping[str, Any] | None = None) -> Call[list[str]]:
    """``POST .../tasks/cancel`` by run ids or by a ``V1TaskFilter``; cancelling is idempotent. The result is the
    ids the server echoes: it lists unknown ids too, so it does not confirm that each run exists.

    :param run_ids: workflow-run ids.
    :param filter: a ``V1TaskFilter`` body (:meth:`RunFilter.body`) instead of ids.
    """
    return Call("POST", f"{TENANT}/tasks/cancel", _echoed_ids, json=_ids_or_filter(run_ids, filter))


def replay(run_ids: Iterable[str] = (), *, filter: Mapping[str, Any] | None = None) -> Call[list[str]]:
    """``POST .../tasks/replay`` by run ids or by a ``V1TaskFilter``: each run is re-run in place (same id, its
    tasks' retry count one higher), with its original input. Never retried: a replay that reached the server
    re-runs the tasks. The result is the ids of the tasks replayed.

    :param run_ids: workflow-run ids.
    :param filter: a ``V1TaskFilter`` body (:meth:`RunFilter.body`) instead of ids.
    """
    return Call("POST", f"{TENANT}/tasks/replay", _echoed_ids, json=_ids_or_filter(run_ids, filter),
                idempotent=False)


def list_workflows(name: str | None = None, *, offset: int = 0,
                   limit: int = WORKFLOW_PAGE_SIZE) -> Call[WorkflowPage]:
    """``GET /api/v1/tenants/{tenant}/workflows``; the server matches ``name`` as a case-insensitive substring.

    :param name: the search text.
    :param offset: rows to skip.
    :param limit: rows per page.
    """
    params: Params = [("offset", str(offset)), ("limit", str(limit))]
    if name:
        params.append(("name", name))
    return Call("GET", "/api/v1/tenants/{tenant}/workflows", WorkflowPage.model_validate, params=tuple(params))


def workflows(name: str | None = None) -> Pages[Workflow]:
    """Every workflow whose name contains ``name`` (case-insensitive), page after page; :func:`exact_workflow`
    picks the one of exactly that name.

    :param name: the search text.
    """
    return Pages(lambda offset, limit: list_workflows(name, offset=offset, limit=limit), WORKFLOW_PAGE_SIZE)


def exact_workflow(rows: Iterable[Workflow], name: str) -> Workflow | None:
    """The workflow with exactly this (full, case-sensitive) name among ``rows``, or None.

    :param rows: the workflows :func:`workflows` read.
    :param name: the full workflow name.
    """
    return next((workflow for workflow in rows if workflow.name == name), None)


def scrub(text: str, token: str = "") -> str:
    """Remove the token, and whatever follows ``Bearer``, from text the server supplied; escape its line breaks and
    control characters (``\\n``, ``\\x1b``), so that it stays on one line of the task log.

    :param text: the server's text.
    :param token: the API token.
    """
    if token:
        text = text.replace(token, "***")
        signature = token.rsplit(".", 1)[-1]
        if len(signature) >= 16:
            text = text.replace(signature, "***")
    # Credentials first: "Bearer" and its value may be separated by a line break.
    text = _BEARER.sub("Bearer ***", text)
    return escape_controls(text)


def _server_message(response: httpx.Response, token: str = "") -> tuple[str, list[str]]:
    message, descriptions, plain = _raw_server_message(response)
    message = scrub(message, token)
    # A plain-text body is cut short only once the token is out of it, so no part of the token can remain. The
    # server's text reaches task and triggerer logs: it must not end a line there or forge one.
    return safe_text(message[:200] if plain else message), [safe_text(scrub(d, token)) for d in descriptions]


def _raw_server_message(response: httpx.Response) -> tuple[str, list[str], bool]:
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason_phrase), [], True
    if isinstance(body, dict):
        descriptions = [str(e.get("description", "")) for e in body.get("errors") or [] if isinstance(e, dict)]
        if descriptions:
            return "; ".join(descriptions), descriptions, False
        if "message" in body:
            return str(body["message"]), [], False
    return response.reason_phrase or "no message", [], False


_ERRORS: dict[int, type[HatchetAPIError]] = {
    403: HatchetAuthError,
    404: HatchetNotFoundError,
    429: HatchetRateLimitError,
}


def api_error(response: httpx.Response, token: str = "") -> HatchetAPIError:
    """Map an error response to the client's exception tree; the server's text is kept without the token.

    :param response: a response with a status of 400 or more.
    :param token: the API token, removed from the server's text.
    """
    message, descriptions = _server_message(response, token)
    status = response.status_code
    where = {"method": response.request.method, "path": response.request.url.path}
    if status == 500 and where["path"].endswith(TRIGGER_PATH_SUFFIX):
        message += TRIGGER_500_HINT
    if status == 400:
        return HatchetBadRequestError(status, message, descriptions=descriptions, **where)
    if status >= 500:
        return HatchetServerError(status, message, **where)
    return _ERRORS.get(status, HatchetAPIError)(status, message, **where)


# Failures raised before the request could have reached the server: it was certainly not processed.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def transport_error(exc: httpx.TransportError) -> HatchetTransportError:
    """Wrap an httpx transport failure, recording whether the request may have been processed.

    :param exc: the httpx error.
    """
    try:
        where = f"{exc.request.method} {exc.request.url.path}"
    except RuntimeError:
        where = "request"
    return HatchetTransportError(
        f"{type(exc).__name__} on {where}: {exc}", maybe_sent=not isinstance(exc, _NOT_SENT)
    )


def total_timeout(call: Call[Any], seconds: float) -> HatchetTransportError:
    """The error for a request that did not finish in its time in all, e.g. an answer that trickles in.

    :param call: the call.
    :param seconds: the time it was allowed (the connection's ``timeout``).
    """
    return HatchetTransportError(
        f"{call.endpoint} did not finish within {seconds:g} s in all (the connection's timeout); the server "
        "answered too slowly or stalled", maybe_sent=True,
    )


def _shape_problem(exc: Exception) -> str:
    if isinstance(exc, pydantic.ValidationError):
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or 'the body'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False, include_context=False)[:5]
        ]
        return "; ".join(problems)
    if isinstance(exc, _ShapeError):
        return str(exc)
    return f"the body does not have the expected shape ({type(exc).__name__})"


def parse(call: Call[T], response: httpx.Response, token: str = "") -> T:
    """Return the call's result from a response, or raise the mapped error.

    A redirect or a success that is not JSON is :class:`HatchetUnexpectedResponseError`, never retried; JSON of
    the wrong shape is :class:`HatchetMalformedResponseError`. Neither holds the body.

    :param call: the call that was sent.
    :param response: the server's answer.
    :param token: the API token, removed from any server text kept in an error.
    """
    status = response.status_code
    if status >= 400:
        raise api_error(response, token)
    where = {"method": call.method, "path": call.path}
    if status >= 300:
        location = response.headers.get("location")
        shown = scrub(location, token) if location is not None else None
        raise HatchetUnexpectedResponseError(
            status, f"a redirect to {shown!r}, which the client does not follow; set the server URL (the "
            "connection's host) to the address the server redirects to", location=shown, **where,
        )
    if status == 204:
        return call.parse(None)  # delete and update answers without a body
    try:
        body = response.json()
    except ValueError:
        content_type = response.headers.get("content-type", "none")
        raise HatchetUnexpectedResponseError(
            status, f"a success whose body is not JSON (content type {content_type}): the server URL (the "
            "connection's host) may point at the dashboard or another service instead of Hatchet's API", **where,
        ) from None
    try:
        return call.parse(body)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise HatchetMalformedResponseError(_shape_problem(exc), **where) from None
