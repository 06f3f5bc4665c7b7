"""The crash scenarios of ``make e2e-prod``: each breaks one part of the production-shaped stack while the
provider works, then checks the outcome in Hatchet (runs per item, ids in order, nothing triggered twice) and in
Airflow (states, tries, XComs).

The DAGs are in ``e2e/prod_dags/prod_crash_dags.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow_api import AirflowAPI
from hatchet_view import RealHatchet, count_runs
from prod_services import WORKERS, ProdServices
from stack import Stack

BULK_ITEMS = 2000
DEFERRED_TASKS = 50
# The bulk task is killed once Hatchet lists this many of its runs (and not all of them).
KILL_AFTER_RUNS = 100
API_OUTAGE_S = 30
WAIT_S = 600.0
POLL = 1.0
FINISHED = ("success", "failed", "upstream_failed")
DAGS = ("prod_crash_bulk", "prod_crash_owner", "prod_crash_triggerer", "prod_crash_api_outage")


@dataclass
class Crash:
    """What the scenarios share.

    :param stack: the Airflow stack
    :param services: Postgres, Redis and the Celery workers
    :param api: Airflow's REST API
    :param hatchet: the real Hatchet's runs
    :param hatchet_state: ``build/hatchet/state.json`` (the pids of the Hatchet processes)
    """

    stack: Stack
    services: ProdServices
    api: AirflowAPI
    hatchet: RealHatchet
    hatchet_state: Path

    def trigger(self, dag_id: str, release_in: float | None = None) -> str:
        """Start a DAG run now; with ``release_in``, its runs end that many seconds from now.

        :param dag_id: the DAG
        :param release_in: seconds until the runs end
        :return: the DAG run id
        """
        conf = {} if release_in is None else {"release_at": time.time() + release_in}
        return self.api.trigger(dag_id, conf, datetime.now(timezone.utc).isoformat())

    def wait_for(self, what: str, probe: Callable[[], Any], timeout: float = WAIT_S) -> Any:
        """Poll ``probe`` until it returns something truthy.

        :param what: for the error
        :param probe: the condition
        :param timeout: seconds
        :return: the probe's value
        """
        deadline = time.monotonic() + timeout
        while not (value := probe()):
            self.stack.check_alive()
            assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
            time.sleep(POLL)
        return value

    def task(self, dag_id: str, run_id: str, task: str) -> dict[str, Any]:
        """One task instance (``task[i]`` for a mapped one).

        :param dag_id: DAG id
        :param run_id: DAG run id
        :param task: task key
        :return: the task instance
        """
        return self.api.task_instances(dag_id, run_id).get(task, {})

    def finished(self, dag_id: str, run_id: str, timeout: float = WAIT_S) -> dict[str, dict[str, Any]]:
        """Wait until the DAG run has finished, then return its task instances.

        :param dag_id: DAG id
        :param run_id: DAG run id
        :param timeout: seconds
        :return: task instances by key
        """
        self.wait_for(f"{dag_id} to finish",
                      lambda: self.api.dag_run(dag_id, run_id)["state"] in ("success", "failed"), timeout)
        return self.api.task_instances(dag_id, run_id)

    def runs_of(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The Hatchet runs a DAG run triggered (list rows).

        :param dag_id: DAG id
        :param run_id: DAG run id
        :return: the rows
        """
        return self.hatchet.list_runs({"airflow_run_id": run_id})

    def kill_worker_of(self, dag_id: str, run_id: str, task: str) -> dict[str, Any]:
        """``kill -9`` the Celery worker running a task, with everything under it.

        :param dag_id: DAG id
        :param run_id: DAG run id
        :param task: task key
        :return: which worker, and the pids killed
        """
        ti = self.task(dag_id, run_id, task)
        assert ti.get("state") == "running" and ti.get("pid"), f"{task} is not running in a worker: {ti}"
        worker = self.services.worker_running(int(ti["pid"]))
        return {"worker": worker.name, "killed_pids": len(self.services.kill_worker(worker))}

    def restart_missing_workers(self) -> None:
        """Start again the workers a scenario killed."""
        running = {p.name for p in self.stack.procs if p.popen.poll() is None}
        for name in WORKERS:
            if name not in running:
                self.services.start_worker(name)


