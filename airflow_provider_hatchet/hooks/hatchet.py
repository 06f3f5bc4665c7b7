"""The Hatchet hook: the connection, the namespace, and the calls operators, sensors and triggers make."""

from __future__ import annotations

import asyncio
import difflib
import logging
import sys
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from functools import cached_property
from itertools import pairwise
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_hatchet._compat import BaseHook, mask_secret
from airflow_provider_hatchet.client import (
    Transport,
    TriggerRequest,
    endpoints,
    run_actions,
    scheduling,
    validation,
    workers,
)
from airflow_provider_hatchet.client.config import ClientConfig, apply_namespace
from airflow_provider_hatchet.client.errors import (
    HatchetAPIError,
    HatchetAuthError,
    HatchetConfigError,
    HatchetError,
    HatchetMalformedResponseError,
    HatchetNotFoundError,
    HatchetTransportError,
    HatchetUnexpectedResponseError,
    HatchetValidationError,
)
from airflow_provider_hatchet.client.escaping import safe_text
from airflow_provider_hatchet.client.retry import DEFAULT_RETRY, RetryPolicy
from airflow_provider_hatchet.client.run_filter import RunFilter
from airflow_provider_hatchet.client.server_version import (
    IDEMPOTENCY_KEYS_FILTER,
    LOG_ORDER_AND_ATTEMPT,
    ServerVersion,
    refuse_without,
    server_version,
)
from airflow_provider_hatchet.hooks._connection import (
    aget_airflow_connection,
    config_from_connection,
    config_from_environment,
    decode_extra,
    get_airflow_connection,
)
from airflow_provider_hatchet.hooks._run_scope import DEFAULT_MAX_RUNS, check_flag, check_max_runs, scoped
from airflow_provider_hatchet.hooks._shared_clients import LoopClients

if TYPE_CHECKING:
    from airflow_provider_hatchet.client import AsyncHatchetClient, HatchetClient
    from airflow_provider_hatchet.client.bulk import TriggerSender
    from airflow_provider_hatchet.client.endpoints import Call
    from airflow_provider_hatchet.client.models import LogLine, RunDetails, RunStatus, RunSummary, Workflow
    from airflow_provider_hatchet.client.paging import Pages
    from airflow_provider_hatchet.client.scheduling import (
        Cron,
        CronPage,
        HatchetEvent,
        ScheduledRun,
    )

T = TypeVar("T")
R = TypeVar("R")

# One async client per event loop and connection contents: a triggerer running many triggers shares one
# connection pool and one SSL context instead of building one per trigger.
_LOOP_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopClients] = weakref.WeakKeyDictionary()

# Workflow names confirmed to exist, per server and tenant, so that many tasks in one process (mapped tasks,
# dag.test) look a name up once. Only names that exist are kept, and only for a while.
KNOWN_WORKFLOW_TTL = 300.0
_KNOWN_WORKFLOWS: dict[tuple[str, str, str], float] = {}



def _quiet_httpx() -> None:
    """Keep httpx's line per request ("HTTP Request: GET ...") out of the task log, as Airflow 3's logging config
    does: a cancel of 2,000 runs would log 2,000 of them. A level someone set on the ``httpx`` logger stays."""
    logger = logging.getLogger("httpx")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)

