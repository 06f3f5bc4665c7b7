"""Drive Airflow's React UI with Playwright and Debian's Chromium: the Hatchet connection form.

The form layout of Airflow 3.3: Admin -> Connections -> "Add Connection" opens a dialog with a "Connection Type"
combobox; the provider's standard fields (relabelled) sit in a "Standard Fields" accordion, its ``conn-fields``
in "Extra Fields". The "Test Connection" action lives in each row of the connections list and reports the
outcome as a toast titled "Test Connection Successful" / "Test Connection Failed" with the hook's message.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import BrowserContext, Locator, Page, Route, expect, sync_playwright

from airflow_provider_hatchet.connection_ui import EXTRA_FIELDS

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class FormSpec:
    """What the connection form must look like for the Hatchet connection type.

    :param type_label: text of the entry in the "Connection Type" combobox
    :param standard_labels: relabelled standard fields that must be shown (field -> label)
    :param extra_labels: provider ``conn-fields`` that must be shown (field -> label)
    :param hidden_labels: default labels of standard fields that must not be shown
    """

    type_label: str = "Hatchet"
    standard_labels: dict[str, str] = field(default_factory=lambda: {"host": "Server URL", "password": "API token"})
    extra_labels: dict[str, str] = field(
        default_factory=lambda: {name: spec["label"] for name, spec in EXTRA_FIELDS.items()}
    )
    hidden_labels: tuple[str, ...] = ("Schema", "Login", "Port")


@dataclass(frozen=True)
class ConnValues:
    """Values typed into the form.

    :param conn_id: connection id
    :param host: server URL
    :param token: API token
    :param extras: extra field name -> value: text typed, or the state a switch is set to
    """

    conn_id: str
    host: str
    token: str
    extras: dict[str, str | bool]


@contextmanager
def browser(user_data_dir: Path) -> Iterator[BrowserContext]:
    """Launch headless Chromium with a fresh profile.

    :param user_data_dir: profile folder (must not exist yet or be empty)
    :return: a browser context
    """
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)  # expect's own default, 5 s, is too short on a busy machine
        try:
            yield context
        finally:
            context.close()


def login(page: Page, base_url: str, username: str, password: str) -> None:
    """Open the connections page, signing in through the simple auth manager's form if asked to.

    :param page: the page
    :param base_url: api-server root
    :param username: user
    :param password: password
    """
    page.goto(f"{base_url}/connections")
    add = page.get_by_role("button", name="Add Connection")
    user_field = page.get_by_label("Username", exact=True)
    expect(add.or_(user_field)).to_be_visible()
    if user_field.is_visible():
        user_field.fill(username)
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_role("button", name="Sign in").click()
    expect(add).to_be_visible()


def _field(section: Locator, label: str) -> Locator:
    """Return the input of the form group whose label reads exactly ``label``.

    Airflow 3.3 renders provider ``conn-fields`` without an accessible name, so fields are found through
    their group's label text rather than ``get_by_label``.
    """
    group = section.get_by_role("group").filter(has=section.page.get_by_text(label, exact=True))
    return group.locator("input, textarea")


def _fill(section: Locator, label: str, value: str | bool) -> None:
    """Type ``value`` into the field labelled ``label``, or turn its switch on or off."""
    if not isinstance(value, bool):
        _field(section, label).fill(value)
        expect(_field(section, label)).to_have_value(value)
        return
    group = section.get_by_role("group").filter(has=section.page.get_by_text(label, exact=True))
    box = group.locator("input[type=checkbox]")
    if box.is_checked() != value:
        group.locator("label:has(input[type=checkbox])").first.click()
    expect(box).to_be_checked(checked=value)


def _group_labels(section: Locator) -> list[str]:
    labels = []
    for group in section.get_by_role("group").all():
        text = group.inner_text().strip().splitlines()
        if text:
            labels.append(text[0].strip())
    return labels


def add_connection(page: Page, spec: FormSpec, values: ConnValues, screenshot: Path | None) -> dict[str, list[str]]:
    """Fill and save a new connection of the Hatchet type, checking the form on the way.

    :param page: a signed-in page on the connections list
    :param spec: expected form
    :param values: what to type
    :param screenshot: where to save pictures of the filled form (``<stem>-standard.png``,
        ``<stem>-extra.png``); None for none
    :return: the field labels each section showed (for the report)
    """
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Add Connection")).to_be_visible()
    dialog.get_by_role("textbox", name="Connection ID").fill(values.conn_id)
    dialog.get_by_role("combobox", name="Connection Type").click()
    page.keyboard.type(spec.type_label)
    page.get_by_role("option", name=spec.type_label, exact=True).click()

    shown: dict[str, list[str]] = {}
    standard = dialog.get_by_role("region", name="Standard Fields")
    expect(standard).to_be_visible()
    expect(standard.get_by_role("group").first).to_be_visible()
    shown["standard"] = _group_labels(standard)
    for label in spec.standard_labels.values():
        expect(_field(standard, label), f"standard field {label!r} missing; shown: {shown['standard']}").to_be_visible()
    for label in spec.hidden_labels:
        expect(standard.get_by_text(label, exact=True), f"field {label!r} should be hidden").to_have_count(0)
    _field(standard, spec.standard_labels["host"]).fill(values.host)
    _field(standard, spec.standard_labels["password"]).fill(values.token)
    expect(_field(standard, spec.standard_labels["host"])).to_have_value(values.host)
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        dialog.screenshot(path=str(screenshot.with_name(f"{screenshot.stem}-standard.png")))

    extra_button = dialog.get_by_role("button", name="Extra Fields", exact=True)
    extra_button.click()
    expect(extra_button).to_have_attribute("aria-expanded", "true")
    extra = dialog.locator(f"[id='{extra_button.get_attribute('aria-controls')}']")
    expect(extra.get_by_role("group").first).to_be_visible()
    shown["extra"] = _group_labels(extra)
    for label in spec.extra_labels.values():
        expect(_field(extra, label), f"extra field {label!r} missing; shown: {shown['extra']}").to_be_visible()
    for name, value in values.extras.items():
        assert name in spec.extra_labels, f"the form declares no field for the extra {name!r}"
        _fill(extra, spec.extra_labels[name], value)
    if screenshot is not None:
        dialog.screenshot(path=str(screenshot.with_name(f"{screenshot.stem}-extra.png")))

    save = dialog.get_by_role("button", name="Save")
    expect(save).to_be_enabled()
    save.click()
    expect(dialog).to_have_count(0)
    expect(_row(page, values.conn_id)).to_be_visible()
    return shown


def every_field(conn_id: str, host: str, token: str, tenant_id: str) -> ConnValues:
    """Values for each extra of the form, none left at its default (the picture of the form in the docs).

    :param conn_id: connection id
    :param host: server URL
    :param token: API token
    :param tenant_id: the tenant
    """
    return ConnValues(conn_id, host, token, {
        "tenant_id": tenant_id, "namespace": "staging", "verify": "false", "timeout": "2.5",
        "proxy": "http://proxy.internal:3128", "grpc_address": "hatchet.internal:7070", "grpc_tls": False,
    })


# Run in Airflow's environment: the saved connection, from the metadata DB, read by the hook's own function (the
# REST API masks the extras Airflow deems secret, such as "proxy"; Airflow 3's lookup outside a task skips the DB).
_HOOK_READS = """
import json, sys
from sqlalchemy import select
from airflow.models.connection import Connection
from airflow.utils.session import create_session
from airflow_provider_hatchet.hooks._connection import config_from_connection
with create_session() as session:
    conn = session.scalars(select(Connection).where(Connection.conn_id == sys.argv[1])).one()
    config = config_from_connection(conn.password, conn.host, conn.schema, conn.port, conn.extra_dejson, None)
