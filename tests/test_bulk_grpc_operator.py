"""HatchetRunWorkflowsOperator over gRPC on real Airflow (``dag.test()``), against the simulator's two faces."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.airflow_helpers import task_state, xcom_value
from tests.test_bulk_operator import bulk, by_index, make_dag
from tests.test_grpc_client import DeadUpstream, closed_port


@pytest.fixture
def face(hatchet: Any) -> Iterator[Any]:
    with hatchet.grpc_server() as grpc_face:
        yield grpc_face


def use_grpc(hatchet: Any, hatchet_server: Any, airflow_conn: Any, address: str) -> None:
    airflow_conn("hatchet_default", conn_type="hatchet", host=hatchet_server.url, password=hatchet.token,
                 extra={"grpc_address": address, "grpc_tls": "false"})


def test_a_batch_goes_over_grpc_in_chunks_with_ids_in_item_order(
    hatchet: Any, hatchet_server: Any, airflow_conn: Any, face: Any, dag_runner: Any, logs: Any
) -> None:
    use_grpc(hatchet, hatchet_server, airflow_conn, face.address)
    with make_dag("bulk_grpc") as dag:
        bulk(task_id="t", transport="grpc", wait_for_completion=True, workflow_runs=[
            {"workflow_name": "demo-etl", "input": {"i": i}, "options": {"additional_metadata": {"k": i}},
             "priority": 2 if i == 3 else None} for i in range(2100)
        ])
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    runs = by_index(hatchet)
    assert xcom_value(dag_run, "t") == [runs[i].id for i in range(2100)]
    assert runs[5].input == {"i": 5} and runs[5].additional_metadata["k"] == "5"
    assert runs[3].priority == 2 and runs[4].priority is None
    assert runs[7].additional_metadata["airflow_ti"] == xcom_value(dag_run, "t", "hatchet_batch_key")
    routes = [r.route for r in hatchet.requests]
    assert routes.count("bulk_trigger") == 3 and "trigger" not in routes
    assert "over gRPC at" in logs()
    assert len(xcom_value(dag_run, "t", "output")) == 2100


def test_auto_falls_back_to_rest_with_one_line_when_the_grpc_port_is_closed(
    hatchet: Any, hatchet_server: Any, airflow_conn: Any, dag_runner: Any, logs: Any
) -> None:
    use_grpc(hatchet, hatchet_server, airflow_conn, f"127.0.0.1:{closed_port()}")
    with make_dag("bulk_auto") as dag:
        bulk(task_id="t", workflow_runs=[{"workflow_name": "demo-etl", "input": {"i": i}} for i in range(3)])
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    runs = by_index(hatchet)
    assert xcom_value(dag_run, "t") == [runs[i].id for i in range(3)]
    assert [r.route for r in hatchet.requests].count("trigger") == 3
    assert len([line for line in logs().splitlines() if "did not accept a connection" in line]) == 1


def test_auto_sends_over_rest_when_the_grpc_address_accepts_connections_but_fails_every_call(
    hatchet: Any, hatchet_server: Any, airflow_conn: Any, dag_runner: Any, logs: Any
) -> None:
    # A proxy or load balancer with no healthy engine behind it: the handshake succeeds, every call is UNAVAILABLE.
    with DeadUpstream("UNAVAILABLE") as upstream:
        use_grpc(hatchet, hatchet_server, airflow_conn, upstream.address)
        with make_dag("bulk_auto_dead_upstream") as dag:
            bulk(task_id="t", workflow_runs=[{"workflow_name": "demo-etl", "input": {"i": i}} for i in range(40)])
        dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    runs = by_index(hatchet)
    assert xcom_value(dag_run, "t") == [runs[i].id for i in range(40)]
    assert [r.route for r in hatchet.requests].count("trigger") == 40
    assert upstream.calls == [("/WorkflowService/BulkTriggerWorkflow", 0)]
    assert len([line for line in logs().splitlines() if "failed a gRPC call that creates nothing" in line]) == 1


def test_auto_goes_on_over_rest_with_a_warning_when_the_first_grpc_triggers_fail(
    hatchet: Any, hatchet_server: Any, airflow_conn: Any, dag_runner: Any, logs: Any
) -> None:
    # The empty probe is answered, then every trigger is UNIMPLEMENTED (nothing created): the batch goes on over
    # REST at the operator's max_concurrency, each item once.
    with DeadUpstream("UNIMPLEMENTED", answer_probe=True) as upstream:
        use_grpc(hatchet, hatchet_server, airflow_conn, upstream.address)
        with make_dag("bulk_auto_fallback") as dag:
            bulk(task_id="t", grpc_chunk_size=10, max_concurrency=6,
                 workflow_runs=[{"workflow_name": "demo-etl", "input": {"i": i}} for i in range(45)])
        dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    runs = by_index(hatchet)
    assert xcom_value(dag_run, "t") == [runs[i].id for i in range(45)]
    assert [r.route for r in hatchet.requests].count("trigger") == 45
    assert 2 <= len(upstream.calls) <= 5
    warnings = [line for line in logs().splitlines() if "goes on over REST, one request per run, 6 at a time" in line]
    assert len(warnings) == 1 and "UNIMPLEMENTED" in warnings[0]


def test_a_failed_chunk_fails_the_task_and_pushes_what_was_created(
    hatchet: Any, hatchet_server: Any, airflow_conn: Any, face: Any, dag_runner: Any
) -> None:
    use_grpc(hatchet, hatchet_server, airflow_conn, face.address)
    hatchet.reject_trigger_if({"input": {"bad": True}}, status=400, message="bad item")
    with make_dag("bulk_grpc_partial") as dag:
        bulk(task_id="t", transport="grpc", workflow_runs=[
            {"workflow_name": "demo-etl", "input": {"bad": i == 1500}} for i in range(2000)
        ])
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    created = xcom_value(dag_run, "t", "created_runs")
    runs = by_index(hatchet)
    assert sorted(runs) == list(range(1000))
    assert created == [runs[i].id for i in range(1000)] + [None] * 1000


def test_an_unknown_transport_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="transport: must be one of auto, grpc, rest, got 'http'"):
        bulk(task_id="t", workflow_runs=[], transport="http")
