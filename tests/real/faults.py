"""Real network faults between the provider's client and a Hatchet server, injected by proxies on loopback.

The client talks to the front of a chain; each link does one job::

    client -> Toxiproxy (TCP: latency, resets, cut connections) -> BadGatewayProxy (HTTP: 502s) -> server

- :class:`Toxiproxy` runs a ``toxiproxy-server`` and drives its HTTP API. Its toxics act per TCP connection:
  ``toxicity`` is the chance that a new connection gets the toxic.
- :class:`BadGatewayProxy` is an HTTP reverse proxy that forwards every request and then, with a seeded
  probability, answers 502 instead of the server's response, as a load balancer that lost the answer does. It
  counts the requests per route, and like a load balancer it closes a client connection after a number of
  requests (``keepalive_requests``), so that Toxiproxy's per-connection toxics keep getting new connections.
- :class:`ClientLog` records what the provider's client saw per route: answers by status, and the transport
  failures (resets, cut responses), since Toxiproxy does not count what its toxics did.
- :func:`fault_chain` assembles the chain in front of a server and gives back its front URL.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from airflow_provider_hatchet.client import AsyncHatchetClient, endpoints
from airflow_provider_hatchet.client.errors import HatchetAPIError, HatchetError, HatchetTransportError
from airflow_provider_hatchet.testing.server import bind_socket, make_uvicorn_server, serve_in_thread, url_of

_UUID = re.compile(r"/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?=/|$)")
_HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"host", b"content-length", b"accept-encoding", b"content-encoding",
})
_BAD_GATEWAY_BODY = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


def route_of(method: str, path: str) -> str:
    """``METHOD /path`` with every UUID segment replaced by ``{id}``: the key requests are counted by.

    :param method: the HTTP method.
    :param path: the URL path.
    """
    return f"{method} {_UUID.sub('/{id}', path)}"


# The routes of the endpoints the provider calls, as :func:`route_of` names them.
TRIGGER = "POST /api/v1/stable/tenants/{id}/workflow-runs/trigger"
LIST = "GET /api/v1/stable/tenants/{id}/workflow-runs"
STATUS = "GET /api/v1/stable/workflow-runs/{id}/status"
DETAILS = "GET /api/v1/stable/workflow-runs/{id}"
WORKFLOWS = "GET /api/v1/tenants/{id}/workflows"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago.

    :param host: the interface.
    """
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def toxiproxy_binary() -> str:
    """The ``toxiproxy-server`` to run: ``$TOXIPROXY_BIN``, which ``make test-faults`` and ``make test-real`` set
    after building it; the test is skipped without it (pytest never builds it: that needs ``go``)."""
    binary = os.environ.get("TOXIPROXY_BIN")
    if not binary:
        pytest.skip("no toxiproxy-server: run 'make test-faults', or set TOXIPROXY_BIN")
    if not os.access(binary, os.X_OK):
        pytest.fail(f"TOXIPROXY_BIN={binary!r} is not an executable file")
    return binary


