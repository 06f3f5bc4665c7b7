"""One set of scenarios, two servers: the simulator and a real Hatchet.

Every test here takes the ``backend`` fixture and so runs twice: against the simulator (in ``make pytest``, or
``make test-faults`` for those through Toxiproxy) and, marked ``real_hatchet``, against the real server that
``make hatchet-up`` started (in ``make test-real``, which reads ``build/hatchet/env``). The real server's side of
each workflow is ``e2e/hatchet/worker.py``; the simulator registers the same names with the same behaviours.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_hatchet.client import ClientConfig, HatchetClient
from tests.real.faults import Toxiproxy, toxiproxy_binary

# The names e2e/hatchet/worker.py registers, plain and with this prefix (for the namespace tests).
WORKFLOWS = ("demo-etl", "demo-fail", "demo-hang", "demo-multi", "demo-slow", "demo-idempotent", "demo-event")
# The event key demo-event subscribes to (prefixed for the prefixed copy), as in e2e/hatchet/worker.py.
EVENT_KEY = "airflow:demo-event"
NAMESPACE_PREFIX = "airflowtest_"
REAL_VARIABLES = ("HATCHET_CLIENT_TOKEN", "HATCHET_CLIENT_SERVER_URL")


@dataclass
class Backend:
    """A Hatchet server the scenarios run against.

    :param kind: ``simulator`` or ``real``.
    :param server_url: the REST API's base URL.
    :param token: an API token of the default tenant.
    :param foreign_token: a token of another tenant on the same server.
    :param engine_version: what the server reports, or ``simulator``.
    :param sim: the simulator, when ``kind`` is ``simulator``.
    :param database_url: the real server's Postgres URL, when known.
    :param tag: a value unique to this test, for the ``test_tag`` metadata that keeps its runs apart.
    """

    kind: str
    server_url: str
    token: str
    foreign_token: str
    engine_version: str
    sim: Any = None
    database_url: str | None = None
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    _clients: list[HatchetClient] = field(default_factory=list)

    @property
    def is_real(self) -> bool:
        """Whether this is the real server."""
        return self.kind == "real"

    def config(self, **overrides: Any) -> ClientConfig:
        """A client config for the default tenant.

        :param overrides: fields of :meth:`ClientConfig.from_token` to change.
        """
        # Both servers serve plain gRPC on loopback: with TLS the waits could not open the run-event stream.
        options: dict[str, Any] = {"server_url": self.server_url, "grpc_tls": False, **overrides}
        return ClientConfig.from_token(options.pop("token", self.token), **options)

    def client(self, **overrides: Any) -> HatchetClient:
        """A sync client for the default tenant, closed after the test.

        :param overrides: fields of :meth:`ClientConfig.from_token` to change.
        """
        client = HatchetClient(self.config(**overrides))
        self._clients.append(client)
        return client

    def connect(self, airflow_conn: Callable[..., str], conn_id: str = "hatchet_default", **extra: Any) -> None:
        """Point an Airflow connection at this server.

        :param airflow_conn: the ``airflow_conn`` fixture.
        :param conn_id: the connection id.
        :param extra: connection extras (``grpc_tls`` is off unless given: both servers serve plain gRPC here).
        """
        airflow_conn(conn_id, conn_type="hatchet", host=self.server_url, password=self.token,
                     extra={"grpc_tls": "false", **extra})

    def close(self) -> None:
        """Close the clients this backend handed out."""
        for client in self._clients:
            client.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that restart the real hatchet-engine after every other: should the engine not come back,
    only they fail, rather than every later test waiting on a server that is gone."""
    items.sort(key=lambda item: item.get_closest_marker("restarts_engine") is not None)


def register_worker_workflows(sim: Any) -> None:
    """Register in the simulator what ``e2e/hatchet/worker.py`` registers on the real server.

    :param sim: the simulator.
    """
    for prefix in ("", NAMESPACE_PREFIX):
        sim.register_workflow(f"{prefix}demo-etl", "succeed", duration=0.5)
        sim.register_workflow(f"{prefix}demo-fail", "fail", duration=0.5)
        sim.register_workflow(f"{prefix}demo-hang", "hang")
        sim.register_workflow(f"{prefix}demo-multi", "multi_task", duration=0.3)
        sim.register_workflow(f"{prefix}demo-slow", "succeed", duration=5.0)
        sim.register_workflow(f"{prefix}demo-idempotent", "succeed", duration=0.5, idempotency_key="input.key",
                              idempotency_ttl=600)
        sim.register_workflow(f"{prefix}demo-event", "succeed", duration=0.2, on_events=[f"{prefix}{EVENT_KEY}"])


def real_settings() -> dict[str, str]:
    """The real server's settings from the environment (``make test-real`` sources ``build/hatchet/env``)."""
    missing = [name for name in REAL_VARIABLES if not os.environ.get(name)]
    if missing:
        pytest.fail(f"real_hatchet tests need {missing}: run them with 'make test-real' after 'make hatchet-up'")
    return {name: value for name, value in os.environ.items() if name.startswith("HATCHET_")}


@pytest.fixture(scope="session")
def real_hatchet_settings() -> dict[str, str]:
    """The real server's ``HATCHET_*`` settings, read once."""
    return real_settings()


@pytest.fixture(
    params=[pytest.param("simulator", id="sim"), pytest.param("real", id="real", marks=pytest.mark.real_hatchet)]
)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The server of this run of the scenario: the simulator (reset, with the worker's workflows) or the real one."""
    if request.param == "simulator":
        sim = request.getfixturevalue("hatchet")
        server = request.getfixturevalue("hatchet_server")
        register_worker_workflows(sim)
        foreign = sim.token_for(sim.add_tenant("foreign"))
        chosen = Backend("simulator", server.url, sim.token, foreign, "simulator", sim=sim)
    else:
        settings = request.getfixturevalue("real_hatchet_settings")
        chosen = Backend(
            "real", settings["HATCHET_CLIENT_SERVER_URL"], settings["HATCHET_CLIENT_TOKEN"],
            settings.get("HATCHET_FOREIGN_TOKEN", ""), settings.get("HATCHET_ENGINE_VERSION", "unknown"),
            database_url=settings.get("HATCHET_DATABASE_URL"),
        )
    yield chosen
    chosen.close()


@pytest.fixture
def grpc_address(backend: Backend) -> Iterator[str]:
    """The backend's gRPC address: the real token's claim, or the simulator's gRPC face started for the test."""
    if backend.is_real:
        address = backend.config().grpc_address
        assert address, "the real token has no grpc_broadcast_address claim"
        yield address
    else:
        with backend.sim.grpc_server() as face:
            yield face.address


@pytest.fixture(scope="module")
def toxiproxy() -> Iterator[Toxiproxy]:
    """A Toxiproxy server for one test module's fault tests."""
    with Toxiproxy(toxiproxy_binary()) as server:
        yield server
