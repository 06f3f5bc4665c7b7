"""Cancel and replay act only on what they name: the guard on filters (no tenant-wide selection unless asked),
``max_runs``, ``dry_run``, replay's default statuses, and ids the tenant does not have; through the hook and the
operators on Airflow 3.3 and 2.10 (``dag.test()``), against the simulator over loopback HTTP on a manual clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_hatchet.client import ClientConfig, HatchetClient, TriggerRequest, endpoints, run_actions
from airflow_provider_hatchet.client.errors import HatchetValidationError
from airflow_provider_hatchet.client.run_filter import RunFilter
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.testing import HatchetSimulator, ManualClock, SimulatorServer, register_demo_workflows
from tests.airflow_helpers import task_state, xcom_value
from tests.test_rerun import make_dag

pytestmark = pytest.mark.af2

FAIL_ONCE = {"__sim__": {"behaviour": "fail_first_attempt"}}
UNKNOWN = "00000000-0000-4000-8000-00000000000a"
ACTING_PATHS = ("/tasks/cancel", "/tasks/replay")


class Sim(SimpleNamespace):
    """The simulator on a manual clock, its URL, and a hook on ``hatchet_default``."""

    sim: HatchetSimulator
    clock: ManualClock
    url: str
    hook: HatchetHook

    def run(self, workflow: str, run_input: dict[str, Any] | None = None, **metadata: str) -> str:
        return self.hook.run_workflow(workflow, run_input or {}, metadata)

    def settle(self, seconds: float = 5.0) -> None:
        self.clock.advance(seconds)

    def status(self, run_id: str) -> str:
        return self.sim.run_status(run_id)

    def acted(self) -> list[str]:
        return [r.path for r in self.sim.requests if r.path.endswith(ACTING_PATHS)]

    def listed(self) -> list[str]:
        return [r.path for r in self.sim.requests if r.path.endswith("/workflow-runs")]


@pytest.fixture
def hs(airflow_db: None, airflow_conn: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Sim]:
    clock = ManualClock()
    sim = HatchetSimulator(visibility_delay=0.0, clock=clock)
    register_demo_workflows(sim)
    # The hook's wait before reading a 404 again moves the simulator's clock instead.
    monkeypatch.setattr(run_actions, "time", SimpleNamespace(sleep=clock.advance, monotonic=clock))
    with SimulatorServer(sim) as server:
        airflow_conn("hatchet_default", conn_type="hatchet", host=server.url, password=sim.token)
        hook = HatchetHook()
        yield Sim(sim=sim, clock=clock, url=server.url, hook=hook)
        hook.close()


def since() -> datetime:
    return datetime.now(timezone.utc) - timedelta(hours=1)


# The filters that used to select the whole tenant: empty containers, statuses or times alone, blank values.
WIDE = {
    "empty-metadata": {"additional_metadata": {}, "statuses": ["RUNNING", "QUEUED"]},
    "empty-workflows": {"workflow_names": [], "statuses": ["RUNNING"]},
    "statuses-only": {"statuses": ["RUNNING", "QUEUED"]},
    "since-only": {},
    "until-only": {"until": datetime.now(timezone.utc) + timedelta(minutes=1)},
}


@pytest.mark.parametrize("action", ["cancel_runs", "replay_runs"])
@pytest.mark.parametrize("fields", list(WIDE.values()), ids=list(WIDE))
def test_the_hook_refuses_a_filter_that_selects_the_whole_tenant_before_anything_is_sent(
    hs: Sim, action: str, fields: dict[str, Any]
) -> None:
    hanging = hs.run("demo-hang")
    failed = hs.run("demo-etl", FAIL_ONCE)
    hs.settle()
    hs.sim.clear_requests()

    with pytest.raises(HatchetValidationError) as raised:
        getattr(hs.hook, action)(filter={"since": since(), **fields})
    hs.settle()

    assert raised.value.field == "filter"
    assert "allow_tenant_wide=True" in raised.value.problem
    assert (hs.acted(), hs.listed()) == ([], [])
    assert (hs.status(hanging), hs.status(failed)) == ("RUNNING", "FAILED")


@pytest.mark.parametrize("metadata", [{"airflow_run_id": ""}, {"airflow_dag_id": "d", "airflow_run_id": "  "}])
def test_a_metadata_value_that_is_blank_does_not_narrow_a_selection(hs: Sim, metadata: dict[str, str]) -> None:
    hanging = hs.run("demo-hang", airflow_dag_id="d", airflow_run_id="")
    hs.settle()
    hs.sim.clear_requests()

    for filter in ({"since": since(), "additional_metadata": metadata},
                   RunFilter(since=since(), additional_metadata=metadata)):
        with pytest.raises(HatchetValidationError) as raised:
            hs.hook.cancel_runs(filter=filter)
        assert raised.value.field == "additional_metadata"
        assert "empty" in raised.value.problem
    hs.settle()

    assert (hs.acted(), hs.listed(), hs.status(hanging)) == ([], [], "RUNNING")


def test_allow_tenant_wide_lets_statuses_alone_select_every_run(hs: Sim) -> None:
    hanging = [hs.run("demo-hang", group="a"), hs.run("demo-hang", group="b")]
    hs.settle()

    cancelled = hs.hook.cancel_runs(filter={"since": since(), "statuses": ["RUNNING"]}, allow_tenant_wide=True)
    hs.settle()

    assert sorted(cancelled) == sorted(hanging)
    assert [hs.status(r) for r in hanging] == ["CANCELLED"] * 2


def test_more_runs_than_max_runs_are_refused_before_acting_naming_the_count(hs: Sim) -> None:
    hanging = [hs.run("demo-hang", group="a") for _ in range(3)]
    hs.settle()
    hs.sim.clear_requests()

    with pytest.raises(HatchetValidationError) as raised:
        hs.hook.cancel_runs(filter={"since": since(), "additional_metadata": {"group": "a"}}, max_runs=2)
    hs.settle()

    assert raised.value.field == "max_runs"
    assert "selects 3 runs, more than max_runs=2" in raised.value.problem
    assert hs.acted() == []
    assert [hs.status(r) for r in hanging] == ["RUNNING"] * 3
    assert sorted(hs.hook.cancel_runs(filter={"since": since(), "additional_metadata": {"group": "a"}},
                                      max_runs=3)) == sorted(hanging)


def test_the_default_max_runs_is_a_thousand(hs: Sim) -> None:
    client = hs.hook.client
    for _ in range(1001):
        client.send(endpoints.trigger(TriggerRequest("demo-hang", {}, {"group": "big"})))
    hs.settle()
    hs.sim.clear_requests()

    with pytest.raises(HatchetValidationError) as raised:
        hs.hook.cancel_runs(filter={"since": since(), "additional_metadata": {"group": "big"}})

    assert "selects 1,001 runs, more than max_runs=1,000" in raised.value.problem
    assert hs.acted() == []


@pytest.mark.parametrize("value", [0, -1, True, "10", None])
def test_a_max_runs_that_is_not_a_whole_number_above_zero_is_refused(hs: Sim, value: Any) -> None:
    with pytest.raises(HatchetValidationError) as raised:
        hs.hook.cancel_runs(filter={"since": since(), "workflow_names": ["demo-hang"]}, max_runs=value)
    assert raised.value.field == "max_runs"


def test_a_dry_run_acts_on_nothing_and_returns_what_it_would_act_on(hs: Sim) -> None:
    hanging = hs.run("demo-hang", group="a")
    failed = hs.run("demo-etl", FAIL_ONCE, group="a")
    hs.settle()
    hs.sim.clear_requests()

    would_cancel = hs.hook.cancel_runs(filter={"since": since(), "additional_metadata": {"group": "a"}},
                                       dry_run=True)
    would_replay = hs.hook.replay_runs([failed, UNKNOWN], dry_run=True)
    hs.settle()

    assert sorted(would_cancel) == sorted([hanging, failed])
    assert would_replay == [failed]
    assert hs.acted() == []
    assert (hs.status(hanging), hs.status(failed)) == ("RUNNING", "FAILED")


def test_a_replay_by_filter_selects_failed_and_cancelled_runs_unless_statuses_say_otherwise(hs: Sim) -> None:
    failed = hs.run("demo-etl", FAIL_ONCE, group="a")
    completed = hs.run("demo-etl", group="a")
    cancelled = hs.run("demo-hang", group="a")
    hs.settle()
    hs.hook.cancel_runs([cancelled])
    hs.settle()
    assert [hs.status(r) for r in (failed, completed, cancelled)] == ["FAILED", "COMPLETED", "CANCELLED"]

    replayed = hs.hook.replay_runs(filter={"since": since(), "additional_metadata": {"group": "a"}})
    hs.settle()

    assert sorted(replayed) == sorted([failed, cancelled])
    assert hs.hook.send(endpoints.run_details(completed)).retry_count() == 0
    assert hs.status(failed) == "COMPLETED"  # the replay ran it again
    assert sorted(hs.hook.replay_runs(filter={"since": since(), "additional_metadata": {"group": "a"},
                                              "statuses": ["COMPLETED"]})) == sorted([completed, failed])


def test_unknown_filter_fields_are_named_without_the_valid_ones(hs: Sim) -> None:
    with pytest.raises(HatchetValidationError) as raised:
        hs.hook.list_runs({"since": since(), "statuses": ["FAILED"], "bogus": 1, "worflow_names": ["x"]})

    named, _, hint = raised.value.problem.partition("(known:")
    assert named == "has unknown fields ['bogus', 'worflow_names'] "
    assert "statuses" not in named and "since" not in named
    assert "workflow_names" in hint


def test_a_filter_field_of_the_wrong_type_is_reported_as_itself(hs: Sim) -> None:
    with pytest.raises(HatchetValidationError) as raised:
        hs.hook.list_runs({"since": since(), "workflow_names": "demo-etl"})
    assert raised.value.field == "workflow_names"


def _foreign_run(hs: Sim, workflow: str, run_input: dict[str, Any] | None = None) -> str:
    tenant = hs.sim.add_tenant("foreign")
    hs.sim.register_workflow(workflow, "hang" if workflow == "demo-hang" else "succeed", tenant_id=tenant)
    with HatchetClient(ClientConfig.from_token(hs.sim.token_for(tenant), server_url=hs.url)) as foreign:
        return foreign.send(endpoints.trigger(TriggerRequest(workflow, run_input or {})))


def test_a_cancel_by_ids_returns_only_the_runs_the_tenant_has_and_warns_about_the_others(hs: Sim, logs: Any) -> None:
    hanging = hs.run("demo-hang")
    theirs = _foreign_run(hs, "demo-hang")
    hs.settle()

    cancelled = hs.hook.cancel_runs([hanging, UNKNOWN, theirs])
    hs.settle()

    assert cancelled == [hanging]
    assert (hs.status(hanging), hs.status(theirs)) == ("CANCELLED", "RUNNING")
    assert f"Hatchet has no run {UNKNOWN}, {theirs} in this tenant" in logs()


def test_a_replay_by_ids_returns_only_the_runs_hatchet_replayed(hs: Sim, logs: Any) -> None:
    failed = hs.run("demo-etl", FAIL_ONCE)
    dag = hs.run("demo-multi", FAIL_ONCE)
    theirs = _foreign_run(hs, "demo-etl", FAIL_ONCE)
    hs.settle(10)
    assert (hs.status(failed), hs.status(dag)) == ("FAILED", "FAILED")

    replayed = hs.hook.replay_runs([failed, UNKNOWN, dag, theirs])
    hs.settle(10)

    assert replayed == [failed, dag]  # a DAG run is answered with its tasks' ids, not its own
    assert [hs.hook.send(endpoints.run_details(r)).retry_count() for r in (failed, dag)] == [1, 1]
    assert f"Hatchet has no run {UNKNOWN}, {theirs} in this tenant" in logs()


def test_a_run_not_yet_readable_is_not_taken_for_an_unknown_one(hs: Sim) -> None:
    hs.sim.visibility_delay = 2.0  # within the hook's wait (run_actions.UNSEEN_GRACE)
    hanging = hs.run("demo-hang")

    assert hs.hook.cancel_runs([hanging]) == [hanging]
    hs.settle()
    assert hs.status(hanging) == "CANCELLED"


@pytest.mark.proves_scope("HatchetCancelRunsOperator", "HatchetReplayRunsOperator")
def test_the_operators_refuse_a_filter_that_selects_the_whole_tenant_when_the_dag_is_parsed() -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetCancelRunsOperator, HatchetReplayRunsOperator

    for operator in (HatchetCancelRunsOperator, HatchetReplayRunsOperator):
        for arguments in ({"additional_metadata": {}, "statuses": ["FAILED"]},
                          {"workflow_names": [], "since": "2026-01-01T00:00:00Z"},
                          {"statuses": ["RUNNING", "QUEUED"]}, {"statuses": "{{ params.statuses }}"},
                          {"since": "{{ ds }}", "additional_metadata": {}}):
            with pytest.raises(HatchetValidationError) as raised:
                operator(task_id="t", **arguments)
            assert raised.value.field == "filter", arguments
        with pytest.raises(HatchetValidationError) as raised:
            operator(task_id="t", additional_metadata={})
        assert raised.value.field == "run_ids"
        operator(task_id="t", statuses=["RUNNING"], allow_tenant_wide=True)
        operator(task_id="t", statuses="{{ params.statuses }}", additional_metadata={"k": "{{ params.k }}"})


def test_the_teardown_refusal_shows_how_to_scope_it_to_this_dag_run() -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetCancelRunsOperator

    with pytest.raises(HatchetValidationError) as raised:
        HatchetCancelRunsOperator(task_id="t", statuses=["RUNNING", "QUEUED"])

    assert ('additional_metadata={"airflow_dag_id": "{{ dag.dag_id }}", "airflow_run_id": "{{ run_id }}"}'
            in raised.value.problem)


@pytest.mark.parametrize("value", [1, "True", None])
def test_the_operators_refuse_flags_that_are_not_booleans(value: Any) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetCancelRunsOperator

    for flag in ("dry_run", "allow_tenant_wide"):
        with pytest.raises(HatchetValidationError) as raised:
            HatchetCancelRunsOperator(task_id="t", run_ids=[UNKNOWN], **{flag: value})
        assert raised.value.field == flag


@pytest.mark.proves_scope("HatchetCancelRunsOperator")
def test_a_metadata_template_that_renders_to_nothing_fails_the_task_before_anything_is_sent(
    hs: Sim, dag_runner: Any
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetCancelRunsOperator

    hanging = hs.run("demo-hang", airflow_dag_id="scope_blank", airflow_run_id="")
    hs.settle()
    hs.sim.clear_requests()
    with make_dag("scope_blank") as dag:
        HatchetCancelRunsOperator(task_id="t", statuses=["RUNNING", "QUEUED"], retries=2, additional_metadata={
            "airflow_dag_id": "{{ dag.dag_id }}", "airflow_run_id": "{{ params.get('missing', '') }}"})
    dag_run = dag_runner(dag)
    hs.settle()

    assert task_state(dag_run, "t") == "failed"
    assert (hs.acted(), hs.listed(), hs.status(hanging)) == ([], [], "RUNNING")


@pytest.mark.proves_scope("HatchetCancelRunsOperator")
def test_a_teardown_scoped_to_this_dag_run_cancels_only_its_runs(hs: Sim, dag_runner: Any) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetCancelRunsOperator, HatchetRunWorkflowOperator

    other = hs.run("demo-hang", airflow_dag_id="scope_teardown", airflow_run_id="an-earlier-run")
    with make_dag("scope_teardown") as dag:
        start = HatchetRunWorkflowOperator(task_id="start", workflow_name="demo-hang", wait_for_completion=False)
        start >> HatchetCancelRunsOperator(task_id="teardown", statuses=["RUNNING", "QUEUED"], additional_metadata={
            "airflow_dag_id": "{{ dag.dag_id }}", "airflow_run_id": "{{ run_id }}"})
    dag_run = dag_runner(dag)
    hs.settle()

    mine = xcom_value(dag_run, "start")
    assert xcom_value(dag_run, "teardown") == [mine]
    assert (hs.status(mine), hs.status(other)) == ("CANCELLED", "RUNNING")


def test_the_dry_run_operator_logs_and_returns_the_ids_and_acts_on_nothing(
    hs: Sim, dag_runner: Any, logs: Any
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetReplayRunsOperator

    failed = hs.run("demo-etl", FAIL_ONCE, group="dry")
    hs.settle()
    hs.sim.clear_requests()
    with make_dag("scope_dry_run") as dag:
        HatchetReplayRunsOperator(task_id="t", additional_metadata={"group": "dry"}, dry_run=True)
    dag_run = dag_runner(dag)

    logged = logs()
    assert xcom_value(dag_run, "t") == [failed]
    assert "Dry run: would have replayed 1 Hatchet run(s) by filter" in logged
    assert failed in logged
    assert hs.acted() == []
    assert hs.hook.send(endpoints.run_details(failed)).retry_count() == 0


def test_the_operator_fails_naming_the_ids_the_tenant_lacks_after_acting_on_the_others(
    hs: Sim, dag_runner: Any, logs: Any
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetCancelRunsOperator

    hanging = hs.run("demo-hang")
    hs.settle()
    with make_dag("scope_unknown_ids") as dag:
        HatchetCancelRunsOperator(task_id="t", run_ids=[hanging, UNKNOWN], retries=2)
    dag_run = dag_runner(dag)
    hs.settle()

    assert task_state(dag_run, "t") == "failed"
    assert hs.status(hanging) == "CANCELLED"
    assert f"Hatchet has no run {UNKNOWN} in this tenant" in logs()
    assert len([r for r in hs.sim.requests if r.path.endswith("/tasks/cancel")]) == 1  # not retried


def test_a_replay_whose_read_back_fails_is_not_failed_so_a_retry_does_not_replay_again(hs: Sim, logs: Any) -> None:
    from airflow_provider_hatchet.client.retry import RetryPolicy

    dag = hs.run("demo-multi", FAIL_ONCE)
    hs.settle(10)
    hook = HatchetHook(retry=RetryPolicy(attempts=1))
    hs.sim.fail_next("details", 1, 500)  # the answer names the DAG run's tasks, so its details are read back

    assert hook.replay_runs([dag]) == [dag]
    hs.settle(10)

    assert "The replay was sent, but reading the runs back failed" in logs()
    assert len([r for r in hs.sim.requests if r.path.endswith("/tasks/replay")]) == 1
    assert hs.hook.send(endpoints.run_details(dag)).retry_count() == 1
    hook.close()


@pytest.mark.parametrize("action", ["cancel_runs", "replay_runs"])
def test_a_run_filter_built_directly_with_no_statuses_is_refused_not_taken_as_every_status(
    hs: Sim, action: str
) -> None:
    completed = hs.run("demo-etl", group="direct")
    hanging = hs.run("demo-hang", group="direct")
    hs.settle()
    hs.sim.clear_requests()

    with pytest.raises(HatchetValidationError) as raised:
        getattr(hs.hook, action)(filter=RunFilter(since=since(), statuses=(), additional_metadata={"group": "direct"}))
    hs.settle()

    assert raised.value.field == "statuses"
    assert (hs.acted(), hs.listed()) == ([], [])
    assert (hs.status(completed), hs.status(hanging)) == ("COMPLETED", "RUNNING")
    assert hs.hook.send(endpoints.run_details(completed)).retry_count() == 0


def test_replaying_many_runs_waits_out_the_read_lag_once_not_once_per_run(hs: Sim) -> None:
    failed = [hs.run("demo-etl", FAIL_ONCE) for _ in range(3)]
    hs.settle(10)
    counts = {run_id: hs.hook.send(endpoints.run_details(run_id)).retry_count() for run_id in failed}
    hs.sim.replay_delay = 1000.0  # reads keep showing every run as before the replay
    started = hs.clock()

    late = hs.hook.replay_in_place(counts)

    assert late == failed
    # One bound for the batch: 10,000 runs that never show their replay must not wait 10,000 times as long.
    assert hs.clock() - started <= run_actions.REPLAY_SETTLE_TIMEOUT + run_actions.REPLAY_SETTLE_POLL
    assert len([r for r in hs.sim.requests if r.path.endswith("/tasks/replay")]) == 1


def test_a_run_list_answering_an_id_that_is_no_run_id_fails_the_task_and_forges_no_log_line(
    hs: Sim, dag_runner: Any, logs: Any
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetReplayRunsOperator

    forged = {"metadata": {"id": "x\nERROR - forged: every run replayed"}, "status": "FAILED",
              "additionalMetadata": {"group": "forge"}}
    hs.sim.fail_next("list", 1, status=200, body={"rows": [forged], "pagination": {}})
    with make_dag("scope_forged_ids") as dag:
        HatchetReplayRunsOperator(task_id="t", additional_metadata={"group": "forge"}, dry_run=True)
    dag_run = dag_runner(dag)

    logged = logs()
    assert task_state(dag_run, "t") == "failed"
    assert "\nERROR - forged" not in logged
    assert "is not a run id" in logged
    assert hs.acted() == []


@pytest.mark.proves_scope("HatchetCancelRunsOperator")
def test_a_metadata_template_that_renders_to_none_fails_the_task_before_anything_is_sent(
    hs: Sim, dag_runner: Any
) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetCancelRunsOperator

    # Another DAG run whose batch template rendered None the same way: "None" would select its runs too.
    elsewhere = hs.run("demo-hang", airflow_dag_id="scope_none", batch="None")
    hs.settle()
    hs.sim.clear_requests()
    with make_dag("scope_none") as dag:
        HatchetCancelRunsOperator(task_id="t", retries=2, additional_metadata={
            "airflow_dag_id": "{{ dag.dag_id }}", "batch": "{{ params.get('missing') }}"})
    dag_run = dag_runner(dag)
    hs.settle()

    assert task_state(dag_run, "t") == "failed"
    assert (hs.acted(), hs.listed(), hs.status(elsewhere)) == ([], [], "RUNNING")


def test_thousands_of_unknown_ids_are_named_in_a_bounded_message(hs: Sim, dag_runner: Any, logs: Any) -> None:
    from airflow_provider_hatchet.operators.hatchet import HatchetCancelRunsOperator

    unknown = [f"00000000-0000-4000-8000-{i:012d}" for i in range(2000)]
    with make_dag("scope_many_unknown") as dag:
        HatchetCancelRunsOperator(task_id="t", run_ids=unknown)
    dag_run = dag_runner(dag)

    logged = logs()
    assert task_state(dag_run, "t") == "failed"
    assert f"Hatchet has no run {unknown[0]}" in logged
    assert "and 1,900 more" in logged
    assert unknown[-1] not in logged  # not one 70 KB line per message


def test_a_server_error_text_cannot_forge_a_line_in_the_task_log(hs: Sim, logs: Any) -> None:
    from airflow_provider_hatchet.client.retry import RetryPolicy

    hanging = hs.run("demo-hang")
    hs.settle()
    hook = HatchetHook(retry=RetryPolicy(attempts=1))
    forged = "boom\r\n[2026-12-07 03:00:00] INFO - Cancelled 0 Hatchet run(s).\x1b[2K"
    hs.sim.fail_next("status", 1, 500, body={"message": forged})

    assert hook.cancel_runs([hanging]) == [hanging]
    hook.close()

    logged = logs()
    assert "reading the runs back failed" in logged
    assert "boom\\r\\n[2026-12-07 03:00:00] INFO - Cancelled 0" in logged
    assert "\n[2026-12-07 03:00:00] INFO" not in logged and "\x1b" not in logged
