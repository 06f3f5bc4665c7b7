"""The workflows the standalone simulator registers for demos."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .simulator import HatchetSimulator

DEMO_WORKFLOWS: dict[str, str] = {
    "demo-etl": "succeed: one task 'run', 0.5 s; output {'workflow','task','step','echo': input}",
    "demo-fail": "fail: one task 'run' fails after 0.5 s with 'Exception: simulated failure in demo-fail:run'",
    "demo-hang": "hang: one task 'run' stays RUNNING until cancelled",
    "demo-multi": "multi_task: extract -> transform -> load, 0.3 s each; run.output is load's output",
    "demo-slow": "succeed: one task 'run', 5 s, after 1 s QUEUED",
    "demo-event": "succeed: one task 'run', 0.2 s; runs once per event with key 'airflow:demo-event' (gRPC push)",
}
DEMO_EVENT_KEY = "airflow:demo-event"


def register_demo_workflows(sim: HatchetSimulator) -> None:
    """Register :data:`DEMO_WORKFLOWS` in the default tenant.

    :param sim: the simulator.
    """
    sim.register_workflow("demo-etl", "succeed", duration=0.5)
    sim.register_workflow("demo-fail", "fail", duration=0.5)
    sim.register_workflow("demo-hang", "hang")
    sim.register_workflow("demo-multi", "multi_task", duration=0.3)
    sim.register_workflow("demo-slow", "succeed", duration=5.0, queue_delay=1.0)
    sim.register_workflow("demo-event", "succeed", duration=0.2, on_events=[DEMO_EVENT_KEY])
