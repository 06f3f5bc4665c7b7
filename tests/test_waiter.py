"""The multi-run waiter against the loopback simulator: outcomes, messages, transient errors and request counts."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import anyio
import httpx
import pytest

from airflow_provider_hatchet._identity import TI_KEY
from airflow_provider_hatchet.client import (
    AsyncHatchetClient,
    Bridge,
    ClientConfig,
    HatchetClient,
    RetryPolicy,
    TriggerRequest,
    endpoints,
    paging,
)
from airflow_provider_hatchet.client.models import RunStatus
from airflow_provider_hatchet.client.wait_event import WaitEvent, WaitStatus
from airflow_provider_hatchet.client.waiter import (
    RunWaitError,
    WaitState,
    cancel_unfinished,
    check_round,
)
from airflow_provider_hatchet.testing import Faults, HatchetSimulator, ManualClock, SimulatorServer
from tests.conditions import until
from tests.tracebacks import chained

pytestmark = pytest.mark.loopback

FAST_RETRY = RetryPolicy(attempts=2, initial=0.01, maximum=0.02, jitter=0.0)


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(HatchetSimulator(visibility_delay=0.0, cancel_delay=0.05)) as srv:
        yield srv


@pytest.fixture
def sim(server: SimulatorServer) -> HatchetSimulator:
    simulator = server.simulator
    simulator.reset()
    simulator.visibility_delay = 0.0
    simulator.register_workflow("etl", "succeed", duration=0.05, output={"rows": 3})
    simulator.register_workflow("multi", "multi_task", duration=0.02)
    simulator.register_workflow("broken", "fail", duration=0.02, error_message="ValueError: bad row 7")
    simulator.register_workflow("forever", "hang")
    return simulator


@pytest.fixture
def config(sim: HatchetSimulator) -> ClientConfig:
    return ClientConfig.from_token(sim.token)


@pytest.fixture
async def client(config: ClientConfig) -> AsyncIterator[AsyncHatchetClient]:
    async with AsyncHatchetClient(config, retry=FAST_RETRY) as c:
        yield c


async def trigger(client: AsyncHatchetClient, workflow: str, n: int = 1, **metadata: str) -> list[str]:
    return [
        await client.send(endpoints.trigger(TriggerRequest(workflow, {"i": i}, dict(metadata))))
        for i in range(n)
    ]


async def wait(client: AsyncHatchetClient, state: WaitState, rounds: int = 200, **kwargs: Any) -> WaitEvent:
    for _ in range(rounds):
        verdict = await check_round(client, state, **kwargs)
        if verdict.finished:
            return verdict
        await asyncio.sleep(0.02)
    raise AssertionError(f"still pending: {verdict.message}")


def sync_round(config: ClientConfig, state: WaitState) -> WaitEvent:
    """One round from synchronous code, through the package's sync-to-async bridge, on a client of its own."""
    with Bridge(lambda: AsyncHatchetClient(config, retry=FAST_RETRY)) as bridge:
        return bridge.call(lambda c: check_round(c, state))


def routes(sim: HatchetSimulator) -> list[str]:
    return [r.route or "" for r in sim.requests]


async def test_single_run_success_returns_outputs_by_task(client: AsyncHatchetClient) -> None:
    (run_id,) = await trigger(client, "etl")
    verdict = await wait(client, WaitState((run_id,), batch_field=TI_KEY))
    assert verdict.status is WaitStatus.SUCCESS
    assert verdict.statuses == {run_id: "COMPLETED"}
    assert verdict.outputs == [{"run": {"rows": 3}}]
    assert verdict.to_payload()["outputs"] == [{"run": {"rows": 3}}]
    assert run_id in verdict.message


async def test_outputs_follow_run_id_order_with_duplicates(client: AsyncHatchetClient) -> None:
    multi = await trigger(client, "multi")
    etl = await trigger(client, "etl")
    ids = (etl[0], multi[0], etl[0])
    verdict = await wait(client, WaitState(ids, batch_field=TI_KEY))
    assert verdict.outputs is not None
    assert verdict.outputs[0] == verdict.outputs[2] == {"run": {"rows": 3}}
    assert set(verdict.outputs[1]) == {"extract", "transform", "load"}


