"""OpenLineage and tracing for the trigger operators: what a task reports, and what its runs carry back to it.

The OpenLineage provider is optional: it is imported here only, inside the functions, and without it they
return nothing. The metadata keys are namespaced apart from the Airflow identity (``_identity.py``), which the
re-attach and batch lookups filter on and which these keys never change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS, conf

if TYPE_CHECKING:
    from airflow_provider_hatchet._compat import Context
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook

__all__ = [
    "INTEGRATION",
    "LINEAGE_PARENT_KEYS",
    "MAX_FACET_RUNS",
    "RUNS_FACET",
    "TRACEPARENT_KEY",
    "LineageMixin",
    "lineage_parent_metadata",
    "operator_lineage",
]

# The parent (the Airflow task) and root (its DAG run, or what triggered that) of the run in OpenLineage terms.
LINEAGE_PARENT_KEYS = (
    "openlineage_parent_job_namespace",
    "openlineage_parent_job_name",
    "openlineage_parent_run_id",
    "openlineage_root_parent_job_namespace",
    "openlineage_root_parent_job_name",
    "openlineage_root_parent_run_id",
)
# The W3C trace context key Hatchet's SDKs read from a run's metadata to parent their spans.
TRACEPARENT_KEY = "traceparent"
INTEGRATION = "HATCHET"
RUNS_FACET = "hatchet_runs"
# Run ids and URLs listed in the run facet; a batch of thousands is counted, not listed in full.
MAX_FACET_RUNS = 1_000


def lineage_parent_metadata(context: Context) -> dict[str, str] | None:
    """The OpenLineage parent and root job ids of the task, as the provider's macros give them (so they match the
    events its listener emits), or None without the OpenLineage provider.

    :param context: the task context.
    """
    try:
        from airflow.providers.openlineage.plugins import macros
    except ImportError:
        return None
    ti = context["ti"]
    ids = (
        macros.lineage_job_namespace(),  # type: ignore[no-untyped-call]
        macros.lineage_job_name(ti),
        macros.lineage_run_id(ti),
        macros.lineage_root_job_namespace(ti),
        macros.lineage_root_job_name(ti),
        macros.lineage_root_run_id(ti),
    )
    return {key: str(value) for key, value in zip(LINEAGE_PARENT_KEYS, ids, strict=True)}


def operator_lineage(operator: Any, hook: HatchetHook, run_ids: Sequence[str]) -> Any:
    """The task's ``OperatorLineage``: its runs, the job type and its inlets and outlets as datasets.

    None without the OpenLineage provider (whose listener is the only caller anyway).

    :param operator: the operator; its ``inlets`` and ``outlets`` become the inputs and outputs.
    :param hook: the hook that gives each run's dashboard URL.
    :param run_ids: the runs the task triggered.
    """
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from airflow.providers.openlineage.extractors.manager import ExtractorManager
        from openlineage.client.facet_v2 import job_type_job

        from airflow_provider_hatchet.operators._lineage_facets import HatchetRunsRunFacet
    except ImportError:
        return None

    def datasets(entities: Sequence[Any]) -> list[Any]:
        return [found for found in map(ExtractorManager.convert_to_ol_dataset, entities) if found is not None]

    runs = [{"runId": run_id, "url": hook.run_url(run_id)} for run_id in run_ids[:MAX_FACET_RUNS]]
    return OperatorLineage(
        inputs=datasets(operator.inlets or []),
        outputs=datasets(operator.outlets or []),
        run_facets={RUNS_FACET: HatchetRunsRunFacet(runCount=len(run_ids), runs=runs)},
        job_facets={
            "jobType": job_type_job.JobTypeJobFacet(jobType="WORKFLOW", integration=INTEGRATION,
                                                    processingType="BATCH"),
        },
    )


def task_traceparent(context: Any) -> str | None:
    """The W3C ``traceparent`` of the task's span when Airflow's tracing is on (``[traces] otel_on``), else None.

    Airflow 3: the span the task runner runs the task in (the current OpenTelemetry span), else the task
    instance's trace carrier. Airflow 2.10: the task instance's span, whose ids Airflow derives from the DAG run
    and the task instance (``airflow.traces.utils``), as the scheduler does when it records the span.

    :param context: the task context.
    """
    if not conf.getboolean("traces", "otel_on", fallback=False):
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    if carrier.get("traceparent"):
        return carrier["traceparent"]
    ti = context["ti"]
    if AIRFLOW_V_3_0_PLUS:
        found = (getattr(ti, "context_carrier", None) or {}).get("traceparent")
        return str(found) if found else None
    from airflow.traces import NO_TRACE_ID
    from airflow.traces.utils import gen_span_id, gen_trace_id

    trace_id = gen_trace_id(context["dag_run"])
    return None if trace_id == NO_TRACE_ID else f"00-{trace_id}-{gen_span_id(ti)}-01"


class LineageMixin:
    """OpenLineage facets for a trigger operator, and the lineage and trace metadata its runs carry.

    :param inject_lineage_parent: stamp the OpenLineage parent and root job ids (``openlineage_parent_*``,
        ``openlineage_root_parent_*``) in each run's additional metadata; needs the OpenLineage provider, and
        without it the runs carry none (a warning says so).
    :param kwargs: the operator's other arguments.
    """

    hook: HatchetHook

    def __init__(self, *, inject_lineage_parent: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(inject_lineage_parent, bool):
            raise ValueError(f"inject_lineage_parent must be True or False, got {inject_lineage_parent!r}")
        self.inject_lineage_parent = inject_lineage_parent

    def lineage_run_ids(self) -> list[str]:
        """The runs this task triggered, in order, as far as it got."""
        raise NotImplementedError

    def lineage_metadata(self, context: Context) -> dict[str, str]:
        """The metadata each run carries back to the task: the OpenLineage parent and root job ids if
        ``inject_lineage_parent``, and the task's ``traceparent`` when Airflow's tracing is on.

        :param context: the task context.
        """
        stamps: dict[str, str] = {}
        if self.inject_lineage_parent:
            parent = lineage_parent_metadata(context)
            if parent is None:
                self.log.warning(  # type: ignore[attr-defined]
                    "inject_lineage_parent is set, but the OpenLineage provider "
                    "(apache-airflow-providers-openlineage) is not installed: the runs carry no parent job ids."
                )
            stamps.update(parent or {})
        traceparent = task_traceparent(context)
        if traceparent:
            stamps[TRACEPARENT_KEY] = traceparent
        return stamps

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """What the OpenLineage provider's listener reports for the finished task (see :func:`operator_lineage`).

        :param task_instance: the finished task instance (unused: the operator knows its runs).
        """
        return operator_lineage(self, self.hook, self.lineage_run_ids())
