"""Bulk triggers over gRPC against REST (simulator); against bare senders and hatchet-sdk (real server).

Simulator mode (default): the simulator in its own process, serving both faces with the same added latency per
request; for each latency and batch size, the bulk engine over REST (``max_concurrency=32``, one request per run)
and over gRPC (``BulkTriggerWorkflow``, 1,000 runs per request, 4 in flight), with the rates, the ratio and the
peak RSS growth of the gRPC batch (the ids are the part that grows with the batch).

    python benchmarks/grpc_bulk.py --runs 10000,100000 --latencies 0,0.02

Real mode: against the server ``make hatchet-up`` started (``set -a; . build/hatchet/env; set +a``), the same
workflow (demo-etl) and runs in every variant:

- ``engine-N``: the provider's engine, ``trigger_many`` with a ``GrpcSender``, N requests in flight, exactly once
  (every run carries the batch metadata and its index), as committed at ``--after`` (``git archive`` into a
  temporary directory, so edits during a run change nothing);
- ``before-N``: the same, as committed at ``--before``;
- ``rest``: the engine over REST (``max_concurrency=32``), ``--rest-runs`` runs: a rate only;
- ``sdk`` / ``sdk-aio``: hatchet-sdk's ``run_many_no_wait`` / ``aio_run_many_no_wait`` in ``.venv-hatchet-worker``;
- ``hand-N``: a bare sender: the same 1,000-run ``BulkTriggerWorkflow`` requests, with the same metadata per run,
  built before the clock starts, sent on a raw ``grpc.aio`` stub, N in flight.

Each variant runs in its own process that opens its channel and builds its items, says ready, and is timed there;
the stack's worker is stopped (SIGSTOP) from just before "go" until the answer. Then the turn's runs are cancelled
by their unique metadata, with the worker resumed, until all are listed and none is queued or running, so no turn
inherits a backlog. The variants rotate each round. Prints each turn, then per variant the median rate and its
range, the ratios per round (engine / bare sender at the same concurrency and / the best bare sender, engine /
SDK), the load average and the server's version.

    python benchmarks/grpc_bulk.py --real --rounds 5 --before <ref> --after HEAD
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bulk_trigger import WORKFLOW, LazyItems, simulator
from paused_worker import REPO, worker_group, worker_paused

from airflow_provider_hatchet.client import AsyncHatchetClient, ClientConfig, HatchetClient, RunStatus, endpoints
from airflow_provider_hatchet.client.bulk import BulkResult, trigger_many
from airflow_provider_hatchet.client.grpc.bulk import GrpcSender
from airflow_provider_hatchet.client.grpc.channel import close_channels
from airflow_provider_hatchet.client.grpc.client import AsyncGrpcClient
from airflow_provider_hatchet.client.server_version import server_version

SDK_PYTHON = REPO / ".venv-hatchet-worker" / "bin" / "python"
GRPC_CONCURRENCY = 4
REST_CONCURRENCY = 32


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


# Variants of real mode: name -> (child kind, concurrency). Each runs in its own process, set up (channel open,
# requests built) before the parent says go, and timed there; the parent stops the worker around that.
VARIANTS = {
    "engine-1": ("engine", 1), "engine-4": ("engine", 4), "engine-8": ("engine", 8),
    "hand-1": ("hand", 1), "hand-4": ("hand", 4), "hand-8": ("hand", 8),
    "sdk": ("sdk", 1), "sdk-aio": ("sdk-aio", 1), "rest": ("rest", REST_CONCURRENCY),
    "before-4": ("before", 4),
}
DEFAULT_VARIANTS = "engine-1,engine-4,hand-1,hand-4,hand-8,sdk,sdk-aio,rest,before-4"
SDK_SCRIPT = """
import asyncio, json, sys, time, warnings
warnings.simplefilter("ignore")
from hatchet_sdk import Hatchet
kind, runs, key, workflow = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
wf = Hatchet().workflow(name=workflow)
def item(n):
    return wf.create_bulk_run_item(input={"n": n, "payload": "x" * 32},
                                   additional_metadata={"bench": key, "batch_index": str(n)})
async def main():
    await wf.aio_run_many_no_wait([item(-1)])
    items = [item(n) for n in range(runs)]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    start = time.perf_counter()
    if kind == "sdk-aio":
        refs = await wf.aio_run_many_no_wait(items)
    else:
        refs = await asyncio.get_running_loop().run_in_executor(None, wf.run_many_no_wait, items)
    print(json.dumps({"runs": len(refs), "seconds": time.perf_counter() - start}), flush=True)
