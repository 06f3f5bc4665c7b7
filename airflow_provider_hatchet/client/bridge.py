"""The one way synchronous code (a task in the worker, a poking sensor, the sync client) runs async code.

Each process has one event loop for it, in a daemon thread (a client never closed cannot hold the interpreter
open), served through an anyio blocking portal; it works whether or not the calling thread already runs a loop.
The loop is started on first use, and again in a child forked after it started (Airflow's executors fork after
parsing DAGs): the parent's loop thread does not exist there.

A :class:`Bridge` is one user of that loop: it keeps one async client from call to call and closes it when the
``with`` block ends, also when the caller is interrupted mid-call (a task's timeout, a kill): the call in flight
is cancelled, and its cleanup (cancelling runs at a deadline) finishes before the client closes.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

from airflow_provider_hatchet.client.aio import AsyncHatchetClient

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long closing waits for an interrupted call's cleanup before it closes the client anyway.
CLOSE_BUDGET = 30.0

_lock = threading.Lock()
_portal: tuple[int, BlockingPortal] | None = None


def _forget_in_child() -> None:
    # The lock may have been held by another thread at the fork, and the loop's thread is not copied.
    global _lock, _portal
    _lock = threading.Lock()
    _portal = None


os.register_at_fork(after_in_child=_forget_in_child)


def _serve(started: Future[BlockingPortal]) -> None:
    async def serve() -> None:
        async with BlockingPortal() as portal:
            started.set_result(portal)
            await portal.sleep_until_stopped()

    anyio.run(serve)


def process_portal() -> BlockingPortal:
    """The process's event loop for synchronous callers, started on first use (and again in a forked child)."""
    global _portal
    with _lock:
        if _portal is None or _portal[0] != os.getpid():
            started: Future[BlockingPortal] = Future()
            threading.Thread(target=_serve, args=(started,), name="hatchet-bridge", daemon=True).start()
            _portal = (os.getpid(), started.result())
        return _portal[1]


class Bridge:
    """Run coroutines from synchronous code on the process's loop, with one async client kept until closed.

    :param new_client: builds the client, in the loop, the first time a call asks for it (the hook's
        ``async_client_factory``); None for calls that need no client.
    :param client: a client already built, kept as if the first call had built it.
    """

    def __init__(self, new_client: Callable[[], AsyncHatchetClient] | None = None, *,
                 client: AsyncHatchetClient | None = None) -> None:
        self.new_client = new_client
        self._client = client
        self._pid = os.getpid()
        self._tasks: set[Future[Any]] = set()
        self._busy = 0
        self._idle: anyio.Event | None = None

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def run(self, factory: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine in the loop and return its result.

        :param factory: makes the awaitable (called in the loop).
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
        """Close the kept client, once the calls in flight have ended (at most ``CLOSE_BUDGET`` s); a later call
        builds a new one."""
        self._forget_parent()
        if self._client is None and not self._tasks:
            return
        try:
            process_portal().call(self._aclose)
        except Exception:  # closing is best effort
            log.debug("Closing the bridge's client failed", exc_info=True)

    def _forget_parent(self) -> None:
        # In a forked child the parent's client and calls belong to a loop that does not run here: dropped, not
        # closed (closing would touch the parent's connections).
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._client, self._tasks, self._busy, self._idle = None, set(), 0, None

    def _call(self, factory: Callable[[], Awaitable[T]]) -> T:
        self._forget_parent()
        future = process_portal().start_task_soon(self._tracked, factory)
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)
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
            for task in list(self._tasks):  # past the budget: cancelled rather than waited for
                task.cancel()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        run_events = sys.modules.get("airflow_provider_hatchet.client.grpc.run_events")
        if run_events is not None:  # only if some wait listened: importing it would load protobuf
            await run_events.close_idle_run_events()
