"""How late a wait notices its runs finish on the real server: today's polling (``listen='off'``) against the
run-event stream (``listen='auto'``, the default), in the same run, with default arguments otherwise.

Against the server ``make hatchet-up`` started (``set -a; . build/hatchet/env; set +a``; its worker serves the demo
workflows). Latency is from the run's ``finishedAt`` (read back from its details) to the moment the wait ends;
server and client share this host, so one clock (the offset read from the HTTP ``Date`` header is printed too).

- ``one run``: a wait in the worker (the operator's ``wait_for_runs`` path: ``run_wait`` through a ``Bridge``,
  ``poll_interval`` 5 s) and a deferred one (``HatchetWorkflowRunTrigger.run`` in one long-lived loop, as a triggerer,
  until its event). Each run takes 0.5 to 1.5 s (random), so it finishes at any phase of the poll interval.
- ``batch``: 1,000 runs (sent with one gRPC bulk trigger per 500) waited on as the deferrable
  ``HatchetWorkflowRunSensor`` with no ``poke_interval`` (60 s) defers: its trigger with ``first_poll_at`` a poke
  interval after the poke it made; from the last run's ``finishedAt`` to the trigger's event, and its list requests.
- ``1,000 waits``: 1,000 deferred waits on runs that do not finish, in one event loop of a child process per
  variant: the streams opened, the requests over a minute, and the resident memory per wait.

Variants interleave and rotate so each takes every position; medians, p95 and spread (min to max) per variant,
with the load average at each figure. The machine is shared: figures are indicative.

    PYTHONPATH=. python benchmarks/wait_latency.py --rounds 5 --samples 3 --batch-rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

os.environ.setdefault("AIRFLOW_HOME", str(Path(tempfile.gettempdir()) / "airflow-hatchet-bench"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow_provider_hatchet._identity import BATCH_INDEX_KEY, TI_KEY
from airflow_provider_hatchet.client import (
    AsyncHatchetClient,
    ClientConfig,
    HatchetClient,
    TriggerRequest,
    WaitResume,
    endpoints,
)
from airflow_provider_hatchet.client.grpc.client import AsyncGrpcClient, trigger_request

LISTEN = ("off", "auto")
KINDS = ("worker", "deferred")
BATCH = 1000
CHUNK = 500
log = logging.getLogger("wait_latency")


def load() -> str:
    """The 1-minute load average."""
    return f"{os.getloadavg()[0]:.2f}"


def settings() -> tuple[ClientConfig, str]:
    """The server's config (gRPC without TLS, as the local stack serves it) and its engine version."""
    token, url = os.environ.get("HATCHET_CLIENT_TOKEN"), os.environ.get("HATCHET_CLIENT_SERVER_URL")
    if not token or not url:
        sys.exit("set the server's variables first: set -a; . build/hatchet/env; set +a")
    os.environ["AIRFLOW_CONN_HATCHET_DEFAULT"] = json.dumps(
        {"conn_type": "hatchet", "host": url, "password": token, "extra": {"grpc_tls": "false"}})
    return (ClientConfig.from_token(token, server_url=url, grpc_tls=False),
            os.environ.get("HATCHET_ENGINE_VERSION", "unknown"))


def clock_offset(url: str) -> float:
    """Server clock minus local clock from the HTTP ``Date`` header (1 s resolution: taken at a second's edge)."""
    with httpx.Client(base_url=url) as http:
        last = http.get("/api/ready").headers["date"]
        while True:
            sent = time.time()
            date = http.get("/api/ready").headers["date"]
            if date != last:
                return parsedate_to_datetime(date).timestamp() - (sent + time.time()) / 2 + 0.0
            last = date


def finished_at(client: HatchetClient, run_id: str) -> float:
    """The run's ``finishedAt`` (epoch seconds), read back once REST shows it."""
    for _ in range(100):
        moment = client.send(endpoints.run_details(run_id)).run.finished_at
        if moment is not None:
            return moment.timestamp()
        time.sleep(0.1)
    raise RuntimeError(f"run {run_id} has no finishedAt")


