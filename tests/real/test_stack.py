"""The stack `make hatchet-up` starts: the version it reports, and no connection leaving the machine."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from airflow_provider_hatchet.client import TriggerRequest, endpoints

STATE = Path(__file__).resolve().parents[2] / "build" / "hatchet" / "state.json"

pytestmark = [
    pytest.mark.real_hatchet,
    pytest.mark.skipif(not STATE.exists(), reason="only for the server `make hatchet-up` started"),
]


def peers(pid: int) -> list[str]:
    """The remote addresses of a process's TCP connections, from ``ss``."""
    out = subprocess.run(["ss", "-Htnp"], capture_output=True, text=True, check=True).stdout
    return [line.split()[4] for line in out.splitlines() if f"pid={pid}," in line]


def host_of(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    host = address.rsplit(":", 1)[0].strip("[]")
    parsed = ipaddress.ip_address(host)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped:
        return parsed.ipv4_mapped
    return parsed


def test_the_server_reports_the_pinned_version(real_hatchet_settings: dict[str, str]) -> None:
    version = json.loads(STATE.read_text())["version"]
    answer = httpx.get(f"{real_hatchet_settings['HATCHET_HEALTH_URL']}/version", timeout=10)

    assert answer.json() == {"version": version}
    assert real_hatchet_settings["HATCHET_ENGINE_VERSION"] == version


def test_the_engine_and_the_api_talk_only_to_loopback() -> None:
    pids = json.loads(STATE.read_text())["pids"]
    seen = {name: peers(pids[name]) for name in ("engine", "api")}

    assert all(seen.values()), f"no connections seen at all: {seen}"
    outside = {name: [a for a in addresses if not host_of(a).is_loopback] for name, addresses in seen.items()}
    assert outside == {"engine": [], "api": []}
    assert os.environ.get("HATCHET_CLIENT_SERVER_URL", "").startswith("http://127.0.0.1:")


def grpc_connections(api_pid: int, grpc_port: str) -> int:
    """How many connections the API process holds open to the engine's gRPC port."""
    return sum(1 for address in peers(api_pid) if address.rsplit(":", 1)[1] == grpc_port)


def test_each_rest_trigger_leaves_a_grpc_connection_open_in_the_api(real_hatchet_settings: dict[str, str]) -> None:
    # hatchet-api proxies each REST trigger to the engine through a new gRPC client that it never closes
    # (api/v1/server/handlers/v1/proxy/proxy.go); gRPC closes an idle connection only after 30 minutes.
    from airflow_provider_hatchet.client import ClientConfig, HatchetClient

    api_pid = json.loads(STATE.read_text())["pids"]["api"]
    grpc_port = real_hatchet_settings["HATCHET_CLIENT_HOST_PORT"].rsplit(":", 1)[1]
    config = ClientConfig.from_token(real_hatchet_settings["HATCHET_CLIENT_TOKEN"],
                                     server_url=real_hatchet_settings["HATCHET_CLIENT_SERVER_URL"])
    before = grpc_connections(api_pid, grpc_port)
    with HatchetClient(config) as client:
        for i in range(20):
            client.send(endpoints.trigger(TriggerRequest("demo-etl", {"i": i}, {"test_tag": "grpc-connections"})))
    after = grpc_connections(api_pid, grpc_port)

    assert after - before >= 20, (before, after)
