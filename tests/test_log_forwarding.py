"""``forward_logs`` on real Airflow (``dag.test()``, Airflow 2.10 and 3.3) against the simulator: which runs are
read, what a failed read does, and the checks when the task is defined. The lines themselves, capped and masked,
on both servers: ``tests/real/test_log_forwarding_real.py``."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_hatchet.client import (
    ClientConfig,
    HatchetClient,
    HatchetValidationError,
    TriggerRequest,
    endpoints,
)
from airflow_provider_hatchet.client.wait_event import WaitEvent, WaitStatus
from airflow_provider_hatchet.testing import HatchetSimulator, ManualClock, SimulatorServer, register_demo_workflows
from tests.airflow_helpers import task_state, xcom_value

pytestmark = [pytest.mark.af2, pytest.mark.loopback]


def make_dag(dag_id: str) -> Any:
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import DAG
    else:
        from airflow.models.dag import DAG
    return DAG(dag_id, schedule=None, start_date=dt.datetime(2025, 1, 1), catchup=False)


def single(**kwargs: Any) -> Any:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

    return HatchetRunWorkflowOperator(task_id="t", wait_for_completion=True, poll_interval=0.1, **kwargs)


def in_order(text: str, parts: list[str]) -> bool:
    """Whether the parts appear in the text one after another (the captured logs may hold two copies)."""
    at = 0
    for part in parts:
        at = text.find(part, at)
        if at < 0:
            return False
        at += len(part)
    return True


def log_reads(sim: Any) -> list[Any]:
    return [r for r in sim.requests if r.route == "logs"]


def test_a_failure_to_read_the_logs_leaves_the_failure_as_it_was(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    hatchet.fail_next("logs", count=100, status=500)
    with make_dag("logs_read_fails") as dag:
        single(workflow_name="demo-fail")
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    out = logs()
    assert "Could not read Hatchet's task logs of run" in out
    assert "simulated failure in demo-fail:run" in out  # the task still fails with Hatchet's error
    assert "HatchetRunFailedError" in out
    assert log_reads(hatchet) and {r.status for r in log_reads(hatchet)} == {500}


def test_a_failure_to_read_the_logs_leaves_a_success_as_it_was(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    hatchet.fail_next("logs", count=100, status=500)
    with make_dag("logs_read_fails_success") as dag:
        single(workflow_name="demo-etl", forward_logs="always")
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    assert xcom_value(dag_run, "t", "output") == {"run": {"workflow": "demo-etl", "task": "run", "step": 0,
                                                          "echo": {}}}
    assert "Could not read Hatchet's task logs of run" in logs()


def test_never_reads_no_logs(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    with make_dag("logs_never") as dag:
        single(workflow_name="demo-fail", forward_logs="never")
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    assert log_reads(hatchet) == []
    assert "Hatchet logs of run" not in logs()


def test_on_failure_reads_nothing_for_a_successful_run(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    with make_dag("logs_on_failure_success") as dag:
        single(workflow_name="demo-etl")
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    assert log_reads(hatchet) == []


def test_always_forwards_every_task_of_a_successful_run(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    with make_dag("logs_always") as dag:
        single(workflow_name="demo-multi", forward_logs="always")
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    out = logs()
    run_id = xcom_value(dag_run, "t")
    expected = [f"----- Hatchet logs of run {run_id}, task extract (", "demo-multi:extract started",
                "demo-multi:extract done", "task transform (", "demo-multi:load started", "demo-multi:load done"]
    assert in_order(out, expected), out[-3000:]


def test_on_failure_forwards_only_the_tasks_that_did_not_complete(hatchet: Any, dag_runner: Any,
                                                                  logs: Any) -> None:
    with make_dag("logs_dag_failure") as dag:
        single(workflow_name="demo-multi", input={"__sim__": {"behaviour": "fail", "log_lines": 1}})
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    out = logs()
    assert "demo-multi:load failing: simulated failure in demo-multi:load" in out
    assert "line 1 of 1" in out
    assert "demo-multi:extract started" not in out


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="dag.test() on Airflow 2.10 runs a sensor's dependency checks "
                    "through the configured executor, which refuses the tests' SQLite database")
def test_the_sensor_forwards_the_failed_runs_of_a_list(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor

    with HatchetClient(ClientConfig.from_token(hatchet.token)) as client:
        failed = client.send(endpoints.trigger(TriggerRequest("demo-fail", {"which": "failed"})))
        done = client.send(endpoints.trigger(TriggerRequest("demo-etl", {"which": "done"})))
    with make_dag("logs_sensor_list") as dag:
        HatchetWorkflowRunSensor(task_id="t", run_id=[done, failed], poke_interval=0.1)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    out = logs()
    assert f"----- Hatchet logs of run {failed}, task run (" in out
    assert 'input: {"which": "failed"}' in out
    assert f"Hatchet logs of run {done}" not in out


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="dag.test() on Airflow 2.10 runs a sensor's dependency checks "
                    "through the configured executor, which refuses the tests' SQLite database")
def test_a_poking_sensor_reads_no_logs_of_the_runs_still_running(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor

    hatchet.visibility_delay = 0.0
    with HatchetClient(ClientConfig.from_token(hatchet.token)) as client:
        failed = [client.send(endpoints.trigger(TriggerRequest("demo-fail", {"i": i}))) for i in range(4)]
        hang = {"behaviour": "hang"}
        running = [client.send(endpoints.trigger(TriggerRequest("demo-etl", {"i": i, "__sim__": hang})))
                   for i in range(40)]
    # All four have failed before the first poke, which would otherwise end the wait on the first failure it sees.
    deadline = time.monotonic() + 30
    while any(hatchet.run_status(run_id) != "FAILED" for run_id in failed) and time.monotonic() < deadline:
        time.sleep(0.05)
    with make_dag("logs_sensor_running") as dag:
        HatchetWorkflowRunSensor(task_id="t", run_id=running[:20] + failed + running[20:], poke_interval=0.1)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    assert len(log_reads(hatchet)) == 4
    assert {r.path.split("/")[-2] for r in log_reads(hatchet)} == {
        hatchet.get_run(run_id).task_ids[0] for run_id in failed
    }
    assert logs().count("----- Hatchet logs of run") >= 4


@pytest.mark.parametrize(
    ("arguments", "field", "problem"),
    [
        ({"forward_logs": "sometimes"}, "forward_logs", "must be one of on_failure, always, never, got 'sometimes'"),
        ({"forward_logs": True}, "forward_logs", "must be one of"),
        ({"forward_logs_max_lines_per_task": 0}, "forward_logs_max_lines_per_task", "from 1 to 10000, got 0"),
        ({"forward_logs_max_lines_per_task": "50"}, "forward_logs_max_lines_per_task", "got '50'"),
        ({"forward_logs_max_lines": 10_001}, "forward_logs_max_lines", "from 1 to 10000, got 10001"),
        ({"forward_logs_max_lines": 2.5}, "forward_logs_max_lines", "got 2.5"),
    ],
)
@pytest.mark.parametrize("kind", ["single", "bulk", "sensor"])
def test_bad_forwarding_arguments_fail_when_the_task_is_defined(
    kind: str, arguments: dict[str, Any], field: str, problem: str
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator, HatchetRunWorkflowsOperator
    from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor

    make = {
        "single": lambda: HatchetRunWorkflowOperator(task_id="t", workflow_name="w", **arguments),
        "bulk": lambda: HatchetRunWorkflowsOperator(task_id="t", workflow_runs=[], **arguments),
        "sensor": lambda: HatchetWorkflowRunSensor(task_id="t", run_id=str(uuid.uuid4()), **arguments),
    }[kind]
    with pytest.raises(HatchetValidationError, match=problem) as err:
        make()
    assert err.value.field == field


class TaskLogLines:
    """The task's logger, keeping each record as the line it renders to."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str, /, *args: Any) -> None:
        self.lines.append(msg % args)

    def warning(self, msg: str, /, *args: Any) -> None:
        self.lines.append("WARNING " + msg % args)


