"""Memory and CPU of 1,000 HatchetWorkflowRunTriggers sharing one event loop, as in a triggerer.

The simulator runs in a separate process (``python -m airflow_provider_hatchet.testing``). Each trigger watches
one run that never finishes (``demo-hang``). The script measures the resident memory added by the triggers once
every one of them has polled, divided by their number (goal: under 50 KB each), and the process CPU time per
poll round of all triggers (rounds counted from the simulator's request log).

``--listen auto`` (the default, as the triggers' own) has them hear their runs on the simulator's run-event stream,
one stream for all, and check over REST only every ``max(poll_interval, 60)`` s; ``--listen off`` polls as before
the stream. The streams opened are printed.

Several variants (``--listen auto,off``, and ``--before REF``: the package as committed at ``REF``, unpacked with
``git archive``, for the memory before a change) or ``--rounds`` above 1 run each variant in its own process per
round, the order rotating each round, and print per variant the median and range of the KB per trigger.
``--traced`` also counts the Python allocations the triggers hold (``tracemalloc``, after a garbage collection):
exact where the resident memory is page-grained and shared with the allocator's free lists, but it slows the run
and adds its own bookkeeping to the resident figure.

Usage: ``PYTHONPATH=. python benchmarks/trigger_memory.py [--triggers 1000] [--poll-interval 2] [--window 10]
[--listen auto|off|auto,off] [--before REF] [--rounds 5] [--traced]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx

from airflow_provider_hatchet.client import TriggerRequest, endpoints

os.environ.setdefault("AIRFLOW_HOME", str(Path(tempfile.gettempdir()) / "airflow-hatchet-bench"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

PAGE = resource.getpagesize()
REPO = Path(__file__).resolve().parents[1]


def rss() -> int:
    """The process's resident memory now, in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def start_simulator(workdir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    info_file = workdir / "sim.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_hatchet.testing", "--port", "0", "--info-file", str(info_file),
         "--request-log", "100000", "--visibility-delay", "0"],
        stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO)},  # today's simulator for every variant
    )
    deadline = time.monotonic() + 30
    while not info_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the simulator did not start")
        time.sleep(0.05)
    return proc, json.loads(info_file.read_text())


async def status_requests(admin: httpx.AsyncClient) -> int:
    rows = (await admin.get("/requests", params={"limit": 10**7})).json()["requests"]
    return sum(1 for r in rows if r["route"] == "status")


async def polled(triggers: list[Any]) -> None:
    """Return once every trigger has finished its first round."""
    while True:
        if all(t.wait.state.statuses for t in triggers):
            return
        await asyncio.sleep(0.05)


async def bench(n: int, poll_interval: float, window: float, info: dict[str, Any], listen: str,
                traced: bool = False) -> dict[str, float]:
    from airflow_provider_hatchet.client import AsyncHatchetClient, ClientConfig, WaitResume
    try:
        from airflow_provider_hatchet.client.grpc import run_events
    except ImportError:  # a package from before the stream
        run_events = None  # type: ignore[assignment]
    from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunTrigger

    async with AsyncHatchetClient(ClientConfig.from_token(info["token"])) as client:
        slots = asyncio.Semaphore(16)

        async def start(i: int) -> str:
            async with slots:
                return await client.send(endpoints.trigger(TriggerRequest("demo-hang", {"i": i})))

        run_ids = await asyncio.gather(*(start(i) for i in range(n + 1)))

    async def first_event(trigger: HatchetWorkflowRunTrigger) -> None:
        async for _ in trigger.run():
            return

    # "before": a package from before the stream, whose WaitResume has no listen.
    resume = None if listen == "before" else WaitResume(listen=listen)  # type: ignore[arg-type]
    warm = HatchetWorkflowRunTrigger([run_ids[-1]], poll_interval=poll_interval, resume=resume)
    warm_task = asyncio.create_task(first_event(warm))
    await polled([warm])
    gc.collect()
    if traced:
        tracemalloc.start()
    before = rss()

    triggers = [HatchetWorkflowRunTrigger([run_id], poll_interval=poll_interval, resume=resume)
                for run_id in run_ids[:n]]
    tasks = [asyncio.create_task(first_event(t)) for t in triggers]
    await polled(triggers)
    await asyncio.sleep(poll_interval)
    gc.collect()
    after = rss()
    held = tracemalloc.get_traced_memory()[0] if traced else 0
    tracemalloc.stop()

    async with httpx.AsyncClient(base_url=info["admin_url"]) as admin:
        await admin.delete("/requests")
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(window)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        polls = await status_requests(admin)

    hubs = list(run_events._HUBS.get(asyncio.get_running_loop(), {}).values()) if run_events else []
    for task in [*tasks, warm_task]:
        task.cancel()
    await asyncio.gather(*tasks, warm_task, return_exceptions=True)
    rounds = polls / n
    return {
        "triggers": n,
        "rss_before_mb": before / 2**20,
        "rss_after_mb": after / 2**20,
        "kb_per_trigger": (after - before) / n / 1024,
        "traced_kb_per_trigger": held / n / 1024 if traced else float("nan"),
        "window_s": wall,
        "rounds": rounds,
        "cpu_s": cpu,
        "cpu_ms_per_round": cpu / rounds * 1000 if rounds else float("nan"),
        "cpu_us_per_trigger_poll": cpu / polls * 1e6 if polls else float("nan"),
        "streams_opened": sum(hub.streams_opened for hub in hubs),
    }


