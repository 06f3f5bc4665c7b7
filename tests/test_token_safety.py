"""The API token never shows: not in logs, errors, XComs or rendered templates, whatever the DAG does."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_helpers import task_state


def make_dag(dag_id: str, **kwargs: Any) -> Any:
    from airflow.sdk import DAG

    return DAG(dag_id, schedule=None, start_date=datetime(2025, 1, 1), catchup=False, **kwargs)


def stored_values(dag_id: str) -> str:
    """Every XCom value and rendered template field of a DAG, as text."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        xcoms = session.query(XComModel).filter(XComModel.dag_id == dag_id).all()
        rendered = session.query(RenderedTaskInstanceFields).filter(RenderedTaskInstanceFields.dag_id == dag_id).all()
        assert xcoms and rendered, "nothing stored: the hunt would find nothing either way"
        return json.dumps([x.value for x in xcoms] + [r.rendered_fields for r in rendered], default=str)


def task_logs(airflow_home: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in (airflow_home / "logs").rglob("*") if p.is_file())


def test_the_token_is_nowhere(
    hatchet: Any, hatchet_server: Any, airflow_conn: Any, airflow_home: Path, dag_runner: Any, logs: Any
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator, HatchetRunWorkflowsOperator
    from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor

    token = hatchet.token
    foreign = hatchet.mint_token(server_url="https://elsewhere.example.com")
    airflow_conn("hatchet_foreign", conn_type="hatchet", host=hatchet_server.url, password=foreign)
    with make_dag("token_hunt") as dag:
        run = HatchetRunWorkflowOperator(task_id="wait", workflow_name="demo-etl", wait_for_completion=True,
                                         poll_interval=0.1)
        HatchetRunWorkflowOperator(task_id="deferred", workflow_name="demo-etl", wait_for_completion=True,
                                   deferrable=True, poll_interval=0.1)
        HatchetRunWorkflowsOperator(task_id="bulk", workflow_runs=[{"workflow_name": "demo-etl"}] * 3,
                                    wait_for_completion=True, poll_interval=0.1)
        HatchetWorkflowRunSensor(task_id="sense", run_id=run.output, poke_interval=0.1)
        # Templating a token is the user's choice; the rendered field must still show it masked. This task's
        # token is refused before anything is created, so the value is never sent.
        HatchetRunWorkflowOperator(task_id="rejected", workflow_name="demo-etl", hatchet_conn_id="hatchet_foreign",
                                   additional_metadata={"leak": "{{ conn.hatchet_foreign.password }}"})
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "rejected") == "failed"
    assert task_state(dag_run, "sense") == "success"
    output = logs()
    assert "Please provide valid credentials" in output or "403" in output
    haystack = "\n".join([output, task_logs(airflow_home), stored_values("token_hunt")])
    assert "***" in stored_values("token_hunt")  # the templated token was rendered, and masked
    for secret in (token, foreign):
        for part in (secret, secret.split(".")[2]):
            assert part not in haystack


@pytest.mark.parametrize("password", ["plain-secret-password", "eyJhbGciOi.bad.sig-secret"])
def test_a_malformed_token_is_not_echoed(airflow_conn: Any, dag_runner: Any, logs: Any, password: str) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

    airflow_conn("hatchet_default", conn_type="hatchet", host="http://127.0.0.1:9", password=password)
    with make_dag("token_malformed") as dag:
        HatchetRunWorkflowOperator(task_id="t", workflow_name="demo-etl")
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    output = logs()
    assert "HatchetConfigError" in output
    assert password not in output


def test_the_grpc_paths_show_no_token_even_at_debug_level(
    hatchet: Any, hatchet_server: Any, airflow_conn: Any, airflow_home: Path, dag_runner: Any, logs: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetPushEventOperator, HatchetRunWorkflowsOperator

    caplog.set_level("DEBUG")
    token = hatchet.token
    header, payload, signature = token.split(".")
    refused = ".".join([header, payload, signature[::-1]])  # well-formed, but the server refuses it
    with hatchet.grpc_server() as face:
        extra = {"grpc_address": face.address, "grpc_tls": "false"}
        airflow_conn("hatchet_default", conn_type="hatchet", host=hatchet_server.url, password=token, extra=extra)
        airflow_conn("hatchet_refused", conn_type="hatchet", host=hatchet_server.url, password=refused, extra=extra)
        with make_dag("token_hunt_grpc") as dag:
            HatchetRunWorkflowsOperator(task_id="bulk", transport="grpc", grpc_chunk_size=2,
                                        workflow_runs=[{"workflow_name": "demo-etl"}] * 5,
                                        wait_for_completion=True, poll_interval=0.1)
            HatchetPushEventOperator(task_id="push", key="airflow:demo-event", payload={"x": 1},
                                     wait_for_completion=True, poll_interval=0.1)
            HatchetPushEventOperator(task_id="refused", key="airflow:demo-event", payload={"x": 1},
                                     hatchet_conn_id="hatchet_refused")
        dag_run = dag_runner(dag)

    assert task_state(dag_run, "bulk") == "success" and task_state(dag_run, "push") == "success"
    assert task_state(dag_run, "refused") == "failed"
    output = logs()
    assert "UNAUTHENTICATED" in output
    assert any(record.levelname == "DEBUG" for record in caplog.records)
    haystack = "\n".join([output, task_logs(airflow_home), stored_values("token_hunt_grpc")])
    for secret in (token, refused):
        for part in (secret, secret.split(".")[2]):
            assert part not in haystack


def test_the_token_signature_alone_is_masked(hatchet: Any, dag_runner: Any, logs: Any) -> None:
    from airflow_provider_hatchet._compat import redact
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook
    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator

    signature = hatchet.token.split(".")[2]
    # A Hatchet task that logs the signature alone (here: its input), forwarded into the task log.
    with make_dag("token_signature") as dag:
        HatchetRunWorkflowOperator(task_id="t", workflow_name="demo-etl", input={"s": signature},
                                   wait_for_completion=True, poll_interval=0.1, forward_logs="always")
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    output = logs()
    assert 'input: {"s": "***"}' in output
    assert f'input: {{"s": "{signature}"}}' not in output
    HatchetHook().config  # noqa: B018  (reading the connection registers the token)
    assert redact(f"signature: {signature}") == "signature: ***"
