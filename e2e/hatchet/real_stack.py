"""Run a real Hatchet on 127.0.0.1: Postgres, hatchet-engine, hatchet-api and a hatchet-sdk worker.

``up`` builds (or reuses) the binaries, creates a throwaway Postgres cluster (its data outside the checkout, in the
folder ``pg_cluster.cluster_home`` names for ``build/hatchet``, so that the ``postgres`` user can reach it), migrates,
creates the keys, seeds the default tenant and a second ("foreign") one, mints API tokens, starts the engine, the
API and the worker, checks one run end to end, and writes ``build/hatchet/env``: ``export`` lines for
``AIRFLOW_CONN_HATCHET_DEFAULT`` and the ``HATCHET_CLIENT_*`` variables, ready to ``source``. ``down`` stops
everything it started and removes the cluster's data folder. A failed or interrupted ``up`` stops what it had
started before it exits.

The server makes no outbound connection: the message queue is Postgres, the security check is off, gRPC is
plaintext on 127.0.0.1 and analytics, Sentry and tracing are off by default.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from binaries import build  # noqa: E402
from pg_cluster import cluster_home, ensure_postgres, start_cluster, stop_cluster, stop_server  # noqa: E402
from stack import free_port, tail, wait_until  # noqa: E402

ROOT = HERE.parent.parent
STATE_DIR = ROOT / "build" / "hatchet"
ENV_FILE = STATE_DIR / "env"
STATE_FILE = STATE_DIR / "state.json"
DEFAULT_TENANT = "707d0855-80ab-4e1f-a156-f1c4546cbf52"
FOREIGN_TENANT = "5b1c3a7e-0f4d-4c2a-9e8b-7d6f5a4b3c21"
# The workflows worker.py registers; the stack is ready when all of them are listed.
WORKFLOW_NAMES = ("demo-etl", "demo-fail", "demo-hang", "demo-multi", "demo-slow", "demo-idempotent", "demo-event")
NAMESPACE_PREFIX = "airflowtest_"


class StackError(RuntimeError):
    """A part of the Hatchet stack could not be built or started."""


def log(message: str) -> None:
    """Print a progress line.

    :param message: the text.
    """
    print(f"[hatchet] {message}", flush=True)


def run(argv: list[str], *, env: dict[str, str] | None = None, what: str, log_file: Path) -> str:
    """Run a command to completion, appending its output to ``log_file``; raise with the tail if it fails.

    :param argv: the command.
    :param env: its environment.
    :param what: a description for the error.
    :param log_file: where its stderr goes.
    :return: its stdout.
    """
    with log_file.open("ab") as err:
        done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=err, check=False)
    if done.returncode != 0:
        raise StackError(f"{what} failed ({done.returncode}):\n{tail(log_file)}")
    return done.stdout.decode()


class HatchetStack:
    """The processes of one real Hatchet, and what ``down`` needs to stop them.

    :param version: the Hatchet release to run.
    :param worker_python: the interpreter of the hatchet-sdk virtual environment.
    """

    def __init__(self, version: str, worker_python: str) -> None:
        self.version = version
        self.worker_python = str(Path(worker_python).absolute())
        self.logs = STATE_DIR / "logs"
        self.pg_home = cluster_home(STATE_DIR)
        self.state: dict[str, Any] = {"version": version, "pg_home": str(self.pg_home), "pids": {}}
        self.bin = Path()
        self.env: dict[str, str] = {}
        self.ports: dict[str, int] = {}

    def save(self) -> None:
        """Write what ``down`` needs, after every process start."""
        STATE_FILE.write_text(json.dumps(self.state, indent=2))

    def up(self) -> None:
        """Start everything and write the env file."""
        started = time.monotonic()
        # hatchet-api keeps a gRPC connection open for 30 minutes per REST trigger (docs/hatchet-behaviour.md):
        # give the processes every file descriptor they may have.
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        ensure_postgres()
        self.bin = build("hatchet", self.version)
        log(f"binaries ready ({time.monotonic() - started:.0f}s)")
        shutil.rmtree(STATE_DIR, ignore_errors=True)
        self.logs.mkdir(parents=True)
        self.save()
        self.ports = {name: free_port() for name in ("postgres", "api", "grpc", "health")}
        self.start_postgres()
        self.configure()
        self.spawn("engine", [str(self.bin / "hatchet-engine"), "--config", str(STATE_DIR / "config")])
        self.spawn("api", [str(self.bin / "hatchet-api"), "--config", str(STATE_DIR / "config")])
        api = f"http://127.0.0.1:{self.ports['api']}"
        self.wait_http("engine readiness", f"http://127.0.0.1:{self.ports['health']}/ready")
        self.wait_http("api readiness", f"{api}/api/ready")
        tokens = {tenant: self.mint_token(tenant) for tenant in (DEFAULT_TENANT, FOREIGN_TENANT)}
        client_env = {
            "HATCHET_CLIENT_TOKEN": tokens[DEFAULT_TENANT],
            "HATCHET_CLIENT_SERVER_URL": api,
            "HATCHET_CLIENT_HOST_PORT": f"127.0.0.1:{self.ports['grpc']}",
            "HATCHET_CLIENT_TLS_STRATEGY": "none",
        }
        self.spawn("worker", [self.worker_python, str(HERE / "worker.py")], env={**os.environ, **client_env})
        self.wait_ready(api, tokens[DEFAULT_TENANT])
        self.write_env(client_env, tokens[FOREIGN_TENANT])
        log(f"engine {self.version} up on {api} in {time.monotonic() - started:.0f}s; env in {ENV_FILE}")

    def start_postgres(self) -> None:
        """Create a throwaway cluster owned by this stack and start it on a loopback port, in UTC."""
        self.state["postgres"] = True
        self.save()
        start_cluster(self.pg_home, self.ports["postgres"], self.logs, "hatchet", ["hatchet"])
        log(f"postgres on 127.0.0.1:{self.ports['postgres']}, data in {self.pg_home}")

    def configure(self) -> None:
        """Migrate, create keys and config files, and seed both tenants."""
        api_url = f"http://127.0.0.1:{self.ports['api']}"
        grpc = f"127.0.0.1:{self.ports['grpc']}"
        self.env = {
            **os.environ,
            "DATABASE_URL": f"postgresql://hatchet@127.0.0.1:{self.ports['postgres']}/hatchet?sslmode=disable",
            "SERVER_MSGQUEUE_KIND": "postgres",
            "SERVER_SECURITY_CHECK_ENABLED": "false",
            "SERVER_GRPC_INSECURE": "true",
            "SERVER_GRPC_BIND_ADDRESS": "127.0.0.1",
            "SERVER_GRPC_PORT": str(self.ports["grpc"]),
            "SERVER_GRPC_BROADCAST_ADDRESS": grpc,
            "SERVER_INTERNAL_CLIENT_BASE_STRATEGY": "none",
            "SERVER_INTERNAL_CLIENT_INTERNAL_GRPC_BROADCAST_ADDRESS": grpc,
            "SERVER_URL": api_url,
            "SERVER_PORT": str(self.ports["api"]),
            "SERVER_HEALTHCHECK_PORT": str(self.ports["health"]),
            "SERVER_AUTH_COOKIE_SECRETS": f"{secrets.token_hex(16)} {secrets.token_hex(16)}",
            "SERVER_AUTH_COOKIE_DOMAIN": "127.0.0.1",
            "SERVER_AUTH_COOKIE_INSECURE": "true",
            "SERVER_LOGGER_LEVEL": "warn",
        }
        run([str(self.bin / "hatchet-migrate")], env=self.env, what="hatchet-migrate",
            log_file=self.logs / "migrate.log")
        config = STATE_DIR / "config"
        config.mkdir()
        run([str(self.bin / "hatchet-admin"), "quickstart", "--skip", "certs", "--config", str(config),
             "--generated-config-dir", str(config)],
            env=self.env, what="hatchet-admin quickstart", log_file=self.logs / "admin.log")
        foreign = {"DEFAULT_TENANT_ID": FOREIGN_TENANT, "DEFAULT_TENANT_SLUG": "foreign",
                   "DEFAULT_TENANT_NAME": "Foreign"}
        run([str(self.bin / "hatchet-admin"), "seed", "--config", str(config)], env={**self.env, **foreign},
            what="hatchet-admin seed (foreign tenant)", log_file=self.logs / "admin.log")

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Start a long-running process in its own process group, logging to ``logs/<name>.log``.

        :param name: the process's name.
        :param argv: the command.
        :param env: its environment (default: the server environment).
        """
        with (self.logs / f"{name}.log").open("ab") as out:
            popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env or self.env, cwd=STATE_DIR, start_new_session=True)
        self.state["pids"][name] = popen.pid
        self.save()

    def check_alive(self) -> None:
        """Raise with its log tail if a started process has exited."""
        for name, pid in self.state["pids"].items():
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                raise StackError(f"{name} exited ({status}); log tail:\n{tail(self.logs / f'{name}.log')}")

    def wait_http(self, what: str, url: str, timeout: float = 120) -> None:
        """Wait until ``url`` answers 200.

        :param what: a description for the error.
        :param url: the health URL.
        :param timeout: seconds.
        """
        wait_until(what, lambda: httpx.get(url, timeout=5).status_code == 200, timeout, self.check_alive)

    def mint_token(self, tenant: str) -> str:
        """Create an API token for a tenant.

        :param tenant: the tenant id.
        """
        out = run([str(self.bin / "hatchet-admin"), "token", "create", "--config", str(STATE_DIR / "config"),
                   "--tenant-id", tenant, "--name", "airflow-provider-tests"],
                  env=self.env, what="hatchet-admin token create", log_file=self.logs / "admin.log")
        token = out.strip().splitlines()[-1].strip() if out.strip() else ""
        if not token.startswith("ey"):
            raise StackError("hatchet-admin token create printed no token")
        return token

    def wait_ready(self, api: str, token: str) -> None:
        """Wait until the worker has registered every workflow, then run one to completion.

        :param api: the API URL.
        :param token: the default tenant's token.
        """
        client = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        expected = {*WORKFLOW_NAMES, *(NAMESPACE_PREFIX + name for name in WORKFLOW_NAMES)}

        def registered() -> bool:
            rows = client.get(f"/api/v1/tenants/{DEFAULT_TENANT}/workflows", params={"limit": 200}).json()
            return expected <= {row["name"] for row in rows.get("rows") or []}

        wait_until("the worker's workflows", registered, 120, self.check_alive)
        body = {"workflowName": "demo-etl", "input": {"smoke": True}, "return_only_id": True}
        trigger = client.post(f"/api/v1/stable/tenants/{DEFAULT_TENANT}/workflow-runs/trigger", json=body)
        trigger.raise_for_status()
        run_id = trigger.json()["run"]["metadata"]["id"]

        def completed() -> bool:
            answer = client.get(f"/api/v1/stable/workflow-runs/{run_id}/status")
            if answer.status_code == 200 and answer.json() in ("FAILED", "CANCELLED"):
                raise StackError(f"the smoke run ended {answer.json()}:\n{tail(self.logs / 'worker.log')}")
            return answer.status_code == 200 and answer.json() == "COMPLETED"

        wait_until("a smoke run of demo-etl", completed, 60, self.check_alive)

    def write_env(self, client_env: dict[str, str], foreign_token: str) -> None:
        """Write ``build/hatchet/env``: a connection URI for Airflow and the variables hatchet-sdk reads.

        :param client_env: the ``HATCHET_CLIENT_*`` variables.
        :param foreign_token: a token of the second tenant, for the tests.
        """
        # The engine serves plain gRPC on loopback: TLS off, so that waits hear their runs on the run-event stream.
        conn = {"conn_type": "hatchet", "host": client_env["HATCHET_CLIENT_SERVER_URL"],
                "password": client_env["HATCHET_CLIENT_TOKEN"], "extra": {"grpc_tls": "false"}}
        values = {
            **client_env,
            "AIRFLOW_CONN_HATCHET_DEFAULT": json.dumps(conn),
            "HATCHET_ENGINE_VERSION": self.version,
            "HATCHET_FOREIGN_TOKEN": foreign_token,
            "HATCHET_DATABASE_URL": self.env["DATABASE_URL"],
            "HATCHET_HEALTH_URL": f"http://127.0.0.1:{self.ports['health']}",
        }
        ENV_FILE.write_text("".join(f"export {key}={shlex.quote(value)}\n" for key, value in values.items()))
        ENV_FILE.chmod(0o600)


