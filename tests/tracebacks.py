"""What a traceback shows of an exception."""

from __future__ import annotations


def chained(exc: BaseException | None) -> list[BaseException]:
    """An exception and everything it was raised from or during, as a traceback prints them.

    :param exc: the exception.
    """
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen
