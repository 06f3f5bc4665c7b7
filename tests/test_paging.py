"""The one rule for whether a run or workflow list has another page, on Hatchet's pagination answers."""

from __future__ import annotations

import pytest

from airflow_provider_hatchet.client.models import Pagination
from airflow_provider_hatchet.client.paging import has_more


@pytest.mark.parametrize(
    ("rows", "limit", "pagination", "expected"),
    [
        # Hatchet says next_page = current_page + 1 on every page, the last included: it never ends a scan.
        (3, 10, Pagination(current_page=1, next_page=2, num_pages=1), False),
        (10, 10, Pagination(current_page=1, next_page=2, num_pages=1), True),
        (0, 10, Pagination(current_page=2, next_page=3, num_pages=2), False),
        # A server that caps the limit below ours answers short pages that are not the last.
        (5, 10, Pagination(current_page=1, next_page=2, num_pages=4), True),
        (5, 10, Pagination(), False),
    ],
)
def test_another_page_follows_a_full_page_or_one_the_server_counts(
    rows: int, limit: int, pagination: Pagination, expected: bool
) -> None:
    assert has_more(rows, limit, pagination) is expected
