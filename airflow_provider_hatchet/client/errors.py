"""The exception tree of the Hatchet REST client, rooted at :class:`HatchetError`."""

from __future__ import annotations


class HatchetError(Exception):
    """Base class of every error the Hatchet client raises."""


class HatchetConfigError(HatchetError, ValueError):
    """The client configuration (token, server URL, tenant) is unusable."""


class HatchetValidationError(HatchetError, ValueError):
    """A request was rejected locally before anything was sent.

    :param field: the name of the offending field, e.g. ``input`` or ``workflow_runs[3].priority``.
    :param problem: what is wrong with it.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class HatchetRetryableError(HatchetError):
    """Marker for failures that may succeed when tried again (429, 5xx, transport errors)."""


class HatchetTransportError(HatchetRetryableError):
    """The request failed below HTTP: connection refused, timeout, dropped connection.

    :param message: what went wrong.
    :param maybe_sent: whether the request may have reached the server before the failure.
    """

    def __init__(self, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class HatchetAPIError(HatchetError):
    """The server answered with an error status.

    :param status_code: the HTTP status.
    :param message: the server's message(s), joined.
    :param method: the request method.
    :param path: the request path (never the query string or headers).
    """

    def __init__(self, status_code: int, message: str, *, method: str = "", path: str = "") -> None:
        where = f" ({method} {path})" if method else ""
        super().__init__(f"Hatchet API returned {status_code}{where}: {message}")
        self.status_code = status_code
        self.message = message
        self.method = method
        self.path = path


class HatchetAuthError(HatchetAPIError):
    """403: the token is invalid, expired, revoked, for another server, or not for this tenant."""


class HatchetNotFoundError(HatchetAPIError):
    """404: the run, workflow or tenant does not exist (or a just-triggered run is not visible yet)."""


class HatchetBadRequestError(HatchetAPIError):
    """400: the server rejected the request.

    :param descriptions: the ``errors[].description`` entries of the server's ``APIErrors`` body.
    """

    def __init__(self, status_code: int, message: str, *, descriptions: list[str], method: str = "",
                 path: str = "") -> None:
        super().__init__(status_code, message, method=method, path=path)
        self.descriptions = descriptions


class HatchetRateLimitError(HatchetAPIError, HatchetRetryableError):
    """429: too many requests."""


class HatchetServerError(HatchetAPIError, HatchetRetryableError):
    """5xx: the server failed. For a trigger, the run may exist anyway."""


class HatchetUnexpectedResponseError(HatchetAPIError, HatchetConfigError):
    """A redirect, or a success that is not JSON: the server URL points somewhere other than Hatchet's API.

    Not retried: asking again gets the same answer. Typical causes are a host pointing at the dashboard or
    a proxy's login page, and an ``http://`` URL the server redirects to ``https://``.

    :param location: the redirect's ``Location`` header, if any.
    """

    def __init__(self, status_code: int, message: str, *, method: str = "", path: str = "",
                 location: str | None = None) -> None:
        super().__init__(status_code, message, method=method, path=path)
        self.location = location


class HatchetMalformedResponseError(HatchetError):
    """A 2xx JSON answer without the expected shape. For a trigger, the run may have been created.

    :param message: what is wrong; never the body itself.
    :param method: the request method.
    :param path: the request path.
    """

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(f"Hatchet's answer to {method} {path} is not what the API returns: {message}")
        self.method = method
        self.path = path


class HatchetAlreadyExistsError(HatchetAPIError):
    """409 (gRPC ALREADY_EXISTS): a run collides with another on its workflow's idempotency key.

    A bulk trigger still creates its other runs (Hatchet v0.105.0).

    :param existing_run_ids: the ids of the runs that hold the keys, as far as the server names them.
    """

    def __init__(self, status_code: int, message: str, *, existing_run_ids: list[str] | None = None,
                 method: str = "", path: str = "") -> None:
        super().__init__(status_code, message, method=method, path=path)
        self.existing_run_ids = list(existing_run_ids or [])

    @property
    def existing_run_id(self) -> str | None:
        """The first existing run's id, if named."""
        return self.existing_run_ids[0] if self.existing_run_ids else None
