"""A gRPC proxy that loses answers: faults for the gRPC bulk fault test, in front of either server.

Every call is forwarded as raw bytes to the upstream server. A seeded draw decides its fate: answered,
UNAVAILABLE before it is forwarded (nothing happened), UNAVAILABLE or INTERNAL after the upstream answered (the runs
exist), or the stream cancelled after the upstream answered (a dropped stream). The counts say what happened.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

import grpc

BEFORE, AFTER, DROPPED, ANSWERED = "before", "after", "dropped", "answered"


class GrpcFaultProxy:
    """Forward unary calls to ``upstream`` on a free loopback port, failing some of them.

    :param upstream: the server's ``host:port`` (no TLS).
    :param before: probability of failing a call before it is forwarded.
    :param after: probability of failing a call after the upstream answered it.
    :param drop: probability of cancelling the stream after the upstream answered.
    :param seed: seed of the draws.
    """

    def __init__(self, upstream: str, *, before: float, after: float, drop: float, seed: int = 0) -> None:
        self._upstream = upstream
        self._rates = (before, after, drop)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.address = ""
        self._server: Any = None
        self._channel: Any = None

    def _draw(self) -> str:
        before, after, drop = self._rates
        with self._lock:
            x = self._rng.random()
        if x < before:
            return BEFORE
        if x < before + after:
            return AFTER
        if x < before + after + drop:
            return DROPPED
        return ANSWERED

    def _handle(self, method: str) -> Any:
        def handle(raw: bytes, context: Any) -> bytes:
            fate = self._draw()
            with self._lock:
                self.counts[fate] += 1
            if fate == BEFORE:
                context.abort(grpc.StatusCode.UNAVAILABLE, "proxy: upstream unreachable")
            call = self._channel.unary_unary(method, request_serializer=None, response_deserializer=None)
            try:
                answer = call(raw, metadata=tuple(context.invocation_metadata()), timeout=60)
            except grpc.RpcError as exc:
                context.abort(exc.code(), exc.details())
            if fate == AFTER:
                context.abort(random.choice([grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL]),
                              "proxy: answer lost")
            if fate == DROPPED:
                context.cancel()
            return bytes(answer)

        return handle

    def start(self) -> GrpcFaultProxy:
        """Bind a free port and start forwarding."""
        proxy = self

        class Forward(grpc.GenericRpcHandler):
            def service(self, details: Any) -> Any:
                return grpc.unary_unary_rpc_method_handler(proxy._handle(details.method))

        self._channel = grpc.insecure_channel(self._upstream)
        self._server = grpc.server(ThreadPoolExecutor(max_workers=16))
        self._server.add_generic_rpc_handlers([Forward()])
        port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self.address = f"127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        """Stop the proxy and close its upstream channel."""
        if self._server is not None:
            self._server.stop(1).wait()
            self._channel.close()
            self._server = None

    def __enter__(self) -> GrpcFaultProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