def trigger(client: HatchetClient, tag: str, seconds: float, workflow: str = "demo-etl") -> str:
    return client.send(endpoints.trigger(
        TriggerRequest(workflow, {"__sim__": {"duration": seconds}}, {"bench": tag})))


def in_worker(run_id: str, listen: str) -> float:
    """The operator's wait in the worker, with its defaults; return when it ended."""
    from airflow_provider_hatchet.client.bridge import Bridge
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook
    from airflow_provider_hatchet.triggers.hatchet import run_wait

    wait = run_wait([run_id], poll_interval=5.0, execution_deadline=None, cancel_on_timeout=True,
                    resume=WaitResume(listen=listen))  # type: ignore[arg-type]
    with Bridge(HatchetHook().async_client_factory()) as bridge:
        event = bridge.call(lambda client: wait.run(client, log))
    ended = time.time()
    assert event.status.value == "success", event
    return ended


async def deferred(run_ids: list[str], listen: str, **arguments: Any) -> tuple[float, dict[str, Any]]:
    """A trigger as the operator or the sensor defers it, run to its event; return when it came, and the event."""
    from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunTrigger

    resume = WaitResume(listen=listen, **arguments.pop("resume", {}))  # type: ignore[arg-type]
    # Rebuilt from what it serializes, as the triggerer does: a batch of more than 100 runs arrives as its key.
    _, kwargs = HatchetWorkflowRunTrigger(run_ids, resume=resume, **arguments).serialize()
    trigger = HatchetWorkflowRunTrigger(**kwargs)
    async for event in trigger.run():
        ended = time.time()
        assert event.payload["status"] == "success", event.payload["message"]
        return ended, event.payload
    raise RuntimeError("no event")


async def bulk_send(config: ClientConfig, requests: list[Any]) -> list[str]:
    """Trigger the runs over gRPC, ``CHUNK`` per ``BulkTriggerWorkflow`` request; return their ids."""
    grpc = AsyncGrpcClient(config)
    ids: list[str] = []
    for start in range(0, len(requests), CHUNK):
        ids += await grpc.bulk_trigger(requests[start:start + CHUNK])
    return ids


@contextmanager
def counting_requests() -> Iterator[Counter[str]]:
    """Count the requests every async client sends, by route, while inside."""
    routes = Counter[str]()
    send_once = AsyncHatchetClient._send_once

    async def counted(self: AsyncHatchetClient, call: Any) -> Any:
        routes[call.template or call.path] += 1
        return await send_once(self, call)

    AsyncHatchetClient._send_once = counted  # type: ignore[method-assign]
    try:
        yield routes
    finally:
        AsyncHatchetClient._send_once = send_once  # type: ignore[method-assign]


def rotations(variants: list[Any], rounds: int) -> Iterator[tuple[int, list[Any]]]:
    for number in range(rounds):
        shift = number % len(variants)
        yield number, variants[shift:] + variants[:shift]


