"""Waiting in a test for something the code under test brings about: the condition is looked at often and the wait
is bounded, rather than a sleep that guesses how long it takes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(holds: Callable[[], bool], what: str = "the condition", timeout: float = 20.0,
                every: float = 0.02) -> None:
    """Return once ``holds()`` is true; fail the test if it is not within ``timeout`` seconds.

    :param holds: the condition.
    :param what: what it means, for the failure message.
    :param timeout: seconds before the test fails.
    :param every: seconds between two looks.
    """
    deadline = time.monotonic() + timeout
    while not holds():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(every)
