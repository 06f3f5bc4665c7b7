"""Every client endpoint and hook method, and the connection test, against the simulator and the real server."""

from __future__ import annotations

import contextlib
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_hatchet.client import (
    AsyncHatchetClient,
    HatchetAuthError,
    HatchetClient,
    HatchetNotFoundError,
    HatchetServerError,
    HatchetValidationError,
    RunStatus,
    TriggerRequest,
    endpoints,
)
from airflow_provider_hatchet.client.endpoints import RUN_VISIBILITY_WINDOW
from tests.real.conftest import Backend

SINCE_WINDOW = timedelta(minutes=10)


def wait_terminal(client: HatchetClient, run_id: str, timeout: float = 60) -> RunStatus:
    """Poll a run's status until it is terminal, tolerating the brief 404 after the trigger."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = client.send(endpoints.run_status(run_id))
        except HatchetNotFoundError:
            status = RunStatus.QUEUED
        if status.is_terminal:
            return status
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish in {timeout}s")


def listed(client: HatchetClient, metadata: dict[str, str], count: int, timeout: float = 30) -> list[Any]:
    """List the runs carrying ``metadata`` until ``count`` of them are visible."""
    since = datetime.now(timezone.utc) - SINCE_WINDOW
    deadline = time.monotonic() + timeout
    rows: list[Any] = []
    while time.monotonic() < deadline:
        rows = list(client.iter_rows(endpoints.runs(since=since, additional_metadata=metadata)))
        if len(rows) >= count:
            return rows
        time.sleep(0.2)
    raise AssertionError(f"{len(rows)} of {count} runs listed after {timeout}s")


def test_trigger_status_details_and_list(backend: Backend) -> None:
    client = backend.client()
    metadata = {"test_tag": backend.tag, "colon": "a:b"}
    run_id = client.send(endpoints.trigger(TriggerRequest("demo-etl", {"n": 1}, metadata)))

    assert wait_terminal(client, run_id) is RunStatus.COMPLETED
    details = client.send(endpoints.run_details(run_id))
    assert details.id == run_id
    assert details.status is RunStatus.COMPLETED
    assert details.run.output == {"workflow": "demo-etl", "task": "run", "step": 0, "echo": {"n": 1}}
    assert details.task_outputs() == {"run": details.run.output}
    assert {k: details.run.additional_metadata[k] for k in metadata} == metadata
    [row] = listed(client, metadata, 1)
    assert row.id == run_id
    assert row.status is RunStatus.COMPLETED


def test_a_multi_task_run_has_one_output_per_task(backend: Backend) -> None:
    client = backend.client()
    run_id = client.send(endpoints.trigger(TriggerRequest("demo-multi", {"n": 2}, {"test_tag": backend.tag})))

    assert wait_terminal(client, run_id) is RunStatus.COMPLETED
    outputs = client.send(endpoints.run_details(run_id)).task_outputs()
    assert list(outputs) == ["extract", "transform", "load"]
    assert outputs == {
        task: {"workflow": "demo-multi", "task": task, "step": step, "echo": {"n": 2}}
        for step, task in enumerate(("extract", "transform", "load"))
    }


def test_a_failed_run_carries_the_task_error(backend: Backend) -> None:
    client = backend.client()
    run_id = client.send(endpoints.trigger(TriggerRequest("demo-fail", {}, {"test_tag": backend.tag})))

    assert wait_terminal(client, run_id) is RunStatus.FAILED
    details = client.send(endpoints.run_details(run_id))
    assert details.run.error_message is not None
    assert details.run.error_message.startswith("Exception: simulated failure in demo-fail:run")
    assert list(details.error_messages()) == ["run"]


def test_cancel_turns_a_hanging_run_cancelled(backend: Backend) -> None:
    client = backend.client()
    run_id = client.send(endpoints.trigger(TriggerRequest("demo-hang", {}, {"test_tag": backend.tag})))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if client.send(endpoints.run_status(run_id)) is RunStatus.RUNNING:
                break
        except HatchetNotFoundError:
            pass
        time.sleep(0.1)
    running = client.send(endpoints.run_details(run_id)).run
    assert running.started_at is not None
    assert running.finished_at is None  # the server sends Go's zero time for a run that has not finished

    assert client.send(endpoints.cancel([run_id])) == [run_id]
    assert wait_terminal(client, run_id) is RunStatus.CANCELLED
    assert client.send(endpoints.run_details(run_id)).run.finished_at is not None


def test_list_filters_by_status_and_pages_in_order(backend: Backend) -> None:
    client = backend.client()
    metadata = {"test_tag": backend.tag}
    ids = [client.send(endpoints.trigger(TriggerRequest("demo-etl", {"i": i}, metadata))) for i in range(7)]
    for run_id in ids:
        wait_terminal(client, run_id)

    since = datetime.now(timezone.utc) - SINCE_WINDOW
    paged = list(client.iter_rows(endpoints.runs(since=since, page_size=3, additional_metadata=metadata)))
    assert [row.id for row in paged] == ids[::-1]
    completed = client.send(
        endpoints.list_runs(since=since, additional_metadata=metadata, statuses=[RunStatus.COMPLETED])
    )
    assert {row.id for row in completed.rows} == set(ids)
    failed = client.send(endpoints.list_runs(since=since, additional_metadata=metadata, statuses=[RunStatus.FAILED]))
    assert failed.rows == []


def test_workflow_lookup_is_exact_and_case_sensitive(backend: Backend) -> None:
    client = backend.client()

    assert endpoints.exact_workflow(client.iter_rows(endpoints.workflows("demo-etl")), "demo-etl") is not None
    assert endpoints.exact_workflow(client.iter_rows(endpoints.workflows("Demo-Etl")), "Demo-Etl") is None
    assert endpoints.exact_workflow(client.iter_rows(endpoints.workflows("demo-et")), "demo-et") is None
    names = {w.name for w in client.send(endpoints.list_workflows("demo-")).rows}
    assert {"demo-etl", "demo-fail", "airflowtest_demo-etl"} <= names


def test_an_unknown_run_is_not_found(backend: Backend) -> None:
    client = backend.client()

    with pytest.raises(HatchetNotFoundError):
        client.send(endpoints.run_status("00000000-0000-4000-8000-000000000000"))
    with pytest.raises(HatchetNotFoundError):
        client.send(endpoints.run_details("00000000-0000-4000-8000-000000000000"))


def test_another_tenants_token_cannot_read_the_run(backend: Backend) -> None:
    client = backend.client()
    run_id = client.send(endpoints.trigger(TriggerRequest("demo-etl", {}, {"test_tag": backend.tag})))
    wait_terminal(client, run_id)
    foreign = backend.client(token=backend.foreign_token)

    with pytest.raises(HatchetAuthError):
        foreign.send(endpoints.run_status(run_id))


async def test_the_async_client_covers_the_same_calls(backend: Backend) -> None:
    metadata = {"test_tag": backend.tag}
    async with AsyncHatchetClient(backend.config()) as client:
        run_id = await client.send(endpoints.trigger(TriggerRequest("demo-etl", {"a": 1}, metadata)))
        deadline = time.monotonic() + 60
        status = RunStatus.QUEUED
        while time.monotonic() < deadline and not status.is_terminal:
            with contextlib.suppress(HatchetNotFoundError):
                status = await client.send(endpoints.run_status(run_id))
            if not status.is_terminal:
                await _sleep(0.1)
        assert status is RunStatus.COMPLETED
        assert (await client.send(endpoints.run_details(run_id))).run.output["echo"] == {"a": 1}
        since = datetime.now(timezone.utc) - SINCE_WINDOW
        assert [
            row.id async for row in client.iter_rows(endpoints.runs(since=since, additional_metadata=metadata))
        ] == [run_id]
        workflows = [w async for w in client.iter_rows(endpoints.workflows("demo-multi"))]
        assert endpoints.exact_workflow(workflows, "demo-multi") is not None
        hang = await client.send(endpoints.trigger(TriggerRequest("demo-hang", {}, metadata)))
        await _sleep(RUN_VISIBILITY_WINDOW / 5)
        assert await client.send(endpoints.cancel([hang])) == [hang]


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def test_hook_methods(backend: Backend, airflow_conn: Any) -> None:
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook

    backend.connect(airflow_conn, namespace="AirflowTest")
    hook = HatchetHook()

    assert hook.resolve_workflow("demo-etl") == "airflowtest_demo-etl"
    with pytest.raises(HatchetValidationError, match="no workflow named 'airflowtest_demo-missing'"):
        hook.resolve_workflow("demo-missing")
    run_id = hook.run_workflow("demo-etl", {"x": 1}, {"test_tag": backend.tag, "n": 3}, priority=2)
    assert hook.run_url(run_id) == f"{backend.server_url}/tenants/{hook.config.tenant_id}/runs/{run_id}"
    assert wait_terminal(hook.client, run_id) is RunStatus.COMPLETED
    details = hook.send(endpoints.run_details(run_id))
    assert details.run.output["workflow"] == "airflowtest_demo-etl"
    assert details.run.additional_metadata["n"] == "3"
    assert hook.send(endpoints.run_status(run_id)) is RunStatus.COMPLETED
    hang = hook.run_workflow("demo-hang", {}, {"test_tag": backend.tag})
    assert hook.cancel_runs([hang]) == [hang]
    assert wait_terminal(hook.client, hang) is RunStatus.CANCELLED
    hook.close()


def test_connection_reports_a_good_token_a_bad_one_and_a_foreign_tenant(backend: Backend, airflow_conn: Any) -> None:
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook

    backend.connect(airflow_conn, "hatchet_good")
    ok, message = HatchetHook("hatchet_good").test_connection()
    assert ok, message
    # The real server's version is the release it was built as (make hatchet-up HATCHET_VERSION=...).
    version = backend.engine_version if backend.is_real else backend.sim.version
    assert message.startswith(f"Connected to Hatchet {version} at {backend.server_url} ")

    header, payload, signature = backend.token.split(".")
    forged = ".".join([header, payload, signature[::-1]])
    airflow_conn("hatchet_bad", conn_type="hatchet", host=backend.server_url, password=forged)
    ok, message = HatchetHook("hatchet_bad").test_connection()
    assert not ok
    assert "rejected the API token (403)" in message
    assert forged not in message

    # The foreign tenant's token, used for the default tenant: the token's tenant does not match the path's.
    default_tenant = backend.config().tenant_id
    airflow_conn(
        "hatchet_foreign",
        conn_type="hatchet",
        host=backend.server_url,
        password=backend.foreign_token,
        extra={"tenant_id": default_tenant},
    )
    ok, message = HatchetHook("hatchet_foreign").test_connection()
    assert not ok
    assert "does not belong to the tenant" in message


def test_an_idempotency_key_collision_is_a_500_that_says_it_may_be_one(backend: Backend) -> None:
    client = backend.client()
    metadata = {"test_tag": backend.tag}
    held = client.send(endpoints.trigger(TriggerRequest("demo-idempotent", {"key": backend.tag}, metadata)))

    with pytest.raises(HatchetServerError, match="idempotency key is already held by another run") as err:
        client.send(endpoints.trigger(TriggerRequest("demo-idempotent", {"key": backend.tag}, metadata)))
    assert err.value.status_code == 500
    other = client.send(endpoints.trigger(TriggerRequest("demo-idempotent", {"key": f"{backend.tag}-other"}, metadata)))
    assert {row.id for row in listed(client, metadata, 2)} == {held, other}


async def test_hook_async_methods(backend: Backend, airflow_conn: Any) -> None:
    import asyncio

    from airflow_provider_hatchet.hooks.hatchet import HatchetHook

    backend.connect(airflow_conn)
    hook = HatchetHook()
    run_id = hook.run_workflow("demo-hang", {}, {"test_tag": backend.tag})
    deadline = time.monotonic() + 30
    status = RunStatus.QUEUED
    while status is not RunStatus.RUNNING and time.monotonic() < deadline:
        with contextlib.suppress(HatchetNotFoundError):
            status = await hook.asend(endpoints.run_status(run_id))
        await asyncio.sleep(0.1)

    assert status is RunStatus.RUNNING
    assert (await hook.asend(endpoints.run_details(run_id))).status is RunStatus.RUNNING
    assert await hook.asend(endpoints.cancel([run_id])) == [run_id]
    assert wait_terminal(hook.client, run_id) is RunStatus.CANCELLED
    assert (await hook.asend(endpoints.run_details(run_id))).status is RunStatus.CANCELLED
    await HatchetHook.aclose_loop_clients()
    hook.close()
