"""Cancel and replay by filter, and the list filters, on both servers: the hook and the lifecycle operators on
real Airflow (``dag.test()``)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_hatchet.client import RunStatus, TriggerRequest, endpoints
from airflow_provider_hatchet.client.errors import HatchetValidationError
from airflow_provider_hatchet.client.server_version import IDEMPOTENCY_KEYS_FILTER
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from tests.airflow_helpers import task_state, xcom_value
from tests.real.conftest import EVENT_KEY, Backend
from tests.real.test_client_and_hook import wait_terminal
from tests.real.test_operator_real import make_dag

FAIL_ONCE = {"__sim__": {"behaviour": "fail_first_attempt"}}


def since() -> datetime:
    return datetime.now(timezone.utc) - timedelta(minutes=30)


def until_listed(hook: HatchetHook, filter: dict[str, Any], count: int, timeout: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        rows = hook.list_runs(filter)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def test_the_cancel_operator_cancels_only_the_runs_matching_every_pair(
    backend: Backend, airflow_conn: Any, dag_runner: Any
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetCancelRunsOperator

    backend.connect(airflow_conn)
    client = backend.client()
    mine = [
        client.send(endpoints.trigger(TriggerRequest("demo-hang", {}, {"test_tag": backend.tag, "group": "a"})))
        for _ in range(2)
    ]
    other = client.send(endpoints.trigger(TriggerRequest("demo-hang", {}, {"test_tag": backend.tag, "group": "b"})))
    hook = HatchetHook()
    until_listed(hook, {"since": since(), "additional_metadata": {"test_tag": backend.tag}}, 3)
    with make_dag("cancel_by_filter") as dag:
        HatchetCancelRunsOperator(
            task_id="t", statuses=["QUEUED", "RUNNING"], additional_metadata={"test_tag": backend.tag, "group": "a"}
        )
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    assert sorted(xcom_value(dag_run, "t")) == sorted(mine)
    assert [wait_terminal(client, run_id) for run_id in mine] == [RunStatus.CANCELLED] * 2
    assert client.send(endpoints.run_status(other)) in (RunStatus.QUEUED, RunStatus.RUNNING)
    assert hook.cancel_runs([other]) == [other]
    assert wait_terminal(client, other) is RunStatus.CANCELLED


def test_the_replay_operator_replays_the_failed_runs_in_place(
    backend: Backend, airflow_conn: Any, dag_runner: Any
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetReplayRunsOperator

    backend.connect(airflow_conn)
    client = backend.client()
    failing = [
        client.send(endpoints.trigger(TriggerRequest("demo-etl", FAIL_ONCE, {"test_tag": backend.tag})))
        for _ in range(2)
    ]
    passing = client.send(endpoints.trigger(TriggerRequest("demo-etl", {}, {"test_tag": backend.tag})))
    assert [wait_terminal(client, r) for r in (*failing, passing)] == [RunStatus.FAILED] * 2 + [RunStatus.COMPLETED]
    hook = HatchetHook()
    until_listed(hook, {"since": since(), "statuses": ["FAILED"], "additional_metadata": {"test_tag": backend.tag}}, 2)
    with make_dag("replay_by_filter") as dag:
        HatchetReplayRunsOperator(
            task_id="t", statuses="FAILED", workflow_names=["demo-etl"], additional_metadata={"test_tag": backend.tag}
        )
    dag_run = dag_runner(dag)

    assert task_state(dag_run, "t") == "success"
    assert sorted(xcom_value(dag_run, "t")) == sorted(failing)
    deadline = time.monotonic() + 60
    while any(client.send(endpoints.run_details(r)).retry_count() < 1 for r in failing) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [wait_terminal(client, r) for r in failing] == [RunStatus.COMPLETED] * 2
    assert [client.send(endpoints.run_details(r)).retry_count() for r in (*failing, passing)] == [1, 1, 0]
    time.sleep(1.0)
    assert len(hook.list_runs({"since": since(), "additional_metadata": {"test_tag": backend.tag}})) == 3


def test_runs_are_listed_by_idempotency_key(backend: Backend, airflow_conn: Any) -> None:
    backend.connect(airflow_conn)
    client = backend.client()
    held = client.send(
        endpoints.trigger(TriggerRequest("demo-idempotent", {"key": backend.tag}, {"test_tag": backend.tag}))
    )
    client.send(
        endpoints.trigger(TriggerRequest("demo-idempotent", {"key": f"{backend.tag}-other"}, {"test_tag": backend.tag}))
    )
    hook = HatchetHook()
    if IDEMPOTENCY_KEYS_FILTER.missing_on(hook.server_version):
        # The server ignores the filter: its list answers the other run too, so the hook refuses to send it.
        mine = {"since": since(), "additional_metadata": {"test_tag": backend.tag}}
        listed = until_listed(hook, mine, 2)
        raw = client.send(endpoints.list_runs(since=mine["since"], additional_metadata=mine["additional_metadata"],
                                              idempotency_keys=[backend.tag]))
        assert {row.id for row in raw.rows} == {row.id for row in listed}
        for act in (hook.list_runs, hook.cancel_runs):
            with pytest.raises(HatchetValidationError, match="ignores the run list's idempotency_keys filter"):
                act(filter={"since": since(), "idempotency_keys": [backend.tag]})  # type: ignore[operator]
        return
    rows = until_listed(hook, {"since": since(), "idempotency_keys": [backend.tag]}, 1)
    assert [row.id for row in rows] == [held]


def test_runs_are_listed_by_the_event_that_triggered_them(
    backend: Backend, airflow_conn: Any, grpc_address: str
) -> None:
    backend.connect(airflow_conn, grpc_address=grpc_address, grpc_tls="false")
    hook = HatchetHook()

    async def push() -> list[str]:
        try:
            return await hook.apush_events(
                [
                    {
                        "key": EVENT_KEY,
                        "payload": {"i": i},
                        "additional_metadata": {"test_tag": backend.tag},
                        "priority": None,
                        "scope": None,
                    }
                    for i in range(2)
                ],
                {},
            )
        finally:
            await HatchetHook.aclose_loop_clients()

    first, second = asyncio.run(push())
    rows = until_listed(hook, {"since": since(), "triggering_event_external_id": first}, 1)
    assert len(rows) == 1
    assert rows[0].additional_metadata["hatchet__event_id"] == first != second


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({}, "run_ids"),
        ({"run_ids": ["00000000-0000-4000-8000-000000000001"], "statuses": ["FAILED"]}, "filter"),
        ({"since": "2026-01-01T00:00:00Z", "statuses": []}, "statuses"),
        ({"since": "2026-01-01T00:00:00Z", "statuses": ["BROKEN"]}, "statuses"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ({"since": "yesterday"}, "since"),
        ({"statuses": ["FAILED"]}, "since"),
        ({"run_ids": ["not-a-uuid"]}, "run_ids"),
    ],
)
def test_bad_selections_are_refused_naming_the_field_before_anything_is_sent(
    backend: Backend, airflow_conn: Any, arguments: dict[str, Any], field: str
) -> None:
    backend.connect(airflow_conn)
    hook = HatchetHook()
    run_ids = arguments.pop("run_ids", None)
    with pytest.raises(HatchetValidationError) as raised:
        if run_ids is None and not arguments:
            hook.cancel_runs()
        else:
            hook.replay_runs(run_ids, filter=arguments or None)
    assert raised.value.field == field
    if backend.sim is not None:
        assert not [r for r in backend.sim.requests if r.path.endswith(("/cancel", "/replay", "/workflow-runs"))]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({}, "run_ids"),
        ({"run_ids": ["00000000-0000-4000-8000-000000000001"], "statuses": ["FAILED"]}, "run_ids"),
        ({"statuses": []}, "statuses"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
    ],
)
def test_the_operators_refuse_a_bad_selection_when_the_dag_is_parsed(arguments: dict[str, Any], field: str) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetCancelRunsOperator, HatchetReplayRunsOperator

    for operator in (HatchetCancelRunsOperator, HatchetReplayRunsOperator):
        with pytest.raises(HatchetValidationError) as raised:
            operator(task_id="t", **arguments)
        assert raised.value.field == field


UNKNOWN = "00000000-0000-4000-8000-00000000000a"


def wait_replayed(client: Any, run_id: str, timeout: float = 60) -> RunStatus:
    """Wait until a replayed run is terminal: past the replay's read lag (a retry count rose) and, for a DAG run,
    past the FAILED it reads between its tasks (docs/hatchet-behaviour.md)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        details = client.send(endpoints.run_details(run_id))
        if details.retry_count() >= 1 and details.status.is_terminal and not details.replay_in_progress():
            return details.status
        time.sleep(0.1)
    raise AssertionError(f"replayed run {run_id} did not finish in {timeout}s")


