"""``HatchetPushEventOperator``: push events to Hatchet over gRPC, and optionally wait for the runs they trigger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_hatchet._identity import TI_KEY, identity_metadata
from airflow_provider_hatchet.client.endpoints import RUN_VISIBILITY_WINDOW
from airflow_provider_hatchet.client.events import check_events
from airflow_provider_hatchet.client.waiter import run_sync
from airflow_provider_hatchet.operators._base import OUTPUT_KEY, HatchetTriggerOperatorBase, first_event

if TYPE_CHECKING:
    from airflow_provider_hatchet._compat import Context

EVENT_IDS_KEY = "event_ids"
RUN_IDS_KEY = "run_ids"


class HatchetPushEventOperator(HatchetTriggerOperatorBase):
    """Push one event (``Push``) or a list of them (``BulkPush``) to Hatchet over its gRPC API; return the ids.

    Every workflow subscribed to an event's key runs once per event, with the payload as input and the event's
    metadata, to which the Airflow identity is added. With ``wait_for_runs=True`` the task finds those runs
    (listed by ``triggering_event_external_id``) and waits for them, in the worker or deferred, as
    :class:`HatchetRunWorkflowsOperator` does; their outputs go to XCom ``output`` and their ids to XCom
    ``run_ids``. As with hatchet-sdk, an event pushed before a workflow subscribes to its key triggers nothing,
    and the namespace is applied to the keys. Pushing is not retried: an event whose push failed ambiguously may
    exist.

    :param key: the event key. (templated)
    :param payload: the payload, a JSON object. (templated)
    :param additional_metadata: string metadata, copied onto the triggered runs. (templated)
    :param priority: 1 (lowest) to 3, for the triggered runs. (templated)
    :param scope: the scope Hatchet's event filters match against. (templated)
    :param events: instead of the five above, a list of ``{"key", "payload", "additional_metadata", "priority",
        "scope"}``, sent in one ``BulkPush`` (at most 1,000). (templated)
    :param wait_for_runs: wait until the triggered runs finish; an event that triggered none within
        ``settle_seconds`` is logged, not waited for.
    :param settle_seconds: how long to look for an event's first run.
    :param kwargs: ``hatchet_conn_id``, ``namespace``, ``deferrable``, ``poll_interval``, ``timeout`` (see
        :class:`HatchetTriggerOperatorBase`) and BaseOperator's arguments.
    """

    template_fields: Sequence[str] = ("key", "payload", "additional_metadata", "priority", "scope", "events")
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
        wait_for_runs: bool = False,
        settle_seconds: float = 2 * RUN_VISIBILITY_WINDOW,
        **kwargs: Any,
    ) -> None:
        if kwargs.pop("wait_for_completion", None) is not None:
            raise ValueError("HatchetPushEventOperator waits with wait_for_runs, not wait_for_completion")
        super().__init__(wait_for_completion=wait_for_runs, **kwargs)
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
        """Check the events, push them, then find and wait for their runs if asked."""
        single = {"key": self.key, "payload": self.payload, "additional_metadata": self.additional_metadata,
                  "priority": self.priority, "scope": self.scope}
        events = check_events([single] if self.events is None else self._event_list())
        identity = identity_metadata(context)
        batch_key = identity[TI_KEY]
        since = datetime.now(timezone.utc) - timedelta(minutes=1)
        event_ids = run_sync(lambda: self.hook.apush_events(events, identity))
        self.log.info("Pushed %d event(s) to Hatchet: %s", len(event_ids), ", ".join(event_ids[:20]))
        context["ti"].xcom_push(key=EVENT_IDS_KEY, value=event_ids)
        if not self.wait_for_completion:
            return event_ids
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
        trigger = self.wait_trigger(context, run_ids, batch_key=batch_key)
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete", timeout=None)
        context["ti"].xcom_push(key=OUTPUT_KEY, value=self.finish_wait(context, first_event(trigger))[0])
        return event_ids

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> list[str]:
        """Resume after deferral: push the outputs, or fail naming the failed runs."""
        context["ti"].xcom_push(key=OUTPUT_KEY, value=self.finish_wait(context, event)[0])
        return list(context["ti"].xcom_pull(task_ids=self.task_id, key=EVENT_IDS_KEY) or [])

    def _event_list(self) -> list[Any]:
        if not isinstance(self.events, list):
            raise ValueError(f"events must be a list of dicts, got {type(self.events).__name__}")
        return self.events
