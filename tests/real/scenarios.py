"""The conformance scenarios: raw request sequences that both servers must answer alike.

Every scenario keeps to its own runs: they carry its session's unique ``test_tag``, and every list or cancel by
filter is narrowed by it (other people use the real server at the same time).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

from tests.real.conformance import Scenario, Session

TRIGGER = "/api/v1/stable/tenants/{tenant}/workflow-runs/trigger"
LIST = "/api/v1/stable/tenants/{tenant}/workflow-runs"
CANCEL = "/api/v1/stable/tenants/{tenant}/tasks/cancel"
WORKFLOWS = "/api/v1/tenants/{tenant}/workflows"
SCHEDULE = "/api/v1/tenants/{tenant}/workflows/{workflow}/scheduled"
SCHEDULED = "/api/v1/tenants/{tenant}/workflows/scheduled"
CRONS_CREATE = "/api/v1/tenants/{tenant}/workflows/{workflow}/crons"
CRONS = "/api/v1/tenants/{tenant}/workflows/crons"
UNKNOWN_ID = "00000000-0000-4000-8000-00000000000a"
UNKNOWN_TENANT = "00000000-0000-4000-8000-0000000000fe"


def run_path(run_id: str, suffix: str = "") -> str:
    """The path of a run's details (or of ``/status``).

    :param run_id: the run id.
    :param suffix: e.g. ``/status``.
    """
    return f"/api/v1/stable/workflow-runs/{run_id}{suffix}"


def trigger_return_only_id(s: Session) -> None:
    """The short answer to a trigger, then the run's status from the first moment to the end."""
    run = s.trigger("trigger", "demo-etl", {"n": 1}, name="run", metadata={"team": "data"}, priority=2)
    s.watch("transitions", run)


def trigger_and_wait(s: Session) -> None:
    """The full answer to a trigger without ``return_only_id``: the server waits until it can read the run."""
    body = {"workflowName": "demo-slow", "input": {"n": 2}, "priority": 3,
            "additionalMetadata": {"test_tag": s.tag, "team": "data"}}
    response = s.call("trigger", "POST", TRIGGER, body=body)
    run = s.name(response.json()["run"]["metadata"]["id"], "run")
    s.call("status", "GET", run_path(run, "/status"))
    s.call("details-running", "GET", run_path(run))


def trigger_rejected(s: Session) -> None:
    """Trigger bodies the server refuses before creating anything."""
    good = {"workflowName": "demo-etl", "input": {}, "additionalMetadata": {"test_tag": s.tag}}
    for step, change in [
        ("priority-5", {"priority": 5}),
        ("priority-0", {"priority": 0}),
        ("priority-string", {"priority": "2"}),
        ("priority-fraction", {"priority": 2.5}),
        ("input-array", {"input": [1]}),
        ("input-string", {"input": "x"}),
        ("metadata-string", {"additionalMetadata": "x"}),
        ("return-only-id-string", {"return_only_id": "yes"}),
        ("workflow-name-number", {"workflowName": 7}),
        ("two-bad-fields", {"priority": "2", "input": [1]}),
    ]:
        s.call(step, "POST", TRIGGER, body={**good, **change})
    s.call("body-array", "POST", TRIGGER, body=[good])
    s.call("body-string", "POST", TRIGGER, body="x")
    s.call("body-not-json", "POST", TRIGGER, content=b'{"workflowName": x}')
    s.call("input-missing", "POST", TRIGGER, body={"workflowName": "demo-etl", "return_only_id": True,
                                                   "additionalMetadata": {"test_tag": s.tag}})


def trigger_unknown_workflow(s: Session) -> None:
    """An unknown workflow name, a missing one and an empty body: the slow 500 (all at once), and the phantom
    short answer."""
    unknown = {"workflowName": f"demo-missing-{s.tag}", "input": {}, "additionalMetadata": {"test_tag": s.tag}}
    slow_calls = {"unknown": {"body": unknown},
                  "missing-name": {"body": {"input": {}, "additionalMetadata": {"test_tag": s.tag}}},
                  "body-empty": {"content": b""}}
    with ThreadPoolExecutor(len(slow_calls)) as pool:
        slow = {step: pool.submit(s.call, None, "POST", TRIGGER, **options) for step, options in slow_calls.items()}
        quick = s.call("unknown-return-only-id", "POST", TRIGGER, body={**unknown, "return_only_id": True})
        # v0.75.0 refuses the name at once (400), so there is no phantom id to read.
        if quick.status_code == 200:
            phantom = s.name(quick.json()["run"]["metadata"]["id"], "phantom")
            s.call("phantom-status", "GET", run_path(phantom, "/status"))
        for step, future in slow.items():
            response = future.result()
            s.record(step, response.status_code, response.json())


