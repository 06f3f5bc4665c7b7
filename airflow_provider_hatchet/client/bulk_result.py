"""What the bulk trigger engine takes and gives back: items, progress, the result and its error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from airflow_provider_hatchet.client.errors import HatchetError
from airflow_provider_hatchet.client.trigger_request import TriggerRequest

# How an item got its run id, one byte per item in :attr:`BulkResult.origins`.
NOT_TRIGGERED = 0
CREATED = 1
RECOVERED = 2
REUSED = 3

_SHOWN_GROUPS = 5
_SHOWN_INDEXES = 10


# One run of a batch, already checked and namespaced by the caller; the batch metadata and index are added to its
# metadata when it is sent.
BulkItem = TriggerRequest


@dataclass(frozen=True, slots=True)
class BulkProgress:
    """A snapshot of a running batch, passed to the progress callback.

    :param phase: ``trigger`` (first pass), ``resume`` (reading existing runs), ``lookup`` (resolving
        ambiguous failures), ``retry`` (sending again what is known not to exist) or ``done``.
    :param total: items in the batch.
    :param created: items that have a run id (created, recovered or reused).
    :param failed: items that failed for good so far.
    :param unresolved: items whose trigger failed ambiguously, waiting for a lookup.
    :param elapsed: seconds since the batch started.
    """

    phase: str
    total: int
    created: int
    failed: int
    unresolved: int
    elapsed: float

    @property
    def settled(self) -> int:
        """Items whose outcome is known: created or failed."""
        return self.created + self.failed

    def __str__(self) -> str:
        pct = 100.0 * self.settled / self.total if self.total else 100.0
        rate = self.created / self.elapsed if self.elapsed > 0 else 0.0
        text = (f"{self.phase}: {self.created}/{self.total} runs ({pct:.0f}% settled), {self.failed} failed, "
                f"{self.elapsed:.1f}s, {rate:.0f} runs/s")
        return text + (f", {self.unresolved} to look up" if self.unresolved else "")


@dataclass(frozen=True)
class BulkResult:
    """The outcome of a batch.

    :param run_ids: the run id of each item, in item order; None where the item failed.
    :param failed: the last error of each failed item, by index.
    :param origins: one byte per item: 0 not triggered, 1 created, 2 recovered (the trigger failed
        ambiguously and a lookup found the run), 3 reused (an existing run found on resume).
    :param requests: trigger requests sent.
    :param lookups: list queries made (pages).
    :param elapsed: seconds the batch took.
    """

    run_ids: list[str | None]
    failed: dict[int, str]
    origins: bytes
    requests: int = 0
    lookups: int = 0
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every item has a run."""
        return not self.failed

    @property
    def created(self) -> dict[int, str]:
        """The run id of every item that has one, by index."""
        return {i: run_id for i, run_id in enumerate(self.run_ids) if run_id is not None}

    @property
    def reused(self) -> list[int]:
        """The indexes whose run already existed (resume)."""
        return [i for i, origin in enumerate(self.origins) if origin == REUSED]

    @property
    def recovered(self) -> list[int]:
        """The indexes whose trigger failed ambiguously but whose run was found."""
        return [i for i, origin in enumerate(self.origins) if origin == RECOVERED]

    def raise_for_failures(self) -> None:
        """Raise :class:`HatchetBulkTriggerError` if any item failed."""
        if self.failed:
            raise HatchetBulkTriggerError(self)


def _ranges(indexes: list[int]) -> str:
    parts: list[str] = []
    start = prev = indexes[0]
    for i in indexes[1:]:
        if i != prev + 1:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = i
        prev = i
    parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ", ".join(parts)


def describe_failures(failed: Mapping[int, str], total: int) -> str:
    """Summarize failures for a message: grouped by error, a few indexes each, with counts.

    :param failed: the last error of each failed item, by index.
    :param total: items in the batch.
    """
    groups: dict[str, list[int]] = {}
    for index in sorted(failed):
        groups.setdefault(failed[index], []).append(index)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))
    lines = [f"{len(failed)} of {total} runs could not be triggered ({total - len(failed)} created)."]
    for error, indexes in ordered[:_SHOWN_GROUPS]:
        shown = _ranges(indexes[:_SHOWN_INDEXES])
        more = f" and {len(indexes) - _SHOWN_INDEXES} more" if len(indexes) > _SHOWN_INDEXES else ""
        lines.append(f"  {len(indexes)} x {error}: indexes {shown}{more}")
    if len(ordered) > _SHOWN_GROUPS:
        rest = sum(len(indexes) for _, indexes in ordered[_SHOWN_GROUPS:])
        lines.append(f"  {rest} more with {len(ordered) - _SHOWN_GROUPS} other errors")
    return "\n".join(lines)


class HatchetBulkTriggerError(HatchetError):
    """Some runs of a batch could not be triggered; the others were.

    :param result: the batch result.
    """

    def __init__(self, result: BulkResult) -> None:
        super().__init__(describe_failures(result.failed, len(result.run_ids)))
        self.result = result
        self.failed: dict[int, str] = dict(result.failed)
        self.created: dict[int, str] = result.created
