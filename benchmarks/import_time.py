"""Measure what importing provider modules adds on top of Airflow's own base import.

Each sample is a fresh interpreter that imports Airflow's base module and then the measured module, timing
each import with ``perf_counter``; the script prints the medians over ``--repeat`` samples per module. Usage::

    python benchmarks/import_time.py [MODULE ...] [--repeat N] [--no-dbt]

MODULE defaults to ``airflow_provider_hatchet.hooks.hatchet``. When the dbt Cloud provider is installed,
its hook is measured as well for comparison.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
from importlib.metadata import version

DEFAULT_MODULES = ["airflow_provider_hatchet.hooks.hatchet"]
DBT_CLOUD_HOOK = "airflow.providers.dbt.cloud.hooks.dbt"

_PROBE = """
import sys, time
laps = []
for name in sys.argv[1:]:
    started = time.perf_counter()
    __import__(name)
    laps.append(time.perf_counter() - started)
print(*laps)
"""


def base_module() -> str:
    """Return the module every Airflow task process imports anyway on the installed major version."""
    return "airflow.sdk" if int(version("apache-airflow").split(".")[0]) >= 3 else "airflow.models.baseoperator"


def sample(modules: list[str], env: dict[str, str]) -> list[float]:
    """Return the seconds one fresh interpreter spends importing each of ``modules``, in order.

    :param modules: dotted module names; each is timed after the ones before it are imported.
    :param env: the subprocess environment.
    """
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *modules],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"importing {modules} failed:\n{result.stderr[-2000:]}")
    return [float(lap) for lap in result.stdout.strip().splitlines()[-1].split()]


def median_laps_ms(modules: list[str], repeat: int, env: dict[str, str]) -> list[float]:
    """Return the median import time of each of ``modules`` in milliseconds, after one discarded warm-up.

    :param modules: dotted module names, imported in order in each interpreter.
    :param repeat: the number of measured samples.
    :param env: the subprocess environment.
    """
    sample(modules, env)
    samples = [sample(modules, env) for _ in range(repeat)]
    return [statistics.median(column) * 1000 for column in zip(*samples, strict=True)]


def main(argv: list[str] | None = None) -> int:
    """Print the base import time and what each module adds to it.

    :param argv: command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", default=DEFAULT_MODULES, help="modules to measure")
    parser.add_argument("--repeat", type=int, default=7, help="samples per case (median is reported)")
    parser.add_argument("--no-dbt", action="store_true", help="skip the dbt Cloud comparison")
    args = parser.parse_args(argv)

    modules: list[str] = list(args.modules)
    if not args.no_dbt and DBT_CLOUD_HOOK not in modules:
        if importlib.util.find_spec("airflow.providers.dbt") is not None:
            modules.append(DBT_CLOUD_HOOK)
        else:
            print(f"{DBT_CLOUD_HOOK}: not installed, skipped")

    with tempfile.TemporaryDirectory(prefix="import-time-") as home:
        env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        # Bytecode for everything goes to a scratch cache, written by the warm-up run, as an installed wheel has.
        env.update({"AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PYTHONPYCACHEPREFIX": home})
        base = base_module()
        results = {module: median_laps_ms([base, module], args.repeat, env) for module in modules}

    print(
        f"apache-airflow {version('apache-airflow')}, Python {sys.version.split()[0]}, "
        f"median of {args.repeat} fresh interpreters"
    )
    base_ms = statistics.median(laps[0] for laps in results.values())
    print(f"{'import ' + base:<60} {base_ms:8.0f} ms")
    for module, (_, added_ms) in results.items():
        print(f"{'  then import ' + module:<60} {added_ms:+8.0f} ms  ({100 * added_ms / base_ms:.1f}% of the base)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
