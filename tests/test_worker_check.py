"""``check_workers``: whether a live worker serves the workflow, before triggering and while runs stay QUEUED.

Against the simulator over loopback HTTP: its tenant's worker serves every workflow but those registered
``served=False``, and reads INACTIVE 5 s after it stops (the real server's rule, docs/hatchet-behaviour.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_hatchet._compat import TaskDeferred
from airflow_provider_hatchet.client import (
    AsyncHatchetClient,
    ClientConfig,
    HatchetValidationError,
    RetryPolicy,
    ServerClock,
    TriggerRequest,
    WaitResume,
    WaitState,
    WaitStatus,
    check_round,
    endpoints,
)
from airflow_provider_hatchet.client.workers import QueuedWatch
from airflow_provider_hatchet.exceptions import HatchetNoWorkerError, run_error
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.testing import HatchetSimulator, ManualClock, SimulatorServer
from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunTrigger, run_wait
from tests.airflow_helpers import task_state

START = datetime(2025, 1, 1)
LONELY = "lonely"


def worker_reads(sim: HatchetSimulator) -> int:
    return sum(1 for r in sim.requests if r.path.endswith("/worker"))


def trigger_reads(sim: HatchetSimulator) -> int:
    return sum(1 for r in sim.requests if r.path.endswith("/workflow-runs/trigger"))


async def trigger(sim: HatchetSimulator, workflow: str, n: int) -> list[str]:
    sim.visibility_delay = 0.0  # the first round reads the runs (read lag is another test's matter)
    async with AsyncHatchetClient(ClientConfig.from_token(sim.token), retry=RetryPolicy(attempts=1)) as client:
        return [await client.send(endpoints.trigger(TriggerRequest(workflow, {"i": i}, {}))) for i in range(n)]


class Warnings:
    """A log that keeps the warnings, formatted."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, msg: str, /, *args: object) -> None:
        self.lines.append(msg % args)

    def info(self, msg: str, /, *args: object) -> None:
        """Progress is not kept."""

    warning = __call__

    def exception(self, msg: str, /, *args: object) -> None:
        self.lines.append(msg % args)


# The hook


def test_the_hook_counts_the_live_workers_that_serve_a_workflow(hatchet: Any) -> None:
    hatchet.register_workflow(LONELY, served=False)
    hook = HatchetHook()
    assert hook.live_workers("demo-etl") == 1
    assert hook.live_workers("DEMO-ETL") == 1  # hatchet-sdk lower-cases action ids
    assert hook.live_workers(LONELY) == 0
    assert hook.live_workers("demo-missing") == 0
    # One read of the worker list per answer, asking only for live workers.
    reads = [r for r in hatchet.requests if r.path.endswith("/worker")]
    assert len(reads) == 4 and all(r.raw_query == "statuses=ACTIVE" for r in reads)


@pytest.mark.loopback  # its own simulator server
def test_a_stopped_worker_reads_inactive_five_seconds_after_its_last_heartbeat() -> None:
    clock = ManualClock()
    sim = HatchetSimulator(clock=clock)
    sim.register_workflow("etl")
    with SimulatorServer(sim):
        hook_config = ClientConfig.from_token(sim.token)

        def live() -> int:
            from airflow_provider_hatchet.client.sync import HatchetClient
            from airflow_provider_hatchet.client.workers import list_workers, serving

            with HatchetClient(hook_config) as client:
                return serving(client.send(list_workers()).rows or [], "etl")

        sim.stop_worker()
        clock.advance(4.9)
        assert live() == 1
        clock.advance(0.2)
        assert live() == 0
        sim.start_worker()
        assert live() == 1


# The wait's check, on Hatchet's clock


