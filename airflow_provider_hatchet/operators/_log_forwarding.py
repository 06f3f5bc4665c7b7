"""Hatchet's task logs in the Airflow task log: which tasks, how many lines, under which header.

Used by both trigger operators and the sensor once a wait has ended. Reading the logs is best effort: a failure
is logged as a warning and never changes the task's outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_hatchet._arguments import check_forward_logs, check_line_cap
from airflow_provider_hatchet._compat import redact
from airflow_provider_hatchet.client import (
    UNSUCCESSFUL_STATUSES,
    RunStatus,
    TaskSummary,
    WaitEvent,
    WaitStatus,
    endpoints,
    safe_text,
)
from airflow_provider_hatchet.client.validation import MAX_LOG_LIMIT

if TYPE_CHECKING:
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook

class TaskLog(Protocol):
    """The task's logger: a ``logging.Logger`` on Airflow 2, Airflow's own logger on Airflow 3."""

    def info(self, msg: str, /, *args: Any) -> Any: ...

    def warning(self, msg: str, /, *args: Any) -> Any: ...


DEFAULT_LINES_PER_TASK = 100
DEFAULT_LINES = 1000
# The most requests forwarding makes for one Airflow task: one details read per run, one log read per Hatchet task.
MAX_LOG_READS = 100
_ENDED_BADLY = frozenset(status.value for status in UNSUCCESSFUL_STATUSES)
_STARTED_NOT_COMPLETED = frozenset({RunStatus.RUNNING, *UNSUCCESSFUL_STATUSES})


@dataclass(frozen=True)
class LogForwarding:
    """What to forward, checked when the task is defined.

    :param mode: ``on_failure`` (when the wait did not succeed: the runs that failed or were cancelled, or on a
        timeout the unfinished ones, and in them the tasks that started and did not complete), ``always`` (every
        task of every run) or ``never``.
    :param max_lines_per_task: the most lines written for one Hatchet task: its last ones.
    :param max_lines: the most lines written by one Airflow task, all Hatchet tasks together.
    """

    mode: str = "on_failure"
    max_lines_per_task: int = DEFAULT_LINES_PER_TASK
    max_lines: int = DEFAULT_LINES

    @classmethod
    def checked(cls, mode: object, max_lines_per_task: object, max_lines: object) -> LogForwarding:
        """Check the operator's arguments, each error naming its argument.

        :param mode: ``forward_logs``.
        :param max_lines_per_task: ``forward_logs_max_lines_per_task``.
        :param max_lines: ``forward_logs_max_lines``.
        """
        return cls(check_forward_logs(mode), check_line_cap(max_lines_per_task, "forward_logs_max_lines_per_task"),
                   check_line_cap(max_lines, "forward_logs_max_lines"))

    def runs(self, wait: WaitEvent) -> list[str]:
        """The runs whose logs are read after this wait, in its order.

        ``on_failure`` never reads a run still running when the wait failed: only the runs that ended FAILED or
        CANCELLED; after a timeout, the runs that had not completed (what timed out).

        :param wait: how the wait ended.
        """
        if self.mode == "always":
            return list(wait.run_ids)
        if self.mode == "never" or wait.status is WaitStatus.SUCCESS:
            return []
        if wait.status is WaitStatus.TIMEOUT:
            return [run_id for run_id in wait.run_ids if wait.statuses.get(run_id) != RunStatus.COMPLETED.value]
        return [run_id for run_id in wait.run_ids if wait.statuses.get(run_id) in _ENDED_BADLY]

    def tasks(self, tasks: list[TaskSummary]) -> list[TaskSummary]:
        """The tasks of a chosen run whose logs are read, in creation order.

        :param tasks: the run's tasks, in creation order.
        """
        if self.mode == "always":
            return tasks
        return [task for task in tasks if task.status in _STARTED_NOT_COMPLETED]


@dataclass
class _Budget:
    """What one Airflow task may still write and read."""

    lines: int
    reads: int = MAX_LOG_READS


def forward_logs(hook: HatchetHook, log: TaskLog, wait: WaitEvent, settings: LogForwarding) -> None:
    """Write the chosen tasks' lines into the task log, masked by Airflow's secrets masker; never raises.

    At most :data:`MAX_LOG_READS` requests are made, and ``settings.max_lines`` lines written; a note says what
    was left unread.

    :param hook: the hook to read with.
    :param log: the task's logger.
    :param wait: how the wait ended.
    :param settings: what to forward.
    """
    run_ids = settings.runs(wait)
    budget = _Budget(settings.max_lines)
    for done, run_id in enumerate(run_ids):
        if budget.lines <= 0 or budget.reads <= 0:
            log.info("Hatchet logs of %d more run(s) not read: %s.", len(run_ids) - done, _reached(settings, budget))
            return
        try:
            _forward_run(hook, log, run_id, settings, budget)
        except Exception as exc:  # reading logs must never change the task's outcome
            log.warning("Could not read Hatchet's task logs of run %s: %s", run_id, safe_text(str(exc), 2000))
            return


def _reached(settings: LogForwarding, budget: _Budget) -> str:
    if budget.lines <= 0:
        return f"forward_logs_max_lines ({settings.max_lines}) was reached"
    return f"the cap of {MAX_LOG_READS} log reads per Airflow task was reached"


def _forward_run(hook: HatchetHook, log: TaskLog, run_id: str, settings: LogForwarding, budget: _Budget) -> None:
    budget.reads -= 1
    tasks = settings.tasks(hook.send(endpoints.run_details(run_id)).tasks_in_order())
    for done, task in enumerate(tasks):
        if budget.lines <= 0 or budget.reads <= 0:
            log.info("Hatchet logs of %d more task(s) of run %s not read: %s.", len(tasks) - done, run_id,
                     _reached(settings, budget))
            return
        budget.reads -= 1
        budget.lines -= _forward_task(hook, log, run_id, task, min(settings.max_lines_per_task, budget.lines))


def _forward_task(hook: HatchetHook, log: TaskLog, run_id: str, task: TaskSummary, cap: int) -> int:
    task_id = task.task_external_id or run_id
    attempt = task.attempt or 1
    name = safe_text(task.name, 200)
    # The newest lines, one more than shown to learn whether any were cut; shown oldest first.
    lines = hook.task_logs(task_id, limit=min(cap + 1, MAX_LOG_LIMIT), attempt=attempt, newest_first=True)[::-1]
    log.info("----- Hatchet logs of run %s, task %s (%s), attempt %d -----", run_id, name, safe_text(task_id, 200),
             attempt)
    if not lines:
        log.info("(no lines)")
        return 0
    shown = lines[-cap:]
    if len(lines) > cap:
        log.info("(earlier lines cut: the last %d are shown; see forward_logs_max_lines_per_task and "
                 "forward_logs_max_lines)", cap)
    for line in shown:
        log.info("%s %s %s", line.created_at.isoformat(), safe_text(line.level or "INFO", 20),
                 safe_text(str(redact(line.message))))
    log.info("----- end of Hatchet logs of task %s -----", name)
    return len(shown)
