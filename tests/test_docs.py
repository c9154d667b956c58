"""The README a newcomer reads: short, its links resolving, and the Chinese one naming the same commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

DOCUMENTS = [REPO / "README.md", REPO / "README.zh-CN.md", REPO / "BENCHMARKS.md",
             *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def commands(path: Path) -> list[str]:
    """The command lines of a document's shell and Python code blocks, comments dropped."""
    blocks = re.findall(r"```(?:sh|python)\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)
    lines = [line.split("  #")[0].rstrip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_readme_is_short():
    assert len((REPO / "README.md").read_text().splitlines()) < 300


def test_both_readmes_name_the_same_commands():
    english = commands(REPO / "README.md")
    assert len(english) > 10 and commands(REPO / "README.zh-CN.md") == english


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(REPO).as_posix())
def test_every_link_resolves(document):
    for target in LINK.findall(document.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://", "#", "mailto:")):
            continue
        path = (document.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{document.name} links to {target}, which does not exist"
