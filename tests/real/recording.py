"""A scenario's answers, normalised, and how two of them compare; the stored real answers.

A :class:`Recording` is what a :class:`~tests.real.conformance.Session` recorded, with every body normalised
(so it holds no ids, times or tokens). ``real_answers.json`` keeps the real server's recordings, so that the
simulator can be held to them without the real server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.real.conformance import Session
from tests.real.normalise import Difference, diff, normalise, unique

REAL_ANSWERS_FILE = Path(__file__).with_name("real_answers.json")
# The order a run's status moves in; the brief states before RUNNING may or may not be seen by a poller.
STATUS_ORDER = ("404", "QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")
BRIEF_STATES = ("404", "QUEUED")


@dataclass(frozen=True)
class Step:
    """One normalised answer.

    :param name: the step name.
    :param status: the HTTP status, ``grpc:<CODE>`` for a gRPC call, or ``None`` for a status watch.
    :param body: the normalised body; for a watch, ``{"transitions": [...]}``.
    """

    name: str
    status: int | str | None
    body: Any


def record(session: Session) -> list[Step]:
    """Normalise what a session recorded.

    :param session: a finished session.
    """
    return [Step(e.step, e.status, normalise(e.body, session.names)) for e in session.exchanges]


def settled(states: list[str]) -> dict[str, Any]:
    """What two watches of the same run must agree on: the order is the server's, and the states after the brief
    ones (a poller may or may not catch the brief 404 and QUEUED) are the same.

    :param states: the distinct states in the order seen.
    """
    ranks = [STATUS_ORDER.index(s) if s in STATUS_ORDER else len(STATUS_ORDER) for s in states]
    rest = list(states)
    while rest[:-1] and rest[0] in BRIEF_STATES:
        rest.pop(0)
    return {"in_order": ranks == sorted(ranks), "states": rest}


@dataclass
class Outcome:
    """How one scenario's recordings compare.

    :param scenario: the scenario name.
    :param steps: the step names, in order.
    :param differences: every difference, unique per step, path and kind.
    """

    scenario: str
    steps: list[str]
    differences: list[Difference]

    def steps_with_differences(self) -> set[str]:
        """The steps whose responses differ in any way."""
        return {d.step for d in self.differences}


def compare(scenario: str, sim: list[Step], real: list[Step]) -> Outcome:
    """List the differences between two recordings of a scenario: status codes, bodies, transitions.

    :param scenario: the scenario name.
    :param sim: the simulator's recording.
    :param real: the real server's recording.
    """
    if [s.name for s in sim] != [s.name for s in real]:
        raise AssertionError(f"{scenario}: the recordings have different steps: {[s.name for s in sim]} != "
                             f"{[s.name for s in real]}")
    found: list[Difference] = []
    for mine, theirs in zip(sim, real, strict=True):
        if mine.status is None:
            if settled(mine.body["transitions"]) != settled(theirs.body["transitions"]):
                found.append(Difference(mine.name, "transitions", "transitions", mine.body["transitions"],
                                        theirs.body["transitions"]))
            continue
        if mine.status != theirs.status:
            found.append(Difference(mine.name, "status", "status", mine.status, theirs.status))
        found += diff(mine.name, mine.body, theirs.body)
    return Outcome(scenario, [s.name for s in sim], unique(found))


def load_real_answers(path: Path = REAL_ANSWERS_FILE) -> dict[str, list[Step]]:
    """Read the stored real answers, by scenario (empty when there is no file).

    :param path: the JSON file.
    """
    if not path.exists():
        return {}
    stored = json.loads(path.read_text())
    return {name: [Step(*step) for step in steps] for name, steps in stored["scenarios"].items()}


def stored_engine(path: Path = REAL_ANSWERS_FILE) -> str:
    """The release whose answers are stored.

    :param path: the JSON file.
    """
    return str(json.loads(path.read_text())["engine_version"]) if path.exists() else ""


def store_real_answers(answers: dict[str, list[Step]], engine_version: str, path: Path = REAL_ANSWERS_FILE) -> None:
    """Write the real answers, one step a line, scenarios and keys sorted (small, readable diffs).

    :param answers: recordings by scenario.
    :param engine_version: the real server's engine version.
    :param path: the JSON file.
    """
    lines = ["{", f'"engine_version": {json.dumps(engine_version)},', '"scenarios": {']
    names = sorted(answers)
    for number, name in enumerate(names):
        lines.append(f"{json.dumps(name)}: [")
        steps = answers[name]
        lines += [json.dumps([s.name, s.status, s.body], sort_keys=True) + ("," if i < len(steps) - 1 else "")
                  for i, s in enumerate(steps)]
        lines.append("]," if number < len(names) - 1 else "]")
    lines += ["}", "}"]
    path.write_text("\n".join(lines) + "\n")
