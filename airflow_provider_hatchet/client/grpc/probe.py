"""How ``transport='auto'`` chooses between gRPC and REST, for a batch of runs and for a single one alike."""

from __future__ import annotations

from airflow_provider_hatchet.client.config import ClientConfig
from airflow_provider_hatchet.client.errors import HatchetBadRequestError, HatchetError
from airflow_provider_hatchet.client.grpc import check_transport
from airflow_provider_hatchet.client.grpc.channel import grpc_target
from airflow_provider_hatchet.client.grpc.client import AsyncGrpcClient

# Seconds ``auto`` waits for the gRPC server to accept a connection, then to answer the empty probe call.
PROBE_TIMEOUT = 5.0


async def choose_client(config: ClientConfig, transport: str,
                        probe_timeout: float = PROBE_TIMEOUT) -> tuple[AsyncGrpcClient | None, str]:
    """A gRPC client, or None for REST with the reason in a few words.

    ``grpc`` always uses gRPC. ``auto`` uses it when there is a gRPC address, the server accepts a connection on
    it and answers a call that creates nothing (an empty bulk trigger), else REST; a connection never made means
    nothing was sent, so REST is safe. ``rest`` never opens a channel.

    :param config: the client settings.
    :param transport: ``auto``, ``grpc`` or ``rest``.
    :param probe_timeout: seconds ``auto`` waits for the connection, then for the empty call's answer.
    :raises HatchetConfigError: for ``grpc`` with no gRPC address.
    """
    if check_transport(transport) == "rest":
        return None, "transport='rest'"
    if transport == "auto" and not config.grpc_address:
        return None, "the token has no gRPC address and the connection sets no 'grpc_address'"
    client = AsyncGrpcClient(config)
    target = grpc_target(config)
    if transport == "auto":
        if not await client.ready(probe_timeout):
            return None, f"Hatchet's gRPC API at {target} did not accept a connection"
        try:
            await client.serves(probe_timeout)
        except HatchetBadRequestError:
            pass  # the engine itself judged the empty request
        except HatchetError as exc:
            return None, (f"{target} accepted a connection but failed a gRPC call that creates nothing (an empty "
                          f"bulk trigger): '{exc}'")
    return client, f"over gRPC at {target}"
