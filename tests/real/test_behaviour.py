"""Measure how the real Hatchet server behaves, with raw httpx, and record it in build/real/behaviour.json.

Each test asserts the qualitative behaviour the provider relies on (what answers 404 and when it stops, what a
filter matches, what a collision returns) and records the timings without asserting them: they depend on the
machine. docs/hatchet-behaviour.md holds the figures of one run; the simulator's timing defaults follow them.

Run with ``make hatchet-up && make test-real``, or only these tests:
``set -a; . build/hatchet/env; set +a; .venv/bin/python -m pytest -q -p no:cacheprovider -m real_hatchet
tests/real/test_behaviour.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_hatchet.client import ClientConfig

pytestmark = pytest.mark.real_hatchet

REPO_ROOT = Path(__file__).resolve().parents[2]
OUTPUT = REPO_ROOT / "build" / "real" / "behaviour.json"
COMMAND = "make hatchet-up && make test-real"
SAMPLES = 30
POLL = 0.005  # seconds between polls while waiting for a change
PATIENCE = 30.0  # seconds before a wait counts as a failure
IN_FLIGHT = 10  # concurrent triggers where a test needs many runs at once
TAG_KEY = "behaviour_probe"
LIVE_STATUSES = {"QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"}


def figures(seconds: list[float]) -> dict[str, Any]:
    """Median, max, min and count of durations, in seconds."""
    return {
        "n": len(seconds),
        "median": round(statistics.median(seconds), 4),
        "max": round(max(seconds), 4),
        "min": round(min(seconds), 4),
    }


def ms(fig: dict[str, Any]) -> str:
    """``median/max ms (n=..)`` for the terminal summary."""
    return f"{fig['median'] * 1000:.0f}/{fig['max'] * 1000:.0f} ms (n={fig['n']})"


def body_of(response: httpx.Response) -> Any:
    """The decoded JSON body, or the text when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return response.text


