"""What Airflow keeps for a task or a watcher between its tries, where the installed Airflow has it.

``ResumableJobMixin`` (Airflow 3.3+) keeps an operator's external job id in the task state store, so a retry
after a worker crash re-attaches; below 3.3 a stand-in runs the same methods without resuming. A watcher's
watermark lives in its asset's state store on 3.3+, else only as long as the trigger runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_hatchet._airflow_version import AIRFLOW_V_3_3_PLUS

__all__ = ["ResumableJobMixin", "watcher_state_store"]


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


if TYPE_CHECKING or AIRFLOW_V_3_3_PLUS:
    from airflow.sdk import ResumableJobMixin
else:
    ResumableJobMixin = _ResumableJobStandIn


def watcher_state_store(trigger: Any) -> Any | None:
    """The store an event trigger keeps its watermark in: the watched asset's state store (Airflow 3.3+, one
    watched asset), else None, and the watermark lives only as long as the trigger runs.

    :param trigger: a running ``BaseEventTrigger``.
    """
    if not AIRFLOW_V_3_3_PLUS:
        return None
    return getattr(trigger, "asset_state_store", None)
