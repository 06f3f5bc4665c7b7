"""Where the stacks' throwaway Postgres clusters keep their data (``e2e/hatchet/pg_cluster.py``).

Run as root, Postgres runs as the ``postgres`` user, who cannot enter a checkout under ``/root`` or inside a
``mktemp -d`` folder; the cluster's folder lives outside the checkout, one per owning folder, and goes when the
cluster stops. The clusters here are real (Debian's Postgres 15, on a free loopback port) and are skipped where
it is not installed; none of them touches the stack ``make hatchet-up`` started.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.loopback

HATCHET_DIR = Path(__file__).resolve().parent.parent / "e2e" / "hatchet"
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


def load(name: str, folder: Path = HATCHET_DIR) -> ModuleType:
    """A module of ``e2e/hatchet`` (or ``e2e``), imported from its path (its own imports of its neighbours
    included), leaving ``sys.path`` and ``sys.modules`` as they were."""
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    sys.path[:0] = [str(HATCHET_DIR), str(HATCHET_DIR.parent)]
    try:
        spec = importlib.util.spec_from_file_location(f"stack_{name}", folder / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved_path
        for added in set(sys.modules) - saved_modules:
            if added in ("binaries", "pg_cluster", "real_stack", "stack"):
                del sys.modules[added]
    return module


pg_cluster = load("pg_cluster")


def postgres_uid() -> int | None:
    """The ``postgres`` user's uid, if there is one."""
    try:
        return pwd.getpwnam("postgres").pw_uid
    except KeyError:
        return None


as_root_with_postgres_user = pytest.mark.skipif(
    os.geteuid() != 0 or postgres_uid() is None, reason="needs root and a 'postgres' user"
)
needs_postgres = pytest.mark.skipif(
    os.geteuid() != 0 or postgres_uid() is None or not (POSTGRES_BIN / "initdb").exists()
    or shutil.which("runuser") is None,
    reason="needs root, runuser, a 'postgres' user and Debian's Postgres 15",
)


@pytest.fixture
def locked_checkout() -> Iterator[Path]:
    """``build/hatchet`` of a checkout inside a ``mktemp -d`` folder of ``/tmp`` (mode 0700), removed at the end."""
    locked = Path(tempfile.mkdtemp(prefix="locked-checkout-", dir="/tmp"))
    owner = locked / "checkout" / "build" / "hatchet"
    (owner / "logs").mkdir(parents=True)
    yield owner
    shutil.rmtree(locked)


