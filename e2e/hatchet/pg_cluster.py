"""The throwaway Postgres clusters of the stacks, with their data outside the checkout.

They are ``make hatchet-up``'s and the Airflow metadata DB of ``make e2e-prod``.

Run as root, Postgres's commands run as the ``postgres`` user (``initdb`` refuses root), who cannot enter a
checkout under ``/root`` or inside a ``mktemp -d`` folder. So a cluster's data and server log live outside the
checkout, in ``/var/tmp/airflow-provider-hatchet-pg-<hash>``, where ``<hash>`` is taken from the folder the
cluster belongs to (``build/hatchet``, the e2e-prod run folder): two checkouts never share one. The folder is
made fresh for each start (mode 0700, owned by ``postgres`` when root), and removed when the cluster is stopped.

Only the standard library, so that ``python3 pg_cluster.py remove OWNER...`` runs without a virtual environment:
it stops the cluster of each OWNER folder if one runs, and removes its data folder.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
# The first that exists; /var/tmp before /tmp, which is often a small tmpfs.
TMP_ROOTS = (Path("/var/tmp"), Path("/tmp"))
HOME_PREFIX = "airflow-provider-hatchet-pg-"


class ClusterError(RuntimeError):
    """A Postgres cluster could not be created, started or stopped."""


def cluster_home(owner: Path, tmp_root: Path | None = None) -> Path:
    """The folder, outside the checkout, that holds the cluster belonging to ``owner``.

    :param owner: the folder the cluster belongs to (e.g. ``<checkout>/build/hatchet``); its resolved path names
        the cluster's folder, so two checkouts get two folders.
    :param tmp_root: where the folder goes (default: ``/var/tmp``, else ``/tmp``).
    """
    root = tmp_root or next((path for path in TMP_ROOTS if path.is_dir()), TMP_ROOTS[-1])
    digest = hashlib.sha256(str(owner.resolve()).encode()).hexdigest()[:16]
    return root / f"{HOME_PREFIX}{digest}"


def server_user() -> tuple[int, int, set[int]]:
    """The uid, primary gid and groups Postgres's commands run as: ``postgres`` when we are root, else us."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid(), {os.getegid(), *os.getgroups()}
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise ClusterError("running as root, but there is no 'postgres' user to run Postgres as") from None
    return entry.pw_uid, entry.pw_gid, set(os.getgrouplist("postgres", entry.pw_gid))


def blocked_at(path: Path, uid: int, gids: set[int]) -> Path | None:
    """The first folder on ``path`` (from ``/`` down, ``path`` included) that a user may not enter, if any.

    Reads the mode bits only (no ACLs), as the kernel does for a user who is not root.

    :param path: an existing folder.
    :param uid: the user.
    :param gids: the user's groups.
    """
    if uid == 0:
        return None
    for folder in [*reversed(path.parents), path]:
        info = folder.stat()
        if info.st_uid == uid:
            bit = stat.S_IXUSR
        elif info.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return folder
    return None


def as_postgres(argv: list[str]) -> list[str]:
    """Run a Postgres server command as the ``postgres`` user when we are root (initdb refuses root).

    :param argv: the command.
    """
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def ensure_postgres() -> None:
    """Install Debian's PostgreSQL server when it is missing (needs root, as on CI)."""
    if (POSTGRES_BIN / "initdb").exists():
        return
    if os.geteuid() != 0:
        raise ClusterError(f"PostgreSQL 15 is not installed ({POSTGRES_BIN} missing); apt-get install postgresql")
    print("[postgres] installing postgresql from Debian's packages", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql-15",
                    "postgresql-contrib-15"], check=True, env=env, stdout=subprocess.DEVNULL)
    if not (POSTGRES_BIN / "initdb").exists():
        raise ClusterError(f"postgresql installed, but {POSTGRES_BIN / 'initdb'} is still missing")


def make_home(home: Path) -> None:
    """Create ``home`` afresh for the server's user (mode 0700), stopping and removing a crashed run's cluster.

    :param home: the folder :func:`cluster_home` chose.
    """
    uid, gid, gids = server_user()
    if home.is_symlink():
        raise ClusterError(f"{home} is a symbolic link, not a cluster folder this stack made; remove it")
    if home.exists():
        if home.stat().st_uid != uid:
            raise ClusterError(f"{home} exists and belongs to uid {home.stat().st_uid}, not to uid {uid} that runs "
                               "Postgres here; remove it")
        stop_cluster(home)
    # mkdir does not follow a symbolic link planted since the check: it fails instead.
    os.mkdir(home, 0o700)
    if os.geteuid() == 0:
        os.chown(home, uid, gid)
    blocked = blocked_at(home, uid, gids)
    if blocked is not None:
        shutil.rmtree(home)
        raise ClusterError(f"the user Postgres runs as (uid {uid}) cannot enter {blocked} "
                           f"(mode {stat.filemode(blocked.stat().st_mode)}), so cannot reach {home}: "
                           f"let it in (chmod o+x {blocked})")