names = ("tenant_id", "namespace", "verify", "timeout", "proxy", "grpc_address", "grpc_tls")
print(json.dumps({name: getattr(config, name) for name in names}))
"""


def hook_reads(env: dict[str, str], conn_id: str) -> dict[str, object]:
    """The settings the hook reads from the saved connection ``conn_id`` (the token left out).

    :param env: the environment of the Airflow processes (their metadata DB)
    :param conn_id: the connection id
    :return: extra name -> the hook's setting
    """
    result = subprocess.run([sys.executable, "-c", _HOOK_READS, conn_id], env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, f"the hook could not read {conn_id!r}: {result.stderr[-2000:]}"
    settings: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return settings


def expected_settings(values: ConnValues) -> dict[str, object]:
    """What the hook must read from the connection :func:`every_field` typed.

    :param values: the values typed
    """
    return {**values.extras, "namespace": f"{values.extras['namespace']}_", "verify": False, "timeout": 2.5}


def _row(page: Page, conn_id: str) -> Locator:
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=conn_id, exact=True))


PORTLESS_TEST_BUG = "The host or port to test differs from the stored connection"


@dataclass
class TestOutcome:
    """What pressing "Test Connection" showed.

    :param ok: the toast reported success
    :param toast: the toast text
    :param workaround: set when the first press hit apache/airflow#73298 and the press was repeated with the
        request body corrected as that fix does (``port: 0`` -> ``null``)
    """

    ok: bool
    toast: str
    workaround: str | None = None


def _press_test(page: Page, conn_id: str) -> tuple[str, int, str]:
    page.reload()
    row = _row(page, conn_id)
    expect(row).to_be_visible()
    button = row.get_by_role("button", name="Test Connection")
    expect(button).to_be_enabled()
    with page.expect_response(re.compile(r".*/api/v2/connections/test$")) as response_info:
        button.click()
    response = response_info.value
    toast = page.get_by_role("status").filter(has_text=re.compile(r"Test Connection (Successful|Failed)")).last
    expect(toast).to_be_visible()
    text = toast.inner_text()
    for close in toast.get_by_role("button").all():
        close.click()
    return text, response.status, response.text()


def _null_port_0(route: Route) -> None:
    body = json.loads(route.request.post_data or "{}")
    if body.get("port") == 0:
        body["port"] = None
    route.continue_(post_data=json.dumps(body))


def test_connection(page: Page, conn_id: str) -> TestOutcome:
    """Press the row's "Test Connection" action and read the toast it raises.

    Airflow 3.3.2's list sends ``port: Number(null)`` = 0 for a connection without a port and the API then
    answers 400 (fixed upstream in apache/airflow#73298). When exactly that happens, the press is repeated with
    the request corrected the way the fix treats it, and the outcome says so.

    :param page: a signed-in page on the connections list
    :param conn_id: the connection to test
    :return: the outcome
    """
    text, status, body = _press_test(page, conn_id)
    if status != 400 or PORTLESS_TEST_BUG not in body:
        return TestOutcome("Test Connection Successful" in text, text)
    page.route(re.compile(r".*/api/v2/connections/test$"), _null_port_0)
    try:
        text, status, body = _press_test(page, conn_id)
    finally:
        page.unroute(re.compile(r".*/api/v2/connections/test$"))
    return TestOutcome(
        "Test Connection Successful" in text,
        text,
        workaround="apache/airflow#73298: UI sent port 0 for a port-less connection; retried with port null",
    )


def side_by_side(context: BrowserContext, images: list[Path], out: Path, zoom: float = 0.75) -> None:
    """Render PNG images next to each other, scaled down, into one PNG (the README's picture of the form).

    :param context: the browser context
    :param images: the pictures, left to right
    :param out: where to write the result
    :param zoom: scale factor
    """
    tags = "".join(f'<img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">' for p in images)
    page = context.new_page()
    page.set_content(
        "<body style='margin:0;background:#fff'><div id='all' style='display:flex;gap:24px;padding:12px;"
        f"align-items:flex-start;width:max-content;zoom:{zoom}'>{tags}</div></body>"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    page.locator("#all").screenshot(path=str(out))
    page.close()
