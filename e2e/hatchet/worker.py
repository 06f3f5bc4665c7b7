"""A hatchet-sdk worker that registers the simulator's demo workflows on a real Hatchet server.

It runs in its own virtual environment (hatchet-sdk pins protobuf and grpcio apart from Airflow) and reads the
``HATCHET_CLIENT_*`` variables that ``stack.py`` writes. Each workflow behaves as its namesake in
``airflow_provider_hatchet.testing`` does, including the per-run ``__sim__`` override of the last task, so one
test can run against either server.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta
from typing import Any

from hatchet_sdk import Context, EmptyModel, Hatchet, TTLBasedIdempotencyConfig

OVERRIDE_KEY = "__sim__"
# Names the stack registers a second time with this prefix, for the namespace tests.
NAMESPACE_PREFIX = "airflowtest_"
LONG = timedelta(hours=1)
# demo-etl's duration; `make e2e-prod` lengthens it so a deferrable task is seen deferring (e2e/harness.py).
DEMO_ETL_SECONDS = float(os.environ.get("HATCHET_DEMO_ETL_SECONDS", "0.5"))
# The event key demo-event subscribes to (the prefixed copy subscribes to the prefixed key).
EVENT_KEY = "airflow:demo-event"

hatchet = Hatchet()


def _override(run_input: dict[str, Any]) -> dict[str, Any]:
    value = run_input.get(OVERRIDE_KEY)
    return value if isinstance(value, dict) else {}


def _log_count(override: dict[str, Any]) -> int:
    value = override.get("log_lines", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


async def _logs_sent(ctx: Context) -> None:
    """Let the SDK's background sender deliver the task's lines before the task ends, so that a read made as soon
    as the run finished finds them all (hatchet-sdk sends ``ctx.log`` lines from a queue, one call each)."""
    pending = getattr(getattr(ctx, "_log_sender", None), "q", None)
    for _ in range(100):
        if pending is None or pending.empty():
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)  # the line taken off the queue last is still in flight


async def _behave(ctx: Context, workflow: str, task: str, step: int, run_input: dict[str, Any], *,
                  behaviour: str, duration: float, last: bool) -> dict[str, Any]:
    """Act out one task as the simulator does, logging what its tasks log, and return the default output.

    ``fail_first_attempt`` fails the task's first attempt only: a replay (or retry) of it succeeds.
    """
    override = _override(run_input) if last else {}
    behaviour = str(override.get("behaviour", behaviour))
    if behaviour == "fail_first_attempt":
        behaviour = "fail" if ctx.retry_count == 0 else "succeed"
    seconds = override.get("duration", duration)
    seconds = float(seconds) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else duration
    # The lines the simulator's tasks log (airflow_provider_hatchet/testing/task_logs.py); __sim__'s
    # "log_lines" adds that many numbered lines to the last task.
    ctx.log(f"{workflow}:{task} started")
    ctx.log(f"input: {json.dumps(run_input, sort_keys=True)}")
    count = _log_count(override)
    for number in range(1, count + 1):
        ctx.log(f"line {number} of {count}")
    if behaviour == "hang":
        await asyncio.Event().wait()  # until Hatchet cancels the task
    await asyncio.sleep(seconds)
    if behaviour == "fail":
        message = str(override.get("error_message") or f"simulated failure in {workflow}:{task}")
        ctx.log(f"{workflow}:{task} failing: {message}")
        await _logs_sent(ctx)
        raise Exception(message)
    ctx.log(f"{workflow}:{task} done")
    await _logs_sent(ctx)
    return {"workflow": workflow, "task": task, "step": step, "echo": run_input}


def single_task(name: str, behaviour: str, duration: float, **options: Any) -> Any:
    """Declare a one-task workflow ``name`` whose task ``run`` acts out ``behaviour``.

    :param name: the workflow name.
    :param behaviour: ``succeed``, ``fail`` or ``hang``.
    :param duration: seconds the task takes.
    :param options: more options for ``hatchet.workflow``.
    """
    workflow = hatchet.workflow(name=name, **options)

    @workflow.task(name="run", execution_timeout=LONG, schedule_timeout=LONG)
    async def run(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        return await _behave(ctx, name, "run", 0, dict(ctx.workflow_input), behaviour=behaviour, duration=duration,
                             last=True)

    return workflow


def multi_task(name: str, duration: float) -> Any:
    """Declare ``extract -> transform -> load``, each task taking ``duration`` seconds.

    :param name: the workflow name.
    :param duration: seconds per task.
    """
    workflow = hatchet.workflow(name=name)

    @workflow.task(name="extract", execution_timeout=LONG, schedule_timeout=LONG)
    async def extract(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        return await _behave(ctx, name, "extract", 0, dict(ctx.workflow_input), behaviour="succeed",
                             duration=duration, last=False)

    @workflow.task(name="transform", parents=[extract], execution_timeout=LONG, schedule_timeout=LONG)
    async def transform(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        return await _behave(ctx, name, "transform", 1, dict(ctx.workflow_input), behaviour="succeed",
                             duration=duration, last=False)

    @workflow.task(name="load", parents=[transform], execution_timeout=LONG, schedule_timeout=LONG)
    async def load(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        return await _behave(ctx, name, "load", 2, dict(ctx.workflow_input), behaviour="succeed",
                             duration=duration, last=True)

    return workflow


def retried_task(name: str) -> Any:
    """Declare a one-task workflow ``name`` whose task ``run`` fails on each of its two attempts (one retry): the
    real server's attempt numbering, measured in ``tests/real/test_task_logs_real.py``. The simulator has no
    retries and no such workflow.

    :param name: the workflow name.
    """
    workflow = hatchet.workflow(name=name)

    @workflow.task(name="run", retries=1, execution_timeout=LONG, schedule_timeout=LONG)
    async def run(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        ctx.log(f"retry count {ctx.retry_count}")
        return await _behave(ctx, name, "run", 0, dict(ctx.workflow_input), behaviour="fail", duration=0.2,
                             last=True)

    return workflow


def workflows(prefix: str = "") -> list[Any]:
    """Declare the demo workflows, with names starting with ``prefix``.

    :param prefix: a name prefix.
    """
    return [
        single_task(f"{prefix}demo-etl", "succeed", DEMO_ETL_SECONDS),
        single_task(f"{prefix}demo-fail", "fail", 0.5),
        single_task(f"{prefix}demo-hang", "hang", 0.0),
        multi_task(f"{prefix}demo-multi", 0.3),
        single_task(f"{prefix}demo-slow", "succeed", 5.0),
        single_task(f"{prefix}demo-idempotent", "succeed", 0.5, idempotency=TTLBasedIdempotencyConfig(
            key_expression="input.key", ttl=timedelta(minutes=10))),
        # Triggered by events: an event with this key runs it, with the payload as its input.
        single_task(f"{prefix}demo-event", "succeed", 0.2, on_events=[f"{prefix}{EVENT_KEY}"]),
        retried_task(f"{prefix}demo-retry"),
    ]


def serve_older_engines() -> None:
    """Keep the worker starting on the matrix's older engines (v0.75.0, v0.90.0).

    hatchet-sdk 1.43.1 raises ``DeprecationError`` at one worker start in five on an engine without multiple slot
    types, once its deprecation window ended (2026-08-11): the stack then failed at random. The legacy
    registration still works on those engines; only the random raise goes.
    """
    from hatchet_sdk.worker.worker import Worker

    Worker._emit_legacy_slot_deprecation = lambda self: None


def main() -> None:
    """Register the workflows (plain and prefixed) and serve them until stopped."""
    serve_older_engines()
    slots = int(os.environ.get("HATCHET_WORKER_SLOTS", "200"))
    worker = hatchet.worker("airflow-provider-tests", slots=slots,
                            workflows=workflows() + workflows(NAMESPACE_PREFIX))
    worker.start()


if __name__ == "__main__":
    main()
