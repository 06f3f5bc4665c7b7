"""HS256 JSON Web Tokens shaped like Hatchet's tenant API tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any


class TokenError(ValueError):
    """The token is malformed or its signature does not match."""


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_HEADER = _b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())


def encode(claims: dict[str, Any], secret: bytes) -> str:
    """Sign claims into a compact JWT.

    :param claims: the payload.
    :param secret: the HMAC key.
    """
    payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{_HEADER}.{payload}".encode()
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{_HEADER}.{payload}.{_b64encode(signature)}"


def decode(token: str, secret: bytes) -> dict[str, Any]:
    """Verify a JWT's signature and return its claims (expiry is the caller's business).

    :param token: the compact JWT.
    :param secret: the HMAC key.
    :raises TokenError: when the token is malformed or the signature is wrong.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("token must have three parts")
    header, payload, signature = parts
    expected = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    try:
        given = _b64decode(signature)
        if not hmac.compare_digest(expected, given):
            raise TokenError("bad signature")
        if json.loads(_b64decode(header)).get("alg") != "HS256":
            raise TokenError("unexpected algorithm")
        claims = json.loads(_b64decode(payload))
    except (ValueError, AttributeError) as exc:
        raise TokenError(str(exc)) from exc
    if not isinstance(claims, dict):
        raise TokenError("claims must be an object")
    return claims
