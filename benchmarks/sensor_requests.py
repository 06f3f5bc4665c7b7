"""How many requests HatchetWorkflowRunSensor makes to wait on 1,000 runs that finish at random times.

Three ways of waiting are measured in one process, each on a fresh batch of runs with the same seeded
durations, against the loopback simulator on a manual clock advanced by the poll interval before each round (so
every scenario sees the same runs finish in the same rounds; request counts come from the simulator's log):

- baseline: one status request per run per round, then one details request per run for the outputs;
- sensor, runs without a batch key: one list of the runs finished in their creation window per round (after one
  list that learns when they were created), the outputs from the lists' payloads;
- sensor, runs of one bulk batch (``airflow_ti`` metadata, detected from the first run): one list query per
  round, the outputs from its payloads (one details request names the task).

``wait_cost.py`` measures the same in real time, on the simulator or a real Hatchet, against the naive loop that
polls only the unfinished runs, with the sensor poking and deferred.

Usage: ``python benchmarks/sensor_requests.py [--runs 1000] [--interval 1.0] [--max-duration 12]``
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("AIRFLOW_HOME", str(Path("/tmp") / "airflow-hatchet-bench"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

from airflow_provider_hatchet.client import (
    AsyncHatchetClient,
    ClientConfig,
    HatchetClient,
    RunStatus,
    TriggerRequest,
    endpoints,
)
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor
from airflow_provider_hatchet.testing import HatchetSimulator, ManualClock, SimulatorServer

Round = dict[str, int]


def trigger_batch(client: HatchetClient, durations: list[float], batch_key: str | None) -> list[str]:
    metadata = {"airflow_ti": batch_key, "airflow_batch_index": ""} if batch_key else None
    ids = []
    for i, duration in enumerate(durations):
        if metadata is not None:
            metadata["airflow_batch_index"] = str(i)
        ids.append(
            client.send(
                endpoints.trigger(TriggerRequest("bench", {"i": i, "__sim__": {"duration": duration}}, metadata))
            )
        )
    return ids


def measure(sim: HatchetSimulator, clock: ManualClock, poll: Callable[[], bool], interval: float) -> list[Round]:
    """Poll once per ``interval`` seconds of simulated time until done; count the requests of each round."""
    rounds: list[Round] = []
    while True:
        clock.advance(interval)
        sim.clear_requests()
        done = poll()
        rounds.append(dict(collections.Counter(r.route or "?" for r in sim.requests)))
        if done:
            return rounds


def baseline(config: ClientConfig, ids: list[str], concurrency: int = 16) -> Callable[[], bool]:
    """One status request per run per round (as concurrent as the sensor), then details once for the outputs."""

    async def each(call: Callable[[AsyncHatchetClient, str], Awaitable[object]]) -> list[object]:
        semaphore = asyncio.Semaphore(concurrency)
        async with AsyncHatchetClient(config, max_connections=concurrency) as client:

            async def one(run_id: str) -> object:
                async with semaphore:
                    return await call(client, run_id)

            return await asyncio.gather(*(one(i) for i in ids))

    def poll() -> bool:
        statuses = asyncio.run(each(lambda c, i: c.send(endpoints.run_status(i))))
        if all(isinstance(s, RunStatus) and s.is_terminal for s in statuses):
            asyncio.run(each(lambda c, i: c.send(endpoints.run_details(i))))
            return True
        return False

    return poll


def sensor(ids: list[str]) -> Callable[[], bool]:
    waiting = HatchetWorkflowRunSensor(task_id="wait", run_id=ids, max_concurrency=16)

    def poll() -> bool:
        result = waiting.poke({})
        if result:
            assert len(result.xcom_value) == len(ids)
            return True
        return False

    return poll


@dataclass
class Result:
    name: str
    rounds: list[Round]

    @property
    def per_round(self) -> list[int]:
        return [sum(r.values()) for r in self.rounds]

    @property
    def total(self) -> int:
        return sum(self.per_round)

    @property
    def by_route(self) -> dict[str, int]:
        total: collections.Counter[str] = collections.Counter()
        for r in self.rounds:
            total.update(r)
        return dict(total)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between poll rounds")
    parser.add_argument("--max-duration", type=float, default=12.0, help="runs last 1..this seconds")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    durations = [rng.uniform(1.0, args.max_duration) for _ in range(args.runs)]
    clock = ManualClock()
    sim = HatchetSimulator(visibility_delay=0.0, request_log_limit=4 * args.runs + 100, clock=clock)
    results: list[Result] = []
    with SimulatorServer(sim) as server:
        os.environ["AIRFLOW_CONN_HATCHET_DEFAULT"] = json.dumps(
            {"conn_type": "hatchet", "host": server.url, "password": sim.token}
        )
        hook = HatchetHook()
        scenarios: list[tuple[str, str | None, Callable[[list[str]], Callable[[], bool]]]] = [
            ("baseline: status per run per round", None, lambda ids: baseline(hook.config, ids)),
            ("sensor, no batch key", None, sensor),
            ("sensor, bulk batch (airflow_ti)", "bench|run|bulk|-1", sensor),
        ]
        with hook.client as client:
            for name, key, make in scenarios:
                sim.reset()
                sim.register_workflow("bench", "succeed", duration=1.0)
                ids = trigger_batch(client, durations, key)
                rounds = measure(sim, clock, make(ids), args.interval)
                assert all(sim.run_status(i) == RunStatus.COMPLETED.value for i in ids)
                results.append(Result(name, rounds))

    print(
        f"{args.runs} runs lasting 1..{args.max_duration:.0f} s (seed {args.seed}), a poll round every "
        f"{args.interval:.1f} s; requests counted by the simulator\n"
    )
    width = max(len(r.name) for r in results)
    for r in results:
        print(f"{r.name:<{width}}  rounds {len(r.rounds):>3}  total {r.total:>6}  by route {r.by_route}")
        print(f"{'':<{width}}  requests per round: {r.per_round}")
    base = results[0].total
    for r in results[1:]:
        print(f"{r.name}: {r.total / base:.1%} of the baseline's requests")
    if args.json:
        print(
            json.dumps(
                [{"name": r.name, "per_round": r.per_round, "total": r.total, "by_route": r.by_route} for r in results]
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