class Api:
    """The raw REST calls the measurements need; every run carries ``behaviour_probe=<tag>``.

    :param client: an httpx client with the server URL and the token.
    :param tenant_id: the token's tenant.
    :param tag: unique to this test, to keep its runs apart from everyone else's.
    """

    def __init__(self, client: httpx.AsyncClient, tenant_id: str, tag: str) -> None:
        self.client = client
        self.tenant_id = tenant_id
        self.tag = tag
        self.since = (datetime.now(timezone.utc) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    async def trigger(self, workflow: str, input: dict[str, Any] | None = None,
                      metadata: dict[str, Any] | None = None, *, only_id: bool = True,
                      **extra: Any) -> tuple[httpx.Response, float, float]:
        """Trigger a run; return the response, the seconds it took, and the monotonic time of the answer."""
        body: dict[str, Any] = {"workflowName": workflow, "input": input or {},
                                "additionalMetadata": {TAG_KEY: self.tag, **(metadata or {})}, **extra}
        if only_id:
            body["return_only_id"] = True
        started = time.monotonic()
        response = await self.client.post(f"/api/v1/stable/tenants/{self.tenant_id}/workflow-runs/trigger",
                                          json=body)
        answered = time.monotonic()
        return response, answered - started, answered

    async def run_id(self, workflow: str, input: dict[str, Any] | None = None,
                     metadata: dict[str, Any] | None = None) -> str:
        """Trigger a run with ``return_only_id`` and return its id."""
        response, _, _ = await self.trigger(workflow, input, metadata)
        assert response.status_code == 200, response.text
        return str(response.json()["run"]["metadata"]["id"])

    async def status(self, run_id: str) -> httpx.Response:
        return await self.client.get(f"/api/v1/stable/workflow-runs/{run_id}/status")

    async def details(self, run_id: str) -> httpx.Response:
        return await self.client.get(f"/api/v1/stable/workflow-runs/{run_id}")

    async def list(self, filters: list[str], operator: str | None = None, *, offset: int = 0, limit: int = 100,
                   **params: str) -> httpx.Response:
        """List workflow runs with raw ``additional_metadata`` entries (``k:v``), as sent."""
        query: list[tuple[str, str]] = [("since", self.since), ("only_tasks", "false"), ("offset", str(offset)),
                                        ("limit", str(limit))]
        query += [("additional_metadata", item) for item in filters]
        if operator:
            query.append(("additional_metadata_operator", operator))
        query += list(params.items())
        return await self.client.get(f"/api/v1/stable/tenants/{self.tenant_id}/workflow-runs", params=query)

    async def list_ids(self, filters: list[str], operator: str | None = None, **params: str) -> list[str]:
        response = await self.list(filters, operator, **params)
        assert response.status_code == 200, response.text
        return [row["metadata"]["id"] for row in response.json()["rows"]]

    async def cancel(self, run_ids: list[str]) -> httpx.Response:
        return await self.client.post(f"/api/v1/stable/tenants/{self.tenant_id}/tasks/cancel",
                                      json={"externalIds": run_ids})

    async def wait_status(self, run_id: str, wanted: set[str], timeout: float = PATIENCE) -> str:
        """Poll the status until it is one of ``wanted`` (404 counts as not yet)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = await self.status(run_id)
            if response.status_code == 200 and response.json() in wanted:
                return str(response.json())
            assert response.status_code in (200, 404), response.text
            await asyncio.sleep(0.02)
        raise AssertionError(f"run {run_id} not in {wanted} after {timeout}s")

    async def wait_listed(self, filters: list[str], count: int, timeout: float = PATIENCE) -> list[str]:
        deadline = time.monotonic() + timeout
        ids: list[str] = []
        while time.monotonic() < deadline:
            ids = await self.list_ids(filters)
            if len(ids) >= count:
                return ids
            await asyncio.sleep(0.05)
        raise AssertionError(f"{len(ids)} of {count} runs listed after {timeout}s")


async def bounded(calls: list[Callable[[], Awaitable[Any]]], limit: int = IN_FLIGHT) -> list[Any]:
    """Await the calls with at most ``limit`` in flight; results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(call) for call in calls)))


class Recorder:
    """Collects each test's figures, then merges them into build/real/behaviour.json."""

    def __init__(self) -> None:
        self.sections: dict[str, dict[str, Any]] = {}
        self.summary: list[str] = []

    def add(self, name: str, data: dict[str, Any], *lines: str) -> None:
        self.sections[name] = {
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "load_average_1m": round(os.getloadavg()[0], 2),
            **data,
        }
        self.summary += [f"{name}: {line}" for line in lines]


@pytest.fixture(scope="module")
def recorder(request: pytest.FixtureRequest, real_hatchet_settings: dict[str, str]) -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    if not recorder.sections:
        return
    version = httpx.get(real_hatchet_settings["HATCHET_CLIENT_SERVER_URL"] + "/api/v1/version", timeout=10)
    engine = version.json().get("version") if version.status_code == 200 else None
    engine = engine or real_hatchet_settings.get("HATCHET_ENGINE_VERSION", "unknown")
    previous: dict[str, Any] = {}
    if OUTPUT.exists():
        try:
            previous = json.loads(OUTPUT.read_text())
        except ValueError:
            previous = {}
    sections = previous.get("sections", {}) if previous.get("engine_version") == engine else {}
    sections.update(recorder.sections)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps({
        "engine_version": engine,
        "cpus": os.cpu_count(),
        "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": COMMAND,
        "sections": dict(sorted(sections.items())),
    }, indent=2) + "\n")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        reporter.write_line("")
        reporter.write_line(f"hatchet behaviour (engine {engine}; median/max) -> {OUTPUT.relative_to(REPO_ROOT)}")
        for line in recorder.summary:
            reporter.write_line(f"  {line}")


