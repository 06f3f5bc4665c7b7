"""The scenario runner: send one scenario's raw HTTP requests to a server and record every answer.

A scenario is a function of a :class:`Session`. It sends requests through :meth:`Session.call` (each one a
recorded :class:`Exchange` under a step name unique in the scenario) and watches runs change status with
:meth:`Session.watch` (one recorded exchange holding the status transitions). Run against two servers, the
same scenario yields two lists of exchanges with the same step names (``recording`` compares them).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from tests.real.grpc_stream import GrpcStream, StreamEnd, open_stream

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
ROOT = Path(__file__).resolve().parents[2]
WORKER_PYTHON = ROOT / ".venv-hatchet-worker" / "bin" / "python"
PUSH_EVENT = ROOT / "e2e" / "hatchet" / "push_event.py"
REGISTER_WORKFLOW = ROOT / "e2e" / "hatchet" / "register_workflow.py"
POLL_INTERVAL = 0.01
WAIT_TIMEOUT = 60.0


def token_tenant(token: str) -> str:
    """The tenant a Hatchet token names (its ``sub`` claim), read without verifying it.

    :param token: a JWT.
    """
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sub"])


def forge(token: str) -> str:
    """The token with its signature reversed: well-formed, but no server accepts it.

    :param token: a JWT.
    """
    header, payload, signature = token.split(".")
    return ".".join([header, payload, signature[::-1]])


@dataclass(frozen=True)
class Target:
    """A server to run scenarios against.

    :param name: ``sim`` or ``real``.
    :param url: the REST API's base URL.
    :param token: a token of the default tenant.
    :param foreign_token: a token of another tenant on the same server.
    :param grpc_address: its gRPC API's ``host:port`` (plaintext), for the scenarios that use gRPC.
    """

    name: str
    url: str
    token: str
    foreign_token: str
    grpc_address: str = ""

    @property
    def tenant(self) -> str:
        """The default tenant's id."""
        return token_tenant(self.token)

    @property
    def foreign_tenant(self) -> str:
        """The other tenant's id."""
        return token_tenant(self.foreign_token)


@dataclass
class Exchange:
    """One recorded answer.

    :param step: the step name, unique within its scenario.
    :param status: the HTTP status, ``grpc:<CODE>`` for a gRPC call, or ``None`` for a status watch.
    :param body: the decoded JSON body (``{"<text>": ...}`` when not JSON); for a watch, the states seen.
    """

    step: str
    status: int | str | None
    body: Any


