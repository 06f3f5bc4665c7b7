"""The Python half of ``make demo`` (see ``scripts/demo.sh``).

Subcommands::

    python scripts/demo.py simulator-conn INFO_FILE [--timeout S]
        wait until the simulator started with ``--info-file INFO_FILE`` answers, then print the value for
        AIRFLOW_CONN_HATCHET_DEFAULT (on stdout, for the shell to capture; nothing else goes there)
    python scripts/demo.py check
        say which Hatchet server and tenant the ``hatchet_default`` connection points at, and test it
    python scripts/demo.py summary DAG_ID [DAG_ID ...]
        print each DAG's latest run, its tasks, and every Hatchet run it triggered (found by the
        ``airflow_dag_id``/``airflow_run_id`` metadata the operators stamp), with status, link, input and outputs

``check`` and ``summary`` read the metadata DB and connection from the environment ``demo.sh`` sets up. No
subcommand prints the API token.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from airflow_provider_hatchet.client import endpoints

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun
    from sqlalchemy.orm import Session

    from airflow_provider_hatchet.client.models import RunDetails, RunSummary
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook

WIDTH = 110
LOOKBACK = timedelta(minutes=10)
LIST_WAIT = 10.0


def short(value: Any, width: int = WIDTH) -> str:
    """One line of compact JSON (or ``repr``), cut at ``width`` characters.

    :param value: the value.
    :param width: the maximum length.
    """
    try:
        text = json.dumps(value, default=str, separators=(", ", ": "))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def simulator_conn(info_file: Path, timeout: float) -> int:
    """Wait for the simulator's info file and for its HTTP server, then print the connection JSON.

    :param info_file: the ``--info-file`` path the simulator writes once its socket is bound.
    :param timeout: seconds to wait in all.
    """
    deadline = time.monotonic() + timeout
    while not info_file.exists():
        if time.monotonic() > deadline:
            print(f"the simulator did not write {info_file} within {timeout:.0f} s", file=sys.stderr)
            return 1
        time.sleep(0.05)
    info = json.loads(info_file.read_text())
    while True:
        try:
            httpx.get(f"{info['admin_url']}/runs/count", timeout=2.0).raise_for_status()
            break
        except httpx.HTTPError as exc:
            if time.monotonic() > deadline:
                print(f"the simulator at {info['url']} does not answer: {exc}", file=sys.stderr)
                return 1
            time.sleep(0.05)
    print(info["airflow_conn_json"])
    return 0


def check() -> int:
    """Print the server and tenant of ``hatchet_default`` and make one authenticated request."""
    from airflow_provider_hatchet.hooks.hatchet import HatchetHook

    hook = HatchetHook()
    try:
        config = hook.config
    except Exception as exc:
        print(f"The Hatchet connection is not usable: {exc}", file=sys.stderr)
        return 1
    print(f"Hatchet server {config.server_url}, tenant {config.tenant_id}"
          + (f", namespace {config.namespace!r}" if config.namespace else ""))
    ok, message = hook.test_connection()
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def latest_dag_run(session: Session, dag_id: str) -> DagRun | None:
    """The most recent run of a DAG in the metadata DB.

    :param session: a metadata DB session.
    :param dag_id: the DAG id.
    """
    from airflow.models.dagrun import DagRun

    return session.query(DagRun).filter(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).first()


def print_tasks(session: Session, dag_run: DagRun) -> None:
    """One line per task instance: state, duration and (the start of) its return value.

    :param session: a metadata DB session.
    :param dag_run: the DAG run.
    """
    for ti in sorted(dag_run.get_task_instances(session=session), key=lambda t: (t.start_date is None,
                                                                                    t.start_date, t.map_index)):
        name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        if ti.map_index >= 0:
            pulled = ti.xcom_pull(task_ids=ti.task_id, key="return_value", map_indexes=ti.map_index, session=session)
        else:
            pulled = ti.xcom_pull(task_ids=ti.task_id, key="return_value", session=session)
        returned = "" if pulled is None else f"  returned {short(pulled, 70)}"
        print(f"  task {name:<22} {ti.state!s:<8} {ti.duration or 0:5.1f} s{returned}")


def find_runs(hook: HatchetHook, dag_run: DagRun) -> list[RunSummary]:
    """The Hatchet runs this DAG run triggered, by the identity metadata; waits briefly for the list to catch up.

    :param hook: the Hatchet hook.
    :param dag_run: the DAG run.
    """
    since = (dag_run.start_date or dag_run.run_after) - LOOKBACK
    metadata = {"airflow_dag_id": dag_run.dag_id, "airflow_run_id": dag_run.run_id}
    deadline = time.monotonic() + LIST_WAIT
    while True:
        runs = list(hook.client.iter_rows(endpoints.runs(since=since, additional_metadata=metadata)))
        if runs or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    def order(run: RunSummary) -> tuple[str, int, int]:
        meta = run.additional_metadata
        return (str(meta.get("airflow_task_id", "")), int(meta.get("airflow_map_index", -1)),
                int(meta.get("airflow_batch_index", -1)))

    return sorted(runs, key=order)


def print_run(hook: HatchetHook, details: RunDetails, workflow_names: dict[str, str]) -> None:
    """The block for one Hatchet run: id, workflow, status, who triggered it, link, input and outputs.

    :param hook: the Hatchet hook (for the dashboard link).
    :param details: the run.
    :param workflow_names: workflow id -> name.
    """
    run = details.run
    meta = run.additional_metadata
    workflow = workflow_names.get(run.workflow_id or "", run.display_name)
    by = str(meta.get("airflow_task_id", "?"))
    if meta.get("airflow_map_index", "-1") != "-1":
        by += f"[{meta['airflow_map_index']}]"
    if "airflow_batch_index" in meta:
        by += f" #{meta['airflow_batch_index']}"
    print(f"  {run.id}  {workflow}  {run.status.value}  (from task {by})")
    print(f"    link    {hook.run_url(run.id)}")
    print(f"    input   {short(run.input)}")
    outputs = details.task_outputs()
    pad = max((len(task) for task in outputs), default=0) + 1
    for i, (task, output) in enumerate(outputs.items()):
        label = ("outputs" if len(outputs) > 1 else "output") if i == 0 else ""
        print(f"    {label:<7} {task + ':':<{pad}} {short(output, WIDTH - pad)}")
    for task, error in details.error_messages().items():
        print(f"    error   {task}: {short(error)}")


def summary(dag_ids: Sequence[str]) -> int:
    """Print every DAG's latest run and the Hatchet runs it triggered; 1 if a run failed or triggered nothing.

    :param dag_ids: the DAG ids.
    """
    from airflow.utils.session import create_session

    from airflow_provider_hatchet.hooks.hatchet import HatchetHook

    logging.getLogger("airflow.task.hooks").setLevel(logging.WARNING)
    hook = HatchetHook()
    workflow_names = {w.id: w.name for w in hook.client.send(endpoints.list_workflows()).rows}
    failed = False
    with create_session() as session:
        for dag_id in dag_ids:
            print(f"\n=== {dag_id} " + "=" * max(3, WIDTH - len(dag_id) - 5))
            dag_run = latest_dag_run(session, dag_id)
            if dag_run is None:
                print("  no DAG run found")
                failed = True
                continue
            took = (dag_run.end_date - dag_run.start_date).total_seconds() if dag_run.end_date and dag_run.start_date \
                else 0.0
            print(f"DAG run {dag_run.run_id}: {dag_run.state} in {took:.1f} s")
            print_tasks(session, dag_run)
            runs = find_runs(hook, dag_run)
            print(f"Hatchet runs it triggered: {len(runs)}")
            for found in runs:
                print_run(hook, hook.send(endpoints.run_details(found.id)), workflow_names)
            failed = failed or str(dag_run.state) != "success" or not runs
    hook.close()
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand.

    :param argv: the arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    conn = sub.add_parser("simulator-conn", help="wait for the simulator and print its connection JSON")
    conn.add_argument("info_file", type=Path)
    conn.add_argument("--timeout", type=float, default=60.0)
    sub.add_parser("check", help="show and test the hatchet_default connection")
    summ = sub.add_parser("summary", help="print the DAG runs and the Hatchet runs they triggered")
    summ.add_argument("dag_ids", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "simulator-conn":
        return simulator_conn(args.info_file, args.timeout)
    if args.command == "check":
        return check()
    return summary(args.dag_ids)


if __name__ == "__main__":
    sys.exit(main())
