"""A typed client for Hatchet's REST and gRPC APIs, sync and async. It knows nothing of Airflow.

This package is the client's public surface: operators, sensors and triggers import from it (and from its call
modules ``endpoints`` and ``scheduling``, and its checks in ``validation``), never from its other modules (an
import-linter contract in pyproject.toml). A call is sent as it is: ``client.send(endpoints.run_details(run_id))``.
The gRPC client is imported on first use only (``grpc`` loads with it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_hatchet.client.aio import AsyncHatchetClient
from airflow_provider_hatchet.client.batch_runs import find_batch_runs, ids_digest
from airflow_provider_hatchet.client.bridge import Bridge
from airflow_provider_hatchet.client.bulk import (
    BulkProgress,
    BulkResult,
    BulkTrigger,
    TriggerSender,
    may_have_created,
)
from airflow_provider_hatchet.client.bulk_result import HatchetBulkTriggerError
from airflow_provider_hatchet.client.config import ClientConfig, apply_namespace, normalize_namespace
from airflow_provider_hatchet.client.endpoints import RUN_VISIBILITY_WINDOW
from airflow_provider_hatchet.client.errors import (
    HatchetAlreadyExistsError,
    HatchetAPIError,
    HatchetAuthError,
    HatchetBadRequestError,
    HatchetConfigError,
    HatchetError,
    HatchetMalformedResponseError,
    HatchetNotFoundError,
    HatchetRateLimitError,
    HatchetRetryableError,
    HatchetServerError,
    HatchetTransportError,
    HatchetUnexpectedResponseError,
    HatchetValidationError,
)
from airflow_provider_hatchet.client.escaping import safe_text
from airflow_provider_hatchet.client.events import check_events
from airflow_provider_hatchet.client.grpc import (
    MAX_CHUNK_EVENTS,
    MAX_CHUNK_RUNS,
    TRANSPORTS,
    Transport,
    check_transport,
)
from airflow_provider_hatchet.client.models import (
    REUSABLE_STATUSES,
    TERMINAL_STATUSES,
    UNFINISHED_STATUSES,
    UNSUCCESSFUL_STATUSES,
    RunDetails,
    RunPage,
    RunStatus,
    RunSummary,
    TaskSummary,
    Workflow,
)
from airflow_provider_hatchet.client.paging import Pages
from airflow_provider_hatchet.client.retry import DEFAULT_RETRY, RetryPolicy
from airflow_provider_hatchet.client.run_actions import REPLAY_SETTLE_TIMEOUT, shown_ids
from airflow_provider_hatchet.client.run_filter import RunFilter
from airflow_provider_hatchet.client.run_wait import (
    INLINE_RUN_IDS,
    LISTEN_CHOICES,
    Listen,
    Log,
    RunWait,
    WaitResume,
    check_listen,
)
from airflow_provider_hatchet.client.scheduling import Cron, HatchetEvent, ScheduledRun, check_time
from airflow_provider_hatchet.client.server_clock import ServerClock
from airflow_provider_hatchet.client.sync import HatchetClient
from airflow_provider_hatchet.client.trigger_request import TriggerRequest
from airflow_provider_hatchet.client.wait_event import WaitEvent, WaitStatus
from airflow_provider_hatchet.client.waiter import (
    BATCH_SINCE_MARGIN,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_NOT_FOUND_GRACE,
    RunWaitError,
    WaitState,
    cancel_unfinished,
    check_round,
)
from airflow_provider_hatchet.client.watching import (
    Item,
    Snapshot,
    Watermark,
    event_snapshot,
    run_snapshot,
)
from airflow_provider_hatchet.client.workers import (
    DEFAULT_QUEUED_GRACE,
    WORKER_CHECKS,
    Worker,
    WorkerCheck,
    check_workers_mode,
)

if TYPE_CHECKING:
    from airflow_provider_hatchet.client.grpc.channel import close_channels
    from airflow_provider_hatchet.client.grpc.client import AsyncGrpcClient, EventSpec

# Names whose modules import grpc: loaded on first access.
_LAZY = {
    "AsyncGrpcClient": "airflow_provider_hatchet.client.grpc.client",
    "EventSpec": "airflow_provider_hatchet.client.grpc.client",
    "close_channels": "airflow_provider_hatchet.client.grpc.channel",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "BATCH_SINCE_MARGIN",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_NOT_FOUND_GRACE",
    "DEFAULT_QUEUED_GRACE",
    "DEFAULT_RETRY",
    "INLINE_RUN_IDS",
    "LISTEN_CHOICES",
    "MAX_CHUNK_EVENTS",
    "MAX_CHUNK_RUNS",
    "REPLAY_SETTLE_TIMEOUT",
    "REUSABLE_STATUSES",
    "RUN_VISIBILITY_WINDOW",
    "TERMINAL_STATUSES",
    "TRANSPORTS",
    "UNFINISHED_STATUSES",
    "UNSUCCESSFUL_STATUSES",
    "WORKER_CHECKS",
    "AsyncGrpcClient",
    "AsyncHatchetClient",
    "Bridge",
    "BulkProgress",
    "BulkResult",
    "BulkTrigger",
    "ClientConfig",
    "Cron",
    "EventSpec",
    "HatchetAPIError",
    "HatchetAlreadyExistsError",
    "HatchetAuthError",
    "HatchetBadRequestError",
    "HatchetBulkTriggerError",
    "HatchetClient",
    "HatchetConfigError",
    "HatchetError",
    "HatchetEvent",
    "HatchetMalformedResponseError",
    "HatchetNotFoundError",
    "HatchetRateLimitError",
    "HatchetRetryableError",
    "HatchetServerError",
    "HatchetTransportError",
    "HatchetUnexpectedResponseError",
    "HatchetValidationError",
    "Item",
    "Listen",
    "Log",
    "Pages",
    "RetryPolicy",
    "RunDetails",
    "RunFilter",
    "RunPage",
    "RunStatus",
    "RunSummary",
    "RunWait",
    "RunWaitError",
    "ScheduledRun",
    "ServerClock",
    "Snapshot",
    "TaskSummary",
    "Transport",
    "TriggerRequest",
    "TriggerSender",
    "WaitEvent",
    "WaitResume",
    "WaitState",
    "WaitStatus",
    "Watermark",
    "Worker",
    "WorkerCheck",
    "Workflow",
    "apply_namespace",
    "cancel_unfinished",
    "check_events",
    "check_listen",
    "check_round",
    "check_time",
    "check_transport",
    "check_workers_mode",
    "close_channels",
    "event_snapshot",
    "find_batch_runs",
    "ids_digest",
    "may_have_created",
    "normalize_namespace",
    "run_snapshot",
    "safe_text",
    "shown_ids",
]
