"""Kill every process whose environment holds ``E2E_RUN_TAG=<tag>``, except the given pids, and every process
group listed in ``--pgids FILE`` (``e2e/stack.py`` writes one pgid a line: Celery and Redis overwrite their
environment with their process titles, so the tag cannot find them).

``e2e/run.sh`` and ``e2e/run_prod.sh`` tag everything they start and call this at the end (also on failure and
Ctrl-C): whatever a crashed harness left behind still carries the tag. Exits 1 if anything survives SIGKILL.

Usage: ``python3 e2e/sweep.py [--pgids FILE] TAG [PID...]``
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path


def say(line: str) -> None:
    """Print a line; a closed stdout (the caller piped into ``head``) must not stop the sweep.

    :param line: the text
    """
    with contextlib.suppress(OSError):
        print(line, flush=True)


def tagged(tag: bytes, spare: set[int], pgids: set[int]) -> list[int]:
    """The pids whose environment holds ``tag`` or whose process group is one of ``pgids``.

    :param tag: ``E2E_RUN_TAG=...`` as bytes
    :param spare: pids never returned
    :param pgids: process groups
    :return: the pids
    """
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in spare:
            continue
        try:
            if os.getpgid(int(entry)) in pgids:
                pids.append(int(entry))
                continue
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if tag in fh.read().split(b"\0"):
                    pids.append(int(entry))
        except OSError:
            pass
    return pids


def sweep(tag: bytes, spare: set[int], pgids: set[int]) -> list[int]:
    """SIGTERM, then SIGKILL, every tagged process; return those still alive.

    :param tag: ``E2E_RUN_TAG=...`` as bytes
    :param spare: pids left alone
    :param pgids: process groups killed too
    :return: survivors
    """
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        pids = tagged(tag, spare, pgids)
        if not pids:
            break
        say(f"[e2e] {sig.name} to {len(pids)} leftover process(es): {pids}")
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while tagged(tag, spare, pgids) and time.monotonic() < deadline:
            time.sleep(0.2)
    return tagged(tag, spare, pgids)


def main() -> int:
    """Sweep the tag given on the command line."""
    args = sys.argv[1:]
    pgids: set[int] = set()
    if args[:1] == ["--pgids"]:
        path = Path(args[1])
        pgids = {int(line) for line in path.read_text().split()} if path.exists() else set()
        args = args[2:]
    tag = f"E2E_RUN_TAG={args[0]}".encode()
    spare = {os.getpid(), os.getppid(), *(int(pid) for pid in args[1:])}
    left = sweep(tag, spare, pgids - {os.getpgid(0)})
    if left:
        say(f"[e2e] FAIL: processes left behind: {left}")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
