"""Differential conformance: the simulator must answer as the real Hatchet server does.

Each scenario (``scenarios.py``) sends the same raw requests to both servers at once; the answers are
normalised and compared: status codes, JSON keys and value types (recursively), values (error bodies included)
and the order of status transitions. A difference is either fixed in the simulator or listed, with its reason,
in ``accepted_deviations.yaml``; an entry that no longer matches anything fails too. A line
``conformance: N of M responses matched ...`` ends the session.

With the real server (``make test-real``), the live answers are compared, and the stored real answers
(``real_answers.json``) must still be the live ones; ``CONFORMANCE_RECORD=1`` stores them anew instead. Without
it (``-m "not real_hatchet"``), the simulator is held to the stored real answers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.real.conformance import Session, Target, run
from tests.real.conftest import register_worker_workflows
from tests.real.deviations import Deviation, Tally, load, triage
from tests.real.grpc_scenarios import GRPC_SCENARIOS
from tests.real.normalise import Difference, diff, normalise
from tests.real.recording import (
    Step,
    compare,
    load_real_answers,
    record,
    settled,
    store_real_answers,
    stored_engine,
)
from tests.real.scenarios import SCENARIOS as REST_SCENARIOS

SCENARIOS = {**REST_SCENARIOS, **GRPC_SCENARIOS}
RECORD = os.environ.get("CONFORMANCE_RECORD") == "1"
# real_answers.json holds the newest release's answers (make real-hatchet); an older one (make real-hatchet-matrix)
# is held to the simulator answering as that release, with the deviations marked `before` a newer one.
STORED_ENGINE = stored_engine()
LIVE_ENGINE = os.environ.get("HATCHET_ENGINE_VERSION", "")
RERECORD = "if the server changed, store its answers anew: CONFORMANCE_RECORD=1 make test-real"


class _Summary:
    """A plugin that prints the tallies at the end of the session."""

    def __init__(self) -> None:
        self.tallies: list[Tally] = []

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for tally in self.tallies:
            if tally.results:
                terminalreporter.write_line(tally.summary())


def _tally(request: pytest.FixtureRequest, label: str, engine: str | None = None) -> Tally:
    plugin = request.config.pluginmanager.get_plugin("conformance-summary")
    if plugin is None:
        plugin = _Summary()
        request.config.pluginmanager.register(plugin, "conformance-summary")
    result = Tally(load(engine=engine), label)
    plugin.tallies.append(result)
    return result


@pytest.fixture(scope="session")
def tally(request: pytest.FixtureRequest) -> Tally:
    """The live comparison's results, with the deviations that hold on the live server's release; printed at the
    end of the session."""
    engine = LIVE_ENGINE if LIVE_ENGINE != STORED_ENGINE else None
    return _tally(request, f"conformance with Hatchet {LIVE_ENGINE or 'unknown'}", engine)


@pytest.fixture(scope="session")
def stored_tally(request: pytest.FixtureRequest) -> Tally:
    """The comparison with the stored real answers; printed at the end of the session."""
    return _tally(request, "conformance with the stored real answers")


@pytest.fixture(scope="session")
def live_answers() -> dict[str, list[Step]]:
    """The real server's recordings of this session, by scenario."""
    return {}


@pytest.fixture
def sim_target(hatchet: Any, hatchet_server: Any, request: pytest.FixtureRequest,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Target]:
    """The simulator, reset, with the worker's workflows, a second tenant and its gRPC face; against a live real
    server, answering as that server's release (an older one ignores what that release ignores)."""
    if request.node.get_closest_marker("real_hatchet") is not None:
        monkeypatch.setattr(hatchet, "version", os.environ.get("HATCHET_ENGINE_VERSION") or hatchet.version)
    register_worker_workflows(hatchet)
    foreign = hatchet.token_for(hatchet.add_tenant("foreign"))
    with hatchet.grpc_server() as face:
        yield Target("sim", hatchet_server.url, hatchet.token, foreign, face.address)