async def test_failure_names_the_run_and_hatchets_error_per_task(client: AsyncHatchetClient) -> None:
    (run_id,) = await trigger(client, "broken")
    verdict = await wait(client, WaitState((run_id,), batch_field=TI_KEY))
    assert verdict.status is WaitStatus.FAILED
    assert verdict.errors == {run_id: {"run": "ValueError: bad row 7"}}
    assert run_id in verdict.message
    assert "run: ValueError: bad row 7" in verdict.message
    assert f"/runs/{run_id}" in verdict.message
    assert "outputs" not in verdict.to_payload()


async def test_hatchets_error_text_cannot_forge_a_line_of_the_failure_message(
    sim: HatchetSimulator, client: AsyncHatchetClient
) -> None:
    forged = "boom\n[2026-01-01, 00:00:00 UTC] {taskinstance.py:123} INFO - Marking task as SUCCESS\x1b[2K"
    sim.register_workflow("forger", "fail", duration=0.02, error_message=forged + "x" * 50_000)
    (run_id,) = await trigger(client, "forger")
    verdict = await wait(client, WaitState((run_id,), batch_field=TI_KEY))

    assert verdict.errors[run_id]["run"].startswith(forged)  # the event keeps Hatchet's text whole
    lines = verdict.message.splitlines()
    assert not any(line.startswith("[2026-01-01") for line in lines)
    assert "\x1b" not in verdict.message and "\\x1b[2K" in verdict.message
    assert "Marking task as SUCCESS" in verdict.message and len(verdict.message) < 3_000


async def test_one_failure_ends_the_wait_while_others_still_run(client: AsyncHatchetClient) -> None:
    hanging = await trigger(client, "forever", 3)
    broken = await trigger(client, "broken")
    verdict = await wait(client, WaitState((*hanging, *broken), batch_field=TI_KEY))
    assert verdict.status is WaitStatus.FAILED
    assert {verdict.statuses[i] for i in hanging} == {"RUNNING"}
    assert verdict.statuses[broken[0]] == "FAILED"
    assert "1 failed of 4 Hatchet runs" in verdict.message
    assert "3 other runs not finished" in verdict.message


async def test_cancelled_run_fails_unless_tolerated(client: AsyncHatchetClient, sim: HatchetSimulator) -> None:
    done = await trigger(client, "etl")
    hanging = await trigger(client, "forever")
    await client.send(endpoints.cancel(hanging))
    verdict = await wait(client, WaitState((*done, *hanging), batch_field=TI_KEY))
    assert verdict.status is WaitStatus.CANCELLED
    assert f"run {hanging[0]} CANCELLED" in verdict.message
    assert "1 cancelled of 2" in verdict.message

    tolerant = await wait(client, WaitState((*done, *hanging), fail_on_cancelled=False, batch_field=TI_KEY))
    assert tolerant.status is WaitStatus.SUCCESS
    assert tolerant.outputs is not None and tolerant.outputs[0] == {"run": {"rows": 3}}
    assert "1 cancelled (tolerated)" in tolerant.message


async def test_storm_of_transient_errors_keeps_the_runs_pending(
    client: AsyncHatchetClient, sim: HatchetSimulator
) -> None:
    (run_id,) = await trigger(client, "etl")
    sim.fail_next("status", 5, 503)
    state = WaitState((run_id,), batch_field=TI_KEY)
    first = await check_round(client, state)
    assert first.status is WaitStatus.PENDING
    assert state.last_error is not None and "503" in state.last_error
    verdict = await wait(client, state)
    assert verdict.status is WaitStatus.SUCCESS
    assert sim.pending_failures().get("status", 0) == 0
    assert [r.status for r in sim.requests if r.route == "status"][:5] == [503] * 5


async def test_rate_limits_and_dropped_connections_are_transient(
    client: AsyncHatchetClient, sim: HatchetSimulator
) -> None:
    (run_id,) = await trigger(client, "etl")
    sim.fail_next("status", 2, 429)
    sim.fail_next("details", 2, drop=True)
    verdict = await wait(client, WaitState((run_id,), batch_field=TI_KEY))
    assert verdict.status is WaitStatus.SUCCESS
    assert verdict.outputs == [{"run": {"rows": 3}}]


async def test_a_404_within_the_grace_window_is_waited_out(client: AsyncHatchetClient, sim: HatchetSimulator) -> None:
    sim.visibility_delay = 0.3
    (run_id,) = await trigger(client, "etl")
    verdict = await wait(client, WaitState((run_id,), not_found_grace=30, batch_field=TI_KEY))
    assert verdict.status is WaitStatus.SUCCESS
    assert 404 in [r.status for r in sim.requests if r.route == "status"]


