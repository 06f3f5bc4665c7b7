"""``GET /api/v1/stable/tasks/{task}/logs``: the lines each task logs, as ``e2e/hatchet/worker.py``'s tasks do.

A task logs ``<workflow>:<task> started`` and ``input: <the run input as sorted JSON>`` when it starts, the
``__sim__`` override's ``log_lines`` numbered lines (``line 1 of N``, last task only), and at its end
``<workflow>:<task> failing: <message>`` or ``<workflow>:<task> done``. Lines appear on the task's time line;
a cancel stops them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from ._http import SimResponse, json_response, message
from .binding import BindError, parse_int, parse_time_param
from .paging import TASK_LOG_PAGINATION
from .runs import INF, Run
from .workflows import OVERRIDE_KEY, default_error

# The server refuses (500) a limit outside 1..10,000 and an unknown order direction.
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1000
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
# Seconds between the lines a task logs at its start, as the worker's sender spaces them out.
LINE_GAP = 0.001


def _log_count(run: Run, i: int) -> int:
    override = run.input.get(OVERRIDE_KEY)
    if i != len(run.tasks) - 1 or not isinstance(override, dict):
        return 0
    value = override.get("log_lines", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _failure_text(run: Run, i: int) -> str:
    task = run.tasks[i]
    if task.error_message == default_error(run.workflow.name, task.name):
        return f"simulated failure in {run.workflow.name}:{task.name}"
    return task.error_message


def task_lines(run: Run, i: int) -> list[tuple[float, str]]:
    """Return every line task ``i`` logs if it runs to its end: (simulator clock time, message).

    :param run: the run.
    :param i: the task index.
    """
    start, end = run.starts[i], run.ends[i]
    if start == INF or (run.failed_index >= 0 and i > run.failed_index):
        return []
    name = f"{run.workflow.name}:{run.tasks[i].name}"
    count = _log_count(run, i)
    texts = [f"{name} started", f"input: {json.dumps(run.input, sort_keys=True)}",
             *(f"line {number} of {count}" for number in range(1, count + 1))]
    lines = [(start + n * LINE_GAP, text) for n, text in enumerate(texts)]
    if end != INF:
        last = f"{name} failing: {_failure_text(run, i)}" if i == run.failed_index else f"{name} done"
        lines.append((max(end, lines[-1][0] + LINE_GAP), last))
    return lines


def logged_by(run: Run, i: int, now: float) -> list[tuple[float, str]]:
    """Return the lines task ``i`` has logged by ``now``, oldest first.

    :param run: the run.
    :param i: the task index.
    :param now: the simulator clock.
    """
    stop = run.cancel_at if run.cancel_at is not None else INF
    return [(t, text) for t, text in task_lines(run, i) if t <= now and t < stop]


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def list_task_logs(run: Run, i: int, query: str, now: float, iso: Callable[[float], str]) -> SimResponse:
    """Answer the log endpoint for task ``i`` of a run.

    :param run: the run.
    :param i: the task index.
    :param query: the raw query string.
    :param now: the simulator clock.
    :param iso: converts clock times to RFC 3339.
    """
    q = parse_qs(query, keep_blank_values=True)
    try:
        raw_limit, raw_attempt = _first(q, "limit"), _first(q, "attempt")
        limit = DEFAULT_LIMIT if raw_limit is None else parse_int("limit", raw_limit)
        attempt = None if raw_attempt is None else parse_int("attempt", raw_attempt)
        raw_since, raw_until = _first(q, "since"), _first(q, "until")
        since = parse_time_param("since", raw_since) if raw_since is not None else None
        until = parse_time_param("until", raw_until) if raw_until is not None else None
    except BindError as exc:
        return message(400, str(exc))
    direction = _first(q, "order_by_direction") or "ASC"
    if not 1 <= limit <= MAX_LIMIT or direction not in ("ASC", "DESC"):
        return message(500, "Internal Server Error")
    levels = set(q.get("levels", [])) or set(LEVELS)
    # Compared at the microseconds the answer shows, as the database stores them.
    lines = [(t, text) for t, text in logged_by(run, i, now)
             if (since is None or parse_time_param("since", iso(t)) > since)
             and (until is None or parse_time_param("until", iso(t)) < until)
             and (attempt is None or attempt == 1) and "INFO" in levels]
    if direction == "DESC":
        lines.reverse()
    display = run.task_display_name(i)
    rows: list[dict[str, Any]] = [
        {"attempt": 1, "createdAt": iso(t), "level": "INFO", "message": text, "metadata": {}, "retryCount": 0,
         "taskDisplayName": display, "taskExternalId": run.task_ids[i]}
        for t, text in lines[:limit]
    ]
    return json_response(200, {"pagination": TASK_LOG_PAGINATION, "rows": rows})
