"""Hatchet's gRPC API: single and bulk triggers and events, with no Airflow and no ``protoc``.

``grpc`` is imported only when a channel is opened, so importing the provider never loads it. Modules:
``channel.py`` (one channel per server and event loop), ``client.py`` (the calls), ``errors.py`` (status codes to
the client's errors), ``chunks.py`` (requests cut under the message limit), ``bulk.py`` (the bulk engine's
sender), ``probe.py`` (how ``auto`` chooses gRPC or REST). The messages are in ``airflow_provider_hatchet._protos``.
"""

from __future__ import annotations

from typing import Literal, cast

from airflow_provider_hatchet.client.validation import check_choice

Transport = Literal["auto", "grpc", "rest"]

TRANSPORTS: tuple[Transport, ...] = ("auto", "grpc", "rest")
# The most runs per BulkTriggerWorkflow request, as the SDKs send them.
MAX_CHUNK_RUNS = 1000
# The most events per BulkPush request (the engine's own cap).
MAX_CHUNK_EVENTS = 1000


def check_transport(transport: object) -> Transport:
    """``transport`` if it is one of :data:`TRANSPORTS`, as the operators take it.

    :param transport: ``auto``, ``grpc`` or ``rest``.
    :raises HatchetValidationError: naming the field and the choices.
    """
    return cast(Transport, check_choice(transport, TRANSPORTS, "transport"))
