"""Every request is bounded in total, even against a server that answers one byte a second, and so is the trigger."""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from airflow_provider_hatchet.client import AsyncHatchetClient, ClientConfig, HatchetClient, RetryPolicy, endpoints
from airflow_provider_hatchet.client.errors import HatchetTransportError
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.testing import HatchetSimulator
from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunTrigger

pytestmark = [pytest.mark.af2, pytest.mark.loopback]

RUN_ID = "0b5e6b9e-1b7a-4a8e-9a39-2f3c7d1e5a01"
HEAD = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n'
DRIPS = 15  # bytes, one a second, before the server gives up and closes


class DrippingServer:
    """A loopback HTTP server that answers every request one byte a second: its headers, or its body after headers
    sent at once. It records whether the client hung up before the drip ended."""

    def __init__(self, drip: str) -> None:
        self.drip = drip
        self.abandoned: list[bool] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            answer = HEAD + b'"RUNNING"' + b" " * 100
            if self.drip == "body":
                conn.sendall(HEAD)
                answer = answer[len(HEAD):]
            try:
                for byte in answer[:DRIPS]:
                    conn.sendall(bytes([byte]))
                    readable, _, _ = select.select([conn], [], [], 1.0)
                    if readable and not conn.recv(1):
                        self.abandoned.append(True)
                        return
            except (ConnectionResetError, BrokenPipeError):
                # The client hung up with a reset rather than a close.
                self.abandoned.append(True)
                return
            self.abandoned.append(False)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture(params=["headers", "body"])
def dripping(request: pytest.FixtureRequest) -> Iterator[DrippingServer]:
    server = DrippingServer(request.param)
    yield server
    server.close()


def config_for(server: DrippingServer, timeout: float) -> ClientConfig:
    return ClientConfig.from_token(HatchetSimulator().token, server_url=server.url, timeout=timeout)


def check_timeout_error(exc: HatchetTransportError, token: str) -> None:
    assert "GET /api/v1/stable/workflow-runs/{id}/status did not finish within 2 s" in str(exc)
    assert token not in str(exc)


def test_the_sync_client_gives_up_on_a_trickling_answer(dripping: DrippingServer) -> None:
    config = config_for(dripping, timeout=2)
    with HatchetClient(config, retry=RetryPolicy(attempts=1)) as client, \
            pytest.raises(HatchetTransportError) as err:
        client.send(endpoints.run_status(RUN_ID))
    check_timeout_error(err.value, config.token)
    assert err.value.maybe_sent
    wait_for(lambda: bool(dripping.abandoned))
    assert dripping.abandoned == [True]


async def test_the_async_client_gives_up_on_a_trickling_answer(dripping: DrippingServer) -> None:
    config = config_for(dripping, timeout=2)
    async with AsyncHatchetClient(config, retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(HatchetTransportError) as err:
            await client.send(endpoints.run_status(RUN_ID))
    check_timeout_error(err.value, config.token)
    await asyncio.to_thread(wait_for, lambda: bool(dripping.abandoned))
    assert dripping.abandoned == [True]


async def test_the_trigger_deadline_interrupts_a_round_in_flight(airflow_conn: Callable[..., str]) -> None:
    server = DrippingServer("body")
    try:
        # The request alone may take a minute; the task's deadline is in 2 s.
        airflow_conn("hatchet_dripping", conn_type="hatchet", host=server.url, password=HatchetSimulator().token,
                     extra={"timeout": 60})
        trigger = HatchetWorkflowRunTrigger([RUN_ID], "hatchet_dripping", execution_deadline=time.time() + 2)
        events = [event.payload async for event in trigger.run()]
        await HatchetHook.aclose_loop_clients()
    finally:
        server.close()
    assert [e["status"] for e in events] == ["timeout"]
    assert RUN_ID in events[0]["message"]
    await asyncio.to_thread(wait_for, lambda: bool(server.abandoned))
    assert server.abandoned == [True]


def wait_for(condition: Callable[[], bool]) -> None:
    """Wait until the server's handler has finished (at most the drip's length)."""
    for _ in range(DRIPS * 10 + 20):
        if condition():
            return
        time.sleep(0.1)
