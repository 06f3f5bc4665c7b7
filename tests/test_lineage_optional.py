"""Without the OpenLineage provider the trigger operators run as before: no facets, no parent ids, a warning.

On Airflow 2.10 (``make pytest-af2``) the provider is not installed; on Airflow 3.3 its import is made to fail.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS
from tests.airflow_helpers import xcom_value

pytestmark = pytest.mark.af2

WARNING = "inject_lineage_parent is set, but the OpenLineage provider"


# What the package imports from the provider and its client.
BLOCKED = ("airflow.providers.openlineage.plugins.macros", "airflow.providers.openlineage.extractors",
           "openlineage.client")


@pytest.fixture
def no_openlineage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make what the package imports from the OpenLineage provider fail to import, as where it is missing.

    Only those modules: Airflow's own provider discovery still finds the installed provider on Airflow 3.3.
    """
    for blocked in BLOCKED:
        for name in [n for n in sys.modules if n == blocked or n.startswith(f"{blocked}.")]:
            monkeypatch.delitem(sys.modules, name)
        monkeypatch.setitem(sys.modules, blocked, None)
        parent, _, child = blocked.rpartition(".")
        if parent in sys.modules:
            monkeypatch.delattr(sys.modules[parent], child, raising=False)


def make_dag(dag_id: str) -> Any:
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import DAG
    else:
        from airflow.models.dag import DAG
    return DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False)


def test_the_lineage_helpers_find_no_provider(no_openlineage: None) -> None:
    from airflow_provider_hatchet.operators._lineage import lineage_parent_metadata, operator_lineage
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

    with pytest.raises(ImportError):
        from airflow.providers.openlineage.plugins import macros  # noqa: F401
    task = HatchetRunWorkflowOperator(task_id="t", workflow_name="demo-etl")
    assert operator_lineage(task, task.hook, ["run-1"]) is None
    assert lineage_parent_metadata({"ti": object()}) is None


@pytest.mark.parametrize("bulk", [False, True], ids=["single", "bulk"])
def test_inject_lineage_parent_without_the_provider_triggers_with_a_warning(
    no_openlineage: None, hatchet: Any, dag_runner: Any, logs: Any, bulk: bool
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator, HatchetRunWorkflowsOperator

    with make_dag(f"ol_missing_{int(bulk)}") as dag:
        if bulk:
            task = HatchetRunWorkflowsOperator(task_id="t", workflow_runs=[{"workflow_name": "demo-etl"}],
                                               transport="rest", inject_lineage_parent=True)
        else:
            task = HatchetRunWorkflowOperator(task_id="t", workflow_name="demo-etl", inject_lineage_parent=True)
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    [run] = hatchet.runs
    assert not [key for key in run.body["additionalMetadata"] if key.startswith("openlineage_")]
    assert "traceparent" not in run.body["additionalMetadata"]
    assert run.additional_metadata["airflow_ti"] == f"{dag.dag_id}|{dag_run.run_id}|t|-1"
    result = xcom_value(dag_run, "t")
    assert result == ([run.id] if bulk else run.id)
    assert WARNING in logs()
    assert task.get_openlineage_facets_on_complete(None) is None
