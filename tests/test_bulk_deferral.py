"""A deferred wait on up to a thousand runs stores their ids packed; on a bigger batch, its key, size and digest,
not its ids, and still finds exactly its runs."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_hatchet._identity import BATCH_INDEX_KEY, TI_KEY
from airflow_provider_hatchet.client import (
    AsyncHatchetClient,
    ClientConfig,
    RetryPolicy,
    TriggerRequest,
    endpoints,
    run_wait,
)
from airflow_provider_hatchet.client.batch_runs import find_batch_runs, ids_digest
from airflow_provider_hatchet.client.run_wait import INLINE_RUN_IDS, PACKED_RUN_IDS
from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunTrigger
from tests.airflow_helpers import xcom_value

pytestmark = pytest.mark.af2

START = datetime(2025, 1, 1)
TRIGGER_CLASS = f"{HatchetWorkflowRunTrigger.__module__}.{HatchetWorkflowRunTrigger.__qualname__}"
# The whole batch: about 45 s for 10,000 runs on two shared cores.
RUNS = 10_000


def stored_triggers() -> list[tuple[str, dict[str, Any]]]:
    """The triggers in the metadata DB: the stored (encrypted) kwargs and what they decrypt to."""
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(Trigger).filter(Trigger.classpath == TRIGGER_CLASS).all()
        return [(row.encrypted_kwargs, row.kwargs) for row in rows]


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS,
                    reason="Airflow 2's dag.test() runs the trigger object itself, not one rebuilt from its kwargs")
def test_a_deferred_wait_on_a_big_batch_stores_small_kwargs(hatchet: Any, dag_runner: Any) -> None:
    from airflow.sdk import DAG

    from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowsOperator

    hatchet.visibility_delay = 0.0
    hatchet.register_workflow("slow-echo", "succeed", duration=5.0, output=lambda run_input: {"i": run_input["i"]})
    before = {stored for stored, _ in stored_triggers()}
    with DAG("bulk_big_deferral", schedule=None, start_date=START, catchup=False) as dag:
        HatchetRunWorkflowsOperator(
            task_id="t", workflow_runs=[{"workflow_name": "slow-echo", "input": {"i": i}} for i in range(RUNS)],
            max_concurrency=32, wait_for_completion=True, deferrable=True, poll_interval=1.0, timeout=600,
        )
    dag_run = dag_runner(dag)

    assert dag_run.state == "success"
    (stored, kwargs), = [(s, k) for s, k in stored_triggers() if s not in before]
    assert len(stored) < 8 * 1024
    assert kwargs["run_ids"] == [] and kwargs["resume"]["run_count"] == RUNS
    runs = {int(r.additional_metadata["airflow_batch_index"]): r.id for r in hatchet.runs}
    ids = [runs[i] for i in range(RUNS)]
    assert xcom_value(dag_run, "t") == ids
    assert xcom_value(dag_run, "t", "output") == [{"run": {"i": i}} for i in range(RUNS)]
    assert kwargs["resume"]["run_ids_digest"] == ids_digest(ids)
    json.dumps(kwargs)


KEY = "dag|run|bulk|-1"


@pytest.fixture
def key_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of more than ``INLINE_RUN_IDS`` runs stored as its key, as one of more than ``PACKED_RUN_IDS`` is."""
    monkeypatch.setattr(run_wait, "PACKED_RUN_IDS", INLINE_RUN_IDS)


async def trigger_batch(sim: Any, indexes: list[int]) -> list[str]:
    async with AsyncHatchetClient(ClientConfig.from_token(sim.token), retry=RetryPolicy(attempts=1)) as client:
        return [
            await client.send(
                endpoints.trigger(TriggerRequest("demo-etl", {"i": i}, {TI_KEY: KEY, BATCH_INDEX_KEY: str(i)}))
            )
            for i in indexes
        ]


def rebuilt(trigger: HatchetWorkflowRunTrigger) -> tuple[dict[str, Any], HatchetWorkflowRunTrigger]:
    classpath, kwargs = trigger.serialize()
    assert classpath == TRIGGER_CLASS
    kwargs = json.loads(json.dumps(kwargs))
    return kwargs, HatchetWorkflowRunTrigger(**kwargs)


async def only_event(trigger: HatchetWorkflowRunTrigger) -> dict[str, Any]:
    (event,) = [event.payload async for event in trigger.run()]
    return dict(event)


