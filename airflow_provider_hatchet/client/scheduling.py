"""Scheduled runs, crons and events: their models and one :class:`~.endpoints.Call` per endpoint.

Scheduled runs and crons live under the v0 tenant routes (``/api/v1/tenants/{tenant}/workflows/...``), which
v0.105.0 still serves; events are read from ``/api/v1/stable/tenants/{tenant}/events`` (they are pushed over gRPC
only). A scheduled run disappears once it has fired: its GET answers 404 from then on, and the run it made carries
its input and metadata but not its id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from pydantic import AliasPath, Field

from airflow_provider_hatchet.client.endpoints import TENANT, Call, Params, format_time, metadata_filter, segment
from airflow_provider_hatchet.client.errors import HatchetValidationError
from airflow_provider_hatchet.client.models import OptionalTime, Pagination, _Model
from airflow_provider_hatchet.client.paging import WATCH_PAGE_SIZE, WORKFLOW_PAGE_SIZE, Pages
from airflow_provider_hatchet.client.validation import check_run_id


class ScheduledRun(_Model):
    """A scheduled workflow run (``ScheduledWorkflows``)."""

    id: str = Field(validation_alias=AliasPath("metadata", "id"))
    workflow_name: str = Field(default="", alias="workflowName")
    workflow_id: str | None = Field(default=None, alias="workflowId")
    trigger_at: datetime = Field(alias="triggerAt")
    input: dict[str, Any] = Field(default_factory=dict)
    additional_metadata: dict[str, Any] = Field(default_factory=dict, alias="additionalMetadata")
    priority: int | None = None
    workflow_run_id: str | None = Field(default=None, alias="workflowRunId")
    workflow_run_created_at: OptionalTime = Field(default=None, alias="workflowRunCreatedAt")
    # When the server stored the schedule, by its own clock.
    created_at: OptionalTime = Field(default=None, validation_alias=AliasPath("metadata", "createdAt"))

    def has_metadata(self, pairs: Mapping[str, str]) -> bool:
        """Whether the schedule carries every pair (a list filtered by metadata is checked row by row).

        :param pairs: metadata keys and values.
        """
        return all(self.additional_metadata.get(key) == value for key, value in pairs.items())


class ScheduledRunPage(_Model):
    """One page of scheduled runs (``ScheduledWorkflowsList``)."""

    rows: list[ScheduledRun] = Field(default_factory=list)
    pagination: Pagination = Field(default_factory=Pagination)


class Cron(_Model):
    """A cron trigger of a workflow (``CronWorkflows``)."""

    id: str = Field(validation_alias=AliasPath("metadata", "id"))
    name: str = ""
    cron: str
    workflow_name: str = Field(default="", alias="workflowName")
    enabled: bool
    input: dict[str, Any] = Field(default_factory=dict)
    additional_metadata: dict[str, Any] = Field(default_factory=dict, alias="additionalMetadata")
    priority: int | None = None


class CronPage(_Model):
    """One page of crons (``CronWorkflowsList``)."""

    rows: list[Cron] = Field(default_factory=list)
    pagination: Pagination = Field(default_factory=Pagination)


class HatchetEvent(_Model):
    """An event pushed to Hatchet (``V1Event``)."""

    id: str = Field(validation_alias=AliasPath("metadata", "id"))
    key: str
    payload: dict[str, Any] = Field(default_factory=dict)
    additional_metadata: dict[str, Any] = Field(default_factory=dict, alias="additionalMetadata")
    # When the server stored the event: the time the list's ``since`` and ``until`` compare with.
    created_at: datetime = Field(validation_alias=AliasPath("metadata", "createdAt"))
    seen_at: OptionalTime = Field(default=None, alias="seenAt")

    def has_metadata(self, pairs: Mapping[str, str]) -> bool:
        """Whether the event carries every pair (a list filtered by metadata is checked row by row).

        :param pairs: metadata keys and values.
        """
        return all(self.additional_metadata.get(key) == value for key, value in pairs.items())


class EventPage(_Model):
    """One page of events (``V1EventList``)."""

    rows: list[HatchetEvent] = Field(default_factory=list)
    pagination: Pagination = Field(default_factory=Pagination)


EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST_TIME = datetime(9000, 1, 1, tzinfo=timezone.utc)


def check_time(value: object, field: str = "trigger_at") -> datetime:
    """Return an aware datetime from a datetime or an ISO 8601 string; a naive one is taken as UTC.

    :param value: the candidate time.
    :param field: the field name used in the error.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise HatchetValidationError(field, f"must be an ISO 8601 date-time, got {value!r}") from None
    if not isinstance(value, datetime):
        raise HatchetValidationError(field, f"must be a datetime or an ISO 8601 string, got {type(value).__name__}")
    moment = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    # Far from any time Hatchet keeps, and near enough to datetime's bounds to overflow once a margin is added.
    if not EARLIEST_TIME <= moment <= LATEST_TIME:
        raise HatchetValidationError(field, f"({moment.isoformat()}) must be between {EARLIEST_TIME.year} and "
                                     f"{LATEST_TIME.year}")
    return moment


