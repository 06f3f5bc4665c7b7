"""How the ``hatchet`` connection form looks: declared once, served to Airflow 3.2+ and to older versions.

Airflow 3.2+ reads the declarative ``conn-fields`` of the provider info (JSON-schema types); Airflow 3.0 and 3.1
call the hook's ``get_connection_form_widgets`` with wtforms replaced by mocks that know only ``StringField``,
``IntegerField``, ``PasswordField`` and ``BooleanField``; Airflow 2.10 calls it with the real wtforms. Each extra
below is written once and turned into both.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_hatchet.client.config import DEFAULT_TIMEOUT

HIDDEN_FIELDS = ["schema", "login", "port"]
RELABELING = {"host": "Server URL", "password": "API token"}
STANDARD_PLACEHOLDERS = {
    "host": "Optional: defaults to the token's server_url claim, e.g. https://cloud.onhatchet.run",
    "password": "A Hatchet API token (Settings > API Tokens in the Hatchet dashboard)",
}

# Every extra hooks/_connection.py reads. "type" is the JSON-schema type of the value Airflow 3.2+'s form saves;
# "placeholder" shows in the empty field on Airflow 2.10 (Airflow 3's form shows the description instead).
EXTRA_FIELDS: dict[str, dict[str, Any]] = {
    "tenant_id": {
        "label": "Tenant",
        "type": "string",
        "placeholder": "Optional: defaults to the tenant the token belongs to",
        "description": "Tenant UUID. Leave empty to use the tenant the API token belongs to (its sub claim).",
    },
    "namespace": {
        "label": "Namespace",
        "type": "string",
        "placeholder": "Optional, e.g. staging",
        "description": "Prefix for workflow names, applied as hatchet-sdk does (lower-cased, '_' appended). "
        "Empty: no prefix.",
    },
    "verify": {
        "label": "Verify TLS",
        "type": "string",
        "placeholder": "true (default), false, or /path/to/ca-bundle.pem",
        "description": "TLS certificate checks of the REST API: true (the default), false to skip them, or the "
        "path of a CA bundle file on every Airflow machine (gRPC uses the bundle too, and ignores false).",
    },
    "timeout": {
        "label": "Request timeout (seconds)",
        "type": "number",
        "placeholder": f"{DEFAULT_TIMEOUT:g}",
        "description": f"The most seconds one request to Hatchet may take, above zero. Default {DEFAULT_TIMEOUT:g}.",
    },
    "proxy": {
        "label": "Proxy",
        "type": "string",
        "placeholder": "Optional, e.g. http://proxy.internal:3128",
        "description": "One proxy URL (http, https, socks5 or socks5h) for every request to Hatchet; gRPC uses it "
        "when it is http://. Empty: the HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY variables apply.",
    },
    "grpc_address": {
        "label": "gRPC address",
        "type": "string",
        "placeholder": "Optional: defaults to the token's grpc_broadcast_address claim, e.g. hatchet.internal:7070",
        "description": "host:port of Hatchet's gRPC API (the gRPC bulk trigger and event pushes). Empty: the "
        "token's grpc_broadcast_address claim.",
    },
    "grpc_tls": {
        "label": "gRPC TLS",
        "type": "boolean",
        "default": True,
        "placeholder": "true (default) or false",
        "description": "TLS on the gRPC connection: on, true, by default; off, false, only for a server without "
        "TLS, such as a local one.",
    },
}

# Airflow 2.10's form fills a field from the saved extra only when the value is truthy, so a check box that
# defaults to ticked would show ticked again for a saved false, and saving would turn it back on. The older forms
# therefore get a text field holding "true" or "false" for a boolean, which the hook reads the same.
LEGACY_BOOLEAN_VALUES = ["true", "false"]
# A number as the text field takes it: the hook reads it as seconds and refuses zero with a clear message.
LEGACY_NUMBER_PATTERN = r"^\s*\d+(\.\d+)?\s*$"


def _schema(spec: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": [spec["type"], "null"]}
    if "default" in spec:
        schema["default"] = spec["default"]
    return schema


def connection_type() -> dict[str, Any]:
    """The ``connection-types`` entry of the provider info, with the declarative form (Airflow 3.2+)."""
    return {
        "connection-type": "hatchet",
        "hook-class-name": "airflow_provider_hatchet.hooks.hatchet.HatchetHook",
        "hook-name": "Hatchet",
        "conn-fields": {
            name: {"label": spec["label"], "description": spec["description"], "schema": _schema(spec)}
            for name, spec in EXTRA_FIELDS.items()
        },
        "ui-field-behaviour": {
            "hidden-fields": HIDDEN_FIELDS,
            "relabeling": RELABELING,
            "placeholders": placeholders(),
        },
    }


def placeholders() -> dict[str, str]:
    """The placeholder of each standard field and each extra, by field name."""
    return {**STANDARD_PLACEHOLDERS, **{name: spec["placeholder"] for name, spec in EXTRA_FIELDS.items()}}


def legacy_field_behaviour() -> dict[str, Any]:
    """The form's labels for ``get_ui_field_behaviour`` (Airflow before 3.2)."""
    return {"hidden_fields": HIDDEN_FIELDS, "relabeling": RELABELING, "placeholders": placeholders()}


def legacy_form_widgets() -> dict[str, Any]:
    """The form's extra fields for ``get_connection_form_widgets`` (Airflow before 3.2, needs wtforms).

    Every extra is a text field; a boolean takes ``true`` or ``false``, a number digits, checked by the form on
    Airflow 2.10 and by the hook on every version.
    """
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import StringField
    from wtforms.validators import AnyOf, Optional, Regexp

    def validators(spec: dict[str, Any]) -> list[Any]:
        if spec["type"] == "boolean":
            return [Optional(), AnyOf(LEGACY_BOOLEAN_VALUES, message="Enter true or false.")]
        if spec["type"] == "number":
            return [Optional(), Regexp(LEGACY_NUMBER_PATTERN, message="Enter a number of seconds, such as 30.")]
        return []

    return {
        name: StringField(
            lazy_gettext(spec["label"]),
            validators=validators(spec),
            widget=BS3TextFieldWidget(),
            description=spec["description"],
        )
        for name, spec in EXTRA_FIELDS.items()
    }
