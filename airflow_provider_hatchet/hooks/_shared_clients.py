"""The async clients an event loop shares: one per connection contents, however many triggers start at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_hatchet.client import AsyncHatchetClient
    from airflow_provider_hatchet.client.config import ClientConfig


class LoopClients:
    """The async clients of one event loop, keyed by the resolved client settings.

    The settings (a frozen :class:`ClientConfig`, whose ``repr`` leaves the token out) are the key, so a
    connection whose token, host or options changed gets a new client. The client it replaces is closed as
    soon as no lease holds it. Looking up and filling the cache happen with no ``await`` in between, so
    triggers starting together share one client.
    """

    def __init__(self) -> None:
        self._clients: dict[ClientConfig, AsyncHatchetClient] = {}
        self._current: dict[Hashable, ClientConfig] = {}
        self._leases: Counter[AsyncHatchetClient] = Counter()
        self._retired: set[AsyncHatchetClient] = set()

    def get(
        self, source: Hashable, config: ClientConfig, build: Callable[[ClientConfig], AsyncHatchetClient]
    ) -> AsyncHatchetClient:
        """The client for ``config``, built once; ``source`` (the connection) now reads as ``config``.

        :param source: what the settings were read from, e.g. the connection id and namespace.
        :param config: the settings as read now.
        :param build: makes a client for settings not seen yet.
        """
        client = self._clients.get(config)
        if client is None:
            client = self._clients[config] = build(config)
        previous = self._current.get(source)
        self._current[source] = config
        if previous is not None and previous != config and previous not in self._current.values():
            old = self._clients.pop(previous, None)
            if old is not None:
                self._retired.add(old)
        return client

    async def close_unused(self) -> None:
        """Close the replaced clients that no lease holds."""
        unused = [c for c in self._retired if not self._leases[c]]
        self._retired.difference_update(unused)
        for client in unused:
            await client.aclose()

    @asynccontextmanager
    async def lease(self, client: AsyncHatchetClient) -> AsyncIterator[AsyncHatchetClient]:
        """Hold ``client`` open while the block runs, even if its connection changes meanwhile.

        :param client: a client :meth:`get` returned.
        """
        self._leases[client] += 1
        try:
            await self.close_unused()
            yield client
        finally:
            self._leases[client] -= 1
            if not self._leases[client]:
                del self._leases[client]
                await self.close_unused()

    async def aclose(self) -> None:
        """Close every client, in use or not (the loop is ending)."""
        clients = [*self._clients.values(), *self._retired]
        self._clients.clear()
        self._current.clear()
        self._retired.clear()
        for client in clients:
            await client.aclose()
