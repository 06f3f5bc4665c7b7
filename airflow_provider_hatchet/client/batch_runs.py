"""Finding a bulk batch's runs again from its batch key, so a deferred wait need not carry every run id.

A trigger's arguments are stored in one database column (``TEXT``, 64 KiB on MySQL); 10,000 run ids take
about half a megabyte once encrypted. A batch is instead described by its key, its size and a digest of its
ids in order: the run list filtered by the key gives each item's run (the newest for its index, as a retry of
the bulk task only triggers an item again when its earlier run cannot be reused), and the digest proves that
the ids read back are exactly the batch's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime

from airflow_provider_hatchet.client import endpoints
from airflow_provider_hatchet.client.aio import AsyncHatchetClient
from airflow_provider_hatchet.client.models import RunSummary
from airflow_provider_hatchet.client.paging import RUN_PAGE_SIZE, has_more


def pack_ids(run_ids: Sequence[str]) -> str | None:
    """The run ids as base64 of their 16-byte UUIDs, in order (22 characters an id, against 38 in a JSON list);
    None unless every id is a UUID in its canonical form (which unpacking gives back).

    :param run_ids: the run ids.
    """
    raw = bytearray()
    for run_id in run_ids:
        try:
            value = uuid.UUID(run_id)
        except ValueError:
            return None
        if str(value) != run_id:
            return None
        raw += value.bytes
    return base64.b64encode(bytes(raw)).decode("ascii")


def unpack_ids(packed: str) -> list[str]:
    """The run ids :func:`pack_ids` packed.

    :param packed: the packed ids.
    :raises ValueError: for text that is not base64 of whole UUIDs.
    """
    try:
        raw = base64.b64decode(packed.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("packed_run_ids is not base64") from None
    if not raw or len(raw) % 16:
        raise ValueError(f"packed_run_ids holds {len(raw)} bytes, not whole 16-byte run ids")
    return [str(uuid.UUID(bytes=raw[i:i + 16])) for i in range(0, len(raw), 16)]


def ids_digest(run_ids: Sequence[str]) -> str:
    """A short fingerprint of run ids in order.

    :param run_ids: the run ids.
    """
    return hashlib.sha256("\n".join(run_ids).encode()).hexdigest()


async def batch_rows(
    client: AsyncHatchetClient, batch: Mapping[str, str], count: int, *, since: datetime, index_key: str,
    on_page: Callable[[], None] | None = None,
) -> AsyncIterator[tuple[int, RunSummary]]:
    """Yield ``(index, run)`` for each listed run of a batch, newest first: rows that carry the batch's metadata
    (the server's filter is not trusted) and an item index below ``count``.

    :param client: the async client.
    :param batch: the metadata pairs that mark the batch's runs.
    :param count: how many items the batch has.
    :param since: no run of the batch was created before this.
    :param index_key: the metadata key holding each run's item index.
    :param on_page: called before each page is requested (to count the requests).
    """
    offset = 0
    while True:
        if on_page is not None:
            on_page()
        page = await client.send(endpoints.list_runs(since=since, additional_metadata=batch, offset=offset,
                                                     limit=RUN_PAGE_SIZE))
        for row in page.rows:
            raw = row.additional_metadata.get(index_key)
            if isinstance(raw, str) and raw.isdecimal() and int(raw) < count and row.has_metadata(batch):
                yield int(raw), row
        if not has_more(len(page.rows), RUN_PAGE_SIZE, page.pagination):
            return
        offset += len(page.rows)


async def find_batch_runs(
    client: AsyncHatchetClient, batch: tuple[str, str], count: int, *, since: datetime, index_key: str
) -> list[str | None]:
    """Each item's run id, in item order, read from the run list by the batch key; None where none is listed.

    Rows are kept only if they carry this batch and an index below ``count``; the list is newest first,
    so each index keeps its newest run.

    :param client: the async client.
    :param batch: the metadata key and value that mark the batch's runs.
    :param count: how many items the batch has.
    :param since: no run of the batch was created before this.
    :param index_key: the metadata key holding each run's item index.
    """
    found: list[str | None] = [None] * count
    key, value = batch
    async for index, row in batch_rows(client, {key: value}, count, since=since, index_key=index_key):
        if found[index] is None:
            found[index] = row.id
    return found
