"""Reading the bulk operator's ``workflow_runs``: the TypeScript SDK's shape, checked item by item."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_hatchet.client import HatchetValidationError, TriggerRequest, validation

_ITEM_KEYS = {"workflow_name", "workflowName", "input", "options", "priority"}
_OPTION_KEYS = {"additional_metadata", "additionalMetadata", "priority"}


def _either(item: Mapping[str, Any], snake: str, camel: str, field: str) -> Any:
    if snake in item and camel in item:
        raise HatchetValidationError(field, f"give either {snake!r} or {camel!r}, not both")
    return item.get(snake, item.get(camel))


def parse_workflow_run(item: object, index: int) -> TriggerRequest:
    """Check one item, ``{"workflow_name", "input", "options": {"additional_metadata"}, "priority"}``.

    The SDK's camelCase keys (``workflowName``, ``additionalMetadata``) are accepted too.

    :param item: the item.
    :param index: its position, for error messages.
    """
    field = f"workflow_runs[{index}]"
    if not isinstance(item, Mapping):
        raise HatchetValidationError(field, f"must be a dict, got {type(item).__name__}")
    unknown = set(item) - _ITEM_KEYS
    if unknown:
        raise HatchetValidationError(field, f"unknown keys {sorted(unknown)}; expected {sorted(_ITEM_KEYS)}")
    options = item.get("options") or {}
    if not isinstance(options, Mapping):
        raise HatchetValidationError(f"{field}.options", f"must be a dict, got {type(options).__name__}")
    unknown = set(options) - _OPTION_KEYS
    if unknown:
        raise HatchetValidationError(f"{field}.options", f"unknown keys {sorted(unknown)}")
    if "priority" in item and "priority" in options:
        raise HatchetValidationError(f"{field}.priority", "give it at the top level or in options, not both")
    return TriggerRequest(
        workflow_name=validation.check_workflow_name(
            _either(item, "workflow_name", "workflowName", field), f"{field}.workflow_name"
        ),
        input=validation.check_input(item.get("input"), f"{field}.input"),
        additional_metadata=validation.check_metadata(
            _either(options, "additional_metadata", "additionalMetadata", f"{field}.options"),
            f"{field}.options.additional_metadata",
        ),
        priority=validation.check_priority(item.get("priority", options.get("priority")), f"{field}.priority"),
    )


def parse_workflow_runs(value: object) -> list[TriggerRequest]:
    """Check every item before anything is sent; the first bad one raises, naming its index and field.

    :param value: the rendered ``workflow_runs``.
    """
    if not isinstance(value, list | tuple):
        raise HatchetValidationError(
            "workflow_runs", f"must be a list of dicts, got {type(value).__name__}; with Jinja, render it natively "
            "(render_template_as_native_obj=True) or pass it from an upstream task's XCom"
        )
    if not value:
        raise HatchetValidationError("workflow_runs", "is empty: there is nothing to trigger")
    return [parse_workflow_run(item, i) for i, item in enumerate(value)]
