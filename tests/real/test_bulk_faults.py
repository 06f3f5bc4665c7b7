"""HatchetRunWorkflowsOperator triggers 2,000 runs through real network faults, each exactly once, in order.

The Airflow connection points at the front of ``client -> Toxiproxy -> BadGatewayProxy -> server`` (see
``faults.py``): about one request in ten has its answer lost after the server did the work, as a reset
connection, a connection cut mid-answer, or a 502, and every answer is delayed. The batch must still come out as
exactly one run per item, with the ids in item order: counted through Hatchet's list API and, on the real
server, in its Postgres database.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_hatchet.client import HatchetClient, endpoints
from airflow_provider_hatchet.client.endpoints import RUN_VISIBILITY_WINDOW
from tests.airflow_helpers import task_state, xcom_value
from tests.real.conftest import Backend
from tests.real.faults import LIST, TRIGGER, ClientLog, Toxiproxy, fault_chain

ITEMS = 2000
CONCURRENCY = 32
BAD_GATEWAY_RATE = 0.05
RESET_TOXICITY = 0.12
CUT_TOXICITY = 0.06
KEEPALIVE_REQUESTS = 3
INDEX_KEY = "airflow_batch_index"
BATCH_KEY = "airflow_ti"


def list_batch(client: HatchetClient, batch_key: str, expected: int, timeout: float = 60) -> list[Any]:
    """The batch's runs from Hatchet's list API, once ``expected`` are visible and one visibility window later
    (a duplicate created last would show by then)."""
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    deadline = time.monotonic() + timeout
    while True:
        rows = list(
            client.iter_rows(endpoints.runs(since=since, page_size=500, additional_metadata={BATCH_KEY: batch_key}))
        )
        if len(rows) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    time.sleep(RUN_VISIBILITY_WINDOW)
    return list(
        client.iter_rows(endpoints.runs(since=since, page_size=500, additional_metadata={BATCH_KEY: batch_key}))
    )


def postgres_rows(database_url: str, batch_key: str) -> dict[str, list[tuple[str, str, str]]]:
    """The batch's runs in the real server's database, ``(run id, batch index, input i)`` per table.

    ``v1_task`` is what the trigger writes (one row per task; demo-etl has one task, whose id is the run id),
    with the input in ``v1_payload``; ``v1_runs_olap`` is the read copy the list API serves.
    """
    query = """
        select 'v1_task', t.external_id, t.additional_metadata->>'airflow_batch_index',
               coalesce(p.inline_content->'input'->>'i', '')
          from v1_task t
          left join v1_payload p on p.tenant_id = t.tenant_id and p.id = t.id and p.inserted_at = t.inserted_at
                                and p.type = 'TASK_INPUT'
         where t.additional_metadata->>'airflow_ti' = :'key'
        union all
        select 'v1_runs_olap', r.external_id, r.additional_metadata->>'airflow_batch_index', ''
          from v1_runs_olap r
         where r.additional_metadata->>'airflow_ti' = :'key';
    """
    done = subprocess.run(
        ["psql", database_url, "-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-v", f"key={batch_key}"],
        input=query,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    tables: dict[str, list[tuple[str, str, str]]] = {"v1_task": [], "v1_runs_olap": []}
    for line in done.stdout.splitlines():
        table, run_id, index, item = line.split("\t")
        tables[table].append((run_id, index, item))
    return tables


def test_2000_runs_exactly_once_in_order_through_resets_cuts_502s_and_latency(
    backend: Backend,
    toxiproxy: Toxiproxy,
    airflow_conn: Callable[..., str],
    dag_runner: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    logs: Callable[[], str],
    capfd: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> None:
    from airflow.sdk import DAG

    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowsOperator

    seen = ClientLog(monkeypatch)
    name = f"bulk-{backend.tag}"
    with fault_chain(
        toxiproxy,
        backend.server_url,
        name,
        bad_gateway_rate=BAD_GATEWAY_RATE,
        seed=ITEMS,
        keepalive_requests=KEEPALIVE_REQUESTS,
    ) as chain:
        toxiproxy.add_toxic(name, "latency", "latency", latency=5, jitter=5)
        toxiproxy.add_toxic(name, "reset", "reset_peer", toxicity=RESET_TOXICITY, timeout=0)
        toxiproxy.add_toxic(name, "cut", "limit_data", toxicity=CUT_TOXICITY, bytes=64)
        # The host is the proxy, the token still names the server: both servers check the token's server_url
        # claim against their own URL, not against the address the request came to.
        airflow_conn("hatchet_default", conn_type="hatchet", host=chain.url, password=backend.token)
        with DAG(f"bulk_faults_{backend.tag}", schedule=None, start_date=datetime(2025, 1, 1), catchup=False) as dag:
            HatchetRunWorkflowsOperator(
                task_id="bulk",
                max_concurrency=CONCURRENCY,
                wait_for_completion=False,
                workflow_runs=[
                    {
                        "workflow_name": "demo-etl",
                        "input": {"i": i},
                        "options": {"additional_metadata": {"test_tag": backend.tag}},
                    }
                    for i in range(ITEMS)
                ],
            )
        started = time.monotonic()
        dag_run = dag_runner(dag)
        elapsed = time.monotonic() - started
        proxied = chain.http.stats()
        connections = chain.http.connections

    assert task_state(dag_run, "bulk") == "success", logs()[-3000:]
    ids = xcom_value(dag_run, "bulk")
    batch_key = xcom_value(dag_run, "bulk", "hatchet_batch_key")
    assert len(ids) == ITEMS and len(set(ids)) == ITEMS

    # Hatchet's list API, straight to the server: one run per item, each carrying its position.
    rows = list_batch(backend.client(), batch_key, ITEMS)
    index_of = {row.id: int(row.additional_metadata[INDEX_KEY]) for row in rows}
    assert len(rows) == ITEMS, f"{len(rows)} runs in the batch for {ITEMS} items"
    assert [index_of[run_id] for run_id in ids] == list(range(ITEMS))
    assert all(row.additional_metadata["test_tag"] == backend.tag for row in rows)

    if backend.is_real:
        assert backend.database_url, "the real server's HATCHET_DATABASE_URL is needed for the Postgres check"
        tables = postgres_rows(backend.database_url, batch_key)
        for table, found in tables.items():
            assert len(found) == ITEMS, f"{table}: {len(found)} rows for {ITEMS} items"
            assert sorted((run_id, int(index)) for run_id, index, _ in found) == sorted(
                (run_id, i) for i, run_id in enumerate(ids)
            ), table
        assert all(item == index for _, index, item in tables["v1_task"])
    else:
        runs = [run for run in backend.sim.runs if run.additional_metadata.get(BATCH_KEY) == batch_key]
        assert sorted((run.id, int(run.additional_metadata[INDEX_KEY]), run.input["i"]) for run in runs) == sorted(
            (run_id, i, i) for i, run_id in enumerate(ids)
        )

    # Every trigger reached the server (the toxics act on the way back) and created a run: 2,000 triggers in
    # all means no item was sent twice. The faults happened, and each lost trigger answer was recovered from
    # the list rather than sent again. Toxiproxy sets SO_LINGER 0 on every connection of a proxy with a
    # reset_peer toxic, so a cut connection ends with a reset too: both show as ReadError.
    client = seen.snapshot()
    dropped, bad_gateways = client.failed(TRIGGER), proxied.bad_gateways[TRIGGER]
    assert proxied.requests[TRIGGER] == ITEMS
    assert dropped > 0 and bad_gateways > 0
    assert {kind for route, kind in client.failures if route == TRIGGER} <= {"ReadError", "RemoteProtocolError"}
    # A 502 the proxy sent may itself be dropped on the way back.
    assert 0 < client.answered(TRIGGER, 502) <= bad_gateways
    lost = dropped + client.answered(TRIGGER, 502)
    assert client.answered(TRIGGER) + dropped == ITEMS
    assert (
        f"{ITEMS} runs: {ITEMS - lost} created, {lost} recovered after ambiguous failures, 0 reused, 0 failed" in logs()
    )

    figures = {
        "backend": backend.kind,
        "seconds": round(elapsed, 1),
        "triggers": proxied.requests[TRIGGER],
        "trigger_502s": client.answered(TRIGGER, 502),
        "trigger_dropped": dropped,
        "fault_rate": round(lost / proxied.requests[TRIGGER], 3),
        "lookups": proxied.requests[LIST],
        "lookup_faults": proxied.bad_gateways[LIST] + client.failed(LIST),
        "requests": sum(proxied.requests.values()),
        "connections": connections,
    }
    for key, value in figures.items():
        record_property(key, value)
    with capfd.disabled():
        print("\nbulk under faults: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
