"""The stack's worker, stopped while a real-server benchmark times a send, so that executing runs does not compete
with the server for the 2 cores: ``make hatchet-up`` records its pid in ``build/hatchet/state.json``."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / "build" / "hatchet" / "state.json"


def worker_group() -> int | None:
    """The process group of the stack's worker, from ``build/hatchet/state.json``; None when unknown."""
    if not STATE.exists():
        return None
    pid = json.loads(STATE.read_text()).get("pids", {}).get("worker")
    return int(pid) if pid else None


@contextmanager
def worker_paused(group: int | None) -> Iterator[None]:
    """Stop the worker (SIGSTOP) while the block runs, then let it go on (SIGCONT).

    :param group: the worker's process group (:func:`worker_group`); None does nothing.
    """
    if group is not None:
        os.killpg(group, signal.SIGSTOP)
    try:
        yield
    finally:
        if group is not None:
            os.killpg(group, signal.SIGCONT)
