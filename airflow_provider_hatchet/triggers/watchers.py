"""Event triggers for ``AssetWatcher``: a DAG runs when a Hatchet run finishes, or when a Hatchet event arrives.

Each trigger polls Hatchet from a watermark (:mod:`airflow_provider_hatchet.client.watching`) and yields one
trigger event per run or event, never the same one twice. On Airflow 3.3+ the watermark is kept in the watched
asset's state store, written once per poll after its events were handed to Airflow, so a restarted triggerer
goes on where it stopped: nothing is lost or repeated (should the triggerer die while handing a poll's events
over, before the watermark is stored, those events come again, once: delivery is at least once). Below 3.3 the
watermark lives in memory: after a restart the trigger starts afresh and reports only what finishes from then on.

Every window is on Hatchet's clock (the ``Date`` header of its answers): a triggerer whose clock is off loses
nothing, and one off by more than the overlap is told so in the log.

Airflow identifies an event trigger by the hash of its keyword arguments, so they are static: no times, no
template. Several watchers of the same workflow (or event keys) on one connection share one poll on Airflow
3.3+ (``[triggerer]`` shared streams); each keeps its own watermark and filter, and one that joins a poll
already under way catches up from its own watermark first.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_hatchet._compat import BaseEventTrigger, TriggerEvent
from airflow_provider_hatchet._task_state import watcher_state_store
from airflow_provider_hatchet.client import (
    TERMINAL_STATUSES,
    HatchetValidationError,
    Item,
    RunStatus,
    ServerClock,
    Snapshot,
    Watermark,
    apply_namespace,
    endpoints,
    event_snapshot,
    run_snapshot,
    validation,
)
from airflow_provider_hatchet.hooks.hatchet import HatchetHook, unknown_workflow_error

DEFAULT_POLL_INTERVAL = 10.0
# Seconds of read lag the watermark covers: the measured worst is about 2 s on a busy server, 6 s under heavy load.
DEFAULT_OVERLAP = 30.0
DEFAULT_LOOKBACK = 24 * 3600.0
STATE_KEY_PREFIX = "hatchet_watermark_"
_LOG = logging.getLogger(__name__)
# ``snapshot(since, now)``: one poll, from Hatchet's time ``now``.
SnapshotFn = Callable[[datetime, datetime], Awaitable[Snapshot]]


class _HatchetWatcher(BaseEventTrigger):
    """What both watchers share: the poll loop, the shared stream and the watermark's storage.

    :param hatchet_conn_id: the Hatchet connection.
    :param namespace: overrides the connection's namespace; ``""`` disables it.
    :param additional_metadata: only runs or events carrying all these pairs.
    :param poll_interval: seconds between polls.
    :param overlap: seconds behind now the watermark stays, for Hatchet's read lag.
    :param lookback: the most seconds the watermark lags now: runs taking longer to finish, and runs or events
        of an outage longer than this, are not reported.
    """

    def __init__(
        self,
        *,
        hatchet_conn_id: str,
        namespace: str | None,
        additional_metadata: Mapping[str, Any] | None,
        poll_interval: float,
        overlap: float,
        lookback: float,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.hatchet_conn_id = hatchet_conn_id
        self.namespace = namespace
        self.additional_metadata = validation.check_metadata(additional_metadata)
        for name, value in (("poll_interval", poll_interval), ("overlap", overlap), ("lookback", lookback)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise HatchetValidationError(name, f"must be a positive number of seconds, got {value!r}")
        if lookback < overlap:
            raise HatchetValidationError("lookback", f"must be at least overlap ({overlap}), got {lookback}")
        self.poll_interval = float(poll_interval)
        self.overlap = float(overlap)
        self.lookback = float(lookback)
        self._memory: str | None = None
        self._stored: str | None = None
        self._save_failing = ""

    # What each watcher says

    def _kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    def _shared_kwargs(self) -> dict[str, Any]:
        """The keyword arguments the shared poll depends on (the others are applied by each subscriber)."""
        raise NotImplementedError

    @classmethod
    async def _poller(cls, kwargs: Mapping[str, Any]) -> tuple[SnapshotFn, ServerClock]:
        """Return ``snapshot(since, now)`` for these keyword arguments, and the clock of the server it polls
        (read by then at least once)."""
        raise NotImplementedError

    def _accepts(self, item: Item) -> bool:
        return all(item.metadata.get(k) == v for k, v in self.additional_metadata.items())

    # Airflow's interface

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the static, JSON-safe keyword arguments (no secrets)."""
        return f"{type(self).__module__}.{type(self).__qualname__}", self._kwargs()

    def shared_stream_key(self) -> Hashable | None:
        """Watchers that poll the same thing through the same connection share one poll."""
        shared = self._shared_kwargs()
        return (type(self).__qualname__, json.dumps(shared, sort_keys=True))

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """Poll forever, yielding one :class:`Snapshot` per poll to every subscriber.

        :param kwargs: one subscriber's keyword arguments (only the shared ones are used).
        """
        poll = _Poll(cls, kwargs, _LOG)
        overlap, lookback = float(kwargs["overlap"]), float(kwargs["lookback"])
        watermark = Watermark()

        def since(now: datetime) -> datetime:
            if watermark.horizon is None:
                # The first poll reaches back as far as any watcher may need to catch up after a restart; each
                # watcher drops what it reported already or what finished before it started.
                watermark.horizon = now - timedelta(seconds=lookback)
            return watermark.since(now, overlap, lookback)

        while True:
            shot = await poll(since)
            if shot is not None:
                watermark.advance(shot)
                yield shot
            await asyncio.sleep(float(kwargs["poll_interval"]))

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """Report the shared polls' items this watcher accepts and has not reported.

        :param shared_stream: the snapshots of the shared poll.
        """
        watermark = await self._load()
        # A watcher with a stored watermark may join a poll already under way (its triggerer died and another
        # took it over, or Airflow restarted it): what finished between its horizon and the shared poll's is in
        # no shared snapshot, so it catches up with one poll of its own first.
        behind = watermark.horizon is not None
        poll: _Poll | None = None
        async for shot in shared_stream:
            watermark.since(shot.now, self.overlap, self.lookback)  # the first poll marks when watching began
            if behind and watermark.horizon is not None and shot.since is not None and watermark.horizon < shot.since:
                poll = poll or _Poll(type(self), self._kwargs(), self.log)
                caught = await poll(lambda now: watermark.since(now, self.overlap, self.lookback))
                if caught is None:
                    continue  # reporting the shared poll would settle the gap: try again at the next one
                async for event in self._report(watermark, caught):
                    yield event
            behind = False
            async for event in self._report(watermark, shot):
                yield event

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll every ``poll_interval`` seconds and yield one event per new item."""
        poll = _Poll(type(self), self._kwargs(), self.log)
        watermark = await self._load()
        while True:
            shot = await poll(lambda now: watermark.since(now, self.overlap, self.lookback))
            if shot is not None:
                async for event in self._report(watermark, shot):
                    yield event
            await asyncio.sleep(self.poll_interval)

    async def _report(self, watermark: Watermark, shot: Snapshot) -> AsyncIterator[TriggerEvent]:
        for item in watermark.new_items(shot, self._accepts):
            yield TriggerEvent(item.payload)  # type: ignore[no-untyped-call]
            # Airflow has taken the event when the generator resumes: only then is it recorded as reported.
            watermark.mark(item)
        # One write per poll, not per event: the state is written whole, so a write per event made a catch-up of
        # N runs write O(N^2) bytes. The cost: a triggerer dying mid-poll hands that poll's events over again.
        watermark.advance(shot)
        text = watermark.to_json()
        if text != self._stored:
            await self._save(text)

    # The watermark

    @property
    def state_key(self) -> str:
        """The key of this watcher's watermark in the asset's state store: one per set of keyword arguments."""
        digest = hashlib.sha256(json.dumps(self._kwargs(), sort_keys=True).encode()).hexdigest()[:16]
        return STATE_KEY_PREFIX + digest

    async def _load(self) -> Watermark:
        store = watcher_state_store(self)
        if store is not None:
            try:
                self._stored = await self._read_stored(store)
            except ValueError as exc:  # several watched assets: the store wants one named
                self.log.warning("The watermark is kept in memory only: %s", exc)
            else:
                watermark = Watermark.from_json(self._stored)
                if self._stored is not None and watermark == Watermark():
                    self.log.warning("The stored watermark %s is unreadable; watching starts afresh from now: "
                                     "what finished since it was stored is not reported.", self.state_key)
                return watermark
        self._stored = self._memory
        return Watermark.from_json(self._memory)

    async def _read_stored(self, store: Any) -> str | None:
        """The stored watermark; while the store cannot be read it is tried again every poll interval (logged
        once), never replaced by a fresh one, which would drop what finished since it was stored."""
        failing = ""
        while True:
            try:
                stored: str | None = await store.aget(self.state_key)
            except ValueError:
                raise
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
                if problem != failing:
                    self.log.warning("Reading the stored watermark %s failed; trying again at the next interval: "
                                     "%s", self.state_key, problem)
                failing = problem
                await asyncio.sleep(self.poll_interval)
                continue
            if failing:
                self.log.info("Reading the stored watermark works again.")
            return stored

    async def _save(self, text: str) -> None:
        self._memory = text
        store = watcher_state_store(self)
        if store is None:
            self._stored = text
            return
        # Shielded: a triggerer stopping at this moment still gets the watermark stored. A ValueError means
        # several watched assets, already logged by _load. Any other failure leaves the state in memory, written
        # whole at the next poll: meanwhile a restart repeats what was reported since the last write, never
        # loses it.
        try:
            await asyncio.shield(store.aset(self.state_key, text))
        except ValueError:
            self._stored = text
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
            if problem != self._save_failing:
                self.log.warning("Storing the watermark %s failed; it is kept in memory and stored again at the next "
                                 "poll: %s", self.state_key, problem)
            self._save_failing = problem
        else:
            self._stored = text
            if self._save_failing:
                self.log.info("Storing the watermark works again.")
            self._save_failing = ""


class _Poll:
    """One watcher's (or shared stream's) polls. A watcher runs for as long as its DAG exists, so a failed poll
    (a connection not created yet, a server down, a bad token, a workflow not registered yet) is logged once and
    tried again at the next interval; the watermark stays where it was, so nothing is lost meanwhile.

    Each poll runs on Hatchet's clock; a local clock off by more than the overlap, or answers without a ``Date``
    header (the local clock then decides, unchecked), are logged once.

    :param watcher: the watcher class.
    :param kwargs: the keyword arguments the poll depends on.
    :param log: where failures are logged.
    """

    def __init__(self, watcher: type[_HatchetWatcher], kwargs: Mapping[str, Any], log: Any) -> None:
        self.watcher = watcher
        self.kwargs = kwargs
        self.log = log
        self.snapshot: SnapshotFn | None = None
        self.clock: ServerClock | None = None
        self.failing = ""
        self.clock_problem = ""

    async def __call__(self, since: Callable[[datetime], datetime]) -> Snapshot | None:
        """Poll once, from ``since(now)`` with ``now`` Hatchet's time; None when the poll failed.

        :param since: the watermark's start of the list, given Hatchet's time.
        """
        try:
            if self.snapshot is None or self.clock is None:
                self.snapshot, self.clock = await self.watcher._poller(self.kwargs)
            now = self._now(self.clock)
            shot = await self.snapshot(since(now), now)
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
            if problem != self.failing:  # once per distinct failure, not at every poll
                self.log.warning("Polling Hatchet failed; trying again at the next interval: %s", problem)
            self.failing = problem
            self.snapshot = None
            return None
        if self.failing:
            self.log.info("Polling Hatchet works again.")
            self.failing = ""
        return shot

    def _now(self, clock: ServerClock) -> datetime:
        offset = clock.offset
        overlap = float(self.kwargs["overlap"])
        if offset is None:
            problem = ("Hatchet's answers carry no readable Date header (none, unparseable or years off), so the "
                       "watcher cannot check the local clock against Hatchet's: its windows follow the local clock")
        elif abs(offset.total_seconds()) > overlap:
            seconds = offset.total_seconds()
            problem = (f"The local clock is {abs(seconds):.0f} s {'behind' if seconds > 0 else 'ahead of'} "
                       f"Hatchet's (the Date header of its answers), more than the overlap ({overlap:g} s); the "
                       "watcher keeps to Hatchet's clock, but check the triggerer's time synchronisation")
        else:
            problem = ""
        if problem and not self.clock_problem:
            self.log.warning("%s.", problem)
        elif self.clock_problem and not problem:
            self.log.info("The local clock agrees with Hatchet's again.")
        self.clock_problem = problem
        return clock.now()


def _statuses(values: Sequence[str] | str) -> list[str]:
    if isinstance(values, str):
        values = [values]
    result = []
    for value in values:
        try:
            status = RunStatus(str(value).upper())
        except ValueError:
            status = None
        if status is None or not status.is_terminal:
            raise HatchetValidationError(
                "statuses", f"must be finished statuses (COMPLETED, FAILED, CANCELLED), got {value!r}"
            )
        result.append(status.value)
    if not result:
        raise HatchetValidationError("statuses", "must name at least one status")
    return sorted(set(result))


class HatchetWorkflowRunEventTrigger(_HatchetWatcher):
    """Yield one trigger event for each run of a workflow that finishes in one of ``statuses``.

    The event's payload (``triggering_asset_events[asset][0].extra["payload"]``) is a dict with ``run_id``,
    ``workflow``, ``status``, ``finished_at``, ``created_at`` (ISO 8601), ``additional_metadata``, ``url`` (the
    dashboard) and, with ``include_output``, ``output`` (a single task's output, or each task's keyed by name;
    left out, with ``output_omitted``, beyond 16 KiB). Runs that finished before the watcher first started are
    not reported.

    :param workflow_name: the workflow; the namespace is applied.
    :param statuses: the finished statuses reported: ``COMPLETED`` (default), ``FAILED``, ``CANCELLED``.
    :param additional_metadata: only runs carrying all these pairs.
    :param include_output: put the run's output in the payload.
    :param hatchet_conn_id: the Hatchet connection.
    :param namespace: overrides the connection's namespace; ``""`` disables it.
    :param poll_interval: seconds between polls.
    :param overlap: seconds of Hatchet's read lag covered.
    :param lookback: the longest run reported, and the longest outage caught up, in seconds.
    """

    def __init__(
        self,
        workflow_name: str,
        statuses: Sequence[str] | str = ("COMPLETED",),
        additional_metadata: Mapping[str, Any] | None = None,
        include_output: bool = False,
        hatchet_conn_id: str = HatchetHook.default_conn_name,
        namespace: str | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        overlap: float = DEFAULT_OVERLAP,
        lookback: float = DEFAULT_LOOKBACK,
    ) -> None:
        super().__init__(hatchet_conn_id=hatchet_conn_id, namespace=namespace,
                         additional_metadata=additional_metadata, poll_interval=poll_interval, overlap=overlap,
                         lookback=lookback)
        self.workflow_name = validation.check_workflow_name(workflow_name)
        self.statuses = _statuses(statuses)
        self.include_output = bool(include_output)

    def _kwargs(self) -> dict[str, Any]:
        return {
            "workflow_name": self.workflow_name, "statuses": list(self.statuses),
            "additional_metadata": dict(self.additional_metadata), "include_output": self.include_output,
            "hatchet_conn_id": self.hatchet_conn_id, "namespace": self.namespace,
            "poll_interval": self.poll_interval, "overlap": self.overlap, "lookback": self.lookback,
        }

    def _shared_kwargs(self) -> dict[str, Any]:
        kwargs = self._kwargs()
        for own in ("statuses", "additional_metadata"):
            del kwargs[own]
        return kwargs

    def _accepts(self, item: Item) -> bool:
        return item.status in self.statuses and super()._accepts(item)

    @classmethod
    async def _poller(cls, kwargs: Mapping[str, Any]) -> tuple[SnapshotFn, ServerClock]:
        hook = HatchetHook(kwargs["hatchet_conn_id"], namespace=kwargs.get("namespace"))
        config = await hook.aget_config()
        client = await hook.aget_client()
        workflow = apply_namespace(kwargs["workflow_name"], config.namespace)
        shared = "statuses" not in kwargs
        statuses = TERMINAL_STATUSES if shared else tuple(RunStatus(s) for s in kwargs["statuses"])
        metadata = None if shared else kwargs.get("additional_metadata")
        found = endpoints.exact_workflow([w async for w in client.iter_rows(endpoints.workflows(workflow))], workflow)
        if found is None:
            # Not registered yet, or a typo: the poll fails, logged once with the close names, and is tried again.
            names = [w.name for w in (await client.send(endpoints.list_workflows())).rows]
            raise unknown_workflow_error(workflow, config, names)
        workflow_id = found.id

        async def snapshot(since: datetime, now: datetime) -> Snapshot:
            return await run_snapshot(client, workflow=workflow, workflow_id=workflow_id, since=since, now=now,
                                      overlap=float(kwargs["overlap"]), statuses=statuses,
                                      additional_metadata=metadata,
                                      include_output=bool(kwargs.get("include_output")))

        return snapshot, client.server_clock

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """One poll of every finished run of the workflow, for all its watchers.

        :param kwargs: one watcher's keyword arguments.
        """
        shared = {k: v for k, v in kwargs.items() if k not in ("statuses", "additional_metadata")}
        async for shot in super().open_shared_stream(shared):
            yield shot


class HatchetEventTrigger(_HatchetWatcher):
    """Yield one trigger event for each Hatchet event pushed with one of ``keys``.

    The payload is a dict with ``event_id``, ``key`` (namespaced), ``created_at``, ``additional_metadata`` and
    ``payload`` (the event's own; left out, with ``payload_omitted``, beyond 16 KiB). Events pushed before the
    watcher first started are not reported.

    :param keys: the event keys (the namespace is applied, as hatchet-sdk does when it pushes).
    :param additional_metadata: only events carrying all these pairs.
    :param hatchet_conn_id: the Hatchet connection.
    :param namespace: overrides the connection's namespace; ``""`` disables it.
    :param poll_interval: seconds between polls.
    :param overlap: seconds of Hatchet's read lag covered.
    :param lookback: the longest outage caught up, in seconds.
    """

    def __init__(
        self,
        keys: Sequence[str] | str,
        additional_metadata: Mapping[str, Any] | None = None,
        hatchet_conn_id: str = HatchetHook.default_conn_name,
        namespace: str | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        overlap: float = DEFAULT_OVERLAP,
        lookback: float = DEFAULT_LOOKBACK,
    ) -> None:
        super().__init__(hatchet_conn_id=hatchet_conn_id, namespace=namespace,
                         additional_metadata=additional_metadata, poll_interval=poll_interval, overlap=overlap,
                         lookback=lookback)
        keys = [keys] if isinstance(keys, str) else list(keys)
        if not keys or not all(isinstance(k, str) and k.strip() for k in keys):
            raise HatchetValidationError("keys", f"must be one or more non-empty strings, got {keys!r}")
        self.keys = sorted(set(keys))

    def _kwargs(self) -> dict[str, Any]:
        return {
            "keys": list(self.keys), "additional_metadata": dict(self.additional_metadata),
            "hatchet_conn_id": self.hatchet_conn_id, "namespace": self.namespace,
            "poll_interval": self.poll_interval, "overlap": self.overlap, "lookback": self.lookback,
        }

    def _shared_kwargs(self) -> dict[str, Any]:
        kwargs = self._kwargs()
        del kwargs["additional_metadata"]
        return kwargs

    @classmethod
    async def _poller(cls, kwargs: Mapping[str, Any]) -> tuple[SnapshotFn, ServerClock]:
        hook = HatchetHook(kwargs["hatchet_conn_id"], namespace=kwargs.get("namespace"))
        config = await hook.aget_config()
        client = await hook.aget_client()
        keys = [apply_namespace(k, config.namespace) for k in kwargs["keys"]]
        metadata = kwargs.get("additional_metadata") or None
        if client.server_clock.offset is None:
            # One answer to read Hatchet's clock from before the first poll.
            await client.send(endpoints.list_workflows(limit=1))

        async def snapshot(since: datetime, now: datetime) -> Snapshot:
            return await event_snapshot(client, keys=keys, since=since, now=now, overlap=float(kwargs["overlap"]),
                                        additional_metadata=metadata)

        return snapshot, client.server_clock

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """One poll of the events, for all their watchers.

        :param kwargs: one watcher's keyword arguments.
        """
        shared = {k: v for k, v in kwargs.items() if k != "additional_metadata"}
        async for shot in super().open_shared_stream(shared):
            yield shot
