"""Events: checking them before they are pushed, and finding the runs they triggered."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from airflow_provider_hatchet.client import endpoints, scheduling, validation
from airflow_provider_hatchet.client.errors import HatchetValidationError
from airflow_provider_hatchet.client.paging import WATCH_PAGE_SIZE
from airflow_provider_hatchet.client.scheduling import HatchetEvent
from airflow_provider_hatchet.client.sync import HatchetClient

# BulkPush takes at most this many events (Hatchet's own cap).
MAX_EVENTS = 1000
MAX_KEY_LENGTH = 1000


def check_event(value: object, field: str) -> dict[str, Any]:
    """Check one event ``{"key", "payload"?, "additional_metadata"?, "priority"?, "scope"?}``.

    :param value: the candidate event.
    :param field: its name in errors, e.g. ``events[3]``.
    :returns: the event with its payload, metadata and priority checked.
    """
    if not isinstance(value, Mapping):
        raise HatchetValidationError(field, f"must be a dict with a 'key', got {type(value).__name__}")
    unknown = set(value) - {"key", "payload", "additional_metadata", "priority", "scope"}
    if unknown:
        raise HatchetValidationError(field, f"unknown fields {sorted(unknown)}")
    key = value.get("key")
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise HatchetValidationError(f"{field}.key", f"must be a non-empty string of at most {MAX_KEY_LENGTH} "
                                                     f"characters, got {key!r}"[:200])
    scope = value.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise HatchetValidationError(f"{field}.scope", f"must be a string or None, got {type(scope).__name__}")
    return {
        "key": key,
        "payload": validation.check_input(value.get("payload"), f"{field}.payload"),
        "additional_metadata": validation.check_metadata(value.get("additional_metadata"),
                                                         f"{field}.additional_metadata"),
        "priority": validation.check_priority(value.get("priority"), f"{field}.priority"),
        "scope": scope,
    }


def check_events(values: Sequence[object]) -> list[dict[str, Any]]:
    """Check a list of events, at least one and at most :data:`MAX_EVENTS`.

    :param values: the candidate events.
    """
    if not values or len(values) > MAX_EVENTS:
        raise HatchetValidationError("events", f"must hold 1 to {MAX_EVENTS} events (BulkPush's limit), "
                                               f"got {len(values)}")
    return [check_event(value, f"events[{i}]") for i, value in enumerate(values)]


def find_triggered_runs(client: HatchetClient, event_ids: Sequence[str], *, since: datetime, settle: float,
                        poll_interval: float = 0.5) -> dict[str, list[str]]:
    """The runs each event triggered, listed by ``triggering_event_external_id``, oldest first.

    Hatchet creates an event's runs a moment after the push answers. The lists are read until every event has a
    run, or ``settle`` seconds have passed: an event that has none by then triggered none (no workflow was
    subscribed to its key when it was pushed).

    :param client: the REST client.
    :param event_ids: the events.
    :param since: no run was created before this.
    :param settle: seconds to wait for an event's first run.
    :param poll_interval: seconds between rounds.
    """
    found: dict[str, list[str]] = {event_id: [] for event_id in event_ids}
    deadline = time.monotonic() + settle
    while True:
        for event_id, runs in found.items():
            if not runs:
                rows = client.iter_rows(endpoints.runs(since=since, triggering_event_external_id=event_id))
                runs.extend(row.id for row in reversed(list(rows)))
        if all(found.values()) or time.monotonic() >= deadline:
            return found
        time.sleep(poll_interval)


def events_carrying(client: HatchetClient, pairs: Mapping[str, str], *, since: datetime,
                    page_size: int = WATCH_PAGE_SIZE) -> list[HatchetEvent]:
    """Every event stored since ``since`` that carries all ``pairs``, oldest first, read page after page.

    Each row is checked again here: a server that drops the filter (an old Hatchet does, for a value holding a
    ``:``) must not hand over other events.

    :param client: the REST client.
    :param pairs: metadata keys and values.
    :param since: the earliest time the server stored the event (by its clock).
    :param page_size: rows per request.
    """
    rows = client.iter_rows(scheduling.events(since=since, additional_metadata=pairs, page_size=page_size))
    found = {event.id: event for event in rows if event.has_metadata(pairs)}
    return sorted(found.values(), key=lambda event: event.created_at)
