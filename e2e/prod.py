"""``make e2e-prod``: Airflow 3.3 as a production deployment (Postgres metadata DB, CeleryExecutor with a Redis
broker and two workers, separate scheduler, dag-processor, triggerer and api-server) against the real Hatchet
that ``make hatchet-up`` started, then crashes on purpose.

Run through ``e2e/run_prod.sh``, which starts and stops the Hatchet server around it. The phases: the browser
checks of ``make e2e`` (connection form, Test button), every example DAG through the REST API with the same
checks as ``make e2e`` (runs received, metadata, XComs, links, deferral), then the crash scenarios of
``e2e/crashes.py``. Prints ``e2e-prod: N passed, M failed``; every process started here is stopped on the way out.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crashes
import harness
import scenarios
import watchers
from airflow_api import AirflowAPI
from hatchet_view import RealHatchet
from prod_services import WORKERS, ProdServices
from stack import Stack, tail

REPO = Path(__file__).resolve().parent.parent
HATCHET_STATE = REPO / "build" / "hatchet" / "state.json"


def main(argv: list[str] | None = None) -> int:
    """Run everything; return the exit code.

    :param argv: CLI arguments
    :return: 0 when every check passed
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--skip-ui", action="store_true")
    parser.add_argument("--skip-dags", action="store_true")
    parser.add_argument("--crash", action="append", choices=sorted(crashes.SCENARIOS),
                        help="run only these crash scenarios (default: all)")
    parser.add_argument("--failure-pattern", default=r"(?i)(401|403|credential|token|unauthori[sz]ed|forbidden)",
                        help="regex the wrong-token toast must match")
    args = parser.parse_args(argv)
    args.expect_label, args.docs_screenshot = [], None  # what harness.ui_phase reads besides

    report = harness.Report()
    run_dir: Path = args.run_dir.resolve()
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    stack = Stack(run_dir=run_dir, dags_folder=REPO / "dags_examples",
                  extra_bundles={"e2e-dags": REPO / "e2e" / "dags", "prod-dags": REPO / "e2e" / "prod_dags"})
    services = ProdServices(stack)
    real = watchers.real_hatchet()
    stack.simulator = {"url": real.url, "token": real.token, "tenant_id": real.tenant_id}

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    durations: dict[str, float] = {}
    try:
        with report.phase("metadata db (postgres) and broker (redis)"):
            sql_alchemy_conn = services.start_postgres()
            broker = services.start_redis()
            stack.configure_airflow(sql_alchemy_conn, services.celery_settings(broker, sql_alchemy_conn))
            stack.migrate()
        with report.phase("airflow start (api-server, scheduler, dag-processor, triggerer, 2 celery workers)"):
            stack.start_airflow()
            for name in WORKERS:
                services.start_worker(name)
        api = AirflowAPI(stack.api_url, stack.username, stack.password)
        if not args.skip_ui:
            with report.phase("ui: connection form"):
                harness.ui_phase(stack, report, args)
        watchers.ensure_connection(api, real)  # whatever the UI phase did, the DAGs need the right one
        if not args.skip_dags:
            with report.phase("dags via scheduler and celery workers (all at once), cancellation, rerun"):
                view = RealHatchet(real.url, real.token, real.tenant_id, datetime.now(timezone.utc))
                harness.dag_phase(stack, report, list(scenarios.PROVIDER_DAG_CHECKS),
                                  list(scenarios.PROVIDER_CANCEL_CHECKS), list(scenarios.PROVIDER_RERUN_CHECKS),
                                  hatchet=view)
            if not args.skip_ui:
                with report.phase("ui: a rendered template"):
                    report.check("ui: example_hatchet_params' rendered input shows the conf values, not the token",
                                 lambda: rendered_params(stack, api))
                    report.check("ui: the 'Hatchet run' link of example_hatchet_params opens its run's URL",
                                 lambda: run_link(stack, api))
        found, errors = api.wait_for_dags(list(crashes.DAGS), harness.PARSE_TIMEOUT)
        report.check("crash DAGs parsed", lambda: _parsed(found, errors))
        crash = crashes.Crash(stack, services, api, RealHatchet(real.url, real.token, real.tenant_id,
                                                                datetime.now(timezone.utc)), HATCHET_STATE)
        for key in args.crash or list(crashes.SCENARIOS):
            name, scenario = crashes.SCENARIOS[key]
            with report.phase(name):
                begun = time.monotonic()
                report.check(name, lambda scenario=scenario: scenario(crash))
                durations[name] = round(time.monotonic() - begun, 1)
                crash.restart_missing_workers()
    except BaseException as exc:
        report.checks.append({"name": "stack", "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        print(f"[e2e] FAIL stack: {type(exc).__name__}: {exc}", flush=True)
        traceback.print_exc()
    finally:
        if report.failed:
            for proc in stack.procs:
                print(f"----- {proc.name} log tail ({proc.log}) -----\n{tail(proc.log, 25)}", flush=True)
        with report.phase("teardown"):
            stack.stop()
            services.stop_postgres()
    report.phases["total (harness)"] = round(time.monotonic() - started, 1)
    for check in report.checks:
        if check["name"] in durations:
            state = "ok" if check["ok"] else "FAILED"
            print(f"[e2e-prod] {state} in {durations[check['name']]}s: {check['name']}: "
                  f"{check.get('detail') or check.get('error')}")
    return harness.finish(report, run_dir, "e2e-prod")


PARAMS_TASK = ("example_hatchet_params", "export_customer")


@contextlib.contextmanager
def signed_in(stack: Stack) -> Iterator[Any]:
    """A Chromium page signed in to the api-server.

    :param stack: the stack
    """
    import ui
    import ui_task
    from playwright.sync_api import expect

    expect.set_options(timeout=ui_task.PAGE_TIMEOUT_MS)  # ui.login waits 5 s by default: too short under load
    with ui.browser(stack.run_dir / "chromium-profile-task") as context:
        page = context.new_page()
        ui.login(page, stack.api_url, stack.username, stack.password)
        yield page


def _params_run(api: AirflowAPI) -> str:
    (run_id,) = [run for dag, run in api.all_dag_runs() if dag == PARAMS_TASK[0]]
    return run_id


def rendered_params(stack: Stack, api: AirflowAPI) -> list[str]:
    """The "Rendered Templates" tab of example_hatchet_params' task shows the input rendered from its conf, and not
    the token.

    :param stack: the stack
    :param api: REST client
    :return: the texts seen
    """
    import ui_task

    dag_id, task_id = PARAMS_TASK
    with signed_in(stack) as page:
        return ui_task.rendered_template(page, stack.api_url, (dag_id, _params_run(api), task_id),
                                         ['"globex"', '"limit"', scenarios.DS], stack.simulator["token"],
                                         stack.run_dir / "screenshots" / "rendered-template.png")


def run_link(stack: Stack, api: AirflowAPI) -> str:
    """The "Hatchet run" extra link of example_hatchet_params' task, in the task's "Details" tab, is the URL the REST
    API gives, and clicking it opens that URL.

    :param stack: the stack
    :param api: REST client
    :return: the URL opened
    """
    import ui_task

    dag_id, task_id = PARAMS_TASK
    run_id = _params_run(api)
    expected = api.extra_links(dag_id, run_id, task_id).get("Hatchet run")
    assert expected, "the REST API gives no 'Hatchet run' link"
    with signed_in(stack) as page:
        return ui_task.hatchet_link(page, stack.api_url, (dag_id, run_id, task_id), expected,
                                    stack.run_dir / "screenshots" / "hatchet-run-link.png")


def _parsed(found: set[str], errors: list[str]) -> dict[str, Any]:
    assert found == set(crashes.DAGS), f"crash DAGs not parsed: {sorted(set(crashes.DAGS) - found)}; {errors}"
    return {"dags": sorted(found)}


if __name__ == "__main__":
    sys.exit(main())
