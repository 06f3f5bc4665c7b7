"""Token decoding, namespace rules and trigger-argument checks: pure functions, no server needed."""

from __future__ import annotations

import pytest

from airflow_provider_hatchet.client import ClientConfig, HatchetConfigError, HatchetValidationError, validation
from airflow_provider_hatchet.client.config import apply_namespace, decode_token_claims, normalize_namespace
from tests.tokens import SERVER, TENANT, make_token

pytestmark = pytest.mark.af2

OTHER_TENANT = "5b1c3a7e-0f4d-4c2a-9e8b-7d6f5a4b3c21"


def test_config_takes_tenant_and_server_from_the_token() -> None:
    config = ClientConfig.from_token(make_token())
    assert (config.tenant_id, config.server_url, config.namespace) == (TENANT, SERVER, "")


def test_overrides_win_over_the_claims() -> None:
    config = ClientConfig.from_token(
        make_token(), server_url="http://127.0.0.1:7077/", tenant_id=OTHER_TENANT.upper(), namespace="Dev"
    )
    assert (config.server_url, config.tenant_id, config.namespace) == ("http://127.0.0.1:7077", OTHER_TENANT, "dev_")


@pytest.mark.parametrize("pasted", ["token", "token with spaces", "part", "another token"])
def test_a_token_pasted_as_the_tenant_id_is_refused_without_being_echoed(pasted: str) -> None:
    token = make_token()
    given = {"token": token, "token with spaces": f"  {token} ", "part": token[10:60],
             "another token": make_token(sub="x")}[pasted]
    with pytest.raises(HatchetConfigError, match=r"a token, not a tenant id, \(the connection extra") as err:
        ClientConfig.from_token(token, tenant_id=given)
    assert given.strip()[:12] not in str(err.value) and token[10:30] not in str(err.value)


@pytest.mark.parametrize("given", ["other-tenant", "", " ", "a/b?c#d", "707d0855-80ab-4e1f-a156"])
def test_a_tenant_id_that_is_not_a_uuid_is_refused_naming_where_it_came_from(given: str) -> None:
    given_by = r"\(the connection extra 'tenant_id' or HATCHET_CLIENT_TENANT_ID\) is not a UUID"
    with pytest.raises(HatchetConfigError, match=given_by) as err:
        ClientConfig.from_token(make_token(), tenant_id=given or "x")
    assert f"tenant id {(given or 'x')!r} (" in str(err.value)  # the value, quoted: newlines and all escaped
    with pytest.raises(HatchetConfigError, match="'sub' claim"):
        ClientConfig.from_token(make_token(sub=given or "x"))


def test_server_url_without_scheme_gets_https() -> None:
    assert ClientConfig.from_token(make_token(server_url="hatchet.internal:8443")).server_url == (
        "https://hatchet.internal:8443"
    )


def test_run_url_matches_the_dashboard_route() -> None:
    assert ClientConfig.from_token(make_token()).run_url("r-1") == f"{SERVER}/tenants/{TENANT}/runs/r-1"


@pytest.mark.parametrize("token", ["not-a-jwt", "eyJhbGciOi.only-two", "abc.def.ghi", "eyJ.!!!.sig"])
def test_a_token_that_is_not_a_jwt_is_rejected_without_being_echoed(token: str) -> None:
    with pytest.raises(HatchetConfigError) as err:
        decode_token_claims(token)
    assert token not in str(err.value)


@pytest.mark.parametrize(("claim", "words"), [("sub", "tenant"), ("server_url", "server URL")])
def test_a_token_without_the_claims_needs_the_override(claim: str, words: str) -> None:
    token = make_token(**{claim: None})
    with pytest.raises(HatchetConfigError, match=words) as err:
        ClientConfig.from_token(token)
    assert token not in str(err.value)


