"""Reading a task's log lines: the client and the hook against the simulator over real HTTP, and the checks run
before anything is sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_hatchet.client import (
    AsyncHatchetClient,
    ClientConfig,
    HatchetClient,
    RetryPolicy,
    TriggerRequest,
    endpoints,
)
from airflow_provider_hatchet.client.errors import HatchetNotFoundError, HatchetValidationError
from airflow_provider_hatchet.client.models import RunDetails
from tests import openapi_spec

pytestmark = pytest.mark.af2

FAST = RetryPolicy(attempts=2, initial=0.01, maximum=0.02, jitter=0.01)


@pytest.fixture
def sim(hatchet_server: Any) -> Iterator[Any]:
    from airflow_provider_hatchet.testing import register_demo_workflows

    simulator = hatchet_server.simulator
    simulator.reset(keep_workflows=False)
    register_demo_workflows(simulator)
    yield simulator
    for request in simulator.requests:
        if request.route == "logs":
            openapi_spec.validate_request(request.method, request.path, request.json, request.raw_query)


@pytest.fixture
def client(sim: Any) -> Iterator[HatchetClient]:
    with HatchetClient(ClientConfig.from_token(sim.token), retry=FAST) as made:
        yield made


def finished(client: HatchetClient, workflow: str, run_input: dict[str, Any]) -> RunDetails:
    run_id = client.send(endpoints.trigger(TriggerRequest(workflow, run_input)))
    for _ in range(200):
        try:
            details = client.send(endpoints.run_details(run_id))
        except HatchetNotFoundError:
            details = None
        if details is not None and details.status.is_terminal:
            return details
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def test_a_failed_tasks_lines_come_oldest_first_with_their_attempt(client: HatchetClient) -> None:
    details = finished(client, "demo-fail", {"__sim__": {"log_lines": 2}})
    [task] = details.tasks
    assert task.attempt == 1

    lines = client.send(endpoints.task_logs(str(task.task_external_id)))

    assert [line.message for line in lines] == [
        "demo-fail:run started", 'input: {"__sim__": {"log_lines": 2}}', "line 1 of 2", "line 2 of 2",
        "demo-fail:run failing: simulated failure in demo-fail:run",
    ]
    assert {(line.level, line.attempt) for line in lines} == {("INFO", 1)}
    assert [line.created_at for line in lines] == sorted(line.created_at for line in lines)


def test_limit_order_attempt_and_since_filter_the_lines(client: HatchetClient) -> None:
    [task] = finished(client, "demo-fail", {"__sim__": {"log_lines": 3}}).tasks
    task_id = str(task.task_external_id)

    newest = client.send(endpoints.task_logs(task_id, limit=2, newest_first=True))
    assert [line.message for line in newest] == ["demo-fail:run failing: simulated failure in demo-fail:run",
                                                 "line 3 of 3"]
    assert client.send(endpoints.task_logs(task_id, attempt=2)) == []
    after = client.send(endpoints.task_logs(task_id, since=newest[1].created_at))
    assert [line.message for line in after] == [newest[0].message]


def test_each_task_of_a_dag_has_its_own_lines(client: HatchetClient) -> None:
    details = finished(client, "demo-multi", {})
    logged = {task.name: [line.message for line in client.send(endpoints.task_logs(str(task.task_external_id)))]
              for task in details.tasks_in_order()}
    assert logged == {name: [f"demo-multi:{name} started", "input: {}", f"demo-multi:{name} done"]
                      for name in ("extract", "transform", "load")}


def test_the_async_client_reads_the_same_lines(sim: Any, client: HatchetClient) -> None:
    [task] = finished(client, "demo-fail", {}).tasks

    async def read() -> list[str]:
        async with AsyncHatchetClient(ClientConfig.from_token(sim.token), retry=FAST) as aclient:
            return [line.message for line in await aclient.send(endpoints.task_logs(str(task.task_external_id)))]

    assert asyncio.run(read()) == [
        line.message for line in client.send(endpoints.task_logs(str(task.task_external_id)))
    ]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"task_id": "not-a-task"}, "task_id"),
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"limit": True}, "limit"),
    ],
)
def test_bad_arguments_fail_before_anything_is_sent(
    sim: Any, client: HatchetClient, arguments: dict[str, Any], field: str
) -> None:
    task_id = arguments.pop("task_id", "00000000-0000-0000-0000-000000000001")
    with pytest.raises(HatchetValidationError, match=field) as caught:
        client.send(endpoints.task_logs(task_id, **arguments))
    assert caught.value.field == field
    assert [r for r in sim.requests if r.route == "logs"] == []


def test_the_hook_reads_a_tasks_lines(sim: Any, client: HatchetClient, airflow_conn: Any, hatchet_server: Any) -> None:
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook

    airflow_conn("hatchet_logs", conn_type="hatchet", host=hatchet_server.url, password=sim.token)
    [task] = finished(client, "demo-fail", {}).tasks
    hook = HatchetHook("hatchet_logs")

    lines = hook.send(endpoints.task_logs(str(task.task_external_id), limit=1))

    assert [line.message for line in lines] == ["demo-fail:run started"]
