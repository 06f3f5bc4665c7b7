"""The simulator's loopback server: URL and tokens, the admin API, and the command line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_hatchet.testing import DEMO_WORKFLOWS, HatchetSimulator, SimulatorServer
from tests.openapi_spec import validate_response

pytestmark = [pytest.mark.af2, pytest.mark.loopback]


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(HatchetSimulator(visibility_delay=0.0, unknown_workflow_delay=0.01)) as srv:
        yield srv


@pytest.fixture
def admin(server: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/_simulator") as http:
        yield http


def _trigger(url: str, tenant: str, token: str, name: str, run_input: dict[str, Any] | None = None,
             **extra: Any) -> httpx.Response:
    response = httpx.post(f"{url}/api/v1/stable/tenants/{tenant}/workflow-runs/trigger",
                          json={"workflowName": name, "input": run_input or {}, **extra},
                          headers={"Authorization": f"Bearer {token}"})
    validate_response("POST", response.url.path, response.status_code, response.json())
    return response


def test_server_binds_a_free_port_and_tokens_carry_its_url() -> None:
    sim = HatchetSimulator()
    sim.register_workflow("etl")
    early_token = sim.token

    with SimulatorServer(sim) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert not server.url.endswith(":0")
        assert sim.server_url == server.url
        assert server.simulator is sim
        assert _trigger(server.url, sim.tenant_id, server.token, "etl").status_code == 200
        assert _trigger(server.url, sim.tenant_id, early_token, "etl").status_code == 403

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/_simulator/info")


def test_the_listening_socket_turns_nagle_off_for_the_connections_it_accepts() -> None:
    # Without it, asyncio's loop (no uvloop, as on Airflow 2.10) answers each request ~40 ms late.
    from airflow_provider_hatchet.testing.server import bind_socket

    with bind_socket() as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_two_servers_run_side_by_side() -> None:
    with SimulatorServer() as one, SimulatorServer() as two:
        assert one.url != two.url
        one.simulator.register_workflow("etl")
        two.simulator.register_workflow("etl")
        assert _trigger(one.url, one.simulator.tenant_id, one.token, "etl").status_code == 200
        assert _trigger(two.url, two.simulator.tenant_id, one.token, "etl").status_code in (403, 404)
        assert (one.simulator.run_count(), two.simulator.run_count()) == (1, 0)


def test_unknown_paths_and_methods(server: SimulatorServer) -> None:
    headers = {"Authorization": f"Bearer {server.token}"}
    missing = httpx.get(f"{server.url}/api/v1/nope", headers=headers)
    wrong_method = httpx.get(
        f"{server.url}/api/v1/stable/tenants/{server.simulator.tenant_id}/workflow-runs/trigger", headers=headers)

    assert (missing.status_code, missing.json()) == (404, {"message": "Not Found"})
    assert wrong_method.status_code == 405


def test_admin_api_drives_a_simulator_in_another_process(server: SimulatorServer, admin: httpx.Client) -> None:
    info = admin.get("/info").json()
    assert (info["url"], info["tenant_id"]) == (server.url, server.simulator.tenant_id)
    token = info["token"]

    registered = admin.post("/workflows", json={"name": "remote", "behaviour": "multi_task",
                                                "tasks": ["a", "b"], "duration": 0.0})
    assert registered.status_code == 200
    assert [t["name"] for t in registered.json()["tasks"]] == ["a", "b"]
    assert "remote" in {w["name"] for w in admin.get("/workflows").json()["workflows"]}

    assert admin.put("/faults", json={"rate_limit_rate": 1.0, "routes": ["status"]}).status_code == 200
    assert admin.get("/faults").json()["faults"]["rate_limit_rate"] == 1.0
    admin.post("/fail-next", json={"route": "trigger", "count": 1, "status": 503, "after_create": True})
    assert admin.get("/faults").json()["pending"] == {"trigger": 1}
    admin.post("/reject", json={"match": {"input": {"bad": True}}, "status": 400, "message": "no"})

    assert _trigger(server.url, info["tenant_id"], token, "remote", {"i": 1}).status_code == 503
    assert _trigger(server.url, info["tenant_id"], token, "remote", {"bad": True}).status_code == 400
    ok = _trigger(server.url, info["tenant_id"], token, "remote", {"i": 2}, additionalMetadata={"k": "v"})
    run_id = ok.json()["run"]["metadata"]["id"]

    runs = admin.get("/runs").json()
    assert runs["count"] == 2
    assert [r["body"]["input"] for r in runs["runs"]] == [{"i": 1}, {"i": 2}]
    assert admin.get(f"/runs/{run_id}").json()["body"]["additionalMetadata"] == {"k": "v"}
    assert admin.get("/runs/00000000-0000-0000-0000-000000000001").status_code == 404
    counts = admin.get("/runs/count").json()
    assert counts["count"] == 2
    assert sum(counts["by_status"].values()) == 2
    assert admin.get("/runs", params={"workflow_name": "nope"}).json()["count"] == 0

    requests = admin.get("/requests", params={"limit": 3}).json()["requests"]
    assert [r["status"] for r in requests] == [503, 400, 200]
    assert requests[-1]["body"]["input"] == {"i": 2}

    assert admin.post("/reset", json={}).json() == {"ok": True}
    assert admin.get("/runs/count").json()["count"] == 0
    assert admin.get("/faults").json()["faults"]["rate_limit_rate"] == 0.0


def test_admin_api_tokens_tenants_settings_and_errors(server: SimulatorServer, admin: httpx.Client) -> None:
    created = admin.post("/tenants", json={"name": "second"}).json()
    assert created["tenant_id"] in server.simulator._state.tenants
    admin.post("/workflows", json={"name": "w", "tenant_id": created["tenant_id"]})
    assert _trigger(server.url, created["tenant_id"], created["token"], "w").status_code == 200

    expired = admin.post("/tokens", json={"expires_in": -10}).json()["token"]
    assert _trigger(server.url, server.simulator.tenant_id, expired, "w").status_code == 403

    settings = admin.put("/settings", json={"cancel_delay": 0.5}).json()
    assert settings["cancel_delay"] == 0.5 == server.simulator.cancel_delay

    assert admin.post("/workflows", json={"behaviour": "succeed"}).status_code == 400
    assert admin.put("/faults", json={"not_a_setting": 1}).status_code == 400
    assert admin.post("/fail-next", json={"route": "nowhere"}).status_code == 400
    assert admin.get("/nothing-here").status_code == 404


def test_uvicorn_is_imported_lazily() -> None:
    code = ("import sys, airflow_provider_hatchet.testing as t; t.HatchetSimulator().transport();"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('uvicorn', 'airflow')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_command_line_serves_demo_workflows_and_writes_connection_info(tmp_path: Path) -> None:
    info_file = tmp_path / "sim.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_hatchet.testing", "--port", "0", "--visibility-delay", "0",
         "--info-file", str(info_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while not info_file.exists():
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        info = json.loads(info_file.read_text())
        assert info["airflow_conn"] == {"conn_type": "hatchet", "host": info["url"], "password": info["token"],
                                        "extra": {"grpc_tls": "false"}}
        # The gRPC face's address is in the token, where the client looks for it.
        from airflow_provider_hatchet.client.config import decode_token_claims

        assert decode_token_claims(info["token"])["grpc_broadcast_address"] == info["grpc_address"]
        assert json.loads(info["airflow_conn_json"]) == info["airflow_conn"]
        assert info["airflow_conn_uri"].startswith("hatchet://:")

        names = {w["name"] for w in httpx.get(f"{info['url']}/_simulator/workflows").json()["workflows"]}
        assert names == set(DEMO_WORKFLOWS)
        response = _trigger(info["url"], info["tenant_id"], info["token"], "demo-etl", {"x": 1})
        assert response.status_code == 200
        status = httpx.get(f"{info['url']}/api/v1/stable/workflow-runs/{response.json()['run']['metadata']['id']}"
                           "/status", headers={"Authorization": f"Bearer {info['token']}"})
        assert status.json() in ("QUEUED", "RUNNING", "COMPLETED")
    finally:
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=30)
    assert info["url"] in stdout
    assert info["token"] not in stdout
