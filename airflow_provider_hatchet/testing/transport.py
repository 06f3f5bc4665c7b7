"""An httpx transport (sync and async) that answers from a simulator in the same process."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httpx

from ._http import SimResponse

if TYPE_CHECKING:
    from .simulator import HatchetSimulator

_DROPPED = "peer closed connection without sending complete message body (simulated drop)"


class SimulatorTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Use with ``httpx.Client(transport=...)`` or ``httpx.AsyncClient(transport=...)``.

    Latency is slept with ``time.sleep`` on the sync path and ``asyncio.sleep`` on the async path; a
    dropped connection raises :class:`httpx.RemoteProtocolError` as a real broken connection does.

    :param simulator: the simulator to answer from.
    """

    def __init__(self, simulator: HatchetSimulator) -> None:
        self.simulator = simulator

    def _answer(self, request: httpx.Request, body: bytes) -> SimResponse:
        url = request.url
        return self.simulator.handle(request.method, url.path, url.query.decode(),
                                     request.headers.get("authorization"), body)

    def _response(self, request: httpx.Request, answer: SimResponse) -> httpx.Response:
        if answer.drop:
            raise httpx.RemoteProtocolError(_DROPPED, request=request)
        return httpx.Response(answer.status, headers=self.simulator.response_headers(), content=answer.body,
                              request=request)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Answer a request synchronously.

        :param request: the request.
        """
        answer = self._answer(request, request.read())
        if answer.delay > 0:
            time.sleep(answer.delay)
        return self._response(request, answer)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer a request asynchronously.

        :param request: the request.
        """
        answer = self._answer(request, await request.aread())
        if answer.delay > 0:
            await asyncio.sleep(answer.delay)
        return self._response(request, answer)
