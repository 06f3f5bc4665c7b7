"""HatchetWorkflowRunSensor waits on a 300-run batch through real network faults, at the cost the waiter promises.

The bulk operator triggers 300 runs and the sensor waits on them, in poke mode and deferrable (``dag.test()``
runs the trigger inline), with the Airflow connection pointing at the front of ``client -> Toxiproxy ->
BadGatewayProxy -> server`` (see ``faults.py``); resets, 502s and latency start with the wait. Each round of the
waiter is recorded with what reached the server through the proxy and what the client saw, and must cost what
``client/waiter.py`` promises for a batch: one details request per round until the batch key is read from the
first run, then one list request per round whatever the batch's size (plus one retry per lost answer), no
per-run status polls but for runs an earlier list lacked, and the outputs from the lists (read with their
payloads), with details read again only for a run answered on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_hatchet._identity import TI_KEY
from airflow_provider_hatchet.client import AsyncHatchetClient, TriggerRequest, endpoints, waiter
from airflow_provider_hatchet.client.retry import DEFAULT_RETRY
from airflow_provider_hatchet.client.wait_event import WaitEvent, WaitStatus
from airflow_provider_hatchet.client.waiter import WaitState
from tests.airflow_helpers import task_state, xcom_value
from tests.real.conftest import Backend
from tests.real.faults import (
    DETAILS,
    LIST,
    STATUS,
    BadGatewayProxy,
    ClientLog,
    ClientSeen,
    FaultChain,
    ProxyStats,
    Toxiproxy,
    fault_chain,
)

RUNS = 300
RUN_SECONDS = 8.0
POKE_INTERVAL = 1.0
BAD_GATEWAY_RATE = 0.08
RESET_TOXICITY = 0.1
KEEPALIVE_REQUESTS = 3
LIST_502_EVERY = 4


@dataclass(frozen=True)
class Round:
    """One round of the waiter, as the proxy and the client saw it.

    :param key_known: whether the batch key was known when the round began.
    :param outputs_known: runs whose output was already read when the round began.
    :param unlisted: runs never seen that an earlier round's list lacked, when the round began.
    :param proxied: what reached the server through the proxy.
    :param seen: what the client got back.
    :param outcome: where the wait stood after the round.
    :param all_finished: whether every run was known to be finished after the round.
    """

    key_known: bool
    outputs_known: int
    unlisted: int
    proxied: ProxyStats
    seen: ClientSeen
    outcome: WaitStatus
    all_finished: bool

    def lost(self, route: str) -> int:
        """Answers on a route the client did not get: 502s and dropped connections."""
        return self.seen.answered(route, 502) + self.seen.failed(route)

    def answered(self, route: str) -> int:
        """The server's own answers on a route that reached the client (any status but the proxy's 502s)."""
        return self.seen.answered(route) - self.seen.answered(route, 502)

    def calls(self, route: str, expected: int) -> bool:
        """Whether the round made ``expected`` calls on a route, each answered after at most the client's
        retries, or made one call that lost every attempt (the round then ends pending, to be asked again)."""
        if self.answered(route) == expected:
            return True
        return expected == 1 and self.answered(route) == 0 and self.lost(route) == DEFAULT_RETRY.attempts


def start_faults(chain: FaultChain) -> None:
    """Latency on every answer; resets, and 502s after forwarding (every few lists among them)."""
    chain.toxiproxy.add_toxic(chain.proxy_name, "latency", "latency", latency=5, jitter=5)
    chain.toxiproxy.add_toxic(chain.proxy_name, "reset", "reset_peer", toxicity=RESET_TOXICITY, timeout=0)
    chain.http.bad_gateway_rate = BAD_GATEWAY_RATE
    chain.http.every = {LIST: LIST_502_EVERY}


def record_rounds(monkeypatch: pytest.MonkeyPatch, chain: FaultChain, seen: ClientLog) -> list[Round]:
    """Wrap the waiter's round, as the sensor's poke and the trigger call it, to record each round; the faults
    start with the first round (the bulk trigger under faults is test_bulk_faults.py's subject, and its lookup
    after lost answers would give the runs time to finish before the wait begins)."""
    from airflow_provider_hatchet.client import run_wait
    from airflow_provider_hatchet.sensors import hatchet as sensors

    rounds: list[Round] = []
    check_round = waiter.check_round

    async def recorded(client: Any, state: WaitState, **options: Any) -> WaitEvent:
        if not rounds:
            start_faults(chain)
        mark, before = chain.http.mark(), seen.snapshot()
        key_known, outputs_known = state.batch_key is not None, len(state.outputs)
        unlisted = sum(1 for run_id in state.unlisted if run_id not in state.statuses)
        verdict = await check_round(client, state, **options)
        rounds.append(Round(key_known, outputs_known, unlisted, chain.http.stats(mark, chain.http.mark()),
                            seen.snapshot() - before, verdict.status, not state.pending()))
        return verdict

    monkeypatch.setattr(sensors, "check_round", recorded)
    monkeypatch.setattr(run_wait, "check_round", recorded)
    return rounds


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_a_300_run_batch_costs_one_list_per_round_through_faults(
    backend: Backend, toxiproxy: Toxiproxy, deferrable: bool, airflow_conn: Callable[..., str],
    dag_runner: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, logs: Callable[[], str],
    capfd: pytest.CaptureFixture[str], record_property: Callable[[str, object], None],
) -> None:
    from airflow.sdk import DAG

    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowsOperator
    from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor

    seen = ClientLog(monkeypatch)
    name = f"sensor-{backend.tag}"
    with fault_chain(toxiproxy, backend.server_url, name, seed=RUNS, keepalive_requests=KEEPALIVE_REQUESTS) as chain:
        airflow_conn("hatchet_default", conn_type="hatchet", host=chain.url, password=backend.token)
        rounds = record_rounds(monkeypatch, chain, seen)
        dag_id = f"sensor_faults_{'deferrable' if deferrable else 'poke'}_{backend.tag}"
        with DAG(dag_id, schedule=None, start_date=datetime(2025, 1, 1), catchup=False) as dag:
            runs = HatchetRunWorkflowsOperator(
                task_id="bulk", wait_for_completion=False,
                workflow_runs=[
                    {"workflow_name": "demo-etl", "input": {"i": i, "__sim__": {"duration": RUN_SECONDS}},
                     "options": {"additional_metadata": {"test_tag": backend.tag}}}
                    for i in range(RUNS)
                ],
            )
            runs >> HatchetWorkflowRunSensor(task_id="wait", run_id=runs.output, deferrable=deferrable,
                                             poke_interval=POKE_INTERVAL, timeout=600)
        started = time.monotonic()
        dag_run = dag_runner(dag)
        elapsed = time.monotonic() - started

    assert task_state(dag_run, "wait") == "success", logs()[-3000:]
    outputs = xcom_value(dag_run, "wait")
    assert [output["run"]["echo"]["i"] for output in outputs] == list(range(RUNS))
    assert rounds and rounds[-1].outcome is WaitStatus.SUCCESS

    # Until the batch key is read from the first run, a round costs that run's details alone (and the round
    # that reads it lists the batch at once); then one list answers for all 300 runs, every round, and every
    # other list request is the retry of an answer lost to a fault.
    probing = [r for r in rounds if not r.key_known]
    assert 1 <= len(probing) < len(rounds)
    for r in probing:
        assert r.calls(DETAILS, 1), r
        assert r.calls(LIST, 1 if r.seen.answered(DETAILS, 200) else 0), r
    listing = [r for r in rounds if r.key_known]
    for number, r in enumerate(listing):
        assert r.calls(LIST, 1), f"round {number}: {r}"
        assert r.proxied.requests[LIST] == r.answered(LIST) + r.lost(LIST), f"round {number}: {r}"
    # No run is polled on its own, except one that an earlier round's list lacked (not visible yet: the real
    # server's list lags its writes). The lists bring the outputs (the first run's details named its task): a
    # run's details are read again, once all finished, only if a status request rather than a list answered it,
    # or to name the task once more for a state rebuilt in the triggerer.
    assert all(r.answered(STATUS) <= r.unlisted for r in rounds)
    assert all(r.all_finished for r in listing if r.answered(DETAILS))
    assert sum(r.seen.answered(DETAILS, 200) for r in listing) <= sum(r.answered(STATUS) for r in rounds) + 1
    # The faults happened during the wait, on the lists that carry the outputs, and were ridden out.
    assert sum(r.lost(LIST) for r in rounds) > 0

    wait_faults = sum(r.lost(route) for r in rounds for route in (LIST, DETAILS))
    figures = {
        "backend": backend.kind, "mode": "deferrable" if deferrable else "poke", "seconds": round(elapsed, 1),
        "rounds": len(rounds), "list_requests_per_round": [r.proxied.requests[LIST] for r in rounds],
        "list_faults_per_round": [r.lost(LIST) for r in rounds],
        "details_requests": sum(r.proxied.requests[DETAILS] for r in rounds),
        "details_faults": sum(r.lost(DETAILS) for r in rounds),
        "status_requests": sum(r.proxied.requests[STATUS] for r in rounds),
        "wait_faults": wait_faults,
    }
    for key, value in figures.items():
        record_property(key, value)
    with capfd.disabled():
        print("\nsensor under faults: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def test_a_round_costs_one_list_when_some_runs_are_not_in_the_batch(backend: Backend) -> None:
    """Hatchet answers ``next_page = current_page + 1`` on every page, the last one too (the simulator stops at
    ``num_pages``): a round must not take that for more rows when runs it waits on are missing from the list."""
    client = backend.client()
    batch_key = f"sensor_faults|{backend.tag}"
    in_batch = [
        client.send(
            endpoints.trigger(TriggerRequest("demo-etl", {}, {"airflow_ti": batch_key, "test_tag": backend.tag}))
        )
        for _ in range(3)
    ]
    outside = [
        client.send(endpoints.trigger(TriggerRequest("demo-etl", {}, {"test_tag": backend.tag}))) for _ in range(2)
    ]
    since, deadline = datetime.now(timezone.utc) - timedelta(minutes=10), time.monotonic() + 30
    while len(list(client.iter_rows(endpoints.runs(since=since, additional_metadata={"test_tag": backend.tag})))) < 5:
        assert time.monotonic() < deadline, "the five runs were not listed in 30 s"
        time.sleep(0.2)

    state = WaitState(tuple(in_batch + outside), batch_key=batch_key, batch_field=TI_KEY)

    async def one_round(url: str) -> WaitEvent:
        async with AsyncHatchetClient(backend.config(server_url=url)) as proxied:
            return await waiter.check_round(proxied, state, fetch_outputs=False)

    with BadGatewayProxy(backend.server_url) as proxy:
        verdict = asyncio.run(one_round(proxy.url))

    assert verdict.status is WaitStatus.PENDING
    assert set(state.statuses) == set(in_batch)
    # The two runs outside the batch are polled on their own only if the next round's list lacks them too.
    assert proxy.stats().requests == {LIST: 1}
