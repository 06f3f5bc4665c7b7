"""Start and stop the processes the end-to-end run needs: simulator, metadata DB, Airflow components.

Every child runs in its own session (process group), stopped as a group. Children inherit ``E2E_RUN_TAG`` from
``run.sh``, which kills whatever still carries it at the end, even if this interpreter died.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
HEALTH_KEYS = {"scheduler": "scheduler", "triggerer": "triggerer", "dag-processor": "dag_processor"}
SQLITE_PREFIX = "sqlite:///"
PGIDS_FILE = "pgids"
# Four Airflow processes and a dozen tasks share one SQLite file on two cores: a writer can wait longer than
# SQLite's default 5 s for the lock, which Airflow answers with a 500 "Database error".
SQLITE_BUSY_TIMEOUT_S = 25


class StackError(RuntimeError):
    """A process of the stack did not come up or died."""


def free_port() -> int:
    """Return a TCP port that is free on every interface right now, below the kernel's ephemeral range.

    A server's port taken from the ephemeral range (where ``bind(0)`` picks) can be given to an outgoing
    connection while the server restarts: hatchet-api's hundreds of connections to a killed hatchet-engine all
    reconnect at once, and the engine's health listener (``:port``, every interface) then failed with "address
    already in use". Below the range, only another listener can take it.

    :return: the port number
    """
    low = _ephemeral_low()
    ports = list(range(10_000, low)) if low > 11_000 else []
    random.shuffle(ports)
    for port in ports[:200]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # no room below the range
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def wait_until(what: str, probe: Callable[[], Any], timeout: float, alive: Callable[[], None]) -> Any:
    """Poll ``probe`` until it returns a truthy value.

    :param what: description used in the timeout error
    :param probe: returns a truthy value once the condition holds; exceptions count as "not yet"
    :param timeout: seconds before giving up
    :param alive: raises if a process the condition depends on has died
    :return: the probe's first truthy value
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        alive()
        try:
            value = probe()
        except Exception as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        time.sleep(0.5)
    raise StackError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass
class Proc:
    """One child process running in its own process group, logging to a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def check_alive(self) -> None:
        """Raise :class:`StackError` with the log tail if the process has exited."""
        rc = self.popen.poll()
        if rc is not None:
            raise StackError(f"{self.name} exited with code {rc}; log tail:\n{tail(self.log)}")


def tail(path: Path, lines: int = 40) -> str:
    """Return the last lines of a log file.

    :param path: the file
    :param lines: how many lines
    :return: the text, or a note that the file is missing
    """
    if not path.exists():
        return f"({path} missing)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Stack:
    """The processes of one end-to-end run and the settings they share."""

    run_dir: Path
    dags_folder: Path
    extra_bundles: dict[str, Path] = field(default_factory=dict)
    simulator_module: str = "airflow_provider_hatchet.testing"
    procs: list[Proc] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    simulator: dict[str, str] = field(default_factory=dict)
    api_url: str = ""
    username: str = "e2e"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    @property
    def logs(self) -> Path:
        """Folder holding one log file per process."""
        return self.run_dir / "logs"

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        """Start a process in a new session (process group), logging to ``<run>/logs/<name>.log``.

        :param name: short name, also the log file name
        :param argv: command line
        :param env: environment (defaults to the stack's Airflow environment)
        :return: the started process
        """
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env if env is not None else self.env,
                cwd=self.run_dir,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        # Celery and Redis rewrite their process titles over their environment, hiding E2E_RUN_TAG from
        # e2e/sweep.py: it also kills the process groups listed here.
        with (self.run_dir / PGIDS_FILE).open("a") as pgids:
            pgids.write(f"{popen.pid}\n")
        return proc

    def check_alive(self) -> None:
        """Raise if any started process has exited."""
        for proc in self.procs:
            proc.check_alive()

    def start_simulator(self) -> dict[str, str]:
        """Start the Hatchet API simulator on a free loopback port and read its info file.

        :return: the info (url, tenant_id, token)
        """
        info_file = self.run_dir / "simulator.json"
        env = dict(os.environ)
        proc = self.spawn(
            "simulator",
            [sys.executable, "-m", self.simulator_module, "--port", "0", "--info-file", str(info_file)],
            env=env,
        )

        def ready() -> dict[str, str] | None:
            proc.check_alive()
            if not info_file.exists():
                return None
            info: dict[str, str] = json.loads(info_file.read_text())
            return info

        info: dict[str, str] = wait_until("simulator info file", ready, 60, proc.check_alive)
        missing = {"url", "tenant_id", "token"} - info.keys()
        if missing:
            raise StackError(f"simulator info file lacks {sorted(missing)}: {info}")
        self.simulator = info
        return info

    def configure_airflow(self, sql_alchemy_conn: str, settings: dict[str, str] | None = None) -> None:
        """Build the environment every Airflow process shares.

        :param sql_alchemy_conn: metadata DB URL
        :param settings: more ``AIRFLOW__...`` variables, over the defaults (e.g. another executor)
        """
        home = self.run_dir / "airflow_home"
        home.mkdir()
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        passwords = home / "passwords.json"
        passwords.write_text(json.dumps({self.username: self.password}))
        bundles = [
            {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {"path": str(self.dags_folder)}},
        ] + [
            {"name": name, "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {"path": str(path)}}
            for name, path in self.extra_bundles.items()
        ]
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs / "tasks"),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY": str(self.logs / "dag_processor"),
            **(settings or {}),
        }
        if sql_alchemy_conn.startswith(SQLITE_PREFIX):
            # Airflow puts $AIRFLOW_HOME/config on sys.path; the connect args are read from an import path.
            (home / "config").mkdir()
            (home / "config" / "e2e_sqlite.py").write_text(
                f"CONNECT_ARGS = {{'timeout': {SQLITE_BUSY_TIMEOUT_S}}}\n"
            )
            self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = "e2e_sqlite.CONNECT_ARGS"
            self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"] = "e2e_sqlite.CONNECT_ARGS"

    def migrate(self) -> None:
        """Create the metadata DB schema."""
        log = self.logs / "db-migrate.log"
        with log.open("wb") as out:
            rc = subprocess.run(
                [self.airflow_bin, "db", "migrate"], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.run_dir, check=False,
            ).returncode
        if rc != 0:
            raise StackError(f"airflow db migrate failed ({rc}):\n{tail(log)}")
        conn = self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        if conn.startswith(SQLITE_PREFIX):
            # Write-ahead logging lets readers (the UI, the scheduler's queries) proceed while a task writes.
            with contextlib.closing(sqlite3.connect(conn[len(SQLITE_PREFIX):])) as db:
                mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise StackError(f"could not switch the SQLite metadata DB to WAL (journal mode {mode!r})")

    @property
    def airflow_bin(self) -> str:
        """Path of the ``airflow`` CLI of the running interpreter's venv."""
        return str(Path(sys.executable).with_name("airflow"))

    def start_airflow(self) -> None:
        """Start api-server, scheduler, dag-processor and triggerer and wait until all report healthy."""
        for component in AIRFLOW_COMPONENTS:
            self.spawn(component, [self.airflow_bin, component])

        def api_up() -> bool:
            return httpx.get(f"{self.api_url}/api/v2/monitor/health", timeout=5).status_code == 200

        wait_until("api-server health endpoint", api_up, 180, self.check_alive)

        def all_healthy() -> dict[str, Any] | None:
            health: dict[str, Any] = httpx.get(f"{self.api_url}/api/v2/monitor/health", timeout=5).json()
            states = {key: (health.get(key) or {}).get("status") for key in ("metadatabase", *HEALTH_KEYS.values())}
            return health if all(state == "healthy" for state in states.values()) else None

        wait_until("scheduler, triggerer and dag-processor heartbeats", all_healthy, 180, self.check_alive)

    def stop_process(self, name: str, timeout: float = 60) -> None:
        """Stop one running process (its group) with SIGTERM and wait for it, as an operator restarting it would.

        :param name: the process's name
        :param timeout: seconds before SIGKILL
        """
        proc = next(p for p in reversed(self.procs) if p.name == name and p.popen.poll() is None)
        _signal_group(proc.popen.pid, signal.SIGTERM)
        try:
            proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait(timeout=5)
        self.procs.remove(proc)  # stopped on purpose: no longer checked for being alive

    def start_process(self, name: str) -> Proc:
        """Start an Airflow component again (after :meth:`stop_process`); it logs to the same file.

        :param name: the component, e.g. ``triggerer``
        :return: the new process
        """
        return self.spawn(name, [self.airflow_bin, name])

    def stop(self) -> None:
        """Stop every process group: SIGTERM, wait, then SIGKILL what is left."""
        for proc in reversed(self.procs):
            _signal_group(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in reversed(self.procs):
            remaining = max(0.1, deadline - time.monotonic())
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=remaining)
        for proc in self.procs:
            _signal_group(proc.popen.pid, signal.SIGKILL)
            try:
                proc.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                print(f"[e2e] {proc.name} (pid {proc.popen.pid}) did not die", file=sys.stderr)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
