"""A typed client for Hatchet's v1 REST API, sync and async. It knows nothing of Airflow."""

from __future__ import annotations

from airflow_provider_hatchet.client.aio import AsyncHatchetClient
from airflow_provider_hatchet.client.config import ClientConfig, apply_namespace, normalize_namespace
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
from airflow_provider_hatchet.client.models import RunDetails, RunPage, RunStatus, RunSummary, TaskSummary, Workflow
from airflow_provider_hatchet.client.retry import DEFAULT_RETRY, RetryPolicy
from airflow_provider_hatchet.client.sync import HatchetClient
from airflow_provider_hatchet.client.trigger_request import TriggerRequest

__all__ = [
    "DEFAULT_RETRY",
    "AsyncHatchetClient",
    "ClientConfig",
    "HatchetAPIError",
    "HatchetAlreadyExistsError",
    "HatchetAuthError",
    "HatchetBadRequestError",
    "HatchetClient",
    "HatchetConfigError",
    "HatchetError",
    "HatchetMalformedResponseError",
    "HatchetNotFoundError",
    "HatchetRateLimitError",
    "HatchetRetryableError",
    "HatchetServerError",
    "HatchetTransportError",
    "HatchetUnexpectedResponseError",
    "HatchetValidationError",
    "RetryPolicy",
    "RunDetails",
    "RunPage",
    "RunStatus",
    "RunSummary",
    "TaskSummary",
    "TriggerRequest",
    "Workflow",
    "apply_namespace",
    "normalize_namespace",
]
