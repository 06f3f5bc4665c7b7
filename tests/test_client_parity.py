"""The sync and async clients offer the same methods, with the same parameters."""

from __future__ import annotations

import inspect

from airflow_provider_hatchet.client import AsyncHatchetClient, HatchetClient

# The sync client's name for a method the async one spells its own way.
RENAMED = {"close": "aclose"}


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in inspect.getmembers(cls, callable)
            if not name.startswith("_")}


def test_both_clients_offer_the_same_methods() -> None:
    sync, aio = public_methods(HatchetClient), public_methods(AsyncHatchetClient)
    assert sorted(RENAMED.get(name, name) for name in sync) == sorted(aio)


def test_each_method_takes_the_same_parameters_and_the_async_one_awaits() -> None:
    aio = public_methods(AsyncHatchetClient)
    for name, signature in public_methods(HatchetClient).items():
        twin = RENAMED.get(name, name)
        assert list(signature.parameters.values()) == list(aio[twin].parameters.values()), name
        sync_member, aio_member = getattr(HatchetClient, name), getattr(AsyncHatchetClient, twin)
        if sync_member is not aio_member:  # not shared through their common base
            assert inspect.iscoroutinefunction(aio_member) or inspect.isasyncgenfunction(aio_member), twin
