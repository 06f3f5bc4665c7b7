"""The synchronous Hatchet REST client: the async client, run through a :class:`~.bridge.Bridge`.

Each sync call is handed to the process's bridge loop and waited for, so there is one way to send a call, and a
request's total time is bounded by ``anyio.fail_after`` there (httpx's own timeouts restart with every chunk read).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import TypeVar

import httpx

from airflow_provider_hatchet.client import endpoints
from airflow_provider_hatchet.client.aio import DEFAULT_MAX_CONNECTIONS, AsyncHatchetClient
from airflow_provider_hatchet.client.bridge import Bridge
from airflow_provider_hatchet.client.config import ClientConfig
from airflow_provider_hatchet.client.paging import Pages
from airflow_provider_hatchet.client.retry import DEFAULT_RETRY, RetryPolicy
from airflow_provider_hatchet.client.server_clock import ServerClock

T = TypeVar("T")
R = TypeVar("R")


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
        self.config = config
        # Hatchet's time, kept here: the async client under it is built anew in a forked child.
        self.server_clock = ServerClock()

        def new_client() -> AsyncHatchetClient:
            return AsyncHatchetClient(config, retry=retry, transport=transport, max_connections=max_connections,
                                      server_clock=self.server_clock)

        # Built now, so that a bad setting (a proxy URL) fails here rather than on the first call.
        self._bridge = Bridge(new_client, client=new_client())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(server_url={self.config.server_url!r}, tenant_id={self.config.tenant_id!r})"

    def __enter__(self) -> HatchetClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (a later call opens a new one)."""
        self._bridge.close()

    def run_url(self, run_id: str) -> str:
        """The dashboard link of a run.

        :param run_id: the run id.
        """
        return self.config.run_url(run_id)

    def send(self, call: endpoints.Call[T]) -> T:
        """Send one call, retrying it under the retry policy if it is idempotent.

        :param call: the call, e.g. ``endpoints.run_details(run_id)``.
        """
        return self._bridge.call(lambda client: client.send(call))

    def iter_rows(self, pages: Pages[R]) -> Iterator[R]:
        """Yield every row of a list, page after page.

        :param pages: the list, e.g. ``endpoints.runs(since=...)``.
        """
        offset: int | None = 0
        while offset is not None:
            page = self.send(pages.call(offset))
            yield from page.rows
            offset = pages.next_offset(offset, page)
