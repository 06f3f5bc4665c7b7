"""Every Python code block of README.md, CONTRIBUTING.md and docs/**/*.md compiles, and the self-contained ones run.

A block with its own imports is run as a module (a whole DAG file is imported, as the DAG processor would); any
other block is a fragment and is compiled. An HTML comment on the line before a block changes that:

- ``<!-- doc-block: airflow>=3.3 -->``: the block needs that Airflow and is skipped on older ones; the text just
  before it must say so ("Airflow 3.3", or "Airflow 3" for ``airflow>=3.0``), so that readers see it too;
- ``<!-- doc-block: compile-only (why) -->``: compiled, never run (a hatchet-sdk worker, a fragment of a test).

A block that only includes files (``--8<-- "path"``, the example DAGs on the docs site) must name files that
exist; the example DAGs themselves are run by tests/test_examples.py.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_hatchet._airflow_version import AIRFLOW_VERSION

pytestmark = pytest.mark.af2

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>\S*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*doc-block:\s*(?P<mode>.+?)\s*-->\s*$")
NEEDS_AIRFLOW = re.compile(r"^airflow>=(?P<major>\d+)\.(?P<minor>\d+)$")
COMPILE_ONLY = re.compile(r"^compile-only \(.+\)$")
SNIPPET = re.compile(r'^--8<--\s+"(?P<path>[^"]+)"$')
# How many lines before a block (the marker excluded) may carry the visible "Airflow X" note.
NOTE_WINDOW = 5


@dataclass(frozen=True)
class Block:
    """One fenced Python block of a Markdown file.

    :param path: the file, relative to the repository
    :param line: the line of its opening fence (1-based)
    :param code: its text, dedented
    :param mode: its marker's mode, or None
    :param before: the non-blank lines before it (the marker excluded), nearest last
    """

    path: str
    line: int
    code: str
    mode: str | None
    before: tuple[str, ...]


def markdown_files() -> list[Path]:
    """README.md, CONTRIBUTING.md (when present) and every page under docs/."""
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [f for f in files if f.is_file()]


def python_blocks(text: str, path: str) -> list[Block]:
    """The fenced ``python`` blocks of one Markdown text.

    :param text: the Markdown
    :param path: where it comes from, for the messages
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        assert end is not None, f"{path}:{i + 1}: a code block is never closed"
        if opening["lang"] in ("python", "py"):
            before = [ln for ln in lines[max(0, i - 20):i] if ln.strip()]
            marker = MARKER.match(before[-1]) if before else None
            if marker:
                before = before[:-1]
            blocks.append(Block(
                path=path, line=i + 1, code=textwrap.dedent("\n".join(lines[i + 1:end])),
                mode=marker["mode"] if marker else None, before=tuple(before[-NOTE_WINDOW:]),
            ))
        i = end + 1
    return blocks


BLOCKS = [block for path in markdown_files()
          for block in python_blocks(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))]


def has_imports(tree: ast.Module) -> bool:
    """Whether a block imports at its top level, which makes it a self-contained module rather than a fragment.

    :param tree: the block's syntax tree
    """
    return any(isinstance(node, ast.Import | ast.ImportFrom) for node in tree.body)


def run_as_module(block: Block, folder: Path) -> None:
    """Import a block as a module of its own, as the DAG processor imports a DAG file.

    :param block: the block
    :param folder: where to write it
    """
    name = "doc_block_" + re.sub(r"\W", "_", f"{block.path}_{block.line}")
    file = folder / f"{name}.py"
    file.write_text(block.code, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_the_docs_have_python_blocks() -> None:
    assert any(b.path == "README.md" for b in BLOCKS), "README.md lost its first DAG"
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.path}:{b.line}" for b in BLOCKS])
def test_block(block: Block, tmp_path: Path) -> None:
    where = f"{block.path}:{block.line}"
    snippets = [SNIPPET.match(ln.strip()) for ln in block.code.splitlines() if ln.strip()]
    if snippets and all(snippets):
        missing = [m["path"] for m in snippets if m and not (ROOT / m["path"]).is_file()]
        assert not missing, f"{where}: includes files that do not exist: {missing}"
        return

    tree = ast.parse(block.code, filename=where)  # a SyntaxError names the block
    compile(tree, where, "exec")
    if block.mode is not None:
        needs = NEEDS_AIRFLOW.match(block.mode)
        if needs:
            major, minor = int(needs["major"]), int(needs["minor"])
            note = f"Airflow {major}" if minor == 0 else f"Airflow {major}.{minor}"
            assert any(note in line for line in block.before), (
                f"{where}: marked {block.mode!r}, but the {NOTE_WINDOW} lines before it do not say {note!r}")
            if AIRFLOW_VERSION[:2] < (major, minor):
                pytest.skip(f"{where} needs {note}")
        else:
            assert COMPILE_ONLY.match(block.mode), (
                f"{where}: unknown marker {block.mode!r}: 'airflow>=X.Y' or 'compile-only (why)'")
            return
    if has_imports(tree):
        run_as_module(block, tmp_path)


def test_a_marker_and_its_note_are_read() -> None:
    bare = "Some text.\n\n<!-- doc-block: airflow>=3.3 -->\n```python\nimport os\n```\n"
    noted = "On Airflow 3.3+:\n\n<!-- doc-block: airflow>=3.3 -->\n  ```python\n  import os\n  ```\n"
    [[unnoted], [indented]] = [python_blocks(text, "page.md") for text in (bare, noted)]
    assert (unnoted.mode, indented.mode) == ("airflow>=3.3", "airflow>=3.3")
    assert unnoted.before == ("Some text.",)
    assert indented.before == ("On Airflow 3.3+:",) and indented.code == "import os"
