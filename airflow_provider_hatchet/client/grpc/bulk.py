"""The bulk engine's gRPC sender: ``BulkTriggerWorkflow`` with up to 1,000 runs, and under 4 MiB, per call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from airflow_provider_hatchet.client.bulk_result import BulkItem
from airflow_provider_hatchet.client.config import ClientConfig
from airflow_provider_hatchet.client.errors import HatchetError
from airflow_provider_hatchet.client.grpc import MAX_CHUNK_RUNS
from airflow_provider_hatchet.client.grpc.chunks import MAX_CHUNK_BYTES, chunked
from airflow_provider_hatchet.client.grpc.client import AsyncGrpcClient, trigger_request
from airflow_provider_hatchet.client.grpc.errors import UNUSABLE
from airflow_provider_hatchet.client.grpc.probe import PROBE_TIMEOUT, choose_client


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

    See :func:`~airflow_provider_hatchet.client.grpc.probe.choose_client` for how ``auto`` chooses; its sender may
    still fall back to REST if its first calls fail (see :meth:`GrpcSender.unusable`).

    :param config: the client settings.
    :param transport: ``auto``, ``grpc`` or ``rest``.
    :param probe_timeout: seconds ``auto`` waits for the connection, then for the empty call's answer.
    :param max_runs: the most runs per request.
    :raises HatchetConfigError: for ``grpc`` with no gRPC address.
    """
    client, how = await choose_client(config, transport, probe_timeout)
    if client is None:
        if transport == "rest":
            return None, "over REST, one request per run (transport='rest')"
        return None, f"over REST, one request per run: {how}"
    sender = GrpcSender(client, max_runs=max_runs, fallback=transport == "auto")
    return sender, f"{how}, up to {max_runs} runs per request"
