"""``GET /api/v1/tenants/{tenant}/worker``: the tenant's worker, which serves every workflow it has unless stopped.

Each tenant has one worker, as ``e2e/hatchet/worker.py`` is on the real stack. While it runs, its actions are
``<lowercased workflow>:<task>`` of every workflow of the tenant, except those registered ``served=False``. A
stopped worker keeps its row but reads ``INACTIVE`` once its last heartbeat is :data:`HEARTBEAT_TIMEOUT` seconds
old (the real server's rule). A run triggered while no live worker serves its workflow stays QUEUED until one
does (:meth:`SimWorkers.start` plans it from then).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ._http import SimResponse, json_response

if TYPE_CHECKING:
    from .runs import Run
    from .store import SimState, Tenant
    from .workflows import WorkflowSpec

# The server reads a worker INACTIVE once its last heartbeat is this old.
HEARTBEAT_TIMEOUT = 5.0
INF = float("inf")


@dataclass(slots=True)
class SimWorker:
    """A tenant's worker.

    :param id: its UUID.
    :param created: the simulator clock when it registered.
    :param stopped_at: the simulator clock when it stopped (its last heartbeat), None while it runs.
    :param unserved: the workflows it does not serve.
    """

    id: str
    created: float
    stopped_at: float | None = None
    unserved: set[str] = field(default_factory=set)

    def status(self, now: float) -> str:
        """``ACTIVE`` while running, ``INACTIVE`` once the last heartbeat is too old.

        :param now: the simulator clock.
        """
        if self.stopped_at is not None and now - self.stopped_at >= HEARTBEAT_TIMEOUT:
            return "INACTIVE"
        return "ACTIVE"

    def serves(self, spec: WorkflowSpec, now: float) -> bool:
        """Whether the worker is running and serves ``spec`` (a stopped worker takes no run, heartbeat or not).

        :param spec: the workflow.
        :param now: the simulator clock.
        """
        return self.stopped_at is None and spec.name not in self.unserved


class SimWorkers:
    """The workers of every tenant; callers hold the simulator lock."""

    def __init__(self) -> None:
        self.by_tenant: dict[str, SimWorker] = {}

    def of(self, state: SimState, tenant: Tenant) -> SimWorker:
        """The tenant's worker, registered on first use.

        :param state: the simulator data (ids, clock).
        :param tenant: the tenant.
        """
        worker = self.by_tenant.get(tenant.id)
        if worker is None:
            worker = self.by_tenant[tenant.id] = SimWorker(state.new_id(), state.clock())
        return worker

    def hold_if_unserved(self, state: SimState, tenant: Tenant, run: Run) -> None:
        """Keep a new run QUEUED when no live worker serves its workflow.

        :param state: the simulator data.
        :param tenant: the run's tenant.
        :param run: the run just created.
        """
        if not self.of(state, tenant).serves(run.workflow, state.clock()):
            run.plan_from(INF)

    def stop(self, state: SimState, tenant: Tenant) -> None:
        """Stop the tenant's worker now: its runs already started go on, new ones stay QUEUED.

        :param state: the simulator data.
        :param tenant: the tenant.
        """
        worker = self.of(state, tenant)
        if worker.stopped_at is None:
            worker.stopped_at = state.clock()

    def start(self, state: SimState, tenant: Tenant, unserved: set[str] | None = None) -> None:
        """Start the tenant's worker (again), serving every workflow but ``unserved``; held runs it now serves
        start after their workflow's queue delay.

        :param state: the simulator data.
        :param tenant: the tenant.
        :param unserved: workflow names it does not serve; None keeps the current set.
        """
        worker = self.of(state, tenant)
        worker.stopped_at = None
        if unserved is not None:
            worker.unserved = set(unserved)
        now = state.clock()
        for run in tenant.runs:
            if run.start == INF and run.cancel_at is None and worker.serves(run.workflow, now):
                run.plan_from(now + run.workflow.queue_delay)


def list_workers(state: SimState, tenant: Tenant, query: str) -> SimResponse:
    """``GET /api/v1/tenants/{tenant}/worker``: the tenant's worker, filtered by ``statuses``; one page.

    As the real server: each ``statuses`` value is matched exactly (an unknown or comma-joined value matches
    nothing, with no error).

    :param state: the simulator data.
    :param tenant: the tenant.
    :param query: the raw query string.
    """
    now = state.clock()
    worker = state.workers.of(state, tenant)
    statuses = parse_qs(query).get("statuses", [])
    rows: list[dict[str, Any]] = []
    status = worker.status(now)
    if not statuses or status in statuses:
        heartbeat = state.iso(worker.stopped_at if worker.stopped_at is not None else now)
        actions = [spec.action_id(task.name) for spec in tenant.workflows.values() if spec.name not in worker.unserved
                   for task in spec.tasks]
        rows.append({
            "metadata": {"id": worker.id, "createdAt": state.iso(worker.created), "updatedAt": heartbeat},
            "name": "airflow-provider-tests", "type": "SELFHOSTED", "status": status, "lastHeartbeatAt": heartbeat,
            "actions": actions, "dispatcherId": worker.id, "labels": [],
            "runtimeInfo": {"language": "PYTHON", "languageVersion": "3.11.7", "os": "linux", "runtimeExtra": "",
                            "sdkVersion": "1.43.1"},
            "slotConfig": {"default": {"available": 200, "limit": 200}},
        })
    pages = 1 if rows else 0
    return json_response(200, {"pagination": {"current_page": 1, "next_page": 2 if not rows else 1,
                                              "num_pages": pages}, "rows": rows})
