"""Validate requests and responses against Hatchet's OpenAPI spec (a test helper).

The spec lives outside the package, at ``<repo>/../shared/hatchet-api/api-contracts/openapi`` (override with
``HATCHET_OPENAPI_DIR``); every helper calls ``pytest.skip`` when it is absent.

Loading handles the spec's layout: ``components.schemas`` is a non-standard ``$ref`` to ``_index.yaml`` and
all schemas live in relative YAML files, so every file is served to ``referencing`` by a retriever and
schemas are checked with ``jsonschema`` Draft 2020-12 (``date-time`` and ``uuid`` formats enforced).
Known spec bugs are patched: ``V1WorkflowRun`` and ``V1TaskSummary`` list ``id`` under ``required``
without defining it.

Known deviations of the real server that these helpers accept (see NOTES.md §3, §10):

- error answers from middleware use echo's ``{"message": "..."}`` body although the spec declares
  ``APIErrors``; any error status may carry it, or ``APIErrors``, or ``null`` (429);
- error statuses the spec does not declare (the run-details 404, 429, 5xx) are accepted with those bodies.

Not accepted: the trigger's ``return_only_id`` stub (``status: ""``, ``taskEvents: null``...) does not match
``V1WorkflowRunDetails``, exactly as on the real server, so ``validate_response`` raises for it.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urljoin

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_BUGS: dict[str, tuple[str, ...]] = {
    "components/schemas/v1/workflow_run.yaml": ("V1WorkflowRun",),
    "components/schemas/v1/task.yaml": ("V1TaskSummary",),
}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


class SpecMismatch(AssertionError):
    """A request or response does not match the spec."""


def spec_dir() -> Path:
    """Return the spec directory (it may not exist)."""
    override = os.environ.get("HATCHET_OPENAPI_DIR")
    if override:
        return Path(override)
    repo = Path(__file__).resolve().parent.parent
    return repo.parent / "shared" / "hatchet-api" / "api-contracts" / "openapi"


def _format_checker() -> FormatChecker:
    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not re.match(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", value):
            raise ValueError(f"{value!r} is not an RFC 3339 date-time")
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        return True

    return checker


@dataclass(frozen=True)
class Operation:
    """One operation of the spec.

    :param method: lower-case HTTP method.
    :param template: the templated path.
    :param operation_id: the ``operationId``.
    :param uri: URI of the file holding the operation.
    :param pointer: JSON pointer of the operation in that file.
    :param body: the operation object.
    """

    method: str
    template: str
    operation_id: str
    uri: str
    pointer: str
    body: dict[str, Any]


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


class Spec:
    """The loaded spec: a ``referencing`` registry over its YAML files and its operations.

    :param root: the spec directory.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.base = self.root.as_uri() + "/"
        self.registry: Registry[Any] = Registry(retrieve=self._retrieve)  # type: ignore[call-arg]
        self._validators: dict[str, Draft202012Validator] = {}
        self._checker = _format_checker()
        main = self._load(self.base + "openapi.yaml")
        self.operations: list[Operation] = []
        self._matchers: list[tuple[re.Pattern[str], str, int]] = []
        for template, item in main["paths"].items():
            uri, pointer, path_item = self._follow(self.base + "openapi.yaml", f"/paths/{_escape(template)}",
                                                   item)
            for method in _METHODS:
                if method in path_item:
                    self.operations.append(Operation(method, template, path_item[method].get("operationId", ""),
                                                     uri, f"{pointer}/{method}", path_item[method]))
            regex = re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(template))
            self._matchers.append((re.compile(f"^{regex}$"), template, template.count("{")))
        self._matchers.sort(key=lambda m: m[2])

    @functools.cache  # noqa: B019
    def _load(self, uri: str) -> Any:
        path = Path(unquote(uri.removeprefix("file://")))
        contents = yaml.safe_load(path.read_text())
        relative = path.relative_to(self.root).as_posix()
        for name in SPEC_BUGS.get(relative, ()):
            schema = contents[name]
            schema["required"] = [r for r in schema.get("required", []) if r in schema.get("properties", {})]
        return contents

    def _retrieve(self, uri: str) -> Resource[Any]:
        return Resource.from_contents(self._load(uri), default_specification=DRAFT202012)

    def _follow(self, uri: str, pointer: str, node: Any) -> tuple[str, str, Any]:
        while isinstance(node, dict) and "$ref" in node:
            target = urljoin(uri, node["$ref"])
            uri, _, fragment = target.partition("#")
            pointer = fragment
            node = self._load(uri)
            for part in fragment.split("/")[1:]:
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return uri, pointer, node

    def find(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        """Find the operation serving a concrete path.

        :param method: HTTP method.
        :param path: a concrete path such as ``/api/v1/stable/workflow-runs/<uuid>/status``.
        :raises SpecMismatch: when no operation matches.
        """
        path = path.split("?", 1)[0]
        for regex, template, _ in self._matchers:
            match = regex.match(path)
            if not match:
                continue
            names = re.findall(r"\{([^}]+)\}", template)
            for op in self.operations:
                if op.template == template and op.method == method.lower():
                    return op, dict(zip(names, match.groups(), strict=True))
            raise SpecMismatch(f"{method.upper()} is not declared for {template}")
        raise SpecMismatch(f"no path of the spec matches {path}")

    def validator(self, uri: str, pointer: str) -> Draft202012Validator:
        """Return a validator for the schema at ``uri#pointer``.

        :param uri: file URI.
        :param pointer: JSON pointer to a schema.
        """
        key = f"{uri}#{pointer}"
        if key not in self._validators:
            self._validators[key] = Draft202012Validator({"$ref": key}, registry=self.registry,
                                                         format_checker=self._checker)
        return self._validators[key]

    def check(self, uri: str, pointer: str, value: Any, what: str) -> None:
        """Validate ``value`` against the schema at ``uri#pointer``.

        :param uri: file URI.
        :param pointer: JSON pointer to a schema.
        :param value: the instance.
        :param what: a label for the error message.
        :raises SpecMismatch: when it does not validate.
        """
        error = best_match(self.validator(uri, pointer).iter_errors(value))
        if error is not None:
            location = "/".join(str(p) for p in error.absolute_path) or "<root>"
            raise SpecMismatch(f"{what}: at {location}: {error.message}")


def load_spec() -> Spec:
    """Return the loaded spec, or skip the calling test when the spec is not there."""
    return _load_spec(str(spec_dir()))


@functools.lru_cache(maxsize=4)
def _load_spec_cached(root: str) -> Spec:
    return Spec(Path(root))


def _load_spec(root: str) -> Spec:
    if not (Path(root) / "openapi.yaml").is_file():
        pytest.skip(f"Hatchet OpenAPI spec not found at {root}")
    return _load_spec_cached(root)


def _is_echo_message(body: Any) -> bool:
    return isinstance(body, dict) and set(body) == {"message"} and isinstance(body["message"], str)


def validate_response(method: str, path: str, status: int, json_body: Any) -> str:
    """Validate a response body against the operation's declared response and return the ``operationId``.

    :param method: HTTP method of the request.
    :param path: the concrete request path.
    :param status: the response status.
    :param json_body: the decoded JSON body.
    :raises SpecMismatch: when the body does not match (see the module docstring for accepted deviations).
    """
    spec = load_spec()
    op, _ = spec.find(method, path)
    responses = op.body.get("responses", {})
    declared = responses.get(str(status)) or responses.get("default")
    label = f"{method.upper()} {path} -> {status}"
    if status >= 400 and (_is_echo_message(json_body) or (status == 429 and json_body is None)):
        return op.operation_id
    if declared is None:
        if status >= 400:
            spec.check(spec.base + "components/schemas/_index.yaml", "/APIErrors", json_body, label)
            return op.operation_id
        raise SpecMismatch(f"{label}: status {status} is not declared")
    key = str(status) if str(status) in responses else "default"
    uri, pointer, response = spec._follow(op.uri, f"{op.pointer}/responses/{key}", declared)
    media = response.get("content", {}).get("application/json")
    if media is None or "schema" not in media:
        return op.operation_id
    spec.check(uri, f"{pointer}/content/application~1json/schema", json_body, label)
    return op.operation_id


QueryArg = Mapping[str, Any] | Iterable[tuple[str, Any]] | str | None


def _query_dict(query: QueryArg) -> dict[str, list[str]]:
    if query is None:
        return {}
    if isinstance(query, str):
        return parse_qs(query.lstrip("?"), keep_blank_values=True)
    items = query.items() if isinstance(query, Mapping) else query
    out: dict[str, list[str]] = {}
    for key, value in items:
        values = value if isinstance(value, (list, tuple)) else [value]
        out.setdefault(str(key), []).extend(_text(v) for v in values)
    return out


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _coerce(raw: str, schema: Mapping[str, Any], spec: Spec, uri: str) -> Any:
    if "$ref" in schema:
        _, _, schema = spec._follow(uri, "", schema)
    kind = schema.get("type")
    if kind == "boolean":
        if raw not in ("true", "false"):
            raise SpecMismatch(f"{raw!r} is not a boolean")
        return raw == "true"
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            raise SpecMismatch(f"{raw!r} is not an integer") from None
    return raw


def validate_request(method: str, path: str, json_body: Any = None, query: QueryArg = None) -> str:
    """Validate a request (path parameters, query parameters and JSON body); return the ``operationId``.

    Query parameters may be given as a mapping (lists for repeated keys), pairs, or a raw query string.
    Unknown query parameters, missing required ones, and values that do not fit their schema raise.

    :param method: HTTP method.
    :param path: the concrete path (a query string on it is validated too when ``query`` is omitted).
    :param json_body: the decoded JSON body, or ``None`` when there is none.
    :param query: the query parameters.
    :raises SpecMismatch: when the request does not match.
    """
    spec = load_spec()
    if query is None and "?" in path:
        path, query = path.split("?", 1)
    op, path_params = spec.find(method, path)
    label = f"{method.upper()} {path}"
    params = {(p["in"], p["name"]): (i, p) for i, p in enumerate(op.body.get("parameters", []))}
    for name, value in path_params.items():
        index, param = params[("path", name)]
        spec.check(op.uri, f"{op.pointer}/parameters/{index}/schema", unquote(value), f"{label} path {name}")
    values = _query_dict(query)
    for name in values:
        if ("query", name) not in params:
            raise SpecMismatch(f"{label}: unknown query parameter {name!r}")
    for (where, name), (index, param) in params.items():
        if where != "query":
            continue
        pointer = f"{op.pointer}/parameters/{index}/schema"
        if name not in values:
            if param.get("required"):
                raise SpecMismatch(f"{label}: missing required query parameter {name!r}")
            continue
        schema = param["schema"]
        raws = values[name]
        try:
            if schema.get("type") == "array":
                item_schema = schema.get("items", {})
                value: Any = [_coerce(r, item_schema, spec, op.uri) for r in raws]
            else:
                if len(raws) != 1:
                    raise SpecMismatch(f"query parameter {name!r} given {len(raws)} times")
                value = _coerce(raws[0], schema, spec, op.uri)
        except SpecMismatch as exc:
            raise SpecMismatch(f"{label}: query {name}: {exc}") from None
        spec.check(op.uri, pointer, value, f"{label} query {name}")
    request_body = op.body.get("requestBody")
    if request_body is None:
        if json_body is not None:
            raise SpecMismatch(f"{label}: takes no body")
        return op.operation_id
    if json_body is None:
        if request_body.get("required"):
            raise SpecMismatch(f"{label}: a body is required")
        return op.operation_id
    spec.check(op.uri, f"{op.pointer}/requestBody/content/application~1json/schema", json_body, f"{label} body")
    return op.operation_id
