"""Serve a simulator over real HTTP on the loopback interface with uvicorn (imported lazily)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .asgi import silence_dropped_connection_logs

if TYPE_CHECKING:
    from .simulator import HatchetSimulator


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """Bind and listen on a TCP socket (port 0 picks a free port).

    :param host: the interface.
    :param port: the port.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it. Without uvloop, asyncio leaves Nagle on for them, and an answer written as
    # headers then body waits for the client's delayed ACK: about 40 ms a request instead of 1 to 4.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """Return ``http://host:port`` for a bound socket.

    :param sock: the socket.
    """
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def make_uvicorn_server(app: Any, log_level: str = "warning") -> Any:
    """Build a ``uvicorn.Server`` for an ASGI app, such as the simulator's ``asgi_app()``.

    :param app: the ASGI app.
    :param log_level: uvicorn's log level.
    """
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError("the loopback simulator needs uvicorn: pip install 'airflow-provider-hatchet[testing]'"
                          ) from exc
    silence_dropped_connection_logs()
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off",
                            timeout_keep_alive=30, backlog=2048, proxy_headers=False, server_header=False,
                            date_header=False)
    return uvicorn.Server(config)


def serve_in_thread(server: Any, sock: socket.socket, name: str, timeout: float = 10.0) -> threading.Thread:
    """Run a ``uvicorn.Server`` on a bound socket in a daemon thread, and wait until it has started.

    :param server: the server (see :func:`make_uvicorn_server`).
    :param sock: the bound socket.
    :param name: the thread's name, also used in the error.
    :param timeout: seconds to wait for start-up.
    :raises RuntimeError: when the server does not start in time.
    """
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.01)
    return thread


class SimulatorServer:
    """Run a simulator's HTTP server in a background thread.

    ``with SimulatorServer(sim) as server:`` binds 127.0.0.1 on a free port, sets ``sim.server_url`` to the
    real URL (so ``sim.token`` carries it) and stops the server on exit.

    :param simulator: the simulator; a new default one when omitted.
    :param host: the interface to bind.
    :param port: the port (0 picks a free one).
    :param log_level: uvicorn's log level.
    """

    def __init__(self, simulator: HatchetSimulator | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning") -> None:
        if simulator is None:
            from .simulator import HatchetSimulator

            simulator = HatchetSimulator()
        self.simulator = simulator
        self._host = host
        self._port = port
        self._log_level = log_level
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self, timeout: float = 10.0) -> SimulatorServer:
        """Bind, start serving and wait until the server accepts requests.

        :param timeout: seconds to wait for start-up.
        :raises RuntimeError: when the server does not start in time.
        """
        sock = bind_socket(self._host, self._port)
        self.url = url_of(sock)
        self.simulator.server_url = self.url
        self._server = make_uvicorn_server(self.simulator.asgi_app(), self._log_level)
        self._thread = serve_in_thread(self._server, sock, "the simulator server", timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to exit and wait for its thread.

        :param timeout: seconds to wait.
        """
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None
        self._thread = None

    @property
    def token(self) -> str:
        """A valid token for the simulator's default tenant at this server's URL."""
        return self.simulator.token

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
