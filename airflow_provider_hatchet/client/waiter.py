"""Waiting on many Hatchet runs at once: one round of status checks, shared by the sensor and the trigger.

A round asks only about the runs not known to be finished. When the runs share a batch key (the ``airflow_ti``
metadata the bulk operator stamps), one paginated list query filtered by that key answers for all of them;
the other runs get one status request each, at most ``max_concurrency`` in flight. Run details (outputs and
Hatchet's error messages) are fetched once, for finished runs only.

Transient failures (429, 5xx, transport errors, after the client's own retries) leave the runs pending for the
next round. A 404 is tolerated for ``not_found_grace`` seconds (a run triggered moments ago may not be readable
yet); a persistent 404 or a 403 raises :class:`RunWaitError`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from airflow_provider_hatchet.client._base import DEFAULT_MAX_CONNECTIONS
from airflow_provider_hatchet.client.aio import AsyncHatchetClient
from airflow_provider_hatchet.client.config import ClientConfig
from airflow_provider_hatchet.client.errors import (
    HatchetAPIError,
    HatchetAuthError,
    HatchetError,
    HatchetNotFoundError,
    HatchetRetryableError,
)
from airflow_provider_hatchet.client.models import RunDetails, RunStatus
from airflow_provider_hatchet.client.retry import DEFAULT_RETRY, RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")

BATCH_KEY_METADATA = "airflow_ti"
DEFAULT_NOT_FOUND_GRACE = 60.0
DEFAULT_MAX_CONCURRENCY = 16
LIST_PAGE_SIZE = 1000
# Runs of one batch may have been created over several tries of the bulk task; the list's ``since`` reaches
# back this far before the first run seen. Runs the list misses are still polled one by one.
BATCH_SINCE_MARGIN = timedelta(days=1)
# Details are fetched for at most this many failed runs; the message names the others without per-task errors.
MAX_ERROR_DETAILS = 20
MAX_MESSAGE_LINES = 20

# Requests in flight through one shared client, across every waiter using it (e.g. all triggers of a
# triggerer). Keeping the queue in front of httpx's pool short matters: httpcore scans all queued requests
# each time a connection frees up, which costs quadratic CPU with a thousand requests waiting in the pool.
_GATES: weakref.WeakKeyDictionary[AsyncHatchetClient, asyncio.Semaphore] = weakref.WeakKeyDictionary()


class Outcome(str, enum.Enum):
    """Where the wait stands after a round; the values are the trigger event statuses."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """Whether the wait is over."""
        return self is not Outcome.PENDING


class RunWaitError(HatchetError):
    """The wait cannot go on: a run stays unknown (persistent 404), access is refused (403), or the request is
    rejected (other 4xx)."""


@dataclass(slots=True)
class WaitState:
    """What is known about the runs between rounds; rebuilt from scratch costs only one more round.

    :param run_ids: the runs, in the order outputs are returned (duplicates allowed).
    :param fail_on_cancelled: a CANCELLED run ends the wait as a failure; otherwise it counts as finished.
    :param batch_key: the ``airflow_ti`` metadata value the runs share, if known.
    :param detect_batch: read the batch key from the first run's details when ``batch_key`` is not given.
    :param started_at: when waiting began (epoch seconds); the 404 grace of runs never seen counts from here.
    :param not_found_grace: seconds a 404 is taken for a run that is not readable yet.
    """

    run_ids: tuple[str, ...]
    fail_on_cancelled: bool = True
    batch_key: str | None = None
    detect_batch: bool = True
    started_at: float = field(default_factory=time.time)
    not_found_grace: float = DEFAULT_NOT_FOUND_GRACE
    statuses: dict[str, RunStatus] = field(default_factory=dict)
    errors: dict[str, dict[str, str]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing_since: dict[str, float] = field(default_factory=dict)
    unlisted: dict[str, int] = field(default_factory=dict)
    batch_since: datetime | None = None
    batch_checked: bool = False
    last_error: str | None = None

    def __post_init__(self) -> None:
        self.run_ids = tuple(self.run_ids)
        if self.batch_key is not None:
            self.batch_checked = True

    def unique_ids(self) -> list[str]:
        """The run ids without duplicates, in order."""
        return list(dict.fromkeys(self.run_ids))

    def pending(self) -> list[str]:
        """The runs not known to be finished."""
        return [i for i in self.unique_ids() if not (i in self.statuses and self.statuses[i].is_terminal)]

    def status_strings(self) -> dict[str, str]:
        """The known statuses as plain strings."""
        return {i: s.value for i, s in self.statuses.items()}


@dataclass(frozen=True)
class Verdict:
    """The result of one round.

    :param outcome: pending, or how the wait ended.
    :param message: a readable summary naming the runs that failed or were cancelled.
    :param statuses: the last known status of each run seen so far.
    :param errors: Hatchet's error messages per failed run, keyed by task name.
    :param outputs: on success, each run's outputs keyed by task name, in ``run_ids`` order (None when not
        fetched).
    """

    outcome: Outcome
    message: str
    statuses: dict[str, str]
    errors: dict[str, dict[str, str]]
    outputs: list[dict[str, Any]] | None = None

    @property
    def finished(self) -> bool:
        """Whether the wait is over."""
        return self.outcome.finished

    def event(self, run_ids: Sequence[str]) -> dict[str, Any]:
        """The JSON-safe trigger event payload.

        :param run_ids: the runs waited on.
        """
        payload: dict[str, Any] = {
            "status": self.outcome.value,
            "run_ids": list(run_ids),
            "message": self.message,
            "statuses": self.statuses,
            "errors": self.errors,
        }
        if self.outcome is Outcome.SUCCESS and self.outputs is not None:
            payload["outputs"] = self.outputs
        return payload


async def _bounded(limit: int, items: Iterable[str], call: Callable[[str], Awaitable[T]]) -> list[tuple[str, T]]:
    semaphore = asyncio.Semaphore(max(1, limit))

    async def one(item: str) -> tuple[str, T]:
        async with semaphore:
            return item, await call(item)

    return list(await asyncio.gather(*(one(i) for i in items)))


def _refused(run_id: str, exc: HatchetAPIError) -> RunWaitError:
    if isinstance(exc, HatchetAuthError):
        return RunWaitError(
            f"Hatchet refused access to run {run_id} (403): the connection's API token is wrong, expired or "
            "revoked, was issued by another server, or the run belongs to another tenant."
        )
    return RunWaitError(f"Hatchet rejected the request for run {run_id}: {exc}")


class _Round:
    """One round of checks on a shared state."""

    def __init__(self, client: AsyncHatchetClient, state: WaitState, *, fetch_outputs: bool,
                 max_concurrency: int) -> None:
        self.client = client
        self.state = state
        self.fetch_outputs = fetch_outputs
        self.max_concurrency = max_concurrency
        self.now = time.time()
        self.transient: list[str] = []
        gate = _GATES.get(client)
        if gate is None:
            gate = _GATES[client] = asyncio.Semaphore(DEFAULT_MAX_CONNECTIONS)
        self.gate = gate

    async def run(self) -> Verdict:
        state = self.state
        pending = state.pending()
        if pending:
            await self._poll(pending)
        state.last_error = "; ".join(self.transient[:3]) or None
        failed, cancelled = self._failures()
        if failed or cancelled:
            await self._fetch_errors(failed)
            return self._failure_verdict(failed, cancelled)
        if state.pending():
            return self._verdict(Outcome.PENDING, self._pending_message())
        if self.fetch_outputs:
            await self._fetch_outputs()
            if self.transient:
                state.last_error = "; ".join(self.transient[:3])
                return self._verdict(Outcome.PENDING, "all runs finished; reading their outputs again next round")
            outputs = [state.outputs.get(i, {}) for i in state.run_ids]
            return self._verdict(Outcome.SUCCESS, self._success_message(), outputs)
        return self._verdict(Outcome.SUCCESS, self._success_message())

    # Status

    async def _poll(self, pending: list[str]) -> None:
        answered: set[str] = set()
        listed = False
        if len(pending) > 1 or self.state.batch_key is not None:
            if not self.state.batch_checked and self.state.detect_batch:
                await self._probe(pending[0])
                if not self.state.batch_checked:
                    # The first run is not readable yet (404) or the server hiccupped: its siblings, triggered
                    # together, most likely are not either. Asking again next round costs one request, not one
                    # per run.
                    return
                answered.add(pending[0])
            unanswered = [i for i in pending if i not in answered]
            if self.state.batch_key is not None and unanswered:
                batch = await self._list_batch(unanswered)
                if batch is None:
                    return
                answered |= batch
                listed = True
        rest = [i for i in pending if i not in answered]
        if listed and self.state.batch_key is not None:
            # A run never seen and missing from the batch list is most likely not visible yet: it is polled on
            # its own only if the next round's list still lacks it.
            unlisted = self.state.unlisted
            for run_id in rest:
                if run_id not in self.state.statuses:
                    unlisted[run_id] = unlisted.get(run_id, 0) + 1
            rest = [i for i in rest if i in self.state.statuses or unlisted[i] > 1]
        for run_id, result in await _bounded(self.max_concurrency, rest, self._status):
            if isinstance(result, RunStatus):
                self._record(run_id, result)

    async def _ask(self, run_id: str, request: Callable[[str], Awaitable[T]]) -> T | None:
        """One request about a run; a 404 or a transient failure is noted and answers None."""
        try:
            async with self.gate:
                return await request(run_id)
        except HatchetNotFoundError:
            self._missing(run_id)
        except HatchetRetryableError as exc:
            self.transient.append(str(exc))
        except HatchetAPIError as exc:
            raise _refused(run_id, exc) from exc
        return None

    async def _status(self, run_id: str) -> RunStatus | None:
        return await self._ask(run_id, self.client.get_run_status)

    async def _details(self, run_id: str) -> RunDetails | None:
        details = await self._ask(run_id, self.client.get_run)
        if details is not None:
            self._record(run_id, details.status)
            if details.status.is_terminal:
                self._keep(details)
        return details

    async def _probe(self, run_id: str) -> None:
        details = await self._details(run_id)
        if details is None:
            return
        state = self.state
        state.batch_checked = True
        key = details.run.additional_metadata.get(BATCH_KEY_METADATA)
        if state.batch_key is None and isinstance(key, str) and key:
            state.batch_key = key
            created = details.run.created_at or datetime.fromtimestamp(state.started_at, timezone.utc)
            state.batch_since = created - BATCH_SINCE_MARGIN
            log.info("Runs carry the batch key %r: one list query per round answers for all of them.", key)

    async def _list_batch(self, pending: list[str]) -> set[str] | None:
        """Read the batch's statuses from the list; None on a transient failure (the round ends pending)."""
        state = self.state
        assert state.batch_key is not None
        if state.batch_since is None:
            state.batch_since = datetime.fromtimestamp(state.started_at, timezone.utc) - BATCH_SINCE_MARGIN
        wanted = set(pending)
        found: set[str] = set()
        offset = pages = rows = 0
        while True:
            try:
                async with self.gate:
                    page = await self.client.list_runs(
                        since=state.batch_since, additional_metadata={BATCH_KEY_METADATA: state.batch_key},
                        offset=offset, limit=LIST_PAGE_SIZE, include_payloads=False,
                    )
            except HatchetRetryableError as exc:
                self.transient.append(str(exc))
                return None
            except HatchetAPIError as exc:
                raise RunWaitError(f"Hatchet rejected the run list for batch {state.batch_key!r}: {exc}") from exc
            pages += 1
            rows += len(page.rows)
            for row in page.rows:
                if row.id in wanted and row.id not in found:
                    found.add(row.id)
                    self._record(row.id, row.status)
            offset += len(page.rows)
            # Hatchet answers next_page = current_page + 1 even on the last page; num_pages counts the matches.
            more = bool(page.rows) and (
                len(page.rows) >= LIST_PAGE_SIZE
                or (page.pagination.num_pages or 0) > (page.pagination.current_page or 0)
            )
            if not more or len(found) == len(wanted) or pages >= len(wanted) - len(found):
                break
        if rows and not found:
            log.info("The batch %r holds none of the runs; polling them one by one.", state.batch_key)
            state.batch_key = None
        return found

    def _record(self, run_id: str, status: RunStatus) -> None:
        self.state.statuses[run_id] = status
        self.state.missing_since.pop(run_id, None)

    def _missing(self, run_id: str) -> None:
        state = self.state
        first = state.missing_since.setdefault(run_id, self.now)
        reference = first if run_id in state.statuses else min(first, state.started_at)
        if self.now - reference >= state.not_found_grace:
            raise RunWaitError(
                f"Hatchet run {run_id} was not found (404) for {self.now - reference:.0f} s. Check the run id and "
                f"that the connection's tenant ({self.client.config.tenant_id}) owns the run."
            )
        self.transient.append(f"run {run_id} not found yet (404)")

    # Details

    def _keep(self, details: RunDetails) -> None:
        state = self.state
        if details.status is RunStatus.FAILED:
            state.errors[details.id] = details.error_messages() or {details.id: "failed"}
        elif details.status is RunStatus.COMPLETED or not state.fail_on_cancelled:
            state.outputs[details.id] = details.task_outputs()

    def _failures(self) -> tuple[list[str], list[str]]:
        statuses = self.state.statuses
        ids = self.state.unique_ids()
        failed = [i for i in ids if statuses.get(i) is RunStatus.FAILED]
        cancelled = [i for i in ids if statuses.get(i) is RunStatus.CANCELLED] if self.state.fail_on_cancelled else []
        return failed, cancelled

    async def _fetch_errors(self, failed: list[str]) -> None:
        todo = [i for i in failed if i not in self.state.errors][:MAX_ERROR_DETAILS]
        await _bounded(self.max_concurrency, todo, self._details)

    async def _fetch_outputs(self) -> None:
        todo = [i for i in self.state.unique_ids() if i not in self.state.outputs]
        await _bounded(self.max_concurrency, todo, self._details)

    # Messages

    def _verdict(self, outcome: Outcome, message: str, outputs: list[dict[str, Any]] | None = None) -> Verdict:
        errors = {i: dict(e) for i, e in self.state.errors.items()}
        return Verdict(outcome, message, self.state.status_strings(), errors, outputs)

    def _describe(self, run_id: str) -> str:
        status = self.state.statuses[run_id].value
        line = f"- run {run_id} {status} ({self.client.run_url(run_id)})"
        errors = self.state.errors.get(run_id)
        if errors:
            line += ": " + "; ".join(f"{task}: {message}" for task, message in errors.items())
        return line

    def _failure_verdict(self, failed: list[str], cancelled: list[str]) -> Verdict:
        total = len(self.state.unique_ids())
        bad = failed + cancelled
        parts = []
        if failed:
            parts.append(f"{len(failed)} failed")
        if cancelled:
            parts.append(f"{len(cancelled)} cancelled")
        head = f"{' and '.join(parts)} of {total} Hatchet run{'s' if total != 1 else ''}"
        lines = [self._describe(i) for i in bad[:MAX_MESSAGE_LINES]]
        if len(bad) > MAX_MESSAGE_LINES:
            lines.append(f"- ... and {len(bad) - MAX_MESSAGE_LINES} more")
        unfinished = len(self.state.pending())
        if unfinished:
            lines.append(f"{unfinished} other run{'s' if unfinished != 1 else ''} not finished (not waited for)")
        outcome = Outcome.FAILED if failed else Outcome.CANCELLED
        return self._verdict(outcome, head + ":\n" + "\n".join(lines))

    def _pending_message(self) -> str:
        pending = self.state.pending()
        total = len(self.state.unique_ids())
        message = f"{total - len(pending)} of {total} Hatchet runs finished"
        if self.state.last_error:
            message += f" (transient: {self.state.last_error})"
        return message

    def _success_message(self) -> str:
        ids = self.state.unique_ids()
        cancelled = [i for i in ids if self.state.statuses.get(i) is RunStatus.CANCELLED]
        if len(ids) == 1 and not cancelled:
            return f"Hatchet run {ids[0]} completed."
        message = f"All {len(ids)} Hatchet runs finished: {len(ids) - len(cancelled)} completed"
        return message + (f", {len(cancelled)} cancelled (tolerated)." if cancelled else ".")


