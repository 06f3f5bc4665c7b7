"""HatchetRunWorkflowsOperator triggers 2,000 runs over gRPC through lost answers, each exactly once, in order.

The connection's gRPC address is a proxy (``grpc_faults.py``) in front of either server: about one request in ten
fails, before it reaches the server (nothing created), after the server created its runs (UNAVAILABLE or
INTERNAL), or as a dropped stream. The batch goes in requests of 25 runs, so the 2,000 runs make 80 requests and
the faults hit several. It must still come out as one run per item with the ids in item order: counted through
Hatchet's list API and, on the real server, in its Postgres database.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tests.airflow_helpers import task_state, xcom_value
from tests.real.conftest import Backend
from tests.real.grpc_faults import AFTER, ANSWERED, BEFORE, DROPPED, GrpcFaultProxy
from tests.real.test_bulk_faults import BATCH_KEY, INDEX_KEY, ITEMS, list_batch, postgres_rows

CHUNK = 25
BEFORE_RATE, AFTER_RATE, DROP_RATE = 0.035, 0.035, 0.03
# A seed whose first 80 draws hold each kind of fault: 2 before, 5 after, 2 dropped (11%).
SEED = 3


def test_2000_runs_exactly_once_in_order_over_grpc_through_lost_answers(
    backend: Backend, grpc_address: str, airflow_conn: Callable[..., str], dag_runner: Callable[..., Any],
    logs: Callable[[], str], record_property: Callable[[str, object], None],
) -> None:
    from airflow.sdk import DAG

    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowsOperator

    with GrpcFaultProxy(grpc_address, before=BEFORE_RATE, after=AFTER_RATE, drop=DROP_RATE, seed=SEED) as proxy:
        backend.connect(airflow_conn, grpc_address=proxy.address, grpc_tls="false")
        with DAG(f"grpc_faults_{backend.tag}", schedule=None, start_date=datetime(2025, 1, 1), catchup=False) as dag:
            HatchetRunWorkflowsOperator(
                task_id="bulk", transport="grpc", grpc_chunk_size=CHUNK, wait_for_completion=False,
                workflow_runs=[
                    {"workflow_name": "demo-etl", "input": {"i": i},
                     "options": {"additional_metadata": {"test_tag": backend.tag}}}
                    for i in range(ITEMS)
                ],
            )
        started = time.monotonic()
        dag_run = dag_runner(dag)
        elapsed = time.monotonic() - started
        counts = dict(proxy.counts)

    assert task_state(dag_run, "bulk") == "success", logs()[-3000:]
    ids = xcom_value(dag_run, "bulk")
    batch_key = xcom_value(dag_run, "bulk", "hatchet_batch_key")
    assert len(ids) == ITEMS and len(set(ids)) == ITEMS

    rows = list_batch(backend.client(), batch_key, ITEMS)
    index_of = {row.id: int(row.additional_metadata[INDEX_KEY]) for row in rows}
    assert len(rows) == ITEMS, f"{len(rows)} runs in the batch for {ITEMS} items"
    assert [index_of[run_id] for run_id in ids] == list(range(ITEMS))
    if backend.is_real:
        assert backend.database_url, "the real server's HATCHET_DATABASE_URL is needed for the Postgres check"
        for table, found in postgres_rows(backend.database_url, batch_key).items():
            assert len(found) == ITEMS, f"{table}: {len(found)} rows for {ITEMS} items"
            assert sorted((run_id, int(index)) for run_id, index, _ in found) == sorted(
                (run_id, i) for i, run_id in enumerate(ids)), table
    else:
        runs = [run for run in backend.sim.runs if run.additional_metadata.get(BATCH_KEY) == batch_key]
        assert sorted((run.id, int(run.additional_metadata[INDEX_KEY]), run.input["i"]) for run in runs) == sorted(
            (run_id, i, i) for i, run_id in enumerate(ids))

    # Each kind of fault happened. A request lost after the server answered was recovered from the list, never
    # sent again: the recovered runs are exactly its runs; one lost before was sent again.
    lost_after = counts.get(AFTER, 0) + counts.get(DROPPED, 0)
    assert counts.get(BEFORE, 0) > 0 and counts.get(AFTER, 0) > 0 and counts.get(DROPPED, 0) > 0, counts
    assert counts.get(ANSWERED, 0) + lost_after == ITEMS // CHUNK
    summary = re.search(r"(\d+) runs: (\d+) created, (\d+) recovered after ambiguous failures, 0 reused, 0 failed",
                        logs())
    assert summary is not None
    assert (int(summary[1]), int(summary[3])) == (ITEMS, lost_after * CHUNK)
    figures = {"backend": backend.kind, "seconds": round(elapsed, 1), **counts,
               "fault_rate": round(1 - counts.get(ANSWERED, 0) / sum(counts.values()), 3)}
    for key, value in figures.items():
        record_property(key, value)
    print("\ngRPC bulk under faults: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