def _states(tis: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {key: ti["state"] for key, ti in tis.items()}


def _meta(row: dict[str, Any], key: str) -> str:
    return str((row.get("additionalMetadata") or {}).get(key))


def bulk_worker_kill(c: Crash) -> dict[str, Any]:
    """Kill the worker running a 2,000-run bulk task mid-batch; the retry on the other worker completes it.

    :param c: the stack
    :return: counts
    """
    dag_id, task = "prod_crash_bulk", "trigger_bulk"
    run_id = c.trigger(dag_id)
    key = {"airflow_ti": f"{dag_id}|{run_id}|{task}|-1"}
    before = c.wait_for(f"Hatchet to list {KILL_AFTER_RUNS} of the batch's runs",
                        lambda: (n := count_runs(c.hatchet, key)) >= KILL_AFTER_RUNS and n)
    assert before < BULK_ITEMS, f"the batch was complete ({before} runs) before the worker could be killed"
    killed = c.kill_worker_of(dag_id, run_id, task)
    at_kill = count_runs(c.hatchet, key)
    started = time.monotonic()
    tis = c.finished(dag_id, run_id)
    recovery = round(time.monotonic() - started, 1)
    c.restart_missing_workers()
    ti = tis[task]
    assert ti["state"] == "success" and ti["try_number"] >= 2, f"{task} ended {ti['state']}, try {ti['try_number']}"
    rows = c.hatchet.list_runs(key)
    per_item = Counter(_meta(row, "airflow_batch_index") for row in rows)
    per_try = Counter(_meta(row, "airflow_try_number") for row in rows)
    missing = [i for i in range(BULK_ITEMS) if per_item[str(i)] == 0]
    twice = {i: n for i, n in per_item.items() if n > 1}
    assert not missing and not twice and len(rows) == BULK_ITEMS, (
        f"{len(rows)} runs for {BULK_ITEMS} items; missing {missing[:10]}, "
        f"more than one run: {dict(list(twice.items())[:10])}")
    by_index = {int(_meta(row, "airflow_batch_index")): row["metadata"]["id"] for row in rows}
    ids = c.api.xcom(dag_id, run_id, task, "return_value")
    assert ids == [by_index[i] for i in range(BULK_ITEMS)], "XCom return_value is not the runs in item order"
    return {**killed, "runs_listed_before_kill": before, "runs_at_kill": at_kill, "runs": len(rows),
            "runs_per_item": dict(Counter(per_item.values())), "runs_by_try": dict(per_try),
            "ids_in_item_order": True, "try_number": ti["try_number"], "seconds_to_recover": recovery}


def owner_kill(c: Crash) -> dict[str, Any]:
    """Kill the worker while a single operator waits on its run there; the retry re-attaches to that run.

    :param c: the stack
    :return: what was seen
    """
    dag_id, task = "prod_crash_owner", "wait_in_worker"
    run_id = c.trigger(dag_id, release_in=90)
    key = {"airflow_ti": f"{dag_id}|{run_id}|{task}|-1"}
    c.wait_for("the operator's run to be listed", lambda: count_runs(c.hatchet, key) >= 1)
    c.wait_for(f"{task} waiting in its worker", lambda: c.task(dag_id, run_id, task).get("state") == "running")
    first = c.hatchet.list_runs(key)[0]["metadata"]["id"]
    status_at_kill = c.hatchet.status(first)
    assert status_at_kill in ("QUEUED", "RUNNING"), f"the run was already {status_at_kill} at the kill"
    killed = c.kill_worker_of(dag_id, run_id, task)
    tis = c.finished(dag_id, run_id)
    c.restart_missing_workers()
    ti = tis[task]
    assert ti["state"] == "success" and ti["try_number"] >= 2, f"{task} ended {ti['state']}, try {ti['try_number']}"
    rows = c.hatchet.list_runs(key)
    assert [row["metadata"]["id"] for row in rows] == [first], (
        f"expected only the first try's run {first}, Hatchet lists {[row['metadata']['id'] for row in rows]}")
    xcom = c.api.xcom(dag_id, run_id, task, "return_value")
    assert xcom == first, f"XCom return_value {xcom!r}, expected the first try's run {first}"
    return {**killed, "run": first, "status_at_kill": status_at_kill, "runs": len(rows),
            "try_number": ti["try_number"], "final_status": c.hatchet.status(first)}


def triggerer_restart(c: Crash) -> dict[str, Any]:
    """Stop the triggerer while 50 deferred tasks wait on their runs, start it again; all 50 resume once.

    :param c: the stack
    :return: counts
    """
    dag_id, task = "prod_crash_triggerer", "wait_deferred"
    release_in = 150.0  # all 50 were deferred 60 s after the trigger on two cores
    released = time.monotonic() + release_in
    run_id = c.trigger(dag_id, release_in=release_in)

    def all_deferred() -> bool:
        tis = c.api.task_instances(dag_id, run_id)
        states = Counter(ti["state"] for ti in tis.values())
        assert not states.keys() & set(FINISHED), f"tasks finished before the triggerer stopped: {states}"
        return states.get("deferred", 0) == DEFERRED_TASKS

    c.wait_for(f"{DEFERRED_TASKS} deferred tasks", all_deferred, timeout=release_in - 40)
    waiting = Counter(c.hatchet.status(row["metadata"]["id"]) for row in c.runs_of(dag_id, run_id))
    c.stack.stop_process("triggerer")
    stopped_at = time.monotonic()
    time.sleep(10)
    c.stack.start_process("triggerer")
    down_s = round(time.monotonic() - stopped_at, 1)
    assert time.monotonic() < released, "the runs ended before the triggerer came back"
    tis = c.finished(dag_id, run_id)
    states = Counter(ti["state"] for ti in tis.values())
    tries = Counter(ti["try_number"] for ti in tis.values())
    assert states == {"success": DEFERRED_TASKS} and tries == {1: DEFERRED_TASKS}, (
        f"tasks {dict(states)}, tries {dict(tries)}")
    rows = c.runs_of(dag_id, run_id)
    per_task = Counter(_meta(row, "airflow_map_index") for row in rows)
    assert len(rows) == DEFERRED_TASKS and set(per_task.values()) == {1}, f"runs per task instance {per_task}"
    by_index = {int(_meta(row, "airflow_map_index")): row["metadata"]["id"] for row in rows}
    wrong = [i for i in range(DEFERRED_TASKS) if c.api.xcom(dag_id, run_id, task, "return_value", i) != by_index[i]]
    assert not wrong, f"XCom return_value is not the task's run for map indexes {wrong}"
    return {"deferred_when_stopped": DEFERRED_TASKS, "runs_when_stopped": dict(waiting),
            "triggerer_down_s": down_s, "resumed_and_succeeded": states["success"], "runs": len(rows),
            "runs_per_task": dict(Counter(per_task.values()))}


def api_outage(c: Crash) -> dict[str, Any]:
    """Stop the Hatchet API for 30 s while a deferred task and a poking sensor wait; both ride it out.

    :param c: the stack
    :return: what was seen
    """
    dag_id = "prod_crash_api_outage"
    run_id = c.trigger(dag_id, release_in=120)

    def waiting() -> bool:
        tis = c.api.task_instances(dag_id, run_id)
        assert not {tis[t]["state"] for t in ("wait_deferred", "poke")} & set(FINISHED), _states(tis)
        return tis["wait_deferred"]["state"] == "deferred" and tis["poke"]["state"] == "running"

    c.wait_for("a deferred task and a poking sensor", waiting, timeout=70)
    argv, env, cwd = stop_hatchet_api(c.hatchet_state)
    stopped = time.monotonic()
    refused = _refused(c.hatchet)
    time.sleep(API_OUTAGE_S)
    start_hatchet_api(c.hatchet_state, argv, env, cwd)
    down_s = round(time.monotonic() - stopped, 1)
    c.wait_for("the Hatchet API back", lambda: not _refused(c.hatchet), timeout=60)
    tis = c.finished(dag_id, run_id)
    states, tries = _states(tis), {k: ti["try_number"] for k, ti in tis.items()}
    assert set(states.values()) == {"success"} and set(tries.values()) == {1}, f"tasks {states}, tries {tries}"
    rows = c.runs_of(dag_id, run_id)
    assert len(rows) == 2, f"expected 2 runs, Hatchet lists {len(rows)}"
    return {"api_down_s": down_s, "refused_while_down": refused, "tasks": states, "tries": tries,
            "runs": len(rows)}


def _refused(hatchet: RealHatchet) -> bool:
    try:
        hatchet.http.get("/api/ready", timeout=5)
    except Exception:
        return True
    return False


def stop_hatchet_api(state_file: Path) -> tuple[list[str], dict[str, str], str]:
    """Kill the Hatchet API that ``real_stack.py`` started, remembering how to start it again.

    :param state_file: ``build/hatchet/state.json``
    :return: its command line, environment and working folder
    """
    pid = json.loads(state_file.read_text())["pids"]["api"]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
    env = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if item)
    cwd = os.readlink(f"/proc/{pid}/cwd")
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower():
        assert time.monotonic() < deadline, f"the Hatchet API (pid {pid}) did not die"
        time.sleep(0.1)
    return argv, env, cwd


