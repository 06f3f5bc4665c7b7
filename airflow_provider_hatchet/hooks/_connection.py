"""Turning an Airflow connection, or hatchet-sdk's environment variables, into a :class:`ClientConfig`."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from typing import Any

import httpx

from airflow_provider_hatchet._compat import AirflowNotFoundException, BaseHook
from airflow_provider_hatchet.client.config import ClientConfig
from airflow_provider_hatchet.client.errors import HatchetConfigError

ENV_TOKEN = "HATCHET_CLIENT_TOKEN"
ENV_SERVER_URL = "HATCHET_CLIENT_SERVER_URL"
ENV_TENANT_ID = "HATCHET_CLIENT_TENANT_ID"
ENV_NAMESPACE = "HATCHET_CLIENT_NAMESPACE"
ENV_HOST_PORT = "HATCHET_CLIENT_HOST_PORT"
ENV_TLS_STRATEGY = "HATCHET_CLIENT_TLS_STRATEGY"

log = logging.getLogger(__name__)


def get_airflow_connection(conn_id: str) -> Any | None:
    """The Airflow connection ``conn_id`` from Airflow's sync lookup, or None if it does not exist.

    :param conn_id: the connection id.
    """
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


async def aget_airflow_connection(conn_id: str) -> Any | None:
    """The Airflow connection ``conn_id`` without blocking the event loop, or None if no lookup finds it.

    Airflow 3's async lookup misses the metadata DB under ``airflow dags test`` and ``dag.test()``
    (apache/airflow#63929), so its "not found" is checked with the sync lookup, in a thread, before the caller
    falls back to the environment.

    :param conn_id: the connection id.
    """
    from asgiref.sync import sync_to_async

    if hasattr(BaseHook, "aget_connection"):
        try:
            return await BaseHook.aget_connection(conn_id)
        except AirflowNotFoundException:
            pass
    conn = await sync_to_async(get_airflow_connection)(conn_id)
    if conn is not None and hasattr(BaseHook, "aget_connection"):
        log.debug("Connection %r was found by Airflow's sync lookup only.", conn_id)
    return conn


def extra_value(extra: Mapping[str, Any], name: str) -> Any:
    """Read an extra field by its name, or by Airflow 2's ``extra__hatchet__<name>`` form field name.

    :param extra: the connection's extra, decoded.
    :param name: the field name, e.g. ``namespace``.
    """
    value = extra.get(name)
    if value in (None, ""):
        value = extra.get(f"extra__hatchet__{name}")
    return None if value == "" else value


def parse_verify(value: Any) -> bool | str:
    """Read the ``verify`` extra: TLS verification on by default, ``false`` to skip it, or a CA bundle path.

    :param value: the extra's value.
    """
    if value is None or value is True:
        return True
    if value is False:
        return False
    text = str(value).strip()
    if text.lower() in ("true", "1", "yes", "on", ""):
        return True
    if text.lower() in ("false", "0", "no", "off"):
        return False
    if not os.path.isfile(text):
        problem = "a directory" if os.path.isdir(text) else "not an existing file"
        raise HatchetConfigError(
            f"The connection extra 'verify' must be true, false or the path of a CA bundle file; {text!r} is "
            f"{problem} on this machine."
        )
    return text


def parse_timeout(value: Any) -> float | None:
    """Read the ``timeout`` extra: a finite number of seconds above zero, or None for the default.

    :param value: the extra's value.
    :raises HatchetConfigError: naming the extra, if it is not such a number.
    """
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise HatchetConfigError(
            f"The connection extra 'timeout' must be a number of seconds above zero, got {value!r}"
        )
    return seconds


def parse_proxy(value: Any) -> str | None:
    """Read the ``proxy`` extra: one proxy URL for the Hatchet server, or None to follow the environment.

    The URL is never echoed: it may hold a password.

    :param value: the extra's value.
    :raises HatchetConfigError: naming the extra, if it is not an ``http``, ``https`` or ``socks5(h)`` URL.
    """
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        usable = bool(httpx.Proxy(text).url.host)
    except (ValueError, TypeError, httpx.InvalidURL):
        usable = False
    if not usable:
        raise HatchetConfigError(
            "The connection extra 'proxy' must be a proxy URL such as http://proxy.internal:3128 (schemes http, "
            "https, socks5, socks5h)."
        )
    return text


def parse_grpc_tls(value: Any) -> bool:
    """Read the ``grpc_tls`` extra: TLS on by default; ``false`` for a local server without it.

    :param value: the extra's value.
    :raises HatchetConfigError: naming the extra, if it is not a boolean.
    """
    if value is None or isinstance(value, bool):
        return value is not False
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on", ""):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise HatchetConfigError(f"The connection extra 'grpc_tls' must be true or false, got {value!r}")


def parse_grpc_address(value: Any) -> str | None:
    """Read the ``grpc_address`` extra: ``host:port`` of Hatchet's gRPC API, or None for the token's claim.

    :param value: the extra's value.
    :raises HatchetConfigError: naming the extra, if it is not ``host:port``.
    """
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    host, _, port = text.rpartition(":")
    if not host or "://" in text or "/" in text or not port.isdigit() or not 0 < int(port) < 65536:
        raise HatchetConfigError(
            f"The connection extra 'grpc_address' must be host:port, such as hatchet.internal:7070, got {text!r}"
        )
    return text


def server_url_from_connection(host: str | None, schema: str | None, port: int | None) -> str | None:
    """Build the server URL from the connection's host (a URL or a bare host name), schema and port.

    :param host: the connection host, e.g. ``https://cloud.onhatchet.run`` or ``hatchet.internal``.
    :param schema: ``http`` or ``https`` when the host has no scheme (default https).
    :param port: an optional port for a bare host name.
    """
    if not host:
        return None
    if "://" in host:
        return host.rstrip("/")
    scheme = schema if schema in ("http", "https") else "https"
    return f"{scheme}://{host}{f':{port}' if port else ''}".rstrip("/")


def config_from_connection(
    password: str | None,
    host: str | None,
    schema: str | None,
    port: int | None,
    extra: Mapping[str, Any],
    namespace: str | None,
) -> ClientConfig:
    """Build the client settings from a connection's fields.

    :param password: the API token.
    :param host: the server URL, optional (default: the token's ``server_url`` claim).
    :param schema: the URL scheme when ``host`` has none.
    :param port: the port when ``host`` has none.
    :param extra: the decoded extra: ``namespace``, ``tenant_id``, ``verify``, ``timeout``, ``proxy``,
        ``grpc_address``, ``grpc_tls``.
    :param namespace: overrides the connection's namespace when not None.
    """
    timeout_value = parse_timeout(extra_value(extra, "timeout"))
    return ClientConfig.from_token(
        password or "",
        server_url=server_url_from_connection(host, schema, port),
        tenant_id=extra_value(extra, "tenant_id"),
        namespace=extra_value(extra, "namespace") if namespace is None else namespace,
        verify=parse_verify(extra_value(extra, "verify")),
        timeout=timeout_value,
        proxy=parse_proxy(extra_value(extra, "proxy")),
        grpc_address=parse_grpc_address(extra_value(extra, "grpc_address")),
        grpc_tls=parse_grpc_tls(extra_value(extra, "grpc_tls")),
    )


def config_from_environment(namespace: str | None) -> ClientConfig | None:
    """Build the client settings from hatchet-sdk's ``HATCHET_CLIENT_*`` variables, or None if no token is set.

    :param namespace: overrides ``HATCHET_CLIENT_NAMESPACE`` when not None.
    """
    token = os.environ.get(ENV_TOKEN)
    if not token:
        return None
    return ClientConfig.from_token(
        token,
        server_url=os.environ.get(ENV_SERVER_URL) or None,
        tenant_id=os.environ.get(ENV_TENANT_ID) or None,
        namespace=os.environ.get(ENV_NAMESPACE) if namespace is None else namespace,
        grpc_address=os.environ.get(ENV_HOST_PORT) or None,
        grpc_tls=os.environ.get(ENV_TLS_STRATEGY, "tls").strip().lower() != "none",
    )


def decode_extra(extra: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Decode a connection extra given as JSON text or a mapping.

    :param extra: the raw extra.
    """
    if not extra:
        return {}
    if isinstance(extra, Mapping):
        return dict(extra)
    try:
        value = json.loads(extra)
    except ValueError:
        raise HatchetConfigError("The Hatchet connection's extra is not valid JSON.") from None
    if not isinstance(value, dict):
        raise HatchetConfigError("The Hatchet connection's extra must be a JSON object.")
    return value
