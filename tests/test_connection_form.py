"""The connection form on Airflow 3.3 and 2.10: every extra the hook reads is a field with a label, a placeholder
and help text, and what the form saves comes out of the hook as that setting."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_hatchet._airflow_version import AIRFLOW_V_3_0_PLUS
from airflow_provider_hatchet.client.config import DEFAULT_TIMEOUT, ClientConfig
from airflow_provider_hatchet.client.errors import HatchetConfigError
from airflow_provider_hatchet.hooks._connection import config_from_connection
from tests.test_hook import FORM_LOADS
from tests.tokens import make_token

pytestmark = pytest.mark.af2

# Every extra hooks/_connection.py reads (config_from_connection), with the label the form shows.
EXTRAS = {
    "tenant_id": "Tenant",
    "namespace": "Namespace",
    "verify": "Verify TLS",
    "timeout": "Request timeout (seconds)",
    "proxy": "Proxy",
    "grpc_address": "gRPC address",
    "grpc_tls": "gRPC TLS",
}
TOKEN = make_token(grpc_broadcast_address="claimed.example.com:7070")
TENANT = "8d2a1f53-2d5c-4d8e-9d59-0f1a3c0b5e11"


def config_of(extra: str | None) -> ClientConfig:
    """The hook's settings from a real Airflow connection holding ``extra`` as saved."""
    from airflow.models.connection import Connection

    conn = Connection(conn_id="hatchet_form", conn_type="hatchet", password=TOKEN, extra=extra)
    return config_from_connection(conn.password, conn.host, conn.schema, conn.port, conn.extra_dejson, None)


@pytest.mark.skipif(not FORM_LOADS, reason="Airflow 3.0/3.1 without flask_appbuilder show the generic form")
def test_the_providers_manager_lists_every_extra_with_label_placeholder_and_help() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    placeholders = manager.field_behaviours["hatchet"]["placeholders"]
    for name, label in EXTRAS.items():
        widget = manager.connection_form_widgets[f"extra__hatchet__{name}"]
        assert widget.field_name == name
        if AIRFLOW_V_3_0_PLUS:  # the declarative conn-fields
            assert widget.field["schema"]["title"] == label
            description = widget.field["description"]
        else:  # a wtforms field from get_connection_form_widgets
            assert str(widget.field.args[0]) == label
            description = widget.field.kwargs["description"]
        assert len(description) > 20, name
        assert placeholders[f"extra__hatchet__{name}"], name


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="the React UI's hook_meta endpoint is Airflow 3")
@pytest.mark.skipif(not FORM_LOADS, reason="Airflow 3.0/3.1 without flask_appbuilder show the generic form")
def test_the_react_ui_gets_a_typed_field_for_every_extra() -> None:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    [meta] = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "hatchet"]
    extra = meta.model_dump()["extra_fields"]
    assert {name: field["schema"]["title"] for name, field in extra.items()} == EXTRAS
    assert all(extra[name]["description"] for name in EXTRAS)
    assert extra["timeout"]["schema"]["type"] == ["number", "null"]
    assert extra["grpc_tls"]["schema"]["type"] == ["boolean", "null"]
    assert extra["grpc_tls"]["value"] is True  # the switch starts on, as the hook's default


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="Airflow 3's React UI")
def test_airflow_3_0_and_3_1_build_every_field_from_the_hook_through_their_wtforms_mocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Airflow 3.0 and 3.1 ignore conn-fields: the UI's hook_meta calls get_connection_form_widgets with wtforms
    # replaced by HookMetaService's mocks, as here, and turns each mock field into a JSON-schema param.
    from unittest import mock

    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
    from airflow.providers_manager import ConnectionFormWidgetInfo

    from airflow_provider_hatchet.hooks.hatchet import HatchetHook

    for module in ("wtforms", "wtforms.validators", "flask_babel", "flask_appbuilder", "flask_appbuilder.fieldwidgets"):
        monkeypatch.setitem(sys.modules, module, mock.MagicMock())
    with (
        mock.patch("wtforms.StringField", HookMetaService.MockStringField),
        mock.patch("wtforms.validators.Optional", HookMetaService.MockOptional),
        mock.patch("flask_babel.lazy_gettext", lambda text: text),
        mock.patch("flask_appbuilder.fieldwidgets.BS3TextFieldWidget", HookMetaService.MockAnyWidget),
    ):
        widgets = HatchetHook.get_connection_form_widgets()
    infos = {
        f"extra__hatchet__{name}": ConnectionFormWidgetInfo(
            hook_class_name="airflow_provider_hatchet.hooks.hatchet.HatchetHook",
            package_name="airflow-provider-hatchet", field=field, field_name=name, is_sensitive=False,
        )
        for name, field in widgets.items()
    }
    fields = HookMetaService._convert_extra_fields(infos)["hatchet"]  # type: ignore[arg-type]

    assert {name: field["schema"]["title"] for name, field in fields.items()} == EXTRAS
    assert all(field["description"] and field["schema"]["type"] == ["string", "null"] for field in fields.values())


def test_defaults_stated_by_the_form_are_the_hooks() -> None:
    from airflow_provider_hatchet import connection_ui

    default = config_of(None)
    assert (default.timeout, default.verify, default.grpc_tls) == (DEFAULT_TIMEOUT, True, True)
    assert default.grpc_address == "claimed.example.com:7070"
    fields = connection_ui.EXTRA_FIELDS
    assert fields["timeout"]["placeholder"] == "30" and "Default 30." in fields["timeout"]["description"]
    assert fields["verify"]["placeholder"].startswith("true (default)")
    assert fields["grpc_tls"]["default"] is True and "true, by default" in fields["grpc_tls"]["description"]
    assert "grpc_broadcast_address" in fields["grpc_address"]["placeholder"]