def start_cluster(home: Path, port: int, logs: Path, user: str, databases: list[str]) -> None:
    """Create a throwaway cluster in ``home`` (trust auth, UTC, no fsync), start it on 127.0.0.1, create databases.

    Its server log is ``home/postgres.log``, linked from ``logs/postgres.log`` (and copied there when stopped).
    Stop it with :func:`stop_cluster`.

    :param home: the cluster's folder, from :func:`cluster_home`; made afresh here.
    :param port: the TCP port.
    :param logs: where the command logs go.
    :param user: the superuser's name.
    :param databases: databases to create, each in UTC.
    """
    make_home(home)
    pgdata = home / "data"
    pg_log = home / "postgres.log"
    pg_log.touch()
    uid, gid, _ = server_user()
    os.chown(pg_log, uid, gid)
    link = logs / "postgres.log"
    link.unlink(missing_ok=True)
    link.symlink_to(pg_log)
    run(as_postgres([str(POSTGRES_BIN / "initdb"), "-D", str(pgdata), "-U", user, "--auth=trust",
                     "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]),
        what="initdb", log_file=logs / "initdb.log", cwd=home)
    options = (f"-p {port} -k {pgdata} -c listen_addresses=127.0.0.1 "
               "-c max_connections=400 -c timezone=UTC -c fsync=off -c synchronous_commit=off "
               "-c full_page_writes=off -c shared_buffers=256MB")
    run(as_postgres([str(POSTGRES_BIN / "pg_ctl"), "-D", str(pgdata), "-l", str(pg_log), "-o", options,
                     "-w", "start"]),
        what="pg_ctl start", log_file=logs / "pg_ctl.log", cwd=home)
    psql = [str(POSTGRES_BIN / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", user,
            "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q"]
    for name in databases:
        run([*psql, "-c", f"CREATE DATABASE {name}", "-c", f"ALTER DATABASE {name} SET timezone TO 'UTC'"],
            what="create database", log_file=logs / "psql.log")


def stop_cluster(home: Path, logs: Path | None = None) -> None:
    """Stop the cluster in ``home`` if it runs and remove ``home``; nothing to do when it is gone.

    :param home: the cluster's folder.
    :param logs: where to keep a copy of its server log (``postgres.log``), if anywhere.
    """
    if home.is_symlink():
        raise ClusterError(f"{home} is a symbolic link, not a cluster folder this stack made; remove it")
    if not home.exists():
        return
    stop_server(home / "data")
    if logs is not None and (home / "postgres.log").is_file() and logs.is_dir():
        kept = logs / "postgres.log"
        kept.unlink(missing_ok=True)
        shutil.copyfile(home / "postgres.log", kept)
    shutil.rmtree(home)


def stop_server(pgdata: Path) -> None:
    """Stop the server of the data folder ``pgdata`` if it runs; raise if it is still running after.

    :param pgdata: the data folder.
    """
    if not server_running(pgdata):
        return
    subprocess.run(as_postgres([str(POSTGRES_BIN / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"]),
                   check=False, stdout=subprocess.DEVNULL, cwd="/")
    if server_running(pgdata):
        raise ClusterError(f"the Postgres server of {pgdata} did not stop; stop it "
                           f"(pg_ctl -D {pgdata} -m immediate stop) and remove {pgdata.parent}")


def server_running(pgdata: Path) -> bool:
    """Whether the process that ``pgdata/postmaster.pid`` names is alive and is Postgres (not a reused pid).

    :param pgdata: the data folder.
    """
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        return Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"
    except (OSError, ValueError):
        return False


def run(argv: list[str], *, what: str, log_file: Path, cwd: Path | None = None) -> None:
    """Run a command to completion, appending its output to ``log_file``; raise with the log's tail if it fails.

    :param argv: the command.
    :param what: a description for the error.
    :param log_file: where its output goes.
    :param cwd: its working folder (the ``postgres`` user may not be able to enter ours).
    """
    with log_file.open("ab") as out:
        code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, check=False).returncode
    if code != 0:
        lines = log_file.read_text(errors="replace").splitlines()[-40:]
        raise ClusterError(f"{what} failed ({code}):\n" + "\n".join(lines))


def main() -> int:
    """``remove OWNER...``: stop each owner's cluster if it runs, and remove its folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    remove = sub.add_parser("remove", help="stop and remove the cluster of each folder")
    remove.add_argument("owners", nargs="+", type=Path, help="the folders the clusters belong to")
    args = parser.parse_args()
    for owner in args.owners:
        home = cluster_home(owner)
        if home.exists() or home.is_symlink():
            stop_cluster(home)
            print(f"[postgres] removed {home} (the cluster of {owner})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
