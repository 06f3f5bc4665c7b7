"""Paging through Hatchet's lists: the page sizes, the one rule for whether another page follows, and
:class:`Pages`, a list read page after page by either client's ``iter_rows``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from airflow_provider_hatchet.client.models import Pagination

if TYPE_CHECKING:
    from airflow_provider_hatchet.client.endpoints import Call

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

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


class Page(Protocol[R_co]):
    """One page of a list: its rows and its pagination block."""

    @property
    def rows(self) -> Sequence[R_co]:
        """The page's rows."""

    @property
    def pagination(self) -> Pagination:
        """The page's pagination block."""


@dataclass(frozen=True)
class Pages(Generic[R]):
    """A list read page after page.

    :param page: the call for the page at an offset, of a number of rows.
    :param size: rows per request.
    """

    page: Callable[[int, int], Call[Page[R]]]
    size: int

    def call(self, offset: int) -> Call[Page[R]]:
        """The call for the page at ``offset``.

        :param offset: rows read so far.
        """
        return self.page(offset, self.size)

    def next_offset(self, offset: int, page: Page[R]) -> int | None:
        """The offset of the page after ``page`` (read at ``offset``), or None after the last page.

        :param offset: the offset ``page`` was read at.
        :param page: the page read.
        """
        rows = len(page.rows)
        return offset + rows if has_more(rows, self.size, page.pagination) else None
