"""Tenant API tokens: minting, revocation and the server's validation rules."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from . import _jwt

DEFAULT_EXPIRES_IN = 90 * 24 * 3600.0
_CACHE_LIMIT = 4096


def normalize_url(url: str) -> str:
    """Strip the trailing slash of a server URL.

    :param url: the URL.
    """
    return url.rstrip("/")


def grpc_address(server_url: str) -> str:
    """Return a ``host:port`` gRPC broadcast address next to the server URL.

    :param server_url: the REST base URL.
    """
    return f"{urlsplit(server_url).hostname or '127.0.0.1'}:7070"


class TokenAuthority:
    """Mints and validates HS256 tokens with Hatchet's claims.

    :param wall_clock: returns the current UNIX time (expiry is checked against it).
    :param secret: HMAC key; random when omitted.
    """

    def __init__(self, wall_clock: Callable[[], float], secret: bytes | None = None) -> None:
        self._wall_clock = wall_clock
        self._secret = secret or secrets.token_bytes(32)
        self._token_ids: dict[str, bool] = {}
        self._verified: dict[str, dict[str, Any]] = {}
        self.server_url = ""
        self.grpc_address: str | None = None

    def mint(
        self,
        tenant_id: str,
        server_url: str,
        *,
        token_id: str,
        expires_in: float = DEFAULT_EXPIRES_IN,
        revoked: bool = False,
    ) -> str:
        """Create a token and record its ``token_id``.

        :param tenant_id: the ``sub`` claim.
        :param server_url: the ``server_url`` claim (also ``iss`` and ``aud``).
        :param token_id: the token row id.
        :param expires_in: seconds until ``exp``; negative gives an expired token.
        :param revoked: record the token as revoked.
        """
        now = int(self._wall_clock())
        url = normalize_url(server_url)
        claims = {
            "sub": tenant_id,
            "iss": url,
            "aud": [url],
            "iat": now,
            "exp": now + int(expires_in),
            "token_id": token_id,
            "server_url": url,
            "grpc_broadcast_address": self.grpc_address or grpc_address(url),
        }
        self._token_ids[token_id] = revoked
        return _jwt.encode(claims, self._secret)

    def revoke(self, token: str) -> None:
        """Revoke a token minted here.

        :param token: the token.
        """
        claims = _jwt.decode(token, self._secret)
        self._token_ids[str(claims.get("token_id"))] = True
        self._verified.pop(token, None)

    def verify(self, authorization: str | None) -> dict[str, Any] | None:
        """Return the claims of a valid bearer token, else ``None``.

        The header is split on ``"Bearer"`` and trimmed, as the server does. The token must be signed here,
        unexpired, not revoked, and carry ``server_url`` equal to :attr:`server_url`.

        :param authorization: the ``Authorization`` header value.
        """
        if not authorization or "Bearer" not in authorization:
            return None
        return self._claims(authorization.split("Bearer", 1)[1].strip())

    def verify_grpc(self, authorization: str | None) -> dict[str, Any] | None:
        """Return the claims of a valid token in gRPC ``authorization`` metadata, else ``None``.

        As the engine reads it (v0.105.0): the value is cut at its first space, the scheme before it is compared
        case-insensitively (hatchet-sdk sends ``bearer``, the provider ``Bearer``), and the rest is the token as it
        is, so a second space or a leading one is refused. The REST header rule (:meth:`verify`) is case-sensitive.

        :param authorization: the ``authorization`` metadata value.
        """
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return self._claims(token)

    def _claims(self, token: str) -> dict[str, Any] | None:
        claims = self._verified.get(token)
        if claims is None:
            try:
                claims = _jwt.decode(token, self._secret)
            except _jwt.TokenError:
                return None
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified[token] = claims
        if self._token_ids.get(str(claims.get("token_id")), True):
            return None
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp <= self._wall_clock():
            return None
        if normalize_url(str(claims.get("server_url", ""))) != self.server_url:
            return None
        return claims