async def test_a_persistent_404_fails_with_a_clear_message(client: AsyncHatchetClient) -> None:
    ghost = str(uuid.uuid4())
    state = WaitState((ghost,), not_found_grace=0.2, batch_field=TI_KEY)
    with pytest.raises(RunWaitError, match=rf"Hatchet run {ghost} was not found \(404\)"):
        await wait(client, state)


async def test_a_403_fails_with_a_clear_message(sim: HatchetSimulator, client: AsyncHatchetClient) -> None:
    (run_id,) = await trigger(client, "etl")
    other = sim.add_tenant("other")
    foreign = ClientConfig.from_token(sim.token_for(other))
    async with AsyncHatchetClient(foreign, retry=FAST_RETRY) as outsider:
        with pytest.raises(RunWaitError, match=rf"refused access to run {run_id} \(403\)"):
            await check_round(outsider, WaitState((run_id,), batch_field=TI_KEY))


async def test_unrelated_runs_cost_one_list_per_round(client: AsyncHatchetClient, sim: HatchetSimulator) -> None:
    quick = await trigger(client, "etl", 3)
    hanging = await trigger(client, "forever", 2)
    state = WaitState((*quick, *hanging), batch_field=TI_KEY)
    await asyncio.sleep(0.2)
    sim.clear_requests()
    await check_round(client, state)
    # The first run's details say there is no batch; one list of all statuses learns the others' creation times.
    assert routes(sim) == ["details", "list"]
    assert state.batch_key is None
    assert set(state.created) == {*quick, *hanging}
    sim.clear_requests()
    verdict = await check_round(client, state)
    assert verdict.status is WaitStatus.PENDING
    assert routes(sim) == ["list"]
    query = sim.requests[0].query
    assert sorted(query["statuses"]) == ["CANCELLED", "COMPLETED", "FAILED"]
    assert query["since"] < query["until"]
    assert state.pending() == hanging


async def test_a_round_costs_the_same_for_forty_unrelated_runs(
    client: AsyncHatchetClient, sim: HatchetSimulator
) -> None:
    sim.register_workflow("staggered", "succeed", duration=0.3)
    ids = [
        await client.send(
            endpoints.trigger(
                TriggerRequest(
                    "staggered", {"i": i, "__sim__": {"duration": 1.0 + 0.02 * i}}, {TI_KEY: f"dag|run|task|{i}"}
                )
            )
        )
        for i in range(40)
    ]
    state = WaitState(tuple(ids), batch_field=TI_KEY)
    rounds: list[list[str]] = []
    pending: list[int] = []
    for _ in range(200):
        sim.clear_requests()
        pending.append(len(state.pending()))
        verdict = await check_round(client, state)
        rounds.append(routes(sim))
        if verdict.finished:
            break
        await asyncio.sleep(0.1)
    assert verdict.status is WaitStatus.SUCCESS
    assert verdict.outputs is not None and len(verdict.outputs) == 40
    # Each run has a batch key of its own (a mapped task's instances): after two lists show that the first run's
    # batch holds no other run, one list of the finished runs answers for all of them, round after round (a
    # last run left on its own is asked about directly).
    assert rounds[0] == ["details", "list"]
    assert rounds[1] == ["list", "list"]
    assert state.batch_key is None
    for left, requests in zip(pending[2:], rounds[2:], strict=True):
        assert [r for r in requests if r != "details"] == (["list"] if left > 1 else ["status"])
    # The lists are read with payloads: a finished row brings its outputs, named from the step the first run's
    # details taught. Only a run answered by a status request is read again for its outputs.
    answered_alone = sum(r.count("status") for r in rounds)
    assert sum(r.count("details") for r in rounds[1:]) <= answered_alone
    assert verdict.outputs == [(await client.send(endpoints.run_details(i))).task_outputs() for i in ids]


async def test_a_crowded_window_makes_a_round_poll_the_unfinished_runs_one_by_one(
    client: AsyncHatchetClient, sim: HatchetSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paging, "RUN_PAGE_SIZE", 2)
    first = await trigger(client, "forever", 2)
    await trigger(client, "etl", 10)  # someone else's runs, finished in the waited runs' creation window
    last = await trigger(client, "forever", 2)
    hanging = [*first, *last]
    state = WaitState(tuple(hanging), batch_field=TI_KEY)
    await asyncio.sleep(0.2)
    for _ in range(2):
        await check_round(client, state)
    # The list of finished runs took more pages than there are runs left: the next round asks each run instead.
    assert state.window_pages > len(hanging)
    sim.clear_requests()
    await check_round(client, state)
    assert routes(sim) == ["status"] * 4
    assert {r.path.split("/")[-2] for r in sim.requests} == set(hanging)


