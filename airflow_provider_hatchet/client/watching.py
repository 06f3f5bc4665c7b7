"""Watching Hatchet for finished runs and new events, without losing or repeating one.

Hatchet lists runs and events by the time it stored them (``since``/``until`` on creation), newest first, and
has no filter on the finish time. So a watcher keeps a *horizon*: a creation time before which every run it
cares about has finished and been reported. Each poll (a :class:`Snapshot`) lists the finished runs created
since the horizon, and the horizon moves up to the oldest run still unfinished, but never closer to now than
the overlap that covers Hatchet's read lag (a run can stay unlisted for a moment after it is created).

A poll also *settles* what finished more than the overlap before it began: such a run was in that poll's list,
so it is reported then or never. The ids reported are kept only while they are not settled, so the overlap never
reports a run twice, and the state holds the runs of the last overlap and poll interval, however far back the
horizon stays (a run that takes hours holds it there). A :class:`Watermark` is that state: small, JSON, stored
where the watcher can find it again after a restart.

Every time here is Hatchet's: ``now`` comes from its answers' ``Date`` header
(:class:`~airflow_provider_hatchet.client.server_clock.ServerClock`), never from the local clock alone.

Runs that take longer than ``lookback`` seconds to finish, and runs finished during an outage longer than that,
are not reported: the horizon never lags now by more than ``lookback``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_hatchet.client import endpoints, scheduling
from airflow_provider_hatchet.client.aio import AsyncHatchetClient
from airflow_provider_hatchet.client.models import TERMINAL_STATUSES, UNFINISHED_STATUSES, RunStatus, RunSummary
from airflow_provider_hatchet.client.paging import WATCH_PAGE_SIZE, has_more
from airflow_provider_hatchet.client.scheduling import HatchetEvent
from airflow_provider_hatchet.client.server_clock import utcnow

# The largest run output or event payload (bytes of JSON) a trigger event carries; a larger one is left out
# and flagged, since each trigger event is stored in Airflow's metadata database.
MAX_PAYLOAD_BYTES = 16 * 1024


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Item:
    """A finished run or an event, as a watcher sees it.

    :param id: the run or event id.
    :param created: when Hatchet stored it (what the list's ``since`` compares with).
    :param at: when it happened: the finish time of a run, the creation time of an event.
    :param status: the run's status; None for an event.
    :param metadata: its additional metadata.
    :param payload: the trigger event's payload.
    """

    id: str
    created: datetime
    at: datetime
    status: str | None
    metadata: Mapping[str, Any]
    payload: dict[str, Any]


@dataclass(frozen=True)
class Snapshot:
    """One poll: the items listed, and the horizon they justify.

    :param items: finished runs or events created since the poll's ``since``, oldest first.
    :param horizon: the creation time below which nothing more will finish (within ``lookback``).
    :param settled: the time (of a run's finish, an event's creation) below which every item was in this poll:
        Hatchet's time as the poll began, less the overlap.
    :param now: Hatchet's time as the poll began.
    :param since: the earliest creation time the poll listed; None when not known.
    """

    items: Sequence[Item]
    horizon: datetime
    settled: datetime
    now: datetime
    since: datetime | None = None


@dataclass
class Watermark:
    """What a watcher has reported: a horizon, the ids reported and not settled, and when watching began.

    :param horizon: the creation time from which the next poll lists; None before the first poll.
    :param not_before: items that happened before this are never reported (those before the watcher started).
    :param settled: items that happened before this were reported already, or never will be.
    :param seen: ids reported, with the time they happened, kept until that time is settled.
    :param legacy: read from a state written before ``settled`` existed, whose ``seen`` holds creation times.
    """

    horizon: datetime | None = None
    not_before: datetime | None = None
    settled: datetime | None = None
    seen: dict[str, str] = field(default_factory=dict)
    # A state stored before ``settled`` existed keeps creation times in ``seen``, not when the items happened.
    legacy: bool = field(default=False, repr=False, compare=False)

    def since(self, now: datetime, overlap: float, lookback: float) -> datetime:
        """Where the next poll lists from; the first call also marks when watching began (``not_before``).

        :param now: Hatchet's time now.
        :param overlap: seconds of read lag covered.
        :param lookback: the most seconds the horizon lags now.
        """
        if self.not_before is None:
            self.not_before = now
        floor = now - timedelta(seconds=lookback)
        start = self.horizon if self.horizon is not None else now - timedelta(seconds=overlap)
        return max(start, floor)

    def new_items(self, snapshot: Snapshot, accept: Callable[[Item], bool] = lambda item: True) -> list[Item]:
        """The items of a poll to report, oldest first: accepted, not seen, not older than the horizon, the start
        of watching or what is settled.

        :param snapshot: the poll.
        :param accept: the watcher's own filter (status, metadata), for a poll shared by several watchers.
        """
        fresh = []
        floor = max((t for t in (self.not_before, self.settled) if t is not None), default=None)
        for item in snapshot.items:
            if item.id in self.seen or (self.horizon is not None and item.created < self.horizon):
                continue
            if floor is not None and item.at < floor:
                continue
            if accept(item):
                fresh.append(item)
        return fresh

    def mark(self, item: Item) -> None:
        """Record that an item was reported.

        :param item: the item.
        """
        self.seen[item.id] = _iso(item.at)

    def advance(self, snapshot: Snapshot) -> None:
        """Move the horizon and what is settled up to the poll's (never back), and forget the settled ids.

        :param snapshot: the poll, once its items were reported.
        """
        if self.legacy:
            # When those items happened is unknown, but not later than now: kept until now is settled, and by
            # then the settled rule skips them.
            self.seen = dict.fromkeys(self.seen, _iso(snapshot.now))
            self.legacy = False
        if self.horizon is None or snapshot.horizon > self.horizon:
            self.horizon = snapshot.horizon
        if self.settled is None or snapshot.settled > self.settled:
            self.settled = snapshot.settled
        limit = self.settled
        self.seen = {k: v for k, v in self.seen.items() if datetime.fromisoformat(v) >= limit}

    def to_json(self) -> str:
        """The state as a JSON string."""
        return json.dumps({
            "horizon": _iso(self.horizon) if self.horizon else None,
            "not_before": _iso(self.not_before) if self.not_before else None,
            "settled": _iso(self.settled) if self.settled else None,
            "seen": self.seen,
        }, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: Any) -> Watermark:
        """Read a state written by :meth:`to_json`; anything unreadable gives a fresh state.

        :param text: the JSON string (or None).
        """
        try:
            data = json.loads(text) if isinstance(text, str) else text

            def moment(key: str) -> datetime | None:
                return datetime.fromisoformat(data[key]) if data.get(key) else None

            return cls(horizon=moment("horizon"), not_before=moment("not_before"), settled=moment("settled"),
                       seen={str(k): str(v) for k, v in (data.get("seen") or {}).items()},
                       legacy="settled" not in data)
        except (TypeError, ValueError, KeyError, AttributeError):
            return cls()


def small(value: Any) -> tuple[Any, bool]:
    """The value, or None with True when its JSON is larger than :data:`MAX_PAYLOAD_BYTES`.

    :param value: a JSON value.
    """
    if len(json.dumps(value, default=str)) > MAX_PAYLOAD_BYTES:
        return None, True
    return value, False


def run_output(row: RunSummary) -> dict[str, Any]:
    """A finished run's output from a list row read with payloads: a single task's output, or each task's
    output keyed by task name.

    :param row: the row.
    """
    if row.children:
        return {task.name: task.output for task in row.children}
    return dict(row.output)


def run_item(row: RunSummary, workflow: str, url: str, *, include_output: bool, now: datetime | None = None) -> Item:
    """A finished run as a watcher item, with the trigger event's payload.

    :param row: the list row.
    :param workflow: the full workflow name.
    :param url: the run's dashboard link.
    :param include_output: put the run's output in the payload.
    :param now: Hatchet's time, for a row without timestamps (the local time when not given).
    """
    created = _aware(row.inserted_at or row.created_at or now or utcnow())
    finished = _aware(row.finished_at or created)
    metadata = {k: v for k, v in row.additional_metadata.items() if k != "traceparent"}
    payload: dict[str, Any] = {
        "run_id": row.id, "workflow": workflow, "status": row.status.value, "finished_at": _iso(finished),
        "created_at": _iso(created), "additional_metadata": metadata, "url": url,
    }
    if include_output:
        payload["output"], omitted = small(run_output(row))
        if omitted:
            payload["output_omitted"] = f"larger than {MAX_PAYLOAD_BYTES} bytes"
    return Item(row.id, created, finished, row.status.value, metadata, payload)


def event_item(event: HatchetEvent) -> Item:
    """An event as a watcher item, with the trigger event's payload.

    :param event: the event.
    """
    created = _aware(event.created_at)
    payload: dict[str, Any] = {
        "event_id": event.id, "key": event.key, "created_at": _iso(created),
        "additional_metadata": dict(event.additional_metadata),
    }
    payload["payload"], omitted = small(dict(event.payload))
    if omitted:
        payload["payload_omitted"] = f"larger than {MAX_PAYLOAD_BYTES} bytes"
    return Item(event.id, created, created, None, dict(event.additional_metadata), payload)


async def run_snapshot(
    client: AsyncHatchetClient,
    *,
    workflow: str,
    workflow_id: str,
    since: datetime,
    now: datetime,
    overlap: float,
    statuses: Sequence[RunStatus] = TERMINAL_STATUSES,
    additional_metadata: Mapping[str, str] | None = None,
    include_output: bool = False,
) -> Snapshot:
    """Poll a workflow's runs: the finished ones created since ``since``, and the horizon.

    The unfinished runs are listed first: a run that finishes between the two lists is then either in the
    second, or created after the horizon this poll sets.

    :param client: the async client.
    :param workflow: the full workflow name (for the payload).
    :param workflow_id: its id (the list filters by id).
    :param since: the earliest creation time listed.
    :param now: Hatchet's time as the poll begins.
    :param overlap: seconds of read lag covered: the horizon stays this far behind now.
    :param statuses: the finished statuses listed.
    :param additional_metadata: only runs carrying these pairs.
    :param include_output: read the outputs, for the payload.
    """
    settled = horizon = now - timedelta(seconds=overlap)
    async for row in client.iter_rows(endpoints.runs(since=since, page_size=WATCH_PAGE_SIZE,
                                                     statuses=UNFINISHED_STATUSES, workflow_ids=[workflow_id])):
        horizon = min(horizon, _aware(row.inserted_at or row.created_at or horizon))
    items = []
    pairs = dict(additional_metadata or {})
    async for row in client.iter_rows(endpoints.runs(since=since, page_size=WATCH_PAGE_SIZE, statuses=statuses,
                                      workflow_ids=[workflow_id], additional_metadata=pairs or None,
                                      include_payloads=include_output)):
        if row.status.is_terminal and row.has_metadata(pairs):
            items.append(run_item(row, workflow, client.run_url(row.id), include_output=include_output, now=now))
    unique = {item.id: item for item in items}
    return Snapshot(sorted(unique.values(), key=lambda i: (i.at, i.id)), max(horizon, since), settled, now, since)


async def event_snapshot(
    client: AsyncHatchetClient,
    *,
    keys: Sequence[str],
    since: datetime,
    now: datetime,
    overlap: float,
    additional_metadata: Mapping[str, str] | None = None,
) -> Snapshot:
    """Poll events by key: those created since ``since``, and the horizon (events never change once stored).

    :param client: the async client.
    :param keys: the full event keys.
    :param since: the earliest creation time listed.
    :param now: Hatchet's time as the poll begins.
    :param overlap: seconds of read lag covered.
    :param additional_metadata: only events carrying these pairs.
    """
    items: dict[str, Item] = {}
    offset = 0
    while True:
        page = await client.send(scheduling.list_events(since=since, keys=list(keys),
                                                        additional_metadata=additional_metadata, offset=offset,
                                                        limit=WATCH_PAGE_SIZE))
        for event in page.rows:
            items[event.id] = event_item(event)
        if not has_more(len(page.rows), WATCH_PAGE_SIZE, page.pagination):
            break
        offset += len(page.rows)
    settled = now - timedelta(seconds=overlap)
    return Snapshot(sorted(items.values(), key=lambda i: (i.at, i.id)), max(settled, since), settled, now, since)
