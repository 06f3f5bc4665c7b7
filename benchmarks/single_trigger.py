"""One run's trigger latency on the real server: REST, gRPC (``TriggerWorkflow``) and hatchet-sdk's ``run_no_wait``.

Against the server ``make hatchet-up`` started (``set -a; . build/hatchet/env; set +a``). Each round times
``--triggers`` sequential triggers of each variant, one after another, on a connection already open (a warm-up
trigger first):

- ``rest``: the provider's REST trigger (``POST .../workflow-runs/trigger``) on the sync client's pool;
- ``grpc``: the provider's gRPC ``TriggerWorkflow`` on a channel already open;
- ``sdk``: hatchet-sdk's ``run_no_wait`` in its own virtual environment (``.venv-hatchet-worker``), timed there;
- ``grpc-task``: what the operator pays per task with ``transport='auto'``: a new channel, the probe (connect, then
  an empty bulk trigger) and the trigger, then the channel closed (``--triggers / 5`` of them);
- ``rest-task``: what it pays per task with ``transport='rest'``: a new client (its connection) and the trigger,
  then the client closed (``--triggers / 5`` of them).

The variants rotate, so each takes every position across rounds. The stack's worker is paused (SIGSTOP) while a
variant is timed, so that executing runs does not compete with the triggers, and resumed afterwards until every
run of the turn has finished. Prints, per variant, the median of the round medians, their range, and p90 over all
samples, plus the load average; figures on a shared machine are indicative.

    python benchmarks/single_trigger.py --rounds 5 --triggers 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from paused_worker import worker_group, worker_paused

from airflow_provider_hatchet.client import ClientConfig, HatchetClient, TriggerRequest, endpoints
from airflow_provider_hatchet.client.grpc.channel import close_channels
from airflow_provider_hatchet.client.grpc.client import AsyncGrpcClient, trigger_request
from airflow_provider_hatchet.client.grpc.probe import choose_client

REPO = Path(__file__).resolve().parents[1]
SDK_PYTHON = REPO / ".venv-hatchet-worker" / "bin" / "python"
WORKFLOW = "demo-etl"
VARIANTS = ("rest", "grpc", "sdk", "grpc-task", "rest-task")
# The variants that pay for a new connection on every trigger, timed fewer times.
PER_TASK = ("grpc-task", "rest-task")
SDK_SCRIPT = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
from hatchet_sdk import Hatchet, TriggerWorkflowOptions
count, key, workflow = int(sys.argv[1]), sys.argv[2], sys.argv[3]
wf = Hatchet().workflow(name=workflow)
def options():
    return TriggerWorkflowOptions(additional_metadata={"bench": key})
wf.run_no_wait({"warm": True}, options=options())
print("ready", flush=True)
sys.stdin.readline()
seconds = []
for n in range(count):
    start = time.perf_counter()
    wf.run_no_wait({"n": n}, options=options())
    seconds.append(time.perf_counter() - start)
print(json.dumps(seconds), flush=True)
"""


