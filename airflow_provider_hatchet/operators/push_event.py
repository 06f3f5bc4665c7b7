"""``HatchetPushEventOperator``: push events to Hatchet over gRPC, and optionally wait for the runs they trigger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_hatchet._identity import EVENT_INDEX_KEY, TI_KEY, TRY_KEY, identity_metadata
from airflow_provider_hatchet.client import Bridge, HatchetValidationError, check_events
from airflow_provider_hatchet.client.endpoints import RUN_VISIBILITY_WINDOW
from airflow_provider_hatchet.exceptions import failing_on_bad_arguments
from airflow_provider_hatchet.operators._base import OUTPUT_KEY, HatchetTriggerOperatorBase, lookback_start
from airflow_provider_hatchet.operators._earlier_tries import created_by, earlier_tries, look_twice

if TYPE_CHECKING:
    from airflow_provider_hatchet._compat import Context
    from airflow_provider_hatchet.client.scheduling import HatchetEvent

EVENT_IDS_KEY = "event_ids"
RUN_IDS_KEY = "run_ids"
# How long before its event (by Hatchet's clock) a triggered run is looked for, and how far the local clock may
# be from Hatchet's before a warning says so.
CLOCK_MARGIN = timedelta(minutes=1)


class HatchetPushEventOperator(HatchetTriggerOperatorBase):
    """Push one event (``Push``) or a list of them (``BulkPush``) to Hatchet over its gRPC API; return the ids.

    Every workflow subscribed to an event's key runs once per event, with the payload as input and the event's
    metadata, to which the Airflow identity is added. With ``wait_for_completion=True`` the task finds those runs
    (listed by ``triggering_event_external_id``) and waits for them, in the worker or deferred, as
    :class:`HatchetRunWorkflowsOperator` does; their outputs go to XCom ``output`` and their ids to XCom
    ``run_ids``. As with hatchet-sdk, an event pushed before a workflow subscribes to its key triggers nothing,
    and the namespace is applied to the keys.

    Each event carries the Airflow identity and its position in the list (``airflow_event_index``). A retry
    pushes only the events no earlier try of the task instance pushed (found in Hatchet's event list by that
    identity) and re-attaches to the rest, waiting on the runs they triggered; a task cleared after it succeeded
    pushes anew. The triggered runs are looked for from the events' own time on Hatchet's clock.

    :param key: the event key. (templated)
    :param payload: the payload, a JSON object. (templated)
    :param additional_metadata: string metadata, copied onto the triggered runs. (templated)
    :param priority: 1 (lowest) to 3, for the triggered runs. (templated)
    :param scope: the scope Hatchet's event filters match against. (templated)
    :param events: instead of the five above, a list of ``{"key", "payload", "additional_metadata", "priority",
        "scope"}``, sent in one ``BulkPush`` (at most 1,000). (templated)
    :param settle_seconds: how long to look for an event's first run.
    :param kwargs: ``hatchet_conn_id``, ``namespace``, ``wait_for_completion`` (wait until the triggered runs
        finish; an event that triggered none within ``settle_seconds`` is logged, not waited for), ``deferrable``,
        ``poll_interval``, ``timeout`` (see :class:`HatchetTriggerOperatorBase`) and BaseOperator's arguments.
    """

    template_fields: Sequence[str] = ("key", "payload", "additional_metadata", "priority", "scope", "events",
                                      "hatchet_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"payload": "json", "additional_metadata": "json",
                                                           "events": "json"}

    def __init__(
        self,
        *,
        key: str | None = None,
        payload: dict[str, Any] | None = None,
        additional_metadata: dict[str, Any] | None = None,
        priority: int | None = None,
        scope: str | None = None,
        events: list[dict[str, Any]] | str | None = None,
        settle_seconds: float = 2 * RUN_VISIBILITY_WINDOW,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (key is None) == (events is None):
            raise ValueError("give either key (one event) or events (a list), not both and not neither")
        if key is None and any(v is not None for v in (payload, additional_metadata, priority, scope)):
            raise ValueError("payload, additional_metadata, priority and scope go inside each of events")
        self.key = key
        self.payload = payload
        self.additional_metadata = additional_metadata
        self.priority = priority
        self.scope = scope
        self.events = events
        self.settle_seconds = settle_seconds

    def execute(self, context: Context) -> list[str]:
        """Check the events, push those no earlier try pushed, then find and wait for their runs if asked."""
        single = {"key": self.key, "payload": self.payload, "additional_metadata": self.additional_metadata,
                  "priority": self.priority, "scope": self.scope}
        with failing_on_bad_arguments():
            events = check_events([single] if self.events is None else self._event_list())
        identity = identity_metadata(context)
        batch_key = identity[TI_KEY]
        earlier = self._earlier_events(context, len(events))
        missing = [i for i in range(len(events)) if i not in earlier]
        # This machine's time of the push, only to compare with Hatchet's.
        pushed_at = datetime.now(timezone.utc)
        new_ids: list[str] = []
        if missing:
            stamped = [{**events[i], "additional_metadata": {**events[i]["additional_metadata"],
                                                             EVENT_INDEX_KEY: str(i)}} for i in missing]
            with Bridge() as bridge:
                new_ids = bridge.run(lambda: self.hook.apush_events(stamped, identity))
            self.log.info("Pushed %d event(s) to Hatchet: %s", len(new_ids), ", ".join(new_ids[:20]))
        by_index = {i: event.id for i, event in earlier.items()} | dict(zip(missing, new_ids, strict=True))
        event_ids = [by_index[i] for i in range(len(events))]
        context["ti"].xcom_push(key=EVENT_IDS_KEY, value=event_ids)
        if not self.wait_for_completion:
            return event_ids
        since = self._runs_since(context, earlier, new_ids, pushed_at)
        triggered = self.hook.find_triggered_runs(event_ids, since=since, settle=self.settle_seconds)
        for event_id, runs in triggered.items():
            if not runs:
                self.log.warning("Event %s triggered no run: no workflow was subscribed to its key when it was "
                                 "pushed.", event_id)
        run_ids = [run_id for runs in triggered.values() for run_id in runs]
        context["ti"].xcom_push(key=RUN_IDS_KEY, value=run_ids)
        if not run_ids:
            context["ti"].xcom_push(key=OUTPUT_KEY, value=[])
            return event_ids
        self.log.info("Waiting for the %d run(s) the events triggered.", len(run_ids))
        # The runs carry the batch key but no airflow_batch_index: the trigger keeps their ids, however many.
        wait = self.wait_for_runs(context, run_ids, defer=self.deferrable, batch_key=batch_key, indexed_batch=False)
        context["ti"].xcom_push(key=OUTPUT_KEY, value=self.finish_wait(context, wait)[0])
        return event_ids

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> list[str]:
        """Resume after deferral: push the outputs, or fail naming the failed runs."""
        context["ti"].xcom_push(key=OUTPUT_KEY, value=self.finish_wait(context, event)[0])
        ti = context["ti"]
        # This task instance's own XCom: without map_indexes a mapped task gets every mapped instance's.
        return list(ti.xcom_pull(task_ids=self.task_id, key=EVENT_IDS_KEY, map_indexes=ti.map_index) or [])

    def _event_list(self) -> list[Any]:
        if not isinstance(self.events, list):
            raise HatchetValidationError("events", f"must be a list of dicts, got {type(self.events).__name__}; with "
                                                   "Jinja, render it natively (render_template_as_native_obj=True) "
                                                   "or pass it from an upstream task's XCom")
        return self.events

    def _earlier_events(self, context: Context, count: int) -> dict[int, HatchetEvent]:
        """The events earlier tries of this generation pushed, by their index; empty on a try that starts anew."""
        tries = earlier_tries(context)
        if not tries:
            return {}
        mine = {TI_KEY: str(identity_metadata(context)[TI_KEY])}

        def look() -> dict[int, HatchetEvent]:
            found: dict[int, HatchetEvent] = {}
            for event in self.hook.find_events(mine, since=lookback_start()):  # oldest first: the first push wins
                index = str(event.additional_metadata.get(EVENT_INDEX_KEY))
                if created_by(event.additional_metadata, tries) and index.isdigit() and int(index) < count:
                    found.setdefault(int(index), event)
            return found

        try_number = context["ti"].try_number
        found = look_twice(self.log, look, lambda found: len(found) == count,
                           f"Try {try_number}: not every event is listed as pushed by an earlier try")
        if found:
            self.log.info("Try %s: %d of the %d event(s) were pushed by an earlier try (%s); pushing the other %d.",
                          try_number, len(found), count, ", ".join(e.id for e in list(found.values())[:20]),
                          count - len(found))
        else:
            self.log.info("Try %s: no earlier try of this task instance pushed its events; pushing them.", try_number)
        return found

    def _runs_since(self, context: Context, earlier: dict[int, HatchetEvent], new_ids: list[str],
                    pushed_at: datetime) -> datetime:
        """Where the triggered runs' list starts: a margin before the oldest event, by Hatchet's clock.

        The times of the events just pushed are read back from Hatchet's event list; the local clock is only
        compared with them, to warn when it is off.
        """
        times = [event.created_at for event in earlier.values()]
        if new_ids:
            mine = {TI_KEY: str(identity_metadata(context)[TI_KEY]), TRY_KEY: str(context["ti"].try_number)}
            wanted = set(new_ids)

            def look() -> dict[str, datetime]:
                return {e.id: e.created_at for e in self.hook.find_events(mine, since=lookback_start())
                        if e.id in wanted}

            stored = look_twice(self.log, look, lambda stored: len(stored) == len(wanted),
                                "Not every event just pushed is listed yet")
            if len(stored) < len(wanted):
                self.log.warning("%d event(s) just pushed are not in Hatchet's event list; looking for the runs they "
                                 "triggered since %s.", len(wanted) - len(stored), lookback_start().isoformat())
                return lookback_start()
            skew = pushed_at - min(stored.values())
            if abs(skew) > CLOCK_MARGIN:
                self.log.warning("This machine's clock is %+.0f s off Hatchet's (events pushed at %s here, stored at "
                                 "%s by Hatchet); the runs are looked for by Hatchet's time.",
                                 skew.total_seconds(), pushed_at.isoformat(), min(stored.values()).isoformat())
            times += stored.values()
        return min(times) - CLOCK_MARGIN
