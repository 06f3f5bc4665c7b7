"""Paging through Hatchet's lists: the page sizes, and the one rule for whether another page follows."""

from __future__ import annotations

from airflow_provider_hatchet.client.models import Pagination

# Rows per request of the run list (the waiter's scans, lookups by metadata), of the workflow list, and of the
# AssetWatcher polls' run and event lists.
RUN_PAGE_SIZE = 1000
WORKFLOW_PAGE_SIZE = 200
WATCH_PAGE_SIZE = 500


def has_more(rows: int, limit: int, pagination: Pagination) -> bool:
    """Whether another page may follow a page of ``rows`` rows read with ``limit``; the next offset is the rows
    read so far.

    Hatchet answers ``next_page = current_page + 1`` even on the last page, so only a full page, or ``num_pages``
    beyond the current page (a server that caps the limit below ours), says that more follow.

    :param rows: the rows the page held.
    :param limit: the limit the page was asked with.
    :param pagination: the page's pagination block.
    """
    return rows > 0 and (rows >= limit or (pagination.num_pages or 0) > (pagination.current_page or 0))
