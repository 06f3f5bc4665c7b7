"""Hatchet's clock, read through the local one: the offset the ``Date`` header of its answers shows.

A ``Date`` header holds whole seconds, stamped somewhere between the request leaving and its answer arriving, so
one answer bounds the offset (Hatchet's time minus the local time) to an interval about a second wide. While an
answer's interval holds zero the clocks agree as far as it can tell; when it does not, the answer's low end is
taken, the earliest time Hatchet's clock can read, so that a window anchored to it starts early rather than late
(it lists a little more, never less).

For the same reason the clock reads the lowest offset of the latest :data:`RECENT_ANSWERS` answers, not the
latest answer's: one answer far ahead (a replica or proxy whose clock is off, a garbage header) would otherwise
settle the time to come and put a watcher's horizon past runs not created yet. A ``Date`` that goes back is
followed at once; one that goes forward, once the answers of the earlier time have left the window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

# How many of the latest answers the offset is the lowest of: a watcher's few polls.
RECENT_ANSWERS = 16
# A Date further than this from the local clock is garbage (a proxy or device stamping the epoch), not a skew.
PLAUSIBLE_SKEW = timedelta(days=365)
_SECOND = timedelta(seconds=1)
_ZERO = timedelta(0)


def utcnow() -> datetime:
    """The current local time, aware, in UTC."""
    return datetime.now(timezone.utc)


def _offset(sent: datetime, received: datetime, header: str) -> timedelta | None:
    """The offset one answer shows: zero when its interval holds zero, else the interval's low end; None when
    the header cannot be read, or is years away from the local clock."""
    try:
        stamped = parsedate_to_datetime(header)
        if stamped.tzinfo is None:
            stamped = stamped.replace(tzinfo=timezone.utc)
        low, high = stamped - received, stamped + _SECOND - sent
    except (TypeError, ValueError, OverflowError):
        return None
    if abs(low) > PLAUSIBLE_SKEW:
        return None
    return _ZERO if low <= _ZERO <= high else low


class ServerClock:
    """Hatchet's time, as the ``Date`` headers of its answers tell it.

    :param local: the local clock (aware UTC datetimes).
    """

    def __init__(self, local: Callable[[], datetime] = utcnow) -> None:
        self.local = local
        # The answers not read yet, as (sent, received, header): parsed only when the clock is read.
        self._unread: deque[tuple[datetime, datetime, str]] = deque(maxlen=RECENT_ANSWERS)
        self._offsets: deque[timedelta | None] = deque(maxlen=RECENT_ANSWERS)
        self._offset: timedelta | None = None

    def observe(self, sent: datetime, received: datetime, date: str | None) -> None:
        """Note one answer (the header is parsed only when the clock is read).

        :param sent: the local time the request left.
        :param received: the local time its answer arrived.
        :param date: the answer's ``Date`` header, if any.
        """
        if date:
            self._unread.append((sent, received, date))

    @property
    def offset(self) -> timedelta | None:
        """Hatchet's time minus the local time: the lowest the latest answers with a readable ``Date`` show;
        None before one."""
        if self._unread:
            while True:
                try:
                    answer = self._unread.popleft()
                except IndexError:  # read empty, here or by another thread of a sync client
                    break
                self._offsets.append(_offset(*answer))
            readable = [offset for offset in self._offsets if offset is not None]
            if readable:
                self._offset = min(readable)
        return self._offset

    def now(self) -> datetime:
        """Hatchet's time now: the local time corrected by :attr:`offset` (uncorrected before any answer)."""
        return self.local() + (self.offset or _ZERO)