asyncio.run(main())
"""


def real_config() -> ClientConfig:
    """The settings of the server ``make hatchet-up`` started, from ``HATCHET_CLIENT_*``."""
    return ClientConfig.from_token(os.environ["HATCHET_CLIENT_TOKEN"],
                                   server_url=os.environ["HATCHET_CLIENT_SERVER_URL"],
                                   grpc_address=os.environ.get("HATCHET_CLIENT_HOST_PORT"),
                                   grpc_tls=os.environ.get("HATCHET_CLIENT_TLS_STRATEGY", "tls") != "none")


async def wait_for_go() -> None:
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def child_engine(runs: int, key: str, concurrency: int, trace: bool, rest: bool) -> dict[str, Any]:
    """The provider's engine, exactly once (batch metadata and index on every run); its requests' start and end."""
    config = real_config()
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    spans: list[tuple[float, float]] = []
    async with AsyncHatchetClient(config, max_connections=max(concurrency, 4)) as client:
        sender = None
        if not rest:
            grpc_client = AsyncGrpcClient(config)
            await grpc_client.serves(10.0)  # opens the channel; an empty call creates nothing
            sender = GrpcSender(grpc_client)
            if trace:
                send = sender.send

                async def traced(requests: list[Any]) -> list[str]:
                    begin = time.perf_counter()
                    try:
                        return await send(requests)
                    finally:
                        spans.append((begin, time.perf_counter()))

                sender.send = traced  # type: ignore[method-assign]
        await wait_for_go()
        start = time.perf_counter()
        cpu = time.process_time()
        result = await trigger_many(client, LazyItems(runs), batch_metadata={"bench": key}, since=since,
                                    max_concurrency=concurrency, sender=sender)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        await close_channels()
    assert result.ok, dict(list(result.failed.items())[:3])
    return {"runs": len(result.created), "seconds": seconds, "cpu": cpu, "requests": result.requests,
            "spans": [(round(a - start, 4), round(b - start, 4)) for a, b in spans]}


async def child_hand(runs: int, key: str, concurrency: int) -> dict[str, Any]:
    """A bare sender: the same 1,000-run ``BulkTriggerWorkflow`` requests (built before the clock starts), a raw
    ``grpc.aio`` stub, ``concurrency`` requests in flight."""
    import grpc

    from airflow_provider_hatchet import _protos

    config = real_config()
    def run(n: int) -> Any:
        return _protos.TriggerWorkflowRequest(
            name=WORKFLOW, input=json.dumps({"n": n, "payload": "x" * 32}, separators=(",", ":")),
            additional_metadata=json.dumps({"bench": key, "batch_index": str(n)}, separators=(",", ":")))

    requests = [_protos.BulkTriggerWorkflowRequest(workflows=[run(n) for n in range(lo, min(runs, lo + 1000))])
                for lo in range(0, runs, 1000)]
    metadata = (("authorization", f"Bearer {config.token}"),)
    async with grpc.aio.insecure_channel(config.grpc_address or "") as channel:
        stub = channel.unary_unary(_protos.BULK_TRIGGER, request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=_protos.BulkTriggerWorkflowResponse.FromString)
        await stub(_protos.BulkTriggerWorkflowRequest(), metadata=metadata, timeout=10)
        pending = iter(requests)
        spans: list[tuple[float, float]] = []
        created = 0

        async def worker() -> None:
            nonlocal created
            for request in pending:
                begin = time.perf_counter()
                answer = await stub(request, metadata=metadata, timeout=120)
                spans.append((begin, time.perf_counter()))
                created += len(answer.workflow_run_ids)

        await wait_for_go()
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return {"runs": created, "seconds": seconds,
            "spans": [(round(a - start, 4), round(b - start, 4)) for a, b in spans]}


def child(args: argparse.Namespace) -> None:
    kind = args.child
    if kind == "hand":
        figures = asyncio.run(child_hand(args.runs_real, args.key, args.concurrency))
    else:
        figures = asyncio.run(child_engine(args.runs_real, args.key, args.concurrency, args.trace, kind == "rest"))
    print(json.dumps(figures), flush=True)


def old_tree(ref: str) -> str:
    """The package as it is at the git ``ref``, unpacked into a temporary directory."""
    where = tempfile.mkdtemp(prefix="grpc-bulk-before-")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "airflow_provider_hatchet"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", where], input=archive, check=True)
    return where


def git_rev(ref: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", ref], check=True, capture_output=True,
                          text=True).stdout.strip()


def spawn(variant: str, runs: int, key: str, trees: dict[str, str], trace: bool) -> subprocess.Popen[str]:
    kind, concurrency = VARIANTS[variant]
    if kind in ("sdk", "sdk-aio"):
        command = [str(SDK_PYTHON), "-c", SDK_SCRIPT, kind, str(runs), key, WORKFLOW]
        # An empty directory: the SDK child runs a script with -c, so a module in its directory would shadow a
        # standard one.
        env, cwd = dict(os.environ), tempfile.mkdtemp(prefix="grpc-bulk-sdk-")
    else:
        tree = trees["before" if kind == "before" else "after"]
        command = [sys.executable, str(Path(__file__).resolve()), "--child", "engine" if kind == "before" else kind,
                   "--runs", str(runs), "--key", key, "--concurrency", str(concurrency)] + (["--trace"] if trace
                                                                                              else [])
        env, cwd = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{REPO / 'benchmarks'}"}, "/tmp"
    return subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def timed_turn(variant: str, runs: int, key: str, group: int | None, trees: dict[str, str],
               trace: bool) -> dict[str, Any]:
    """Start the variant's process, stop the worker, let it send, resume the worker; its figures."""
    proc = spawn(variant, runs, key, trees, trace)
    assert proc.stdin is not None and proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        raise RuntimeError(f"{variant}: did not get ready ({line!r})")
    with worker_paused(group):
        proc.stdin.write("go\n")
        proc.stdin.flush()
        answer = proc.stdout.readline()
    if proc.wait(60) != 0 or not answer:
        raise RuntimeError(f"{variant}: failed (exit {proc.returncode})")
    figures: dict[str, Any] = json.loads(answer)
    return figures


