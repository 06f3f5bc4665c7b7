"""Hearing runs finish: Hatchet's ``Dispatcher.SubscribeToWorkflowRuns`` stream, one per server, token and event
loop, shared by every wait in that loop (in the triggerer, every deferred wait).

The stream is a wake-up, never the truth: a wait that hears its runs finish checks them over REST as before
(:class:`~airflow_provider_hatchet.client.run_wait.RunWait`). What the server does (Hatchet v0.105.0,
``subscribeToWorkflowRunsV1``): it remembers each run id a client sends on a stream, sends one ``FINISHED`` event
per id when the run finalizes (a run that had already finished is found by a poll each second), then forgets the
id; it ignores ids that are not UUIDs and never answers for runs it does not know. An event's results carry each
task's output or error.

:class:`RunEvents` sends each watched id once per stream, fans each event out to every :class:`Watch` of that id,
and keeps recently finished ids so a wait that subscribes later learns them at once (the id is still sent: a run
replayed since finishes again). When the stream breaks it reconnects with backoff, sends every watched id again,
and tells every watch that events may have been missed. It closes once no watch has used it for ``IDLE_CLOSE``
seconds. ``grpc`` is imported only when a stream opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Iterable
from typing import Any

from airflow_provider_hatchet import _protos
from airflow_provider_hatchet.client.config import ClientConfig
from airflow_provider_hatchet.client.grpc.channel import open_channel
from airflow_provider_hatchet.client.grpc.client import BearerValue
from airflow_provider_hatchet.client.grpc.errors import grpc_error
from airflow_provider_hatchet.client.validation import is_uuid

log = logging.getLogger(__name__)

# Seconds a stream with no watch stays open before it closes (a wait that starts soon after reuses it).
IDLE_CLOSE = 60.0
# Reconnection backoff: the first delay, the most, and how long a stream must have lived to start again at the first.
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
BACKOFF_RESET = 10.0
# The most finished ids remembered for waits that subscribe after the event.
RECENT_FINISHED = 20_000
# Status codes after which the stream is not tried again while the hub lives: the server does not serve it, or
# refuses the token.
_FINAL_CODES = frozenset({"UNIMPLEMENTED", "UNAUTHENTICATED", "PERMISSION_DENIED"})

_NONE_HEARD: dict[str, bool] = {}

_HUBS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], RunEvents]] = (
    weakref.WeakKeyDictionary())


def hub_key(config: ClientConfig) -> tuple[Any, ...]:
    """What makes two waits share a stream: the channel's key (address, TLS, CA bundle, proxy) and the token (its
    digest: the key may show up in a debugger or a log).

    :param config: the client settings.
    """
    digest = hashlib.sha256(config.token.encode()).hexdigest()
    return (config.grpc_address, config.grpc_tls, config.verify, config.proxy, digest)


def run_events(config: ClientConfig) -> RunEvents:
    """The running loop's stream to this config's server and tenant, made on first use.

    :param config: the client settings; ``grpc_address`` must be set.
    """
    hubs = _HUBS.setdefault(asyncio.get_running_loop(), {})
    key = hub_key(config)
    hub = hubs.get(key)
    if hub is None or hub.closed:
        hub = hubs[key] = RunEvents(config)
    return hub


async def close_run_events() -> None:
    """Close the running loop's streams (whoever runs a loop that ends calls it, as ``close_channels``)."""
    for hub in list(_HUBS.pop(asyncio.get_running_loop(), {}).values()):
        await hub.aclose()


async def close_idle_run_events() -> None:
    """Close the running loop's streams that no wait watches (a task process that waited in the worker calls it as
    its wait ends, so it does not exit with the stream's task pending)."""
    hubs = _HUBS.get(asyncio.get_running_loop(), {})
    for key, hub in list(hubs.items()):
        if not hub.watching():
            del hubs[key]
            await hub.aclose()


def finished_with_error(event: Any) -> bool:
    """Whether a ``WorkflowRunEvent`` may tell of a failure: a task with an error, a task with neither output nor
    error (the fields carry no presence here, and a cancelled task's error may be empty), or no results at all (the
    server drops them over 3 MB). Only a wake-up: REST decides.

    :param event: the ``WorkflowRunEvent``.
    """
    results = list(event.results)
    return not results or any(result.error or not result.output for result in results)


