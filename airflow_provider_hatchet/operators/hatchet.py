"""Operators that trigger Hatchet workflow runs, cancel or replay them, and push events."""

from __future__ import annotations

from airflow_provider_hatchet.operators.push_event import HatchetPushEventOperator
from airflow_provider_hatchet.operators.run_lifecycle import HatchetCancelRunsOperator, HatchetReplayRunsOperator
from airflow_provider_hatchet.operators.run_workflow import HatchetRunWorkflowOperator
from airflow_provider_hatchet.operators.run_workflows import HatchetRunWorkflowsOperator
from airflow_provider_hatchet.operators.schedule_workflow import HatchetScheduleWorkflowOperator

__all__ = [
    "HatchetCancelRunsOperator",
    "HatchetPushEventOperator",
    "HatchetReplayRunsOperator",
    "HatchetRunWorkflowOperator",
    "HatchetRunWorkflowsOperator",
    "HatchetScheduleWorkflowOperator",
]