def test_cancel_and_replay_by_ids_leave_out_the_runs_the_tenant_lacks(
    backend: Backend, airflow_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hatchet's cancel echoes every id and its replay answers task ids: the hook reads back what it named and
    returns only the runs acted on, for an unknown id and for another tenant's run (named by the other tenant)."""
    from airflow_provider_hatchet.client import run_actions

    monkeypatch.setattr(run_actions, "UNSEEN_GRACE", 1.0)  # the runs here are long readable
    backend.connect(airflow_conn)
    airflow_conn("hatchet_foreign", conn_type="hatchet", host=backend.server_url, password=backend.foreign_token)
    client = backend.client()
    hang = client.send(endpoints.trigger(TriggerRequest("demo-hang", {}, {"test_tag": backend.tag})))
    failed = client.send(endpoints.trigger(TriggerRequest("demo-etl", FAIL_ONCE, {"test_tag": backend.tag})))
    dag = client.send(endpoints.trigger(TriggerRequest("demo-multi", FAIL_ONCE, {"test_tag": backend.tag})))
    assert [wait_terminal(client, r) for r in (failed, dag)] == [RunStatus.FAILED] * 2
    hook, foreign = HatchetHook(), HatchetHook("hatchet_foreign")
    try:
        assert foreign.cancel_runs([hang]) == []
        assert foreign.replay_runs([failed]) == []
        assert hook.replay_runs([failed, UNKNOWN, dag]) == [failed, dag]
        assert [wait_replayed(client, r) for r in (failed, dag)] == [RunStatus.COMPLETED] * 2
        assert client.send(endpoints.run_status(hang)) is RunStatus.RUNNING  # the other tenant's cancel did nothing
        assert hook.cancel_runs([hang, UNKNOWN]) == [hang]
        assert wait_terminal(client, hang) is RunStatus.CANCELLED
    finally:
        client.send(endpoints.cancel([hang]))  # never leave a hanging run holding a worker slot


def test_a_replay_by_filter_leaves_completed_runs_alone_and_max_runs_caps_it(
    backend: Backend, airflow_conn: Any
) -> None:
    backend.connect(airflow_conn)
    client = backend.client()
    failed = client.send(endpoints.trigger(TriggerRequest("demo-etl", FAIL_ONCE, {"test_tag": backend.tag})))
    completed = client.send(endpoints.trigger(TriggerRequest("demo-etl", {}, {"test_tag": backend.tag})))
    assert [wait_terminal(client, r) for r in (failed, completed)] == [RunStatus.FAILED, RunStatus.COMPLETED]
    hook = HatchetHook()
    mine = {"since": since(), "additional_metadata": {"test_tag": backend.tag}}
    until_listed(hook, mine, 2)

    with pytest.raises(HatchetValidationError) as raised:
        hook.replay_runs(filter={**mine, "statuses": ["FAILED", "COMPLETED"]}, max_runs=1)
    assert "selects 2 runs, more than max_runs=1" in raised.value.problem
    assert hook.replay_runs(filter=mine, dry_run=True) == [failed]
    assert client.send(endpoints.run_details(failed)).retry_count() == 0
    assert hook.replay_runs(filter=mine) == [failed]

    assert wait_replayed(client, failed) is RunStatus.COMPLETED
    assert client.send(endpoints.run_details(failed)).retry_count() == 1
    assert client.send(endpoints.run_details(completed)).retry_count() == 0
