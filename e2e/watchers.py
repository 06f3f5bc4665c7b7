"""The end-to-end check of the AssetWatcher example (``dags_examples/example_hatchet_asset_watcher.py``).

On the real triggerer of Airflow 3.3, Hatchet runs of ``demo-etl`` tagged ``notify=airflow`` are started one at a
time, each once the previous one has become a DAG run, so that every run gets a DAG run of its own (Airflow
folds the asset events that arrive between two scheduler loops into one DAG run). Halfway, the triggerer is
stopped, one more run completes while it is down, and a new triggerer is started: that run must still become a
DAG run, and none of the earlier ones again. Then an ``order:created`` event starts the event-watching DAG.

Against the simulator the runs are triggered and the event is pushed through its APIs; against a real Hatchet
(``--hatchet real``, from ``build/hatchet/env``) the runs go through REST and the event over gRPC with hatchet-sdk.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from airflow_api import AirflowAPI
from stack import Stack

REPO = Path(__file__).resolve().parent.parent
RUN_DAG = "example_hatchet_asset_watcher"
EVENT_DAG = "example_hatchet_event_watcher"
RUN_ASSET = "hatchet_demo_etl_completed"
EVENT_ASSET = "hatchet_order_created"
RUNS = 20
RESTART_AFTER = 10
WAIT = 120.0


@dataclass
class Hatchet:
    """Where the e2e run starts Hatchet runs and pushes events.

    :param url: the REST API.
    :param token: the API token.
    :param tenant_id: the tenant.
    :param simulator: True for the simulator (its admin API is under ``/_simulator``).
    """

    url: str
    token: str
    tenant_id: str
    simulator: bool

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def trigger(self, metadata: dict[str, str]) -> str:
        """Trigger one ``demo-etl`` run and return its id."""
        body = {"workflowName": "demo-etl", "input": {"source": "e2e"}, "additionalMetadata": metadata,
                "return_only_id": True}
        response = self.http.post(f"/api/v1/stable/tenants/{self.tenant_id}/workflow-runs/trigger", json=body)
        response.raise_for_status()
        return str(response.json()["run"]["metadata"]["id"])

    def status(self, run_id: str) -> str:
        """A run's status, or ``404``."""
        response = self.http.get(f"/api/v1/stable/workflow-runs/{run_id}/status")
        return "404" if response.status_code == 404 else str(response.json())

    def push_event(self, key: str, payload: dict[str, Any]) -> str:
        """Push an event: into the simulator, or over gRPC with hatchet-sdk (``e2e/hatchet/push_event.py``)."""
        if self.simulator:
            response = self.http.post("/_simulator/events", json={"key": key, "payload": payload})
            response.raise_for_status()
            return str(response.json()["id"])
        python = REPO / ".venv-hatchet-worker" / "bin" / "python"
        done = subprocess.run([str(python), str(REPO / "e2e" / "hatchet" / "push_event.py"), key, json.dumps(payload)],
                              env={**os.environ, "HATCHET_CLIENT_TOKEN": self.token}, capture_output=True, text=True,
                              timeout=60, check=True)
        return done.stdout.strip().splitlines()[-1]


def until(what: str, probe: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Poll ``probe`` every half second until it returns something true."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {value!r})")
        time.sleep(0.5)


def ensure_connection(api: AirflowAPI, hatchet: Hatchet) -> None:
    """Point ``hatchet_default`` at the server (the UI phase creates it for the simulator; a real run has none).

    Both servers serve gRPC without TLS on loopback, so the waits hear their runs finish on the run-event stream.
    """
    body = {"connection_id": "hatchet_default", "conn_type": "hatchet", "host": hatchet.url,
            "password": hatchet.token, "extra": json.dumps({"tenant_id": hatchet.tenant_id, "grpc_tls": "false"})}
    response = api.http.get("/connections/hatchet_default")
    if response.status_code == 404:
        api.request("POST", "/connections", json=body)
    else:
        api.request("PATCH", "/connections/hatchet_default", json=body)


def dag_runs(api: AirflowAPI, dag_id: str) -> list[dict[str, Any]]:
    """A DAG's runs, oldest first."""
    runs = api.paged(f"/dags/{dag_id}/dagRuns", "dag_runs")
    return sorted(runs, key=lambda r: r.get("run_after") or r.get("queued_at") or "")


def watermark(api: AirflowAPI, asset_name: str) -> dict[str, Any] | None:
    """The watcher's watermark in the asset's state store (stored once it has polled), or None."""
    assets = api.request("GET", "/assets", params={"name_pattern": asset_name})["assets"]
    (asset,) = [a for a in assets if a["name"] == asset_name]
    entries = api.request("GET", f"/assets/{asset['id']}/state-store")["asset_state_store"]
    stored = [e["value"] for e in entries if e["key"].startswith("hatchet_watermark_")]
    return json.loads(stored[0]) if stored else None


