"""MkDocs hooks: the changelog page, from CHANGELOG.md at the repository's root when there is one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

CHANGELOG = Path(__file__).resolve().parent.parent / "CHANGELOG.md"


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Add the changelog to the navigation if the repository has one.

    :param config: the site's configuration
    """
    if CHANGELOG.is_file():
        config.nav.append({"Changelog": "changelog.md"})
    return config


def on_files(files: Files, config: MkDocsConfig, **_: Any) -> Files:
    """Serve CHANGELOG.md as the page ``changelog.md``.

    :param files: the site's files
    :param config: the site's configuration
    """
    if CHANGELOG.is_file():
        files.append(File.generated(config, "changelog.md", content=CHANGELOG.read_text(encoding="utf-8")))
    return files