@pytest.fixture
def real_target(real_hatchet_settings: dict[str, str]) -> Target:
    """The real server of ``build/hatchet/env``."""
    settings = real_hatchet_settings
    return Target("real", settings["HATCHET_CLIENT_SERVER_URL"], settings["HATCHET_CLIENT_TOKEN"],
                  settings["HATCHET_FOREIGN_TOKEN"], settings["HATCHET_CLIENT_HOST_PORT"])


def _both(name: str, sim: Target, real: Target) -> tuple[Session, Session]:
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(run, SCENARIOS[name], target) for target in (sim, real)]
        return futures[0].result(), futures[1].result()


def _explain(name: str, result: Any) -> str:
    return f"{name}: differences not in accepted_deviations.yaml:\n" + "\n".join(
        d.describe() for d in result.unexplained)


@pytest.mark.real_hatchet
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_simulator_answers_as_the_real_server(name: str, sim_target: Target, real_target: Target,
                                                   tally: Tally, live_answers: dict[str, list[Step]]) -> None:
    sim, real = _both(name, sim_target, real_target)
    live_answers[name] = record(real)
    result = triage(compare(name, record(sim), live_answers[name]), tally.deviations)
    tally.add(result)

    assert not result.unexplained, _explain(name, result)


@pytest.mark.real_hatchet
def test_every_accepted_deviation_still_occurs(tally: Tally) -> None:
    missing = set(SCENARIOS) - set(tally.results)
    if missing:
        pytest.skip(f"not every scenario ran in this session: {sorted(missing)}")

    assert not tally.stale(), "accepted deviations that no longer occur:\n" + "\n".join(
        d.label() for d in tally.stale())


@pytest.mark.real_hatchet
def test_the_stored_real_answers_are_the_live_ones(live_answers: dict[str, list[Step]],
                                                   real_hatchet_settings: dict[str, str]) -> None:
    missing = set(SCENARIOS) - set(live_answers)
    if missing:
        pytest.skip(f"not every scenario ran in this session: {sorted(missing)}")
    if LIVE_ENGINE != STORED_ENGINE:
        pytest.skip(f"the stored real answers are {STORED_ENGINE}'s; on {LIVE_ENGINE or 'an unknown release'} the "
                    "live comparison with the simulator answering as that release is the check")
    if RECORD:
        store_real_answers(live_answers, real_hatchet_settings.get("HATCHET_ENGINE_VERSION", "unknown"))
        return
    stored = load_real_answers()
    changed = [d.describe() for name in SCENARIOS if name in stored
               for d in compare(name, stored[name], live_answers[name]).differences]

    assert set(stored) == set(SCENARIOS), f"stored real answers lack {sorted(set(SCENARIOS) - set(stored))}; {RERECORD}"
    assert not changed, "the real server no longer answers as stored (stored=sim, live=real):\n" + "\n".join(
        changed) + f"\n{RERECORD}"