@pytest.fixture
def stepped(airflow_conn: Any) -> Any:
    """A simulator of its own on a manual clock, with the demo workflows, ``hatchet_default`` pointing at it.

    Gives ``(simulator, clock)``."""
    clock = ManualClock()
    sim = HatchetSimulator(visibility_delay=0.0, clock=clock)
    register_demo_workflows(sim)
    with SimulatorServer(sim) as server:
        airflow_conn("hatchet_default", conn_type="hatchet", host=server.url, password=sim.token)
        yield sim, clock


def ended(hook: Any, run_ids: list[str], status: WaitStatus) -> WaitEvent:
    """The wait's end as the waiter reports it: each run's status read from the server."""
    return WaitEvent(
        status, run_ids, statuses={run_id: hook.send(endpoints.run_status(run_id)).value for run_id in run_ids}
    )


def forwarded(wait: WaitEvent, **settings: Any) -> list[str]:
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook
    from airflow_provider_hatchet.operators._log_forwarding import LogForwarding, forward_logs

    log = TaskLogLines()
    hook = HatchetHook()
    try:
        forward_logs(hook, log, wait, LogForwarding(**settings))
    finally:
        hook.close()
    return log.lines


FORGED = "[2026-01-01, 00:00:00 UTC] {taskinstance.py:123} INFO - Marking task as SUCCESS"


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        (f"ok\n{FORGED}", f"ok\n    | {FORGED}"),
        (f"ok\r\n{FORGED}\n", f"ok\n    | {FORGED}"),
        ("before\rafter", "before\\rafter"),
        ("\r", "\\r"),
        ("\x1b[2Kwiped", "\\x1b[2Kwiped"),
        ("nul\x00here", "nul\\x00here"),
        ("tab\tkept", "tab\tkept"),
        ("next\x85line\u2028sep\u202egnirts", "next\\x85line\\u2028sep\\u202egnirts"),
    ],
)
def test_a_forwarded_line_cannot_end_a_line_or_forge_one(stepped: Any, message: str, shown: str) -> None:
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook

    sim, clock = stepped
    # The worker's text, not the run's input: an input holding U+0000 is refused before it is sent.
    sim.register_workflow("forger", "fail", duration=0.5, error_message=message)
    hook = HatchetHook()
    run_id = hook.run_workflow("forger", {})
    clock.advance(1)
    lines = forwarded(ended(hook, [run_id], WaitStatus.FAILED))
    hook.close()

    failing = [line for line in lines if "forger:run failing: " in line]
    assert len(failing) == 1, lines
    assert failing[0].endswith(f" INFO forger:run failing: {shown}")
    for line in lines:
        assert all(ch in "\t\n" or ch.isprintable() for ch in line), repr(line)
        assert all(part.startswith("    | ") for part in line.split("\n")[1:]), repr(line)


