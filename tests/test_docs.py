"""The README is a front page: short, the two commands first, every docs page linked, and
every relative link (and #anchor) in the README and docs/ points at something that exists."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# The measured results of the experiments, written from their runs: a link to it waits for the file.
GENERATED = {"docs/results.md"}


def links(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # not inside code blocks
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            yield target


def anchors(page):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    names = set()
    for heading in re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", page.read_text(), flags=re.S), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        names.add(slug)
    return names


def test_the_readme_starts_with_the_two_commands_and_stays_short():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    first_block = lines[lines.index("```") + 1: lines.index("```", lines.index("```") + 1)]
    assert first_block == ["make demo", "make test"]
    assert all(not line.startswith("## ") for line in lines[: lines.index("```")])


def test_every_docs_page_is_linked_from_the_readme():
    linked = {target.split("#")[0] for target in links(REPO / "README.md")}
    pages = {f"docs/{page.name}" for page in PAGES[1:]} | GENERATED
    assert pages - linked == set()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_and_anchors_resolve(page):
    for target in links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        name = str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else str(resolved)
        if name in GENERATED and not resolved.exists():
            continue
        assert resolved.exists(), f"{page.name}: link to {target} (no {name})"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), f"{page.name}: no heading for #{anchor} in {name}"
