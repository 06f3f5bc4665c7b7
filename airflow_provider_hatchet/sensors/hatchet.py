"""The sensor that waits until one or many Hatchet workflow runs finish."""

from __future__ import annotations

import ast
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from airflow_provider_hatchet._arguments import check_seconds, is_template
from airflow_provider_hatchet._compat import (
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    Context,
    PokeReturnValue,
    conf,
)
from airflow_provider_hatchet._identity import TI_KEY
from airflow_provider_hatchet.client import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_NOT_FOUND_GRACE,
    AsyncHatchetClient,
    Bridge,
    HatchetValidationError,
    Listen,
    RunWaitError,
    WaitEvent,
    WaitResume,
    WaitState,
    WaitStatus,
    check_listen,
    check_round,
    validation,
)
from airflow_provider_hatchet.exceptions import HatchetRunError, failing_on_bad_arguments, run_error
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.links.hatchet import RUN_URL_XCOM_KEY, RUN_URLS_XCOM_KEY, HatchetRunLink
from airflow_provider_hatchet.operators._log_forwarding import (
    DEFAULT_LINES,
    DEFAULT_LINES_PER_TASK,
    LogForwarding,
    forward_logs,
)
from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunTrigger, wait_deadline


def normalize_run_ids(value: Any, *, rendered: bool = True) -> tuple[list[str], bool]:
    """Turn the rendered ``run_id`` into a list of run ids (UUIDs), and say whether it named a single run.

    A string holding a JSON or Python list counts as that list: a list rendered by a non-native template reads
    ``['a', 'b']``, which only Python's literal syntax parses.

    :param value: a run id, or an iterable of run ids.
    :param rendered: False when the task is being defined: the items still to be rendered are not checked.
    :raises HatchetValidationError: naming ``run_id`` (or ``run_id[i]``), for anything else.
    """
    single = False
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                try:
                    value = ast.literal_eval(text)
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    raise HatchetValidationError(
                        "run_id", f"starts with '[' but is not a JSON or Python list: {text[:60]!r}"
                    ) from None
        else:
            value, single = [text], True
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable):
        raise HatchetValidationError("run_id", f"must be a run id or a list of run ids, got {value!r}")
    ids = [i.strip() if isinstance(i, str) else i for i in value]
    if not ids:
        raise HatchetValidationError("run_id", "is an empty list: there is no run to wait for")
    for index, run_id in enumerate(ids):
        if rendered or not is_template(run_id):
            validation.check_run_id(run_id, "run_id" if single else f"run_id[{index}]")
    return ids, single


