"""Helpers for running real Airflow in tests, on Airflow 2.10 and every Airflow 3 line alike.

Nothing here imports Airflow at module import time: ``conftest.py`` must configure the environment first.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from airflow_provider_hatchet._airflow_version import AIRFLOW_V_3_0_PLUS

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun

# The empty bundle conftest configures for DAGs defined inside tests.
INLINE_BUNDLE = "inline-test-dags"


def conn_env_var(conn_id: str) -> str:
    """Return the environment variable Airflow reads a connection from.

    :param conn_id: the connection id.
    """
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def conn_json(
    *,
    conn_type: str,
    host: str | None = None,
    login: str | None = None,
    password: str | None = None,
    schema: str | None = None,
    port: int | None = None,
    extra: dict[str, Any] | str | None = None,
) -> str:
    """Serialize connection fields to the JSON form of ``AIRFLOW_CONN_<ID>``.

    :param conn_type: the connection type, e.g. ``hatchet``.
    :param host: host or URL.
    :param login: login.
    :param password: password or token.
    :param schema: schema.
    :param port: port.
    :param extra: the extra field, as a dict or an already-serialized JSON string.
    """
    fields: dict[str, Any] = {
        "conn_type": conn_type,
        "host": host,
        "login": login,
        "password": password,
        "schema": schema,
        "port": port,
        "extra": extra,
    }
    return json.dumps({key: value for key, value in fields.items() if value is not None})


def register_dag(dag: Any) -> None:
    """Write an inline DAG to the metadata DB so Airflow 3's ``dag.test()`` accepts it.

    Airflow 2 runs unserialized DAGs, so this does nothing there.

    :param dag: the DAG object.
    """
    if not AIRFLOW_V_3_0_PLUS:
        return
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    DagBundlesManager().sync_bundles_to_db()
    bag = _dag_bag_class()(dag_folder=os.devnull, collect_dags=False)
    bag.bag_dag(dag)
    try:  # Airflow 3.1+
        from airflow.dag_processing.dagbag import sync_bag_to_db
    except ImportError:
        try:
            from airflow.models.dagbag import sync_bag_to_db
        except ImportError:  # Airflow 3.0: a method of the bag, which reads the path a parsed DAG has
            dag.relative_fileloc = dag.fileloc
            bag.sync_to_db(INLINE_BUNDLE, None)
            return
    sync_bag_to_db(bag, INLINE_BUNDLE, None)


def _dag_bag_class() -> Any:
    """Airflow's ``DagBag``: in ``airflow.dag_processing.dagbag`` since 3.2, in ``airflow.models.dagbag`` before."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag
    return DagBag


def run_dag(dag: Any, *, run_conf: dict[str, Any] | None = None, **test_kwargs: Any) -> DagRun:
    """Run one DAG run in-process with ``dag.test()`` and return the finished DagRun.

    The metadata DB must exist (use the ``airflow_db`` fixture). A failing task does not raise: assert on
    ``dag_run.state`` and on the task instances.

    :param dag: the DAG object.
    :param run_conf: the DAG run conf.
    :param test_kwargs: passed through to ``dag.test()``.
    """
    register_dag(dag)
    dag_run: DagRun = dag.test(run_conf=run_conf, **test_kwargs)
    return dag_run


def task_state(dag_run: DagRun, task_id: str, map_index: int = -1) -> str | None:
    """Return the final state of one task instance of a run, as a plain string.

    :param dag_run: the DagRun ``run_dag`` returned.
    :param task_id: the task id.
    :param map_index: the map index for mapped tasks.
    """
    ti = dag_run.get_task_instance(task_id, map_index=map_index)
    if ti is None:
        raise LookupError(f"No task instance {task_id!r} (map index {map_index}) in {dag_run.run_id}")
    return None if ti.state is None else str(ti.state)


def xcom_value(dag_run: DagRun, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    """Return the (deserialized) XCom a task of the run pushed, or None.

    :param dag_run: the DagRun ``run_dag`` returned.
    :param task_id: the task id that pushed the XCom.
    :param key: the XCom key.
    :param map_index: the map index for mapped tasks.
    """
    ti = dag_run.get_task_instance(task_id, map_index=map_index)
    if ti is None:
        raise LookupError(f"No task instance {task_id!r} (map index {map_index}) in {dag_run.run_id}")
    if map_index >= 0:
        return ti.xcom_pull(task_ids=task_id, key=key, map_indexes=map_index)
    return ti.xcom_pull(task_ids=task_id, key=key)


def example_bag(stem: str) -> Any:
    """Parse the example DAG file ``dags_examples/<stem>.py`` with Airflow's own DagBag, as the DAG processor does.

    :param stem: the file name without ``.py``.
    """
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "dags_examples" / f"{stem}.py"
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2.10, 3.0 and 3.1
        from airflow.models.dagbag import DagBag as OlderDagBag

        return OlderDagBag(dag_folder=str(path), include_examples=False)
    return DagBag(dag_folder=str(path))


def example_dag(dag_id: str) -> Any:
    """Parse the example DAG file ``dags_examples/<dag_id>.py`` as the DAG processor does and return that DAG.

    :param dag_id: the DAG id; ``file_stem::dag_id`` picks a file that defines several DAGs.
    """
    stem, _, dag_id = dag_id.rpartition("::") if "::" in dag_id else (dag_id, "", dag_id)
    bag = example_bag(stem)
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]
