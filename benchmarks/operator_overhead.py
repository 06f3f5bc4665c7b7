"""Per-run overhead of ``HatchetRunWorkflowOperator.execute`` over a raw ``httpx`` POST of the same trigger request.

The simulator runs as a separate process (``python -m airflow_provider_hatchet.testing``), so its CPU does not
share this process's GIL; everything measured here is client-side cost plus one loopback round trip per request.
Each variant triggers ``--runs`` runs of ``demo-etl`` per round, the variants taking turns every ``--block``
runs (so load from other processes hits them alike); the median and the best of ``--rounds`` rounds are reported:

- ``raw httpx.Client``: the baseline. One keep-alive ``httpx.Client``, ``client.post(url, json=body,
  headers=auth)`` with exactly the body the operator sends (workflowName, input, the ``airflow_*`` identity
  metadata, return_only_id).
- ``raw httpx.post``: the module-level function, which builds (and closes) a client per call; for reference.
- ``raw httpx.Client per run``: a new client (so a new connection) per run, sharing one SSL context: what a task
  that posts by hand pays in a process that already has an SSL context. The fair baseline for ``per task``.
- ``hook.client.trigger_run``: the provider's client alone, one request per run.
- ``operator, steady state``: one operator instance whose ``execute(context)`` is called every time: the hook,
  connection and client are reused; each call still checks the workflow name (one GET) and triggers (one POST).
- ``operator, per task``: a fresh operator per run, as every Airflow task instance is: each ``execute`` also
  looks the connection up, decodes the token, builds a client and opens a connection (closed after the run).
- ``operator, per task+proc``: the same, after dropping the provider's per-process caches (the SSL context)
  before each run: Airflow 3 runs every task in its own process, which starts without them. Compared with
  ``raw httpx.post``, which also builds a client (and its SSL context) per call.
- ``what-if: ..., no check``: the two operator paths with ``HatchetHook.resolve_workflow`` patched to skip its
  GET (as a cached workflow-name check would), to show what that request costs. Not what the package does.

The context is the minimum ``execute`` reads: ``ti`` (dag_id, run_id, task_id, map_index, try_number=1,
stats_tags, an in-memory ``xcom_push``) and an in-memory ``task_state_store``. Airflow's own per-task costs
(the XCom and task-state API calls to the API server, task start-up) are therefore not included.

Usage: ``python benchmarks/operator_overhead.py [--runs 200] [--rounds 5] [--profile]``
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HOME = tempfile.TemporaryDirectory(prefix="airflow-hatchet-overhead-")
os.environ["AIRFLOW_HOME"] = _HOME.name
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.pop("AIRFLOW_CONFIG", None)

import httpx  # noqa: E402

from airflow_provider_hatchet.client import TriggerRequest, endpoints  # noqa: E402

WORKFLOW = "demo-etl"
INPUT = {"customer": "acme", "day": "2026-01-31", "tables": ["orders", "customers"]}
DAG_ID = "bench_operator_overhead"
RUN_ID = "manual__2026-01-31T00:00:00+00:00"
TARGET = 1.3


@dataclass
class TaskInstance:
    """The task-instance fields ``execute`` reads, with an in-memory XCom."""

    task_id: str
    dag_id: str = DAG_ID
    run_id: str = RUN_ID
    map_index: int = -1
    try_number: int = 1
    stats_tags: dict[str, str] = field(default_factory=dict)
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        """Keep the XCom in memory.

        :param key: the XCom key.
        :param value: the value.
        """
        self.xcoms[key] = value


class TaskStateStore(dict[str, Any]):
    """An in-memory stand-in for Airflow 3.3's ``task_state_store`` (``get``/``set``)."""

    def set(self, key: str, value: Any) -> None:
        """Store a value.

        :param key: the key.
        :param value: the value.
        """
        self[key] = value


def context_for(task_id: str) -> dict[str, Any]:
    """A minimal task context for ``execute``.

    :param task_id: the task id.
    """
    return {"ti": TaskInstance(task_id), "task_state_store": TaskStateStore()}


def identity(task_id: str) -> dict[str, str]:
    """The ``airflow_*`` metadata the operator stamps on a run of this task instance (first try).

    :param task_id: the task id.
    """
    return {
        "airflow_dag_id": DAG_ID,
        "airflow_run_id": RUN_ID,
        "airflow_task_id": task_id,
        "airflow_map_index": "-1",
        "airflow_try_number": "1",
        "airflow_ti": f"{DAG_ID}|{RUN_ID}|{task_id}|-1",
    }


