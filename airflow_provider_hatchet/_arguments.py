"""Operator and sensor arguments: checks when the task is defined or once rendered."""

from __future__ import annotations

from typing import Any

from airflow_provider_hatchet.client.errors import HatchetValidationError
from airflow_provider_hatchet.client.validation import check_choice


def is_template(value: object) -> bool:
    """Whether a value is only known once the task runs: a Jinja string or an upstream output (``XComArg``).

    :param value: the argument as given to the operator.
    """
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    return hasattr(value, "resolve")


def check_seconds(value: Any, field: str, *, optional: bool = False) -> Any:
    """Return a number of seconds if it is more than 0 (or None, when ``optional``).

    :param value: the candidate.
    :param field: the field name used in the error.
    :param optional: whether None is allowed.
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HatchetValidationError(field, f"must be a number of seconds, got {value!r}")
    if not value > 0:
        raise HatchetValidationError(field, f"must be more than 0 seconds, got {value}")
    return value


def rendered_int(value: Any) -> Any:
    """A rendered template's integer: Jinja renders ``{{ params.priority }}`` to the string ``"2"``.

    :param value: the rendered value; anything but a string of digits is returned unchanged.
    """
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


FORWARD_LOGS_MODES = ("on_failure", "always", "never")
MAX_LINE_CAP = 10_000


def check_forward_logs(value: Any) -> str:
    """Return ``forward_logs`` if it is ``on_failure``, ``always`` or ``never``.

    :param value: the candidate.
    """
    return check_choice(value, FORWARD_LOGS_MODES, "forward_logs")


def check_line_cap(value: Any, field: str) -> int:
    """Return a number of log lines if it is a whole number from 1 to 10,000 (what one log read returns at most).

    :param value: the candidate.
    :param field: the field name used in the error.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LINE_CAP:
        raise HatchetValidationError(field, f"must be a whole number of lines from 1 to {MAX_LINE_CAP}, got {value!r}")
    return value