@pytest.fixture
def homes() -> Iterator[list[Path]]:
    """Cluster folders a test made: stopped and removed at the end, whatever happened."""
    made: list[Path] = []
    yield made
    for home in made:
        pg_cluster.stop_cluster(home)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def query(port: int, sql: str) -> str:
    """One value from the cluster on ``port``, through psql over TCP, as its ``hatchet`` superuser."""
    done = subprocess.run([str(POSTGRES_BIN / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "hatchet",
                           "-d", "hatchet", "-tAc", sql], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def accepts(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_two_checkouts_get_two_folders_and_one_checkout_always_the_same(tmp_path: Path) -> None:
    first, second = tmp_path / "one" / "build" / "hatchet", tmp_path / "two" / "build" / "hatchet"
    (tmp_path / "one").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "one")

    assert pg_cluster.cluster_home(first) != pg_cluster.cluster_home(second)
    assert pg_cluster.cluster_home(first) == pg_cluster.cluster_home(tmp_path / "link" / "build" / "hatchet")
    assert pg_cluster.cluster_home(first).parent == Path("/var/tmp")
    assert pg_cluster.cluster_home(first, tmp_root=tmp_path).parent == tmp_path


@pytest.fixture
def open_tree() -> Iterator[Path]:
    """A folder every user may enter (pytest's own base folder is 0700), removed at the end."""
    made = Path(tempfile.mkdtemp(prefix="blocked-at-", dir="/var/tmp" if Path("/var/tmp").is_dir() else None))
    made.chmod(0o755)
    yield made
    shutil.rmtree(made)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand a folder to another uid")
def test_blocked_at_names_the_first_folder_a_user_cannot_enter(open_tree: Path) -> None:
    owner, stranger, group = 54321, 54322, 54323
    shut = open_tree / "shut"
    (shut / "inner").mkdir(parents=True)
    os.chown(shut, owner, group)
    shut.chmod(0o710)

    assert pg_cluster.blocked_at(shut / "inner", stranger, {stranger}) == shut
    assert pg_cluster.blocked_at(shut / "inner", stranger, {stranger, group}) is None
    assert pg_cluster.blocked_at(shut / "inner", owner, {owner}) is None
    shut.chmod(0o600)
    assert pg_cluster.blocked_at(shut / "inner", owner, {owner}) == shut
    assert pg_cluster.blocked_at(shut / "inner", 0, set()) is None


@as_root_with_postgres_user
def test_from_a_checkout_postgres_cannot_enter_the_chosen_folder_is_reachable(
    locked_checkout: Path, homes: list[Path]
) -> None:
    uid = postgres_uid()
    assert uid is not None
    groups = set(os.getgrouplist("postgres", pwd.getpwnam("postgres").pw_gid))
    home = pg_cluster.cluster_home(locked_checkout)
    homes.append(home)

    pg_cluster.make_home(home)

    assert pg_cluster.blocked_at(locked_checkout, uid, groups) == locked_checkout.parents[2]
    assert pg_cluster.blocked_at(home, uid, groups) is None
    assert (home.stat().st_uid, home.stat().st_mode & 0o777) == (uid, 0o700)
    if shutil.which("runuser"):
        subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(home), "-a", "-w", str(home)],
                       check=True)


@needs_postgres
def test_a_cluster_starts_from_a_locked_checkout_and_stopping_removes_its_folder(
    locked_checkout: Path, homes: list[Path]
) -> None:
    home = pg_cluster.cluster_home(locked_checkout)
    homes.append(home)
    port = free_port()
    logs = locked_checkout / "logs"

    pg_cluster.start_cluster(home, port, logs, "hatchet", ["hatchet"])
    timezone = query(port, "SHOW timezone")
    pg_cluster.stop_cluster(home, logs)

    assert timezone == "UTC"
    assert not home.exists()
    assert not accepts(port)
    # The server log outlives the folder, as a plain file among the stack's logs.
    assert not (logs / "postgres.log").is_symlink()
    assert "database system is ready to accept connections" in (logs / "postgres.log").read_text()


@needs_postgres
def test_a_crashed_runs_cluster_is_stopped_and_replaced_and_remove_cleans_up(
    locked_checkout: Path, homes: list[Path]
) -> None:
    home = pg_cluster.cluster_home(locked_checkout)
    homes.append(home)
    logs = locked_checkout / "logs"
    crashed, port = free_port(), free_port()
    pg_cluster.start_cluster(home, crashed, logs, "hatchet", ["hatchet"])
    query(crashed, "CREATE TABLE left_behind (id int)")

    # The run that started it died without stopping it; the next start finds its folder.
    pg_cluster.start_cluster(home, port, logs, "hatchet", ["hatchet"])
    tables = query(port, "SELECT count(*) FROM pg_tables WHERE tablename = 'left_behind'")
    old_still_listening = accepts(crashed)
    removed = subprocess.run([sys.executable, str(HATCHET_DIR / "pg_cluster.py"), "remove", str(locked_checkout)],
                             capture_output=True, text=True, check=False)

    assert (tables, old_still_listening) == ("0", False)
    assert removed.returncode == 0, removed.stderr
    assert str(home) in removed.stdout
    assert not home.exists()
    assert not accepts(port)


