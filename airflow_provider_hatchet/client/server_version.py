"""The Hatchet server's version (``GET /api/v1/version``) and the features the provider sends that older servers
lack.

An older server ignores a query parameter or body field it does not know, without an error: a list filter it
ignores selects more runs than asked. Each :class:`Feature` names the oldest release the Go module proxy serves
that has it (read from Hatchet's source at each tag; docs/hatchet-behaviour.md, "Server versions").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from airflow_provider_hatchet.client.endpoints import Call
from airflow_provider_hatchet.client.errors import HatchetValidationError

VERSION_PATH = "/api/v1/version"
_VERSION = re.compile(r"^v?(\d{1,6})\.(\d{1,6})\.(\d{1,6})(?:[-+][0-9A-Za-z.+-]*)?$")


@dataclass(frozen=True, order=True)
class ServerVersion:
    """A Hatchet release, compared by its numbers.

    :param major: the major number.
    :param minor: the minor number.
    :param patch: the patch number.
    """

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: object) -> ServerVersion | None:
        """Read ``v0.75.0`` (a ``v`` and a pre-release or build suffix are allowed); None for anything else.

        :param text: what the server answered.
        """
        match = _VERSION.match(text) if isinstance(text, str) else None
        return None if match is None else cls(*(int(part) for part in match.groups()))

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class Feature:
    """Something the provider sends that older servers ignore.

    :param what: what it is, for messages.
    :param since: the oldest release known to have it.
    """

    what: str
    since: ServerVersion

    def missing_on(self, version: ServerVersion | None) -> bool:
        """Tell whether a server of this version lacks the feature; an unknown version is taken to have it.

        :param version: the server's version, or None when it could not be read.
        """
        return version is not None and version < self.since


# Absent from v0.94.5, present in v0.95.0: before, the run list ignores both without an error.
IDEMPOTENCY_KEYS_FILTER = Feature("the run list's idempotency_keys filter", ServerVersion(0, 95, 0))
METADATA_AND = Feature("the run list's additional_metadata_operator=AND", ServerVersion(0, 95, 0))
# Absent from v0.75.0, present in v0.78.0 (no release between is served): before, a task's log lines come
# oldest first, of every attempt.
LOG_ORDER_AND_ATTEMPT = Feature("the task log's order_by_direction and attempt", ServerVersion(0, 78, 0))
# Absent from v0.90.0, present in v0.91.0: before, a trigger answers the run's details, about 1 s later.
RETURN_ONLY_ID = Feature("the trigger's return_only_id", ServerVersion(0, 91, 0))


def refuse_without(feature: Feature, version: ServerVersion | None, field: str) -> None:
    """Refuse a filter the server would ignore, which would select more than asked.

    :param feature: the feature the filter needs.
    :param version: the server's version.
    :param field: the argument that asked for it.
    :raises HatchetValidationError: when the server lacks the feature.
    """
    if feature.missing_on(version):
        raise HatchetValidationError(
            field, f"the Hatchet server is {version}, which ignores {feature.what} (added in {feature.since}): "
                   "it would select runs the filter excludes, so nothing was sent; upgrade Hatchet or filter "
                   "otherwise")


def _version_text(body: Any) -> str:
    version = body.get("version") if isinstance(body, dict) else None
    if not isinstance(version, str):
        raise TypeError("no version string")  # the client reports a malformed answer
    return version


def server_version() -> Call[str]:
    """``GET /api/v1/version``: the server's release as it reports it (``v0.75.0``); no token needed.

    Read it with :meth:`ServerVersion.parse`.
    """
    return Call("GET", VERSION_PATH, _version_text)
