"""The JSON the server renders for runs and tasks, field for field as Hatchet v0.105's transformers do.

The server builds these from different queries, so the same run looks different in each: the details' run
(``V1WorkflowRun``, times always present, a missing one as Go's zero time), the details' tasks, the list's run
rows (always ``type: DAG``, with ``children`` for a DAG) and the list's task rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .runs import INF, ZERO_UUID, Run
from .workflows import WorkflowSpec, task_output

IsoFn = Callable[[float], str]
ZERO_TIME = "0001-01-01T00:00:00Z"
# Go's time.Sub saturates at the int64 nanosecond range: what ``duration`` reads when a time is missing.
_MAX_MS = 9223372036854
SENT_TO_WORKER = "Sent task run to the assigned worker"


def go_duration_ms(started: float | None, finished: float | None) -> int:
    """Return ``finishedAt - startedAt`` in milliseconds, a missing time counting as Go's zero time.

    :param started: the start (simulator clock), or ``None``.
    :param finished: the end (simulator clock), or ``None``.
    """
    if started is None:
        return 0 if finished is None else _MAX_MS
    if finished is None:
        return -_MAX_MS
    return round((finished - started) * 1000)


def jsonb_text(value: Any) -> str:
    """Return a JSON value as Postgres prints ``jsonb``: keys by length then bytes, ``", "`` and ``": "``.

    :param value: a JSON value.
    """
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ", ".join(f"{json.dumps(k)}: {jsonb_text(value[k])}" for k in keys) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(jsonb_text(v) for v in value) + "]"
    return json.dumps(value)


def task_input(run: Run, i: int) -> dict[str, Any]:
    """Return the payload a task receives: the run input wrapped with its parents' outputs.

    :param run: the run.
    :param i: the task index.
    """
    parents = {run.tasks[i - 1].name: task_output(run.workflow, i - 1, run.input)} if i else {}
    return {"input": run.raw_input, "overrides": None, "parents": parents, "triggered_by": "manual",
            "triggers": {"filter_payload": None}, "user_data": None}


def run_input(run: Run) -> dict[str, Any]:
    """Return a run's ``input``: a DAG's as sent, a standalone task's as its task received it (wrapped).

    :param run: the run.
    """
    if run.is_dag:
        return dict(run.input)
    return task_input(run, 0)


def _times(row: dict[str, Any], started: float | None, finished: float | None, iso: IsoFn) -> None:
    if started is not None:
        row["startedAt"] = iso(started)
    if finished is not None:
        row["finishedAt"] = iso(finished)
        if started is not None:
            row["duration"] = go_duration_ms(started, finished)


def _task_fields(run: Run, i: int, now: float, iso: IsoFn, include_payloads: bool) -> dict[str, Any]:
    task = run.tasks[i]
    status = run.task_status(i, now)
    created = iso(run.task_created(i))
    row: dict[str, Any] = {
        "actionId": run.workflow.action_id(task.name),
        "additionalMetadata": run.additional_metadata,
        "attempt": run.task_retry_count(now, i) + 1,
        "displayName": run.task_display_name(i),
        "errorMessage": task.error_message if status == "FAILED" else "",
        "input": task_input(run, i) if include_payloads else {},
        "metadata": {"id": run.task_ids[i], "createdAt": created, "updatedAt": created},
        "numSpawnedChildren": 0,
        "output": task_output(run.workflow, i, run.input) if status == "COMPLETED" and include_payloads else {},
        "retryCount": run.task_retry_count(now, i),
        "status": status,
        "stepId": run.step_ids[i],
        "taskExternalId": run.task_ids[i],
        "taskId": run.seq * 16 + i,
        "taskInsertedAt": created,
        "tenantId": run.tenant_id,
        "type": "TASK",
        "workflowId": run.workflow.id,
        "workflowRunExternalId": run.id,
        "workflowVersionId": run.workflow.version_id,
    }
    _times(row, run.task_started_at(i, status, now), run.task_finished_at(i, status), iso)
    return row


def details_task(run: Run, i: int, now: float, iso: IsoFn) -> dict[str, Any]:
    """Render task ``i`` as the details' ``tasks[]`` item (``createdAt`` is Go's zero time there).

    :param run: the run.
    :param i: the task index.
    :param now: the simulator clock.
    :param iso: converts clock times to RFC 3339.
    """
    row = _task_fields(run, i, now, iso, include_payloads=True)
    row.update({"createdAt": ZERO_TIME, "isDurable": False, "isEvicted": False})
    return row


def list_task(run: Run, i: int, now: float, iso: IsoFn, *, include_payloads: bool) -> dict[str, Any]:
    """Render task ``i`` as a task row of the list (``only_tasks=true``, or a DAG row's ``children``).

    :param run: the run.
    :param i: the task index.
    :param now: the simulator clock.
    :param iso: converts clock times to RFC 3339.
    :param include_payloads: include input and output (else both ``{}``).
    """
    row = _task_fields(run, i, now, iso, include_payloads)
    row.update({"createdAt": row["taskInsertedAt"], "workflowName": run.workflow.name})
    if run.idempotency_key is not None and not run.is_dag:
        row["idempotencyKey"] = run.idempotency_key
    return row


def list_run(run: Run, now: float, iso: IsoFn, *, include_payloads: bool) -> dict[str, Any]:
    """Render a run as a row of the list (``only_tasks=false``); every row says ``type: DAG``.

    :param run: the run.
    :param now: the simulator clock.
    :param iso: converts clock times to RFC 3339.
    :param include_payloads: include input and output (else both ``{}``).
    """
    row: dict[str, Any] = {
        "actionId": "",
        "additionalMetadata": run.additional_metadata,
        "attempt": run.task_retry_count(now) + 1,
        "createdAt": run.created_iso,
        "displayName": run.display_name,
        "errorMessage": run.error_message(now) or "",
        "input": run_input(run) if include_payloads else {},
        "metadata": {"id": run.id, "createdAt": run.created_iso, "updatedAt": run.created_iso},
        "numSpawnedChildren": 0,
        "output": run.output(now) if include_payloads else {},
        "retryCount": run.task_retry_count(now),
        "status": run.status(now),
        "stepId": ZERO_UUID if run.is_dag else run.step_ids[0],
        "taskExternalId": run.id,
        "taskId": 0 if run.is_dag else run.seq * 16,
        "taskInsertedAt": run.created_iso,
        "tenantId": run.tenant_id,
        "type": "DAG",
        "workflowId": run.workflow.id,
        "workflowName": run.workflow.name,
        "workflowRunExternalId": run.id,
        "workflowVersionId": run.workflow.version_id,
    }
    _times(row, run.started_at(now), run.finished_at(now), iso)
    if run.idempotency_key is not None:
        row["idempotencyKey"] = run.idempotency_key
    existing = run.existing_tasks(now)
    if run.is_dag and existing:
        row["children"] = [list_task(run, i, now, iso, include_payloads=include_payloads) for i in existing]
    return row


def details_run(run: Run, now: float, iso: IsoFn) -> dict[str, Any]:
    """Render the details' ``run`` (``V1WorkflowRun``): times and duration always, zero when missing.

    :param run: the run.
    :param now: the simulator clock.
    :param iso: converts clock times to RFC 3339.
    """
    started, finished = run.started_at(now), run.finished_at(now)
    return {
        "additionalMetadata": run.additional_metadata,
        "createdAt": run.created_iso,
        "displayName": run.display_name,
        "duration": go_duration_ms(started, finished),
        "errorMessage": run.error_message(now) or "",
        "finishedAt": iso(finished) if finished is not None else ZERO_TIME,
        "input": run_input(run),
        "metadata": {"id": run.id, "createdAt": run.created_iso, "updatedAt": run.created_iso},
        "output": run.output(now),
        "startedAt": iso(started) if started is not None else ZERO_TIME,
        "status": run.status(now),
        "tenantId": run.tenant_id,
        "workflowId": run.workflow.id,
        "workflowVersionId": run.workflow.version_id,
    }


_EVENT_ORDER = ("QUEUED", "ASSIGNED", "SENT_TO_WORKER", "STARTED", "FINISHED", "FAILED", "CANCELLED")


def task_events(run: Run, now: float, iso: IsoFn) -> list[dict[str, Any]]:
    """Render the details' ``taskEvents``: a DAG's task events, newest first; none for a standalone task.

    :param run: the run.
    :param now: the simulator clock.
    :param iso: converts clock times to RFC 3339.
    """
    if not run.is_dag:
        return []
    moments: list[tuple[float, int, int, dict[str, Any]]] = []
    for i in run.existing_tasks(now):
        status = run.task_status(i, now)
        happened: list[tuple[float, str, dict[str, Any]]] = [(run.task_created(i), "QUEUED", {})]
        started = run.task_started_at(i, status, now)
        if started is not None:
            happened += [(started, "ASSIGNED", {}), (started, "SENT_TO_WORKER", {"message": SENT_TO_WORKER}),
                         (started, "STARTED", {})]
        finished = run.task_finished_at(i, status)
        if finished is not None and finished != INF:
            if status == "COMPLETED":
                output = jsonb_text(task_output(run.workflow, i, run.input))
                happened.append((finished, "FINISHED", {"output": output}))
            else:
                happened.append((finished, status, {"errorMessage": run.tasks[i].error_message
                                                    if status == "FAILED" else ""}))
        for at, kind, extra in happened:
            event = {"attempt": 1, "errorMessage": "", "eventType": kind, "message": "", "output": "",
                     "retryCount": 0, "taskDisplayName": run.task_display_name(i), "taskId": run.task_ids[i],
                     "timestamp": iso(at)}
            if kind != "QUEUED":
                event["workerId"] = run.worker_id
            event.update(extra)
            moments.append((at, i, _EVENT_ORDER.index(kind), event))
    moments.sort(key=lambda m: (m[0], m[1], m[2]), reverse=True)
    base = run.seq * 64
    for number, (_, _, _, event) in enumerate(reversed(moments)):
        event["id"] = base + number
    return [event for *_, event in moments]


def workflow_config(spec: WorkflowSpec) -> dict[str, Any]:
    """Render the details' ``workflowConfig``: the workflow version as hatchet-sdk registers it.

    :param spec: the workflow.
    """
    tasks = [
        {"Action": spec.action_id(task.name), "DesiredWorkerLabels": None,
         "Parents": [spec.tasks[i - 1].name] if i else [], "RateLimits": [], "ReadableId": task.name,
         "Retries": 0, "RetryBackoffFactor": None, "RetryBackoffMaxSeconds": None, "ScheduleTimeout": "5m",
         "Timeout": "60s", "TriggerConditions": []}
        for i, task in enumerate(spec.tasks)
    ]
    return {"CronInput": None, "CronTriggers": None, "DefaultPriority": 1, "EventTriggers": None,
            "Name": spec.name, "Sticky": None, "Tasks": tasks, "description": spec.description}


def run_details(run: Run, now: float, iso: IsoFn) -> dict[str, Any]:
    """Render ``V1WorkflowRunDetails``.

    :param run: the run.
    :param now: the simulator clock.
    :param iso: converts clock times to RFC 3339.
    """
    shape = [
        {"childrenStepIds": [run.step_ids[i + 1]] if i + 1 < len(run.tasks) else [], "stepId": run.step_ids[i],
         "taskExternalId": run.task_ids[i] if run.task_exists(i, now) else ZERO_UUID, "taskName": task.name}
        for i, task in enumerate(run.tasks)
    ]
    return {
        "run": details_run(run, now, iso),
        "shape": shape,
        "taskEvents": task_events(run, now, iso),
        "tasks": [details_task(run, i, now, iso) for i in run.existing_tasks(now)],
        "workflowConfig": workflow_config(run.workflow),
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
