"""The ``/_simulator/`` admin API, for driving a simulator that runs in another process.

No authentication; JSON in and out; bad arguments give 400 ``{"message": ...}``. Admin requests are not
recorded in the request log.

- ``GET  /info``: ``{url, tenant_id, token, settings, run_count}``
- ``GET  /workflows[?tenant_id=]`` / ``POST /workflows`` ``{name, behaviour?, duration?, queue_delay?,
  error_message?, tasks?, tenant_id?, served?}``
- ``GET  /faults`` (``{faults, pending}``), ``PUT|POST /faults`` (fields of :class:`~.faults.Faults`),
  ``DELETE /faults`` (clear everything)
- ``POST /fail-next`` ``{route, count?, status?, after_create?, drop?, delay?, body?}``
- ``POST /reject`` ``{match: {...subset of the trigger body...}, status?, message?}``
- ``POST /reset`` ``{keep_workflows?}``
- ``PUT|POST /settings`` ``{visibility_delay?, cancel_delay?, replay_delay?, replay_gap?, unknown_workflow_delay?}``
- ``GET  /runs[?workflow_name=&status=&offset=&limit=1000]``: ``{count, runs: [{id, tenant_id, workflow_name,
  status, created_at, task_ids, body}]}``; ``GET /runs/{id}``; ``GET /runs/count``: ``{count, by_status,
  phantom_ids}``
- ``GET  /requests[?limit=100]`` / ``DELETE /requests``
- ``POST /tokens`` ``{tenant_id?, server_url?, expires_in?, revoked?}`` -> ``{token}``
- ``POST /tenants`` ``{name?}`` -> ``{tenant_id, token}``
- ``POST /events`` ``{key, payload?, additional_metadata?, tenant_id?}`` -> ``{id}`` (as an event pushed over gRPC)
- ``GET  /run-streams``: ``{streams: [[run ids a finished-run stream waits for], ...]}``;
  ``POST /run-streams/cut`` ``{code?}`` -> ``{cut}``; ``POST /run-streams/drop`` ``{run_id}`` (the fault hooks)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ._http import SimResponse, json_response, message
from .faults import Faults

if TYPE_CHECKING:
    from .simulator import HatchetSimulator

AdminHandler = Callable[["HatchetSimulator", dict[str, list[str]], Any], Any]


def _info(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    return {"url": sim.server_url, "tenant_id": sim.tenant_id, "token": sim.token,
            "settings": sim.settings(), "run_count": sim.run_count()}


def _list_workflows(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    tenant = query.get("tenant_id", [None])[0]
    return {"workflows": [w.to_admin_json() for w in sim.workflows(tenant)]}


def _register_workflow(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    args = dict(body)
    name = args.pop("name")
    behaviour = args.pop("behaviour", "succeed")
    return sim.register_workflow(name, behaviour, **args).to_admin_json()


def _get_faults(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    return {"faults": sim.faults.to_json(), "pending": sim.pending_failures()}


def _set_faults(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    sim.faults = Faults.from_json(body or {})
    return _get_faults(sim, query, body)


def _fail_next(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    args = dict(body)
    sim.fail_next(args.pop("route"), **args)
    return _get_faults(sim, query, body)


def _reject(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    sim.reject_trigger_if(body["match"], status=int(body.get("status", 400)), message=body.get("message"))
    return {"ok": True}


def _clear_faults(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    sim.clear_faults()
    return _get_faults(sim, query, body)


def _reset(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    sim.reset(keep_workflows=bool((body or {}).get("keep_workflows", True)))
    return {"ok": True}


def _settings(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    for key in ("visibility_delay", "cancel_delay", "replay_delay", "replay_gap", "unknown_workflow_delay"):
        if key in (body or {}):
            setattr(sim, key, float(body[key]))
    return sim.settings()


def _runs(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    runs = sim.runs
    workflow = query.get("workflow_name", [None])[0]
    status = query.get("status", [None])[0]
    if workflow:
        runs = [r for r in runs if r.workflow_name == workflow]
    if status:
        runs = [r for r in runs if r.status == status]
    offset = int(query.get("offset", ["0"])[0])
    limit = int(query.get("limit", ["1000"])[0])
    return {"count": len(runs), "runs": [r.to_json() for r in runs[offset:offset + limit]]}


def _run_count(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    return {"count": sim.run_count(), "by_status": sim.status_counts(), "phantom_ids": sim.phantom_ids}


def _requests(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    records = sim.requests
    limit = int(query.get("limit", ["100"])[0])
    return {"count": len(records), "requests": [r.to_json() for r in records[-limit:]] if limit else []}


def _clear_requests(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    sim.clear_requests()
    return {"ok": True}


def _mint_token(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    args = dict(body or {})
    return {"token": sim.mint_token(args.pop("tenant_id", None), args.pop("server_url", None), **args)}


def _add_tenant(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    tenant_id = sim.add_tenant(str((body or {}).get("name", "tenant")))
    return {"tenant_id": tenant_id, "token": sim.token_for(tenant_id)}


def _push_event(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    args = dict(body)
    return {"id": sim.push_event(args.pop("key"), args.pop("payload", None), args.pop("additional_metadata", None),
                                 tenant_id=args.pop("tenant_id", None))}


def _run_streams(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    return {"streams": [sorted(ids) for ids in sim.open_run_streams()]}


def _cut_run_streams(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    return {"cut": sim.cut_run_streams(str((body or {}).get("code", "UNAVAILABLE")))}


def _drop_run_event(sim: HatchetSimulator, query: dict[str, list[str]], body: Any) -> Any:
    sim.drop_run_event(str(body["run_id"]))
    return {}


ROUTES: dict[tuple[str, str], AdminHandler] = {
    ("POST", "/events"): _push_event,
    ("GET", "/info"): _info,
    ("GET", "/workflows"): _list_workflows,
    ("POST", "/workflows"): _register_workflow,
    ("GET", "/faults"): _get_faults,
    ("PUT", "/faults"): _set_faults,
    ("POST", "/faults"): _set_faults,
    ("DELETE", "/faults"): _clear_faults,
    ("POST", "/fail-next"): _fail_next,
    ("POST", "/reject"): _reject,
    ("POST", "/reset"): _reset,
    ("PUT", "/settings"): _settings,
    ("POST", "/settings"): _settings,
    ("GET", "/runs"): _runs,
    ("GET", "/runs/count"): _run_count,
    ("GET", "/requests"): _requests,
    ("DELETE", "/requests"): _clear_requests,
    ("POST", "/tokens"): _mint_token,
    ("POST", "/tenants"): _add_tenant,
    ("GET", "/run-streams"): _run_streams,
    ("POST", "/run-streams/cut"): _cut_run_streams,
    ("POST", "/run-streams/drop"): _drop_run_event,
}


def handle_admin(sim: HatchetSimulator, method: str, path: str, query: str, body: bytes) -> SimResponse:
    """Answer an admin request (no authentication); errors come back as 400 ``{"message": ...}``.

    :param sim: the simulator.
    :param method: HTTP method.
    :param path: the path after ``/_simulator``.
    :param query: raw query string.
    :param body: JSON body bytes.
    """
    path = path.rstrip("/") or "/"
    if path.startswith("/runs/") and path != "/runs/count" and method == "GET":
        run = sim.get_run(path[len("/runs/"):])
        return json_response(200, run.to_json()) if run is not None else message(404, "not found")
    handler = ROUTES.get((method, path))
    if handler is None:
        known = any(p == path for _, p in ROUTES)
        return message(405, "Method Not Allowed") if known else message(404, "Not Found")
    try:
        payload = json.loads(body) if body else None
        return json_response(200, handler(sim, parse_qs(query), payload))
    except (KeyError, TypeError, ValueError) as exc:
        return message(400, f"{type(exc).__name__}: {exc}")