@pytest.fixture
async def api(real_hatchet_settings: dict[str, str]) -> Any:
    config = ClientConfig.from_token(real_hatchet_settings["HATCHET_CLIENT_TOKEN"],
                                     server_url=real_hatchet_settings["HATCHET_CLIENT_SERVER_URL"])
    async with httpx.AsyncClient(
        base_url=config.server_url, headers={"Authorization": f"Bearer {config.token}"}, timeout=60,
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
    ) as client:
        yield Api(client, config.tenant_id, uuid.uuid4().hex[:12])


class LagSamples:
    """Read-lag samples, per endpoint, in seconds from the trigger's answer.

    A run becomes readable at some moment between the sending of the last request that missed it
    (``hidden_after``, 0 when none did) and the receipt of the first that found it (``first_ok``). On an idle
    server the two are a poll apart; on a busy one the requests themselves are slow, so the gap widens.
    """

    KINDS = ("status", "details", "list")

    def __init__(self) -> None:
        self.first_ok: dict[str, list[float]] = {kind: [] for kind in self.KINDS}
        self.hidden_after: dict[str, list[float]] = {kind: [] for kind in self.KINDS}
        self.request: dict[str, list[float]] = {kind: [] for kind in self.KINDS}
        self.misses = Counter[str]()
        self.first_status = Counter[str]()
        self.trigger_seconds: list[float] = []

    async def sample(self, api: Api, label: str) -> None:
        """Trigger one demo-etl run and poll the three endpoints concurrently until each shows it."""
        response, seconds, answered = await api.trigger("demo-etl", {}, {"behaviour_lag": label})
        assert response.status_code == 200, response.text
        run_id = response.json()["run"]["metadata"]["id"]
        self.trigger_seconds.append(seconds)
        fetch: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
            "status": lambda: api.status(run_id),
            "details": lambda: api.details(run_id),
            "list": lambda: api.list([f"behaviour_lag:{label}"]),
        }

        async def first_seen(kind: str) -> None:
            hidden_after = 0.0
            while True:
                sent = time.monotonic() - answered
                reply = await fetch[kind]()
                received = time.monotonic() - answered
                self.request[kind].append(received - sent)
                if kind == "list":
                    assert reply.status_code == 200, reply.text
                    ids = [row["metadata"]["id"] for row in reply.json()["rows"]]
                    assert ids in ([], [run_id])
                    seen = bool(ids)
                elif reply.status_code == 404:
                    assert reply.json() == {"message": "not found"}
                    seen = False
                else:
                    assert reply.status_code == 200, reply.text
                    seen = True
                    if kind == "status":
                        assert reply.json() in LIVE_STATUSES
                        self.first_status[reply.json()] += 1
                    else:
                        assert reply.json()["run"]["metadata"]["id"] == run_id
                if seen:
                    self.first_ok[kind].append(received)
                    self.hidden_after[kind].append(hidden_after)
                    return
                self.misses[kind] += 1
                hidden_after = sent
                assert received < PATIENCE, f"{kind} of {run_id} still missing after {PATIENCE}s"
                await asyncio.sleep(POLL)

        await asyncio.gather(*(first_seen(kind) for kind in self.KINDS))

    def report(self) -> dict[str, Any]:
        return {
            "first_ok": {kind: figures(values) for kind, values in self.first_ok.items()},
            "hidden_after": {kind: figures(values) for kind, values in self.hidden_after.items()},
            "samples_with_a_miss": {kind: sum(1 for v in values if v > 0)
                                    for kind, values in self.hidden_after.items()},
            "misses": dict(self.misses),
            "request_seconds": {kind: figures(values) for kind, values in self.request.items()},
            "first_status_read": dict(self.first_status),
            "trigger_only_id": figures(self.trigger_seconds),
        }

    def lines(self, prefix: str) -> list[str]:
        return [f"{prefix}{kind}: first 200 {ms(figures(self.first_ok[kind]))}, last miss sent at "
                f"{ms(figures(self.hidden_after[kind]))}" for kind in self.KINDS]


