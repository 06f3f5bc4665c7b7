"""Finding a bulk batch's runs again from its batch key, so a deferred wait need not carry every run id.

A trigger's arguments are stored in one database column (``TEXT``, 64 KiB on MySQL); 10,000 run ids take
about half a megabyte once encrypted. A batch is instead described by its key, its size and a digest of its
ids in order: the run list filtered by the key gives each item's run (the newest for its index, as a retry of
the bulk task only triggers an item again when its earlier run cannot be reused), and the digest proves that
the ids read back are exactly the batch's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from airflow_provider_hatchet.client.aio import AsyncHatchetClient
from airflow_provider_hatchet.client.paging import RUN_PAGE_SIZE


def ids_digest(run_ids: Sequence[str]) -> str:
    """A short fingerprint of run ids in order.

    :param run_ids: the run ids.
    """
    return hashlib.sha256("\n".join(run_ids).encode()).hexdigest()


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
    async for row in client.iter_runs(since=since, page_size=RUN_PAGE_SIZE, additional_metadata={key: value}):
        raw = row.additional_metadata.get(index_key)
        if not row.has_metadata({key: value}) or not isinstance(raw, str):
            continue
        if raw.isdigit() and int(raw) < count and found[int(raw)] is None:
            found[int(raw)] = row.id
    return found
