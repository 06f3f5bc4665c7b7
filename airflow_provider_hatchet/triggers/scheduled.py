"""The trigger that waits, in the triggerer, until a Hatchet scheduled run has fired, and names the run it made.

A scheduled run disappears once it fires (its GET answers 404), and the run it made does not carry its id, only
its input and metadata; so the operator stamps a unique marker into the metadata, and this trigger finds the run
by it once the schedule's time has come.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_hatchet._compat import BaseTrigger, TriggerEvent
from airflow_provider_hatchet.client import AsyncHatchetClient, HatchetNotFoundError, Log, endpoints, scheduling
from airflow_provider_hatchet.client.endpoints import RUN_VISIBILITY_WINDOW
from airflow_provider_hatchet.hooks.hatchet import HatchetHook

SCHEDULE_MARKER_KEY = "airflow_schedule_marker"
# How far before the schedule's time the run list reaches: the engine may fire a moment early by its own clock.
FIRE_MARGIN = timedelta(minutes=1)


async def find_fired_run(client: AsyncHatchetClient, schedule_marker: str, trigger_at: datetime) -> str | None:
    """The id of the run a schedule made, found by its marker, or None.

    :param client: the async client.
    :param schedule_marker: the schedule's ``airflow_schedule_marker`` metadata.
    :param trigger_at: the schedule's time.
    """
    pairs = {SCHEDULE_MARKER_KEY: schedule_marker}
    page = await client.send(endpoints.list_runs(since=trigger_at - FIRE_MARGIN, additional_metadata=pairs, limit=10))
    found = [row for row in page.rows if row.has_metadata(pairs)]
    return found[-1].id if found else None


def _event(status: str, scheduled_id: str, message: str, run_id: str | None = None) -> dict[str, Any]:
    return {"status": status, "scheduled_id": scheduled_id, "run_id": run_id, "message": message}


async def _gone(client: AsyncHatchetClient, scheduled_id: str) -> bool:
    try:
        await client.send(scheduling.get_scheduled(scheduled_id))
    except HatchetNotFoundError:
        return True
    return False


async def wait_for_fire(client: AsyncHatchetClient, scheduled_id: str, schedule_marker: str, trigger_at: datetime, *,
                        poll_interval: float, execution_deadline: float | None, log: Log) -> dict[str, Any]:
    """Wait until a scheduled run has fired; the wait of :class:`HatchetScheduledRunTrigger` and of the schedule
    operator in the worker. Returns the event's payload: ``fired`` (with ``run_id``), ``deleted``, ``timeout`` or
    ``error``.

    :param client: the async client.
    :param scheduled_id: the scheduled run's id.
    :param schedule_marker: the ``airflow_schedule_marker`` metadata the run will carry.
    :param trigger_at: the schedule's time.
    :param poll_interval: seconds between checks once the time has come.
    :param execution_deadline: wall-clock epoch seconds after which the wait gives up with ``timeout``.
    :param log: where a failure is logged.
    """
    try:
        wait = trigger_at.timestamp() - time.time()
        if execution_deadline is not None:
            wait = min(wait, execution_deadline - time.time())
        if wait > 0:
            await asyncio.sleep(wait)
        gone_since: float | None = None
        while True:
            run_id = await find_fired_run(client, schedule_marker, trigger_at)
            if run_id is not None:
                return _event("fired", scheduled_id, f"Scheduled run {scheduled_id} fired: run {run_id}", run_id)
            if gone_since is None and await _gone(client, scheduled_id):
                gone_since = time.monotonic()
            if gone_since is not None and time.monotonic() - gone_since > RUN_VISIBILITY_WINDOW:
                return _event("deleted", scheduled_id, f"Scheduled run {scheduled_id} was deleted before it fired "
                              "(no run carries its marker)")
            if execution_deadline is not None and time.time() >= execution_deadline:
                return _event("timeout", scheduled_id, f"Scheduled run {scheduled_id} had not fired by the deadline")
            await asyncio.sleep(poll_interval if gone_since is None else 1.0)
    except Exception as exc:
        log.exception("Waiting on a Hatchet scheduled run failed")
        return _event("error", scheduled_id, f"{type(exc).__name__}: {exc}")


class HatchetScheduledRunTrigger(BaseTrigger):
    """Wait until a scheduled run has fired; yield ``{"status": "fired", "run_id", "scheduled_id"}``.

    Other events: ``deleted`` (the schedule is gone and no run carries its marker), ``timeout`` (the deadline
    passed first) and ``error``. On Airflow 3.3+ marking the deferred task failed or success, or clearing it,
    deletes a schedule that has not fired.

    :param scheduled_id: the scheduled run's id.
    :param schedule_marker: the unique ``airflow_schedule_marker`` metadata the run will carry (not a secret).
    :param trigger_at: the schedule's time, ISO 8601.
    :param hatchet_conn_id: the Hatchet connection.
    :param poll_interval: seconds between checks once the time has come.
    :param execution_deadline: wall-clock epoch seconds after which the trigger gives up with ``timeout``.
    """

    def __init__(
        self,
        scheduled_id: str,
        schedule_marker: str,
        trigger_at: str,
        hatchet_conn_id: str = HatchetHook.default_conn_name,
        poll_interval: float = 5.0,
        execution_deadline: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.scheduled_id = scheduled_id
        self.schedule_marker = schedule_marker
        self.trigger_at = trigger_at
        self.hatchet_conn_id = hatchet_conn_id
        self.poll_interval = float(poll_interval)
        self.execution_deadline = None if execution_deadline is None else float(execution_deadline)
        self._fired = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the JSON-safe keyword arguments (no secrets)."""
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "scheduled_id": self.scheduled_id, "schedule_marker": self.schedule_marker, "trigger_at": self.trigger_at,
            "hatchet_conn_id": self.hatchet_conn_id, "poll_interval": self.poll_interval,
            "execution_deadline": self.execution_deadline,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Sleep until the schedule's time, then look for its run every ``poll_interval`` seconds."""
        try:
            client = await HatchetHook(self.hatchet_conn_id).aget_client()
        except Exception as exc:
            self.log.exception("Waiting on a Hatchet scheduled run failed")
            yield TriggerEvent(_event("error", self.scheduled_id, f"{type(exc).__name__}: {exc}"))  # type: ignore[no-untyped-call]
            return
        payload = await wait_for_fire(client, self.scheduled_id, self.schedule_marker,
                                      datetime.fromisoformat(self.trigger_at), poll_interval=self.poll_interval,
                                      execution_deadline=self.execution_deadline, log=self.log)
        self._fired = payload["status"] == "fired"
        yield TriggerEvent(payload)  # type: ignore[no-untyped-call]

    async def on_kill(self) -> None:
        """Delete the schedule if it has not fired (Airflow 3.3+, on mark failed/success or clear)."""
        if self._fired:
            return
        client = await HatchetHook(self.hatchet_conn_id).aget_client()
        try:
            await client.send(scheduling.delete_scheduled(self.scheduled_id))
            self.log.info("Deleted Hatchet scheduled run %s.", self.scheduled_id)
        except HatchetNotFoundError:
            self.log.info("Hatchet scheduled run %s had already fired or was gone.", self.scheduled_id)