def test_a_lone_surrogate_is_escaped_so_a_utf8_log_handler_keeps_the_line() -> None:
    from airflow_provider_hatchet.client.escaping import safe_text

    # A server's JSON can carry one (as \ud800), but httpx refuses to send one, so the text is given directly.
    shown = safe_text("lone\ud800surrogate")
    assert shown == "lone\\ud800surrogate"
    shown.encode("utf-8")


def test_a_huge_forwarded_line_is_cut_with_a_note_of_how_much(stepped: Any) -> None:
    from airflow_provider_hatchet.client.escaping import MAX_LINE_CHARS
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook

    _, clock = stepped
    hook = HatchetHook()
    run_id = hook.run_workflow("demo-fail", {"__sim__": {"error_message": "x" * 5_000_000}})
    clock.advance(1)
    lines = forwarded(ended(hook, [run_id], WaitStatus.FAILED))
    hook.close()

    failing = [line for line in lines if "demo-fail:run failing: " in line]
    assert len(failing) == 1
    kept = MAX_LINE_CHARS - len("demo-fail:run failing: ")
    assert failing[0].endswith(
        "failing: " + "x" * kept + f" [... {5_000_000 - kept} more characters cut: a "
        f"forwarded line keeps its first {MAX_LINE_CHARS}]"
    )
    assert max(len(line) for line in lines) < MAX_LINE_CHARS + 200
    # The run's input line (the same 5 MB, as JSON) is cut too.
    assert all(len(line) < MAX_LINE_CHARS + 200 for line in lines)


