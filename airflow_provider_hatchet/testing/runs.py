"""Workflow runs: a time line fixed at creation, read lazily, and its JSON renderings."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .workflows import TaskSpec, WorkflowSpec, task_output

INF = float("inf")
TERMINAL = frozenset({"COMPLETED", "CANCELLED", "FAILED"})
STATUSES = ("QUEUED", "RUNNING", "COMPLETED", "CANCELLED", "FAILED")
ZERO_UUID = "00000000-0000-0000-0000-000000000000"

IsoFn = Callable[[float], str]


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
        "end",
        "ends",
        "failed_index",
        "id",
        "input",
        "outcome",
        "priority",
        "seq",
        "start",
        "starts",
        "task_ids",
        "tasks",
        "tenant_id",
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
    ) -> None:
        self.id = run_id
        self.seq = seq
        self.workflow = workflow
        self.tenant_id = workflow.tenant_id
        self.tasks = tasks
        self.task_ids = task_ids
        self.body = body
        run_input = body.get("input")
        self.input: dict[str, Any] = run_input if isinstance(run_input, dict) else {}
        meta = body.get("additionalMetadata")
        self.additional_metadata: dict[str, Any] = meta if isinstance(meta, dict) else {}
        self.priority: int | None = body.get("priority")
        self.created = created
        self.created_iso = created_iso
        self.cancel_at: float | None = None
        self.start = created + workflow.queue_delay
        starts: list[float] = []
        ends: list[float] = []
        self.failed_index = -1
        clock = self.start
        blocked_at: float | None = None
        for i, task in enumerate(tasks):
            if blocked_at is not None:
                starts.append(blocked_at)
                ends.append(blocked_at)
                continue
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

    @property
    def display_name(self) -> str:
        """Return the run's display name, ``<workflow>-<first 6 characters of the id>``."""
        return f"{self.workflow.name}-{self.id[:6]}"

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
        if self.cancel_at is not None and self.cancelled_by(now):
            return "CANCELLED"
        if now < self.start:
            return "QUEUED"
        if now < self.end:
            return "RUNNING"
        return self.outcome

    def task_status(self, i: int, now: float) -> str:
        """Return the status of task ``i`` at ``now``.

        :param i: the task index.
        :param now: the simulator clock.
        """
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
        if self.failed_index >= 0 and self.task_status(self.failed_index, now) == "FAILED":
            return self.tasks[self.failed_index].error_message
        return None

    def updated(self, now: float) -> float:
        """Return the time of the run's latest change up to ``now``.

        :param now: the simulator clock.
        """
        moments = [self.created]
        if now >= self.start:
            moments.append(self.start)
        if self.end <= now:
            moments.append(self.end)
        if self.cancel_at is not None and self.cancel_at <= now:
            moments.append(self.cancel_at)
        return max(moments)


def _times(row: dict[str, Any], started: float | None, finished: float | None, iso: IsoFn) -> None:
    if started is not None:
        row["startedAt"] = iso(started)
    if finished is not None:
        row["finishedAt"] = iso(finished)
        if started is not None:
            row["duration"] = round((finished - started) * 1000)


def run_summary(run: Run, now: float, iso: IsoFn, *, include_payloads: bool) -> dict[str, Any]:
    """Render the run as the ``V1TaskSummary`` row of a list with ``only_tasks=false``.

    :param run: the run.
    :param now: the simulator clock.
    :param iso: converts clock times to RFC 3339.
    :param include_payloads: include input and output (else both ``{}``).
    """
    status = run.status(now)
    single = len(run.tasks) == 1
    row = _summary_fields(run, include_payloads)
    row.update({
        "metadata": {"id": run.id, "createdAt": run.created_iso, "updatedAt": iso(run.updated(now))},
        "displayName": run.display_name,
        "status": status,
        "output": run.output(now) if include_payloads else {},
        "taskExternalId": run.task_ids[0] if single else run.id,
        "taskId": run.seq * 16,
    })
    if single:
        row["actionId"] = run.workflow.action_id(run.tasks[0].name)
        row["stepId"] = run.step_ids[0]
    started = run.started_at(now)
    finished: float | None = None
    if status in TERMINAL:
        finished = run.cancel_at if status == "CANCELLED" else run.end
    _times(row, started, finished, iso)
    error = run.error_message(now)
    if error is not None:
        row["errorMessage"] = error
    return row


