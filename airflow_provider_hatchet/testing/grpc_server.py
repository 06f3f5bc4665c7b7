"""The simulator's gRPC face: a grpcio server on loopback (imported lazily), next to the REST face."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any

from airflow_provider_hatchet import _protos

if TYPE_CHECKING:
    from .simulator import HatchetSimulator

_REQUESTS = {
    _protos.TRIGGER: (_protos.TriggerWorkflowRequest, _protos.TriggerWorkflowResponse),
    _protos.BULK_TRIGGER: (_protos.BulkTriggerWorkflowRequest, _protos.BulkTriggerWorkflowResponse),
    _protos.PUSH_EVENT: (_protos.PushEventRequest, _protos.Event),
    _protos.BULK_PUSH: (_protos.BulkPushEventRequest, _protos.Events),
}
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# Real seconds a finished-run stream waits between looks at the simulator clock, when no client or test acts.
STREAM_LOOK_INTERVAL = 0.02


class SimulatorGrpcServer:
    """Serve a simulator's gRPC calls on loopback; tokens minted while it runs carry its address.

    ``with sim.grpc_server() as face:`` binds a free port, sets ``sim.grpc_address`` and stops on exit.

    :param simulator: the simulator whose state the calls share with its REST face.
    :param host: the interface.
    :param port: the port (0 picks a free one).
    :param workers: threads answering calls; each open finished-run stream holds one.
    """

    def __init__(self, simulator: HatchetSimulator, *, host: str = "127.0.0.1", port: int = 0,
                 workers: int = 64) -> None:
        self.simulator = simulator
        self._host = host
        self._port = port
        self._workers = workers
        self._server: Any = None
        self.address = ""

    def start(self) -> SimulatorGrpcServer:
        """Bind and start serving.

        :raises RuntimeError: when the port cannot be bound.
        """
        import grpc

        services: dict[str, dict[str, Any]] = {}
        for path in _REQUESTS:
            service, name = path.strip("/").split("/")
            services.setdefault(service, {})[name] = grpc.unary_unary_rpc_method_handler(
                self._handler(path), request_deserializer=lambda raw: raw, response_serializer=_serialize)
        service, name = _protos.SUBSCRIBE_RUNS.strip("/").split("/")
        services.setdefault(service, {})[name] = grpc.stream_stream_rpc_method_handler(
            self._run_stream, request_deserializer=lambda raw: raw, response_serializer=_serialize)
        server = grpc.server(ThreadPoolExecutor(max_workers=self._workers),
                             options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                      # The clients' 10 s keepalive pings on an idle stream, as Hatchet accepts them;
                                      # grpcio's default (5 min) answers them with GOAWAY too_many_pings.
                                      ("grpc.keepalive_permit_without_calls", 1),
                                      ("grpc.http2.min_ping_interval_without_data_ms", 5_000)])
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(name, methods) for name, methods in services.items()])
        port = server.add_insecure_port(f"{self._host}:{self._port}")
        if not port:
            raise RuntimeError(f"the simulator's gRPC face could not bind {self._host}:{self._port}")
        server.start()
        self._server = server
        self.address = f"{self._host}:{port}"
        self.simulator.grpc_address = self.address
        return self

    def _handler(self, method: str) -> Any:
        import grpc

        request_type = _REQUESTS[method][0]

        def handle(raw: bytes, context: Any) -> Any:
            metadata = dict(context.invocation_metadata())
            try:
                request = request_type.FromString(raw)
            except Exception:  # any decoding failure is the caller's bad request
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the request is not a valid message")
            answer = self.simulator.handle_grpc(method, metadata.get("authorization"), request, raw)
            if answer.delay:
                time.sleep(answer.delay)
            if answer.drop:
                context.cancel()
                return None
            if answer.code != "OK":
                if answer.status_details is not None:
                    context.set_trailing_metadata([(_protos.STATUS_DETAILS_KEY, answer.status_details)])
                context.abort(getattr(grpc.StatusCode, answer.code), answer.details)
            return answer.response

        return handle

    def _run_stream(self, requests: Any, context: Any) -> Any:
        """``SubscribeToWorkflowRuns``: a thread reads the client's run ids while this generator sends the events
        that fall due; the client's half-close ends the stream with OK, as on Hatchet."""
        import grpc

        sim = self.simulator
        stream = sim.open_run_stream(dict(context.invocation_metadata()).get("authorization"))
        if stream is None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid auth token")
            return

        def read() -> None:
            try:
                for raw in requests:
                    sim.subscribe_run(stream, _protos.SubscribeToWorkflowRunsRequest.FromString(raw).workflow_run_id)
            except Exception:  # the client went away or sent garbage: the stream ends either way
                pass
            sim.close_run_stream(stream)

        threading.Thread(target=read, name="sim-run-stream-reader", daemon=True).start()
        context.add_callback(lambda: sim.close_run_stream(stream))
        changed = sim.run_streams_changed
        while context.is_active():
            yield from sim.run_stream_events(stream)
            if stream.ended:
                break
            with changed:
                changed.wait(STREAM_LOOK_INTERVAL)
        if stream.ended not in ("", "OK"):
            context.abort(getattr(grpc.StatusCode, stream.ended), "stream cut by the simulator")

    def stop(self, grace: float = 1.0) -> None:
        """Stop serving; calls in flight get ``grace`` seconds.

        :param grace: seconds.
        """
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None
            self.simulator.grpc_address = None

    def __enter__(self) -> SimulatorGrpcServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())