def stats(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (f"median {statistics.median(ordered) * 1000:7.0f} ms, p95 {p95 * 1000:7.0f} ms, "
            f"spread {ordered[0] * 1000:.0f} to {ordered[-1] * 1000:.0f} ms (n={len(ordered)})")


def one_run(client: HatchetClient, runner: asyncio.Runner, rounds: int,
            samples: int) -> dict[tuple[str, ...], list[float]]:
    import random

    rng = random.Random(23)
    found: dict[tuple[str, ...], list[float]] = {}
    loads: dict[tuple[str, ...], list[float]] = {}
    variants = [(kind, listen) for kind in KINDS for listen in LISTEN]
    for number, order in rotations(variants, rounds):
        for kind, listen in order:
            for _ in range(samples):
                run_id = trigger(client, f"one-{kind}-{listen}", rng.uniform(0.5, 1.5))
                if kind == "worker":
                    ended = in_worker(run_id, listen)
                else:
                    ended, _ = runner.run(deferred([run_id], listen, poll_interval=5.0, cancel_on_timeout=True))
                found.setdefault((kind, listen), []).append(ended - finished_at(client, run_id))
                loads.setdefault((kind, listen), []).append(os.getloadavg()[0])
        print(f"  one run: round {number + 1}/{rounds} done, load {load()}", flush=True)
    for key, values in loads.items():
        found[(*key, "load")] = values
    return found


def batch(config: ClientConfig, client: HatchetClient, runner: asyncio.Runner,
          rounds: int) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for number, order in rotations(list(LISTEN), rounds):
        for listen in order:
            key = f"bench-batch-{uuid.uuid4().hex[:12]}"
            requests = [trigger_request("demo-etl", {"i": i}, {TI_KEY: key, BATCH_INDEX_KEY: str(i), "bench": key},
                                        None) for i in range(BATCH)]
            run_ids = runner.run(bulk_send(config, requests))
            started = time.time()
            with counting_requests() as lists:
                # As the deferrable sensor defers after its poke, with its default poke_interval of 60 s.
                ended, _ = runner.run(deferred(run_ids, listen, poll_interval=60.0, batch_key=key, resume={
                    "started_at": started, "first_poll_at": time.time() + 60.0, "detect_batch": False}))
            last = max(row.finished_at.timestamp() for row in client.iter_rows(endpoints.runs(
                since=datetime.fromtimestamp(started - 120, timezone.utc), additional_metadata={"bench": key}))
                       if row.finished_at is not None)
            list_calls = sum(n for route, n in lists.items() if route.endswith("/workflow-runs"))
            found.setdefault(listen, []).append(ended - last)
            found.setdefault(f"{listen}-lists", []).append(list_calls)
            found.setdefault(f"{listen}-minutes", []).append((ended - started) / 60)
            found.setdefault(f"{listen}-load", []).append(os.getloadavg()[0])
            print(f"  batch {listen}: {ended - last:.2f} s after the last run, {list_calls} list request(s) in "
                  f"{ended - started:.0f} s, load {load()}", flush=True)
        print(f"  batch: round {number + 1}/{rounds} done", flush=True)
    return found


def many_child(listen: str, waits: int, window: float) -> None:
    """In a child process: ``waits`` deferred waits on unfinished runs in one loop; print what they cost as JSON."""
    from airflow_provider_hatchet.client.grpc import run_events
    from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunTrigger

    settings()
    run_ids = json.loads(sys.stdin.read())

    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    async def main() -> dict[str, Any]:
        async def first_event(trigger: HatchetWorkflowRunTrigger) -> None:
            async for _ in trigger.run():
                return

        warm = asyncio.ensure_future(first_event(HatchetWorkflowRunTrigger(
            [run_ids[-1]], resume=WaitResume(listen=listen))))  # type: ignore[arg-type]
        await asyncio.sleep(3)
        gc.collect()
        before = rss()
        tasks = [asyncio.ensure_future(first_event(HatchetWorkflowRunTrigger(
            [run_id], resume=WaitResume(listen=listen)))) for run_id in run_ids[:waits]]  # type: ignore[arg-type]
        await asyncio.sleep(10)  # every wait made its first round
        gc.collect()
        after = rss()
        with counting_requests() as routes:
            await asyncio.sleep(window)
        counts = dict(routes)
        hubs = list(run_events._HUBS.get(asyncio.get_running_loop(), {}).values())
        for task in [*tasks, warm]:
            task.cancel()
        await asyncio.gather(*tasks, warm, return_exceptions=True)
        return {"kb_per_wait": (after - before) / waits / 1024, "requests": counts, "window": window,
                "hubs": len(hubs), "streams_opened": sum(h.streams_opened for h in hubs), "load": load()}

    print(json.dumps(asyncio.run(main())))


def many(config: ClientConfig, client: HatchetClient, runner: asyncio.Runner, waits: int,
         window: float) -> dict[str, dict[str, Any]]:
    key = f"bench-many-{uuid.uuid4().hex[:12]}"
    requests = [trigger_request("demo-hang", {}, {"bench": key}, None) for _ in range(waits + 1)]

    run_ids = runner.run(bulk_send(config, requests))
    found = {}
    try:
        for listen in ("auto", "off"):
            child = subprocess.run([sys.executable, __file__, "--child", listen, "--waits", str(waits),
                                    "--window", str(window)], input=json.dumps(run_ids), capture_output=True,
                                   text=True, check=True)
            found[listen] = json.loads(child.stdout.strip().splitlines()[-1])
            print(f"  {waits} waits, listen={listen}: {found[listen]}", flush=True)
    finally:
        for start in range(0, len(run_ids), 500):
            client.send(endpoints.cancel(run_ids[start:start + 500]))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=3, help="runs per variant per round (one run)")
    parser.add_argument("--batch-rounds", type=int, default=5)
    parser.add_argument("--waits", type=int, default=1000)
    parser.add_argument("--window", type=float, default=60.0, help="seconds the 1,000 waits' requests are counted")
    parser.add_argument("--child", choices=LISTEN, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for name in ("airflow_provider_hatchet", "wait_latency", "airflow.task"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.child:
        many_child(args.child, args.waits, args.window)
        return 0

    config, version = settings()
    began = time.monotonic()
    offset = clock_offset(config.server_url)
    print(f"Hatchet {version} at {config.server_url}; server and client on this host share one clock "
          f"(HTTP Date offset {offset:+.2f} s, 1 s resolution); load {load()}", flush=True)
    with HatchetClient(config) as client, asyncio.Runner() as runner:
        single = one_run(client, runner, args.rounds, args.samples) if args.rounds else {}
        batches = batch(config, client, runner, args.batch_rounds) if args.batch_rounds else {}
        costs = many(config, client, runner, args.waits, args.window) if args.waits else {}

    print(f"\n== summary (Hatchet {version}, one clock; offset by Date header {offset:+.2f} s; "
          f"{time.monotonic() - began:.0f} s)")
    if single:
        print(f"one run, finishedAt -> wait ended ({args.rounds} rounds x {args.samples}; goal p50 < 100 ms, "
              f"p95 < 500 ms):")
    for kind in KINDS if single else ():
        for listen in LISTEN:
            loads = single[(kind, listen, "load")]
            print(f"  {kind:8} listen={listen:4}: {stats(single[(kind, listen)])}; load "
                  f"{min(loads):.1f}-{max(loads):.1f}")
    if batches:
        print(f"1,000-run batch, deferrable sensor defaults, last finishedAt -> TriggerEvent "
              f"({args.batch_rounds} rounds; goal < 1 s):")
        for listen in LISTEN:
            lists, minutes = batches[f"{listen}-lists"], batches[f"{listen}-minutes"]
            per_minute = [n / max(m, 1.0) for n, m in zip(lists, minutes, strict=True)]
            print(f"  listen={listen:4}: {stats(batches[listen])}; list requests per wait "
                  f"{batches[f'{listen}-lists']} (max {max(per_minute):.1f} per minute); load "
                  f"{min(batches[f'{listen}-load']):.1f}-{max(batches[f'{listen}-load']):.1f}")
    for listen, cost in costs.items():
        requests = sum(cost["requests"].values())
        print(f"{args.waits} deferred waits in one loop, listen={listen}: {cost['kb_per_wait']:.1f} KB per wait, "
              f"{cost['hubs']} stream hub(s), {cost['streams_opened']} stream(s) opened, {requests} requests in "
              f"{cost['window']:.0f} s ({cost['requests']}); load {cost['load']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
