"""Acting on many runs: select them by a :class:`RunFilter`, cancel or replay them in chunks, and wait out the
read lag after a replay in place.

Cancel and replay by filter are done by listing the runs and sending their ids: the server's own filter ORs its
metadata pairs (so "this DAG run" would also hit other DAG runs sharing its DAG id), knows no workflow names,
idempotency keys or event ids, and stops at 20,000 runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from airflow_provider_hatchet.client.errors import HatchetNotFoundError, HatchetRetryableError
from airflow_provider_hatchet.client.models import RunDetails, RunStatus, RunSummary
from airflow_provider_hatchet.client.run_filter import RunFilter
from airflow_provider_hatchet.client.sync import HatchetClient

# Ids per cancel or replay request, as hatchet-sdk sends them.
ACTION_CHUNK = 500
# Seconds a replayed run may keep reading as before the replay (FAILED, with its old retry count).
REPLAY_SETTLE_TIMEOUT = 30.0
REPLAY_SETTLE_POLL = 0.25


def select_runs(client: HatchetClient, run_filter: RunFilter, workflow_ids: Sequence[str] = ()) -> Iterator[RunSummary]:
    """Yield every run the filter selects, newest first; metadata pairs are ANDed and checked on each row.

    :param client: the sync client.
    :param run_filter: the filter.
    :param workflow_ids: the ids of ``run_filter.workflow_names``, resolved by the caller.
    """
    pairs = dict(run_filter.additional_metadata)
    rows = client.iter_runs(
        since=run_filter.since, until=run_filter.until, statuses=run_filter.statuses or (),
        additional_metadata=pairs or None, workflow_ids=workflow_ids, idempotency_keys=run_filter.idempotency_keys,
        triggering_event_external_id=run_filter.triggering_event_external_id,
    )
    seen: set[str] = set()
    for row in rows:
        # A page boundary can show a run twice while runs are created; an old server may drop a pair.
        if row.id not in seen and row.has_metadata(pairs):
            seen.add(row.id)
            yield row


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
    run_id: str,
    retry_count_before: int,
    *,
    timeout: float = REPLAY_SETTLE_TIMEOUT,
    poll: float = REPLAY_SETTLE_POLL,
    sleep: Callable[[float], None] = time.sleep,
) -> RunDetails | None:
    """Wait until a replayed run shows the replay: its status left FAILED or a task's retry count rose.

    Right after a replay, reads may still show the run as it was. Returns the first details that show the replay,
    or None when ``timeout`` passed without (the caller then waits on the run all the same).

    :param read: the client's ``get_run``.
    :param run_id: the replayed run.
    :param retry_count_before: :meth:`RunDetails.retry_count` before the replay.
    :param timeout: seconds to wait at most.
    :param poll: seconds between reads.
    :param sleep: how to wait (tests pass a fake clock's).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            details = read(run_id)
            if details.status is not RunStatus.FAILED or details.retry_count() > retry_count_before:
                return details
        except (HatchetNotFoundError, HatchetRetryableError):
            pass
        if time.monotonic() >= deadline:
            return None
        sleep(poll)
