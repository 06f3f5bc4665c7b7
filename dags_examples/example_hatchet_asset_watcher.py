"""Run a DAG when something happens in Hatchet: a run of ``demo-etl`` completes, or an ``order:created`` event
arrives (Airflow 3's event-driven scheduling: an ``Asset`` with an ``AssetWatcher``).

The watchers poll Hatchet in the triggerer. Each Hatchet run (or event) becomes exactly one asset event, whose
``extra["payload"]`` holds the run id, workflow, status, finish time, metadata, dashboard URL and (here) the
output. Airflow starts one DAG run for the asset events that arrived since the last one, so a task reads the
list in ``triggering_asset_events``: usually one, several when runs finish close together.

Airflow 3 only: ``AssetWatcher`` exists from Airflow 3.0, so this file does not import on Airflow 2.10.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_hatchet.triggers.hatchet import HatchetEventTrigger, HatchetWorkflowRunEventTrigger

ETL_COMPLETED = Asset(
    "hatchet_demo_etl_completed",
    watchers=[AssetWatcher(
        name="hatchet_demo_etl_completed",
        # Only the runs that ask for it: the others (from the other examples) carry no "notify".
        trigger=HatchetWorkflowRunEventTrigger(
            "demo-etl", additional_metadata={"notify": "airflow"}, include_output=True, poll_interval=2,
        ),
    )],
)
ORDER_CREATED = Asset(
    "hatchet_order_created",
    watchers=[AssetWatcher(name="hatchet_order_created", trigger=HatchetEventTrigger("order:created",
                                                                                      poll_interval=2))],
)

with DAG(
    dag_id="example_hatchet_asset_watcher",
    schedule=[ETL_COMPLETED],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "hatchet"],
):

    @task
    def handle_runs(*, triggering_asset_events: Any = None) -> list[str]:
        """Report each Hatchet run that completed."""
        runs = [event.extra["payload"] for event in triggering_asset_events[ETL_COMPLETED]]
        for run in runs:
            print(f"Hatchet run {run['run_id']} of {run['workflow']} {run['status']} at {run['finished_at']}: "
                  f"{run['url']} -> {run.get('output')}")
        return [run["run_id"] for run in runs]

    handle_runs()

with DAG(
    dag_id="example_hatchet_event_watcher",
    schedule=[ORDER_CREATED],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "hatchet"],
):

    @task
    def handle_orders(*, triggering_asset_events: Any = None) -> list[Any]:
        """Handle each ``order:created`` event: its payload is the order."""
        events = [event.extra["payload"] for event in triggering_asset_events[ORDER_CREATED]]
        for event in events:
            print(f"Hatchet event {event['event_id']} ({event['key']}): {event['payload']}")
        return [event["event_id"] for event in events]

    handle_orders()