@pytest.mark.parametrize("where", ["inside", "header"])
@pytest.mark.parametrize("char", ["\n", "\r", " ", "\x00", "é", "\u2028"])
def test_a_token_with_a_character_no_header_may_hold_is_refused_without_being_echoed(char: str, where: str) -> None:
    token = make_token()
    head, payload, signature = token.split(".")
    if where == "inside":
        bad = f"{head}.{payload}.{signature[:6]}{char}{signature[6:]}"
    else:
        bad = f"{head[:4]}{char}{head[4:]}.{payload}.{signature}"
    with pytest.raises(HatchetConfigError, match="visible ASCII only") as err:
        ClientConfig.from_token(bad)
    for secret in (bad, signature, signature[6:]):
        assert secret not in str(err.value)
    with pytest.raises(HatchetConfigError, match="visible ASCII only"):
        ClientConfig(token=bad, server_url=SERVER, tenant_id=TENANT)


def test_the_token_is_not_in_the_repr() -> None:
    token = make_token()
    assert token not in repr(ClientConfig.from_token(token))


@pytest.mark.parametrize(
    ("namespace", "name", "expected"),
    [
        (None, "etl", "etl"),
        ("", "etl", "etl"),
        ("Staging", "etl", "staging_etl"),
        ("staging_", "etl", "staging_etl"),
        ("STAGING", "MyFlow", "staging_MyFlow"),
        ("staging", "staging_etl", "staging_etl"),
        ("staging", "Staging_etl", "staging_Staging_etl"),
    ],
)
def test_namespace_rule_matches_hatchet_sdk(namespace: str | None, name: str, expected: str) -> None:
    assert apply_namespace(name, namespace) == expected


def test_normalize_namespace() -> None:
    assert [normalize_namespace(n) for n in (None, "", "A", "b_")] == ["", "", "a_", "b_"]


def test_metadata_scalars_become_strings() -> None:
    assert validation.check_metadata({"a": "x", "b": 1, "c": 1.5, "d": True, "e": None}) == {
        "a": "x", "b": "1", "c": "1.5", "d": "true", "e": "null",
    }


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"a": [1]}, "additional_metadata['a']"),
        ({"a": {"b": 1}}, "additional_metadata['a']"),
        ({1: "x"}, "additional_metadata"),
        ("k=v", "additional_metadata"),
        ({"a": float("nan")}, "additional_metadata['a']"),
        ({"team:data": "x"}, "additional_metadata['team:data']"),
    ],
)
def test_metadata_that_is_not_scalar_is_rejected(value: object, field: str) -> None:
    with pytest.raises(HatchetValidationError) as err:
        validation.check_metadata(value)
    assert err.value.field == field


@pytest.mark.parametrize("value", ['{"a": 1}', [1, 2], {"a": object()}, {"a": float("inf")}, {1: "a"}])
def test_input_must_be_a_json_object(value: object) -> None:
    with pytest.raises(HatchetValidationError) as err:
        validation.check_input(value)
    assert err.value.field == "input"


@pytest.mark.parametrize(("value", "where"), [
    ({"a": "x\x00"}, "['a']"),
    ({"a": [1, {"b": "\x00"}]}, "['a'][1]['b']"),
    ({"a\x00": 1}, "['a\\x00']"),
])
def test_input_holding_u0000_is_refused_naming_where(value: object, where: str) -> None:
    # The real server accepts such a run and never stores it (docs/hatchet-behaviour.md).
    with pytest.raises(HatchetValidationError) as err:
        validation.check_input(value)
    assert (err.value.field, where in err.value.problem) == ("input", True)


def test_input_holding_the_text_backslash_u0000_is_kept() -> None:
    assert validation.check_input({"a": "\\u0000"}) == {"a": "\\u0000"}


@pytest.mark.parametrize("value", [{"k": "a\x00b"}, {"k\x00": "v"}])
def test_metadata_holding_u0000_is_refused(value: dict[str, str]) -> None:
    # The real server answers such a trigger 500 after 10 s.
    with pytest.raises(HatchetValidationError, match="U\\+0000"):
        validation.check_metadata(value)


@pytest.mark.parametrize("value", [0, 4, -1, "2", 2.0, True])
def test_priority_must_be_1_to_3(value: object) -> None:
    with pytest.raises(HatchetValidationError, match="priority"):
        validation.check_priority(value)


@pytest.mark.parametrize("value", ["", "  ", None, 3])
def test_workflow_name_must_be_non_empty(value: object) -> None:
    with pytest.raises(HatchetValidationError, match="workflow_name"):
        validation.check_workflow_name(value)
