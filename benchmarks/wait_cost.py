"""What waiting on Hatchet runs costs: the sensor poking, the sensor deferred to its trigger, and the naive loop.

The runs finish at random, 1 to ``--max-duration`` seconds after the wait begins, and every waiter checks once a
``--interval``. Three sets of runs:

- batch: one bulk batch (every run carries the same ``airflow_ti`` metadata, as the bulk operator stamps it);
- unrelated: runs that share no batch key (each its own ``airflow_ti``, as a mapped task's instances);
- mix: half one batch, half unrelated, interleaved.

For each set, three waiters wait on the same runs at the same time, each in a process of its own that counts
the requests its client sends (retries included):

- naive: a round every interval (the next at once if one overran), one status request per unfinished run, 16 in
  flight; once all have finished, one details request per run for the outputs;
- poke: ``HatchetWorkflowRunSensor.execute`` in poke mode (``poke_interval`` = the interval): Airflow's own loop;
- deferrable: the same sensor, deferrable: its first check, ``HatchetWorkflowRunTrigger.run`` until its event,
  then ``execute_complete``.

Each run's duration is set when it is triggered (the ``__sim__`` override that the simulator and
``e2e/hatchet/worker.py`` honour), so that it finishes its random time after the moment the wait begins,
however long the triggering took.

Servers: ``--server sim`` starts the simulator in its own process (``python -m airflow_provider_hatchet.testing``);
``--server real`` reads ``HATCHET_CLIENT_SERVER_URL`` and the token named by ``--token-env`` (``set -a;
. build/hatchet/env; set +a``) and needs a hatchet-sdk worker serving ``demo-etl`` for that tenant with a slot for
every run at once: ``--worker-slots N`` starts ``e2e/hatchet/worker.py`` with N slots for the run and stops it
after.

Layouts: ``--layout separate`` gives each set ``--runs`` runs of its own, measured one set after the other (3 x
runs runs); ``--layout shared`` triggers ``--runs`` runs once, half in one batch and half unrelated, interleaved;
the batch waiters wait on the first half, the unrelated waiters on the other, the mix waiters on all of them,
all at once, and one naive loop over all the runs counts its requests per set.

Usage::

    python benchmarks/wait_cost.py --server sim --runs 1000
    set -a; . build/hatchet/env; set +a
    python benchmarks/wait_cost.py --server real --layout shared --runs 1000 \\
        --token-env HATCHET_FOREIGN_TOKEN --worker-slots 1100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", str(Path(tempfile.gettempdir()) / "airflow-hatchet-bench"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

from airflow_provider_hatchet.client import (
    AsyncHatchetClient,
    ClientConfig,
    HatchetError,
    RetryPolicy,
    RunStatus,
    TriggerRequest,
    endpoints,
)

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = "demo-etl"
NAIVE_CONCURRENCY = 16
SETS = ("batch", "unrelated", "mix")
ROLES = ("naive", "poke", "deferrable")
MARK = "wait-cost: "  # the waiters' own lines among Airflow's log lines on stdout
GOALS = {"unrelated": 0.50, "batch": 0.20}


# Counting, in each waiter's process


class Requests:
    """Counts what an async client sends: per route, per run id, and per round."""

    def __init__(self) -> None:
        self.routes: Counter[str] = Counter()
        self.per_run: Counter[str] = Counter()
        self.total = 0

    def install(self) -> None:
        """Count every attempt of every call made through ``AsyncHatchetClient``."""
        send_once = AsyncHatchetClient._send_once
        counter = self

        async def counted(client: AsyncHatchetClient, call: endpoints.Call[Any]) -> Any:
            route, run_id = classify(call.method, call.path)
            counter.routes[route] += 1
            counter.total += 1
            if run_id:
                counter.per_run[run_id] += 1
            return await send_once(client, call)

        AsyncHatchetClient._send_once = counted  # type: ignore[method-assign]


def classify(method: str, path: str) -> tuple[str, str | None]:
    """The route of a request (status, details, list or other) and the run it is about, if one."""
    parts = path.rstrip("/").split("/")
    if method == "GET" and parts[-1] == "status":
        return "status", parts[-2]
    if method == "GET" and parts[-1] == "workflow-runs":
        return "list", None
    if method == "GET" and len(parts) >= 2 and parts[-2] == "workflow-runs":
        return "details", parts[-1]
    return "other", None


def wait_until(moment: float) -> None:
    delay = moment - time.time()
    if delay > 0:
        time.sleep(delay)


class _TI:
    def xcom_push(self, key: str, value: Any) -> None:
        pass


def role_main(role: str) -> int:
    """One waiter: read its spec from stdin, wait for the start, wait on the runs, print the figures as JSON."""
    counter = Requests()
    counter.install()
    from airflow_provider_hatchet.client import run_wait, waiter
    from airflow_provider_hatchet.sensors import hatchet as sensors

    rounds: list[tuple[float, int]] = []
    check_round = waiter.check_round

    async def timed(client: Any, state: Any, **options: Any) -> Any:
        began, before = time.time(), counter.total
        try:
            return await check_round(client, state, **options)
        finally:
            rounds.append((began, counter.total - before))

    run_wait.check_round = timed  # type: ignore[assignment]
    sensors.check_round = timed  # type: ignore[assignment]
    from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor

    print(f"{MARK}ready", flush=True)
    spec = json.loads(sys.stdin.readline())
    config = ClientConfig.from_token(spec["token"], server_url=spec["server_url"])
    wait_until(spec["start_at"])
    began = time.time()
    outcome: Any
    if role == "naive":
        outcome = asyncio.run(naive(config, spec["ids"], spec["interval"], rounds, counter))
    else:
        os.environ["AIRFLOW_CONN_HATCHET_DEFAULT"] = json.dumps(
            {"conn_type": "hatchet", "host": spec["server_url"], "password": spec["token"]})
        sensor = HatchetWorkflowRunSensor(task_id="wait", run_id=spec["ids"], poke_interval=spec["interval"],
                                          timeout=3600, deferrable=role == "deferrable")
        outcome = poke(sensor) if role == "poke" else defer(sensor)
    ok = isinstance(outcome, list) and len(outcome) == len(spec["ids"]) and all(outcome)
    print(MARK + json.dumps({
        "role": role, "ok": ok, "seconds": round(time.time() - began, 2),
        "late_start": round(began - spec["start_at"], 2), "total": counter.total,
        "routes": dict(counter.routes), "per_run": dict(counter.per_run),
        "rounds": [[round(t - began, 2), n] for t, n in rounds],
    }), flush=True)
    return 0


def poke(sensor: Any) -> Any:
    return sensor.execute({"ti": _TI()})


def defer(sensor: Any) -> Any:
    from airflow_provider_hatchet._compat import TaskDeferred
    from airflow_provider_hatchet.operators._base import first_event

    try:
        return sensor.execute({"ti": _TI()})
    except TaskDeferred as deferred:
        return sensor.execute_complete({}, first_event(deferred.trigger))


async def naive(config: ClientConfig, ids: list[str], interval: float, rounds: list[tuple[float, int]],
                counter: Requests) -> list[dict[str, Any]]:
    """A round every interval: one status request per unfinished run; then one details request per run."""
    semaphore = asyncio.Semaphore(NAIVE_CONCURRENCY)
    unfinished = list(dict.fromkeys(ids))
    async with AsyncHatchetClient(config, max_connections=NAIVE_CONCURRENCY) as client:

        async def status(run_id: str) -> tuple[str, RunStatus | None]:
            async with semaphore:
                try:
                    return run_id, await client.send(endpoints.run_status(run_id))
                except Exception:
                    return run_id, None

        async def details(run_id: str) -> dict[str, Any]:
            async with semaphore:
                return (await client.send(endpoints.run_details(run_id))).task_outputs()

        next_round = time.time()
        while unfinished:
            began, before = time.time(), counter.total
            answers = await asyncio.gather(*(status(i) for i in unfinished))
            unfinished = [i for i, s in answers if s is None or not s.is_terminal]
            rounds.append((began, counter.total - before))
            next_round += interval
            await asyncio.sleep(max(0.0, next_round - time.time()))
        began, before = time.time(), counter.total
        outputs = await asyncio.gather(*(details(i) for i in ids))
        rounds.append((began, counter.total - before))
        return list(outputs)


# The conductor


class Server:
    """The simulator in its own process, or the real server from the environment."""

    def __init__(self, kind: str, token_env: str) -> None:
        self.kind = kind
        self.process: subprocess.Popen[bytes] | None = None
        if kind == "sim":
            info = Path(tempfile.mkdtemp(prefix="wait-cost-")) / "sim.json"
            self.process = subprocess.Popen(
                [sys.executable, "-m", "airflow_provider_hatchet.testing", "--port", "0", "--info-file", str(info),
                 "--visibility-delay", "0.05", "--cancel-delay", "0.03", "--request-log", "100"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.time() + 30
            while not info.exists():
                if time.time() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the simulator did not start")
                time.sleep(0.1)
            data = json.loads(info.read_text())
            self.url, self.token = data["url"], data["token"]
        else:
            self.url = os.environ["HATCHET_CLIENT_SERVER_URL"]
            self.token = os.environ[token_env]
        self.config = ClientConfig.from_token(self.token, server_url=self.url)

    def close(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


class Worker:
    """``e2e/hatchet/worker.py`` with enough slots for every run at once, for the real server."""

    def __init__(self, token: str, slots: int, log: Path) -> None:
        env = {**os.environ, "HATCHET_CLIENT_TOKEN": token, "HATCHET_WORKER_SLOTS": str(slots)}
        env.pop("HATCHET_CLIENT_TENANT_ID", None)
        python = REPO / ".venv-hatchet-worker" / "bin" / "python"
        self.log = log.open("wb")
        self.process = subprocess.Popen([str(python), str(REPO / "e2e" / "hatchet" / "worker.py")], env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()


async def trigger_runs(config: ClientConfig, keys: list[str], offsets: list[float], start_at: float,
                       tag: str) -> list[str]:
    """Trigger one run per key, 32 in flight, each lasting until ``start_at`` plus its offset."""
    ids: list[str] = [""] * len(keys)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(keys)):
        queue.put_nowait(i)
    retry = RetryPolicy(attempts=1)
    async with AsyncHatchetClient(config, retry=retry, max_connections=32) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                for attempt in range(3):  # a lost answer may leave a run behind: harmless here
                    duration = max(0.1, start_at + offsets[i] - time.time())
                    try:
                        ids[i] = await client.send(endpoints.trigger(TriggerRequest(
                            WORKFLOW, {"i": i, "__sim__": {"duration": round(duration, 3)}},
                            {"airflow_ti": keys[i], "bench": tag})))
                        break
                    except HatchetError:
                        if attempt == 2:
                            raise
                        await asyncio.sleep(0.5)

        await asyncio.gather(*(worker() for _ in range(32)))
    return ids


async def wait_visible(config: ClientConfig, run_id: str, timeout: float = 60) -> None:
    async with AsyncHatchetClient(config) as client:
        deadline = time.time() + timeout
        while True:
            try:
                if (await client.send(endpoints.run_status(run_id))).is_terminal:
                    return
            except Exception:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"run {run_id} did not finish in {timeout} s: is a worker serving {WORKFLOW}?")
            await asyncio.sleep(0.5)


def spawn(role: str, name: str, log_dir: Path) -> subprocess.Popen[str]:
    """Start a waiter's process; it says ``ready`` once it has imported what it needs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    log = (log_dir / f"{name}-{role}-{time.time():.0f}.log").open("w")
    return subprocess.Popen([sys.executable, __file__, "--role", role], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=REPO)