async def check_round(
    client: AsyncHatchetClient,
    state: WaitState,
    *,
    fetch_outputs: bool = True,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
) -> Verdict:
    """Run one round of checks on the runs not yet finished and say where the wait stands.

    :param client: the async client (not closed here).
    :param state: what earlier rounds learnt; updated in place.
    :param fetch_outputs: fetch each run's outputs once all runs have finished.
    :param max_concurrency: the most requests in flight at once.
    :raises RunWaitError: a persistent 404, a 403, or another rejected request.
    """
    return await _Round(client, state, fetch_outputs=fetch_outputs, max_concurrency=max_concurrency).run()


async def cancel_unfinished(client: AsyncHatchetClient, state: WaitState) -> list[str]:
    """Ask Hatchet to cancel the runs not known to be finished; return the ids sent.

    :param client: the async client.
    :param state: the wait state.
    """
    ids = state.pending()
    if ids:
        await client.cancel_runs(ids)
    return ids


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, also when this thread already runs an event loop.

    :param factory: makes the awaitable (called in the thread that runs it).
    """

    async def main() -> T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def check_round_sync(
    config: ClientConfig,
    state: WaitState,
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
    fetch_outputs: bool = True,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
) -> Verdict:
    """:func:`check_round` for synchronous callers (a sensor's ``poke``), on a client opened for the round.

    :param config: the client settings.
    :param state: the wait state; updated in place.
    :param retry: how each request is retried.
    :param fetch_outputs: fetch each run's outputs once all runs have finished.
    :param max_concurrency: the most requests in flight at once.
    """

    async def once() -> Verdict:
        async with AsyncHatchetClient(config, retry=retry, max_connections=max(1, max_concurrency)) as client:
            return await check_round(client, state, fetch_outputs=fetch_outputs, max_concurrency=max_concurrency)

    return run_sync(once)
