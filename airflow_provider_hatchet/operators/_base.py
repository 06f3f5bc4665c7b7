"""What the single and bulk trigger operators share: the hook, waiting (in the worker or deferred), cancelling."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_hatchet._arguments import check_seconds
from airflow_provider_hatchet._compat import AirflowException, BaseOperator, conf
from airflow_provider_hatchet.client import (
    Bridge,
    HatchetError,
    Listen,
    WaitEvent,
    WaitResume,
    WaitStatus,
    WorkerCheck,
    check_listen,
    check_workers_mode,
)
from airflow_provider_hatchet.exceptions import RUN_ERROR_STATUSES, HatchetNoWorkerError, run_error
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.operators._log_forwarding import (
    DEFAULT_LINES,
    DEFAULT_LINES_PER_TASK,
    LogForwarding,
    forward_logs,
)
from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunTrigger, run_wait, wait_deadline

if TYPE_CHECKING:
    from airflow_provider_hatchet._compat import Context

DEFAULT_TIMEOUT = 7 * 24 * 3600.0
REUSE_LOOKBACK = timedelta(days=7)
OUTPUT_KEY = "output"


def lookback_start() -> datetime:
    """The earliest creation time searched for a task instance's earlier runs."""
    return datetime.now(timezone.utc) - REUSE_LOOKBACK


class HatchetHookMixin:
    """The operators' ``hook``: one :class:`HatchetHook` per task, from its ``hatchet_conn_id`` and ``namespace``."""

    hatchet_conn_id: str
    namespace: str | None

    @cached_property
    def hook(self) -> HatchetHook:
        """The Hatchet hook for this task."""
        return HatchetHook(self.hatchet_conn_id, namespace=self.namespace)


