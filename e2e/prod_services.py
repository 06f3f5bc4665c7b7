"""The production-shaped services of ``make e2e-prod``: Postgres as Airflow's metadata DB, Redis as Celery's
broker, the CeleryExecutor's settings and its workers.

Airflow's Postgres is a cluster of its own (not a database in the Hatchet cluster): it lives and dies with the
Airflow stack, and the Hatchet crash tests never touch it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "hatchet"))

import contextlib

from pg_cluster import cluster_home, start_cluster, stop_cluster
from stack import Proc, Stack, StackError, free_port, tail, wait_until

REDIS_SERVER = Path("/usr/bin/redis-server")
# Small on purpose: two cores carry Hatchet, Postgres, Redis and every Airflow process.
WORKER_CONCURRENCY = 4
# Seconds without a heartbeat before the scheduler fails a task whose worker died (default 300); then it retries.
HEARTBEAT_TIMEOUT = 30
WORKERS = ("celery-worker-1", "celery-worker-2")


def ensure_redis() -> None:
    """Install Debian's redis-server when it is missing (needs root, as on CI); it is run by us, not systemd."""
    if REDIS_SERVER.exists():
        return
    if os.geteuid() != 0:
        raise StackError(f"{REDIS_SERVER} is missing; apt-get install redis-server")
    print("[e2e] installing redis-server from Debian's packages", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"], check=True,
                   env=env, stdout=subprocess.DEVNULL)


class ProdServices:
    """Postgres, Redis and the Celery workers of one stack.

    :param stack: the stack the processes belong to (Redis and the workers are stopped with it)
    """

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.pg_home = cluster_home(stack.run_dir)

    def start_postgres(self) -> str:
        """Start Airflow's own Postgres cluster.

        :return: the SQLAlchemy URL of its ``airflow`` database
        """
        port = free_port()
        start_cluster(self.pg_home, port, self.stack.logs, "airflow", ["airflow"])
        return f"postgresql+psycopg2://airflow@127.0.0.1:{port}/airflow"

    def stop_postgres(self) -> None:
        """Stop the cluster (after every Airflow process) and remove its data folder."""
        stop_cluster(self.pg_home, self.stack.logs)

    def start_redis(self) -> str:
        """Start Redis on a free loopback port, without persistence.

        :return: its URL
        """
        ensure_redis()
        port = free_port()
        proc = self.stack.spawn("redis", [str(REDIS_SERVER), "--port", str(port), "--bind", "127.0.0.1",
                                          "--save", "", "--appendonly", "no", "--dir", str(self.stack.run_dir)],
                                env=dict(os.environ))
        wait_until("redis log says ready", lambda: "Ready to accept connections" in proc.log.read_text(), 30,
                   proc.check_alive)
        return f"redis://127.0.0.1:{port}/0"

    @staticmethod
    def celery_settings(broker_url: str, sql_alchemy_conn: str) -> dict[str, str]:
        """The Airflow settings of the CeleryExecutor and of its crash handling.

        :param broker_url: Redis URL
        :param sql_alchemy_conn: the metadata DB, also Celery's result backend
        :return: ``AIRFLOW__...`` variables
        """
        return {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + sql_alchemy_conn,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        }

    def start_worker(self, name: str) -> Proc:
        """Start one Celery worker (``airflow celery worker``) and wait until it is ready.

        :param name: its name, also its Celery node name
        :return: the process
        """
        proc = self.stack.spawn(name, [self.stack.airflow_bin, "celery", "worker", "--celery-hostname",
                                       f"{name}@%h", "--skip-serve-logs"])
        wait_until(f"{name} ready", lambda: " ready." in proc.log.read_text(errors="replace"), 180,
                   proc.check_alive)
        return proc

    def kill_worker(self, proc: Proc) -> list[int]:
        """``kill -9`` a worker and every process under it, as a lost machine would die.

        :param proc: the worker
        :return: the pids killed
        """
        pids = [proc.popen.pid, *descendants(proc.popen.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.popen.wait(timeout=10)
        self.stack.procs.remove(proc)  # died on purpose: no longer checked for being alive
        return pids

    def worker_running(self, pid: int) -> Proc:
        """The worker whose process tree holds ``pid`` (a task's process).

        :param pid: a pid
        :return: the worker
        """
        for proc in self.stack.procs:
            if proc.name in WORKERS and (pid == proc.popen.pid or pid in descendants(proc.popen.pid)):
                return proc
        raise AssertionError(f"no Celery worker runs pid {pid}: {[(p.name, p.popen.pid) for p in self.stack.procs]}")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, children first.

    :param pid: a pid
    :return: the pids
    """
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


__all__ = ["WORKERS", "ProdServices", "descendants", "tail"]
