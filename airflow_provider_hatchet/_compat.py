"""The one module that tells Airflow 2 from Airflow 3.

Everything else in the package imports Airflow symbols from here. The version flags are computed
eagerly, from ``airflow.__version__`` when Airflow is already imported and else from installed metadata.
The symbols are resolved lazily on first access, so importing this module costs nothing beyond what the
first symbol a caller uses already costs.
Type checkers see the Airflow 3 locations.
"""

from __future__ import annotations

import importlib
import re
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseEventTrigger",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "BaseTrigger",
    "Context",
    "PokeReturnValue",
    "ResumableJobMixin",
    "TaskDeferred",
    "TriggerEvent",
    "XCom",
    "conf",
    "mask_secret",
    "redact",
    "task_traceparent",
    "watcher_state_store",
]


def _installed_airflow_version() -> tuple[int, int, int]:
    loaded = sys.modules.get("airflow")
    raw = getattr(loaded, "__version__", None)
    if raw is None:
        try:
            raw = version("apache-airflow")
        except PackageNotFoundError:
            from airflow import __version__ as raw
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", str(raw))
    if match is None:
        raise RuntimeError(f"Cannot parse the Airflow version {raw!r}")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


AIRFLOW_VERSION: tuple[int, int, int] = _installed_airflow_version()
AIRFLOW_V_3_0_PLUS: bool = AIRFLOW_VERSION >= (3, 0, 0)
AIRFLOW_V_3_3_PLUS: bool = AIRFLOW_VERSION >= (3, 3, 0)

# name -> (Airflow 3 modules, tried in order; Airflow 2 module). On Airflow 3 the Airflow 2 module is the
# last fallback, which covers 3.x releases that had not moved a symbol into the SDK yet.
_LOCATIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "BaseHook": (("airflow.sdk",), "airflow.hooks.base"),
    "BaseOperator": (("airflow.sdk",), "airflow.models.baseoperator"),
    "BaseOperatorLink": (("airflow.sdk",), "airflow.models.baseoperatorlink"),
    "BaseSensorOperator": (("airflow.sdk",), "airflow.sensors.base"),
    "PokeReturnValue": (("airflow.sdk",), "airflow.sensors.base"),
    "Context": (("airflow.sdk",), "airflow.utils.context"),
    "XCom": (("airflow.sdk.execution_time.xcom",), "airflow.models.xcom"),
    "conf": (("airflow.sdk.configuration",), "airflow.configuration"),
    "AirflowException": (("airflow.sdk.exceptions",), "airflow.exceptions"),
    "AirflowSkipException": (("airflow.sdk.exceptions",), "airflow.exceptions"),
    "AirflowNotFoundException": (("airflow.sdk.exceptions",), "airflow.exceptions"),
    "AirflowFailException": (("airflow.sdk.exceptions",), "airflow.exceptions"),
    "AirflowSensorTimeout": (("airflow.sdk.exceptions",), "airflow.exceptions"),
    "TaskDeferred": (("airflow.sdk.exceptions",), "airflow.exceptions"),
    "mask_secret": (
        ("airflow.sdk.log", "airflow.sdk.execution_time.secrets_masker"),
        "airflow.utils.log.secrets_masker",
    ),
    "redact": (("airflow.sdk.log",), "airflow.utils.log.secrets_masker"),
    "BaseTrigger": ((), "airflow.triggers.base"),
    "TriggerEvent": ((), "airflow.triggers.base"),
}


def _resolve(name: str) -> Any:
    modern, legacy = _LOCATIONS[name]
    candidates = (*modern, legacy) if AIRFLOW_V_3_0_PLUS else (legacy,)
    for module_name in candidates[:-1]:
        try:
            return getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError):
            continue
    return getattr(importlib.import_module(candidates[-1]), name)


