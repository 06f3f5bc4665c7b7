"""Bulk triggers over gRPC against REST (simulator), and against hatchet-sdk's ``run_many_no_wait`` (real server).

Simulator mode (default): the simulator in its own process, serving both faces with the same added latency per
request; for each latency and batch size, the bulk engine over REST (``max_concurrency=32``, one request per run)
and over gRPC (``BulkTriggerWorkflow``, 1,000 runs per request, 4 in flight), with the rates, the ratio and the
peak RSS growth of the gRPC batch (the ids are the part that grows with the batch).

    python benchmarks/grpc_bulk.py --runs 10000,100000 --latencies 0,0.02

Real mode: against the server ``make hatchet-up`` started (``set -a; . build/hatchet/env; set +a``), our gRPC
bulk engine (exactly once: every run carries the batch metadata and its index) against hatchet-sdk's own
``run_many_no_wait`` in its virtual environment, on the same workflow, alternating (ours, then the SDK's,
``--rounds`` times); before each turn the worker drains the runs of the last one, so that no turn competes with
the execution of another.

    python benchmarks/grpc_bulk.py --real --runs 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bulk_trigger import WORKFLOW, LazyItems, simulator

from airflow_provider_hatchet.client import AsyncHatchetClient, ClientConfig, endpoints
from airflow_provider_hatchet.client.bulk import BulkResult, trigger_many
from airflow_provider_hatchet.client.grpc.bulk import GrpcSender
from airflow_provider_hatchet.client.grpc.channel import close_channels
from airflow_provider_hatchet.client.grpc.client import AsyncGrpcClient

REPO = Path(__file__).resolve().parents[1]
SDK_PYTHON = REPO / ".venv-hatchet-worker" / "bin" / "python"
GRPC_CONCURRENCY = 4
REST_CONCURRENCY = 32
SDK_SCRIPT = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
from hatchet_sdk import Hatchet
runs, key, workflow = int(sys.argv[1]), sys.argv[2], sys.argv[3]
hatchet = Hatchet()
wf = hatchet.workflow(name=workflow)
wf.run_many_no_wait([wf.create_bulk_run_item(input={"warm": True}, additional_metadata={"bench": key + "-warm"})])
items = [wf.create_bulk_run_item(input={"n": n, "payload": "x" * 32}, additional_metadata={"bench": key})
         for n in range(runs)]
start = time.perf_counter()
refs = wf.run_many_no_wait(items)
print(json.dumps({"runs": len(refs), "seconds": time.perf_counter() - start}))
"""


def rss_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run_batch(config: ClientConfig, runs: int, key: str, *, grpc: bool) -> tuple[BulkResult, float]:
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    concurrency = GRPC_CONCURRENCY if grpc else REST_CONCURRENCY
    async with AsyncHatchetClient(config, max_connections=REST_CONCURRENCY) as client:
        sender = GrpcSender(AsyncGrpcClient(config)) if grpc else None
        try:
            start = time.perf_counter()
            result = await trigger_many(client, LazyItems(runs), batch_metadata={"bench": key}, since=since,
                                        max_concurrency=concurrency, sender=sender)
            return result, time.perf_counter() - start
        finally:
            await close_channels()


def simulated(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.runs.split(",")]
    print(f"{'latency':>8} {'runs':>7} {'REST runs/s':>12} {'gRPC runs/s':>12} {'ratio':>7} {'gRPC requests':>14} "
          f"{'gRPC peak RSS growth':>21}")
    for latency in [float(x) for x in args.latencies.split(",")]:
        with simulator(latency) as info:
            config = ClientConfig.from_token(info["token"], server_url=info["url"], grpc_tls=False)
            asyncio.run(run_batch(config, 2000, "warm-rest", grpc=False))
            asyncio.run(run_batch(config, 2000, "warm-grpc", grpc=True))
            for size in sizes:
                peak = rss_peak_mib()
                grpc_result, grpc_seconds = asyncio.run(run_batch(config, size, f"grpc-{size}", grpc=True))
                growth = max(0.0, rss_peak_mib() - peak)
                rest_result, rest_seconds = asyncio.run(run_batch(config, size, f"rest-{size}", grpc=False))
                assert grpc_result.ok and rest_result.ok
                rest_rate, grpc_rate = size / rest_seconds, size / grpc_seconds
                print(f"{latency * 1000:>6.0f}ms {size:>7} {rest_rate:>12.0f} {grpc_rate:>12.0f} "
                      f"{grpc_rate / rest_rate:>6.1f}x {grpc_result.requests:>14} {growth:>17.1f} MiB", flush=True)
                del grpc_result, rest_result


