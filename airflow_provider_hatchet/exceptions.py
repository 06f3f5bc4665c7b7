"""The errors a task raises when its Hatchet runs end badly, for ``except`` clauses and ``retry_policy`` rules.

Each is an ``AirflowException``, so an ordinary failure that ``retries`` and a ``retry_policy`` apply to. Bad
arguments, found before anything is sent, raise ``AirflowFailException`` instead: trying again cannot help.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from airflow_provider_hatchet._compat import AirflowException, AirflowFailException
from airflow_provider_hatchet.client.errors import HatchetValidationError
from airflow_provider_hatchet.client.models import TERMINAL_STATUSES, UNSUCCESSFUL_STATUSES
from airflow_provider_hatchet.client.wait_event import WaitEvent, WaitStatus

__all__ = [
    "HatchetNoWorkerError",
    "HatchetRunCancelledError",
    "HatchetRunError",
    "HatchetRunFailedError",
    "HatchetRunTimeoutError",
    "failing_on_bad_arguments",
    "run_error",
]

class HatchetRunError(AirflowException):
    """Hatchet runs the task started or waited on did not complete.

    :param message: the summary: the runs, their dashboard links and Hatchet's error messages.
    :param run_ids: the runs concerned: those that failed or were cancelled, or those unfinished at the timeout.
    :param errors: Hatchet's error messages of the failed runs, ``{run id: {task name: message}}``.
    """

    def __init__(
        self, message: str, run_ids: Sequence[str] = (), errors: Mapping[str, Mapping[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.run_ids = list(run_ids)
        self.errors = {run_id: dict(by_task) for run_id, by_task in (errors or {}).items()}


class HatchetRunFailedError(HatchetRunError):
    """A run ended FAILED (other runs of the wait may have been cancelled too)."""


class HatchetRunCancelledError(HatchetRunError):
    """A run ended CANCELLED, and none FAILED."""


class HatchetRunTimeoutError(HatchetRunError):
    """The wait timed out before every run finished; ``run_ids`` are the unfinished runs."""


class HatchetNoWorkerError(HatchetRunError):
    """No live Hatchet worker serves the workflow (``check_workers="fail"``): before triggering, or while runs stayed
    QUEUED past the grace; ``run_ids`` are the runs left queued (none before triggering)."""


_BY_STATUS: dict[WaitStatus, type[HatchetRunError]] = {
    WaitStatus.FAILED: HatchetRunFailedError,
    WaitStatus.CANCELLED: HatchetRunCancelledError,
    WaitStatus.TIMEOUT: HatchetRunTimeoutError,
    WaitStatus.NO_WORKER: HatchetNoWorkerError,
}
RUN_ERROR_STATUSES = frozenset(_BY_STATUS)
# The statuses as the event's strings carry them.
_TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)
_ENDED_BADLY = frozenset(status.value for status in UNSUCCESSFUL_STATUSES)


def run_error(event: WaitEvent, message: str | None = None) -> HatchetRunError:
    """The error for a wait that ended ``failed``, ``cancelled``, ``timeout`` or ``no_worker``.

    :param event: how the wait ended.
    :param message: the error message; the event's by default.
    """
    run_ids = list(dict.fromkeys(event.run_ids))
    if event.status in (WaitStatus.TIMEOUT, WaitStatus.NO_WORKER):
        concerned = [i for i in run_ids if event.statuses.get(i) not in _TERMINAL]
    else:
        concerned = [i for i in run_ids if event.statuses.get(i) in _ENDED_BADLY]
    return _BY_STATUS[event.status](
        message or event.message or f"Hatchet run(s) ended with status {event.status.value}",
        concerned or run_ids,
        event.errors,
    )


@contextmanager
def failing_on_bad_arguments() -> Iterator[None]:
    """Turn a check that failed before anything was sent into a failure Airflow does not retry.

    The message still names the field and what is wrong with it.
    """
    try:
        yield
    except HatchetValidationError as exc:
        raise AirflowFailException(str(exc)) from exc
