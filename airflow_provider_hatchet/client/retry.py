"""The one retry policy for idempotent requests: exponential backoff with jitter on transient failures.

Triggers are not idempotent and are never retried here; the bulk engine and the operators decide how a
trigger is retried, because a failed trigger may still have created its run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tenacity import (
    AsyncRetrying,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from airflow_provider_hatchet.client.errors import HatchetRetryableError


@dataclass(frozen=True)
class RetryPolicy:
    """How idempotent requests are retried on 429, 5xx and transport errors.

    :param attempts: tries in all, the first included; 1 disables retries.
    :param initial: the first backoff in seconds.
    :param maximum: the longest backoff in seconds.
    :param jitter: the most random seconds added to each backoff.
    """

    attempts: int = 5
    initial: float = 0.5
    maximum: float = 10.0
    jitter: float = 0.5

    def _kwargs(self) -> dict[str, Any]:
        return {
            "stop": stop_after_attempt(self.attempts),
            "wait": wait_exponential(multiplier=self.initial, max=self.maximum) + wait_random(0, self.jitter),
            "retry": retry_if_exception_type(HatchetRetryableError),
            "reraise": True,
        }

    def retrying(self) -> Retrying:
        """A tenacity controller for synchronous calls."""
        return Retrying(**self._kwargs())

    def async_retrying(self) -> AsyncRetrying:
        """A tenacity controller for coroutine calls."""
        return AsyncRetrying(**self._kwargs())


DEFAULT_RETRY = RetryPolicy()
