"""One bidirectional gRPC stream of a conformance scenario: messages go out one by one, the replies are collected
by a thread, and what arrived is recorded under steps as :meth:`Session.grpc` records a unary call."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.real.conformance import Session

# Seconds a stream may stay open: longer than any scenario.
STREAM_DEADLINE = 300.0


@dataclass
class StreamEnd:
    """How a stream ended.

    :param code: the gRPC status name.
    :param details: the status text.
    """

    code: str
    details: str


@dataclass
class GrpcStream:
    """An open stream; :meth:`Session.stream` opens one.

    :param session: the scenario's session (where steps are recorded).
    :param call: the grpcio call (an iterator of replies).
    :param outbox: the messages still to send; ``None`` half-closes.
    """

    session: Session
    call: Any
    outbox: queue.Queue[Any]
    replies: list[Any] = field(default_factory=list)
    end: StreamEnd | None = None
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> GrpcStream:
        """Start collecting the replies."""
        threading.Thread(target=self._collect, name="conformance-stream", daemon=True).start()
        return self

    def _collect(self) -> None:
        import grpc

        try:
            for reply in self.call:
                with self._arrived:
                    self.replies.append(reply)
                    self._arrived.notify_all()
            ended = StreamEnd("OK", "")
        except grpc.RpcError as exc:
            ended = StreamEnd(exc.code().name, exc.details() or "")
        with self._arrived:
            self.end = ended
            self._arrived.notify_all()

    def send(self, message: Any) -> None:
        """Send one message.

        :param message: the request message.
        """
        self.outbox.put(message)

    def _wait(self, done: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not done() and self.end is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._arrived.wait(left)

    def expect(self, steps: dict[str, str], key: Any, timeout: float = 60.0) -> None:
        """Wait until a reply for each key of ``steps`` arrived (or the stream ended, or ``timeout``), then record
        each under its step (``grpc:TIMEOUT`` when none came); they leave :attr:`replies`.

        :param steps: reply key (e.g. a run id) -> step name.
        :param key: the key of a reply.
        :param timeout: seconds.
        """
        self._wait(lambda: set(steps) <= {key(r) for r in self.replies}, timeout)
        with self._arrived:
            for wanted, step in steps.items():
                found = next((r for r in self.replies if key(r) == wanted), None)
                if found is None:
                    self.session.record(step, "grpc:TIMEOUT", {})
                    continue
                self.replies.remove(found)
                self.session.record_message(step, found)

    def close(self, step: str, *, half_close: bool = True, timeout: float = 30.0) -> None:
        """Half-close the stream (or just wait, when ``half_close`` is false), wait for its end and record it with
        the replies not taken by :meth:`expect` (``grpc:TIMEOUT`` when it does not end, then cancel it).

        :param step: the step name.
        :param half_close: send the end of the client's side first.
        :param timeout: seconds.
        """
        if half_close:
            self.outbox.put(None)
        self._wait(lambda: False, timeout)
        if self.end is None:
            self.call.cancel()
        self.session.record_stream_end(step, self.end, self.replies)


def open_stream(session: Session, method: str, reply: Any, metadata: list[tuple[str, str]]) -> GrpcStream:
    """Open a stream of ``method`` on the session's channel.

    :param session: the session.
    :param method: the full method path.
    :param reply: the reply's message class.
    :param metadata: the call's metadata.
    """
    outbox: queue.Queue[Any] = queue.Queue()
    multi = session.channel().stream_stream(method, request_serializer=lambda m: m.SerializeToString(),
                                            response_deserializer=reply.FromString)
    call = multi(iter(outbox.get, None), metadata=metadata, timeout=STREAM_DEADLINE)
    return GrpcStream(session, call, outbox).start()