def drained(client: HatchetClient, key: str, since: datetime, timeout: float = 120.0) -> None:
    """Wait until every run of this turn has finished, so the next turn does not compete with their execution."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = list(client.iter_rows(endpoints.runs(since=since, additional_metadata={"bench": key})))
        if rows and all(row.status.is_terminal for row in rows):
            return
        time.sleep(0.5)
    print(f"  (turn {key}: runs still unfinished after {timeout:.0f} s)")


def request(key: str, n: int) -> TriggerRequest:
    return TriggerRequest(WORKFLOW, {"n": n}, {"bench": key})


def time_rest(config: ClientConfig, key: str, count: int, group: int | None) -> list[float]:
    with HatchetClient(config) as client:
        client.send(endpoints.trigger(request(key, -1)))
        with worker_paused(group):
            return [timed(lambda n=n: client.send(endpoints.trigger(request(key, n)))) for n in range(count)]


def time_rest_task(config: ClientConfig, key: str, count: int, group: int | None) -> list[float]:
    def one(n: int) -> None:
        with HatchetClient(config) as client:
            client.send(endpoints.trigger(request(key, n)))

    one(-1)
    with worker_paused(group):
        return [timed(lambda n=n: one(n)) for n in range(count)]


def time_grpc(config: ClientConfig, key: str, count: int, group: int | None) -> list[float]:
    async def run() -> list[float]:
        try:
            client = AsyncGrpcClient(config)
            messages = [trigger_request(WORKFLOW, {"n": n}, {"bench": key}, None) for n in range(-1, count)]
            await client.trigger(messages[0])
            seconds = []
            with worker_paused(group):
                for message in messages[1:]:
                    start = time.perf_counter()
                    await client.trigger(message)
                    seconds.append(time.perf_counter() - start)
            return seconds
        finally:
            await close_channels()

    return asyncio.run(run())


def time_grpc_task(config: ClientConfig, key: str, count: int, group: int | None) -> list[float]:
    async def one(n: int) -> None:
        try:
            client, how = await choose_client(config, "auto")
            assert client is not None, how
            await client.trigger(trigger_request(WORKFLOW, {"n": n}, {"bench": key}, None))
        finally:
            await close_channels()

    async def run() -> list[float]:
        await one(-1)
        seconds = []
        with worker_paused(group):
            for n in range(count):
                start = time.perf_counter()
                await one(n)
                seconds.append(time.perf_counter() - start)
        return seconds

    return asyncio.run(run())


def time_sdk(config: ClientConfig, key: str, count: int, group: int | None) -> list[float]:
    env = {**os.environ, "HATCHET_CLIENT_TOKEN": config.token}
    sdk = subprocess.Popen([str(SDK_PYTHON), "-c", SDK_SCRIPT, str(count), key, WORKFLOW], env=env, cwd="/tmp",
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert sdk.stdin is not None and sdk.stdout is not None
    assert sdk.stdout.readline().strip() == "ready"
    with worker_paused(group):
        sdk.stdin.write("go\n")
        sdk.stdin.flush()
        seconds = [float(s) for s in json.loads(sdk.stdout.readline())]
    sdk.wait(30)
    return seconds


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


TIMERS = {"rest": time_rest, "grpc": time_grpc, "sdk": time_sdk, "grpc-task": time_grpc_task,
          "rest-task": time_rest_task}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--triggers", type=int, default=50)
    args = parser.parse_args()
    config = ClientConfig.from_token(os.environ["HATCHET_CLIENT_TOKEN"],
                                     server_url=os.environ["HATCHET_CLIENT_SERVER_URL"], grpc_tls=False)
    group = worker_group()
    if group is None:
        print("no worker pid in build/hatchet/state.json: the worker is not paused while timing")
    samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
    medians: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with HatchetClient(config) as lister:
        for number in range(args.rounds):
            order = VARIANTS[number % len(VARIANTS):] + VARIANTS[:number % len(VARIANTS)]
            for variant in order:
                key = f"single-{variant}-{uuid.uuid4().hex[:8]}"
                since = datetime.now(timezone.utc) - timedelta(minutes=1)
                count = max(1, args.triggers // 5) if variant in PER_TASK else args.triggers
                seconds = TIMERS[variant](config, key, count, group)
                drained(lister, key, since)
                samples[variant] += seconds
                medians[variant].append(statistics.median(seconds))
                print(f"round {number + 1} {variant:9} median {statistics.median(seconds) * 1000:6.1f} ms "
                      f"({len(seconds)} triggers)", flush=True)
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.rounds} rounds, rotated; "
          f"median of round medians [min..max], p90 of all triggers")
    for variant in VARIANTS:
        m = medians[variant]
        p90 = statistics.quantiles(samples[variant], n=10)[-1] if len(samples[variant]) > 1 else max(m)
        print(f"{variant:9} {statistics.median(m) * 1000:6.1f} ms [{min(m) * 1000:.1f}..{max(m) * 1000:.1f}] "
              f"p90 {p90 * 1000:.1f} ms")


if __name__ == "__main__":
    main()
