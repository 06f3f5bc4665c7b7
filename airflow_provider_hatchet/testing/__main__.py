"""``python -m airflow_provider_hatchet.testing``: run the simulator in the foreground."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .demo import DEMO_WORKFLOWS, register_demo_workflows
from .faults import Faults
from .server import bind_socket, make_uvicorn_server, url_of
from .simulator import DEFAULT_CANCEL_DELAY, DEFAULT_VISIBILITY_DELAY, HatchetSimulator


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    :param argv: arguments (default ``sys.argv[1:]``).
    """
    p = argparse.ArgumentParser(prog="python -m airflow_provider_hatchet.testing",
                                description="Run the Hatchet REST API simulator.",
                                epilog="Demo workflows: " + "; ".join(f"{k} ({v})" for k, v in
                                                                       DEMO_WORKFLOWS.items()))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (see --info-file)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    p.add_argument("--fault-rate", type=float, default=0.0, help="probability of a 503/500 answer")
    p.add_argument("--error-after-create", type=float, default=0.0,
                   help="probability that an injected trigger 5xx comes after the run was created")
    p.add_argument("--rate-limit-rate", type=float, default=0.0, help="probability of a 429 answer")
    p.add_argument("--drop-rate", type=float, default=0.0,
                   help="probability that a trigger creates the run and then drops the connection")
    p.add_argument("--fault-routes", default="", help="comma-separated route kinds the faults apply to")
    # The simulator's own defaults, which follow the real server's measured medians (docs/hatchet-behaviour.md).
    p.add_argument("--visibility-delay", type=float, default=DEFAULT_VISIBILITY_DELAY)
    p.add_argument("--cancel-delay", type=float, default=DEFAULT_CANCEL_DELAY)
    p.add_argument("--unknown-workflow-delay", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--request-log", type=int, default=1000, help="requests kept for /_simulator/requests")
    p.add_argument("--no-demo-workflows", action="store_true")
    p.add_argument("--grpc-port", type=int, default=0,
                   help="port of the gRPC face (bulk triggers, events; 0 picks a free one); tokens carry it")
    p.add_argument("--no-grpc", action="store_true", help="serve no gRPC face")
    p.add_argument("--info-file", type=Path, help="write url, tenant_id, token and connection as JSON here")
    p.add_argument("--log-level", default="warning")
    return p.parse_args(argv)


def connection_info(sim: HatchetSimulator) -> dict[str, Any]:
    """Return what clients need to reach the simulator, including an Airflow ``hatchet`` connection.

    :param sim: the simulator (with its real ``server_url``).
    """
    conn: dict[str, Any] = {"conn_type": "hatchet", "host": sim.server_url, "password": sim.token}
    uri_extra = ""
    if sim.grpc_address:
        conn["extra"] = {"grpc_tls": "false"}  # the token carries the gRPC face's address; it has no TLS
        uri_extra = "?grpc_tls=false"
    return {
        "url": sim.server_url,
        "admin_url": f"{sim.server_url}/_simulator",
        "tenant_id": sim.tenant_id,
        "token": sim.token,
        "airflow_conn": conn,
        "airflow_conn_json": json.dumps(conn),
        "airflow_conn_uri": f"hatchet://:{quote(sim.token, safe='')}@{quote(sim.server_url, safe='')}{uri_extra}",
        "grpc_address": sim.grpc_address,
        "pid": os.getpid(),
    }


def write_info(path: Path, info: dict[str, Any]) -> None:
    """Write the info JSON atomically.

    :param path: the destination.
    :param info: the object.
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until interrupted.

    :param argv: command-line arguments.
    """
    args = parse_args(argv)
    sim = HatchetSimulator(visibility_delay=args.visibility_delay, cancel_delay=args.cancel_delay,
                           unknown_workflow_delay=args.unknown_workflow_delay, seed=args.seed,
                           request_log_limit=args.request_log)
    routes = tuple(r for r in args.fault_routes.split(",") if r) or None
    sim.faults = Faults(error_rate=args.fault_rate, error_after_create=args.error_after_create,
                        rate_limit_rate=args.rate_limit_rate, drop_after_create_rate=args.drop_rate,
                        latency=args.latency, routes=routes)
    if not args.no_demo_workflows:
        register_demo_workflows(sim)
    sock = bind_socket(args.host, args.port)
    sim.server_url = url_of(sock)
    server = make_uvicorn_server(sim.asgi_app(), args.log_level)
    face = None if args.no_grpc else sim.grpc_server(args.host, args.grpc_port).start()
    if args.info_file:
        write_info(args.info_file, connection_info(sim))
    print(f"Hatchet simulator on {sim.server_url} (tenant {sim.tenant_id}); admin API at "
          f"{sim.server_url}/_simulator/" + (f"; gRPC on {face.address}" if face else ""), flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        if face is not None:
            face.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
