"""The trigger that waits, in the triggerer, until Hatchet runs finish."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow_provider_hatchet._compat import BaseTrigger, TriggerEvent
from airflow_provider_hatchet._identity import TI_KEY
from airflow_provider_hatchet.client.waiter import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_NOT_FOUND_GRACE,
    Verdict,
    WaitState,
    cancel_unfinished,
    check_round,
)
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.triggers.scheduled import HatchetScheduledRunTrigger
from airflow_provider_hatchet.triggers.watchers import HatchetEventTrigger, HatchetWorkflowRunEventTrigger

__all__ = [
    "HatchetEventTrigger", "HatchetScheduledRunTrigger", "HatchetWorkflowRunEventTrigger", "HatchetWorkflowRunTrigger",
]

EVENT_STATUSES = frozenset({"success", "failed", "cancelled", "timeout", "error"})


class HatchetWorkflowRunTrigger(BaseTrigger):
    """Poll Hatchet until every run has finished, one has failed (or been cancelled), or the deadline passes.

    It yields exactly one event, a dict with ``status`` (``success``, ``failed``, ``cancelled``, ``timeout`` or
    ``error``), ``run_ids``, ``message``, ``statuses`` ({run id: status}), ``errors`` ({run id: {task:
    message}}) and, on success when ``fetch_outputs``, ``outputs`` (each run's outputs keyed by task name, in
    ``run_ids`` order). On ``timeout`` the runs are left running.

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
    :param detect_batch: read the batch key from the first run when ``batch_key`` is None (False when the
        deferring task has already looked).
    :param first_poll_at: wall-clock epoch seconds before which the first round does not start (the deferring
        task's own check was one round already); None starts at once.
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
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if isinstance(run_ids, str) or not all(isinstance(i, str) and i for i in run_ids):
            raise ValueError(f"run_ids must be a list of non-empty strings, got {run_ids!r}")
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
        self._state: WaitState | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the JSON-safe keyword arguments (no secrets)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
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
            },
        )

    def _new_state(self) -> WaitState:
        return WaitState(
            tuple(self.run_ids), fail_on_cancelled=self.fail_on_cancelled, batch_key=self.batch_key,
            detect_batch=self.detect_batch, started_at=self.started_at, not_found_grace=self.not_found_grace,
            batch_field=TI_KEY,
        )

    def _event(self, status: str, message: str, state: WaitState | None = None) -> TriggerEvent:
        return TriggerEvent({  # type: ignore[no-untyped-call]
            "status": status,
            "run_ids": list(self.run_ids),
            "message": message,
            "statuses": state.status_strings() if state else {},
            "errors": {i: dict(e) for i, e in state.errors.items()} if state else {},
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check the unfinished runs every ``poll_interval`` seconds (from ``first_poll_at``) and yield one event."""
        state = self._state = self._new_state()
        last_message = ""
        try:
            client = await HatchetHook(self.hatchet_conn_id).aget_client()
            if self.first_poll_at is not None:
                until = self.first_poll_at
                if self.execution_deadline is not None:
                    until = min(until, self.execution_deadline)
                if until > time.time():
                    await asyncio.sleep(until - time.time())
            while True:
                verdict: Verdict = await check_round(
                    client, state, fetch_outputs=self.fetch_outputs, max_concurrency=self.max_concurrency
                )
                if verdict.finished:
                    yield TriggerEvent(verdict.event(self.run_ids))  # type: ignore[no-untyped-call]
                    return
                if verdict.message != last_message:
                    last_message = verdict.message
                    self.log.info("%s", verdict.message)
                remaining = None if self.execution_deadline is None else self.execution_deadline - time.time()
                if remaining is not None and remaining <= 0:
                    yield self._event("timeout", self._timeout_message(state), state)
                    return
                await asyncio.sleep(self.poll_interval if remaining is None else min(self.poll_interval, remaining))
        except Exception as exc:
            self.log.exception("Waiting on Hatchet runs failed")
            yield self._event("error", f"{type(exc).__name__}: {exc}", state)

    def _timeout_message(self, state: WaitState) -> str:
        pending = state.pending()
        return (
            f"The execution deadline passed with {len(pending)} of {len(state.unique_ids())} Hatchet runs not "
            f"finished (left running): {', '.join(pending[:10])}{' ...' if len(pending) > 10 else ''}"
        )

    async def on_kill(self) -> None:
        """Cancel the runs not known to be finished (Airflow 3.3+, on mark failed/success or clear)."""
        if not self.cancel_on_kill:
            return
        state = self._state or self._new_state()
        client = await HatchetHook(self.hatchet_conn_id).aget_client()
        cancelled = await cancel_unfinished(client, state)
        self.log.info("Asked Hatchet to cancel %d run(s): %s", len(cancelled), ", ".join(cancelled))
