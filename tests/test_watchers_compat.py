"""The AssetWatcher triggers import on every Airflow; below 3.0, which has no event-driven scheduling, using one
says so."""

from __future__ import annotations

import pytest

from airflow_provider_hatchet._compat import AIRFLOW_V_3_0_PLUS

pytestmark = pytest.mark.af2


def test_the_watchers_import_from_the_public_module() -> None:
    from airflow_provider_hatchet.triggers.hatchet import HatchetEventTrigger, HatchetWorkflowRunEventTrigger

    assert HatchetEventTrigger.__module__ == HatchetWorkflowRunEventTrigger.__module__


@pytest.mark.skipif(AIRFLOW_V_3_0_PLUS, reason="Airflow 3 has event-driven scheduling")
def test_below_airflow_3_a_watcher_explains_why_it_cannot_run() -> None:
    from airflow_provider_hatchet.triggers.hatchet import HatchetWorkflowRunEventTrigger

    with pytest.raises(RuntimeError, match=r"needs Airflow 3\.0 or later.*AssetWatcher.*Airflow 2\.10"):
        HatchetWorkflowRunEventTrigger("demo-etl")


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="Airflow 3 only")
def test_on_airflow_3_a_watcher_is_an_event_trigger() -> None:
    from airflow.triggers.base import BaseEventTrigger

    from airflow_provider_hatchet.triggers.hatchet import HatchetEventTrigger

    assert isinstance(HatchetEventTrigger("k"), BaseEventTrigger)
