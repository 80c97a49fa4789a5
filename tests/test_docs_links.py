"""The knowledge the code cites lives in this repository: every ``docs/*.md`` page named anywhere
exists, every link between the pages lands on an existing page and heading, and nothing points
to the notes file outside the repository the project was started from."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".yml", ".yaml", ".sh"}
SKIPPED_DIRS = {".git", "__pycache__", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "build", "dist"}
#: Spelled in two pieces so that this file does not name it either.
OUTSIDE_NOTES = "REFER" + "ENCE.md"

DOCS_MENTION = re.compile(r"docs/([A-Za-z0-9_-]+\.md)")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def project_text_files() -> list[Path]:
    return [
        path
        for path in sorted(REPO.rglob("*"))
        if path.is_file()
        and path.suffix in TEXT_SUFFIXES
        and not SKIPPED_DIRS.intersection(path.relative_to(REPO).parts)
    ]


def heading_anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading: lower case, punctuation dropped, spaces to '-'."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(page: Path) -> set[str]:
    return {
        heading_anchor(line.lstrip("#"))
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }


def test_the_heading_anchor_rule_matches_github():
    assert heading_anchor("Stretching SDXL's second encoder (bigG)") == "stretching-sdxls-second-encoder-bigg"
    assert heading_anchor("What the ablation says (paper section 4.4)") == "what-the-ablation-says-paper-section-44"
    assert heading_anchor("transformers 5") == "transformers-5"


def test_every_docs_page_named_in_the_project_exists():
    missing = [
        f"{path.relative_to(REPO)} names docs/{name}"
        for path in project_text_files()
        for name in DOCS_MENTION.findall(path.read_text(encoding="utf-8", errors="replace"))
        if not (DOCS / name).is_file()
    ]
    assert missing == []


def test_links_between_docs_pages_land_on_a_page_and_a_heading():
    broken = []
    for page in sorted(DOCS.glob("*.md")):
        for target in MARKDOWN_LINK.findall(page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            name, _, anchor = target.partition("#")
            linked = (page.parent / name) if name else page
            if not linked.is_file():
                broken.append(f"{page.name} -> {target}: no such page")
            elif anchor and anchor not in anchors_of(linked):
                broken.append(f"{page.name} -> {target}: no such heading")
    assert broken == []


def test_the_docs_index_lists_every_page():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    unlisted = [
        page.name for page in sorted(DOCS.glob("*.md")) if page.name != "README.md" and f"({page.name})" not in index
    ]
    assert unlisted == []


def test_nothing_points_to_notes_outside_the_repository():
    assert [
        str(path.relative_to(REPO))
        for path in project_text_files()
        if OUTSIDE_NOTES in path.read_text(encoding="utf-8", errors="replace")
    ] == []
