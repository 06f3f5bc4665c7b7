"""The async gRPC client: single and bulk triggers and events (the bulk calls REST lacks, a quicker single one)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_provider_hatchet import _protos
from airflow_provider_hatchet.client.config import ClientConfig
from airflow_provider_hatchet.client.errors import HatchetError, HatchetMalformedResponseError, HatchetValidationError
from airflow_provider_hatchet.client.grpc import MAX_CHUNK_EVENTS
from airflow_provider_hatchet.client.grpc.channel import MAX_MESSAGE_BYTES, shared_channel
from airflow_provider_hatchet.client.grpc.chunks import chunked, encoded_size, fits_alone
from airflow_provider_hatchet.client.grpc.errors import grpc_error
from airflow_provider_hatchet.client.validation import is_uuid


class HatchetPartialPushError(HatchetError):
    """A list of events went out in several requests, and one failed after earlier ones had pushed their events.

    :param event_ids: the ids of the events pushed: the first ``len(event_ids)`` of the list.
    :param total: the events in the list.
    :param cause: the failure.
    """

    def __init__(self, event_ids: list[str], total: int, cause: HatchetError) -> None:
        super().__init__(f"{len(event_ids)} of {total} events were pushed (events[0] to events[{len(event_ids) - 1}]) "
                         f"before a request failed: {cause}")
        self.event_ids = event_ids
        self.cause = cause


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One event to push, already validated.

    :param key: the event key workflows subscribe to.
    :param payload: the payload, a JSON object (the triggered runs' input).
    :param additional_metadata: string metadata, copied onto the runs the event triggers.
    :param priority: 1..3 or None.
    :param scope: the scope filters are matched against, or None.
    :param timestamp: when the event happened; None for now.
    """

    key: str
    payload: Mapping[str, Any]
    additional_metadata: Mapping[str, str] | None = None
    priority: int | None = None
    scope: str | None = None
    timestamp: datetime | None = None


# json.dumps with separators builds a new encoder per call; one shared encoder halves a run's encoding time.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def trigger_request(workflow_name: str, input: Mapping[str, Any], additional_metadata: Mapping[str, str] | None,
                    priority: int | None) -> Any:
    """A ``TriggerWorkflowRequest``: input and metadata as JSON text, as the REST trigger's body holds them.

    :param workflow_name: the full workflow name.
    :param input: the run input.
    :param additional_metadata: string metadata, or None.
    :param priority: 1..3 or None.
    """
    request = _protos.TriggerWorkflowRequest(name=workflow_name, input=_COMPACT_JSON.encode(input))
    if additional_metadata:
        request.additional_metadata = _COMPACT_JSON.encode(additional_metadata)
    if priority is not None:
        request.priority = priority
    return request


def event_request(event: EventSpec) -> Any:
    """A ``PushEventRequest``; the timestamp is now unless the event has one.

    :param event: the event.
    """
    moment = event.timestamp or datetime.now().astimezone()
    seconds = moment.timestamp()
    request = _protos.PushEventRequest(
        key=event.key, payload=json.dumps(event.payload, separators=(",", ":")),
        event_timestamp=_protos.Timestamp(seconds=int(seconds), nanos=int((seconds % 1) * 1e9)),
    )
    if event.additional_metadata:
        request.additional_metadata = json.dumps(event.additional_metadata, separators=(",", ":"))
    if event.priority is not None:
        request.priority = event.priority
    if event.scope is not None:
        request.scope = event.scope
    return request