def trigger_body(task_id: str) -> dict[str, Any]:
    """The request body the operator sends for this task instance.

    :param task_id: the task id.
    """
    return {"workflowName": WORKFLOW, "input": INPUT, "additionalMetadata": identity(task_id), "return_only_id": True}


def start_simulator(workdir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start the simulator CLI on a free loopback port and return the process and its info.

    :param workdir: where the info file and log go.
    """
    info_file = workdir / "simulator.json"
    log = (workdir / "simulator.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_hatchet.testing", "--port", "0", "--info-file", str(info_file),
         "--request-log", "5000"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the simulator exited with {proc.returncode}; see {workdir / 'simulator.log'}")
        if info_file.exists():
            info: dict[str, Any] = json.loads(info_file.read_text())
            try:
                httpx.get(f"{info['admin_url']}/runs/count", timeout=2).raise_for_status()
                return proc, info
            except httpx.HTTPError:
                pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the simulator did not start within 60 s")
        time.sleep(0.05)


@dataclass
class Variant:
    """One way of triggering runs.

    :param name: the label.
    :param run: triggers run number ``i``.
    :param setup: called (untimed) before each round with the number of runs.
    """

    name: str
    run: Callable[[int], object]
    setup: Callable[[int], None] = lambda n: None
    per_run: list[float] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)

    def block(self, start: int, stop: int) -> float:
        """Trigger runs ``start`` to ``stop - 1``; return the seconds it took.

        :param start: the first run number.
        :param stop: one past the last run number.
        """
        started = time.perf_counter()
        for i in range(start, stop):
            self.run(i)
        return time.perf_counter() - started

    @property
    def median(self) -> float:
        """The median seconds per run over the rounds."""
        return statistics.median(self.per_run)


def build_variants(info: dict[str, Any], raw: httpx.Client) -> list[Variant]:
    """The variants, sharing one simulator.

    :param info: the simulator's info file contents.
    :param raw: the baseline's keep-alive client.
    """
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

    url = f"{info['url']}/api/v1/stable/tenants/{info['tenant_id']}/workflow-runs/trigger"
    auth = {"Authorization": f"Bearer {info['token']}"}
    bodies = [trigger_body(f"t{i}") for i in range(10_000)]

    def raw_client(i: int) -> object:
        response = raw.post(url, json=bodies[i], headers=auth)
        response.raise_for_status()
        return response.json()["run"]["metadata"]["id"]

    def raw_post(i: int) -> object:
        response = httpx.post(url, json=bodies[i], headers=auth)
        response.raise_for_status()
        return response.json()["run"]["metadata"]["id"]

    shared_tls = httpx.create_ssl_context()

    def raw_client_per_run(i: int) -> object:
        with httpx.Client(verify=shared_tls) as client:
            response = client.post(url, json=bodies[i], headers=auth)
        response.raise_for_status()
        return response.json()["run"]["metadata"]["id"]

    hook = HatchetHook()

    def client_trigger(i: int) -> object:
        return hook.client.send(endpoints.trigger(TriggerRequest(WORKFLOW, INPUT, identity(f"t{i}"))))

    steady_op = HatchetRunWorkflowOperator(task_id="t", workflow_name=WORKFLOW, input=INPUT)

    def steady(i: int) -> object:
        return execute(steady_op, context_for(f"t{i}"))

    def per_task(name: str, *, fresh_process: bool = False, name_check: bool = True) -> Variant:
        operators: list[HatchetRunWorkflowOperator] = []

        def setup(n: int) -> None:
            operators[:] = [HatchetRunWorkflowOperator(task_id=f"t{i}", workflow_name=WORKFLOW, input=INPUT)
                            for i in range(n)]

        def run(i: int) -> object:
            if fresh_process:
                forget_process_caches()
            try:
                return execute(operators[i], context_for(f"t{i}"))
            finally:
                operators[i].hook.close()

        return Variant(name, run if name_check else without_name_check(run), setup)

    return [
        Variant("raw httpx.Client", raw_client),
        Variant("raw httpx.post", raw_post),
        Variant("raw httpx.Client per run", raw_client_per_run),
        Variant("hook.client.trigger_run", client_trigger),
        Variant("operator, steady state", steady),
        per_task("operator, per task"),
        per_task("operator, per task+proc", fresh_process=True),
        Variant("what-if: steady, no check", without_name_check(steady)),
        per_task("what-if: per task, no check", name_check=False),
    ]


def without_name_check(run: Callable[[int], object]) -> Callable[[int], object]:
    """``run`` with ``HatchetHook.resolve_workflow`` answering without its GET (a what-if; the package checks).

    :param run: the variant's run function.
    """
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook

    def patched(i: int) -> object:
        original = HatchetHook.resolve_workflow
        HatchetHook.resolve_workflow = HatchetHook.full_workflow_name  # type: ignore[method-assign]
        try:
            return run(i)
        finally:
            HatchetHook.resolve_workflow = original  # type: ignore[method-assign]

    return patched

def execute(operator: Any, context: dict[str, Any]) -> object:
    """Call ``execute`` as Airflow's task runner does (inside the ExecutorSafeguard's tracker, so no warning).

    :param operator: the operator.
    :param context: the task context.
    """
    from airflow.sdk.bases.operator import ExecutorSafeguard

    token = ExecutorSafeguard.tracker.set(operator)
    try:
        return operator.execute(context)
    finally:
        ExecutorSafeguard.tracker.reset(token)


def forget_process_caches() -> None:
    """Drop the provider's per-process caches (the SSL context): a new Airflow 3 task process starts without them."""
    from airflow_provider_hatchet.client import aio

    cached = getattr(aio, "ssl_context", None)
    if cached is not None and hasattr(cached, "cache_clear"):
        cached.cache_clear()


