"""Typed views of the Hatchet v1 REST resources this provider uses.

Only the fields the provider reads are declared; everything else the server sends is ignored, so a newer
server adding fields never breaks parsing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import AliasPath, BaseModel, BeforeValidator, ConfigDict, Field


class RunStatus(str, enum.Enum):
    """``V1TaskStatus``: the status of a workflow run or task."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        """Whether the run has finished and its status will not change again."""
        return self in TERMINAL_STATUSES


# The statuses of a finished run, which will not change again, in the order list queries name them.
TERMINAL_STATUSES = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
# The statuses of a run that finished without completing.
UNSUCCESSFUL_STATUSES = (RunStatus.FAILED, RunStatus.CANCELLED)
# The statuses of a run not finished yet.
UNFINISHED_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
# The statuses of a run a retry may re-attach to instead of triggering another: queued, running or completed.
REUSABLE_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.COMPLETED})
# Go's zero time: what the server sends for a start or finish that has not happened.
_GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def _unset_if_zero(value: Any) -> Any:
    return None if value == _GO_ZERO_TIME else value


# A time the server may send as Go's zero time when it is not set.
OptionalTime = Annotated[datetime | None, BeforeValidator(_unset_if_zero)]


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class TaskSummary(_Model):
    """One task of a run (``V1TaskSummary``)."""

    task_external_id: str | None = Field(default=None, alias="taskExternalId")
    # Increases with creation; the server lists a run's tasks newest first.
    task_id: int | None = Field(default=None, alias="taskId")
    display_name: str = Field(default="", alias="displayName")
    action_id: str | None = Field(default=None, alias="actionId")
    step_id: str | None = Field(default=None, alias="stepId")
    status: RunStatus
    output: dict[str, Any] = Field(default_factory=dict)
    error_message: str | None = Field(default=None, alias="errorMessage")
    # The latest attempt, counted from 1 (``retryCount`` + 1): what the log endpoint's ``attempt`` filters on.
    attempt: int | None = None
    # How many times the task was retried or replayed: a replay of the run adds one to each task it re-runs.
    retry_count: int = Field(default=0, alias="retryCount")

    @property
    def named(self) -> bool:
        """Whether ``actionId`` carries the task's readable name."""
        return bool(self.action_id) and ":" in (self.action_id or "")

    @property
    def name(self) -> str:
        """The task's readable name: the part of ``actionId`` after ``<workflow>:``, else the display name."""
        if self.action_id and self.named:
            return self.action_id.split(":", 1)[1]
        return self.display_name


class WorkflowRun(_Model):
    """A workflow run (``V1WorkflowRun``)."""

    id: str = Field(validation_alias=AliasPath("metadata", "id"))
    status: RunStatus
    display_name: str = Field(default="", alias="displayName")
    workflow_id: str | None = Field(default=None, alias="workflowId")
    additional_metadata: dict[str, Any] = Field(default_factory=dict, alias="additionalMetadata")
    input: dict[str, Any] = Field(default_factory=dict)
    output: dict[str, Any] = Field(default_factory=dict)
    error_message: str | None = Field(default=None, alias="errorMessage")
    created_at: OptionalTime = Field(default=None, alias="createdAt")
    # When the server stored the run: the time the list's ``since`` and ``until`` filters compare with.
    inserted_at: datetime | None = Field(default=None, validation_alias=AliasPath("metadata", "createdAt"))
    started_at: OptionalTime = Field(default=None, alias="startedAt")
    finished_at: OptionalTime = Field(default=None, alias="finishedAt")


# The keys of a task's input envelope that a one-task run's ``input`` always holds.
_ENVELOPE_KEYS = frozenset({"input", "parents", "triggered_by"})


class RunDetails(_Model):
    """A run with its tasks (``V1WorkflowRunDetails``)."""

    run: WorkflowRun
    tasks: list[TaskSummary] = Field(default_factory=list)
    # One entry per task of the workflow, created or not (``tasks`` holds only the created ones).
    shape: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def id(self) -> str:
        """The run id."""
        return self.run.id

    def trigger_input(self) -> Any:
        """The input the run was triggered with.

        Hatchet answers a one-task run's ``input`` as its task's envelope, ``{"input": <the input>, "parents": {},
        "triggered_by": ..., ...}``, and a multi-task run's as the bare input; this unwraps the envelope. The number
        of tasks comes from the workflow's ``shape`` (a DAG run that failed at its first task has created one task
        only), or from ``tasks`` when the server sends no shape.
        """
        one_task = len(self.shape) == 1 if self.shape else len(self.tasks) == 1
        raw = self.run.input
        if one_task and raw.keys() >= _ENVELOPE_KEYS and isinstance(raw["parents"], dict):
            return raw["input"]
        return raw

    @property
    def status(self) -> RunStatus:
        """The run status."""
        return self.run.status

    def tasks_in_order(self) -> list[TaskSummary]:
        """The tasks in the order they were created (the server lists them newest first)."""
        return sorted(self.tasks, key=lambda task: task.task_id if task.task_id is not None else 0)

    def task_outputs(self) -> dict[str, Any]:
        """The outputs keyed by task name, in task creation order, as hatchet-sdk's ``result()`` returns them."""
        return {task.name: task.output for task in self.tasks_in_order()}

    def retry_count(self) -> int:
        """The highest retry count of the run's tasks: it rises as soon as a replay of the run takes effect."""
        return max((task.retry_count for task in self.tasks), default=0)

    def replay_in_progress(self) -> bool:
        """Whether a FAILED read is a replay under way: a failed task is an older attempt than another task.

        A replayed DAG run re-runs its tasks one after another; until a failed task is re-created, it keeps its
        old attempt's FAILED, and the run reads FAILED whenever no task is queued or running between two tasks.
        """
        newest = self.retry_count()
        return self.status is RunStatus.FAILED and any(
            task.status is RunStatus.FAILED and task.retry_count < newest for task in self.tasks
        )

    def error_messages(self) -> dict[str, str]:
        """Hatchet's error message for each failed task, keyed by task name (the run's own if no task says)."""
        errors = {t.name: t.error_message or "failed" for t in self.tasks_in_order() if t.status is RunStatus.FAILED}
        if not errors and self.run.error_message:
            errors[self.run.display_name or self.run.id] = self.run.error_message
        return errors


