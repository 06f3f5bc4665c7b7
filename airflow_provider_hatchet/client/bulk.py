"""The bulk trigger engine: many single trigger calls at bounded concurrency, each run created once.

Hatchet's REST API has no bulk endpoint, so over REST a batch is one trigger call per item; over gRPC (a
:class:`TriggerSender` from ``client/grpc/``) it is one call per chunk of items, and what is said of a trigger
below holds for a chunk. Every run carries the batch metadata (one filter finds the whole batch) and its own
index, which is how a run is found again:

- A trigger that fails ambiguously (5xx, or a connection lost after the request went out) may have created
  its run. Such items wait for the end of the pass; once the run would be visible, one paginated list query
  by the batch metadata tells which exist, and only the missing ones are sent again, for a few rounds.
- A trigger that certainly created nothing (429, a request that never left) is retried with backoff.
- A configuration error (401, 403, 404: token or tenant; a redirect or a success that is not JSON: the server
  URL) stops the batch at once: nothing more is sent and :meth:`BulkTrigger.run` raises that error.
- Over gRPC a chunk is created whole or not at all, and its runs reach the list a while after they exist (longer
  on a busy server). So the missing items of a chunk some of whose runs are listed are never sent again: they are
  looked up again a window later. A chunk none of whose runs is listed is sent again only after a second lookup,
  a window later, still finds none of them.
- ``stop_after`` failures in a row with no run created in between (ambiguous ones, or triggers that exhausted
  their retries) stop sending: the server is down or not answering. What was sent is still looked up; the
  rest is reported as not sent.
- Other errors (400, ...) are final for the item.
- A sender that allows it (gRPC with ``transport="auto"``) hands the batch over to REST when a call fails with
  UNAVAILABLE or UNIMPLEMENTED before any of its calls succeeded: a proxy or load balancer that accepts
  connections with no healthy engine behind it. The unsent items go over REST; an UNIMPLEMENTED chunk (certainly
  not created) is sent again over REST, an UNAVAILABLE one (it may exist) is looked up as any ambiguous chunk.
  Once a call through the sender succeeded, its failures are handled as above, over the same transport.
- ``resume=True`` first lists the batch's existing runs and keeps those in ``reuse_statuses``. If items are
  left without a run, it lists again once runs an earlier attempt created just before it stopped would be
  visible, and only then triggers what is still missing.

Memory stays flat: ``max_concurrency`` workers pull indexes from one shared iterator and results go to a
preallocated list.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from airflow_provider_hatchet.client import endpoints
from airflow_provider_hatchet.client.aio import AsyncHatchetClient
from airflow_provider_hatchet.client.batch_runs import batch_rows
from airflow_provider_hatchet.client.bulk_result import (
    CREATED,
    RECOVERED,
    REUSED,
    BulkItem,
    BulkProgress,
    BulkResult,
    HatchetBulkTriggerError,
)
from airflow_provider_hatchet.client.endpoints import RUN_VISIBILITY_WINDOW
from airflow_provider_hatchet.client.errors import (
    HatchetAlreadyExistsError,
    HatchetAPIError,
    HatchetConfigError,
    HatchetError,
    HatchetMalformedResponseError,
    HatchetRateLimitError,
    HatchetServerError,
    HatchetTransportError,
)
from airflow_provider_hatchet.client.models import REUSABLE_STATUSES, RunStatus, RunSummary
from airflow_provider_hatchet.client.retry import DEFAULT_RETRY, RetryPolicy

__all__ = [
    "DEFAULT_INDEX_KEY",
    "BulkItem",
    "BulkProgress",
    "BulkResult",
    "BulkTrigger",
    "HatchetBulkTriggerError",
    "RestSender",
    "TriggerSender",
    "trigger_many",
]

DEFAULT_INDEX_KEY = "batch_index"
DEFAULT_VISIBILITY_WINDOW = RUN_VISIBILITY_WINDOW

ProgressCallback = Callable[[BulkProgress], None]
RunCallback = Callable[[int, str], None]

_AMBIGUOUS, _RETRY, _FINAL, _FATAL = range(4)
# The same answer for every item: the token, the tenant or the server URL is wrong.
_FATAL_STATUSES = frozenset({401, 403, 404})


def _classify(exc: HatchetError) -> int:
    if isinstance(exc, HatchetAlreadyExistsError):
        return _AMBIGUOUS  # a bulk trigger creates the runs whose keys did not collide
    if isinstance(exc, HatchetTransportError):
        return _AMBIGUOUS if exc.maybe_sent else _RETRY
    if isinstance(exc, HatchetRateLimitError):
        return _RETRY
    if isinstance(exc, HatchetServerError):
        return _AMBIGUOUS
    if isinstance(exc, HatchetConfigError):
        return _FATAL
    if isinstance(exc, HatchetAPIError):
        return _FATAL if exc.status_code in _FATAL_STATUSES else _FINAL
    return _AMBIGUOUS


def may_have_created(exc: HatchetError) -> bool:
    """Whether a single trigger that failed with ``exc`` may still have created its run (a lost connection after
    sending, a deadline, a 5xx, an answer that could not be read), so it must be looked up before another is sent.

    :param exc: the failure.
    """
    return not isinstance(exc, HatchetAlreadyExistsError) and _classify(exc) == _AMBIGUOUS


def _describe(exc: HatchetError) -> str:
    if isinstance(exc, HatchetAPIError):
        return f"{exc.status_code} {exc.message}"
    return str(exc)


class TriggerSender(Protocol):
    """How a batch's triggers go out: one run per request over REST, or chunks of runs over gRPC.

    A chunk is created whole or not at all, so the engine treats it as one trigger: its failure is classified
    once and, when ambiguous, each of its items is looked up.
    """

    def chunks(self, requests: Iterator[tuple[int, BulkItem]]) -> Iterator[list[tuple[int, Any]]]:
        """Group ``(index, item)`` pairs, each item's metadata already complete, into chunks of
        ``(index, request)``; lazily, since the engine's workers pull from it.

        :param requests: the items to send, in order.
        """
        ...

    async def send(self, requests: list[Any]) -> list[str]:
        """Trigger one chunk and return its run ids in order.

        :param requests: the requests of one chunk, as :meth:`chunks` made them.
        :raises HatchetError: mapped as the REST client maps its errors.
        """
        ...

    def unusable(self, exc: HatchetError) -> bool:
        """Whether a failure of :meth:`send` says this transport does not work here at all, so that a batch none of
        whose calls through it has succeeded may go on over REST.

        :param exc: the failure.
        """
        ...


class RestSender:
    """One REST trigger request per run.

    :param client: the async client.
    """

    def __init__(self, client: AsyncHatchetClient) -> None:
        self._client = client

    def chunks(self, requests: Iterator[tuple[int, BulkItem]]) -> Iterator[list[tuple[int, Any]]]:
        """One chunk per item.

        :param requests: the items to send.
        """
        return ([pair] for pair in requests)

    async def send(self, requests: list[Any]) -> list[str]:
        """Trigger the one run of the chunk.

        :param requests: a list holding one :class:`BulkItem`.
        """
        (item,) = requests
        return [await self._client.send(endpoints.trigger(item))]

    def unusable(self, exc: HatchetError) -> bool:
        """Never: REST is what a batch falls back to.

        :param exc: the failure.
        """
        return False


def default_progress_every(total: int) -> int:
    """Report every 10% of the batch, but at least every 1000 items.

    :param total: items in the batch.
    """
    return max(1, min(1000, -(-total // 10)))


class BulkTrigger:
    """One batch of triggers; :meth:`run` it once. :meth:`result` can be read at any time, even after a
    cancellation, to see what was created so far.

    :param client: the async client; ``max_concurrency`` should not exceed its connection pool.
    :param items: the runs to trigger; the position of each is its index.
    :param batch_metadata: metadata stamped on every run that finds the whole batch (e.g. a task's identity).
    :param since: no run of the batch (including earlier attempts, for resume) was created before this.
    :param index_key: the metadata key holding each run's index.
    :param max_concurrency: the most trigger requests in flight.
    :param resume: first read the batch's existing runs and skip the items that have a reusable one.
    :param reuse_statuses: with ``resume``, the statuses of runs that are kept; other runs are triggered again.
    :param keep_runs: with ``resume``, runs kept whatever status they read (e.g. runs just replayed in place).
    :param visibility_window: seconds a new run may stay invisible to lookups after its trigger returned.
    :param lookup_rounds: how many times items whose trigger failed ambiguously are sent again.
    :param retry: backoff for triggers that certainly created nothing (429, never sent): attempts per item
        and the exponential wait with jitter.
    :param stop_after: failures in a row (ambiguous, or out of retries) with no run created in between after
        which nothing more is sent; by default twice ``max_concurrency``. A server that drops out for a moment
        fails every request in flight at once, up to ``max_concurrency`` of them; only a second full round of
        failures in a row means it is down, and then at most ``stop_after + max_concurrency`` items were sent.
    :param on_progress: called with a :class:`BulkProgress` every ``progress_every`` items and per phase.
    :param progress_every: items between progress calls; by default 10% of the batch, at most 1000.
    :param on_run: called with ``(index, run_id)`` for every run of the batch, once it is known.
    :param sender: how triggers are sent; by default one REST request per run through ``client``, which is
        also the client of the lookups. ``max_concurrency`` counts the sender's requests.
    :param fallback_concurrency: the REST requests in flight once the batch goes on over REST because the
        sender's transport is unusable (see :meth:`TriggerSender.unusable`); by default ``max_concurrency``.
    :param on_fallback: called once, with a line saying why, when the batch goes on over REST.
    """

    def __init__(
        self,
        client: AsyncHatchetClient,
        items: Sequence[BulkItem],
        *,
        batch_metadata: Mapping[str, str],
        since: datetime,
        index_key: str = DEFAULT_INDEX_KEY,
        max_concurrency: int = 32,
        resume: bool = False,
        reuse_statuses: Collection[RunStatus] = REUSABLE_STATUSES,
        keep_runs: Collection[str] = (),
        visibility_window: float = DEFAULT_VISIBILITY_WINDOW,
        lookup_rounds: int = 3,
        retry: RetryPolicy = DEFAULT_RETRY,
        stop_after: int | None = None,
        on_progress: ProgressCallback | None = None,
        progress_every: int | None = None,
        on_run: RunCallback | None = None,
        sender: TriggerSender | None = None,
        fallback_concurrency: int | None = None,
        on_fallback: Callable[[str], None] | None = None,
    ) -> None:
        if not batch_metadata or not all(isinstance(v, str) and k for k, v in batch_metadata.items()):
            raise ValueError("batch_metadata must be a non-empty dict of strings: it is how the batch is found")
        if index_key in batch_metadata:
            raise ValueError(f"index_key {index_key!r} must not be one of the batch_metadata keys")
        if max_concurrency < 1 or lookup_rounds < 0 or visibility_window < 0 or (stop_after or 1) < 1 \
                or (fallback_concurrency or 1) < 1:
            raise ValueError("max_concurrency, fallback_concurrency and stop_after must be >= 1, lookup_rounds and "
                             "visibility_window >= 0")
        self._client = client
        self._sender: TriggerSender = sender or RestSender(client)
        self._items = items
        self._batch = dict(batch_metadata)
        self._since = since
        self._index_key = index_key
        self._concurrency = max_concurrency
        self._resume = resume
        self._reuse = frozenset(RunStatus(s) for s in reuse_statuses)
        self._keep = frozenset(keep_runs)
        self._window = visibility_window
        self._rounds = lookup_rounds
        self._retry = retry
        self._stop_after_option = stop_after
        self._stop_after = stop_after or 2 * max_concurrency
        self._fallback_concurrency = fallback_concurrency or max_concurrency
        self._on_fallback = on_fallback
        self._sent = False
        self._source: Iterator[list[tuple[int, Any]]] = iter(())
        self._workers: list[asyncio.Future[None]] = []
        self._on_progress = on_progress
        self._on_run = on_run
        total = len(items)
        self._every = progress_every or default_progress_every(total)
        self._ids: list[str | None] = [None] * total
        self._origins = bytearray(total)
        self._errors: dict[int, str] = {}
        self._messages: dict[str, str] = {}
        self._ambiguous: list[int] = []
        # Chunks of more than one run whose trigger failed ambiguously, and the items a lookup found none of.
        self._ambiguous_chunks: list[list[int]] = []
        self._unseen: set[int] = set()
        self._wanted: set[int] = set()
        self._last_ambiguous = 0.0
        self._stale: set[str] = set()
        self._abort: str | None = None
        self._fatal: HatchetError | None = None
        self._failures_in_a_row = 0
        self._created = self._failed = 0
        self._next_report = self._every
        self._requests = self._lookups = 0
        self._phase = "trigger"
        self._started = time.monotonic()
        self._finished: float | None = None
        self._ran = False

    async def run(self) -> BulkResult:
        """Trigger the batch and return its result; failed items are in the result, not raised.

        :raises HatchetError: a configuration error (see the module's notes); :meth:`result` still tells which
            items have a run.
        """
        if self._ran:
            raise RuntimeError("a BulkTrigger runs once")
        self._ran = True
        self._started = time.monotonic()
        todo: Iterable[int] = range(len(self._items))
        if self._resume:
            self._phase = "resume"
            await self._reuse_existing()
            if None in self._ids:
                # The earlier attempt stopped before this one started, so its last runs are listable from
                # one window after our start.
                await asyncio.sleep(max(0.0, self._started + self._window - time.monotonic()))
                await self._reuse_existing()
            todo = [i for i in todo if self._ids[i] is None]
        self._phase = "trigger"
        await self._pool(todo)
        if self._fatal is None:
            self._report()
            await self._resolve_ambiguous()
        self._finished = time.monotonic()
        self._phase = "done"
        self._report()
        if self._fatal is not None:
            raise self._fatal
        return self.result()

    def result(self) -> BulkResult:
        """The outcome so far: items not (yet) created are listed as failed with their last error."""
        failed = {
            i: self._errors.get(i, "not triggered")
            for i, run_id in enumerate(self._ids) if run_id is None
        }
        end = self._finished if self._finished is not None else time.monotonic()
        return BulkResult(
            list(self._ids), failed, bytes(self._origins), self._requests, self._lookups, end - self._started
        )

    def progress(self) -> BulkProgress:
        """A snapshot of the counters."""
        return BulkProgress(
            self._phase, len(self._items), self._created, self._failed, len(self._ambiguous) + len(self._wanted),
            time.monotonic() - self._started,
        )

    # Workers

    async def _pool(self, indexes: Iterable[int]) -> None:
        # One source of chunks the workers share; a fallback to REST replaces it (and adds workers).
        self._source = self._sender.chunks((i, self._request(i)) for i in indexes)
        self._workers = [asyncio.ensure_future(self._worker()) for _ in range(self._concurrency)]
        try:
            running: list[asyncio.Future[None]] = []
            while len(running) < len(self._workers):
                running = list(self._workers)
                await asyncio.gather(*running)
        except BaseException:
            for task in self._workers:
                task.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            raise

    async def _worker(self) -> None:
        while True:
            # The sender that made the chunk: the batch may have fallen back to REST since.
            sender, chunk = self._sender, next(self._source, None)
            if chunk is None:
                return
            if self._abort is None:
                await self._trigger(sender, chunk)
            else:
                for i, _ in chunk:
                    self._fail(i, f"not sent: {self._abort}")

    def _request(self, i: int) -> BulkItem:
        item = self._items[i]
        metadata = {**item.additional_metadata, **self._batch, self._index_key: str(i)}
        # The constructor, not dataclasses.replace: a quarter of the engine's own time per run went to replace.
        return BulkItem(item.workflow_name, item.input, metadata, item.priority)

    async def _trigger(self, sender: TriggerSender, chunk: list[tuple[int, Any]]) -> None:
        indexes = [i for i, _ in chunk]
        requests = [request for _, request in chunk]
        attempt = 1
        while True:
            self._requests += 1
            try:
                run_ids = await sender.send(requests)
                if len(run_ids) != len(indexes):
                    raise HatchetMalformedResponseError(
                        f"{len(run_ids)} run ids for {len(indexes)} runs", method="bulk", path="trigger")
            except HatchetError as exc:
                kind = _classify(exc)
                error = self._intern(_describe(exc))
                if self._fall_back(sender, exc, error):
                    if kind == _AMBIGUOUS:
                        self._hold(indexes, error)
                    else:  # certainly not created: sent again first, over REST
                        self._source = itertools.chain(
                            self._sender.chunks((i, self._request(i)) for i in indexes), self._source)
                    return
                if kind == _RETRY and attempt < self._retry.attempts and self._abort is None:
                    for i in indexes:
                        self._errors[i] = error
                    await asyncio.sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                if kind == _FATAL and self._fatal is None:
                    self._fatal = exc
                    self._abort = error
                elif kind in (_AMBIGUOUS, _RETRY):
                    self._failed_again(error)
                if kind == _AMBIGUOUS:
                    self._hold(indexes, error)
                    return
                for i in indexes:
                    self._fail(i, error)
                return
            self._sent = True
            self._failures_in_a_row = 0
            for i, run_id in zip(indexes, run_ids, strict=True):
                self._settle(i, run_id, CREATED)
            return

    def _hold(self, indexes: list[int], error: str) -> None:
        """Keep a chunk whose trigger failed ambiguously for the lookups."""
        for i in indexes:
            self._errors[i] = error
        self._ambiguous.extend(indexes)
        if len(indexes) > 1:
            self._ambiguous_chunks.append(indexes)
        self._last_ambiguous = time.monotonic()

    def _fall_back(self, sender: TriggerSender, exc: HatchetError, error: str) -> bool:
        """Whether a chunk failed because its transport is unusable and the batch goes (or went) on over REST.

        The first such failure before any call succeeded hands the batch over: the chunks not yet sent are made
        again as REST requests, and workers are added up to ``fallback_concurrency``.
        """
        if not sender.unusable(exc):
            return False
        if sender is not self._sender:
            return True  # a chunk sent before the batch fell back
        if self._sent:
            return False  # the transport worked: a failure like any other
        rest = RestSender(self._client)
        self._sender = rest
        self._source = rest.chunks((i, self._request(i)) for chunk in self._source for i, _ in chunk)
        self._failures_in_a_row = 0
        self._stop_after = self._stop_after_option or 2 * self._fallback_concurrency
        self._workers += [asyncio.ensure_future(self._worker())
                          for _ in range(self._fallback_concurrency - self._concurrency)]
        self._concurrency = self._fallback_concurrency
        if self._on_fallback is not None:
            self._on_fallback(f"A trigger call failed before any had succeeded ('{error}'); the batch goes on over "
                              f"REST, one request per run, {self._concurrency} at a time.")
        return True

    def _failed_again(self, error: str) -> None:
        self._failures_in_a_row += 1
        if self._failures_in_a_row >= self._stop_after and self._abort is None:
            self._abort = (f"stopped after {self._failures_in_a_row} triggers in a row failed with no run created "
                           f"(the last: {error})")

    def _backoff(self, attempt: int) -> float:
        policy = self._retry
        return min(policy.maximum, policy.initial * 2.0 ** (attempt - 1)) + random.uniform(0, policy.jitter)

    # Bookkeeping

    def _intern(self, message: str) -> str:
        return self._messages.setdefault(message, message)

    def _settle(self, i: int, run_id: str, origin: int) -> None:
        self._ids[i] = run_id
        self._origins[i] = origin
        self._errors.pop(i, None)
        self._created += 1
        if self._on_run is not None:
            self._on_run(i, run_id)
        self._step()

    def _fail(self, i: int, error: str) -> None:
        self._errors[i] = self._intern(error)
        self._failed += 1
        self._step()

    def _step(self) -> None:
        if self._created + self._failed >= self._next_report:
            self._next_report = self._created + self._failed + self._every
            self._report()

    def _report(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self.progress())

    # Lookups

    async def _batch_runs(self) -> AsyncIterator[tuple[int, RunSummary]]:
        """Yield ``(index, run)`` for every run of the batch, skipping runs known to be stale."""
        async for index, row in batch_rows(self._client, self._batch, len(self._items), since=self._since,
                                           index_key=self._index_key, on_page=self._count_lookup):
            if row.id not in self._stale:
                yield index, row

    def _count_lookup(self) -> None:
        self._lookups += 1

    def _held_back(self, chunks: list[list[int]], missing: set[int]) -> list[list[int]]:
        """The chunks whose missing items must not be sent again yet, because they may exist.

        A chunk is created whole or not at all, and the list shows its runs a while after they exist (longer on a
        busy server). So when some of a chunk's runs are listed, the rest exist too and are only not listed yet;
        and a chunk none of whose runs is listed is sent again only once a second lookup, a window later, still
        finds none of them.
        """
        held: list[list[int]] = []
        for chunk in chunks:
            absent = [i for i in chunk if i in missing]
            if not absent:
                continue
            if len(absent) < len(chunk) or not self._unseen.issuperset(absent):
                held.append(chunk)
                if len(absent) == len(chunk):
                    self._unseen.update(absent)
        return held

    async def _reuse_existing(self) -> None:
        async for i, row in self._batch_runs():
            if self._ids[i] is not None:
                continue
            if row.status in self._reuse or row.id in self._keep:
                self._settle(i, row.id, REUSED)
            else:
                self._stale.add(row.id)
        self._report()

    async def _resolve_ambiguous(self) -> None:
        for round_no in range(self._rounds + 1):
            if not self._ambiguous or self._fatal is not None:
                return
            self._phase = "lookup"
            await asyncio.sleep(max(0.0, self._last_ambiguous + self._window - time.monotonic()))
            self._wanted = wanted = set(self._ambiguous)
            chunks, self._ambiguous_chunks = self._ambiguous_chunks, []
            self._ambiguous = []
            try:
                async for i, row in self._batch_runs():
                    if i in wanted and self._ids[i] is None:
                        wanted.discard(i)
                        self._settle(i, row.id, RECOVERED)
            except HatchetError as exc:
                for i in wanted:
                    self._errors[i] += f"; the run may exist (lookup failed: {_describe(exc)})"
                self._failed += len(wanted)
                self._wanted = set()
                return
            self._wanted = set()
            held = self._held_back(chunks, wanted)
            waiting = {i for chunk in held for i in chunk if i in wanted}
            if round_no == self._rounds:
                for i in waiting:
                    self._errors[i] += "; the run may exist (its request created runs that are not listed yet)"
                self._failed += len(wanted)
                return
            self._ambiguous, self._ambiguous_chunks = sorted(waiting), held
            if waiting:
                self._last_ambiguous = time.monotonic()
            if wanted - waiting:
                self._phase = "retry"
                self._report()
                self._unseen -= wanted - waiting
                await self._pool(sorted(wanted - waiting))


async def trigger_many(client: AsyncHatchetClient, items: Sequence[BulkItem], **options: Any) -> BulkResult:
    """Trigger one run per item, each exactly once, and return the ids in item order.

    Failed items do not raise: check :attr:`BulkResult.failed` or call :meth:`BulkResult.raise_for_failures`.

    :param client: the async client.
    :param items: the runs to trigger.
    :param options: the keyword arguments of :class:`BulkTrigger` (``batch_metadata`` and ``since`` required).
    """
    return await BulkTrigger(client, items, **options).run()
