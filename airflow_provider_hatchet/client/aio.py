"""The asynchronous Hatchet REST client, for triggers and bulk fan-out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar, cast

import anyio
import httpx

from airflow_provider_hatchet.client import endpoints, scheduling
from airflow_provider_hatchet.client._base import DEFAULT_MAX_CONNECTIONS as _MAX
from airflow_provider_hatchet.client._base import ClientBase
from airflow_provider_hatchet.client.config import ClientConfig
from airflow_provider_hatchet.client.lanes import LaneTransport
from airflow_provider_hatchet.client.models import (
    LogLine,
    RunDetails,
    RunPage,
    RunStatus,
    RunSummary,
    Workflow,
    WorkflowPage,
)
from airflow_provider_hatchet.client.paging import RUN_PAGE_SIZE, WORKFLOW_PAGE_SIZE, has_more
from airflow_provider_hatchet.client.retry import DEFAULT_RETRY, RetryPolicy
from airflow_provider_hatchet.client.scheduling import Cron, CronPage, EventPage, ScheduledRun, ScheduledRunPage
from airflow_provider_hatchet.client.trigger_request import TriggerRequest

T = TypeVar("T")


class AsyncHatchetClient(ClientBase):
    """An asynchronous client for Hatchet's v1 REST API, with one connection pool.

    :param config: the client settings.
    :param retry: how idempotent requests are retried.
    :param transport: an httpx transport to use instead of the network (e.g. the simulator's).
    :param max_connections: the connection pool size: requests in flight at once.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = _MAX,
    ) -> None:
        super().__init__(config, retry)
        self._transport = transport or self.check_proxy_support(
            lambda: LaneTransport(max_connections, verify=self.ssl_context(), proxy=self.proxy)
        )

    async def __aenter__(self) -> AsyncHatchetClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._transport.aclose()

    async def send(self, call: endpoints.Call[T]) -> T:
        """Send one call, retrying it under the retry policy if it is idempotent.

        :param call: the call.
        """
        if not call.idempotent:
            return await self._send_once(call)
        return cast(T, await self.retry.async_retrying()(self._send_once, call))

    async def _send_once(self, call: endpoints.Call[T]) -> T:
        request = self.build_request(call)
        clock = self.server_clock
        sent = clock.local()
        try:
            # httpx's timeouts restart with every read: this bounds the whole request.
            with anyio.fail_after(self.config.timeout):
                response = await self._transport.handle_async_request(request)
                response.request = request
                try:
                    await response.aread()
                finally:
                    await response.aclose()
            clock.observe(sent, clock.local(), response.headers.get("date"))
        except httpx.TransportError as exc:
            raise endpoints.transport_error(exc) from exc
        except TimeoutError as exc:
            raise endpoints.total_timeout(call, self.config.timeout) from exc
        return endpoints.parse(call, response, self.config.token)

    async def trigger(self, request: TriggerRequest) -> str:
        """Trigger one run (the workflow's full name, namespace applied) and return its id.

        Sent once, never retried: a failed trigger may have created the run.

        :param request: the run to trigger.
        """
        return await self.send(endpoints.trigger(self.config.tenant_id, request.body()))

    async def trigger_run(
        self,
        workflow_name: str,
        input: Mapping[str, Any],
        additional_metadata: Mapping[str, str] | None = None,
        priority: int | None = None,
    ) -> str:
        """:meth:`trigger` with the request's fields as arguments.

        :param workflow_name: the full workflow name.
        :param input: the run input.
        :param additional_metadata: string metadata.
        :param priority: 1..3 or None.
        """
        return await self.trigger(TriggerRequest(workflow_name, input, additional_metadata or {}, priority))

    async def get_run(self, run_id: str) -> RunDetails:
        """Return a run with its tasks, outputs and errors.

        :param run_id: the run id.
        """
        return await self.send(endpoints.run_details(run_id))

    async def get_task_logs(self, task_id: str, **filters: Any) -> list[LogLine]:
        """Return the lines a task logged; see :func:`endpoints.task_logs` for the filters.

        :param task_id: the task's external id.
        :param filters: ``limit``, ``since``, ``until``, ``attempt``, ``newest_first``.
        """
        return (await self.send(endpoints.task_logs(task_id, **filters))).rows

    async def get_run_status(self, run_id: str) -> RunStatus:
        """Return a run's status: the cheapest call.

        :param run_id: the run id.
        """
        return await self.send(endpoints.run_status(run_id))

    async def list_runs(self, *, since: datetime, **filters: Any) -> RunPage:
        """Return one page of workflow runs; see :func:`endpoints.list_runs` for the filters.

        :param since: the earliest creation time.
        :param filters: the other filters and paging.
        """
        return await self.send(endpoints.list_runs(self.config.tenant_id, since=since, **filters))

    async def iter_runs(
        self, *, since: datetime, page_size: int = RUN_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[RunSummary]:
        """Yield every matching workflow run, page after page.

        :param since: the earliest creation time.
        :param page_size: rows per request.
        :param filters: the filters of :func:`endpoints.list_runs`.
        """
        offset = 0
        while True:
            page = await self.list_runs(since=since, offset=offset, limit=page_size, **filters)
            for row in page.rows:
                yield row
            if not has_more(len(page.rows), page_size, page.pagination):
                return
            offset += len(page.rows)

    async def cancel_runs(self, run_ids: Iterable[str] = (), *, filter: Mapping[str, Any] | None = None) -> list[str]:
        """Ask Hatchet to cancel runs, by ids or by a ``V1TaskFilter`` body. Cancellation completes a moment
        later; poll the status to see it.

        :param run_ids: the run ids.
        :param filter: a filter body (:meth:`RunFilter.body`) instead of ids; the server ORs its metadata pairs.
        """
        return await self.send(endpoints.cancel(self.config.tenant_id, run_ids, filter=filter))

    async def replay_runs(self, run_ids: Iterable[str] = (), *, filter: Mapping[str, Any] | None = None) -> list[str]:
        """Replay runs in place (same ids, input unchanged), by ids or by a ``V1TaskFilter`` body; sent once.

        :param run_ids: the run ids.
        :param filter: a filter body (:meth:`RunFilter.body`) instead of ids; the server ORs its metadata pairs.
        """
        return await self.send(endpoints.replay(self.config.tenant_id, run_ids, filter=filter))

    async def list_workflows(self, name: str | None = None, *, offset: int = 0,
                       limit: int = WORKFLOW_PAGE_SIZE) -> WorkflowPage:
        """Return one page of workflows whose name contains ``name`` (case-insensitive).

        :param name: the search text.
        :param offset: rows to skip.
        :param limit: rows per page.
        """
        return await self.send(endpoints.list_workflows(self.config.tenant_id, name, offset=offset, limit=limit))

    async def find_workflow(self, workflow_name: str) -> Workflow | None:
        """Return the workflow with exactly this (full, case-sensitive) name, or None.

        :param workflow_name: the full workflow name.
        """
        offset = 0
        while True:
            page = await self.list_workflows(workflow_name, offset=offset)
            for workflow in page.rows:
                if workflow.name == workflow_name:
                    return workflow
            if not has_more(len(page.rows), WORKFLOW_PAGE_SIZE, page.pagination):
                return None
            offset += len(page.rows)

    # Scheduled runs, crons and events

    async def schedule_run(self, workflow_name: str, trigger_at: datetime, input: Mapping[str, Any],
                     additional_metadata: Mapping[str, str] | None = None,
                     priority: int | None = None) -> ScheduledRun:
        """Schedule one run of a workflow (full name) at ``trigger_at``; sent once, never retried.

        :param workflow_name: the full workflow name.
        :param trigger_at: when the run is to start.
        :param input: the run input.
        :param additional_metadata: string metadata, carried by the run.
        :param priority: 1..3 or None.
        """
        return await self.send(scheduling.schedule(self.config.tenant_id, workflow_name, trigger_at, input,
                                             additional_metadata, priority))

    async def get_scheduled_run(self, scheduled_id: str) -> ScheduledRun:
        """Return a scheduled run that has not fired; 404 (:class:`HatchetNotFoundError`) once it has.

        :param scheduled_id: the scheduled run's id.
        """
        return await self.send(scheduling.get_scheduled(self.config.tenant_id, scheduled_id))

    async def list_scheduled_runs(self, **filters: Any) -> ScheduledRunPage:
        """Return one page of scheduled runs; see :func:`scheduling.list_scheduled` for the filters.

        :param filters: the filters and paging.
        """
        return await self.send(scheduling.list_scheduled(self.config.tenant_id, **filters))

    async def delete_scheduled_run(self, scheduled_id: str) -> None:
        """Delete a scheduled run that has not fired.

        :param scheduled_id: the scheduled run's id.
        """
        await self.send(scheduling.delete_scheduled(self.config.tenant_id, scheduled_id))

    async def reschedule_run(self, scheduled_id: str, trigger_at: datetime) -> ScheduledRun:
        """Move a scheduled run that has not fired to another time.

        :param scheduled_id: the scheduled run's id.
        :param trigger_at: the new time.
        """
        return await self.send(scheduling.reschedule(self.config.tenant_id, scheduled_id, trigger_at))

    async def create_cron(self, workflow_name: str, cron_name: str, expression: str, input: Mapping[str, Any],
                    additional_metadata: Mapping[str, str] | None = None, priority: int | None = None) -> Cron:
        """Create a cron trigger of a workflow (full name); sent once, never retried.

        :param workflow_name: the full workflow name.
        :param cron_name: the cron's name.
        :param expression: a five-field cron expression.
        :param input: the input of each run.
        :param additional_metadata: string metadata of each run.
        :param priority: 1..3 or None.
        """
        return await self.send(scheduling.create_cron(self.config.tenant_id, workflow_name, cron_name, expression,
                                                input, additional_metadata, priority))

    async def list_crons(self, **filters: Any) -> CronPage:
        """Return one page of crons; see :func:`scheduling.list_crons` for the filters.

        :param filters: the filters and paging.
        """
        return await self.send(scheduling.list_crons(self.config.tenant_id, **filters))

    async def set_cron_enabled(self, cron_id: str, enabled: bool) -> None:
        """Enable or disable a cron.

        :param cron_id: the cron's id.
        :param enabled: whether it fires.
        """
        await self.send(scheduling.set_cron_enabled(self.config.tenant_id, cron_id, enabled))

    async def delete_cron(self, cron_id: str) -> None:
        """Delete a cron.

        :param cron_id: the cron's id.
        """
        await self.send(scheduling.delete_cron(self.config.tenant_id, cron_id))

    async def list_events(self, *, since: datetime, **filters: Any) -> EventPage:
        """Return one page of events, newest first; see :func:`scheduling.list_events` for the filters.

        :param since: the earliest time the server stored the event.
        :param filters: the other filters and paging.
        """
        return await self.send(scheduling.list_events(self.config.tenant_id, since=since, **filters))
