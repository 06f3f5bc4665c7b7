"""Waiting on runs that share no batch key, on both servers: what a round costs, and that no finish is missed.

Each round of ``client/waiter.py`` answers such runs with a paged list of the runs finished in their creation
window. On a real Hatchet that list is ordered ``inserted_at DESC`` and rows shift while it is paged (runs finish,
runs are created), and reads lag writes. Before each round the test reads every run's status on its own (the
oracle); after the round, every run the oracle saw finished must be known finished, unless a list request of the
round failed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_hatchet._identity import TI_KEY
from airflow_provider_hatchet.client import AsyncHatchetClient, TriggerRequest, endpoints, paging, waiter
from airflow_provider_hatchet.client.errors import HatchetError
from airflow_provider_hatchet.client.wait_event import WaitEvent, WaitStatus
from airflow_provider_hatchet.client.waiter import WaitState
from tests.real.conftest import Backend

RUNS = 40
PAGE_SIZE = 7
ROUND_INTERVAL = 0.5


@dataclass
class ListLog:
    """Every list page a client asked for, as (offset, row ids), and the list requests that failed."""

    pages: list[tuple[int, list[str]]] = field(default_factory=list)
    failures: int = 0

    def watch(self, client: AsyncHatchetClient) -> None:
        """Record the client's list calls (the waiter's scans send ``endpoints.list_runs``).

        :param client: the client the waiter uses.
        """
        send = client.send

        async def logged(call: endpoints.Call[Any]) -> Any:
            if call_name(call) != "list_runs":
                return await send(call)
            try:
                page = await send(call)
            except HatchetError:
                self.failures += 1
                raise
            self.pages.append((int(dict(call.params or ()).get("offset", 0)), [row.id for row in page.rows]))
            return page

        client.send = logged  # type: ignore[method-assign]

    def scans(self, since: int = 0) -> list[list[list[str]]]:
        """The pages logged from index ``since`` on, grouped by scan (a scan starts at offset 0)."""
        grouped: list[list[list[str]]] = []
        for offset, rows in self.pages[since:]:
            if offset == 0 or not grouped:
                grouped.append([])
            grouped[-1].append(rows)
        return grouped


def call_name(call: endpoints.Call[Any]) -> str:
    """The waiter's reads by name: ``list_runs``, ``get_run`` (details) or ``get_run_status``."""
    names = {"GET /api/v1/stable/tenants/{tenant}/workflow-runs": "list_runs",
             "GET /api/v1/stable/workflow-runs/{id}": "get_run",
             "GET /api/v1/stable/workflow-runs/{id}/status": "get_run_status"}
    return names.get(call.endpoint, call.endpoint)


def keep_creating(backend: Backend, stop: threading.Event, created: list[str]) -> None:
    """Trigger a short run every 0.2 s until stopped: rows the waiter's lists must page past."""
    client = backend.client()
    while not stop.is_set():
        created.append(
            client.send(
                endpoints.trigger(TriggerRequest("demo-etl", {"__sim__": {"duration": 0.2}}, {"test_tag": backend.tag}))
            )
        )
        stop.wait(0.2)