def measure_round(variants: list[Variant], n: int, block: int) -> None:
    """One round: ``n`` runs per variant, the variants taking turns every ``block`` runs so that a busy moment
    on the host hits all of them alike.

    :param variants: the variants.
    :param n: runs per variant.
    :param block: runs per turn.
    """
    for variant in variants:
        variant.setup(n)
    totals = dict.fromkeys(range(len(variants)), 0.0)
    for start in range(0, n, block):
        for k, variant in enumerate(variants):
            totals[k] += variant.block(start, min(start + block, n))
    for k, variant in enumerate(variants):
        variant.per_run.append(totals[k] / n)


def count_requests(admin: httpx.Client, variant: Variant, n: int) -> None:
    """Run one untimed round and record the requests it made, by route.

    :param admin: a client for the simulator's admin API.
    :param variant: the variant.
    :param n: the number of runs.
    """
    admin.delete("/requests").raise_for_status()
    variant.setup(n)
    for i in range(n):
        variant.run(i)
    records = admin.get("/requests", params={"limit": 10_000}).json()["requests"]
    counts: dict[str, int] = {}
    for record in records:
        route = str(record.get("route"))
        counts[route] = counts.get(route, 0) + 1
    variant.requests = counts


def check_same_body(admin: httpx.Client, variants: list[Variant]) -> bool:
    """Whether the baseline and the operator sent byte-for-byte equal JSON (after parsing) for run 0.

    :param admin: a client for the simulator's admin API.
    :param variants: the variants; the first is the baseline, the last a per-task operator.
    """
    bodies = []
    for variant in (variants[0], variants[-1]):
        admin.delete("/requests").raise_for_status()
        variant.setup(1)
        variant.run(0)
        records = admin.get("/requests", params={"limit": 100}).json()["requests"]
        triggers = [r for r in records if r.get("route") == "trigger"]
        bodies.append(triggers[-1].get("body") if triggers else None)
    return bodies[0] is not None and bodies[0] == bodies[1]