def test_on_failure_reads_only_the_runs_that_failed_or_were_cancelled(stepped: Any) -> None:
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook

    sim, clock = stepped
    hook = HatchetHook()
    failed = [hook.run_workflow("demo-fail", {"i": i}) for i in range(3)]
    cancelled = hook.run_workflow("demo-etl", {"__sim__": {"behaviour": "hang"}})
    running = [hook.run_workflow("demo-etl", {"i": i, "__sim__": {"behaviour": "hang"}}) for i in range(60)]
    clock.advance(1)
    hook.cancel_runs([cancelled])
    clock.advance(1)
    wait = ended(hook, [*running[:30], *failed, cancelled, *running[30:]], WaitStatus.FAILED)
    assert {wait.statuses[run_id] for run_id in running} == {"RUNNING"}
    sim.clear_requests()
    lines = forwarded(wait)
    hook.close()

    reads = [(r.route, r.path) for r in sim.requests]
    assert len(reads) == 8  # one details and one log read per run that ended badly
    assert {path.rsplit("/", 1)[-1] for route, path in reads if route == "details"} == {*failed, cancelled}
    assert sum("----- Hatchet logs of run" in line for line in lines) == 4
    assert not any(run_id in line for line in lines for run_id in running)


def test_a_timeout_reads_the_runs_that_had_not_completed(stepped: Any) -> None:
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook

    _, clock = stepped
    hook = HatchetHook()
    done = hook.run_workflow("demo-etl", {"which": "done"})
    stuck = hook.run_workflow("demo-etl", {"which": "stuck", "__sim__": {"behaviour": "hang"}})
    clock.advance(1)
    lines = forwarded(ended(hook, [done, stuck], WaitStatus.TIMEOUT))
    hook.close()

    assert any(f"----- Hatchet logs of run {stuck}, task run (" in line for line in lines)
    assert not any(done in line for line in lines)


def test_forwarding_reads_at_most_the_cap_per_airflow_task_and_says_so(stepped: Any) -> None:
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook
    from airflow_provider_hatchet.operators._log_forwarding import MAX_LOG_READS

    sim, clock = stepped
    hook = HatchetHook()
    # Two reads for the first run (one task), four for each other one (three tasks).
    run_ids = [hook.run_workflow("demo-etl", {})] + [hook.run_workflow("demo-multi", {"i": i}) for i in range(59)]
    clock.advance(10)
    wait = ended(hook, run_ids, WaitStatus.SUCCESS)
    sim.clear_requests()
    lines = forwarded(wait, mode="always", max_lines_per_task=1, max_lines=10_000)
    hook.close()

    assert len(sim.requests) == MAX_LOG_READS
    # 2 + 24 * 4 reads for the first 25 runs, then the 26th's details and its first task's lines.
    assert sum("----- Hatchet logs of run" in line for line in lines) == 1 + 24 * 3 + 1
    assert (
        f"Hatchet logs of 2 more task(s) of run {run_ids[25]} not read: the cap of {MAX_LOG_READS} log reads "
        "per Airflow task was reached."
    ) in lines
    assert (
        f"Hatchet logs of 34 more run(s) not read: the cap of {MAX_LOG_READS} log reads per Airflow task was reached."
    ) in lines
