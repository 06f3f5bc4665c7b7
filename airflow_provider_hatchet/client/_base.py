"""What the sync and async clients share: building requests, TLS settings and the public helpers.

Both clients send through one pooled httpx transport they own rather than through ``httpx.Client``: the
client layer (URL merging, auth and redirect handling, a log line per request) cost about 40% of the CPU
of a bulk trigger, and this API needs none of it. What the client layer would do with proxies is done here
once, for the one server URL: the connection's ``proxy``, else ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY``.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from typing import Any

import httpx
from httpx._utils import URLPattern, get_environment_proxies

from airflow_provider_hatchet import __version__
from airflow_provider_hatchet.client import endpoints
from airflow_provider_hatchet.client.config import ClientConfig
from airflow_provider_hatchet.client.errors import HatchetConfigError
from airflow_provider_hatchet.client.retry import DEFAULT_RETRY, RetryPolicy
from airflow_provider_hatchet.client.server_clock import ServerClock

DEFAULT_MAX_CONNECTIONS = 32
URL_CACHE_SIZE = 4096


@lru_cache(maxsize=8)
def ssl_context(verify: bool | str) -> ssl.SSLContext:
    """One SSL context per setting and process: building one costs about 25 ms, and httpx builds one per client.

    :param verify: True for the default CA bundle, False for no verification, or a CA bundle path.
    """
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return httpx.create_ssl_context(verify=verify)


def environment_proxy(url: str) -> str | None:
    """The proxy ``httpx.Client(trust_env=True)`` would send a request for ``url`` through, or None.

    It reads ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (either case) as httpx does, with
    httpx's own parser and matching rules: the most specific pattern wins, and ``NO_PROXY`` entries win over the
    proxies.

    :param url: the server URL.
    """
    target = httpx.URL(url)
    patterns = sorted((URLPattern(key), proxy) for key, proxy in get_environment_proxies().items())
    for pattern, proxy in patterns:
        if pattern.matches(target):
            return proxy
    return None


def proxy_for(config: ClientConfig) -> httpx.Proxy | None:
    """The proxy for the config's server: its own ``proxy`` if set, else the environment's, else None.

    :param config: the client settings.
    :raises HatchetConfigError: if the proxy URL is not one httpx can use.
    """
    url = config.proxy or environment_proxy(config.server_url)
    if not url:
        return None
    try:
        return httpx.Proxy(url)
    except (ValueError, httpx.InvalidURL):
        # Not echoed: a proxy URL may hold a password.
        source = "The connection extra 'proxy'" if config.proxy else "The proxy set in the environment"
        raise HatchetConfigError(
            f"{source} is not a usable proxy URL (schemes http, https, socks5, socks5h)"
        ) from None


class ClientBase:
    """Settings and helpers shared by :class:`HatchetClient` and :class:`AsyncHatchetClient`.

    :param config: the client settings.
    :param retry: how idempotent requests are retried.
    """

    def __init__(self, config: ClientConfig, retry: RetryPolicy = DEFAULT_RETRY) -> None:
        self.config = config
        self.retry = retry
        self._urls: dict[str, httpx.URL] = {}
        self._headers = httpx.Headers({
            "Authorization": f"Bearer {config.token}",
            "User-Agent": f"airflow-provider-hatchet/{__version__}",
            "Accept": "application/json",
        })
        self._timeout = httpx.Timeout(config.timeout, connect=min(config.timeout, 10.0)).as_dict()
        self.proxy = proxy_for(config)
        # Hatchet's time, from the Date header of every answer: what the watchers anchor their windows to.
        self.server_clock = ServerClock()

    def build_request(self, call: endpoints.Call[Any]) -> httpx.Request:
        """The HTTP request for a call, with the token and the timeouts.

        :param call: the call.
        """
        return httpx.Request(
            call.method, self.url(call.path), params=call.params, json=call.json, headers=self._headers,
            extensions={"timeout": self._timeout},
        )

    def ssl_context(self) -> ssl.SSLContext:
        """The SSL context for this server; a plain-HTTP server gets the cheap unverified one, never used."""
        return ssl_context(self.config.verify if self.config.server_url.startswith("https://") else False)

    def transport_options(self, max_connections: int) -> dict[str, Any]:
        """Options for the httpx transport: the shared SSL context, the proxy and one pool of keep-alive connections.

        :param max_connections: the pool size.
        """
        return {
            "verify": self.ssl_context(),
            "proxy": self.proxy,
            "limits": httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        }

    def check_proxy_support(self, build: Any) -> Any:
        """Build a transport, turning the ImportError of a SOCKS proxy without ``socksio`` into a config error.

        :param build: a callable returning the transport.
        """
        try:
            return build()
        except ImportError:
            if self.proxy is not None and self.proxy.url.scheme.startswith("socks"):
                raise HatchetConfigError(
                    "A SOCKS proxy needs the socksio package: pip install 'httpx[socks]'"
                ) from None
            raise

    def url(self, path: str) -> httpx.URL:
        """The absolute URL of an API path, parsed once: httpx parses a relative path twice per request.

        :param path: the path below the server URL.
        """
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= URL_CACHE_SIZE:
                self._urls.clear()
            url = self._urls[path] = httpx.URL(self.config.server_url + path)
        return url

    def __repr__(self) -> str:
        return f"{type(self).__name__}(server_url={self.config.server_url!r}, tenant_id={self.config.tenant_id!r})"

    def run_url(self, run_id: str) -> str:
        """The dashboard link of a run.

        :param run_id: the run id.
        """
        return self.config.run_url(run_id)