async def test_a_batch_and_unrelated_runs_cost_two_lists_per_round(
    client: AsyncHatchetClient, sim: HatchetSimulator
) -> None:
    batch = await trigger(client, "forever", 20, **{TI_KEY: "dag|run|bulk|-1"})
    loose = await trigger(client, "forever", 20)
    ids = [i for pair in zip(batch, loose, strict=True) for i in pair]
    state = WaitState(tuple(ids), batch_field=TI_KEY)
    await asyncio.sleep(0.1)
    rounds = []
    for _ in range(4):
        sim.clear_requests()
        await check_round(client, state)
        rounds.append(routes(sim))
    assert rounds == [["details", "list"], ["list", "list"], ["list", "list"], ["list", "list"]]
    assert state.batch_key == "dag|run|bulk|-1"
    assert set(state.statuses) == set(ids)


async def test_outputs_are_read_only_when_wanted(client: AsyncHatchetClient, sim: HatchetSimulator) -> None:
    ids = await trigger(client, "etl", 10)
    state = WaitState(tuple(ids), batch_field=TI_KEY)
    await asyncio.sleep(0.2)
    sim.clear_requests()
    verdict = await wait(client, state, fetch_outputs=False)
    assert verdict.status is WaitStatus.SUCCESS
    assert verdict.outputs is None
    assert "outputs" not in verdict.to_payload()
    assert routes(sim).count("details") == 1  # the first run's, for its batch key


async def test_explicit_batch_key_costs_one_list_per_round_and_details_once(
    client: AsyncHatchetClient, sim: HatchetSimulator
) -> None:
    sim.register_workflow("staggered", "succeed", duration=0.3)
    ids = await trigger(client, "staggered", 20, **{TI_KEY: "dag|run|bulk|-1"})
    state = WaitState(tuple(ids), batch_key="dag|run|bulk|-1", batch_field=TI_KEY)
    rounds: list[list[str]] = []
    for _ in range(200):
        sim.clear_requests()
        verdict = await check_round(client, state)
        rounds.append(routes(sim))
        if verdict.finished:
            break
        await asyncio.sleep(0.05)
    assert verdict.status is WaitStatus.SUCCESS
    assert len(rounds) > 1
    assert all(r == ["list"] for r in rounds[:-1])
    # With no details read before, the outputs' task name comes from one run's details.
    assert sorted(rounds[-1]) == ["details", "list"]
    assert verdict.outputs == [(await client.send(endpoints.run_details(i))).task_outputs() for i in ids]
    list_query = next(r for r in sim.requests if r.route == "list").query
    assert list_query["additional_metadata"] == [f"{TI_KEY}:dag|run|bulk|-1"]
    assert list_query["include_payloads"] == ["true"]


async def test_the_last_few_unfinished_runs_of_a_listed_batch_are_asked_about_one_by_one(
    client: AsyncHatchetClient, sim: HatchetSimulator
) -> None:
    """With ``by_one`` (the rounds that confirm what the run-event stream told): a list of the whole batch, with every
    output, to learn about a few runs costs more than their status reads."""
    done = await trigger(client, "etl", 18, **{TI_KEY: "b"})
    hanging = await trigger(client, "forever", 4, **{TI_KEY: "b"})
    state = WaitState(tuple(done + hanging), batch_key="b", batch_field=TI_KEY)
    await wait_until_finished(sim, done)
    sim.clear_requests()
    assert (await check_round(client, state, by_one=4)).status is WaitStatus.PENDING
    assert routes(sim) == ["list"]
    sim.clear_requests()
    assert (await check_round(client, state, by_one=3)).status is WaitStatus.PENDING
    assert routes(sim) == ["list"]  # more unfinished than by_one
    sim.clear_requests()
    assert (await check_round(client, state, by_one=4)).status is WaitStatus.PENDING
    assert routes(sim) == ["status"] * 4
    await client.send(endpoints.cancel(hanging))
    await wait_until_finished(sim, hanging)
    sim.clear_requests()
    verdict = await check_round(client, state, by_one=4)
    assert verdict.status is WaitStatus.CANCELLED
    assert "list" not in routes(sim) and routes(sim).count("status") == 4


