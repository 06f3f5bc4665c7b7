"""gRPC status codes mapped into the client's :class:`~airflow_provider_hatchet.client.errors.HatchetError` tree.

The API errors carry the HTTP status grpc-gateway gives each code, so code that checks ``status_code`` (the bulk
engine's fatal statuses) treats both transports alike.
"""

from __future__ import annotations

import re
from typing import Any

from airflow_provider_hatchet.client.endpoints import scrub
from airflow_provider_hatchet.client.errors import (
    HatchetAlreadyExistsError,
    HatchetAPIError,
    HatchetAuthError,
    HatchetBadRequestError,
    HatchetError,
    HatchetNotFoundError,
    HatchetRateLimitError,
    HatchetServerError,
    HatchetTransportError,
    HatchetUnexpectedResponseError,
)

# grpcio's "CLIENT: Sent message larger than max (5000028 vs. 4194304)"; the engine's "grpc: received message
# larger than max (5000047 vs. 4194304)".
_TOO_LARGE = re.compile(r"(sent|received) message larger than max \((\d+) vs\. (\d+)\)", re.IGNORECASE)
# Codes that say the call may or may not have been carried out: the connection, the stream or the deadline gave out.
_TRANSPORT = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"})
_STATUS = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "ABORTED": 409, "RESOURCE_EXHAUSTED": 429,
    "UNIMPLEMENTED": 501, "INTERNAL": 500, "UNKNOWN": 500, "DATA_LOSS": 500,
}


class GrpcUnavailableError(HatchetTransportError):
    """UNAVAILABLE: nothing answered the call, or a proxy in front found no healthy engine; it may have been sent."""


class GrpcUnimplementedError(HatchetUnexpectedResponseError):
    """UNIMPLEMENTED: whatever answers at the gRPC address does not serve the call; nothing was created."""


class GrpcMessageTooLargeError(HatchetAPIError):
    """RESOURCE_EXHAUSTED for a request over the gRPC message limit, from this client (nothing was sent) or from the
    server (nothing was created): a request too large for the configured limit, not a rate limit, so not retried.

    :param size: the request's bytes.
    :param limit: the limit it passed.
    :param message: the readable text.
    :param method: ``gRPC``.
    :param path: the method path.
    """

    def __init__(self, size: int, limit: int, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(413, message, method=method, path=path)
        self.size = size
        self.limit = limit


# The failures that say gRPC does not work behind the address at all, so ``auto`` may go on over REST.
UNUSABLE = (GrpcUnavailableError, GrpcUnimplementedError)


def existing_run_ids(trailing_metadata: Any) -> list[str]:
    """The ids of the runs holding the colliding idempotency keys, from an ALREADY_EXISTS answer's
    ``google.rpc.Status`` details (``IdempotencyCollisionError`` or, for a bulk trigger,
    ``BulkTriggerIdempotencyCollisionError``); empty when it names none.

    :param trailing_metadata: the call's trailing metadata (pairs of key and value).
    """
    from airflow_provider_hatchet import _protos

    found: list[str] = []
    for key, value in trailing_metadata or ():
        if key != _protos.STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            for detail in _protos.Status.FromString(value).details:
                kind = detail.type_url.rsplit("/", 1)[-1]
                if kind == _protos.IDEMPOTENCY_COLLISION:
                    found.append(_protos.IdempotencyCollisionError.FromString(detail.value).existing_run_external_id)
                elif kind == _protos.BULK_IDEMPOTENCY_COLLISION:
                    bulk = _protos.BulkTriggerIdempotencyCollisionError.FromString(detail.value)
                    found += [collision.existing_run_external_id for collision in bulk.collisions]
        except Exception:  # a detail we cannot read leaves the ids unknown; the call failed anyway
            return []
    return [str(run_id) for run_id in found if run_id]


def grpc_error(exc: Any, method: str, token: str = "") -> HatchetError:
    """Map a failed gRPC call (``grpc.RpcError`` / ``grpc.aio.AioRpcError``) to the client's error tree.

    - UNAVAILABLE (:class:`GrpcUnavailableError`), DEADLINE_EXCEEDED, CANCELLED: :class:`HatchetTransportError`
      that may have been sent.
    - RESOURCE_EXHAUSTED: :class:`GrpcMessageTooLargeError` for a message over the size limit (either side's),
      else :class:`HatchetRateLimitError`.
    - UNAUTHENTICATED, PERMISSION_DENIED: :class:`HatchetAuthError`.
    - INVALID_ARGUMENT (and FAILED_PRECONDITION, OUT_OF_RANGE): :class:`HatchetBadRequestError`.
    - NOT_FOUND: :class:`HatchetNotFoundError`.
    - ALREADY_EXISTS: :class:`HatchetAlreadyExistsError` with the existing runs' ids when the server gives them.
    - UNIMPLEMENTED: :class:`GrpcUnimplementedError`, a :class:`HatchetUnexpectedResponseError` (the address is not
      Hatchet's gRPC API).
    - anything else (INTERNAL, UNKNOWN, ...): :class:`HatchetServerError`, which may have created the run.

    :param exc: the gRPC error.
    :param method: the full method path, e.g. ``/WorkflowService/BulkTriggerWorkflow``.
    :param token: the API token, removed from the server's text.
    """
    code = exc.code()
    name = str(getattr(code, "name", code))
    details = scrub(str(exc.details() or name), token)
    if name == "UNAVAILABLE":
        return GrpcUnavailableError(f"gRPC {method} failed: {name}: {details}", maybe_sent=True)
    if name in _TRANSPORT:
        return HatchetTransportError(f"gRPC {method} failed: {name}: {details}", maybe_sent=True)
    status = _STATUS.get(name, 500)
    where = {"method": "gRPC", "path": method}
    if name in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return HatchetAuthError(status, f"{name}: {details}", **where)
    if status == 400:
        return HatchetBadRequestError(status, f"{name}: {details}", descriptions=[details], **where)
    if name == "NOT_FOUND":
        return HatchetNotFoundError(status, f"{name}: {details}", **where)
    if name == "ALREADY_EXISTS":
        run_ids = existing_run_ids(exc.trailing_metadata())
        text = f"{name}: {details}" + (f" (existing runs {', '.join(run_ids)})" if run_ids else "")
        return HatchetAlreadyExistsError(status, text, existing_run_ids=run_ids, **where)
    if name == "RESOURCE_EXHAUSTED":
        too_large = _TOO_LARGE.search(details)
        if too_large:
            size, limit = int(too_large[2]), int(too_large[3])
            whose = "this client's" if too_large[1].lower() == "sent" else "the server's"
            return GrpcMessageTooLargeError(size, limit, (
                f"the request is {size:,} bytes, over {whose} gRPC message limit of {limit:,} bytes; send less "
                f"per request (fewer or smaller runs or events) ({name}: {details})"), **where)
        return HatchetRateLimitError(status, f"{name}: {details}", **where)
    if name == "UNIMPLEMENTED":
        return GrpcUnimplementedError(status, f"{name}: {details}; is the gRPC address Hatchet's gRPC API?", **where)
    return HatchetServerError(status, f"{name}: {details}", **where)
