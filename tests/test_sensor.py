"""HatchetWorkflowRunSensor: poke() and execute_complete() directly, then whole DAGs under dag.test()."""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_hatchet._compat import (
    AirflowException,
    AirflowSkipException,
    TaskDeferred,
)
from airflow_provider_hatchet._identity import TI_KEY
from airflow_provider_hatchet.client import HatchetValidationError, run_wait, waiter
from airflow_provider_hatchet.client.wait_event import WaitEvent
from airflow_provider_hatchet.client.waiter import WaitState
from airflow_provider_hatchet.exceptions import (
    HatchetRunCancelledError,
    HatchetRunFailedError,
    HatchetRunTimeoutError,
)
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.sensors import hatchet as sensors
from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor, normalize_run_ids
from airflow_provider_hatchet.testing import HatchetSimulator, ManualClock, SimulatorServer, register_demo_workflows
from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunTrigger
from tests.airflow_helpers import task_state, xcom_value

pytestmark = pytest.mark.loopback

OUTPUT = {"rows": 3}
R1, R2 = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(HatchetSimulator(visibility_delay=0.1, cancel_delay=0.1)) as srv:
        yield srv


@pytest.fixture
def sim(server: SimulatorServer, airflow_conn: Callable[..., str]) -> HatchetSimulator:
    simulator = server.simulator
    simulator.reset()
    register_demo_workflows(simulator)
    simulator.register_workflow("etl", "succeed", duration=0.2, output=OUTPUT)
    simulator.register_workflow("broken", "fail", duration=0.1, error_message="ValueError: bad row 7")
    simulator.register_workflow("forever", "hang")
    airflow_conn("hatchet_default", conn_type="hatchet", host=server.url, password=simulator.token)
    return simulator


def start(workflow: str, n: int = 1, **metadata: str) -> list[str]:
    hook = HatchetHook()
    try:
        return [hook.run_workflow(workflow, {"i": i}, dict(metadata) or None) for i in range(n)]
    finally:
        hook.close()


def poke_until_done(sensor: HatchetWorkflowRunSensor, rounds: int = 100) -> Any:
    for _ in range(rounds):
        result = sensor.poke({})
        if result:
            return result.xcom_value
        time.sleep(0.05)
    raise AssertionError("the sensor never finished")


def sensor(run_id: Any, **kwargs: Any) -> HatchetWorkflowRunSensor:
    return HatchetWorkflowRunSensor(task_id=f"wait_{uuid.uuid4().hex[:8]}", run_id=run_id, **kwargs)


# poke() and execute_complete() called directly


def test_normalize_run_ids() -> None:
    assert normalize_run_ids(f" {R1} ") == ([R1], True)
    assert normalize_run_ids([R1, R2]) == ([R1, R2], False)
    assert normalize_run_ids(f'["{R1}", "{R2}"]') == ([R1, R2], False)
    assert normalize_run_ids(f"['{R1}']") == ([R1], False)
    assert normalize_run_ids((R1,)) == ([R1], False)
    with pytest.raises(HatchetValidationError, match=r"run_id\[1\]: must be a Hatchet run id"):
        normalize_run_ids([R1, ""])
    with pytest.raises(HatchetValidationError, match="run_id: must be a run id or a list"):
        normalize_run_ids({"a": 1})
    with pytest.raises(HatchetValidationError, match="run_id: is an empty list"):
        normalize_run_ids([])


def test_poke_returns_the_output_of_one_run(sim: HatchetSimulator) -> None:
    (run_id,) = start("etl")
    assert poke_until_done(sensor(run_id)) == {"run": OUTPUT}


def test_poke_returns_outputs_of_a_list_in_order(sim: HatchetSimulator) -> None:
    ids = start("demo-multi") + start("etl")
    outputs = poke_until_done(sensor(ids))
    assert set(outputs[0]) == {"extract", "transform", "load"}
    assert outputs[1] == {"run": OUTPUT}


def test_failure_fails_at_once_naming_the_run_and_error(sim: HatchetSimulator) -> None:
    hanging = start("forever", 2)
    (broken,) = start("broken")
    with pytest.raises(HatchetRunFailedError) as raised:
        poke_until_done(sensor([*hanging, broken]))
    message = str(raised.value)
    assert broken in message and "run: ValueError: bad row 7" in message
    assert "2 other runs not finished" in message
    assert raised.value.run_ids == [broken]
    assert raised.value.errors == {broken: {"run": "ValueError: bad row 7"}}
    assert [sim.run_status(i) for i in hanging] == ["RUNNING", "RUNNING"]


