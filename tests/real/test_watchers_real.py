"""The AssetWatcher triggers and the schedule operator against the simulator and the real server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_3_PLUS
from airflow_provider_hatchet.client import endpoints, scheduling
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.triggers.hatchet import HatchetEventTrigger, HatchetWorkflowRunEventTrigger
from tests.airflow_helpers import task_state, xcom_value
from tests.real.conformance import PUSH_EVENT, WORKER_PYTHON
from tests.real.conftest import Backend
from tests.test_watchers import StateStore

START = datetime(2025, 1, 1)
WATCH = {"poll_interval": 0.3, "overlap": 5.0}


async def take(stream: Any, count: int, limit: float = 60.0) -> list[dict[str, Any]]:
    return [dict((await asyncio.wait_for(stream.__anext__(), limit)).payload) for _ in range(count)]


async def nothing_more(stream: Any, seconds: float = 3.0) -> list[dict[str, Any]]:
    """Any event the watcher yields in the next few polls (it should yield none), then stop it."""
    try:
        return [dict((await asyncio.wait_for(stream.__anext__(), seconds)).payload)]
    except asyncio.TimeoutError:
        return []
    finally:
        await stream.aclose()


def push_event(backend: Backend, key: str, payload: dict[str, Any], metadata: dict[str, str]) -> str:
    """Push an event: into the simulator, or to the real server over gRPC with hatchet-sdk."""
    if not backend.is_real:
        return str(backend.sim.push_event(key, payload, metadata))
    done = subprocess.run([str(WORKER_PYTHON), str(PUSH_EVENT), key, json.dumps(payload), json.dumps(metadata)],
                          env={**os.environ, "HATCHET_CLIENT_TOKEN": backend.token}, capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="the watermark is stored from Airflow 3.3")
def test_twenty_runs_give_twenty_events_across_a_restart(backend: Backend, airflow_conn: Any) -> None:
    backend.connect(airflow_conn)
    store = StateStore()
    hook = HatchetHook()

    def watcher() -> HatchetWorkflowRunEventTrigger:
        trigger = HatchetWorkflowRunEventTrigger("demo-etl", additional_metadata={"test_tag": backend.tag}, **WATCH)
        trigger.asset_state_store = store
        return trigger

    async def scenario() -> tuple[list[str], list[dict[str, Any]]]:
        triggered = [hook.run_workflow("demo-etl", {"i": i}, {"test_tag": backend.tag}) for i in range(10)]
        first = watcher().run()
        events = await take(first, 10)
        # As the triggerer does, ask for the next event, then stop (a restart).
        events += await nothing_more(first, 1.0)
        triggered += [hook.run_workflow("demo-etl", {"i": i}, {"test_tag": backend.tag}) for i in range(10, 20)]
        second = watcher().run()
        events += await take(second, 10)
        events += await nothing_more(second)
        await HatchetHook.aclose_loop_clients()
        return triggered, events

    triggered, events = asyncio.run(scenario())
    ids = [e["run_id"] for e in events]
    assert len(ids) == 20 and sorted(ids) == sorted(triggered)
    assert {e["status"] for e in events} == {"COMPLETED"}


def test_a_pushed_event_fires_the_event_watcher(backend: Backend, airflow_conn: Any) -> None:
    backend.connect(airflow_conn)
    key = f"airflow-test:{backend.tag}"

    async def scenario() -> tuple[list[str], list[dict[str, Any]]]:
        stream = HatchetEventTrigger([key], **WATCH).run()
        first = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(1.0)  # let the watcher start before the events are pushed
        pushed = [push_event(backend, key, {"n": n}, {"test_tag": backend.tag}) for n in range(2)]
        events = [dict((await asyncio.wait_for(first, 60)).payload)]
        events += await take(stream, 1)
        events += await nothing_more(stream)
        await HatchetHook.aclose_loop_clients()
        return pushed, events

    pushed, events = asyncio.run(scenario())
    assert sorted(e["event_id"] for e in events) == sorted(pushed)
    assert sorted(e["payload"]["n"] for e in events) == [0, 1]
    assert {e["key"] for e in events} == {key}


def make_dag(dag_id: str) -> Any:
    from airflow.sdk import DAG

    return DAG(dag_id, schedule=None, start_date=START, catchup=False)


@pytest.mark.parametrize("deferrable", [False, True])
def test_a_scheduled_run_fires_at_its_time_and_the_operator_waits_for_it(
    backend: Backend, airflow_conn: Any, dag_runner: Any, deferrable: bool
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetScheduleWorkflowOperator

    backend.connect(airflow_conn)
    at = datetime.now(timezone.utc) + timedelta(seconds=3)
    with make_dag(f"real_schedule_{deferrable}") as dag:
        HatchetScheduleWorkflowOperator(task_id="t", workflow_name="demo-etl", trigger_at=at.isoformat(),
                                        input={"n": 7}, additional_metadata={"test_tag": backend.tag},
                                        wait_for_completion=True, deferrable=deferrable, poll_interval=0.3)
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    assert xcom_value(dag_run, "t", "output")["run"]["echo"]["n"] == 7
    run = HatchetHook().send(endpoints.run_details(xcom_value(dag_run, "t", "hatchet_run_id")))
    assert run.run.created_at is not None and run.run.created_at >= at - timedelta(seconds=1)
    assert HatchetHook().send(scheduling.list_scheduled(additional_metadata={"test_tag": backend.tag})).rows == []


def test_killing_the_task_before_the_schedule_fires_deletes_it(
    backend: Backend, airflow_conn: Any, dag_runner: Any
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetScheduleWorkflowOperator

    backend.connect(airflow_conn)
    hook = HatchetHook()
    with make_dag("real_schedule_kill") as dag:
        HatchetScheduleWorkflowOperator(
            task_id="t", workflow_name="demo-etl", trigger_at=datetime.now(timezone.utc) + timedelta(hours=1),
            additional_metadata={"test_tag": backend.tag}, wait_for_completion=True,
            execution_timeout=timedelta(seconds=3))
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "failed"
    assert hook.send(scheduling.list_scheduled(additional_metadata={"test_tag": backend.tag})).rows == []


def test_every_answer_carries_a_date_on_the_servers_clock(backend: Backend, airflow_conn: Any) -> None:
    """The watchers read Hatchet's time from the Date header: the server sends one, in whole seconds, on success
    and on an error alike (here both run on this machine's clock)."""
    backend.connect(airflow_conn)
    client = HatchetHook().client
    client.send(endpoints.list_workflows(limit=1))
    offset = client.server_clock.offset
    assert offset is not None and abs(offset.total_seconds()) < 2
    refused = httpx.get(f"{client.config.server_url}/api/v1/stable/workflow-runs/{uuid.uuid4()}",
                        headers={"Authorization": "Bearer not-a-token"}, timeout=30)
    assert refused.status_code >= 400
    assert parsedate_to_datetime(refused.headers["date"]).tzinfo is not None