def test_no_finish_is_missed_while_runs_finish_and_start_during_list_scans(
    backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> None:
    monkeypatch.setattr(paging, "RUN_PAGE_SIZE", PAGE_SIZE)
    if backend.sim is not None:
        backend.sim.visibility_delay = 0.3  # a lagging server: new runs are unreadable for a moment
    client = backend.client()
    ids = [
        client.send(
            endpoints.trigger(
                TriggerRequest(
                    "demo-etl", {"i": i, "__sim__": {"duration": 0.5 + (i * 7 % RUNS) * 0.1}}, {"test_tag": backend.tag}
                )
            )
        )
        for i in range(RUNS)
    ]
    stop, noise = threading.Event(), []
    creator = threading.Thread(target=keep_creating, args=(backend, stop, noise), daemon=True)
    creator.start()
    log = ListLog()
    state = WaitState(tuple(ids), not_found_grace=120, batch_field=TI_KEY)

    async def wait() -> tuple[WaitEvent, int]:
        owed: set[str] = set()
        async with AsyncHatchetClient(backend.config()) as waiting:
            log.watch(waiting)
            for number in range(1, 200):
                finished = {i for i in ids if _finished(client, i)}
                failures = log.failures
                verdict = await waiter.check_round(waiting, state, fetch_outputs=False)
                known = {i for i, status in state.statuses.items() if status.is_terminal}
                assert owed <= known, f"round {number}: still not known finished: {sorted(owed - known)}"
                if log.failures > failures:
                    owed = finished - known
                else:
                    assert finished <= known, f"round {number}: missed {sorted(finished - known)}"
                    owed = set()
                if verdict.finished:
                    return verdict, number
                await asyncio.sleep(ROUND_INTERVAL)
        raise AssertionError("the runs did not finish")

    try:
        verdict, rounds = asyncio.run(wait())
    finally:
        stop.set()
        creator.join(timeout=10)

    assert verdict.status is WaitStatus.SUCCESS
    assert {state.statuses[i].value for i in ids} == {"COMPLETED"}
    scans = log.scans()
    pages_per_scan = [len(scan) for scan in scans]
    duplicates = sum(len(rows) - len(set(rows)) for rows in ([r for page in scan for r in page] for scan in scans))
    # Lists did the work, over several pages, while other runs were being created.
    assert max(pages_per_scan) > 1
    assert len(noise) > 5
    figures = {
        "backend": backend.kind,
        "rounds": rounds,
        "scans": len(scans),
        "pages_per_scan": pages_per_scan,
        "rows_seen_twice": duplicates,
        "failed_lists": log.failures,
        "runs_created_meanwhile": len(noise),
    }
    for key, value in figures.items():
        record_property(key, value)
    with capfd.disabled():
        print("\nno finish missed: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def _finished(client: Any, run_id: str) -> bool:
    try:
        return bool(client.send(endpoints.run_status(run_id)).is_terminal)
    except HatchetError:
        return False


def test_a_round_costs_one_list_for_thirty_unrelated_runs(backend: Backend) -> None:
    """Runs that share no batch key: the first run's details, one list to learn when the runs were created, then
    one list per round whatever the number of unfinished runs, and the outputs from those lists."""
    client = backend.client()
    ids = [
        client.send(
            endpoints.trigger(
                TriggerRequest(
                    "demo-etl",
                    {"i": i, "__sim__": {"duration": 2.0 + 0.1 * i}},
                    {"airflow_ti": f"wait_cost|{backend.tag}|{i}", "test_tag": backend.tag},
                )
            )
        )
        for i in range(30)
    ]
    state = WaitState(tuple(ids), batch_field=TI_KEY)
    rounds: list[dict[str, int]] = []
    pending: list[int] = []

    async def wait() -> WaitEvent:
        async with AsyncHatchetClient(backend.config()) as waiting:
            calls: dict[str, int] = {}
            send = waiting.send

            def counted(call: endpoints.Call[Any]) -> Any:
                name = call_name(call)
                calls[name] = calls.get(name, 0) + 1
                return send(call)

            waiting.send = counted  # type: ignore[method-assign]
            while True:
                calls.clear()
                pending.append(len(state.pending()))
                verdict = await waiter.check_round(waiting, state)
                rounds.append(dict(calls))
                if verdict.finished:
                    return verdict
                await asyncio.sleep(ROUND_INTERVAL)

    time.sleep(0.5)
    verdict = asyncio.run(wait())
    assert verdict.status is WaitStatus.SUCCESS
    assert verdict.outputs is not None
    assert [output["run"]["echo"]["i"] for output in verdict.outputs] == list(range(30))
    # Round 1 reads the first run (its batch holds no other run) and lists its batch; round 2 lists the batch again,
    # gives it up and lists the runs by creation; from then on one list of the finished runs per round, or one
    # status request when a single run is left.
    assert len(rounds) >= 5
    for left, calls in zip(pending[2:], rounds[2:], strict=True):
        asked = {name: n for name, n in calls.items() if name != "get_run"}
        assert asked == ({"list_runs": 1} if left > 1 else {"get_run_status": 1}), rounds
    # Details: the first run's in round 1, which names the task for the lists' outputs; after that only a run a
    # status request answered is read again, at the end.
    assert rounds[0]["get_run"] == 1
    assert sum(r.get("get_run", 0) for r in rounds[1:-1]) == 0
    assert rounds[-1].get("get_run", 0) <= sum(r.get("get_run_status", 0) for r in rounds)
