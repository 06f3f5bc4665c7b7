"""The bulk trigger engine against the simulator over loopback HTTP: faults, exactly-once, resume, bounds."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from airflow_provider_hatchet.client import AsyncHatchetClient, ClientConfig, RetryPolicy
from airflow_provider_hatchet.client.bulk import (
    DEFAULT_INDEX_KEY,
    BulkItem,
    BulkProgress,
    BulkTrigger,
    HatchetBulkTriggerError,
    trigger_many,
)
from airflow_provider_hatchet.client.bulk_result import describe_failures
from airflow_provider_hatchet.client.errors import HatchetAPIError, HatchetAuthError, HatchetUnexpectedResponseError
from airflow_provider_hatchet.client.models import RunStatus
from airflow_provider_hatchet.testing import Faults, HatchetSimulator, RunInfo, SimulatorServer

pytestmark = pytest.mark.loopback

VISIBILITY = 0.05
FAST_RETRY = RetryPolicy(attempts=6, initial=0.005, maximum=0.05, jitter=0.005)
WORKFLOW = "bulk-etl"


class CountingTransport(httpx.AsyncBaseTransport):
    """A real HTTP transport that records the most requests it ever had in flight."""

    def __init__(self, max_connections: int = 64) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._inner = httpx.AsyncHTTPTransport(limits=limits)
        self.in_flight = 0
        self.peak = 0
        self.total = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.total += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            response = await self._inner.handle_async_request(request)
            await response.aread()
            return response
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    sim = HatchetSimulator(visibility_delay=VISIBILITY, cancel_delay=0.01, seed=7)
    with SimulatorServer(sim) as srv:
        yield srv


@pytest.fixture
def sim(server: SimulatorServer) -> HatchetSimulator:
    server.simulator.reset(keep_workflows=False)
    server.simulator.visibility_delay = VISIBILITY
    server.simulator.register_workflow(WORKFLOW, "succeed", duration=0.01)
    server.simulator.register_workflow("bulk-flaky", "fail", duration=0.01)
    return server.simulator


@pytest.fixture
def transport() -> CountingTransport:
    return CountingTransport()


@pytest.fixture
async def client(server: SimulatorServer, transport: CountingTransport) -> AsyncIterator[AsyncHatchetClient]:
    config = ClientConfig.from_token(server.token, timeout=10.0)
    async with AsyncHatchetClient(config, retry=FAST_RETRY, transport=transport, max_connections=64) as c:
        yield c


def since() -> datetime:
    return datetime.now(timezone.utc) - timedelta(minutes=5)


def items(n: int, workflow: str = WORKFLOW, bad: frozenset[int] = frozenset()) -> list[BulkItem]:
    return [
        BulkItem(workflow, {"i": i, "bad": True} if i in bad else {"i": i}, {"source": "test"})
        for i in range(n)
    ]


def engine_options(key: str, **extra: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "batch_metadata": {"airflow_ti": key}, "since": since(), "visibility_window": VISIBILITY + 0.05,
        "retry": FAST_RETRY,
    }
    options.update(extra)
    return options


def batch_runs(sim: HatchetSimulator, key: str) -> list[RunInfo]:
    return [r for r in sim.runs if r.additional_metadata.get("airflow_ti") == key]


def index_counts(sim: HatchetSimulator, key: str) -> Counter[int]:
    return Counter(int(r.additional_metadata[DEFAULT_INDEX_KEY]) for r in batch_runs(sim, key))


async def settle(sim: HatchetSimulator, done: Callable[[dict[str, int]], bool]) -> None:
    """Wait (at most 10 s) until the status counts satisfy ``done``, then until runs are listable."""
    for _ in range(500):
        if done(sim.status_counts()):
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(VISIBILITY)


def assert_ids_match(sim: HatchetSimulator, run_ids: list[str | None]) -> None:
    for i, run_id in enumerate(run_ids):
        assert run_id is not None, i
        run = sim.get_run(run_id)
        assert run is not None, i
        assert run.additional_metadata[DEFAULT_INDEX_KEY] == str(i)
        assert run.input["i"] == i


async def test_faults_end_with_exactly_one_run_per_item(sim: HatchetSimulator, client: AsyncHatchetClient,
                                                        transport: CountingTransport) -> None:
    sim.faults = Faults(error_rate=0.04, error_after_create=0.5, rate_limit_rate=0.03,
                        drop_after_create_rate=0.03, latency=0.003, latency_rate=0.3, routes=("trigger",))
    progress: list[BulkProgress] = []
    seen: dict[int, str] = {}

    result = await trigger_many(client, items(2000), **engine_options("faults"), max_concurrency=32,
                                on_progress=progress.append, on_run=seen.__setitem__)

    assert result.ok, describe_failures(result.failed, 2000)
    counts = index_counts(sim, "faults")
    assert sorted(counts) == list(range(2000))
    assert set(counts.values()) == {1}
    assert len(batch_runs(sim, "faults")) == 2000
    assert_ids_match(sim, result.run_ids)
    assert seen == result.created
    log = Counter((r.status, r.dropped) for r in sim.requests if r.route == "trigger")
    assert log[(429, False)] > 0 and log[(0, True)] > 0 and log[(503, False)] + log[(500, False)] > 0
    assert result.recovered, "some ambiguous failures had created their run"
    assert result.requests > 2000
    assert transport.peak <= 32
    assert progress[-1].phase == "done" and progress[-1].created == 2000
    assert any(p.phase == "trigger" for p in progress)


async def test_permanent_rejections_are_reported_then_resume_completes(sim: HatchetSimulator,
                                                                       client: AsyncHatchetClient) -> None:
    bad = frozenset({0, 13, 14, 15, 200, 299})
    sim.reject_trigger_if({"input": {"bad": True}}, 400, "input rejected")
    batch = items(300, bad=bad)

    result = await trigger_many(client, batch, **engine_options("rejects"))

    assert set(result.failed) == bad
    assert all("400" in error and "input rejected" in error for error in result.failed.values())
    assert [i for i, run_id in enumerate(result.run_ids) if run_id is None] == sorted(bad)
    assert sorted(index_counts(sim, "rejects")) == sorted(set(range(300)) - bad)
    assert sum(1 for r in sim.requests if r.route == "trigger" and r.status == 400) == len(bad)
    with pytest.raises(HatchetBulkTriggerError) as info:
        result.raise_for_failures()
    assert set(info.value.failed) == bad
    assert len(info.value.created) == 300 - len(bad)
    assert "6 of 300 runs" in str(info.value) and "0, 13-15, 200, 299" in str(info.value)

    sim.clear_faults()
    await asyncio.sleep(VISIBILITY)
    resumed = await trigger_many(client, batch, **engine_options("rejects"), resume=True)

    assert resumed.ok
    assert set(resumed.reused) == set(range(300)) - bad
    assert all(resumed.run_ids[i] == result.run_ids[i] for i in range(300) if i not in bad)
    counts = index_counts(sim, "rejects")
    assert sorted(counts) == list(range(300)) and set(counts.values()) == {1}
    assert_ids_match(sim, resumed.run_ids)


async def test_a_resume_right_after_the_first_attempt_waits_for_its_runs_to_be_listable(
    sim: HatchetSimulator, client: AsyncHatchetClient
) -> None:
    sim.visibility_delay = 0.3
    bad = frozenset({4, 9})
    sim.reject_trigger_if({"input": {"bad": True}}, 400, "input rejected")
    batch = items(40, bad=bad)
    first = await trigger_many(client, batch, **engine_options("hasty", visibility_window=0.35))
    assert set(first.failed) == bad
    sim.clear_faults()

    resumed = await trigger_many(client, batch, **engine_options("hasty", visibility_window=0.35), resume=True)

    assert resumed.ok
    assert set(resumed.reused) == set(range(40)) - bad
    counts = index_counts(sim, "hasty")
    assert sorted(counts) == list(range(40)) and set(counts.values()) == {1}
    assert_ids_match(sim, resumed.run_ids)


async def test_killed_batch_resumes_without_duplicates(sim: HatchetSimulator, client: AsyncHatchetClient) -> None:
    latency = 0.01
    sim.faults = Faults(latency=latency, routes=("trigger",))
    batch = items(400)
    halfway = asyncio.Event()
    seen: list[int] = []

    def on_run(index: int, run_id: str) -> None:
        seen.append(index)
        if len(seen) >= 150:
            halfway.set()

    engine = BulkTrigger(client, batch, **engine_options("killed"), max_concurrency=16, on_run=on_run)
    task = asyncio.create_task(engine.run())
    await halfway.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    partial = engine.result()
    assert 150 <= len(partial.created) < 400
    await asyncio.sleep(latency + VISIBILITY + 0.2)
    before = index_counts(sim, "killed")
    assert set(partial.created) <= set(before) and len(before) < 400

    resumed = await trigger_many(client, batch, **engine_options("killed"), resume=True)

    assert resumed.ok
    assert set(resumed.reused) == set(before)
    counts = index_counts(sim, "killed")
    assert sorted(counts) == list(range(400)) and set(counts.values()) == {1}
    assert_ids_match(sim, resumed.run_ids)


async def test_resume_retriggers_failed_runs_and_ignores_them_in_lookups(sim: HatchetSimulator,
                                                                         client: AsyncHatchetClient) -> None:
    batch = [BulkItem(WORKFLOW if i % 2 == 0 else "bulk-flaky", {"i": i}) for i in range(60)]
    first = await trigger_many(client, batch, **engine_options("flaky"))
    assert first.ok
    await settle(sim, lambda counts: not set(counts) - {"COMPLETED", "FAILED"})
    assert sim.status_counts() == {"COMPLETED": 30, "FAILED": 30}
    sim.fail_next("trigger", 2, 503)
    sim.fail_next("trigger", 2, 500, after_create=True)

    resumed = await trigger_many(client, batch, **engine_options("flaky"), resume=True, max_concurrency=4)

    assert resumed.ok
    odd = [i for i in range(60) if i % 2]
    assert set(resumed.reused) == set(range(0, 60, 2))
    assert len(resumed.recovered) == 2
    assert all(resumed.run_ids[i] != first.run_ids[i] for i in odd)
    counts = index_counts(sim, "flaky")
    assert all(counts[i] == (2 if i % 2 else 1) for i in range(60))
    assert_ids_match(sim, resumed.run_ids)


async def test_resume_takes_only_its_own_runs_from_a_server_that_drops_the_filter(
    sim: HatchetSimulator, client: AsyncHatchetClient
) -> None:
    sim.faults = Faults(drop_colon_filters=True)  # Airflow run ids hold a ":", so the batch filter is dropped
    mine, theirs = "a|manual__2025-01-01T00:00:00+00:00|bulk|-1", "b|manual__2025-01-01T00:00:00+00:00|bulk|-1"
    assert (await trigger_many(client, items(20), **engine_options(theirs))).ok
    sim.reject_trigger_if({"input": {"bad": True}}, 400, "input rejected")
    first = await trigger_many(client, items(20, bad=frozenset({2, 5})), **engine_options(mine))
    assert set(first.failed) == {2, 5}
    await asyncio.sleep(VISIBILITY)

    resumed = await trigger_many(client, items(20), **engine_options(mine), resume=True)

    assert resumed.ok
    assert set(resumed.reused) == set(range(20)) - {2, 5}
    assert set(resumed.run_ids) == {run.id for run in batch_runs(sim, mine)}
    counts = index_counts(sim, mine)
    assert sorted(counts) == list(range(20)) and set(counts.values()) == {1}
    assert_ids_match(sim, resumed.run_ids)
    assert len(batch_runs(sim, theirs)) == 20


async def test_reuse_statuses_decide_which_runs_are_kept(sim: HatchetSimulator, client: AsyncHatchetClient) -> None:
    batch = [BulkItem("bulk-flaky", {"i": i}) for i in range(10)]
    first = await trigger_many(client, batch, **engine_options("reuse"))
    await settle(sim, lambda counts: counts.get("FAILED", 0) >= 10)

    kept = await trigger_many(client, batch, **engine_options("reuse"), resume=True,
                              reuse_statuses={RunStatus.FAILED})

    assert kept.run_ids == first.run_ids and kept.requests == 0
    assert len(batch_runs(sim, "reuse")) == 10


async def test_concurrency_and_task_count_stay_bounded(sim: HatchetSimulator, client: AsyncHatchetClient,
                                                       transport: CountingTransport) -> None:
    sim.faults = Faults(latency=0.005, routes=("trigger",))
    baseline = len(asyncio.all_tasks())
    task_counts: list[int] = []

    def on_progress(progress: BulkProgress) -> None:
        task_counts.append(len(asyncio.all_tasks()))

    result = await trigger_many(client, items(600), **engine_options("bounded"), max_concurrency=8,
                                on_progress=on_progress, progress_every=25)

    assert result.ok
    assert transport.total == result.requests + result.lookups == 600 + result.lookups
    assert 1 < transport.peak <= 8
    assert len(task_counts) >= 20
    assert max(task_counts) <= baseline + 8


async def test_auth_failure_stops_the_batch_with_the_error(sim: HatchetSimulator, server: SimulatorServer,
                                                           transport: CountingTransport) -> None:
    token = sim.mint_token()
    sim.revoke_token(token)
    async with AsyncHatchetClient(ClientConfig.from_token(token), retry=FAST_RETRY, transport=transport) as c:
        engine = BulkTrigger(c, items(200), **engine_options("revoked"), max_concurrency=4)
        with pytest.raises(HatchetAuthError):
            await engine.run()

    result = engine.result()
    assert len(result.failed) == 200
    assert result.requests <= 4
    assert sum("not sent" in error for error in result.failed.values()) >= 196
    assert all("403" in error for error in result.failed.values())


class RawServer:
    """A loopback HTTP server that answers every request with the same bytes, or never answers (``None``).

    :param answer: the whole HTTP response, or None to read until the client gives up.
    """

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.request_lines: list[bytes] = []
        self._server: asyncio.Server | None = None

    @property
    def triggers(self) -> int:
        return sum(1 for line in self.request_lines if line.startswith(b"POST ") and b"/workflow-runs/trigger" in line)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.request_lines.append(head.split(b"\r\n", 1)[0])
            if self.answer is None:
                await reader.read()
            else:
                writer.write(self.answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


def answer(status: str, headers: str, body: bytes = b"") -> bytes:
    return (f"HTTP/1.1 {status}\r\n{headers}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (answer("302 Found", "Location: https://hatchet.example.com/api/v1\r\n"), HatchetUnexpectedResponseError),
        (answer("200 OK", "Content-Type: text/html\r\n", b"<html>login</html>"), HatchetUnexpectedResponseError),
        (answer("401 Unauthorized", "Content-Type: application/json\r\n", b'{"errors":[{"description":"no"}]}'),
         HatchetAPIError),
    ],
    ids=["redirect", "html", "401"],
)
async def test_a_configuration_error_stops_the_batch_at_once_with_that_error(
    sim: HatchetSimulator, response: bytes, error: type[Exception]
) -> None:
    server = RawServer(response)
    async with server as url:
        config = ClientConfig.from_token(sim.token, server_url=url, timeout=5.0)
        async with AsyncHatchetClient(config, retry=FAST_RETRY) as c:
            engine = BulkTrigger(c, items(300), **engine_options("misconfigured"), max_concurrency=4)
            with pytest.raises(error) as raised:
                await engine.run()

    assert type(raised.value) is error
    result = engine.result()
    assert server.triggers == result.requests <= 4 and len(result.failed) == 300
    assert sum(error_text.startswith("not sent: ") for error_text in result.failed.values()) >= 296


async def test_an_all_503_server_stops_the_batch_and_a_retry_sends_only_what_was_not_created(
    sim: HatchetSimulator, client: AsyncHatchetClient
) -> None:
    sim.faults = Faults(error_rate=1.0, error_statuses=(503,), error_after_create=0.3, routes=("trigger",))
    batch = items(2000)

    result = await trigger_many(client, batch, **engine_options("down"), max_concurrency=16)

    sent = sum(1 for r in sim.requests if r.route == "trigger")
    assert sent <= 2 * 16 + 16  # stop_after (twice the concurrency) and what was in flight then
    created = {int(r.additional_metadata[DEFAULT_INDEX_KEY]): r.id for r in batch_runs(sim, "down")}
    assert created, "some 503s came after the run was created"
    assert result.created == created and set(result.recovered) == set(created)
    assert set(result.failed) == set(range(2000)) - set(created)
    stopped = "not sent: stopped after 32 triggers in a row failed with no run created (the last: 503"
    assert all(error.startswith(stopped) for error in result.failed.values())
    assert "1 x" not in describe_failures(result.failed, 2000)  # one group for all of them

    sim.clear_faults()
    resumed = await trigger_many(client, batch, **engine_options("down"), resume=True)

    assert resumed.ok
    assert set(resumed.reused) == set(created)
    assert sum(1 for r in sim.requests if r.route == "trigger") - sent == 2000 - len(created)
    counts = index_counts(sim, "down")
    assert sorted(counts) == list(range(2000)) and set(counts.values()) == {1}
    assert_ids_match(sim, resumed.run_ids)


async def test_a_server_that_never_answers_stops_the_batch_after_a_few_rounds_of_timeouts(
    sim: HatchetSimulator,
) -> None:
    server = RawServer(None)
    async with server as url:
        config = ClientConfig.from_token(sim.token, server_url=url, timeout=0.2)
        async with AsyncHatchetClient(config, retry=FAST_RETRY, max_connections=8) as c:
            result = await trigger_many(c, items(1000), **engine_options("silent"), max_concurrency=8)

    # Each trigger costs one timeout with 8 in flight, so bounding the requests bounds the time too.
    assert 16 <= server.triggers == result.requests <= 2 * 8 + 8
    assert len(result.failed) == 1000 and not result.created
    maybe = [i for i, error in result.failed.items() if "the run may exist (lookup failed" in error]
    assert len(maybe) == result.requests
    assert all(error.startswith("not sent: stopped after 16 triggers in a row") for i, error in result.failed.items()
               if i not in maybe)


def test_failure_message_groups_and_truncates() -> None:
    failed = {i: "400 input rejected" for i in range(0, 40)} | {100: "503 Service Unavailable"}
    text = describe_failures(failed, 1000)
    assert text.splitlines()[0] == "41 of 1000 runs could not be triggered (959 created)."
    assert "40 x 400 input rejected: indexes 0-9 and 30 more" in text
    assert "1 x 503 Service Unavailable: indexes 100" in text


def test_batch_metadata_is_required() -> None:
    config = ClientConfig.from_token(HatchetSimulator().token)
    client = AsyncHatchetClient(config)
    with pytest.raises(ValueError, match="batch_metadata"):
        BulkTrigger(client, items(1), batch_metadata={}, since=since())
    with pytest.raises(ValueError, match="index_key"):
        BulkTrigger(client, items(1), batch_metadata={DEFAULT_INDEX_KEY: "x"}, since=since())
