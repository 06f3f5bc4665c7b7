"""``HatchetScheduleWorkflowOperator``: schedule one Hatchet workflow run at a given time, and optionally wait."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_hatchet._arguments import is_template, rendered_int
from airflow_provider_hatchet._compat import AirflowException
from airflow_provider_hatchet._identity import TI_KEY, identity_metadata
from airflow_provider_hatchet.client import (
    UNSUCCESSFUL_STATUSES,
    Bridge,
    RunStatus,
    TriggerRequest,
    WaitEvent,
    endpoints,
    validation,
)
from airflow_provider_hatchet.client.scheduling import check_time
from airflow_provider_hatchet.exceptions import failing_on_bad_arguments
from airflow_provider_hatchet.links.hatchet import RUN_URL_XCOM_KEY, HatchetRunLink
from airflow_provider_hatchet.operators._base import (
    OUTPUT_KEY,
    HatchetTriggerOperatorBase,
    lookback_start,
)
from airflow_provider_hatchet.operators._earlier_tries import created_by, earlier_tries, look_twice
from airflow_provider_hatchet.operators.run_workflow import RUN_ID_KEY
from airflow_provider_hatchet.triggers.scheduled import (
    SCHEDULE_MARKER_KEY,
    HatchetScheduledRunTrigger,
    wait_for_fire,
)

if TYPE_CHECKING:
    from airflow_provider_hatchet._compat import Context

SCHEDULED_ID_KEY = "hatchet_scheduled_id"
# A trigger_at this far before Hatchet's time of creation is called past in the log (Hatchet fires it at once).
PAST_MARGIN = timedelta(seconds=5)


_ENDED_BADLY = frozenset(UNSUCCESSFUL_STATUSES)


@dataclass(frozen=True)
class _Earlier:
    """What an earlier try of the generation scheduled: the schedule, or, once it has fired, the run it made."""

    schedule_marker: str
    trigger_at: datetime
    scheduled_id: str | None = None
    run_id: str | None = None
    run_status: RunStatus | None = None


class HatchetScheduleWorkflowOperator(HatchetTriggerOperatorBase):
    """Schedule one run of a Hatchet workflow at ``trigger_at``; optionally wait for it, in the worker or deferred.

    The schedule carries the Airflow identity in its metadata (as :class:`HatchetRunWorkflowOperator`'s runs do)
    and an ``airflow_schedule_marker``, by which the run it makes is found: a scheduled run disappears once it
    fires. The return value is the scheduled run's id (also in XCom ``hatchet_scheduled_id``). With
    ``wait_for_completion`` the task waits until the schedule has fired, then until its run finishes: the run id
    goes to XCom ``hatchet_run_id``, its output to ``output``. Killing the task before the schedule has fired
    deletes the schedule; after, it cancels the run.

    A retry schedules nothing when an earlier try of the task instance did: it re-attaches to that schedule (found
    by the Airflow identity in its metadata), or, if it has fired, to the run it made; Hatchet forgets a fired
    schedule's id, so that retry returns None and pushes no ``hatchet_scheduled_id``. A task cleared after it
    succeeded schedules anew. A ``trigger_at`` already past by Hatchet's clock is accepted, as Hatchet does (it
    fires the run within seconds), and logged: a backfill renders past times, and its retries must re-attach.

    :param workflow_name: the workflow to run; the namespace is applied. (templated)
    :param trigger_at: when the run is to start: a datetime (naive means UTC) or an ISO 8601 string. (templated)
    :param input: the run input, a JSON object. (templated)
    :param additional_metadata: metadata the run will carry; JSON scalars become strings. (templated)
    :param priority: 1 (lowest) to 3; checked when the task is defined, or once rendered if templated. (templated)
    :param kwargs: ``hatchet_conn_id``, ``namespace``, ``wait_for_completion``, ``deferrable``,
        ``poll_interval``, ``timeout`` (seconds after ``trigger_at``; see :class:`HatchetTriggerOperatorBase`)
        and BaseOperator's arguments.
    """

    template_fields: Sequence[str] = ("workflow_name", "trigger_at", "input", "additional_metadata", "priority",
                                      "hatchet_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"input": "json", "additional_metadata": "json"}
    operator_extra_links = (HatchetRunLink(),)

    def __init__(
        self,
        *,
        workflow_name: str,
        trigger_at: datetime | str,
        input: dict[str, Any] | None = None,
        additional_metadata: dict[str, Any] | None = None,
        priority: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workflow_name = workflow_name
        self.trigger_at = trigger_at
        self.input = input
        self.additional_metadata = additional_metadata
        self.priority = priority if is_template(priority) else validation.check_priority(priority)
        self.scheduled_id: str | None = None
        self.run_id: str | None = None

    def execute(self, context: Context) -> str | None:
        """Check the arguments, schedule the run (or re-attach on a retry), then wait if asked."""
        with failing_on_bad_arguments():
            request = TriggerRequest.checked(self.workflow_name, self.input, self.additional_metadata,
                                             rendered_int(self.priority))
            trigger_at = check_time(self.trigger_at)
            earlier = self._earlier(context)
            if earlier is None:
                marker = uuid.uuid4().hex
                request = request.with_metadata({**identity_metadata(context), SCHEDULE_MARKER_KEY: marker})
                scheduled = self.hook.schedule(request, trigger_at)
                self._note_past(trigger_at, scheduled.created_at)
                earlier = _Earlier(marker, trigger_at, scheduled_id=scheduled.id)
                self.log.info("Scheduled Hatchet workflow %s at %s: scheduled run %s",
                              self.hook.full_workflow_name(request.workflow_name), trigger_at.isoformat(),
                              scheduled.id)
        self.scheduled_id = earlier.scheduled_id
        if earlier.scheduled_id is not None:
            context["ti"].xcom_push(key=SCHEDULED_ID_KEY, value=earlier.scheduled_id)
        if not self.wait_for_completion:
            return earlier.scheduled_id
        if earlier.run_id is not None:
            return self._wait_for_run(context, {"status": "fired", "run_id": earlier.run_id, "scheduled_id": None})
        assert earlier.scheduled_id is not None
        trigger_at = earlier.trigger_at
        deadline = None if self.timeout is None else max(trigger_at.timestamp(), time.time()) + self.timeout
        scheduled_id, marker = earlier.scheduled_id, earlier.schedule_marker
        if self.deferrable:
            trigger = HatchetScheduledRunTrigger(scheduled_id, marker, trigger_at.isoformat(), self.hatchet_conn_id,
                                                 self.poll_interval, deadline)
            self.defer(trigger=trigger, method_name="execute_fired", timeout=None)
        with Bridge(self.hook.async_client_factory()) as bridge:
            fired = bridge.call(lambda client: wait_for_fire(client, scheduled_id, marker, trigger_at,
                                                             poll_interval=self.poll_interval,
                                                             execution_deadline=deadline, log=self.log))
        return self._wait_for_run(context, fired)

    def _earlier(self, context: Context) -> _Earlier | None:
        """What an earlier try of this generation scheduled, or None on a try that starts anew."""
        tries = earlier_tries(context)
        if not tries:
            return None
        identity = identity_metadata(context)
        # The dag and task ids hold no ":", which the schedule list refuses in a filter; the key is checked after.
        mine = {key: identity[key] for key in (TI_KEY, "airflow_dag_id", "airflow_task_id")}

        def look() -> _Earlier | None:
            # The schedules first, then the runs: one that fires in between shows as a run.
            for item in sorted(self.hook.find_scheduled_runs(mine), key=lambda s: s.trigger_at, reverse=True):
                marker = item.additional_metadata.get(SCHEDULE_MARKER_KEY)
                if created_by(item.additional_metadata, tries) and marker:
                    return _Earlier(str(marker), item.trigger_at, scheduled_id=item.id)
            earlier = endpoints.runs(since=lookback_start(), additional_metadata={TI_KEY: mine[TI_KEY]})
            for run in self.hook.iter_rows(earlier):
                marker = run.additional_metadata.get(SCHEDULE_MARKER_KEY)
                if run.has_metadata(mine) and created_by(run.additional_metadata, tries) and marker:
                    return _Earlier(str(marker), run.created_at or lookback_start(), run_id=run.id,
                                    run_status=run.status)
            return None

        try_number = context["ti"].try_number
        found = look_twice(self.log, look, lambda found: found is not None,
                           f"Try {try_number}: no schedule of an earlier try listed")
        if found is None:
            self.log.info("Try %s: no earlier try of this task instance scheduled a run; scheduling one.", try_number)
        elif found.scheduled_id is not None:
            self.log.info("Try %s: re-attaching to scheduled run %s (at %s) of an earlier try.", try_number,
                          found.scheduled_id, found.trigger_at.isoformat())
        elif found.run_status in _ENDED_BADLY:
            # As HatchetRunWorkflowOperator does: a retry runs the workflow again rather than fail the same way.
            assert found.run_status is not None
            self.log.info("Try %s: the run %s of an earlier try's schedule is %s; scheduling a new run.", try_number,
                          found.run_id, found.run_status.value)
            return None
        else:
            self.log.info("Try %s: the schedule of an earlier try has fired: re-attaching to its run %s.", try_number,
                          found.run_id)
        return found

    def _note_past(self, trigger_at: datetime, created_at: datetime | None) -> None:
        """Log a ``trigger_at`` already past by Hatchet's clock (its time of creation): the run starts at once."""
        if created_at is not None and trigger_at < created_at - PAST_MARGIN:
            self.log.warning("trigger_at %s is %.0f s before Hatchet's time (%s): Hatchet starts the run at once.",
                             trigger_at.isoformat(), (created_at - trigger_at).total_seconds(),
                             created_at.isoformat())

    def execute_fired(self, context: Context, event: dict[str, Any] | None = None) -> str | None:
        """Resume once the schedule has fired: wait for its run (deferring again if deferrable)."""
        return self._wait_for_run(context, event)

    def _wait_for_run(self, context: Context, event: dict[str, Any] | None) -> str | None:
        if not event or event.get("status") != "fired" or not event.get("run_id"):
            raise AirflowException((event or {}).get("message") or f"Unexpected event: {event!r}")
        self.scheduled_id = None if event.get("scheduled_id") is None else str(event["scheduled_id"])
        run_id = self.run_id = str(event["run_id"])
        context["ti"].xcom_push(key=RUN_ID_KEY, value=run_id)
        context["ti"].xcom_push(key=RUN_URL_XCOM_KEY, value=self.hook.run_url(run_id))
        self.log.info("Scheduled run %s fired: Hatchet run %s", self.scheduled_id or "(of an earlier try)",
                      self.hook.run_url(run_id))
        return self.execute_complete(context, self.wait_for_runs(context, [run_id], defer=self.deferrable))

    def execute_complete(self, context: Context, event: WaitEvent | dict[str, Any] | None = None) -> str | None:
        """Resume once the run has finished: push its output, or fail with Hatchet's error."""
        outputs, _ = self.finish_wait(context, event)
        context["ti"].xcom_push(key=OUTPUT_KEY, value=outputs[0])
        ti = context["ti"]
        # This task instance's own XCom: without map_indexes a mapped task gets every mapped instance's.
        scheduled_id = self.scheduled_id or ti.xcom_pull(task_ids=self.task_id, key=SCHEDULED_ID_KEY,
                                                         map_indexes=ti.map_index)
        return None if scheduled_id is None else str(scheduled_id)

    def on_kill(self) -> None:
        """Delete the schedule if it has not fired, else cancel its run, best effort."""
        if self.run_id:
            self.cancel([self.run_id], "the task was killed")
        elif self.scheduled_id:
            if self.hook.delete_scheduled_run(self.scheduled_id):
                self.log.info("The task was killed: deleted Hatchet scheduled run %s.", self.scheduled_id)
            else:
                self.log.info("Hatchet scheduled run %s had already fired or was gone.", self.scheduled_id)