def profile(variant: Variant, n: int, top: int) -> str:
    """cProfile one round of a variant; return the top functions by own and by cumulative time.

    :param variant: the variant.
    :param n: the number of runs.
    :param top: how many functions to list.
    """
    variant.setup(n)
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(n):
        variant.run(i)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures.

    :param argv: command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=200, help="runs per variant per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is reported")
    parser.add_argument("--warmup", type=int, default=20, help="untimed runs per variant first")
    parser.add_argument("--block", type=int, default=10, help="runs per variant before the next one takes a turn")
    parser.add_argument("--profile", action="store_true", help="also cProfile the per-task operator path")
    parser.add_argument("--top", type=int, default=30, help="functions listed per profile table")
    parser.add_argument("--task-logs", action="store_true",
                        help="print the operator's log lines instead of formatting them as JSON to /dev/null")
    args = parser.parse_args(argv)

    workdir = Path(_HOME.name)
    devnull = open(os.devnull, "wb")  # noqa: SIM115
    proc, info = start_simulator(workdir)
    os.environ["AIRFLOW_CONN_HATCHET_DEFAULT"] = info["airflow_conn_json"]
    try:
        if not args.task_logs:
            # As in a task process: JSON log lines, INFO and up; here they go to /dev/null instead of the supervisor.
            from airflow.sdk.log import configure_logging

            configure_logging(json_output=True, output=devnull)
        with httpx.Client() as raw, httpx.Client(base_url=info["admin_url"]) as admin:
            variants = build_variants(info, raw)
            same = check_same_body(admin, variants)
            for variant in variants:
                count_requests(admin, variant, args.warmup)
            for _ in range(args.rounds):
                measure_round(variants, args.runs, args.block)
            report(variants, args, same)
            if args.profile:
                for variant in (v for v in variants if v.name.startswith("operator")):
                    print(f"\ncProfile of '{variant.name}' ({args.runs} runs):")
                    print(profile(variant, args.runs, args.top))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        _HOME.cleanup()
    return 0


def report(variants: list[Variant], args: argparse.Namespace, same_body: bool) -> None:
    """Print the per-run times and the ratios to the baseline.

    :param variants: the measured variants (the first is the baseline).
    :param args: the parsed arguments.
    :param same_body: whether the operator's trigger body equals the baseline's.
    """
    from importlib.metadata import version

    base, base_min = variants[0].median, min(variants[0].per_run)
    print(f"{args.runs} runs x {args.rounds} rounds per variant, simulator in its own process; "
          f"Python {sys.version.split()[0]}, Airflow {version('apache-airflow')}, httpx {version('httpx')}")
    print(f"operator's trigger body == baseline body: {'yes' if same_body else 'NO'}")
    print("ms/run: median and min over the rounds; x raw: median/median and min/min (min is steadier on a busy host)")
    print(f"{'variant':<28} {'median':>7} {'min':>7} {'max':>7} {'x raw':>6} {'(min)':>6}  requests per run")
    for variant in variants:
        per = ", ".join(f"{route} {count / args.warmup:g}" for route, count in sorted(variant.requests.items()))
        low = min(variant.per_run)
        print(f"{variant.name:<28} {variant.median * 1e3:7.3f} {low * 1e3:7.3f} {max(variant.per_run) * 1e3:7.3f} "
              f"{variant.median / base:5.2f}x {low / base_min:5.2f}x  {per}")

    def ratio(name: str) -> str:
        variant = by_name[name]
        return (f"{variant.median / base:5.2f}x (min {min(variant.per_run) / base_min:.2f}x), "
                f"{(variant.median - base) * 1e3:+.2f} ms per run")

    by_name = {v.name: v for v in variants}
    fresh, post = by_name["operator, per task+proc"], by_name["raw httpx.post"]
    print()
    print(f"Overhead ratio vs the keep-alive raw POST (target {TARGET}x):")
    print(f"  operator, per task (new operator, hook and client per run): {ratio('operator, per task')}")
    fresh_raw = by_name["raw httpx.Client per run"]

    def vs_fresh_raw(name: str) -> str:
        variant = by_name[name]
        return (f"{variant.median / fresh_raw.median:.2f}x "
                f"(min {min(variant.per_run) / min(fresh_raw.per_run):.2f}x)")

    print(f"    vs a raw client per run (a new connection each time, as a task pays): "
          f"{vs_fresh_raw('operator, per task')}")
    print(f"  operator, steady state (operator, hook and client reused):  {ratio('operator, steady state')}")
    print(f"  what-if, per task without the workflow-name GET:             {ratio('what-if: per task, no check')}")
    print(f"    vs a raw client per run: {vs_fresh_raw('what-if: per task, no check')}")
    print(f"  what-if, steady state without the workflow-name GET:         {ratio('what-if: steady, no check')}")
    print("The operator checks the workflow name before its first trigger; the hook remembers a confirmed name "
          "for a while in the process, so later runs send only the trigger (see 'requests per run'). The "
          "what-ifs patch the check out entirely.")
    print(f"A fresh process per task (Airflow 3 runs each task in its own process, so the SSL context is rebuilt): "
          f"{fresh.median * 1e3:.1f} ms per run, {fresh.median / post.median:.2f}x a raw httpx.post (which also "
          f"builds a client and an SSL context per call).")

if __name__ == "__main__":
    sys.exit(main())
