"""Read-only views handed to tests: runs as they were requested and the request log."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run as seen at the moment it was read.

    :param id: the run id (``run.metadata.id``).
    :param tenant_id: the owning tenant.
    :param workflow_name: the workflow name from the request.
    :param body: the exact trigger request body.
    :param status: the status when read.
    :param created_at: RFC 3339 creation time.
    :param task_ids: the task external ids (the run id for single-task workflows).
    """

    id: str
    tenant_id: str
    workflow_name: str
    body: dict[str, Any]
    status: str
    created_at: str
    task_ids: tuple[str, ...]

    @property
    def input(self) -> dict[str, Any]:
        """Return the run input."""
        value = self.body.get("input")
        return value if isinstance(value, dict) else {}

    @property
    def additional_metadata(self) -> dict[str, Any]:
        """Return the run's additional metadata (``{}`` when none was sent)."""
        value = self.body.get("additionalMetadata")
        return value if isinstance(value, dict) else {}

    @property
    def priority(self) -> int | None:
        """Return the priority sent, if any."""
        value = self.body.get("priority")
        return value if isinstance(value, int) else None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON object for the admin API."""
        return {"id": self.id, "tenant_id": self.tenant_id, "workflow_name": self.workflow_name,
                "status": self.status, "created_at": self.created_at, "task_ids": list(self.task_ids),
                "body": self.body}


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the simulator answered.

    :param method: HTTP method.
    :param path: URL path.
    :param raw_query: the query string, undecoded.
    :param raw_body: the request body bytes.
    :param status: the status answered (0 when the connection was dropped).
    :param route: the route kind (``trigger``, ``status``, ``details``, ``list``, ``cancel``,
        ``workflows``, ``v0``) or ``None`` when no route matched.
    :param dropped: the connection was broken instead of answered.
    """

    method: str
    path: str
    raw_query: str
    raw_body: bytes
    status: int
    route: str | None
    dropped: bool = False

    @property
    def query(self) -> dict[str, list[str]]:
        """Return the decoded query parameters (repeated keys keep every value)."""
        return parse_qs(self.raw_query, keep_blank_values=True)

    @property
    def json(self) -> Any:
        """Return the decoded JSON body, or ``None`` when empty or not JSON."""
        if not self.raw_body:
            return None
        try:
            return json.loads(self.raw_body)
        except ValueError:
            return None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON object for the admin API."""
        return {"method": self.method, "path": self.path, "query": self.query, "body": self.json,
                "status": self.status, "route": self.route, "dropped": self.dropped}
