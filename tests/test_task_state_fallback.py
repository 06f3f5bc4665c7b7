"""Below Airflow 3.3 there is no task state store: ``HatchetRunWorkflowOperator`` runs on the stand-in of
``ResumableJobMixin``, and only the metadata lookup (``reuse_existing_run``) lets a retry find an earlier run.

The same scenario as ``test_operator.test_the_task_state_store_re_attaches_a_retry`` (Airflow 3.3+), with the
documented fallback as its answer: with the lookup off, the retry triggers a run of its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS
from tests.airflow_helpers import xcom_value

pytestmark = [
    pytest.mark.af2,
    pytest.mark.matrix,
    pytest.mark.skipif(AIRFLOW_V_3_3_PLUS, reason="Airflow 3.3+ has the task state store (test_operator.py)"),
]


def make_dag(dag_id: str) -> Any:
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import DAG
    else:
        from airflow.models.dag import DAG

    return DAG(dag_id, schedule=None, start_date=datetime(2025, 1, 1), catchup=False)


def trigger_requests(sim: Any) -> list[Any]:
    return [r for r in sim.requests if r.path.endswith("/workflow-runs/trigger")]


def test_without_the_task_state_store_a_retry_with_the_lookup_off_triggers_anew(
    hatchet: Any, dag_runner: Any, logs: Any
) -> None:
    from airflow_provider_hatchet._task_state import ResumableJobMixin, _ResumableJobStandIn
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

    hatchet.visibility_delay = 2.0
    hatchet.fail_next("status", 1, 403)  # the first try fails after its run was created
    with make_dag("task_state_fallback") as dag:
        HatchetRunWorkflowOperator(task_id="t", workflow_name="demo-etl", wait_for_completion=True,
                                   reuse_existing_run=False, poll_interval=0.1, retries=1,
                                   retry_delay=timedelta(seconds=0))
    dag_run = dag_runner(dag)

    assert ResumableJobMixin is _ResumableJobStandIn
    assert dag_run.state == "success"
    first, second = sorted(hatchet.runs, key=lambda run: run.additional_metadata["airflow_try_number"])
    assert [r.additional_metadata["airflow_try_number"] for r in (first, second)] == ["1", "2"]
    assert len(trigger_requests(hatchet)) == 2
    assert xcom_value(dag_run, "t") == second.id
    assert "Reconnecting to existing job" not in logs()