class Toxiproxy:
    """A ``toxiproxy-server`` process on loopback, driven through its HTTP API.

    ``with Toxiproxy(binary) as toxiproxy:`` starts it on a free port and stops it on exit.

    :param binary: the path of ``toxiproxy-server``.
    :param host: the interface its API and proxies listen on.
    """

    def __init__(self, binary: str, host: str = "127.0.0.1") -> None:
        self.binary = binary
        self.host = host
        self.api_url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._api: httpx.Client | None = None

    def start(self, timeout: float = 10.0) -> Toxiproxy:
        """Start the server and wait until its API answers.

        :param timeout: seconds to wait.
        """
        port = free_port(self.host)
        self.api_url = f"http://{self.host}:{port}"
        self._process = subprocess.Popen(
            [self.binary, "-host", self.host, "-port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "LOG_LEVEL": "error"},
        )
        self._api = httpx.Client(base_url=self.api_url, timeout=10.0)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._api.get("/version").raise_for_status()
                return self
            except httpx.HTTPError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"toxiproxy-server did not start on {self.api_url}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (the proxies go with it)."""
        if self._api is not None:
            self._api.close()
            self._api = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __enter__(self) -> Toxiproxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        assert self._api is not None, "toxiproxy is not started"
        response = self._api.request(method, path, json=body)
        response.raise_for_status()
        return response.json() if response.content else None

    def create_proxy(self, name: str, upstream: str) -> str:
        """Create a TCP proxy listening on a free loopback port; return its ``host:port``.

        :param name: the proxy's name.
        :param upstream: ``host:port`` to forward to.
        """
        created = self._call("POST", "/proxies",
                             {"name": name, "listen": f"{self.host}:0", "upstream": upstream, "enabled": True})
        return str(created["listen"])

    def delete_proxy(self, name: str) -> None:
        """Delete a proxy, closing its connections.

        :param name: the proxy's name.
        """
        self._call("DELETE", f"/proxies/{name}")

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Disable a proxy (its connections closed, new ones refused) or enable it again on the same address.

        :param name: the proxy's name.
        :param enabled: whether it forwards.
        """
        self._call("POST", f"/proxies/{name}", {"enabled": enabled})

    def add_toxic(self, proxy: str, name: str, kind: str, *, stream: str = "downstream", toxicity: float = 1.0,
                  **attributes: Any) -> None:
        """Add a toxic to a proxy.

        :param proxy: the proxy's name.
        :param name: the toxic's name.
        :param kind: the toxic type: ``latency``, ``reset_peer``, ``limit_data``, ...
        :param stream: ``downstream`` (server to client) or ``upstream``.
        :param toxicity: the chance that a new connection gets the toxic.
        :param attributes: the type's attributes, e.g. ``latency=20, jitter=10`` or ``timeout=0``.
        """
        self._call("POST", f"/proxies/{proxy}/toxics",
                   {"name": name, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes})

    def remove_toxic(self, proxy: str, name: str) -> None:
        """Remove a toxic from a proxy.

        :param proxy: the proxy's name.
        :param name: the toxic's name.
        """
        self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        """The toxics of a proxy, as the API lists them.

        :param proxy: the proxy's name.
        """
        return list(self._call("GET", f"/proxies/{proxy}/toxics"))


@dataclass(frozen=True)
class ProxiedRequest:
    """One request :class:`BadGatewayProxy` handled.

    :param route: ``METHOD /path`` with ids as ``{id}`` (see :func:`route_of`).
    :param path: the request path.
    :param upstream_status: the server's status, or 0 when the server could not be reached.
    :param status: the status the proxy answered.
    :param injected: whether the proxy replaced the server's answer with a 502.
    """

    route: str
    path: str
    upstream_status: int
    status: int
    injected: bool = False


@dataclass(frozen=True)
class ProxyStats:
    """Counts over a stretch of :class:`BadGatewayProxy`'s requests.

    :param requests: requests per route.
    :param bad_gateways: 502s the proxy injected after forwarding, per route.
    :param answered: requests per route whose real answer (2xx to 4xx) the proxy passed on.
    """

    requests: Counter[str] = field(default_factory=Counter)
    bad_gateways: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, log: list[ProxiedRequest]) -> ProxyStats:
        """Count a list of requests.

        :param log: the requests.
        """
        stats = cls()
        for entry in log:
            stats.requests[entry.route] += 1
            if entry.injected:
                stats.bad_gateways[entry.route] += 1
            elif entry.status < 500:
                stats.answered[entry.route] += 1
        return stats


class BadGatewayProxy:
    """An HTTP reverse proxy on loopback that forwards each request and then may answer 502 instead.

    It is an ASGI app served by uvicorn in a background thread, forwarding with ``httpx.AsyncClient``. After
    the server answered, a seeded random draw below ``bad_gateway_rate`` replaces the answer with an nginx-style
    502: the server did the work (a trigger created its run) but the client never learns it. Requests are
    logged in order (:attr:`log`, :meth:`stats`), so a test can count what reached the server per route.

    Like nginx's ``keepalive_requests``, it closes a client connection after ``keepalive_requests`` requests
    (``Connection: close``); the client then opens a new one, on which Toxiproxy's per-connection toxics roll
    again. ``None`` keeps connections open.

    ``with BadGatewayProxy(upstream) as proxy:`` serves on a free port (:attr:`url`) and stops on exit.

    :param upstream: the server's base URL.
    :param bad_gateway_rate: the chance that a request's answer is replaced by a 502.
    :param seed: the seed of the draws.
    :param keepalive_requests: requests served on one client connection before it is closed.
    :param eligible: which routes may get a random 502 (all when None).
    :param every: ``{route: k}``: besides the random ones, every k-th request on the route gets a 502, so that a
        test can count on faults where few requests go.
    """

    def __init__(self, upstream: str, *, bad_gateway_rate: float = 0.0, seed: int = 0,
                 keepalive_requests: int | None = None, eligible: Callable[[str], bool] | None = None,
                 every: Mapping[str, int] | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.bad_gateway_rate = bad_gateway_rate
        self.every = dict(every or {})
        self._seen: Counter[str] = Counter()
        self.keepalive_requests = keepalive_requests
        self.eligible = eligible
        self.url = ""
        self.connections = 0
        self._random = random.Random(seed)
        self._per_connection: dict[tuple[str, int], int] = {}
        self._log: list[ProxiedRequest] = []
        self._lock = threading.Lock()
        self._client: httpx.AsyncClient | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # Counting

    @property
    def log(self) -> list[ProxiedRequest]:
        """A copy of every request handled so far, in order."""
        with self._lock:
            return list(self._log)

    def mark(self) -> int:
        """A position in the log, for :meth:`stats` of what comes after it."""
        with self._lock:
            return len(self._log)

    def stats(self, start: int = 0, end: int | None = None) -> ProxyStats:
        """Count the requests between two :meth:`mark` positions (by default all of them).

        :param start: the first position.
        :param end: the position after the last; the end of the log when None.
        """
        with self._lock:
            return ProxyStats.of(self._log[start:end])

    # Serving

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        target = (scope.get("raw_path") or path.encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP_BY_HOP]
        route = route_of(method, path)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=120.0, limits=httpx.Limits(max_connections=256))
        try:
            answer = await self._client.request(method, self.upstream + target, headers=headers, content=bytes(body))
        except httpx.HTTPError:
            upstream_status, status, out_headers, content = 0, 502, [], _BAD_GATEWAY_BODY
            inject = False
        else:
            upstream_status, status, content = answer.status_code, answer.status_code, answer.content
            out_headers = [(k, v) for k, v in answer.headers.raw if k.lower() not in _HOP_BY_HOP]
            inject = self._draw(route)
            if inject:
                status, content = 502, _BAD_GATEWAY_BODY
                out_headers = [(b"content-type", b"text/html")]
        out_headers.append((b"content-length", str(len(content)).encode()))
        if self._count_connection(scope.get("client")):
            out_headers.append((b"connection", b"close"))
        with self._lock:
            self._log.append(ProxiedRequest(route, path, upstream_status, status, inject))
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": content})

    def _draw(self, route: str) -> bool:
        """Whether to replace the server's answer to this request with a 502."""
        with self._lock:
            self._seen[route] += 1
            if route in self.every and self._seen[route] % self.every[route] == 0:
                return True
            if self.eligible is not None and not self.eligible(route):
                return False
            return self._random.random() < self.bad_gateway_rate

    def _count_connection(self, client: Any) -> bool:
        """Count a request on its client connection; True when the connection is to be closed after it."""
        key = (str(client[0]), int(client[1])) if client else ("", 0)
        with self._lock:
            served = self._per_connection.get(key, 0) + 1
            if served == 1:
                self.connections += 1
            if self.keepalive_requests is not None and served >= self.keepalive_requests:
                self._per_connection.pop(key, None)
                return True
            self._per_connection[key] = served
            return False

    def start(self, timeout: float = 10.0) -> BadGatewayProxy:
        """Bind a free loopback port and serve in a background thread.

        :param timeout: seconds to wait for start-up.
        """
        sock = bind_socket()
        self.url = url_of(sock)
        self._server = make_uvicorn_server(self)
        self._thread = serve_in_thread(self._server, sock, "the bad-gateway proxy", timeout)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = None

    def __enter__(self) -> BadGatewayProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ClientLog:
    """What the provider's clients saw, per route: each HTTP answer by status, and each transport failure (a reset
    or cut connection) by the httpx exception's type. Toxiproxy does not count what its toxics did; this does,
    from the receiving end.

    Installed with ``monkeypatch``, it wraps the async client's ``_send_once``, through which every request goes
    (the sync client's too), in this process (where ``dag.test()`` runs tasks and triggers).

    :param monkeypatch: pytest's monkeypatch fixture.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answers: Counter[tuple[str, int]] = Counter()
        self.failures: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        async_send = AsyncHatchetClient._send_once

        async def async_recording(client: AsyncHatchetClient, call: endpoints.Call[Any]) -> Any:
            try:
                result = await async_send(client, call)
            except HatchetError as exc:
                self._record(call, exc)
                raise
            self._record(call, None)
            return result

        monkeypatch.setattr(AsyncHatchetClient, "_send_once", async_recording)

    def _record(self, call: endpoints.Call[Any], exc: HatchetError | None) -> None:
        route = route_of(call.method, call.path)
        with self._lock:
            if isinstance(exc, HatchetTransportError):
                self.failures[(route, type(exc.__cause__).__name__)] += 1
            elif isinstance(exc, HatchetAPIError):
                self.answers[(route, exc.status_code)] += 1
            elif exc is None:
                self.answers[(route, 200)] += 1

    def snapshot(self) -> ClientSeen:
        """A copy of the counts so far; subtract two snapshots for what happened in between."""
        with self._lock:
            return ClientSeen(Counter(self.answers), Counter(self.failures))


@dataclass(frozen=True)
class ClientSeen:
    """Counts of :class:`ClientLog`.

    :param answers: HTTP answers per ``(route, status)``; 200 stands for any success.
    :param failures: transport failures per ``(route, exception type)``.
    """

    answers: Counter[tuple[str, int]]
    failures: Counter[tuple[str, str]]

    def __sub__(self, earlier: ClientSeen) -> ClientSeen:
        return ClientSeen(self.answers - earlier.answers, self.failures - earlier.failures)

    def answered(self, route: str, status: int | None = None) -> int:
        """Answers on a route, with one status or any.

        :param route: the route.
        :param status: the status; any when None.
        """
        return sum(n for (r, s), n in self.answers.items() if r == route and status in (None, s))

    def failed(self, route: str | None = None, kind: str | None = None) -> int:
        """Transport failures, on one route or any, of one exception type or any.

        :param route: the route; any when None.
        :param kind: the exception type's name, e.g. ``ReadError``; any when None.
        """
        return sum(n for (r, k), n in self.failures.items() if route in (None, r) and kind in (None, k))


@dataclass(frozen=True)
class FaultChain:
    """A running chain ``client -> Toxiproxy -> BadGatewayProxy -> server``.

    :param url: the front URL, for the client (the Airflow connection's host).
    :param toxiproxy: the Toxiproxy server.
    :param proxy_name: the Toxiproxy proxy's name.
    :param http: the HTTP proxy behind it.
    """

    url: str
    toxiproxy: Toxiproxy
    proxy_name: str
    http: BadGatewayProxy


@contextlib.contextmanager
def fault_chain(toxiproxy: Toxiproxy, upstream: str, name: str, **http_options: Any) -> Iterator[FaultChain]:
    """Put a :class:`BadGatewayProxy` and then a Toxiproxy proxy (no toxics yet) in front of a server.

    :param toxiproxy: a started Toxiproxy.
    :param upstream: the server's base URL.
    :param name: the Toxiproxy proxy's name (unique on that Toxiproxy).
    :param http_options: :class:`BadGatewayProxy`'s options.
    """
    with BadGatewayProxy(upstream, **http_options) as http:
        listen = toxiproxy.create_proxy(name, http.url.removeprefix("http://"))
        try:
            yield FaultChain(f"http://{listen}", toxiproxy, name, http)
        finally:
            toxiproxy.delete_proxy(name)