def test_soft_fail_skips_on_failure(sim: HatchetSimulator) -> None:
    (broken,) = start("broken")
    with pytest.raises(AirflowSkipException, match="ValueError: bad row 7"):
        poke_until_done(sensor(broken, soft_fail=True))


def test_cancelled_fails_unless_tolerated(sim: HatchetSimulator) -> None:
    (hanging,) = start("forever")
    (done,) = start("etl")
    time.sleep(0.15)
    HatchetHook().cancel_runs([hanging])
    with pytest.raises(HatchetRunCancelledError, match=rf"run {hanging} CANCELLED") as raised:
        poke_until_done(sensor([done, hanging]))
    assert raised.value.run_ids == [hanging]
    outputs = poke_until_done(sensor([done, hanging], fail_on_cancelled=False))
    assert outputs[0] == {"run": OUTPUT}


def test_persistent_404_fails_with_a_clear_message(sim: HatchetSimulator) -> None:
    ghost = str(uuid.uuid4())
    with pytest.raises(AirflowException, match=rf"Hatchet run {ghost} was not found \(404\)"):
        poke_until_done(sensor(ghost, not_found_grace=0.3))


def test_403_fails_with_a_clear_message(sim: HatchetSimulator, airflow_conn: Callable[..., str],
                                        server: SimulatorServer) -> None:
    (run_id,) = start("etl")
    time.sleep(0.2)
    airflow_conn("hatchet_default", conn_type="hatchet", host=server.url,
                 password=sim.mint_token(expires_in=-10))
    with pytest.raises(AirflowException, match=r"refused access .*\(403\)"):
        sensor(run_id).poke({})


def test_execute_complete_turns_events_into_results() -> None:
    one, many = sensor(R1), sensor([R1, R2])
    ok = {"status": "success", "run_ids": [R1], "message": "", "statuses": {}, "errors": {},
          "outputs": [{"run": OUTPUT}]}
    assert one.execute_complete({}, ok) == {"run": OUTPUT}
    assert many.execute_complete({}, {**ok, "run_ids": [R1, R2], "outputs": [{}, {"x": {}}]}) == [{}, {"x": {}}]
    failed = {**ok, "status": "failed", "message": "1 failed of 1 Hatchet run: boom", "statuses": {R1: "FAILED"},
              "errors": {R1: {"load": "boom"}}}
    with pytest.raises(HatchetRunFailedError, match="boom") as raised:
        one.execute_complete({}, failed)
    assert (raised.value.run_ids, raised.value.errors) == ([R1], {R1: {"load": "boom"}})
    with pytest.raises(HatchetRunTimeoutError, match=r"timed out .* not cancelled") as timed_out:
        many.execute_complete({}, {**ok, "run_ids": [R1, R2], "status": "timeout", "message": "deadline",
                                   "statuses": {R1: "COMPLETED", R2: "RUNNING"}})
    assert timed_out.value.run_ids == [R2]
    with pytest.raises(AirflowSkipException, match="timed out"):
        sensor(R1, soft_fail=True).execute_complete({}, {**ok, "status": "timeout", "message": ""})
    with pytest.raises(AirflowException, match="Waiting on Hatchet runs failed: 403"):
        one.execute_complete({}, {**ok, "status": "error", "message": "403"})
    with pytest.raises(AirflowException, match="Unexpected event"):
        one.execute_complete({}, {"status": "weird"})
    with pytest.raises(AirflowException, match="Unexpected event"):
        one.execute_complete({}, None)


class _RecordingTI:
    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def test_deferrable_execute_pokes_once_then_defers_with_a_deadline(sim: HatchetSimulator) -> None:
    ids = start("forever", 2, **{TI_KEY: "d|r|t|-1"})
    ti = _RecordingTI()
    waiting = sensor(ids, deferrable=True, timeout=600, poke_interval=3)
    time.sleep(0.15)
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute({"ti": ti})
    trigger = deferred.value.trigger
    assert isinstance(trigger, HatchetWorkflowRunTrigger)
    assert deferred.value.timeout is None
    assert deferred.value.method_name == "execute_complete"
    _, kwargs = trigger.serialize()
    assert kwargs["run_ids"] == ids
    assert kwargs["batch_key"] == "d|r|t|-1"
    assert kwargs["poll_interval"] == 3
    assert kwargs["cancel_on_kill"] is False
    assert before + 600 <= kwargs["execution_deadline"] <= time.time() + 600
    # The trigger goes on from this check: its first round comes one poke_interval later.
    assert before + 3 <= kwargs["resume"]["first_poll_at"] <= time.time() + 3
    assert ti.xcom["hatchet_run_urls"] == [HatchetHook().run_url(i) for i in ids]