class Watch:
    """One wait's view of the stream: the run ids it watches and what it heard of them.

    Small on purpose (the triggerer holds one per deferred wait): a wait sleeps on one future and a timer, not on an
    ``asyncio.Event`` and the task ``asyncio.wait_for`` would make.

    :ivar run_ids: the run ids it watches.
    :ivar finished: run id → True if the run may have failed, False if it finished without error.
    :ivar version: counts the events heard, so a wait tells new ones from those it has acted on.
    :ivar failures: counts the events heard that may tell of a failure.
    :ivar missed: the stream broke since the wait last looked: events may have been lost.
    :ivar news: something changed for this watch since :meth:`clear` (an event for one of its runs, the stream up,
        down or reconnected).
    """

    __slots__ = ("_hub", "_waiter", "failures", "finished", "missed", "news", "run_ids", "version")

    def __init__(self, hub: RunEvents) -> None:
        self._hub = hub
        self._waiter: asyncio.Future[bool] | None = None
        # A list, not a set (the hub keeps ids unique per watch): most waits watch one run, and the triggerer holds
        # a watch per deferred wait. ``finished`` stays the shared empty dict until the first event.
        self.run_ids: list[str] = []
        self.finished: dict[str, bool] = _NONE_HEARD
        self.missed = False
        self.news = False
        self.version = 0
        self.failures = 0

    @property
    def live(self) -> bool:
        """Whether the stream is connected now."""
        return self._hub.live

    @property
    def down(self) -> str | None:
        """Why the stream is not connected, once a connection failed (None while connecting or connected)."""
        return self._hub.down

    @property
    def final(self) -> bool:
        """Whether the stream will not be tried again (the server does not serve it, or refuses the token)."""
        return self._hub.final

    def clear(self) -> None:
        """Forget the news so far: :meth:`wait` then waits for the next."""
        self.news = False

    def notify(self) -> None:
        """Tell the watch something changed: wakes its :meth:`wait`."""
        self.news = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    async def wait(self, seconds: float) -> bool:
        """Wait until something changes for this watch (see ``news``) or ``seconds`` pass; True if it changed.

        :param seconds: the longest wait.
        """
        if self.news:
            return True
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(seconds, _time_up, waiter)
        try:
            return bool(await waiter)
        finally:
            timer.cancel()
            self._waiter = None

    async def wait_or(self, sleeping: Awaitable[Any]) -> bool:
        """Wait until something changes for this watch or ``sleeping`` ends (the caller's own sleep, so a wait
        polling while the stream is down keeps its clock); True if the sleep ended.

        :param sleeping: the sleep.
        """
        sleeper = asyncio.ensure_future(sleeping)
        if self.news:
            sleeper.cancel()
            return False
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
            return sleeper.done() and not sleeper.cancelled()
        finally:
            sleeper.cancel()
            self._waiter = None

    def add(self, run_ids: Iterable[str]) -> None:
        """Watch more runs (sent on the stream unless already sent; known results arrive at once).

        :param run_ids: the run ids.
        """
        self._hub.subscribe(self, run_ids)

    def close(self) -> None:
        """Stop watching (the stream closes once no watch has used it for ``IDLE_CLOSE`` seconds)."""
        self._hub.unsubscribe(self)

    def heard(self, run_id: str, failed: bool) -> None:
        """Record an event for a watched run.

        :param run_id: the run.
        :param failed: the event may tell of a failure.
        """
        if self.finished is _NONE_HEARD:
            self.finished = {}
        self.finished[run_id] = self.finished.get(run_id, False) or failed
        self.failures += failed
        self.version += 1
        self.notify()


