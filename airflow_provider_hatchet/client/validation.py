"""Checks on trigger arguments, run before anything is sent. Each failure names the field."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from airflow_provider_hatchet.client.errors import HatchetValidationError

MIN_PRIORITY = 1
MAX_PRIORITY = 3
# Far above any real workflow name, far below the 65,536 characters httpx allows in a URL (the name goes into
# the workflow lookup's query string).
MAX_WORKFLOW_NAME_LENGTH = 1000
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def check_choice(value: object, choices: Sequence[str], field: str) -> str:
    """Return ``value`` if it is one of ``choices`` (a string, compared exactly).

    :param value: the candidate.
    :param choices: the accepted values, named in the error in this order.
    :param field: the argument's name, for the error.
    :raises HatchetValidationError: naming ``field`` and the choices.
    """
    if isinstance(value, str) and value in choices:
        return value
    raise HatchetValidationError(field, f"must be one of {', '.join(choices)}, got {value!r}")


def is_uuid(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a UUID in its usual form, as the ids Hatchet hands out are.

    :param value: the candidate id.
    """
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def check_run_id(value: object, field: str = "run_id") -> str:
    """Return a run id if it is a UUID in its usual form (``8-4-4-4-12`` hex digits), as Hatchet's are.

    :param value: the candidate run id.
    :param field: the field name used in the error.
    """
    if not isinstance(value, str) or not is_uuid(value):
        shown = f"{value[:60]!r}" if isinstance(value, str) else type(value).__name__
        raise HatchetValidationError(field, f"must be a Hatchet run id (a UUID), got {shown}")
    return value


# The most lines the log endpoint returns in one read; it answers 500 for more, or for less than 1.
MAX_LOG_LIMIT = 10_000


def check_log_limit(value: object, field: str = "limit") -> int:
    """Return a number of log lines to read if it is 1 to :data:`MAX_LOG_LIMIT`.

    :param value: the candidate.
    :param field: the field name used in the error.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LOG_LIMIT:
        raise HatchetValidationError(field, f"must be a whole number from 1 to {MAX_LOG_LIMIT}, got {value!r}")
    return value


def check_workflow_name(name: object, field: str = "workflow_name") -> str:
    """Return the workflow name if it is a non-empty string.

    :param name: the candidate name.
    :param field: the field name used in the error.
    """
    if not isinstance(name, str) or not name.strip():
        raise HatchetValidationError(field, f"must be a non-empty string, got {name!r}")
    if len(name) > MAX_WORKFLOW_NAME_LENGTH:
        raise HatchetValidationError(
            field, f"must be at most {MAX_WORKFLOW_NAME_LENGTH} characters, got {len(name)} starting {name[:40]!r}"
        )
    return name


def check_input(value: object, field: str = "input") -> dict[str, Any]:
    """Return the run input as a dict if it is a JSON object that serializes as strict JSON.

    :param value: the candidate input; None means ``{}``.
    :param field: the field name used in the error.
    """
    if value is None:
        return {}
    if isinstance(value, str):
        raise HatchetValidationError(
            field, "must be a JSON object (a dict), got a string; with Jinja, render it as a dict "
            "(render_template_as_native_obj=True) or pass a dict whose values are templates"
        )
    if not isinstance(value, Mapping):
        raise HatchetValidationError(field, f"must be a JSON object (a dict), got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise HatchetValidationError(field, f"keys must be strings, got {key!r}")
    try:
        json.dumps(value, allow_nan=False)
        where = _nul_at(value)
    except (TypeError, ValueError) as exc:
        raise HatchetValidationError(field, f"is not serializable as JSON: {exc}") from None
    except RecursionError:
        raise HatchetValidationError(
            field, "is nested too deeply to be serialized as JSON (Python's recursion limit); flatten it"
        ) from None
    if where is not None:
        raise HatchetValidationError(
            field, f"holds the character U+0000 at {where}: Hatchet accepts such a run but never stores it"
        )
    return dict(value)


def _nul_at(value: object, path: str = "") -> str | None:
    """The path of the first key or string holding U+0000, which Postgres' JSON type cannot store."""
    if isinstance(value, str):
        return path or "the top" if "\x00" in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            at = f"{path}[{key!r}]"
            if "\x00" in str(key):
                return at
            if (found := _nul_at(item, at)) is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if (found := _nul_at(item, f"{path}[{index}]")) is not None:
                return found
    return None


def check_metadata(value: object, field: str = "additional_metadata") -> dict[str, str]:
    """Return additional metadata with string values: JSON scalars are converted, anything else rejected.

    Hatchet filters metadata by JSON containment on string values, so only strings stay findable; and it splits
    each filter entry on its first ``:``, so a key holding a ``:`` could never be filtered on.

    :param value: the candidate metadata; None means ``{}``.
    :param field: the field name used in the error.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise HatchetValidationError(field, f"must be a dict of strings, got {type(value).__name__}")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise HatchetValidationError(field, f"keys must be non-empty strings, got {key!r}")
        if ":" in key:
            raise HatchetValidationError(
                f"{field}[{key!r}]", "keys must not contain ':' (Hatchet's filter splits on the first ':', so the "
                "run could never be found by this key)"
            )
        if "\x00" in key or (isinstance(item, str) and "\x00" in item):
            raise HatchetValidationError(f"{field}[{key!r}]", "holds the character U+0000, which Hatchet cannot store")
        if isinstance(item, str):
            result[key] = item
        elif item is None or isinstance(item, bool | int | float):
            try:
                result[key] = json.dumps(item, allow_nan=False)
            except ValueError:
                raise HatchetValidationError(f"{field}[{key!r}]", f"{item!r} is not a JSON value") from None
        else:
            raise HatchetValidationError(
                f"{field}[{key!r}]", f"values must be strings or JSON scalars, got {type(item).__name__}"
            )
    return result


def check_priority(value: object, field: str = "priority") -> int | None:
    """Return the priority if it is None or an integer from 1 to 3.

    :param value: the candidate priority.
    :param field: the field name used in the error.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise HatchetValidationError(field, f"must be an integer from 1 to 3, got {value!r}")
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise HatchetValidationError(field, f"must be from {MIN_PRIORITY} to {MAX_PRIORITY}, got {value}")
    return value