LAG_WHAT = ("seconds from the trigger's answer (return_only_id) to the receipt of the first 200 of each endpoint "
            "(first_ok; list: the first page holding the run, filtered by a unique metadata pair) and to the sending "
            "of the last request that missed it (hidden_after); the three endpoints polled concurrently, "
            f"{POLL * 1000:.0f} ms apart")


async def test_read_lag_after_a_trigger(api: Api, recorder: Recorder) -> None:
    """Status and details answer 404, and the list leaves the run out, until the OLAP copy has it."""
    samples = LagSamples()
    for i in range(SAMPLES):
        await samples.sample(api, f"{api.tag}-{i}")
    recorder.add("read_lag", {"what": LAG_WHAT, **samples.report()}, *samples.lines(""))


LOAD_RUNS = 400
LOAD_IN_FLIGHT = 32  # HatchetRunWorkflowsOperator's default max_concurrency: the load a bulk trigger makes
LOAD_SAMPLERS = 3


async def test_read_lag_while_the_server_is_busy(api: Api, recorder: Recorder) -> None:
    """The same while other triggers keep the server busy: the lag grows, but stays a short 404 window."""
    busy = True

    async def load() -> None:
        nonlocal busy
        try:
            await bounded([lambda: api.run_id("demo-etl", {}, {"behaviour_load": api.tag})
                           for _ in range(LOAD_RUNS)], LOAD_IN_FLIGHT)
        finally:
            busy = False

    samples = LagSamples()

    async def measure(sampler: int) -> None:
        i = 0
        while busy or i < 3:
            await samples.sample(api, f"{api.tag}-busy-{sampler}-{i}")
            i += 1

    started = time.monotonic()
    await asyncio.gather(load(), *(measure(sampler) for sampler in range(LOAD_SAMPLERS)))
    elapsed = time.monotonic() - started
    recorder.add("read_lag_busy", {
        "what": f"{LAG_WHAT}; {LOAD_SAMPLERS} samplers at once while {LOAD_RUNS} more demo-etl triggers run, "
                f"{LOAD_IN_FLIGHT} in flight "
                f"({LOAD_RUNS / elapsed:.0f} triggers/s over {elapsed:.1f} s)",
        **samples.report(),
    }, *samples.lines(f"busy ({LOAD_RUNS / elapsed:.0f} triggers/s): "))


async def test_trigger_latency_with_and_without_return_only_id(api: Api, recorder: Recorder) -> None:
    """With return_only_id the answer is a stub; without, the server waits until the run is readable."""
    only_id = []
    for i in range(SAMPLES):
        response, seconds, _ = await api.trigger("demo-etl", {"i": i})
        assert response.status_code == 200, response.text
        run = response.json()["run"]
        uuid.UUID(run["metadata"]["id"])
        assert run["status"] == ""  # the stub: nothing but the id is filled in
        assert response.json()["tasks"] is None
        only_id.append(seconds)

    async def full(i: int) -> tuple[float, str]:
        response, seconds, _ = await api.trigger("demo-etl", {"i": i}, only_id=False)
        assert response.status_code == 200, response.text
        run = response.json()["run"]
        assert run["status"] in LIVE_STATUSES
        readable = await api.status(run["metadata"]["id"])
        assert readable.status_code == 200, "a full trigger answers only once the run is readable"
        return seconds, str(run["status"])

    results = await bounded([lambda i=i: full(i) for i in range(SAMPLES)])
    with_details = figures([seconds for seconds, _ in results])
    result = figures(only_id)
    recorder.add("trigger_latency", {
        "return_only_id": result,
        "full": with_details,
        "full_in_flight": IN_FLIGHT,
        "full_status_in_answer": dict(Counter(status for _, status in results)),
    }, f"return_only_id {ms(result)}; without {ms(with_details)}")