class RunEvents:
    """The stream of finished runs for one server and token in one event loop (see the module's text).

    :param config: the client settings; ``grpc_address`` must be set.
    """

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.live = False
        self.closed = False
        self.down: str | None = None
        self.final = False
        self.streams_opened = 0
        self._metadata = (("authorization", BearerValue(f"Bearer {config.token}")),)
        # Run id → its watch, or a set of them when several waits watch it (most runs have one).
        self._watchers: dict[str, Watch | set[Watch]] = {}
        self._watches: set[Watch] = set()
        self._recent: OrderedDict[str, bool] = OrderedDict()
        self._outbox: asyncio.Queue[str] | None = None
        self._sent: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._channel: Any = None

    def watch(self, run_ids: Iterable[str] = ()) -> Watch:
        """A new watch, watching ``run_ids``; starts the stream if needed.

        :param run_ids: the run ids.
        """
        watch = Watch(self)
        self._watches.add(watch)
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._task is None and not self.final:
            self._task = asyncio.get_running_loop().create_task(self._serve(), name="hatchet-run-events")
        watch.add(run_ids)
        return watch

    def watching(self) -> bool:
        """Whether some wait watches this stream now."""
        return bool(self._watches)

    def watched(self) -> int:
        """How many run ids some watch watches now."""
        return len(self._watchers)

    def subscribe(self, watch: Watch, run_ids: Iterable[str]) -> None:
        """Add runs to a watch: those already heard finished are told at once, the others sent on the stream.

        :param watch: the watch.
        :param run_ids: the run ids; ids that are not UUIDs are ignored (the server would ignore them too).
        """
        watchers = self._watchers
        for run_id in run_ids:
            present = watchers.get(run_id)
            if present is None:
                if not is_uuid(run_id):
                    continue
                watchers[run_id] = watch
            elif present is watch or (isinstance(present, set) and watch in present):
                continue
            elif isinstance(present, set):
                present.add(watch)
            else:
                watchers[run_id] = {present, watch}
            watch.run_ids.append(run_id)
            if run_id in self._recent:
                watch.heard(run_id, self._recent[run_id])
            # Sent even when heard already: a run replayed since its event finishes again, and only a new
            # subscription hears it (the server answers a finished run again within its 1 s poll).
            self._send(run_id)

    def unsubscribe(self, watch: Watch) -> None:
        """Forget a watch; the server keeps the ids it was sent until they finish (it has no unsubscribe).

        :param watch: the watch.
        """
        self._watches.discard(watch)
        watchers = self._watchers
        for run_id in watch.run_ids:
            present = watchers.get(run_id)
            if present is watch:
                del watchers[run_id]
            elif isinstance(present, set):
                present.discard(watch)
                if len(present) == 1:
                    watchers[run_id] = present.pop()
        watch.run_ids = []
        if not self._watches and not self.closed and self._idle is None:
            self._idle = asyncio.get_running_loop().call_later(IDLE_CLOSE, self._close_if_idle)

    def _send(self, run_id: str) -> None:
        if run_id not in self._sent and self._outbox is not None:
            self._sent.add(run_id)
            self._outbox.put_nowait(run_id)

    def _close_if_idle(self) -> None:
        self._idle = None
        if not self._watches:
            self.closed = True
            if self._task is not None:
                self._task.cancel()

    def _tell_all(self, *, missed: bool) -> None:
        for watch in self._watches:
            watch.missed = watch.missed or missed
            watch.notify()

    def _heard(self, event: Any) -> None:
        run_id = str(event.workflow_run_id)
        failed = finished_with_error(event)
        self._recent[run_id] = failed
        self._recent.move_to_end(run_id)
        while len(self._recent) > RECENT_FINISHED:
            self._recent.popitem(last=False)
        self._sent.discard(run_id)  # the server forgot it; sent again only if asked for again
        present = self._watchers.get(run_id)
        for watch in [present] if isinstance(present, Watch) else list(present or ()):
            watch.heard(run_id, failed)


    def _set(self, *, live: bool, down: str | None, missed: bool = False) -> None:
        changed = (live, down is None) != (self.live, self.down is None)
        self.live, self.down = live, down
        if changed or missed:
            self._tell_all(missed=missed)

    async def aclose(self) -> None:
        """Close the stream now, whoever still watches (they go on polling)."""
        self.closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _serve(self) -> None:
        import grpc

        delay = BACKOFF_FIRST
        broken = False
        try:
            self._channel = open_channel(self.config)
            stream = self._channel.stream_stream(_protos.SUBSCRIBE_RUNS, request_serializer=_serialize,
                                                 response_deserializer=_protos.WorkflowRunEvent.FromString)
            while not self.closed:
                outbox: asyncio.Queue[str] = asyncio.Queue()
                self._outbox = outbox
                self._sent = set()
                for run_id in self._watchers:
                    self._send(run_id)
                loop = asyncio.get_running_loop()
                started = loop.time()
                requests = _Requests(outbox)
                call = stream(requests, metadata=self._metadata)
                self.streams_opened += 1
                try:
                    await call.wait_for_connection()
                    self._set(live=True, down=None, missed=broken)
                    while (event := await call.read()) is not grpc.aio.EOF:
                        self._heard(event)
                    reason = "the server ended the stream"
                except grpc.aio.AioRpcError as exc:
                    reason = str(grpc_error(exc, _protos.SUBSCRIBE_RUNS, self.config.token))
                    if getattr(exc.code(), "name", "") in _FINAL_CODES:
                        self.final = True
                        self._set(live=False, down=reason)
                        log.info("Hatchet's run-event stream is not used: %s", reason)
                        return
                finally:
                    call.cancel()
                    requests.end()
                    self._outbox = None
                if loop.time() - started >= BACKOFF_RESET:
                    delay = BACKOFF_FIRST
                # One line when the stream goes down; its further failures while down go to debug.
                (log.debug if self.down else log.info)(
                    "Hatchet's run-event stream is down (%s); reconnecting in %.1f s", reason, delay)
                self._set(live=False, down=reason)
                broken = True
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, BACKOFF_MAX)
        finally:
            self._set(live=False, down=self.down or "the stream closed")
            if self._channel is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._channel.close())


def _time_up(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class _Requests:
    """The stream's requests, one per id put in the outbox; they end only once the call is over (a half-close
    ends Hatchet's stream). A plain iterator rather than an async generator, which grpc could not close while it
    waits for an id."""

    def __init__(self, outbox: asyncio.Queue[str]) -> None:
        self.outbox = outbox
        self.ended = False

    def end(self) -> None:
        """End the requests of a call that is over: grpc stops feeding them only when it cancels a live call, and
        a call the server ended would otherwise keep its feeder waiting for an id for good."""
        self.ended = True
        self.outbox.put_nowait("")

    def __aiter__(self) -> _Requests:
        return self

    async def __anext__(self) -> Any:
        run_id = await self.outbox.get()
        if self.ended:
            raise StopAsyncIteration
        return _protos.SubscribeToWorkflowRunsRequest(workflow_run_id=run_id)


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())
