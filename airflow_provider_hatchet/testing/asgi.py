"""A raw ASGI application serving a simulator (fast enough for thousands of requests per second)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from ._http import JSON_HEADERS

if TYPE_CHECKING:
    from .simulator import HatchetSimulator

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class DroppedConnection(Exception):
    """Raised after the response started so that the server aborts the connection."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedConnection)


def silence_dropped_connection_logs() -> None:
    """Keep uvicorn from logging a traceback for every simulated drop."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


def make_asgi_app(sim: HatchetSimulator) -> ASGIApp:
    """Build the ASGI application.

    :param sim: the simulator to serve.
    """
    headers = [list(h) for h in JSON_HEADERS]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        more = True
        while more:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        authorization = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value.decode("latin-1")
                break
        answer = sim.handle(scope["method"], scope["path"], scope["query_string"].decode("latin-1"),
                            authorization, b"".join(chunks))
        if answer.delay > 0:
            await asyncio.sleep(answer.delay)
        if answer.drop:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            raise DroppedConnection("simulated connection drop")
        await send({"type": "http.response.start", "status": answer.status, "headers": sim.response_headers()})
        await send({"type": "http.response.body", "body": answer.body})

    return app
