"""A whole wait on Hatchet runs: rounds of :func:`~airflow_provider_hatchet.client.waiter.check_round` every poll
interval until the runs finish, one fails, or the deadline passes. The trigger runs it in the triggerer, and a task
that waits in the worker runs the same one through :class:`~airflow_provider_hatchet.client.bridge.Bridge`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, Protocol

import anyio
from pydantic import ConfigDict, ValidationError
from pydantic.dataclasses import dataclass

from airflow_provider_hatchet.client.aio import AsyncHatchetClient
from airflow_provider_hatchet.client.batch_runs import find_batch_runs, ids_digest, pack_ids, unpack_ids
from airflow_provider_hatchet.client.errors import HatchetError, HatchetRetryableError
from airflow_provider_hatchet.client.wait_event import WaitEvent, WaitStatus
from airflow_provider_hatchet.client.waiter import (
    BATCH_SINCE_MARGIN,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_NOT_FOUND_GRACE,
    RunWaitError,
    WaitState,
    cancel_unfinished,
    check_round,
)
from airflow_provider_hatchet.client.workers import DEFAULT_QUEUED_GRACE, QueuedWatch, WorkerCheck

if TYPE_CHECKING:
    from airflow_provider_hatchet.client.grpc.run_events import Watch

Listen = Literal["auto", "off"]
LISTEN_CHOICES: tuple[Listen, ...] = ("auto", "off")

# More run ids than this are stored packed (up to PACKED_RUN_IDS), or a batch as its key, size and digest.
INLINE_RUN_IDS = 100
# The most run ids stored packed, 22 KB (a trigger's arguments are one database column: 64 KiB on MySQL, encrypted):
# a wait that has its ids hears its runs on the stream from its start, with no list to read them back.
PACKED_RUN_IDS = 1_000
# How long cancelling the runs may take once the wait itself is being cancelled past the deadline.
CANCEL_BUDGET = 30.0
# While the run-event stream is connected, rounds only reconcile: at most one every this many seconds (or every poll
# interval, if longer), besides those the stream wakes.
RECONCILE_INTERVAL = 60.0
# After the stream told of runs the round still found unfinished (REST reads lag), the next round comes after this
# many seconds, doubled each time up to the interval.
CONFIRM_FIRST = 0.1
# A batch stored as its key is read back when the wait starts, again after this many seconds while the run list does
# not show it all yet (read lag), doubling up to the most.
FIND_FIRST = 0.5
FIND_MAX = 8.0
# While the stream is used, at most this many unfinished runs of a batch the list has shown are read one by one rather
# than listing the batch again (up to 1,000 runs with their outputs, about 0.5 s on Hatchet v0.105.0, against about
# 0.1 s for 64 status reads 16 at a time).
CONFIRM_BY_ONE = 64
# Once only this many pending runs are still unheard, one round comes at once, so that the list of a big batch is
# read while its last runs finish, and the round after their events reads only those. On Hatchet v0.105.0, with a
# 1,000-run batch whose list took 0.5 to 0.75 s: 0.65 to 0.76 s from the last run's end to the wait's at 16, 0.44 to
# 0.64 s at 32, and the round after read 6 to 11 runs.
EARLY_UNHEARD = 32


def check_listen(listen: object) -> Listen:
    """``listen`` if it is ``auto`` or ``off``.

    :param listen: ``auto`` (hear runs finish on Hatchet's gRPC run-event stream when the server offers it) or
        ``off`` (poll only).
    :raises HatchetValidationError: naming ``listen`` and the choices.
    """
    from airflow_provider_hatchet.client.validation import check_choice

    return check_choice(listen, LISTEN_CHOICES, "listen")  # type: ignore[return-value]


class Log(Protocol):
    """Where a wait's progress goes: a task's or trigger's logger."""

    def info(self, msg: str, /, *args: Any) -> Any:
        """Log progress."""

    def warning(self, msg: str, /, *args: Any) -> Any:
        """Log a problem the wait goes on after."""

    def exception(self, msg: str, /, *args: Any) -> Any:
        """Log the failure that ended the wait."""


@dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class WaitResume:
    """What the task hands the wait it starts, so that the wait goes on where the task left it; JSON-safe.

    :ivar started_at: when waiting began (epoch seconds); the 404 grace of runs never seen counts from it. None
        is now.
    :ivar first_poll_at: wall-clock epoch seconds before which the first round does not start (the task's own
        check was one round already); None starts at once.
    :ivar detect_batch: read the batch key from the first run when none is given (False when the task has
        already looked).
    :ivar not_found_grace: seconds a 404 is taken for a run not readable yet.
    :ivar max_concurrency: the most requests in flight at once.
    :ivar run_count: with the batch key and ``run_ids_digest`` and no run ids: the batch's size; its runs are read
        back from the run list.
    :ivar run_ids_digest: :func:`~airflow_provider_hatchet.client.batch_runs.ids_digest` of the batch's ids.
    :ivar runs_since: epoch seconds before which no run of the batch was created (default: a day before
        ``started_at``).
    :ivar indexed_batch: the runs carry their index in the batch, so a big batch may be stored as its key, size
        and digest; False keeps the ids (runs that events triggered carry the batch key but no index).
    :ivar check_workers: what a run QUEUED past ``queued_grace`` does while a workflow of ``workflows`` has no
        live worker: ``warn`` (once per workflow), ``fail`` (the wait ends ``no_worker``) or ``off``.
    :ivar workflows: the full names of the runs' workflows, for ``check_workers``.
    :ivar queued_grace: seconds of Hatchet's time a run may stay QUEUED before the worker check.
    :ivar packed_run_ids: with no run ids: the runs' ids, packed (base64 of their 16-byte UUIDs, in order), as a
        wait on more than ``INLINE_RUN_IDS`` and at most ``PACKED_RUN_IDS`` runs writes them.
    :ivar listen: ``auto`` hears the runs finish on Hatchet's gRPC run-event stream (shared by every wait in the
        event loop) when the connection has a gRPC address and the server serves the stream: a round then follows
        each time the stream tells that every pending run finished, one may have failed, or the stream reconnected,
        and otherwise one every ``max(poll_interval, 60)`` seconds; ``off``, or no stream, polls every
        ``poll_interval`` seconds.
    """

    started_at: float | None = None
    first_poll_at: float | None = None
    detect_batch: bool = True
    not_found_grace: float = DEFAULT_NOT_FOUND_GRACE
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    run_count: int | None = None
    run_ids_digest: str | None = None
    runs_since: float | None = None
    indexed_batch: bool = True
    check_workers: WorkerCheck = "off"
    workflows: tuple[str, ...] = ()
    queued_grace: float = DEFAULT_QUEUED_GRACE
    listen: Listen = "auto"
    packed_run_ids: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe form; only the values that differ from the defaults, to keep it small."""
        default = WaitResume()
        return {f.name: list(value) if isinstance(value := getattr(self, f.name), tuple) else value
                for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(default, f.name)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> WaitResume:
        """Read the JSON-safe form back.

        :param data: what :meth:`to_dict` wrote, or None for the defaults.
        :raises ValueError: naming each key that is not a field or holds a value of the wrong type.
        """
        try:
            return cls(**dict(data or {}))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"resume: {problems}") from None


class RunWait:
    """One wait on Hatchet runs, from its first round to the event it ends with.

    :param run_ids: the runs to wait on.
    :param poll_interval: seconds between rounds.
    :param execution_deadline: wall-clock epoch seconds after which the wait ends with ``timeout``.
    :param fail_on_cancelled: a CANCELLED run ends the wait as ``cancelled``; otherwise it counts as finished.
    :param batch_key: the batch key the runs share (one list query per round answers for all of them); when None
        it is read from the first run if there are several runs.
    :param fetch_outputs: fetch the runs' outputs for the success event.
    :param cancel_on_timeout: cancel the unfinished runs once the deadline has passed.
    :param resume: what the task hands the wait (see :class:`WaitResume`).
    :param batch_field: the metadata key that holds the batch key; None turns batch lists off.
    :param index_key: the metadata key that holds a run's index in its batch.
    :raises ValueError: for run ids that are not a list of strings, or a ``run_count`` without its batch.
    """

    def __init__(
        self,
        run_ids: Sequence[str],
        *,
        poll_interval: float = 5.0,
        execution_deadline: float | None = None,
        fail_on_cancelled: bool = True,
        batch_key: str | None = None,
        fetch_outputs: bool = True,
        cancel_on_timeout: bool = False,
        resume: WaitResume | None = None,
        batch_field: str | None = None,
        index_key: str | None = None,
    ) -> None:
        resume = resume or WaitResume()
        if resume.packed_run_ids is not None:
            if run_ids:
                raise ValueError(f"packed_run_ids replaces run_ids: give one of them, got {len(run_ids)} run_ids")
            run_ids = unpack_ids(resume.packed_run_ids)
            resume = dataclasses.replace(resume, packed_run_ids=None)
        if isinstance(run_ids, str) or not all(isinstance(i, str) and i for i in run_ids):
            raise ValueError(f"run_ids must be a list of non-empty strings, got {run_ids!r}")
        if resume.run_count is not None and (run_ids or not batch_key or not resume.run_ids_digest
                                             or resume.run_count < 1):
            raise ValueError(
                "run_count describes a batch by its key instead of its ids: give it with batch_key and "
                f"run_ids_digest, and no run_ids (got run_count={resume.run_count!r}, {len(run_ids)} run_ids, "
                f"batch_key={batch_key!r}, run_ids_digest={resume.run_ids_digest!r})"
            )
        if resume.started_at is None:
            resume = dataclasses.replace(resume, started_at=time.time())
        self.run_ids = list(run_ids)
        self.poll_interval = float(poll_interval)
        self.execution_deadline = None if execution_deadline is None else float(execution_deadline)
        self.fail_on_cancelled = bool(fail_on_cancelled)
        self.batch_key = batch_key
        self.fetch_outputs = bool(fetch_outputs)
        self.cancel_on_timeout = bool(cancel_on_timeout)
        self.resume = resume
        self.batch_field = batch_field
        self.index_key = index_key
        self.state = self._new_state()
        self.watch = QueuedWatch(resume.check_workers, resume.workflows, resume.queued_grace)
        self._finding_since: float | None = None
        self._watch: Watch | None = None
        self._heard_version = 0
        # What the cheap test in _woken compares with, as of the last round: the runs pending, and how many of the
        # runs heard were confirmed finished; and the failures heard when the full test last ran.
        self._pending_count = len(set(self.run_ids))
        self._confirmed_heard = 0
        self._failures_seen = 0
        self._early = False
        self._confirm: float | None = None
        self._said_how = ""

    @property
    def started_at(self) -> float:
        """When waiting began (epoch seconds)."""
        assert self.resume.started_at is not None
        return self.resume.started_at

    def arguments(self) -> dict[str, Any]:
        """The JSON-safe keyword arguments that make this wait again; more than ``INLINE_RUN_IDS`` run ids are
        written packed, up to ``PACKED_RUN_IDS``, and a bigger batch that carries its index as its key, size and
        ids' digest."""
        resume = self.resume
        big = resume.run_count is not None or len(self.run_ids) > INLINE_RUN_IDS
        run_ids = list(self.run_ids)
        packed = pack_ids(run_ids) if big and resume.run_count is None and len(run_ids) <= PACKED_RUN_IDS else None
        if packed is not None:
            resume = dataclasses.replace(resume, packed_run_ids=packed)
            run_ids = []
        elif self.batch_key is not None and resume.indexed_batch and big:
            resume = dataclasses.replace(resume, run_count=resume.run_count or len(run_ids),
                                         run_ids_digest=resume.run_ids_digest or ids_digest(run_ids))
            run_ids = []
        return {
            "run_ids": run_ids,
            "poll_interval": self.poll_interval,
            "execution_deadline": self.execution_deadline,
            "fail_on_cancelled": self.fail_on_cancelled,
            "batch_key": self.batch_key,
            "fetch_outputs": self.fetch_outputs,
            "cancel_on_timeout": self.cancel_on_timeout,
            "resume": resume.to_dict(),
        }

    def _new_state(self) -> WaitState:
        return WaitState(
            tuple(self.run_ids), fail_on_cancelled=self.fail_on_cancelled, batch_key=self.batch_key,
            detect_batch=self.resume.detect_batch, started_at=self.started_at,
            not_found_grace=self.resume.not_found_grace, batch_field=self.batch_field,
        )

    def ended(self, status: WaitStatus, message: str) -> WaitEvent:
        """The event for a wait this object ends itself (a timeout, an error), with what the rounds learnt.

        :param status: how it ended.
        :param message: the summary.
        """
        state = self.state
        return WaitEvent(status, list(self.run_ids), message, state.status_strings(),
                         {i: dict(e) for i, e in state.errors.items()})

    async def run(self, client: AsyncHatchetClient, log: Log) -> WaitEvent:
        """Check the unfinished runs every ``poll_interval`` seconds (from ``first_poll_at``) until the wait ends.

        A failure to wait (a persistent 404, a 403, a bug) ends it with an ``error`` event. Cancelled past the
        deadline, it first cancels the unfinished runs if ``cancel_on_timeout``.

        :param client: the async client (not closed here).
        :param log: where progress goes.
        """
        try:
            self._listen(client, log)
            return await self._rounds(client, log)
        except asyncio.CancelledError:
            if self.execution_deadline is not None and time.time() >= self.execution_deadline:
                # Shielded: a cancelled anyio scope would cancel the cleanup too.
                with anyio.CancelScope(shield=True), anyio.move_on_after(CANCEL_BUDGET):
                    await self._cancel_at_deadline(client, log)
            raise
        except Exception as exc:
            log.exception("Waiting on Hatchet runs failed")
            return self.ended(WaitStatus.ERROR, f"{type(exc).__name__}: {exc}")
        finally:
            watch, self._watch = self._watch, None
            if watch is not None:
                watch.close()

    async def cancel(self, client: AsyncHatchetClient, log: Log) -> list[str]:
        """Ask Hatchet to cancel the runs not known to be finished; return the ids sent.

        :param client: the async client.
        :param log: where a failure to list a batch's runs goes.
        """
        if not self.run_ids:
            await self._find_batch(client, log)
        return await cancel_unfinished(client, self.state)

    async def _cancel_at_deadline(self, client: AsyncHatchetClient, log: Log) -> None:
        """Cancel the unfinished runs, if asked to; best effort: a failure to cancel is logged, not raised."""
        if not self.cancel_on_timeout or not self.run_ids:
            return
        try:
            cancelled = await cancel_unfinished(client, self.state)
        except HatchetError as exc:
            log.warning("The deadline passed, but the unfinished Hatchet runs could not be cancelled: %s", exc)
            return
        log.info("The deadline passed: asked Hatchet to cancel %d run(s): %s", len(cancelled), ", ".join(cancelled))

    async def _rounds(self, client: AsyncHatchetClient, log: Log) -> WaitEvent:
        last_message = ""
        if not self.run_ids and self._watch is not None:
            await self._find_early(client, log)
        if self.resume.first_poll_at is not None:
            # The task's own check was a round: the next one comes an interval after it, or when the stream wakes.
            await self._pause(self.resume.first_poll_at - self.poll_interval, log)
        while True:
            if self._watch is not None:
                self._heard_version = self._watch.version
                self._watch.missed = False
            event: WaitEvent | None = None
            # The deadline also cuts short a round in flight (a slow server, requests queued behind others).
            with anyio.move_on_after(self._remaining()):
                if not self.run_ids:
                    await self._find_batch(client, log)
                if self.run_ids:
                    # With the stream, the rounds after the first mostly confirm what it told: the few runs a list
                    # showed unfinished are read one by one.
                    event = await check_round(client, self.state, fetch_outputs=self.fetch_outputs,
                                              max_concurrency=self.resume.max_concurrency,
                                              by_one=CONFIRM_BY_ONE if self._watch and self._watch.live else 0)
            if event is not None and event.finished:
                return event
            if event is not None:
                stuck = await self.watch.check(client, self.state.statuses, self.state.created, log.warning)
                if stuck is not None:
                    return self.ended(WaitStatus.NO_WORKER, stuck)
            if event is not None and event.message != last_message:
                last_message = event.message
                log.info("%s", event.message)
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                message = self._timeout_message()
                await self._cancel_at_deadline(client, log)
                return self.ended(WaitStatus.TIMEOUT, message)
            self._confirm = self._next_confirm()
            await self._pause(time.time(), log)

    async def _find_early(self, client: AsyncHatchetClient, log: Log) -> None:
        """Read a batch stored as its key back now, so that the stream tells of its runs before the first round (a
        minute away for a deferred sensor) rather than only after it; while the list does not show them all yet
        (read lag after a bulk trigger), look again after 0.5 s, 1 s, 2 s ... until the first round is due."""
        delay = FIND_FIRST
        while not self.run_ids:
            with anyio.move_on_after(self._remaining()):
                await self._find_batch(client, log)
            first = self.resume.first_poll_at or 0.0
            until = min(time.time() + delay, self.execution_deadline or float("inf"))
            if self.run_ids or until >= first or until <= time.time():  # found, the first round due, or the deadline
                return
            await asyncio.sleep(until - time.time())
            delay = min(delay * 2, FIND_MAX)

    async def _find_batch(self, client: AsyncHatchetClient, log: Log) -> None:
        """Read the batch's run ids back from the run list; until the list shows them all, wait (read lag) for up
        to ``not_found_grace`` seconds from the first look."""
        resume = self.resume
        assert self.batch_key and resume.run_count and self.batch_field and self.index_key
        if self._finding_since is None:
            self._finding_since = time.time()
        try:
            found = await find_batch_runs(client, (self.batch_field, self.batch_key), resume.run_count,
                                          since=self._batch_since(), index_key=self.index_key)
        except HatchetRetryableError as exc:
            log.info("Could not list the runs of batch %r yet: %s", self.batch_key, exc)
            return
        ids = [i for i in found if i is not None]
        if len(ids) == resume.run_count and ids_digest(ids) == resume.run_ids_digest:
            self.run_ids = ids
            self.state = self._new_state()
            if self._watch is not None:
                self._watch.add(ids)
            return
        if time.time() - self._finding_since > resume.not_found_grace:
            which = "" if len(ids) < resume.run_count else ", but not the runs the task triggered"
            raise RunWaitError(
                f"The run list shows {len(ids)} of the {resume.run_count} runs of batch {self.batch_key!r}{which} "
                f"after {resume.not_found_grace:g} s"
            )

    def _listen(self, client: AsyncHatchetClient, log: Log) -> None:
        """Watch the runs on the loop's run-event stream before the first round (so no event falls between), or
        say in one line why the wait polls."""
        if self.resume.listen == "off":
            self._say_how(log, "off", "listen='off'")
            return
        if not client.config.grpc_address:
            self._say_how(log, "address", "the token has no gRPC address and the connection sets no 'grpc_address'")
            return
        from airflow_provider_hatchet.client.grpc.run_events import run_events

        self._watch = run_events(client.config).watch(self.run_ids)

    def _say_how(self, log: Log, key: str, why: str) -> None:
        """One info line per wait and reason for polling without the stream."""
        if self._said_how != key:
            self._said_how = key
            log.info("Polling Hatchet every %g s for the runs to finish, without the run-event stream: %s",
                     self.poll_interval, why)

    def _interval(self) -> float:
        """Seconds between rounds the stream does not wake: a slow reconciliation while it is connected, unless
        the last round could not see every run (not visible yet, or a transient failure) or a queued run will pass
        the worker check's grace sooner."""
        watch = self._watch
        state = self.state
        if watch is None or not watch.live or state.missing_since or state.last_error:
            return self.poll_interval
        interval = max(self.poll_interval, RECONCILE_INTERVAL)
        due = self.watch.due_in
        return interval if due is None else min(interval, max(self.poll_interval, due))

    def _stream_says_done(self) -> bool:
        """Whether the stream tells that every pending run finished, or one may have failed."""
        watch = self._watch
        if watch is None or not self.run_ids:
            return False
        pending = self.state.pending()
        heard = watch.finished
        return bool(pending) and (all(i in heard for i in pending) or any(heard.get(i) for i in pending))

    def _next_confirm(self) -> float | None:
        """After a round: the delay before a round that confirms what the stream told and REST did not show yet."""
        if not self._stream_says_done():
            return None
        return CONFIRM_FIRST if self._confirm is None else min(self._confirm * 2, self._interval())

    def _mark(self) -> None:
        """Note, after a round, what the cheap test in :meth:`_woken` compares with."""
        watch = self._watch
        if watch is None:
            return
        statuses = self.state.statuses
        self._pending_count = len(self.state.pending())
        self._confirmed_heard = sum(1 for i in watch.finished if (s := statuses.get(i)) is not None and s.is_terminal)

    def _woken(self) -> bool:
        watch = self._watch
        if watch is None:
            return False
        if watch.missed:  # reconnected: events may have been lost while it was down
            return True
        if watch.version == self._heard_version:
            return False
        # A wait on 10,000 runs is woken by each of their events, and the full test walks every pending run: first
        # the cheap one. Fewer runs heard (less those confirmed finished) than pending (less EARLY_UNHEARD before
        # the early round), and no failure heard since the full test last ran, means it is not time yet.
        early = not self._early and self._pending_count > EARLY_UNHEARD
        if (len(watch.finished) - self._confirmed_heard < self._pending_count - (EARLY_UNHEARD if early else 0)
                and watch.failures == self._failures_seen):
            return False
        self._failures_seen = watch.failures
        if self._stream_says_done():
            return True
        if early and sum(1 for i in self.state.pending() if i not in watch.finished) <= EARLY_UNHEARD:
            self._early = True
            return True
        return False

    async def _pause(self, since: float, log: Log) -> None:
        """Wait until an interval after ``since`` (wall-clock epoch seconds) or the deadline, or until the stream
        wakes the wait; the interval follows the stream's state as it changes.

        :param since: when the last round ended.
        :param log: where the reason for polling goes.
        """
        self._mark()
        while True:
            watch = self._watch
            if watch is not None and watch.down:
                self._say_how(log, "down", f"the stream is down: {watch.down}")
            interval = self._interval() if self._confirm is None else min(self._confirm, self._interval())
            until = since + interval
            if self.execution_deadline is not None:
                until = min(until, self.execution_deadline)
            left = until - time.time()
            if left <= 0:
                return
            if watch is None or watch.final:
                await asyncio.sleep(left)
                return
            watch.clear()
            if self._woken():
                return
            if watch.down:
                # Polling while the stream is down, but woken when it reconnects (events may have been missed).
                if await watch.wait_or(asyncio.sleep(left)):
                    return
            else:
                await watch.wait(left)

    def _batch_since(self) -> datetime:
        since = self.resume.runs_since
        if since is None:
            since = self.started_at - BATCH_SINCE_MARGIN.total_seconds()
        return datetime.fromtimestamp(since, timezone.utc)

    def _remaining(self) -> float | None:
        return None if self.execution_deadline is None else max(0.0, self.execution_deadline - time.time())

    def _timeout_message(self) -> str:
        if not self.run_ids:
            return (f"The execution deadline passed before the run list showed the {self.resume.run_count} runs of "
                    f"batch {self.batch_key!r}")
        pending = self.state.pending()
        fate = "cancelled" if self.cancel_on_timeout else "left running"
        return (
            f"The execution deadline passed with {len(pending)} of {len(self.state.unique_ids())} Hatchet runs not "
            f"finished ({fate}): {', '.join(pending[:10])}{' ...' if len(pending) > 10 else ''}"
        )