class RunSummary(_Model):
    """A row of the run list (``V1TaskSummary`` with ``only_tasks=false``): one workflow run."""

    id: str = Field(validation_alias=AliasPath("metadata", "id"))
    status: RunStatus
    display_name: str = Field(default="", alias="displayName")
    additional_metadata: dict[str, Any] = Field(default_factory=dict, alias="additionalMetadata")
    created_at: OptionalTime = Field(default=None, alias="createdAt")
    # When the server stored the run: the time the list's ``since`` and ``until`` filters compare with.
    inserted_at: datetime | None = Field(default=None, validation_alias=AliasPath("metadata", "createdAt"))
    error_message: str | None = Field(default=None, alias="errorMessage")
    finished_at: OptionalTime = Field(default=None, alias="finishedAt")
    # Filled only when the list was read with ``include_payloads``: a DAG run's tasks are its ``children``; a
    # single-task run is its own task (``stepId``, ``taskId`` and ``output`` are that task's), with no name.
    step_id: str | None = Field(default=None, alias="stepId")
    task_id: int | None = Field(default=None, alias="taskId")
    output: dict[str, Any] = Field(default_factory=dict)
    children: list[TaskSummary] = Field(default_factory=list)

    def details(self, task_names: Mapping[str, str]) -> RunDetails | None:
        """The run's details as this row tells them, when it was read with ``include_payloads``; None when a task
        would be unnamed (a single-task run whose step is not in ``task_names``, or a child without ``actionId``).

        :param task_names: task names by step id, learnt from earlier details reads.
        """
        # The values come from this validated row: no need to validate them again. Every field with a default
        # factory is given: model_construct would otherwise inspect each factory's signature, for every row (a
        # third of a 1,000-run confirming round's time, measured on Hatchet v0.105.0).
        run = WorkflowRun.model_construct(
            id=self.id, status=self.status, display_name=self.display_name, error_message=self.error_message,
            additional_metadata=self.additional_metadata, created_at=self.created_at, inserted_at=self.inserted_at,
            input={}, output={},
        )
        if self.children:
            if not all(task.named for task in self.children):
                return None
            return RunDetails.model_construct(run=run, tasks=self.children, shape=[])
        name = task_names.get(self.step_id or "")
        if name is None:
            return None
        task = TaskSummary.model_construct(
            task_external_id=self.id, task_id=self.task_id, display_name=name, step_id=self.step_id,
            status=self.status, output=self.output, error_message=self.error_message,
        )
        return RunDetails.model_construct(run=run, tasks=[task], shape=[])

    def has_metadata(self, pairs: Mapping[str, str]) -> bool:
        """Whether the run carries every pair. Whoever acts on a row of a list filtered by metadata checks it:
        Hatchet before v0.73.20 (#2336, September 2025) drops a filter whose value holds a ``:`` and lists every run.

        :param pairs: metadata keys and values.
        """
        return all(self.additional_metadata.get(key) == value for key, value in pairs.items())


class Pagination(_Model):
    """Paging information of a list response."""

    current_page: int | None = None
    next_page: int | None = None
    num_pages: int | None = None


class RunPage(_Model):
    """One page of the run list (``V1TaskSummaryList``)."""

    rows: list[RunSummary] = Field(default_factory=list)
    pagination: Pagination = Field(default_factory=Pagination)


class Workflow(_Model):
    """A workflow definition (``Workflow``)."""

    id: str = Field(validation_alias=AliasPath("metadata", "id"))
    name: str


class WorkflowPage(_Model):
    """One page of the workflow list (``WorkflowList``)."""

    rows: list[Workflow] = Field(default_factory=list)
    pagination: Pagination = Field(default_factory=Pagination)


class LogLine(_Model):
    """One line a task logged (``V1LogLine``)."""

    message: str
    created_at: datetime = Field(alias="createdAt")
    level: str | None = None
    attempt: int | None = None


class LogPage(_Model):
    """The log endpoint's answer (``V1LogLineList``); its pagination always reads 0, so it is not kept."""

    rows: list[LogLine] = Field(default_factory=list)
