"""What a retry finds of an earlier try: events and schedules by their Airflow identity, right after creation.

The push-event and schedule operators re-attach on a retry to what an earlier try created, found by the
``airflow_ti`` it carries (whose value holds the ``:`` and ``|`` of a real task instance key). These check, on the
simulator and the real server, that the lookup finds them at once or, at worst, on the second look a
``RUN_VISIBILITY_WINDOW`` later (as the operators look), and that a push retry through real Airflow pushes nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from airflow_provider_hatchet._identity import EVENT_INDEX_KEY, TI_KEY, TRY_KEY
from airflow_provider_hatchet.client import TriggerRequest, endpoints
from airflow_provider_hatchet.client.endpoints import RUN_VISIBILITY_WINDOW
from airflow_provider_hatchet.client.events import check_events
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from tests.airflow_helpers import task_state, xcom_value
from tests.real.conftest import EVENT_KEY, Backend
from tests.real.test_operator_real import make_dag

T = TypeVar("T")


def twice(look: Callable[[], T], settled: Callable[[T], bool]) -> tuple[T, int]:
    """Look as the operators do: once, then once more a visibility window later; return the answer and looks."""
    answer = look()
    if settled(answer):
        return answer, 1
    time.sleep(RUN_VISIBILITY_WINDOW)
    return look(), 2


def ti_of(backend: Backend) -> str:
    return f"real_earlier_{backend.tag}|manual__2026-01-01T00:00:00+00:00|t|-1"


def test_pushed_events_are_found_by_their_airflow_identity_right_after_the_push(
    backend: Backend, grpc_address: str, airflow_conn: Any
) -> None:
    backend.connect(airflow_conn, grpc_address=grpc_address, grpc_tls="false")
    hook = HatchetHook()
    mine = {TI_KEY: ti_of(backend)}
    events = check_events([{"key": f"nobody-{backend.tag}", "payload": {"i": i},
                            "additional_metadata": {EVENT_INDEX_KEY: str(i)}} for i in range(3)])
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    ids = asyncio.run(hook.apush_events(events, {**mine, TRY_KEY: "1", "test_tag": backend.tag}))

    found, _ = twice(lambda: hook.find_events(mine, since=since), lambda rows: len(rows) == 3)

    assert sorted(e.id for e in found) == sorted(ids)
    by_id = {e.id: e for e in found}
    assert [by_id[i].additional_metadata[EVENT_INDEX_KEY] for i in ids] == ["0", "1", "2"]
    assert {e.additional_metadata[TRY_KEY] for e in found} == {"1"}
    assert {e.additional_metadata[TI_KEY] for e in found} == {mine[TI_KEY]}
    # createdAt is Hatchet's time of the push: what the wait's run list starts from.
    assert all(abs(e.created_at - datetime.now(timezone.utc)) < timedelta(minutes=10) for e in found)
    # A different task instance's key, sharing every character but the last, finds none of them.
    assert hook.find_events({TI_KEY: mine[TI_KEY][:-1] + "2"}, since=since) == []


def test_a_schedule_is_found_by_its_airflow_identity_right_after_it_is_created(
    backend: Backend, airflow_conn: Any
) -> None:
    backend.connect(airflow_conn)
    hook = HatchetHook()
    # As the operator looks: the key (its run id holds ":", which the schedule list refuses, so it is checked by
    # the hook) and the dag and task ids, which the list filters on.
    mine = {TI_KEY: ti_of(backend), "airflow_dag_id": f"real_earlier_{backend.tag}", "airflow_task_id": "t"}
    request = TriggerRequest.checked("demo-etl", {}, {**mine, TRY_KEY: "1", "test_tag": backend.tag}, None)
    scheduled = hook.schedule(request, datetime.now(timezone.utc) + timedelta(hours=1))
    try:
        found, _ = twice(lambda: hook.find_scheduled_runs(mine), lambda rows: len(rows) == 1)
        assert [s.id for s in found] == [scheduled.id]
        assert found[0].additional_metadata[TRY_KEY] == "1"
        assert scheduled.created_at is not None and found[0].trigger_at > scheduled.created_at
    finally:
        hook.delete_scheduled_run(scheduled.id)


def test_a_push_retry_through_airflow_pushes_nothing_and_waits_on_the_first_run(
    backend: Backend, grpc_address: str, airflow_conn: Any, dag_runner: Any
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetPushEventOperator

    def fail_first_try(context: Any, result: Any = None) -> None:
        if context["ti"].try_number == 1:
            raise RuntimeError("the worker died after the push")

    backend.connect(airflow_conn, grpc_address=grpc_address, grpc_tls="false")
    with make_dag(f"real_push_retry_{backend.tag}") as dag:
        HatchetPushEventOperator(task_id="t", key=EVENT_KEY, payload={"tag": backend.tag},
                                 additional_metadata={"test_tag": backend.tag}, wait_for_completion=True,
                                 poll_interval=0.2, settle_seconds=3, retries=1, retry_delay=timedelta(0),
                                 post_execute=fail_first_try)
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    [event_id] = xcom_value(dag_run, "t")
    hook = HatchetHook()
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    pushed = hook.find_events({"test_tag": backend.tag}, since=since)
    assert [e.id for e in pushed] == [event_id]
    runs = [r for r in hook.iter_rows(endpoints.runs(since=since, additional_metadata={"test_tag": backend.tag}))
            if r.has_metadata({"test_tag": backend.tag})]
    assert [r.id for r in runs] == xcom_value(dag_run, "t", "run_ids")
    assert [o["run"]["echo"] for o in xcom_value(dag_run, "t", "output")] == [{"tag": backend.tag}]
