"""Which Hatchet release the simulator answers as, and what older releases ignore.

An older server ignores a query parameter or a body field it does not know, without an error; the simulator
told to be that release (``HatchetSimulator(version="v0.75.0")``) drops them the same way. The releases are the
oldest the Go module proxy serves with each one (docs/hatchet-behaviour.md, "Server versions").
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

# The release the simulator is proven against (tests/real/real_answers.json).
SIM_VERSION = "v0.105.0"
# Route kind -> (the first release that reads them, the query parameters older ones ignore).
IGNORED_PARAMS: dict[str, tuple[tuple[int, int, int], tuple[str, ...]]] = {
    "list": ((0, 95, 0), ("idempotency_keys", "additional_metadata_operator")),
    "logs": ((0, 78, 0), ("attempt", "order_by_direction")),
}
# The trigger's ``return_only_id`` is read from this release on.
RETURN_ONLY_ID_SINCE = (0, 91, 0)
# A workflow's idempotency key (hatchet-sdk's ``key_expression``) is enforced on v0.105.0, not on v0.90.0 (which
# creates every run: a key missing, not a string or already held alike); assumed from v0.95.0, the first release
# whose run list knows a run's key.
IDEMPOTENCY_KEY_SINCE = (0, 95, 0)
# Before this release a trigger naming a workflow the tenant does not have is refused at once (REST 400, gRPC
# INVALID_ARGUMENT ``workflow names not found: <names>``, the whole bulk): seen on v0.75.0; v0.90.0 answers as
# v0.105.0 (a phantom id, or a 500 after 10 s).
UNKNOWN_NAMES_REFUSED_BEFORE = (0, 90, 0)
# Before this release the finished-run stream also remembers an id that is not a UUID but starts with ``id-``; its
# next poll parses it and the engine panics (seen on v0.75.0): every stream ends. From v0.78.0 such an id is ignored.
CRASHING_RUN_IDS_BEFORE = (0, 78, 0)
CRASHING_RUN_ID_PREFIX = "id-"


def names_not_found(version: str, names: list[str], known: Any) -> str | None:
    """The error an older release gives a trigger naming workflows the tenant does not have, or ``None``.

    :param version: the simulated version.
    :param names: the workflow names of the trigger (a bulk's, in order).
    :param known: the tenant's workflows by name.
    """
    if not before(version, UNKNOWN_NAMES_REFUSED_BEFORE):
        return None
    missing = list(dict.fromkeys(name for name in names if name not in known))
    return f"workflow names not found: {', '.join(missing)}" if missing else None
_RELEASE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def release(version: str) -> tuple[int, int, int]:
    """The numbers of a version string such as ``v0.75.0``.

    :param version: the version.
    :raises ValueError: for a string that does not start with three numbers.
    """
    match = _RELEASE.match(version)
    if match is None:
        raise ValueError(f"not a Hatchet release: {version!r} (expected e.g. v0.75.0)")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def before(version: str, since: tuple[int, int, int]) -> bool:
    """Tell whether ``version`` is older than the release ``since``.

    :param version: the simulated version.
    :param since: the release that brought a feature.
    """
    return release(version) < since


def known_query(version: str, kind: str, query: str) -> str:
    """The query string as a server of ``version`` reads it: without the parameters it does not know.

    :param version: the simulated version.
    :param kind: the route kind.
    :param query: the raw query string.
    """
    since, names = IGNORED_PARAMS.get(kind, ((0, 0, 0), ()))
    if not names or not before(version, since):
        return query
    return urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in names])
