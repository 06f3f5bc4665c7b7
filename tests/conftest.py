"""Test harness: an isolated Airflow home and SQLite metadata DB, on Airflow 3.3 and Airflow 2.10.

The environment is configured at import time, before any test module imports Airflow.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Neither module imports Airflow, so the environment below is still in place before Airflow is first imported.
from airflow_provider_hatchet._airflow_version import AIRFLOW_V_3_0_PLUS
from tests.airflow_helpers import INLINE_BUNDLE, conn_env_var, conn_json, run_dag

REPO_ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="airflow-hatchet-tests-"))
INLINE_DAGS = AIRFLOW_HOME / "inline_dags"
INLINE_DAGS.mkdir()
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
# Seconds a new run answers 404 in the shared simulator (the brief 404 after a trigger).
VISIBILITY_DELAY = 0.1

for _name in list(os.environ):
    if _name.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_", "AIRFLOW__")):
        del os.environ[_name]

os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags_examples"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(AIRFLOW_HOME / "logs"),
        # Airflow 3: inline test DAGs live in their own, empty bundle, so that dag.test() (which re-parses the
        # DAG's bundle on every call) does not re-parse dags_examples for them.
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(
            [
                {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
                {"name": INLINE_BUNDLE, "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(INLINE_DAGS)}},
            ]
        ),
    }
)

_timings: dict[str, float] = {}


# A test that uses one of these fixtures gets the marker: the tiers of the Makefile select by marker.
TIER_FIXTURES = {
    "airflow_db": "airflow",
    "hatchet_server": "loopback",
    "backend": "loopback",
    "toxiproxy": "faults",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--offline", action="store_true",
        help="fail a test that opens a TCP socket, and the run if it created the Airflow metadata DB (`make check`)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # tryfirst: the markers must be on the items before `-m` deselects by them.
    for item in items:
        for fixture, marker in TIER_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
    if AIRFLOW_V_3_0_PLUS:
        return
    skip = pytest.mark.skip(reason="Airflow 3 only (not marked af2)")
    for item in items:
        if item.get_closest_marker("af2") is None:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _timings:
        figures = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in _timings.items())
        terminalreporter.write_line(f"airflow harness: {figures}")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _offline_db(request: pytest.FixtureRequest) -> Iterator[None]:
    """Under ``--offline``, fail the session (on its last test, so that xdist reports it) if the metadata DB exists."""
    yield
    if request.config.getoption("offline") and (AIRFLOW_HOME / "airflow.db").exists():
        pytest.fail("--offline: a test created the Airflow metadata DB without the airflow_db fixture")


@pytest.fixture(autouse=True)
def _offline(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Under ``--offline``, fail a test that connects or binds a TCP socket: it belongs to a tier with servers."""
    if not request.config.getoption("offline"):
        yield
        return
    used: list[str] = []

    def guarded(name: str) -> Callable[..., Any]:
        original = getattr(socket.socket, name)

        def call(self: socket.socket, address: Any, *args: Any) -> Any:
            if self.family in (socket.AF_INET, socket.AF_INET6):
                used.append(f"{name}({address!r})")
            return original(self, address, *args)

        return call

    for name in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, name, guarded(name))
    yield
    if used:
        pytest.fail(f"--offline: this test used TCP ({', '.join(used[:3])}); use a server fixture or mark it loopback")


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """The session's temporary ``AIRFLOW_HOME``."""
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Create a fresh SQLite metadata DB once per session."""
    from airflow.utils import db

    started = time.perf_counter()
    db.resetdb()
    _timings["db reset"] = time.perf_counter() - started


@pytest.fixture
def dag_runner(airflow_db: None) -> Callable[..., Any]:
    """Return ``run(dag, *, run_conf=None, **test_kwargs) -> DagRun`` that runs a DAG via ``dag.test()``.

    On Airflow 3 the DAG is registered in the metadata DB first, as inline DAGs must be.
    """

    def run(dag: Any, *, run_conf: dict[str, Any] | None = None, **test_kwargs: Any) -> Any:
        started = time.perf_counter()
        dag_run = run_dag(dag, run_conf=run_conf, **test_kwargs)
        _timings.setdefault("first dag.test()", time.perf_counter() - started)
        return dag_run

    return run


@pytest.fixture
def airflow_conn(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Return ``add(conn_id, *, conn_type, host=None, login=None, password=None, schema=None, port=None,
    extra=None) -> str`` that defines a connection through ``AIRFLOW_CONN_<ID>`` (JSON) for this test.

    It returns the environment variable's name; the variable is removed after the test.
    """

    def add(conn_id: str, **fields: Any) -> str:
        name = conn_env_var(conn_id)
        monkeypatch.setenv(name, conn_json(**fields))
        return name

    return add


@pytest.fixture(scope="session")
def hatchet_server() -> Any:
    """The Hatchet API simulator, served over real HTTP on 127.0.0.1 for the whole session."""
    from airflow_provider_hatchet.testing import HatchetSimulator, SimulatorServer

    with SimulatorServer(HatchetSimulator(visibility_delay=VISIBILITY_DELAY, cancel_delay=0.1)) as server:
        yield server


@pytest.fixture
def hatchet(hatchet_server: Any, airflow_conn: Callable[..., str]) -> Any:
    """The session's simulator, reset, with the demo workflows, and ``hatchet_default`` pointing at it."""
    from airflow_provider_hatchet.testing import register_demo_workflows

    sim = hatchet_server.simulator
    sim.reset(keep_workflows=False)
    sim.visibility_delay = VISIBILITY_DELAY
    register_demo_workflows(sim)
    airflow_conn("hatchet_default", conn_type="hatchet", host=hatchet_server.url, password=sim.token)
    return sim


@pytest.fixture
def logs(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Callable[[], str]:
    """Return a function giving everything logged so far: Airflow logs to stdout or to ``logging`` by phase."""
    caplog.set_level("INFO")
    return lambda: (lambda captured: captured.out + captured.err)(capfd.readouterr()) + caplog.text


@pytest.fixture
def count_async_clients(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[Any]]:
    """Return ``start() -> list`` that, once called, records every ``AsyncHatchetClient`` built in this test."""
    from airflow_provider_hatchet.client import AsyncHatchetClient

    def start() -> list[Any]:
        clients: list[Any] = []
        made = AsyncHatchetClient.__init__

        def counted(self: AsyncHatchetClient, *args: Any, **kwargs: Any) -> None:
            clients.append(self)
            made(self, *args, **kwargs)

        monkeypatch.setattr(AsyncHatchetClient, "__init__", counted)
        return clients

    return start


@pytest.fixture
def closed_async_clients(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every ``AsyncHatchetClient`` closed in this test, in order."""
    from airflow_provider_hatchet.client import AsyncHatchetClient

    closed: list[Any] = []
    aclose = AsyncHatchetClient.aclose

    async def recorded(self: AsyncHatchetClient) -> None:
        closed.append(self)
        await aclose(self)

    monkeypatch.setattr(AsyncHatchetClient, "aclose", recorded)
    return closed
