"""The REST client against the simulator over real HTTP: every endpoint and every error type, sync and async.

Every request the client sends is checked against Hatchet's OpenAPI spec.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_hatchet.client import (
    AsyncHatchetClient,
    ClientConfig,
    HatchetAuthError,
    HatchetBadRequestError,
    HatchetClient,
    HatchetNotFoundError,
    HatchetRateLimitError,
    HatchetServerError,
    HatchetTransportError,
    RetryPolicy,
    RunStatus,
    TriggerRequest,
    endpoints,
)
from tests import openapi_spec

pytestmark = pytest.mark.af2

FAST = RetryPolicy(attempts=3, initial=0.01, maximum=0.05, jitter=0.01)
ONCE = RetryPolicy(attempts=1)
SINCE = datetime.now(timezone.utc) - timedelta(hours=1)


@pytest.fixture
def sim(hatchet_server: Any) -> Iterator[Any]:
    from airflow_provider_hatchet.testing import register_demo_workflows

    simulator = hatchet_server.simulator
    simulator.reset(keep_workflows=False)
    register_demo_workflows(simulator)
    yield simulator
    for request in simulator.requests:
        if request.route in ("trigger", "status", "details", "list", "cancel", "workflows"):
            openapi_spec.validate_request(request.method, request.path, request.json, request.raw_query)


def client(sim: Any, retry: RetryPolicy = FAST, **overrides: Any) -> HatchetClient:
    return HatchetClient(ClientConfig.from_token(overrides.pop("token", sim.token), **overrides), retry=retry)


def wait_visible(sim: Any) -> None:
    time.sleep(sim.visibility_delay + 0.05)


def test_trigger_then_read_status_and_details() -> None:
    from airflow_provider_hatchet.testing import HatchetSimulator, ManualClock, SimulatorServer, register_demo_workflows

    # A clock of its own: on real time, a slow machine could see the 0.9 s run finish before the first read.
    clock = ManualClock()
    sim = HatchetSimulator(clock=clock)
    register_demo_workflows(sim)
    with SimulatorServer(sim) as server, HatchetClient(ClientConfig.from_token(sim.token, server_url=server.url),
                                                       retry=FAST) as c:
        run_id = c.send(
            endpoints.trigger(TriggerRequest("demo-multi", {"day": "2026-01-01"}, {"team": "data"}, priority=2))
        )
        clock.advance(sim.visibility_delay + 0.05)
        assert c.send(endpoints.run_status(run_id)) in (RunStatus.QUEUED, RunStatus.RUNNING)
        clock.advance(1.2)
        assert c.send(endpoints.run_status(run_id)) is RunStatus.COMPLETED
        details = c.send(endpoints.run_details(run_id))
    for request in sim.requests:
        openapi_spec.validate_request(request.method, request.path, request.json, request.raw_query)
    assert details.id == run_id
    assert details.run.additional_metadata["team"] == "data"
    assert set(details.run.additional_metadata) == {"team", "traceparent"}  # the server adds a trace id
    assert [task.name for task in details.tasks] == ["load", "transform", "extract"]  # the server: newest first
    assert list(details.task_outputs()) == ["extract", "transform", "load"]  # the provider: creation order
    assert details.run.output == details.task_outputs()["load"]
    assert sim.runs[0].body == {
        "workflowName": "demo-multi",
        "input": {"day": "2026-01-01"},
        "additionalMetadata": {"team": "data"},
        "priority": 2,
        "return_only_id": True,
    }


def test_failed_run_details_carry_hatchets_error(sim: Any) -> None:
    sim.register_workflow("load", "fail", duration=0.05, error_message="ValueError: bad row 7", tasks=["write"])
    with client(sim) as c:
        run_id = c.send(endpoints.trigger(TriggerRequest("load", {})))
        time.sleep(sim.visibility_delay + 0.3)
        details = c.send(endpoints.run_details(run_id))
    assert details.status is RunStatus.FAILED
    assert details.error_messages() == {"write": "ValueError: bad row 7"}


def test_list_runs_filters_by_metadata_and_status_and_pages(sim: Any) -> None:
    with client(sim) as c:
        mine = {c.send(endpoints.trigger(TriggerRequest("demo-etl", {"i": i}, {"batch": "b1"}))) for i in range(7)}
        c.send(endpoints.trigger(TriggerRequest("demo-etl", {}, {"batch": "other"})))
        wait_visible(sim)
        assert {
            r.id for r in c.iter_rows(endpoints.runs(since=SINCE, page_size=3, additional_metadata={"batch": "b1"}))
        } == mine
        first_page = c.send(endpoints.list_runs(since=SINCE, limit=3, additional_metadata={"batch": "b1"}))
        assert len(first_page.rows) == 3
        assert c.send(endpoints.list_runs(since=SINCE, statuses=[RunStatus.FAILED])).rows == []
        assert len(c.send(endpoints.list_runs(since=SINCE, additional_metadata={"batch": "b1", "nope": "x"})).rows) == 0


def test_cancel_is_asynchronous(sim: Any) -> None:
    with client(sim) as c:
        run_id = c.send(endpoints.trigger(TriggerRequest("demo-hang", {})))
        wait_visible(sim)
        assert c.send(endpoints.cancel([run_id])) == [run_id]
        assert c.send(endpoints.run_status(run_id)) is RunStatus.RUNNING
        time.sleep(sim.cancel_delay + 0.1)
        assert c.send(endpoints.run_status(run_id)) is RunStatus.CANCELLED


def test_find_workflow_is_exact_and_case_sensitive(sim: Any) -> None:
    sim.register_workflow("Export", "succeed")
    sim.register_workflow("export-orders", "succeed")
    with client(sim) as c:
        found = endpoints.exact_workflow(c.iter_rows(endpoints.workflows("Export")), "Export")
        assert found is not None and found.name == "Export"
        assert endpoints.exact_workflow(c.iter_rows(endpoints.workflows("export")), "export") is None
        assert endpoints.exact_workflow(c.iter_rows(endpoints.workflows("Expor")), "Expor") is None
        assert {w.name for w in c.send(endpoints.list_workflows("EXPORT")).rows} == {"Export", "export-orders"}


def test_a_just_triggered_run_is_briefly_not_found(sim: Any) -> None:
    with client(sim, retry=ONCE) as c:
        run_id = c.send(endpoints.trigger(TriggerRequest("demo-etl", {})))
        with pytest.raises(HatchetNotFoundError):
            c.send(endpoints.run_status(run_id))
        wait_visible(sim)
        assert c.send(endpoints.run_status(run_id)) in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.COMPLETED)


def test_an_unknown_run_is_not_found(sim: Any) -> None:
    with client(sim) as c, pytest.raises(HatchetNotFoundError) as err:
        c.send(endpoints.run_details("5b0b6fd5-5ae0-4d1c-9d4a-2f1f7c3b9a10"))
    assert err.value.status_code == 404


@pytest.mark.parametrize("kind", ["garbage", "foreign_server", "revoked", "other_tenant"])
def test_bad_credentials_are_an_auth_error_without_the_token(sim: Any, kind: str) -> None:
    if kind == "garbage":
        token = sim.token[:-6] + "AAAAAA"
    elif kind == "foreign_server":
        token = sim.mint_token(server_url="https://elsewhere.example.com")
    elif kind == "revoked":
        token = sim.mint_token()
        sim.revoke_token(token)
    else:
        token = sim.token_for(sim.add_tenant("other"))
    c = client(sim, token=token, server_url=sim.server_url, tenant_id=sim.tenant_id)
    with c, pytest.raises(HatchetAuthError) as err:
        c.send(endpoints.list_workflows())
    assert err.value.status_code == 403
    assert token not in str(err.value)


def test_a_bad_request_carries_the_servers_descriptions(sim: Any) -> None:
    with client(sim) as c, pytest.raises(HatchetBadRequestError) as err:
        c.send(endpoints.trigger(TriggerRequest("demo-etl", {}, priority=7)))
    assert err.value.descriptions == ["priority must be between 1 and 3, got 7"]
    assert sim.runs == []


def test_reads_retry_429_and_5xx_then_succeed(sim: Any) -> None:
    with client(sim) as c:
        run_id = c.send(endpoints.trigger(TriggerRequest("demo-etl", {})))
        wait_visible(sim)
        sim.fail_next("status", 1, 429)
        sim.fail_next("status", 1, 503)
        assert c.send(endpoints.run_status(run_id)) in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.COMPLETED)
    assert [r.status for r in sim.requests if r.route == "status"] == [429, 503, 200]


def test_rate_limit_and_server_errors_surface_once_retries_are_spent(sim: Any) -> None:
    with client(sim, retry=ONCE) as c:
        sim.fail_next("workflows", 1, 429)
        with pytest.raises(HatchetRateLimitError):
            c.send(endpoints.list_workflows())
        sim.fail_next("workflows", 1, 500)
        with pytest.raises(HatchetServerError) as err:
            c.send(endpoints.list_workflows())
    assert err.value.status_code == 500


def test_a_trigger_is_never_retried(sim: Any) -> None:
    sim.fail_next("trigger", 1, 503, after_create=True)
    with client(sim) as c, pytest.raises(HatchetServerError):
        c.send(endpoints.trigger(TriggerRequest("demo-etl", {})))
    assert len(sim.runs) == 1
    assert len([r for r in sim.requests if r.route == "trigger"]) == 1


def test_a_dropped_connection_after_the_run_was_created_may_have_been_sent(sim: Any) -> None:
    sim.fail_next("trigger", 1, drop=True, after_create=True)
    with client(sim) as c, pytest.raises(HatchetTransportError) as err:
        c.send(endpoints.trigger(TriggerRequest("demo-etl", {})))
    assert err.value.maybe_sent is True
    assert len(sim.runs) == 1


def test_a_refused_connection_was_not_sent(sim: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        client(sim, retry=ONCE, server_url=f"http://127.0.0.1:{port}") as c,
        pytest.raises(HatchetTransportError) as err,
    ):
        c.send(endpoints.trigger(TriggerRequest("demo-etl", {})))
    assert err.value.maybe_sent is False


def test_async_client_covers_the_same_endpoints(sim: Any) -> None:
    async def scenario() -> tuple[Any, ...]:
        config = ClientConfig.from_token(sim.token)
        async with AsyncHatchetClient(config, retry=FAST) as c:
            run_ids = await asyncio.gather(
                *(c.send(endpoints.trigger(TriggerRequest("demo-etl", {"i": i}, {"k": "a"}))) for i in range(3))
            )
            await asyncio.sleep(sim.visibility_delay + 0.05)
            sim.fail_next("status", 2, 503)
            status = await c.send(endpoints.run_status(run_ids[0]))
            listed = [
                r.id
                async for r in c.iter_rows(endpoints.runs(since=SINCE, page_size=2, additional_metadata={"k": "a"}))
            ]
            cancelled = await c.send(endpoints.cancel(run_ids[1:]))
            workflows = [w async for w in c.iter_rows(endpoints.workflows("demo-etl"))]
            workflow = endpoints.exact_workflow(workflows, "demo-etl")
            await asyncio.sleep(1.0)
            details = await c.send(endpoints.run_details(run_ids[0]))
            with pytest.raises(HatchetNotFoundError):
                await c.send(endpoints.run_status("5b0b6fd5-5ae0-4d1c-9d4a-2f1f7c3b9a10"))
            return run_ids, status, listed, cancelled, workflow, details

    run_ids, status, listed, cancelled, workflow, details = asyncio.run(scenario())
    assert status in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.COMPLETED)
    assert sorted(listed) == sorted(run_ids)
    assert cancelled == run_ids[1:]
    assert workflow is not None and workflow.name == "demo-etl"
    assert details.status is RunStatus.COMPLETED and details.task_outputs()["run"]["echo"] == {"i": 0}
