"""Retry from failure: on a retry, replay the earlier failed runs in place instead of triggering new ones."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from airflow_provider_hatchet.client import REPLAY_SETTLE_TIMEOUT, RunStatus, TriggerRequest, endpoints
from airflow_provider_hatchet.hooks.hatchet import HatchetHook

CHANGED_INPUT = "a replay cannot change the input, so a new run is triggered"


def same_input(earlier: Any, rendered: Mapping[str, Any]) -> bool:
    """Whether two inputs are the same JSON object (key order aside).

    :param earlier: the input the earlier run was triggered with (``RunDetails.trigger_input``).
    :param rendered: this try's rendered input.
    """
    return json.dumps(earlier, sort_keys=True, default=str) == json.dumps(rendered, sort_keys=True, default=str)


def _replay(hook: HatchetHook, log: Any, retry_counts: dict[str, int]) -> None:
    for run_id in hook.replay_in_place(retry_counts):
        log.warning("After %.0f s Hatchet still shows run %s as before the replay; waiting on it all the same.",
                    REPLAY_SETTLE_TIMEOUT, run_id)


def replay_if_unchanged(hook: HatchetHook, log: Any, run_id: str, rendered_input: Mapping[str, Any]) -> bool:
    """Replay a failed run in place if its input is this try's; return whether it was replayed.

    A replay re-runs the run with the input it was triggered with, so when the rendered input changed since (an
    upstream XCom, a template), the caller triggers a new run instead, and the log says why.

    :param hook: the hook.
    :param log: the task's logger.
    :param run_id: the earlier, failed run.
    :param rendered_input: this try's input.
    """
    details = hook.send(endpoints.run_details(run_id))
    if not same_input(details.trigger_input(), rendered_input):
        log.info("The earlier run %s failed, but this try's input differs from the one it ran with; %s.", run_id,
                 CHANGED_INPUT)
        return False
    log.info("Replaying the failed run %s in place (retry_from_failure).", run_id)
    _replay(hook, log, {run_id: details.retry_count()})
    return True


def replay_failed_items(hook: HatchetHook, log: Any, batch: Mapping[str, str], index_key: str,
                        items: Sequence[TriggerRequest], since: datetime) -> set[str]:
    """Replay in place the batch's FAILED runs whose input is still their item's; return their ids.

    :param hook: the hook.
    :param log: the task's logger.
    :param batch: the metadata pair that finds the batch.
    :param index_key: the metadata key holding each run's item index.
    :param items: this try's items.
    :param since: no run of the batch was created before this.
    """
    failed = hook.list_runs({"since": since, "statuses": [RunStatus.FAILED], "additional_metadata": batch})
    retry_counts: dict[str, int] = {}
    for row in failed:
        index = row.additional_metadata.get(index_key)
        if not (isinstance(index, str) and index.isdecimal() and int(index) < len(items)):
            continue
        details = hook.send(endpoints.run_details(row.id))
        if same_input(details.trigger_input(), items[int(index)].input):
            retry_counts[row.id] = details.retry_count()
        else:
            log.info("Item %s: its earlier run %s failed, but its input changed; %s.", index, row.id, CHANGED_INPUT)
    if retry_counts:
        log.info("Replaying %d failed run(s) of the batch in place (retry_from_failure).", len(retry_counts))
        _replay(hook, log, retry_counts)
    return set(retry_counts)
