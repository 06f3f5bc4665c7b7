"""The bulk engine's gRPC sender: ``BulkTriggerWorkflow`` with up to 1,000 runs, and under 4 MiB, per call; and
how ``auto`` chooses between gRPC and REST."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from airflow_provider_hatchet.client.bulk_result import BulkItem
from airflow_provider_hatchet.client.config import ClientConfig
from airflow_provider_hatchet.client.errors import HatchetBadRequestError, HatchetError
from airflow_provider_hatchet.client.grpc import MAX_CHUNK_RUNS, TRANSPORTS
from airflow_provider_hatchet.client.grpc.channel import grpc_target
from airflow_provider_hatchet.client.grpc.chunks import MAX_CHUNK_BYTES, chunked
from airflow_provider_hatchet.client.grpc.client import AsyncGrpcClient, trigger_request
from airflow_provider_hatchet.client.grpc.errors import UNUSABLE

# Seconds ``auto`` waits for the gRPC server to accept a connection, then to answer the empty probe call.
PROBE_TIMEOUT = 5.0


class GrpcSender:
    """Sends a batch's runs in chunks over gRPC (a :class:`~airflow_provider_hatchet.client.bulk.TriggerSender`).

    :param client: the gRPC client.
    :param max_runs: the most runs per call.
    :param max_bytes: the most encoded bytes per call; a single larger run goes alone (a run over the message
        limit fails with :class:`~airflow_provider_hatchet.client.grpc.errors.GrpcMessageTooLargeError`).
    :param fallback: whether the batch may go on over REST when its first calls find gRPC unusable (``auto``).
    """

    def __init__(self, client: AsyncGrpcClient, *, max_runs: int = MAX_CHUNK_RUNS,
                 max_bytes: int = MAX_CHUNK_BYTES, fallback: bool = False) -> None:
        if not 1 <= max_runs <= MAX_CHUNK_RUNS or max_bytes < 1:
            raise ValueError(f"max_runs must be 1..{MAX_CHUNK_RUNS} and max_bytes at least 1")
        self._client = client
        self._max_runs = max_runs
        self._max_bytes = max_bytes
        self._fallback = fallback

    def chunks(self, requests: Iterator[tuple[int, BulkItem]]) -> Iterator[list[tuple[int, Any]]]:
        """Encode each item and cut a chunk before it would pass the run count or the byte budget.

        :param requests: ``(index, item)`` pairs, metadata complete.
        """
        messages = ((index, trigger_request(item.workflow_name, item.input, item.additional_metadata, item.priority))
                    for index, item in requests)
        return chunked(messages, max_count=self._max_runs, max_bytes=self._max_bytes)

    async def send(self, requests: list[Any]) -> list[str]:
        """Trigger one chunk.

        :param requests: its ``TriggerWorkflowRequest`` messages.
        """
        return await self._client.bulk_trigger(requests)

    def unusable(self, exc: HatchetError) -> bool:
        """Whether ``exc`` (UNAVAILABLE or UNIMPLEMENTED) lets the batch go on over REST; never unless ``fallback``.

        :param exc: a failure of :meth:`send`.
        """
        return self._fallback and isinstance(exc, UNUSABLE)


async def choose_sender(config: ClientConfig, transport: str, probe_timeout: float = PROBE_TIMEOUT, *,
                        max_runs: int = MAX_CHUNK_RUNS) -> tuple[GrpcSender | None, str]:
    """Pick how a batch is sent: a :class:`GrpcSender`, or None for REST; and a line saying why.

    ``grpc`` always uses gRPC. ``auto`` uses it when there is a gRPC address, the server accepts a connection on
    it and answers a call that creates nothing (an empty bulk trigger), else REST; its sender may still fall back
    to REST if its first calls fail (see :meth:`GrpcSender.unusable`). ``rest`` never opens a channel.

    :param config: the client settings.
    :param transport: ``auto``, ``grpc`` or ``rest``.
    :param probe_timeout: seconds ``auto`` waits for the connection, then for the empty call's answer.
    :param max_runs: the most runs per request.
    :raises HatchetConfigError: for ``grpc`` with no gRPC address.
    """
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, got {transport!r}")
    if transport == "rest":
        return None, "over REST, one request per run (transport='rest')"
    if transport == "auto" and not config.grpc_address:
        return None, ("over REST, one request per run: the token has no gRPC address and the connection sets no "
                      "'grpc_address'")
    client = AsyncGrpcClient(config)
    target = grpc_target(config)
    if transport == "auto":
        if not await client.ready(probe_timeout):
            return None, f"over REST, one request per run: Hatchet's gRPC API at {target} did not accept a connection"
        try:
            await client.serves(probe_timeout)
        except HatchetBadRequestError:
            pass  # the engine itself judged the empty request
        except HatchetError as exc:
            return None, (f"over REST, one request per run: {target} accepted a connection but failed a gRPC call "
                          f"that creates nothing (an empty bulk trigger): '{exc}'")
    how = f"over gRPC at {target}, up to {max_runs} runs per request"
    return GrpcSender(client, max_runs=max_runs, fallback=transport == "auto"), how