def settle(client: HatchetClient, key: str, since: datetime, expected: int, timeout: float = 120.0) -> float:
    """Cancel what is left of the turn's runs and wait until all ``expected`` of them are listed and finished, so
    the server carries no backlog into the next turn; seconds taken."""
    start = time.monotonic()
    body = {"since": since.isoformat(), "additionalMetadata": [f"bench:{key}"]}
    scope = {"since": since, "additional_metadata": {"bench": key}, "limit": 1}
    cancelled_at = -1.0
    while time.monotonic() - start < timeout:
        listed = client.send(endpoints.list_runs(**scope)).pagination.num_pages or 0
        live = client.send(endpoints.list_runs(**scope, statuses=[RunStatus.QUEUED, RunStatus.RUNNING])).rows
        if listed >= expected and not live:
            time.sleep(1.0)  # what the engine still does after the list says finished
            return time.monotonic() - start
        if live and time.monotonic() - cancelled_at > 10:
            client.send(endpoints.cancel(filter=body))
            cancelled_at = time.monotonic()
        time.sleep(1.0)
    print(f"  ({key}: not settled after {timeout:.0f} s)", flush=True)
    return time.monotonic() - start


def spread(values: Sequence[float]) -> str:
    return f"{statistics.median(values):7.0f} [{min(values):.0f}-{max(values):.0f}]"


def ratio_line(name: str, ours: list[float], theirs: list[float]) -> str:
    ratios = [o / t for o, t in zip(ours, theirs, strict=True)]
    return f"{name:30} {statistics.median(ratios):5.2f}x [{min(ratios):.2f}-{max(ratios):.2f}] per round"


