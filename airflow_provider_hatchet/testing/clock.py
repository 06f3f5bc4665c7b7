"""A clock tests move by hand, so run status changes without sleeping."""

from __future__ import annotations

import threading


class ManualClock:
    """A monotonic clock that only moves when told; pass it as ``HatchetSimulator(clock=...)``.

    :param start: the initial reading in seconds.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward and return the new reading.

        :param seconds: how far (must not be negative).
        """
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go back")
        with self._lock:
            self._now += seconds
            return self._now