_WORKFLOWS = "/api/v1/tenants/{tenant}/workflows"


def _nothing(body: Any) -> None:
    return None


def schedule(workflow_name: str, trigger_at: datetime, input: Mapping[str, Any],
             additional_metadata: Mapping[str, str] | None = None, priority: int | None = None) -> Call[ScheduledRun]:
    """``POST /api/v1/tenants/{tenant}/workflows/{workflow}/scheduled``; sent once, never retried.

    :param workflow_name: the full (namespaced) workflow name.
    :param trigger_at: when the run is to start.
    :param input: the run input.
    :param additional_metadata: string metadata, carried by the run it makes.
    :param priority: 1..3 or None.
    """
    body: dict[str, Any] = {"input": dict(input), "additionalMetadata": dict(additional_metadata or {}),
                            "triggerAt": format_time(trigger_at)}
    if priority is not None:
        body["priority"] = priority
    path = f"{_WORKFLOWS}/{segment(workflow_name)}/scheduled"
    return Call("POST", path, ScheduledRun.model_validate, json=body, idempotent=False)


def get_scheduled(scheduled_id: str) -> Call[ScheduledRun]:
    """``GET .../workflows/scheduled/{id}``: 404 once the schedule has fired or was deleted.

    :param scheduled_id: the scheduled run's id.
    """
    path = f"{_WORKFLOWS}/scheduled/{segment(check_run_id(scheduled_id, 'scheduled_id'))}"
    return Call("GET", path, ScheduledRun.model_validate)


def list_scheduled(*, workflow_id: str | None = None,
                   additional_metadata: Mapping[str, str] | None = None, offset: int = 0,
                   limit: int = 100) -> Call[ScheduledRunPage]:
    """``GET .../workflows/scheduled``: the schedules that have not fired yet.

    :param workflow_id: only this workflow's (its id, not its name).
    :param additional_metadata: only schedules carrying these pairs.
    :param offset: rows to skip.
    :param limit: rows per page.
    """
    params: Params = [("offset", str(offset)), ("limit", str(limit))]
    if workflow_id:
        params.append(("workflowId", workflow_id))
    params += [("additionalMetadata", kv) for kv in metadata_filter(additional_metadata or {})]
    return Call("GET", f"{_WORKFLOWS}/scheduled", ScheduledRunPage.model_validate, params=tuple(params))


def scheduled_runs(page_size: int = WORKFLOW_PAGE_SIZE, **filters: Any) -> Pages[ScheduledRun]:
    """Every scheduled run :func:`list_scheduled` selects, page after page.

    :param page_size: rows per request.
    :param filters: the filters of :func:`list_scheduled`.
    """
    return Pages(lambda offset, limit: list_scheduled(offset=offset, limit=limit, **filters), page_size)


def delete_scheduled(scheduled_id: str) -> Call[None]:
    """``DELETE .../workflows/scheduled/{id}`` (204); 404 when it has fired or is gone already.

    :param scheduled_id: the scheduled run's id.
    """
    path = f"{_WORKFLOWS}/scheduled/{segment(check_run_id(scheduled_id, 'scheduled_id'))}"
    return Call("DELETE", path, _nothing)


