"""The package as PyPI and a user see it: one version, absolute links, the license, the checks of ``make dist``.

The metadata and the files come from hatchling itself, in process (no network): the wheel and the sdist are built
into a temporary folder exactly as ``uv build`` builds them. ``make dist`` then installs the wheel into fresh
Airflow venvs (scripts/dist_check.py); these tests prove its checks catch what they are for.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hatchling.builders.sdist import SdistBuilder
from hatchling.builders.wheel import WheelBuilder
from hatchling.metadata.core import ProjectMetadata
from hatchling.plugin.manager import PluginManager

import airflow_provider_hatchet

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- end of the PyPI description -->"
# A Markdown link or image target, and an HTML src or href.
LINK_TARGETS = re.compile(r"\]\(\s*<?([^)\s>]*)|\b(?:src|href)=[\"']([^\"']*)")


def _load_dist_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dist_check", ROOT / "scripts" / "dist_check.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


dist_check = _load_dist_check()


def metadata(root: Path = ROOT) -> Any:
    """The project's core metadata as hatchling makes it, metadata hooks (the PyPI description) applied.

    :param root: the project folder.
    """
    project = ProjectMetadata(str(root), PluginManager())
    project.core  # noqa: B018 (runs the metadata hooks)
    return project


# pyproject.toml as hatchling read it (tomllib is Python 3.11+).
PYPROJECT: dict[str, Any] = ProjectMetadata(str(ROOT), PluginManager()).config


def relative_targets(text: str) -> list[str]:
    """The link and image targets in ``text`` that are not absolute ``http(s)`` URLs.

    :param text: Markdown.
    """
    targets = [first or second for first, second in LINK_TARGETS.findall(text)]
    return [target for target in targets if not re.match(r"https?://", target)]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The wheel and the sdist, built from this checkout by hatchling into a temporary folder."""
    folder = tmp_path_factory.mktemp("dist")
    sdist = next(iter(SdistBuilder(str(ROOT)).build(directory=str(folder), versions=["standard"])))
    wheel = next(iter(WheelBuilder(str(ROOT)).build(directory=str(folder), versions=["standard"])))
    return Path(wheel), Path(sdist)


