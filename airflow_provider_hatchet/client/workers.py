"""Which live workers serve a workflow: Hatchet's worker list, and the wait's check on runs queued with none.

``GET /api/v1/tenants/{tenant}/worker`` lists the tenant's workers with the status the server works out from
its own clock (``ACTIVE``: a heartbeat in the last 5 s and not paused; ``PAUSED``; ``INACTIVE``) and the actions
each registered (``<workflow>:<task>``). A worker serves a workflow when it is ACTIVE and one of its actions
belongs to that workflow. ``/workflows/{workflow}/worker-count`` is not used: Hatchet v0.105.0 answers it with a
500 (its handler panics, "deprecated"). See docs/hatchet-behaviour.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from airflow_provider_hatchet.client.aio import AsyncHatchetClient
from airflow_provider_hatchet.client.endpoints import Call
from airflow_provider_hatchet.client.errors import HatchetError
from airflow_provider_hatchet.client.models import RunStatus
from airflow_provider_hatchet.client.validation import check_choice

WorkerCheck = Literal["warn", "fail", "off"]
WORKER_CHECKS: tuple[WorkerCheck, ...] = ("warn", "fail", "off")
# Seconds of Hatchet's time a run may stay QUEUED before the wait asks whether a live worker serves it.
DEFAULT_QUEUED_GRACE = 60.0
LIVE = "ACTIVE"


class Worker(BaseModel):
    """A worker as the worker list shows it (``Worker``): only the fields read."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    name: str = ""
    status: str | None = None
    actions: list[str] | None = None

    def serves(self, workflow: str) -> bool:
        """Whether this worker is live and registered a task of ``workflow`` (names compared case-insensitively:
        hatchet-sdk lower-cases them when it registers).

        :param workflow: the full workflow name (namespace applied).
        """
        prefix = workflow.lower() + ":"
        return self.status == LIVE and any(action.lower().startswith(prefix) for action in self.actions or ())


class WorkerPage(BaseModel):
    """The worker list (``WorkerList``); the server answers every worker on one page."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    rows: list[Worker] | None = Field(default=None)


def list_workers(statuses: Sequence[str] = (LIVE,)) -> Call[WorkerPage]:
    """``GET /api/v1/tenants/{tenant}/worker``, only the workers in ``statuses`` (the server's own reckoning).

    :param statuses: ``ACTIVE``, ``PAUSED``, ``INACTIVE``; empty lists every worker seen in the last 24 hours.
    """
    return Call("GET", "/api/v1/tenants/{tenant}/worker", WorkerPage.model_validate,
                params=tuple(("statuses", status) for status in statuses))


def serving(workers: Iterable[Worker], workflow: str) -> int:
    """How many of ``workers`` are live and serve ``workflow``.

    :param workers: the worker list's rows.
    :param workflow: the full workflow name.
    """
    return sum(1 for worker in workers if worker.serves(workflow))


def check_workers_mode(value: object) -> WorkerCheck:
    """Return ``check_workers`` if it is ``warn``, ``fail`` or ``off``.

    :param value: the candidate.
    :raises HatchetValidationError: naming ``check_workers``.
    """
    return cast(WorkerCheck, check_choice(value, WORKER_CHECKS, "check_workers"))


class QueuedWatch:
    """The wait's check: runs QUEUED longer than ``grace`` seconds of Hatchet's time while a workflow of the task
    has no live worker. At most one worker-list request per round, and only while such runs exist.

    :param mode: ``warn`` logs once per workflow (again only after a worker came and went); ``fail`` also ends the
        wait; ``off`` does nothing.
    :param workflows: the full names of the workflows the runs belong to.
    :param grace: seconds of Hatchet's time a run may stay QUEUED.
    """

    def __init__(self, mode: WorkerCheck, workflows: Sequence[str], grace: float = DEFAULT_QUEUED_GRACE) -> None:
        self.mode = mode
        self.workflows = list(dict.fromkeys(workflows))
        self.grace = timedelta(seconds=grace)
        self.queued_since: dict[str, datetime] = {}
        # Immutable, and replaced whole: shared while empty (the triggerer holds one per deferred wait).
        self.warned: frozenset[str] = frozenset()
        self.lookup_failed = False
        # Seconds from the last check until the next queued run passes the grace, if one will (for a wait whose
        # rounds are a minute apart while the run-event stream is connected).
        self.due_in: float | None = None

    async def check(self, client: AsyncHatchetClient, statuses: dict[str, RunStatus],
                    created: dict[str, datetime], log_warning: Callable[..., object]) -> str | None:
        """Look at the runs after a round; return why the wait must fail (``fail`` only), else None.

        :param client: the async client (its ``server_clock`` gives Hatchet's time).
        :param statuses: each run's last known status.
        :param created: each run's creation time as Hatchet stamped it, where known.
        :param log_warning: where the warnings go.
        """
        if self.mode == "off" or not self.workflows:
            return None
        now = client.server_clock.now()
        queued = [run_id for run_id, status in statuses.items() if status is RunStatus.QUEUED]
        self.queued_since = {run_id: min(self.queued_since.get(run_id, now), created.get(run_id, now))
                             for run_id in queued}
        # Both sides are Hatchet's time; the server clock reads its earliest possible value, so a run is never
        # taken for stuck early.
        stuck = sorted(run_id for run_id, since in self.queued_since.items() if now - since >= self.grace)
        coming = [since + self.grace - now for since in self.queued_since.values() if now - since < self.grace]
        self.due_in = min(coming).total_seconds() if coming else None
        if not stuck:
            return None
        try:
            workers = (await client.send(list_workers())).rows or []
        except HatchetError as exc:
            if not self.lookup_failed:
                self.lookup_failed = True
                log_warning("%d Hatchet run(s) have been QUEUED for over %gs, and the worker list could not be read "
                            "to tell whether a worker serves them (the check goes on without it): %s",
                            len(stuck), self.grace.total_seconds(), exc)
            return None
        missing = [workflow for workflow in self.workflows if not serving(workers, workflow)]
        fresh = [workflow for workflow in missing if workflow not in self.warned]
        self.warned = frozenset(missing)  # a workflow that found a worker is warned about again once it loses it
        for workflow in fresh:
            log_warning("No live Hatchet worker serves workflow %r, and %d run(s) have been QUEUED for over %gs "
                        "(e.g. %s): they will wait until a worker for it starts.", workflow, len(stuck),
                        self.grace.total_seconds(), ", ".join(stuck[:3]))
        if missing and self.mode == "fail":
            return (f"No live Hatchet worker serves workflow {', '.join(map(repr, missing))}: {len(stuck)} run(s) "
                    f"QUEUED for over {self.grace.total_seconds():g}s ({', '.join(stuck[:10])}"
                    f"{' ...' if len(stuck) > 10 else ''}); they are left queued, and a retry re-attaches to them.")
        return None
