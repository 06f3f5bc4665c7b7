"""The guard on cancel and replay by filter: a selection must name some runs, not the whole tenant, unless asked."""

from __future__ import annotations

import dataclasses
from typing import Any

from airflow_provider_hatchet.client.errors import HatchetValidationError
from airflow_provider_hatchet.client.models import UNSUCCESSFUL_STATUSES
from airflow_provider_hatchet.client.run_filter import RunFilter

# The most runs a cancel or replay by filter acts on unless raised.
DEFAULT_MAX_RUNS = 1000
# What a replay by filter selects when no statuses are given: a COMPLETED run is replayed only when asked.
REPLAY_STATUSES = UNSUCCESSFUL_STATUSES
THIS_DAG_RUN = '{"airflow_dag_id": "{{ dag.dag_id }}", "airflow_run_id": "{{ run_id }}"}'


def scoped(run_filter: RunFilter, action: str, *, allow_tenant_wide: bool) -> RunFilter:
    """The filter a cancel or replay acts on, or a refusal when it would select every run of the tenant.

    A filter narrows the selection by workflow names, metadata pairs (every value non-blank and not ``"None"``),
    idempotency keys or a triggering event; statuses and a time window alone do not. A replay without statuses
    selects FAILED and CANCELLED runs only.

    :param run_filter: the checked filter.
    :param action: ``cancel`` or ``replay``, for the messages.
    :param allow_tenant_wide: whether a filter that does not narrow may act on the whole tenant.
    :raises HatchetValidationError: on field ``filter``, saying how to scope the selection, or
        ``additional_metadata`` for a blank or ``"None"`` value.
    """
    blank = [key for key, value in run_filter.additional_metadata.items() if not str(value).strip()]
    if blank:
        raise HatchetValidationError("additional_metadata", f"pairs {blank} have empty values (templates that "
                                     "rendered to nothing?): an empty value does not narrow a selection")
    # Jinja renders a missing XCom or param as "None": every DAG run would render it alike and select each other's.
    nones = [key for key, value in run_filter.additional_metadata.items() if str(value).strip() == "None"]
    if nones:
        raise HatchetValidationError("additional_metadata", f"pairs {nones} have the value 'None' (templates whose "
                                     "value was None?): it names no run of this task; give the value meant")
    if not run_filter.narrowed_by() and not allow_tenant_wide:
        raise HatchetValidationError("filter", (
            f"a {action} by filter must be narrowed by workflow_names or additional_metadata (or give run_ids): "
            "statuses and a time window alone select every run of the tenant. To act on this DAG run's runs, "
            f"give additional_metadata={THIS_DAG_RUN}; to act on the whole tenant, pass allow_tenant_wide=True"))
    if action == "replay" and run_filter.statuses is None:
        return dataclasses.replace(run_filter, statuses=REPLAY_STATUSES)
    return run_filter


def check_max_runs(value: Any) -> int:
    """Return ``max_runs`` if it is a whole number above 0.

    :param value: the candidate.
    :raises HatchetValidationError: naming ``max_runs``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HatchetValidationError("max_runs", f"must be a whole number of runs above 0, got {value!r}")
    return value


def check_flag(value: Any, field: str) -> bool:
    """Return a flag if it is a bool (a rendered ``"False"`` is not taken as true).

    :param value: the candidate.
    :param field: the field name used in the error.
    :raises HatchetValidationError: naming the field.
    """
    if not isinstance(value, bool):
        raise HatchetValidationError(field, f"must be True or False, got {value!r}")
    return value
