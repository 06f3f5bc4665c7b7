"""How the ``hatchet`` connection form looks: declared once, served to Airflow 3.2+ and to older versions."""

from __future__ import annotations

from typing import Any

HIDDEN_FIELDS = ["schema", "login", "port"]
RELABELING = {"host": "Server URL", "password": "API token"}
PLACEHOLDERS = {
    "host": "Optional: defaults to the token's server_url claim, e.g. https://cloud.onhatchet.run",
    "password": "A Hatchet API token (Settings > API Tokens in the Hatchet dashboard)",
    "namespace": "Optional, e.g. staging",
    "tenant_id": "Optional: defaults to the tenant the token belongs to",
}

EXTRA_FIELDS: dict[str, dict[str, Any]] = {
    "namespace": {
        "label": "Namespace",
        "description": "Prefix for workflow names, applied as hatchet-sdk does (lower-cased, '_' appended).",
        "schema": {"type": ["string", "null"]},
    },
    "tenant_id": {
        "label": "Tenant",
        "description": "Tenant UUID. Leave empty to use the tenant the API token belongs to.",
        "schema": {"type": ["string", "null"]},
    },
}


def connection_type() -> dict[str, Any]:
    """The ``connection-types`` entry of the provider info, with the declarative form (Airflow 3.2+)."""
    return {
        "connection-type": "hatchet",
        "hook-class-name": "airflow_provider_hatchet.hooks.hatchet.HatchetHook",
        "hook-name": "Hatchet",
        "conn-fields": EXTRA_FIELDS,
        "ui-field-behaviour": {
            "hidden-fields": HIDDEN_FIELDS,
            "relabeling": RELABELING,
            "placeholders": PLACEHOLDERS,
        },
    }


def legacy_field_behaviour() -> dict[str, Any]:
    """The form's labels for ``get_ui_field_behaviour`` (Airflow before 3.2)."""
    return {"hidden_fields": HIDDEN_FIELDS, "relabeling": RELABELING, "placeholders": PLACEHOLDERS}


def legacy_form_widgets() -> dict[str, Any]:
    """The form's extra fields for ``get_connection_form_widgets`` (Airflow before 3.2, needs wtforms)."""
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import StringField

    return {
        name: StringField(lazy_gettext(spec["label"]), widget=BS3TextFieldWidget(), description=spec["description"])
        for name, spec in EXTRA_FIELDS.items()
    }