@pytest.mark.loopback  # its own simulator server
@pytest.mark.parametrize("skew_hours", [-2, 2])
async def test_the_grace_counts_on_hatchets_clock_whatever_the_local_clock_says(skew_hours: int) -> None:
    # The simulator's clock runs two hours behind or ahead of this machine's: a check that compared the local
    # clock with the runs' creation times would warn at once (behind) or never (ahead).
    clock = ManualClock()
    sim = HatchetSimulator(clock=clock, wall_offset=skew_hours * 3600.0, visibility_delay=0.0)
    sim.register_workflow(LONELY, served=False)
    with SimulatorServer(sim):
        ids = await trigger(sim, LONELY, 2)
        warnings = Warnings()
        watch = QueuedWatch("fail", [LONELY], grace=60.0)
        state = WaitState(tuple(ids))
        # This machine's clock moves with the simulator's (the skew stays), as two real clocks do.
        start = clock()
        local = ServerClock(local=lambda: datetime.now(timezone.utc) + timedelta(seconds=clock() - start))
        async with AsyncHatchetClient(ClientConfig.from_token(sim.token), server_clock=local) as client:

            async def check() -> str | None:
                event = await check_round(client, state, fetch_outputs=False)
                assert event.status is WaitStatus.PENDING
                return await watch.check(client, state.statuses, state.created, warnings)

            assert await check() is None
            clock.advance(58.0)
            assert await check() is None
            assert worker_reads(sim) == 0  # no run queued past the grace yet: no lookup
            assert set(state.created) == set(ids)  # the creation times took part
            clock.advance(3.0)
            failure = await check()
    assert failure is not None and repr(LONELY) in failure and ids[0] in failure
    assert worker_reads(sim) == 1
    assert len(warnings.lines) == 1 and repr(LONELY) in warnings.lines[0]


async def test_warn_says_it_once_and_looks_up_once_per_round(hatchet: Any) -> None:
    hatchet.register_workflow(LONELY, served=False)
    ids = await trigger(hatchet, LONELY, 3)
    warnings = Warnings()
    watch = QueuedWatch("warn", ["demo-etl", LONELY], grace=0.0)
    state = WaitState(tuple(ids))
    hatchet.clear_requests()
    async with AsyncHatchetClient(ClientConfig.from_token(hatchet.token)) as client:
        for _ in range(3):
            await check_round(client, state, fetch_outputs=False)
            assert await watch.check(client, state.statuses, state.created, warnings) is None
    assert worker_reads(hatchet) == 3
    assert len(warnings.lines) == 1
    assert repr(LONELY) in warnings.lines[0] and "demo-etl" not in warnings.lines[0]


async def test_no_lookup_while_no_run_is_queued_or_when_off(hatchet: Any) -> None:
    running = await trigger(hatchet, "demo-hang", 2)
    queued = await trigger(hatchet, "demo-etl", 1)
    hatchet.stop_worker()
    queued += await trigger(hatchet, "demo-etl", 1)  # stays QUEUED: the worker is stopped
    warnings = Warnings()
    async with AsyncHatchetClient(ClientConfig.from_token(hatchet.token)) as client:
        for mode, ids in (("fail", running), ("off", queued)):
            state = WaitState(tuple(ids))
            watch = QueuedWatch(mode, ["demo-hang", "demo-etl"], grace=0.0)
            hatchet.clear_requests()
            for _ in range(2):
                await check_round(client, state, fetch_outputs=False)
                assert await watch.check(client, state.statuses, state.created, warnings) is None
            assert worker_reads(hatchet) == 0
    assert warnings.lines == []


async def test_a_worker_list_that_cannot_be_read_is_one_warning_even_with_fail(hatchet: Any) -> None:
    hatchet.register_workflow(LONELY, served=False)
    ids = await trigger(hatchet, LONELY, 1)
    hatchet.fail_next("workers", 3, status=403)
    warnings = Warnings()
    watch = QueuedWatch("fail", [LONELY], grace=0.0)
    state = WaitState(tuple(ids))
    async with AsyncHatchetClient(ClientConfig.from_token(hatchet.token)) as client:
        for _ in range(3):
            await check_round(client, state, fetch_outputs=False)
            assert await watch.check(client, state.statuses, state.created, warnings) is None
    assert len(warnings.lines) == 1 and "could not be read" in warnings.lines[0]
    assert hatchet.token not in warnings.lines[0]


