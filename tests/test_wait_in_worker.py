"""A wait in the worker runs the wait engine through the bridge: no trigger object, one async client, closed when
the wait ends. Real Airflow (``dag.test()``, on Airflow 3.3 and 2.10) against the simulator over loopback HTTP.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_hatchet.triggers.hatchet import HatchetScheduledRunTrigger, HatchetWorkflowRunTrigger
from tests.airflow_helpers import xcom_value

pytestmark = pytest.mark.af2


def make_dag(dag_id: str) -> Any:
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import DAG
    else:
        from airflow.models.dag import DAG
    return DAG(dag_id, schedule=None, start_date=datetime(2025, 1, 1), catchup=False)


def test_a_wait_in_the_worker_builds_no_trigger_and_one_client_it_closes(
    hatchet: Any, dag_runner: Any, closed_async_clients: list[Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook
    from airflow_provider_hatchet.operators.hatchet import (
        HatchetRunWorkflowOperator,
        HatchetRunWorkflowsOperator,
        HatchetScheduleWorkflowOperator,
    )

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a trigger was built for a wait in the worker")

    monkeypatch.setattr(HatchetWorkflowRunTrigger, "__init__", refuse)
    monkeypatch.setattr(HatchetScheduledRunTrigger, "__init__", refuse)
    with make_dag("wait_in_worker") as dag:
        HatchetRunWorkflowOperator(task_id="one", workflow_name="demo-etl", input={"x": 1}, wait_for_completion=True,
                                   poll_interval=0.1)
        # REST: its batch's own client, then the wait's.
        HatchetRunWorkflowsOperator(task_id="many", workflow_runs=[{"workflow_name": "demo-etl", "input": {"x": i}}
                                                                   for i in range(3)],
                                    wait_for_completion=True, poll_interval=0.1, transport="rest")
        # The wait for the schedule to fire, then the wait for its run.
        HatchetScheduleWorkflowOperator(
            task_id="scheduled", workflow_name="demo-etl", input={"x": 9}, wait_for_completion=True, poll_interval=0.1,
            trigger_at=(datetime.now(timezone.utc) + timedelta(seconds=0.5)).isoformat(),
        )
    # The async clients of the tasks' own (the sync client's, which sent the trigger, is the hook's).
    clients: list[Any] = []
    build = HatchetHook._new_async_client

    def counted(self: HatchetHook, *args: Any, **kwargs: Any) -> Any:
        clients.append(build(self, *args, **kwargs))
        return clients[-1]

    monkeypatch.setattr(HatchetHook, "_new_async_client", counted)
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    assert xcom_value(dag_run, "one", "output")["run"]["echo"] == {"x": 1}
    assert [output["run"]["echo"] for output in xcom_value(dag_run, "many", "output")] == [{"x": i} for i in range(3)]
    assert xcom_value(dag_run, "scheduled", "output")["run"]["echo"] == {"x": 9}
    assert len(clients) == 5
    assert [c for c in closed_async_clients if c in clients] == clients
