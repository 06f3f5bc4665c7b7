"""``HatchetRunWorkflowsOperator``: trigger many Hatchet workflow runs in one task, each exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_hatchet._compat import AirflowException
from airflow_provider_hatchet._identity import BATCH_INDEX_KEY, TI_KEY, first_try_of_generation, identity_metadata
from airflow_provider_hatchet.client import (
    MAX_CHUNK_RUNS,
    Bridge,
    BulkProgress,
    BulkResult,
    BulkTrigger,
    HatchetBulkTriggerError,
    HatchetError,
    HatchetNotFoundError,
    HatchetRetryableError,
    Transport,
    TriggerRequest,
    TriggerSender,
    WaitEvent,
    check_transport,
    endpoints,
)
from airflow_provider_hatchet.exceptions import failing_on_bad_arguments
from airflow_provider_hatchet.operators._base import (
    OUTPUT_KEY,
    HatchetTriggerOperatorBase,
    lookback_start,
)
from airflow_provider_hatchet.operators._lineage import LineageMixin
from airflow_provider_hatchet.operators._replay import replay_failed_items
from airflow_provider_hatchet.operators._workflow_runs import parse_workflow_runs

if TYPE_CHECKING:
    from airflow_provider_hatchet._compat import Context

# gRPC requests in flight: each carries up to 1,000 runs.
MAX_GRPC_CONCURRENCY = 4
CREATED_RUNS_KEY = "created_runs"
BATCH_KEY_KEY = "hatchet_batch_key"
# Failed items logged one by one; the task's error groups all of them.
MAX_LOGGED_FAILURES = 100


class HatchetRunWorkflowsOperator(LineageMixin, HatchetTriggerOperatorBase):
    """Trigger many Hatchet workflow runs in one task, concurrently, each exactly once; optionally wait for all.

    Hatchet's REST API has no bulk endpoint, so each run is one trigger call, at most ``max_concurrency`` in
    flight on one connection pool. A trigger that fails ambiguously (a lost connection, a 5xx) is resolved by
    looking the item up by its metadata before it is sent again. Every run carries the Airflow identity, its
    index (``airflow_batch_index``) and the batch key ``airflow_ti``, which finds the whole batch in one filter.

    The return value is the list of run ids, in the order of ``workflow_runs``. If some items fail for good, the
    task fails listing them, and XCom ``created_runs`` holds the ids created (None for the failed items); a
    retry of the task reuses the runs already created (unless failed or cancelled) and triggers only the rest.
    The first try after the task instance was cleared triggers a new batch, keyed ``<airflow_ti>|gen<try>``, which
    its retries resume; XCom ``hatchet_batch_key`` holds the key of the try's batch.
    The log shows progress every 10% of the batch (at most every 1,000 items) and each failed item, not each run.
    Waiting, a run that ends FAILED or CANCELLED, or the timeout, fails the task with
    :class:`~airflow_provider_hatchet.exceptions.HatchetRunFailedError`, ``HatchetRunCancelledError`` or
    ``HatchetRunTimeoutError``; a bad item or an unknown workflow fails it with ``AirflowFailException``, which is
    not retried.

    :param workflow_runs: the runs, as the TypeScript SDK's ``runWorkflows`` takes them: each
        ``{"workflow_name", "input", "options": {"additional_metadata"}}``, with ``workflowName``,
        ``additionalMetadata`` and a ``priority`` accepted too. (templated)
    :param max_concurrency: trigger requests in flight at once.
    :param reuse_existing_run: on a retry after a failed try, keep the batch's runs that are queued, running or
        completed.
    :param transport: ``auto`` (default) sends the batch over Hatchet's gRPC API, up to 1,000 runs per request,
        when the server accepts a connection on it and answers a call that creates nothing, else over REST with one
        log line saying why; if the first trigger calls over gRPC fail with UNAVAILABLE or UNIMPLEMENTED, the rest
        of the batch goes over REST (with a warning, each run still created once); ``grpc`` always
        uses gRPC; ``rest`` one REST request per run. Over gRPC at most ``max_concurrency`` (capped at 4) requests
        are in flight, and exactly-once holds per request.
    :param grpc_chunk_size: the most runs per gRPC request (1 to 1,000); smaller requests lose less to one
        failure, at more requests per batch.
    :param retry_from_failure: on a retry that resumes the batch, replay its FAILED runs in place (same ids) instead
        of triggering new ones, and trigger only the items without a run; an item whose input changed since gets
        a new run (a replay keeps the input).
    :param kwargs: ``hatchet_conn_id``, ``namespace``, ``wait_for_completion``, ``deferrable``,
        ``poll_interval``, ``timeout`` (see :class:`HatchetTriggerOperatorBase`), ``inject_lineage_parent``
        (see :class:`~airflow_provider_hatchet.operators._lineage.LineageMixin`) and BaseOperator's arguments.
    """

    template_fields: Sequence[str] = ("workflow_runs", "hatchet_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"workflow_runs": "json"}

    def __init__(
        self,
        *,
        workflow_runs: list[dict[str, Any]] | str,
        max_concurrency: int = 32,
        reuse_existing_run: bool = True,
        transport: Transport = "auto",
        grpc_chunk_size: int = MAX_CHUNK_RUNS,
        retry_from_failure: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if not 1 <= grpc_chunk_size <= MAX_CHUNK_RUNS:
            raise ValueError(f"grpc_chunk_size must be 1 to {MAX_CHUNK_RUNS}, got {grpc_chunk_size}")
        self.transport = check_transport(transport)
        self.grpc_chunk_size = grpc_chunk_size
        self.workflow_runs = workflow_runs
        self.max_concurrency = max_concurrency
        self.reuse_existing_run = reuse_existing_run
        self.retry_from_failure = retry_from_failure
        self.run_ids: list[str] = []

    def execute(self, context: Context) -> list[str]:
        """Check every item, trigger the batch, then wait if asked."""
        with failing_on_bad_arguments():
            specs = parse_workflow_runs(self.workflow_runs)
            full_names = {name: self.hook.resolve_workflow(name) for name in {s.workflow_name for s in specs}}
        identity = identity_metadata(context) | self.lineage_metadata(context)
        batch_key, resume = self._batch(context, identity.pop(TI_KEY))
        # Once per try, before the engine: even a resumed batch may still trigger the items it lacks.
        self.check_live_workers(list(full_names.values()))
        items = [spec.named(full_names[spec.workflow_name]).with_metadata(identity) for spec in specs]
        context["ti"].xcom_push(key=BATCH_KEY_KEY, value=batch_key)
        self.log.info("Triggering %d Hatchet runs (batch %s, %d at a time%s).", len(items), batch_key,
                      self.max_concurrency, ", reusing earlier runs" if resume else "")
        replayed = (replay_failed_items(self.hook, self.log, {TI_KEY: batch_key}, BATCH_INDEX_KEY, items,
                                        lookback_start()) if resume and self.retry_from_failure else set())
        with Bridge() as bridge:
            result, stopped = bridge.run(lambda: self._trigger_all(items, batch_key, resume, replayed))
        if stopped is not None:
            context["ti"].xcom_push(key=CREATED_RUNS_KEY, value=result.run_ids)
            self.log.error("The batch stopped at once: %s. %d of %d items have a run; their ids are in XCom %r.",
                           stopped, len(result.created), len(items), CREATED_RUNS_KEY)
            raise stopped
        self.log.info("%d runs: %d created, %d recovered after ambiguous failures, %d reused, %d failed, in %.1fs.",
                      len(items), len(result.created) - len(result.recovered) - len(result.reused),
                      len(result.recovered), len(result.reused), len(result.failed), result.elapsed)
        if result.failed:
            self._log_failures(result)
            context["ti"].xcom_push(key=CREATED_RUNS_KEY, value=result.run_ids)
            self.log.info("The run id of each item is in XCom %r (None where no run was created).", CREATED_RUNS_KEY)
            raise AirflowException(str(HatchetBulkTriggerError(result)))
        self.log.info("The run ids, in item order, are the task's return value (XCom 'return_value').")
        self.run_ids = [run_id for run_id in result.run_ids if run_id is not None]
        if self.wait_for_completion:
            defer = self.deferrable and not self._all_finished(batch_key)
            self._push_outputs(context, self.wait_for_runs(context, self.run_ids, defer=defer, batch_key=batch_key,
                                                           runs_since=lookback_start().timestamp(),
                                                           workflows=list(full_names.values())))
        return self.run_ids

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> list[str]:
        """Resume after deferral: push the outputs, or fail naming the failed runs."""
        self.run_ids = self._push_outputs(context, event)
        return self.run_ids

    def on_kill(self) -> None:
        """Cancel the batch's runs if the task is killed while waiting on them.

        While the batch is still being triggered, the runs created so far are left alone, so that a retry of the
        task resumes the batch rather than starting it again.
        """
        if self.run_ids:
            self.cancel(self.run_ids, "the task was killed")

    async def _trigger_all(
        self, items: list[TriggerRequest], batch_key: str, resume: bool, replayed: set[str]
    ) -> tuple[BulkResult, HatchetError | None]:
        """The batch's result, and the configuration error that stopped it, if one did."""

        def on_progress(progress: BulkProgress) -> None:
            self.log.info("Progress: %s", progress)

        async with self.hook.async_client_factory(max_connections=self.max_concurrency)() as client:
            try:
                sender = await self._sender()
                concurrency = self.max_concurrency if sender is None else min(self.max_concurrency,
                                                                              MAX_GRPC_CONCURRENCY)
                engine = BulkTrigger(
                    client, items, batch_metadata={TI_KEY: batch_key}, since=lookback_start(),
                    index_key=BATCH_INDEX_KEY, max_concurrency=concurrency, resume=resume, on_progress=on_progress,
                    sender=sender, keep_runs=replayed, fallback_concurrency=self.max_concurrency,
                    on_fallback=self.log.warning,
                )
                try:
                    return await engine.run(), None
                except HatchetError as exc:
                    return engine.result(), exc
            finally:
                if self.transport != "rest":
                    from airflow_provider_hatchet.client import close_channels

                    await close_channels()

    async def _sender(self) -> TriggerSender | None:
        """The gRPC sender, or None for REST, as ``transport`` and the server decide; logged in one line."""
        if self.transport == "rest":
            return None
        sender, how = await self.hook.abulk_sender(self.transport, max_runs=self.grpc_chunk_size)
        self.log.info("Sending the batch %s.", how)
        return sender

    def _batch(self, context: Context, ti_key: str) -> tuple[str, bool]:
        """This try's batch key, and whether to resume that batch.

        The tries since the task instance was last cleared form a generation whose first try N keys its batch
        ``<ti_key>|gen<N>`` (``ti_key`` for the first generation, N = 1): a retry within a generation resumes its
        batch, and the first try after a clear starts a new one.
        """
        first_try = first_try_of_generation(context)
        batch_key = ti_key if first_try == 1 else f"{ti_key}|gen{first_try}"
        try_number = context["ti"].try_number
        if try_number == first_try > 1:
            self.log.info("Try %s is the first since the task instance was cleared; triggering a new batch.",
                          try_number)
        return batch_key, self.reuse_existing_run and try_number > first_try

    def lineage_run_ids(self) -> list[str]:
        """The batch's runs, in item order, for the OpenLineage facets."""
        return self.run_ids

    def _log_failures(self, result: BulkResult) -> None:
        failed = sorted(result.failed)
        for index in failed[:MAX_LOGGED_FAILURES]:
            self.log.warning("Item %d failed: %s", index, result.failed[index])
        if len(failed) > MAX_LOGGED_FAILURES:
            self.log.warning("... and %d more failed items (all grouped in the task's error).",
                             len(failed) - MAX_LOGGED_FAILURES)

    def _all_finished(self, batch_key: str) -> bool:
        try:
            runs = self.hook.iter_rows(endpoints.runs(since=lookback_start(), additional_metadata={TI_KEY: batch_key}))
            finished = {run.id for run in runs if run.status.is_terminal}
        except (HatchetNotFoundError, HatchetRetryableError):
            return False
        return finished.issuperset(self.run_ids)

    def _push_outputs(self, context: Context, event: WaitEvent | dict[str, Any] | None) -> list[str]:
        """Push the runs' outputs from how the wait ended and return the run ids."""
        outputs, run_ids = self.finish_wait(context, event)
        context["ti"].xcom_push(key=OUTPUT_KEY, value=outputs)
        self.log.info("All %d Hatchet runs completed.", len(run_ids))
        return run_ids
