"""Kill every process whose environment holds ``E2E_RUN_TAG=<tag>``, except the given pids.

``e2e/run.sh`` and ``e2e/run_prod.sh`` tag everything they start and call this at the end (also on failure and
Ctrl-C): whatever a crashed harness left behind still carries the tag. Exits 1 if anything survives SIGKILL.

Usage: ``python3 e2e/sweep.py TAG [PID...]``
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time


def tagged(tag: bytes, spare: set[int]) -> list[int]:
    """The pids whose environment holds ``tag``.

    :param tag: ``E2E_RUN_TAG=...`` as bytes
    :param spare: pids never returned
    :return: the pids
    """
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in spare:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if tag in fh.read().split(b"\0"):
                    pids.append(int(entry))
        except OSError:
            pass
    return pids


def sweep(tag: bytes, spare: set[int]) -> list[int]:
    """SIGTERM, then SIGKILL, every tagged process; return those still alive.

    :param tag: ``E2E_RUN_TAG=...`` as bytes
    :param spare: pids left alone
    :return: survivors
    """
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        pids = tagged(tag, spare)
        if not pids:
            break
        print(f"[e2e] {sig.name} to {len(pids)} leftover process(es): {pids}", flush=True)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while tagged(tag, spare) and time.monotonic() < deadline:
            time.sleep(0.2)
    return tagged(tag, spare)


def main() -> int:
    """Sweep the tag given on the command line."""
    tag = f"E2E_RUN_TAG={sys.argv[1]}".encode()
    left = sweep(tag, {os.getpid(), os.getppid(), *(int(pid) for pid in sys.argv[2:])})
    if left:
        print(f"[e2e] FAIL: processes left behind: {left}", flush=True)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
