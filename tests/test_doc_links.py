"""The relative links of README.md and CONTRIBUTING.md point at files of the repository, and their anchors at headings.

These two files are read on GitHub (and README.md on PyPI, its links made absolute), outside the docs site whose
links `make docs` checks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.af2

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*$")
FILES = [f for f in ("README.md", "CONTRIBUTING.md") if (ROOT / f).is_file()]


def github_anchor(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens.

    :param title: the heading's text
    """
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings, outside code blocks.

    :param path: the file
    """
    found, fenced = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := HEADING.match(line)):
            found.add(github_anchor(heading["title"]))
    return found


def broken_links(path: Path) -> list[str]:
    """The relative links of a Markdown file whose file or anchor does not exist.

    :param path: the file
    """
    broken = []
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    for match in LINK.finditer(text):
        target = match["target"]
        if re.match(r"^[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no such heading")
    return broken


@pytest.mark.parametrize("name", FILES)
def test_relative_links_resolve(name: str) -> None:
    assert broken_links(ROOT / name) == []


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    (tmp_path / "page.md").write_text("# A page\n\n## Its part\n", encoding="utf-8")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "[ok](page.md#its-part) [gone](missing.md) [bad anchor](page.md#nope) [web](https://example.org/x)\n"
        "```\n[in code](ignored.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(doc) == ["missing.md: no such file", "page.md#nope: no such heading"]
