"""The gRPC client against the simulator's gRPC face on loopback: messages, errors, channels, the bulk sender."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_hatchet import _protos
from airflow_provider_hatchet.client import AsyncHatchetClient, RetryPolicy
from airflow_provider_hatchet.client.bulk import BulkItem, BulkTrigger
from airflow_provider_hatchet.client.config import ClientConfig
from airflow_provider_hatchet.client.errors import (
    HatchetAuthError,
    HatchetBadRequestError,
    HatchetConfigError,
    HatchetMalformedResponseError,
    HatchetRateLimitError,
    HatchetTransportError,
    HatchetValidationError,
)
from airflow_provider_hatchet.client.grpc.bulk import GrpcSender, choose_sender
from airflow_provider_hatchet.client.grpc.channel import close_channels, shared_channel
from airflow_provider_hatchet.client.grpc.client import (
    AsyncGrpcClient,
    EventSpec,
    HatchetPartialPushError,
    checked_ids,
    trigger_request,
)
from airflow_provider_hatchet.hooks._connection import config_from_connection
from airflow_provider_hatchet.testing import Faults

pytestmark = pytest.mark.af2


@pytest.fixture
def face(hatchet: Any) -> Iterator[Any]:
    """The session simulator's gRPC face, for one test."""
    with hatchet.grpc_server() as grpc_face:
        yield grpc_face


