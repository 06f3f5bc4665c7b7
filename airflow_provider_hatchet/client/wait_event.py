"""Where a wait stands: what each round of checks answers (pending until the wait ends), the trigger's own timeout
and error, carried as a trigger event's JSON payload only across the trigger boundary, and read by the operators
and the sensor.

Payload schema: ``status`` (one of :class:`WaitStatus`), ``run_ids`` (the runs waited on, in order), ``message``,
``statuses`` (run id -> last known status), ``errors`` (run id -> task name -> Hatchet's error message) and, on
success when fetched, ``outputs`` (one dict per run id, task name -> output).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class WaitStatus(str, enum.Enum):
    """Where a wait stands: pending, or how it ended."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    ERROR = "error"
    # Runs stayed QUEUED past the grace while no live worker served their workflow (``check_workers="fail"``).
    NO_WORKER = "no_worker"


@dataclass(frozen=True)
class WaitEvent:
    """Where a wait stands, or how it ended, with what it learnt of the runs.

    :param status: pending, or how it ended.
    :param run_ids: the runs waited on, in order.
    :param message: a readable summary.
    :param statuses: each run's last known status.
    :param errors: Hatchet's error messages per failed run, keyed by task name.
    :param outputs: on success, each run's outputs keyed by task name, in ``run_ids`` order; None if not fetched.
    """

    status: WaitStatus
    run_ids: list[str]
    message: str = ""
    statuses: dict[str, str] = field(default_factory=dict)
    errors: dict[str, dict[str, str]] = field(default_factory=dict)
    outputs: list[dict[str, Any]] | None = None

    @property
    def finished(self) -> bool:
        """Whether the wait is over."""
        return self.status is not WaitStatus.PENDING

    def to_payload(self) -> dict[str, Any]:
        """The JSON-safe payload; outputs travel on success only."""
        payload: dict[str, Any] = {
            "status": self.status.value,
            "run_ids": list(self.run_ids),
            "message": self.message,
            "statuses": dict(self.statuses),
            "errors": {run_id: dict(errors) for run_id, errors in self.errors.items()},
        }
        if self.status is WaitStatus.SUCCESS and self.outputs is not None:
            payload["outputs"] = self.outputs
        return payload

    @classmethod
    def from_payload(cls, payload: object) -> WaitEvent:
        """Read a payload back.

        :param payload: what the trigger yielded.
        :raises ValueError: naming what is wrong, if it is not a wait event.
        """
        if not isinstance(payload, Mapping):
            raise ValueError(f"Unexpected event from the Hatchet trigger: {payload!r}")
        try:
            status = WaitStatus(payload.get("status"))
        except ValueError:
            raise ValueError(f"Unexpected event from the Hatchet trigger: {dict(payload)!r}") from None
        run_ids = payload.get("run_ids") or []
        if not isinstance(run_ids, list) or not all(isinstance(i, str) for i in run_ids):
            raise ValueError(f"Unexpected run ids in the Hatchet trigger's event: {run_ids!r}")
        outputs = payload.get("outputs")
        return cls(status, list(run_ids), str(payload.get("message") or ""), dict(payload.get("statuses") or {}),
                   dict(payload.get("errors") or {}), list(outputs) if outputs is not None else None)
