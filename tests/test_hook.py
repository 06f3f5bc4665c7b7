"""HatchetHook: where the token, server, tenant and namespace come from; the Test button; the connection form."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_VERSION
from airflow_provider_hatchet.client import HatchetConfigError, HatchetValidationError
from airflow_provider_hatchet.hooks.hatchet import HatchetHook
from tests.tokens import SERVER, TENANT, make_token

pytestmark = pytest.mark.af2

TOKEN = make_token()
# Before 3.2 Airflow builds a provider's form from wtforms widgets, which only the FAB provider installs; without
# it (the default on 3.0 and 3.1) every provider's hook is registered with the generic form.
FORM_LOADS = (
    not AIRFLOW_V_3_0_PLUS or AIRFLOW_VERSION >= (3, 2, 0) or importlib.util.find_spec("flask_appbuilder") is not None
)


def hook_for(airflow_conn: Any, namespace: str | None = None, **fields: Any) -> HatchetHook:
    fields.setdefault("password", TOKEN)
    airflow_conn("hatchet_test", conn_type="hatchet", **fields)
    return HatchetHook("hatchet_test", namespace=namespace)


def test_the_token_alone_gives_tenant_and_server(airflow_conn: Any) -> None:
    config = hook_for(airflow_conn).config
    assert (config.tenant_id, config.server_url, config.namespace) == (TENANT, SERVER, "")


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        ({"host": "http://127.0.0.1:7077/"}, "http://127.0.0.1:7077"),
        ({"host": "hatchet.internal"}, "https://hatchet.internal"),
        ({"host": "hatchet.internal", "port": 8443}, "https://hatchet.internal:8443"),
        ({"host": "localhost", "port": 8080, "schema": "http"}, "http://localhost:8080"),
    ],
)
def test_the_host_overrides_the_server_url(airflow_conn: Any, fields: dict[str, Any], url: str) -> None:
    assert hook_for(airflow_conn, **fields).config.server_url == url


T2, T3 = "2f0c3e53-0c4b-4b8e-9b8a-6f1d2a3c4b5d", "3e1d4f64-1d5c-4c9f-8c9b-7a2e3b4d5c6e"


def test_extras_override_tenant_and_set_namespace_verify_timeout(airflow_conn: Any) -> None:
    config = hook_for(
        airflow_conn, extra={"tenant_id": T2, "namespace": "Team_A", "verify": "false", "timeout": "12.5"}
    ).config
    assert (config.tenant_id, config.namespace, config.verify, config.timeout) == (T2, "team_a_", False, 12.5)


def test_airflow_2_form_field_names_are_read(airflow_conn: Any) -> None:
    config = hook_for(
        airflow_conn, extra={"extra__hatchet__tenant_id": T3, "extra__hatchet__namespace": "Legacy"}
    ).config
    assert (config.tenant_id, config.namespace) == (T3, "legacy_")


def test_verify_accepts_a_ca_bundle_path(airflow_conn: Any, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    assert hook_for(airflow_conn, extra={"verify": str(bundle)}).config.verify == str(bundle)


@pytest.mark.parametrize(("where", "problem"), [("missing.pem", "not an existing file"), ("", "a directory")])
def test_a_verify_path_that_is_not_a_file_is_named(
    airflow_conn: Any, tmp_path: Path, where: str, problem: str
) -> None:
    with pytest.raises(HatchetConfigError, match=f"extra 'verify'.*{problem}"):
        _ = hook_for(airflow_conn, extra={"verify": str(tmp_path / where)}).config


@pytest.mark.parametrize("timeout", [0, -1, "0", "inf", "nan", float("inf"), True])
def test_a_timeout_that_is_not_a_positive_finite_number_is_named(airflow_conn: Any, timeout: Any) -> None:
    with pytest.raises(HatchetConfigError, match="extra 'timeout' must be a number of seconds above zero"):
        _ = hook_for(airflow_conn, extra={"timeout": timeout}).config


def test_a_bad_timeout_extra_is_named(airflow_conn: Any) -> None:
    with pytest.raises(HatchetConfigError, match="timeout"):
        _ = hook_for(airflow_conn, extra={"timeout": "soon"}).config


@pytest.mark.parametrize(
    ("conn_namespace", "hook_namespace", "name", "expected"),
    [
        (None, None, "etl", "etl"),
        ("Staging", None, "etl", "staging_etl"),
        ("Staging", None, "MyFlow", "staging_MyFlow"),
        ("staging", None, "staging_etl", "staging_etl"),
        ("staging", "Prod", "etl", "prod_etl"),
        ("staging", "", "etl", "etl"),
    ],
)
def test_namespace_rules(
    airflow_conn: Any, conn_namespace: str | None, hook_namespace: str | None, name: str, expected: str
) -> None:
    extra = {"namespace": conn_namespace} if conn_namespace else None
    hook = hook_for(airflow_conn, namespace=hook_namespace, extra=extra)
    assert hook.full_workflow_name(name) == expected


def test_per_call_namespace_override(airflow_conn: Any) -> None:
    hook = hook_for(airflow_conn, extra={"namespace": "staging"})
    assert hook.full_workflow_name("etl", namespace="Dev") == "dev_etl"


def test_a_missing_connection_falls_back_to_the_sdk_environment(monkeypatch: pytest.MonkeyPatch, logs: Any) -> None:
    monkeypatch.setenv("HATCHET_CLIENT_TOKEN", TOKEN)
    monkeypatch.setenv("HATCHET_CLIENT_SERVER_URL", "http://127.0.0.1:9999")
    monkeypatch.setenv("HATCHET_CLIENT_TENANT_ID", T3)
    monkeypatch.setenv("HATCHET_CLIENT_NAMESPACE", "EnvNs")
    config = HatchetHook("hatchet_missing").config
    assert (config.server_url, config.tenant_id, config.namespace) == ("http://127.0.0.1:9999", T3, "envns_")
    text = logs()
    assert "HATCHET_CLIENT_* environment variables" in text
    assert TOKEN not in text


def test_the_environment_token_alone_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HATCHET_CLIENT_TOKEN", TOKEN)
    config = HatchetHook("hatchet_missing").config
    assert (config.server_url, config.tenant_id) == (SERVER, TENANT)


def test_no_connection_and_no_environment_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HATCHET_CLIENT_TOKEN", raising=False)
    with pytest.raises(HatchetConfigError, match="'hatchet_missing' does not exist and HATCHET_CLIENT_TOKEN"):
        _ = HatchetHook("hatchet_missing").config


def test_a_malformed_token_is_a_clear_error_without_the_token(airflow_conn: Any) -> None:
    bad = "not-a-jwt-secret-value"
    with pytest.raises(HatchetConfigError, match="not a JWT") as err:
        _ = hook_for(airflow_conn, password=bad).config
    assert bad not in str(err.value)


def test_the_token_is_registered_with_the_secrets_masker(airflow_conn: Any) -> None:
    token = make_token(token_id="masked-one")
    _ = hook_for(airflow_conn, password=token).config
    if AIRFLOW_VERSION >= (3, 1, 0):
        from airflow.sdk._shared.secrets_masker import redact
    elif AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.execution_time.secrets_masker import redact
    else:
        from airflow.utils.log.secrets_masker import redact
    assert token not in str(redact(f"token={token}"))


def test_run_url(airflow_conn: Any) -> None:
    assert hook_for(airflow_conn).run_url("abc") == f"{SERVER}/tenants/{TENANT}/runs/abc"


# The Test button, against the simulator over loopback.


def test_test_connection_succeeds(hatchet: Any, hatchet_server: Any, airflow_conn: Any) -> None:
    ok, message = hook_for(airflow_conn, password=hatchet.token, host=hatchet_server.url).test_connection()
    assert ok, message
    assert hatchet.tenant_id in message


@pytest.mark.parametrize("kind", ["bad_token", "other_tenant", "unknown_tenant", "unreachable", "not_jwt"])
def test_test_connection_explains_failures(hatchet: Any, hatchet_server: Any, airflow_conn: Any, kind: str) -> None:
    fields: dict[str, Any] = {"password": hatchet.token, "host": hatchet_server.url}
    if kind == "bad_token":
        fields["password"] = hatchet.mint_token(server_url="https://another.example.com")
        expected = "rejected the API token (403)"
    elif kind == "other_tenant":
        fields["extra"] = {"tenant_id": hatchet.add_tenant("other")}
        expected = "rejected the API token (403)"
    elif kind == "unknown_tenant":
        fields["extra"] = {"tenant_id": "3a4c8a58-2d9a-4a7c-9d61-0b8a5d0f3c11"}
        expected = "Tenant 3a4c8a58-2d9a-4a7c-9d61-0b8a5d0f3c11 was not found"
    elif kind == "unreachable":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            fields["host"] = f"http://127.0.0.1:{sock.getsockname()[1]}"
        expected = "Could not reach the Hatchet server"
    else:
        fields["password"] = "plainpassword"
        expected = "not a JWT"
    ok, message = hook_for(airflow_conn, **fields).test_connection()
    assert not ok
    assert expected in message
    assert fields["password"] not in message


def test_async_clients_are_shared_per_event_loop_and_connection(airflow_conn: Any) -> None:
    hook_for(airflow_conn)

    async def clients() -> tuple[Any, Any, Any]:
        return (
            await HatchetHook("hatchet_test").aget_client(),
            await HatchetHook("hatchet_test").aget_client(),
            await HatchetHook("hatchet_test", namespace="other").aget_client(),
        )

    first, second, other = asyncio.run(clients())
    assert first is second
    assert other is not first
    assert asyncio.run(clients())[0] is not first


# The connection form, as the providers manager (and so the UI) sees it.


def test_the_providers_manager_registers_the_hook_and_form() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-hatchet" in manager.providers
    hook_info = manager.hooks["hatchet"]
    assert hook_info is not None
    assert (hook_info.hook_class_name, hook_info.connection_id_attribute_name, hook_info.hook_name) == (
        "airflow_provider_hatchet.hooks.hatchet.HatchetHook", "hatchet_conn_id", "Hatchet",
    )
    if not FORM_LOADS:
        assert "hatchet" not in manager.field_behaviours
        pytest.skip("Airflow 3.0/3.1 without flask_appbuilder: the generic form (checked above), no custom fields")
    behaviour = manager.field_behaviours["hatchet"]
    assert behaviour["relabeling"] == {"host": "Server URL", "password": "API token"}
    assert set(behaviour["hidden_fields"]) == {"schema", "login", "port"}
    assert {"extra__hatchet__namespace", "extra__hatchet__tenant_id"} <= set(manager.connection_form_widgets)


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="the React UI's hook_meta endpoint is Airflow 3")
@pytest.mark.skipif(not FORM_LOADS, reason="Airflow 3.0/3.1 without flask_appbuilder show the generic form")
def test_hook_meta_shows_the_labels_and_extra_fields() -> None:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    [meta] = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "hatchet"]
    data = meta.model_dump()
    assert data["hook_name"] == "Hatchet"
    standard = data["standard_fields"]
    assert standard["host"]["title"] == "Server URL"
    assert standard["password"]["title"] == "API token"
    assert all(standard[field]["hidden"] for field in ("url_schema", "login", "port"))
    extra = data["extra_fields"]
    assert extra["namespace"]["schema"]["title"] == "Namespace"
    assert extra["tenant_id"]["schema"]["title"] == "Tenant"


def test_a_confirmed_workflow_name_is_looked_up_once_per_process(
    hatchet: Any, hatchet_server: Any, airflow_conn: Any
) -> None:
    hatchet.register_workflow("cache-probe", "succeed")
    hook_for(airflow_conn, password=hatchet.token, host=hatchet_server.url)
    for _ in range(3):
        assert HatchetHook("hatchet_test").resolve_workflow("cache-probe") == "cache-probe"
        with pytest.raises(HatchetValidationError, match="no workflow named 'cache-prob'"):
            HatchetHook("hatchet_test").resolve_workflow("cache-prob")
    lookups = [r.query["name"][0] for r in hatchet.requests if r.route == "workflows" and "name" in r.query]
    assert lookups.count("cache-probe") == 1
    assert lookups.count("cache-prob") == 3


def deep_input(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


def test_input_nested_beyond_what_json_can_encode_is_a_field_error(hatchet: Any) -> None:
    with pytest.raises(HatchetValidationError, match="nested too deeply") as err:
        HatchetHook().run_workflow("demo-etl", deep_input(10_000))
    assert err.value.field == "input"
    assert [r for r in hatchet.requests if r.route == "trigger"] == []


def test_a_workflow_name_too_long_for_a_url_is_a_field_error(hatchet: Any) -> None:
    hook = HatchetHook()
    for call in (hook.run_workflow, hook.resolve_workflow):
        with pytest.raises(HatchetValidationError, match="at most 1000 characters, got 100000") as err:
            call("x" * 100_000)
        assert err.value.field == "workflow_name"
    assert hatchet.requests == []


def test_run_workflow_refuses_an_unknown_workflow_and_creates_no_run(hatchet: Any) -> None:
    hatchet.register_workflow("export-orders", "succeed")
    with pytest.raises(HatchetValidationError, match=r"no workflow named 'export-order' .*close names: export-orders"
                       ) as err:
        HatchetHook().run_workflow("export-order", {"day": "2025-01-01"})
    assert err.value.field == "workflow_name"
    assert [r for r in hatchet.requests if r.route == "trigger"] == []
    assert hatchet.runs == []
