"""Waiting on many Hatchet runs at once: one round of checks, shared by the sensor, the trigger and the operators.

A round asks only about the runs not known to be finished, and costs about the same whatever their number:

- Runs that share a batch key (the value of the ``batch_field`` metadata, e.g. the one the bulk operator stamps,
  given or read from the first run) are answered by one paginated list query filtered by that key.
- Other runs ("loose" runs: ids gathered from several upstream tasks, a mapped operator's instances) are answered
  by one paginated list of the runs that *finished* in their creation window: statuses COMPLETED, FAILED and
  CANCELLED, ``since`` the oldest unfinished run's creation, ``until`` the newest's. Their creation times are
  learnt once, from one list of all statuses read back from now until it has seen them.
- Each round picks, per group, the cheaper of that list and one status request per run, from what the group's
  list cost the last time (a busy tenant may have many unrelated runs in the window). A single run is always
  asked about on its own.

Hatchet lists runs newest first (``inserted_at DESC``); runs that finish or are created while a list is paged only
push later rows down a page, so a scan may see a run twice but never skips one that matched when the scan began
(measured on Hatchet v0.105.0, docs/hatchet-behaviour.md), and a run that finishes during a scan is seen by the
next round's. A scan never reads more pages than the runs it still looks for: it stops there and asks those runs
one by one, and the next round knows what the whole list costs. Reads lag writes: a run triggered moments ago
may be missing from the list and answer 404. A run never seen and missing from the batch list is asked about on
its own only if the next list lacks it too; one the creation scan misses twice is read on its own (its details
give its creation time).

Outputs and Hatchet's error messages are read once per run, and only when wanted (``fetch_outputs``): the lists are
then read with their payloads, so a finished row brings its tasks' outputs and errors along (a DAG run's tasks are
its ``children``; a single-task run's row is its task, named from the step names any details read has taught).
Runs the lists did not answer that way are read on their own once all have finished, and so are the failed runs'
errors when outputs are not wanted.

Transient failures (429, 5xx, transport errors, after the client's own retries) leave the runs pending for the
next round. A 404 is tolerated for ``not_found_grace`` seconds (a run triggered moments ago may not be readable
yet); a persistent 404 or a 403 raises :class:`RunWaitError`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from airflow_provider_hatchet.client import endpoints, paging
from airflow_provider_hatchet.client.aio import AsyncHatchetClient
from airflow_provider_hatchet.client.errors import (
    HatchetAPIError,
    HatchetAuthError,
    HatchetError,
    HatchetNotFoundError,
    HatchetRetryableError,
)
from airflow_provider_hatchet.client.escaping import safe_text
from airflow_provider_hatchet.client.models import TERMINAL_STATUSES, RunDetails, RunStatus, RunSummary
from airflow_provider_hatchet.client.wait_event import WaitEvent, WaitStatus

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_NOT_FOUND_GRACE = 60.0
DEFAULT_MAX_CONCURRENCY = 16
# Runs of one batch may have been created over several tries of the bulk task; the list's ``since`` reaches
# back this far before the first run seen. Runs the list misses are still polled one by one. The scan that
# learns loose runs' creation times reaches back as far before the wait began.
BATCH_SINCE_MARGIN = timedelta(days=1)
# The finished-runs window reaches this far beyond the oldest and newest unfinished runs' creation times.
WINDOW_MARGIN = timedelta(seconds=1)
# Up to this many runs missing from two batch lists in a row are taken for late (read lag) and polled one by
# one; more are taken for runs outside the batch and answered by the loose runs' list.
FEW_LATE_RUNS = 16
# The most characters of one Hatchet error message in a failure's summary (the event's ``errors`` keep them whole).
ERROR_CHARS = 2_000
# Details are fetched for at most this many failed runs; the message names the others without per-task errors.
MAX_ERROR_DETAILS = 20
MAX_MESSAGE_LINES = 20
# Seconds a FAILED read that looks like a replay under way (a failed task older than another task) is taken for
# one; a run that still reads so after this has failed for good (e.g. a task retried by its own policy before a
# later task failed without retries).
REPLAY_GRACE = 15.0



class RunWaitError(HatchetError):
    """The wait cannot go on: a run stays unknown (persistent 404), access is refused (403), or the request is
    rejected (other 4xx)."""


@dataclass(slots=True)
class WaitState:
    """What is known about the runs between rounds; rebuilt from scratch costs only one more round.

    :param run_ids: the runs, in the order outputs are returned (duplicates allowed).
    :param fail_on_cancelled: a CANCELLED run ends the wait as a failure; otherwise it counts as finished.
    :param batch_key: the value of the ``batch_field`` metadata the runs share, if known.
    :param detect_batch: read the batch key from the first run's details when ``batch_key`` is not given.
    :param batch_field: the metadata key that holds the batch key; None turns batch lists off.
    :param started_at: when waiting began (epoch seconds); the 404 grace of runs never seen counts from here.
    :param not_found_grace: seconds a 404 is taken for a run that is not readable yet.

    The other fields are what the rounds learnt: each run's last known status, Hatchet's error messages, outputs,
    creation times (``created``, as the list's time filters see them), task names by step id (``task_names``, from
    details reads: list rows of single-task runs carry the step but not the name), the finished rows still waiting
    for such a name (``unnamed``), the runs the batch list has shown
    (``in_batch``), how often a run was missing from the batch list (``unlisted``) or from the creation scan
    (``missed``), and how many pages the batch list and the loose runs' list took last time.
    """

    run_ids: tuple[str, ...]
    fail_on_cancelled: bool = True
    batch_key: str | None = None
    detect_batch: bool = True
    started_at: float = field(default_factory=time.time)
    not_found_grace: float = DEFAULT_NOT_FOUND_GRACE
    batch_field: str | None = None
    statuses: dict[str, RunStatus] = field(default_factory=dict)
    errors: dict[str, dict[str, str]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing_since: dict[str, float] = field(default_factory=dict)
    unlisted: dict[str, int] = field(default_factory=dict)
    missed: dict[str, int] = field(default_factory=dict)
    created: dict[str, datetime] = field(default_factory=dict)
    task_names: dict[str, str] = field(default_factory=dict)
    unnamed: dict[str, RunSummary] = field(default_factory=dict)
    # Immutable, and replaced whole: shared while empty (a triggerer holds one state per deferred wait).
    in_batch: frozenset[str] = frozenset()
    batch_pages: int = 1
    window_pages: int = 1
    batch_since: datetime | None = None
    batch_checked: bool = False
    last_error: str | None = None
    replaying_since: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.run_ids = tuple(self.run_ids)
        if self.batch_field is None:
            self.batch_key, self.detect_batch = None, False
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


async def _bounded(limit: int, items: Iterable[str], call: Callable[[str], Awaitable[T]]) -> list[tuple[str, T]]:
    items = list(items)
    if len(items) == 1:  # a wait on one run: no task for it
        return [(items[0], await call(items[0]))]
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


@dataclass(frozen=True)
class _Scan:
    """What one paged run list gave: the wanted runs it showed, every run waited on that it showed, the pages
    read, the pages the server counts, the rows read that carry the filter's metadata, and whether it read to the
    end (or saw every wanted run)."""

    found: set[str]
    ours: set[str]
    pages: int
    total_pages: int
    rows: int
    complete: bool


class _Round:
    """One round of checks on a shared state."""

    def __init__(self, client: AsyncHatchetClient, state: WaitState, *, fetch_outputs: bool,
                 max_concurrency: int, by_one: int = 0) -> None:
        self.client = client
        self.state = state
        self.fetch_outputs = fetch_outputs
        self.max_concurrency = max_concurrency
        self.by_one = by_one
        self.now = time.time()
        self.ids = set(state.run_ids)
        self.transient: list[str] = []

    async def run(self) -> WaitEvent:
        state = self.state
        pending = state.pending()
        if pending:
            await self._poll(pending)
        state.last_error = "; ".join(self.transient[:3]) or None
        failed, cancelled = self._failures()
        if failed or cancelled:
            await self._fetch_errors(failed)
            # A failed run's details may show a replay under way: it is pending again.
            failed, cancelled = self._failures()
        if failed or cancelled:
            return self._failure_event(failed, cancelled)
        if state.pending():
            return self._event(WaitStatus.PENDING, self._pending_message())
        if self.fetch_outputs:
            await self._fetch_outputs()
            if self.transient:
                state.last_error = "; ".join(self.transient[:3])
                return self._event(WaitStatus.PENDING, "all runs finished; reading their outputs again next round")
            outputs = [state.outputs.get(i, {}) for i in state.run_ids]
            return self._event(WaitStatus.SUCCESS, self._success_message(), outputs)
        return self._event(WaitStatus.SUCCESS, self._success_message())

    # Status

    async def _poll(self, pending: list[str]) -> None:
        state = self.state
        if (len(pending) > 1 or state.batch_key is not None) and not state.batch_checked and state.detect_batch:
            await self._probe(pending[0])
            if not state.batch_checked:
                # The first run is not readable yet (404) or the server hiccupped: its siblings, triggered
                # together, most likely are not either. Asking again next round costs one request, not one
                # per run.
                return
            pending = pending[1:]
        loose: list[str] | None = pending
        if state.batch_key is not None and pending:
            loose = await self._poll_batch(pending)
        if loose:
            await self._poll_loose(loose)

    async def _poll_batch(self, batch: list[str]) -> list[str] | None:
        """Answer the batch's runs with the batch list; return the runs left to the loose runs' checks, or None
        on a transient failure (the round ends pending)."""
        state = self.state
        assert state.batch_key is not None and state.batch_field is not None
        if state.batch_pages > len(batch) or (len(batch) <= self.by_one and state.in_batch):
            await self._statuses(batch)
            return []
        if state.batch_since is None:
            state.batch_since = self._moment(state.started_at) - BATCH_SINCE_MARGIN
        scan = await self._scan(f"batch {state.batch_key!r}", batch, since=state.batch_since,
                                metadata={state.batch_field: state.batch_key})
        if scan is None:
            return None
        state.batch_pages = scan.total_pages
        state.in_batch |= scan.ours
        if not scan.complete:
            await self._statuses([i for i in batch if i not in scan.found])
            return []
        if scan.rows and not scan.ours:
            log.info("The batch %r holds none of the runs; checking them as unrelated runs.", state.batch_key)
            state.batch_key = None
            return batch
        lacking = [i for i in batch if i not in scan.found]
        # A run seen before and missing from the list is not in the batch (status and list read the same row):
        # the loose runs' checks answer for it. One never seen is most likely not visible yet: it counts as late
        # only if the next round's list still lacks it. A few late runs are polled one by one; many are runs
        # outside the batch, for the loose runs' checks.
        outside = [i for i in lacking if i in state.statuses]
        late = _missed_twice(state.unlisted, [i for i in lacking if i not in state.statuses])
        if late and len(state.in_batch) <= 1:
            log.info("The batch %r holds only one of the runs; checking them as unrelated runs.", state.batch_key)
            state.batch_key = None
        elif len(late) <= FEW_LATE_RUNS:
            await self._statuses(late)
            return outside
        return outside + late

    async def _poll_loose(self, loose: list[str]) -> None:
        """Answer runs outside any batch: by the list of the runs finished in their creation window, or one by
        one, whichever cost less last time; a creation scan first learns when they were created."""
        state = self.state
        if len(loose) == 1:
            await self._statuses(loose)
            return
        unknown = [i for i in loose if i not in state.created]
        if len(unknown) > 1:
            await self._discover(loose, unknown)
            return
        await self._each(unknown, self._details)
        known = [i for i in loose if i in state.created and i not in unknown]
        if not known:
            return
        if len(known) > state.window_pages:
            scan = await self._scan(
                "finished runs", known, since=min(state.created[i] for i in known) - WINDOW_MARGIN,
                until=max(state.created[i] for i in known) + WINDOW_MARGIN, statuses=TERMINAL_STATUSES,
            )
            if scan is not None:
                state.window_pages = scan.total_pages
                if not scan.complete:
                    await self._statuses([i for i in known if i not in scan.found])
        else:
            await self._statuses(known)

    async def _discover(self, loose: list[str], unknown: list[str]) -> None:
        """List runs of all statuses back from now until the loose runs are seen: their creation times and their
        statuses. Runs it misses twice are read on their own."""
        state = self.state
        floor = self._moment(state.started_at) - BATCH_SINCE_MARGIN
        known = [state.created[i] for i in loose if i in state.created]
        if known:
            floor = min(floor, min(known) - WINDOW_MARGIN)
        scan = await self._scan("runs by creation", loose, since=floor)
        if scan is None:
            return
        stubborn = _missed_twice(state.missed, [i for i in unknown if i not in scan.found])
        await self._each(stubborn, self._details)
        if not scan.complete:
            await self._statuses([i for i in loose if i not in scan.found and i not in stubborn])

    async def _scan(self, what: str, wanted: list[str], *, since: datetime, until: datetime | None = None,
                    statuses: Sequence[RunStatus] = (), metadata: dict[str, str] | None = None) -> _Scan | None:
        """Page through a run list, recording what it says of the runs waited on; None on a transient failure.

        It stops when it has seen every wanted run, at the last page, or once it has read as many pages as wanted
        runs remain unseen: the caller then asks those one by one, which would have cost no more than the rest of
        the list, and the next round's choice knows what the whole list costs.
        """
        targets = set(wanted)
        found: set[str] = set()
        ours: set[str] = set()
        offset = pages = rows = 0
        total = 1
        while True:
            try:
                page = await self.client.send(endpoints.list_runs(
                    since=since, until=until, statuses=statuses, additional_metadata=metadata,
                    offset=offset, limit=paging.RUN_PAGE_SIZE, include_payloads=self.fetch_outputs,
                ))
            except HatchetRetryableError as exc:
                self.transient.append(str(exc))
                return None
            except HatchetAPIError as exc:
                raise RunWaitError(f"Hatchet rejected the run list ({what}): {exc}") from exc
            pages += 1
            if pages == 1:
                total = page.pagination.num_pages or 1
            for row in page.rows:
                if metadata and not row.has_metadata(metadata):
                    continue
                rows += 1
                if row.id in self.ids:
                    self._seen(row)
                    ours.add(row.id)
                    if row.id in targets:
                        found.add(row.id)
            offset += len(page.rows)
            more = paging.has_more(len(page.rows), paging.RUN_PAGE_SIZE, page.pagination)
            complete = not more or len(found) == len(targets)
            if complete or pages >= len(targets) - len(found):
                break
        return _Scan(found, ours, pages, max(total, pages), rows, complete)

    def _seen(self, row: RunSummary) -> None:
        """Note what a list row says of a run waited on: its creation time, and its status unless it finished."""
        state = self.state
        if row.inserted_at is not None:
            state.created.setdefault(row.id, row.inserted_at)
        known = state.statuses.get(row.id)
        if known is None or not known.is_terminal:
            self._record(row.id, row.status)
        if self.fetch_outputs and row.status.is_terminal and row.id not in state.outputs and row.id not in state.errors:
            details = row.details(state.task_names)
            if details is not None:
                self._keep(details)
            elif not row.children and row.step_id:
                state.unnamed[row.id] = row

    async def _statuses(self, run_ids: list[str]) -> None:
        for run_id, result in await _bounded(self.max_concurrency, run_ids, self._status):
            if isinstance(result, RunStatus):
                self._record(run_id, result)

    async def _each(self, run_ids: list[str], call: Callable[[str], Awaitable[T]]) -> None:
        if run_ids:
            await _bounded(self.max_concurrency, run_ids, call)

    @staticmethod
    def _moment(epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch, timezone.utc)

    async def _ask(self, run_id: str, request: Callable[[str], Awaitable[T]]) -> T | None:
        """One request about a run; a 404 or a transient failure is noted and answers None."""
        try:
            return await request(run_id)
        except HatchetNotFoundError:
            self._missing(run_id)
        except HatchetRetryableError as exc:
            self.transient.append(str(exc))
        except HatchetAPIError as exc:
            raise _refused(run_id, exc) from exc
        return None

    async def _status(self, run_id: str) -> RunStatus | None:
        return await self._ask(run_id, lambda i: self.client.send(endpoints.run_status(i)))

    async def _details(self, run_id: str) -> RunDetails | None:
        details = await self._ask(run_id, lambda i: self.client.send(endpoints.run_details(i)))
        if details is not None:
            self._record(run_id, details.status)
            if details.run.inserted_at is not None:
                self.state.created.setdefault(run_id, details.run.inserted_at)
            self.state.task_names.update({t.step_id: t.name for t in details.tasks if t.step_id and t.named})
            if details.status.is_terminal:
                self._keep(details)
        return details

    async def _probe(self, run_id: str) -> None:
        details = await self._details(run_id)
        if details is None:
            return
        state = self.state
        state.batch_checked = True
        key = details.run.additional_metadata.get(state.batch_field) if state.batch_field else None
        if state.batch_key is None and isinstance(key, str) and key:
            state.batch_key = key
            created = details.run.inserted_at or details.run.created_at or self._moment(state.started_at)
            state.batch_since = created - BATCH_SINCE_MARGIN
            log.info("Runs carry the batch key %r: one list query per round answers for all of them.", key)

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
        state.unnamed.pop(details.id, None)
        if details.replay_in_progress():
            first = state.replaying_since.setdefault(details.id, self.now)
            if self.now - first < REPLAY_GRACE:
                # A replayed DAG run reads FAILED between two of its tasks (docs/hatchet-behaviour.md).
                state.statuses[details.id] = RunStatus.RUNNING
                return
        else:
            state.replaying_since.pop(details.id, None)
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
        await self._name_rows()
        todo = [i for i in failed if i not in self.state.errors][:MAX_ERROR_DETAILS]
        await _bounded(self.max_concurrency, todo, self._details)

    async def _fetch_outputs(self) -> None:
        await self._name_rows()
        todo = [i for i in self.state.unique_ids() if i not in self.state.outputs]
        await _bounded(self.max_concurrency, todo, self._details)

    async def _name_rows(self) -> None:
        """Read the details of one run per step the finished rows left unnamed; the names they teach give the
        other rows of those steps their outputs and errors."""
        state = self.state
        first: dict[str, str] = {}
        for row in state.unnamed.values():
            if row.step_id and row.step_id not in state.task_names:
                first.setdefault(row.step_id, row.id)
        await _bounded(self.max_concurrency, list(first.values()), self._details)
        for row in list(state.unnamed.values()):
            details = row.details(state.task_names)
            if details is not None:
                self._keep(details)

    # Messages

    def _event(self, status: WaitStatus, message: str, outputs: list[dict[str, Any]] | None = None) -> WaitEvent:
        errors = {i: dict(e) for i, e in self.state.errors.items()}
        return WaitEvent(status, list(self.state.run_ids), message, self.state.status_strings(), errors, outputs)

    def _describe(self, run_id: str) -> str:
        status = self.state.statuses[run_id].value
        line = f"- run {run_id} {status} ({self.client.run_url(run_id)})"
        errors = self.state.errors.get(run_id)
        if errors:
            # Hatchet's text, which a workflow writes: it must not end the summary's line or forge one.
            line += ": " + "; ".join(f"{safe_text(task, 200)}: {safe_text(message, ERROR_CHARS)}"
                                     for task, message in errors.items())
        return line

    def _failure_event(self, failed: list[str], cancelled: list[str]) -> WaitEvent:
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
        status = WaitStatus.FAILED if failed else WaitStatus.CANCELLED
        return self._event(status, head + ":\n" + "\n".join(lines))

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
    by_one: int = 0,
) -> WaitEvent:
    """Run one round of checks on the runs not yet finished and say where the wait stands.

    :param client: the async client (not closed here).
    :param state: what earlier rounds learnt; updated in place.
    :param fetch_outputs: fetch each run's outputs once all runs have finished.
    :param max_concurrency: the most requests in flight at once.
    :param by_one: once the batch list has shown the runs, ask up to this many unfinished ones one by one rather
        than list the batch again (a page of up to 1,000 runs with their outputs costs far more than a few status
        reads when the list is known to hold only a few runs still unfinished).
    :raises RunWaitError: a persistent 404, a 403, or another rejected request.
    """
    return await _Round(client, state, fetch_outputs=fetch_outputs, max_concurrency=max_concurrency,
                        by_one=by_one).run()


async def cancel_unfinished(client: AsyncHatchetClient, state: WaitState) -> list[str]:
    """Ask Hatchet to cancel the runs not known to be finished; return the ids sent.

    :param client: the async client.
    :param state: the wait state.
    """
    ids = state.pending()
    if ids:
        await client.send(endpoints.cancel(ids))
    return ids


def _missed_twice(misses: dict[str, int], run_ids: list[str]) -> list[str]:
    """Count one more miss for each run, and return those now missed in two rounds or more.

    :param misses: the misses counted so far, by run id; updated.
    :param run_ids: the runs missed this round.
    """
    for run_id in run_ids:
        misses[run_id] = misses.get(run_id, 0) + 1
    return [run_id for run_id in run_ids if misses[run_id] > 1]