class HatchetHook(BaseHook):
    """Talks to one Hatchet tenant through the REST API.

    The connection's password is the API token, a JWT that names the tenant (``sub``) and the server
    (``server_url``). The host (the server URL) and the extras ``tenant_id``, ``namespace``, ``verify``,
    ``timeout``, ``proxy``, ``grpc_address`` and ``grpc_tls`` (each a field of the connection form) override or
    complete it; without ``proxy``, the environment's ``HTTP_PROXY``,
    ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` apply, as in httpx. If the connection does not exist,
    hatchet-sdk's environment variables (``HATCHET_CLIENT_TOKEN``, ``..._SERVER_URL``, ``..._TENANT_ID``,
    ``..._NAMESPACE``) are used.

    :param hatchet_conn_id: the Airflow connection id.
    :param namespace: overrides the connection's namespace; ``""`` disables it.
    :param retry: how idempotent requests are retried.
    """

    conn_name_attr = "hatchet_conn_id"
    default_conn_name = "hatchet_default"
    conn_type = "hatchet"
    hook_name = "Hatchet"

    def __init__(
        self,
        hatchet_conn_id: str = default_conn_name,
        namespace: str | None = None,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        super().__init__()
        self.hatchet_conn_id = hatchet_conn_id
        self.namespace = namespace
        self.retry = retry

    # Connection

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form's labels and hidden fields, for Airflow before 3.2."""
        from airflow_provider_hatchet import connection_ui

        return connection_ui.legacy_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The connection form's extra fields, for Airflow before 3.2 (needs Flask-AppBuilder's wtforms)."""
        from airflow_provider_hatchet import connection_ui

        return connection_ui.legacy_form_widgets()

    @cached_property
    def config(self) -> ClientConfig:
        """The client settings, read from the connection (or the environment) once."""
        return self._remember(self._config_from(get_airflow_connection(self.hatchet_conn_id)))

    async def aget_config(self) -> ClientConfig:
        """The client settings, read without blocking the event loop (for triggers)."""
        if "config" in self.__dict__:
            return self.config
        conn = await aget_airflow_connection(self.hatchet_conn_id)
        self.__dict__["config"] = config = self._remember(self._config_from(conn))
        return config

    def _config_from(self, conn: Any) -> ClientConfig:
        if conn is None:
            config = config_from_environment(self.namespace)
            if config is None:
                raise HatchetConfigError(
                    f"The Airflow connection {self.hatchet_conn_id!r} does not exist and HATCHET_CLIENT_TOKEN "
                    "is not set. Create the connection (type 'hatchet', the API token as password)."
                )
            self.log.info(
                "Connection %r not found; using the HATCHET_CLIENT_* environment variables (server %s, tenant %s).",
                self.hatchet_conn_id, config.server_url, config.tenant_id,
            )
            return config
        mask_token(conn.password)
        return config_from_connection(
            conn.password, conn.host, conn.schema, conn.port, decode_extra(conn.extra), self.namespace
        )

    @staticmethod
    def _remember(config: ClientConfig) -> ClientConfig:
        mask_token(config.token)
        if config.proxy:
            from httpx import URL

            password = URL(config.proxy).password
            if password:
                mask_secret(password)
        return config

    # Clients

    @cached_property
    def client(self) -> HatchetClient:
        """The synchronous client, created once per hook."""
        from airflow_provider_hatchet.client import HatchetClient

        _quiet_httpx()
        return HatchetClient(self.config, retry=self.retry)

    async def aget_client(self) -> AsyncHatchetClient:
        """The asynchronous client for the running event loop, shared by every hook whose connection reads the same.

        The connection is read again on each call: once its contents change (a rotated token), new callers get a
        new client, and the old one is closed when no :meth:`alease_client` block holds it. Code that keeps the
        client across awaits should use :meth:`alease_client`.
        """
        clients, client = await self._shared_client()
        await clients.close_unused()
        return client

    @asynccontextmanager
    async def alease_client(self) -> AsyncIterator[AsyncHatchetClient]:
        """:meth:`aget_client`, kept open until the block ends even if the connection changes meanwhile."""
        clients, client = await self._shared_client()
        async with clients.lease(client):
            yield client

    async def _shared_client(self) -> tuple[LoopClients, AsyncHatchetClient]:
        clients = _LOOP_CLIENTS.setdefault(asyncio.get_running_loop(), LoopClients())
        config = await self.aget_config()
        # No await between this lookup and the cache fill: triggers starting together share one client.
        return clients, clients.get((self.hatchet_conn_id, self.namespace), config, self._new_async_client)

    def _new_async_client(self, config: ClientConfig, max_connections: int | None = None) -> AsyncHatchetClient:
        from airflow_provider_hatchet.client import AsyncHatchetClient

        _quiet_httpx()
        if max_connections is None:
            return AsyncHatchetClient(config, retry=self.retry)
        return AsyncHatchetClient(config, retry=self.retry, max_connections=max(1, max_connections))

    def async_client_factory(self, *, max_connections: int | None = None) -> Callable[[], AsyncHatchetClient]:
        """Make async clients of their own, which the caller closes: for work that wants its own connection pool
        (a batch's triggers, ``max_connections`` at once) or its own event loop (a poking sensor's thread). The
        connection is read now; each client is built when the factory is called, in the loop that will use it.

        :param max_connections: the client's pool size; the default pool otherwise.
        """
        config = self.config
        return lambda: self._new_async_client(config, max_connections)

    async def abulk_sender(self, transport: str, *, max_runs: int) -> tuple[TriggerSender | None, str]:
        """How a batch's triggers go out over gRPC (``auto`` or ``grpc``), and a few words saying how; for ``auto``
        None (REST) when the server takes no gRPC connection or fails a call that creates nothing (an empty bulk
        trigger). The channel is closed by ``close_channels``.

        :param transport: ``auto`` or ``grpc``.
        :param max_runs: the most runs per gRPC request.
        """
        from airflow_provider_hatchet.client.grpc.bulk import choose_sender

        return await choose_sender(self.config, transport, max_runs=max_runs)

    async def atrigger_grpc(self, request: TriggerRequest, transport: Transport) -> tuple[str | None, str]:
        """Trigger one run over gRPC (``TriggerWorkflow``) when ``transport`` and the server allow: its id and how it
        went; or None and why it should go over REST, when it is certain nothing was created: ``auto`` found no
        gRPC address, no connection or a failed empty probe (see ``client/grpc/probe.py``), or the server does not
        serve the call (UNIMPLEMENTED). Any other failure is raised: it may have created the run.

        :param request: the run, checked and with its full workflow name (see :meth:`resolve_workflow`).
        :param transport: ``auto`` or ``grpc``.
        :raises HatchetError: mapped from the gRPC status (see ``client/grpc/errors.py``).
        """
        from airflow_provider_hatchet.client.grpc.channel import close_channels
        from airflow_provider_hatchet.client.grpc.client import trigger_request
        from airflow_provider_hatchet.client.grpc.errors import GrpcUnimplementedError
        from airflow_provider_hatchet.client.grpc.probe import choose_client

        try:
            client, how = await choose_client(self.config, transport)
            if client is None:
                return None, f"over REST: {how}"
            message = trigger_request(request.workflow_name, request.input, request.additional_metadata,
                                      request.priority)
            try:
                return await client.trigger(message), how
            except GrpcUnimplementedError as exc:
                if transport != "auto":
                    raise
                return None, f"over REST: the gRPC trigger was refused before it created anything ('{exc}')"
        finally:
            await close_channels()

    async def apush_events(self, events: list[dict[str, Any]], extra_metadata: Mapping[str, str]) -> list[str]:
        """Push checked events over gRPC (keys namespaced, ``extra_metadata`` added to each) and return their ids.

        :param events: events as ``check_events`` returns them (key, payload, metadata, priority, scope).
        :param extra_metadata: metadata added to every event.
        """
        from airflow_provider_hatchet.client.grpc.channel import close_channels
        from airflow_provider_hatchet.client.grpc.client import AsyncGrpcClient, EventSpec

        config = self.config
        specs = [EventSpec(apply_namespace(e["key"], config.namespace), e["payload"],
                           {**e["additional_metadata"], **extra_metadata}, e["priority"], e["scope"]) for e in events]
        try:
            return await AsyncGrpcClient(config).push_events(specs)
        finally:
            await close_channels()

    def find_triggered_runs(self, event_ids: list[str], *, since: datetime, settle: float) -> dict[str, list[str]]:
        """The runs each event triggered, oldest first, read until each event has one or ``settle`` s passed.

        :param event_ids: the events.
        :param since: no run was created before this.
        :param settle: seconds to wait for an event's first run.
        """
        from airflow_provider_hatchet.client.events import find_triggered_runs

        return find_triggered_runs(self.client, event_ids, since=since, settle=settle)

    def find_events(self, additional_metadata: Mapping[str, str], *, since: datetime) -> list[HatchetEvent]:
        """Every event stored since ``since`` carrying all the pairs, oldest first.

        :param additional_metadata: metadata keys and values the events carry.
        :param since: the earliest time the server stored them.
        """
        from airflow_provider_hatchet.client.events import events_carrying

        return events_carrying(self.client, additional_metadata, since=since)

    @staticmethod
    async def aclose_loop_clients() -> None:
        """Close the async clients shared in the running event loop, and its run-event streams, before the loop
        itself ends."""
        clients = _LOOP_CLIENTS.pop(asyncio.get_running_loop(), None)
        if clients is not None:
            await clients.aclose()
        # Only if a wait opened one: importing the module here would load protobuf for nothing.
        streams = sys.modules.get("airflow_provider_hatchet.client.grpc.run_events")
        if streams is not None:
            await streams.close_run_events()

    def close(self) -> None:
        """Close the synchronous client's connection pool, if it was opened."""
        if "client" in self.__dict__:
            self.client.close()

    # Calls

    def send(self, call: Call[T]) -> T:
        """Send one call (``hook.send(endpoints.run_details(run_id))``) through the sync client.

        :param call: a call from :mod:`~airflow_provider_hatchet.client.endpoints` or ``scheduling``.
        """
        return self.client.send(call)

    def iter_rows(self, pages: Pages[R]) -> Iterator[R]:
        """Every row of a list, page after page (``hook.iter_rows(endpoints.runs(since=...))``).

        :param pages: a list from :mod:`~airflow_provider_hatchet.client.endpoints` or ``scheduling``.
        """
        return self.client.iter_rows(pages)

    @cached_property
    def server_version(self) -> ServerVersion | None:
        """The Hatchet server's release (``GET /api/v1/version``), read once per hook. None, with a warning, when
        the server answers no release number: the provider then assumes it has every feature it sends."""
        try:
            text = self.send(server_version())
        except (HatchetAPIError, HatchetMalformedResponseError, HatchetUnexpectedResponseError) as exc:
            self.log.warning("Could not read the Hatchet server's version (%s); assuming it has every feature "
                             "the provider sends.", exc)
            return None
        version = ServerVersion.parse(text)
        if version is None:
            self.log.warning("The Hatchet server reports version %r, not a release number; assuming it has every "
                             "feature the provider sends.", safe_text(text, 60))
        return version

    def task_logs(self, task_id: str, *, limit: int, attempt: int | None = None,
                  newest_first: bool = False) -> list[LogLine]:
        """The lines a task logged, as :func:`endpoints.task_logs` reads them. A server before
        ``LOG_ORDER_AND_ATTEMPT.since`` ignores the order and the attempt, and answers the first ``limit`` lines
        of every attempt, oldest first: seen in the answer, the other attempts' lines are left out here and the
        order turned, with a warning naming the server's version.

        :param task_id: the task's external id.
        :param limit: the most lines.
        :param attempt: only this attempt's lines.
        :param newest_first: newest lines first.
        """
        lines = self.send(endpoints.task_logs(task_id, limit=limit, attempt=attempt, newest_first=newest_first))
        ignored = []
        if attempt is not None and any(line.attempt not in (None, attempt) for line in lines):
            ignored.append("attempt")
            lines = [line for line in lines if line.attempt in (None, attempt)]
        if newest_first and any(a.created_at < b.created_at for a, b in pairwise(lines)):
            ignored.append("order_by_direction")
            lines.reverse()
        if ignored:
            self.log.warning(
                "The Hatchet server (%s) ignored the task log's %s (%s came in %s): these are the first %d lines of "
                "every attempt, oldest first, kept to attempt %s.", self.server_version or "version unknown",
                " and ".join(ignored), LOG_ORDER_AND_ATTEMPT.what, LOG_ORDER_AND_ATTEMPT.since, limit, attempt)
        return lines

    async def asend(self, call: Call[T]) -> T:
        """Send one call through the event loop's shared async client.

        :param call: a call from :mod:`~airflow_provider_hatchet.client.endpoints` or ``scheduling``.
        """
        async with self.alease_client() as client:
            return await client.send(call)

    def _find_workflow(self, full_name: str) -> Workflow | None:
        return endpoints.exact_workflow(self.iter_rows(endpoints.workflows(full_name)), full_name)

    # Names and links

    def full_workflow_name(self, workflow_name: str, namespace: str | None = None) -> str:
        """Apply the namespace to a workflow name exactly as hatchet-sdk does.

        The namespace is lower-cased and gets a trailing ``_``; the name keeps its case and is left alone if
        it already starts with the namespace.

        :param workflow_name: the workflow name.
        :param namespace: overrides the hook's namespace for this call.
        """
        return apply_namespace(workflow_name, self.config.namespace if namespace is None else namespace)

    def live_workers(self, workflow_name: str, namespace: str | None = None) -> int:
        """How many live workers (ACTIVE by the server's reckoning: a heartbeat in the last 5 s, not paused) serve
        the workflow, from one read of the worker list.

        :param workflow_name: the workflow name, without or with the namespace.
        :param namespace: overrides the hook's namespace for this call.
        :raises HatchetError: when the worker list cannot be read (e.g. 403 for a token that may not).
        """
        return next(iter(self.live_workers_by_workflow([workflow_name], namespace).values()))

    def live_workers_by_workflow(self, workflow_names: Iterable[str], namespace: str | None = None) -> dict[str, int]:
        """:meth:`live_workers` for several workflows, from one read of the worker list; keyed by full name.

        :param workflow_names: the workflow names, without or with the namespace.
        :param namespace: overrides the hook's namespace for this call.
        :raises HatchetError: when the worker list cannot be read.
        """
        names = [self.full_workflow_name(validation.check_workflow_name(name), namespace) for name in workflow_names]
        rows = self.send(workers.list_workers()).rows or []
        return {name: workers.serving(rows, name) for name in names}

    def run_url(self, run_id: str) -> str:
        """The run's page in the Hatchet dashboard: ``{server_url}/tenants/{tenant}/runs/{run_id}``.

        :param run_id: the run id.
        """
        return self.config.run_url(run_id)

    def resolve_workflow(self, workflow_name: str, namespace: str | None = None) -> str:
        """Return the full workflow name after checking that the tenant has a workflow with exactly that name.

        A name found is remembered for a few minutes in this process; a name not found is looked up every time.

        :param workflow_name: the workflow name, without or with the namespace.
        :param namespace: overrides the hook's namespace for this call.
        :raises HatchetValidationError: naming the workflow, tenant, namespace and close names, if there is none.
        """
        full = self.full_workflow_name(validation.check_workflow_name(workflow_name), namespace)
        key = (self.config.server_url, self.config.tenant_id, full)
        if _KNOWN_WORKFLOWS.get(key, 0.0) > time.monotonic():
            return full
        if self._find_workflow(full) is not None:
            _KNOWN_WORKFLOWS[key] = time.monotonic() + KNOWN_WORKFLOW_TTL
            return full
        names = [w.name for w in self.send(endpoints.list_workflows()).rows]
        raise unknown_workflow_error(full, self.config, names)

    # Runs

    def run_workflow(
        self,
        workflow_name: str,
        input: Mapping[str, Any] | None = None,
        additional_metadata: Mapping[str, Any] | None = None,
        priority: int | None = None,
        *,
        namespace: str | None = None,
    ) -> str:
        """Trigger one run of a workflow and return its id. Arguments are checked before anything is sent.

        :param workflow_name: the workflow name; the namespace is applied.
        :param input: the run input, a JSON object.
        :param additional_metadata: metadata shown and filterable in Hatchet; scalars become strings.
        :param priority: 1 (lowest) to 3, or None.
        :param namespace: overrides the hook's namespace for this call.
        :raises HatchetValidationError: for a bad argument, or a workflow the tenant does not have (see
            :meth:`resolve_workflow`); nothing is triggered then.
        """
        request = TriggerRequest.checked(workflow_name, input, additional_metadata, priority)
        return self.trigger(request, namespace=namespace)

    def trigger(self, request: TriggerRequest, *, namespace: str | None = None) -> str:
        """Trigger one run of a checked request (see :meth:`TriggerRequest.checked`) and return its id, once the
        tenant is known to have the workflow. Sent once, never retried: a failed trigger may have created the run.

        :param request: the run; its workflow name without or with the namespace.
        :param namespace: overrides the hook's namespace for this call.
        :raises HatchetValidationError: for a workflow the tenant does not have; nothing is triggered then.
        """
        return self.send(endpoints.trigger(request.named(self.resolve_workflow(request.workflow_name, namespace))))

    def cancel_runs(self, run_ids: Iterable[str] | None = None, *,
                    filter: RunFilter | Mapping[str, Any] | None = None, allow_tenant_wide: bool = False,
                    max_runs: int = DEFAULT_MAX_RUNS, dry_run: bool = False, confirm: bool = True) -> list[str]:
        """Ask Hatchet to cancel runs, by ids or by filter; the status turns CANCELLED a moment later.

        A filter must narrow the selection (workflow names, metadata pairs, idempotency keys or a triggering
        event): statuses and a time window alone are refused unless ``allow_tenant_wide``. Hatchet's answer to a
        cancel by ids echoes every id, known or not, so each named run's status is read afterwards to find the
        ids the tenant does not have; they are logged as a warning and left out of the result.

        :param run_ids: the run ids.
        :param filter: a :class:`RunFilter`, or its fields as a dict (``since`` required), instead of ids; the
            matching runs are listed and cancelled 500 at a time.
        :param allow_tenant_wide: let a filter that does not narrow the selection act on every run of the tenant.
        :param max_runs: the most runs a filter may select; more is refused before anything is cancelled.
        :param dry_run: act on nothing; return what would be acted on.
        :param confirm: read the named runs back to find unknown ids; False for runs the caller just created.
        :return: the ids of the runs cancelled (or that would be, in a dry run).
        :raises HatchetValidationError: for neither or both of ``run_ids`` and ``filter``, a bad filter field, a
            filter that does not narrow the selection, or more than ``max_runs`` matching runs; nothing is sent then.
        """
        return self._act("cancel", run_ids, filter, allow_tenant_wide=allow_tenant_wide, max_runs=max_runs,
                         dry_run=dry_run, confirm=confirm)

    def replay_runs(self, run_ids: Iterable[str] | None = None, *,
                    filter: RunFilter | Mapping[str, Any] | None = None, allow_tenant_wide: bool = False,
                    max_runs: int = DEFAULT_MAX_RUNS, dry_run: bool = False) -> list[str]:
        """Replay runs in place (same ids, original input), by ids or by filter, 500 ids per request.

        The filter is guarded as in :meth:`cancel_runs`; without ``statuses`` it selects FAILED and CANCELLED runs
        only. Ids Hatchet did not replay (unknown, or another tenant's) are logged as a warning and left out of
        the result.

        :param run_ids: the run ids.
        :param filter: a :class:`RunFilter`, or its fields as a dict, instead of ids.
        :param allow_tenant_wide: let a filter that does not narrow the selection act on every run of the tenant.
        :param max_runs: the most runs a filter may select; more is refused before anything is replayed.
        :param dry_run: act on nothing; return what would be acted on.
        :return: the ids of the runs replayed (or that would be, in a dry run).
        :raises HatchetValidationError: as :meth:`cancel_runs`.
        """
        return self._act("replay", run_ids, filter, allow_tenant_wide=allow_tenant_wide, max_runs=max_runs,
                         dry_run=dry_run, confirm=True)

    def list_runs(self, filter: RunFilter | Mapping[str, Any]) -> list[RunSummary]:
        """Every run a filter selects, newest first (statuses, time window, workflow names, metadata pairs ANDed,
        idempotency keys, triggering event).

        :param filter: a :class:`RunFilter`, or its fields as a dict (``since`` required).
        """
        return list(self._select(self._run_filter(filter)))

    def replay_in_place(self, retry_counts: Mapping[str, int]) -> list[str]:
        """Replay runs and wait (one bound for all) until reads show each replay: status out of FAILED or a retry
        count risen.

        :param retry_counts: run id -> its :meth:`RunDetails.retry_count` before the replay.
        :return: the runs whose reads still showed them as before at the bound.
        """
        run_actions.in_chunks(self._replay, retry_counts)
        return run_actions.settle_after_replay(self._get_run, retry_counts)

    def _act(self, action: str, run_ids: Iterable[str] | None, filter: RunFilter | Mapping[str, Any] | None, *,
             allow_tenant_wide: bool, max_runs: int, dry_run: bool, confirm: bool) -> list[str]:
        check_flag(allow_tenant_wide, "allow_tenant_wide")
        check_flag(dry_run, "dry_run")
        check_max_runs(max_runs)
        named = [run_ids] if isinstance(run_ids, str) else run_ids or ()
        ids = list(dict.fromkeys(validation.check_run_id(i, "run_ids") for i in named))
        if ids and filter is not None:
            raise HatchetValidationError("filter", "give run_ids or a filter, not both")
        send = self._replay if action == "replay" else self._cancel
        if filter is None:
            if not ids:
                raise HatchetValidationError("run_ids", "is empty and no filter is given: nothing to act on")
            return self._act_on_ids(action, send, ids, dry_run=dry_run, confirm=confirm)
        run_filter = scoped(self._run_filter(filter), action, allow_tenant_wide=allow_tenant_wide)
        ids = [run.id for run in run_actions.at_most(self._select(run_filter), max_runs)]
        if ids and not dry_run:
            run_actions.in_chunks(send, ids)
        return ids

    def _act_on_ids(self, action: str, send: Callable[[list[str]], list[str]], ids: list[str], *, dry_run: bool,
                    confirm: bool) -> list[str]:
        """Act on named runs; return those Hatchet acted on (or would), warning about the others."""
        if dry_run:
            missing = run_actions.not_found(self._get_run_status, ids)
        else:
            echoed = run_actions.in_chunks(send, ids)
            try:
                if action == "replay":
                    # The answer lists what was replayed: only the runs it does not name are read.
                    missing = run_actions.not_replayed(self._get_run, ids, echoed)
                else:
                    # The answer echoes every id sent, known or not.
                    missing = run_actions.not_found(self._get_run_status, ids) if confirm else []
            except HatchetError as exc:
                # Hatchet took the request: failing now would have a retry send it again (a second replay).
                self.log.warning("The %s was sent, but reading the runs back failed, so ids the tenant does not "
                                 "have cannot be told apart: %s", action, exc)
                missing = []
        if missing:
            self.log.warning("Hatchet has no run %s in this tenant (unknown, or another tenant's); the %s %s "
                             "nothing there.", run_actions.shown_ids(missing), action,
                             "would do" if dry_run else "did")
        left_out = set(missing)
        return [run_id for run_id in ids if run_id not in left_out]

    def _replay(self, run_ids: Iterable[str]) -> list[str]:
        return self.send(endpoints.replay(run_ids))

    def _cancel(self, run_ids: Iterable[str]) -> list[str]:
        return self.send(endpoints.cancel(run_ids))

    def _get_run(self, run_id: str) -> RunDetails:
        return self.send(endpoints.run_details(run_id))

    def _get_run_status(self, run_id: str) -> RunStatus:
        return self.send(endpoints.run_status(run_id))

    def _run_filter(self, filter: RunFilter | Mapping[str, Any]) -> RunFilter:
        if isinstance(filter, RunFilter):
            # One built directly skipped the checks: an empty ``statuses`` would list every status.
            return RunFilter.checked(**{name: getattr(filter, name) for name in RunFilter.__dataclass_fields__})
        if not isinstance(filter, Mapping):
            raise HatchetValidationError("filter", f"must be a RunFilter or a dict, got {type(filter).__name__}")
        unknown = sorted(str(name) for name in filter if name not in RunFilter.__dataclass_fields__)
        if unknown:
            known = ", ".join(RunFilter.__dataclass_fields__)
            raise HatchetValidationError("filter", f"has unknown fields {unknown} (known: {known})")
        return RunFilter.checked(**filter)

    def _select(self, run_filter: RunFilter) -> Iterator[RunSummary]:
        if run_filter.idempotency_keys:
            # Rows carry no idempotency key to check here: a server that ignores the filter must not be asked.
            refuse_without(IDEMPOTENCY_KEYS_FILTER, self.server_version, "idempotency_keys")
        return run_actions.select_runs(self.client, run_filter, self._workflow_ids(run_filter))

    def _workflow_ids(self, run_filter: RunFilter) -> list[str]:
        ids = []
        for name in run_filter.workflow_names:
            workflow = self._find_workflow(self.full_workflow_name(name))
            if workflow is None:
                raise HatchetValidationError("workflow_names", f"the tenant has no workflow {name!r}")
            ids.append(workflow.id)
        return ids

    # Scheduled runs, crons and events

    def schedule_workflow(
        self,
        workflow_name: str,
        trigger_at: datetime | str,
        input: Mapping[str, Any] | None = None,
        additional_metadata: Mapping[str, Any] | None = None,
        priority: int | None = None,
        *,
        namespace: str | None = None,
    ) -> ScheduledRun:
        """Schedule one run of a workflow at ``trigger_at``. Arguments are checked before anything is sent.

        :param workflow_name: the workflow name; the namespace is applied.
        :param trigger_at: a datetime (naive means UTC) or an ISO 8601 string.
        :param input: the run input, a JSON object.
        :param additional_metadata: metadata the run will carry; scalars become strings.
        :param priority: 1 (lowest) to 3, or None.
        :param namespace: overrides the hook's namespace for this call.
        """
        request = TriggerRequest.checked(workflow_name, input, additional_metadata, priority)
        return self.schedule(request, trigger_at, namespace=namespace)

    def schedule(self, request: TriggerRequest, trigger_at: datetime | str, *,
                 namespace: str | None = None) -> ScheduledRun:
        """Schedule one run of a checked request (see :meth:`TriggerRequest.checked`) at ``trigger_at``, once the
        tenant is known to have the workflow. Sent once, never retried.

        :param request: the run; its workflow name without or with the namespace.
        :param trigger_at: a datetime (naive means UTC) or an ISO 8601 string.
        :param namespace: overrides the hook's namespace for this call.
        :raises HatchetValidationError: for a bad time or a workflow the tenant does not have.
        """
        from airflow_provider_hatchet.client.scheduling import check_time

        when = check_time(trigger_at)
        full = self.resolve_workflow(request.workflow_name, namespace)
        return self.send(scheduling.schedule(full, when, request.input, request.additional_metadata, request.priority))

    def find_scheduled_runs(self, additional_metadata: Mapping[str, str]) -> list[ScheduledRun]:
        """Every scheduled run that has not fired yet and carries all the pairs, read page after page.

        Hatchet's schedule list refuses (400) a filter value holding a ``:``, as a run id's time does: such pairs
        are checked here only, the others are sent.

        :param additional_metadata: metadata keys and values the schedules carry.
        """
        sent = {key: value for key, value in additional_metadata.items() if ":" not in key and ":" not in value}
        rows = self.iter_rows(scheduling.scheduled_runs(additional_metadata=sent))
        # Checked row by row: a server that drops the filter must not hand over other schedules.
        return list({row.id: row for row in rows if row.has_metadata(additional_metadata)}.values())

    def delete_scheduled_run(self, scheduled_id: str) -> bool:
        """Delete a scheduled run; False when it had already fired or was gone.

        :param scheduled_id: the scheduled run's id.
        """
        try:
            self.send(scheduling.delete_scheduled(scheduled_id))
        except HatchetNotFoundError:
            return False
        return True

    def reschedule_run(self, scheduled_id: str, trigger_at: datetime | str) -> ScheduledRun:
        """Move a scheduled run that has not fired to another time.

        :param scheduled_id: the scheduled run's id.
        :param trigger_at: a datetime (naive means UTC) or an ISO 8601 string.
        """
        from airflow_provider_hatchet.client.scheduling import check_time

        return self.send(scheduling.reschedule(scheduled_id, check_time(trigger_at)))

    def create_cron(
        self,
        workflow_name: str,
        cron_name: str,
        expression: str,
        input: Mapping[str, Any] | None = None,
        additional_metadata: Mapping[str, Any] | None = None,
        priority: int | None = None,
        *,
        namespace: str | None = None,
    ) -> Cron:
        """Create a cron trigger of a workflow.

        :param workflow_name: the workflow name; the namespace is applied.
        :param cron_name: the cron's name.
        :param expression: a five-field cron expression, in UTC.
        :param input: the input of each run.
        :param additional_metadata: metadata of each run.
        :param priority: 1 (lowest) to 3, or None.
        :param namespace: overrides the hook's namespace for this call.
        """
        if not isinstance(cron_name, str) or not cron_name.strip():
            raise HatchetValidationError("cron_name", f"must be a non-empty string, got {cron_name!r}")
        if not isinstance(expression, str) or len(expression.split()) != 5:
            raise HatchetValidationError("expression", f"must be a five-field cron expression, got {expression!r}")
        name = self.full_workflow_name(validation.check_workflow_name(workflow_name), namespace)
        return self.send(scheduling.create_cron(
            name, cron_name, expression, validation.check_input(input),
            validation.check_metadata(additional_metadata), validation.check_priority(priority),
        ))

    def list_crons(self, workflow_name: str | None = None, *, namespace: str | None = None,
                   **filters: Any) -> CronPage:
        """Return one page of crons, of one workflow if named.

        :param workflow_name: the workflow name; the namespace is applied.
        :param namespace: overrides the hook's namespace for this call.
        :param filters: ``cron_name``, ``offset``, ``limit``.
        """
        if workflow_name is not None:
            filters["workflow_name"] = self.full_workflow_name(workflow_name, namespace)
        return self.send(scheduling.list_crons(**filters))

    def test_connection(self) -> tuple[bool, str]:
        """Make one cheap authenticated call and read the server's version, for the Test button in the connection
        form."""
        try:
            config = self.config
            self.send(endpoints.list_workflows(limit=1))
            version = self.server_version
        except HatchetConfigError as exc:
            return False, str(exc)
        except HatchetAuthError:
            return False, (
                "Hatchet rejected the API token (403): it is wrong, expired or revoked, was issued by another "
                "server, or does not belong to the tenant."
            )
        except HatchetNotFoundError:
            return False, f"Tenant {self.config.tenant_id} was not found on {self.config.server_url} (404)."
        except HatchetTransportError as exc:
            return False, f"Could not reach the Hatchet server at {self.config.server_url}: {exc}"
        except HatchetError as exc:
            return False, f"Hatchet answered with an error: {exc}"
        finally:
            self.close()
        shown = f"Hatchet {version}" if version is not None else "Hatchet (its version could not be read)"
        return True, f"Connected to {shown} at {config.server_url} (tenant {config.tenant_id})."


def mask_token(token: str | None) -> None:
    """Register a token with Airflow's secrets masker: the whole of it and, for a JWT, its signature.

    The signature is the only secret part of a JWT (the header and claims are base64 of public facts), and a
    line may carry it alone.

    :param token: the API token; nothing is registered for an empty one.
    """
    if not token:
        return
    mask_secret(token)
    parts = token.split(".")
    if len(parts) == 3 and parts[2]:
        mask_secret(parts[2])


def unknown_workflow_error(full_name: str, config: ClientConfig, known: Iterable[str]) -> HatchetValidationError:
    """The error for a workflow name the tenant does not have, listing close names.

    :param full_name: the namespaced name that was looked up.
    :param config: the client settings (for the tenant and namespace).
    :param known: workflow names that do exist.
    """
    close = difflib.get_close_matches(full_name, list(known), n=5, cutoff=0.5)
    # Names any worker of the tenant registered: they must not end the message's line or forge one.
    hint = f"; close names: {', '.join(safe_text(name, 200) for name in close)}" if close else ""
    return HatchetValidationError(
        "workflow_name",
        f"no workflow named {full_name!r} in tenant {config.tenant_id} "
        f"(namespace {config.namespace or 'none'!r}){hint}",
    )
