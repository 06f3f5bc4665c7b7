"""The list endpoints (runs and workflows) and cancel-by-filter: query binding, filters and paging.

Each function answers one request for one tenant that authentication already resolved.
"""

from __future__ import annotations

import functools
import re
from typing import Any
from urllib.parse import parse_qs

from ._http import SimResponse, json_response, message
from .binding import BindError, metadata_filters, parse_bool, parse_int, parse_rfc3339, parse_time_param
from .paging import run_pagination, workflow_pagination
from .render import list_run, list_task
from .runs import STATUSES, Run
from .store import RunQuery, SimState, Tenant

DEFAULT_LIMIT = 50
FILTER_CAP = 20000

Query = dict[str, list[str]]


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


def _first(query: Query, name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _int(query: Query, name: str, default: int) -> int:
    raw = _first(query, name)
    return default if raw is None else parse_int(name, raw)


def list_runs(state: SimState, tenant: Tenant, query: str, now: float, *,
              drop_colon_filters: bool = False) -> SimResponse:
    """``GET .../workflow-runs``: runs (or tasks, with ``only_tasks``) newest first.

    A missing ``since`` is Go's zero time, which lists nothing; unknown statuses are ignored; one metadata pair
    is always ANDed, several are ORed unless ``additional_metadata_operator=AND``.

    :param state: the data.
    :param tenant: the tenant.
    :param query: the raw query string.
    :param now: the simulator clock.
    :param drop_colon_filters: ignore metadata pairs whose value holds a ``:`` (Hatchet before v0.73.20).
    """
    q = parse_qs(query, keep_blank_values=True)
    try:
        offset = _int(q, "offset", 0)
        limit = _int(q, "limit", DEFAULT_LIMIT)
        raw_since = _first(q, "since")
        since = parse_time_param("since", raw_since) if raw_since is not None else None
        raw_until = _first(q, "until")
        until = parse_time_param("until", raw_until) if raw_until is not None else None
        raw_only = _first(q, "only_tasks")
        if raw_only is None:
            raise BindError("Invalid format for parameter only_tasks: query parameter 'only_tasks' is required")
        only_tasks = parse_bool("only_tasks", raw_only)
        raw_payloads = _first(q, "include_payloads")
        include_payloads = raw_payloads is not None and parse_bool("include_payloads", raw_payloads)
    except BindError as exc:
        return message(400, str(exc))
    if limit <= 0 or offset < 0:
        return message(500, "Internal Server Error")  # a zero page size divides by zero; SQL refuses the rest
    if since is None:
        return json_response(200, {"pagination": run_pagination(0, offset, limit), "rows": []})
    statuses = frozenset(s for s in q.get("statuses", []) if s in STATUSES)
    pairs = metadata_filters(q.get("additional_metadata", []))
    if drop_colon_filters:
        pairs = {key: value for key, value in pairs.items() if ":" not in value}
    operator = _first(q, "additional_metadata_operator")
    found = state.query(tenant, RunQuery(
        since=state.from_wall(since),
        until=state.from_wall(until) if until is not None else None,
        statuses=statuses if not only_tasks else frozenset(),
        metadata=tuple(pairs.items()),
        match_all=operator == "AND" or len(pairs) <= 1,
        workflow_ids=frozenset(w.lower() for w in q.get("workflow_ids", [])),
        triggering_event=(_first(q, "triggering_event_external_id") or "").lower() or None,
        idempotency_keys=frozenset(q.get("idempotency_keys", [])),
    ), now)
    rows: list[dict[str, Any]]
    if only_tasks:
        tasks = [(run, i) for run in found for i in run.existing_tasks(now)
                 if not statuses or run.task_status(i, now) in statuses]
        total = len(tasks)
        rows = [list_task(run, i, now, state.iso, include_payloads=include_payloads)
                for run, i in tasks[offset:offset + limit]]
    else:
        total = len(found)
        rows = [list_run(run, now, state.iso, include_payloads=include_payloads)
                for run in found[offset:offset + limit]]
    return json_response(200, {"pagination": run_pagination(total, offset, limit), "rows": rows})


def list_workflows(tenant: Tenant, query: str) -> SimResponse:
    """``GET /api/v1/tenants/{tenant}/workflows``: newest first, ``name`` as ``ILIKE %name%``.

    :param tenant: the tenant.
    :param query: the raw query string.
    """
    q = parse_qs(query, keep_blank_values=True)
    try:
        offset = max(_int(q, "offset", 0), 0)
        limit = _int(q, "limit", DEFAULT_LIMIT)
    except BindError as exc:
        return message(400, str(exc))
    limit = limit if limit > 0 else DEFAULT_LIMIT
    name = _first(q, "name")
    specs = list(reversed(tenant.workflows.values()))
    if name:
        pattern = ilike(f"%{name}%")
        specs = [s for s in specs if pattern.fullmatch(s.name)]
    rows = [
        {"description": s.description, "isPaused": False,
         "metadata": {"createdAt": s.created_at, "id": s.id, "updatedAt": s.created_at}, "name": s.name,
         "tenantId": ""}
        for s in specs[offset:offset + limit]
    ]
    return json_response(200, {"pagination": workflow_pagination(len(specs), offset, limit), "rows": rows})


class FilterError(ValueError):
    """A cancel filter the server refuses.

    :param status: the status it answers.
    :param text: the error text.
    """

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def filtered_runs(state: SimState, tenant: Tenant, flt: Any, now: float) -> list[Run]:
    """The runs a cancel ``filter`` selects (at most 20000), newest first; a filter without ``since`` selects none.

    Metadata pairs are ORed; a pair without a colon fails in the engine (500).

    :param state: the data.
    :param tenant: the tenant.
    :param flt: the ``V1TaskFilter`` body.
    :param now: the simulator clock.
    :raises FilterError: for a filter the server refuses.
    """
    if not isinstance(flt, dict):
        raise FilterError(400, "invalid filter")
    meta = flt.get("additionalMetadata") or []
    workflow_ids = flt.get("workflowIds") or []
    statuses = flt.get("statuses") or []
    if not isinstance(meta, list) or not isinstance(workflow_ids, list) or not isinstance(statuses, list):
        raise FilterError(400, "invalid filter")
    if any(":" not in str(m) for m in meta) or any(s not in STATUSES for s in statuses):
        raise FilterError(500, "Internal Server Error")
    if not isinstance(flt.get("since"), str):
        return []
    try:
        since = parse_rfc3339(flt["since"])
        until = parse_rfc3339(flt["until"]) if flt.get("until") else None
    except (ValueError, TypeError) as exc:
        raise FilterError(400, f"invalid filter time: {exc}") from None
    pairs = metadata_filters([str(m) for m in meta])
    return state.query(tenant, RunQuery(
        since=state.from_wall(since),
        until=state.from_wall(until) if until is not None else None,
        statuses=frozenset(statuses),
        metadata=tuple(pairs.items()),
        match_all=len(pairs) <= 1,
        workflow_ids=frozenset(str(w).lower() for w in workflow_ids),
    ), now)[:FILTER_CAP]
