"""What an AssetWatcher trigger writes to the asset's state store, and the event-loop time it takes, when one poll
catches up N finished runs (as after a triggerer outage).

The simulator runs in a separate process (``python -m airflow_provider_hatchet.testing``), so the CPU measured is
the watcher's alone. For each N: a first watcher stores where watching began and stops; N ``demo-etl`` runs are
triggered and finish while no watcher runs; a second watcher with the same state store catches them up in one
poll. The overlap is long (600 s), so no id is settled and the state written holds all N: the worst case.
Measured from the second watcher's start until its state is written after the N-th event:

- writes and bytes written to the state store;
- hand-over: wall time from the first event to the state written (the poll's lists excluded), all of it in the
  event loop;
- CPU: the process's CPU time for the whole catch-up (the lists, parsing and the hand-over).

The heap that exists before the catch-up is frozen (``gc.freeze``): otherwise a full garbage collection during
the larger runs walks all of Airflow's objects, a cost of the heap's size that blurs the watcher's own.

Bytes and hand-over time per event must stay flat from the smallest N to the largest (linear growth): the script
fails when either grows by more than 3 times.

Measured on the simulator, on this project's 2-core machine shared with other work (2026-12-07), with the
in-memory store below (Airflow's store writes each value to its database): 1,000 events: 1 write, 72 KiB
(74 B/event), hand-over 4 to 19 ms; 10,000 events: 1 write, 723 KiB (74 B/event), hand-over 46 to 143 ms (5 to
14 us/event), 0.3 s of CPU for the whole catch-up. Before the fix (a write per event, the state growing with
each), the same script gave 500 events: 499 writes, 9 MB; 1,000 events: 999 writes, 36 MB (bytes per event x2
for twice the events: quadratic).

Needs Airflow 3.3 (the state store). Usage: ``python benchmarks/watcher_state.py [--events 1000 10000]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from airflow_provider_hatchet.client import TriggerRequest, endpoints

os.environ.setdefault("AIRFLOW_HOME", str(Path(tempfile.gettempdir()) / "airflow-hatchet-bench"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GROWTH_LIMIT = 3.0


class CountingStore:
    """The part of Airflow's asset state store a watcher uses, counting what is written."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes = 0
        self.bytes = 0
        self.written = asyncio.Event()

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.writes += 1
        self.bytes += len(value)
        self.values[key] = value
        self.written.set()


def start_simulator(workdir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    info_file = workdir / "sim.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_hatchet.testing", "--port", "0", "--info-file", str(info_file),
         "--request-log", "0", "--visibility-delay", "0"],
        stdout=subprocess.DEVNULL, cwd=Path(__file__).resolve().parent.parent,
    )
    deadline = time.monotonic() + 30
    while not info_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the simulator did not start")
        time.sleep(0.05)
    return proc, json.loads(info_file.read_text())


async def trigger_finished_runs(info: dict[str, Any], n: int) -> None:
    from airflow_provider_hatchet.client import AsyncHatchetClient, ClientConfig

    async with AsyncHatchetClient(ClientConfig.from_token(info["token"])) as client:
        slots = asyncio.Semaphore(32)

        async def start(i: int) -> str:
            async with slots:
                return await client.send(endpoints.trigger(TriggerRequest("demo-etl", {"i": i})))

        await asyncio.gather(*(start(i) for i in range(n)))
    async with httpx.AsyncClient(base_url=info["admin_url"]) as admin:
        while True:
            if (await admin.get("/runs/count")).json()["by_status"].get("COMPLETED", 0) >= n:
                return
            await asyncio.sleep(0.2)


async def catch_up(info: dict[str, Any], n: int) -> dict[str, float]:
    from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunEventTrigger

    def watcher(store: CountingStore) -> HatchetWorkflowRunEventTrigger:
        # A long overlap keeps every id in the state (none is settled yet): the largest state a poll writes.
        trigger = HatchetWorkflowRunEventTrigger("demo-etl", poll_interval=3600, overlap=600.0)
        trigger.asset_state_store = store
        return trigger

    async with httpx.AsyncClient(base_url=info["admin_url"]) as admin:
        await admin.post("/reset", json={"keep_workflows": True})
    store = CountingStore()
    first = watcher(store).run()
    pending = asyncio.ensure_future(first.__anext__())
    await store.written.wait()
    pending.cancel()
    await asyncio.gather(pending, return_exceptions=True)
    await first.aclose()
    await trigger_finished_runs(info, n)

    # The heap built so far (Airflow's imports) moves out of the collector's reach: a full collection walks it
    # all, whatever triggered it, which would measure the size of Airflow rather than the watcher's work.
    gc.collect()
    gc.freeze()
    store.writes = store.bytes = 0
    store.written.clear()
    cpu0 = time.process_time()
    stream = watcher(store).run()
    await stream.__anext__()
    handed0 = time.perf_counter()
    for _ in range(n - 1):
        await stream.__anext__()
    pending = asyncio.ensure_future(stream.__anext__())  # the generator resumes and writes the state
    await store.written.wait()
    handover = time.perf_counter() - handed0
    cpu = time.process_time() - cpu0
    pending.cancel()
    await asyncio.gather(pending, return_exceptions=True)
    await stream.aclose()
    return {"events": n, "writes": store.writes, "bytes": store.bytes, "handover_s": handover, "cpu_s": cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()

    from airflow_provider_hatchet._compat import AIRFLOW_V_3_3_PLUS
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook

    if not AIRFLOW_V_3_3_PLUS:
        print("needs Airflow 3.3 (the asset state store)")
        return 2
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        proc, info = start_simulator(Path(workdir))
        try:
            os.environ["AIRFLOW_CONN_HATCHET_DEFAULT"] = info["airflow_conn_json"]

            async def run_all() -> None:
                for n in args.events:
                    results.append(await catch_up(info, n))
                await HatchetHook.aclose_loop_clients()

            asyncio.run(run_all())
        finally:
            proc.terminate()
            proc.wait(10)

    print("one poll catching up N finished runs, measured on the simulator (separate process), this machine:")
    for r in results:
        print(f"  {r['events']:>6} events: {r['writes']} write(s), {r['bytes'] / 1024:.1f} KiB "
              f"({r['bytes'] / r['events']:.0f} B/event); hand-over {r['handover_s'] * 1000:.0f} ms "
              f"({r['handover_s'] / r['events'] * 1e6:.0f} us/event); CPU {r['cpu_s']:.2f} s "
              f"({r['cpu_s'] / r['events'] * 1e6:.0f} us/event)")
    first, last = results[0], results[-1]
    growth = {
        "bytes per event": (last["bytes"] / last["events"]) / (first["bytes"] / first["events"]),
        "hand-over per event": (last["handover_s"] / last["events"]) / (first["handover_s"] / first["events"]),
    }
    failed = False
    for name, factor in growth.items():
        ok = factor <= GROWTH_LIMIT
        failed |= not ok
        print(f"{name}: x{factor:.2f} from {first['events']} to {last['events']} events "
              f"({'linear' if ok else 'NOT linear'}; limit x{GROWTH_LIMIT:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