def config_for(sim: Any, **options: Any) -> ClientConfig:
    options.setdefault("grpc_tls", False)
    return ClientConfig.from_token(sim.token, **options)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DeadUpstream:
    """A loopback gRPC server that accepts connections and fails every call with ``code``, as a proxy or load
    balancer with no healthy engine behind it does (``None``: no method is served, so grpc answers UNIMPLEMENTED).

    :param code: the ``grpc.StatusCode`` name, or None.
    :param answer_probe: answer an empty ``BulkTriggerWorkflow`` (which creates nothing) as the engine does, so
        that only the calls that would create runs fail.
    :param details: the error's text.
    """

    def __init__(self, code: str | None, *, answer_probe: bool = False, details: str = "no healthy upstream") -> None:
        self.code = code
        self.answer_probe = answer_probe
        self.details = details
        self.calls: list[tuple[str, int]] = []
        self.address = ""
        self._server: Any = None

    def service(self, details: Any) -> Any:
        import grpc

        if self.code is None:
            return None

        def fail(raw: bytes, context: Any) -> bytes:
            self.calls.append((details.method, len(raw)))
            if self.answer_probe and not raw and details.method == _protos.BULK_TRIGGER:
                return b""
            context.abort(getattr(grpc.StatusCode, str(self.code)), self.details)
            return b""

        return grpc.unary_unary_rpc_method_handler(fail)

    def __enter__(self) -> DeadUpstream:
        from concurrent.futures import ThreadPoolExecutor

        import grpc

        self._server = grpc.server(ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers([self])
        self.address = f"127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(0).wait()


async def bulk(config: ClientConfig, requests: list[Any]) -> list[str]:
    try:
        return await AsyncGrpcClient(config).bulk_trigger(requests)
    finally:
        await close_channels()


def test_messages_carry_hatchets_field_numbers() -> None:
    request = _protos.TriggerWorkflowRequest(name="a", input="{}", additional_metadata="{}", priority=2)
    # name=1, input=2, additional_metadata=7, priority=9 (v1/shared/trigger.proto)
    assert request.SerializeToString() == b"\x0a\x01a\x12\x02{}\x3a\x02{}\x48\x02"
    bulk_request = _protos.BulkTriggerWorkflowRequest(workflows=[_protos.TriggerWorkflowRequest(name="b")])
    assert bulk_request.SerializeToString() == b"\x0a\x03\x0a\x01b"
    event = _protos.PushEventRequest(key="k", payload="{}", additional_metadata="m", priority=1, scope="s")
    # key=1, payload=2, additional_metadata=4, priority=5, scope=6 (events/events.proto)
    assert event.SerializeToString() == b"\x0a\x01k\x12\x02{}\x22\x01m\x28\x01\x32\x01s"
    # An unset optional field is not sent, as with proto3's explicit presence.
    assert _protos.TriggerWorkflowRequest(name="a").SerializeToString() == b"\x0a\x01a"


def test_the_address_comes_from_the_token_and_the_extra_overrides_it(hatchet: Any) -> None:
    assert ClientConfig.from_token(hatchet.token).grpc_address == "127.0.0.1:7070"
    config = config_from_connection(hatchet.token, None, None, None,
                                    {"grpc_address": "h.internal:443", "grpc_tls": "false"}, None)
    assert (config.grpc_address, config.grpc_tls) == ("h.internal:443", False)
    assert config_from_connection(hatchet.token, None, None, None, {}, None).grpc_tls is True
    with pytest.raises(HatchetConfigError, match="'grpc_address' must be host:port"):
        config_from_connection(hatchet.token, None, None, None, {"grpc_address": "https://h"}, None)
    with pytest.raises(HatchetConfigError, match="'grpc_tls' must be true or false"):
        config_from_connection(hatchet.token, None, None, None, {"grpc_tls": "maybe"}, None)


def test_bulk_trigger_creates_runs_as_the_rest_trigger_would_in_order(hatchet: Any, face: Any) -> None:
    requests = [trigger_request("demo-etl", {"i": i}, {"k": str(i)}, 3 if i == 1 else None) for i in range(5)]

    run_ids = asyncio.run(bulk(config_for(hatchet), requests))

    runs = {run.id: run for run in hatchet.runs}
    assert [runs[run_id].input for run_id in run_ids] == [{"i": i} for i in range(5)]
    assert [runs[run_id].additional_metadata for run_id in run_ids] == [{"k": str(i)} for i in range(5)]
    assert [runs[run_id].priority for run_id in run_ids] == [None, 3, None, None, None]
    calls = [r for r in hatchet.requests if r.route == "bulk_trigger"]
    assert len(calls) == 1 and calls[0].path == "/WorkflowService/BulkTriggerWorkflow"


def test_trigger_request_carries_the_same_json_text_as_json_dumps() -> None:
    """The shared encoder must write what ``json.dumps(separators=(",", ":"))`` writes: ASCII escapes, NaN, key
    order, nesting; the server stores the text as sent."""
    run_input = {"ü": "é\n\u2028", "n": [1, 2.5, None, True, float("nan")], "nested": {"b": {}, "a": []}}
    metadata = {"k": "v ü", "batch_index": "7"}

    request = trigger_request("demo-etl", run_input, metadata, None)

    assert request.input == json.dumps(run_input, separators=(",", ":"))
    assert request.additional_metadata == json.dumps(metadata, separators=(",", ":"))
    with pytest.raises(TypeError):
        trigger_request("demo-etl", {"when": object()}, None, None)


@pytest.mark.parametrize(("prepare", "request_args", "error", "text"), [
    (lambda sim: None, ("demo-etl", {}, None, 7), HatchetBadRequestError, "priority must be between 1 and 3"),
    (lambda sim: sim.fail_next("bulk_trigger", status=429), ("demo-etl", {}, None, None), HatchetRateLimitError,
     "RESOURCE_EXHAUSTED"),
    (lambda sim: sim.fail_next("bulk_trigger", status=503, after_create=True), ("demo-etl", {}, None, None),
     HatchetTransportError, "UNAVAILABLE"),
    (lambda sim: sim.fail_next("bulk_trigger", drop=True, after_create=True), ("demo-etl", {}, None, None),
     HatchetTransportError, "CANCELLED"),
    (lambda sim: sim.fail_next("bulk_trigger", status=500), ("demo-etl", {}, None, None), Exception, "INTERNAL"),
])
def test_status_codes_map_into_the_error_tree(hatchet: Any, face: Any, prepare: Any, request_args: Any,
                                              error: type[Exception], text: str) -> None:
    prepare(hatchet)
    config = config_for(hatchet)
    with pytest.raises(error, match=text) as caught:
        asyncio.run(bulk(config, [trigger_request(*request_args)]))
    assert config.token not in str(caught.value)
    if isinstance(caught.value, HatchetTransportError):
        assert caught.value.maybe_sent


def test_a_bad_token_is_an_auth_error_that_does_not_show_it(hatchet: Any, face: Any) -> None:
    token = hatchet.mint_token(expires_in=-10)
    config = ClientConfig.from_token(token, grpc_tls=False)
    with pytest.raises(HatchetAuthError, match="UNAUTHENTICATED") as caught:
        asyncio.run(bulk(config, [trigger_request("demo-etl", {}, None, None)]))
    assert caught.value.status_code == 401 and token not in str(caught.value)


def test_one_channel_per_server_and_loop_closed_with_the_loop(hatchet: Any, face: Any) -> None:
    config = config_for(hatchet)

    async def channels() -> tuple[Any, Any, Any]:
        first, second = shared_channel(config), AsyncGrpcClient(config)._channel
        await AsyncGrpcClient(config).bulk_trigger([trigger_request("demo-etl", {}, None, None)])
        await close_channels()
        return first, second, shared_channel(config)

    first, second, after_close = asyncio.run(channels())
    other_loop = asyncio.run(channels())[0]
    assert first is second
    assert after_close is not first and other_loop is not first


def test_auto_probes_and_falls_back_when_the_port_is_closed(hatchet: Any, face: Any) -> None:
    async def choose(config: ClientConfig, transport: str) -> tuple[Any, str]:
        try:
            return await choose_sender(config, transport)
        finally:
            await close_channels()

    open_sender, how = asyncio.run(choose(config_for(hatchet), "auto"))
    assert isinstance(open_sender, GrpcSender) and "over gRPC" in how
    closed = config_for(hatchet, grpc_address=f"127.0.0.1:{closed_port()}")
    sender, how = asyncio.run(choose(closed, "auto"))
    assert sender is None and "did not accept a connection" in how
    assert asyncio.run(choose(closed, "rest"))[0] is None
    no_address = ClientConfig(token=hatchet.token, server_url=hatchet.server_url, tenant_id=hatchet.tenant_id)
    assert asyncio.run(choose(no_address, "auto"))[0] is None
    with pytest.raises(HatchetConfigError, match="grpc_address"):
        asyncio.run(choose(no_address, "grpc"))


def test_chunks_hold_at_most_1000_runs_and_stay_under_the_byte_budget(hatchet: Any) -> None:
    sender = GrpcSender(AsyncGrpcClient.__new__(AsyncGrpcClient), max_bytes=10_000)
    small = [(i, BulkItem("w", {"i": i})) for i in range(2500)]
    assert [len(c) for c in GrpcSender(AsyncGrpcClient.__new__(AsyncGrpcClient)).chunks(iter(small))] == [
        1000, 1000, 500]
    big = [(i, BulkItem("w", {"blob": "x" * 3000})) for i in range(7)]
    chunks = list(sender.chunks(iter(big)))
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert [i for chunk in chunks for i, _ in chunk] == list(range(7))
    assert all(sum(m.ByteSize() for _, m in chunk) < 10_000 for chunk in chunks)


def test_the_engine_over_grpc_creates_each_run_once_through_faults(hatchet: Any, face: Any) -> None:
    hatchet.faults = Faults(error_rate=0.3, error_after_create=0.5, drop_after_create_rate=0.2,
                            routes=("bulk_trigger",))
    config = config_for(hatchet)
    items = [BulkItem("demo-etl", {"i": i}) for i in range(600)]

    async def run() -> Any:
        async with AsyncHatchetClient(config) as client:
            engine = BulkTrigger(client, items, batch_metadata={"batch": "b1"}, index_key="index",
                                 since=datetime.now(timezone.utc) - timedelta(minutes=1), max_concurrency=3,
                                 visibility_window=0.3, lookup_rounds=6,
                                 sender=GrpcSender(AsyncGrpcClient(config), max_runs=40))
            try:
                return await engine.run()
            finally:
                await close_channels()

    result = asyncio.run(run())
    hatchet.clear_faults()

    assert result.ok, result.failed
    runs = {}
    for run in hatchet.runs:
        index = int(run.additional_metadata["index"])
        assert index not in runs, f"two runs for item {index}"
        runs[index] = run
    assert len(runs) == 600
    assert result.run_ids == [runs[i].id for i in range(600)]
    assert result.recovered, "the faults made no chunk ambiguous"
    assert result.requests < 600 // 40 * 3


def test_importing_the_operators_does_not_import_grpc() -> None:
    code = ("import sys, airflow_provider_hatchet.operators.hatchet, airflow_provider_hatchet.triggers.hatchet; "
            "print(sorted(m for m in sys.modules if m == 'grpc' or m.startswith('google.protobuf')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'grpc'" not in out


def test_the_resolved_grpcio_and_protobuf_satisfy_the_declared_ranges() -> None:
    # What `uv pip install --dry-run -e .` shows: installing the package changes neither (see the README).
    from importlib.metadata import version
    from pathlib import Path

    import tomllib
    from packaging.requirements import Requirement

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    declared = {r.name: r for r in map(Requirement, pyproject["project"]["dependencies"])}
    for name in ("grpcio", "protobuf"):
        assert declared[name].specifier.contains(version(name)), (name, version(name))


def test_a_chunk_listed_later_than_the_window_is_not_sent_again(hatchet: Any, face: Any) -> None:
    # A busy server lists new runs later than the engine's window: a first lookup that finds none of a chunk's
    # runs does not prove they do not exist.
    hatchet.visibility_delay = 0.7
    hatchet.fail_next("bulk_trigger", status=503, after_create=True)
    config = config_for(hatchet)
    items = [BulkItem("demo-etl", {"i": i}) for i in range(20)]

    async def run() -> Any:
        async with AsyncHatchetClient(config) as client:
            engine = BulkTrigger(client, items, batch_metadata={"batch": "late"}, index_key="index",
                                 since=datetime.now(timezone.utc) - timedelta(minutes=1), max_concurrency=1,
                                 visibility_window=0.5, sender=GrpcSender(AsyncGrpcClient(config), max_runs=10))
            try:
                return await engine.run()
            finally:
                await close_channels()

    result = asyncio.run(run())

    assert result.ok
    assert len(hatchet.runs) == 20
    assert sorted(result.recovered) == list(range(10))
    assert result.run_ids == [run.id for run in hatchet.runs]


def frame_locals(shown: traceback.TracebackException) -> str:
    """Every local a traceback with ``capture_locals`` holds, the chained exceptions' included."""
    text: list[str] = []
    seen: traceback.TracebackException | None = shown
    while seen is not None:
        text += [repr(frame.locals) for frame in seen.stack]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(text)


def test_the_token_is_kept_out_of_the_clients_vars_and_of_tracebacks_with_locals(hatchet: Any, face: Any) -> None:
    config = config_for(hatchet)
    hatchet.fail_next("bulk_trigger", status=503)

    async def fail() -> tuple[AsyncGrpcClient, list[BaseException]]:
        client = AsyncGrpcClient(config)
        caught: list[BaseException] = []
        try:
            await client.bulk_trigger([trigger_request("demo-etl", {}, None, None)])
        except HatchetTransportError as exc:
            caught.append(exc)
        await close_channels()
        return client, caught

    client, caught = asyncio.run(fail())

    assert len(caught) == 1
    assert config.token not in repr(vars(client)) and "Bearer ***" in repr(vars(client))
    for exc in caught:
        shown = traceback.TracebackException.from_exception(exc, capture_locals=True)
        assert config.token not in "".join(shown.format()) + frame_locals(shown)


def run_engine(config: ClientConfig, items: list[BulkItem], sender: Callable[[], Awaitable[Any]],
               **options: Any) -> tuple[Any, list[str]]:
    """Run a batch through the sender ``sender()`` makes in the batch's loop, with a short visibility window; the
    result and the fallback lines."""
    lines: list[str] = []

    async def run() -> Any:
        async with AsyncHatchetClient(config) as client:
            engine = BulkTrigger(client, items, batch_metadata={"batch": "fallback"}, index_key="index",
                                 since=datetime.now(timezone.utc) - timedelta(minutes=1), visibility_window=0.3,
                                 on_fallback=lines.append, sender=await sender(),
                                 **options)
            try:
                return await engine.run()
            finally:
                await close_channels()

    return asyncio.run(run()), lines


def runs_by_index(sim: Any) -> dict[int, Any]:
    runs: dict[int, Any] = {}
    for run in sim.runs:
        index = int(run.additional_metadata["index"])
        assert index not in runs, f"two runs for item {index}"
        runs[index] = run
    return runs


@pytest.mark.parametrize("code", ["UNAVAILABLE", None])
def test_auto_probes_with_a_call_that_creates_nothing_and_chooses_rest_when_it_fails(
        hatchet: Any, code: str | None) -> None:
    with DeadUpstream(code) as upstream:
        config = config_for(hatchet, grpc_address=upstream.address)

        async def choose() -> tuple[Any, str]:
            try:
                return await choose_sender(config, "auto", probe_timeout=5)
            finally:
                await close_channels()

        sender, how = asyncio.run(choose())

    assert sender is None
    assert "accepted a connection but failed a gRPC call that creates nothing" in how
    assert ("UNAVAILABLE" if code else "UNIMPLEMENTED") in how and config.token not in how


@pytest.mark.parametrize("code", ["UNAVAILABLE", "UNIMPLEMENTED"])
def test_auto_goes_on_over_rest_when_every_grpc_trigger_fails_before_one_succeeded(hatchet: Any, code: str) -> None:
    # The probe is answered, then every call that would create runs fails: the items go over REST, once each.
    with DeadUpstream(code, answer_probe=True) as upstream:
        config = config_for(hatchet, grpc_address=upstream.address)

        async def sender() -> Any:
            chosen, _ = await choose_sender(config, "auto", max_runs=10)
            return chosen

        items = [BulkItem("demo-etl", {"i": i}) for i in range(95)]
        result, lines = run_engine(config, items, sender, max_concurrency=2, fallback_concurrency=8)

    assert result.ok, result.failed
    runs = runs_by_index(hatchet)
    assert sorted(runs) == list(range(95))
    assert result.run_ids == [runs[i].id for i in range(95)]
    assert [r.route for r in hatchet.requests].count("trigger") == 95
    assert len(lines) == 1 and "goes on over REST, one request per run, 8 at a time" in lines[0]
    assert code in lines[0]
    # The probe, and no more than the two chunks in flight when the first failed.
    assert upstream.calls[0] == (_protos.BULK_TRIGGER, 0) and 2 <= len(upstream.calls) <= 3


def test_a_large_batch_falls_back_whole_chunks_at_a_time_each_item_once(hatchet: Any) -> None:
    with DeadUpstream("UNIMPLEMENTED", answer_probe=True) as upstream:
        config = config_for(hatchet, grpc_address=upstream.address)

        async def sender() -> Any:
            return GrpcSender(AsyncGrpcClient(config), fallback=True)

        items = [BulkItem("demo-etl", {"i": i}) for i in range(2500)]
        result, lines = run_engine(config, items, sender, max_concurrency=3, fallback_concurrency=16)

    assert result.ok, result.failed
    runs = runs_by_index(hatchet)
    assert result.run_ids == [runs[i].id for i in range(2500)]
    assert len(lines) == 1 and len(upstream.calls) == 3  # the three chunks of 1000, 1000 and 500, each once


def test_the_lines_saying_why_the_batch_went_over_rest_cannot_be_forged_by_the_server(hatchet: Any) -> None:
    forged = "no upstream\n2026-01-01 INFO - Sending the batch over gRPC"
    with DeadUpstream("UNAVAILABLE", details=forged) as dead, \
            DeadUpstream("UNIMPLEMENTED", answer_probe=True, details=forged) as flaky:

        async def choose() -> tuple[Any, str]:
            try:
                return await choose_sender(config_for(hatchet, grpc_address=dead.address), "auto")
            finally:
                await close_channels()

        _, how = asyncio.run(choose())

        async def sender() -> Any:
            return GrpcSender(AsyncGrpcClient(config_for(hatchet, grpc_address=flaky.address)), fallback=True)

        _, lines = run_engine(config_for(hatchet), [BulkItem("demo-etl", {})], sender)

    assert "\n" not in how and "no upstream\\n2026" in how
    assert len(lines) == 1 and "\n" not in lines[0] and "no upstream\\n2026" in lines[0]


def test_a_first_grpc_call_that_created_its_runs_and_failed_unavailable_is_not_sent_again_over_rest(
        hatchet: Any, face: Any) -> None:
    # A flaky proxy can forward the call and lose the answer: the batch goes on over REST, and the chunk's runs,
    # which exist, are found by the lookup instead of being created a second time.
    hatchet.fail_next("bulk_trigger", status=503, after_create=True)
    config = config_for(hatchet)

    async def grpc_sender() -> Any:
        return GrpcSender(AsyncGrpcClient(config), max_runs=10, fallback=True)

    items = [BulkItem("demo-etl", {"i": i}) for i in range(30)]
    result, lines = run_engine(config, items, grpc_sender, max_concurrency=1, fallback_concurrency=4)

    assert result.ok, result.failed
    assert len(lines) == 1 and "UNAVAILABLE" in lines[0]
    runs = runs_by_index(hatchet)
    assert result.run_ids == [runs[i].id for i in range(30)]
    assert sorted(result.recovered) == list(range(10))
    routes = [r.route for r in hatchet.requests]
    assert routes.count("bulk_trigger") == 1 and routes.count("trigger") == 20


def test_grpc_that_has_created_runs_is_not_left_for_rest_when_a_call_then_fails(hatchet: Any, face: Any) -> None:
    # Once gRPC created runs, UNAVAILABLE is a failure like any other: looked up, and sent again over gRPC.
    config = config_for(hatchet)
    injected: list[int] = []

    def after_first_chunk(index: int, run_id: str) -> None:
        if index == 9 and not injected:
            injected.append(index)
            hatchet.fail_next("bulk_trigger", status=503, after_create=True)
            hatchet.fail_next("bulk_trigger", status=503)

    items = [BulkItem("demo-etl", {"i": i}) for i in range(40)]

    async def grpc_sender() -> Any:
        return GrpcSender(AsyncGrpcClient(config), max_runs=10, fallback=True)

    result, lines = run_engine(config, items, grpc_sender, max_concurrency=1, stop_after=5,
                               on_run=after_first_chunk, lookup_rounds=4)

    assert injected and lines == []
    assert result.ok, result.failed
    runs = runs_by_index(hatchet)
    assert result.run_ids == [runs[i].id for i in range(40)]
    assert sorted(result.recovered) == list(range(10, 20))
    routes = [r.route for r in hatchet.requests]
    assert "trigger" not in routes and routes.count("bulk_trigger") == 5


def push(config: ClientConfig, events: list[EventSpec]) -> list[str]:
    async def call() -> list[str]:
        try:
            return await AsyncGrpcClient(config).push_events(events)
        finally:
            await close_channels()

    return asyncio.run(call())


def test_a_run_over_the_message_limit_fails_its_item_naming_the_size_and_is_not_retried(
        hatchet: Any, face: Any) -> None:
    config = config_for(hatchet)
    items = [BulkItem("demo-etl", {"i": i, "blob": "x" * (5_000_000 if i == 2 else 10)}) for i in range(6)]

    async def sender() -> Any:
        return GrpcSender(AsyncGrpcClient(config), max_runs=10)

    result, _ = run_engine(config, items, sender, max_concurrency=1,
                           retry=RetryPolicy(attempts=4, initial=0.01, maximum=0.01, jitter=0))

    assert sorted(result.failed) == [2]
    assert "the request is 5,000,0" in result.failed[2]
    assert "over this client's gRPC message limit of 4,194,304 bytes" in result.failed[2]
    assert "429" not in result.failed[2]
    assert result.requests == 3  # [0, 1], [2] alone, [3, 4, 5]: the large one sent once, not retried
    assert sorted(runs_by_index(hatchet)) == [0, 1, 3, 4, 5]


def test_the_servers_message_limit_is_named_too(hatchet: Any, face: Any) -> None:
    import grpc

    from airflow_provider_hatchet.client.grpc.errors import GrpcMessageTooLargeError, grpc_error

    request = _protos.BulkTriggerWorkflowRequest(workflows=[trigger_request("demo-etl", {"x": "y" * 5_000_000},
                                                                            None, None)])
    channel = grpc.insecure_channel(face.address, options=[("grpc.max_send_message_length", 16 * 1024 * 1024)])
    call = channel.unary_unary(_protos.BULK_TRIGGER, request_serializer=type(request).SerializeToString,
                               response_deserializer=_protos.BulkTriggerWorkflowResponse.FromString)
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=(("authorization", f"Bearer {hatchet.token}"),), timeout=30)
    channel.close()

    error = grpc_error(caught.value, _protos.BULK_TRIGGER, hatchet.token)

    assert isinstance(error, GrpcMessageTooLargeError) and error.limit == 4 * 1024 * 1024 and error.size > 5_000_000
    assert "over the server's gRPC message limit of 4,194,304 bytes" in str(error)
    assert hatchet.runs == []


def test_events_are_pushed_in_requests_under_the_message_limit_ids_in_order(hatchet: Any, face: Any) -> None:
    events = [EventSpec("big:event", {"i": i, "blob": "x" * 200_000}) for i in range(40)]

    event_ids = push(config_for(hatchet), events)

    assert len(set(event_ids)) == 40
    pushes = [r for r in hatchet.requests if r.route == "events"]
    assert len(pushes) == 3  # 15, 15 and 10 events of about 200 KB: each request under 3 MiB
    assert [r.path for r in pushes] == [_protos.BULK_PUSH] * 3


def test_an_event_over_the_message_limit_is_refused_by_index_before_anything_is_sent(
        hatchet: Any, face: Any) -> None:
    events = [EventSpec("k", {"i": i, "blob": "x" * (4_200_000 if i == 3 else 10)}) for i in range(5)]

    with pytest.raises(HatchetValidationError, match=r"events\[3\]: is 4,200,0\d\d bytes once encoded") as caught:
        push(config_for(hatchet), events)

    assert "over gRPC's message limit of 4,194,304 bytes" in str(caught.value)
    assert not [r for r in hatchet.requests if r.route == "events"]


def test_a_request_failing_after_others_pushed_says_which_events_were_pushed(hatchet: Any, face: Any) -> None:
    events = [EventSpec("k", {"i": i, "blob": "x" * 200_000}, priority=9 if i == 20 else None) for i in range(25)]

    with pytest.raises(HatchetPartialPushError, match=r"15 of 25 events were pushed \(events\[0\] to events\[14\]\)"
                       ) as caught:
        push(config_for(hatchet), events)

    assert len(caught.value.event_ids) == 15
    assert isinstance(caught.value.cause, HatchetBadRequestError)


@pytest.mark.parametrize(("ids", "expected", "words"), [
    (["5b0b6fd5-5ae0-4d1c-9d4a-2f1f7c3b9a10\n[2026-01-01] ERROR forged"], 1, "1 event ids for 1 events, not all"),
    (["not-an-event"], 1, "1 event ids for 1 events, not all"),
    (["5b0b6fd5-5ae0-4d1c-9d4a-2f1f7c3b9a10"], 2, "1 event ids for 2 events"),
])
def test_ids_answered_that_are_not_uuids_are_a_malformed_answer_that_names_none(
    ids: list[str], expected: int, words: str
) -> None:
    with pytest.raises(HatchetMalformedResponseError, match=words) as err:
        checked_ids(ids, expected, "event", _protos.BULK_PUSH)
    assert "forged" not in str(err.value) and "not-an-event" not in str(err.value)
    assert checked_ids(["5b0b6fd5-5ae0-4d1c-9d4a-2f1f7c3b9a10"], 1, "event", _protos.BULK_PUSH)
