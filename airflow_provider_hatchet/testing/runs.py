"""Workflow runs: a time line fixed at creation, read lazily (``render`` turns them into JSON)."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

from .workflows import TaskSpec, WorkflowSpec, task_output

INF = float("inf")
TERMINAL = frozenset({"COMPLETED", "CANCELLED", "FAILED"})
STATUSES = ("QUEUED", "RUNNING", "COMPLETED", "CANCELLED", "FAILED")
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
_TRACEPARENT = re.compile(r"^[^-]*-[^-]{32}-[^-]{16}-[^-]*$")


def traceparent(run_id: str) -> str:
    """Return the W3C ``traceparent`` the server adds to a run's metadata, derived from the run id as it does.

    :param run_id: the run's external id.
    """
    raw = uuid.UUID(run_id).bytes
    trace = hashlib.sha256(b"hatchet-engine-wf-trace:" + raw).hexdigest()[:32]
    span = hashlib.sha256(b"hatchet-engine-wf-span:" + raw).hexdigest()[:16]
    return f"00-{trace}-{span}-01"


def with_traceparent(metadata: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Return the metadata the server stores: the sender's, plus a ``traceparent`` unless it sent a valid one.

    :param metadata: the trigger's ``additionalMetadata``.
    :param run_id: the run's external id.
    """
    sent = metadata.get("traceparent")
    if isinstance(sent, str) and _TRACEPARENT.match(sent):
        return dict(metadata)
    return {**metadata, "traceparent": traceparent(run_id)}


@dataclass(frozen=True, slots=True)
class Prior:
    """A replayed run as reads show it until the replay is visible: as it was when replayed.

    :param status: the run's status.
    :param task_statuses: each task's status.
    :param existing: the tasks that existed, newest first.
    :param error_message: the run's error message.
    :param finished_at: when it had finished.
    :param retry_count: the tasks' retry count.
    """

    status: str
    task_statuses: tuple[str, ...]
    existing: tuple[int, ...]
    error_message: str | None
    finished_at: float | None
    retry_count: int