@pytest.fixture
def quick_unknown_workflows(hatchet: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(hatchet, "unknown_workflow_delay", 0.3)
    yield


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_simulator_answers_as_the_stored_real_answers(name: str, sim_target: Target, stored_tally: Tally,
                                                          quick_unknown_workflows: None) -> None:
    stored = load_real_answers()
    assert name in stored, f"no stored real answers for {name}; {RERECORD}"

    result = triage(compare(name, record(run(SCENARIOS[name], sim_target)), stored[name]), stored_tally.deviations)
    stored_tally.add(result)

    assert not result.unexplained, _explain(name, result)


def test_every_accepted_deviation_occurs_against_the_stored_answers(stored_tally: Tally) -> None:
    missing = set(SCENARIOS) - set(stored_tally.results)
    if missing:
        pytest.skip(f"not every scenario ran in this session: {sorted(missing)}")

    assert not stored_tally.stale(), "accepted deviations that no longer occur:\n" + "\n".join(
        d.label() for d in stored_tally.stale())


def test_every_accepted_deviation_is_explained_and_names_a_scenario() -> None:
    deviations = load()

    assert deviations
    for entry in deviations:
        assert any(Deviation(entry.scenario, "*", "-").matches(name, Difference("x", "y", "value"))
                   for name in SCENARIOS), entry.label()


def test_normalise_hides_what_differs_between_runs_and_keeps_the_rest() -> None:
    names = {"3f2a6c1e-0000-4000-8000-000000000001": "<run>", "tag123": "<tag>"}
    value = {
        "metadata": {"id": "3f2a6c1e-0000-4000-8000-000000000001", "createdAt": "2026-01-02T03:04:05.123456Z"},
        "startedAt": "0001-01-01T00:00:00Z", "workflowId": "9b1f6c1e-1111-4000-8000-000000000002",
        "stepId": "00000000-0000-0000-0000-000000000000", "displayName": "run-1796054126451",
        "additionalMetadata": {"test_tag": "tag123", "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
        "duration": 507, "taskId": 0, "retryCount": 0, "output": {"n": 1},
        "shape": [{"taskName": "b"}, {"taskName": "a"}],
        "errorMessage": 'Exception: x\nTraceback (most recent call last):\n  File "w.py", line 1\nException: x\n\n\n{}',
    }

    assert normalise(value, names) == {
        "metadata": {"id": "<run>", "createdAt": "<time>"}, "startedAt": "<zero-time>", "workflowId": "<uuid>",
        "stepId": "<nil-uuid>", "displayName": "run-<ms>",
        "additionalMetadata": {"test_tag": "<tag>", "traceparent": "<traceparent>"},
        "duration": "<duration>", "taskId": 0, "retryCount": 0, "output": {"n": 1},
        "shape": [{"taskName": "a"}, {"taskName": "b"}], "errorMessage": "Exception: x\n<traceback>\n\n\n{}",
    }


def test_diff_names_each_difference_by_path_and_kind() -> None:
    sim = {"a": 1, "b": {"c": "x"}, "rows": [{"s": "OK"}], "only_sim": True}
    real = {"a": "1", "b": {"c": "y", "d": None}, "rows": [{"s": "OK"}, {"s": "NO"}]}

    assert [(d.path, d.kind) for d in diff("step", sim, real)] == [
        ("body.a", "type"), ("body.b.c", "value"), ("body.b.d", "missing"), ("body.only_sim", "extra"),
        ("body.rows", "length"),
    ]


def test_transitions_agree_on_order_and_on_the_states_after_the_brief_ones() -> None:
    assert settled(["404", "RUNNING", "COMPLETED"]) == settled(["QUEUED", "RUNNING", "COMPLETED"])
    assert settled(["RUNNING", "COMPLETED"]) == settled(["404", "QUEUED", "RUNNING", "COMPLETED"])
    assert settled(["RUNNING", "404"])["in_order"] is False
    assert settled(["404", "RUNNING", "FAILED"]) != settled(["404", "RUNNING", "COMPLETED"])


def test_a_deviation_marked_before_a_release_holds_only_on_older_servers(tmp_path: Any) -> None:
    entries = tmp_path / "deviations.yaml"
    entries.write_text('- {scenario: a, path: status, reason: always}\n'
                       '- {scenario: b, path: status, reason: old servers, before: v0.95.0}\n')
    assert [d.scenario for d in load(entries, engine="v0.75.0")] == ["a", "b"]
    assert [d.scenario for d in load(entries, engine="v0.95.0")] == ["a"]
    assert [d.scenario for d in load(entries)] == ["a"]


def test_a_deviation_marked_sometimes_is_never_stale(tmp_path: Any) -> None:
    entries = tmp_path / "deviations.yaml"
    entries.write_text('- {scenario: a, path: status, reason: always, before: v0.91.0}\n'
                       '- {scenario: b, path: status, reason: a race, before: v0.91.0, sometimes: true}\n')
    tally = Tally(load(entries, engine="v0.90.0"))

    assert [d.scenario for d in tally.stale()] == ["a"]