class HatchetWorkflowRunSensor(BaseSensorOperator):
    """Wait until Hatchet workflow runs have finished, and return their outputs.

    Succeeds when every run is COMPLETED; returns (as the ``return_value`` XCom) the run's outputs keyed by task
    name, or for a list of runs a list of those in the same order. Fails as soon as any run FAILED (or was
    CANCELLED, unless ``fail_on_cancelled=False``), naming each such run with Hatchet's error message per task,
    without waiting for the others; ``soft_fail`` skips instead. The dashboard URLs are pushed first under
    ``hatchet_run_url`` (a single run; it feeds the "Hatchet run" link) and ``hatchet_run_urls`` (a list).

    Transient errors (429, 5xx, connection errors, timeouts) and 404s within ``not_found_grace`` seconds of the
    start are retried; a persistent 404 or a 403 fails the task. Each round asks only about the unfinished runs,
    and costs about the same whatever their number: runs of one bulk batch (shared ``airflow_ti`` metadata, given
    as ``batch_key`` or read from the first run) are answered by one list query filtered by the batch, other runs
    by one list of the runs finished since the oldest unfinished one was created, unless polling them one by one
    costs less (see :mod:`airflow_provider_hatchet.client.waiter`). In poke mode the task keeps what it learnt and
    one client from poke to poke; deferred, the trigger goes on from the sensor's first check, one
    ``poke_interval`` later, so both modes make the same rounds. Deferred, the wait ends at the earlier of
    ``timeout`` and ``execution_timeout``, counted from the try's start. Neither a timeout nor a kill cancels the
    runs (this sensor did not start them) unless ``cancel_on_kill`` is set, which acts on kills only.

    A run that FAILED or was CANCELLED, or a timeout, fails the task with
    :class:`~airflow_provider_hatchet.exceptions.HatchetRunFailedError`, ``HatchetRunCancelledError`` or
    ``HatchetRunTimeoutError``, ordinary failures that ``retries`` and ``retry_policy`` apply to; a ``run_id``
    that is not a run id fails it with ``AirflowFailException``, which is not retried.

    :param run_id: a run id or a list of run ids; checked when the task is defined, or once rendered if
        templated. (templated)
    :param hatchet_conn_id: the Hatchet connection. (templated)
    :param fail_on_cancelled: a CANCELLED run fails the sensor; otherwise it counts as finished.
    :param batch_key: the ``airflow_ti`` metadata value the runs share, if known (templated).
    :param fetch_outputs: fetch the outputs (they come with the run lists, read with payloads); otherwise return
        None.
    :param deferrable: wait in the triggerer (default from ``[operators] default_deferrable``).
    :param not_found_grace: seconds a 404 is taken for a run that is not readable yet.
    :param max_concurrency: the most requests in flight at once.
    :param cancel_on_kill: in deferrable mode on Airflow 3.3+, cancel the unfinished runs when a person marks the
        deferred task failed or success, or clears it.
    :param forward_logs: write Hatchet's task logs into the task log once the wait ends: ``on_failure`` (when the
        wait did not succeed: the runs that failed or were cancelled, after a timeout the unfinished ones; at most
        100 reads), ``always`` or ``never``. Control characters are escaped and a line is cut at 10,000 characters.
    :param forward_logs_max_lines_per_task: the most lines written per Hatchet task (its last ones), 1 to 10,000.
    :param forward_logs_max_lines: the most lines this task writes in all, 1 to 10,000.
    :param listen: deferred, how the trigger learns that the runs finished: ``auto`` (default) hears it on
        Hatchet's gRPC run-event stream when the connection has a gRPC address and the server serves the stream
        (one stream per connection shared by every trigger in the triggerer; each time it tells the runs finished,
        a round of checks over REST confirms, and otherwise one round runs every ``max(poke_interval, 60)``
        seconds); ``off``, or a server without the stream, checks every ``poke_interval`` seconds. Poking (not
        deferred) always checks every ``poke_interval`` seconds.
    """

    template_fields: Sequence[str] = ("run_id", "batch_key", "hatchet_conn_id")
    operator_extra_links = (HatchetRunLink(),)
    ui_color = "#f3e8ff"

    def __init__(
        self,
        *,
        run_id: str | list[str],
        hatchet_conn_id: str = HatchetHook.default_conn_name,
        fail_on_cancelled: bool = True,
        batch_key: str | None = None,
        fetch_outputs: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        cancel_on_kill: bool = False,
        forward_logs: str = "on_failure",
        forward_logs_max_lines_per_task: int = DEFAULT_LINES_PER_TASK,
        forward_logs_max_lines: int = DEFAULT_LINES,
        listen: Listen = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.listen = check_listen(listen)
        self.log_forwarding = LogForwarding.checked(forward_logs, forward_logs_max_lines_per_task,
                                                    forward_logs_max_lines)
        check_seconds(self.poke_interval, "poke_interval")
        check_seconds(self.timeout, "timeout")
        if not is_template(run_id):
            normalize_run_ids(run_id, rendered=False)
        self.run_id = run_id
        self.hatchet_conn_id = hatchet_conn_id
        self.fail_on_cancelled = fail_on_cancelled
        self.batch_key = batch_key
        self.fetch_outputs = fetch_outputs
        self.deferrable = deferrable
        self.not_found_grace = not_found_grace
        self.max_concurrency = max_concurrency
        self.cancel_on_kill = cancel_on_kill
        self._state: WaitState | None = None
        self._bridge: Bridge | None = None
        self._started_at: float | None = None

    # Entry points

    def execute(self, context: Context) -> Any:
        """Push the run URLs, then wait by poking, or poke once and defer to the trigger."""
        with failing_on_bad_arguments():
            run_ids, single = normalize_run_ids(self.run_id)
        self._state = None
        self._started_at = self._first_start(context)
        self._push_urls(context, run_ids, single)
        # One loop and one client for every poke of this try, closed when it ends.
        self._bridge = self._new_bridge()
        try:
            if not self.deferrable:
                return super().execute(context)
            event = self._check(run_ids)
        except AirflowSensorTimeout as exc:
            # Airflow's poke loop timed out: the same typed error as a deferred wait's timeout.
            pending = self._state.pending() if self._state else run_ids
            shown = ", ".join(pending[:10]) + (" ..." if len(pending) > 10 else "")
            raise run_error(WaitEvent(WaitStatus.TIMEOUT, pending),
                            f"{exc} Not finished (left running): {shown}") from None
        finally:
            bridge, self._bridge = self._bridge, None
            bridge.close()
        if event.finished:
            return self._result(event, single)
        self.log.info("%s; deferring.", event.message)
        state = self._state
        self.defer(
            trigger=HatchetWorkflowRunTrigger(
                run_ids=run_ids,
                hatchet_conn_id=self.hatchet_conn_id,
                poll_interval=float(self.poke_interval),
                execution_deadline=wait_deadline(context, self.timeout, self.execution_timeout),
                fail_on_cancelled=self.fail_on_cancelled,
                batch_key=state.batch_key if state else self.batch_key,
                fetch_outputs=self.fetch_outputs,
                cancel_on_kill=self.cancel_on_kill,
                resume=WaitResume(
                    started_at=self._started_at,
                    first_poll_at=time.time() + float(self.poke_interval),
                    detect_batch=not (state and state.batch_checked and state.batch_key is None),
                    not_found_grace=self.not_found_grace,
                    max_concurrency=self.max_concurrency,
                    listen=self.listen,
                ),
            ),
            method_name="execute_complete",
            timeout=None,
        )

    def poke(self, context: Context) -> Any:
        """Check the unfinished runs once; return the outputs once all have completed."""
        run_ids, single = normalize_run_ids(self.run_id)
        event = self._check(run_ids)
        if not event.finished:
            self.log.info("%s", event.message)
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._result(event, single))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Turn the trigger's event into the task's result or failure.

        :param context: the task context.
        :param event: the trigger event.
        """
        single = normalize_run_ids(self.run_id)[1]
        try:
            wait = WaitEvent.from_payload(event)
        except ValueError as exc:
            raise AirflowException(str(exc)) from None
        if wait.status is WaitStatus.TIMEOUT:
            self._forward_logs(wait)
            self._fail(run_error(wait, f"Sensor has timed out (timeout {self.timeout} s, execution_timeout "
                                       f"{self.execution_timeout}; the runs were not cancelled). {wait.message}"))
        if wait.status is WaitStatus.ERROR:
            raise AirflowException(f"Waiting on Hatchet runs failed: {wait.message}")
        return self._result(wait, single)

    # Helpers

    def _check(self, run_ids: list[str]) -> WaitEvent:
        """One round of checks, on this try's bridge (a poke called outside :meth:`execute` opens its own)."""
        if self._state is None or self._state.run_ids != tuple(run_ids):
            self._state = WaitState(
                tuple(run_ids), fail_on_cancelled=self.fail_on_cancelled, batch_key=self.batch_key or None,
                started_at=self._started_at or time.time(), not_found_grace=self.not_found_grace, batch_field=TI_KEY,
            )
        state = self._state

        async def one_round(client: AsyncHatchetClient) -> WaitEvent:
            return await check_round(client, state, fetch_outputs=self.fetch_outputs,
                                     max_concurrency=self.max_concurrency)

        try:
            if self._bridge is not None:
                return self._bridge.call(one_round)
            with self._new_bridge() as bridge:
                return bridge.call(one_round)
        except RunWaitError as exc:
            raise AirflowException(str(exc)) from exc

    def _new_bridge(self) -> Bridge:
        return Bridge(HatchetHook(self.hatchet_conn_id).async_client_factory(max_connections=self.max_concurrency))

    def _forward_logs(self, wait: WaitEvent) -> None:
        hook = HatchetHook(self.hatchet_conn_id)
        try:
            forward_logs(hook, self.log, wait, self.log_forwarding)
        finally:
            hook.close()

    def _result(self, event: WaitEvent, single: bool) -> Any:
        self._forward_logs(event)
        if event.status in (WaitStatus.FAILED, WaitStatus.CANCELLED):
            self._fail(run_error(event))
        if event.status is not WaitStatus.SUCCESS:
            raise AirflowException(f"Unexpected Hatchet wait status {event.status.value!r}: {event.message}")
        self.log.info("%s", event.message)
        if event.outputs is None:
            return None
        return event.outputs[0] if single else event.outputs

    def _fail(self, error: HatchetRunError) -> NoReturn:
        if self.soft_fail or getattr(self, "never_fail", False):
            raise AirflowSkipException(str(error))
        raise error

    def _push_urls(self, context: Context, run_ids: list[str], single: bool) -> None:
        hook = HatchetHook(self.hatchet_conn_id)
        urls = [hook.run_url(i) for i in run_ids]
        ti = context["ti"]
        if single or len(urls) == 1:
            ti.xcom_push(key=RUN_URL_XCOM_KEY, value=urls[0])
            self.log.info("Hatchet run: %s", urls[0])
        if not single:
            ti.xcom_push(key=RUN_URLS_XCOM_KEY, value=urls)

    def _first_start(self, context: Context) -> float:
        """When the wait began: the first try of a rescheduled sensor, else now."""
        if self.reschedule:
            try:
                first = context["ti"].get_first_reschedule_date(context)
            except (AttributeError, TypeError):
                first = None
            if first is not None:
                return float(first.timestamp())
        return time.time()
