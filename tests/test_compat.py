"""``_compat`` hands out the symbols of the installed Airflow major version; ``_task_state`` its state stores."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from importlib.metadata import version
from typing import Any

import pytest

from airflow_provider_hatchet import _compat, _task_state

pytestmark = pytest.mark.af2

INSTALLED = tuple(int(part) for part in re.findall(r"\d+", version("apache-airflow"))[:3])

AIRFLOW_3_LOCATIONS = {
    "BaseHook": "airflow.sdk",
    "BaseOperator": "airflow.sdk",
    "BaseOperatorLink": "airflow.sdk",
    "BaseSensorOperator": "airflow.sdk",
    "PokeReturnValue": "airflow.sdk",
    "Context": "airflow.sdk",
    "XCom": "airflow.sdk.execution_time.xcom",
    "conf": "airflow.sdk.configuration",
    "AirflowException": "airflow.sdk.exceptions",
    "AirflowSkipException": "airflow.sdk.exceptions",
    "AirflowFailException": "airflow.sdk.exceptions",
    "AirflowNotFoundException": "airflow.sdk.exceptions",
    "AirflowSensorTimeout": "airflow.sdk.exceptions",
    "TaskDeferred": "airflow.sdk.exceptions",
    "mask_secret": "airflow.sdk.log",
    "redact": "airflow.sdk.log",
    "BaseTrigger": "airflow.triggers.base",
    "TriggerEvent": "airflow.triggers.base",
}
AIRFLOW_2_LOCATIONS = {
    "BaseHook": "airflow.hooks.base",
    "BaseOperator": "airflow.models.baseoperator",
    "BaseOperatorLink": "airflow.models.baseoperatorlink",
    "BaseSensorOperator": "airflow.sensors.base",
    "PokeReturnValue": "airflow.sensors.base",
    "Context": "airflow.utils.context",
    "XCom": "airflow.models.xcom",
    "conf": "airflow.configuration",
    "AirflowException": "airflow.exceptions",
    "AirflowSkipException": "airflow.exceptions",
    "AirflowFailException": "airflow.exceptions",
    "AirflowNotFoundException": "airflow.exceptions",
    "AirflowSensorTimeout": "airflow.exceptions",
    "TaskDeferred": "airflow.exceptions",
    "mask_secret": "airflow.utils.log.secrets_masker",
    "redact": "airflow.utils.log.secrets_masker",
    "BaseTrigger": "airflow.triggers.base",
    "TriggerEvent": "airflow.triggers.base",
}
# Airflow 3.0 and 3.1 still keep these at their Airflow 2 places (3.0 has no BaseHook in the Task SDK, neither has
# airflow.sdk.configuration nor all the exceptions in airflow.sdk.exceptions): _compat's one fallback.
BEFORE_TASK_SDK_MOVE = {
    **{name: AIRFLOW_2_LOCATIONS[name] for name in ("BaseHook", "conf")},
    **{name: "airflow.exceptions" for name, where in AIRFLOW_3_LOCATIONS.items() if where == "airflow.sdk.exceptions"},
    "mask_secret": "airflow.sdk.execution_time.secrets_masker",
    "redact": "airflow.sdk.execution_time.secrets_masker",
}
if INSTALLED >= (3, 2, 0):
    EXPECTED = AIRFLOW_3_LOCATIONS
elif INSTALLED >= (3, 0, 0):
    EXPECTED = {**AIRFLOW_3_LOCATIONS, **BEFORE_TASK_SDK_MOVE}
else:
    EXPECTED = AIRFLOW_2_LOCATIONS


def test_version_flags_follow_the_installed_airflow() -> None:
    import airflow

    assert tuple(int(part) for part in re.findall(r"\d+", airflow.__version__)[:3]) == INSTALLED
    assert _compat.AIRFLOW_VERSION == INSTALLED
    assert _compat.AIRFLOW_V_3_0_PLUS is (INSTALLED >= (3, 0, 0))
    assert _compat.AIRFLOW_V_3_3_PLUS is (INSTALLED >= (3, 3, 0))


@pytest.mark.parametrize(("name", "module"), sorted(EXPECTED.items()))
def test_symbol_comes_from_the_version_specific_module(name: str, module: str) -> None:
    assert getattr(_compat, name) is getattr(importlib.import_module(module), name)


def test_everything_in_all_resolves() -> None:
    missing = [name for name in _compat.__all__ if getattr(_compat, name, None) is None]
    assert missing == []


def test_the_version_flags_do_not_import_airflow() -> None:
    probe = ("import sys, airflow_provider_hatchet._airflow_version as v; "
             "print(v.AIRFLOW_V_3_0_PLUS, 'airflow' in sys.modules)")
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL
    )

    assert result.stdout.split() == [str(INSTALLED >= (3, 0, 0)), "False"]


def test_unknown_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchSymbol"):
        _compat.NoSuchSymbol  # noqa: B018


def test_resumable_job_mixin_is_the_sdk_class_from_3_3_and_the_stand_in_below() -> None:
    if INSTALLED >= (3, 3, 0):
        from airflow.sdk import ResumableJobMixin

        assert _task_state.ResumableJobMixin is ResumableJobMixin
    else:
        assert _task_state.ResumableJobMixin is _task_state._ResumableJobStandIn


def test_a_watcher_keeps_its_watermark_in_the_asset_state_store_from_3_3_and_only_in_the_trigger_below() -> None:
    class RunningTrigger:
        asset_state_store = object()

    trigger = RunningTrigger()

    expected = trigger.asset_state_store if INSTALLED >= (3, 3, 0) else None
    assert _task_state.watcher_state_store(trigger) is expected


def test_exceptions_keep_their_hierarchy() -> None:
    assert issubclass(_compat.AirflowSkipException, _compat.AirflowException)
    assert issubclass(_compat.AirflowFailException, _compat.AirflowException)
    assert issubclass(_compat.TaskDeferred, BaseException)


def test_missing_connection_raises_the_exported_not_found_exception() -> None:
    with pytest.raises(_compat.AirflowNotFoundException):
        _compat.BaseHook.get_connection("compat_missing_conn")


def test_trigger_event_compares_by_payload() -> None:
    assert _compat.TriggerEvent({"status": "success"}) == _compat.TriggerEvent({"status": "success"})
    assert _compat.TriggerEvent({"status": "success"}) != _compat.TriggerEvent({"status": "error"})


def test_mask_secret_redacts_the_value_in_logged_text() -> None:
    if INSTALLED >= (3, 1, 0):
        from airflow.sdk._shared.secrets_masker import redact
    elif _compat.AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.execution_time.secrets_masker import redact
    else:
        from airflow.utils.log.secrets_masker import redact

    _compat.mask_secret("hatchet-compat-token-4f2a")

    assert "hatchet-compat-token-4f2a" not in str(redact("Authorization: Bearer hatchet-compat-token-4f2a"))
    assert "hatchet-compat-token-4f2a" not in str(_compat.redact("token hatchet-compat-token-4f2a"))


class _Job(_task_state._ResumableJobStandIn, _compat.BaseOperator):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[tuple[str, Any]] = []

    def submit_job(self, context: Any) -> Any:
        self.calls.append(("submit", None))
        return "run-1"

    def poll_until_complete(self, external_id: Any, context: Any) -> None:
        self.calls.append(("poll", external_id))

    def get_job_result(self, external_id: Any, context: Any) -> Any:
        self.calls.append(("result", external_id))
        return {"run_id": external_id}

    def execute(self, context: Any) -> Any:
        return self.execute_resumable(context)


def test_stand_in_submits_polls_and_returns_on_every_try() -> None:
    job = _Job(task_id="job", durable=True)

    assert job.execute({}) == {"run_id": "run-1"}
    assert job.execute({}) == {"run_id": "run-1"}
    assert job.durable is False
    assert job.calls == [("submit", None), ("poll", "run-1"), ("result", "run-1")] * 2