class HatchetTriggerOperatorBase(HatchetHookMixin, BaseOperator):
    """Base of the operators that trigger Hatchet runs and may wait for them.

    :param hatchet_conn_id: the Hatchet connection. (templated)
    :param namespace: overrides the connection's namespace; ``""`` disables it.
    :param wait_for_completion: wait until the runs finish; their outputs go to XCom ``output``.
    :param deferrable: wait in the triggerer instead of the worker (default from ``[operators] default_deferrable``).
    :param poll_interval: seconds between status checks, more than 0.
    :param timeout: seconds, more than 0, from the try's start after which unfinished runs are cancelled and the
        task fails; None waits forever. An earlier ``execution_timeout`` ends the wait the same way, also while
        deferred.
    :param forward_logs: write Hatchet's task logs into the task log once the wait ends: ``on_failure`` (when the
        wait did not succeed: the runs that failed or were cancelled, after a timeout the unfinished ones; at most
        100 reads), ``always`` or ``never``. Control characters are escaped and a line is cut at 10,000 characters.
    :param forward_logs_max_lines_per_task: the most lines written per Hatchet task (its last ones), 1 to 10,000.
    :param forward_logs_max_lines: the most lines this task writes in all, 1 to 10,000.
    :param check_workers: whether a live Hatchet worker serves the workflow: checked once before triggering, and
        while waiting when a run stays QUEUED over 60 s of Hatchet's time. ``warn`` (default) logs a warning,
        ``fail`` fails the task with :class:`~airflow_provider_hatchet.exceptions.HatchetNoWorkerError`, ``off``
        never looks. A check that cannot read the worker list (e.g. a token without access) only warns.
    :param listen: how a wait learns that its runs finished: ``auto`` (default) hears it on Hatchet's gRPC
        run-event stream when the connection has a gRPC address and the server serves the stream (one stream per
        connection and process, shared by every wait; each time it tells the runs finished, a round of checks over
        REST confirms, and otherwise one round runs every ``max(poll_interval, 60)`` seconds); ``off``, or a server
        without the stream, checks every ``poll_interval`` seconds.
    :raises HatchetValidationError: when ``poll_interval`` or ``timeout`` is not more than 0, or a
        ``forward_logs``, ``check_workers`` or ``listen`` argument is not one of the values above.
    """

    ui_color = "#a78bfa"

    def __init__(
        self,
        *,
        hatchet_conn_id: str = HatchetHook.default_conn_name,
        namespace: str | None = None,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        timeout: float | None = DEFAULT_TIMEOUT,
        forward_logs: str = "on_failure",
        forward_logs_max_lines_per_task: int = DEFAULT_LINES_PER_TASK,
        forward_logs_max_lines: int = DEFAULT_LINES,
        check_workers: WorkerCheck = "warn",
        listen: Listen = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.check_workers = check_workers_mode(check_workers)
        self.listen = check_listen(listen)
        self.log_forwarding = LogForwarding.checked(forward_logs, forward_logs_max_lines_per_task,
                                                    forward_logs_max_lines)
        self.hatchet_conn_id = hatchet_conn_id
        self.namespace = namespace
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = check_seconds(poll_interval, "poll_interval")
        self.timeout = check_seconds(timeout, "timeout", optional=True)

    def check_live_workers(self, workflows: list[str]) -> None:
        """Before triggering: warn, or fail with ``check_workers="fail"``, when no live worker serves a workflow;
        one worker-list read for all of them. A failure to read the list is a warning in every mode.

        :param workflows: the full names of the workflows about to be triggered.
        :raises HatchetNoWorkerError: with ``fail``, naming the workflows no live worker serves.
        """
        if self.check_workers == "off" or not workflows:
            return
        try:
            counts = self.hook.live_workers_by_workflow(dict.fromkeys(workflows), "")
            missing = [workflow for workflow, count in counts.items() if count == 0]
        except HatchetError as exc:
            self.log.warning("Could not tell whether a live Hatchet worker serves %s (triggering anyway): %s",
                             ", ".join(map(repr, workflows)), exc)
            return
        if not missing:
            return
        names = ", ".join(map(repr, missing))
        if self.check_workers == "fail":
            raise HatchetNoWorkerError(f"No live Hatchet worker serves workflow {names}: nothing was triggered "
                                       "(check_workers='fail').")
        self.log.warning("No live Hatchet worker serves workflow %s: its runs will stay QUEUED until one starts.",
                         names)

    def wait_for_runs(self, context: Context, run_ids: list[str], *, defer: bool = False, batch_key: str | None = None,
                      runs_since: float | None = None, indexed_batch: bool = True,
                      workflows: list[str] | None = None) -> WaitEvent:
        """Wait on the runs until they finish, one fails, or this try's deadline passes (which cancels the
        unfinished ones): here in the worker, or, when ``defer``, in the triggerer (this raises ``TaskDeferred``,
        and ``execute_complete`` resumes the task with the trigger's event).

        :param context: the task context (the deadline counts from the try's start).
        :param run_ids: the runs.
        :param defer: wait in the triggerer.
        :param batch_key: the ``airflow_ti`` metadata the runs share, if known.
        :param runs_since: epoch seconds before which no run of the batch was created.
        :param indexed_batch: the runs carry ``airflow_batch_index``, so a big batch is stored as its key, size and
            digest when deferred.
        :param workflows: the full names of the runs' workflows, for the wait's ``check_workers``.
        """
        arguments: dict[str, Any] = {
            "poll_interval": self.poll_interval,
            "execution_deadline": wait_deadline(context, self.timeout, self.execution_timeout),
            "batch_key": batch_key,
            "cancel_on_timeout": True,
            "resume": WaitResume(runs_since=runs_since, indexed_batch=indexed_batch, check_workers=self.check_workers,
                                 workflows=tuple(workflows or ()), listen=self.listen),
        }
        if defer:
            trigger = HatchetWorkflowRunTrigger(run_ids, self.hatchet_conn_id, **arguments)
            self.defer(trigger=trigger, method_name="execute_complete", timeout=None)
        wait = run_wait(run_ids, **arguments)
        with Bridge(self.hook.async_client_factory()) as bridge:
            return bridge.call(lambda client: wait.run(client, self.log))

    def finish_wait(self, context: Context, event: WaitEvent | Mapping[str, Any] | None) -> tuple[list[Any], list[str]]:
        """Check how the wait ended: return the outputs and the run ids on success; raise on failure or timeout.

        Runs that failed, were cancelled or timed out raise the matching subclass of
        :class:`~airflow_provider_hatchet.exceptions.HatchetRunError`.

        :param context: the task context.
        :param event: how the wait ended: the wait's event, or the trigger's event payload.
        """
        try:
            wait = event if isinstance(event, WaitEvent) else WaitEvent.from_payload(event)
        except ValueError as exc:
            raise AirflowException(str(exc)) from None
        forward_logs(self.hook, self.log, wait, self.log_forwarding)
        if wait.status is WaitStatus.SUCCESS:
            return wait.outputs or [{} for _ in wait.run_ids], wait.run_ids
        if wait.status is WaitStatus.TIMEOUT:
            # The trigger has already cancelled the unfinished runs (cancel_on_timeout).
            raise run_error(wait, wait.message or "The wait for the Hatchet runs timed out.")
        if wait.status in RUN_ERROR_STATUSES:
            raise run_error(wait)
        raise AirflowException(f"Waiting on the Hatchet runs failed: {wait.message}")

    def cancel(self, run_ids: list[str], why: str) -> None:
        """Cancel runs, best effort: a failure to cancel is logged, not raised.

        :param run_ids: the runs.
        :param why: the reason, for the log.
        """
        if not run_ids:
            return
        try:
            self.hook.cancel_runs(run_ids, confirm=False)  # runs this task created: no read-back per id
            self.log.info("Cancelled %d Hatchet run(s) because %s.", len(run_ids), why)
        except HatchetError as exc:
            self.log.warning("Could not cancel %d Hatchet run(s): %s", len(run_ids), exc)
