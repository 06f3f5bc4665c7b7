"""HatchetRunWorkflowsOperator on real Airflow (``dag.test()``) against the simulator over loopback HTTP."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from airflow_provider_hatchet.client import HatchetValidationError
from airflow_provider_hatchet.operators._workflow_runs import parse_workflow_runs
from tests.airflow_helpers import example_dag, task_state, xcom_value

START = datetime(2025, 1, 1)


def make_dag(dag_id: str, **kwargs: Any) -> Any:
    from airflow.sdk import DAG

    return DAG(dag_id, schedule=None, start_date=START, catchup=False, **kwargs)


def bulk(**kwargs: Any) -> Any:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowsOperator

    kwargs.setdefault("poll_interval", 0.1)
    return HatchetRunWorkflowsOperator(**kwargs)


def by_index(sim: Any) -> dict[int, Any]:
    runs: dict[int, Any] = {}
    for run in sim.runs:
        index = int(run.additional_metadata["airflow_batch_index"])
        assert index not in runs, f"two runs for item {index}"
        runs[index] = run
    return runs


def test_the_example_dag_triggers_a_batch_from_params_and_waits(hatchet: Any, dag_runner: Any) -> None:
    conf = {"customers": ["a", "b", "c"], "day": "2026-02-01"}
    dag_run = dag_runner(example_dag("example_hatchet_bulk"), run_conf=conf)

    assert dag_run.state == "success"
    runs = by_index(hatchet)
    assert [runs[i].input for i in range(3)] == [{"customer": c, "day": "2026-02-01"} for c in "abc"]
    assert [runs[i].additional_metadata["customer"] for i in range(3)] == ["a", "b", "c"]
    assert xcom_value(dag_run, "export_all") == [runs[i].id for i in range(3)]
    outputs = xcom_value(dag_run, "export_all", "output")
    assert [o["run"]["echo"]["customer"] for o in outputs] == ["a", "b", "c"]


def test_items_carry_identity_index_batch_key_namespace_and_camel_case(
    hatchet: Any, hatchet_server: Any, airflow_conn: Any, dag_runner: Any
) -> None:
    hatchet.register_workflow("team_etl", "succeed")
    hatchet.register_workflow("team_demo-etl", "succeed")
    airflow_conn("hatchet_default", conn_type="hatchet", host=hatchet_server.url, password=hatchet.token,
                 extra={"namespace": "Team"})
    with make_dag("bulk_shape") as dag:
        bulk(task_id="t", workflow_runs=[
            {"workflow_name": "etl", "input": {"i": 0}, "priority": 3},
            {"workflowName": "etl", "input": {"i": 1}, "options": {"additionalMetadata": {"k": 1}}},
            {"workflowName": "demo-etl", "input": {"i": 2}},
            {"workflowName": "demo-etl", "input": {"i": 3}},
        ])
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    runs = by_index(hatchet)
    assert runs[0].body["workflowName"] == runs[1].body["workflowName"] == "team_etl"
    assert runs[0].body["priority"] == 3 and "priority" not in runs[1].body
    meta = runs[1].additional_metadata
    assert meta["k"] == "1"
    assert meta["airflow_ti"] == f"bulk_shape|{dag_run.run_id}|t|-1"
    assert meta["airflow_batch_index"] == "1" and meta["airflow_try_number"] == "1"
    assert xcom_value(dag_run, "t", "hatchet_batch_key") == meta["airflow_ti"]
    assert runs[2].body["workflowName"] == "team_demo-etl"
    lookups = sorted(r.query["name"][0] for r in hatchet.requests if r.route == "workflows")
    assert lookups == ["team_demo-etl", "team_etl"]  # once per distinct name


@pytest.mark.parametrize(
    ("runs", "field"),
    [
        ([{"workflow_name": "demo-etl"}, {"workflow_name": "demo-etl", "input": "x"}], "workflow_runs[1].input"),
        ([{"workflow_name": "demo-etl"}, {"workflow_name": ""}], "workflow_runs[1].workflow_name"),
        ([{"workflow_name": "demo-etl", "priority": 9}], "workflow_runs[0].priority"),
        ([{"workflow_name": "demo-etl", "options": {"additional_metadata": {"a": [1]}}}],
         "workflow_runs[0].options.additional_metadata['a']"),
        ([{"workflow_name": "demo-etl", "inputs": {}}], "workflow_runs[0]"),
        ("demo-etl", "workflow_runs"),
        ([], "workflow_runs"),
    ],
)
def test_every_item_is_checked_before_anything_is_sent(runs: Any, field: str) -> None:
    with pytest.raises(HatchetValidationError) as err:
        parse_workflow_runs(runs)
    assert err.value.field == field


def test_a_bad_item_fails_the_task_with_nothing_sent(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    with make_dag("bulk_bad") as dag:
        bulk(task_id="t", workflow_runs=[{"workflow_name": "demo-etl"}] * 5 + [{"workflow_name": "nope"}])
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    assert hatchet.runs == []
    assert "no workflow named 'nope'" in logs()


def test_a_retry_after_permanent_failures_triggers_only_the_missing_items(
    hatchet: Any, dag_runner: Any, logs: Any
) -> None:
    def first_try_items_3_and_7(body: dict[str, Any]) -> bool:
        meta = body.get("additionalMetadata", {})
        return meta.get("airflow_try_number") == "1" and meta.get("airflow_batch_index") in ("3", "7")

    hatchet.visibility_delay = 2.0  # the retry looks before the first try's runs are listed
    hatchet.reject_trigger_if(first_try_items_3_and_7, status=400, message="quota exceeded")
    with make_dag("bulk_retry") as dag:
        bulk(task_id="t", workflow_runs=[{"workflow_name": "demo-etl", "input": {"i": i}} for i in range(10)],
             retries=1, retry_delay=timedelta(seconds=0))
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    runs = by_index(hatchet)
    assert sorted(runs) == list(range(10))
    assert [runs[i].input["i"] for i in range(10)] == list(range(10))
    retried = {i for i, r in runs.items() if r.additional_metadata["airflow_try_number"] == "2"}
    assert retried == {3, 7}
    assert xcom_value(dag_run, "t") == [runs[i].id for i in range(10)]
    text = logs()
    assert "failed: 3, 7" in text or "[3, 7]" in text or "3, 7" in text
    assert "quota exceeded" in text


def test_failed_items_fail_the_task_and_push_what_was_created(hatchet: Any, dag_runner: Any) -> None:
    hatchet.reject_trigger_if({"input": {"bad": True}}, status=400, message="bad item")
    with make_dag("bulk_partial") as dag:
        bulk(task_id="t", workflow_runs=[
            {"workflow_name": "demo-etl", "input": {"bad": i == 1}} for i in range(3)
        ])
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    created = xcom_value(dag_run, "t", "created_runs")
    runs = by_index(hatchet)
    assert created == [runs[0].id, None, runs[2].id]


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_failed_run_in_the_batch_fails_the_wait(
    hatchet: Any, dag_runner: Any, logs: Any, deferrable: bool
) -> None:
    with make_dag("bulk_wait_fail") as dag:
        bulk(task_id="t", wait_for_completion=True, deferrable=deferrable, workflow_runs=[
            {"workflow_name": "demo-etl"}, {"workflow_name": "demo-fail"}, {"workflow_name": "demo-hang"},
        ], timeout=60)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    assert "simulated failure in demo-fail" in logs()


def test_a_timeout_cancels_the_unfinished_runs(hatchet: Any, dag_runner: Any) -> None:
    import time

    with make_dag("bulk_timeout") as dag:
        bulk(task_id="t", wait_for_completion=True, timeout=1.0, workflow_runs=[
            {"workflow_name": "demo-etl"}, {"workflow_name": "demo-hang"}, {"workflow_name": "demo-hang"},
        ])
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    time.sleep(0.3)
    runs = by_index(hatchet)
    assert [hatchet.run_status(runs[i].id) for i in range(3)] == ["COMPLETED", "CANCELLED", "CANCELLED"]


def test_a_big_batch_logs_progress_and_each_failure_not_each_run(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    bad = {7, 1234, 1999}
    hatchet.reject_trigger_if({"input": {"bad": True}}, status=400, message="input rejected")
    with make_dag("bulk_quiet") as dag:
        bulk(task_id="t", workflow_runs=[
            {"workflow_name": "demo-etl", "input": {"i": i, "bad": i in bad}} for i in range(2000)
        ])
    logs()  # drop what came before the run
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    assert len(hatchet.runs) == 2000 - len(bad)
    lines = logs().splitlines()
    assert len(lines) < 200, f"{len(lines)} log lines for 2000 runs"
    for index in bad:
        assert any(f"Item {index} failed: 400" in line and "input rejected" in line for line in lines)
    assert sum("Progress: trigger" in line for line in lines) >= 5
    assert any("XCom 'created_runs'" in line for line in lines)


def test_a_configuration_error_stops_the_batch_with_that_error(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    def past_the_tenth(body: dict[str, Any]) -> bool:
        return int(body.get("additionalMetadata", {}).get("airflow_batch_index", 0)) >= 10

    hatchet.reject_trigger_if(past_the_tenth, status=403, message="token revoked")
    with make_dag("bulk_stopped") as dag:
        bulk(task_id="t", max_concurrency=4,
             workflow_runs=[{"workflow_name": "demo-etl", "input": {"i": i}} for i in range(300)])
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    triggers = [r for r in hatchet.requests if r.route == "trigger"]
    assert len(triggers) <= 10 + 4
    runs = by_index(hatchet)
    assert sorted(runs) == list(range(10))
    created = xcom_value(dag_run, "t", "created_runs")
    assert created[:10] == [runs[i].id for i in range(10)] and set(created[10:]) == {None}
    text = logs()
    assert "The batch stopped at once" in text and "token revoked" in text
    assert "x not sent" not in text  # the error is not repeated per item
