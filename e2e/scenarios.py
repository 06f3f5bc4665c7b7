"""What the end-to-end run checks, as data: one :class:`DagCheck` per example DAG, one :class:`CancelCheck`.

Every DAG is triggered through the REST API with :data:`LOGICAL_DATE`, so ``{{ ds }}`` renders as :data:`DS`.
Expectations that depend on what the simulator created (run ids, outputs, URLs) are functions of
:class:`SimRuns`, the runs the simulator recorded for that one DAG run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LOGICAL_DATE = "2025-06-15T12:00:00Z"
DS = "2025-06-15"

# Task names of the simulator's demo workflows (airflow_provider_hatchet/testing/demo.py).
DEMO_TASKS: dict[str, tuple[str, ...]] = {
    "demo-etl": ("run",),
    "demo-multi": ("extract", "transform", "load"),
    "demo-hang": ("run",),
}


@dataclass(frozen=True)
class ExpectedRun:
    """A workflow run one task instance must have triggered, exactly as sent to Hatchet.

    :param task_id: the triggering task
    :param workflow: ``workflowName`` sent
    :param input: ``input`` sent
    :param metadata: user metadata sent besides the Airflow identity (which the harness adds itself)
    :param map_index: map index of the triggering task instance
    :param batch_index: ``airflow_batch_index`` of a bulk run
    :param priority: ``priority`` sent (None: not sent)
    :param status: status the run must end in
    """

    task_id: str
    workflow: str
    input: dict[str, Any]
    metadata: dict[str, str] = field(default_factory=dict)
    map_index: int = -1
    batch_index: int | None = None
    priority: int | None = None
    status: str = "COMPLETED"

    @property
    def key(self) -> tuple[str, int, int | None]:
        """(task id, map index, batch index): what tells the runs of one DAG run apart."""
        return (self.task_id, self.map_index, self.batch_index)


@dataclass(frozen=True)
class SimRuns:
    """The simulator's runs of one DAG run, keyed by :attr:`ExpectedRun.key`.

    :param url: the simulator's server URL
    :param tenant_id: its tenant
    :param dag_id: the DAG
    :param dag_run_id: the DAG run
    :param runs: key -> the admin API's run object (``id``, ``workflow_name``, ``status``, ``body``, ...)
    """

    url: str
    tenant_id: str
    dag_id: str
    dag_run_id: str
    runs: dict[tuple[str, int, int | None], dict[str, Any]]

    def run(self, task_id: str, map_index: int = -1, batch_index: int | None = None) -> dict[str, Any]:
        """The run a task instance (or one bulk item) triggered.

        :param task_id: task
        :param map_index: map index
        :param batch_index: bulk item index
        :return: the admin API's run object
        """
        try:
            return self.runs[(task_id, map_index, batch_index)]
        except KeyError:
            raise AssertionError(f"the simulator has no run of {task_id}[{map_index}] batch {batch_index}") from None

    def id(self, task_id: str, map_index: int = -1, batch_index: int | None = None) -> str:
        """The run id of :meth:`run`."""
        return str(self.run(task_id, map_index, batch_index)["id"])

    def batch(self, task_id: str) -> list[dict[str, Any]]:
        """A bulk task's runs in batch order.

        :param task_id: the bulk task
        :return: the runs
        """
        items = sorted((k[2], v) for k, v in self.runs.items() if k[0] == task_id and k[2] is not None)
        return [run for _, run in items]

    def url_of(self, run: dict[str, Any]) -> str:
        """The dashboard URL of a run: ``{url}/tenants/{tenant_id}/runs/{run_id}``."""
        return f"{self.url}/tenants/{self.tenant_id}/runs/{run['id']}"

    @staticmethod
    def output(run: dict[str, Any]) -> dict[str, Any]:
        """A demo workflow run's output keyed by task name, derived from the input it was sent.

        The simulator's default task output is ``{"workflow", "task", "step", "echo": input}``.
        """
        name = run["workflow_name"]
        return {
            task: {"workflow": name, "task": task, "step": step, "echo": run["body"]["input"]}
            for step, task in enumerate(DEMO_TASKS[name])
        }


Expect = Callable[[SimRuns], Any]


@dataclass(frozen=True)
class XComCheck:
    """An XCom the task instance must hold, equal to a value derived from the simulator's runs.

    :param task_id: task id
    :param key: XCom key
    :param expect: computes the expected value
    :param map_index: map index of a mapped task instance
    :param dict_ordered: the value is ``key: value`` lines printed from an XCom dict, whose key order (at every
        level) Airflow keeps in SQLite but not in Postgres (JSONB orders keys by length): compared as parsed
        dicts there
    """

    task_id: str
    key: str
    expect: Expect
    map_index: int = -1
    dict_ordered: bool = False


@dataclass(frozen=True)
class LinkCheck:
    """The task instance's "Hatchet run" extra link must be the dashboard URL of a run.

    :param task_id: the task whose link is read
    :param map_index: its map index
    :param run_task: the task that triggered the run (default: ``task_id``, same map index)
    """

    task_id: str
    map_index: int = -1
    run_task: str | None = None


@dataclass(frozen=True)
class DagCheck:
    """Trigger a DAG through the REST API and check the finished run, Airflow's side and the simulator's.

    :param dag_id: DAG id
    :param conf: run conf
    :param task_states: task id (``task[i]`` for mapped ones) -> final state; every task instance must be listed
    :param runs: every run the simulator must have received from this DAG run, and nothing else
    :param deferred_tasks: tasks that must have been DEFERRED and resumed after the triggerer fired their trigger
    :param xcoms: XCom expectations
    :param links: extra link expectations
    """

    dag_id: str
    task_states: dict[str, str]
    runs: tuple[ExpectedRun, ...]
    conf: dict[str, Any] = field(default_factory=dict)
    deferred_tasks: tuple[str, ...] = ()
    xcoms: tuple[XComCheck, ...] = ()
    links: tuple[LinkCheck, ...] = ()


@dataclass(frozen=True)
class CancelCheck:
    """Mark a deferred task failed while it waits on a run that never ends; the trigger must cancel the run.

    :param dag_id: DAG id (in ``e2e/dags``)
    :param task_id: the deferring task
    :param run: the one run the task triggers
    """

    dag_id: str
    task_id: str
    run: ExpectedRun


@dataclass(frozen=True)
class RerunCheck:
    """Clear a task that succeeded through the REST API; it must trigger a second run and hold it in XCom.

    :param dag_id: DAG id (in ``e2e/dags``)
    :param task_id: the task cleared
    :param run: the run each of its two tries triggers
    """

    dag_id: str
    task_id: str
    run: ExpectedRun


def _run_ids(task_id: str) -> Expect:
    return lambda sim: [str(run["id"]) for run in sim.batch(task_id)]


def _outputs(task_id: str) -> Expect:
    return lambda sim: [SimRuns.output(run) for run in sim.batch(task_id)]


def _mapped_id(map_index: int) -> Expect:
    return lambda sim: sim.id("per_region", map_index)


def _mapped_output(map_index: int) -> Expect:
    return lambda sim: SimRuns.output(sim.run("per_region", map_index))


def _single(
    dag_id: str,
    task_id: str,
    workflow: str,
    input: dict[str, Any],
    *,
    waits: bool,
    conf: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
    priority: int | None = None,
    deferred: bool = False,
    downstream: dict[str, str] | None = None,
    more_xcoms: tuple[XComCheck, ...] = (),
) -> DagCheck:
    """A DAG whose operator task triggers one run (and, if ``waits``, pushes its output to XCom ``output``)."""
    xcoms = [
        XComCheck(task_id, "return_value", lambda sim: sim.id(task_id)),
        XComCheck(task_id, "hatchet_run_id", lambda sim: sim.id(task_id)),
        XComCheck(task_id, "hatchet_run_url", lambda sim: sim.url_of(sim.run(task_id))),
    ]
    if waits:
        xcoms.append(XComCheck(task_id, "output", lambda sim: SimRuns.output(sim.run(task_id))))
    return DagCheck(
        dag_id,
        conf=conf or {},
        task_states={task_id: "success", **(downstream or {})},
        runs=(ExpectedRun(task_id, workflow, input, metadata or {}, priority=priority),),
        deferred_tasks=(task_id,) if deferred else (),
        xcoms=(*xcoms, *more_xcoms),
        links=(LinkCheck(task_id),),
    )


def _sensor(mode: str) -> DagCheck:
    return DagCheck(
        f"example_hatchet_sensor_{mode}",
        task_states={"trigger": "success", "wait": "success"},
        runs=(ExpectedRun("trigger", "demo-etl", {"day": DS}),),
        xcoms=(
            XComCheck("trigger", "return_value", lambda sim: sim.id("trigger")),
            XComCheck("wait", "return_value", lambda sim: SimRuns.output(sim.run("trigger"))),
            XComCheck("wait", "hatchet_run_url", lambda sim: sim.url_of(sim.run("trigger"))),
        ),
        links=(LinkCheck("trigger"), LinkCheck("wait", run_task="trigger")),
    )


def _sensor_bulk(mode: str) -> DagCheck:
    return DagCheck(
        f"example_hatchet_sensor_bulk_{mode}",
        task_states={"trigger_batch": "success", "wait_all": "success"},
        runs=tuple(
            ExpectedRun("trigger_batch", "demo-etl", {"day": DS, "shard": i}, batch_index=i) for i in range(20)
        ),
        xcoms=(
            XComCheck("trigger_batch", "return_value", _run_ids("trigger_batch")),
            XComCheck("wait_all", "return_value", _outputs("trigger_batch")),
            XComCheck("wait_all", "hatchet_run_urls", lambda sim: [sim.url_of(r) for r in sim.batch("trigger_batch")]),
        ),
    )


REGIONS = ("eu", "us", "apac")
BULK_CUSTOMERS = ("initech", "acme", "hooli")
BULK_DAY = "2026-02-01"

PROVIDER_DAG_CHECKS: tuple[DagCheck, ...] = (
    _single("example_hatchet_trigger_and_forget", "trigger", "demo-etl", {"day": DS, "source": "orders"},
            waits=False),
    _single(
        "example_hatchet_trigger_and_wait", "run_pipeline", "demo-multi",
        {"day": DS, "tables": ["orders", "customers"]},
        waits=True,
        downstream={"report": "success"},
        more_xcoms=(
            XComCheck("report", "return_value",
                      lambda sim: [f"{k}: {v}" for k, v in SimRuns.output(sim.run("run_pipeline")).items()],
                      dict_ordered=True),
        ),
    ),
    _single("example_hatchet_deferrable", "run_deferred", "demo-etl", {"day": DS}, waits=True,
            deferred=True),
    _single(
        "example_hatchet_params", "export_customer", "demo-etl", {"customer": "globex", "limit": 7, "day": DS},
        waits=True,
        conf={"customer": "globex", "limit": 7},
        metadata={"customer": "globex", "source": "airflow"},
        priority=2,
    ),
    DagCheck(
        "example_hatchet_mapped",
        task_states={f"per_region[{i}]": "success" for i in range(len(REGIONS))},
        runs=tuple(ExpectedRun("per_region", "demo-etl", {"region": r}, map_index=i) for i, r in enumerate(REGIONS)),
        xcoms=tuple(
            check
            for i in range(len(REGIONS))
            for check in (
                XComCheck("per_region", "return_value", _mapped_id(i), map_index=i),
                XComCheck("per_region", "output", _mapped_output(i), map_index=i),
            )
        ),
        links=tuple(LinkCheck("per_region", map_index=i) for i in range(len(REGIONS))),
    ),
    DagCheck(
        "example_hatchet_bulk",
        conf={"customers": list(BULK_CUSTOMERS), "day": BULK_DAY},
        task_states={"build_batch": "success", "export_all": "success"},
        runs=tuple(
            ExpectedRun("export_all", "demo-etl", {"customer": c, "day": BULK_DAY}, {"customer": c}, batch_index=i)
            for i, c in enumerate(BULK_CUSTOMERS)
        ),
        xcoms=(
            XComCheck("export_all", "return_value", _run_ids("export_all")),
            XComCheck("export_all", "output", _outputs("export_all")),
            XComCheck("export_all", "hatchet_batch_key", lambda sim: f"{sim.dag_id}|{sim.dag_run_id}|export_all|-1"),
        ),
    ),
    _sensor("poke"),
    _sensor("deferrable"),
    _sensor_bulk("poke"),
    _sensor_bulk("deferrable"),
)

PROVIDER_CANCEL_CHECKS: tuple[CancelCheck, ...] = (
    CancelCheck(
        "e2e_hatchet_cancel", "wait_on_hang", ExpectedRun("wait_on_hang", "demo-hang", {"day": DS}, status="CANCELLED")
    ),
)

PROVIDER_RERUN_CHECKS: tuple[RerunCheck, ...] = (
    RerunCheck("e2e_hatchet_rerun", "run_twice", ExpectedRun("run_twice", "demo-etl", {"day": DS})),
)