def start_hatchet_api(state_file: Path, argv: list[str], env: dict[str, str], cwd: str) -> None:
    """Start the Hatchet API again, and record its pid where ``real_stack.py down`` finds it.

    :param state_file: ``build/hatchet/state.json``
    :param argv: its command line
    :param env: its environment
    :param cwd: its working folder
    """
    with (state_file.parent / "logs" / "api.log").open("ab") as out:
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                 cwd=cwd, start_new_session=True)
    state = json.loads(state_file.read_text())
    state["pids"]["api"] = popen.pid
    state_file.write_text(json.dumps(state, indent=2))


SCENARIOS: dict[str, tuple[str, Callable[[Crash], dict[str, Any]]]] = {
    "bulk": (f"crash: kill -9 the Celery worker mid-bulk ({BULK_ITEMS} runs); one run per item, ids in order",
             bulk_worker_kill),
    "triggerer": (f"crash: restart the triggerer under {DEFERRED_TASKS} deferred tasks; all resume once",
                  triggerer_restart),
    "api": (f"crash: Hatchet API down {API_OUTAGE_S}s under a deferred wait and a poking sensor; both succeed",
            api_outage),
    "owner": ("crash: kill -9 the Celery worker of a waiting operator; the retry re-attaches to its run",
              owner_kill),
}
