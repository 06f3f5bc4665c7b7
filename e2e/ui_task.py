"""Browser checks on a finished task instance's pages in Airflow's UI (``make e2e-prod``): its rendered
templates show the values the task sent to Hatchet.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import Page, expect

# A busy two-core machine renders the task pages slowly.
PAGE_TIMEOUT_MS = 60_000


def rendered_template(page: Page, base_url: str, task: tuple[str, str, str], texts: list[str], secret: str,
                      screenshot: Path) -> list[str]:
    """Open the task instance's "Rendered Templates" tab, wait until it shows every text, and check that it does
    not show the secret.

    :param page: a signed-in page
    :param base_url: api-server root
    :param task: (DAG id, DAG run id, task id)
    :param texts: what the rendered fields must show (e.g. a value rendered from ``{{ params }}``)
    :param secret: what the page must not hold (the API token)
    :param screenshot: where the page's screenshot goes
    :return: the texts found
    """
    dag_id, run_id, task_id = task
    page.goto(f"{base_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}/rendered_templates")
    for text in texts:
        expect(page.get_by_text(text, exact=False).first).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    assert secret not in page.content(), "the rendered templates page shows the API token"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot), full_page=True)
    return texts
