"""The Hatchet server's version: read, shown by the Test button, and what the hook does on a server older than a
feature it sends (a filter the server would ignore is refused; log lines it would not order are put in order).

Against the simulator told to answer as an older release (``HatchetSimulator(version=...)``), which ignores the
same query parameters that release ignores (``testing/versions.py``, from Hatchet's source at each tag). The same
differences on the real servers: ``tests/real/test_run_lifecycle.py`` and the matrix run (``make
real-hatchet-matrix``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_hatchet.client import HatchetError, HatchetValidationError, RunStatus, endpoints
from airflow_provider_hatchet.client.server_version import ServerVersion
from airflow_provider_hatchet.client.trigger_request import TriggerRequest
from airflow_provider_hatchet.client.wait_event import WaitEvent, WaitStatus
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from airflow_provider_hatchet.testing import HatchetSimulator, ManualClock, SimulatorServer, register_demo_workflows

pytestmark = [pytest.mark.af2, pytest.mark.loopback]


@pytest.fixture
def as_version(airflow_conn: Any) -> Iterator[Any]:
    """Gives ``start(version) -> (simulator, clock)``: a simulator of its own answering as that Hatchet release,
    on a manual clock, with the demo workflows, ``hatchet_default`` pointing at it."""
    with SimulatorServer(HatchetSimulator(visibility_delay=0.0, clock=(clock := ManualClock()))) as server:

        def start(version: str) -> tuple[HatchetSimulator, ManualClock]:
            sim = server.simulator
            sim.version = version
            register_demo_workflows(sim)
            sim.register_workflow("demo-idempotent", "hang", idempotency_key="input.key", idempotency_ttl=600)
            airflow_conn("hatchet_default", conn_type="hatchet", host=server.url, password=sim.token)
            return sim, clock

        yield start


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v0.75.0", ServerVersion(0, 75, 0)),
        ("0.105.0", ServerVersion(0, 105, 0)),
        ("v1.2.3-rc.1", ServerVersion(1, 2, 3)),
        ("v1.2.3+build.7", ServerVersion(1, 2, 3)),
        ("dev", None),
        ("", None),
        ("v0.75", None),
        ("v0.75.0\nforged", None),
        (75, None),
        (None, None),
    ],
)
def test_a_version_is_read_from_a_release_number_only(text: object, expected: ServerVersion | None) -> None:
    assert ServerVersion.parse(text) == expected


def test_versions_compare_by_number_not_by_text() -> None:
    assert ServerVersion.parse("v0.9.0") < ServerVersion.parse("v0.75.0") < ServerVersion.parse("v0.105.0")  # type: ignore[operator]
    assert str(ServerVersion(0, 75, 0)) == "v0.75.0"


@pytest.mark.parametrize("version", ["v0.75.0", "v0.90.0", "v0.105.0"])
def test_the_test_button_names_the_server_version(as_version: Any, version: str) -> None:
    as_version(version)
    ok, message = HatchetHook().test_connection()
    assert ok, message
    assert message.startswith(f"Connected to Hatchet {version} at http://127.0.0.1:")


def test_the_test_button_says_when_the_version_cannot_be_read(as_version: Any) -> None:
    sim, _ = as_version("v0.105.0")
    sim.version = "dev-build"  # not a release number: the simulator answers it as it is
    ok, message = HatchetHook().test_connection()
    assert ok, message
    assert "Connected to Hatchet (its version could not be read) at" in message


def _two_keys(clock: ManualClock) -> tuple[str, str, dt.datetime]:
    hook = HatchetHook()
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    held = hook.run_workflow("demo-idempotent", {"key": "mine"}, {"tag": "t"})
    other = hook.run_workflow("demo-idempotent", {"key": "theirs"}, {"tag": "t"})
    clock.advance(1)
    return held, other, since


@pytest.mark.parametrize("version", ["v0.75.0", "v0.94.5"])
def test_a_cancel_by_idempotency_key_is_refused_on_a_server_that_ignores_the_filter(
    as_version: Any, version: str
) -> None:
    sim, clock = as_version(version)
    held, other, since = _two_keys(clock)
    hook = HatchetHook()
    # The simulator, as that release, ignores the filter: the list answers both runs.
    assert {row.id for row in hook.send(endpoints.list_runs(since=since, idempotency_keys=["mine"])).rows} == {
        held, other}

    for act in (hook.cancel_runs, hook.replay_runs, hook.list_runs):
        with pytest.raises(HatchetValidationError, match=f"is {version}, which ignores the run list's "
                           "idempotency_keys filter \\(added in v0.95.0\\)") as err:
            act(filter={"since": since, "idempotency_keys": ["mine"]})  # type: ignore[operator]
        assert err.value.field == "idempotency_keys"
    clock.advance(1)
    assert [hook.send(endpoints.run_status(r)) for r in (held, other)] == [RunStatus.RUNNING] * 2
    assert not [r for r in sim.requests if r.route in ("cancel", "replay")]


def test_a_cancel_by_idempotency_key_selects_only_that_run_from_v0_95(as_version: Any) -> None:
    _, clock = as_version("v0.95.0")
    held, other, since = _two_keys(clock)
    hook = HatchetHook()
    assert hook.cancel_runs(filter={"since": since, "idempotency_keys": ["mine"]}) == [held]
    clock.advance(1)
    assert [hook.send(endpoints.run_status(r)) for r in (held, other)] == [RunStatus.CANCELLED, RunStatus.RUNNING]


def _forwarded(run_id: str) -> list[str]:
    from airflow_provider_hatchet.operators._log_forwarding import LogForwarding, forward_logs

    lines: list[str] = []

    class Log:
        def info(self, msg: str, /, *args: Any) -> None:
            lines.append(msg % args)

        warning = info

    hook = HatchetHook()
    wait = WaitEvent(WaitStatus.SUCCESS, [run_id], statuses={run_id: "COMPLETED"})
    forward_logs(hook, Log(), wait, LogForwarding(mode="always", max_lines_per_task=4))
    hook.close()
    return [line.split(" INFO ", 1)[1] for line in lines if " INFO " in line]


@pytest.mark.parametrize(
    ("version", "shown", "warned"),
    [
        # Honoured order: the last 4 lines.
        ("v0.105.0", ["line 8 of 10", "line 9 of 10", "line 10 of 10", "demo-etl:run done"], False),
        ("v0.78.0", ["line 8 of 10", "line 9 of 10", "line 10 of 10", "demo-etl:run done"], False),
        # Oldest first only: the first lines the server gave, still shown in the order they were logged.
        ("v0.75.0", ["input: {\"__sim__\": {\"log_lines\": 10}}", "line 1 of 10", "line 2 of 10", "line 3 of 10"],
         True),
    ],
)
def test_forwarded_logs_are_in_order_when_the_server_ignores_the_newest_first_order(
    as_version: Any, logs: Callable[[], str], version: str, shown: list[str], warned: bool
) -> None:
    _, clock = as_version(version)
    run_id = HatchetHook().run_workflow("demo-etl", {"__sim__": {"log_lines": 10}})
    clock.advance(5)
    assert _forwarded(run_id) == shown
    warning = (f"The Hatchet server ({version}) ignored the task log's order_by_direction (the task log's "
               "order_by_direction and attempt came in v0.78.0): these are the first 5 lines of every attempt, "
               "oldest first, kept to attempt 1.")
    logged = logs()
    # Airflow 2 shows a hook's line twice (the task log and the logging capture): counted as one.
    assert (warning in logged) is warned
    assert ("ignored the task log's" in logged) is warned


@pytest.mark.parametrize(("version", "runs"), [("v0.90.0", 3), ("v0.95.0", 1)])
def test_a_workflow_idempotency_key_is_enforced_only_from_v0_95(as_version: Any, version: str, runs: int) -> None:
    """v0.90.0 creates a run for a held key and for a missing one (make real-hatchet-matrix's conformance,
    ``idempotency`` and ``grpc_idempotency``); v0.105.0 refuses the first and drops the second."""
    sim, clock = as_version(version)
    hook = HatchetHook()
    hook.run_workflow("demo-idempotent", {"key": "mine"}, {"tag": "t"})
    hook.run_workflow("demo-idempotent", {}, {"tag": "t"})
    if runs == 1:
        with pytest.raises(HatchetError):
            hook.run_workflow("demo-idempotent", {"key": "mine"}, {"tag": "t"})
    else:
        hook.run_workflow("demo-idempotent", {"key": "mine"}, {"tag": "t"})
    clock.advance(1)

    assert len([r for r in sim.runs if r.workflow_name == "demo-idempotent"]) == runs


@pytest.mark.parametrize(("version", "refused"), [("v0.75.0", True), ("v0.90.0", False)])
def test_an_unknown_workflow_is_refused_at_once_naming_it_before_v0_90(as_version: Any, version: str,
                                                                       refused: bool) -> None:
    """v0.75.0 refuses a trigger naming an unknown workflow at once (400 ``workflow names not found``); from
    v0.90.0 the trigger without ``return_only_id`` answers 500 once it gave up reading the run back. The hook checks
    the name before it triggers, on both."""
    sim, _ = as_version(version)
    hook = HatchetHook()
    with pytest.raises(HatchetValidationError, match="workflow_name: no workflow named 'demo-missing'"):
        hook.run_workflow("demo-missing", {}, {"tag": "t"})
    raw = endpoints.trigger(TriggerRequest("demo-missing"))
    sim.unknown_workflow_delay = 0.0
    with pytest.raises(HatchetError) as refusal:
        hook.send(raw)
    assert ("workflow names not found: demo-missing" in str(refusal.value)) is refused

    assert not sim.runs