def ready(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip() == f"{MARK}ready":
            return
    raise RuntimeError("a waiter did not start; see its log")


def phase(server: Server, sets: dict[str, list[int]], keys: list[str], args: argparse.Namespace,
          rng: random.Random, log_dir: Path) -> dict[str, dict[str, Any]]:
    """Trigger one group of runs and wait on its sets: a naive loop over all the runs, and for each set a poking
    and a deferred sensor. Return each set's figures per waiter."""
    waiters = {(name, role): spawn(role, name, log_dir) for name in sets for role in ("poke", "deferrable")}
    naive_process = spawn("naive", "all", log_dir)
    for process in [*waiters.values(), naive_process]:
        ready(process)
    offsets = [rng.uniform(1.0, args.max_duration) for _ in keys]
    began = time.time()
    start_at = began + len(keys) / args.trigger_rate + args.slack
    ids = asyncio.run(trigger_runs(server.config, keys, offsets, start_at, uuid.uuid4().hex[:8]))
    triggered = time.time() - began
    if time.time() > start_at:
        print(f"  triggering took {triggered:.1f} s, {time.time() - start_at:.1f} s past the start; some runs "
              "finish sooner than planned", flush=True)
    spec = {"server_url": server.url, "token": server.token, "interval": args.interval,
            "start_at": max(start_at, time.time() + 1)}
    for (name, _role), process in waiters.items():
        assert process.stdin is not None
        process.stdin.write(json.dumps({**spec, "ids": [ids[i] for i in sets[name]]}) + "\n")
        process.stdin.flush()
    assert naive_process.stdin is not None
    naive_process.stdin.write(json.dumps({**spec, "ids": ids}) + "\n")
    naive_process.stdin.flush()
    results: dict[str, dict[str, Any]] = {name: {} for name in sets}
    for (name, role), process in waiters.items():
        results[name][role] = collect(process, role)
    baseline = collect(naive_process, "naive")
    for name, members in sets.items():
        mine = {ids[i] for i in members}
        per_run = baseline["per_run"]
        results[name]["naive"] = {
            "total": sum(n for run_id, n in per_run.items() if run_id in mine),
            "rounds": baseline["rounds"], "ok": baseline["ok"], "seconds": baseline["seconds"],
        }
        results[name]["runs"] = len(members)
        results[name]["triggered_in"] = round(triggered, 1)
    return results


def collect(process: subprocess.Popen[str], role: str) -> dict[str, Any]:
    out, _ = process.communicate(timeout=900)
    lines = [line[len(MARK):] for line in out.splitlines() if line.startswith(MARK)]
    if process.returncode or not lines:
        raise RuntimeError(f"the {role} waiter failed (exit {process.returncode}); see its log")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def layout(kind: str, runs: int, tag: str) -> list[tuple[dict[str, list[int]], list[str]]]:
    """The phases: for each, the sets (indexes into its runs) and each run's ``airflow_ti``."""

    def keys(n: int, batch: str) -> list[str]:
        return [f"bench|{tag}|{batch}|-1" if batch != "unrelated" else f"bench|{tag}|unrelated|{i}" for i in range(n)]

    def mixed(n: int) -> list[str]:
        return [f"bench|{tag}|mix|-1" if i % 2 == 0 else f"bench|{tag}|loose|{i}" for i in range(n)]

    if kind == "shared":
        return [({"batch": list(range(0, runs, 2)), "unrelated": list(range(1, runs, 2)),
                  "mix": list(range(runs))}, mixed(runs))]
    return [({"batch": list(range(runs))}, keys(runs, "batch")),
            ({"unrelated": list(range(runs))}, keys(runs, "unrelated")),
            ({"mix": list(range(runs))}, mixed(runs))]


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace, server: Server) -> bool:
    where = "the simulator (its own process)" if server.kind == "sim" else f"the real Hatchet at {server.url}"
    print(f"\nWaiting on runs that finish at random 1..{args.max_duration:.0f} s after the wait begins, a round every "
          f"{args.interval:g} s, on {where}; layout {args.layout}. Requests counted by each waiter's client.\n")
    head = (f"{'set':<10} {'runs':>5}  {'naive':>14}  {'poke':>14} {'ratio':>6}  {'deferrable':>14} {'ratio':>6}"
            f"  {'poke - deferrable':>17}")
    print(head)
    print("-" * len(head))
    met = True
    for name in SETS:
        if name not in results:
            continue
        r = results[name]
        base = r["naive"]["total"]

        cell = {role: f"{r[role]['total']:>6} ({len(r[role]['rounds']):>2} rounds)" for role in ROLES}
        ratios = {role: r[role]["total"] / base for role in ("poke", "deferrable")}
        difference = r["poke"]["total"] - r["deferrable"]["total"]
        print(f"{name:<10} {r['runs']:>5}  {cell['naive']}  {cell['poke']} {ratios['poke']:>6.1%}  "
              f"{cell['deferrable']} {ratios['deferrable']:>6.1%}  {difference:>+17}")
        goal = GOALS.get(name)
        if goal is not None and max(ratios.values()) > goal:
            met = False
        if not all(r[role]["ok"] for role in ROLES):
            print(f"  {name}: a waiter did not return every output")
            met = False
    print()
    for name in SETS:
        if name in results:
            r = results[name]
            print(f"{name}: poke by route {r['poke']['routes']}; deferrable {r['deferrable']['routes']}; "
                  f"max requests in one round: poke {max(n for _, n in r['poke']['rounds'])}, deferrable "
                  f"{max(n for _, n in r['deferrable']['rounds'])}; triggering took {r['triggered_in']} s")
    print("\ngoal: unrelated runs at 50% of the naive loop or less, a batch at 20% or less: "
          + ("met" if met else "NOT met"))
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=ROLES, help=argparse.SUPPRESS)
    parser.add_argument("--server", choices=("sim", "real"), default="sim")
    parser.add_argument("--layout", choices=("separate", "shared"), default="separate")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between rounds")
    parser.add_argument("--max-duration", type=float, default=12.0, help="runs finish 1..this s after the start")
    parser.add_argument("--trigger-rate", type=float, default=None,
                        help="runs triggered per second, to plan the start (default: sim 300, real 60)")
    parser.add_argument("--slack", type=float, default=4.0, help="seconds between the planned end of triggering "
                        "and the start of the wait")
    parser.add_argument("--token-env", default="HATCHET_CLIENT_TOKEN", help="the variable holding the API token")
    parser.add_argument("--worker-slots", type=int, default=0, help="start e2e/hatchet/worker.py with this many "
                        "slots for the tenant (real server)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if args.role:
        return role_main(args.role)
    if args.trigger_rate is None:
        args.trigger_rate = 300.0 if args.server == "sim" else 60.0
    log_dir = Path(tempfile.mkdtemp(prefix="wait-cost-logs-"))
    server = Server(args.server, args.token_env)
    worker = None
    try:
        if args.worker_slots:
            worker = Worker(server.token, args.worker_slots, log_dir / "worker.log")
            time.sleep(5)
        probe = asyncio.run(trigger_runs(server.config, ["bench|probe|-1"], [0.0], time.time(), "probe"))
        asyncio.run(wait_visible(server.config, probe[0]))
        rng = random.Random(args.seed)
        results: dict[str, dict[str, Any]] = {}
        for sets, keys in layout(args.layout, args.runs, uuid.uuid4().hex[:8]):
            print(f"waiting on {', '.join(sets)} ({len(keys)} runs) ...", flush=True)
            results.update(phase(server, sets, keys, args, rng, log_dir))
        met = report(results, args, server)
        if args.json:
            args.json.write_text(json.dumps({"server": server.kind, "layout": args.layout, "results": {
                name: {k: v for k, v in r.items()} for name, r in results.items()}}, indent=1))
        print(f"(waiter logs: {log_dir})")
        return 0 if met else 1
    finally:
        if worker is not None:
            worker.close()
        server.close()


if __name__ == "__main__":
    sys.exit(main())
