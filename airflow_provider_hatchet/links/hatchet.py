"""The "Hatchet run" extra link: the dashboard page of the run a task triggered or waited on."""

from __future__ import annotations

from typing import Any

from airflow_provider_hatchet._compat import BaseOperatorLink, XCom

RUN_URL_XCOM_KEY = "hatchet_run_url"
RUN_URLS_XCOM_KEY = "hatchet_run_urls"


class HatchetRunLink(BaseOperatorLink):
    """Links a task to its Hatchet run, from the URL the task pushed to XCom under ``hatchet_run_url``."""

    name = "Hatchet run"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        """Return the run's dashboard URL, or ``""`` while the task has not pushed one.

        :param operator: the task.
        :param ti_key: the task instance key.
        """
        url = XCom.get_value(key=RUN_URL_XCOM_KEY, ti_key=ti_key)
        return str(url) if url else ""