def test_deferrable_execute_finishes_without_deferring_when_done(sim: HatchetSimulator) -> None:
    (run_id,) = start("etl")
    time.sleep(0.5)
    ti = _RecordingTI()
    assert sensor(run_id, deferrable=True).execute({"ti": ti}) == {"run": OUTPUT}
    assert ti.xcom["hatchet_run_url"].endswith(f"/runs/{run_id}")


def test_poke_mode_keeps_one_client_and_the_state_from_poke_to_poke(
    sim: HatchetSimulator, count_async_clients: Callable[[], list[Any]], closed_async_clients: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed = closed_async_clients
    sim.register_workflow("slowish", "succeed", duration=0.6, output=OUTPUT)
    ids = start("slowish", 12)
    clients = count_async_clients()  # after the triggers: the sync client that sent them runs on an async one
    waiting = sensor(ids, poke_interval=0.1, timeout=60)
    rounds = _count_rounds(monkeypatch, sim)
    assert waiting.execute({"ti": _RecordingTI()}) == [{"run": OUTPUT}] * 12
    assert len(rounds) > 2
    assert len(clients) == 1
    assert [c for c in closed if c in clients] == clients  # closed when the try ended
    assert waiting._bridge is None
    # Later pokes asked only about the runs still unfinished, with one list: details only for the outputs.
    reads = [r.route for r in sim.requests if r.route not in ("trigger", "workflows") and r.status == 200]
    assert reads.count("details") <= 12 + 1
    assert "status" not in reads


def _sensor_module() -> Any:
    return sys.modules[HatchetWorkflowRunSensor.__mro__[1].execute.__module__]


def _count_rounds(monkeypatch: pytest.MonkeyPatch, sim: HatchetSimulator) -> list[int]:
    """Wrap the waiter's round, as the sensor's pokes and the trigger call it; return each round's requests."""
    rounds: list[int] = []
    check_round = waiter.check_round

    async def counted(client: Any, state: WaitState, **options: Any) -> WaitEvent:
        before = len(sim.requests)
        event = await check_round(client, state, **options)
        rounds.append(len(sim.requests) - before)
        return event

    monkeypatch.setattr(sensors, "check_round", counted)
    monkeypatch.setattr(run_wait, "check_round", counted)
    return rounds


@pytest.mark.parametrize("layout", ["batch", "unrelated", "mix"])
def test_poke_mode_and_deferrable_make_the_same_requests_for_the_same_runs(
    layout: str, airflow_conn: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forty runs finish at random over 12 s of a manual clock, checked every second: the sensor poking and the
    sensor deferred to its trigger make the same rounds, at the same requests."""
    clock = ManualClock()
    sim = HatchetSimulator(visibility_delay=0.0, clock=clock)
    rng = random.Random(7)
    durations = [rng.uniform(1.0, 12.0) for _ in range(40)]
    # Sleeping moves the simulator's clock instead: Airflow's poke loop, and the trigger's.
    monkeypatch.setattr(_sensor_module(), "time", SimpleNamespace(
        sleep=clock.advance, monotonic=time.monotonic, time=time.time))

    async def tick(seconds: float) -> None:
        clock.advance(max(0.0, seconds))

    monkeypatch.setattr(run_wait, "asyncio", SimpleNamespace(sleep=tick, CancelledError=asyncio.CancelledError))
    rounds = _count_rounds(monkeypatch, sim)

    def runs() -> list[str]:
        sim.reset()
        sim.register_workflow("job", "succeed", duration=1.0, output=OUTPUT)
        hook = HatchetHook()
        ids = []
        for i, seconds in enumerate(durations):
            key = "dag|run|bulk|-1" if layout == "batch" or (layout == "mix" and i % 2 == 0) else f"dag|run|t|{i}"
            ids.append(hook.run_workflow("job", {"i": i, "__sim__": {"duration": seconds}}, {TI_KEY: key}))
        hook.close()
        sim.clear_requests()
        rounds.clear()
        return ids

    costs: dict[str, tuple[int, list[int]]] = {}
    with SimulatorServer(sim) as server:
        airflow_conn("hatchet_default", conn_type="hatchet", host=server.url, password=sim.token)
        ids = runs()
        poking = sensor(ids, poke_interval=1, timeout=3600)
        assert poking.execute({"ti": _RecordingTI()}) == [{"run": OUTPUT}] * 40
        costs["poke"] = (len(sim.requests), list(rounds))

        ids = runs()
        deferring = sensor(ids, poke_interval=1, timeout=3600, deferrable=True)
        with pytest.raises(TaskDeferred) as deferred:
            deferring.execute({"ti": _RecordingTI()})

        async def event() -> dict[str, Any]:
            try:
                async for fired in deferred.value.trigger.run():
                    return dict(fired.payload)
            finally:
                await HatchetHook.aclose_loop_clients()
            raise AssertionError("no event")

        assert deferring.execute_complete({}, asyncio.run(event())) == [{"run": OUTPUT}] * 40
        costs["deferrable"] = (len(sim.requests), list(rounds))

    (poke_total, poke_rounds), (deferred_total, deferred_rounds) = costs["poke"], costs["deferrable"]
    assert len(poke_rounds) == len(deferred_rounds) >= 12
    assert abs(poke_total - deferred_total) <= max(poke_rounds[:-1])
    # Far below one request per unfinished run per round (about 260 for these runs).
    assert poke_total < 40 + 3 * len(poke_rounds)


# Whole DAGs under dag.test()


def _dag(dag_id: str, workflows: list[str], *, single: bool, metadata: dict[str, str] | None = None,
         **sensor_kwargs: Any) -> Any:
    from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        from airflow.providers.standard.operators.python import PythonOperator
        from airflow.sdk import DAG
    else:
        from airflow import DAG
        from airflow.operators.python import PythonOperator

    def trigger_runs() -> Any:
        ids = [HatchetHook().run_workflow(w, {"i": i}, metadata) for i, w in enumerate(workflows)]
        return ids[0] if single else ids

    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2025, 1, 1), catchup=False) as dag:
        runs = PythonOperator(task_id="start", python_callable=trigger_runs)
        HatchetWorkflowRunSensor(task_id="wait", run_id=runs.output, poke_interval=0.2, **sensor_kwargs)
    return dag


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_dag_single_run_pushes_output_url_and_link(
    sim: HatchetSimulator, dag_runner: Callable[..., Any], deferrable: bool
) -> None:
    dag = _dag(f"sensor_single_{int(deferrable)}", ["etl"], single=True, deferrable=deferrable)
    dag_run = dag_runner(dag)
    assert task_state(dag_run, "wait") == "success"
    run_id = xcom_value(dag_run, "start")
    assert xcom_value(dag_run, "wait") == {"run": OUTPUT}
    assert xcom_value(dag_run, "wait", "hatchet_run_url") == HatchetHook().run_url(run_id)
    assert xcom_value(dag_run, "wait", "_link_HatchetRunLink") == HatchetHook().run_url(run_id)


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_dag_batch_costs_one_list_per_round(
    sim: HatchetSimulator, dag_runner: Callable[..., Any], deferrable: bool
) -> None:
    dag = _dag(f"sensor_batch_{int(deferrable)}", ["etl"] * 8, single=False,
               metadata={TI_KEY: f"batch-{deferrable}"}, deferrable=deferrable)
    sim.clear_requests()
    dag_run = dag_runner(dag)
    assert task_state(dag_run, "wait") == "success"
    ids = xcom_value(dag_run, "start")
    assert xcom_value(dag_run, "wait") == [{"run": OUTPUT}] * 8
    assert xcom_value(dag_run, "wait", "hatchet_run_urls") == [HatchetHook().run_url(i) for i in ids]
    # Until the first run is readable (the simulator's brief 404 after a trigger) each round costs one details
    # request; after that one list per round, and details once per run for the outputs.
    reads = [r for r in sim.requests if r.route not in ("trigger", "workflows")]
    assert {r.route for r in reads if r.status == 404} <= {"details"}
    kinds = [r.route for r in reads if r.status == 200]
    assert "status" not in kinds
    assert kinds.count("details") <= 8 + (2 if deferrable else 1)
    assert kinds.count("list") >= 1


def test_dag_failure_fails_and_soft_fail_skips(sim: HatchetSimulator, dag_runner: Callable[..., Any]) -> None:
    failing = dag_runner(_dag("sensor_fail", ["forever", "broken"], single=False))
    assert task_state(failing, "wait") == "failed"
    skipping = dag_runner(_dag("sensor_soft_fail", ["broken"], single=True, deferrable=True, soft_fail=True))
    assert task_state(skipping, "wait") == "skipped"


def test_dag_survives_a_storm_of_five_transient_errors(
    sim: HatchetSimulator, dag_runner: Callable[..., Any]
) -> None:
    sim.fail_next("status", 5, 503)
    dag_run = dag_runner(_dag("sensor_storm", ["etl"], single=True))
    assert task_state(dag_run, "wait") == "success"
    assert xcom_value(dag_run, "wait") == {"run": OUTPUT}
    assert sim.pending_failures().get("status", 0) == 0
