"""The trigger that waits, in the triggerer, until Hatchet runs finish."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import anyio

from airflow_provider_hatchet._compat import BaseTrigger, TriggerEvent
from airflow_provider_hatchet._identity import BATCH_INDEX_KEY, TI_KEY
from airflow_provider_hatchet.client import (
    BATCH_SINCE_MARGIN,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_NOT_FOUND_GRACE,
    HatchetError,
    HatchetRetryableError,
    RunWaitError,
    Verdict,
    WaitEvent,
    WaitState,
    WaitStatus,
    cancel_unfinished,
    check_round,
    find_batch_runs,
    ids_digest,
)
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.triggers.scheduled import HatchetScheduledRunTrigger
from airflow_provider_hatchet.triggers.watchers import HatchetEventTrigger, HatchetWorkflowRunEventTrigger

__all__ = [
    "HatchetEventTrigger", "HatchetScheduledRunTrigger", "HatchetWorkflowRunEventTrigger", "HatchetWorkflowRunTrigger",
]

if TYPE_CHECKING:
    from airflow_provider_hatchet.client import AsyncHatchetClient

# A batch of more runs than this is stored as its key, size and digest rather than its ids.
INLINE_RUN_IDS = 100
# How long cancelling the runs may take once the trigger itself is being cancelled past the deadline.
_CANCEL_BUDGET = 30.0


def wait_deadline(context: Any, timeout: float | None, execution_timeout: timedelta | None) -> float | None:
    """When a task's wait must end: the earlier of its ``timeout`` and ``execution_timeout``, from the try's start.

    Both count from the try's ``start_date`` (which a deferred try keeps when it resumes), not from when the wait
    began; a try with no start date yet counts from now.

    :param context: the task context.
    :param timeout: the task's own timeout in seconds, or None.
    :param execution_timeout: BaseOperator's ``execution_timeout``, or None.
    :return: wall-clock epoch seconds, or None when neither is set.
    """
    limits = [float(timeout)] if timeout is not None else []
    if execution_timeout is not None:
        limits.append(execution_timeout.total_seconds())
    if not limits:
        return None
    started = getattr(context["ti"], "start_date", None)
    return (time.time() if started is None else started.timestamp()) + min(limits)


class HatchetWorkflowRunTrigger(BaseTrigger):
    """Poll Hatchet until every run has finished, one has failed (or been cancelled), or the deadline passes.

    It yields exactly one event, a dict with ``status`` (``success``, ``failed``, ``cancelled``, ``timeout`` or
    ``error``), ``run_ids``, ``message``, ``statuses`` ({run id: status}), ``errors`` ({run id: {task:
    message}}) and, on success when ``fetch_outputs``, ``outputs`` (each run's outputs keyed by task name, in
    ``run_ids`` order). On ``timeout`` the unfinished runs are cancelled if ``cancel_on_timeout``, else left
    running; they are cancelled too when Airflow cancels the trigger after the deadline (Airflow 2 times a
    deferred task out at its ``execution_timeout`` by itself, and may do so before the trigger's own event).

    :param run_ids: the runs to wait on.
    :param hatchet_conn_id: the Hatchet connection.
    :param poll_interval: seconds between rounds of checks.
    :param execution_deadline: wall-clock epoch seconds after which the trigger gives up with ``timeout``.
    :param fail_on_cancelled: a CANCELLED run ends the wait as ``cancelled``; otherwise it counts as finished.
    :param batch_key: the ``airflow_ti`` metadata the runs share (one list query per round answers for all of
        them); when None it is read from the first run if there are several runs.
    :param fetch_outputs: fetch the runs' outputs for the success event.
    :param cancel_on_kill: on Airflow 3.3+, cancel the unfinished runs when a person marks the deferred task
        failed or success, or clears it.
    :param started_at: when waiting began (epoch seconds); the 404 grace of unseen runs counts from it.
    :param not_found_grace: seconds a 404 is taken for a run not readable yet.
    :param max_concurrency: the most requests in flight at once.
    :param cancel_on_timeout: cancel the unfinished runs once ``execution_deadline`` has passed.
    :param detect_batch: read the batch key from the first run when ``batch_key`` is None (False when the
        deferring task has already looked).
    :param first_poll_at: wall-clock epoch seconds before which the first round does not start (the deferring
        task's own check was one round already); None starts at once.
    :param run_count: with ``batch_key`` and ``run_ids_digest`` and no ``run_ids``: the batch's size; its runs
        are read back from the run list. :meth:`serialize` writes a batch of more than ``INLINE_RUN_IDS`` runs
        this way, so the stored arguments stay small whatever the batch's size.
    :param run_ids_digest: :func:`~airflow_provider_hatchet.client.batch_runs.ids_digest` of the batch's ids.
    :param runs_since: epoch seconds before which no run of the batch was created (default: a day before
        ``started_at``).
    :param indexed_batch: the runs carry ``airflow_batch_index`` (a bulk operator's batch), so :meth:`serialize`
        may write a big batch as its key, size and digest; False keeps the ids (the runs of pushed events carry
        the batch key but no index, and one event may trigger several).
    """

    def __init__(
        self,
        run_ids: Sequence[str],
        hatchet_conn_id: str = HatchetHook.default_conn_name,
        poll_interval: float = 5.0,
        execution_deadline: float | None = None,
        fail_on_cancelled: bool = True,
        batch_key: str | None = None,
        fetch_outputs: bool = True,
        cancel_on_kill: bool = True,
        started_at: float | None = None,
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        detect_batch: bool = True,
        first_poll_at: float | None = None,
        run_count: int | None = None,
        run_ids_digest: str | None = None,
        runs_since: float | None = None,
        cancel_on_timeout: bool = False,
        indexed_batch: bool = True,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if isinstance(run_ids, str) or not all(isinstance(i, str) and i for i in run_ids):
            raise ValueError(f"run_ids must be a list of non-empty strings, got {run_ids!r}")
        if run_count is not None and (run_ids or not batch_key or not run_ids_digest or run_count < 1):
            raise ValueError(
                "run_count describes a batch by its key instead of its ids: give it with batch_key and "
                f"run_ids_digest, and no run_ids (got run_count={run_count!r}, {len(run_ids)} run_ids, "
                f"batch_key={batch_key!r}, run_ids_digest={run_ids_digest!r})"
            )
        self.run_ids = list(run_ids)
        self.hatchet_conn_id = hatchet_conn_id
        self.poll_interval = float(poll_interval)
        self.execution_deadline = None if execution_deadline is None else float(execution_deadline)
        self.fail_on_cancelled = bool(fail_on_cancelled)
        self.batch_key = batch_key
        self.fetch_outputs = bool(fetch_outputs)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.started_at = time.time() if started_at is None else float(started_at)
        self.not_found_grace = float(not_found_grace)
        self.max_concurrency = int(max_concurrency)
        self.detect_batch = bool(detect_batch)
        self.first_poll_at = None if first_poll_at is None else float(first_poll_at)
        self.run_count = None if run_count is None else int(run_count)
        self.run_ids_digest = run_ids_digest
        self.runs_since = None if runs_since is None else float(runs_since)
        self.cancel_on_timeout = bool(cancel_on_timeout)
        self.indexed_batch = bool(indexed_batch)
        self._state: WaitState | None = None
        self._finding_since: float | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the JSON-safe keyword arguments (no secrets).

        An indexed batch of more than ``INLINE_RUN_IDS`` runs is written as its key, size and ids' digest.
        """
        kwargs: dict[str, Any] = {
            "run_ids": list(self.run_ids),
            "hatchet_conn_id": self.hatchet_conn_id,
            "poll_interval": self.poll_interval,
            "execution_deadline": self.execution_deadline,
            "fail_on_cancelled": self.fail_on_cancelled,
            "batch_key": self.batch_key,
            "fetch_outputs": self.fetch_outputs,
            "cancel_on_kill": self.cancel_on_kill,
            "started_at": self.started_at,
            "not_found_grace": self.not_found_grace,
            "max_concurrency": self.max_concurrency,
            "detect_batch": self.detect_batch,
            "first_poll_at": self.first_poll_at,
            "cancel_on_timeout": self.cancel_on_timeout,
            "indexed_batch": self.indexed_batch,
        }
        big = self.run_count is not None or len(self.run_ids) > INLINE_RUN_IDS
        if self.batch_key is not None and self.indexed_batch and big:
            kwargs.update(
                run_ids=[],
                run_count=self.run_count or len(self.run_ids),
                run_ids_digest=self.run_ids_digest or ids_digest(self.run_ids),
                runs_since=self.runs_since,
            )
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    def _new_state(self) -> WaitState:
        return WaitState(
            tuple(self.run_ids), fail_on_cancelled=self.fail_on_cancelled, batch_key=self.batch_key,
            detect_batch=self.detect_batch, started_at=self.started_at, not_found_grace=self.not_found_grace,
            batch_field=TI_KEY,
        )

    def _event(self, status: str, message: str, state: WaitState | None = None) -> TriggerEvent:
        event = WaitEvent(WaitStatus(status), list(self.run_ids), message, state.status_strings() if state else {},
                          {i: dict(e) for i, e in state.errors.items()} if state else {})
        return TriggerEvent(event.to_payload())  # type: ignore[no-untyped-call]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check the unfinished runs every ``poll_interval`` seconds (from ``first_poll_at``) and yield one event."""
        self._state = self._new_state()
        try:
            async with HatchetHook(self.hatchet_conn_id).alease_client() as client:
                try:
                    event = await self._wait(client)
                except asyncio.CancelledError:
                    # Cancelled while still waiting (not after the event, which is yielded outside this block).
                    if self.execution_deadline is not None and time.time() >= self.execution_deadline:
                        await asyncio.wait_for(self._cancel_at_deadline(client), _CANCEL_BUDGET)
                    raise
        except Exception as exc:
            self.log.exception("Waiting on Hatchet runs failed")
            event = self._event("error", f"{type(exc).__name__}: {exc}", self._state)
        yield event

    async def _cancel_at_deadline(self, client: AsyncHatchetClient) -> None:
        """Cancel the unfinished runs, if asked to; best effort: a failure to cancel is logged, not raised."""
        if not self.cancel_on_timeout or self._state is None or not self.run_ids:
            return
        try:
            cancelled = await cancel_unfinished(client, self._state)
        except HatchetError as exc:
            self.log.warning("The deadline passed, but the unfinished Hatchet runs could not be cancelled: %s", exc)
            return
        self.log.info("The deadline passed: asked Hatchet to cancel %d run(s): %s", len(cancelled),
                      ", ".join(cancelled))

    async def _wait(self, client: AsyncHatchetClient) -> TriggerEvent:
        last_message = ""
        if self.first_poll_at is not None:
            until = self.first_poll_at
            if self.execution_deadline is not None:
                until = min(until, self.execution_deadline)
            if until > time.time():
                await asyncio.sleep(until - time.time())
        while True:
            verdict: Verdict | None = None
            # The deadline also cuts short a round in flight (a slow server, requests queued behind others).
            with anyio.move_on_after(self._remaining()):
                if not self.run_ids:
                    await self._find_batch(client)
                if self.run_ids and self._state is not None:
                    verdict = await check_round(
                        client, self._state, fetch_outputs=self.fetch_outputs, max_concurrency=self.max_concurrency
                    )
            if verdict is not None and verdict.finished:
                return TriggerEvent(verdict.event(self.run_ids).to_payload())  # type: ignore[no-untyped-call]
            if verdict is not None and verdict.message != last_message:
                last_message = verdict.message
                self.log.info("%s", verdict.message)
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                message = self._timeout_message()
                await self._cancel_at_deadline(client)
                return self._event("timeout", message, self._state)
            await asyncio.sleep(self.poll_interval if remaining is None else min(self.poll_interval, remaining))

    async def _find_batch(self, client: AsyncHatchetClient) -> None:
        """Read the batch's run ids back from the run list; until the list shows them all, wait (read lag) for up
        to ``not_found_grace`` seconds from the first look."""
        assert self.batch_key is not None and self.run_count is not None
        if self._finding_since is None:
            self._finding_since = time.time()
        try:
            found = await find_batch_runs(client, (TI_KEY, self.batch_key), self.run_count,
                                          since=self._batch_since(), index_key=BATCH_INDEX_KEY)
        except HatchetRetryableError as exc:
            self.log.info("Could not list the runs of batch %r yet: %s", self.batch_key, exc)
            return
        ids = [i for i in found if i is not None]
        if len(ids) == self.run_count and ids_digest(ids) == self.run_ids_digest:
            self.run_ids = ids
            self._state = self._new_state()
            return
        if time.time() - self._finding_since > self.not_found_grace:
            which = "" if len(ids) < self.run_count else ", but not the runs the task triggered"
            raise RunWaitError(
                f"The run list shows {len(ids)} of the {self.run_count} runs of batch {self.batch_key!r}{which} "
                f"after {self.not_found_grace:g} s"
            )

    def _batch_since(self) -> datetime:
        since = self.runs_since
        if since is None:
            since = self.started_at - BATCH_SINCE_MARGIN.total_seconds()
        return datetime.fromtimestamp(since, timezone.utc)

    def _remaining(self) -> float | None:
        return None if self.execution_deadline is None else max(0.0, self.execution_deadline - time.time())

    def _timeout_message(self) -> str:
        if not self.run_ids:
            return (f"The execution deadline passed before the run list showed the {self.run_count} runs of batch "
                    f"{self.batch_key!r}")
        state = self._state or self._new_state()
        pending = state.pending()
        fate = "cancelled" if self.cancel_on_timeout else "left running"
        return (
            f"The execution deadline passed with {len(pending)} of {len(state.unique_ids())} Hatchet runs not "
            f"finished ({fate}): {', '.join(pending[:10])}{' ...' if len(pending) > 10 else ''}"
        )

    async def on_kill(self) -> None:
        """Cancel the runs not known to be finished (Airflow 3.3+, on mark failed/success or clear)."""
        if not self.cancel_on_kill:
            return
        async with HatchetHook(self.hatchet_conn_id).alease_client() as client:
            if not self.run_ids:
                await self._find_batch(client)
            state = self._state if self._state is not None and self._state.run_ids else self._new_state()
            cancelled = await cancel_unfinished(client, state)
        self.log.info("Asked Hatchet to cancel %d run(s): %s", len(cancelled), ", ".join(cancelled))
