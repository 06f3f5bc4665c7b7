"""Registered workflows: how each one behaves and what its tasks return."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Behaviour = Literal["succeed", "fail", "hang", "multi_task"]
BEHAVIOURS: tuple[str, ...] = ("succeed", "fail", "hang", "multi_task")
OutputFn = Callable[[dict[str, Any]], dict[str, Any]]
OutputSpec = Mapping[str, Any] | OutputFn | None
TaskArg = str | Mapping[str, Any]

DEFAULT_TASK = "run"
DEFAULT_MULTI_TASKS: tuple[str, ...] = ("extract", "transform", "load")
OVERRIDE_KEY = "__sim__"


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One task of a workflow.

    :param name: the task's name (its ``displayName``).
    :param duration: seconds the task runs once started.
    :param fail: the task fails when it ends.
    :param hang: the task runs until cancelled.
    :param error_message: the failure message when ``fail`` is set.
    """

    name: str
    duration: float
    fail: bool = False
    hang: bool = False
    error_message: str = ""


@dataclass(slots=True)
class WorkflowSpec:
    """A workflow registered in one tenant.

    :param id: the workflow's UUID.
    :param name: the exact, case-sensitive name runs are triggered by.
    :param tenant_id: the owning tenant.
    :param behaviour: ``succeed``, ``fail``, ``hang`` or ``multi_task``.
    :param tasks: the tasks, run one after another.
    :param queue_delay: seconds a run stays QUEUED before its first task starts.
    :param version_id: the workflow version UUID.
    :param created_at: RFC 3339 creation time.
    :param output: fixed output (mapping) or function of the input for the last task; ``None`` for the default.
    :param step_ids: one step UUID per task, shared by all runs.
    :param description: the workflow's description.
    :param idempotency_key: where a run's idempotency key comes from, as hatchet-sdk's ``key_expression``
        (``input.<path>`` or ``additional_metadata.<key>``); ``None`` for none.
    :param idempotency_ttl: seconds a key stays taken.
    :param on_events: the event keys that trigger a run, with the event's payload as input.
    """

    id: str
    name: str
    tenant_id: str
    behaviour: Behaviour
    tasks: tuple[TaskSpec, ...]
    queue_delay: float
    version_id: str
    created_at: str
    output: OutputSpec = None
    step_ids: tuple[str, ...] = ()
    description: str = field(default="")
    idempotency_key: str | None = None
    idempotency_ttl: float = 600.0
    on_events: tuple[str, ...] = ()

    def action_id(self, task: str) -> str:
        """Return the task's action id, ``<lowercased workflow>:<task>`` as the Python SDK registers it.

        :param task: the task name.
        """
        return f"{self.name.lower()}:{task}"

    def to_admin_json(self) -> dict[str, Any]:
        """Describe the workflow for the admin API."""
        return {
            "id": self.id,
            "name": self.name,
            "tenant_id": self.tenant_id,
            "behaviour": self.behaviour,
            "queue_delay": self.queue_delay,
            "idempotency_key": self.idempotency_key,
            "idempotency_ttl": self.idempotency_ttl,
            "tasks": [
                {"name": t.name, "duration": t.duration, "fail": t.fail, "hang": t.hang,
                 "error_message": t.error_message}
                for t in self.tasks
            ],
        }


def idempotency_value(expression: str | None, body: Mapping[str, Any]) -> str | None:
    """Evaluate a workflow's idempotency key expression on a trigger body.

    :param expression: ``input.<path>`` or ``additional_metadata.<key>`` (dotted), or ``None`` for no key.
    :param body: the trigger request body.
    :raises ValueError: when the expression does not give a string; the engine then drops the run silently.
    """
    if not expression:
        return None
    root, _, path = expression.partition(".")
    value: Any = {"input": body.get("input"), "additional_metadata": body.get("additionalMetadata")}.get(root)
    for part in path.split(".") if path else []:
        if not isinstance(value, Mapping) or part not in value:
            raise ValueError(f"failed to evaluate idempotency key expression {expression!r}: no such key: {part}")
        value = value[part]
    if not isinstance(value, str):
        raise ValueError(f"failed to evaluate idempotency key expression {expression!r}: output must evaluate to "
                         "a string")
    return value


def default_error(workflow: str, task: str) -> str:
    """Return the default failure message of a task.

    :param workflow: the workflow name.
    :param task: the task name.
    """
    return f"Exception: simulated failure in {workflow}:{task}"


