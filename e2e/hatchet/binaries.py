"""Build the real Hatchet server (and Toxiproxy) from the Go module proxy, cached per version.

``go install module/cmd/x@version`` would first ask the proxy for ``module/cmd/x`` as a module of its own, and the
proxy here answers that with 403 rather than 404, which ends the lookup. So the released module is downloaded
with ``go mod download`` and each command is built inside it, under the module's own go.sum: the same build that
``go install`` makes. Binaries land in ``$HATCHET_CACHE/<module>-<version>/bin`` and are reused until the pinned
version changes.

Usage: ``python binaries.py hatchet v0.105.0`` or ``python binaries.py toxiproxy v2.5.0``; prints the bin folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

MODULES = {
    "hatchet": (
        "github.com/hatchet-dev/hatchet",
        {"hatchet-migrate": "./cmd/hatchet-migrate", "hatchet-admin": "./cmd/hatchet-admin",
         "hatchet-api": "./cmd/hatchet-api", "hatchet-engine": "./cmd/hatchet-engine"},
    ),
    "toxiproxy": ("github.com/Shopify/toxiproxy/v2", {"toxiproxy-server": "./cmd/server"}),
}


def cache_root() -> Path:
    """Where built binaries are kept between runs (``$HATCHET_CACHE``, else ``~/.cache/airflow-provider-hatchet``)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "airflow-provider-hatchet"
    return Path(os.environ.get("HATCHET_CACHE", default))


def build(name: str, version: str) -> Path:
    """Build every command of one module at one version, unless the cache already holds them.

    :param name: ``hatchet`` or ``toxiproxy``.
    :param version: the module version, e.g. ``v0.105.0``.
    :return: the folder holding the binaries.
    """
    module, commands = MODULES[name]
    bin_dir = cache_root() / f"{name}-{version}" / "bin"
    if all((bin_dir / binary).is_file() for binary in commands):
        print(f"[build] {name} {version}: cached in {bin_dir}", file=sys.stderr)
        return bin_dir
    if shutil.which("go") is None:
        raise SystemExit(f"[build] {name} {version}: 'go' is not on PATH")
    started = time.monotonic()
    download = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"], capture_output=True, text=True, check=False
    )
    info = json.loads(download.stdout or "{}")
    if download.returncode != 0 or "Dir" not in info:
        raise SystemExit(f"[build] go mod download {module}@{version} failed: {info.get('Error') or download.stderr}")
    staging = bin_dir.with_name("bin.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly -buildvcs=false"}
    for binary, package in commands.items():
        subprocess.run(
            ["go", "build", "-trimpath", "-ldflags", f"-X main.Version={version}", "-o", str(staging / binary),
             package],
            cwd=info["Dir"], env=env, check=True,
        )
    shutil.rmtree(bin_dir, ignore_errors=True)
    staging.rename(bin_dir)
    print(f"[build] {name} {version}: built in {time.monotonic() - started:.0f}s into {bin_dir}", file=sys.stderr)
    return bin_dir


if __name__ == "__main__":
    print(build(sys.argv[1], sys.argv[2]))
