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


def hatchet_link(page: Page, base_url: str, task: tuple[str, str, str], expected: str, screenshot: Path) -> str:
    """Open the task instance's "Details" tab, where Airflow 3 lists the extra links, check that the "Hatchet run"
    link points at ``expected``, click it, and check that the page it opens is at that URL.

    :param page: a signed-in page
    :param base_url: api-server root
    :param task: (DAG id, DAG run id, task id)
    :param expected: the run's dashboard URL (what the REST API gives as the link)
    :param screenshot: where the details page's screenshot goes
    :return: the URL opened
    """
    dag_id, run_id, task_id = task
    page.goto(f"{base_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}/details")
    link = page.get_by_role("link", name="Hatchet run")
    expect(link).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    assert link.get_attribute("href") == expected, f"the link points at {link.get_attribute('href')!r}"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot), full_page=True)
    # Another origin than Airflow's, so the UI opens it in a new tab.
    with page.context.expect_page(timeout=PAGE_TIMEOUT_MS) as opened:
        link.click()
    target = opened.value
    target.wait_for_load_state("commit", timeout=PAGE_TIMEOUT_MS)
    assert target.url == expected, f"the link opened {target.url!r}, expected {expected!r}"
    target.close()
    return target.url
