"""Fault injection: seeded random faults, one-shot failures and permanent trigger rejections."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

ROUTES: tuple[str, ...] = ("trigger", "status", "details", "list", "cancel", "workflows", "bulk_trigger", "events",
                           "logs", "workers")
# Routes that create runs (or events), where a failure may come after them.
CREATING: tuple[str, ...] = ("trigger", "bulk_trigger", "events")

BodyPredicate = Callable[[dict[str, Any]], bool]
RejectSpec = BodyPredicate | Mapping[str, Any]


@dataclass
class Faults:
    """Random faults, drawn from the simulator's seeded generator.

    :param error_rate: probability of a 5xx answer (status drawn from ``error_statuses``).
    :param error_statuses: the 5xx codes to pick from.
    :param error_after_create: on trigger (REST or gRPC) and events, probability that an injected 5xx comes after
        the run was created.
    :param rate_limit_rate: probability of a 429 with body ``null``.
    :param drop_after_create_rate: on trigger (REST or gRPC) and events, probability that the run is created and
        the connection (the gRPC stream) then breaks.
    :param latency: seconds added to a request.
    :param latency_rate: probability that a request gets the added latency.
    :param routes: restrict all faults to these route kinds (see :data:`ROUTES`); ``None`` means all.
    :param drop_colon_filters: the run list ignores a metadata filter whose value holds a ``:`` (and so lists
        runs that do not carry it), as Hatchet before v0.73.20 (#2336, September 2025) does; not random, not
        restricted by ``routes``.
    """

    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (503, 500)
    error_after_create: float = 0.0
    rate_limit_rate: float = 0.0
    drop_after_create_rate: float = 0.0
    latency: float = 0.0
    latency_rate: float = 1.0
    routes: tuple[str, ...] | None = None
    drop_colon_filters: bool = False

    def __post_init__(self) -> None:
        self.error_statuses = tuple(int(s) for s in self.error_statuses)
        if self.routes is not None:
            self.routes = tuple(self.routes)
            unknown = set(self.routes) - set(ROUTES)
            if unknown:
                raise ValueError(f"unknown routes {sorted(unknown)}; known: {ROUTES}")

    def to_json(self) -> dict[str, Any]:
        """Return the settings as a JSON object."""
        data = asdict(self)
        data["error_statuses"] = list(self.error_statuses)
        data["routes"] = list(self.routes) if self.routes is not None else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Faults:
        """Build from a JSON object; unknown keys raise ``ValueError``.

        :param data: keys named like the fields.
        """
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown fault settings {sorted(unknown)}")
        values = dict(data)
        if values.get("error_statuses") is not None:
            values["error_statuses"] = tuple(values["error_statuses"])
        if values.get("routes") is not None:
            values["routes"] = tuple(values["routes"])
        return cls(**values)


@dataclass(slots=True)
class Decision:
    """What to do to one request.

    :param delay: seconds of added latency.
    :param status: answer this status instead of the real one.
    :param after_create: for trigger, create the run before failing.
    :param drop: break the connection.
    :param body: the body of the injected answer, else the standard one for the status.
    """

    delay: float = 0.0
    status: int | None = None
    after_create: bool = False
    drop: bool = False
    body: Any = None

    @property
    def fails(self) -> bool:
        """Tell whether the request fails."""
        return self.drop or self.status is not None


@dataclass
class _Rejection:
    spec: RejectSpec
    status: int
    message: str | None

    def matches(self, body: dict[str, Any]) -> bool:
        if callable(self.spec):
            return bool(self.spec(body))
        return _contains(body, self.spec)


def _contains(value: Any, pattern: Any) -> bool:
    if isinstance(pattern, Mapping):
        return isinstance(value, Mapping) and all(
            k in value and _contains(value[k], v) for k, v in pattern.items()
        )
    return bool(value == pattern)


@dataclass
class FaultInjector:
    """Decides each request's fate; not thread-safe on its own (the simulator's lock guards it).

    :param seed: seed of the random generator.
    """

    seed: int = 0
    faults: Faults = field(default_factory=Faults)
    _queued: dict[str, deque[Decision]] = field(default_factory=dict)
    _rejections: list[_Rejection] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def fail_next(self, route: str, count: int, decision: Decision) -> None:
        """Queue ``count`` copies of ``decision`` for the next requests of ``route``.

        :param route: a route kind from :data:`ROUTES`.
        :param count: how many requests fail.
        :param decision: the failure.
        """
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; known: {ROUTES}")
        queue = self._queued.setdefault(route, deque())
        for _ in range(count):
            queue.append(Decision(decision.delay, decision.status, decision.after_create, decision.drop,
                                  decision.body))

    def reject_trigger_if(self, spec: RejectSpec, status: int, message: str | None) -> None:
        """Add a permanent rejection of matching trigger bodies.

        :param spec: a predicate on the request body, or a mapping the body must contain (recursively).
        :param status: the status to answer.
        :param message: the error description for 4xx answers.
        """
        self._rejections.append(_Rejection(spec, status, message))

    def rejection(self, body: dict[str, Any]) -> tuple[int, str | None] | None:
        """Return the ``(status, message)`` of the first rejection matching a trigger body.

        :param body: the trigger request body.
        """
        for rule in self._rejections:
            if rule.matches(body):
                return rule.status, rule.message
        return None

    def clear(self) -> None:
        """Drop random faults, queued failures and rejections; the generator is re-seeded."""
        self.faults = Faults()
        self._queued.clear()
        self._rejections.clear()
        self._rng = random.Random(self.seed)

    def pending(self) -> dict[str, int]:
        """Return how many queued failures remain per route."""
        return {route: len(q) for route, q in self._queued.items() if q}

    def decide(self, route: str) -> Decision | None:
        """Draw the fate of one request of ``route``.

        :param route: a route kind from :data:`ROUTES`.
        """
        queue = self._queued.get(route)
        if queue:
            return queue.popleft()
        f = self.faults
        if f.routes is not None and route not in f.routes:
            return None
        rng = self._rng
        delay = f.latency if f.latency > 0 and (f.latency_rate >= 1 or rng.random() < f.latency_rate) else 0.0
        if f.rate_limit_rate > 0 and rng.random() < f.rate_limit_rate:
            return Decision(delay, 429)
        if f.error_rate > 0 and rng.random() < f.error_rate:
            after = route in CREATING and f.error_after_create > 0 and rng.random() < f.error_after_create
            return Decision(delay, rng.choice(f.error_statuses), after_create=after)
        if route in CREATING and f.drop_after_create_rate > 0 and rng.random() < f.drop_after_create_rate:
            return Decision(delay, after_create=True, drop=True)
        return Decision(delay) if delay else None
