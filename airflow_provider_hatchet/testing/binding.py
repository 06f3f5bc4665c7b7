"""How the server binds requests (echo over Go's ``encoding/json``, oapi-codegen's query binders): what it
accepts, and its messages, offsets included, for what it does not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

# Go's type names for the kinds of fields bound here.
GO_TYPES = {"string": "string", "object": "map[string]interface {}", "int": "int", "bool": "bool",
            "uuids": "[]uuid.UUID"}
TRIGGER_FIELDS = {"workflowName": "string", "input": "object", "additionalMetadata": "object", "priority": "int",
                  "return_only_id": "bool"}
TRIGGER_STRUCT = "gen.V1TriggerWorkflowRunRequest"
CANCEL_FIELDS = {"externalIds": "uuids", "filter": "object"}
CANCEL_STRUCT = "gen.V1CancelTaskRequest"
_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"
_INTEGER = re.compile(r"-?(0|[1-9]\d*)")
_HEX = re.compile(r"[0-9a-fA-F]{32}")
_INT64 = 2**63


class BindError(ValueError):
    """A request the server refuses while binding it; ``str()`` is the message it answers with (400)."""


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    return i


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _mismatch(kind: str, value: Any, literal: str) -> str | None:
    """What Go reports binding ``value`` to a field of ``kind`` (``None``: it binds)."""
    if value is None:
        return None
    if kind == "int":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return None if _INTEGER.fullmatch(literal) and -_INT64 <= int(literal) < _INT64 else f"number {literal}"
        return _json_kind(value)
    wanted = {"string": str, "object": dict, "bool": bool, "uuids": list}[kind]
    return None if isinstance(value, wanted) and not (kind != "bool" and isinstance(value, bool)) \
        else _json_kind(value)


def _type_error(go_type: str, got: str, field: str, value: Any, start: int, end: int) -> BindError:
    offset = start + 1 if isinstance(value, (dict, list)) else end
    return BindError(f"Unmarshal type error: expected={go_type}, got={got}, field={field}, offset={offset}")


def _syntax_error(text: str, exc: json.JSONDecodeError) -> BindError:
    if exc.pos >= len(text.rstrip()):
        return BindError(f"Syntax error: offset={len(text)}, error=unexpected end of JSON input")
    return BindError(f"Syntax error: offset={exc.pos + 1}, error=invalid character {text[exc.pos]!r} "
                     "looking for beginning of value")


def bind_object(body: bytes, fields: Mapping[str, str], struct: str) -> dict[str, Any]:
    """Bind a JSON body to a struct of ``fields`` as the server does; an empty or ``null`` body binds nothing.

    Go keeps decoding after a field of the wrong type and reports the first one, with the byte offset just
    after the bad value (after the opening bracket for an array or object).

    :param body: the request body.
    :param fields: field name to kind (``string``, ``object``, ``int``, ``bool``, ``uuids``).
    :param struct: the Go type named when the body is not an object.
    :raises BindError: with the server's message.
    """
    text = body.decode("utf-8", "replace")
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _syntax_error(text, exc) from None
    start = _skip(text, 0)
    if value is None:
        return {}
    if not isinstance(value, dict):
        _, end = _DECODER.raw_decode(text, start)
        raise _type_error(struct, _json_kind(value), "", value, start, end)
    i = start + 1
    while True:
        i = _skip(text, i)
        if text[i] == "}":
            return value
        key, i = _DECODER.raw_decode(text, i)
        i = _skip(text, _skip(text, i) + 1)
        member, end = _DECODER.raw_decode(text, i)
        kind = fields.get(key)
        got = _mismatch(kind, member, text[i:end]) if kind else None
        if got is not None and kind is not None:
            raise _type_error(GO_TYPES[kind], got, key, member, i, end)
        i = _skip(text, end)
        if text[i] == ",":
            i += 1


def parse_uuid(value: Any) -> str:
    """Parse a UUID as Go's ``uuid.Parse`` does and return it canonical (lower case, with hyphens).

    :param value: the text.
    :raises BindError: ``invalid UUID length: N`` or ``invalid UUID format``.
    """
    text = str(value)
    if len(text) == 38 and text[0] == "{" and text[-1] == "}":
        text = text[1:-1]
    elif len(text) == 45 and text.lower().startswith("urn:uuid:"):
        text = text[9:]
    if len(text) == 36:
        if any(text[i] != "-" for i in (8, 13, 18, 23)):
            raise BindError("invalid UUID format")
        text = text.replace("-", "")
    elif len(text) != 32:
        raise BindError(f"invalid UUID length: {len(str(value))}")
    if not _HEX.fullmatch(text):
        raise BindError("invalid UUID format")
    h = text.lower()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_int(name: str, raw: str) -> int:
    """Bind an integer query parameter.

    :param name: the parameter.
    :param raw: its text.
    :raises BindError: with the server's message.
    """
    if _INTEGER.fullmatch(raw.lstrip("+")) and -_INT64 <= int(raw) < _INT64:
        return int(raw)
    raise BindError(f"Invalid format for parameter {name}: error binding string parameter: strconv.ParseInt: "
                    f"parsing {json.dumps(raw)}: invalid syntax")


_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(name: str, raw: str) -> bool:
    """Bind a boolean query parameter (Go's ``strconv.ParseBool``).

    :param name: the parameter.
    :param raw: its text.
    :raises BindError: with the server's message.
    """
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise BindError(f"Invalid format for parameter {name}: error binding string parameter: strconv.ParseBool: "
                    f"parsing {json.dumps(raw)}: invalid syntax")


def parse_rfc3339(value: str) -> float:
    """Parse an RFC 3339 timestamp (``T`` and a zone required) to a UNIX time.

    :param value: e.g. ``2026-01-01T00:00:00Z``.
    :raises ValueError: when it is not RFC 3339.
    """
    if "T" not in value.upper():
        raise ValueError(f"parsing time {value!r} as RFC3339")
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if stamp.tzinfo is None:
        raise ValueError(f"parsing time {value!r} as RFC3339")
    return stamp.timestamp()


def _date_problem(value: str) -> str:
    """Go's ``time.Parse("2006-01-02", value)`` error, for the common ways a value fails."""
    quoted = json.dumps(value)
    rest = value
    for element, pattern in (("2006", r"\d{4}"), ("-", "-"), ("01", r"\d{2}"), ("-", "-"), ("02", r"\d{2}")):
        match = re.match(pattern, rest)
        if match is None:
            return f'parsing time {quoted} as "2006-01-02": cannot parse {json.dumps(rest)} as "{element}"'
        rest = rest[match.end():]
    month, day = int(value[5:7]), int(value[8:10])
    if not 1 <= month <= 12:
        return f"parsing time {quoted}: month out of range"
    if rest:
        return f"parsing time {quoted}: extra text: {json.dumps(rest)}"
    return f"parsing time {quoted}: day out of range" if not 1 <= day <= 31 else ""


def parse_time_param(name: str, raw: str) -> float:
    """Bind a date-time query parameter: RFC 3339, else a plain date (UTC midnight), as oapi-codegen does.

    :param name: the parameter.
    :param raw: its text.
    :raises BindError: with the server's message.
    """
    try:
        return parse_rfc3339(raw)
    except ValueError:
        pass
    problem = _date_problem(raw)
    if not problem:
        try:
            return datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            problem = f"parsing time {json.dumps(raw)}: day out of range"
    raise BindError(f"Invalid format for parameter {name}: error parsing '{raw}' as RFC3339 or 2006-01-02 time: "
                    f"{problem}")


def metadata_filters(values: list[str]) -> dict[str, str]:
    """Turn ``k:v`` filters into the server's map: split on the first colon, no colon ignored, last key wins.

    :param values: the raw filters.
    """
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition(":")
        if sep:
            pairs[key] = value
    return pairs
