"""``HatchetCancelRunsOperator`` and ``HatchetReplayRunsOperator``: act on runs by ids or by filter, e.g. in a
teardown task or a callback."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_hatchet._arguments import is_template
from airflow_provider_hatchet._compat import AirflowFailException, BaseOperator
from airflow_provider_hatchet.client import HatchetValidationError, RunFilter, shown_ids
from airflow_provider_hatchet.exceptions import failing_on_bad_arguments
from airflow_provider_hatchet.hooks._run_scope import DEFAULT_MAX_RUNS, check_flag, check_max_runs, scoped
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.operators._base import HatchetHookMixin, lookback_start

if TYPE_CHECKING:
    from airflow_provider_hatchet._compat import Context

_FILTER_FIELDS = ("statuses", "since", "until", "workflow_names", "additional_metadata")
# Ids a dry run's log line shows; the XCom holds them all.
DRY_RUN_SHOWN = 100


class HatchetRunsActionOperator(HatchetHookMixin, BaseOperator):
    """Base of the operators that act on existing runs, given by ``run_ids`` or by a filter (not both).

    The filter selects the runs created in ``[since, until]`` that match every criterion given; the runs are
    listed and acted on 500 ids per request (Hatchet's own filter ORs metadata pairs and stops at 20,000 runs).
    A filter must be narrowed by ``workflow_names`` or ``additional_metadata``: statuses and a time window alone
    would select every run of the tenant, and are refused unless ``allow_tenant_wide``; empty lists, empty dicts
    and metadata values that render to empty strings do not count. The check runs when the DAG is parsed (if
    nothing is templated) and again once rendered, before anything is sent. The return value is the list of run
    ids acted on; when some named ``run_ids`` are not runs of the tenant, the task acts on the others and then
    fails, naming them.

    :param run_ids: the runs, e.g. from an upstream task's XCom. (templated)
    :param statuses: only runs in these statuses, e.g. ``["FAILED"]``; None for any. (templated)
    :param since: the earliest creation time, a datetime or ISO 8601 string; by default 7 days ago. (templated)
    :param until: the latest creation time; by default now. (templated)
    :param workflow_names: only runs of these workflows (the namespace is applied). (templated)
    :param additional_metadata: only runs carrying all these pairs, e.g.
        ``{"airflow_dag_id": "{{ dag.dag_id }}", "airflow_run_id": "{{ run_id }}"}`` for this DAG run. (templated)
    :param allow_tenant_wide: let a filter of statuses and times only act on every run of the tenant.
    :param max_runs: the most runs a filter may select (1,000 by default); when more match, the task fails
        before acting, naming the count.
    :param dry_run: act on nothing: log and return the ids that would be acted on.
    :param hatchet_conn_id: the Hatchet connection. (templated)
    :param namespace: overrides the connection's namespace; ``""`` disables it.
    :param kwargs: BaseOperator's arguments.
    :raises HatchetValidationError: when neither or both of ``run_ids`` and a filter are given, the filter does not
        narrow the selection, or a field is bad; once rendered, the task fails without retries and nothing is sent.
    """

    template_fields: Sequence[str] = ("run_ids", *_FILTER_FIELDS, "hatchet_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"additional_metadata": "json"}
    ui_color = "#a78bfa"
    action = ""
    action_verb = ""

    def __init__(
        self,
        *,
        run_ids: list[str] | str | None = None,
        statuses: list[str] | str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        workflow_names: list[str] | str | None = None,
        additional_metadata: dict[str, Any] | str | None = None,
        allow_tenant_wide: bool = False,
        max_runs: int = DEFAULT_MAX_RUNS,
        dry_run: bool = False,
        hatchet_conn_id: str = HatchetHook.default_conn_name,
        namespace: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_ids = run_ids
        self.statuses = statuses
        self.since = since
        self.until = until
        self.workflow_names = workflow_names
        self.additional_metadata = additional_metadata
        self.allow_tenant_wide = check_flag(allow_tenant_wide, "allow_tenant_wide")
        self.max_runs = check_max_runs(max_runs)
        self.is_dry_run = check_flag(dry_run, "dry_run")  # BaseOperator.dry_run is a method
        self.hatchet_conn_id = hatchet_conn_id
        self.namespace = namespace
        if not any(is_template(getattr(self, name)) for name in ("run_ids", *_FILTER_FIELDS)):
            self._selection()
        elif self.run_ids is None and not any(is_template(getattr(self, name)) or _given(getattr(self, name))
                                              for name in ("workflow_names", "additional_metadata")):
            # Only statuses or times are templated: nothing can narrow the selection once rendered.
            self._scoped(RunFilter.checked(since=lookback_start()))

    def execute(self, context: Context) -> list[str]:
        """Check the rendered arguments, then act on the runs (or, in a dry run, list them).

        :param context: the task's context.
        :raises AirflowFailException: for a bad selection (nothing sent), or after acting, when some named
            ``run_ids`` are not runs of the tenant.
        """
        with failing_on_bad_arguments():
            run_ids, run_filter = self._selection()
            done = self.act(self.hook)(run_ids, filter=run_filter, allow_tenant_wide=self.allow_tenant_wide,
                                       max_runs=self.max_runs, dry_run=self.is_dry_run)
        how = f"by filter {self._describe(run_filter)}" if run_filter is not None else "by id"
        if self.is_dry_run:
            shown = ", ".join(done[:DRY_RUN_SHOWN]) + (f", and {len(done) - DRY_RUN_SHOWN} more (all in the XCom)"
                                                       if len(done) > DRY_RUN_SHOWN else "")
            self.log.info("Dry run: would have %s %d Hatchet run(s) %s: %s", self.action, len(done), how,
                          shown or "none")
        else:
            self.log.info("%s %d Hatchet run(s) %s.", self.action.capitalize(), len(done), how)
        acted = set(done)
        missing = [run_id for run_id in run_ids or () if run_id not in acted]
        if missing:
            did = f"would have {self.action}" if self.is_dry_run else self.action
            raise AirflowFailException(
                f"Hatchet has no run {shown_ids(missing)} in this tenant (unknown, or another tenant's); "
                f"{did} the other {len(done)}.")
        return done

    def act(self, hook: HatchetHook) -> Callable[..., list[str]]:
        """The hook method that acts on the runs.

        :param hook: the hook.
        """
        raise NotImplementedError

    def _selection(self) -> tuple[list[str] | None, RunFilter | None]:
        # An empty list or dict of workflows or pairs is not given; an empty statuses list is refused below.
        filtering = any(getattr(self, name) is not None for name in ("statuses", "since", "until")) or any(
            _given(getattr(self, name)) for name in ("workflow_names", "additional_metadata"))
        if _given(self.run_ids) and filtering:
            raise HatchetValidationError("run_ids", "give run_ids or filter fields (statuses, since, until, "
                                         "workflow_names, additional_metadata), not both")
        if not _given(self.run_ids) and not filtering:
            raise HatchetValidationError("run_ids", "give run_ids or at least one filter field (statuses, since, "
                                         "until, workflow_names, additional_metadata)")
        if _given(self.run_ids):
            ids = [self.run_ids] if isinstance(self.run_ids, str) else self.run_ids
            if not isinstance(ids, list | tuple):
                raise HatchetValidationError("run_ids", f"must be a non-empty list of run ids, got {ids!r}")
            return list(dict.fromkeys(ids)), None
        if isinstance(self.additional_metadata, str):
            raise HatchetValidationError("additional_metadata", "must be a dict once rendered")
        return None, self._scoped(RunFilter.checked(
            since=self.since if self.since is not None else lookback_start(), until=self.until,
            statuses=self.statuses, workflow_names=_listed(self.workflow_names) or None,
            additional_metadata=self.additional_metadata or None,
        ))

    def _scoped(self, run_filter: RunFilter) -> RunFilter:
        return scoped(run_filter, self.action_verb, allow_tenant_wide=self.allow_tenant_wide)

    @staticmethod
    def _describe(run_filter: RunFilter) -> str:
        parts = [f"since {run_filter.since.isoformat()}"]
        if run_filter.until is not None:
            parts.append(f"until {run_filter.until.isoformat()}")
        if run_filter.statuses:
            parts.append("statuses " + ", ".join(s.value for s in run_filter.statuses))
        if run_filter.workflow_names:
            parts.append("workflows " + ", ".join(map(repr, run_filter.workflow_names)))
        if run_filter.additional_metadata:
            parts.append(f"metadata {dict(run_filter.additional_metadata)}")
        return "; ".join(parts)


def _listed(value: list[str] | str | None) -> list[str] | None:
    return [value] if isinstance(value, str) else value


def _given(value: Any) -> bool:
    """Whether an argument was given: None and empty lists, dicts and strings were not."""
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list | tuple | dict | set):
        return bool(value)
    return value is not None


class HatchetCancelRunsOperator(HatchetRunsActionOperator):
    """Cancel Hatchet runs by ids or by filter; see :class:`HatchetRunsActionOperator` for the arguments.

    Cancelling is asynchronous: the runs read CANCELLED a moment later. Finished runs are left as they are.
    """

    action = "cancelled"
    action_verb = "cancel"

    def act(self, hook: HatchetHook) -> Callable[..., list[str]]:
        """:meth:`HatchetHook.cancel_runs`.

        :param hook: the hook.
        """
        return hook.cancel_runs


class HatchetReplayRunsOperator(HatchetRunsActionOperator):
    """Replay Hatchet runs in place (same ids, original input) by ids or by filter, e.g. every FAILED run of this
    DAG run; see :class:`HatchetRunsActionOperator` for the arguments. It does not wait for them.
    """

    action = "replayed"
    action_verb = "replay"

    def act(self, hook: HatchetHook) -> Callable[..., list[str]]:
        """:meth:`HatchetHook.replay_runs`.

        :param hook: the hook.
        """
        return hook.replay_runs