class _ResumableJobStandIn:
    """Stand-in for ``airflow.sdk.ResumableJobMixin`` below Airflow 3.3.

    There is no ``task_state_store`` to resume from, so every try submits a new job: exactly what the
    operator does without the mixin. Subclasses implement the same methods as for the real mixin.

    :param durable: accepted for signature compatibility; it has no effect here.
    """

    external_id_key: str = "remote_job_id"

    def __init__(self, *, durable: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.durable = False

    def submit_job(self, context: Any) -> Any:
        """Submit the external job and return its id.

        :param context: the task context.
        """
        raise NotImplementedError

    def poll_until_complete(self, external_id: Any, context: Any) -> None:
        """Block until the external job is finished.

        :param external_id: the id ``submit_job`` returned.
        :param context: the task context.
        """
        raise NotImplementedError

    def get_job_result(self, external_id: Any, context: Any) -> Any:
        """Return the task's result for a finished job.

        :param external_id: the id ``submit_job`` returned.
        :param context: the task context.
        """
        raise NotImplementedError

    def execute_resumable(self, context: Any) -> Any:
        """Submit, wait and return the result; never reconnects.

        :param context: the task context.
        """
        external_id = self.submit_job(context)
        self.poll_until_complete(external_id, context)
        return self.get_job_result(external_id, context)


def task_traceparent(context: Any) -> str | None:
    """The W3C ``traceparent`` of the task's span when Airflow's tracing is on (``[traces] otel_on``), else None.

    Airflow 3: the span the task runner runs the task in (the current OpenTelemetry span), else the task
    instance's trace carrier. Airflow 2.10: the task instance's span, whose ids Airflow derives from the DAG run
    and the task instance (``airflow.traces.utils``), as the scheduler does when it records the span.

    :param context: the task context.
    """
    settings = _resolve("conf")
    if not settings.getboolean("traces", "otel_on", fallback=False):
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


def watcher_state_store(trigger: Any) -> Any | None:
    """The store an event trigger keeps its watermark in: the watched asset's state store (Airflow 3.3+, one
    watched asset), else None, and the watermark lives only as long as the trigger runs.

    :param trigger: a running ``BaseEventTrigger``.
    """
    if not AIRFLOW_V_3_3_PLUS:
        return None
    return getattr(trigger, "asset_state_store", None)


def _event_trigger_stand_in() -> type:
    from airflow.triggers.base import BaseTrigger

    class BaseEventTrigger(BaseTrigger):
        """Stand-in below Airflow 3.0, which has no event-driven scheduling (``AssetWatcher``)."""

        def __init__(self, **kwargs: Any) -> None:
            raise RuntimeError(
                f"{type(self).__name__} needs Airflow 3.0 or later: event-driven scheduling (AssetWatcher) does "
                f"not exist in Airflow {'.'.join(map(str, AIRFLOW_VERSION))}"
            )

    return BaseEventTrigger


if TYPE_CHECKING:
    from airflow.sdk import (
        BaseHook,
        BaseOperator,
        BaseOperatorLink,
        BaseSensorOperator,
        Context,
        PokeReturnValue,
        ResumableJobMixin,
    )
    from airflow.sdk._shared.secrets_masker.secrets_masker import redact
    from airflow.sdk.configuration import conf
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.sdk.execution_time.xcom import XCom
    from airflow.sdk.log import mask_secret
    from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent
else:

    def __getattr__(name: str) -> Any:
        if name == "ResumableJobMixin":
            value = _resolve_resumable_job_mixin()
        elif name == "BaseEventTrigger":
            value = _resolve_event_trigger()
        elif name in _LOCATIONS:
            value = _resolve(name)
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})

    def _resolve_event_trigger() -> type:
        if AIRFLOW_V_3_0_PLUS:
            from airflow.triggers.base import BaseEventTrigger

            return BaseEventTrigger
        return _event_trigger_stand_in()

    def _resolve_resumable_job_mixin() -> type:
        if AIRFLOW_V_3_3_PLUS:
            from airflow.sdk import ResumableJobMixin

            return ResumableJobMixin
        return _ResumableJobStandIn
