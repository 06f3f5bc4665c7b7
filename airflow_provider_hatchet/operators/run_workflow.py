"""``HatchetRunWorkflowOperator``: trigger one Hatchet workflow run, and optionally wait for it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_hatchet._arguments import is_template, rendered_int
from airflow_provider_hatchet._identity import TI_KEY, TRY_KEY, identity_metadata, ti_key
from airflow_provider_hatchet._task_state import ResumableJobMixin
from airflow_provider_hatchet.client import (
    REUSABLE_STATUSES,
    UNFINISHED_STATUSES,
    Bridge,
    HatchetError,
    HatchetNotFoundError,
    HatchetRetryableError,
    RunDetails,
    RunStatus,
    RunSummary,
    Transport,
    TriggerRequest,
    WaitEvent,
    check_transport,
    endpoints,
    may_have_created,
    validation,
)
from airflow_provider_hatchet.exceptions import failing_on_bad_arguments
from airflow_provider_hatchet.links.hatchet import RUN_URL_XCOM_KEY, HatchetRunLink
from airflow_provider_hatchet.operators._base import (
    OUTPUT_KEY,
    HatchetTriggerOperatorBase,
    lookback_start,
)
from airflow_provider_hatchet.operators._earlier_tries import created_by, earlier_tries, look_twice
from airflow_provider_hatchet.operators._lineage import LineageMixin
from airflow_provider_hatchet.operators._replay import replay_if_unchanged

if TYPE_CHECKING:
    from airflow_provider_hatchet._compat import Context

RUN_ID_KEY = "hatchet_run_id"
# What get_job_status answers for a run an earlier generation created (the task was cleared since): neither
# active nor succeeded, so the mixin submits anew.
_EARLIER_GENERATION = "CREATED_BEFORE_THE_TASK_WAS_CLEARED"
_ACTIVE = frozenset(status.value for status in UNFINISHED_STATUSES)
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


class HatchetRunWorkflowOperator(ResumableJobMixin, LineageMixin, HatchetTriggerOperatorBase):
    """Trigger one run of a Hatchet workflow; optionally wait for it, in the worker or deferred.

    The run carries the Airflow identity in its additional metadata (``airflow_dag_id``, ``airflow_run_id``,
    ``airflow_task_id``, ``airflow_map_index``, ``airflow_try_number``, and ``airflow_ti``, which combines the
    first four), so the Hatchet dashboard can show every run a DAG run started. The return value is the run id;
    the dashboard URL is in XCom ``hatchet_run_url`` and behind the "Hatchet run" link as soon as the run exists.

    :param workflow_name: the workflow to run; the namespace is applied. (templated)
    :param input: the run input, a JSON object. (templated)
    :param additional_metadata: metadata shown and filterable in Hatchet; JSON scalars become strings. (templated)
    :param priority: 1 (lowest) to 3; checked when the task is defined, or once rendered if templated. (templated)
    :param reuse_existing_run: on a retry, re-attach to this task instance's earlier run if it is queued,
        running or completed, instead of triggering another; a failed or cancelled one is triggered again. The
        first try after the task instance was cleared always triggers a new run, and its retries never re-attach
        to a run triggered before the clear.
    :param transport: how the run is triggered: ``auto`` (the default) over gRPC when the connection has a gRPC
        address and the server answers there, else over REST, said once in the log; ``grpc`` always over gRPC;
        ``rest`` never opens a gRPC channel. A gRPC trigger that fails after it may have reached the server is
        looked up by this try's metadata before the task fails, and never sent again.
    :param retry_from_failure: on a retry whose earlier run FAILED, replay that run in place (same run id, its
        tasks re-run one attempt later) and wait on it, instead of triggering a new run; if this try's rendered
        input differs from the run's, a new run is triggered (a replay keeps the input). Needs
        ``reuse_existing_run``.
    :param kwargs: ``hatchet_conn_id``, ``namespace``, ``wait_for_completion``, ``deferrable``,
        ``poll_interval``, ``timeout`` (see :class:`HatchetTriggerOperatorBase`), ``inject_lineage_parent``
        (see :class:`~airflow_provider_hatchet.operators._lineage.LineageMixin`) and BaseOperator's arguments.

    A run that ends FAILED or CANCELLED, or is still unfinished at the timeout, fails the task with
    :class:`~airflow_provider_hatchet.exceptions.HatchetRunFailedError`, ``HatchetRunCancelledError`` or
    ``HatchetRunTimeoutError``; bad arguments fail it with ``AirflowFailException``, which is not retried.
    """

    template_fields: Sequence[str] = ("workflow_name", "input", "additional_metadata", "priority", "hatchet_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"input": "json", "additional_metadata": "json"}
    operator_extra_links = (HatchetRunLink(),)
    external_id_key = RUN_ID_KEY

    def __init__(
        self,
        *,
        workflow_name: str,
        input: dict[str, Any] | None = None,
        additional_metadata: dict[str, Any] | None = None,
        priority: int | None = None,
        reuse_existing_run: bool = True,
        transport: Transport = "auto",
        retry_from_failure: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.transport = check_transport(transport)
        self.workflow_name = workflow_name
        self.input = input
        self.additional_metadata = additional_metadata
        self.priority = priority if is_template(priority) else validation.check_priority(priority)
        self.reuse_existing_run = reuse_existing_run
        self.retry_from_failure = retry_from_failure
        self.run_id: str | None = None

    def execute(self, context: Context) -> str:
        """Check the arguments, trigger the run (or re-attach on a retry), then wait if asked."""
        with failing_on_bad_arguments():
            self._request = TriggerRequest.checked(
                self.workflow_name, self.input, self.additional_metadata, rendered_int(self.priority)
            )
            self.priority = self._request.priority
            # The mixin returns poll_until_complete's None when it re-attaches to a running run.
            result = self.execute_resumable(context)
        self.run_id = str(result or self.run_id)
        return self.run_id

    # ResumableJobMixin: how a run is submitted, inspected and waited on. On Airflow 3.3+ the mixin records the
    # run id in the task state store, so a retry after a worker crash re-attaches; below 3.3 it just submits.

    def submit_job(self, context: Context) -> str:
        """Trigger the run, unless a retry finds this task instance's earlier run still usable."""
        run_id = self._reusable_run(context)
        if run_id is None:
            request = self._request.with_metadata(identity_metadata(context) | self.lineage_metadata(context))
            workflow = self.hook.resolve_workflow(request.workflow_name)
            # Checked only before a run is triggered: a retry that re-attaches leaves it to the wait's check.
            self.check_live_workers([workflow])
            run_id = self._trigger(context, request.named(workflow))
        self._announce(context, run_id)
        return run_id

    def _trigger(self, context: Context, request: TriggerRequest) -> str:
        """Trigger the run over the transport ``transport`` and the server allow, and log which in one line."""
        run_id: str | None = None
        how = "over REST"
        if self.transport != "rest":
            try:
                with Bridge() as bridge:
                    run_id, how = bridge.run(lambda: self.hook.atrigger_grpc(request, self.transport))
            except HatchetError as exc:
                if not may_have_created(exc):
                    raise
                run_id = self._created_anyway(context, exc)
                how = "over gRPC, found after the trigger failed"
        if run_id is None:
            run_id = self.hook.trigger(request)
        self.log.info("Triggered Hatchet workflow %s %s: run %s", request.workflow_name, how, run_id)
        return run_id

    def _created_anyway(self, context: Context, exc: HatchetError) -> str:
        """The run a gRPC trigger that failed ambiguously created, found by this try's metadata; else ``exc``.

        Nothing is sent again: if the run is not listed once it would be visible, the task fails, and its retry
        looks for it again before triggering.
        """
        try_number = context["ti"].try_number
        self.log.warning("The gRPC trigger failed and may have created the run ('%s'); looking for it.", exc)
        found = look_twice(self.log, lambda: self._latest_run(context, range(try_number, try_number + 1)),
                           lambda run: run is not None, f"Try {try_number}: no run listed")
        if found is None:
            self.log.error("Try %s created no run that Hatchet lists; a retry looks again before it triggers one.",
                           try_number)
            raise exc
        return found.id

    def get_job_status(self, external_id: Any, context: Context) -> str:
        """The run's status; a run Hatchet does not know reads ``NOT_FOUND``, so it is triggered again.

        The task state store keeps the run id across a clear, so a run created before the task instance was last
        cleared reads as neither active nor succeeded, and a new run is triggered. A run triggered moments before
        the earlier try stopped may not be readable yet, so a 404 is asked again once such a run would be visible.
        """
        tries = earlier_tries(context)
        if not tries:
            return _EARLIER_GENERATION

        def details() -> RunDetails | None:
            try:
                return self.hook.send(endpoints.run_details(str(external_id)))
            except HatchetNotFoundError:
                return None

        found = look_twice(self.log, details, lambda value: value is not None,
                           f"Run {external_id} is not readable yet")
        if found is None:
            return "NOT_FOUND"
        if not created_by(found.run.additional_metadata, tries):
            return _EARLIER_GENERATION
        return found.status.value

    def is_job_active(self, status: str) -> bool:
        """Whether a run in this status can be re-attached to and waited on."""
        return status in _ACTIVE

    def is_job_succeeded(self, status: str) -> bool:
        """Whether a run in this status completed."""
        return status == RunStatus.COMPLETED.value

    def poll_until_complete(self, external_id: Any, context: Context) -> None:
        """Wait for the run if asked: poll here, or check once and defer to the triggerer."""
        run_id = str(external_id)
        if self.run_id != run_id:
            self._announce(context, run_id)
        if self.wait_for_completion:
            defer = self.deferrable and not self._finished(run_id)
            self._push_output(context, self.wait_for_runs(context, [run_id], defer=defer, workflows=self._workflows()))

    def get_job_result(self, external_id: Any, context: Context) -> str:
        """The task's return value: the run id (the output, if waited on, is in XCom ``output``).

        When the mixin finds the run already completed it skips waiting, so the output is fetched here.
        """
        run_id = str(external_id)
        if self.run_id != run_id:
            self._announce(context, run_id)
            if self.wait_for_completion:
                self._push_output(context, self.wait_for_runs(context, [run_id], workflows=self._workflows()))
        return run_id

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after deferral: push the output, or fail with Hatchet's error."""
        self.run_id = self._push_output(context, event)
        return self.run_id

    def on_kill(self) -> None:
        """Cancel the run, best effort, when the task is killed in the worker."""
        if self.run_id:
            self.cancel([self.run_id], "the task was killed")

    def _push_output(self, context: Context, event: WaitEvent | dict[str, Any] | None) -> str:
        """Push the run's output from how the wait ended and return the run id."""
        outputs, run_ids = self.finish_wait(context, event)
        context["ti"].xcom_push(key=OUTPUT_KEY, value=outputs[0])
        self.log.info("Hatchet run %s completed.", self.run_id or run_ids[0])
        return run_ids[0]

    def _workflows(self) -> list[str]:
        return [self.hook.full_workflow_name(self._request.workflow_name)]

    def _announce(self, context: Context, run_id: str) -> None:
        self.run_id = run_id
        url = self.hook.run_url(run_id)
        self.log.info("Hatchet run: %s", url)
        context["ti"].xcom_push(key=RUN_ID_KEY, value=run_id)
        context["ti"].xcom_push(key=RUN_URL_XCOM_KEY, value=url)

    def _finished(self, run_id: str) -> bool:
        try:
            return self.hook.send(endpoints.run_status(run_id)).is_terminal
        except (HatchetNotFoundError, HatchetRetryableError):
            return False

    def _reusable_run(self, context: Context) -> str | None:
        """An earlier run of this generation (tries since the task instance was last cleared) to re-attach to."""
        try_number = context["ti"].try_number
        tries = earlier_tries(context)
        if not tries:
            if try_number > 1:
                self.log.info("Try %s is the first since the task instance was cleared; triggering a new run.",
                              try_number)
            return None
        if not self.reuse_existing_run:
            return None

        def settled(run: RunSummary | None) -> bool:
            # A try triggers one run at most, so once the previous try's run is listed, no newer one can be hiding.
            return run is not None and (
                run.status in REUSABLE_STATUSES or run.additional_metadata.get(TRY_KEY) == str(try_number - 1)
            )

        latest = look_twice(self.log, lambda: self._latest_run(context, tries), settled,
                            f"Try {try_number}: no reusable earlier run listed")
        if latest is None:
            self.log.info("Try %s: no earlier Hatchet run of this task instance since try %s; triggering a new one.",
                          try_number, tries.start)
            return None
        if latest.status in REUSABLE_STATUSES:
            self.log.info("Try %s: re-attaching to earlier run %s (%s).", try_number, latest.id, latest.status.value)
            return latest.id
        if (self.retry_from_failure and latest.status is RunStatus.FAILED
                and replay_if_unchanged(self.hook, self.log, latest.id, self._request.input)):
            return latest.id
        self.log.info(
            "Try %s: the earlier run %s is %s; triggering a new one.", try_number, latest.id, latest.status.value
        )
        return None

    def lineage_run_ids(self) -> list[str]:
        """The run this task triggered or re-attached to, for the OpenLineage facets."""
        return [self.run_id] if self.run_id else []

    def _latest_run(self, context: Context, tries: range) -> RunSummary | None:
        """The newest run of this task instance that one of ``tries`` triggered."""
        mine = {TI_KEY: ti_key(context)}
        earlier = self.hook.iter_rows(endpoints.runs(since=lookback_start(), additional_metadata=mine))
        return max((run for run in earlier if run.has_metadata(mine) and created_by(run.additional_metadata, tries)),
                   key=lambda run: run.created_at or _EPOCH, default=None)

