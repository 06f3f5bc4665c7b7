"""The trigger that waits, in the triggerer, until Hatchet runs finish."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow_provider_hatchet._compat import BaseTrigger, TriggerEvent
from airflow_provider_hatchet._identity import BATCH_INDEX_KEY, TI_KEY
from airflow_provider_hatchet.client import INLINE_RUN_IDS, RunWait, WaitResume, WaitStatus
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.triggers.scheduled import HatchetScheduledRunTrigger
from airflow_provider_hatchet.triggers.watchers import HatchetEventTrigger, HatchetWorkflowRunEventTrigger

__all__ = [
    "INLINE_RUN_IDS", "HatchetEventTrigger", "HatchetScheduledRunTrigger", "HatchetWorkflowRunEventTrigger",
    "HatchetWorkflowRunTrigger", "WaitResume", "run_wait", "wait_deadline",
]


def run_wait(run_ids: Sequence[str], **arguments: Any) -> RunWait:
    """A wait on runs that carry the Airflow identity: batches are keyed by ``airflow_ti``, indexed by
    ``airflow_batch_index``.

    :param run_ids: the runs.
    :param arguments: :class:`~airflow_provider_hatchet.client.run_wait.RunWait`'s other keyword arguments.
    """
    return RunWait(run_ids, batch_field=TI_KEY, index_key=BATCH_INDEX_KEY, **arguments)


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
    :param cancel_on_timeout: cancel the unfinished runs once ``execution_deadline`` has passed.
    :param resume: what the deferring task hands the wait, a
        :class:`~airflow_provider_hatchet.client.run_wait.WaitResume` or its dict: when waiting began, when the
        first round may start, the 404 grace, the most requests in flight, and more than ``INLINE_RUN_IDS`` run ids
        packed, or a bigger batch stored as its key, size and digest (:meth:`serialize` writes up to
        ``PACKED_RUN_IDS`` ids packed, and a bigger batch whose runs carry ``airflow_batch_index`` as its key, so
        the stored arguments stay small whatever the batch's size).
        Its ``listen`` (``auto`` by default) hears the runs finish on Hatchet's gRPC run-event stream, one stream
        per connection shared by every trigger in the triggerer, when the connection has a gRPC address and the
        server serves it: the wait then ends a moment after its runs finish, once a round over REST confirms,
        and otherwise checks every ``max(poll_interval, 60)`` seconds; ``off``, or a server without the stream,
        polls every ``poll_interval`` seconds.
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
        cancel_on_timeout: bool = False,
        resume: WaitResume | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.hatchet_conn_id = hatchet_conn_id
        self.cancel_on_kill = bool(cancel_on_kill)
        self.wait = run_wait(
            run_ids, poll_interval=poll_interval, execution_deadline=execution_deadline,
            fail_on_cancelled=fail_on_cancelled, batch_key=batch_key, fetch_outputs=fetch_outputs,
            cancel_on_timeout=cancel_on_timeout,
            resume=resume if isinstance(resume, WaitResume) else WaitResume.from_dict(resume),
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the JSON-safe keyword arguments (no secrets).

        More than ``INLINE_RUN_IDS`` run ids are written packed, up to ``PACKED_RUN_IDS``; a bigger indexed batch
        as its key, size and ids' digest.
        """
        kwargs = {"hatchet_conn_id": self.hatchet_conn_id, "cancel_on_kill": self.cancel_on_kill,
                  **self.wait.arguments()}
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check the unfinished runs when the run-event stream tells they finished, or every interval (from
        ``first_poll_at``), and yield one event."""
        try:
            async with HatchetHook(self.hatchet_conn_id).alease_client() as client:
                event = await self.wait.run(client, self.log)
        except Exception as exc:
            self.log.exception("Waiting on Hatchet runs failed")
            event = self.wait.ended(WaitStatus.ERROR, f"{type(exc).__name__}: {exc}")
        yield TriggerEvent(event.to_payload())  # type: ignore[no-untyped-call]

    async def on_kill(self) -> None:
        """Cancel the runs not known to be finished (Airflow 3.3+, on mark failed/success or clear)."""
        if not self.cancel_on_kill:
            return
        async with HatchetHook(self.hatchet_conn_id).alease_client() as client:
            cancelled = await self.wait.cancel(client, self.log)
        self.log.info("Asked Hatchet to cancel %d run(s): %s", len(cancelled), ", ".join(cancelled))
