"""Answers the client must not take at face value, and values it must not put into a URL as they are: over real
HTTP, against the simulator or a loopback server with one canned answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_hatchet.client import (
    AsyncHatchetClient,
    ClientConfig,
    HatchetAPIError,
    HatchetBadRequestError,
    HatchetClient,
    HatchetConfigError,
    HatchetMalformedResponseError,
    HatchetRetryableError,
    HatchetServerError,
    HatchetUnexpectedResponseError,
    HatchetValidationError,
    RetryPolicy,
    TriggerRequest,
    endpoints,
)
from tests.http_helpers import CannedServer
from tests.test_client import FAST, ONCE
from tests.tokens import make_token

pytestmark = [pytest.mark.af2, pytest.mark.loopback]

RUN_ID = "5b0b6fd5-5ae0-4d1c-9d4a-2f1f7c3b9a10"


@pytest.fixture
def sim(hatchet_server: Any) -> Iterator[Any]:
    from airflow_provider_hatchet.testing import register_demo_workflows

    simulator = hatchet_server.simulator
    simulator.reset(keep_workflows=False)
    register_demo_workflows(simulator)
    yield simulator


def client(sim: Any, retry: RetryPolicy = FAST) -> HatchetClient:
    return HatchetClient(ClientConfig.from_token(sim.token), retry=retry)


def canned_client(server: CannedServer, retry: RetryPolicy = FAST, **overrides: Any) -> HatchetClient:
    return HatchetClient(ClientConfig.from_token(make_token(), server_url=server.url, **overrides), retry=retry)


# The server's text in errors


def test_the_token_in_a_servers_error_descriptions_is_scrubbed(sim: Any) -> None:
    body = {"errors": [{"description": f"token {sim.token} is not valid here"}, {"description": "second"}]}
    sim.fail_next("trigger", 1, 400, body=body)
    with client(sim) as c, pytest.raises(HatchetBadRequestError) as err:
        c.send(endpoints.trigger(TriggerRequest("demo-etl", {})))
    assert err.value.descriptions == ["token *** is not valid here", "second"]
    assert sim.token not in str(err.value)
    assert sim.token.split(".")[2] not in str(err.value)


@pytest.mark.parametrize("route", ["trigger", "workflows"])
def test_line_breaks_and_control_characters_in_a_servers_message_cannot_forge_log_lines(sim: Any, route: str) -> None:
    forged = "bad\r\n[2026-01-01T00:00:00] {taskinstance.py:1} INFO - Marking task as SUCCESS\x1b[2K\u2028x"
    sim.fail_next(route, 1, 400, body={"message": forged, "errors": [{"description": forged}]})
    with client(sim) as c, pytest.raises(HatchetBadRequestError) as err:
        c.send(endpoints.trigger(TriggerRequest("demo-etl", {}))) if route == "trigger" else c.send(
            endpoints.list_workflows()
        )
    for text in (str(err.value), *err.value.descriptions):
        assert not any(ch in text for ch in "\r\n\x1b\u2028"), text
        assert "Marking task as SUCCESS" in text  # still readable, on one line


@pytest.mark.parametrize("echo", ["Authorization: Bearer {token}", "bearer    {signature}", "Bearer not-the-token"])
def test_a_bearer_credential_in_a_servers_message_is_scrubbed(sim: Any, echo: str) -> None:
    text = echo.format(token=sim.token, signature=sim.token.split(".")[2])
    sim.fail_next("workflows", 1, 502, body={"message": f"upstream rejected {text} (request 7)"})
    with client(sim, retry=ONCE) as c, pytest.raises(HatchetServerError) as err:
        c.send(endpoints.list_workflows())
    assert err.value.message.startswith("upstream rejected ")
    assert err.value.message.endswith("*** (request 7)")
    assert "Bearer ***" in err.value.message or "bearer ***" in err.value.message.lower()
    for secret in (sim.token, sim.token.split(".")[2], "not-the-token"):
        assert secret not in str(err.value)


def test_the_token_in_a_plain_text_error_page_is_scrubbed() -> None:
    token = make_token()
    page = f"{'x' * 190} denied for {token}".encode()  # longer than the 200 characters kept
    with (
        CannedServer(403, page, {"Content-Type": "text/plain"}) as server,
        canned_client(server) as c,
        pytest.raises(HatchetAPIError) as err,
    ):
        c.send(endpoints.list_workflows())
    assert err.value.message == f"{'x' * 190} denied for ***"[:200]
    assert token[:4] not in str(err.value)


def test_the_async_client_scrubs_the_token_too(sim: Any) -> None:
    sim.fail_next("cancel", 1, 400, body={"errors": [{"description": f"Bearer {sim.token}"}]})

    async def scenario() -> None:
        async with AsyncHatchetClient(ClientConfig.from_token(sim.token), retry=ONCE) as c:
            await c.send(endpoints.cancel([RUN_ID]))

    with pytest.raises(HatchetBadRequestError) as err:
        asyncio.run(scenario())
    assert err.value.descriptions == ["Bearer ***"]


# Redirects, non-JSON successes and JSON of the wrong shape


def test_a_redirect_is_a_configuration_error_naming_the_endpoint_and_location() -> None:
    with CannedServer(301, headers={"Location": "https://hatchet.example.com/api/v1/tenants"}) as server:
        with canned_client(server) as c, pytest.raises(HatchetUnexpectedResponseError) as err:
            c.send(endpoints.list_workflows())
        assert len(server.requests) == 1  # not retried, though listing is idempotent
    error = err.value
    assert isinstance(error, HatchetConfigError)
    assert not isinstance(error, HatchetRetryableError)
    assert error.status_code == 301
    assert error.location == "https://hatchet.example.com/api/v1/tenants"
    assert "GET /api/v1/tenants/" in str(error) and "/workflows" in str(error)
    assert "https://hatchet.example.com/api/v1/tenants" in str(error)


@pytest.mark.parametrize("status", [200, 201])
def test_a_success_that_is_not_json_is_a_configuration_error(status: int) -> None:
    page = b"<!doctype html><title>Hatchet dashboard</title>"
    with CannedServer(status, page, {"Content-Type": "text/html"}) as server:
        with canned_client(server) as c, pytest.raises(HatchetUnexpectedResponseError) as err:
            c.send(endpoints.run_status(RUN_ID))
        assert len(server.requests) == 1
    assert isinstance(err.value, HatchetConfigError)
    assert err.value.status_code == status
    assert f"GET /api/v1/stable/workflow-runs/{RUN_ID}/status" in str(err.value)
    assert "text/html" in str(err.value) and "dashboard" in str(err.value)


def test_a_redirect_of_the_async_client_is_a_configuration_error() -> None:
    async def scenario(server: CannedServer) -> None:
        config = ClientConfig.from_token(make_token(), server_url=server.url)
        async with AsyncHatchetClient(config, retry=FAST) as c:
            await c.send(endpoints.trigger(TriggerRequest("demo-etl", {})))

    with (
        CannedServer(308, headers={"Location": "https://secure.example.com/"}) as server,
        pytest.raises(
            HatchetUnexpectedResponseError, match=r"308.*workflow-runs/trigger.*https://secure\.example\.com/"
        ),
    ):
        asyncio.run(scenario(server))


@pytest.mark.parametrize(
    ("route", "body", "words"),
    [
        ("details", [1, 2], "GET /api/v1/stable/workflow-runs/"),
        ("details", {"run": "not an object"}, "GET /api/v1/stable/workflow-runs/"),
        ("status", "NOT_A_STATUS", "/status"),
        ("workflows", {"rows": "secret-ish body value"}, "/workflows"),
    ],
)
def test_json_of_the_wrong_shape_is_an_error_naming_the_endpoint_without_the_body(
    sim: Any, route: str, body: Any, words: str
) -> None:
    sim.fail_next(route, 1, 200, body=body)
    with client(sim) as c, pytest.raises(HatchetMalformedResponseError) as err:
        {
            "details": lambda: c.send(endpoints.run_details(RUN_ID)),
            "status": lambda: c.send(endpoints.run_status(RUN_ID)),
            "workflows": lambda: c.send(endpoints.list_workflows()),
        }[route]()
    assert words in str(err.value)
    assert "secret-ish" not in str(err.value) and "NOT_A_STATUS" not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


@pytest.mark.parametrize(
    ("run_id", "kind"),
    [
        (None, "null"),
        ("", "empty"),
        (42, "a int"),
        ({"a": 1}, "a dict"),
        ("not-a-run", "not a UUID"),
        # A line break would forge a line in the task log that names the run.
        (RUN_ID + "\n[2026-01-01] ERROR forged", "not a UUID"),
    ],
)
def test_a_trigger_answer_without_a_usable_run_id_is_an_error(sim: Any, run_id: Any, kind: str) -> None:
    sim.fail_next("trigger", 1, 200, body={"run": {"metadata": {"id": run_id}}})
    with client(sim) as c, pytest.raises(HatchetMalformedResponseError, match=f"run.metadata.id is {kind}"):
        c.send(endpoints.trigger(TriggerRequest("demo-etl", {})))


# Values that go into URL paths


@pytest.mark.parametrize("run_id", ["../../tenants/x/workflows", "a/b", "r-1", RUN_ID + "?x=1", "", 7])
def test_a_run_id_that_is_not_a_uuid_is_a_field_error_before_anything_is_sent(sim: Any, run_id: Any) -> None:
    with client(sim) as c:
        for call in (endpoints.run_details, endpoints.run_status):
            with pytest.raises(HatchetValidationError) as err:
                c.send(call(run_id))
            assert err.value.field == "run_id"

    async def scenario() -> None:
        async with AsyncHatchetClient(ClientConfig.from_token(sim.token)) as c:
            with pytest.raises(HatchetValidationError, match="run_id"):
                await c.send(endpoints.run_details(run_id))
            with pytest.raises(HatchetValidationError, match="run_id"):
                await c.send(endpoints.run_status(run_id))

    asyncio.run(scenario())
    assert sim.requests == []


def test_a_sensor_given_a_run_id_that_is_not_a_uuid_fails_naming_run_id_before_sending(hatchet: Any) -> None:
    from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor

    with pytest.raises(HatchetValidationError) as err:
        HatchetWorkflowRunSensor(task_id="wait", run_id="../../tenants/other/workflows", poke_interval=0.1)
    assert err.value.field == "run_id"
    sensor = HatchetWorkflowRunSensor(task_id="wait", run_id="{{ params.run }}", poke_interval=0.1)
    sensor.run_id = "../../tenants/other/workflows"  # as rendered
    with pytest.raises(HatchetValidationError) as err:
        sensor.poke({})
    assert err.value.field == "run_id"
    assert hatchet.requests == []