def sdk_rate(runs: int, key: str) -> float:
    done = subprocess.run([str(SDK_PYTHON), "-c", SDK_SCRIPT, str(runs), key, WORKFLOW], capture_output=True,
                          text=True, check=True, env=os.environ.copy())
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return float(figures["runs"]) / float(figures["seconds"])


def wait_idle(config: ClientConfig, timeout: float = 600.0) -> float:
    """Wait until the server has no queued or running run left (the worker drained the last batch); seconds."""
    from airflow_provider_hatchet.client import HatchetClient, RunStatus

    start = time.monotonic()
    with HatchetClient(config) as client:
        while time.monotonic() - start < timeout:
            page = client.send(endpoints.list_runs(since=datetime.now(timezone.utc) - timedelta(hours=2), limit=1,
                                    statuses=[RunStatus.QUEUED, RunStatus.RUNNING]))
            if not page.rows:
                break
            time.sleep(2.0)
    return time.monotonic() - start


def real(args: argparse.Namespace) -> None:
    size = int(args.runs.split(",")[0])
    config = ClientConfig.from_token(os.environ["HATCHET_CLIENT_TOKEN"],
                                     server_url=os.environ["HATCHET_CLIENT_SERVER_URL"],
                                     grpc_address=os.environ.get("HATCHET_CLIENT_HOST_PORT"),
                                     grpc_tls=os.environ.get("HATCHET_CLIENT_TLS_STRATEGY", "tls") != "none")
    tag = uuid.uuid4().hex[:8]
    asyncio.run(run_batch(config, 100, f"warm-{tag}", grpc=True))
    rates: list[tuple[str, float]] = []
    print(f"waiting for the worker to drain earlier runs: {wait_idle(config):.0f} s", flush=True)
    for turn, who in enumerate(("ours", "sdk") * args.rounds):
        key = f"{who}-{tag}-{turn}"
        if who == "sdk":
            rate = sdk_rate(size, key)
        else:
            result, seconds = asyncio.run(run_batch(config, size, key, grpc=True))
            assert result.ok, result.failed
            rate = size / seconds
        rates.append((who, rate))
        print(f"{who:>5}: {size} runs, {rate:.0f} runs/s", flush=True)
        print(f"       the worker drained the batch in {wait_idle(config):.0f} s", flush=True)
    ours = [rate for who, rate in rates if who == "ours"]
    sdk = [rate for who, rate in rates if who == "sdk"]
    print(f"runs/s, ours: {', '.join(f'{r:.0f}' for r in ours)}; the SDK's: {', '.join(f'{r:.0f}' for r in sdk)}; "
          f"ours / the SDK's per round: {', '.join(f'{o / s:.2f}x' for o, s in zip(ours, sdk, strict=True))} "
          f"(goal >= 1.0x)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="10000", help="comma-separated batch sizes")
    parser.add_argument("--latencies", default="0,0.02", help="simulator mode: seconds added per request")
    parser.add_argument("--real", action="store_true", help="against the real server in HATCHET_CLIENT_*")
    parser.add_argument("--rounds", type=int, default=2, help="real mode: rounds of (ours, the SDK's)")
    args = parser.parse_args(argv)
    real(args) if args.real else simulated(args)


if __name__ == "__main__":
    main()
