"""The asynchronous Hatchet REST client: it sends :class:`~.endpoints.Call` s; the sync client runs on it."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from functools import lru_cache
from types import TracebackType
from typing import TypeVar, cast

import anyio
import httpx

from airflow_provider_hatchet import __version__
from airflow_provider_hatchet.client import endpoints
from airflow_provider_hatchet.client.config import ClientConfig
from airflow_provider_hatchet.client.errors import HatchetConfigError
from airflow_provider_hatchet.client.lanes import LaneTransport
from airflow_provider_hatchet.client.paging import Pages
from airflow_provider_hatchet.client.retry import DEFAULT_RETRY, RetryPolicy
from airflow_provider_hatchet.client.server_clock import ServerClock

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_MAX_CONNECTIONS = 32


@lru_cache(maxsize=8)
def ssl_context(verify: bool | str) -> ssl.SSLContext:
    """One SSL context per setting and process: building one costs about 25 ms, and httpx builds one per client.

    :param verify: True for the default CA bundle, False for no verification, or a CA bundle path.
    """
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return httpx.create_ssl_context(verify=verify)


def http_client(config: ClientConfig, transport: httpx.AsyncBaseTransport | None,
                max_connections: int) -> httpx.AsyncClient:
    """The httpx client for a config: its token, timeouts and SSL context, and the connection's ``proxy``, else
    the environment's (``HTTP(S)_PROXY``, ``ALL_PROXY``, ``NO_PROXY``, by httpx's own rules).

    :param config: the client settings.
    :param transport: a transport to use instead of the network and any proxy (e.g. the simulator's).
    :param max_connections: the connection pool size: requests in flight at once.
    :raises HatchetConfigError: for a proxy URL httpx cannot use, or a SOCKS proxy without ``socksio``.
    """
    verify = ssl_context(config.verify if config.server_url.startswith("https://") else False)
    if transport is not None:
        return httpx.AsyncClient(headers=_headers(config), transport=transport, trust_env=False,
                                 timeout=_timeout(config))
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    source = "The connection extra 'proxy'" if config.proxy else "The proxy set in the environment"
    # The lanes serve every URL no proxy is mounted for (a transport given as ``transport`` would turn the
    # environment's proxies off). "all://*" ranks with "all://" and after it, so ALL_PROXY still wins; a proxied
    # server, or one NO_PROXY names, gets httpx's own pool.
    lanes = None if config.proxy else {"all://*": LaneTransport(max_connections, verify=verify)}
    try:
        return httpx.AsyncClient(headers=_headers(config), timeout=_timeout(config), verify=verify, limits=limits,
                                 proxy=config.proxy, trust_env=True, mounts=lanes)
    except ImportError:
        raise HatchetConfigError("A SOCKS proxy needs the socksio package: pip install 'httpx[socks]'") from None
    except (ValueError, httpx.InvalidURL):
        # Not echoed: a proxy URL may hold a password.
        raise HatchetConfigError(
            f"{source} is not a usable proxy URL (schemes http, https, socks5, socks5h)"
        ) from None


def _headers(config: ClientConfig) -> dict[str, str]:
    return {"Authorization": f"Bearer {config.token}", "User-Agent": f"airflow-provider-hatchet/{__version__}",
            "Accept": "application/json"}


def _timeout(config: ClientConfig) -> httpx.Timeout:
    return httpx.Timeout(config.timeout, connect=min(config.timeout, 10.0))


class AsyncHatchetClient:
    """An asynchronous client for Hatchet's v1 REST API, with one connection pool.

    :param config: the client settings.
    :param retry: how idempotent requests are retried.
    :param transport: an httpx transport to use instead of the network (e.g. the simulator's).
    :param max_connections: the connection pool size: requests in flight at once.
    :param server_clock: where Hatchet's time is kept (the sync client's, which outlives its async clients); a new
        one by default.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        server_clock: ServerClock | None = None,
    ) -> None:
        self.config = config
        self.retry = retry
        # Hatchet's time, from the Date header of every answer: what the watchers anchor their windows to.
        self.server_clock = server_clock or ServerClock()
        self._http = http_client(config, transport, max_connections)
        # A request waits here, before anything is built for it, rather than in the pool: a triggerer's 1,000
        # first rounds then hold about 10 KB less each at their peak, which the process keeps as resident memory.
        self._slots = asyncio.Semaphore(max(1, max_connections))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(server_url={self.config.server_url!r}, tenant_id={self.config.tenant_id!r})"

    async def __aenter__(self) -> AsyncHatchetClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def run_url(self, run_id: str) -> str:
        """The dashboard link of a run.

        :param run_id: the run id.
        """
        return self.config.run_url(run_id)

    async def send(self, call: endpoints.Call[T]) -> T:
        """Send one call, retrying it under the retry policy if it is idempotent.

        :param call: the call, e.g. ``endpoints.run_details(run_id)``.
        """
        call = call.for_tenant(self.config.tenant_id)
        if not call.idempotent:
            return await self._send_once(call)
        return cast(T, await self.retry.async_retrying()(self._send_once, call))

    async def iter_rows(self, pages: Pages[R]) -> AsyncIterator[R]:
        """Yield every row of a list, page after page.

        :param pages: the list, e.g. ``endpoints.runs(since=...)``.
        """
        offset: int | None = 0
        while offset is not None:
            page = await self.send(pages.call(offset))
            for row in page.rows:
                yield row
            offset = pages.next_offset(offset, page)

    async def _send_once(self, call: endpoints.Call[T]) -> T:
        async with self._slots:
            return await self._send_now(call)

    async def _send_now(self, call: endpoints.Call[T]) -> T:
        clock = self.server_clock
        sent = clock.local()
        try:
            # httpx's timeouts restart with every read: this bounds the whole request (not its wait for a slot).
            with anyio.fail_after(self.config.timeout):
                response = await self._http.request(
                    call.method, self.config.server_url + call.path, params=call.params, json=call.json)
            clock.observe(sent, clock.local(), response.headers.get("date"))
        except httpx.TransportError as exc:
            raise endpoints.transport_error(exc) from exc
        except TimeoutError as exc:
            raise endpoints.total_timeout(call, self.config.timeout) from exc
        return endpoints.parse(call, response, self.config.token)
