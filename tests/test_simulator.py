"""The Hatchet simulator's endpoints and quirks, in-process and over loopback HTTP, checked against the spec."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_hatchet.testing import Faults, HatchetSimulator, ManualClock, SimulatorServer
from tests.openapi_spec import SpecMismatch, validate_request, validate_response

SINCE = "2000-01-01T00:00:00Z"
pytestmark = pytest.mark.af2


def _validate_hook(response: httpx.Response) -> None:
    request = response.request
    if not request.url.path.startswith("/api/"):
        return
    response.read()
    body = json.loads(request.content) if request.content else None
    if isinstance(body, dict) and body.get("return_only_id") is True and response.status_code == 200:
        return
    validate_response(request.method, request.url.path, response.status_code, response.json())


class Api:
    """A thin client for the tests: one method per endpoint, every response validated against the spec."""

    def __init__(self, sim: HatchetSimulator, clock: ManualClock, http: httpx.Client) -> None:
        self.sim = sim
        self.clock = clock
        self.http = http
        self.tenant = sim.tenant_id

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.sim.token}"}

    def trigger(self, name: str, run_input: Any = None, *, token: str | None = None, tenant: str | None = None,
                **extra: Any) -> httpx.Response:
        body = {"workflowName": name, "input": {} if run_input is None else run_input, **extra}
        return self.http.post(f"/api/v1/stable/tenants/{tenant or self.tenant}/workflow-runs/trigger",
                              json=body, headers=self.auth(token))

    def run_id(self, name: str, run_input: Any = None, **extra: Any) -> str:
        response = self.trigger(name, run_input, **{"return_only_id": True, **extra})
        assert response.status_code == 200, response.text
        return str(response.json()["run"]["metadata"]["id"])

    def status(self, run_id: str, token: str | None = None) -> httpx.Response:
        return self.http.get(f"/api/v1/stable/workflow-runs/{run_id}/status", headers=self.auth(token))

    def details(self, run_id: str, token: str | None = None) -> httpx.Response:
        return self.http.get(f"/api/v1/stable/workflow-runs/{run_id}", headers=self.auth(token))

    def list(self, params: Any = None, **kw: Any) -> httpx.Response:
        query: dict[str, Any] = {"since": SINCE, "only_tasks": "false"}
        query.update(params or {})
        query.update(kw)
        query = {k: v for k, v in query.items() if v is not None}
        return self.http.get(f"/api/v1/stable/tenants/{self.tenant}/workflow-runs", params=query,
                             headers=self.auth())

    def list_ids(self, **kw: Any) -> list[str]:
        response = self.list(**kw)
        assert response.status_code == 200, response.text
        return [row["metadata"]["id"] for row in response.json()["rows"]]

    def cancel(self, body: dict[str, Any], tenant: str | None = None) -> httpx.Response:
        return self.http.post(f"/api/v1/stable/tenants/{tenant or self.tenant}/tasks/cancel", json=body,
                              headers=self.auth())

    def workflows(self, **params: Any) -> httpx.Response:
        return self.http.get(f"/api/v1/tenants/{self.tenant}/workflows", params=params, headers=self.auth())

    def settle(self) -> None:
        self.clock.advance(self.sim.visibility_delay)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> HatchetSimulator:
    sim = HatchetSimulator(clock=clock, unknown_workflow_delay=0.01)
    sim.register_workflow("etl", "succeed", duration=1.0, queue_delay=0.5)
    sim.register_workflow("broken", "fail", duration=1.0, error_message="ValueError: bad row 7")
    sim.register_workflow("forever", "hang")
    sim.register_workflow("pipeline", "multi_task", duration=1.0)
    return sim


@pytest.fixture(params=["in-process", pytest.param("loopback", marks=pytest.mark.loopback)])
def api(request: pytest.FixtureRequest, sim: HatchetSimulator, clock: ManualClock) -> Iterator[Api]:
    hooks = {"response": [_validate_hook]}
    if request.param == "in-process":
        with httpx.Client(base_url=sim.server_url, transport=sim.transport(), event_hooks=hooks) as http:
            yield Api(sim, clock, http)
        return
    with SimulatorServer(sim) as server, httpx.Client(base_url=server.url, event_hooks=hooks) as http:
        yield Api(sim, clock, http)


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


# --- trigger ---------------------------------------------------------------------------------------------


def test_trigger_returns_200_details_and_records_the_exact_body(api: Api) -> None:
    response = api.trigger("etl", {"rows": 3}, additionalMetadata={"airflow_ti": "d|r|t|-1"}, priority=2)

    assert response.status_code == 200
    run = response.json()["run"]
    assert run["status"] == "QUEUED"
    assert run["input"]["input"] == {"rows": 3}
    assert run["additionalMetadata"]["airflow_ti"] == "d|r|t|-1"
    assert set(run["additionalMetadata"]) == {"airflow_ti", "traceparent"}
    assert run["tenantId"] == api.tenant
    assert api.status(run["metadata"]["id"]).json() == "QUEUED"
    [recorded] = api.sim.runs
    assert recorded.id == run["metadata"]["id"]
    assert recorded.body == {"workflowName": "etl", "input": {"rows": 3},
                             "additionalMetadata": {"airflow_ti": "d|r|t|-1"}, "priority": 2}
    assert (recorded.workflow_name, recorded.priority) == ("etl", 2)


def test_request_bodies_sent_by_these_tests_match_the_spec(api: Api) -> None:
    body = {"workflowName": "etl", "input": {}, "additionalMetadata": {"k": "v"}, "priority": 3}
    assert validate_request("POST", f"/api/v1/stable/tenants/{api.tenant}/workflow-runs/trigger",
                            body) == "v1-workflow-run:create"
    query = {"since": SINCE, "only_tasks": False, "statuses": ["RUNNING", "QUEUED"],
             "additional_metadata": ["k:v", "a:b"], "additional_metadata_operator": "AND", "limit": 10}
    assert validate_request("GET", f"/api/v1/stable/tenants/{api.tenant}/workflow-runs",
                            query=query) == "v1-workflow-run:list"
    with pytest.raises(SpecMismatch, match="since"):
        validate_request("GET", f"/api/v1/stable/tenants/{api.tenant}/workflow-runs", query={"only_tasks": True})
    with pytest.raises(SpecMismatch, match="input"):
        validate_request("POST", f"/api/v1/stable/tenants/{api.tenant}/workflow-runs/trigger",
                         {"workflowName": "etl", "input": [1]})


@pytest.mark.parametrize("priority", [0, 4, -1])
def test_priority_outside_1_to_3_is_a_400(api: Api, priority: Any) -> None:
    response = api.trigger("etl", priority=priority)

    assert response.status_code == 400
    assert response.json() == {"errors": [{"description": f"priority must be between 1 and 3, got {priority}"}]}
    assert api.sim.run_count() == 0


@pytest.mark.parametrize(("priority", "got"), [("2", "string"), (True, "bool"), (2.5, "number 2.5")])
def test_a_priority_that_is_no_integer_fails_to_bind(api: Api, priority: Any, got: str) -> None:
    response = api.trigger("etl", priority=priority)

    assert response.status_code == 400
    assert response.json()["message"].startswith(f"Unmarshal type error: expected=int, got={got}, field=priority")
    assert api.sim.run_count() == 0


@pytest.mark.parametrize("priority", [1, 3])
def test_priority_bounds_are_accepted(api: Api, priority: int) -> None:
    assert api.trigger("etl", priority=priority).status_code == 200


@pytest.mark.parametrize("bad_input", [[1, 2], "text", 5])
def test_input_that_is_not_an_object_is_a_400(api: Api, bad_input: Any) -> None:
    response = api.http.post(f"/api/v1/stable/tenants/{api.tenant}/workflow-runs/trigger",
                             json={"workflowName": "etl", "input": bad_input}, headers=api.auth())

    assert response.status_code == 400
    assert "expected=map[string]interface {}" in response.json()["message"]
    assert "field=input" in response.json()["message"]


def test_a_null_input_is_accepted(api: Api) -> None:
    response = api.trigger("etl", None, return_only_id=True)
    api.http.post(f"/api/v1/stable/tenants/{api.tenant}/workflow-runs/trigger",
                  json={"workflowName": "etl", "input": None}, headers=api.auth())

    assert response.status_code == 200
    assert api.sim.run_count() == 2


def test_unknown_workflow_without_return_only_id_is_a_slow_500(api: Api) -> None:
    response = api.trigger("does-not-exist")

    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}
    assert api.sim.run_count() == 0


def test_workflow_names_are_case_sensitive(api: Api) -> None:
    assert api.trigger("ETL").status_code == 500
    assert api.trigger("etl").status_code == 200


def test_unknown_workflow_with_return_only_id_gives_a_phantom_id_that_never_appears(api: Api) -> None:
    response = api.trigger("does-not-exist", return_only_id=True)

    assert response.status_code == 200
    stub = response.json()
    phantom = stub["run"]["metadata"]["id"]
    assert api.sim.phantom_ids == [phantom]
    api.clock.advance(3600)
    assert api.status(phantom).status_code == 404
    assert api.details(phantom).json() == {"message": "not found"}
    assert phantom not in api.list_ids()


def test_return_only_id_answers_the_exact_stub_which_does_not_match_the_spec(api: Api) -> None:
    response = api.trigger("etl", {"x": 1}, return_only_id=True)

    stub = response.json()
    run_id = stub["run"]["metadata"]["id"]
    created = stub["run"]["metadata"]["createdAt"]
    zero = "00000000-0000-0000-0000-000000000000"
    assert stub == {
        "run": {"metadata": {"id": run_id, "createdAt": created, "updatedAt": created}, "status": "",
                "tenantId": zero, "displayName": "", "workflowId": zero, "input": {}, "output": {}},
        "taskEvents": None, "shape": None, "tasks": None,
    }
    with pytest.raises(SpecMismatch):
        validate_response("POST", f"/api/v1/stable/tenants/{api.tenant}/workflow-runs/trigger", 200, stub)
    api.settle()
    assert api.details(run_id).json()["run"]["input"]["input"] == {"x": 1}


def test_v0_endpoints_answer_400_deprecated(api: Api) -> None:
    v0_trigger = api.http.post(f"/api/v1/workflows/{api.sim.workflows()[0].id}/trigger",
                               json={"input": {}}, headers=api.auth())
    v0_cancel = api.http.post(f"/api/v1/tenants/{api.tenant}/workflows/cancel",
                              json={"workflowRunIds": []}, headers=api.auth())

    assert v0_trigger.status_code == 400
    assert "deprecated" in v0_trigger.json()["errors"][0]["description"]
    assert v0_cancel.status_code == 400
    assert api.sim.run_count() == 0


# --- authentication ------------------------------------------------------------------------------------


def test_token_claims_carry_tenant_and_server_url(api: Api) -> None:
    claims = _claims(api.sim.token)

    assert claims["sub"] == api.tenant
    assert claims["server_url"] == api.sim.server_url == str(api.http.base_url).rstrip("/")
    assert {"iss", "aud", "iat", "exp", "token_id", "grpc_broadcast_address"} <= set(claims)
    assert api.sim.token.startswith("ey")


def test_bearer_header_is_split_on_bearer_and_trimmed(api: Api) -> None:
    response = api.http.get(f"/api/v1/tenants/{api.tenant}/workflows",
                            headers={"Authorization": f"Bearer \t  {api.sim.token}"})
    assert response.status_code == 200


@pytest.mark.parametrize("kind", ["missing", "garbage", "other-simulator", "expired", "revoked-at-mint",
                                  "revoked-later", "wrong-server-url"])
def test_bad_tokens_get_403_never_401(api: Api, kind: str) -> None:
    sim = api.sim
    if kind == "revoked-later":
        token = sim.mint_token()
        assert api.trigger("etl", token=token).status_code == 200
        sim.revoke_token(token)
    else:
        token = {
            "missing": "",
            "garbage": "not-a-jwt",
            "other-simulator": HatchetSimulator(server_url=sim.server_url).token,
            "expired": sim.mint_token(expires_in=-1),
            "revoked-at-mint": sim.mint_token(revoked=True),
            "wrong-server-url": sim.mint_token(server_url="http://elsewhere:8080"),
        }[kind]
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    response = api.http.post(f"/api/v1/stable/tenants/{api.tenant}/workflow-runs/trigger",
                             json={"workflowName": "etl", "input": {}}, headers=headers)

    assert response.status_code == 403
    assert response.json() == {"message": "Please provide valid credentials"}


def test_tenant_path_errors(api: Api) -> None:
    other = api.sim.add_tenant("other")

    malformed = api.trigger("etl", tenant="not-a-uuid")
    unknown = api.trigger("etl", tenant="0b9e8a36-5f43-4c4d-8a0e-111111111111")
    foreign = api.trigger("etl", tenant=other)

    assert (malformed.status_code, malformed.json()) == (400, {"message": "invalid tenant id"})
    assert (unknown.status_code, unknown.json()) == (404, {"message": "not found"})
    assert (foreign.status_code, foreign.json()) == (403, {"message": "Please provide valid credentials"})


def test_runs_of_another_tenant_are_forbidden(api: Api) -> None:
    other = api.sim.add_tenant("other")
    api.sim.register_workflow("etl", tenant_id=other)
    other_token = api.sim.token_for(other)
    response = api.trigger("etl", token=other_token, tenant=other)
    assert response.status_code == 200
    run_id = response.json()["run"]["metadata"]["id"]
    api.settle()

    assert api.status(run_id, token=other_token).status_code == 200
    assert api.status(run_id).status_code == 403
    assert api.details(run_id).status_code == 403
    api.cancel({"externalIds": [run_id]})
    api.clock.advance(10)
    assert api.sim.run_status(run_id) == "COMPLETED"


# --- visibility and status -----------------------------------------------------------------------------


def test_a_new_run_is_invisible_for_the_visibility_delay(api: Api) -> None:
    run_id = api.run_id("etl")

    assert api.status(run_id).status_code == 404
    assert api.details(run_id).json() == {"message": "not found"}
    assert run_id not in api.list_ids()
    api.settle()
    assert api.status(run_id).json() == "QUEUED"
    assert run_id in api.list_ids()


def test_succeed_moves_queued_running_completed_with_output_derived_from_input(api: Api) -> None:
    run_id = api.run_id("etl", {"n": 5})
    api.settle()
    assert api.status(run_id).json() == "QUEUED"
    api.clock.advance(0.5)
    assert api.status(run_id).json() == "RUNNING"
    api.clock.advance(1.0)
    assert api.status(run_id).json() == "COMPLETED"

    details = api.details(run_id).json()
    expected = {"workflow": "etl", "task": "run", "step": 0, "echo": {"n": 5}}
    assert details["run"]["output"] == expected
    assert details["run"]["duration"] == 1000
    [task] = details["tasks"]
    assert (task["displayName"].split("-")[0], task["actionId"], task["status"]) == ("run", "etl:run", "COMPLETED")
    assert task["output"] == expected
    assert task["taskExternalId"] == run_id


def test_fail_sets_error_message_on_run_and_task(api: Api) -> None:
    run_id = api.run_id("broken", {"n": 7})
    api.clock.advance(5)

    details = api.details(run_id).json()
    assert details["run"]["status"] == "FAILED"
    assert details["run"]["errorMessage"] == "ValueError: bad row 7"
    assert details["run"]["output"] == {}
    assert details["tasks"][0]["errorMessage"] == "ValueError: bad row 7"
    assert details["tasks"][0]["status"] == "FAILED"
    assert details["taskEvents"] == []  # the server lists task events for DAG runs only


def test_hang_runs_until_cancelled_and_cancel_is_asynchronous(api: Api) -> None:
    run_id = api.run_id("forever")
    api.clock.advance(86400)
    assert api.status(run_id).json() == "RUNNING"

    response = api.cancel({"externalIds": [run_id]})

    assert response.json() == {"ids": [run_id]}
    assert api.status(run_id).json() == "RUNNING"
    api.clock.advance(api.sim.cancel_delay)
    assert api.status(run_id).json() == "CANCELLED"
    details = api.details(run_id).json()
    assert details["tasks"][0]["status"] == "CANCELLED"
    assert "finishedAt" in details["run"]


def test_multi_task_run_output_is_the_last_finished_task_not_a_combined_map(api: Api) -> None:
    run_id = api.run_id("pipeline", {"day": "2026-01-01"})
    api.clock.advance(1.5)

    middle = api.details(run_id).json()
    assert middle["run"]["status"] == "RUNNING"
    # A DAG's next task exists once the one before it completed; tasks are listed newest first.
    assert [(t["actionId"], t["status"]) for t in middle["tasks"]] == [("pipeline:transform", "RUNNING"),
                                                                      ("pipeline:extract", "COMPLETED")]
    assert [e["eventType"] for e in middle["taskEvents"] if e["taskId"] == middle["tasks"][0]["taskExternalId"]] \
        == ["STARTED", "SENT_TO_WORKER", "ASSIGNED", "QUEUED"]
    assert middle["run"]["output"]["task"] == "extract"

    api.clock.advance(2)
    done = api.details(run_id).json()
    assert done["run"]["status"] == "COMPLETED"
    assert done["run"]["output"] == {"workflow": "pipeline", "task": "load", "step": 2,
                                     "echo": {"day": "2026-01-01"}}
    tasks = {t["actionId"].split(":")[1]: t for t in done["tasks"]}
    assert set(tasks) == {"extract", "transform", "load"}
    assert tasks["transform"]["output"]["task"] == "transform"
    assert tasks["transform"]["actionId"] == "pipeline:transform"
    assert len({t["taskExternalId"] for t in done["tasks"]} | {run_id}) == 4
    assert [s["taskName"] for s in done["shape"]] == ["extract", "transform", "load"]


def test_multi_task_with_a_failing_task_never_starts_the_rest(api: Api) -> None:
    api.sim.register_workflow("dag", "multi_task", tasks=["a", {"name": "b", "fail": True, "error_message": "boom"},
                                                          "c"])
    run_id = api.run_id("dag")
    api.clock.advance(10)

    details = api.details(run_id).json()
    assert details["run"]["status"] == "FAILED"
    assert details["run"]["errorMessage"] == "boom"
    assert details["run"]["output"]["task"] == "a"
    assert [(t["actionId"], t["status"]) for t in details["tasks"]] == [("dag:b", "FAILED"), ("dag:a", "COMPLETED")]


def test_per_run_override_and_custom_output(api: Api) -> None:
    api.sim.register_workflow("custom", output=lambda data: {"doubled": data["n"] * 2})
    failing = api.run_id("etl", {"__sim__": {"behaviour": "fail", "error_message": "item 3 broke"}})
    custom = api.run_id("custom", {"n": 21})
    api.clock.advance(10)

    assert api.details(failing).json()["run"]["errorMessage"] == "item 3 broke"
    assert api.details(custom).json()["run"]["output"] == {"doubled": 42}


# --- list ---------------------------------------------------------------------------------------------


def test_list_filters_by_metadata_with_or_and_and(api: Api) -> None:
    a = api.run_id("etl", additionalMetadata={"env": "prod", "team": "x"})
    b = api.run_id("etl", additionalMetadata={"env": "prod", "team": "y"})
    c = api.run_id("etl", additionalMetadata={"env": "dev", "team": "x", "n": 1})
    api.settle()

    assert api.list_ids(additional_metadata=["env:prod"]) == [b, a]
    assert set(api.list_ids(additional_metadata=["env:prod", "team:x"])) == {a, b, c}
    assert api.list_ids(additional_metadata=["env:prod", "team:x"], additional_metadata_operator="AND") == [a]
    assert api.list_ids(additional_metadata=["n:1"]) == []
    assert api.list_ids(additional_metadata=["no-colon"]) == [c, b, a]


def test_list_splits_metadata_filters_on_the_first_colon(api: Api) -> None:
    run_id = api.run_id("etl", additionalMetadata={"airflow_run_id": "manual__2026-01-01T00:00:00"})
    api.settle()
    assert api.list_ids(additional_metadata=["airflow_run_id:manual__2026-01-01T00:00:00"]) == [run_id]


def test_list_filters_by_time_status_and_workflow(api: Api) -> None:
    first = api.run_id("etl")
    api.clock.advance(100)
    cut = api.details(first).json()["run"]["finishedAt"]
    second = api.run_id("broken")
    api.clock.advance(5)
    third = api.run_id("forever")
    api.settle()

    assert api.list_ids(since=cut) == [third, second]
    assert api.list_ids(until=cut) == [first]
    assert api.list_ids(statuses=["FAILED", "COMPLETED"]) == [second, first]
    assert api.list_ids(statuses="RUNNING") == [third]
    broken_id = next(w.id for w in api.sim.workflows() if w.name == "broken")
    assert api.list_ids(workflow_ids=[broken_id]) == [second]


def test_list_payloads_default_to_false(api: Api) -> None:
    api.run_id("etl", {"big": "payload"})
    api.clock.advance(10)

    [bare] = api.list().json()["rows"]
    [full] = api.list(include_payloads="true").json()["rows"]

    assert (bare["input"], bare["output"]) == ({}, {})
    assert full["input"]["input"] == {"big": "payload"}
    assert full["output"]["echo"] == {"big": "payload"}


def test_list_only_tasks_returns_task_rows(api: Api) -> None:
    run_id = api.run_id("pipeline")
    api.clock.advance(10)

    rows = api.list(only_tasks="true").json()["rows"]
    assert [r["actionId"] for r in rows] == ["pipeline:load", "pipeline:transform", "pipeline:extract"]
    assert {r["workflowRunExternalId"] for r in rows} == {run_id}
    [run_row] = api.list().json()["rows"]
    assert (run_row["metadata"]["id"], run_row["type"]) == (run_id, "DAG")


def test_list_pagination(api: Api) -> None:
    ids = [api.run_id("etl") for _ in range(5)]
    api.settle()

    page = api.list(limit=2, offset=2).json()
    assert page["pagination"] == {"current_page": 2, "next_page": 3, "num_pages": 3}
    assert [r["metadata"]["id"] for r in page["rows"]] == [ids[2], ids[1]]
    last = api.list(limit=2, offset=4).json()
    assert last["pagination"] == {"current_page": 3, "next_page": 4, "num_pages": 3}  # next_page is always +1
    assert len(api.list().json()["rows"]) == 5


def test_list_without_since_lists_nothing(api: Api) -> None:
    api.run_id("etl")
    api.settle()

    assert api.list(since=None).json() == {"pagination": {"current_page": 1, "next_page": 2, "num_pages": 0},
                                          "rows": []}


@pytest.mark.parametrize(("params", "parameter"), [
    ({"only_tasks": None}, "only_tasks"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-01-01T00:00:00+00:00"}, "since"),
])
def test_list_rejects_missing_or_bad_query_parameters(api: Api, params: dict[str, Any], parameter: str) -> None:
    query = "&".join(f"{k}={v}" for k, v in {"since": SINCE, "only_tasks": "false", **params}.items()
                     if v is not None)
    response = api.http.get(f"/api/v1/stable/tenants/{api.tenant}/workflow-runs?{query}", headers=api.auth())

    assert response.status_code == 400
    assert response.json()["message"].startswith(f"Invalid format for parameter {parameter}")


# --- cancel -------------------------------------------------------------------------------------------


def test_cancel_by_filter_only_touches_matching_unfinished_runs(api: Api) -> None:
    done = api.run_id("etl", additionalMetadata={"airflow_ti": "a"})
    api.clock.advance(10)
    target = api.run_id("forever", additionalMetadata={"airflow_ti": "a"})
    bystander = api.run_id("forever", additionalMetadata={"airflow_ti": "b"})
    api.settle()

    response = api.cancel({"filter": {"since": SINCE, "additionalMetadata": ["airflow_ti:a"],
                                      "statuses": ["RUNNING", "QUEUED"]}})

    assert response.json() == {"ids": [target]}
    api.clock.advance(1)
    assert api.sim.run_status(target) == "CANCELLED"
    assert api.sim.run_status(bystander) == "RUNNING"
    assert api.sim.run_status(done) == "COMPLETED"


def test_cancel_of_finished_run_changes_nothing_and_both_forms_is_a_500(api: Api) -> None:
    run_id = api.run_id("etl")
    api.clock.advance(10)

    assert api.cancel({"externalIds": [run_id]}).status_code == 200
    api.clock.advance(1)
    assert api.status(run_id).json() == "COMPLETED"
    both = api.cancel({"externalIds": [run_id], "filter": {"since": SINCE}})
    assert (both.status_code, both.json()) == (500, {"message": "Internal Server Error"})


# --- workflows ----------------------------------------------------------------------------------------


def test_workflow_name_filter_is_a_case_insensitive_substring(api: Api) -> None:
    api.sim.register_workflow("Nightly_ETL")
    api.sim.register_workflow("nightlyXetl")

    names = {row["name"] for row in api.workflows(name="ETL").json()["rows"]}
    underscore = {row["name"] for row in api.workflows(name="nightly_etl").json()["rows"]}
    everything = api.workflows().json()

    assert names == {"etl", "Nightly_ETL", "nightlyXetl"}
    assert underscore == {"Nightly_ETL", "nightlyXetl"}
    assert everything["pagination"]["num_pages"] == 1
    assert len(everything["rows"]) == 6
    assert all(row["tenantId"] == "" for row in everything["rows"])  # the server leaves it empty
    page = api.workflows(limit=4, offset=4).json()
    assert (len(page["rows"]), page["pagination"]["current_page"]) == (2, 2)


# --- faults -------------------------------------------------------------------------------------------


def test_5xx_before_create_leaves_no_run(api: Api) -> None:
    api.sim.fail_next("trigger", 2, status=503)

    assert api.trigger("etl").status_code == 503
    assert api.trigger("etl").status_code == 503
    assert api.sim.run_count() == 0
    assert api.trigger("etl").status_code == 200


def test_5xx_after_create_leaves_the_run_existing(api: Api) -> None:
    api.sim.fail_next("trigger", status=500, after_create=True)

    response = api.trigger("etl", {"k": 1}, additionalMetadata={"airflow_ti": "x"})

    assert response.status_code == 500
    [run] = api.sim.runs
    assert run.input == {"k": 1}
    api.settle()
    assert api.list_ids(additional_metadata=["airflow_ti:x"]) == [run.id]


def test_dropped_connection_after_create_leaves_the_run_existing(api: Api) -> None:
    api.sim.fail_next("trigger", drop=True, after_create=True)

    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.trigger("etl", {"k": 2})

    assert api.sim.run_count() == 1
    assert api.sim.runs[0].input == {"k": 2}
    assert api.sim.requests[-1].dropped
    assert api.trigger("etl").status_code == 200


def test_random_faults_429_null_body_and_route_restriction(api: Api) -> None:
    run_id = api.run_id("etl")
    api.settle()
    api.sim.faults = Faults(rate_limit_rate=1.0, routes=("status",))

    limited = api.status(run_id)

    assert (limited.status_code, limited.content) == (429, b"null")
    assert api.details(run_id).status_code == 200
    api.sim.faults = Faults(error_rate=1.0, error_statuses=(500,))
    assert api.details(run_id).json() == {"message": "Internal Server Error"}
    api.sim.faults = Faults(latency=0.001)
    assert api.status(run_id).status_code == 200


def test_random_faults_are_reproducible_with_a_seed(clock: ManualClock) -> None:
    def outcomes(seed: int) -> list[int]:
        sim = HatchetSimulator(clock=clock, seed=seed, visibility_delay=0)
        sim.register_workflow("etl")
        sim.faults = Faults(error_rate=0.3, rate_limit_rate=0.2)
        with httpx.Client(base_url=sim.server_url, transport=sim.transport()) as http:
            return [http.post(f"/api/v1/stable/tenants/{sim.tenant_id}/workflow-runs/trigger",
                              json={"workflowName": "etl", "input": {}},
                              headers={"Authorization": f"Bearer {sim.token}"}).status_code
                    for _ in range(40)]

    first = outcomes(7)
    assert first == outcomes(7)
    assert {200, 429} <= set(first)
    assert set(first) & {500, 503}


def test_drop_rate_creates_runs_that_the_client_never_hears_about(clock: ManualClock) -> None:
    sim = HatchetSimulator(clock=clock, seed=3)
    sim.register_workflow("etl")
    sim.faults = Faults(drop_after_create_rate=0.5, routes=("trigger",))
    answered = 0
    with httpx.Client(base_url=sim.server_url, transport=sim.transport()) as http:
        for _ in range(30):
            try:
                http.post(f"/api/v1/stable/tenants/{sim.tenant_id}/workflow-runs/trigger",
                          json={"workflowName": "etl", "input": {}},
                          headers={"Authorization": f"Bearer {sim.token}"})
                answered += 1
            except httpx.RemoteProtocolError:
                pass
    assert 0 < answered < 30
    assert sim.run_count() == 30


def test_reject_trigger_if_is_permanent_and_creates_nothing(api: Api) -> None:
    api.sim.reject_trigger_if(lambda body: body["input"].get("poison") is True, status=400, message="poison pill")
    api.sim.reject_trigger_if({"additionalMetadata": {"airflow_batch_index": "3"}}, status=500)

    for _ in range(2):
        response = api.trigger("etl", {"poison": True})
        assert response.json() == {"errors": [{"description": "poison pill"}]}
    assert api.trigger("etl", additionalMetadata={"airflow_batch_index": "3"}).status_code == 500
    assert api.sim.run_count() == 0
    assert api.trigger("etl", {"poison": False}, additionalMetadata={"airflow_batch_index": "4"}).status_code == 200


# --- introspection ------------------------------------------------------------------------------------


def test_request_log_records_and_is_capped(api: Api) -> None:
    api.sim.request_log_limit = 3
    run_id = api.run_id("etl", {"a": 1})
    api.list(additional_metadata=["k:v", "j:w"])
    api.status(run_id)
    api.status(run_id)

    log = api.sim.requests
    assert [r.route for r in log] == ["list", "status", "status"]
    assert log[0].query["additional_metadata"] == ["k:v", "j:w"]
    assert log[1].status == 404
    api.sim.clear_requests()
    api.run_id("etl")
    [entry] = api.sim.requests
    assert (entry.method, entry.json["input"], entry.status) == ("POST", {}, 200)
    api.sim.request_log_limit = 0
    api.run_id("etl")
    assert api.sim.requests == []


def test_reset_forgets_runs_but_keeps_workflows(api: Api) -> None:
    run_id = api.run_id("etl")
    api.sim.fail_next("status")
    api.sim.reset()

    assert api.sim.run_count() == 0
    assert api.sim.get_run(run_id) is None
    assert api.sim.pending_failures() == {}
    assert api.trigger("etl").status_code == 200


def test_concurrent_triggers_are_all_recorded_with_unique_ids(sim: HatchetSimulator) -> None:
    ids: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(base_url=sim.server_url, transport=sim.transport()) as http:
            for i in range(50):
                response = http.post(f"/api/v1/stable/tenants/{sim.tenant_id}/workflow-runs/trigger",
                                     json={"workflowName": "etl", "input": {"i": i}},
                                     headers={"Authorization": f"Bearer {sim.token}"})
                with lock:
                    ids.append(response.json()["run"]["metadata"]["id"])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(set(ids)) == 400
    assert sim.run_count() == 400


async def test_async_transport(sim: HatchetSimulator, clock: ManualClock) -> None:
    sim.faults = Faults(latency=0.001)
    headers = {"Authorization": f"Bearer {sim.token}"}
    async with httpx.AsyncClient(base_url=sim.server_url, transport=sim.transport(), headers=headers) as http:
        response = await http.post(f"/api/v1/stable/tenants/{sim.tenant_id}/workflow-runs/trigger",
                                   json={"workflowName": "etl", "input": {"async": True}})
        run_id = response.json()["run"]["metadata"]["id"]
        clock.advance(10)
        status = await http.get(f"/api/v1/stable/workflow-runs/{run_id}/status")
        sim.fail_next("trigger", drop=True, after_create=True)
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(f"/api/v1/stable/tenants/{sim.tenant_id}/workflow-runs/trigger",
                            json={"workflowName": "etl", "input": {}})

    assert status.json() == "COMPLETED"
    assert sim.run_count() == 2
