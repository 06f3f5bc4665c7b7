"""The ``pagination`` object of each list answer, in the shape Hatchet gives that list (they differ)."""

from __future__ import annotations

import math

# The task-log list answers a zeroed pagination whatever it returns.
TASK_LOG_PAGINATION = {"current_page": 0, "next_page": 0, "num_pages": 0}


def run_pagination(total: int, offset: int, limit: int) -> dict[str, int]:
    """The run list's ``PaginationResponse``: ``next_page`` is always one more than ``current_page``.

    :param total: number of matching rows.
    :param offset: rows skipped.
    :param limit: page size.
    """
    current = offset // limit + 1
    return {"current_page": current, "next_page": current + 1, "num_pages": math.ceil(total / limit)}


def workflow_pagination(total: int, offset: int, limit: int) -> dict[str, int]:
    """The ``PaginationResponse`` of the workflow, schedule and cron lists: ``next_page`` stays put on the last page.

    :param total: number of matching rows.
    :param offset: rows skipped.
    :param limit: page size.
    """
    pages = math.ceil(total / limit)
    current = 1 + math.ceil(offset / limit)
    return {"current_page": current, "next_page": current if current == pages else current + 1,
            "num_pages": pages}


def event_pagination(total: int, offset: int, limit: int, shown: int) -> dict[str, int]:
    """The event list's ``PaginationResponse``: ``next_page`` moves on after a full page only.

    :param total: number of matching rows.
    :param offset: rows skipped.
    :param limit: page size.
    :param shown: rows on this page.
    """
    current = offset // limit + 1
    return {"current_page": current, "next_page": current + 1 if shown == limit else current,
            "num_pages": math.ceil(total / limit)}
