"""Build the wheel and the sdist, check them, and prove the wheel on fresh Airflow installs (``make dist``).

Subcommands::

    python scripts/dist_check.py build [--release TAG]
        ``uv build`` into dist/, then ``twine check --strict``; the wheel holds LICENSE, py.typed and the package
        only, each file of it tracked by git; the sdist holds LICENSE, README.md and CHANGELOG.md; the version
        is ``airflow_provider_hatchet.__version__``. A dirty tree is reported; with ``--release`` it fails, and
        TAG (the pushed tag) must be ``v<version>``.
    python scripts/dist_check.py install AIRFLOW_VERSION [REQUIREMENT ...]
        a fresh venv under build/dist/: Airflow (and the REQUIREMENTs, e.g. pins), then the wheel from dist/
        with the ``testing`` extra. Installing it leaves Airflow's grpcio and protobuf as they were; ``airflow
        providers list`` shows this version; every name in tests/public_api.txt imports from the installed
        wheel; one example DAG (``DIST_DAG``) runs against the simulator through scripts/demo.sh.

Needs ``.tools/bin/uv`` (the Makefile installs it), git, and the package registries.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
UV = ROOT / ".tools" / "bin" / "uv"
DIST = ROOT / "dist"
VENVS = ROOT / "build" / "dist"
PUBLIC_API = ROOT / "tests" / "public_api.txt"
PACKAGE = "airflow_provider_hatchet"
TWINE = "twine>=6.2"
GRPC_PACKAGES = ("grpcio", "protobuf")
# Imports on Airflow 2.10 and 3.x, and its deferrable sensor runs a trigger through `airflow dags test` too.
DIST_DAG = "example_hatchet_sensor_deferrable"
NOT_IN_WHEEL = ("tests/", "e2e/", "benchmarks/", "dags_examples/", "build/", "scripts/", "docs/")
IN_SDIST = ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml")
# Run in the fresh venv from an empty folder, so that the checkout cannot shadow the installed wheel.
IMPORT_PROBE = """
import importlib, json, sys
module, found = None, {}
for line in open(sys.argv[1], encoding="utf-8"):
    if line.startswith("== "):
        module = importlib.import_module(line[3:].strip())
        found[module.__name__] = []
    elif module is not None and line.strip() and not line[0].isspace():
        head = line[6:] if line.startswith("class ") else line
        name = head.split("(")[0].split(" = ")[0].strip()
        getattr(module, name)
        found[module.__name__].append(name)
import airflow_provider_hatchet as package
print(json.dumps({"file": package.__file__, "version": package.__version__,
                  "info": package.get_provider_info()["versions"], "names": found}))
