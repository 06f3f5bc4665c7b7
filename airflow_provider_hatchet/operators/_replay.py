"""Retry from failure: on a retry, replay the earlier failed run in place instead of triggering a new one."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow_provider_hatchet.client.run_actions import REPLAY_SETTLE_TIMEOUT
from airflow_provider_hatchet.hooks.hatchet import HatchetHook


def same_input(earlier: Mapping[str, Any], rendered: Mapping[str, Any]) -> bool:
    """Whether two inputs are the same JSON object (key order aside).

    :param earlier: the earlier run's input, as Hatchet stores it.
    :param rendered: this try's rendered input.
    """
    return json.dumps(earlier, sort_keys=True, default=str) == json.dumps(rendered, sort_keys=True, default=str)


def replay_if_unchanged(hook: HatchetHook, log: Any, run_id: str, rendered_input: Mapping[str, Any],
                        label: str = "") -> bool:
    """Replay a failed run in place if its input is this try's; return whether it was replayed.

    A replay re-runs the run with the input it was triggered with, so when the rendered input changed since (an
    upstream XCom, a template), the caller triggers a new run instead, and the log says why.

    :param hook: the hook.
    :param log: the task's logger.
    :param run_id: the earlier, failed run.
    :param rendered_input: this try's input.
    :param label: what the run is, for the log (e.g. ``item 3``).
    """
    what = f"{label} run {run_id}" if label else f"run {run_id}"
    if not same_input(hook.get_run(run_id).run.input, rendered_input):
        log.info("The earlier %s failed, but this try's input differs from the one it ran with; a replay cannot "
                 "change the input, so a new run is triggered.", what)
        return False
    log.info("Replaying the failed %s in place (retry_from_failure).", what)
    if hook.replay_in_place(run_id) is None:
        log.warning("After %.0f s Hatchet still shows %s as before the replay; waiting on it all the same.",
                    REPLAY_SETTLE_TIMEOUT, what)
    return True
