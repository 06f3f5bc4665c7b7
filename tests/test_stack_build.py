"""The binary cache of ``e2e/hatchet/binaries.py``: builds of one version take turns and leave no partial folder.

A stand-in ``go`` on PATH takes the Go toolchain's place (it records its calls and writes each ``-o`` file in two
halves, with a pause between them); the locking and renaming under test are the real ones.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

BINARIES = Path(__file__).resolve().parent.parent / "e2e" / "hatchet" / "binaries.py"
VERSION = "v9.9.9"

FAKE_GO = """#!{python}
import json, os, sys, time
args = sys.argv[1:]
with open(os.environ["GO_STUB_LOG"], "a") as log:
    log.write(" ".join(args[:2]) + " " + args[-1] + "\\n")
if args[:2] == ["mod", "download"]:
    print(json.dumps({{"Dir": os.environ["GO_STUB_SOURCE"]}}))
    sys.exit(0)
out = args[args.index("-o") + 1]
if os.path.basename(out) == os.environ.get("GO_STUB_FAIL", ""):
    sys.exit("fake go: build failed")
with open(out, "w") as binary:
    binary.write("binary of " + args[-1])
    binary.flush()
    time.sleep(float(os.environ.get("GO_STUB_PAUSE", "0.3")))
    binary.write(" at " + args[args.index("-ldflags") + 1] + ", complete")
"""

CHILD = """
import sys
import time
sys.path.insert(0, sys.argv[1])
import binaries
sys.stdin.readline()
print(binaries.build("hatchet", sys.argv[2]))
"""


@pytest.fixture
def fake_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH with the stand-in ``go`` first, the cache in ``tmp_path/cache``; returns the call log."""
    tools = tmp_path / "tools"
    tools.mkdir()
    go = tools / "go"
    go.write_text(FAKE_GO.format(python=sys.executable))
    go.chmod(0o755)
    source = tmp_path / "source"
    source.mkdir()
    log = tmp_path / "go-calls.log"
    log.touch()
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HATCHET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GO_STUB_LOG", str(log))
    monkeypatch.setenv("GO_STUB_SOURCE", str(source))
    return log


@pytest.fixture
def binaries() -> ModuleType:
    """``e2e/hatchet/binaries.py``, imported from its path."""
    spec = importlib.util.spec_from_file_location("stack_binaries", BINARIES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def commands(binaries: ModuleType) -> dict[str, str]:
    """The hatchet module's binaries and their packages."""
    found: dict[str, str] = binaries.MODULES["hatchet"][1]
    return found


def expected(package: str) -> str:
    """What the stand-in writes for a finished build of ``package``."""
    return f"binary of {package} at -X main.Version={VERSION}, complete"


def assert_complete(bin_dir: Path, binaries: ModuleType) -> None:
    """Every binary is in ``bin_dir`` and whole."""
    assert {path.name: path.read_text() for path in bin_dir.iterdir()} == {
        binary: expected(package) for binary, package in commands(binaries).items()
    }


def test_two_concurrent_builds_build_once_and_both_get_complete_binaries(
    fake_go: Path, binaries: ModuleType, tmp_path: Path
) -> None:
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(BINARIES.parent), VERSION], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    # Both have imported the module before either starts: they reach build() together.
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.close()
    results = [(child.wait(timeout=60), child.stdout, child.stderr) for child in children]
    outputs = []
    for code, out, err in results:
        assert out is not None and err is not None
        text, errors = out.read(), err.read()
        assert code == 0, errors
        outputs.append(text.strip())

    home = tmp_path / "cache" / f"hatchet-{VERSION}"
    assert outputs == [str(home / "bin")] * 2
    assert_complete(home / "bin", binaries)
    calls = fake_go.read_text().splitlines()
    assert sum(call.startswith("mod download") for call in calls) == 1
    assert sorted(call.split()[-1] for call in calls if call.startswith("build")) == sorted(
        commands(binaries).values()
    )
    assert sorted(path.name for path in home.iterdir()) == ["bin"]
    assert sorted(path.name for path in home.parent.iterdir()) == [f"hatchet-{VERSION}", f"hatchet-{VERSION}.lock"]


def test_a_build_replaces_what_a_killed_build_left(fake_go: Path, binaries: ModuleType, tmp_path: Path) -> None:
    home = tmp_path / "cache" / f"hatchet-{VERSION}"
    (home / "bin.k1ll3d.partial").mkdir(parents=True)
    (home / "bin.k1ll3d.partial" / "hatchet-api").write_text("binary of ./cmd/hatchet-api")
    (home / "bin").mkdir()
    (home / "bin" / "hatchet-api").write_text("an old binary, the others missing")

    assert binaries.build("hatchet", VERSION) == home / "bin"

    assert_complete(home / "bin", binaries)
    assert sorted(path.name for path in home.iterdir()) == ["bin"]


def test_a_build_killed_mid_way_frees_the_lock_and_the_next_one_completes(
    fake_go: Path, binaries: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GO_STUB_PAUSE", "30")
    killed = subprocess.Popen([sys.executable, "-c", CHILD, str(BINARIES.parent), VERSION], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                              start_new_session=True)
    assert killed.stdin is not None
    killed.stdin.write("go\n")
    killed.stdin.close()
    deadline = time.monotonic() + 30
    while "build" not in fake_go.read_text():  # it holds the lock, half-way through its first binary
        assert killed.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(timeout=10)
    monkeypatch.setenv("GO_STUB_PAUSE", "0")

    home = tmp_path / "cache" / f"hatchet-{VERSION}"
    assert binaries.build("hatchet", VERSION) == home / "bin"
    assert_complete(home / "bin", binaries)
    assert sorted(path.name for path in home.iterdir()) == ["bin"]


def test_a_failed_build_leaves_nothing_and_the_next_one_builds(
    fake_go: Path, binaries: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "cache" / f"hatchet-{VERSION}"
    monkeypatch.setenv("GO_STUB_FAIL", "hatchet-api")
    monkeypatch.setenv("GO_STUB_PAUSE", "0")

    with pytest.raises(subprocess.CalledProcessError):
        binaries.build("hatchet", VERSION)

    assert list(home.iterdir()) == []
    monkeypatch.delenv("GO_STUB_FAIL")
    assert binaries.build("hatchet", VERSION) == home / "bin"
    assert_complete(home / "bin", binaries)


def test_a_filled_cache_needs_no_go(binaries: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "cache" / f"hatchet-{VERSION}" / "bin"
    bin_dir.mkdir(parents=True)
    for binary in commands(binaries):
        (bin_dir / binary).write_text("built earlier")
    monkeypatch.setenv("HATCHET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))

    assert binaries.build("hatchet", VERSION) == bin_dir
    assert {path.read_text() for path in bin_dir.iterdir()} == {"built earlier"}