"""


class DistError(Exception):
    """A check of ``make dist`` failed; the message says which and why."""


def run(*command: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    """Run a command, fail with its output if it fails, and return its stdout.

    :param command: the program and its arguments.
    :param cwd: the working directory.
    :param env: the environment (default: this process's).
    """
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise DistError(f"{' '.join(map(str, command))} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


def source_version() -> str:
    """``__version__`` as written in the package's ``__init__.py``, read without importing it."""
    tree = ast.parse((ROOT / PACKAGE / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__version__" for t in node.targets):
            return str(ast.literal_eval(node.value))
    raise DistError(f"no __version__ in {PACKAGE}/__init__.py")


def dirty_files(root: Path = ROOT) -> list[str] | None:
    """What ``git status`` shows as changed or untracked; None outside a git checkout.

    :param root: the checkout.
    """
    try:
        return run("git", "status", "--porcelain", cwd=root).splitlines()
    except (DistError, FileNotFoundError):
        return None


def tracked_files(root: Path = ROOT) -> set[str]:
    """The files git tracks (committed or staged).

    :param root: the checkout.
    """
    return set(run("git", "ls-files", cwd=root).splitlines())


def release_refusal(version: str, release_tag: str | None, dirty: list[str] | None) -> str | None:
    """Why this tree must not be released as ``release_tag``, or None; outside a release, always None.

    :param version: the package's version.
    :param release_tag: the tag being released, or None outside a release.
    :param dirty: ``dirty_files()``.
    """
    if release_tag is None:
        return None
    if dirty is None:
        return "refusing to release from outside a git checkout"
    if dirty:
        return "refusing to release a tree with uncommitted changes:\n  " + "\n  ".join(dirty[:20])
    if release_tag != f"v{version}":
        return f"the tag {release_tag!r} does not match the package's version {version} (tag v{version})"
    return None


def check_wheel(wheel: Path, version: str, tracked: set[str] | None) -> list[str]:
    """The problems of the wheel's contents.

    :param wheel: the wheel.
    :param version: the expected version.
    :param tracked: the files git tracks, or None outside a git checkout.
    """
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = f"{PACKAGE}-{version}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode() if f"{info}/METADATA" in names else ""
    problems = [f"{name} is in the wheel" for name in names if name.startswith(NOT_IN_WHEEL)]
    problems += [f"{name} is in the wheel, outside the package" for name in names
                 if not name.startswith((f"{PACKAGE}/", f"{info}/")) and not name.startswith(NOT_IN_WHEEL)]
    problems += [f"{required} is missing from the wheel" for required in (f"{info}/licenses/LICENSE",
                                                                          f"{PACKAGE}/py.typed")
                 if required not in names]
    if f"Version: {version}\n" not in metadata:
        problems.append(f"the wheel's METADATA does not say Version: {version}")
    if tracked is not None:
        problems += [f"{name} is in the wheel but not tracked by git (add it, or remove it)" for name in names
                     if name.startswith(f"{PACKAGE}/") and name not in tracked]
    return problems


def check_sdist(sdist: Path, version: str) -> list[str]:
    """The problems of the sdist's contents.

    :param sdist: the ``.tar.gz``.
    :param version: the expected version.
    """
    prefix = f"{PACKAGE}-{version}/"
    with tarfile.open(sdist) as archive:
        names = {name.removeprefix(prefix) for name in archive.getnames()}
    return [f"{required} is missing from the sdist" for required in IN_SDIST if required not in names]


def build(release_tag: str | None) -> None:
    """Build into dist/ and check both files; see the module's docstring.

    :param release_tag: the tag being released, or None outside a release.
    """
    version = source_version()
    dirty = dirty_files()
    refusal = release_refusal(version, release_tag, dirty)
    if refusal:
        raise DistError(refusal)
    if dirty is None:
        print("warning: not a git checkout; the files in the wheel are not checked against git", file=sys.stderr)
    elif dirty:
        print("warning: the tree has uncommitted changes, and the wheel holds them:\n  " + "\n  ".join(dirty[:20]),
              file=sys.stderr)
    run(UV, "build", "-q", "--clear", "--out-dir", DIST, ROOT)
    wheel, sdist = DIST / f"{PACKAGE}-{version}-py3-none-any.whl", DIST / f"{PACKAGE}-{version}.tar.gz"
    missing = [path.name for path in (wheel, sdist) if not path.exists()]
    if missing:
        raise DistError(f"uv build did not write {', '.join(missing)} (is the version {version}?)")
    run(UV, "tool", "run", "--from", TWINE, "twine", "check", "--strict", wheel, sdist)
    problems = check_wheel(wheel, version, None if dirty is None else tracked_files()) + check_sdist(sdist, version)
    if problems:
        raise DistError("\n".join(problems))
    print(f"dist/: {wheel.name} and {sdist.name} ({version}) built and checked")


def clean_env(home: Path) -> dict[str, str]:
    """This environment with a throwaway Airflow home, no Airflow settings and no Hatchet connection.

    :param home: the AIRFLOW_HOME.
    """
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AIRFLOW_", "AIRFLOW__", "HATCHET_CLIENT_")) and key != "PYTHONPATH"}
    # Python 3.11+: neither the working directory nor a script's folder goes first on sys.path, so the
    # checkout's package cannot shadow the wheel (demo.sh runs `python -m` from the checkout).
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False", PYTHONSAFEPATH="1")
    return env


def watched(python: Path) -> dict[str, str]:
    """The venv's grpcio and protobuf ``pip freeze`` lines.

    :param python: the venv's interpreter.
    """
    lines = run(UV, "pip", "freeze", "--python", python).splitlines()
    return {line.split("==")[0].lower(): line for line in lines if line.split("==")[0].lower() in GRPC_PACKAGES}


def json_list(text: str) -> list[dict[str, Any]] | None:
    """The first JSON list of objects in ``text``; Airflow 2 logs to stdout, ``[2026-...]`` lines first.

    :param text: a command's output.
    """
    decoder = json.JSONDecoder()
    for start in (index for index, char in enumerate(text) if char == "["):
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, list) and all(isinstance(entry, dict) for entry in value):
            return value
    return None


def install(airflow_version: str, requirements: list[str]) -> None:
    """Install the wheel into a fresh Airflow venv and use it there; see the module's docstring.

    :param airflow_version: e.g. ``3.3.2``.
    :param requirements: more requirements installed with Airflow, e.g. ``cryptography<51``.
    """
    version = source_version()
    wheel = DIST / f"{PACKAGE}-{version}-py3-none-any.whl"
    if not wheel.exists():
        raise DistError(f"no {wheel.relative_to(ROOT)}: run `python scripts/dist_check.py build` first")
    venv = VENVS / f"venv-airflow-{airflow_version}"
    python = venv / "bin" / "python"
    label = f"Airflow {airflow_version}"
    run(UV, "venv", "-q", "--clear", "--python", f"{sys.version_info[0]}.{sys.version_info[1]}", venv)
    run(UV, "pip", "install", "-q", "--python", python, f"apache-airflow=={airflow_version}", *requirements)
    before = watched(python)
    run(UV, "pip", "install", "-q", "--python", python, f"{PACKAGE.replace('_', '-')}[testing] @ {wheel.as_uri()}",
        f"apache-airflow=={airflow_version}", *requirements)
    after = watched(python)
    for name in GRPC_PACKAGES:
        print(f"{label}: {name} before {before.get(name, '-'):<22} after {after.get(name, '-'):<22}"
              f"{'same' if before.get(name) == after.get(name) else 'CHANGED'}")
    if before != after:
        raise DistError(f"{label}: installing the wheel changed grpcio or protobuf")
    with tempfile.TemporaryDirectory() as folder:
        env = clean_env(Path(folder))
        shown = run(venv / "bin" / "airflow", "providers", "list", "--output", "json", cwd=Path(folder), env=env)
        listed = json_list(shown)
        if listed is None:
            raise DistError(f"{label}: `airflow providers list --output json` printed no JSON list:\n{shown}")
        ours = [entry for entry in listed if entry.get("package_name") == PACKAGE.replace("_", "-")]
        if [entry.get("version") for entry in ours] != [version]:
            raise DistError(f"{label}: `airflow providers list` shows {ours or 'no airflow-provider-hatchet'}, "
                            f"not version {version}")
        print(f"{label}: airflow providers list: airflow-provider-hatchet {version}")
        probe = json.loads(run(python, "-c", IMPORT_PROBE, PUBLIC_API, cwd=Path(folder), env=env))
    if not Path(probe["file"]).is_relative_to(venv) or probe["version"] != version or probe["info"] != [version]:
        raise DistError(f"{label}: imported {probe['file']} version {probe['version']} (provider info "
                        f"{probe['info']}), not the wheel's {version} from {venv}")
    print(f"{label}: {sum(map(len, probe['names'].values()))} public names of {len(probe['names'])} modules import "
          "from the installed wheel")
    with tempfile.TemporaryDirectory() as folder:
        env = clean_env(Path(folder)) | {"DEMO_PYTHON": str(python), "DEMO_DAGS": DIST_DAG}
        print(run("bash", ROOT / "scripts" / "demo.sh", env=env).rstrip())


def main(argv: list[str]) -> int:
    """Parse the arguments and run one subcommand; 1 with the reason when a check fails.

    :param argv: the arguments, without the program's name.
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build")
    build_command.add_argument("--release", metavar="TAG")
    install_command = commands.add_parser("install")
    install_command.add_argument("airflow_version")
    install_command.add_argument("requirements", nargs="*")
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "build":
            build(arguments.release)
        else:
            install(arguments.airflow_version, arguments.requirements)
    except DistError as exc:
        print(f"make dist: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