def compare(args: argparse.Namespace, variants: list[str]) -> int:
    """Each variant in its own process per round, rotated; medians and ranges per variant."""
    tree = None
    if args.before:
        tree = tempfile.mkdtemp(prefix="trigger-memory-before-")
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.before, "airflow_provider_hatchet"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        variants = [*variants, "before"]
    found: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for number in range(args.rounds):
        shift = number % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            command = [sys.executable, str(Path(__file__).resolve()), "--triggers", str(args.triggers),
                       "--poll-interval", str(args.poll_interval), "--window", str(args.window), "--listen", variant]
            env = {**os.environ, "PYTHONPATH": tree if variant == "before" and tree else str(REPO)}
            out = subprocess.run(command + (["--traced"] if args.traced else []), env=env, check=True,
                                 capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            found[variant].append(result)
            print(f"round {number + 1} {variant:6} {result['kb_per_trigger']:5.1f} KB resident, "
                  f"{result['traced_kb_per_trigger']:5.1f} KB traced per trigger; "
                  f"{result['streams_opened']:.0f} stream(s); load {os.getloadavg()[0]:.1f}", flush=True)
    before = f" (before: {args.before})" if args.before else ""
    print(f"\n{args.triggers} triggers, {args.rounds} rounds rotated{before}; KB per trigger, median [min-max]:")
    for variant, results in found.items():
        line = f"  {variant:6} resident {spread([r['kb_per_trigger'] for r in results])}"
        if args.traced:
            line += f", traced {spread([r['traced_kb_per_trigger'] for r in results])}"
        print(line)
    return 0


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):5.1f} [{min(values):.1f}-{max(values):.1f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--window", type=float, default=10.0, help="seconds of polling the CPU is measured over")
    parser.add_argument("--listen", default="auto", help="auto (hear the runs on the stream), off, or both: auto,off")
    parser.add_argument("--before", help="also the package as committed at this git ref (polling)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds, each variant once per round")
    parser.add_argument("--traced", action="store_true", help="also count the allocations held (tracemalloc)")
    args = parser.parse_args()
    variants = [v.strip() for v in args.listen.split(",") if v.strip()]
    if not set(variants) <= {"auto", "off", "before"}:
        parser.error(f"--listen: auto, off or both, got {args.listen!r}")
    if len(variants) > 1 or args.before or args.rounds > 1:
        return compare(args, variants)

    with tempfile.TemporaryDirectory() as workdir:
        proc, info = start_simulator(Path(workdir))
        try:
            os.environ["AIRFLOW_CONN_HATCHET_DEFAULT"] = info["airflow_conn_json"]
            result = asyncio.run(bench(args.triggers, args.poll_interval, args.window, info, variants[0],
                                       args.traced))
        finally:
            proc.terminate()
            proc.wait(10)

    print(f"{result['triggers']} triggers in one event loop, one shared client, poll every {args.poll_interval} s, "
          f"listen={args.listen}: {result['streams_opened']:.0f} stream(s) opened")
    print(f"resident memory: {result['rss_before_mb']:.1f} MB before, {result['rss_after_mb']:.1f} MB with the "
          f"triggers polling -> {result['kb_per_trigger']:.1f} KB per trigger (goal < 50 KB)"
          + (f"; {result['traced_kb_per_trigger']:.1f} KB traced" if args.traced else ""))
    print(f"CPU: {result['cpu_s']:.2f} s over {result['window_s']:.1f} s = {result['rounds']:.1f} rounds -> "
          f"{result['cpu_ms_per_round']:.0f} ms per round of {result['triggers']} polls "
          f"({result['cpu_us_per_trigger_poll']:.0f} us per trigger poll)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