def test_one_version_in_metadata_provider_info_and_changelog() -> None:
    """pyproject takes the version from ``__version__``; provider info and the newest CHANGELOG entry agree."""
    assert "version" not in PYPROJECT["project"], "the version is written once, in airflow_provider_hatchet"
    version = metadata().version
    newest = re.search(r"^## \[(\d[^\]]*)\] - \d{4}-\d{2}-\d{2}$", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert newest is not None
    assert (version, airflow_provider_hatchet.__version__, newest[1]) == ("1.0.0", "1.0.0", "1.0.0")
    assert airflow_provider_hatchet.get_provider_info()["versions"] == [version]


def test_pypi_description_is_the_readme_head_with_absolute_links_only() -> None:
    """The long description stops at the marker, ends with the links, and has no link PyPI cannot resolve."""
    readme = (ROOT / "README.md").read_text()
    assert readme.count(MARKER) == 1
    description = metadata().core.readme
    assert metadata().core.readme_content_type == "text/markdown"
    assert relative_targets(description) == []
    assert readme.split(MARKER)[0].splitlines()[0] in description
    assert readme.split(MARKER)[1].strip().splitlines()[0] not in description
    assert "make demo" in readme and "make demo" not in description  # contributors' line: GitHub only
    assert "## Install" in description and "## First DAG" in description
    urls = PYPROJECT["project"]["urls"]
    assert f"]({urls['Documentation']})" in description and f"]({urls['Changelog']})" in description


def _project(folder: Path, monkeypatch: pytest.MonkeyPatch, readme: str) -> Path:
    """This project's pyproject and version file with another README, in ``folder``, the working directory."""
    shutil.copy(ROOT / "pyproject.toml", folder)
    (folder / "airflow_provider_hatchet").mkdir()
    shutil.copy(ROOT / "airflow_provider_hatchet" / "__init__.py", folder / "airflow_provider_hatchet")
    (folder / "README.md").write_text(readme)
    # The readme hook reads its fragments from the working directory, as a build backend runs in the project.
    monkeypatch.chdir(folder)
    return folder


def test_relative_links_of_every_kind_are_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A README a careless contributor writes: relative files, ``./``, images, anchors, all become absolute."""
    description = metadata(_project(tmp_path, monkeypatch, (
        "# x\n\n<!-- contributors: start -->\nRun `make test` ([how](CONTRIBUTING.md)).\n<!-- contributors: end -->\n\n"
        "See [the docs](docs/guide.md), [a folder](./dags_examples/), [a section](#the-connection),\n"
        "![form](docs/connection-form.png), ![again](./docs/a.png) and [PyPI](https://pypi.org/).\n\n"
        f"{MARKER}\n\n## Development\n"
    ))).core.readme
    source = PYPROJECT["project"]["urls"]["Source"]
    raw = source.replace("https://github.com/", "https://raw.githubusercontent.com/")
    assert relative_targets(description) == []
    assert f"]({source}/blob/main/docs/guide.md)" in description
    assert f"]({source}/blob/main/dags_examples/)" in description
    assert f"]({source}/blob/main/README.md#the-connection)" in description
    assert f"]({raw}/main/docs/connection-form.png)" in description
    assert f"]({raw}/main/docs/a.png)" in description
    assert "](https://pypi.org/)" in description
    assert "## Development" not in description
    assert "make test" not in description  # the line for contributors at the top stays on GitHub


def test_a_readme_without_the_marker_fails_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Losing the marker does not publish the whole README (contributor sections and all): the build fails."""
    project = _project(tmp_path, monkeypatch,
                       "# x\n\n<!-- contributors: start -->\n<!-- contributors: end -->\n\n## Development\n")
    with pytest.raises(Exception, match="end of the PyPI description"):
        metadata(project)


def test_providers_list_is_read_past_airflow_2_log_lines() -> None:
    """Airflow 2 logs to stdout before the JSON; a log line's brackets are not the list."""
    shown = '[2026-12-07T09:52:05.759+0000] {crypto.py:82} WARNING - [x]\n[{"package_name": "a", "version": "1"}]\n'
    assert dist_check.json_list(shown) == [{"package_name": "a", "version": "1"}]
    assert dist_check.json_list("[2026-12-07] no list here") is None


def test_contributor_dependencies_are_groups_not_published_extras() -> None:
    """``pip install airflow-provider-hatchet[dev]`` does not exist; the Makefile installs the groups."""
    assert set(metadata().core.optional_dependencies) == {"testing", "lineage"}
    assert {"dev", "prod-e2e"} <= set(PYPROJECT["dependency-groups"])
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install" in line and " -e " in line]
    assert installs and all("--group" in line and "dev]" not in line and "e2e]" not in line for line in installs)
    assert makefile.count("--group dev") >= 2 and makefile.count("--group prod-e2e") == 1


def test_metadata_claims() -> None:
    """License expression and file, classifiers, authors and the five project URLs."""
    core = metadata().core
    assert core.license_expression == "Apache-2.0" and core.license_files == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    for classifier in ("Development Status :: 5 - Production/Stable", "Framework :: Apache Airflow :: Provider",
                       "Programming Language :: Python :: 3.10", "Programming Language :: Python :: 3.12",
                       "Typing :: Typed", "Operating System :: OS Independent"):
        assert classifier in core.classifiers
    assert set(core.urls) == {"Homepage", "Documentation", "Source", "Issues", "Changelog"}
    assert core.authors == [{"name": "airflow-provider-hatchet maintainers"}]


def test_repository_urls_agree_with_the_project_urls() -> None:
    """Every file that names the (not yet public) repository or docs site names the one in pyproject."""
    urls = PYPROJECT["project"]["urls"]
    organisation = urls["Source"].split("/")[3]
    for name in ("pyproject.toml", "CHANGELOG.md", "README.md", ".github/workflows/release.yml"):
        text = (ROOT / name).read_text()
        for url in re.findall(rf"https://[\w.]*(?:github\.com|githubusercontent\.com)/{organisation}/[^\s)'\"]*"
                              rf"|https://{organisation}\.github\.io/[^\s)'\"]*", text):
            assert url.startswith((urls["Source"], urls["Documentation"],
                                   urls["Source"].replace("github.com", "raw.githubusercontent.com"))), (name, url)


def test_wheel_and_sdist_hold_what_they_must(built: tuple[Path, Path]) -> None:
    """The real wheel: LICENSE, py.typed, the package only; the real sdist: LICENSE, README, CHANGELOG."""
    wheel, sdist = built
    assert dist_check.check_wheel(wheel, "1.0.0", None) == []
    assert dist_check.check_sdist(sdist, "1.0.0") == []


def _rewrite(archive: Path, drop: str = "", add: str = "") -> Path:
    """A copy of a wheel without the entries whose name ends with ``drop``, plus an entry ``add``."""
    copy = archive.with_name(f"copy-{archive.name}")
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(copy, "w") as target:
        for item in source.infolist():
            if not (drop and item.filename.endswith(drop)):
                target.writestr(item, source.read(item))
        if add:
            target.writestr(add, "")
    return copy


def test_wheel_check_refuses_a_missing_license_or_py_typed_and_stray_files(built: tuple[Path, Path]) -> None:
    """What a careless build gets wrong is named: no LICENSE, no py.typed, tests/ shipped, a file git lacks."""
    wheel = built[0]
    assert dist_check.check_wheel(_rewrite(wheel, drop="licenses/LICENSE"), "1.0.0", None) == [
        "airflow_provider_hatchet-1.0.0.dist-info/licenses/LICENSE is missing from the wheel"]
    assert dist_check.check_wheel(_rewrite(wheel, drop="py.typed"), "1.0.0", None) == [
        "airflow_provider_hatchet/py.typed is missing from the wheel"]
    assert dist_check.check_wheel(_rewrite(wheel, add="tests/test_x.py"), "1.0.0", None) == [
        "tests/test_x.py is in the wheel"]
    assert dist_check.check_wheel(_rewrite(wheel, add="conftest.py"), "1.0.0", None) == [
        "conftest.py is in the wheel, outside the package"]
    tracked = dist_check.tracked_files() | {"airflow_provider_hatchet/py.typed"}
    scratch = _rewrite(wheel, add="airflow_provider_hatchet/scratch.py")
    assert dist_check.check_wheel(scratch, "1.0.0", tracked) == [
        "airflow_provider_hatchet/scratch.py is in the wheel but not tracked by git (add it, or remove it)"]
    assert dist_check.check_wheel(wheel, "1.0.1", None)[-1] == "the wheel's METADATA does not say Version: 1.0.1"


def test_sdist_check_refuses_a_missing_license(built: tuple[Path, Path], tmp_path: Path) -> None:
    """An sdist without LICENSE (or README, CHANGELOG) is named."""
    copy = tmp_path / built[1].name
    with tarfile.open(built[1]) as source, tarfile.open(copy, "w:gz") as target:
        for member in source.getmembers():
            if not member.name.endswith(("/LICENSE", "/CHANGELOG.md")):
                target.addfile(member, source.extractfile(member) if member.isfile() else None)
    assert dist_check.check_sdist(copy, "1.0.0") == ["LICENSE is missing from the sdist",
                                                     "CHANGELOG.md is missing from the sdist"]


def _git(folder: Path, *arguments: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *arguments], cwd=folder, check=True,
                   capture_output=True)


