"""The accepted deviations between the simulator and the real server, and the session's tally of them.

``accepted_deviations.yaml`` lists each difference the simulator is allowed to keep, with the reason. An entry
matches differences by glob patterns (``*`` only) over the scenario, the step and the path, and optionally by
kind. A difference no entry matches fails its scenario; an entry that matched nothing in a full session fails
too, so the file only lists what still happens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from airflow_provider_hatchet.testing.versions import release
from tests.real.normalise import KINDS, Difference
from tests.real.recording import Outcome

DEVIATIONS_FILE = Path(__file__).with_name("accepted_deviations.yaml")


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


@dataclass(frozen=True)
class Deviation:
    """One accepted difference.

    :param scenario: glob over scenario names.
    :param path: glob over difference paths (``body.run.input``, ``body.rows[].type``, ``status``...).
    :param reason: why the simulator keeps this difference.
    :param step: glob over step names.
    :param kind: the difference kind, or ``None`` for any.
    :param before: a Hatchet release: the entry holds only on servers older than it (a difference of an older
        release, which the simulator does not model); ``None`` for every release.
    :param sometimes: the difference is a race that a run may not show (an older engine on a busy machine): the
        entry is exempt from the stale check.
    """

    scenario: str
    path: str
    reason: str
    step: str = "*"
    kind: str | None = None
    before: str | None = None
    sometimes: bool = False

    def matches(self, scenario: str, difference: Difference) -> bool:
        """Whether this entry accepts a difference found in a scenario.

        :param scenario: the scenario name.
        :param difference: the difference.
        """
        return (
            _glob(self.scenario).fullmatch(scenario) is not None
            and _glob(self.step).fullmatch(difference.step) is not None
            and _glob(self.path).fullmatch(difference.path) is not None
            and (self.kind is None or self.kind == difference.kind)
        )

    def label(self) -> str:
        """How a report names the entry."""
        kind = f" [{self.kind}]" if self.kind else ""
        return f"{self.scenario}/{self.step} {self.path}{kind}"


def load(path: Path = DEVIATIONS_FILE, engine: str | None = None) -> list[Deviation]:
    """Read and check the deviations file; keep the entries that hold on the given server release.

    :param path: the YAML file: a list of mappings with ``scenario``, ``path``, ``reason`` and optionally
        ``step``, ``kind``, ``before`` and ``sometimes``.
    :param engine: the real server's release; ``None`` for the newest (the entries without ``before``).
    :raises ValueError: for an entry without a reason, with an unknown key or kind.
    """
    entries: list[Any] = yaml.safe_load(path.read_text()) or []
    deviations = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not str(entry.get("reason") or "").strip():
            raise ValueError(f"{path.name} entry {number}: needs at least scenario, path and a reason")
        unknown = set(entry) - {"scenario", "step", "path", "kind", "reason", "before", "sometimes"}
        if unknown or entry.get("kind") not in (None, *KINDS):
            raise ValueError(f"{path.name} entry {number}: unknown keys {sorted(unknown)} or kind {entry.get('kind')}")
        before = entry.get("before")
        if before is not None and (engine is None or release(engine) >= release(str(before))):
            continue
        deviations.append(Deviation(str(entry["scenario"]), str(entry["path"]), " ".join(str(entry["reason"]).split()),
                                    str(entry.get("step", "*")), entry.get("kind"), before,
                                    entry.get("sometimes") is True))
    return deviations


@dataclass
class Triage:
    """One scenario's differences, sorted into accepted and unexplained.

    :param outcome: the comparison.
    :param accepted: each accepted difference and the entry that accepts it.
    :param unexplained: the differences no entry accepts.
    """

    outcome: Outcome
    accepted: list[tuple[Difference, Deviation]] = field(default_factory=list)
    unexplained: list[Difference] = field(default_factory=list)


def triage(outcome: Outcome, deviations: list[Deviation]) -> Triage:
    """Sort a scenario's differences by the first entry that accepts each.

    :param outcome: the comparison.
    :param deviations: the accepted deviations.
    """
    result = Triage(outcome)
    for difference in outcome.differences:
        entry = next((d for d in deviations if d.matches(outcome.scenario, difference)), None)
        if entry is None:
            result.unexplained.append(difference)
        else:
            result.accepted.append((difference, entry))
    return result


@dataclass
class Tally:
    """What the session's scenarios found, for the summary line and the stale-entry check.

    :param deviations: the accepted deviations.
    :param label: what the simulator was compared with, for the summary line.
    """

    deviations: list[Deviation]
    label: str = "conformance"
    results: dict[str, Triage] = field(default_factory=dict)

    def add(self, result: Triage) -> None:
        """Record one scenario's triage.

        :param result: the triage.
        """
        self.results[result.outcome.scenario] = result

    def used(self) -> set[Deviation]:
        """The entries that accepted at least one difference."""
        return {entry for result in self.results.values() for _, entry in result.accepted}

    def stale(self) -> list[Deviation]:
        """The entries that accepted nothing, but those marked ``sometimes``."""
        used = self.used()
        return [d for d in self.deviations if d not in used and not d.sometimes]

    def summary(self) -> str:
        """The one-line summary: how many responses matched, and how many deviations were accepted."""
        total = matched = only_accepted = unexplained = 0
        for result in self.results.values():
            bad = {d.step for d in result.unexplained}
            differing = result.outcome.steps_with_differences()
            total += len(result.outcome.steps)
            matched += len(result.outcome.steps) - len(differing)
            unexplained += len(bad)
            only_accepted += len(differing - bad)
        return (f"{self.label}: {matched} of {total} responses matched ({len(self.used())} accepted deviations; "
                f"{only_accepted} responses differ only by them, {unexplained} by anything else; "
                f"{len(self.results)} scenarios)")