async def wait_until_finished(sim: HatchetSimulator, run_ids: list[str]) -> None:
    await until(lambda: all(sim.run_status(i) in TERMINAL for i in run_ids), "the runs finished", timeout=5.0,
                every=0.01)


async def test_batch_key_is_detected_from_the_first_run(client: AsyncHatchetClient, sim: HatchetSimulator) -> None:
    ids = await trigger(client, "forever", 10, **{TI_KEY: "k1"})
    unrelated = await trigger(client, "forever", 5, **{TI_KEY: "k2"})
    state = WaitState(tuple(ids), batch_field=TI_KEY)
    sim.clear_requests()
    await check_round(client, state)
    assert routes(sim) == ["details", "list"]
    assert state.batch_key == "k1"
    sim.clear_requests()
    await check_round(client, state)
    assert routes(sim) == ["list"]
    assert set(state.statuses) == set(ids)
    assert not set(unrelated) & set(state.statuses)


async def test_an_unreadable_first_run_defers_the_batch_instead_of_polling_each_run(
    client: AsyncHatchetClient, sim: HatchetSimulator
) -> None:
    sim.visibility_delay = 0.3
    ids = await trigger(client, "forever", 8, **{TI_KEY: "fresh"})
    state = WaitState(tuple(ids), not_found_grace=30, batch_field=TI_KEY)
    sim.clear_requests()
    verdict = await check_round(client, state)
    assert verdict.status is WaitStatus.PENDING
    assert [(r.route, r.status) for r in sim.requests] == [("details", 404)]
    assert state.batch_key is None
    await asyncio.sleep(0.35)
    sim.clear_requests()
    await check_round(client, state)
    assert routes(sim) == ["details", "list"]
    assert state.batch_key == "fresh"
    assert set(state.statuses) == set(ids)


async def test_a_batch_not_listed_yet_costs_one_list_until_it_is(
    client: AsyncHatchetClient, sim: HatchetSimulator
) -> None:
    sim.visibility_delay = 0.3
    ids = await trigger(client, "forever", 6, **{TI_KEY: "k0"})
    state = WaitState(tuple(ids), batch_key="k0", not_found_grace=30, batch_field=TI_KEY)
    sim.clear_requests()
    await check_round(client, state)
    assert routes(sim) == ["list"]
    await asyncio.sleep(0.35)
    sim.clear_requests()
    await check_round(client, state)
    assert routes(sim) == ["list"]
    assert set(state.statuses) == set(ids)


async def test_another_batch_listed_by_a_server_that_drops_the_filter_does_not_count_as_this_one(
    client: AsyncHatchetClient, sim: HatchetSimulator
) -> None:
    sim.faults = Faults(drop_colon_filters=True)  # Airflow run ids hold a ":", so the batch filter is dropped
    sim.visibility_delay = 0.3
    await trigger(client, "forever", 3, **{TI_KEY: "other|manual__2025-01-01T00:00:00+00:00|t|-1"})
    await asyncio.sleep(0.35)
    key = "mine|manual__2025-01-01T00:00:00+00:00|t|-1"
    ids = await trigger(client, "forever", 6, **{TI_KEY: key})
    state = WaitState(tuple(ids), batch_key=key, not_found_grace=30, batch_field=TI_KEY)
    sim.clear_requests()
    await check_round(client, state)
    assert routes(sim) == ["list"]
    assert state.batch_key == key  # not taken for a wrong key: the listed runs are another batch's
    await asyncio.sleep(0.35)
    await check_round(client, state)
    assert set(state.statuses) == set(ids) and state.batch_key == key


async def test_runs_outside_the_batch_are_polled_one_by_one_then_listed(
    client: AsyncHatchetClient, sim: HatchetSimulator
) -> None:
    batch = await trigger(client, "forever", 4, **{TI_KEY: "k"})
    loose = await trigger(client, "forever", 2)
    state = WaitState((*batch, *loose), batch_key="k", batch_field=TI_KEY)
    sim.clear_requests()
    await check_round(client, state)
    assert sorted(routes(sim)) == ["list"]  # the others may just not be listed yet
    sim.clear_requests()
    await check_round(client, state)
    assert sorted(routes(sim)) == ["list", "status", "status"]
    assert set(state.statuses) == {*batch, *loose}
    # Seen, and still missing from the batch list: they are not in the batch. One list learns when they were
    # created, then the list of finished runs answers for them.
    sim.clear_requests()
    await check_round(client, state)
    assert routes(sim) == ["list", "list"]
    assert set(state.created) >= set(loose)
    sim.clear_requests()
    await check_round(client, state)
    assert routes(sim) == ["list", "list"]
    assert sim.requests[1].query["statuses"]