async def test_cancel_latency(api: Api, recorder: Recorder) -> None:
    """A cancel is acknowledged at once and the status reads CANCELLED a moment later."""
    ids = await bounded([lambda: api.run_id("demo-hang") for _ in range(SAMPLES)])
    early_ids: list[str] = []
    try:
        for run_id in ids:
            await api.wait_status(run_id, {"RUNNING"})
        request_seconds, to_cancelled, after_answer, sequences = [], [], [], Counter[str]()
        for run_id in ids:
            started = time.monotonic()
            response = await api.cancel([run_id])
            answered = time.monotonic()
            request_seconds.append(answered - started)
            assert response.status_code == 200, response.text
            assert response.json() == {"ids": [run_id]}
            seen = ["RUNNING"]
            while True:
                status = (await api.status(run_id)).json()
                if status != seen[-1]:
                    seen.append(status)
                if status == "CANCELLED":
                    break
                assert time.monotonic() - started < PATIENCE
                await asyncio.sleep(POLL)
            to_cancelled.append(time.monotonic() - started)
            after_answer.append(time.monotonic() - answered)
            sequences[" -> ".join(seen)] += 1

        # Cancelled while its reads still answer 404: the cancel still takes.
        early = []
        for _ in range(5):
            response, _, answered = await api.trigger("demo-hang")
            run_id = response.json()["run"]["metadata"]["id"]
            early_ids.append(run_id)
            cancel = await api.cancel([run_id])
            assert cancel.status_code == 200, cancel.text
            await api.wait_status(run_id, {"CANCELLED"})
            early.append(time.monotonic() - answered)
        unknown = str(uuid.uuid4())
        bogus = await api.cancel([unknown])
    finally:
        await api.cancel(ids + early_ids)

    result = figures(to_cancelled)
    recorder.add("cancel_latency", {
        "what": "seconds from sending the cancel of a RUNNING demo-hang run to its status reading CANCELLED",
        "to_cancelled": result,
        "cancel_request": figures(request_seconds),
        "after_the_cancel_answered": figures(after_answer),
        "status_sequences": dict(sequences),
        "cancel_right_after_trigger_to_cancelled": figures(early),
        "unknown_id": {"status": bogus.status_code, "body": body_of(bogus),
                       "echoes_the_id": bogus.status_code == 200 and bogus.json().get("ids") == [unknown]},
    }, f"RUNNING -> CANCELLED {ms(result)}; cancel request {ms(figures(request_seconds))}",
       f"cancel of an unknown id answers {bogus.status_code} {body_of(bogus)}".replace(unknown, "<id>"))