async def test_with_fail_the_wait_ends_no_worker_and_the_task_gets_the_typed_error(hatchet: Any) -> None:
    hatchet.register_workflow(LONELY, served=False)
    ids = await trigger(hatchet, LONELY, 2)
    wait = run_wait(ids, poll_interval=0.01, execution_deadline=None,
                    resume=WaitResume(check_workers="fail", workflows=(LONELY,), queued_grace=0.0))
    async with AsyncHatchetClient(ClientConfig.from_token(hatchet.token)) as client:
        event = await wait.run(client, Warnings())
    assert event.status is WaitStatus.NO_WORKER
    assert repr(LONELY) in event.message
    error = run_error(event)
    assert isinstance(error, HatchetNoWorkerError)
    assert sorted(error.run_ids) == sorted(ids)
    assert [r.status for r in hatchet.runs] == ["QUEUED", "QUEUED"]  # left queued: a retry re-attaches


async def test_the_deferred_wait_checks_in_the_triggerer(hatchet: Any, airflow_conn: Callable[..., str]) -> None:
    hatchet.register_workflow(LONELY, served=False)
    ids = await trigger(hatchet, LONELY, 1)
    resume = WaitResume(check_workers="fail", workflows=(LONELY,), queued_grace=0.0)
    trigger_ = HatchetWorkflowRunTrigger(ids, "hatchet_default", poll_interval=0.01, resume=resume.to_dict())
    _, kwargs = trigger_.serialize()
    assert kwargs["resume"].items() >= {"check_workers": "fail", "workflows": [LONELY], "queued_grace": 0.0}.items()
    json.dumps(kwargs)
    events = [event.payload async for event in HatchetWorkflowRunTrigger(**kwargs).run()]
    assert [e["status"] for e in events] == ["no_worker"]


def test_a_bad_mode_in_the_resume_is_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match="check_workers"):
        WaitResume.from_dict({"check_workers": "loud"})


# The operators


def make_dag(dag_id: str) -> Any:
    from airflow.sdk import DAG

    return DAG(dag_id, schedule=None, start_date=START, catchup=False)


def single(**kwargs: Any) -> Any:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

    return HatchetRunWorkflowOperator(poll_interval=0.05, **kwargs)


def bulk(**kwargs: Any) -> Any:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowsOperator

    return HatchetRunWorkflowsOperator(poll_interval=0.05, transport="rest", **kwargs)


@pytest.mark.parametrize("value", ["loud", "", None, "WARN", True])
def test_a_bad_check_workers_is_refused_when_the_dag_is_parsed(value: Any) -> None:
    with pytest.raises(HatchetValidationError, match="check_workers"):
        single(task_id="t", workflow_name="demo-etl", check_workers=value)
    with pytest.raises(HatchetValidationError, match="check_workers"):
        bulk(task_id="t", workflow_runs=[], check_workers=value)


def test_fail_triggers_nothing_when_no_live_worker_serves_the_workflow(
    hatchet: Any, dag_runner: Any, logs: Any
) -> None:
    hatchet.register_workflow(LONELY, served=False)
    with make_dag("worker_fail") as dag:
        single(task_id="t", workflow_name=LONELY, check_workers="fail")
    dag_run = dag_runner(dag)
    assert task_state(dag_run, "t") == "failed"
    assert trigger_reads(hatchet) == 0 and hatchet.runs == []
    text = logs()
    assert "HatchetNoWorkerError" in text and f"No live Hatchet worker serves workflow {LONELY!r}" in text


