"""Proxies: the connection's ``proxy`` extra and HTTP_PROXY/HTTPS_PROXY/ALL_PROXY/NO_PROXY, through a real forward
proxy on loopback, for the sync client, the async client's lanes, the hook, a sensor's pokes and a deferred wait."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from airflow_provider_hatchet.client import (
    AsyncHatchetClient,
    ClientConfig,
    HatchetClient,
    HatchetConfigError,
    HatchetTransportError,
    TriggerRequest,
    endpoints,
)
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from tests.http_helpers import ForwardProxy
from tests.test_client import ONCE

pytestmark = pytest.mark.af2

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
TRIGGER = "POST /api/v1/stable/tenants/{tenant}/workflow-runs/trigger"


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as running:
        yield running


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def trigger_and_read(config: ClientConfig) -> str:
    with HatchetClient(config, retry=ONCE) as client:
        run_id = client.send(endpoints.trigger(TriggerRequest("demo-etl", {"via": "proxy"})))
        client.send(endpoints.list_workflows(limit=1))
        return run_id


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_the_sync_client_goes_through_the_environments_proxy(
    hatchet: Any, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, proxy.url)
    run_id = trigger_and_read(ClientConfig.from_token(hatchet.token))
    assert proxy.requests[0] == TRIGGER.format(tenant=hatchet.tenant_id)
    assert proxy.requests[1].startswith(f"GET /api/v1/tenants/{hatchet.tenant_id}/workflows")
    assert [run.id for run in hatchet.runs] == [run_id]


def test_an_https_proxy_is_not_used_for_an_http_server(
    hatchet: Any, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", dead_url())
    trigger_and_read(ClientConfig.from_token(hatchet.token))
    assert len(hatchet.runs) == 1


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.1", "*", "NO_PROXY=127.0.0.1,lower"])
def test_no_proxy_bypasses_the_proxy(
    hatchet: Any, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, no_proxy: str
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    if no_proxy.endswith(",lower"):
        monkeypatch.setenv("no_proxy", "127.0.0.1")
    else:
        monkeypatch.setenv("NO_PROXY", no_proxy)
    trigger_and_read(ClientConfig.from_token(hatchet.token))
    assert proxy.requests == []
    assert len(hatchet.runs) == 1


def test_the_connections_proxy_wins_over_the_environment(
    hatchet: Any, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", dead_url())
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    trigger_and_read(ClientConfig.from_token(hatchet.token, proxy=proxy.url))
    assert proxy.requests[0] == TRIGGER.format(tenant=hatchet.tenant_id)


def test_a_dead_proxy_is_a_transport_error_not_a_direct_connection(
    hatchet: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", dead_url())
    with HatchetClient(ClientConfig.from_token(hatchet.token), retry=ONCE) as client, pytest.raises(
        HatchetTransportError
    ) as err:
        client.send(endpoints.trigger(TriggerRequest("demo-etl", {})))
    assert err.value.maybe_sent is False
    assert hatchet.runs == []


@pytest.mark.parametrize("source", ["environment", "config"])
def test_the_async_clients_lanes_go_through_the_proxy(
    hatchet: Any, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    if source == "environment":
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        config = ClientConfig.from_token(hatchet.token)
    else:
        config = ClientConfig.from_token(hatchet.token, proxy=proxy.url)

    async def scenario() -> list[str]:
        async with AsyncHatchetClient(config, retry=ONCE, max_connections=4) as client:
            triggers = (client.send(endpoints.trigger(TriggerRequest("demo-etl", {"i": i}))) for i in range(8))
            run_ids = await asyncio.gather(*triggers)
            await client.send(endpoints.list_workflows(limit=1))
            return list(run_ids)

    run_ids = asyncio.run(scenario())
    assert proxy.requests.count(TRIGGER.format(tenant=hatchet.tenant_id)) == 8
    assert len(proxy.requests) == 9
    assert sorted(run.id for run in hatchet.runs) == sorted(run_ids)


def test_the_async_client_honours_no_proxy(hatchet: Any, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")

    async def scenario() -> None:
        async with AsyncHatchetClient(ClientConfig.from_token(hatchet.token), retry=ONCE) as client:
            await client.send(endpoints.trigger(TriggerRequest("demo-etl", {})))

    asyncio.run(scenario())
    assert proxy.requests == []
    assert len(hatchet.runs) == 1


def test_the_proxy_extra_of_the_connection_is_used_by_the_hook(
    hatchet: Any, hatchet_server: Any, proxy: ForwardProxy, airflow_conn: Any
) -> None:
    airflow_conn(
        "hatchet_default",
        conn_type="hatchet",
        host=hatchet_server.url,
        password=hatchet.token,
        extra={"proxy": proxy.url},
    )
    hook = HatchetHook()
    try:
        run_id = hook.run_workflow("demo-etl", {"a": 1})
    finally:
        hook.close()
    # Every request went through the proxy: the workflow lookup (unless this process already confirmed the name)
    # and the trigger.
    assert proxy.requests[-1] == TRIGGER.format(tenant=hatchet.tenant_id)
    assert len(proxy.requests) == len(hatchet.requests)
    assert [run.id for run in hatchet.runs] == [run_id]


@pytest.mark.parametrize("value", ["ftp://user:pw-secret@proxy.internal", "pw-secret", "http://user:pw-secret@"])
def test_a_proxy_extra_that_is_not_a_proxy_url_is_named_without_echoing_it(airflow_conn: Any, value: str) -> None:
    airflow_conn(
        "hatchet_bad_proxy",
        conn_type="hatchet",
        host="http://127.0.0.1:9",
        password=hatchet_token(),
        extra={"proxy": value},
    )
    with pytest.raises(HatchetConfigError, match="extra 'proxy'") as err:
        _ = HatchetHook("hatchet_bad_proxy").config
    assert "pw-secret" not in str(err.value)


def test_a_bad_proxy_in_the_environment_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "ftp://user:secret-pw@proxy.internal")
    with pytest.raises(HatchetConfigError, match="proxy set in the environment") as err:
        HatchetClient(ClientConfig.from_token(hatchet_token(), server_url="http://127.0.0.1:9"))
    assert "secret-pw" not in str(err.value)


def hatchet_token() -> str:
    from tests.tokens import make_token

    return make_token()


def test_a_sensor_poke_and_a_deferred_wait_go_through_the_proxy(
    hatchet: Any, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, dag_runner: Any
) -> None:
    from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        pytest.skip("the DAG run needs Airflow 3's dag.test()")
    from airflow.sdk import DAG

    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator
    from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor
    from tests.airflow_helpers import task_state

    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with DAG("proxy_waits", schedule=None, start_date=datetime(2025, 1, 1), catchup=False) as dag:
        run = HatchetRunWorkflowOperator(task_id="trigger", workflow_name="demo-etl")
        deferred = HatchetRunWorkflowOperator(
            task_id="deferred", workflow_name="demo-etl", wait_for_completion=True, deferrable=True, poll_interval=0.1
        )
        poke = HatchetWorkflowRunSensor(task_id="poke", run_id=run.output, poke_interval=0.1)
        run >> poke >> deferred
    dag_run = dag_runner(dag)
    assert [task_state(dag_run, t) for t in ("trigger", "poke", "deferred")] == ["success"] * 3
    triggers = [r for r in proxy.requests if r == TRIGGER.format(tenant=hatchet.tenant_id)]
    reads = [r for r in proxy.requests if r.startswith("GET /api/v1/stable/")]
    assert len(triggers) == 2
    assert len(reads) >= 2
    assert len(proxy.requests) == len(hatchet.requests)