async def test_a_retried_item_resolves_to_its_newest_run(hatchet: Any, key_stored: None) -> None:
    first_try = await trigger_batch(hatchet, list(range(150)))
    await asyncio.sleep(0.2)
    retried = await trigger_batch(hatchet, [3])  # a retry of the task triggered item 3 again
    ids = first_try[:3] + retried + first_try[4:]
    kwargs, trigger = rebuilt(HatchetWorkflowRunTrigger(ids, batch_key=KEY, poll_interval=0.1))

    assert kwargs["run_ids"] == [] and kwargs["resume"]["run_count"] == 150
    assert kwargs["resume"]["run_ids_digest"] == ids_digest(ids)
    event = await only_event(trigger)
    assert event["status"] == "success"
    assert event["run_ids"] == ids
    assert [o["run"]["echo"]["i"] for o in event["outputs"]] == list(range(150))


async def test_a_batch_whose_runs_are_not_the_tasks_gives_an_error(hatchet: Any, key_stored: None) -> None:
    # The newer run must be listed when the trigger reads the batch back: with the list's lag, the first try's runs
    # alone would match the digest (a race CI's load once lost).
    hatchet.visibility_delay = 0.0
    first_try = await trigger_batch(hatchet, list(range(150)))
    await trigger_batch(hatchet, [3])
    trigger = HatchetWorkflowRunTrigger(first_try, batch_key=KEY, poll_interval=0.1, resume={"not_found_grace": 2.0})
    event = await only_event(rebuilt(trigger)[1])
    assert event["status"] == "error"
    assert f"150 of the 150 runs of batch {KEY!r}, but not the runs the task triggered" in event["message"]


async def test_find_batch_runs_keeps_each_items_newest_run_of_the_batch(hatchet: Any) -> None:
    older = await trigger_batch(hatchet, [0, 1, 2])
    newer = await trigger_batch(hatchet, [1])
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    async with AsyncHatchetClient(ClientConfig.from_token(hatchet.token)) as client:
        await asyncio.sleep(0.2)
        found = await find_batch_runs(client, (TI_KEY, KEY), 4, since=since, index_key=BATCH_INDEX_KEY)
        assert found == [older[0], newer[0], older[2], None]
        other = await find_batch_runs(client, (TI_KEY, "dag|run|other|-1"), 3, since=since, index_key=BATCH_INDEX_KEY)
        assert other == [None, None, None]


def test_a_batch_of_a_hundred_runs_keeps_its_ids() -> None:
    ids = [f"run-{i}" for i in range(100)]
    kwargs, _ = rebuilt(HatchetWorkflowRunTrigger(ids, batch_key=KEY))
    assert kwargs["run_ids"] == ids and "run_count" not in kwargs["resume"]
    with pytest.raises(ValueError, match="run_count describes a batch"):
        HatchetWorkflowRunTrigger([], resume={"run_count": 3})


def test_up_to_a_thousand_run_ids_are_stored_packed() -> None:
    """22 characters a run (38 in a JSON list), and the wait has its ids from its start: no list reads them back."""
    ids = [str(uuid.uuid4()) for _ in range(PACKED_RUN_IDS)]
    kwargs, trigger = rebuilt(HatchetWorkflowRunTrigger(ids, batch_key=KEY))
    assert kwargs["run_ids"] == [] and "run_count" not in kwargs["resume"]
    assert len(json.dumps(kwargs)) < 23 * PACKED_RUN_IDS
    assert trigger.wait.run_ids == ids
    assert trigger.serialize()[1] == kwargs
    more = [*ids, str(uuid.uuid4())]
    kwargs, trigger = rebuilt(HatchetWorkflowRunTrigger(more, batch_key=KEY))
    assert kwargs["run_ids"] == [] and kwargs["resume"]["run_count"] == PACKED_RUN_IDS + 1
    assert "packed_run_ids" not in kwargs["resume"]


def test_ids_that_are_not_uuids_in_canonical_form_are_not_packed() -> None:
    for ids in ([str(uuid.uuid4()).upper() for _ in range(150)], [*(str(uuid.uuid4()) for _ in range(149)), "run-1"]):
        kwargs, _ = rebuilt(HatchetWorkflowRunTrigger(ids))
        assert kwargs["run_ids"] == ids and "packed_run_ids" not in kwargs["resume"]


@pytest.mark.parametrize(("packed", "run_ids", "error"), [
    ("not base64!", [], "packed_run_ids is not base64"),
    (base64.b64encode(b"x" * 17).decode(), [], "packed_run_ids holds 17 bytes, not whole 16-byte run ids"),
    ("", [], "packed_run_ids holds 0 bytes"),
    (base64.b64encode(bytes(16)).decode(), ["a"], "packed_run_ids replaces run_ids"),
])
def test_packed_ids_that_do_not_unpack_are_refused(packed: str, run_ids: list[str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        HatchetWorkflowRunTrigger(run_ids, resume={"packed_run_ids": packed})
