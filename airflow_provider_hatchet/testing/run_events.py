"""The bookkeeping of the simulator's finished-run stream (the Dispatcher's ``SubscribeToWorkflowRuns``).

As on Hatchet (docs/hatchet-behaviour.md, "The finished-run stream"): each stream remembers the run ids its client
sent, ignoring one that is not a UUID. A remembered run that finishes is sent once, at once (the server's message
queue pushes it); a run that had already finished when it was sent is found by the stream's poll, which ticks
every :data:`POLL_INTERVAL` seconds of the simulator's clock from the stream's opening. A run is forgotten once
sent, so sending its id again has it sent again at the next tick. An id of no run of the stream's tenant is never
answered. Time is the simulator's clock: with a :class:`~.clock.ManualClock`, events fall due as a test advances it.

As an older release (``testing/versions.py``), an ``id-`` id that is not a UUID is remembered, and the stream's next
poll ends every open stream with UNAVAILABLE, as the engine's crash does.
"""

from __future__ import annotations

import json
import math
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_hatchet import _protos

from .runs import Run
from .versions import CRASHING_RUN_ID_PREFIX, CRASHING_RUN_IDS_BEFORE, before
from .workflows import task_output

# The real server's poll of the remembered runs that have not been sent (a Go ticker of 1 s).
POLL_INTERVAL = 1.0


@dataclass(eq=False)
class RunStream:
    """One open stream: its tenant and the runs its client is waiting for.

    :param tenant_id: the tenant of the token that opened it.
    :param opened: the simulator clock when it opened (its poll ticks count from here).
    """

    tenant_id: str
    opened: float
    pending: dict[str, float] = field(default_factory=dict)
    crashing: dict[str, float] = field(default_factory=dict)
    ended: str = ""

    def tick_after(self, t: float, interval: float) -> float:
        """The first poll tick strictly after ``t``.

        :param t: a simulator clock reading.
        :param interval: seconds between ticks.
        """
        return self.opened + (math.floor((t - self.opened) / interval) + 1) * interval


def is_run_id(text: str) -> bool:
    """Tell whether a subscription names a run the server would look up: a UUID.

    :param text: the id the client sent.
    """
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def results(run: Run, now: float) -> list[Any]:
    """The ``StepRunResult`` of each task that ended: its output as the worker sent it (compact JSON, not the REST
    API's ``jsonb`` text), or its error (empty for a cancelled task).

    :param run: a finished run.
    :param now: the simulator clock.
    """
    found = []
    for i in run.existing_tasks(now):
        status = run.task_status(i, now)
        if status not in ("COMPLETED", "FAILED", "CANCELLED"):
            continue
        result = _protos.StepRunResult(task_run_external_id=run.task_ids[i], task_name=run.tasks[i].name,
                                       job_run_id=run.task_ids[i])
        if status == "COMPLETED":
            result.output = json.dumps(task_output(run.workflow, i, run.input), separators=(",", ":"))
        else:
            result.error = (run.tasks[i].error_message or "") if status == "FAILED" else ""
        found.append(result)
    return found


class RunEvents:
    """Every open stream of one simulator, and the runs whose events a test has the simulator drop.

    Callers hold the simulator's lock; :attr:`changed` (on that lock) is notified when a client or a test acts.

    :param lock: the simulator's lock.
    :param settings: object with a ``version`` attribute: the Hatchet release answered as.
    :param poll_interval: seconds of the simulator clock between a stream's polls.
    """

    def __init__(self, lock: threading.RLock, settings: Any, poll_interval: float = POLL_INTERVAL) -> None:
        self.settings = settings
        self.poll_interval = poll_interval
        self.streams: list[RunStream] = []
        self.dropped: set[str] = set()
        self.changed = threading.Condition(lock)

    def open(self, tenant_id: str, now: float) -> RunStream:
        """Open a stream.

        :param tenant_id: the caller's tenant.
        :param now: the simulator clock.
        """
        stream = RunStream(tenant_id, now)
        self.streams.append(stream)
        return stream

    def subscribe(self, stream: RunStream, run_id: str, now: float) -> None:
        """Remember a run id the client sent (one that is not a UUID is ignored).

        :param stream: the stream.
        :param run_id: the id.
        :param now: the simulator clock.
        """
        if is_run_id(run_id):
            stream.pending.setdefault(str(uuid.UUID(run_id)), now)
        elif run_id.startswith(CRASHING_RUN_ID_PREFIX) and before(self.settings.version, CRASHING_RUN_IDS_BEFORE):
            stream.crashing.setdefault(run_id, now)
        self._notify()

    def close(self, stream: RunStream, how: str = "OK") -> None:
        """End a stream (the client half-closed or went away, or a test cut it).

        :param stream: the stream.
        :param how: the gRPC status its client sees: ``OK``, or ``UNAVAILABLE`` for a dropped connection.
        """
        if not stream.ended:
            stream.ended = how
        if stream in self.streams:
            self.streams.remove(stream)
        self._notify()

    def cut_all(self, code: str) -> int:
        """End every open stream with a gRPC status; return how many there were.

        :param code: the status name.
        """
        streams = list(self.streams)
        for stream in streams:
            self.close(stream, code)
        return len(streams)

    def due(self, stream: RunStream, runs: dict[str, Run], now: float) -> list[Any]:
        """The events ``stream`` sends now; their runs are forgotten by it.

        :param stream: the stream.
        :param runs: every run by id.
        :param now: the simulator clock.
        """
        if any(now >= stream.tick_after(since, self.poll_interval) for since in stream.crashing.values()):
            self.cut_all("UNAVAILABLE")  # the engine's crash
            return []
        events = []
        for run_id, since in list(stream.pending.items()):
            run = runs.get(run_id)
            if run is None or run.tenant_id != stream.tenant_id:
                continue
            if run.cancel_at is None and run.prior is None and now < run.end:
                continue  # still queued or running (Run.status, without its cost: a stream may wait on thousands)
            finished = run.finished_at(now)
            if finished is None or (finished < since and now < stream.tick_after(since, self.poll_interval)):
                continue
            del stream.pending[run_id]
            if run_id in self.dropped:
                continue
            # event_type FINISHED is the enum's zero, which Hatchet (proto3) leaves off the wire.
            events.append(_protos.WorkflowRunEvent(workflow_run_id=run.id, results=results(run, now)))
        return events

    def reset(self) -> None:
        """Forget dropped events (open streams stay open)."""
        self.dropped.clear()

    def _notify(self) -> None:
        with self.changed:
            self.changed.notify_all()
