"""The README and docs/ stand alone: every relative link reaches a file of the repository
(and a heading of it, for a #fragment), and none leads out of it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchors(path: Path) -> set[str]:
    """GitHub's ids of a file's headings: lower case, punctuation dropped, spaces to dashes."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in HEADING.findall(text)
    }


def links(path: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_reach_the_repository(doc: Path) -> None:
    for link in links(doc):
        if re.match(r"[a-z]+:", link):
            continue  # an absolute URL
        target, _, fragment = link.partition("#")
        path = (doc.parent / target).resolve() if target else doc
        assert path.is_relative_to(ROOT), f"{doc.name}: {link} leads out of the repository"
        assert path.exists(), f"{doc.name}: {link} does not exist"
        if fragment:
            assert fragment in anchors(path), f"{doc.name}: {link}: no such heading"


def test_the_docs_exist_and_the_readme_links_them() -> None:
    readme = links(ROOT / "README.md")
    assert "docs/api.md" in readme and "docs/operations.md" in readme
    assert "CHANGELOG.md" in readme


def test_the_anchor_check_can_fail() -> None:
    assert "admin-api" in anchors(ROOT / "docs" / "api.md")
    assert "get-openapijson" in anchors(ROOT / "docs" / "api.md")
    assert "no-such-heading" not in anchors(ROOT / "docs" / "api.md")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_no_doc_points_at_files_outside_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    for outside in ("../shared", "API.md", "DESIGN.md"):
        assert outside not in text, f"{doc.name} mentions {outside}"


def layout_paths(text: str) -> set[str]:
    """The paths of the README's layout block: each line names a file or folder, indented
    under the folder it is in."""
    found: set[str] = set()
    block = re.search(r"^## Layout\n.*?^```\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    if block is None:
        return found
    parents: list[tuple[int, str]] = []
    for line in block.group(1).splitlines():
        name = line.split()[0] if line.strip() else ""
        if not name:
            continue
        indent = len(line) - len(line.lstrip())
        while parents and parents[-1][0] >= indent:
            parents.pop()
        path = (parents[-1][1] if parents else "") + name
        found.add(path.rstrip("/"))
        if name.endswith("/"):
            parents.append((indent, path))
    return found


def test_the_readme_layout_is_read_whole() -> None:
    paths = layout_paths((ROOT / "README.md").read_text(encoding="utf-8"))
    assert {"analytics/store/lua", "analytics/counting.py", "tests/browser"} <= paths


@pytest.mark.parametrize("doc", [*DOCS, ROOT / "bench" / "README.md"], ids=lambda p: p.name)
def test_every_file_of_the_repository_a_doc_names_exists(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    named = set(re.findall(r"\b((?:analytics|config|tests|bench|docs)/[\w./-]+\.\w+)", text))
    named |= layout_paths(text)
    missing = sorted(name for name in named if not (ROOT / name).exists())
    assert not missing, f"{doc.name} names files that do not exist: {missing}"
