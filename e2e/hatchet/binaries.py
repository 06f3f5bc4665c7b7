"""Build the real Hatchet server (and Toxiproxy) from the Go module proxy, cached per version.

``go install module/cmd/x@version`` would first ask the proxy for ``module/cmd/x`` as a module of its own, and the
proxy here answers that with 403 rather than 404, which ends the lookup. So the released module is downloaded
with ``go mod download`` and each command is built inside it, under the module's own go.sum: the same build that
``go install`` makes. Binaries land in ``$HATCHET_CACHE/<module>-<version>/bin`` and are reused until the pinned
version changes. Two builds of one version on one machine take turns (``<module>-<version>.lock`` beside the
folder), and each builds into a private temporary folder renamed to ``bin`` when complete.

Usage: ``python binaries.py hatchet v0.105.0`` or ``python binaries.py toxiproxy v2.5.0``; prints the bin folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

MODULES = {
    "hatchet": (
        "github.com/hatchet-dev/hatchet",
        {"hatchet-migrate": "./cmd/hatchet-migrate", "hatchet-admin": "./cmd/hatchet-admin",
         "hatchet-api": "./cmd/hatchet-api", "hatchet-engine": "./cmd/hatchet-engine"},
    ),
    "toxiproxy": ("github.com/Shopify/toxiproxy/v2", {"toxiproxy-server": "./cmd/server"}),
}
# A build in progress (or killed) lives in ``<cache>/<module>-<version>/bin.<random>.partial``.
STAGING_SUFFIX = ".partial"


def cache_root() -> Path:
    """Where built binaries are kept between runs (``$HATCHET_CACHE``, else ``~/.cache/airflow-provider-hatchet``)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "airflow-provider-hatchet"
    return Path(os.environ.get("HATCHET_CACHE", default))


def build(name: str, version: str) -> Path:
    """Build every command of one module at one version, unless the cache already holds them.

    Builds of one version are serialised by a lock file in the cache folder: a second build (another
    ``make hatchet-up`` on the same machine) waits for the first, then finds the binaries it made. Each build
    writes into a private temporary folder, renamed into place once every binary is built, so a build that
    fails or is killed leaves no half-filled ``bin`` behind.

    :param name: ``hatchet`` or ``toxiproxy``.
    :param version: the module version, e.g. ``v0.105.0``.
    :return: the folder holding the binaries.
    """
    module, commands = MODULES[name]
    home = cache_root() / f"{name}-{version}"
    bin_dir = home / "bin"
    if _complete(bin_dir, commands):
        print(f"[build] {name} {version}: cached in {bin_dir}", file=sys.stderr)
        return bin_dir
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home.with_name(f"{home.name}.lock"), f"{name} {version}"):
        if _complete(bin_dir, commands):
            print(f"[build] {name} {version}: built by another run, cached in {bin_dir}", file=sys.stderr)
            return bin_dir
        # Under the lock no other build of this version runs: any staging folder left is a killed build's.
        for stale in home.glob(f"*{STAGING_SUFFIX}"):
            shutil.rmtree(stale, ignore_errors=True)
        started = time.monotonic()
        source = _download(module, version)
        staging = Path(tempfile.mkdtemp(prefix="bin.", suffix=STAGING_SUFFIX, dir=home))
        try:
            staging.chmod(0o755)
            env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly -buildvcs=false"}
            for binary, package in commands.items():
                subprocess.run(
                    ["go", "build", "-trimpath", "-ldflags", f"-X main.Version={version}", "-o",
                     str(staging / binary), package],
                    cwd=source, env=env, check=True,
                )
            _replace(staging, bin_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    print(f"[build] {name} {version}: built in {time.monotonic() - started:.0f}s into {bin_dir}", file=sys.stderr)
    return bin_dir


def _complete(bin_dir: Path, commands: dict[str, str]) -> bool:
    """Whether ``bin_dir`` holds every command's binary.

    :param bin_dir: the folder.
    :param commands: binary name to package.
    """
    return all((bin_dir / binary).is_file() for binary in commands)


@contextlib.contextmanager
def _locked(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing); the kernel drops it if this process dies.

    :param path: the lock file.
    :param what: the build, for the line saying that another one is running.
    """
    with path.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"[build] {what}: another build holds {path}; waiting for it", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _download(module: str, version: str) -> str:
    """Download a module's source with ``go mod download``.

    :param module: the module path.
    :param version: its version.
    :return: the folder of its source.
    """
    if shutil.which("go") is None:
        raise SystemExit(f"[build] {module}@{version}: 'go' is not on PATH")
    download = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"], capture_output=True, text=True, check=False
    )
    info = json.loads(download.stdout or "{}")
    if download.returncode != 0 or "Dir" not in info:
        raise SystemExit(f"[build] go mod download {module}@{version} failed: {info.get('Error') or download.stderr}")
    return str(info["Dir"])


def _replace(staging: Path, bin_dir: Path) -> None:
    """Rename ``staging`` to ``bin_dir``; an incomplete ``bin_dir`` is first moved aside, then removed.

    :param staging: the finished build.
    :param bin_dir: where the binaries belong.
    """
    old = None
    if bin_dir.exists():
        old = Path(tempfile.mkdtemp(prefix="bin.", suffix=STAGING_SUFFIX, dir=bin_dir.parent))
        bin_dir.rename(old / "bin")
    staging.rename(bin_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


if __name__ == "__main__":
    print(build(sys.argv[1], sys.argv[2]))