def trigger_v0(s: Session) -> None:
    """The v0 trigger endpoint: deprecated, behind the workflow populator and authentication."""
    rows = s.call(None, "GET", WORKFLOWS, params={"name": "demo-etl"}).json()["rows"]
    workflow = s.name(next(r["metadata"]["id"] for r in rows if r["name"] == "demo-etl"), "workflow")
    for step, path, auth in [
        ("v0-trigger", f"/api/v1/workflows/{workflow}/trigger", "default"),
        ("v0-trigger-no-token", f"/api/v1/workflows/{workflow}/trigger", "none"),
        ("v0-trigger-foreign", f"/api/v1/workflows/{workflow}/trigger", "foreign"),
        ("v0-trigger-unknown-workflow", f"/api/v1/workflows/{UNKNOWN_ID}/trigger", "default"),
        ("v0-trigger-malformed", "/api/v1/workflows/not-a-uuid/trigger", "default"),
    ]:
        s.call(step, "POST", path, body={"input": {}, "additionalMetadata": {"test_tag": s.tag}}, auth=auth)
    s.call("v0-get", "GET", f"/api/v1/tenants/{{tenant}}/workflow-runs/{UNKNOWN_ID}")
    s.call("v0-get-no-token", "GET", f"/api/v1/tenants/{{tenant}}/workflow-runs/{UNKNOWN_ID}", auth="none")
    s.call("v0-get-unknown-tenant", "GET", f"/api/v1/tenants/{UNKNOWN_TENANT}/workflow-runs/{UNKNOWN_ID}")
    s.call("v0-list", "GET", "/api/v1/tenants/{tenant}/workflows/runs")
    s.call("v0-cancel", "POST", "/api/v1/tenants/{tenant}/workflows/cancel", body={"workflowRunIds": [UNKNOWN_ID]})


def unknown_runs(s: Session) -> None:
    """Status and details of a run that does not exist, or whose id is not a UUID."""
    for step, run_id, auth in [("unknown", UNKNOWN_ID, "default"), ("unknown-no-token", UNKNOWN_ID, "none"),
                               ("malformed", "not-a-uuid", "default")]:
        s.call(f"status-{step}", "GET", run_path(run_id, "/status"), auth=auth)
        s.call(f"details-{step}", "GET", run_path(run_id), auth=auth)


def _finished_run(s: Session, workflow: str, run_input: dict[str, Any], **metadata: str) -> None:
    run = s.trigger("trigger", workflow, run_input, name="run", metadata=metadata)
    s.watch("transitions", run)
    s.call("details", "GET", run_path(run))
    s.call("status", "GET", run_path(run, "/status"))


def run_completed(s: Session) -> None:
    """A one-task run that succeeds: its transitions, details and final status."""
    _finished_run(s, "demo-etl", {"n": 1, "nested": {"a": [1, 2]}}, colon="a:b")


def run_failed(s: Session) -> None:
    """A one-task run that fails."""
    _finished_run(s, "demo-fail", {"n": 1})


def run_multi_task(s: Session) -> None:
    """A three-task DAG run (extract -> transform -> load)."""
    _finished_run(s, "demo-multi", {"n": 2})


def run_cancelled(s: Session) -> None:
    """A hanging run cancelled once it runs: the cancel's answer, the transitions and the details."""
    run = s.trigger("trigger", "demo-hang", {}, name="run")
    s.watch("transitions", run, on_running=lambda: s.call("cancel", "POST", CANCEL, body={"externalIds": [run]}))
    s.call("details", "GET", run_path(run))


