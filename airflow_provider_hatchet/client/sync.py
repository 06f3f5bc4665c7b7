"""The synchronous Hatchet REST client: the async client, run on one event loop per process.

Each sync call is handed to that loop and waited for, so there is one way to send a call, and a request's total
time is bounded by ``anyio.fail_after`` there (httpx's own timeouts restart with every chunk read).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from types import TracebackType
from typing import TypeVar

import anyio
import httpx
from anyio.from_thread import BlockingPortal

from airflow_provider_hatchet.client import endpoints
from airflow_provider_hatchet.client.aio import DEFAULT_MAX_CONNECTIONS, AsyncHatchetClient
from airflow_provider_hatchet.client.config import ClientConfig
from airflow_provider_hatchet.client.paging import Pages
from airflow_provider_hatchet.client.retry import DEFAULT_RETRY, RetryPolicy
from airflow_provider_hatchet.client.server_clock import ServerClock

T = TypeVar("T")
R = TypeVar("R")

_lock = threading.Lock()
_portal: tuple[int, BlockingPortal] | None = None


def _serve(started: Future[BlockingPortal]) -> None:
    async def serve() -> None:
        async with BlockingPortal() as portal:
            started.set_result(portal)
            await portal.sleep_until_stopped()

    anyio.run(serve)


def shared_portal() -> BlockingPortal:
    """The process's event loop for sync clients, in a daemon thread (so that a client never closed cannot hold
    the interpreter open); started on first use, and again in a forked child."""
    global _portal
    with _lock:
        if _portal is None or _portal[0] != os.getpid():
            started: Future[BlockingPortal] = Future()
            threading.Thread(target=_serve, args=(started,), name="hatchet-sync-client", daemon=True).start()
            _portal = (os.getpid(), started.result())
        return _portal[1]


class HatchetClient:
    """A synchronous client for Hatchet's v1 REST API, with one connection pool.

    :param config: the client settings.
    :param retry: how idempotent requests are retried.
    :param transport: an httpx transport to use instead of the network (e.g. the simulator's).
    :param max_connections: the connection pool size.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self._async = AsyncHatchetClient(config, retry=retry, transport=transport, max_connections=max_connections)
        self._portal = shared_portal()

    @property
    def config(self) -> ClientConfig:
        """The client settings."""
        return self._async.config

    @property
    def server_clock(self) -> ServerClock:
        """Hatchet's time, from the ``Date`` header of every answer."""
        return self._async.server_clock

    def __repr__(self) -> str:
        return f"{type(self).__name__}(server_url={self.config.server_url!r}, tenant_id={self.config.tenant_id!r})"

    def __enter__(self) -> HatchetClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._portal.call(self._async.aclose)

    def run_url(self, run_id: str) -> str:
        """The dashboard link of a run.

        :param run_id: the run id.
        """
        return self.config.run_url(run_id)

    def send(self, call: endpoints.Call[T]) -> T:
        """Send one call, retrying it under the retry policy if it is idempotent.

        :param call: the call, e.g. ``endpoints.run_details(run_id)``.
        """
        return self._portal.call(self._async.send, call)

    def iter_rows(self, pages: Pages[R]) -> Iterator[R]:
        """Yield every row of a list, page after page.

        :param pages: the list, e.g. ``endpoints.runs(since=...)``.
        """
        offset: int | None = 0
        while offset is not None:
            page = self.send(pages.call(offset))
            yield from page.rows
            offset = pages.next_offset(offset, page)
