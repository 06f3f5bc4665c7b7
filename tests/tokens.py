"""Unsigned test tokens with chosen claims (the client never verifies signatures, as hatchet-sdk)."""

from __future__ import annotations

import base64
import json
from typing import Any

TENANT = "707d0855-80ab-4e1f-a156-f1c4546cbf52"
SERVER = "https://hatchet.example.com"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def make_token(**claims: Any) -> str:
    """A JWT-shaped token with ``sub`` and ``server_url`` defaults, overridable or removable (value None)."""
    payload = {"sub": TENANT, "server_url": SERVER, "iss": SERVER, "aud": SERVER, "token_id": "t-1"}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return f"{_b64({'alg': 'ES256', 'typ': 'JWT'})}.{_b64(payload)}.c2lnbmF0dXJlLXNlY3JldC1wYXJ0"
