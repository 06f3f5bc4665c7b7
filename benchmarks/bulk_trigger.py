"""Bulk trigger benchmark against the simulator running in its own process.

Default mode: a sequential ``HatchetHook.run_workflow`` loop (sampled, then extrapolated) against the bulk
engine, both with the same added latency per request; prints rates, the speed-up and the share of the
physical bound ``max_concurrency / latency`` reached, and memory.

Memory mode (``--runs 100000 --latency 0``): the engine alone at several batch sizes, printing the
tracemalloc peak per run, to show memory grows no more than linearly.

    python benchmarks/bulk_trigger.py
    python benchmarks/bulk_trigger.py --runs 100000 --latency 0

``--httpx-pool`` uses httpx's own connection pool instead of the client's lane pool, to show why the client
has one: httpcore re-scans its connections for every queued request and hands one idle connection to several
requests queued in the same loop turn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, overload

import httpx

from airflow_provider_hatchet.client import AsyncHatchetClient, ClientConfig
from airflow_provider_hatchet.client.bulk import BulkItem, BulkResult, trigger_many

WORKFLOW = "demo-etl"


class LazyItems(Sequence[BulkItem]):
    """Items built on access, so that memory figures show the engine rather than the caller's list."""

    def __init__(self, count: int) -> None:
        self._count = count

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> BulkItem: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[BulkItem]: ...

    def __getitem__(self, index: int | slice) -> BulkItem | Sequence[BulkItem]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if not 0 <= index < self._count:
            raise IndexError(index)
        return BulkItem(WORKFLOW, {"n": index, "payload": "x" * 32})


@contextmanager
def simulator(latency: float) -> Iterator[dict[str, Any]]:
    """Run ``python -m airflow_provider_hatchet.testing`` and yield its connection info."""
    with tempfile.TemporaryDirectory() as tmp:
        info_file = Path(tmp) / "info.json"
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_hatchet.testing", "--port", "0", "--latency", str(latency),
             "--request-log", "0", "--info-file", str(info_file)],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while not info_file.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the simulator did not start")
                time.sleep(0.05)
            info = json.loads(info_file.read_text())
            info["pid"] = proc.pid
            yield info
        finally:
            proc.terminate()
            proc.wait(10)


def rss_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_now_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def sequential_rate(info: dict[str, Any], sample: int) -> float:
    """Trigger ``sample`` runs one by one through the hook; return runs per second."""
    os.environ["AIRFLOW_CONN_HATCHET_DEFAULT"] = info["airflow_conn_json"]
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook

    hook = HatchetHook()
    hook.run_workflow(WORKFLOW, {"warm": True})
    start = time.perf_counter()
    for n in range(sample):
        hook.run_workflow(WORKFLOW, {"n": n}, {"bench": "sequential"})
    elapsed = time.perf_counter() - start
    hook.close()
    return sample / elapsed


async def run_engine(info: dict[str, Any], runs: int, concurrency: int, key: str,
                     httpx_pool: bool = False) -> tuple[BulkResult, float]:
    config = ClientConfig.from_token(info["token"], server_url=info["url"])
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transport = httpx.AsyncHTTPTransport(limits=limits) if httpx_pool else None
    async with AsyncHatchetClient(config, max_connections=concurrency, transport=transport) as client:
        start = time.perf_counter()
        result = await trigger_many(client, LazyItems(runs), batch_metadata={"bench": key}, since=since,
                                    max_concurrency=concurrency)
        return result, time.perf_counter() - start


def throughput(args: argparse.Namespace) -> None:
    bound = args.concurrency / args.latency if args.latency > 0 else float("inf")
    with simulator(args.latency) as info:
        seq = sequential_rate(info, args.sample)
        print(f"sequential hook loop: {args.sample} runs sampled, {seq:.1f} runs/s "
              f"-> {args.runs} runs would take {args.runs / seq:.0f} s")
        asyncio.run(run_engine(info, 200, args.concurrency, "warm-up", args.httpx_pool))
        rss_before, peak_before = rss_now_mib(), rss_peak_mib()
        cpu_before = time.process_time()
        result, elapsed = asyncio.run(run_engine(info, args.runs, args.concurrency, "throughput", args.httpx_pool))
        cpu = time.process_time() - cpu_before
        rate = len(result.created) / elapsed
        pool = "httpx pool" if args.httpx_pool else "lane pool"
        print(f"bulk engine ({pool}): {len(result.created)}/{args.runs} runs in {elapsed:.2f} s = {rate:.0f} runs/s "
              f"(max_concurrency={args.concurrency}, latency={args.latency * 1000:.0f} ms, "
              f"{result.requests} requests, {len(result.failed)} failed); "
              f"client CPU {1e6 * cpu / args.runs:.0f} us/run")
        print(f"speed-up over the sequential loop: {rate / seq:.1f}x (goal >= 20x)")
        print(f"physical bound {bound:.0f} runs/s; reached {100 * rate / bound:.0f}% (goal >= 70%)")
        print(f"RSS: {rss_before:.0f} MiB before, peak grew by {max(0.0, rss_peak_mib() - peak_before):.1f} MiB "
              f"(now {rss_now_mib():.0f} MiB)")


def memory(args: argparse.Namespace) -> None:
    sizes = sorted({int(s) for s in args.sizes.split(",") if s and int(s) < args.runs} | {args.runs})
    with simulator(args.latency) as info:
        asyncio.run(run_engine(info, 1000, args.concurrency, "warm-up", args.httpx_pool))
        baseline = rss_peak_mib()
        print(f"RSS after warm-up: {baseline:.0f} MiB; batch sizes in increasing order, so each peak is its own")
        print(f"{'runs':>8} {'seconds':>8} {'runs/s':>7} {'peak RSS growth MiB':>20} {'bytes/run':>10}")
        for size in sizes:
            result, elapsed = asyncio.run(run_engine(info, size, args.concurrency, f"memory-{size}", args.httpx_pool))
            growth = max(0.0, rss_peak_mib() - baseline)
            print(f"{size:>8} {elapsed:>8.1f} {len(result.created) / elapsed:>7.0f} {growth:>20.1f} "
                  f"{growth * 2**20 / size:>10.0f}")
            del result
        print("growth includes the result: one run id string (about 90 bytes) per run")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds the simulator adds per request")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sample", type=int, default=200, help="runs triggered by the sequential loop")
    parser.add_argument("--httpx-pool", action="store_true", help="use httpx's own connection pool (see above)")
    parser.add_argument("--sizes", default="10000,50000", help="memory mode: batch sizes below --runs")
    args = parser.parse_args(argv)
    if args.latency > 0:
        throughput(args)
    else:
        memory(args)


if __name__ == "__main__":
    main()
