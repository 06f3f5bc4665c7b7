"""Make two servers' answers comparable, then list where they differ.

:func:`normalise` replaces what differs between any two runs of a scenario (ids, timestamps, tokens, trace ids,
millisecond suffixes, durations, Python tracebacks, this run's tag) with placeholders. :func:`diff` walks two
normalised values and names each difference by its path (``body.run.input``, list items as ``[]``) and kind.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"
NIL_UUID = "00000000-0000-0000-0000-000000000000"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")
_JWT = re.compile(r"eyJ[\w-]*\.[\w-]+\.[\w-]+")
_TRACEPARENT = re.compile(r"\b00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]\b")
_MILLIS_SUFFIX = re.compile(r"-\d{12,}$")
_TRACEBACK = re.compile(r"\nTraceback \(most recent call last\):\n.*?(?=\n\n\n|\Z)", re.DOTALL)
# Keys whose integer values count or number things that differ between servers (sequence ids, timings).
_VOLATILE_INTS = frozenset({"id", "taskId", "duration"})
# Lists whose order the server does not define (or defines by times that jitter); sorted by these keys.
_UNORDERED = {"shape": ("taskName",), "taskEvents": ("taskDisplayName", "eventType")}
KINDS = ("status", "missing", "extra", "type", "value", "length", "transitions")


@dataclass(frozen=True)
class Difference:
    """One way the simulator's answer differs from the real server's.

    :param step: the scenario step whose responses differ.
    :param path: where in the response: ``status``, ``body``, ``body.run.input``, ``body.rows[].status``...
    :param kind: one of :data:`KINDS`; ``missing`` means only the real server has the key, ``extra`` only the
        simulator.
    :param sim: the simulator's (normalised) value.
    :param real: the real server's (normalised) value.
    """

    step: str
    path: str
    kind: str
    sim: Any = None
    real: Any = None

    def describe(self) -> str:
        """One line for a test failure."""
        return f"{self.step} {self.path} [{self.kind}]: sim={_short(self.sim)} real={_short(self.real)}"


def _short(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def normalise_text(text: str, names: Mapping[str, str]) -> str:
    """Replace volatile parts of a string with placeholders.

    :param text: the string.
    :param names: exact substrings (a run id, the tag, the tenant) and the placeholder each becomes.
    """
    for raw, name in names.items():
        if raw:
            text = text.replace(raw, name)
            if _UUID.fullmatch(raw):
                text = text.replace(raw.lower(), name)
    if text == ZERO_TIME:
        return "<zero-time>"
    text = _TRACEBACK.sub("\n<traceback>", text)
    text = _JWT.sub("<token>", text)
    text = _TRACEPARENT.sub("<traceparent>", text)
    text = _TIME.sub("<time>", text)
    text = text.replace(NIL_UUID, "<nil-uuid>")
    text = _UUID.sub("<uuid>", text)
    return _MILLIS_SUFFIX.sub("-<ms>", text)


def normalise(value: Any, names: Mapping[str, str], key: str | None = None) -> Any:
    """Return a JSON value with its volatile parts replaced (see the module docstring).

    :param value: a decoded JSON value.
    :param names: exact substrings and their placeholders, as for :func:`normalise_text`.
    :param key: the key the value sits under, for key-specific rules.
    """
    if isinstance(value, dict):
        return {k: normalise(v, names, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [normalise(v, names) for v in value]
        order = _UNORDERED.get(key or "")
        if order and all(isinstance(i, dict) for i in items):
            items.sort(key=lambda item: tuple(str(item.get(k)) for k in order))
        return items
    if isinstance(value, str):
        return normalise_text(value, names)
    if isinstance(value, int) and not isinstance(value, bool) and key in _VOLATILE_INTS:
        return _volatile_int(key, value)
    return value


def _volatile_int(key: str, value: int) -> Any:
    if key == "taskId" and value == 0:
        return 0
    if key == "duration" and abs(value) >= 10**12:
        return value  # Go's saturated time.Sub of a zero time: a fixed value worth comparing
    return f"<{key}>"


def type_name(value: Any) -> str:
    """The JSON type of a value: object, array, string, integer, number, boolean or null.

    :param value: a decoded JSON value.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def diff(step: str, sim: Any, real: Any, path: str = "body") -> list[Difference]:
    """List the differences between two normalised JSON values, outermost first.

    Objects are compared key by key; arrays item by item (plus a ``length`` difference when their lengths
    differ); scalars by type and value. Placeholder strings make differing ids and times compare equal.

    :param step: the step name the differences are reported under.
    :param sim: the simulator's value.
    :param real: the real server's value.
    :param path: the path of these values.
    """
    sim_type, real_type = type_name(sim), type_name(real)
    if sim_type != real_type:
        return [Difference(step, path, "type", sim_type, real_type)]
    found: list[Difference] = []
    if isinstance(sim, dict):
        for key in sorted(set(sim) | set(real)):
            where = f"{path}.{key}"
            if key not in sim:
                found.append(Difference(step, where, "missing", None, real[key]))
            elif key not in real:
                found.append(Difference(step, where, "extra", sim[key], None))
            else:
                found += diff(step, sim[key], real[key], where)
    elif isinstance(sim, list):
        if len(sim) != len(real):
            found.append(Difference(step, path, "length", len(sim), len(real)))
        for sim_item, real_item in zip(sim, real, strict=False):
            found += diff(step, sim_item, real_item, f"{path}[]")
    elif sim != real:
        found.append(Difference(step, path, "value", sim, real))
    return found


def unique(differences: list[Difference]) -> list[Difference]:
    """Keep the first difference of each (step, path, kind): list items repeat the same difference.

    :param differences: differences in report order.
    """
    seen: set[tuple[str, str, str]] = set()
    kept = []
    for item in differences:
        ident = (item.step, item.path, item.kind)
        if ident not in seen:
            seen.add(ident)
            kept.append(item)
    return kept