def build_tasks(
    name: str,
    behaviour: str,
    *,
    duration: float,
    error_message: str | None,
    tasks: Sequence[TaskArg] | None,
) -> tuple[TaskSpec, ...]:
    """Turn ``register_workflow`` arguments into task specs.

    :param name: the workflow name.
    :param behaviour: one of :data:`BEHAVIOURS`.
    :param duration: default seconds per task.
    :param error_message: failure message for ``fail``.
    :param tasks: task names or dicts ``{name, duration?, fail?, hang?, error_message?}``.
    :raises ValueError: for an unknown behaviour or a task list that does not fit it.
    """
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"behaviour must be one of {BEHAVIOURS}, got {behaviour!r}")
    if behaviour == "multi_task":
        raw: Sequence[TaskArg] = tasks if tasks else DEFAULT_MULTI_TASKS
        specs = tuple(_task_from_arg(name, item, duration) for item in raw)
        if len({s.name for s in specs}) != len(specs):
            raise ValueError("task names must be unique")
        return specs
    if tasks and len(tasks) != 1:
        raise ValueError(f"behaviour {behaviour!r} has exactly one task; use 'multi_task' for more")
    base = _task_from_arg(name, tasks[0], duration) if tasks else TaskSpec(DEFAULT_TASK, duration)
    return (_with_behaviour(name, base, behaviour, error_message),)


def _task_from_arg(workflow: str, item: TaskArg, duration: float) -> TaskSpec:
    if isinstance(item, str):
        return TaskSpec(item, duration)
    task_name = str(item["name"])
    fail = bool(item.get("fail", False))
    message = item.get("error_message") or (default_error(workflow, task_name) if fail else "")
    return TaskSpec(task_name, float(item.get("duration", duration)), fail, bool(item.get("hang", False)),
                    str(message))


def _with_behaviour(workflow: str, task: TaskSpec, behaviour: str, error_message: str | None) -> TaskSpec:
    if behaviour == "fail":
        return TaskSpec(task.name, task.duration, fail=True,
                        error_message=error_message or default_error(workflow, task.name))
    if behaviour == "hang":
        return TaskSpec(task.name, task.duration, hang=True)
    return TaskSpec(task.name, task.duration)


def tasks_for_run(spec: WorkflowSpec, run_input: Mapping[str, Any], retry_count: int = 0) -> tuple[TaskSpec, ...]:
    """Return a run's tasks, applying a per-run ``__sim__`` override found in the input.

    The override ``{"__sim__": {"behaviour": "succeed"|"fail"|"hang"|"fail_first_attempt", "duration": s,
    "error_message": m}}`` changes the last task (the only one of single-task workflows) for this run only;
    ``fail_first_attempt`` fails its first attempt and succeeds once the run is replayed.

    :param spec: the workflow.
    :param run_input: the run input.
    :param retry_count: the attempt's retry count (0 for the first attempt, one more per replay).
    """
    override = run_input.get(OVERRIDE_KEY)
    if not isinstance(override, Mapping):
        return spec.tasks
    last = spec.tasks[-1]
    duration = override.get("duration", last.duration)
    if not isinstance(duration, (int, float)) or isinstance(duration, bool):
        duration = last.duration
    behaviour = override.get("behaviour")
    if behaviour == "fail_first_attempt":
        behaviour = "fail" if retry_count == 0 else "succeed"
    message = override.get("error_message")
    changed = TaskSpec(last.name, float(duration), last.fail, last.hang, last.error_message)
    if behaviour in ("succeed", "fail", "hang"):
        changed = _with_behaviour(spec.name, changed, str(behaviour), str(message) if message else None)
    elif message and changed.fail:
        changed = TaskSpec(changed.name, changed.duration, fail=True, error_message=str(message))
    return (*spec.tasks[:-1], changed)


def task_output(spec: WorkflowSpec, index: int, run_input: dict[str, Any]) -> dict[str, Any]:
    """Return what a successful task returns: derived from the run input so tests can check it.

    The default is ``{"workflow": name, "task": task, "step": index, "echo": input}``; a workflow's
    ``output`` (mapping or function of the input) replaces the last task's output.

    :param spec: the workflow.
    :param index: the task's position.
    :param run_input: the run input.
    """
    if index == len(spec.tasks) - 1 and spec.output is not None:
        if callable(spec.output):
            return dict(spec.output(run_input))
        return dict(spec.output)
    return {"workflow": spec.name, "task": spec.tasks[index].name, "step": index, "echo": run_input}