@dataclass
class Session:
    """One scenario's run against one server: an HTTP client, a unique tag, and what was recorded.

    :param target: the server.
    :param http: a client for ``target.url``.
    """

    target: Target
    http: httpx.Client
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    exchanges: list[Exchange] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    _hanging: list[str] = field(default_factory=list)
    _channel: Any = None

    def __post_init__(self) -> None:
        self.names.update({self.target.tenant: "<tenant>", self.target.foreign_tenant: "<foreign-tenant>",
                           self.tag: "<tag>"})

    @property
    def since(self) -> str:
        """An RFC 3339 time a minute before the session began: every run of the session was created after it."""
        return (self.started - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def name(self, raw: str, placeholder: str) -> str:
        """Have a value (a run id) normalised to ``<placeholder>``, so that both servers' ids line up.

        :param raw: the value.
        :param placeholder: its name.
        """
        self.names[raw] = f"<{placeholder}>"
        return raw

    def headers(self, auth: str) -> dict[str, str]:
        """The ``Authorization`` header of one kind of caller.

        :param auth: ``default``, ``foreign``, ``forged``, ``garbage``, ``no-bearer``, ``none``, or the default
            token after another scheme spelling: ``lowercase-bearer`` (as hatchet-sdk sends it over gRPC),
            ``uppercase-bearer`` or ``two-spaces``.
        """
        token = {"default": self.target.token, "foreign": self.target.foreign_token,
                 "forged": forge(self.target.token), "garbage": "not-a-token"}.get(auth)
        if auth == "no-bearer":
            return {"Authorization": self.target.token}
        spelling = {"lowercase-bearer": "bearer ", "uppercase-bearer": "BEARER ", "two-spaces": "Bearer  "}.get(auth)
        if spelling:
            return {"Authorization": spelling + self.target.token}
        return {"Authorization": f"Bearer {token}"} if token else {}

    def call(self, step: str | None, method: str, path: str, *, body: Any = None, content: bytes | None = None,
             params: Any = None, auth: str = "default") -> httpx.Response:
        """Send one request and record its answer under ``step`` (``None``: do not record).

        :param step: the step name.
        :param method: the HTTP method.
        :param path: the path; ``{tenant}`` becomes the default tenant's id.
        :param body: a JSON body, serialised compactly.
        :param content: a raw body instead.
        :param params: query parameters.
        :param auth: the caller, as for :meth:`headers`.
        """
        headers = self.headers(auth)
        if body is not None:
            content = json.dumps(body, separators=(",", ":")).encode()
        if content is not None:
            headers["Content-Type"] = "application/json"
        response = self.http.request(method, path.format(tenant=self.target.tenant), content=content,
                                     params=params, headers=headers)
        if step is not None:
            self.record(step, response.status_code, _decode(response))
        return response

    def grpc(self, step: str | None, method: str, request: Any, reply: Any, *, auth: str = "default") -> Any:
        """Send one unary gRPC call to the target's gRPC address and record its answer under ``step``: the status
        as ``grpc:<CODE>``; the reply with the contracts' field names, or the error's text and its decoded
        ``google.rpc.Status`` details. Return the reply (``None`` on an error).

        :param step: the step name (``None``: do not record).
        :param method: the full method path, e.g. ``/WorkflowService/BulkTriggerWorkflow``.
        :param request: the request message (from ``airflow_provider_hatchet._protos``).
        :param reply: the reply's message class.
        :param auth: the caller, as for :meth:`headers`.
        """
        import grpc

        call = self.channel().unary_unary(method, request_serializer=type(request).SerializeToString,
                                         response_deserializer=reply.FromString)
        metadata = [(key.lower(), value) for key, value in self.headers(auth).items()]
        try:
            answer = call(request, metadata=metadata, timeout=30)
        except grpc.RpcError as exc:
            if step is not None:
                self.record(step, f"grpc:{exc.code().name}",
                            {"details": exc.details(), "status_details": _status_details(exc.trailing_metadata())})
            return None
        if step is not None:
            self.record_message(step, answer)
        return answer

    def channel(self) -> Any:
        """The session's gRPC channel to the target (opened on first use)."""
        import grpc

        if self._channel is None:
            self._channel = grpc.insecure_channel(self.target.grpc_address)
        return self._channel

    def stream(self, method: str, reply: Any, *, auth: str = "default") -> GrpcStream:
        """Open a bidirectional stream; its replies are recorded by :meth:`GrpcStream.expect` and
        :meth:`GrpcStream.close`.

        :param method: the full method path, e.g. ``/Dispatcher/SubscribeToWorkflowRuns``.
        :param reply: the reply's message class.
        :param auth: the caller, as for :meth:`headers`.
        """
        return open_stream(self, method, reply, [(key.lower(), value) for key, value in self.headers(auth).items()])

    def record_message(self, step: str, message: Any) -> None:
        """Record a gRPC reply as ``grpc:OK``: with the contracts' field names, timestamps as ``<timestamp>``, and
        repeated ``results`` (whose order the server does not define) sorted by task name.

        :param step: the step name.
        :param message: the reply.
        """
        self.record(step, "grpc:OK", _message_dict(message))

    def record_stream_end(self, step: str, end: StreamEnd | None, replies: list[Any]) -> None:
        """Record how a stream ended (``grpc:TIMEOUT`` when it did not) and the replies nobody took.

        :param step: the step name.
        :param end: the end.
        :param replies: the replies left.
        """
        self.record(step, f"grpc:{end.code}" if end else "grpc:TIMEOUT", {
            "details": end.details if end else "", "replies": [_message_dict(r) for r in replies]})

    def record(self, step: str, status: int | str | None, body: Any) -> None:
        """Record an answer.

        :param step: the step name; must be new in this session.
        :param status: the HTTP status, ``grpc:<CODE>``, or ``None``.
        :param body: the answer.
        """
        if any(e.step == step for e in self.exchanges):
            raise ValueError(f"step {step!r} recorded twice")
        self.exchanges.append(Exchange(step, status, body))

    def trigger(self, step: str | None, workflow: str, run_input: Any = None, *, name: str | None = None,
                metadata: Mapping[str, str] | None = None, **extra: Any) -> str:
        """Trigger a run with ``return_only_id`` and this session's tag; return its id.

        :param step: the step name (``None``: do not record).
        :param workflow: the workflow name.
        :param run_input: the input (``{}`` when omitted).
        :param name: the placeholder the run id normalises to.
        :param metadata: more metadata besides ``test_tag``.
        :param extra: more body fields.
        """
        body = {"workflowName": workflow, "input": {} if run_input is None else run_input,
                "additionalMetadata": {"test_tag": self.tag, **(metadata or {})}, "return_only_id": True, **extra}
        response = self.call(step, "POST", "/api/v1/stable/tenants/{tenant}/workflow-runs/trigger", body=body)
        response.raise_for_status()
        run_id = str(response.json()["run"]["metadata"]["id"])
        if workflow.endswith("demo-hang"):
            self._hanging.append(run_id)
        return self.name(run_id, name) if name else run_id

    def status(self, run_id: str) -> str:
        """A run's status now, or ``404``.

        :param run_id: the run id.
        """
        response = self.call(None, "GET", f"/api/v1/stable/workflow-runs/{run_id}/status")
        if response.status_code == 404:
            return "404"
        response.raise_for_status()
        return str(response.json())

    def watch(self, step: str | None, run_id: str, until: tuple[str, ...] = TERMINAL, *,
              on_running: Callable[[], Any] | None = None, timeout: float = WAIT_TIMEOUT) -> list[str]:
        """Poll a run's status quickly until it is one of ``until``; record the distinct states in order.

        :param step: the step name (``None``: do not record).
        :param run_id: the run id.
        :param until: the states to stop at.
        :param on_running: called once when the run is first seen RUNNING (e.g. to cancel it).
        :param timeout: seconds before giving up (the states so far are recorded with ``TIMEOUT``).
        """
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            state = self.status(run_id)
            if not seen or seen[-1] != state:
                seen.append(state)
                if state == "RUNNING" and on_running is not None:
                    on_running()
            if state in until:
                break
            if time.monotonic() > deadline:
                seen.append("TIMEOUT")
                break
            time.sleep(POLL_INTERVAL)
        if step is not None:
            self.record(step, None, {"transitions": seen})
        return seen

    def list_runs(self, **params: Any) -> list[dict[str, Any]]:
        """List this session's runs (unrecorded): rows carrying its tag.

        :param params: more query parameters.
        """
        query = {"since": self.since, "only_tasks": "false", "additional_metadata": f"test_tag:{self.tag}",
                 "limit": 200, **params}
        response = self.call(None, "GET", "/api/v1/stable/tenants/{tenant}/workflow-runs", params=query)
        response.raise_for_status()
        return list(response.json()["rows"])

    def wait_listed(self, count: int, timeout: float = WAIT_TIMEOUT) -> None:
        """Wait until the run list shows ``count`` runs of this session, all finished.

        :param count: how many runs.
        :param timeout: seconds before giving up.
        """
        deadline = time.monotonic() + timeout
        while True:
            rows = self.list_runs()
            if len(rows) >= count and all(row["status"] in TERMINAL for row in rows):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.target.name}: {len(rows)} of {count} runs listed and finished")
            time.sleep(0.1)

    def push_event(self, key: str, payload: Mapping[str, Any], metadata: Mapping[str, str]) -> str:
        """Push an event (unrecorded) and return its id: into the simulator through its admin API, to the real
        server over gRPC with hatchet-sdk (``e2e/hatchet/push_event.py``), since its REST event-create is gone.

        :param key: the event key.
        :param payload: the event payload.
        :param metadata: the event's metadata.
        """
        if self.target.name == "sim":
            response = self.http.post("/_simulator/events", json={
                "key": key, "payload": dict(payload), "additional_metadata": dict(metadata),
                "tenant_id": self.target.tenant})
            response.raise_for_status()
            return str(response.json()["id"])
        env = {**os.environ, "HATCHET_CLIENT_TOKEN": self.target.token}
        done = subprocess.run(
            [str(WORKER_PYTHON), str(PUSH_EVENT), key, json.dumps(payload), json.dumps(metadata)],
            env=env, capture_output=True, text=True, timeout=60, check=True)
        return done.stdout.strip().splitlines()[-1]

    def register_unserved_workflow(self, name: str) -> None:
        """Register a workflow (unrecorded) that no worker serves: in the simulator through its admin API
        (``served: false``), on the real server over gRPC with hatchet-sdk (``e2e/hatchet/register_workflow.py``).

        :param name: the workflow name.
        """
        if self.target.name == "sim":
            self.http.post("/_simulator/workflows", json={
                "name": name, "served": False, "tenant_id": self.target.tenant}).raise_for_status()
            return
        env = {**os.environ, "HATCHET_CLIENT_TOKEN": self.target.token}
        subprocess.run([str(WORKER_PYTHON), str(REGISTER_WORKFLOW), name], env=env, capture_output=True, text=True,
                       timeout=60, check=True)

    def cleanup(self) -> None:
        """Cancel the hanging runs this session started (unrecorded), so they free the worker's slots."""
        if self._hanging:
            self.call(None, "POST", "/api/v1/stable/tenants/{tenant}/tasks/cancel",
                      body={"externalIds": self._hanging})
        if self._channel is not None:
            self._channel.close()