async def test_a_wrong_batch_key_falls_back_to_status_polls(client: AsyncHatchetClient, sim: HatchetSimulator) -> None:
    await trigger(client, "forever", 2, **{TI_KEY: "someone-else"})
    mine = await trigger(client, "etl", 3)
    state = WaitState(tuple(mine), batch_key="someone-else", batch_field=TI_KEY)
    verdict = await wait(client, state)
    assert verdict.status is WaitStatus.SUCCESS
    assert state.batch_key is None


async def test_transient_list_error_keeps_the_batch_pending(client: AsyncHatchetClient, sim: HatchetSimulator) -> None:
    ids = await trigger(client, "etl", 3, **{TI_KEY: "b"})
    sim.fail_next("list", 2, 500)
    state = WaitState(tuple(ids), batch_key="b", batch_field=TI_KEY)
    sim.clear_requests()
    first = await check_round(client, state)
    assert first.status is WaitStatus.PENDING
    assert "status" not in routes(sim)
    assert (await wait(client, state)).status is WaitStatus.SUCCESS


class _InFlight(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.current = self.peak = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.current += 1
        self.peak = max(self.peak, self.current)
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.current -= 1


async def test_requests_in_flight_are_bounded(config: ClientConfig, sim: HatchetSimulator) -> None:
    counter = _InFlight(sim.transport())
    async with AsyncHatchetClient(config, retry=FAST_RETRY, transport=counter) as c:
        ids = await trigger(c, "etl", 30)
        await asyncio.sleep(0.2)
        sim.faults = Faults(latency=0.01, routes=("status", "details"))
        # A window list that cost more pages than there are runs: each run is asked about on its own.
        state = WaitState(tuple(ids), detect_batch=False, batch_field=TI_KEY, window_pages=len(ids))
        state.created.update({i: datetime.now(timezone.utc) for i in ids})
        verdict = await check_round(c, state, max_concurrency=4)
        sim.clear_faults()
    assert verdict.status is WaitStatus.SUCCESS
    assert counter.peak == 4


async def test_cancel_unfinished_cancels_only_pending_runs(client: AsyncHatchetClient, sim: HatchetSimulator) -> None:
    done = await trigger(client, "etl")
    hanging = await trigger(client, "forever", 2)
    state = WaitState((*done, *hanging), batch_field=TI_KEY)
    await asyncio.sleep(0.2)
    await check_round(client, state)
    assert sorted(await cancel_unfinished(client, state)) == sorted(hanging)
    await asyncio.sleep(0.2)
    assert [sim.run_status(i) for i in hanging] == ["CANCELLED", "CANCELLED"]
    assert sim.run_status(done[0]) == "COMPLETED"


def test_sync_round_runs_the_same_logic(config: ClientConfig, sim: HatchetSimulator) -> None:
    client_ids = asyncio.run(_trigger_with_fresh_client(config, "broken"))
    state = WaitState(tuple(client_ids), batch_field=TI_KEY)
    for _ in range(100):
        verdict = sync_round(config, state)
        if verdict.finished:
            break
    assert verdict.status is WaitStatus.FAILED
    assert "ValueError: bad row 7" in verdict.message


def test_a_sync_round_error_is_not_chained_to_the_loop_probe(config: ClientConfig) -> None:
    ghost = str(uuid.uuid4())
    state = WaitState((ghost,), started_at=0.0, not_found_grace=0.0)
    with pytest.raises(RunWaitError, match=f"{ghost} was not found") as raised:
        for _ in range(5):
            sync_round(config, state)
    assert not any(isinstance(e, RuntimeError) for e in chained(raised.value))


async def test_sync_round_works_inside_a_running_loop(config: ClientConfig, client: AsyncHatchetClient) -> None:
    ids = await trigger(client, "etl")
    await asyncio.sleep(0.2)
    verdict = sync_round(config, WaitState(tuple(ids), batch_field=TI_KEY))
    assert verdict.status is WaitStatus.SUCCESS


async def _trigger_with_fresh_client(config: ClientConfig, workflow: str) -> list[str]:
    async with AsyncHatchetClient(config, retry=FAST_RETRY) as c:
        return await trigger(c, workflow)


TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


class _BusyServer(httpx.AsyncBaseTransport):
    """Between the pages of every list, 0.1 s of the simulator's clock pass (runs finish mid-scan) and someone
    triggers a run (rows shift); each list page is logged with what it answered."""

    def __init__(self, sim: HatchetSimulator, clock: ManualClock, config: ClientConfig) -> None:
        self.inner = sim.transport()
        self.clock = clock
        self.other = HatchetClient(config, transport=sim.transport())
        self.pages: list[tuple[int, int, list[str]]] = []  # (offset, status, row ids)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "GET" and request.url.path.endswith("/workflow-runs"):
            offset = int(request.url.params.get("offset", "0"))
            rows = [r["metadata"]["id"] for r in response.json()["rows"]] if response.status_code == 200 else []
            self.pages.append((offset, response.status_code, rows))
            self.clock.advance(0.1)
            self.other.send(endpoints.trigger(TriggerRequest("noise", {})))
        return response

    def scans(self, since: int) -> list[list[tuple[int, int, list[str]]]]:
        """The list pages logged from index ``since`` on, grouped by scan (a scan starts at offset 0)."""
        grouped: list[list[tuple[int, int, list[str]]]] = []
        for page in self.pages[since:]:
            if page[0] == 0 or not grouped:
                grouped.append([])
            grouped[-1].append(page)
        return grouped


@pytest.mark.parametrize("lag", [0.0, 1.5], ids=["quiet", "lagging"])
async def test_no_finish_is_missed_when_runs_finish_during_a_list_scan(
    lag: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every run that had finished (and was readable) when a round began is known finished after that round,
    though runs finish and new runs are created between the pages of each list. Only a round whose list failed,
    or stopped early because asking the rest one by one costs less, may leave it to the next round."""
    monkeypatch.setattr(paging, "RUN_PAGE_SIZE", 4)
    clock = ManualClock()
    sim = HatchetSimulator(visibility_delay=lag, clock=clock)
    sim.register_workflow("job", "succeed", duration=1.0)
    sim.register_workflow("noise", "succeed", duration=0.2)
    config = ClientConfig.from_token(sim.token)
    busy = _BusyServer(sim, clock, config)
    created: dict[str, float] = {}
    async with AsyncHatchetClient(config, retry=FAST_RETRY, transport=busy) as client:
        ids = []
        for i in range(40):
            ids.append(
                await client.send(
                    endpoints.trigger(TriggerRequest("job", {"__sim__": {"duration": 0.5 + (i * 7 % 40) * 0.2}}))
                )
            )
            created[ids[-1]] = clock()
            clock.advance(0.05)
        state = WaitState(tuple(ids), not_found_grace=600, batch_field=TI_KEY)
        owed: set[str] = set()
        rounds = duplicates = 0
        for rounds in range(1, 200):
            if rounds == 2:
                sim.fail_next("list", FAST_RETRY.attempts, 503)
            now = clock()
            finished = {i for i in ids if sim.run_status(i) in TERMINAL and created[i] <= now - lag}
            mark = len(busy.pages)
            verdict = await check_round(client, state, fetch_outputs=False)
            known = {i for i, status in state.statuses.items() if status.is_terminal}
            assert owed <= known, f"round {rounds}: still not known finished: {owed - known}"
            scans = busy.scans(mark)
            for scan in scans:
                seen = [row for _, _, rows in scan for row in rows]
                duplicates += len(seen) - len(set(seen))
            cut = any(page[1] != 200 for scan in scans for page in scan) or any(
                len(scan[-1][2]) == paging.RUN_PAGE_SIZE for scan in scans
            )
            if cut:
                owed = finished - known
            else:
                assert finished <= known, f"round {rounds}: missed {finished - known}"
                owed = set()
            if verdict.finished:
                break
            clock.advance(1.0)
    assert verdict.status is WaitStatus.SUCCESS
    assert {state.statuses[i].value for i in ids} == {"COMPLETED"}
    # The hard cases happened: lists of several pages, rows seen twice as runs finished or were created, a
    # failed list.
    assert max(len(scan) for scan in busy.scans(0)) > 2
    assert duplicates > 0
    assert any(status == 503 for _, status, _ in busy.pages)
    busy.other.close()


def test_a_bridge_keeps_one_client_across_rounds_and_closes_it_on_the_process_loop(
    config: ClientConfig, sim: HatchetSimulator, count_async_clients: Callable[[], list[Any]],
    closed_async_clients: list[Any],
) -> None:
    ids = asyncio.run(_trigger_with_fresh_client(config, "forever"))
    ids += asyncio.run(_trigger_with_fresh_client(config, "forever"))
    clients = count_async_clients()
    closed = closed_async_clients
    state = WaitState(tuple(ids), batch_field=TI_KEY)
    with Bridge(lambda: AsyncHatchetClient(config, retry=FAST_RETRY)) as bridge:
        for _ in range(3):
            assert bridge.call(lambda c: check_round(c, state)).status is WaitStatus.PENDING
        assert not [c for c in closed if c in clients]
    assert len(clients) == 1
    assert [c for c in closed if c in clients] == clients
    assert bridge_threads() == 1  # the process's one loop, shared by every bridge and sync client
    assert set(state.statuses) == set(ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_sync_client_used_before_a_fork_sends_from_the_forked_child(
    config: ClientConfig, sim: HatchetSimulator
) -> None:
    """Airflow's executors fork after parsing DAGs: the parent's loop thread is not copied into the child, which
    gets a loop and a client of its own."""
    with HatchetClient(config, retry=FAST_RETRY) as client:
        run_id = client.send(endpoints.trigger(TriggerRequest("etl", {"i": 0})))
        pid = os.fork()
        if pid == 0:  # the child: it must never return into pytest
            code = 1
            try:
                signal.alarm(30)  # a child stuck on the parent's loop is killed, and the test fails
                client.send(endpoints.run_details(run_id))
                code = 0 if bridge_threads() == 1 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert client.send(endpoints.run_details(run_id)).run.id == run_id


def bridge_threads() -> int:
    return sum(t.name == "hatchet-bridge" for t in threading.enumerate())


def test_an_interrupted_call_is_cancelled_and_its_cleanup_ends_before_the_client_closes(
    config: ClientConfig, closed_async_clients: list[Any]
) -> None:
    """As Airflow's execution_timeout does: a signal raises in the thread blocked on the bridge."""
    cleanups: list[int] = []

    async def hang(client: AsyncHatchetClient) -> None:
        try:
            await anyio.sleep(60)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.1)  # cleanup that takes a while, like cancelling runs at a deadline
                cleanups.append(len(closed_async_clients))

    def interrupt(signum: int, frame: Any) -> None:
        raise TimeoutError("execution_timeout")

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(TimeoutError), Bridge(lambda: AsyncHatchetClient(config)) as bridge:
            bridge.call(hang)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert cleanups == [0]  # the cleanup ran, before any client closed
    assert len(closed_async_clients) == 1
    assert bridge_threads() == 1


async def test_a_replayed_dag_run_reading_failed_between_its_tasks_stays_pending(
    client: AsyncHatchetClient, sim: HatchetSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_hatchet.client import waiter

    sim.replay_delay, sim.replay_gap = 0.0, 60.0  # the replay shows at once; the gap after extract is long
    run_id = await client.send(
        endpoints.trigger(TriggerRequest("multi", {"__sim__": {"behaviour": "fail_first_attempt"}}))
    )
    assert (await wait(client, WaitState((run_id,), batch_field=TI_KEY))).status is WaitStatus.FAILED
    await client.send(endpoints.replay([run_id]))
    for _ in range(500):  # until extract, re-run, completed
        if (await client.send(endpoints.run_details(run_id))).tasks_in_order()[0].status is RunStatus.COMPLETED:
            break
        await asyncio.sleep(0.02)
    # In the gap: the run reads FAILED, its failed task (load) still the first attempt.
    assert await client.send(endpoints.run_status(run_id)) is RunStatus.FAILED

    verdict = await check_round(client, WaitState((run_id,), batch_field=TI_KEY))
    assert verdict.status is WaitStatus.PENDING

    monkeypatch.setattr(waiter, "REPLAY_GRACE", 0.0)  # past the grace, FAILED is believed
    verdict = await check_round(client, WaitState((run_id,), batch_field=TI_KEY))
    assert verdict.status is WaitStatus.FAILED
