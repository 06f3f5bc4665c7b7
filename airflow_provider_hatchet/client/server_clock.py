"""Hatchet's clock, read through the local one: the offset the ``Date`` header of its answers shows.

A ``Date`` header holds whole seconds, stamped somewhere between the request leaving and its answer arriving, so
one answer bounds the offset (Hatchet's time minus the local time) to an interval about a second wide. While the
latest answer's interval holds zero the clocks agree as far as can be told and the local time is used; when it
does not, the clock takes its low end, the earliest time Hatchet's clock can read, so that a window anchored to it
starts early rather than late (it lists a little more, never less).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

_SECOND = timedelta(seconds=1)
_ZERO = timedelta(0)


def utcnow() -> datetime:
    """The current local time, aware, in UTC."""
    return datetime.now(timezone.utc)


class ServerClock:
    """Hatchet's time, as the ``Date`` headers of its answers tell it.

    :param local: the local clock (aware UTC datetimes).
    """

    def __init__(self, local: Callable[[], datetime] = utcnow) -> None:
        self.local = local
        self._last: tuple[datetime, datetime, str] | None = None
        self._parsed: tuple[datetime, datetime, str] | None = None
        self._offset: timedelta | None = None

    def observe(self, sent: datetime, received: datetime, date: str | None) -> None:
        """Note one answer (the header is parsed only when the clock is read).

        :param sent: the local time the request left.
        :param received: the local time its answer arrived.
        :param date: the answer's ``Date`` header, if any.
        """
        if date:
            self._last = (sent, received, date)

    @property
    def offset(self) -> timedelta | None:
        """Hatchet's time minus the local time, per the latest answer with a readable ``Date``; None before one."""
        last = self._last
        if last is not None and last is not self._parsed:
            self._parsed = last
            sent, received, header = last
            try:
                stamped = parsedate_to_datetime(header)
            except (TypeError, ValueError):
                return self._offset
            if stamped.tzinfo is None:
                stamped = stamped.replace(tzinfo=timezone.utc)
            low, high = stamped - received, stamped + _SECOND - sent
            self._offset = _ZERO if low <= _ZERO <= high else low
        return self._offset

    def now(self) -> datetime:
        """Hatchet's time now: the local time corrected by :attr:`offset` (uncorrected before any answer)."""
        return self.local() + (self.offset or _ZERO)