def list_filters(s: Session) -> None:
    """The run list: metadata filters and their operator, statuses, paging, payloads and bad parameters."""
    tag = s.tag
    runs = [s.trigger(None, "demo-etl", {"i": 1}, name="etl", metadata={"k": f"{tag}-a"}),
            s.trigger(None, "demo-fail", {"i": 2}, name="fail", metadata={"k": f"{tag}-b"}),
            s.trigger(None, "demo-multi", {"i": 3}, name="multi", metadata={"k": f"{tag}-a", "j": f"{tag}-x"})]
    for run in runs:
        s.watch(None, run)
    s.wait_listed(len(runs))
    mine = f"test_tag:{tag}"
    base: dict[str, Any] = {"since": s.since, "only_tasks": "false"}
    today = datetime.now(timezone.utc) - timedelta(minutes=1)
    for step, params in [
        ("one-pair", {"additional_metadata": mine}),
        ("status-completed", {"additional_metadata": mine, "statuses": "COMPLETED"}),
        ("status-failed", {"additional_metadata": mine, "statuses": "FAILED"}),
        ("status-two", {"additional_metadata": mine, "statuses": ["COMPLETED", "FAILED"]}),
        ("status-unknown", {"additional_metadata": mine, "statuses": "NOPE"}),
        ("and", {"additional_metadata": [mine, f"k:{tag}-a"], "additional_metadata_operator": "AND"}),
        ("or", {"additional_metadata": [f"k:{tag}-b", f"j:{tag}-x"], "additional_metadata_operator": "OR"}),
        ("default-operator", {"additional_metadata": [f"k:{tag}-b", f"j:{tag}-x"]}),
        ("unknown-operator", {"additional_metadata": [f"k:{tag}-b", f"j:{tag}-x"],
                              "additional_metadata_operator": "XOR"}),
        ("same-key-twice", {"additional_metadata": [f"k:{tag}-a", f"k:{tag}-b"],
                            "additional_metadata_operator": "OR"}),
        ("pair-without-colon", {"additional_metadata": [mine, "nocolon"]}),
        ("page-1", {"additional_metadata": mine, "limit": 1, "offset": 0}),
        ("page-2", {"additional_metadata": mine, "limit": 1, "offset": 1}),
        ("page-last", {"additional_metadata": mine, "limit": 2, "offset": 2}),
        ("page-past-end", {"additional_metadata": mine, "limit": 2, "offset": 4}),
        ("payloads", {"additional_metadata": mine, "include_payloads": "true"}),
        ("only-tasks", {"additional_metadata": mine, "only_tasks": "true", "include_payloads": "true"}),
        ("since-future", {"additional_metadata": mine,
                          "since": (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}),
        ("since-offset", {"additional_metadata": mine,
                          "since": today.astimezone(timezone(timedelta(hours=2))).isoformat()}),
        ("since-date-only", {"additional_metadata": mine, "since": (today - timedelta(days=1)).strftime("%Y-%m-%d")}),
        ("since-bad", {"additional_metadata": mine, "since": "yesterday"}),
        ("since-missing", {"additional_metadata": mine, "since": None}),
        ("only-tasks-missing", {"additional_metadata": mine, "only_tasks": None}),
        ("limit-bad", {"additional_metadata": mine, "limit": "x"}),
        ("limit-zero", {"additional_metadata": mine, "limit": 0}),
        ("offset-negative", {"additional_metadata": mine, "offset": -1}),
        ("only-tasks-bad", {"additional_metadata": mine, "only_tasks": "maybe"}),
    ]:
        query = {k: v for k, v in {**base, **params}.items() if v is not None}
        s.call(step, "GET", LIST, params=query)


def cancel(s: Session) -> None:
    """Cancel by ids, by filter, both at once, and bodies the server refuses or takes as nothing."""
    first = s.trigger(None, "demo-hang", {}, name="first")
    second = s.trigger(None, "demo-hang", {}, name="second")
    s.name(UNKNOWN_ID, "unknown")
    for run in (first, second):
        s.watch(None, run, until=("RUNNING",))
    s.call("ids", "POST", CANCEL, body={"externalIds": [first, UNKNOWN_ID.upper()]})
    s.watch(None, first)
    mine = {"since": s.since, "additionalMetadata": [f"test_tag:{s.tag}"]}
    s.call("ids-and-filter", "POST", CANCEL, body={"externalIds": [second], "filter": mine})
    s.call("empty-body", "POST", CANCEL, body={})
    s.call("empty-ids", "POST", CANCEL, body={"externalIds": []})
    s.call("malformed-id", "POST", CANCEL, body={"externalIds": ["xyz"]})
    s.call("filter-pair-without-colon", "POST", CANCEL, body={"filter": {**mine, "additionalMetadata": ["x"]}})
    s.call("filter-without-since", "POST", CANCEL, body={"filter": {"additionalMetadata": mine["additionalMetadata"]}})
    s.call("filter", "POST", CANCEL, body={"filter": mine})
    s.watch(None, second)
    s.wait_listed(2)
    s.call("list-after", "GET", LIST, params={"since": s.since, "only_tasks": "false",
                                              "additional_metadata": f"test_tag:{s.tag}"})


def workflows(s: Session) -> None:
    """The workflow list: the name filter (case-insensitive, ILIKE), paging, bad and odd parameters."""
    for step, params in [
        ("by-name", {"name": "demo-multi"}),
        ("case-insensitive", {"name": "DEMO-ETL"}),
        ("underscore-wildcard", {"name": "demo_fail"}),
        ("no-match", {"name": f"zzz-{s.tag}"}),
        ("paged", {"name": "demo-etl", "limit": 1, "offset": 1}),
        ("paged-first", {"name": "demo-etl", "limit": 1, "offset": 0}),
        ("limit-zero", {"name": "demo-hang", "limit": 0}),
        ("limit-bad", {"name": "demo-etl", "limit": "x"}),
    ]:
        s.call(step, "GET", WORKFLOWS, params=params)


def auth(s: Session) -> None:
    """Every route without a token, with bad ones, with the other tenant's, and with bad tenant ids."""
    run = s.trigger(None, "demo-etl", {}, name="run")
    s.watch(None, run)
    trigger_body = {"workflowName": "demo-etl", "input": {}, "additionalMetadata": {"test_tag": s.tag}}
    list_params = {"since": s.since, "only_tasks": "false", "additional_metadata": f"test_tag:{s.tag}"}
    routes: list[tuple[str, str, str, dict[str, Any]]] = [
        ("trigger", "POST", TRIGGER, {"body": trigger_body}),
        ("list", "GET", LIST, {"params": list_params}),
        ("cancel", "POST", CANCEL, {"body": {"externalIds": [UNKNOWN_ID]}}),
        ("workflows", "GET", WORKFLOWS, {"params": {"name": "demo-etl"}}),
        ("status", "GET", run_path(run, "/status"), {}),
        ("details", "GET", run_path(run), {}),
    ]
    for route, method, path, options in routes:
        for caller in ("none", "garbage", "forged", "no-bearer", "foreign"):
            s.call(f"{route}-{caller}", method, path, auth=caller, **options)
        if "{tenant}" in path:
            for tenant in ("not-a-uuid", UNKNOWN_TENANT):
                label = "malformed-tenant" if tenant == "not-a-uuid" else "unknown-tenant"
                s.call(f"{route}-{label}", method, path.replace("{tenant}", tenant), **options)


def idempotency(s: Session) -> None:
    """demo-idempotent's key (``input.key``): a second trigger with the same key is refused; a run whose key is
    missing or not a string is dropped by the engine after the trigger answered."""
    key = {"key": s.tag}
    s.trigger("first", "demo-idempotent", key, name="first")
    s.call("same-key", "POST", TRIGGER, body={"workflowName": "demo-idempotent", "input": key,
                                              "additionalMetadata": {"test_tag": s.tag}, "return_only_id": True})
    s.call("same-key-full", "POST", TRIGGER, body={"workflowName": "demo-idempotent", "input": key,
                                                   "additionalMetadata": {"test_tag": s.tag}})
    other = s.trigger("other-key", "demo-idempotent", {"key": f"{s.tag}-2"}, name="other")
    dropped = [s.trigger("no-key", "demo-idempotent", {}, name="no-key"),
               s.trigger("number-key", "demo-idempotent", {"key": 7}, name="number-key")]
    s.watch(None, other)
    s.wait_listed(2)
    s.call("list", "GET", LIST, params={"since": s.since, "only_tasks": "false",
                                        "additional_metadata": f"test_tag:{s.tag}"})
    for step, run in zip(("no-key-status", "number-key-status"), dropped, strict=True):
        s.call(step, "GET", run_path(run, "/status"))


def _until(check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def scheduled_runs(s: Session) -> None:
    """Scheduled runs: create, read, list, reschedule, delete, what the server refuses, and one that fires (it
    disappears, and its run carries its input and metadata)."""
    later = _rfc3339(datetime.now(timezone.utc) + timedelta(hours=1))
    body = {"input": {"n": 1}, "additionalMetadata": {"test_tag": s.tag, "k": "v"}, "triggerAt": later, "priority": 2}
    created = s.call("create", "POST", SCHEDULE.format(tenant="{tenant}", workflow="demo-etl"), body=body)
    sid = s.name(str(created.json()["metadata"]["id"]), "scheduled")
    s.call("get", "GET", f"{SCHEDULED}/{sid}")
    s.call("list-by-tag", "GET", SCHEDULED, params={"additionalMetadata": f"test_tag:{s.tag}"})
    s.call("reschedule", "PATCH", f"{SCHEDULED}/{sid}",
           body={"triggerAt": _rfc3339(datetime.now(timezone.utc) + timedelta(hours=2))})
    s.call("delete", "DELETE", f"{SCHEDULED}/{sid}")
    s.call("get-deleted", "GET", f"{SCHEDULED}/{sid}")
    s.call("delete-again", "DELETE", f"{SCHEDULED}/{sid}")
    s.call("list-after-delete", "GET", SCHEDULED, params={"additionalMetadata": f"test_tag:{s.tag}"})
    demo = SCHEDULE.format(tenant="{tenant}", workflow="demo-etl")
    for step, change in [("priority-5", {"priority": 5}), ("trigger-at-missing", {"triggerAt": None}),
                         ("trigger-at-bad", {"triggerAt": "soon"}), ("metadata-missing", {"additionalMetadata": None})]:
        refused = {k: v for k, v in {**body, **change}.items() if v is not None}
        answer = s.call(step, "POST", demo, body=refused)
        if answer.status_code == 200:
            s.name(str(answer.json()["metadata"]["id"]), step)
            s.call(None, "DELETE", f"{SCHEDULED}/{answer.json()['metadata']['id']}")
    s.call("unknown-workflow", "POST", SCHEDULE.format(tenant="{tenant}", workflow=f"demo-missing-{s.tag}"),
           body=body)
    s.call("get-bad-id", "GET", f"{SCHEDULED}/xyz")
    s.call("list-bad-workflow-id", "GET", SCHEDULED, params={"workflowId": "x"})
    soon = {**body, "input": {"n": 2}, "triggerAt": _rfc3339(datetime.now(timezone.utc) + timedelta(seconds=1))}
    fired = s.name(str(s.call("create-soon", "POST", demo, body=soon).json()["metadata"]["id"]), "fired")
    _until(lambda: s.call(None, "GET", f"{SCHEDULED}/{fired}").status_code == 404)
    s.call("get-fired", "GET", f"{SCHEDULED}/{fired}")
    s.wait_listed(1)
    (row,) = s.list_runs()
    s.name(str(row["metadata"]["id"]), "fired-run")
    s.call("fired-run", "GET", LIST, params={"since": s.since, "only_tasks": "false",
                                             "additional_metadata": f"test_tag:{s.tag}", "include_payloads": "true"})


def crons(s: Session) -> None:
    """Crons: create, refuse a duplicate, list by name, disable, enable, delete, and what a gone one answers."""
    name = f"c-{s.tag}"
    body = {"input": {"n": 1}, "additionalMetadata": {"test_tag": s.tag}, "cronName": name,
            "cronExpression": "0 0 1 1 *"}
    create = CRONS_CREATE.format(tenant="{tenant}", workflow="demo-etl")
    cid = s.name(str(s.call("create", "POST", create, body=body).json()["metadata"]["id"]), "cron")
    s.call("duplicate", "POST", create, body=body)
    s.call("list-by-name", "GET", CRONS, params={"cronName": name, "workflowName": "demo-etl"})
    s.call("disable", "PATCH", f"{CRONS}/{cid}", body={"enabled": False})
    s.call("get-disabled", "GET", f"{CRONS}/{cid}")
    s.call("enable", "PATCH", f"{CRONS}/{cid}", body={"enabled": True})
    s.call("patch-empty", "PATCH", f"{CRONS}/{cid}", body={})
    s.call("list-enabled", "GET", CRONS, params={"cronName": name})
    s.call("delete", "DELETE", f"{CRONS}/{cid}")
    s.call("get-deleted", "GET", f"{CRONS}/{cid}")
    s.call("delete-again", "DELETE", f"{CRONS}/{cid}")
    s.call("unknown-workflow", "POST", CRONS_CREATE.format(tenant="{tenant}", workflow=f"demo-missing-{s.tag}"),
           body=body)


def events(s: Session) -> None:
    """The events list: by key, metadata and time, paging, and bad parameters (events are pushed over gRPC)."""
    key, other = f"conformance:{s.tag}", f"conformance-other:{s.tag}"
    first = s.name(s.push_event(key, {"n": 1, "nested": {"a": [1, 2]}}, {"test_tag": s.tag, "k": "a"}), "event-1")
    second = s.name(s.push_event(key, {"n": 2}, {"test_tag": s.tag, "k": "b"}), "event-2")
    s.name(s.push_event(other, {"n": 3}, {"test_tag": s.tag}), "event-3")
    path = "/api/v1/stable/tenants/{tenant}/events"

    def listed() -> bool:
        rows = s.call(None, "GET", path, params={"keys": [key, other], "since": s.since}).json()["rows"]
        return {first, second} <= {row["metadata"]["id"] for row in rows} and len(rows) == 3

    _until(listed)
    for step, params in [
        ("by-key", {"keys": key, "since": s.since}),
        ("two-keys", {"keys": [key, other], "since": s.since}),
        ("page-1", {"keys": [key, other], "since": s.since, "limit": 1}),
        ("page-last", {"keys": [key, other], "since": s.since, "limit": 2, "offset": 2}),
        ("metadata", {"keys": key, "since": s.since, "additionalMetadata": "k:b"}),
        ("metadata-miss", {"keys": key, "since": s.since, "additionalMetadata": "k:zzz"}),
        ("since-future", {"keys": key, "since": _rfc3339(datetime.now(timezone.utc) + timedelta(hours=1))}),
        ("until-past", {"keys": key, "until": s.since}),
        ("since-bad", {"keys": key, "since": "yesterday"}),
        ("limit-zero", {"keys": key, "limit": 0}),
    ]:
        s.call(step, "GET", path, params=params)


def metadata_filter_shapes(s: Session) -> None:
    """Which ``additionalMetadata`` filters the schedule and event lists take: the schedule list wants exactly one
    ``:`` (a value holding one, as a task instance key does, is refused), the event list fails on no ``:`` or an
    empty value and takes a value holding a ``:``."""
    events = "/api/v1/stable/tenants/{tenant}/events"
    for step, value in [("one-colon", f"test_tag:{s.tag}"), ("value-with-colon", f"test_tag:{s.tag}:x"),
                        ("no-colon", "nocolon"), ("empty-value", "test_tag:")]:
        s.call(f"scheduled-{step}", "GET", SCHEDULED, params={"additionalMetadata": value})
        s.call(f"events-{step}", "GET", events, params={"additionalMetadata": value, "since": s.since})


def list_by_creation_time(s: Session) -> None:
    """The run list's ``since`` is the creation time: a run created before it and finished after it is not
    listed (there is no filter on the finish time)."""
    run = s.trigger(None, "demo-slow", {}, name="run")
    s.watch(None, run, until=("RUNNING",))
    after_creation = _rfc3339(datetime.now(timezone.utc) + timedelta(seconds=1))
    s.watch(None, run)
    s.wait_listed(1)
    query = {"only_tasks": "false", "additional_metadata": f"test_tag:{s.tag}"}
    s.call("since-after-creation", "GET", LIST, params={**query, "since": after_creation})
    s.call("since-before-creation", "GET", LIST, params={**query, "since": s.since, "statuses": "COMPLETED"})


SCENARIOS: dict[str, Scenario] = {
    scenario.__name__: scenario
    for scenario in (trigger_return_only_id, trigger_and_wait, trigger_rejected, trigger_unknown_workflow,
                     trigger_v0, unknown_runs, run_completed, run_failed, run_multi_task, run_cancelled,
                     list_filters, cancel, workflows, auth, idempotency, scheduled_runs, crons, events,
                     metadata_filter_shapes, list_by_creation_time)
}


def task_logs(s: Session) -> None:
    """A task's log lines (``GET /tasks/{task}/logs``): their shape and order, limit, direction, attempt, levels,
    since and until, the parameters the server refuses, and ids that are not a task's."""
    run = s.trigger(None, "demo-fail", {"n": 1, "__sim__": {"log_lines": 3}}, name="run")
    s.watch(None, run)
    task = s.name(s.call(None, "GET", run_path(run)).json()["tasks"][0]["taskExternalId"], "task")
    path = f"/api/v1/stable/tasks/{task}/logs"
    # The worker sends its lines in the background; the last may land just after the run finished.
    _until(lambda: len(s.call(None, "GET", path).json().get("rows") or []) == 6)
    rows = s.call("all", "GET", path).json()["rows"]
    for step, params in [
        ("limit-2", {"limit": 2}),
        ("asc", {"order_by_direction": "ASC", "limit": 2}),
        ("desc", {"order_by_direction": "DESC", "limit": 2}),
        ("attempt-1", {"attempt": 1}),
        ("attempt-2", {"attempt": 2}),
        ("level-info", {"levels": "INFO"}),
        ("level-error", {"levels": "ERROR"}),
        ("since-third", {"since": rows[2]["createdAt"]}),
        ("until-third", {"until": rows[2]["createdAt"]}),
        ("limit-max", {"limit": 10_000}),
        ("limit-over", {"limit": 10_001}),
        ("limit-zero", {"limit": 0}),
        ("limit-bad", {"limit": "x"}),
        ("direction-bad", {"order_by_direction": "UP"}),
    ]:
        s.call(step, "GET", path, params=params)
    s.call("unknown-task", "GET", f"/api/v1/stable/tasks/{UNKNOWN_ID}/logs")
    s.call("malformed-task", "GET", "/api/v1/stable/tasks/not-a-uuid/logs")
    s.call("no-token", "GET", path, auth="none")
    s.call("foreign", "GET", path, auth="foreign")
    dag = s.trigger(None, "demo-multi", {}, name="dag")
    s.watch(None, dag)
    s.call("dag-run-id", "GET", f"/api/v1/stable/tasks/{dag}/logs")


SCENARIOS[task_logs.__name__] = task_logs
REPLAY = "/api/v1/stable/tenants/{tenant}/tasks/replay"
FAIL_FIRST_ATTEMPT = {"__sim__": {"behaviour": "fail_first_attempt"}}


def replay_in_place(s: Session) -> None:
    """Replay by ids: the failed run re-runs under the same id, one attempt later; bodies the server refuses."""
    run = s.trigger(None, "demo-etl", FAIL_FIRST_ATTEMPT, name="run")
    s.watch(None, run)
    s.call("details-failed", "GET", run_path(run))
    s.call("replay", "POST", REPLAY, body={"externalIds": [run]})
    # Not recorded: reads right after a replay may still show the run as it was (docs/hatchet-behaviour.md).
    s.watch(None, run, until=("COMPLETED",))
    s.call("details-replayed", "GET", run_path(run))
    mine = {"since": s.since, "additionalMetadata": [f"test_tag:{s.tag}"]}
    s.call("ids-and-filter", "POST", REPLAY, body={"externalIds": [run], "filter": mine})
    s.call("empty-body", "POST", REPLAY, body={})
    s.call("malformed-id", "POST", REPLAY, body={"externalIds": ["xyz"]})


def replay_by_filter_and_list_keys(s: Session) -> None:
    """Replay by filter (the failed runs of this session), and the list's ``idempotency_keys`` and
    ``triggering_event_external_id`` filters."""
    failed = s.trigger(None, "demo-etl", FAIL_FIRST_ATTEMPT, name="failed")
    done = s.trigger(None, "demo-etl", {}, name="done")
    held = s.trigger(None, "demo-idempotent", {"key": s.tag}, name="held")
    for run in (failed, done, held):
        s.watch(None, run)
    s.wait_listed(3)
    mine = {"since": s.since, "additionalMetadata": [f"test_tag:{s.tag}"]}
    s.call("replay-filter", "POST", REPLAY, body={"filter": {**mine, "statuses": ["FAILED"]}})
    s.watch(None, failed, until=("COMPLETED",))
    s.call("details-replayed", "GET", run_path(failed))
    s.call("list-idempotency-key", "GET", LIST, params={"since": s.since, "only_tasks": "false",
                                                        "idempotency_keys": s.tag})
    event = s.name(s.push_event(EVENT_KEY_FOR_LISTS, {"i": 1}, {"test_tag": s.tag}), "event")
    by_event = {"since": s.since, "only_tasks": "false", "triggering_event_external_id": event}

    def finished() -> bool:
        rows = s.call(None, "GET", LIST, params=by_event).json()["rows"]
        return len(rows) == 1 and rows[0]["status"] in ("COMPLETED", "FAILED", "CANCELLED")

    _until(finished)
    s.call("list-triggering-event", "GET", LIST, params=by_event)


EVENT_KEY_FOR_LISTS = "airflow:demo-event"
SCENARIOS.update({scenario.__name__: scenario for scenario in (replay_in_place, replay_by_filter_and_list_keys)})


def actions_on_runs_the_tenant_lacks(s: Session) -> None:
    """Cancel and replay naming runs the tenant does not have: an unknown id (a cancel echoes it, a replay leaves it
    out), and this tenant's runs named by another tenant (its cancel echoes the id and does nothing; its replay
    answers nothing; its status read is refused)."""
    hang = s.trigger(None, "demo-hang", {}, name="hang")
    failed = s.trigger(None, "demo-etl", FAIL_FIRST_ATTEMPT, name="failed")
    s.name(UNKNOWN_ID, "unknown")
    s.watch(None, hang, until=("RUNNING",))
    s.watch(None, failed)
    foreign = f"/api/v1/stable/tenants/{s.target.foreign_tenant}/tasks"
    s.call("foreign-cancel", "POST", f"{foreign}/cancel", body={"externalIds": [hang]}, auth="foreign")
    s.call("foreign-replay", "POST", f"{foreign}/replay", body={"externalIds": [failed]}, auth="foreign")
    s.call("foreign-status", "GET", run_path(hang, "/status"), auth="foreign")
    s.call("cancel-unknown", "POST", CANCEL, body={"externalIds": [UNKNOWN_ID]})
    s.call("replay-unknown", "POST", REPLAY, body={"externalIds": [UNKNOWN_ID]})
    s.call("replay-known-and-unknown", "POST", REPLAY, body={"externalIds": [failed, UNKNOWN_ID]})
    s.watch(None, failed, until=("COMPLETED",))
    # The other tenant's cancel was answered well before: a cancel takes effect within tens of milliseconds.
    s.call("status-after-foreign-cancel", "GET", run_path(hang, "/status"))


SCENARIOS[actions_on_runs_the_tenant_lacks.__name__] = actions_on_runs_the_tenant_lacks


def server_version(s: Session) -> None:
    """``GET /api/v1/version``: the release, with the tenant's token, without one and with a garbage one (it needs
    none); the provider reads it to know which filters the server honours."""
    for caller in ("default", "none", "garbage"):
        s.call(f"version-{caller}", "GET", "/api/v1/version", auth=caller)


SCENARIOS[server_version.__name__] = server_version


WORKERS = "/api/v1/tenants/{tenant}/worker"


def workers(s: Session) -> None:
    """The worker list: which live workers serve which workflow (a workflow registered with no worker is served by
    none, and its run stays QUEUED), the ``statuses`` filter matched exactly, callers refused; and the deprecated
    worker count, a 500."""
    unserved = f"demo-unserved-{s.tag}"
    s.name(unserved, "unserved")
    s.register_unserved_workflow(unserved)
    answer = s.call(None, "GET", WORKERS, params={"statuses": "ACTIVE"})
    rows = answer.json()["rows"]
    s.record("live-workers", answer.status_code, {
        "statuses": sorted({row["status"] for row in rows}),
        "fields": sorted(set.intersection(*(set(row) for row in rows))) if rows else [],
        "serves": {label: any(any(a.startswith(f"{workflow}:") for a in row["actions"] or ()) for row in rows)
                   for label, workflow in (("demo-etl", "demo-etl"), ("demo-multi", "demo-multi"),
                                           ("unserved", unserved))},
        "multi-actions": sorted({a for row in rows for a in row["actions"] or () if a.startswith("demo-multi:")}),
    })
    for step, params in [("status-unknown", {"statuses": "BOGUS"}), ("status-lowercase", {"statuses": "active"}),
                         ("status-comma-joined", {"statuses": "ACTIVE,PAUSED"})]:
        s.call(step, "GET", WORKERS, params=params)
    for caller in ("none", "foreign"):
        s.call(f"caller-{caller}", "GET", WORKERS, auth=caller)
    s.call("unknown-tenant", "GET", WORKERS.replace("{tenant}", UNKNOWN_TENANT))
    run = s.trigger(None, unserved, {}, name="run")
    served = s.trigger(None, "demo-etl", {}, name="served")
    # A run of a served workflow triggered after it has finished: the unserved one has had the same chance.
    _until(lambda: s.status(served) == "COMPLETED")
    s.call("unserved-run-status", "GET", run_path(run, "/status"))
    s.call(None, "POST", CANCEL, body={"externalIds": [run]})
    workflow_id = next(row["metadata"]["id"] for row in
                       s.call(None, "GET", WORKFLOWS, params={"name": "demo-etl"}).json()["rows"]
                       if row["name"] == "demo-etl")
    s.call("worker-count-deprecated", "GET", f"/api/v1/tenants/{{tenant}}/workflows/{workflow_id}/worker-count")
    s.call("worker-count-unknown", "GET", f"/api/v1/tenants/{{tenant}}/workflows/{UNKNOWN_ID}/worker-count")


SCENARIOS[workers.__name__] = workers
