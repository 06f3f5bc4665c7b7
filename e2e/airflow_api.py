"""Minimal client for Airflow's public REST API (v2) with a JWT from ``/auth/token``."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx


class AirflowAPI:
    """Talks to ``/api/v2`` as one user of the simple auth manager.

    :param base_url: api-server root, e.g. ``http://127.0.0.1:8080``
    :param username: user name
    :param password: password
    """

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        response = httpx.post(f"{base_url}/auth/token", json={"username": username, "password": password}, timeout=30)
        response.raise_for_status()
        self.token: str = response.json()["access_token"]
        self.http = httpx.Client(
            base_url=f"{base_url}/api/v2", headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request and return the decoded JSON, raising on any non-2xx answer.

        :param method: HTTP method
        :param path: path below ``/api/v2``
        :param kwargs: passed to httpx
        :return: the JSON body (or None when empty)
        """
        response = self.http.request(method, path, **kwargs)
        if response.is_error:
            raise AssertionError(f"{method} {path} -> {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def paged(self, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Return every item of a paginated list endpoint.

        :param path: path below ``/api/v2``
        :param key: the list's key in the answer (e.g. ``dags``)
        :param params: more query parameters
        :return: the items
        """
        items: list[dict[str, Any]] = []
        while True:
            body = self.request("GET", path, params={**params, "limit": 100, "offset": len(items)})
            items += body[key]
            if not body[key] or len(items) >= body["total_entries"]:
                return items

    def wait_for_dags(self, dag_ids: list[str], timeout: float, settle: float = 20) -> tuple[set[str], list[str]]:
        """Wait until the DAG processor has serialized the DAGs, then unpause them.

        Gives up early when import errors are reported and no new DAG appeared for ``settle`` seconds.

        :param dag_ids: the DAG ids
        :param timeout: seconds
        :param settle: seconds without progress, once import errors exist, before giving up
        :return: the DAG ids found, and the import errors (``filename: error``) reported
        """
        deadline = time.monotonic() + timeout
        found: set[str] = set()
        progress = time.monotonic()
        while True:
            now_found = {d["dag_id"] for d in self.paged("/dags", "dags")} & set(dag_ids)
            if now_found != found:
                found, progress = now_found, time.monotonic()
            errors = [f"{e['filename']}: {e['stack_trace'].strip().splitlines()[-1]}"
                      for e in self.paged("/importErrors", "import_errors")]
            stalled = errors and time.monotonic() - progress > settle
            if found == set(dag_ids) or stalled or time.monotonic() > deadline:
                break
            time.sleep(1)
        for dag_id in sorted(found):
            self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        return found, errors

    def trigger(self, dag_id: str, conf: dict[str, Any], logical_date: str) -> str:
        """Create a DAG run now.

        :param dag_id: the DAG id
        :param conf: run conf
        :param logical_date: its logical date (ISO 8601)
        :return: the dag_run_id
        """
        run = self.request("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": logical_date, "conf": conf})
        return str(run["dag_run_id"])

    def all_dag_runs(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Return every DAG run keyed by (dag_id, dag_run_id)."""
        return {(r["dag_id"], r["dag_run_id"]): r for r in self.paged("/dags/~/dagRuns", "dag_runs")}

    def all_task_instances(self) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
        """Return every task instance, by (dag_id, dag_run_id), then ``task_id`` (``task_id[i]`` when mapped)."""
        out: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        for ti in self.paged("/dags/~/dagRuns/~/taskInstances", "task_instances"):
            out.setdefault((ti["dag_id"], ti["dag_run_id"]), {})[_ti_key(ti)] = ti
        return out

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """Return one DAG run.

        :param dag_id: the DAG id
        :param run_id: the run id
        :return: the DAG run resource
        """
        result: dict[str, Any] = self.request("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
        return result

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """Return the run's task instances keyed by ``task_id`` (``task_id[i]`` for mapped ones).

        :param dag_id: the DAG id
        :param run_id: the run id
        :return: task instances
        """
        path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        body = self.request("GET", path, params={"limit": 1000})
        return {_ti_key(ti): ti for ti in body["task_instances"]}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1) -> Any:
        """Return one XCom value (deserialized).

        :param dag_id: the DAG id
        :param run_id: the run id
        :param task_id: the task id
        :param key: the XCom key
        :param map_index: map index of a mapped task
        :return: the value
        """
        entry = self.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
            f"/xcomEntries/{quote(key, safe='')}",
            params={"map_index": map_index, "deserialize": True, "stringify": False},
        )
        return entry["value"]

    def extra_links(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, str | None]:
        """Return the task instance's extra links as name -> URL.

        :param dag_id: the DAG id
        :param run_id: the run id
        :param task_id: the task id
        :param map_index: map index of a mapped task
        :return: links
        """
        body = self.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/links",
            params={"map_index": map_index},
        )
        links: dict[str, str | None] = body.get("extra_links", body)
        return links

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """Return a task attempt's log as text.

        :param dag_id: the DAG id
        :param run_id: the run id
        :param task_id: the task id
        :param try_number: attempt
        :param map_index: map index of a mapped task
        :return: log text, one event per line
        """
        body = self.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/logs/{try_number}",
            params={"map_index": map_index, "full_content": True},
            headers={"Accept": "application/json"},
        )
        content = body.get("content", [])
        if isinstance(content, str):
            return content
        return "\n".join(str(item.get("event", item)) if isinstance(item, dict) else str(item) for item in content)

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str, map_index: int = -1) -> Any:
        """Mark one task instance (as a user would in the UI).

        :param dag_id: the DAG id
        :param run_id: the run id
        :param task_id: the task id
        :param state: new state, e.g. ``failed``
        :param map_index: map index of a mapped task
        :return: the API answer
        """
        suffix = "" if map_index < 0 else f"/{map_index}"
        return self.request(
            "PATCH",
            f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}{suffix}",
            json={"new_state": state},
        )

    def clear_task(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """Clear one task instance of a DAG run, whatever its state, as "Clear" in the UI does.

        :param dag_id: the DAG id
        :param run_id: the run id
        :param task_id: the task id
        :return: the API answer (the cleared task instances)
        """
        return self.request(
            "POST",
            f"/dags/{dag_id}/clearTaskInstances",
            json={"dry_run": False, "dag_run_id": run_id, "task_ids": [task_id], "only_failed": False,
                  "reset_dag_runs": True},
        )


def _ti_key(ti: dict[str, Any]) -> str:
    return str(ti["task_id"]) if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"
