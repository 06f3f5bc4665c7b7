"""Show that installing this package leaves Airflow's resolved grpcio and protobuf as they were.

For each Airflow version, in a throwaway venv: install ``apache-airflow==<version>``, freeze, install this
package on top (with its dependencies), freeze again, and print the grpcio and protobuf lines of both. Exits 1
when either line changed. Needs ``.tools/bin/uv`` (``make env`` installs it) and PyPI.

    python scripts/grpc_pins.py 2.10.5 3.3.2
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UV = ROOT / ".tools" / "bin" / "uv"
WATCHED = ("grpcio", "protobuf")


def freeze(python: Path) -> dict[str, str]:
    """The watched packages' ``pip freeze`` lines in a venv.

    :param python: the venv's interpreter.
    """
    listed = subprocess.run([str(UV), "pip", "freeze", "--python", str(python)], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    return {line.split("==")[0].lower(): line for line in listed if line.split("==")[0].lower() in WATCHED}


def check(airflow_version: str) -> bool:
    """Install Airflow, then this package, and compare the watched lines; print both.

    :param airflow_version: e.g. ``3.3.2``.
    """
    with tempfile.TemporaryDirectory() as folder:
        venv = Path(folder) / "venv"
        python = venv / "bin" / "python"
        subprocess.run([str(UV), "venv", "-q", "--python", f"{sys.version_info[0]}.{sys.version_info[1]}",
                        str(venv)], check=True)
        subprocess.run([str(UV), "pip", "install", "-q", "--python", str(python),
                        f"apache-airflow=={airflow_version}"], check=True)
        before = freeze(python)
        subprocess.run([str(UV), "pip", "install", "-q", "--python", str(python), str(ROOT)], check=True)
        after = freeze(python)
    same = before == after
    for name in WATCHED:
        print(f"Airflow {airflow_version}: before {before.get(name, '-'):<22} after {after.get(name, '-'):<22}"
              f"{'same' if before.get(name) == after.get(name) else 'CHANGED'}")
    return same


def main(versions: list[str]) -> int:
    """Check each Airflow version; 0 when nothing changed.

    :param versions: Airflow versions.
    """
    results = [check(version) for version in versions or ["2.10.5", "3.3.2"]]
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