def test_a_symbolic_link_in_the_folders_place_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("mine")
    home = pg_cluster.cluster_home(tmp_path / "owner", tmp_root=tmp_path)
    home.symlink_to(victim)

    with pytest.raises(pg_cluster.ClusterError, match=f"{home} is a symbolic link"):
        pg_cluster.make_home(home)
    with pytest.raises(pg_cluster.ClusterError, match=f"{home} is a symbolic link"):
        pg_cluster.stop_cluster(home)
    assert (victim / "keep").read_text() == "mine"


@as_root_with_postgres_user
def test_a_folder_someone_else_owns_is_refused(tmp_path: Path) -> None:
    home = pg_cluster.cluster_home(tmp_path / "owner", tmp_root=tmp_path)
    home.mkdir()
    (home / "keep").write_text("theirs")
    os.chown(home, 65534, 65534)

    with pytest.raises(pg_cluster.ClusterError, match=f"{home} exists and belongs to uid 65534"):
        pg_cluster.make_home(home)
    assert (home / "keep").read_text() == "theirs"


@needs_postgres
def test_hatchet_down_stops_the_cluster_and_removes_its_folder(
    tmp_path: Path, locked_checkout: Path, homes: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_stack = load("real_stack")
    monkeypatch.setattr(real_stack, "STATE_DIR", locked_checkout)
    monkeypatch.setattr(real_stack, "STATE_FILE", locked_checkout / "state.json")
    monkeypatch.setattr(real_stack, "ENV_FILE", locked_checkout / "env")
    home = pg_cluster.cluster_home(locked_checkout)
    homes.append(home)
    port = free_port()
    pg_cluster.start_cluster(home, port, locked_checkout / "logs", "hatchet", ["hatchet"])
    (locked_checkout / "state.json").write_text(json.dumps({"pids": {}, "postgres": True, "pg_home": str(home)}))

    real_stack.down()

    assert not home.exists()
    assert not accepts(port)
    assert not (locked_checkout / "state.json").exists()


@needs_postgres
def test_hatchet_down_still_stops_a_cluster_started_before_the_data_moved_out(
    locked_checkout: Path, homes: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stack started by the earlier real_stack.py recorded only its data folder ("pgdata"), then in the checkout.
    real_stack = load("real_stack")
    monkeypatch.setattr(real_stack, "STATE_DIR", locked_checkout)
    monkeypatch.setattr(real_stack, "STATE_FILE", locked_checkout / "state.json")
    monkeypatch.setattr(real_stack, "ENV_FILE", locked_checkout / "env")
    home = pg_cluster.cluster_home(locked_checkout)
    homes.append(home)
    port = free_port()
    pg_cluster.start_cluster(home, port, locked_checkout / "logs", "hatchet", ["hatchet"])
    state = {"version": "v0.105.0", "pgdata": str(home / "data"), "pids": {}, "postgres": True}
    (locked_checkout / "state.json").write_text(json.dumps(state))

    real_stack.down()

    assert not accepts(port)
    assert not pg_cluster.server_running(home / "data")
    assert not (locked_checkout / "state.json").exists()


@needs_postgres
def test_e2e_prods_airflow_postgres_lives_outside_the_run_folder_and_goes_with_it(
    locked_checkout: Path, homes: list[Path]
) -> None:
    prod_services = load("prod_services", HATCHET_DIR.parent)
    run_dir = locked_checkout.parent / "e2e" / "prod"
    (run_dir / "logs").mkdir(parents=True)
    stack = prod_services.Stack(run_dir=run_dir, dags_folder=run_dir)
    services = prod_services.ProdServices(stack)
    homes.append(services.pg_home)

    url = services.start_postgres()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    answered = accepts(port)
    services.stop_postgres()

    assert url.startswith("postgresql+psycopg2://airflow@127.0.0.1:")
    assert answered
    assert services.pg_home != pg_cluster.cluster_home(locked_checkout)
    assert not services.pg_home.exists()
    assert not accepts(port)