def _message_dict(message: Any) -> Any:
    from google.protobuf.json_format import MessageToDict

    value = _without_times(MessageToDict(message, preserving_proto_field_name=True))
    if isinstance(value.get("results"), list):
        value["results"].sort(key=lambda result: str(result.get("task_name")))
    return value


def _without_times(value: Any) -> Any:
    """A reply with each ``google.protobuf.Timestamp`` (``{"seconds": ..., "nanos": ...}``) as ``<timestamp>``."""
    if isinstance(value, dict):
        if value and set(value) <= {"seconds", "nanos"}:
            return "<timestamp>"
        return {key: _without_times(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_times(item) for item in value]
    return value


def _status_details(trailing_metadata: Any) -> list[dict[str, Any]]:
    """The ``google.rpc.Status`` details of a failed call, each decoded when it is one of Hatchet's collision
    messages (``{"type": ..., "value": {...}}``), else just its type."""
    from google.protobuf.json_format import MessageToDict

    from airflow_provider_hatchet import _protos

    readers = {_protos.IDEMPOTENCY_COLLISION: _protos.IdempotencyCollisionError,
               _protos.BULK_IDEMPOTENCY_COLLISION: _protos.BulkTriggerIdempotencyCollisionError}
    found: list[dict[str, Any]] = []
    for key, value in trailing_metadata or ():
        if key != _protos.STATUS_DETAILS_KEY:
            continue
        for detail in _protos.Status.FromString(value).details:
            kind = detail.type_url.rsplit("/", 1)[-1]
            reader = readers.get(kind)
            decoded = MessageToDict(reader.FromString(detail.value), preserving_proto_field_name=True) if reader else {}
            found.append({"type": kind, "value": decoded})
    return found


def _decode(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"<text>": response.text}


Scenario = Callable[[Session], None]


@contextmanager
def session(target: Target) -> Iterator[Session]:
    """A session against ``target``; its hanging runs are cancelled afterwards.

    :param target: the server.
    """
    with httpx.Client(base_url=target.url, timeout=60) as http:
        current = Session(target, http)
        try:
            yield current
        finally:
            current.cleanup()


def run(scenario: Scenario, target: Target) -> Session:
    """Run a scenario against a server and return the session with its recording.

    :param scenario: the scenario.
    :param target: the server.
    """
    with session(target) as current:
        scenario(current)
    return current
