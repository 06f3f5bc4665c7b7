"""The DAGs of ``make e2e-prod``'s crash scenarios (``e2e/crashes.py`` triggers and breaks them).

Runs of ``demo-etl`` take the time the per-run ``__sim__`` override says (``e2e/hatchet/worker.py``). Where a
scenario needs runs that end at one known moment whenever they were triggered, that moment comes in the conf
(``release_at``, epoch seconds) and each run's duration is rendered when its task runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_hatchet.operators.hatchet import HatchetRunWorkflowOperator, HatchetRunWorkflowsOperator
from airflow_provider_hatchet.sensors.hatchet import HatchetWorkflowRunSensor

BULK_ITEMS = 2000
DEFERRED_TASKS = 50
# Until conf["release_at"], rendered to a float by render_template_as_native_obj.
UNTIL_RELEASE = "{{ [dag_run.conf['release_at'] - macros.time.time(), 0.1] | max }}"
RETRIES = {"retries": 2, "retry_delay": timedelta(seconds=2)}

with DAG("prod_crash_bulk", schedule=None, start_date=datetime(2025, 1, 1), catchup=False,
         default_args=RETRIES, tags=["e2e-prod"]):
    # Over REST, two requests at a time: slow enough that a worker is reliably killed mid-batch.
    HatchetRunWorkflowsOperator(
        task_id="trigger_bulk",
        workflow_runs=[{"workflow_name": "demo-etl", "input": {"item": i, "__sim__": {"duration": 0}}}
                       for i in range(BULK_ITEMS)],
        transport="rest",
        max_concurrency=2,
        wait_for_completion=False,
    )

with DAG("prod_crash_owner", schedule=None, start_date=datetime(2025, 1, 1), catchup=False,
         default_args=RETRIES, render_template_as_native_obj=True, tags=["e2e-prod"]):
    HatchetRunWorkflowOperator(
        task_id="wait_in_worker",
        workflow_name="demo-etl",
        input={"owner": True, "__sim__": {"duration": UNTIL_RELEASE}},
        wait_for_completion=True,
        poll_interval=2,
    )

with DAG("prod_crash_triggerer", schedule=None, start_date=datetime(2025, 1, 1), catchup=False,
         max_active_tasks=DEFERRED_TASKS, render_template_as_native_obj=True, tags=["e2e-prod"]):
    HatchetRunWorkflowOperator.partial(
        task_id="wait_deferred",
        workflow_name="demo-etl",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=2,
        timeout=1200,
    ).expand(input=[{"item": i, "__sim__": {"duration": UNTIL_RELEASE}} for i in range(DEFERRED_TASKS)])

with DAG("prod_crash_api_outage", schedule=None, start_date=datetime(2025, 1, 1), catchup=False,
         render_template_as_native_obj=True, tags=["e2e-prod"]):
    HatchetRunWorkflowOperator(
        task_id="wait_deferred",
        workflow_name="demo-etl",
        input={"waits": "deferred", "__sim__": {"duration": UNTIL_RELEASE}},
        wait_for_completion=True,
        deferrable=True,
        poll_interval=2,
        timeout=1200,
    )
    started = HatchetRunWorkflowOperator(
        task_id="trigger",
        workflow_name="demo-etl",
        input={"waits": "poking", "__sim__": {"duration": UNTIL_RELEASE}},
        wait_for_completion=False,
    )
    HatchetWorkflowRunSensor(task_id="poke", run_id=started.output, mode="poke", poke_interval=2, timeout=1200)
