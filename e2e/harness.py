"""End-to-end run: simulator + Airflow 3.3 processes, the connection form in Chromium, DAG runs, cancellation.

Run through ``e2e/run.sh`` (which prepares the venv and Chromium). Exits non-zero if any check fails; every
process started here is stopped on the way out.
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenarios
import watchers
from airflow_api import AirflowAPI
from scenarios import CancelCheck, DagCheck, ExpectedRun, RerunCheck, SimRuns
from stack import Stack, tail

REPO = Path(__file__).resolve().parent.parent
# demo-etl runs 0.5 s; a deferrable operator that finds its run already finished does not defer, so the e2e
# run gives it time to be seen running: the deferral checks must not depend on the machine's speed. Long enough,
# too, that a trigger does not fire before the scheduler has drained the executor's event for the deferring try:
# Airflow 3.3 then fails the task with "finished with state success, but the task instance's state attribute is
# queued" (apache/airflow#67287, #72716); a busy two-core scheduler was seen 6 s behind.
DEMO_ETL_SECONDS = 10.0
RUN_TIMEOUT = 300.0
PARSE_TIMEOUT = 120.0
POLL = 1.0


@dataclass
class Report:
    """Timings, check results and notes of one run, written to ``<run>/report.json``."""

    phases: dict[str, float] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase.

        :param name: phase name
        """
        start = time.monotonic()
        print(f"[e2e] >>> {name}", flush=True)
        try:
            yield
        finally:
            self.phases[name] = round(time.monotonic() - start, 1)
            print(f"[e2e] <<< {name} ({self.phases[name]}s)", flush=True)

    def check(self, name: str, func: Callable[[], Any]) -> bool:
        """Run one check, recording pass/fail without stopping the run.

        :param name: check name
        :param func: raises on failure; may return detail for the report
        :return: whether it passed
        """
        start = time.monotonic()
        try:
            detail = func()
        except Exception as exc:
            self.checks.append({"name": name, "ok": False, "error": f"{type(exc).__name__}: {exc}",
                                "seconds": round(time.monotonic() - start, 1)})
            print(f"[e2e] FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
            if not isinstance(exc, AssertionError):
                traceback.print_exc()
            return False
        self.checks.append({"name": name, "ok": True, "detail": detail, "seconds": round(time.monotonic() - start, 1)})
        print(f"[e2e] ok   {name} {json.dumps(detail, default=str)[:200] if detail is not None else ''}", flush=True)
        return True

    def skip(self, name: str, why: str) -> None:
        """Record a check that could not run (counted as failed: something before it went wrong).

        :param name: check name
        :param why: what went wrong before
        """
        self.checks.append({"name": name, "ok": False, "error": f"not run: {why}"})
        print(f"[e2e] FAIL {name}: not run: {why}", flush=True)

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Checks that failed."""
        return [c for c in self.checks if not c["ok"]]


class Simulator:
    """The simulator's admin API (``/_simulator``): runs with their request bodies, reset, workflows."""

    def __init__(self, info: dict[str, str]) -> None:
        self.info = info
        self.http = httpx.Client(base_url=f"{info['url']}/_simulator", timeout=15)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send an admin request and return its JSON, raising on any error status.

        :param method: HTTP method
        :param path: path below ``/_simulator``
        :param kwargs: passed to httpx
        :return: the JSON answer
        """
        response = self.http.request(method, path, **kwargs)
        if response.is_error:
            raise AssertionError(f"simulator {method} {path} -> {response.status_code}: {response.text[:500]}")
        return response.json()

    def runs(self) -> list[dict[str, Any]]:
        """Every run the simulator holds, with the trigger request body it was created from."""
        body = self.call("GET", "/runs", params={"limit": 100_000})
        runs: list[dict[str, Any]] = body["runs"]
        assert len(runs) == body["count"], f"simulator listed {len(runs)} of {body['count']} runs"
        return runs

    def status(self, run_id: str) -> str:
        """One run's status.

        :param run_id: run id
        :return: e.g. ``RUNNING``
        """
        return str(self.call("GET", f"/runs/{run_id}")["status"])


def identity(dag_id: str, dag_run_id: str, run: ExpectedRun, try_number: int = 1) -> dict[str, str]:
    """The Airflow identity metadata the operators must stamp on a run.

    :param dag_id: DAG id
    :param dag_run_id: DAG run id
    :param run: the expected run
    :param try_number: the try that triggers it
    :return: metadata
    """
    metadata = {
        "airflow_dag_id": dag_id,
        "airflow_run_id": dag_run_id,
        "airflow_task_id": run.task_id,
        "airflow_map_index": str(run.map_index),
        "airflow_try_number": str(try_number),
        "airflow_ti": f"{dag_id}|{dag_run_id}|{run.task_id}|{run.map_index}",
    }
    if run.batch_index is not None:
        metadata["airflow_batch_index"] = str(run.batch_index)
    return metadata


def group_runs(runs: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Group simulator runs by the (DAG id, DAG run id) in their metadata (``("", "")`` for none).

    :param runs: the simulator's runs
    :return: groups
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        metadata = run["body"].get("additionalMetadata") or {}
        key = (str(metadata.get("airflow_dag_id", "")), str(metadata.get("airflow_run_id", "")))
        groups.setdefault(key, []).append(run)
    return groups


def sim_runs(info: dict[str, str], dag_id: str, dag_run_id: str, received: list[dict[str, Any]],
             expected: tuple[ExpectedRun, ...], unseen: frozenset[str] = frozenset()) -> tuple[SimRuns, list[str]]:
    """Match the runs the simulator received from one DAG run against the expected ones.

    :param info: simulator info (url, tenant_id)
    :param dag_id: DAG id
    :param dag_run_id: DAG run id
    :param received: the simulator's runs carrying this DAG run's identity
    :param expected: what must have been received
    :param unseen: request fields the server does not show, left unchecked (a real server's ``priority``)
    :return: the runs by key, and every difference found
    """
    problems: list[str] = []
    by_key: dict[tuple[str, int, int | None], dict[str, Any]] = {}
    for run in received:
        metadata = run["body"].get("additionalMetadata") or {}
        batch = metadata.get("airflow_batch_index")
        key = (str(metadata.get("airflow_task_id")), int(metadata.get("airflow_map_index", -99)),
               None if batch is None else int(batch))
        if key in by_key:
            problems.append(f"two runs for {key}: {by_key[key]['id']} and {run['id']}")
        by_key[key] = run
    wanted = {run.key: run for run in expected}
    if missing := sorted(wanted.keys() - by_key.keys(), key=str):
        problems.append(f"no run received for (task, map index, batch index) {missing}")
    if extra := sorted(by_key.keys() - wanted.keys(), key=str):
        problems.append(f"unexpected runs {[(k, by_key[k]['workflow_name'], by_key[k]['body']) for k in extra]}")
    for key in sorted(wanted.keys() & by_key.keys(), key=str):
        want_run, got_run = wanted[key], by_key[key]
        want = {"workflowName": want_run.workflow, "input": want_run.input, "priority": want_run.priority,
                "additionalMetadata": {**want_run.metadata, **identity(dag_id, dag_run_id, want_run)}}
        want = {k: v for k, v in want.items() if k not in unseen}
        got = {k: got_run["body"].get(k) for k in want}
        if got != want:
            diff = {k: {"sent": got[k], "expected": want[k]} for k in want if got[k] != want[k]}
            problems.append(f"run {got_run['id']} of {key} differs: {json.dumps(diff)}")
        if got_run["status"] != want_run.status:
            problems.append(f"run {got_run['id']} of {key} is {got_run['status']}, expected {want_run.status}")
    return SimRuns(info["url"], info["tenant_id"], dag_id, dag_run_id, by_key), problems


def ui_phase(stack: Stack, report: Report, args: argparse.Namespace) -> None:
    """Create the Hatchet connections through the UI and press Test on each.

    :param stack: the running stack
    :param report: where results go
    :param args: CLI options (form expectations, artifact folder)
    """
    import ui

    spec = ui.FormSpec()
    if args.expect_label:
        overrides = dict(item.split("=", 1) for item in args.expect_label)
        spec = replace(
            spec,
            standard_labels={k: overrides.get(k, v) for k, v in spec.standard_labels.items()},
            extra_labels={k: overrides.get(k, v) for k, v in spec.extra_labels.items()},
        )
    sim = stack.simulator
    good = ui.ConnValues("hatchet_default", sim["url"], sim["token"], {"tenant_id": sim["tenant_id"]})
    bad = ui.ConnValues("hatchet_wrong_token", sim["url"], sim["token"][:-4] + "XXXX", {"tenant_id": sim["tenant_id"]})
    shots = stack.run_dir / "screenshots"
    with ui.browser(stack.run_dir / "chromium-profile") as context:
        page = context.new_page()

        def guarded(name: str, func: Callable[[], Any]) -> bool:
            ok = report.check(name, func)
            if not ok:
                shots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shots / f"failed-{re.sub(r'[^A-Za-z0-9.-]+', '-', name)}.png"),
                                full_page=True)
            return ok

        if not guarded("ui: sign in", lambda: ui.login(page, stack.api_url, stack.username, stack.password)):
            return
        every = ui.every_field("hatchet_every_field", sim["url"], sim["token"], sim["tenant_id"])

        def fill_every_field() -> dict[str, Any]:
            shown = ui.add_connection(page, spec, every, shots / "hatchet-connection.png")
            settings = ui.hook_reads(stack.env, every.conn_id)
            assert settings == ui.expected_settings(every), f"the hook reads {settings}"
            return {"shown": shown, "hook reads": settings}

        if not guarded("ui: add connection form (labels, hidden fields), every extra filled, read by the hook as typed",
                       fill_every_field):
            return
        if not guarded("ui: add the working connection", lambda: ui.add_connection(page, spec, good, None)):
            return
        if args.docs_screenshot:
            ui.side_by_side(context, [shots / "hatchet-connection-standard.png",
                                      shots / "hatchet-connection-extra.png"], args.docs_screenshot)

        def test_good() -> dict[str, Any]:
            outcome = ui.test_connection(page, good.conn_id)
            if outcome.workaround:
                report.notes.append(outcome.workaround)
            assert outcome.ok, f"expected success, toast said: {outcome.toast!r}"
            return {"toast": outcome.toast, "workaround": outcome.workaround}

        def test_bad() -> dict[str, Any]:
            ui.add_connection(page, spec, bad, None)
            outcome = ui.test_connection(page, bad.conn_id)
            assert not outcome.ok, f"a wrong token was reported as working: {outcome.toast!r}"
            assert re.search(args.failure_pattern, outcome.toast), (
                f"failure toast {outcome.toast!r} does not explain the problem (/{args.failure_pattern}/)"
            )
            return {"toast": outcome.toast}

        guarded("ui: Test Connection succeeds with the simulator token", test_good)
        guarded("ui: Test Connection fails clearly with a wrong token", test_bad)


TRIGGER_STARTED = re.compile(r"trigger \S+ \(ID \d+\) starting")
TRIGGER_FIRED = re.compile(r'"Trigger fired event".*?"result":"TriggerEvent<[^"]*?\'status\': \'(\w+)\'')
DEFERRED_LINE = "Pausing task as DEFERRED"
RESUMED_LINE = "::group::Pre Execute"


def task_logs(stack: Stack, dag_id: str, run_id: str, task: str, try_number: int) -> tuple[str, str]:
    """Return a task attempt's own log and the log its trigger wrote in the triggerer process.

    :param stack: the stack (log folder)
    :param dag_id: DAG id
    :param run_id: DAG run id
    :param task: task id (``task[i]`` for a mapped instance)
    :param try_number: attempt
    :return: (task log, triggerer log of that attempt)
    """
    task_id, _, index = task.partition("[")
    folder = stack.logs / "tasks" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    if index:
        folder = folder / f"map_index={index.rstrip(']')}"
    task_log = folder / f"attempt={try_number}.log"
    triggers = sorted(folder.glob(f"attempt={try_number}.log.trigger.*.log"))
    return (task_log.read_text(errors="replace") if task_log.exists() else "",
            "\n".join(f.read_text(errors="replace") for f in triggers))


def task_error(stack: Stack, dag_id: str, run_id: str, task: str, try_number: int) -> str:
    """Return the exception a failed task attempt logged last, or ``""``.

    :param stack: the stack (log folder)
    :param dag_id: DAG id
    :param run_id: DAG run id
    :param task: task id (``task[i]`` for a mapped instance)
    :param try_number: attempt
    :return: ``ExceptionType: message``
    """
    for line in reversed(task_logs(stack, dag_id, run_id, task, try_number)[0].splitlines()):
        if '"level":"error"' not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        details = event.get("error_detail") or [{}]
        return f"{details[0].get('exc_type', '')}: {details[0].get('exc_value', event.get('event'))}"[:600]
    return ""


def deferral_evidence(stack: Stack, api: AirflowAPI, dag_id: str, run_id: str, task: str) -> dict[str, Any]:
    """Prove a task was DEFERRED, its trigger ran in the triggerer and fired success, and the task then resumed.

    :param stack: the stack (log folder)
    :param api: REST client
    :param dag_id: DAG id
    :param run_id: DAG run id
    :param task: task id (``task[i]`` for a mapped instance)
    :return: the evidence
    """
    ti = api.task_instances(dag_id, run_id)[task]
    log, trig = task_logs(stack, dag_id, run_id, task, ti["try_number"])
    deferred_at = log.find(DEFERRED_LINE)
    fired = TRIGGER_FIRED.search(trig)
    evidence = {
        "task_log_says_deferred": deferred_at >= 0,
        "triggerer_started_trigger": bool(TRIGGER_STARTED.search(trig)),
        "trigger_fired": fired.group(1) if fired else None,
        "task_resumed_after_deferral": log.rfind(RESUMED_LINE) > deferred_at >= 0,
        "try_number": ti["try_number"],
    }
    assert (evidence["task_log_says_deferred"] and evidence["triggerer_started_trigger"]
            and evidence["trigger_fired"] == "success" and evidence["task_resumed_after_deferral"]
            and ti["try_number"] == 1), (
        f"{task}: incomplete deferral evidence {evidence}\ntask log tail:\n{log[-1500:]}\ntrigger log:\n{trig[-1500:]}"
    )
    return evidence


def printed_dict(lines: list[str]) -> dict[str, Any]:
    """Parse ``key: value`` lines (values printed Python literals) back into one dict.

    :param lines: the lines
    :return: the dict
    """
    return {key: ast.literal_eval(value) for key, value in (line.split(": ", 1) for line in lines)}


def run_checks(api: AirflowAPI, report: Report, check: DagCheck, run_id: str, sim: SimRuns,
               dict_order_kept: bool = True) -> None:
    """The XCom and extra link checks of one successful DAG run.

    :param api: REST client
    :param report: results
    :param check: what to check
    :param run_id: DAG run id
    :param sim: the simulator's runs of this DAG run
    :param dict_order_kept: whether the metadata DB keeps an XCom dict's key order (SQLite does, Postgres not)
    """
    for x in check.xcoms:
        def xcom_ok(x: scenarios.XComCheck = x) -> Any:
            value = api.xcom(check.dag_id, run_id, x.task_id, x.key, x.map_index)
            expected = x.expect(sim)
            if x.dict_ordered and not dict_order_kept:
                value, expected = printed_dict(value), printed_dict(expected)
            assert value == expected, f"XCom {x.task_id}[{x.map_index}]/{x.key} = {value!r}, expected {expected!r}"
            return value
        where = x.task_id if x.map_index < 0 else f"{x.task_id}[{x.map_index}]"
        report.check(f"dag {check.dag_id}: XCom {where}/{x.key}", xcom_ok)
    for link in check.links:
        def link_ok(link: scenarios.LinkCheck = link) -> Any:
            links = api.extra_links(check.dag_id, run_id, link.task_id, link.map_index)
            expected = sim.url_of(sim.run(link.run_task or link.task_id, link.map_index))
            assert links.get("Hatchet run") == expected, f"'Hatchet run' link {links!r}, expected {expected!r}"
            return expected
        where = link.task_id if link.map_index < 0 else f"{link.task_id}[{link.map_index}]"
        report.check(f"dag {check.dag_id}: extra link 'Hatchet run' of {where}", link_ok)


def cancel_flow(stack: Stack, api: AirflowAPI, sim: Simulator, check: CancelCheck, run_id: str) -> dict[str, Any]:
    """Wait until the task is deferred and its trigger runs, mark it failed, and wait for the remote CANCELLED.

    :param stack: the stack
    :param api: REST client
    :param sim: simulator admin client
    :param check: what to check
    :param run_id: the DAG run
    :return: what was seen
    """
    deadline = time.monotonic() + RUN_TIMEOUT
    while (ti := api.task_instances(check.dag_id, run_id).get(check.task_id, {})).get("state") != "deferred":
        assert ti.get("state") not in ("success", "failed", "upstream_failed"), (
            f"{check.task_id} ended {ti.get('state')} before deferring")
        assert time.monotonic() < deadline, f"{check.task_id} not deferred after {RUN_TIMEOUT:.0f}s: {ti.get('state')}"
        time.sleep(POLL)
    while not TRIGGER_STARTED.search(task_logs(stack, check.dag_id, run_id, check.task_id, ti["try_number"])[1]):
        assert time.monotonic() < deadline, f"the triggerer never started the trigger of {check.task_id}"
        time.sleep(POLL)
    remote_id = str(api.xcom(check.dag_id, run_id, check.task_id, "hatchet_run_id"))
    before = sim.status(remote_id)
    assert before == "RUNNING", f"remote run {remote_id} is {before} before the task is marked failed"
    api.set_task_state(check.dag_id, run_id, check.task_id, "failed")
    marked = time.monotonic()
    while (after := sim.status(remote_id)) != check.run.status:
        assert time.monotonic() - marked < 60, (
            f"remote run {remote_id} still {after} 60s after marking {check.task_id} failed")
        time.sleep(0.5)
    ti = api.task_instances(check.dag_id, run_id)[check.task_id]
    assert ti["state"] == "failed", f"{check.task_id} is {ti['state']} after being marked failed"
    return {"remote_run": remote_id, "before": before, "after": after,
            "seconds_to_cancel": round(time.monotonic() - marked, 1)}


def rerun_flow(api: AirflowAPI, sim: Simulator, check: RerunCheck, run_id: str) -> dict[str, Any]:
    """Clear the succeeded task through the REST API, wait for its second try, and check its second run.

    :param api: REST client
    :param sim: simulator admin client
    :param check: what to check
    :param run_id: the DAG run, finished
    :return: what was seen
    """
    first_id = str(api.xcom(check.dag_id, run_id, check.task_id, "return_value"))
    api.clear_task(check.dag_id, run_id, check.task_id)
    deadline = time.monotonic() + RUN_TIMEOUT
    while not ((ti := api.task_instances(check.dag_id, run_id)[check.task_id])["try_number"] >= 2
               and ti["state"] in ("success", "failed")):
        assert time.monotonic() < deadline, f"{check.task_id} not rerun after {RUN_TIMEOUT:.0f}s: {ti}"
        time.sleep(POLL)
    assert ti["state"] == "success", f"the cleared {check.task_id} ended {ti['state']}"
    runs = [r for r in sim.runs() if (r["body"].get("additionalMetadata") or {}).get("airflow_run_id") == run_id
            and r["body"]["additionalMetadata"].get("airflow_dag_id") == check.dag_id]
    runs.sort(key=lambda r: int(r["body"]["additionalMetadata"]["airflow_try_number"]))
    assert [r["id"] for r in runs[:1]] == [first_id] and len(runs) == 2, (
        f"expected the first try's run {first_id} and one more, the simulator received {[r['id'] for r in runs]}")
    second = runs[1]
    want = {"workflowName": check.run.workflow, "input": check.run.input,
            "additionalMetadata": identity(check.dag_id, run_id, check.run, try_number=2)}
    got = {k: second["body"].get(k) for k in want}
    assert got == want, f"the second run was sent {got}, expected {want}"
    assert second["status"] == "COMPLETED", f"the second run is {second['status']}"
    xcoms = {key: api.xcom(check.dag_id, run_id, check.task_id, key)
             for key in ("return_value", "hatchet_run_id", "output")}
    expected = {"return_value": second["id"], "hatchet_run_id": second["id"], "output": SimRuns.output(second)}
    assert xcoms == expected, f"XComs after the rerun {xcoms}, expected {expected}"
    return {"first_run": first_id, "second_run": second["id"], "try_number": ti["try_number"]}


def dag_phase(stack: Stack, report: Report, checks: list[DagCheck], cancels: list[CancelCheck],
              reruns: list[RerunCheck], hatchet: Any = None) -> None:
    """Trigger every DAG at once through the REST API, run the cancellation, then check each DAG run.

    :param stack: the running stack
    :param report: results
    :param checks: DAG checks
    :param cancels: cancellation checks
    :param reruns: clear-and-rerun checks, run once their DAG run has finished
    :param hatchet: where the runs are read: the simulator (default, reset first) or a
        :class:`hatchet_view.RealHatchet` (its demo-etl lasting ``DEMO_ETL_SECONDS`` too)
    """
    api = AirflowAPI(stack.api_url, stack.username, stack.password)
    sim = hatchet or Simulator(stack.simulator)
    unseen: frozenset[str] = getattr(sim, "unseen", frozenset())
    if hatchet is None:
        sim.call("POST", "/reset", json={"keep_workflows": True})
        sim.call("POST", "/workflows", json={"name": "demo-etl", "behaviour": "succeed",
                                             "duration": DEMO_ETL_SECONDS})

    all_ids = [c.dag_id for c in checks] + [c.dag_id for c in cancels] + [c.dag_id for c in reruns]
    found, errors = api.wait_for_dags(all_ids, PARSE_TIMEOUT)

    def parsed() -> dict[str, Any]:
        assert not errors and found == set(all_ids), (
            f"DAGs not parsed: {sorted(set(all_ids) - found)}; import errors: {errors}")
        return {"dags": len(found)}

    report.check("dags: every DAG parsed without import errors", parsed)
    run_ids: dict[str, str] = {}
    for dag_id in all_ids:
        if dag_id in found:
            conf = next((c.conf for c in checks if c.dag_id == dag_id), {})

            def trigger(dag_id: str = dag_id, conf: dict[str, Any] = conf) -> str:
                run_ids[dag_id] = api.trigger(dag_id, conf, scenarios.LOGICAL_DATE)
                return run_ids[dag_id]

            report.check(f"dag {dag_id}: triggered through the REST API", trigger)

    for cancel in cancels:
        name = f"cancel {cancel.dag_id}/{cancel.task_id}: marked failed while deferred, remote run {cancel.run.status}"
        if cancel.dag_id in run_ids:
            report.check(name, functools.partial(cancel_flow, stack, api, sim, cancel, run_ids[cancel.dag_id]))
        else:
            report.skip(name, "the DAG was not triggered")

    finished: dict[str, dict[str, Any]] = {}
    tis: dict[str, dict[str, dict[str, Any]]] = {}
    deadline = time.monotonic() + RUN_TIMEOUT
    while len(finished) < len(run_ids) and time.monotonic() < deadline:
        runs, all_tis = api.all_dag_runs(), api.all_task_instances()
        for dag_id, run_id in run_ids.items():
            run = runs.get((dag_id, run_id))
            if dag_id not in finished and run and run["state"] in ("success", "failed"):
                finished[dag_id] = run
                tis[dag_id] = all_tis.get((dag_id, run_id), {})
        time.sleep(POLL)
    print(f"[e2e] {len(finished)} of {len(run_ids)} DAG runs finished", flush=True)

    for rerun in reruns:
        name = f"rerun {rerun.dag_id}/{rerun.task_id}: cleared after success, triggers a second run and XCom holds it"
        if (finished.get(rerun.dag_id) or {}).get("state") == "success":
            report.check(name, functools.partial(rerun_flow, api, sim, rerun, run_ids[rerun.dag_id]))
        else:
            report.skip(name, f"the DAG run did not succeed: {finished.get(rerun.dag_id)}")

    groups = group_runs(sim.runs())
    for rerun in reruns:
        groups.pop((rerun.dag_id, run_ids.get(rerun.dag_id, "")), None)
    for check in checks:
        dag_id = check.dag_id
        if dag_id not in run_ids:
            report.skip(f"dag {dag_id}: run succeeds", "the DAG was not triggered")
            continue
        run_id = run_ids[dag_id]

        def succeeded(check: DagCheck = check, run_id: str = run_id) -> dict[str, str]:
            if check.dag_id not in finished:
                now = {k: v["state"] for k, v in api.task_instances(check.dag_id, run_id).items()}
                raise AssertionError(f"still {api.dag_run(check.dag_id, run_id)['state']} after {RUN_TIMEOUT:.0f}s; "
                                     f"tasks: {now}")
            states = {k: v["state"] for k, v in tis[check.dag_id].items()}
            errors = {k: task_error(stack, check.dag_id, run_id, k, v["try_number"])
                      for k, v in tis[check.dag_id].items() if v["state"] == "failed"}
            assert finished[check.dag_id]["state"] == "success" and states == check.task_states, (
                f"DAG run {run_id} ended {finished[check.dag_id]['state']} with tasks {states}, "
                f"expected success with {check.task_states}; errors: {errors}")
            return states

        ok = report.check(f"dag {dag_id}: run succeeds", succeeded)
        sim_view, problems = sim_runs(stack.simulator, dag_id, run_id, groups.pop((dag_id, run_id), []), check.runs,
                                       unseen)

        def received(problems: list[str] = problems, n: int = len(check.runs)) -> str:
            assert not problems, "; ".join(problems)
            return f"{n} run(s) as expected"

        report.check(f"dag {dag_id}: simulator received exactly the expected runs", received)
        if not ok:
            report.skip(f"dag {dag_id}: deferral, XComs and links", "the DAG run did not succeed")
            continue
        for task in check.deferred_tasks:
            report.check(f"dag {dag_id}: {task} deferred, its trigger ran in the triggerer, then it resumed",
                         functools.partial(deferral_evidence, stack, api, dag_id, run_id, task))
        run_checks(api, report, check, run_id, sim_view,
                   not stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql"))

    for cancel in cancels:
        if cancel.dag_id in run_ids:
            run_id = run_ids[cancel.dag_id]
            _, problems = sim_runs(stack.simulator, cancel.dag_id, run_id, groups.pop((cancel.dag_id, run_id), []),
                                   (cancel.run,), unseen)

            def cancelled(problems: list[str] = problems) -> None:
                assert not problems, "; ".join(problems)

            report.check(f"cancel {cancel.dag_id}: simulator received exactly the expected run", cancelled)

    def nothing_else() -> None:
        strays = {k: [r["id"] for r in v] for k, v in groups.items()}
        assert not strays, f"runs not from any checked DAG run: {strays}"

    report.check("simulator: no runs besides the expected ones", nothing_else)


def main(argv: list[str] | None = None) -> int:
    """Run everything; return the exit code.

    :param argv: CLI arguments
    :return: 0 when every check passed
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--simulator-module", default="airflow_provider_hatchet.testing")
    parser.add_argument("--skip-ui", action="store_true")
    parser.add_argument("--skip-dags", action="store_true")
    parser.add_argument("--skip-watchers", action="store_true")
    parser.add_argument("--hatchet", choices=("simulator", "real"), default="simulator",
                        help="where the watcher phase starts runs and pushes events; 'real' (build/hatchet/env, "
                             "make hatchet-up) skips the simulator-only UI and DAG phases")
    parser.add_argument("--expect-label", action="append", default=[], metavar="FIELD=LABEL",
                        help="override an expected form label (e.g. host='Server URL'); used to prove checks fail")
    parser.add_argument("--failure-pattern", default=r"(?i)(403|credential|token|unauthori[sz]ed|forbidden)",
                        help="regex the wrong-token toast must match")
    parser.add_argument("--docs-screenshot", type=Path, help="also write the form's two sections side by side here")
    args = parser.parse_args(argv)

    report = Report()
    run_dir: Path = args.run_dir.resolve()
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    stack = Stack(run_dir=run_dir, dags_folder=REPO / "dags_examples",
                  extra_bundles={"e2e-dags": REPO / "e2e" / "dags"}, simulator_module=args.simulator_module)

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    try:
        with report.phase("simulator"):
            stack.start_simulator()
        with report.phase("metadata db (sqlite)"):
            stack.configure_airflow(f"sqlite:///{run_dir / 'airflow.db'}")
            stack.migrate()
        with report.phase("airflow start (api-server, scheduler, dag-processor, triggerer healthy)"):
            stack.start_airflow()
        simulator_only = args.hatchet == "simulator"
        if not args.skip_ui and simulator_only:
            with report.phase("ui: connection form"):
                ui_phase(stack, report, args)
        if not args.skip_dags and simulator_only:
            if args.skip_ui:  # the UI phase creates the connection; without it, the REST API does
                sim = stack.simulator
                watchers.ensure_connection(AirflowAPI(stack.api_url, stack.username, stack.password),
                                           watchers.Hatchet(sim["url"], sim["token"], sim["tenant_id"], True))
            with report.phase("dags via scheduler (all at once) and cancellation"):
                dag_phase(stack, report, list(scenarios.PROVIDER_DAG_CHECKS), list(scenarios.PROVIDER_CANCEL_CHECKS),
                          list(scenarios.PROVIDER_RERUN_CHECKS))
        if not args.skip_watchers:
            with report.phase(f"asset watchers on the triggerer ({args.hatchet})"):
                watchers.watcher_phase(stack, report, args.hatchet)
    except BaseException as exc:
        report.checks.append({"name": "stack", "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        print(f"[e2e] FAIL stack: {type(exc).__name__}: {exc}", flush=True)
        traceback.print_exc()
    finally:
        if report.failed:
            for proc in stack.procs:
                print(f"----- {proc.name} log tail ({proc.log}) -----\n{tail(proc.log, 25)}", flush=True)
        with report.phase("teardown"):
            stack.stop()
    report.phases["total (harness)"] = round(time.monotonic() - started, 1)
    return finish(report, run_dir, "e2e")


def finish(report: Report, run_dir: Path, label: str) -> int:
    """Write ``report.json``, print the phases, notes and failures, then ``<label>: N passed, M failed``.

    :param report: the run's results
    :param run_dir: where report.json goes
    :param label: the summary line's first word
    :return: the exit code: 0 when every check passed
    """
    (run_dir / "report.json").write_text(json.dumps(
        {"phases": report.phases, "checks": report.checks, "notes": report.notes}, indent=2, default=str))
    print("[e2e] phases: " + ", ".join(f"{k}={v}s" for k, v in report.phases.items()))
    for note in report.notes:
        print(f"[e2e] note: {note}")
    for failure in report.failed:
        print(f"[e2e] FAILED: {failure['name']}: {failure['error'][:500]}")
    passed = sum(c["ok"] for c in report.checks)
    print(f"{label}: {passed} passed, {len(report.failed)} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
