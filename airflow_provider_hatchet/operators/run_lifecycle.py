"""``HatchetCancelRunsOperator`` and ``HatchetReplayRunsOperator``: act on runs by ids or by filter, e.g. in a
teardown task or a callback."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_hatchet._arguments import is_template
from airflow_provider_hatchet._compat import BaseOperator
from airflow_provider_hatchet.client.errors import HatchetValidationError
from airflow_provider_hatchet.client.run_filter import RunFilter
from airflow_provider_hatchet.exceptions import failing_on_bad_arguments
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.operators._base import lookback_start

if TYPE_CHECKING:
    from airflow_provider_hatchet._compat import Context

_FILTER_FIELDS = ("statuses", "since", "until", "workflow_names", "additional_metadata")


class HatchetRunsActionOperator(BaseOperator):
    """Base of the operators that act on existing runs, given by ``run_ids`` or by a filter (not both).

    The filter selects the runs created in ``[since, until]`` that match every criterion given; the runs are
    listed and acted on 500 ids per request (Hatchet's own filter ORs metadata pairs and stops at 20,000 runs).
    The return value is the list of run ids acted on.

    :param run_ids: the runs, e.g. from an upstream task's XCom. (templated)
    :param statuses: only runs in these statuses, e.g. ``["FAILED"]``; None for any. (templated)
    :param since: the earliest creation time, a datetime or ISO 8601 string; by default 7 days ago. (templated)
    :param until: the latest creation time; by default now. (templated)
    :param workflow_names: only runs of these workflows (the namespace is applied). (templated)
    :param additional_metadata: only runs carrying all these pairs, e.g.
        ``{"airflow_dag_id": "{{ dag.dag_id }}", "airflow_run_id": "{{ run_id }}"}`` for this DAG run. (templated)
    :param hatchet_conn_id: the Hatchet connection. (templated)
    :param namespace: overrides the connection's namespace; ``""`` disables it.
    :param kwargs: BaseOperator's arguments.
    :raises HatchetValidationError: when neither or both of ``run_ids`` and a filter are given, or a field is bad;
        once rendered, the task fails without retries and nothing is sent.
    """

    template_fields: Sequence[str] = ("run_ids", *_FILTER_FIELDS, "hatchet_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"additional_metadata": "json"}
    ui_color = "#a78bfa"
    action = ""

    def __init__(
        self,
        *,
        run_ids: list[str] | str | None = None,
        statuses: list[str] | str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        workflow_names: list[str] | str | None = None,
        additional_metadata: dict[str, Any] | str | None = None,
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
        self.hatchet_conn_id = hatchet_conn_id
        self.namespace = namespace
        if not any(is_template(getattr(self, name)) for name in ("run_ids", *_FILTER_FIELDS)):
            self._selection()

    @cached_property
    def hook(self) -> HatchetHook:
        """The Hatchet hook for this task."""
        return HatchetHook(self.hatchet_conn_id, namespace=self.namespace)

    def execute(self, context: Context) -> list[str]:
        """Check the rendered arguments, then act on the runs."""
        with failing_on_bad_arguments():
            run_ids, run_filter = self._selection()
            done = self.act(self.hook)(run_ids, filter=run_filter)
        how = f"by filter {self._describe(run_filter)}" if run_filter is not None else "by id"
        self.log.info("%s %d Hatchet run(s) %s.", self.action.capitalize(), len(done), how)
        return done

    def act(self, hook: HatchetHook) -> Callable[..., list[str]]:
        """The hook method that acts on the runs.

        :param hook: the hook.
        """
        raise NotImplementedError

    def _selection(self) -> tuple[list[str] | None, RunFilter | None]:
        filtering = any(getattr(self, name) is not None for name in _FILTER_FIELDS)
        if self.run_ids is not None and filtering:
            raise HatchetValidationError("run_ids", "give run_ids or filter fields (statuses, since, until, "
                                         "workflow_names, additional_metadata), not both")
        if self.run_ids is None and not filtering:
            raise HatchetValidationError("run_ids", "give run_ids or at least one filter field (statuses, since, "
                                         "until, workflow_names, additional_metadata)")
        if self.run_ids is not None:
            ids = [self.run_ids] if isinstance(self.run_ids, str) else self.run_ids
            if not isinstance(ids, list | tuple) or not ids:
                raise HatchetValidationError("run_ids", f"must be a non-empty list of run ids, got {ids!r}")
            return list(ids), None
        if isinstance(self.additional_metadata, str):
            raise HatchetValidationError("additional_metadata", "must be a dict once rendered")
        return None, RunFilter.checked(
            since=self.since if self.since is not None else lookback_start(), until=self.until,
            statuses=self.statuses, workflow_names=_listed(self.workflow_names),
            additional_metadata=self.additional_metadata,
        )

    @staticmethod
    def _describe(run_filter: RunFilter) -> str:
        parts = [f"since {run_filter.since.isoformat()}"]
        if run_filter.until is not None:
            parts.append(f"until {run_filter.until.isoformat()}")
        if run_filter.statuses:
            parts.append("statuses " + ", ".join(s.value for s in run_filter.statuses))
        if run_filter.workflow_names:
            parts.append("workflows " + ", ".join(run_filter.workflow_names))
        if run_filter.additional_metadata:
            parts.append(f"metadata {dict(run_filter.additional_metadata)}")
        return "; ".join(parts)


def _listed(value: list[str] | str | None) -> list[str] | None:
    return [value] if isinstance(value, str) else value


class HatchetCancelRunsOperator(HatchetRunsActionOperator):
    """Cancel Hatchet runs by ids or by filter; see :class:`HatchetRunsActionOperator` for the arguments.

    Cancelling is asynchronous: the runs read CANCELLED a moment later. Finished runs are left as they are.
    """

    action = "cancelled"

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

    def act(self, hook: HatchetHook) -> Callable[..., list[str]]:
        """:meth:`HatchetHook.replay_runs`.

        :param hook: the hook.
        """
        return hook.replay_runs
