"""The one way synchronous code (a task in the worker, a poking sensor) runs async code: an anyio blocking portal.

The portal is an event loop in a thread of its own, so it works whether or not the calling thread already runs a
loop. A :class:`Bridge` keeps one async client in that loop from call to call, and closes both when the ``with``
block ends, also when the caller is interrupted mid-call (a task's timeout, a kill): the call in flight is
cancelled, and its cleanup (cancelling runs at a deadline) finishes before the client closes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TypeVar

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from airflow_provider_hatchet.client.aio import AsyncHatchetClient

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long closing waits for an interrupted call's cleanup before it closes the client anyway.
CLOSE_BUDGET = 30.0


class Bridge:
    """Run coroutines from synchronous code on one event loop, with one async client kept until the block ends.

    :param new_client: builds the client, in the bridge's loop, the first time a call asks for it (the hook's
        ``async_client_factory``); None for calls that need no client.
    """

    def __init__(self, new_client: Callable[[], AsyncHatchetClient] | None = None) -> None:
        self.new_client = new_client
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._client: AsyncHatchetClient | None = None
        self._busy = 0
        self._idle: anyio.Event | None = None

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def run(self, factory: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine in the bridge's loop and return its result.

        :param factory: makes the awaitable (called in the bridge's loop).
        """
        return self._call(factory)

    def call(self, func: Callable[[AsyncHatchetClient], Awaitable[T]]) -> T:
        """Run a coroutine on the kept client (built by the first call) and return its result.

        :param func: takes the client, returns the awaitable.
        """

        async def with_client() -> T:
            if self._client is None:
                if self.new_client is None:
                    raise RuntimeError("this bridge was made without a client")
                self._client = self.new_client()
            return await func(self._client)

        return self._call(with_client)

    def close(self) -> None:
        """Close the client and stop the loop's thread; a later call starts them again."""
        portal_cm, portal = self._portal_cm, self._portal
        self._portal_cm = self._portal = None
        if portal_cm is None or portal is None:
            return
        try:
            portal.call(self._aclose)
        except Exception:  # closing is best effort: the loop stops below either way
            log.debug("Closing the bridge's client failed", exc_info=True)
        finally:
            # A call still running past the close budget is cancelled rather than waited for.
            portal.call(portal.stop, True)
            portal_cm.__exit__(None, None, None)

    def _open(self) -> BlockingPortal:
        if self._portal is None:
            portal_cm = start_blocking_portal()
            self._portal = portal_cm.__enter__()
            self._portal_cm = portal_cm
        return self._portal

    def _call(self, factory: Callable[[], Awaitable[T]]) -> T:
        future = self._open().start_task_soon(self._tracked, factory)
        try:
            return future.result()
        except BaseException:
            # Interrupted here (a timeout, a kill): the task is cancelled; close() lets its cleanup finish.
            future.cancel()
            raise

    async def _tracked(self, factory: Callable[[], Awaitable[T]]) -> T:
        self._busy += 1
        try:
            return await factory()
        finally:
            self._busy -= 1
            if not self._busy and self._idle is not None:
                self._idle.set()

    async def _aclose(self) -> None:
        if self._busy:
            self._idle = anyio.Event()
            with anyio.move_on_after(CLOSE_BUDGET):
                await self._idle.wait()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
