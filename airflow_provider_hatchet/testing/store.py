"""Tenants, workflows and runs, indexed so that trigger, status and details stay O(1)."""

from __future__ import annotations

import bisect
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .calendar import Calendar
from .runs import Run
from .workers import SimWorkers
from .workflows import OutputSpec, TaskArg, WorkflowSpec, build_tasks, tasks_for_run

Clock = Callable[[], float]


def _created(run: Run) -> float:
    return run.created


_UUID_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID_SET = (0x8000 << 48) | (4 << 76)


@dataclass
class Tenant:
    """A tenant, its workflows and its runs in creation order.

    :param id: the tenant UUID.
    :param name: a display name.
    """

    id: str
    name: str
    workflows: dict[str, WorkflowSpec] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    meta_index: dict[tuple[str, str], list[Run]] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], float] = field(default_factory=dict)


@dataclass(slots=True)
class RunQuery:
    """Filters shared by the list endpoint and cancel-by-filter.

    :param since: earliest creation time (simulator clock).
    :param until: latest creation time (simulator clock), or ``None``.
    :param statuses: keep runs in these statuses, or all when empty.
    :param metadata: ``(key, value)`` pairs to match against string metadata values.
    :param match_all: require every pair (AND) instead of any (OR).
    :param workflow_ids: keep runs of these workflows, or all when empty.
    :param triggering_event: keep runs this event triggered.
    :param idempotency_keys: keep the runs holding one of these idempotency keys.
    """

    since: float
    until: float | None = None
    statuses: frozenset[str] = frozenset()
    metadata: Sequence[tuple[str, str]] = ()
    match_all: bool = False
    workflow_ids: frozenset[str] = frozenset()
    triggering_event: str | None = None
    idempotency_keys: frozenset[str] = frozenset()


class SimState:
    """The simulator's data; callers hold the simulator lock.

    :param clock: a monotonic clock in seconds.
    :param seed: seed for generated ids.
    :param visibility_delay: seconds a new run stays invisible to reads.
    :param wall_offset: seconds the simulator's wall clock runs ahead of the machine's (negative: behind).
    """

    def __init__(self, clock: Clock, seed: int, visibility_delay: float, wall_offset: float = 0.0) -> None:
        self.clock = clock
        self.visibility_delay = visibility_delay
        self._clock0 = clock()
        self._wall0 = time.time() + wall_offset
        self._rng = random.Random(f"ids-{seed}")
        self._seq = 0
        self._iso_second = -1
        self._iso_prefix = ""
        self._iso_last: tuple[float, str] = (float("nan"), "")
        self.tenants: dict[str, Tenant] = {}
        self.runs: dict[str, Run] = {}
        self.task_runs: dict[str, Run] = {}
        self.order: list[Run] = []
        self.phantom_ids: list[str] = []
        self.calendar = Calendar()
        self.default_tenant = self.add_tenant("default")
        self.worker_id = self.new_id()
        self.workers = SimWorkers()

    def new_id(self) -> str:
        """Return a fresh UUID4 drawn from the seeded generator."""
        n = self._rng.getrandbits(128) & _UUID_CLEAR | _UUID_SET
        h = f"{n:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def wall(self, t: float) -> float:
        """Convert a clock reading to a UNIX timestamp.

        :param t: simulator clock seconds.
        """
        return self._wall0 + (t - self._clock0)

    def from_wall(self, ts: float) -> float:
        """Convert a UNIX timestamp to the simulator clock.

        :param ts: UNIX seconds.
        """
        return self._clock0 + (ts - self._wall0)

    def iso(self, t: float) -> str:
        """Format a clock reading as RFC 3339 UTC with microseconds and ``Z``.

        :param t: simulator clock seconds.
        """
        if t == self._iso_last[0]:
            return self._iso_last[1]
        wall = self.wall(t)
        second = int(wall // 1)
        if second != self._iso_second:
            stamp = datetime.fromtimestamp(second, tz=timezone.utc)
            self._iso_prefix = stamp.strftime("%Y-%m-%dT%H:%M:%S.")
            self._iso_second = second
        text = f"{self._iso_prefix}{min(int((wall - second) * 1_000_000), 999_999):06d}Z"
        self._iso_last = (t, text)
        return text

    def add_tenant(self, name: str) -> Tenant:
        """Create a tenant.

        :param name: display name.
        """
        tenant = Tenant(self.new_id(), name)
        self.tenants[tenant.id] = tenant
        return tenant

    def register_workflow(
        self,
        tenant: Tenant,
        name: str,
        behaviour: str,
        *,
        duration: float,
        queue_delay: float,
        error_message: str | None,
        tasks: Sequence[TaskArg] | None,
        output: OutputSpec,
        idempotency_key: str | None = None,
        idempotency_ttl: float = 600.0,
        on_events: Sequence[str] = (),
    ) -> WorkflowSpec:
        """Register (or redefine, keeping its id) a workflow in a tenant.

        :param tenant: the tenant.
        :param name: exact workflow name.
        :param behaviour: see :data:`~.workflows.BEHAVIOURS`.
        :param duration: seconds per task.
        :param queue_delay: seconds QUEUED before the first task starts.
        :param error_message: failure message for ``fail``.
        :param tasks: task names or dicts.
        :param output: output override for the last task.
        :param idempotency_key: the key expression (``input.<path>`` or ``additional_metadata.<key>``).
        :param idempotency_ttl: seconds a key stays taken.
        :param on_events: the event keys it subscribes to.
        """
        specs = build_tasks(name, behaviour, duration=duration, error_message=error_message, tasks=tasks)
        old = tenant.workflows.get(name)
        spec = WorkflowSpec(
            id=old.id if old else self.new_id(),
            name=name,
            tenant_id=tenant.id,
            behaviour=behaviour,  # type: ignore[arg-type]
            tasks=specs,
            queue_delay=queue_delay,
            version_id=self.new_id(),
            created_at=old.created_at if old else self.iso(self.clock()),
            output=output,
            step_ids=tuple(self.new_id() for _ in specs),
            idempotency_key=idempotency_key,
            idempotency_ttl=idempotency_ttl,
            on_events=tuple(on_events),
        )
        tenant.workflows[name] = spec
        return spec

    def claim_idempotency_key(self, tenant: Tenant, spec: WorkflowSpec, key: str, now: float) -> bool:
        """Take an idempotency key of a workflow for its TTL; ``False`` when an unexpired run holds it already.

        :param tenant: the tenant.
        :param spec: the workflow.
        :param key: the key.
        :param now: the simulator clock.
        """
        held = tenant.idempotency.get((spec.id, key))
        if held is not None and held > now:
            return False
        tenant.idempotency[(spec.id, key)] = now + spec.idempotency_ttl
        return True

    def create_run(self, tenant: Tenant, spec: WorkflowSpec, body: dict[str, Any], now: float,
                   idempotency_key: str | None = None, triggering_event: str | None = None) -> Run:
        """Create a run and index it.

        :param tenant: the tenant.
        :param spec: the workflow.
        :param body: the trigger request body, kept as received.
        :param now: the simulator clock.
        :param idempotency_key: the run's idempotency key, if its workflow gives it one.
        :param triggering_event: the id of the event that triggered the run, if one did.
        """
        self._seq += 1
        run_id = self.new_id()
        run_input = body.get("input")
        tasks = tasks_for_run(spec, run_input if isinstance(run_input, dict) else {})
        task_ids = (run_id,) if len(tasks) == 1 else tuple(self.new_id() for _ in tasks)
        run = Run(run_id=run_id, seq=self._seq, workflow=spec, tasks=tasks, task_ids=task_ids, body=body,
                  created=now, created_iso=self.iso(now), created_ms=int(self.wall(now) * 1000),
                  worker_id=self.worker_id, idempotency_key=idempotency_key)
        run.triggering_event = triggering_event
        self.workers.hold_if_unserved(self, tenant, run)
        self.runs[run_id] = run
        if len(tasks) > 1:
            for task_id in task_ids:
                self.task_runs[task_id] = run
        self.order.append(run)
        tenant.runs.append(run)
        for key, value in run.additional_metadata.items():
            if isinstance(value, str):
                tenant.meta_index.setdefault((key, value), []).append(run)
        return run

    def visible(self, run: Run, now: float) -> bool:
        """Tell whether reads can see the run yet.

        :param run: the run.
        :param now: the simulator clock.
        """
        return run.read_back or now >= run.created + self.visibility_delay

    def lookup(self, run_id: str, now: float) -> Run | None:
        """Find a visible run by its run id.

        :param run_id: the lower-case external id.
        :param now: the simulator clock.
        """
        run = self.runs.get(run_id)
        return run if run is not None and self.visible(run, now) else None

    def query(self, tenant: Tenant, q: RunQuery, now: float) -> list[Run]:
        """Return the visible runs matching ``q``, newest first.

        Runs are kept in creation order (per tenant and per metadata pair), so the time window is two
        binary searches and only the other filters scan it.

        :param tenant: the tenant.
        :param q: the filters.
        :param now: the simulator clock.
        """
        ordered: list[Run] = tenant.runs
        checks: list[tuple[str, str]] = []
        if q.metadata:
            pairs = list(dict.fromkeys(q.metadata))
            lists = [tenant.meta_index.get(pair, []) for pair in pairs]
            if q.match_all or len(pairs) == 1:
                best = min(range(len(pairs)), key=lambda i: len(lists[i]))
                ordered = lists[best]
                checks = pairs[:best] + pairs[best + 1:]
            else:
                union = {run.seq: run for runs in lists for run in runs}
                ordered = [union[seq] for seq in sorted(union)]
        latest = now if q.until is None else min(now, q.until)
        lo = bisect.bisect_left(ordered, q.since, key=_created)
        hi = bisect.bisect_right(ordered, latest, key=_created)
        settled = max(lo, min(hi, bisect.bisect_right(ordered, now - self.visibility_delay, key=_created)))
        window = ordered[lo:settled] + [run for run in ordered[settled:hi] if run.read_back]
        if checks or q.workflow_ids or q.statuses or q.triggering_event or q.idempotency_keys:
            window = [
                run for run in window
                if all(run.additional_metadata.get(k) == v for k, v in checks)
                and (not q.triggering_event or run.triggering_event == q.triggering_event)
                and (not q.idempotency_keys or run.idempotency_key in q.idempotency_keys)
                and (not q.workflow_ids or run.workflow.id in q.workflow_ids)
                and (not q.statuses or run.status(now) in q.statuses)
            ]
        window.reverse()
        return window

    def reset_runs(self) -> None:
        """Forget every run (workflows, tenants and tokens stay)."""
        self.runs.clear()
        self.task_runs.clear()
        self.order.clear()
        self.phantom_ids.clear()
        self.calendar.clear()
        for worker in self.workers.by_tenant.values():
            worker.stopped_at = None
        for tenant in self.tenants.values():
            tenant.runs.clear()
            tenant.meta_index.clear()
            tenant.idempotency.clear()
