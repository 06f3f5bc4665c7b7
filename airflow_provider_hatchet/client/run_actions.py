"""Acting on many runs: select them by a :class:`RunFilter`, cancel or replay them in chunks, and wait out the
read lag after a replay in place.

Cancel and replay by filter are done by listing the runs and sending their ids: the server's own filter ORs its
metadata pairs (so "this DAG run" would also hit other DAG runs sharing its DAG id), knows no workflow names,
idempotency keys or event ids, and stops at 20,000 runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from airflow_provider_hatchet.client import endpoints
from airflow_provider_hatchet.client.endpoints import RUN_VISIBILITY_WINDOW
from airflow_provider_hatchet.client.errors import (
    HatchetAuthError,
    HatchetMalformedResponseError,
    HatchetNotFoundError,
    HatchetRetryableError,
    HatchetValidationError,
)
from airflow_provider_hatchet.client.models import RunDetails, RunStatus, RunSummary
from airflow_provider_hatchet.client.run_filter import RunFilter
from airflow_provider_hatchet.client.sync import HatchetClient
from airflow_provider_hatchet.client.validation import check_run_id

# Ids per cancel or replay request, as hatchet-sdk sends them.
ACTION_CHUNK = 500
# Seconds a replayed run may keep reading as before the replay (FAILED, with its old retry count).
REPLAY_SETTLE_TIMEOUT = 30.0
REPLAY_SETTLE_POLL = 0.25
# Seconds before a run id that read 404 right after a cancel or replay is read again: it may be a run created a
# moment ago, not yet readable.
UNSEEN_GRACE = RUN_VISIBILITY_WINDOW
RUNS_PATH = "/api/v1/stable/tenants/{tenant}/workflow-runs"
# Ids a message names at most (10,000 unknown ids would make a 370 KB line).
SHOWN_IDS = 100
# Runs counted past ``max_runs`` before a refusal gives up counting and says "at least".
COUNT_CEILING = 100_000


def select_runs(client: HatchetClient, run_filter: RunFilter, workflow_ids: Sequence[str] = ()) -> Iterator[RunSummary]:
    """Yield every run the filter selects, newest first; metadata pairs are ANDed and checked on each row.

    :param client: the sync client.
    :param run_filter: the filter.
    :param workflow_ids: the ids of ``run_filter.workflow_names``, resolved by the caller.
    :raises HatchetMalformedResponseError: for a row whose id is not a run id (a UUID).
    """
    pairs = dict(run_filter.additional_metadata)
    rows = client.iter_rows(endpoints.runs(
        since=run_filter.since, until=run_filter.until, statuses=run_filter.statuses or (),
        additional_metadata=pairs or None, workflow_ids=workflow_ids, idempotency_keys=run_filter.idempotency_keys,
        triggering_event_external_id=run_filter.triggering_event_external_id,
    ))
    seen: set[str] = set()
    for row in rows:
        try:
            check_run_id(row.id)
        except HatchetValidationError:
            # The ids are logged and sent back to act on: one that is not a run id could forge log lines.
            raise HatchetMalformedResponseError(f"a row's id {row.id[:60]!r} is not a run id", method="GET",
                                                path=RUNS_PATH) from None
        # A page boundary can show a run twice while runs are created; an old server may drop a pair.
        if row.id not in seen and row.has_metadata(pairs):
            seen.add(row.id)
            yield row


def shown_ids(ids: Sequence[str], limit: int = SHOWN_IDS) -> str:
    """The ids joined for a message: the first ``limit``, then how many more.

    :param ids: the ids.
    :param limit: the most ids named.
    """
    more = len(ids) - limit
    return ", ".join(ids[:limit]) + (f", and {more:,} more" if more > 0 else "")


def at_most(rows: Iterator[RunSummary], max_runs: int) -> list[RunSummary]:
    """The selected runs, or a refusal naming how many match when more than ``max_runs`` do; nothing is acted on
    before this returns.

    :param rows: the selection, e.g. :func:`select_runs`.
    :param max_runs: the most runs allowed.
    :raises HatchetValidationError: on field ``max_runs``, naming the count (exact up to ``COUNT_CEILING``).
    """
    selected = list(islice(rows, max_runs + 1))
    if len(selected) <= max_runs:
        return selected
    count = len(selected) + sum(1 for _ in islice(rows, COUNT_CEILING))
    how_many = f"at least {count:,}" if count > max_runs + COUNT_CEILING else f"{count:,}"
    raise HatchetValidationError("max_runs", f"the filter selects {how_many} runs, more than max_runs={max_runs:,}; "
                                 "nothing was done: narrow the filter, or raise max_runs if that many is meant")


def _unreadable(read: Callable[[str], Any], run_ids: Iterable[str]) -> tuple[list[str], list[str]]:
    absent, foreign = [], []
    for run_id in run_ids:
        try:
            read(run_id)
        except HatchetNotFoundError:
            absent.append(run_id)
        except HatchetAuthError:  # the token may read the tenant, so this is another tenant's run
            foreign.append(run_id)
    return absent, foreign


def not_found(read: Callable[[str], Any], run_ids: Iterable[str], *, grace: float | None = None,
              sleep: Callable[[float], None] | None = None) -> list[str]:
    """The runs the tenant does not have, in the order given: a read answers 403 (another tenant's run) or 404,
    still after ``grace`` seconds (a run created a moment ago may read 404 for a while).

    :param read: the client's ``get_run_status`` (or ``get_run``).
    :param run_ids: the run ids.
    :param grace: seconds before a 404 is read again; ``UNSEEN_GRACE`` by default.
    :param sleep: how to wait; ``time.sleep`` by default.
    """
    ids = list(run_ids)
    absent, foreign = _unreadable(read, ids)
    wait = UNSEEN_GRACE if grace is None else grace
    if absent and wait > 0:
        (sleep or time.sleep)(wait)
        absent, more = _unreadable(read, absent)
        foreign += more
    gone = {*absent, *foreign}
    return [run_id for run_id in ids if run_id in gone]


def not_replayed(read: Callable[[str], RunDetails], run_ids: Iterable[str], echoed: Iterable[str]) -> list[str]:
    """The runs a replay by ids did not act on. Hatchet answers a replay with the ids of the tasks it replayed and
    leaves out ids the tenant does not have; a one-task run's task id is the run id, so only the other runs are
    read, to find their tasks' ids in the answer.

    :param read: the client's ``get_run``.
    :param run_ids: the run ids sent.
    :param echoed: the ids Hatchet answered.
    """
    answered = set(echoed)
    missing = []
    for run_id in run_ids:
        if run_id in answered:
            continue
        try:
            details = read(run_id)
        except (HatchetNotFoundError, HatchetAuthError):
            missing.append(run_id)
            continue
        if not any(task.task_external_id in answered for task in details.tasks):
            missing.append(run_id)
    return missing


def in_chunks(send: Callable[[list[str]], list[str]], run_ids: Iterable[str], size: int = ACTION_CHUNK) -> list[str]:
    """Send ids to a cancel or replay call ``size`` at a time; return what the server echoed, in order.

    :param send: the client's ``cancel_runs`` or ``replay_runs``.
    :param run_ids: the run ids.
    :param size: ids per request.
    """
    ids = list(dict.fromkeys(run_ids))
    echoed: list[str] = []
    for start in range(0, len(ids), size):
        echoed += send(ids[start:start + size])
    return echoed


def settle_after_replay(
    read: Callable[[str], RunDetails],
    retry_counts: Mapping[str, int],
    *,
    timeout: float = REPLAY_SETTLE_TIMEOUT,
    poll: float = REPLAY_SETTLE_POLL,
    sleep: Callable[[float], None] | None = None,
) -> list[str]:
    """Wait until each replayed run shows the replay: its status left FAILED or a task's retry count rose.

    Right after a replay, reads may still show a run as it was. The runs are read in rounds until each shows the
    replay or ``timeout`` passed, one bound for them all (not one per run). Returns the runs that still read as
    before, in the order given (the caller then waits on them all the same).

    :param read: the client's ``get_run``.
    :param retry_counts: run id -> its :meth:`RunDetails.retry_count` before the replay.
    :param timeout: seconds to wait at most, for all the runs together.
    :param poll: seconds between rounds.
    :param sleep: how to wait; ``time.sleep`` by default (tests pass a fake clock's).
    """
    deadline = time.monotonic() + timeout
    pending = dict(retry_counts)
    while True:
        for run_id, before in list(pending.items()):
            try:
                details = read(run_id)
            except (HatchetNotFoundError, HatchetRetryableError):
                continue
            if details.status is not RunStatus.FAILED or details.retry_count() > before:
                del pending[run_id]
        if not pending or time.monotonic() >= deadline:
            return list(pending)
        (sleep or time.sleep)(poll)
