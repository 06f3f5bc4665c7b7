"""``RunFilter``: which runs a list, a cancel or a replay by filter selects, checked before anything is sent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_hatchet.client.endpoints import format_time, metadata_filter
from airflow_provider_hatchet.client.errors import HatchetValidationError
from airflow_provider_hatchet.client.models import RunStatus
from airflow_provider_hatchet.client.scheduling import check_time


def _moment(value: datetime | str | None, name: str) -> datetime | None:
    return None if value is None else check_time(value, name)


def _names(values: Iterable[str] | None, name: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str) or not all(isinstance(v, str) and v.strip() for v in values):
        raise HatchetValidationError(name, "must be a list of non-empty strings")
    return tuple(values)


@dataclass(frozen=True)
class RunFilter:
    """The runs created in ``[since, until]`` that match every given criterion (the lists are ANDed).

    :param since: the earliest creation time; a naive datetime is taken as UTC, a string as ISO 8601.
    :param until: the latest creation time, after ``since``; None for now.
    :param statuses: only runs in these statuses; None for any (an empty list is refused).
    :param workflow_names: only runs of these workflows (names as given, the namespace applied by the hook).
    :param additional_metadata: only runs carrying every one of these pairs (values as strings).
    :param idempotency_keys: only the runs holding these idempotency keys (list only).
    :param triggering_event_external_id: only the runs this event triggered (list only).
    :raises HatchetValidationError: naming the field and what is wrong.
    """

    since: datetime
    until: datetime | None = None
    statuses: tuple[RunStatus, ...] | None = None
    workflow_names: tuple[str, ...] = ()
    additional_metadata: Mapping[str, str] = field(default_factory=dict)
    idempotency_keys: tuple[str, ...] = ()
    triggering_event_external_id: str | None = None

    @classmethod
    def checked(
        cls,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        statuses: Iterable[RunStatus | str] | None = None,
        workflow_names: Iterable[str] | None = None,
        additional_metadata: Mapping[str, Any] | None = None,
        idempotency_keys: Iterable[str] | None = None,
        triggering_event_external_id: str | None = None,
    ) -> RunFilter:
        """Check every field and build the filter; see the class for the fields.

        :param since: the earliest creation time.
        :param until: the latest creation time.
        :param statuses: the statuses.
        :param workflow_names: the workflow names.
        :param additional_metadata: the metadata pairs.
        :param idempotency_keys: the idempotency keys.
        :param triggering_event_external_id: the event id.
        """
        start = _moment(since, "since")
        if start is None:
            raise HatchetValidationError("since", "is required: Hatchet selects runs by creation time")
        end = _moment(until, "until")
        if end is not None and end <= start:
            raise HatchetValidationError("until", f"({end.isoformat()}) must be after since ({start.isoformat()})")
        if start > datetime.now(timezone.utc):
            raise HatchetValidationError("since", f"({start.isoformat()}) is in the future: no run matches")
        wanted: tuple[RunStatus, ...] | None = None
        if statuses is not None:
            if isinstance(statuses, str):
                statuses = [statuses]
            try:
                wanted = tuple(RunStatus(str(getattr(s, "value", s)).upper()) for s in statuses)
            except ValueError:
                known = ", ".join(s.value for s in RunStatus)
                raise HatchetValidationError("statuses", f"holds an unknown status; use {known}") from None
            if not wanted:
                raise HatchetValidationError("statuses", "is empty: give None to match every status")
        metadata = dict(additional_metadata or {})
        for key, value in metadata.items():
            if not isinstance(key, str) or not key or isinstance(value, (dict, list)) or value is None:
                raise HatchetValidationError("additional_metadata", f"pair {key!r}: keys must be non-empty "
                                             "strings and values strings or scalars")
            if isinstance(value, str) and not value.strip():
                raise HatchetValidationError("additional_metadata", f"pair {key!r} has an empty value (a template "
                                             "that rendered to nothing?): give a value or leave the pair out")
        event = triggering_event_external_id
        if event is not None and (not isinstance(event, str) or not event.strip()):
            raise HatchetValidationError("triggering_event_external_id", "must be a non-empty string")
        return cls(
            since=start, until=end, statuses=wanted,
            workflow_names=_names(workflow_names, "workflow_names"),
            additional_metadata={k: v if isinstance(v, str) else _scalar(v) for k, v in metadata.items()},
            idempotency_keys=_names(idempotency_keys, "idempotency_keys"),
            triggering_event_external_id=event,
        )

    def narrowed_by(self) -> tuple[str, ...]:
        """The given fields that select some runs rather than the whole tenant: ``workflow_names``,
        ``additional_metadata`` (only when every value is non-blank), ``idempotency_keys`` and
        ``triggering_event_external_id``. Statuses and the time window do not narrow a selection.
        """
        metadata = bool(self.additional_metadata) and all(
            isinstance(v, str) and v.strip() for v in self.additional_metadata.values())
        given = {"workflow_names": bool(self.workflow_names), "additional_metadata": metadata,
                 "idempotency_keys": bool(self.idempotency_keys),
                 "triggering_event_external_id": bool(self.triggering_event_external_id)}
        return tuple(name for name, narrows in given.items() if narrows)

    def body(self, workflow_ids: Iterable[str] = ()) -> dict[str, Any]:
        """The ``V1TaskFilter`` body of a cancel or replay by filter. The server ORs its metadata pairs, so the hook
        acts on ids it listed instead; this is for callers that send the filter itself.

        :param workflow_ids: the workflows' ids (the body takes ids, not names).
        """
        body: dict[str, Any] = {"since": format_time(self.since)}
        if self.until is not None:
            body["until"] = format_time(self.until)
        if self.statuses:
            body["statuses"] = [s.value for s in self.statuses]
        ids = list(workflow_ids)
        if ids:
            body["workflowIds"] = ids
        if self.additional_metadata:
            body["additionalMetadata"] = metadata_filter(self.additional_metadata)
        return body


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