def read_env_file(path: Path = ENV_FILE) -> dict[str, str]:
    """Read the ``export K=V`` lines that :meth:`HatchetStack.write_env` wrote.

    :param path: the env file.
    """
    values = {}
    for line in path.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        values[key] = shlex.split(value)[0] if value else ""
    return values


def down() -> None:
    """Stop the processes and the Postgres cluster that ``up`` recorded; safe to call when nothing runs."""
    if not STATE_FILE.exists():
        log("nothing to stop")
        return
    state = json.loads(STATE_FILE.read_text())
    pids = list(state.get("pids", {}).items())
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        for _, pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(pid) for _, pid in pids):
            time.sleep(0.2)
    left = [name for name, pid in pids if _alive(pid)]
    if state.get("postgres") and "pg_home" in state:
        stop_cluster(Path(state["pg_home"]), STATE_DIR / "logs")
    elif state.get("postgres"):  # a stack started before the data moved out of build/hatchet
        stop_server(Path(state["pgdata"]))
    STATE_FILE.unlink()
    ENV_FILE.unlink(missing_ok=True)
    if left:
        raise StackError(f"still running after SIGKILL: {left}")
    log("stopped")


def restart_engine() -> None:
    """``kill -9`` the running stack's hatchet-engine and start it again as ``up`` did (the same command,
    environment and ports), once its ports are free; record its new pid for ``down``; return once it is ready."""
    state = json.loads(STATE_FILE.read_text())
    pid = state["pids"]["engine"]
    proc = Path(f"/proc/{pid}")
    argv = (proc / "cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
    env = dict(item.split("=", 1) for item in (proc / "environ").read_bytes().decode().split("\0") if item)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    wait_until("the killed hatchet-engine to exit", lambda: not _alive(pid), 15, lambda: None)
    ports = [int(env["SERVER_HEALTHCHECK_PORT"]), int(env["SERVER_GRPC_PORT"])]
    wait_until(f"ports {ports} to be free", lambda: all(_bindable(p) for p in ports), 30, lambda: None)
    logs = STATE_DIR / "logs"
    with (logs / "engine.log").open("ab") as out:
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                 cwd=STATE_DIR, start_new_session=True)
    state["pids"]["engine"] = popen.pid
    STATE_FILE.write_text(json.dumps(state, indent=2))

    def exited() -> None:
        if popen.poll() is not None:
            raise StackError(f"the restarted hatchet-engine exited ({popen.returncode}); log tail:\n"
                             f"{tail(logs / 'engine.log')}")

    health = f"http://127.0.0.1:{ports[0]}/ready"
    wait_until("the restarted hatchet-engine's readiness", lambda: httpx.get(health, timeout=5).status_code == 200,
               120, exited)
    log(f"hatchet-engine restarted (pid {popen.pid})")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go listens: TIME_WAIT does not block
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0]:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def main() -> int:
    """``up``, ``down`` or ``restart-engine``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up")
    up_parser.add_argument("--version", required=True)
    up_parser.add_argument("--worker-python", required=True)
    sub.add_parser("down")
    sub.add_parser("restart-engine", help="kill -9 hatchet-engine and start it again (a fault test's step)")
    args = parser.parse_args()
    if args.command == "down":
        down()
        return 0
    if args.command == "restart-engine":
        restart_engine()
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    down()
    stack = HatchetStack(args.version, args.worker_python)
    try:
        stack.up()
    except BaseException as exc:
        log(f"up failed: {exc!r}; stopping what was started (logs stay in {stack.logs})")
        down()
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
