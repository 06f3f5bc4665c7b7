"""Response values and the error bodies the Hatchet server sends."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

JSON_HEADERS: tuple[tuple[bytes, bytes], ...] = ((b"content-type", b"application/json"),)

INVALID_CREDENTIALS = "Please provide valid credentials"
_ENCODER = json.JSONEncoder(separators=(",", ":"))


@dataclass(slots=True)
class SimResponse:
    """What the simulator answers to one request.

    :param status: HTTP status code.
    :param body: the encoded JSON body.
    :param delay: seconds the transport waits before answering (latency, slow handlers).
    :param drop: when true the connection breaks instead of a complete response.
    """

    status: int
    body: bytes
    delay: float = 0.0
    drop: bool = False


def dumps(value: Any) -> bytes:
    """Encode a JSON value compactly.

    :param value: any JSON-serialisable value.
    """
    return _ENCODER.encode(value).encode()


def json_response(status: int, value: Any) -> SimResponse:
    """Build a JSON response.

    :param status: HTTP status code.
    :param value: the body.
    """
    return SimResponse(status, dumps(value))


def message(status: int, text: str) -> SimResponse:
    """Build an echo-middleware style error ``{"message": text}``.

    :param status: HTTP status code.
    :param text: the message.
    """
    return SimResponse(status, dumps({"message": text}))


def api_errors(status: int, description: str) -> SimResponse:
    """Build a handler style error ``{"errors": [{"description": ...}]}``.

    :param status: HTTP status code.
    :param description: the error description.
    """
    return SimResponse(status, dumps({"errors": [{"description": description}]}))


def forbidden() -> SimResponse:
    """Return the 403 the server sends for any authentication or authorisation failure."""
    return message(403, INVALID_CREDENTIALS)


def not_found() -> SimResponse:
    """Return the populator's 404."""
    return message(404, "not found")


def injected_error(status: int) -> SimResponse:
    """Return the body a failing server or proxy sends for an injected status.

    :param status: 429 gives a ``null`` body; 5xx an echo message; other codes APIErrors.
    """
    if status == 429:
        return SimResponse(429, b"null")
    if status >= 500:
        texts = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
                 504: "Gateway Timeout"}
        return message(status, texts.get(status, "Internal Server Error"))
    return api_errors(status, "rejected by the simulator")
