"""The Airflow identity stamped on every run an operator triggers, so Hatchet can find a task's runs.

The operators stamp it; the trigger and the sensor read the batch key. The client knows none of these names:
they are passed to it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BATCH_INDEX_KEY", "EVENT_INDEX_KEY", "TI_KEY", "TRY_KEY", "first_try_of_generation", "identity_metadata",
           "ti_key"]

# The task instance, the same on every try: one filter on it finds every run the task instance triggered.
TI_KEY = "airflow_ti"
# A bulk item's position in ``workflow_runs``.
BATCH_INDEX_KEY = "airflow_batch_index"
TRY_KEY = "airflow_try_number"
# An event's position in the push operator's ``events`` (0 for its single event).
EVENT_INDEX_KEY = "airflow_event_index"


def ti_key(context: Any) -> str:
    """The combined key of a task instance, ``<dag_id>|<run_id>|<task_id>|<map_index>``, the same on every try.

    One metadata filter on it finds every run the task instance triggered (Hatchet ORs several pairs).

    :param context: the task's context.
    """
    ti = context["ti"]
    return f"{ti.dag_id}|{ti.run_id}|{ti.task_id}|{ti.map_index}"


def identity_metadata(context: Any) -> dict[str, str]:
    """The metadata that identifies the task instance and try that triggers a run.

    :param context: the task's context.
    """
    ti = context["ti"]
    return {
        "airflow_dag_id": str(ti.dag_id),
        "airflow_run_id": str(ti.run_id),
        "airflow_task_id": str(ti.task_id),
        "airflow_map_index": str(ti.map_index),
        TRY_KEY: str(ti.try_number),
        TI_KEY: ti_key(context),
    }



def first_try_of_generation(context: Any) -> int:
    """The first try of this task instance since it was last cleared (or since it first ran).

    Airflow sets ``max_tries = try_number + retries`` when it clears a task instance, and ``max_tries = retries``
    when it first creates one, so ``max_tries - retries + 1`` is the first try of the current generation on every
    Airflow from 2.10 to 3.3 (Airflow's own task runner reads the first try of a reschedule the same way). A try
    after it is a retry of the same generation and re-attaches to what an earlier try of the generation created;
    a try equal to it starts anew, whatever earlier generations left behind. It is true only after a clear, never
    after a try that failed late, so a retry cannot mistake itself for a clear.

    :param context: the task's context.
    """
    ti = context["ti"]
    task = context.get("task") or getattr(ti, "task", None)
    retries = int(getattr(task, "retries", 0) or 0)
    try_number = int(ti.try_number)
    max_tries = getattr(ti, "max_tries", None)
    if not isinstance(max_tries, int) or max_tries < 0:
        return 1
    # Retries raised on a task since it was cleared cannot push the start past this try.
    return max(1, min(try_number, max_tries - retries + 1))