def reschedule(scheduled_id: str, trigger_at: datetime) -> Call[ScheduledRun]:
    """``PATCH .../workflows/scheduled/{id}`` with a new ``triggerAt``.

    :param scheduled_id: the scheduled run's id.
    :param trigger_at: the new time.
    """
    path = f"{_WORKFLOWS}/scheduled/{segment(check_run_id(scheduled_id, 'scheduled_id'))}"
    return Call("PATCH", path, ScheduledRun.model_validate, json={"triggerAt": format_time(trigger_at)})


def create_cron(workflow_name: str, cron_name: str, expression: str, input: Mapping[str, Any],
                additional_metadata: Mapping[str, str] | None = None, priority: int | None = None) -> Call[Cron]:
    """``POST /api/v1/tenants/{tenant}/workflows/{workflow}/crons``; sent once, never retried.

    :param workflow_name: the full (namespaced) workflow name.
    :param cron_name: the cron's name, unique per workflow.
    :param expression: a five-field cron expression (UTC).
    :param input: the input of each run.
    :param additional_metadata: string metadata of each run.
    :param priority: 1..3 or None.
    """
    body: dict[str, Any] = {"input": dict(input), "additionalMetadata": dict(additional_metadata or {}),
                            "cronName": cron_name, "cronExpression": expression}
    if priority is not None:
        body["priority"] = priority
    return Call("POST", f"{_WORKFLOWS}/{segment(workflow_name)}/crons", Cron.model_validate, json=body,
                idempotent=False)


def list_crons(*, workflow_name: str | None = None, cron_name: str | None = None,
               offset: int = 0, limit: int = 100) -> Call[CronPage]:
    """``GET .../workflows/crons``.

    :param workflow_name: only this workflow's (full name).
    :param cron_name: only crons of this name.
    :param offset: rows to skip.
    :param limit: rows per page.
    """
    params: Params = [("offset", str(offset)), ("limit", str(limit))]
    if workflow_name:
        params.append(("workflowName", workflow_name))
    if cron_name:
        params.append(("cronName", cron_name))
    return Call("GET", f"{_WORKFLOWS}/crons", CronPage.model_validate, params=tuple(params))


def set_cron_enabled(cron_id: str, enabled: bool) -> Call[None]:
    """``PATCH .../workflows/crons/{id}`` ``{enabled}`` (204).

    :param cron_id: the cron's id.
    :param enabled: whether it fires.
    """
    path = f"{_WORKFLOWS}/crons/{segment(check_run_id(cron_id, 'cron_id'))}"
    return Call("PATCH", path, _nothing, json={"enabled": bool(enabled)})


def delete_cron(cron_id: str) -> Call[None]:
    """``DELETE .../workflows/crons/{id}`` (204).

    :param cron_id: the cron's id.
    """
    return Call("DELETE", f"{_WORKFLOWS}/crons/{segment(check_run_id(cron_id, 'cron_id'))}", _nothing)


def list_events(*, since: datetime, until: datetime | None = None, keys: Iterable[str] = (),
                additional_metadata: Mapping[str, str] | None = None, offset: int = 0,
                limit: int = 100) -> Call[EventPage]:
    """``GET /api/v1/stable/tenants/{tenant}/events``: events newest first.

    :param since: the earliest time the server stored the event.
    :param until: the latest.
    :param keys: only events with one of these keys (full, namespaced keys).
    :param additional_metadata: only events carrying these pairs.
    :param offset: rows to skip.
    :param limit: rows per page.
    """
    params: Params = [("since", format_time(since)), ("offset", str(offset)), ("limit", str(limit))]
    if until is not None:
        params.append(("until", format_time(until)))
    params += [("keys", key) for key in keys]
    params += [("additionalMetadata", kv) for kv in metadata_filter(additional_metadata or {})]
    return Call("GET", f"{TENANT}/events", EventPage.model_validate, params=tuple(params))


def events(*, since: datetime, page_size: int = WATCH_PAGE_SIZE, **filters: Any) -> Pages[HatchetEvent]:
    """Every event :func:`list_events` selects, page after page.

    :param since: the earliest time the server stored the event.
    :param page_size: rows per request.
    :param filters: the other filters of :func:`list_events`.
    """
    return Pages(lambda offset, limit: list_events(since=since, offset=offset, limit=limit, **filters), page_size)
