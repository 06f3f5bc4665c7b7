"""``HatchetScheduleWorkflowOperator``: schedule one Hatchet workflow run at a given time, and optionally wait."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_hatchet._compat import AirflowException
from airflow_provider_hatchet._identity import identity_metadata
from airflow_provider_hatchet.client import TriggerRequest, validation
from airflow_provider_hatchet.client.scheduling import check_time
from airflow_provider_hatchet.exceptions import failing_on_bad_arguments
from airflow_provider_hatchet.links.hatchet import RUN_URL_XCOM_KEY, HatchetRunLink
from airflow_provider_hatchet.operators._base import OUTPUT_KEY, HatchetTriggerOperatorBase, first_event
from airflow_provider_hatchet.operators.run_workflow import RUN_ID_KEY
from airflow_provider_hatchet.triggers.scheduled import SCHEDULE_TOKEN_KEY, HatchetScheduledRunTrigger

if TYPE_CHECKING:
    from airflow_provider_hatchet._compat import Context

SCHEDULED_ID_KEY = "hatchet_scheduled_id"


class HatchetScheduleWorkflowOperator(HatchetTriggerOperatorBase):
    """Schedule one run of a Hatchet workflow at ``trigger_at``; optionally wait for it, in the worker or deferred.

    The schedule carries the Airflow identity in its metadata (as :class:`HatchetRunWorkflowOperator`'s runs do)
    and an ``airflow_schedule_token``, by which the run it makes is found: a scheduled run disappears once it
    fires. The return value is the scheduled run's id (also in XCom ``hatchet_scheduled_id``). With
    ``wait_for_completion`` the task waits until the schedule has fired, then until its run finishes: the run id
    goes to XCom ``hatchet_run_id``, its output to ``output``. Killing the task before the schedule has fired
    deletes the schedule; after, it cancels the run.

    :param workflow_name: the workflow to run; the namespace is applied. (templated)
    :param trigger_at: when the run is to start: a datetime (naive means UTC) or an ISO 8601 string. (templated)
    :param input: the run input, a JSON object. (templated)
    :param additional_metadata: metadata the run will carry; JSON scalars become strings. (templated)
    :param priority: 1 (lowest) to 3.
    :param kwargs: ``hatchet_conn_id``, ``namespace``, ``wait_for_completion``, ``deferrable``,
        ``poll_interval``, ``timeout`` (seconds after ``trigger_at``; see :class:`HatchetTriggerOperatorBase`)
        and BaseOperator's arguments.
    """

    template_fields: Sequence[str] = ("workflow_name", "trigger_at", "input", "additional_metadata")
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
        self.priority = validation.check_priority(priority)
        self.scheduled_id: str | None = None
        self.run_id: str | None = None

    def execute(self, context: Context) -> str:
        """Check the arguments, schedule the run, then wait if asked."""
        with failing_on_bad_arguments():
            request = TriggerRequest.checked(self.workflow_name, self.input, self.additional_metadata, self.priority)
            trigger_at = check_time(self.trigger_at)
            token = uuid.uuid4().hex
            request = request.with_metadata({**identity_metadata(context), SCHEDULE_TOKEN_KEY: token})
            scheduled = self.hook.schedule(request, trigger_at)
        full_name = self.hook.full_workflow_name(request.workflow_name)
        self.scheduled_id = scheduled.id
        context["ti"].xcom_push(key=SCHEDULED_ID_KEY, value=scheduled.id)
        self.log.info("Scheduled Hatchet workflow %s at %s: scheduled run %s", full_name, trigger_at.isoformat(),
                      scheduled.id)
        if not self.wait_for_completion:
            return scheduled.id
        deadline = None if self.timeout is None else max(trigger_at.timestamp(), time.time()) + self.timeout
        trigger = HatchetScheduledRunTrigger(
            scheduled.id, token, trigger_at.isoformat(), self.hatchet_conn_id, self.poll_interval, deadline,
        )
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_fired", timeout=None)
        return self._wait_for_run(context, first_event(trigger))  # type: ignore[arg-type]

    def execute_fired(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume once the schedule has fired: wait for its run (deferring again if deferrable)."""
        return self._wait_for_run(context, event)

    def _wait_for_run(self, context: Context, event: dict[str, Any] | None) -> str:
        if not event or event.get("status") != "fired" or not event.get("run_id"):
            raise AirflowException((event or {}).get("message") or f"Unexpected event: {event!r}")
        self.scheduled_id = str(event["scheduled_id"])
        run_id = self.run_id = str(event["run_id"])
        context["ti"].xcom_push(key=RUN_ID_KEY, value=run_id)
        context["ti"].xcom_push(key=RUN_URL_XCOM_KEY, value=self.hook.run_url(run_id))
        self.log.info("Scheduled run %s fired: Hatchet run %s", self.scheduled_id, self.hook.run_url(run_id))
        trigger = self.wait_trigger(context, [run_id])
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete", timeout=None)
        return self.execute_complete(context, first_event(trigger))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume once the run has finished: push its output, or fail with Hatchet's error."""
        outputs, _ = self.finish_wait(context, event)
        context["ti"].xcom_push(key=OUTPUT_KEY, value=outputs[0])
        return str(self.scheduled_id or context["ti"].xcom_pull(task_ids=self.task_id, key=SCHEDULED_ID_KEY))

    def on_kill(self) -> None:
        """Delete the schedule if it has not fired, else cancel its run, best effort."""
        if self.run_id:
            self.cancel([self.run_id], "the task was killed")
        elif self.scheduled_id:
            if self.hook.delete_scheduled_run(self.scheduled_id):
                self.log.info("The task was killed: deleted Hatchet scheduled run %s.", self.scheduled_id)
            else:
                self.log.info("Hatchet scheduled run %s had already fired or was gone.", self.scheduled_id)
