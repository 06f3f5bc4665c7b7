"""Client settings: the API token and what it implies (tenant, server URL), and the namespace rule."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_hatchet.client.errors import HatchetConfigError

DEFAULT_TIMEOUT = 30.0


def check_token_characters(token: str) -> None:
    """Refuse a token holding anything but visible ASCII: it goes into a header as it is.

    h11 would echo a token with a newline in full in its "Illegal header value" error, and a non-ASCII
    character gives a raw UnicodeEncodeError. The message says where the bad character is, never what it is.

    :param token: the API token, stripped.
    :raises HatchetConfigError: if a character is not visible ASCII.
    """
    for index, char in enumerate(token):
        if not "!" <= char <= "~":
            kind = "a non-ASCII character" if ord(char) > 127 else "whitespace or a control character"
            raise HatchetConfigError(
                f"The Hatchet API token holds {kind} at position {index + 1} of {len(token)}; a token is visible "
                "ASCII only. Copy it again from the Hatchet dashboard (Settings > API Tokens)."
            )


def decode_token_claims(token: str) -> dict[str, Any]:
    """Read the claims of a Hatchet API token without verifying its signature, as hatchet-sdk does.

    The token itself never appears in an error message.

    :param token: the API token, a JWT.
    :raises HatchetConfigError: if the token is not a JWT with a JSON payload.
    """
    parts = token.strip().split(".")
    if len(parts) != 3 or not token.startswith("ey"):
        raise HatchetConfigError(
            "The Hatchet API token is not a JWT (expected three dot-separated parts starting with 'ey'). "
            "Create an API token in the Hatchet dashboard under Settings > API Tokens."
        )
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        raise HatchetConfigError("The Hatchet API token's payload is not base64url-encoded JSON.") from None
    if not isinstance(claims, dict):
        raise HatchetConfigError("The Hatchet API token's payload is not a JSON object.")
    return claims


def normalize_namespace(namespace: str | None) -> str:
    """Normalize a namespace as hatchet-sdk does: lower-cased, with a trailing ``_``; empty for none.

    :param namespace: the namespace as configured, or None.
    """
    if not namespace:
        return ""
    if not namespace.endswith("_"):
        namespace = f"{namespace}_"
    return namespace.lower()


def apply_namespace(name: str, namespace: str | None) -> str:
    """Prefix a workflow name with the namespace unless it already starts with it; the name keeps its case.

    :param name: the workflow name.
    :param namespace: the namespace, normalized or not.
    """
    prefix = normalize_namespace(namespace)
    if not prefix or name.startswith(prefix):
        return name
    return prefix + name


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs to talk to one Hatchet tenant.

    Build it with :meth:`from_token`, which fills the tenant and server URL from the token's claims.

    :param token: the API token (kept out of ``repr``).
    :param server_url: the server's base URL, without a trailing slash.
    :param tenant_id: the tenant UUID.
    :param namespace: the normalized namespace (``""`` for none).
    :param verify: TLS verification: True, False, or a CA bundle path.
    :param timeout: seconds allowed for each request.
    :param proxy: the proxy URL for the server; None to follow ``HTTP(S)_PROXY``, ``ALL_PROXY`` and ``NO_PROXY``.
    :param grpc_address: the ``host:port`` of Hatchet's gRPC API; None when neither the token nor the
        connection gives one.
    :param grpc_tls: whether gRPC uses TLS (with ``verify`` as its CA bundle, if a path).
    """

    token: str = field(repr=False)
    server_url: str
    tenant_id: str
    namespace: str = ""
    verify: bool | str = True
    timeout: float = DEFAULT_TIMEOUT
    proxy: str | None = field(default=None, repr=False)
    grpc_address: str | None = None
    grpc_tls: bool = True

    def __post_init__(self) -> None:
        check_token_characters(self.token)

    @classmethod
    def from_token(
        cls,
        token: str,
        *,
        server_url: str | None = None,
        tenant_id: str | None = None,
        namespace: str | None = None,
        verify: bool | str = True,
        timeout: float | None = None,
        proxy: str | None = None,
        grpc_address: str | None = None,
        grpc_tls: bool = True,
    ) -> ClientConfig:
        """Build a config, taking the tenant from the ``sub`` claim and the URL from ``server_url`` unless given.

        :param token: the API token.
        :param server_url: overrides the token's ``server_url`` claim.
        :param tenant_id: overrides the token's ``sub`` claim.
        :param namespace: the namespace; normalized here.
        :param verify: TLS verification: True, False, or a CA bundle path.
        :param timeout: seconds allowed for each request.
        :param proxy: the proxy URL; None to follow the environment's proxy variables.
        :param grpc_address: overrides the token's ``grpc_broadcast_address`` claim.
        :param grpc_tls: whether gRPC uses TLS.
        :raises HatchetConfigError: if the token is malformed, a needed claim is missing, or the tenant is not a UUID.
        """
        if not token:
            raise HatchetConfigError("No Hatchet API token is configured (the connection's password is empty).")
        check_token_characters(token.strip())
        claims = decode_token_claims(token)
        url = server_url or claims.get("server_url")
        tenant = tenant_id or claims.get("sub")
        if not url:
            raise HatchetConfigError(
                "The Hatchet API token has no 'server_url' claim; set the server URL (the connection's host)."
            )
        if not tenant:
            raise HatchetConfigError("The Hatchet API token has no 'sub' (tenant) claim; set the tenant id.")
        source = "the API token's 'sub' claim"
        if tenant_id:
            source = "the connection extra 'tenant_id' or HATCHET_CLIENT_TENANT_ID"
        tenant = _tenant_uuid(str(tenant), source, token.strip())
        if not str(url).startswith(("http://", "https://")):
            url = f"https://{url}"
        return cls(
            token=token.strip(),
            server_url=str(url).rstrip("/"),
            tenant_id=str(tenant),
            namespace=normalize_namespace(namespace),
            verify=verify,
            timeout=DEFAULT_TIMEOUT if timeout is None else float(timeout),
            proxy=proxy or None,
            grpc_address=str(grpc_address or claims.get("grpc_broadcast_address") or "") or None,
            grpc_tls=grpc_tls,
        )

    def run_url(self, run_id: str) -> str:
        """The dashboard link of a run: ``{server_url}/tenants/{tenant}/runs/{run_id}``.

        :param run_id: the run id.
        """
        return f"{self.server_url}/tenants/{self.tenant_id}/runs/{run_id}"


def _tenant_uuid(tenant: str, source: str, token: str) -> str:
    """The tenant id as Hatchet writes it (a lowercase UUID): it goes into every tenant's path."""
    try:
        return str(uuid.UUID(tenant.strip()))
    except ValueError:
        pass
    # The token pasted into the tenant field must not be echoed.
    pasted = tenant.strip()
    a_token = pasted.startswith("eyJ") or (len(pasted) >= 16 and (pasted in token or token in pasted))
    shown = "a token, not a tenant id," if a_token else repr(tenant[:40])
    raise HatchetConfigError(
        f"The Hatchet tenant id {shown} ({source}) is not a UUID: Hatchet names a tenant by its UUID, shown in the "
        "dashboard's tenant settings."
    )