def run_watcher(stack: Stack, api: AirflowAPI, hatchet: Hatchet, tag: str) -> dict[str, Any]:
    """20 Hatchet runs, the triggerer restarted after 10: 20 DAG runs, each reading its own Hatchet run."""
    # Runs that finish before the watcher has started are not reported: wait until it has stored its watermark.
    started = until("the run watcher's watermark in the asset state store", lambda: watermark(api, RUN_ASSET))
    before = len(dag_runs(api, RUN_DAG))
    triggered: list[str] = []
    restarted = False
    for i in range(RUNS):
        if i == RESTART_AFTER:
            stack.stop_process("triggerer")
            triggered.append(hatchet.trigger({"notify": "airflow", "e2e": tag}))
            until("the run finished while no triggerer runs",
                  lambda: hatchet.status(triggered[-1]) == "COMPLETED", 60)
            stack.start_process("triggerer")
            restarted = True
        else:
            triggered.append(hatchet.trigger({"notify": "airflow", "e2e": tag}))
        until(f"DAG run {i + 1} of {RUN_DAG}", lambda n=before + i + 1: len(dag_runs(api, RUN_DAG)) >= n)
    until("every watcher DAG run finished", lambda: all(
        r["state"] in ("success", "failed") for r in dag_runs(api, RUN_DAG)))
    time.sleep(10)  # five more polls: nothing else may arrive
    runs = dag_runs(api, RUN_DAG)[before:]
    states = [r["state"] for r in runs]
    reported = [run_id for r in runs
                for run_id in api.xcom(RUN_DAG, r["dag_run_id"], "handle_runs", "return_value") or []]
    assert len(runs) == RUNS, f"{len(runs)} DAG runs for {RUNS} Hatchet runs: {states}"
    assert states == ["success"] * RUNS, f"DAG run states: {states}"
    assert sorted(reported) == sorted(triggered), (
        f"the DAG runs read {len(reported)} runs ({len(set(reported))} distinct) for {len(triggered)} triggered; "
        f"missing {sorted(set(triggered) - set(reported))}, extra {sorted(set(reported) - set(triggered))}")
    after = watermark(api, RUN_ASSET) or {}
    assert after.get("not_before") == started["not_before"], "the restarted watcher did not resume its watermark"
    return {"dag_runs": len(runs), "hatchet_runs": len(triggered), "triggerer_restarted": restarted,
            "watching_since": started["not_before"]}


def asset_events(api: AirflowAPI) -> dict[str, Any]:
    """Each Hatchet run of this e2e run is one asset event (the earlier examples' runs carry no ``notify``)."""
    assets = api.request("GET", "/assets", params={"name_pattern": RUN_ASSET})["assets"]
    (asset,) = [a for a in assets if a["name"] == RUN_ASSET]
    events = api.paged("/assets/events", "asset_events", asset_id=asset["id"])
    ids = [e["extra"]["payload"]["run_id"] for e in events]
    assert len(ids) == len(set(ids)), f"an asset event repeated a run: {ids}"
    return {"asset_events": len(ids)}


def event_watcher(api: AirflowAPI, hatchet: Hatchet) -> dict[str, Any]:
    """A pushed ``order:created`` event starts the event-watching DAG, which reads the event."""
    until("the event watcher's watermark in the asset state store", lambda: watermark(api, EVENT_ASSET))
    before = len(dag_runs(api, EVENT_DAG))
    event_id = hatchet.push_event("order:created", {"order": 42})
    until(f"a run of {EVENT_DAG}", lambda: len(dag_runs(api, EVENT_DAG)) > before)
    run = until("the event DAG run finished", lambda: next(
        (r for r in dag_runs(api, EVENT_DAG)[before:] if r["state"] in ("success", "failed")), None))
    assert run["state"] == "success", f"{EVENT_DAG} run {run['dag_run_id']} ended {run['state']}"
    read = api.xcom(EVENT_DAG, run["dag_run_id"], "handle_orders", "return_value")
    assert read == [event_id], f"the DAG read {read}, not [{event_id}]"
    return {"event": event_id}


def real_hatchet() -> Hatchet:
    """The real server of ``build/hatchet/env`` (``make hatchet-up``)."""
    env_file = REPO / "build" / "hatchet" / "env"
    settings: dict[str, str] = {}
    for line in env_file.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        settings[name] = value.strip("'")
    token = settings["HATCHET_CLIENT_TOKEN"]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return Hatchet(settings["HATCHET_CLIENT_SERVER_URL"], token, str(claims["sub"]), simulator=False)


def watcher_phase(stack: Stack, report: Any, target: str) -> None:
    """Run the watcher checks against the simulator or the real server.

    :param stack: the running stack.
    :param report: the harness's report (``check``).
    :param target: ``simulator`` or ``real``.
    """
    api = AirflowAPI(stack.api_url, stack.username, stack.password)
    if target == "real":
        hatchet = real_hatchet()
    else:
        sim = stack.simulator
        hatchet = Hatchet(sim["url"], sim["token"], sim["tenant_id"], simulator=True)
        # The DAG phase made demo-etl slow; the watcher's runs need not be.
        hatchet.http.post("/_simulator/workflows", json={"name": "demo-etl", "duration": 0.2}).raise_for_status()
    ensure_connection(api, hatchet)
    found, errors = api.wait_for_dags([RUN_DAG, EVENT_DAG], 120)

    def parsed() -> dict[str, Any]:
        assert found == {RUN_DAG, EVENT_DAG}, f"watcher DAGs not parsed: {errors}"
        return {"dags": sorted(found)}

    if not report.check(f"watchers ({target}): the asset-scheduled example DAGs parsed", parsed):
        return
    tag = f"e2e-{int(time.time())}"
    if report.check(f"watchers ({target}): {RUNS} Hatchet runs give {RUNS} DAG runs, the triggerer restarted "
                    "halfway, none lost or doubled", lambda: run_watcher(stack, api, hatchet, tag)):
        report.check(f"watchers ({target}): one asset event per Hatchet run", lambda: asset_events(api))
    report.check(f"watchers ({target}): a pushed Hatchet event starts the event-watching DAG",
                 lambda: event_watcher(api, hatchet))