class Run:
    """One workflow run.

    Status is a function of time: QUEUED until ``start``, then each task RUNNING in turn, then the
    terminal status at ``end``. A cancel request sets ``cancel_at``; from then on anything unfinished
    reads CANCELLED.
    """

    __slots__ = (
        "additional_metadata",
        "body",
        "cancel_at",
        "created",
        "created_iso",
        "created_ms",
        "end",
        "ends",
        "failed_index",
        "id",
        "idempotency_key",
        "input",
        "outcome",
        "prior",
        "priority",
        "raw_input",
        "read_back",
        "replay_visible",
        "retry_count",
        "seq",
        "start",
        "starts",
        "task_ids",
        "tasks",
        "tenant_id",
        "triggering_event",
        "worker_id",
        "workflow",
    )

    def __init__(
        self,
        *,
        run_id: str,
        seq: int,
        workflow: WorkflowSpec,
        tasks: tuple[TaskSpec, ...],
        task_ids: tuple[str, ...],
        body: dict[str, Any],
        created: float,
        created_iso: str,
        created_ms: int = 0,
        worker_id: str = ZERO_UUID,
        idempotency_key: str | None = None,
    ) -> None:
        self.id = run_id
        self.seq = seq
        self.workflow = workflow
        self.tenant_id = workflow.tenant_id
        self.tasks = tasks
        self.task_ids = task_ids
        self.body = body
        self.raw_input: Any = body.get("input")
        self.input: dict[str, Any] = self.raw_input if isinstance(self.raw_input, dict) else {}
        meta = body.get("additionalMetadata")
        self.additional_metadata = with_traceparent(meta if isinstance(meta, dict) else {}, run_id)
        self.priority: int | None = body.get("priority")
        self.created = created
        self.created_iso = created_iso
        self.created_ms = created_ms
        self.worker_id = worker_id
        self.idempotency_key = idempotency_key
        self.triggering_event: str | None = None
        # Set once a trigger waited until it could read the run back: reads see it from then on.
        self.read_back = False
        self.cancel_at: float | None = None
        # A replay re-plans the run; until ``replay_visible`` reads still show ``prior``, the run as it was.
        self.retry_count = 0
        self.prior: Prior | None = None
        self.replay_visible = 0.0
        self._plan(created + workflow.queue_delay)

    def _plan(self, start: float, gap: float = 0.0) -> None:
        """Lay the tasks out from ``start``: each ``gap`` after the one before, a failed or hanging task blocking
        the rest."""
        self.start = start
        starts: list[float] = []
        ends: list[float] = []
        self.failed_index = -1
        clock = self.start
        blocked_at: float | None = None
        for i, task in enumerate(self.tasks):
            if blocked_at is not None:
                starts.append(blocked_at)
                ends.append(blocked_at)
                continue
            if i:
                clock += gap
            starts.append(clock)
            if task.hang:
                ends.append(INF)
                blocked_at = INF
                continue
            clock += task.duration
            ends.append(clock)
            if task.fail:
                self.failed_index = i
                blocked_at = clock
        self.starts = tuple(starts)
        self.ends = tuple(ends)
        self.end = blocked_at if blocked_at is not None else clock
        self.outcome = "FAILED" if self.failed_index >= 0 else "COMPLETED"

    def plan_from(self, start: float) -> None:
        """Lay the tasks out again from ``start`` (``inf`` keeps the run QUEUED): for a run no worker serves.

        :param start: the simulator clock when its first task starts.
        """
        self._plan(start)

    def replay(self, tasks: tuple[TaskSpec, ...], now: float, lag: float, gap: float = 0.0) -> None:
        """Re-run every task in place, one attempt later, as the server's replay does; reads show the run as it
        was for ``lag`` seconds. A DAG's next task is re-created ``gap`` after the one before it completed; until
        then it shows its earlier attempt, and a run whose earlier attempt failed reads FAILED in the gap.

        :param tasks: the tasks of the new attempt (a per-run override may depend on the attempt).
        :param now: the simulator clock.
        :param lag: seconds the replay stays invisible to reads.
        :param gap: seconds between a task's end and the next task's re-creation.
        """
        self.prior = Prior(
            status=self.status(now), task_statuses=tuple(self.task_status(i, now) for i in range(len(self.tasks))),
            existing=tuple(self.existing_tasks(now)), error_message=self.error_message(now),
            finished_at=self.finished_at(now), retry_count=self.retry_count,
        )
        self.replay_visible = now + lag
        self.retry_count += 1
        self.tasks = tasks
        self.cancel_at = None
        self._plan(self.replay_visible + self.workflow.queue_delay, gap)

    def _before_replay(self, now: float) -> Prior | None:
        return self.prior if self.prior is not None and now < self.replay_visible else None

    def _earlier_attempt(self, i: int, now: float) -> Prior | None:
        """The earlier attempt, while replayed task ``i`` is not re-created yet (it shows that attempt)."""
        prior = self.prior
        if prior is None or i == 0 or now >= self.starts[i] or 0 <= self.failed_index < i:
            return None
        return prior

    def task_retry_count(self, now: float, i: int | None = None) -> int:
        """Return the retry count of task ``i`` (of the run's newest task when None) as reads show it at ``now``.

        :param now: the simulator clock.
        :param i: the task index.
        """
        prior = self._before_replay(now) or (self._earlier_attempt(i, now) if i is not None else None)
        return prior.retry_count if prior is not None else self.retry_count

    @property
    def is_dag(self) -> bool:
        """Whether the run has several tasks (a DAG); a one-task run is a standalone task."""
        return len(self.tasks) > 1

    @property
    def display_name(self) -> str:
        """Return the run's display name: ``<workflow>-<ms>`` for a DAG, the task's display name otherwise."""
        return f"{self.workflow.name}-{self.created_ms}" if self.is_dag else self.task_display_name(0)

    def task_display_name(self, i: int) -> str:
        """Return task ``i``'s display name, ``<task>-<epoch milliseconds of its creation>``.

        :param i: the task index.
        """
        return f"{self.tasks[i].name}-{self.created_ms + round((self.task_created(i) - self.created) * 1000)}"

    def task_created(self, i: int) -> float:
        """Return when task ``i`` is created: a DAG's next task only once the one before it completed.

        :param i: the task index.
        """
        if i == 0:
            return self.created
        if 0 <= self.failed_index < i:
            return INF
        return self.ends[i - 1]

    def task_exists(self, i: int, now: float) -> bool:
        """Tell whether task ``i`` was created by ``now`` (a cancel before that means never).

        :param i: the task index.
        :param now: the simulator clock.
        """
        created = self.task_created(i)
        return created <= now and not (self.cancel_at is not None and self.cancel_at <= created)

    def existing_tasks(self, now: float) -> list[int]:
        """Return the indexes of the tasks created by ``now``, newest first (the server's order).

        :param now: the simulator clock.
        """
        prior = self._before_replay(now)
        if prior is not None:
            return list(prior.existing)
        # A replay re-creates the tasks in place: those of the earlier attempt go on existing.
        earlier = self.prior.existing if self.prior is not None else ()
        return [i for i in range(len(self.tasks) - 1, -1, -1) if i in earlier or self.task_exists(i, now)]

    @property
    def step_ids(self) -> tuple[str, ...]:
        """Return the workflow's step ids, one per task."""
        return self.workflow.step_ids

    def cancelled_by(self, now: float) -> bool:
        """Tell whether a cancel took effect on the unfinished run by ``now``.

        :param now: the simulator clock.
        """
        c = self.cancel_at
        return c is not None and now >= c and self.end > c

    def status(self, now: float) -> str:
        """Return the run status at ``now``.

        :param now: the simulator clock.
        """
        prior = self._before_replay(now)
        if prior is not None:
            return prior.status
        if self.cancel_at is not None and self.cancelled_by(now):
            return "CANCELLED"
        if now < self.start:
            return "QUEUED"
        if now < self.end:
            # Between two tasks of a replay, no task is queued or running: the earlier attempt's failure counts.
            waiting = [i for i in range(1, len(self.tasks)) if self.ends[i - 1] <= now < self.starts[i]]
            if waiting and self.prior is not None and "FAILED" in self.prior.task_statuses[waiting[0]:]:
                return "FAILED"
            return "RUNNING"
        return self.outcome

    def task_status(self, i: int, now: float) -> str:
        """Return the status of task ``i`` at ``now``.

        :param i: the task index.
        :param now: the simulator clock.
        """
        prior = self._before_replay(now) or self._earlier_attempt(i, now)
        if prior is not None:
            return prior.task_statuses[i]
        c = self.cancel_at
        end = self.ends[i]
        if c is not None and now >= c and end > c:
            return "CANCELLED"
        if self.failed_index >= 0 and i > self.failed_index:
            return "CANCELLED" if now >= end else "QUEUED"
        if now < self.starts[i]:
            return "QUEUED"
        if now < end:
            return "RUNNING"
        return "FAILED" if i == self.failed_index else "COMPLETED"

    def task_finished_at(self, i: int, status: str) -> float | None:
        """Return when a task reached its terminal status, or ``None`` while it has not.

        :param i: the task index.
        :param status: the task's current status.
        """
        if status not in TERMINAL:
            return None
        end = self.ends[i]
        if status == "CANCELLED" and self.cancel_at is not None and end > self.cancel_at:
            return self.cancel_at
        return end

    def task_started_at(self, i: int, status: str, now: float) -> float | None:
        """Return when task ``i`` started, or ``None`` if it never did.

        :param i: the task index.
        :param status: the task's current status.
        :param now: the simulator clock.
        """
        start = self.starts[i]
        if (self.failed_index >= 0 and i > self.failed_index) or start == INF or now < start:
            return None
        if status == "CANCELLED" and self.cancel_at is not None and self.cancel_at <= start:
            return None
        return start

    def started_at(self, now: float) -> float | None:
        """Return when the run's first task started, or ``None`` if it has not.

        :param now: the simulator clock.
        """
        if now < self.start or (self.cancel_at is not None and self.cancel_at <= self.start):
            return None
        return self.start

    def finished_at(self, now: float) -> float | None:
        """Return when the run reached its terminal status, or ``None`` while it has not.

        :param now: the simulator clock.
        """
        prior = self._before_replay(now)
        if prior is not None:
            return prior.finished_at
        status = self.status(now)
        if status not in TERMINAL:
            return None
        return self.cancel_at if status == "CANCELLED" else self.end

    def output(self, now: float) -> dict[str, Any]:
        """Return the output of the task that finished last (``{}`` when none did).

        :param now: the simulator clock.
        """
        for i in range(len(self.tasks) - 1, -1, -1):
            if self.task_status(i, now) == "COMPLETED":
                return task_output(self.workflow, i, self.input)
        return {}

    def error_message(self, now: float) -> str | None:
        """Return the failed task's message when the run has FAILED.

        :param now: the simulator clock.
        """
        prior = self._before_replay(now)
        if prior is not None:
            return prior.error_message
        if self.failed_index >= 0 and self.task_status(self.failed_index, now) == "FAILED":
            return self.tasks[self.failed_index].error_message
        return None