# What Airflow 3's React UI saves: JSON types, null for a field left empty; and an extra without the key.
@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"tenant_id": TENANT, "namespace": "Staging", "verify": "false", "timeout": 2.5,
             "proxy": "http://proxy.internal:3128", "grpc_address": "hatchet.internal:7070", "grpc_tls": False},
            (TENANT, "staging_", False, 2.5, "http://proxy.internal:3128", "hatchet.internal:7070", False),
        ),
        (
            {"tenant_id": None, "namespace": None, "verify": None, "timeout": None, "proxy": None,
             "grpc_address": None, "grpc_tls": True},
            (None, "", True, DEFAULT_TIMEOUT, None, "claimed.example.com:7070", True),
        ),
        ({"timeout": 45, "grpc_tls": None, "verify": True}, (None, "", True, 45.0, None, None, True)),
        ({}, (None, "", True, DEFAULT_TIMEOUT, None, None, True)),
    ],
    ids=["every-field", "left-empty", "numbers-and-bools", "missing"],
)
def test_what_the_react_ui_saves_is_what_the_hook_reads(extra: dict[str, Any], expected: tuple[Any, ...]) -> None:
    config = config_of(json.dumps(extra))

    tenant, namespace, verify, timeout, proxy, grpc_address, grpc_tls = expected
    assert config.tenant_id == (tenant or "707d0855-80ab-4e1f-a156-f1c4546cbf52")
    assert config.namespace == namespace
    assert (config.verify, config.timeout, config.proxy) == (verify, timeout, proxy)
    assert config.grpc_address == (grpc_address or "claimed.example.com:7070")
    assert config.grpc_tls is grpc_tls


# Airflow 2.10's form: the real connection form class, filled in a request and saved by the view's own code.


@pytest.fixture
def legacy_form() -> Iterator[type[Any]]:
    if AIRFLOW_V_3_0_PLUS:
        pytest.skip("Airflow 2.10's Flask connection form")
    from airflow.www.forms import create_connection_form_class
    from flask import Flask
    from flask_babel import Babel

    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", WTF_CSRF_ENABLED=False)
    Babel(app)
    with app.test_request_context("/connection/add", method="POST"):
        yield create_connection_form_class()


def saved_extra(form_class: type[Any], fields: dict[str, str]) -> tuple[Any, str | None]:
    """Submit the form with ``fields`` (extra name -> text typed) and return it with the extra the view saves."""
    from airflow.www.views import ConnectionModelView
    from werkzeug.datastructures import MultiDict

    data = {"conn_id": "hatchet_form", "conn_type": "hatchet", "password": TOKEN}
    data.update({f"extra__hatchet__{name}": value for name, value in fields.items()})
    form = form_class(formdata=MultiDict(data))
    form.validate()
    ConnectionModelView.process_form(object.__new__(ConnectionModelView), form, True)
    return form, form.extra.data


def test_the_legacy_form_renders_every_extra_with_its_help(legacy_form: type[Any]) -> None:
    form = legacy_form()

    for name, label in EXTRAS.items():
        field = form[f"extra__hatchet__{name}"]
        assert str(field.label.text) == label
        assert field.description
        assert f'name="extra__hatchet__{name}"' in str(field())


def test_what_the_legacy_form_saves_is_what_the_hook_reads(legacy_form: type[Any]) -> None:
    form, extra = saved_extra(legacy_form, {
        "tenant_id": TENANT, "namespace": "Staging", "verify": "false", "timeout": "2.5",
        "proxy": "http://proxy.internal:3128", "grpc_address": "hatchet.internal:7070", "grpc_tls": "false",
    })
    assert not any(name.startswith("extra__") for name in form.errors), form.errors

    config = config_of(extra)
    assert (config.tenant_id, config.namespace, config.verify, config.timeout) == (TENANT, "staging_", False, 2.5)
    assert (config.proxy, config.grpc_address, config.grpc_tls) == (
        "http://proxy.internal:3128", "hatchet.internal:7070", False,
    )


def test_the_legacy_form_left_empty_saves_the_hooks_defaults(legacy_form: type[Any]) -> None:
    _, extra = saved_extra(legacy_form, {name: "" for name in EXTRAS})

    assert json.loads(extra or "{}") == {}
    config = config_of(extra)
    assert (config.verify, config.timeout, config.grpc_tls) == (True, DEFAULT_TIMEOUT, True)


@pytest.mark.parametrize(("name", "value"), [("grpc_tls", "yes please"), ("timeout", "30s"), ("timeout", "-1")])
def test_the_legacy_form_refuses_a_value_the_hook_cannot_read(
    legacy_form: type[Any], name: str, value: str
) -> None:
    form, _ = saved_extra(legacy_form, {name: value})

    assert f"extra__hatchet__{name}" in form.errors


@pytest.mark.parametrize(("name", "value"), [("grpc_tls", "maybe"), ("timeout", 0), ("timeout", "30s")])
def test_a_value_no_form_checked_fails_clearly_in_the_hook(name: str, value: Any) -> None:
    with pytest.raises(HatchetConfigError, match=f"extra '{name}'"):
        config_of(json.dumps({name: value}))
