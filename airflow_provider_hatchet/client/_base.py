"""What the sync and async clients share: settings for the httpx client and the public helpers."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from airflow_provider_hatchet import __version__
from airflow_provider_hatchet.client.config import ClientConfig, apply_namespace
from airflow_provider_hatchet.client.retry import DEFAULT_RETRY, RetryPolicy

DEFAULT_MAX_CONNECTIONS = 32
WORKFLOW_PAGE_SIZE = 200


def _verify(verify: bool | str) -> bool | ssl.SSLContext:
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return verify


def http_options(config: ClientConfig, max_connections: int) -> dict[str, Any]:
    """Keyword arguments for ``httpx.Client``/``httpx.AsyncClient``: base URL, auth, timeouts, one pool.

    :param config: the client settings.
    :param max_connections: the pool size; keep-alive is kept for all of them.
    """
    return {
        "base_url": config.server_url,
        "headers": {
            "Authorization": f"Bearer {config.token}",
            "User-Agent": f"airflow-provider-hatchet/{__version__}",
        },
        "timeout": httpx.Timeout(config.timeout, connect=min(config.timeout, 10.0)),
        "limits": httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        "verify": _verify(config.verify),
    }


class ClientBase:
    """Settings and helpers shared by :class:`HatchetClient` and :class:`AsyncHatchetClient`.

    :param config: the client settings.
    :param retry: how idempotent requests are retried.
    """

    def __init__(self, config: ClientConfig, retry: RetryPolicy = DEFAULT_RETRY) -> None:
        self.config = config
        self.retry = retry

    def __repr__(self) -> str:
        return f"{type(self).__name__}(server_url={self.config.server_url!r}, tenant_id={self.config.tenant_id!r})"

    def full_name(self, workflow_name: str, namespace: str | None = None) -> str:
        """Apply the namespace (the config's, or ``namespace`` if given) to a workflow name.

        :param workflow_name: the workflow name.
        :param namespace: overrides the config's namespace.
        """
        return apply_namespace(workflow_name, self.config.namespace if namespace is None else namespace)

    def run_url(self, run_id: str) -> str:
        """The dashboard link of a run.

        :param run_id: the run id.
        """
        return self.config.run_url(run_id)
