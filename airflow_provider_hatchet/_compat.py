"""Where the installed Airflow keeps what the provider imports: the one module that tells Airflow 2 from 3.

Plain imports by version, as the ASF providers' ``version_compat.py`` has them. An Airflow 3 release from before
a symbol moved into the Task SDK still has it at its Airflow 2 place, hence the one fallback. Type checkers see
the newest locations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_hatchet._airflow_version import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS, AIRFLOW_VERSION

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
    "TaskDeferred",
    "TriggerEvent",
    "XCom",
    "conf",
    "mask_secret",
    "redact",
]

# Whether the exceptions, conf, BaseHook and the secrets masker are in the Task SDK: all of them from Airflow 3.2.
# 3.0 and 3.1 still serve them from their Airflow 2 places (on 3.1 BaseHook and the exceptions there are the Task
# SDK's own objects); tests/test_compat.py checks each line's places.
_IN_TASK_SDK = False

if TYPE_CHECKING or AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import BaseOperator, BaseOperatorLink, BaseSensorOperator, Context
    from airflow.sdk.execution_time.xcom import XCom
    from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

    try:
        from airflow.sdk import BaseHook, PokeReturnValue
        from airflow.sdk.configuration import conf
        from airflow.sdk.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowNotFoundException,
            AirflowSensorTimeout,
            AirflowSkipException,
            TaskDeferred,
        )
        from airflow.sdk.log import mask_secret, redact  # type: ignore[attr-defined]  # redact: not in its __all__

        _IN_TASK_SDK = True
    except ImportError:
        pass
else:
    from airflow.models.baseoperator import BaseOperator
    from airflow.models.baseoperatorlink import BaseOperatorLink
    from airflow.models.xcom import XCom
    from airflow.sensors.base import BaseSensorOperator
    from airflow.triggers.base import BaseTrigger, TriggerEvent
    from airflow.utils.context import Context

    class BaseEventTrigger(BaseTrigger):
        """Stand-in below Airflow 3.0, which has no event-driven scheduling (``AssetWatcher``)."""

        def __init__(self, **kwargs: Any) -> None:
            raise RuntimeError(
                f"{type(self).__name__} needs Airflow 3.0 or later: event-driven scheduling (AssetWatcher) does "
                f"not exist in Airflow {'.'.join(map(str, AIRFLOW_VERSION))}"
            )

if not TYPE_CHECKING and not _IN_TASK_SDK:  # Airflow 2, and Airflow 3 before they moved
    from airflow.configuration import conf
    from airflow.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.hooks.base import BaseHook
    from airflow.sensors.base import PokeReturnValue

    if AIRFLOW_V_3_0_PLUS:  # the masker the task runner logs through
        from airflow.sdk.execution_time.secrets_masker import mask_secret, redact
    else:
        from airflow.utils.log.secrets_masker import mask_secret, redact