def test_a_release_refuses_a_dirty_tree_and_a_tag_that_is_not_the_version(tmp_path: Path) -> None:
    """A wheel built from uncommitted changes is only a warning locally, never a release; the tag is v<version>."""
    assert dist_check.release_refusal("1.0.0", "v1.0.0", dist_check.dirty_files(tmp_path)) == (
        "refusing to release from outside a git checkout")
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    _git(tmp_path, "add", "a.py")
    _git(tmp_path, "commit", "-q", "-m", "a")
    assert dist_check.release_refusal("1.0.0", "v1.0.0", dist_check.dirty_files(tmp_path)) is None
    assert dist_check.release_refusal("1.0.0", "v1.0.1", dist_check.dirty_files(tmp_path)) == (
        "the tag 'v1.0.1' does not match the package's version 1.0.0 (tag v1.0.0)")
    (tmp_path / "a.py").write_text("x = 2\n")
    (tmp_path / "new.py").write_text("")
    refusal = dist_check.release_refusal("1.0.0", "v1.0.0", dist_check.dirty_files(tmp_path))
    assert refusal == "refusing to release a tree with uncommitted changes:\n   M a.py\n  ?? new.py"
    assert dist_check.release_refusal("1.0.0", None, dist_check.dirty_files(tmp_path)) is None
