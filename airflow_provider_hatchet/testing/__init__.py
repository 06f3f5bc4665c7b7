"""A simulator of the Hatchet REST API for tests, demos and benchmarks (no Airflow needed).

In-process::

    sim = HatchetSimulator()
    sim.register_workflow("etl", "succeed")
    client = httpx.Client(base_url=sim.server_url, transport=sim.transport())

Over loopback HTTP (needs uvicorn, the ``[testing]`` extra)::

    with SimulatorServer(sim) as server:
        ...  # server.url, sim.token
"""

from __future__ import annotations

from ._http import SimResponse
from .clock import ManualClock
from .demo import DEMO_WORKFLOWS, register_demo_workflows
from .faults import ROUTES, Faults
from .records import RequestRecord, RunInfo
from .server import SimulatorServer
from .simulator import HatchetSimulator
from .transport import SimulatorTransport
from .workflows import BEHAVIOURS, TaskSpec, WorkflowSpec

__all__ = [
    "BEHAVIOURS",
    "DEMO_WORKFLOWS",
    "ROUTES",
    "Faults",
    "HatchetSimulator",
    "ManualClock",
    "RequestRecord",
    "RunInfo",
    "SimResponse",
    "SimulatorServer",
    "SimulatorTransport",
    "TaskSpec",
    "WorkflowSpec",
    "register_demo_workflows",
]
