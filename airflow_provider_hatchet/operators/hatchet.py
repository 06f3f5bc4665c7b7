"""Operators that trigger Hatchet workflow runs."""

from __future__ import annotations

from airflow_provider_hatchet.operators.run_workflow import HatchetRunWorkflowOperator
from airflow_provider_hatchet.operators.run_workflows import HatchetRunWorkflowsOperator
from airflow_provider_hatchet.operators.schedule_workflow import HatchetScheduleWorkflowOperator

__all__ = ["HatchetRunWorkflowOperator", "HatchetRunWorkflowsOperator", "HatchetScheduleWorkflowOperator"]
