"""A watcher against a server that accepts its requests and then fails them: the failure is logged once, in text
the server cannot use to forge lines of the triggerer's log, and nothing is reported meanwhile."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunEventTrigger
from tests.test_watchers import FAST, requests_of, until

pytestmark = pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="event-driven scheduling needs Airflow 3")

FORGED = "boom\nFORGED INFO - Polling Hatchet works again.\r\x1b[2K\u2028FORGED too"


def test_a_servers_error_text_cannot_forge_lines_of_the_triggerer_log(hatchet: Any, logs: Any) -> None:
    hatchet.fail_next("list", 1000, 400, body={"errors": [{"description": FORGED}]})
    trigger = HatchetWorkflowRunEventTrigger("demo-etl", **FAST)
    polls = requests_of(hatchet)

    async def scenario() -> None:
        stream = trigger.run()
        pending = asyncio.ensure_future(stream.__anext__())
        await until(lambda: polls() >= 4)
        assert not pending.done()  # nothing reported while every list fails
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        await stream.aclose()

    asyncio.run(scenario())
    logged = logs()
    assert logged.count("Polling Hatchet failed") == 1
    assert "boom" in logged and "\\x1b[2K" in logged
    assert not [line for line in logged.splitlines() if line.startswith("FORGED")]
    assert "\x1b" not in logged and "\r" not in logged and "\u2028" not in logged
