"""``grpc.aio`` channels: one per server and event loop, shared by every client on it, closed with the loop's work.

A ``grpc.aio`` channel belongs to the event loop it was made in, so the cache is per loop; whoever runs the loop
(an operator's ``asyncio.run``, the triggerer) calls :func:`close_channels` before the loop ends.

Proxies: grpcio follows ``grpc_proxy``, then ``https_proxy`` / ``http_proxy`` (and ``no_grpc_proxy`` /
``no_proxy``) by itself; the connection's ``proxy`` extra, when it is an ``http://`` URL, takes their place.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from airflow_provider_hatchet.client.config import ClientConfig
from airflow_provider_hatchet.client.errors import HatchetConfigError

# Hatchet's default receive limit; chunks are kept well under it.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

_CHANNELS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], Any]] = (
    weakref.WeakKeyDictionary())


def grpc_target(config: ClientConfig) -> str:
    """The ``host:port`` to dial.

    :param config: the client settings.
    :raises HatchetConfigError: when neither the token nor the connection names a gRPC address.
    """
    if not config.grpc_address:
        raise HatchetConfigError(
            "No gRPC address for Hatchet: the API token has no 'grpc_broadcast_address' claim; set the connection "
            "extra 'grpc_address' (host:port)."
        )
    return config.grpc_address


def channel_options(config: ClientConfig) -> list[tuple[str, Any]]:
    """The channel arguments: message limits, keepalive as hatchet-sdk sets them, and the proxy.

    :param config: the client settings.
    """
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_timeout_ms", 60_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.keepalive_permit_without_calls", 1),
    ]
    if config.proxy and config.proxy.startswith("http://"):
        options.append(("grpc.http_proxy", config.proxy))
    return options


def open_channel(config: ClientConfig) -> Any:
    """Open a new ``grpc.aio`` channel in the running loop: TLS with the system roots or the ``verify`` CA bundle
    unless ``grpc_tls`` is off.

    :param config: the client settings.
    """
    import grpc

    target = grpc_target(config)
    if not config.grpc_tls:
        return grpc.aio.insecure_channel(target, options=channel_options(config))
    root = None
    if isinstance(config.verify, str):
        with open(config.verify, "rb") as bundle:
            root = bundle.read()
    credentials = grpc.ssl_channel_credentials(root_certificates=root)
    return grpc.aio.secure_channel(target, credentials, options=channel_options(config))


def shared_channel(config: ClientConfig) -> Any:
    """The running loop's channel to this config's server, opened on first use.

    :param config: the client settings.
    """
    key = (grpc_target(config), config.grpc_tls, config.verify, config.proxy)
    channels = _CHANNELS.setdefault(asyncio.get_running_loop(), {})
    if key not in channels:
        channels[key] = open_channel(config)
    return channels[key]


async def close_channels() -> None:
    """Close the running loop's channels."""
    channels = _CHANNELS.pop(asyncio.get_running_loop(), {})
    for channel in channels.values():
        await channel.close()