async def test_pagination_while_runs_are_inserted(api: Api, recorder: Recorder) -> None:
    """Offset paging, newest first: inserts at the head shift rows onto the next page (duplicates), never gaps."""
    pair = f"behaviour_page:{api.tag}"
    before = [await api.run_id("demo-etl", {"i": i}, {"behaviour_page": api.tag}) for i in range(40)]
    await api.wait_listed([pair], len(before))
    response = await api.list([pair])
    rows = response.json()["rows"]
    assert [row["metadata"]["id"] for row in rows] == before[::-1], "newest first, in trigger order"
    created = [row["metadata"]["createdAt"] for row in rows]
    assert created == sorted(created, reverse=True)

    inserted: list[str] = []
    inserting = True

    async def insert() -> None:
        nonlocal inserting
        for i in range(30):
            inserted.append(await api.run_id("demo-etl", {"i": 100 + i}, {"behaviour_page": api.tag}))
            await asyncio.sleep(0.03)
        inserting = False

    limit = 7
    passes: list[dict[str, int]] = []

    async def page_through() -> None:
        while inserting or not passes:
            seen: list[str] = []
            offset = 0
            while True:
                reply = await api.list([pair], offset=offset, limit=limit)
                assert reply.status_code == 200, reply.text
                page = reply.json()["rows"]
                keys = [(row["metadata"]["createdAt"], row["metadata"]["id"]) for row in page]
                assert keys == sorted(keys, reverse=True), "each page is newest first"
                seen += [row["metadata"]["id"] for row in page]
                if len(page) < limit:
                    break
                offset += limit
                await asyncio.sleep(0.01)
            gaps = set(before) - set(seen)
            assert not gaps, f"{len(gaps)} runs that existed before paging began were skipped"
            passes.append({"rows": len(seen), "duplicates": len(seen) - len(set(seen)), "gaps": len(gaps)})

    await asyncio.gather(insert(), page_through())
    final = await api.wait_listed([pair], len(before) + len(inserted))
    assert sorted(final) == sorted(before + inserted) and len(final) == len(set(final))

    with_dups = sum(1 for p in passes if p["duplicates"])
    recorder.add("pagination", {
        "what": f"offset/limit={limit} passes over 40 existing runs while 30 more are triggered, one per ~30 ms",
        "passes": len(passes),
        "passes_with_duplicates": with_dups,
        "max_duplicates_in_a_pass": max(p["duplicates"] for p in passes),
        "passes_with_gaps": sum(1 for p in passes if p["gaps"]),
        "order": "inserted_at DESC, id DESC (each page newest first; a quiet listing is reverse trigger order)",
    }, f"{len(passes)} passes during inserts: {with_dups} with duplicates "
       f"(max {max(p['duplicates'] for p in passes)}), 0 with gaps, every page newest first")