def test_warn_triggers_and_says_so_once(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    hatchet.register_workflow(LONELY, served=False)
    with make_dag("worker_warn") as dag:
        single(task_id="t", workflow_name=LONELY)
    dag_run = dag_runner(dag)
    assert task_state(dag_run, "t") == "success"
    assert len(hatchet.runs) == 1 and worker_reads(hatchet) == 1
    assert logs().count(f"No live Hatchet worker serves workflow {LONELY!r}") == 1


def test_off_never_reads_the_worker_list(hatchet: Any, dag_runner: Any) -> None:
    hatchet.register_workflow(LONELY, served=False)
    with make_dag("worker_off") as dag:
        single(task_id="t", workflow_name=LONELY, check_workers="off")
    assert task_state(dag_runner(dag), "t") == "success"
    assert worker_reads(hatchet) == 0 and len(hatchet.runs) == 1


def test_a_check_that_fails_itself_only_warns_even_with_fail(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    hatchet.fail_next("workers", 5, status=403)
    with make_dag("worker_403") as dag:
        single(task_id="t", workflow_name="demo-etl", check_workers="fail")
    assert task_state(dag_runner(dag), "t") == "success"
    assert len(hatchet.runs) == 1
    assert "Could not tell whether a live Hatchet worker serves 'demo-etl' (triggering anyway)" in logs()


def test_an_unknown_workflow_is_the_error_not_a_missing_worker(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    with make_dag("worker_unknown") as dag:
        single(task_id="t", workflow_name="demo-missing", check_workers="fail")
    assert task_state(dag_runner(dag), "t") == "failed"
    assert worker_reads(hatchet) == 0 and trigger_reads(hatchet) == 0
    text = logs()
    assert "demo-missing" in text and "HatchetNoWorkerError" not in text


def test_the_bulk_operator_checks_once_per_task_not_per_item(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    hatchet.register_workflow(LONELY, served=False)
    items = [{"workflow_name": "demo-etl" if i % 2 else LONELY, "input": {"i": i}} for i in range(40)]
    with make_dag("worker_bulk") as dag:
        bulk(task_id="t", workflow_runs=items)
    assert task_state(dag_runner(dag), "t") == "success"
    assert worker_reads(hatchet) == 1 and len(hatchet.runs) == 40
    text = logs()
    assert text.count(f"No live Hatchet worker serves workflow {LONELY!r}") == 1
    assert "serves workflow 'demo-etl'" not in text


def test_the_bulk_operator_with_fail_triggers_nothing(hatchet: Any, dag_runner: Any) -> None:
    hatchet.register_workflow(LONELY, served=False)
    items = [{"workflow_name": "demo-etl", "input": {}}, {"workflow_name": LONELY, "input": {}}]
    with make_dag("worker_bulk_fail") as dag:
        bulk(task_id="t", workflow_runs=items, check_workers="fail")
    assert task_state(dag_runner(dag), "t") == "failed"
    assert hatchet.runs == []


def test_the_deferred_wait_carries_the_mode_and_the_full_workflow_names(hatchet: Any) -> None:
    op = single(task_id="t", workflow_name="demo-etl", wait_for_completion=True, deferrable=True,
                check_workers="fail", namespace="Team")
    op._request = TriggerRequest.checked("demo-etl", None, None, None)
    started = datetime.now(timezone.utc) - timedelta(seconds=1)
    with pytest.raises(TaskDeferred) as deferred:
        op.wait_for_runs({"ti": SimpleNamespace(start_date=started)}, ["run-1"], defer=True,
                         workflows=op._workflows())
    _, kwargs = deferred.value.trigger.serialize()
    assert kwargs["resume"]["check_workers"] == "fail"
    assert kwargs["resume"]["workflows"] == ["team_demo-etl"]


def test_a_no_worker_event_fails_the_task_with_the_typed_error(hatchet: Any) -> None:
    op = single(task_id="t", workflow_name=LONELY)
    payload = {"status": "no_worker", "run_ids": ["r1"], "message": f"No live Hatchet worker serves workflow "
               f"{LONELY!r}", "statuses": {"r1": "QUEUED"}}
    with pytest.raises(HatchetNoWorkerError, match=LONELY) as raised:
        op.finish_wait({}, payload)
    assert raised.value.run_ids == ["r1"]


def test_a_retry_that_re_attaches_does_not_check_again(hatchet: Any, dag_runner: Any) -> None:
    hatchet.fail_next("details", 1, 403)  # the first try fails reading the output of its completed run
    with make_dag("worker_retry") as dag:
        single(task_id="t", workflow_name="demo-etl", wait_for_completion=True, retries=1,
               retry_delay=timedelta(0))
    assert task_state(dag_runner(dag), "t") == "success"
    assert trigger_reads(hatchet) == 1 and worker_reads(hatchet) == 1


def test_a_retry_with_nothing_to_re_attach_to_checks_again(hatchet: Any, dag_runner: Any) -> None:
    hatchet.register_workflow(LONELY, served=False)
    with make_dag("worker_retry_fail") as dag:
        single(task_id="t", workflow_name=LONELY, check_workers="fail", retries=1, retry_delay=timedelta(0))
    assert task_state(dag_runner(dag), "t") == "failed"
    assert trigger_reads(hatchet) == 0 and worker_reads(hatchet) == 2