class BearerValue(str):
    """The ``authorization`` metadata value, ``Bearer <token>``, with a ``repr`` that hides the token, as httpx's
    ``Headers`` hide the REST client's: ``vars(client)`` and tracebacks that show locals print ``'Bearer ***'``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'Bearer ***'"


class AsyncGrpcClient:
    """Calls Hatchet's gRPC API over the running loop's shared channel (see ``channel.py``).

    Every call carries the bearer token in its ``authorization`` metadata, as hatchet-sdk sends it, and the
    config's timeout as its deadline. Nothing is retried here: the bulk engine decides what may be sent again.

    :param config: the client settings; ``grpc_address`` must be set.
    """

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._metadata = (("authorization", BearerValue(f"Bearer {config.token}")),)
        self._channel = shared_channel(config)
        self._stubs: dict[str, Any] = {}

    async def ready(self, timeout: float) -> bool:
        """Whether the server accepts a connection (TLS included): False at the first failed attempt, or when
        ``timeout`` seconds pass without an answer.

        :param timeout: seconds to wait.
        """
        import grpc

        state = self._channel.get_state(try_to_connect=True)
        deadline = asyncio.get_running_loop().time() + timeout
        while state != grpc.ChannelConnectivity.READY:
            remaining = deadline - asyncio.get_running_loop().time()
            if state in (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN) \
                    or remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._channel.wait_for_state_change(state), remaining)
            except asyncio.TimeoutError:
                return False
            state = self._channel.get_state(try_to_connect=True)
        return True

    async def serves(self, timeout: float) -> None:
        """Send an empty ``BulkTriggerWorkflow``, which creates nothing: that it is answered shows Hatchet's engine
        serves calls behind the address (a proxy or load balancer accepts connections with no healthy engine
        behind it too).

        :param timeout: seconds to wait for the answer.
        :raises HatchetError: mapped from the gRPC status (see ``errors.py``).
        """
        await self._call(_protos.BULK_TRIGGER, _protos.BulkTriggerWorkflowRequest(),
                         _protos.BulkTriggerWorkflowResponse, timeout=timeout)

    async def _call(self, method: str, request: Any, response_type: Any, *, timeout: float | None = None) -> Any:
        import grpc

        stub = self._stubs.get(method)
        if stub is None:
            stub = self._stubs[method] = self._channel.unary_unary(
                method, request_serializer=_serialize, response_deserializer=response_type.FromString)
        try:
            return await stub(request, metadata=self._metadata, timeout=timeout or self.config.timeout)
        except grpc.aio.AioRpcError as exc:
            raise grpc_error(exc, method, self.config.token) from None

    async def trigger(self, request: Any) -> str:
        """Trigger one run with ``TriggerWorkflow``, the call hatchet-sdk's ``run_no_wait`` makes; its id.

        :param request: a ``TriggerWorkflowRequest`` (see :func:`trigger_request`).
        :raises HatchetError: mapped from the gRPC status (see ``errors.py``).
        """
        response = await self._call(_protos.TRIGGER, request, _protos.TriggerWorkflowResponse)
        return checked_ids([str(response.workflow_run_id)], 1, "run", _protos.TRIGGER)[0]

    async def bulk_trigger(self, requests: Sequence[Any]) -> list[str]:
        """Trigger the runs of ``TriggerWorkflowRequest`` messages in one call; their ids in order.

        :param requests: the messages (see :func:`trigger_request`).
        :raises HatchetError: mapped from the gRPC status (see ``errors.py``).
        """
        response = await self._call(_protos.BULK_TRIGGER,
                                    _protos.BulkTriggerWorkflowRequest(workflows=list(requests)),
                                    _protos.BulkTriggerWorkflowResponse)
        return checked_ids([str(run_id) for run_id in response.workflow_run_ids], len(requests), "run",
                           _protos.BULK_TRIGGER)

    async def push_events(self, events: Sequence[EventSpec]) -> list[str]:
        """Push events (one with ``Push``, more with ``BulkPush`` in requests of at most 1,000 events and
        :data:`~airflow_provider_hatchet.client.grpc.chunks.MAX_CHUNK_BYTES`, one after another) and return their
        ids in order.

        :param events: the events.
        :raises HatchetValidationError: before anything is sent, for an event too large for any request.
        :raises HatchetPartialPushError: when a request fails after earlier ones pushed their events.
        :raises HatchetError: mapped from the gRPC status.
        """
        requests = [event_request(event) for event in events]
        for index, request in enumerate(requests):
            if not fits_alone(request):
                raise HatchetValidationError(
                    f"events[{index}]", f"is {encoded_size(request):,} bytes once encoded (key, payload and "
                                        f"metadata), over gRPC's message limit of {MAX_MESSAGE_BYTES:,} bytes")
        if len(requests) == 1:
            answer = await self._call(_protos.PUSH_EVENT, requests[0], _protos.Event)
            return self._event_ids([answer], 1)
        event_ids: list[str] = []
        for chunk in chunked(enumerate(requests), max_count=MAX_CHUNK_EVENTS):
            try:
                answer = await self._call(_protos.BULK_PUSH, _protos.BulkPushEventRequest(
                    events=[request for _, request in chunk]), _protos.Events)
            except HatchetError as exc:
                if event_ids:
                    raise HatchetPartialPushError(event_ids, len(requests), exc) from exc
                raise
            event_ids += self._event_ids(answer.events, len(chunk))
        return event_ids

    @staticmethod
    def _event_ids(answers: Sequence[Any], expected: int) -> list[str]:
        return checked_ids([str(answer.event_id) for answer in answers], expected, "event", _protos.BULK_PUSH)


def checked_ids(ids: list[str], expected: int, kind: str, path: str) -> list[str]:
    """The ids an answer carries, if there is one per item sent and each is a UUID, as Hatchet's are.

    An id that is not a UUID is the server's error, not a run or an event: it would be logged, put into XCom and
    into URLs (a line break in it forges a line of the task log).

    :param ids: the ids answered.
    :param expected: how many items were sent.
    :param kind: ``run`` or ``event``, for the message.
    :param path: the method path, for the message.
    :raises HatchetMalformedResponseError: naming the count, never the ids.
    """
    if len(ids) != expected or not all(map(is_uuid, ids)):
        shape = "" if all(map(is_uuid, ids)) else ", not all of them UUIDs"
        raise HatchetMalformedResponseError(f"{len(ids)} {kind} ids for {expected} {kind}s{shape}", method="gRPC",
                                            path=path)
    return ids


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())