def task_summary(run: Run, i: int, now: float, iso: IsoFn, *, include_payloads: bool = True) -> dict[str, Any]:
    """Render task ``i`` of a run as ``V1TaskSummary``.

    :param run: the run.
    :param i: the task index.
    :param now: the simulator clock.
    :param iso: converts clock times to RFC 3339.
    :param include_payloads: include input and output (else both ``{}``).
    """
    task = run.tasks[i]
    status = run.task_status(i, now)
    task_id = run.task_ids[i]
    output = task_output(run.workflow, i, run.input) if status == "COMPLETED" and include_payloads else {}
    row = _summary_fields(run, include_payloads)
    row.update({
        "metadata": {"id": task_id, "createdAt": run.created_iso, "updatedAt": run.created_iso},
        "actionId": run.workflow.action_id(task.name),
        "displayName": task.name,
        "status": status,
        "output": output,
        "taskExternalId": task_id,
        "taskId": run.seq * 16 + i,
        "stepId": run.step_ids[i],
    })
    finished = run.task_finished_at(i, status)
    _times(row, run.task_started_at(i, status, now), finished, iso)
    if finished is not None:
        row["metadata"]["updatedAt"] = iso(finished)
    if status == "FAILED":
        row["errorMessage"] = task.error_message
    return row


def _summary_fields(run: Run, include_payloads: bool) -> dict[str, Any]:
    """The ``V1TaskSummary`` fields a run's row and its task rows share."""
    return {
        "createdAt": run.created_iso,
        "taskInsertedAt": run.created_iso,
        "input": run.input if include_payloads else {},
        "additionalMetadata": run.additional_metadata,
        "numSpawnedChildren": 0,
        "tenantId": run.tenant_id,
        "type": "TASK" if len(run.tasks) == 1 else "DAG",
        "workflowId": run.workflow.id,
        "workflowName": run.workflow.name,
        "workflowRunExternalId": run.id,
        "workflowVersionId": run.workflow.version_id,
        "retryCount": 0,
        "attempt": 1,
    }


def _task_events(run: Run, now: float, iso: IsoFn) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    base = run.seq * 64
    for i, task in enumerate(run.tasks):
        status = run.task_status(i, now)
        moments: list[tuple[float, str, dict[str, Any]]] = [(run.created, "QUEUED", {})]
        started = run.task_started_at(i, status, now)
        if started is not None:
            moments.append((started, "STARTED", {}))
        finished = run.task_finished_at(i, status)
        if finished is not None:
            if status == "COMPLETED":
                output = json.dumps(task_output(run.workflow, i, run.input), separators=(",", ":"))
                moments.append((finished, "FINISHED", {"output": output}))
            elif status == "FAILED":
                moments.append((finished, "FAILED", {"errorMessage": task.error_message}))
            else:
                moments.append((finished, "CANCELLED", {"message": "Task was cancelled"}))
        for at, kind, extra in moments:
            event = {"id": base + len(events), "taskId": run.task_ids[i], "timestamp": iso(at),
                     "eventType": kind, "message": "", "taskDisplayName": task.name, "retryCount": 0,
                     "attempt": 1}
            event.update(extra)
            events.append(event)
    return events


def run_details(run: Run, now: float, iso: IsoFn) -> dict[str, Any]:
    """Render ``V1WorkflowRunDetails``.

    :param run: the run.
    :param now: the simulator clock.
    :param iso: converts clock times to RFC 3339.
    """
    summary = run_summary(run, now, iso, include_payloads=True)
    details_run: dict[str, Any] = {
        key: summary[key]
        for key in ("metadata", "status", "tenantId", "additionalMetadata", "displayName", "workflowId",
                    "output", "input", "workflowVersionId", "createdAt", "startedAt", "finishedAt",
                    "duration", "errorMessage")
        if key in summary
    }
    shape = [
        {"taskExternalId": run.task_ids[i], "stepId": run.step_ids[i],
         "childrenStepIds": [run.step_ids[i + 1]] if i + 1 < len(run.tasks) else [],
         "taskName": task.name}
        for i, task in enumerate(run.tasks)
    ]
    return {
        "run": details_run,
        "taskEvents": _task_events(run, now, iso),
        "shape": shape,
        "tasks": [task_summary(run, i, now, iso) for i in range(len(run.tasks))],
    }


def trigger_stub(run_id: str, created_iso: str) -> dict[str, Any]:
    """Render the body the trigger answers with ``return_only_id`` (it does not match the spec).

    :param run_id: the new run's id.
    :param created_iso: creation time.
    """
    return {
        "run": {
            "metadata": {"id": run_id, "createdAt": created_iso, "updatedAt": created_iso},
            "status": "",
            "tenantId": ZERO_UUID,
            "displayName": "",
            "workflowId": ZERO_UUID,
            "input": {},
            "output": {},
        },
        "taskEvents": None,
        "shape": None,
        "tasks": None,
    }
