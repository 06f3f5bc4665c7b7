"""A real Hatchet's runs in the shape of the simulator's admin API, so the e2e checks read either server.

The simulator records each run's request body; a real server answers the run's details instead. Those hold the
input, the metadata (plus the ``traceparent`` the server adds) and the workflow (in each
task's ``actionId``), but not the priority: :attr:`RealHatchet.unseen` names what cannot be checked.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import httpx

ADDED_BY_SERVER = ("traceparent",)
PAGE = 500


class RealHatchet:
    """Reads runs from a real Hatchet's REST API.

    :param url: the API URL
    :param token: an API token of the tenant
    :param tenant_id: the tenant
    :param since: only runs created after this moment count
    """

    unseen = frozenset({"priority"})

    def __init__(self, url: str, token: str, tenant_id: str, since: datetime) -> None:
        self.url, self.tenant_id, self.since = url, tenant_id, since
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def list_runs(self, metadata: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every workflow run since :attr:`since` (a list row each), optionally only those with one metadata pair.

        :param metadata: at most one ``key: value`` pair to filter on
        :return: the rows
        """
        params: dict[str, Any] = {"since": self.since.astimezone(timezone.utc).isoformat(), "only_tasks": "false",
                                  "limit": PAGE}
        if metadata:
            params["additional_metadata"] = [f"{k}:{v}" for k, v in metadata.items()]
        rows: list[dict[str, Any]] = []
        while True:
            answer = self.http.get(f"/api/v1/stable/tenants/{self.tenant_id}/workflow-runs",
                                   params={**params, "offset": len(rows)})
            answer.raise_for_status()
            page = answer.json().get("rows") or []
            rows += page
            if len(page) < PAGE:
                return rows

    def run(self, run_id: str) -> dict[str, Any]:
        """One run as the simulator's admin API shows it: ``id``, ``workflow_name``, ``status``, ``body``.

        :param run_id: the run
        :return: the run
        """
        answer = self.http.get(f"/api/v1/stable/workflow-runs/{run_id}")
        answer.raise_for_status()
        details = answer.json()
        run = details["run"]
        actions = {str(task.get("actionId", "")).partition(":")[0] for task in details.get("tasks") or []}
        workflow = actions.pop() if len(actions) == 1 else f"? {sorted(actions)}"
        metadata = {k: v for k, v in (run.get("additionalMetadata") or {}).items() if k not in ADDED_BY_SERVER}
        # A one-task run's details hold its task's input envelope ({"input": ..., "parents": ...}); a multi-task
        # run's the bare input (docs/hatchet-behaviour.md).
        tasks = details.get("tasks") or []
        run_input = run.get("input") if len(tasks) > 1 else (run.get("input") or {}).get("input")
        body = {"workflowName": workflow, "input": run_input, "additionalMetadata": metadata}
        return {"id": run["metadata"]["id"], "workflow_name": workflow, "status": run["status"], "body": body}

    def runs(self) -> list[dict[str, Any]]:
        """Every run since :attr:`since`, with its details."""
        return [self.run(row["metadata"]["id"]) for row in self.list_runs()]

    def status(self, run_id: str) -> str:
        """One run's status.

        :param run_id: the run
        :return: e.g. ``RUNNING``
        """
        answer = self.http.get(f"/api/v1/stable/workflow-runs/{run_id}/status")
        answer.raise_for_status()
        return str(answer.json())


def count_runs(hatchet: RealHatchet, metadata: dict[str, str]) -> int:
    """How many runs carry one metadata pair, from the list's page count at one row per page (one request).

    :param hatchet: the server
    :param metadata: one ``key: value`` pair
    :return: the count
    """
    (key, value), = metadata.items()
    answer = hatchet.http.get(f"/api/v1/stable/tenants/{hatchet.tenant_id}/workflow-runs",
                              params={"since": hatchet.since.astimezone(timezone.utc).isoformat(),
                                      "only_tasks": "false", "limit": 1, "additional_metadata": f"{key}:{value}"})
    answer.raise_for_status()
    body = answer.json()
    return int((body.get("pagination") or {}).get("num_pages") or 0) if body.get("rows") else 0