async def test_metadata_filter_semantics(api: Api, recorder: Recorder) -> None:
    """One pair is containment; several are OR unless additional_metadata_operator=AND; values compare as JSON."""
    tag = api.tag
    a, b = f"a-{tag}", f"b-{tag}"
    colon_value = f"manual__2026-01-01T00:00:00+00:00|x: {tag}"
    number = random.randrange(10**9, 10**10)
    flag_key, colon_key = f"flag_{tag}", f"k:{tag}"
    runs = {
        "ab": {"a": a, "b": b},
        "a": {"a": a},
        "b": {"b": b},
        "colon_value": {"cv": colon_value},
        "number": {"num": number},
        "bool": {flag_key: True},
        "colon_key": {colon_key: "v"},
    }
    meta = {name: {"behaviour_meta": tag, **extra} for name, extra in runs.items()}
    ids = {name: await api.run_id("demo-etl", {}, meta[name]) for name in runs}
    names = {run_id: name for name, run_id in ids.items()}
    base = f"behaviour_meta:{tag}"
    await api.wait_listed([base], len(runs))

    async def matches(filters: list[str], operator: str | None = None) -> list[str]:
        found = await api.list_ids(filters, operator)
        assert set(found) <= set(names), "a filter on this test's unique values found someone else's run"
        return sorted(names[i] for i in found)

    queries: dict[str, tuple[list[str], str | None]] = {
        "one pair (runs carry other keys too)": ([base], None),
        "one pair a": ([f"a:{a}"], None),
        "a and b, no operator": ([f"a:{a}", f"b:{b}"], None),
        "a and b, operator OR": ([f"a:{a}", f"b:{b}"], "OR"),
        "a and b, operator AND": ([f"a:{a}", f"b:{b}"], "AND"),
        "run ab's whole map, AND": ([base, f"a:{a}", f"b:{b}"], "AND"),
        "same key twice, AND (a:other last)": ([f"a:{a}", f"a:other-{tag}"], "AND"),
        "same key twice, AND (a:value last)": ([f"a:other-{tag}", f"a:{a}"], "AND"),
        "value with ':', '+' and a space": ([f"cv:{colon_value}"], None),
        "number as text, one pair": ([f"num:{number}"], None),
        "number as text, with a pair matching nothing, no operator": ([f"num:{number}", f"zz:{tag}"], None),
        "number as text, with the tag pair, AND": ([base, f"num:{number}"], "AND"),
        "true as text, one pair": ([f"{flag_key}:true"], None),
        "true as text, with a pair matching nothing, no operator": ([f"{flag_key}:true", f"zz:{tag}"], None),
        "key with ':'": ([f"{colon_key}:v"], None),
        "an entry without ':' next to the tag pair": ([base, f"nocolon-{tag}"], None),
    }
    results = {label: await matches(filters, operator) for label, (filters, operator) in queries.items()}
    stored = {name: (await api.details(ids[name])).json()["run"]["additionalMetadata"]
              for name in ("number", "bool", "ab")}

    everything = sorted(runs)
    # What the client relies on: one pair is containment, AND narrows, ':' in a value is kept, and only
    # strings match through the AND (containment) path, which is why the client stringifies metadata.
    assert results["one pair (runs carry other keys too)"] == everything
    assert results["one pair a"] == ["a", "ab"]
    assert results["a and b, operator AND"] == ["ab"]
    assert results["run ab's whole map, AND"] == ["ab"]
    assert results["value with ':', '+' and a space"] == ["colon_value"]
    assert results["number as text, one pair"] == []
    assert results["number as text, with the tag pair, AND"] == []
    assert results["true as text, one pair"] == []
    assert results["an entry without ':' next to the tag pair"] == everything
    assert isinstance(stored["number"]["num"], int) and stored["bool"][flag_key] is True
    assert set(stored["ab"]) >= {TAG_KEY, "behaviour_meta", "a", "b"}

    colon_key_result = results["key with ':'"]
    recorder.add("metadata_filter", {
        "runs": {name: {k: ("<tag>" if v == tag else v) for k, v in extra.items()} for name, extra in runs.items()},
        "matches": results,
        "stored_metadata": {name: sorted(value) for name, value in stored.items()},
        "stored_number_type": type(stored["number"]["num"]).__name__,
        "server_added_keys": sorted(set(stored["ab"]) - {TAG_KEY, "behaviour_meta", "a", "b"}),
    }, f"a+b no operator -> {results['a and b, no operator']}, AND -> {results['a and b, operator AND']}; "
       f"number by text: one pair {results['number as text, one pair']}, OR path "
       f"{results['number as text, with a pair matching nothing, no operator']}; key with ':' -> "
       f"{colon_key_result}")


async def test_idempotency_key_collision(api: Api, recorder: Recorder) -> None:
    """A collision answers 500 with nothing of the existing run; the list's idempotency_keys filter finds it."""
    key = f"idem-{api.tag}"
    metadata = {"behaviour_idem": api.tag}
    first, first_seconds, _ = await api.trigger("demo-idempotent", {"key": key}, metadata)
    assert first.status_code == 200, first.text
    first_id = first.json()["run"]["metadata"]["id"]

    attempts: dict[str, dict[str, Any]] = {}
    for label, only_id in (("again, return_only_id", True), ("again, without return_only_id", False)):
        response, seconds, _ = await api.trigger("demo-idempotent", {"key": key}, metadata, only_id=only_id)
        attempts[label] = {"status": response.status_code, "body": body_of(response), "seconds": round(seconds, 4),
                           "reveals_existing_id": first_id in response.text}
        assert response.status_code == 500
        assert first_id not in response.text
    other, other_seconds, _ = await api.trigger("demo-idempotent", {"key": key + "-other"}, metadata)
    assert other.status_code == 200, other.text
    other_id = other.json()["run"]["metadata"]["id"]
    assert other_id != first_id
    attempts["a different key"] = {"status": other.status_code, "seconds": round(other_seconds, 4)}

    assert await api.wait_status(first_id, {"COMPLETED"}) == "COMPLETED"
    after, seconds, _ = await api.trigger("demo-idempotent", {"key": key}, metadata)
    attempts["again after the first run completed (TTL 10 min)"] = {
        "status": after.status_code, "body": body_of(after), "seconds": round(seconds, 4)}
    assert after.status_code == 500

    by_key = await api.list_ids([], idempotency_keys=key)
    by_meta = await api.wait_listed([f"behaviour_idem:{api.tag}"], 2)
    assert by_key == [first_id], "the list's idempotency_keys filter finds the run that holds the key"
    assert sorted(by_meta) == sorted([first_id, other_id]), "collisions created no run"

    recorder.add("idempotency", {
        "workflow": "demo-idempotent (key_expression input.key, TTL 10 min)",
        "first": {"status": first.status_code, "seconds": round(first_seconds, 4)},
        "attempts": attempts,
        "list_by_idempotency_keys_finds_the_holder": by_key == [first_id],
        "runs_created": len(by_meta),
    }, f"collision -> {attempts['again, return_only_id']['status']} {attempts['again, return_only_id']['body']} "
       "(with and without return_only_id, no id); other key -> 200; "
       "?idempotency_keys=<key> lists the holder")


