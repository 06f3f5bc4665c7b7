"""HatchetSimulator: a stateful, thread-safe fake of the Hatchet REST API."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from airflow_provider_hatchet import _protos

from ._http import JSON_HEADERS, SimResponse, message
from .admin import handle_admin
from .api import HatchetApi, injected_response
from .auth import DEFAULT_EXPIRES_IN, TokenAuthority, normalize_url
from .faults import ROUTES, Decision, FaultInjector, Faults, RejectSpec
from .grpc_api import GRPC_STATUS_NAMES, ROUTE_OF, STATUSES, GrpcAnswer, HatchetGrpcApi, timestamp_of
from .records import RequestRecord, RunInfo
from .run_events import POLL_INTERVAL, RunEvents, RunStream
from .runs import Run
from .store import Clock, SimState, Tenant
from .versions import SIM_VERSION, release
from .workflows import OutputSpec, TaskArg, WorkflowSpec

if TYPE_CHECKING:
    from .asgi import ASGIApp
    from .grpc_server import SimulatorGrpcServer
    from .transport import SimulatorTransport

ADMIN_PREFIX = "/_simulator"


# The real server's medians (docs/hatchet-behaviour.md): trigger to first readable, and cancel to CANCELLED.
DEFAULT_VISIBILITY_DELAY = 0.05
DEFAULT_CANCEL_DELAY = 0.03
# Longer than the real server's (docs/hatchet-behaviour.md), so that tests see the replay's read lag.
DEFAULT_REPLAY_DELAY = 1.0
# A replayed DAG's next task is re-created this long after the one before it ended (20 to 100 ms measured).
DEFAULT_REPLAY_GAP = 0.05


class HatchetSimulator:
    """A fake Hatchet server answering the provider's REST calls from memory.

    Status moves lazily with the clock (no background threads): QUEUED for the workflow's ``queue_delay``,
    then RUNNING while tasks run, then COMPLETED/FAILED; ``hang`` workflows run until cancelled.

    :param server_url: the URL tokens must carry; set :attr:`server_url` again once a port is bound.
    :param visibility_delay: seconds a new run answers 404 and is missing from lists.
    :param cancel_delay: seconds between a cancel request and the run reading CANCELLED.
    :param replay_delay: seconds a replayed run still reads as before the replay (FAILED, old retry count).
    :param replay_gap: seconds between two tasks of a replayed DAG run, in which it reads FAILED if it had failed.
    :param unknown_workflow_delay: seconds the trigger of an unknown workflow waits before its 500.
    :param seed: seed for ids and random faults.
    :param clock: monotonic clock in seconds (e.g. :class:`~.clock.ManualClock`).
    :param request_log_limit: most recent requests kept in :attr:`requests`; 0 disables the log.
    :param secret: HMAC key for tokens; random when omitted.
    :param wall_offset: seconds the simulator's wall clock (its timestamps and ``Date`` headers) runs ahead of
        the machine's; negative for behind. For tests of clock skew.
    :param version: the Hatchet release it answers as (``GET /api/v1/version``); an older one than
        ``SIM_VERSION`` ignores the parameters that release ignores (``testing/versions.py``).
    :param run_stream_poll: seconds of its clock between polls of a finished-run stream, which find the runs that
        had finished before they were subscribed (``testing/run_events.py``).
    """

    def __init__(
        self,
        server_url: str = "http://127.0.0.1:0",
        *,
        visibility_delay: float = DEFAULT_VISIBILITY_DELAY,
        cancel_delay: float = DEFAULT_CANCEL_DELAY,
        replay_delay: float = DEFAULT_REPLAY_DELAY,
        replay_gap: float = DEFAULT_REPLAY_GAP,
        unknown_workflow_delay: float = 10.0,
        seed: int = 0,
        clock: Clock = time.monotonic,
        request_log_limit: int = 10_000,
        secret: bytes | None = None,
        wall_offset: float = 0.0,
        version: str = SIM_VERSION,
        run_stream_poll: float = POLL_INTERVAL,
    ) -> None:
        release(version)  # a bad version fails here, not at the first request
        self.version = version
        self._lock = threading.RLock()
        self.cancel_delay = cancel_delay
        self.replay_delay = replay_delay
        self.replay_gap = replay_gap
        self.unknown_workflow_delay = unknown_workflow_delay
        self._state = SimState(clock, seed, visibility_delay, wall_offset)
        self._date: tuple[int, bytes] = (-1, b"")
        self._auth = TokenAuthority(lambda: self._state.wall(self._state.clock()), secret)
        self._faults = FaultInjector(seed)
        self._api = HatchetApi(self._state, self._auth, self._faults, self)
        self._grpc = HatchetGrpcApi(self._state, self._auth, self._faults, self)
        self._run_events = RunEvents(self._lock, self, run_stream_poll)
        self._requests: deque[RequestRecord] | None = None
        self.request_log_limit = request_log_limit
        self._tokens: dict[tuple[str, str], str] = {}
        self._auth.server_url = normalize_url(server_url)

    @property
    def server_url(self) -> str:
        """The URL the server is reached at; tokens whose ``server_url`` claim differs get 403."""
        return self._auth.server_url

    @server_url.setter
    def server_url(self, value: str) -> None:
        with self._lock:
            self._auth.server_url = normalize_url(value)

    @property
    def grpc_address(self) -> str | None:
        """The ``host:port`` of the gRPC face, which tokens carry as ``grpc_broadcast_address``; None before one
        is served (tokens then name port 7070 next to :attr:`server_url`)."""
        return self._auth.grpc_address

    @grpc_address.setter
    def grpc_address(self, value: str | None) -> None:
        with self._lock:
            self._auth.grpc_address = value
            self._tokens.clear()

    @property
    def visibility_delay(self) -> float:
        """Seconds a new run stays invisible to details, status and list."""
        return self._state.visibility_delay

    @visibility_delay.setter
    def visibility_delay(self, value: float) -> None:
        with self._lock:
            self._state.visibility_delay = value

    @property
    def request_log_limit(self) -> int:
        """How many recent requests :attr:`requests` keeps (0: none)."""
        return (self._requests.maxlen or 0) if self._requests is not None else 0

    @request_log_limit.setter
    def request_log_limit(self, value: int) -> None:
        with self._lock:
            old = list(self._requests) if self._requests is not None else []
            self._requests = deque(old, maxlen=value) if value > 0 else None

    @property
    def tenant_id(self) -> str:
        """The default tenant's UUID."""
        return self._state.default_tenant.id

    @property
    def token(self) -> str:
        """A valid token for the default tenant and the current :attr:`server_url`."""
        return self._token_for(self.tenant_id)

    def _token_for(self, tenant_id: str) -> str:
        with self._lock:
            key = (tenant_id, self.server_url)
            token = self._tokens.get(key)
            if token is None:
                token = self.mint_token(tenant_id)
                self._tokens[key] = token
            return token

    def token_for(self, tenant_id: str) -> str:
        """Return a cached valid token for a tenant and the current :attr:`server_url`.

        :param tenant_id: the tenant.
        """
        return self._token_for(tenant_id)

    def add_tenant(self, name: str = "tenant") -> str:
        """Create another tenant and return its UUID.

        :param name: display name.
        """
        with self._lock:
            return self._state.add_tenant(name).id

    def mint_token(
        self,
        tenant_id: str | None = None,
        server_url: str | None = None,
        *,
        expires_in: float = DEFAULT_EXPIRES_IN,
        revoked: bool = False,
    ) -> str:
        """Mint a token (valid, expired, revoked or for another URL, as tests need).

        :param tenant_id: the ``sub`` claim; default tenant when omitted (need not exist).
        :param server_url: the ``server_url`` claim; current :attr:`server_url` when omitted.
        :param expires_in: seconds until expiry; zero or negative makes it already expired.
        :param revoked: record the token as revoked.
        """
        with self._lock:
            return self._auth.mint(tenant_id or self.tenant_id, server_url or self.server_url,
                                   token_id=self._state.new_id(), expires_in=expires_in, revoked=revoked)

    def revoke_token(self, token: str) -> None:
        """Revoke a token minted by this simulator.

        :param token: the token.
        """
        with self._lock:
            self._auth.revoke(token)
            self._tokens = {k: v for k, v in self._tokens.items() if v != token}

    def register_workflow(
        self,
        name: str,
        behaviour: str = "succeed",
        *,
        duration: float = 0.05,
        queue_delay: float = 0.0,
        error_message: str | None = None,
        tasks: Sequence[TaskArg] | None = None,
        output: OutputSpec = None,
        tenant_id: str | None = None,
        idempotency_key: str | None = None,
        idempotency_ttl: float = 600.0,
        on_events: Sequence[str] = (),
        served: bool = True,
    ) -> WorkflowSpec:
        """Register a workflow (names are exact and case-sensitive; re-registering redefines it).

        :param name: the workflow name.
        :param behaviour: ``succeed``, ``fail``, ``hang`` or ``multi_task``.
        :param duration: seconds each task runs.
        :param queue_delay: seconds a run stays QUEUED.
        :param error_message: failure message of ``fail`` (default ``Exception: simulated failure in w:t``).
        :param tasks: task names or dicts ``{name, duration?, fail?, hang?, error_message?}``; one task for
            single-task behaviours (default ``run``), several for ``multi_task`` (default extract,
            transform, load).
        :param output: the last task's output: a mapping, or a function of the run input.
        :param tenant_id: the tenant; default tenant when omitted.
        :param idempotency_key: as hatchet-sdk's ``key_expression``: ``input.<path>`` or
            ``additional_metadata.<key>``; a second trigger whose key (a string) is taken answers 500.
        :param idempotency_ttl: seconds a key stays taken.
        :param on_events: event keys that trigger a run (pushed over gRPC), with the event's payload as input
            and its metadata plus ``hatchet__event_id`` and ``hatchet__event_key``, as Hatchet does.
        :param served: the tenant's worker serves it; False registers it as through the API with no worker, so its
            runs stay QUEUED (until :meth:`start_worker` serves it).
        """
        with self._lock:
            tenant = self._tenant(tenant_id)
            worker = self._state.workers.of(self._state, tenant)
            (worker.unserved.discard if served else worker.unserved.add)(name)
            return self._state.register_workflow(
                tenant, name, behaviour, duration=duration, queue_delay=queue_delay,
                error_message=error_message, tasks=tasks, output=output, idempotency_key=idempotency_key,
                idempotency_ttl=idempotency_ttl, on_events=on_events)

    def workflows(self, tenant_id: str | None = None) -> list[WorkflowSpec]:
        """Return a tenant's workflows in registration order.

        :param tenant_id: the tenant; default tenant when omitted.
        """
        with self._lock:
            return list(self._tenant(tenant_id).workflows.values())

    def _tenant(self, tenant_id: str | None) -> Tenant:
        tenant = self._state.tenants.get((tenant_id or self.tenant_id).lower())
        if tenant is None:
            raise KeyError(f"unknown tenant {tenant_id}")
        return tenant

    @property
    def faults(self) -> Faults:
        """Random fault settings; assign a new :class:`~.faults.Faults` to change them."""
        return self._faults.faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        with self._lock:
            self._faults.faults = value

    def fail_next(
        self,
        route: str,
        count: int = 1,
        status: int = 503,
        *,
        after_create: bool = False,
        drop: bool = False,
        delay: float = 0.0,
        body: Any = None,
    ) -> None:
        """Make the next ``count`` requests of a route kind fail.

        :param route: ``trigger``, ``status``, ``details``, ``list``, ``cancel``, ``workflows`` or ``logs``.
        :param count: how many requests.
        :param status: the status answered (429 answers ``null``, 5xx an echo message).
        :param after_create: on trigger, create the run first, then fail.
        :param drop: break the connection instead of answering ``status``.
        :param delay: seconds of latency before the failure.
        :param body: a JSON body to answer instead of the standard one.
        """
        with self._lock:
            self._faults.fail_next(route, count, Decision(delay, None if drop else status, after_create,
                                                          drop, body))

    def reject_trigger_if(self, spec: RejectSpec, status: int = 400, message: str | None = None) -> None:
        """Reject matching trigger requests permanently, before any run is created.

        :param spec: predicate on the request body, or a mapping the body must contain, e.g.
            ``{"input": {"bad": True}}``.
        :param status: status answered; 4xx answer APIErrors with ``message``.
        :param message: error description (default ``rejected by the simulator``).
        """
        with self._lock:
            self._faults.reject_trigger_if(spec, status, message or "rejected by the simulator")

    def clear_faults(self) -> None:
        """Remove random faults, queued failures and rejections."""
        with self._lock:
            self._faults.clear()

    def pending_failures(self) -> dict[str, int]:
        """Return the queued one-shot failures left per route."""
        with self._lock:
            return self._faults.pending()

    def _info(self, run: Run, now: float) -> RunInfo:
        return RunInfo(run.id, run.tenant_id, run.workflow.name, run.body, run.status(now), run.created_iso,
                       run.task_ids)

    @property
    def runs(self) -> list[RunInfo]:
        """Every run, oldest first, with the exact body received and the status now."""
        with self._lock:
            now = self._state.clock()
            self._state.calendar.fire_due(self._state, now)
            return [self._info(run, now) for run in self._state.order]

    def run_count(self, tenant_id: str | None = None) -> int:
        """Return how many runs exist (in one tenant, or all when omitted).

        :param tenant_id: the tenant.
        """
        with self._lock:
            self._state.calendar.fire_due(self._state, self._state.clock())
            if tenant_id is None:
                return len(self._state.order)
            return len(self._tenant(tenant_id).runs)

    def get_run(self, run_id: str) -> RunInfo | None:
        """Return a run (visible or not) by id, or ``None``.

        :param run_id: the run id.
        """
        with self._lock:
            run = self._state.runs.get(run_id.lower())
            return self._info(run, self._state.clock()) if run is not None else None

    def run_status(self, run_id: str) -> str:
        """Return a run's status now, ignoring the visibility delay.

        :param run_id: the run id.
        :raises KeyError: for an unknown id.
        """
        with self._lock:
            return self._state.runs[run_id.lower()].status(self._state.clock())

    def status_counts(self) -> dict[str, int]:
        """Return how many runs are in each status now."""
        with self._lock:
            now = self._state.clock()
            counts: dict[str, int] = {}
            for run in self._state.order:
                status = run.status(now)
                counts[status] = counts.get(status, 0) + 1
            return counts

    @property
    def phantom_ids(self) -> list[str]:
        """Ids returned for unknown workflows triggered with ``return_only_id`` (they never exist)."""
        with self._lock:
            return list(self._state.phantom_ids)

    @property
    def requests(self) -> list[RequestRecord]:
        """The most recent requests (up to :attr:`request_log_limit`), oldest first."""
        with self._lock:
            return list(self._requests) if self._requests is not None else []

    def clear_requests(self) -> None:
        """Empty the request log."""
        with self._lock:
            if self._requests is not None:
                self._requests.clear()

    def reset(self, *, keep_workflows: bool = True) -> None:
        """Forget runs, requests and faults.

        :param keep_workflows: keep registered workflows (else every tenant's workflows go too).
        """
        with self._lock:
            self._state.reset_runs()
            self._run_events.reset()
            self._faults.clear()
            self.clear_requests()
            if not keep_workflows:
                for tenant in self._state.tenants.values():
                    tenant.workflows.clear()
                self._state.workers.by_tenant.clear()

    def push_event(self, key: str, payload: dict[str, Any] | None = None,
                   additional_metadata: dict[str, Any] | None = None, *, tenant_id: str | None = None) -> str:
        """Store an event as Hatchet does when one is pushed over gRPC, and return its id.

        :param key: the full event key (namespace included).
        :param payload: the event payload.
        :param additional_metadata: the event's metadata.
        :param tenant_id: the tenant; default tenant when omitted.
        """
        with self._lock:
            return self._state.calendar.push_event(self._state, self._tenant(tenant_id), key, payload or {},
                                                   additional_metadata or {}).id

    def scheduled_runs(self) -> list[dict[str, Any]]:
        """The scheduled runs that have not fired: ``{id, workflow, trigger_at (UNIX), body}``."""
        with self._lock:
            self._state.calendar.fire_due(self._state, self._state.clock())
            return [{"id": s.id, "workflow": s.workflow, "trigger_at": s.trigger_at, "body": s.body}
                    for s in self._state.calendar.scheduled.values()]

    def stop_worker(self, *, tenant_id: str | None = None) -> None:
        """Stop the tenant's worker: it reads INACTIVE 5 s later, and runs triggered from now stay QUEUED.

        :param tenant_id: the tenant; default tenant when omitted.
        """
        with self._lock:
            self._state.workers.stop(self._state, self._tenant(tenant_id))

    def start_worker(self, *, unserved: Iterable[str] | None = None, tenant_id: str | None = None) -> None:
        """Start the tenant's worker (again); the QUEUED runs it now serves start.

        :param unserved: full workflow names it does not serve (their runs stay QUEUED); None keeps the last set.
        :param tenant_id: the tenant; default tenant when omitted.
        """
        with self._lock:
            self._state.workers.start(self._state, self._tenant(tenant_id),
                                      None if unserved is None else set(unserved))

    def now(self) -> float:
        """Return the simulator clock."""
        return self._state.clock()

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers of every answer: the JSON content type, and a ``Date`` on the simulator's wall clock (whole
        seconds, as Hatchet's Go server sends it)."""
        second = int(self._state.wall(self._state.clock()))
        if second != self._date[0]:
            self._date = (second, formatdate(second, usegmt=True).encode())
        return [*JSON_HEADERS, (b"date", self._date[1])]

    def handle(self, method: str, path: str, query: str = "", authorization: str | None = None,
               body: bytes = b"") -> SimResponse:
        """Answer one request; transports call this and then apply ``delay`` and ``drop``.

        Requests to the admin API (``/_simulator/...``) are not logged in :attr:`requests`.

        :param method: HTTP method.
        :param path: URL path.
        :param query: raw query string.
        :param authorization: the ``Authorization`` header.
        :param body: the request body.
        """
        with self._lock:
            if path.startswith(ADMIN_PREFIX):
                return handle_admin(self, method, path[len(ADMIN_PREFIX):], query, body)
            route, response = self._handle_api(method, path, query, authorization, body)
            if self._requests is not None:
                self._requests.append(RequestRecord(method, path, query, body, response.status, route,
                                                    response.drop))
            return response

    def handle_grpc(self, method: str, authorization: str | None, request: Any, raw: bytes = b"") -> GrpcAnswer:
        """Answer one gRPC call; the gRPC face calls this and then applies ``delay`` and ``drop``.

        :param method: the full method path, e.g. ``/WorkflowService/BulkTriggerWorkflow``.
        :param authorization: the ``authorization`` metadata value.
        :param request: the decoded request message.
        :param raw: the encoded request, for the request log.
        """
        with self._lock:
            answer = self._grpc.handle(method, authorization, request)
            if self._requests is not None:
                self._requests.append(RequestRecord("GRPC", method, "", raw, STATUSES.get(answer.code, 500),
                                                    ROUTE_OF.get(method), answer.drop))
            return answer

    def open_run_stream(self, authorization: str | None) -> RunStream | None:
        """Open a finished-run stream (``Dispatcher.SubscribeToWorkflowRuns``) for a caller, or ``None`` for a bad
        token; the gRPC face calls this, then :meth:`subscribe_run` and :meth:`run_stream_events`.

        :param authorization: the ``authorization`` metadata value.
        """
        with self._lock:
            tenant = self._grpc.tenant_of(authorization)
            if self._requests is not None:
                self._requests.append(RequestRecord("GRPC", _protos.SUBSCRIBE_RUNS, "", b"",
                                                    200 if tenant else 401, None, False))
            return None if tenant is None else self._run_events.open(tenant.id, self._state.clock())

    def subscribe_run(self, stream: RunStream, run_id: str) -> None:
        """Remember a run id a stream's client sent.

        :param stream: the stream.
        :param run_id: the id as sent.
        """
        with self._lock:
            self._run_events.subscribe(stream, run_id, self._state.clock())

    def run_stream_events(self, stream: RunStream) -> list[Any]:
        """The ``WorkflowRunEvent`` messages a stream sends now (each run once).

        :param stream: the stream.
        """
        with self._lock:
            now = self._state.clock()
            events = self._run_events.due(stream, self._state.runs, now)
            stamp = timestamp_of(self._state.wall(now))
            for event in events:
                event.event_timestamp.CopyFrom(stamp)
            return events

    def close_run_stream(self, stream: RunStream) -> None:
        """End a stream: its client half-closed or went away.

        :param stream: the stream.
        """
        with self._lock:
            self._run_events.close(stream)

    @property
    def run_streams_changed(self) -> threading.Condition:
        """Notified when a stream is subscribed to, closed or cut (the gRPC face waits on it); its lock is the
        simulator's."""
        return self._run_events.changed

    def wait_run_subscribed(self, run_ids: Iterable[str], *, streams: int = 1, timeout: float = 10.0) -> None:
        """Wait until ``streams`` open finished-run streams each remember every one of ``run_ids`` (their clients'
        subscriptions arrived), so a test moves the clock only after them.

        :param run_ids: the run ids (a sent run is no longer remembered: wait before its event falls due).
        :param streams: how many streams.
        :param timeout: real seconds before giving up.
        :raises TimeoutError: when they do not arrive in time.
        """
        wanted = {run_id.lower() for run_id in run_ids}
        with self._run_events.changed:
            if not self._run_events.changed.wait_for(lambda: sum(
                    wanted <= set(s.pending) for s in self._run_events.streams) >= streams, timeout):
                raise TimeoutError(f"{streams} stream(s) did not subscribe to {sorted(wanted)} in {timeout} s: "
                                   f"{self.open_run_streams()}")

    def cut_run_streams(self, code: str = "UNAVAILABLE") -> int:
        """Fault hook: end every open finished-run stream, as a server restart or a dropped proxy does; return how
        many were open. Their clients must open a new stream and send their run ids again.

        :param code: the gRPC status the clients see: ``UNAVAILABLE`` (a dropped connection) or ``OK`` (Hatchet's
            own shutdown ends each stream with OK), or another status name such as ``INTERNAL``.
        :raises ValueError: for a name that is no gRPC status.
        """
        if code not in GRPC_STATUS_NAMES:
            raise ValueError(f"code must be a gRPC status name such as UNAVAILABLE or OK, got {code!r}")
        with self._lock:
            return self._run_events.cut_all(code)

    def drop_run_event(self, run_id: str) -> None:
        """Fault hook: never send this run's finished event on any stream (as if the message were lost), so the
        waiting side must find the run finished by its own reconciliation. ``reset`` forgets it.

        :param run_id: the run id.
        """
        with self._lock:
            self._run_events.dropped.add(run_id.lower())

    def open_run_streams(self) -> list[set[str]]:
        """The run ids each open finished-run stream is still waiting for (subscribed, not yet sent)."""
        with self._lock:
            return [set(stream.pending) | set(stream.crashing) for stream in self._run_events.streams]

    def grpc_server(self, host: str = "127.0.0.1", port: int = 0) -> SimulatorGrpcServer:
        """Return the gRPC face of this simulator (not started); ``with`` it to serve on loopback.

        :param host: the interface.
        :param port: the port (0 picks a free one).
        """
        from .grpc_server import SimulatorGrpcServer

        return SimulatorGrpcServer(self, host=host, port=port)

    def _handle_api(self, method: str, path: str, query: str, authorization: str | None,
                    body: bytes) -> tuple[str | None, SimResponse]:
        parts = path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "api" or parts[1] != "v1":
            return None, message(404, "Not Found")
        self._state.calendar.fire_due(self._state, self._state.clock())
        matched = self._api.route(method, parts[2:])
        if isinstance(matched, SimResponse):
            return None, matched
        kind, handler = matched
        decision = self._faults.decide(kind) if kind in ROUTES else None
        if decision is not None and decision.fails and not decision.after_create:
            response = injected_response(decision)
        else:
            response = handler(parts[2:], query, authorization, body, decision)
        if decision is not None and decision.delay:
            response.delay += decision.delay
        return kind, response

    def transport(self) -> SimulatorTransport:
        """Return an httpx sync and async transport that talks to this simulator in-process."""
        from .transport import SimulatorTransport

        return SimulatorTransport(self)

    def asgi_app(self) -> ASGIApp:
        """Return a raw ASGI application serving this simulator."""
        from .asgi import make_asgi_app

        return make_asgi_app(self)

    def settings(self) -> dict[str, float]:
        """The timing settings, as the admin API shows them."""
        return {"visibility_delay": self.visibility_delay, "cancel_delay": self.cancel_delay,
                "replay_delay": self.replay_delay, "replay_gap": self.replay_gap,
                "unknown_workflow_delay": self.unknown_workflow_delay}

    def __repr__(self) -> str:
        return f"HatchetSimulator(server_url={self.server_url!r}, tenant_id={self.tenant_id!r})"
