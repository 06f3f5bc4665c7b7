"""Cutting gRPC requests of many messages (runs of a bulk trigger, events of a bulk push) under the message limit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from airflow_provider_hatchet.client.grpc.channel import MAX_MESSAGE_BYTES

# A quarter of the message limit left as headroom for the envelope and metadata.
MAX_CHUNK_BYTES = MAX_MESSAGE_BYTES * 3 // 4
# A repeated message field's tag and length prefix: at most 1 + 5 bytes per message.
PER_MESSAGE_OVERHEAD = 6

Key = TypeVar("Key")


def encoded_size(message: Any) -> int:
    """The bytes a message adds to a request that repeats it.

    :param message: a protobuf message.
    """
    return int(message.ByteSize()) + PER_MESSAGE_OVERHEAD


def fits_alone(message: Any) -> bool:
    """Whether a request holding only this message stays within the gRPC message limit.

    :param message: a protobuf message.
    """
    return encoded_size(message) <= MAX_MESSAGE_BYTES


def chunked(pairs: Iterable[tuple[Key, Any]], *, max_count: int,
            max_bytes: int = MAX_CHUNK_BYTES) -> Iterator[list[tuple[Key, Any]]]:
    """Group ``(key, message)`` pairs in order, lazily, cutting a chunk before it would pass ``max_count``
    messages or ``max_bytes`` encoded bytes; a single larger message goes alone.

    :param pairs: the messages, each with a key (its index) that travels with it.
    :param max_count: the most messages per chunk.
    :param max_bytes: the most encoded bytes per chunk.
    """
    chunk: list[tuple[Key, Any]] = []
    size = 0
    for key, message in pairs:
        cost = encoded_size(message)
        if chunk and (len(chunk) >= max_count or size + cost > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append((key, message))
        size += cost
    if chunk:
        yield chunk