async def test_unknown_workflow_name(api: Api, recorder: Recorder) -> None:
    """return_only_id: 200 and an id that never resolves; without it: 500 after the server's 10 x 1 s wait."""
    name = f"behaviour-missing-{api.tag}"
    full = [asyncio.create_task(api.trigger(name, {}, {"behaviour_unknown": api.tag}, only_id=False))
            for _ in range(2)]
    only_id, phantoms = [], []
    for _ in range(5):
        response, seconds, _ = await api.trigger(name, {}, {"behaviour_unknown": api.tag})
        assert response.status_code == 200, response.text
        phantoms.append(response.json()["run"]["metadata"]["id"])
        only_id.append(seconds)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        for run_id in phantoms:
            assert (await api.status(run_id)).status_code == 404
        await asyncio.sleep(0.1)

    answers = await asyncio.gather(*full)
    for response, _, _ in answers:
        assert response.status_code == 500
    assert await api.list_ids([f"behaviour_unknown:{api.tag}"]) == [], "nothing was created"
    for run_id in phantoms:
        assert (await api.status(run_id)).status_code == 404

    without = figures([seconds for _, seconds, _ in answers])
    with_id = figures(only_id)
    recorder.add("unknown_workflow", {
        "return_only_id": {**with_id, "status": 200, "phantom_404_for_at_least": "the whole test (> 10 s)"},
        "without_return_only_id": {**without, "status": answers[0][0].status_code,
                                   "body": body_of(answers[0][0])},
    }, f"return_only_id -> 200 + phantom id in {ms(with_id)}; without -> "
       f"{answers[0][0].status_code} {body_of(answers[0][0])} after {without['median']:.2f}/{without['max']:.2f} s "
       f"(n={without['n']})")


async def test_priority_out_of_range(api: Api, recorder: Recorder) -> None:
    """0, 4 and -1 answer 400 with an APIErrors description; a non-integer answers 400 with an echo message."""
    answers: dict[str, dict[str, Any]] = {}
    for value in (0, 4, -1, 1, 3, "2", 2.5):
        response, _, _ = await api.trigger("demo-etl", {}, {"behaviour_priority": api.tag}, priority=value)
        body = body_of(response)
        answers[repr(value)] = {"status": response.status_code,
                                "body": "<stub with the id>" if response.status_code == 200 else body}
        if value in (1, 3):
            assert response.status_code == 200, response.text
        elif isinstance(value, int):
            assert response.status_code == 400
            assert body == {"errors": [{"description": f"priority must be between 1 and 3, got {value}"}]}
        else:
            assert response.status_code == 400
    recorder.add("priority", {"answers": answers},
                 f"0/4/-1 -> 400 {answers['4']['body']}; '2' -> 400 {answers[repr('2')]['body']}")