def real(args: argparse.Namespace) -> None:
    runs, rest_runs = args.runs_real, args.rest_runs
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    config = real_config()
    group = worker_group()
    if group is None:
        print("no worker pid in build/hatchet/state.json: the worker is NOT paused while timing")
    # Both engines from git, so that editing the worktree during a run changes nothing measured.
    trees = {"after": old_tree(args.after), "before": old_tree(args.before)}
    print(f"engine: {args.after} ({git_rev(args.after)}); before: {args.before} ({git_rev(args.before)})")
    tag = uuid.uuid4().hex[:6]
    rates: dict[str, list[float]] = {v: [] for v in variants}
    loads: list[float] = []
    with HatchetClient(config) as lister:
        version = lister.send(server_version())
        print(f"server {version} at {config.server_url}; {runs} runs per turn (REST: {rest_runs}); "
              f"{args.rounds} rounds; variants {', '.join(variants)}", flush=True)
        # An untimed turn first: the first timed send of a run (944 runs/s for engine-1) fell far below the rest.
        warm = f"gb-{tag}-warm"
        warm_since = datetime.now(timezone.utc) - timedelta(minutes=1)
        timed_turn("hand-4", runs, warm, group, trees, False)
        settle(lister, warm, warm_since, runs)
        for number in range(args.rounds):
            # Each variant moves round(variants / rounds) places a round: every position when rounds >= variants,
            # else positions spread over the order.
            shift = number * max(1, round(len(variants) / args.rounds)) % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                key = f"gb-{tag}-{variant}-{number}"
                count = rest_runs if variant == "rest" else runs
                since = datetime.now(timezone.utc) - timedelta(minutes=1)
                load = os.getloadavg()[0]
                figures = timed_turn(variant, count, key, group, trees, args.trace)
                rate = figures["runs"] / figures["seconds"]
                waited = settle(lister, key, since, count + (1 if variant.startswith("sdk") else 0))
                rates[variant].append(rate)
                loads.append(load)
                extra = f" cpu {figures['cpu'] * 1e6 / figures['runs']:.0f} µs/run" if "cpu" in figures else ""
                spans = "" if not args.trace else " spans " + " ".join(
                    f"{a:.2f}-{b:.2f}" for a, b in figures.get("spans", []))
                print(f"round {number + 1} {variant:9} {figures['runs']:6} runs {figures['seconds']:6.2f} s "
                      f"{rate:6.0f} runs/s{extra}; load {load:.2f}; settled in {waited:.0f} s{spans}", flush=True)
    print(f"\nHatchet {version}, {runs} runs per turn (REST {rest_runs}), {args.rounds} rounds rotated, the worker "
          f"stopped during each send; load average (1 min) at the turns {statistics.median(loads):.1f} "
          f"[{min(loads):.1f}-{max(loads):.1f}], now {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("runs/s: median [min-max]")
    for variant in variants:
        print(f"  {variant:9} {spread(rates[variant])}")
    for n in (1, 4, 8):
        if f"engine-{n}" in rates and f"hand-{n}" in rates:
            print("  " + ratio_line(f"engine-{n} ÷ hand-{n}", rates[f"engine-{n}"], rates[f"hand-{n}"]))
    hands = [v for v in variants if v.startswith("hand-")]
    if hands:
        best = max(hands, key=lambda v: statistics.median(rates[v]))
        for ours in [v for v in variants if v.startswith(("engine-", "before-"))]:
            print("  " + ratio_line(f"{ours} ÷ best hand ({best})", rates[ours], rates[best]))
        if "before-4" in rates and "hand-4" in rates:
            print("  " + ratio_line("before-4 ÷ hand-4", rates["before-4"], rates["hand-4"]))
    for sdk in ("sdk", "sdk-aio"):
        for ours in [v for v in variants if v.startswith("engine-")]:
            if sdk in rates:
                print("  " + ratio_line(f"{ours} ÷ {sdk}", rates[ours], rates[sdk]))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=None, help="batch sizes (simulator: 10000,100000; real: 3000)")
    parser.add_argument("--latencies", default="0,0.02", help="simulator mode: seconds added per request")
    parser.add_argument("--real", action="store_true", help="against the real server in HATCHET_CLIENT_*")
    parser.add_argument("--rounds", type=int, default=5, help="real mode: rounds, each variant once per round")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"real mode: of {', '.join(VARIANTS)}")
    parser.add_argument("--rest-runs", type=int, default=200, help="real mode: runs of the REST variant")
    parser.add_argument("--after", default="HEAD", help="real mode: the git ref of the engine 'engine-N' runs")
    parser.add_argument("--before", default="HEAD~1", help="real mode: the git ref of the engine 'before-N' runs")
    parser.add_argument("--trace", action="store_true", help="real mode: print each engine request's start and end")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    default = "3000" if args.real or args.child else "10000,100000"
    args.runs = args.runs or default
    args.runs_real = int(args.runs.split(",")[0])
    if args.child:
        child(args)
    elif args.real:
        real(args)
    else:
        simulated(args)


if __name__ == "__main__":
    main()
