"""Every link a newcomer follows in the README and docs leads somewhere: a relative link names a file of the
checkout and, with ``#anchor``, a heading in it (GitHub's slugs); a reference in prose such as
docs/venues.md, "Who ends which check-in" names a file whose heading, bold lead or list item starts so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted(
    {ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md"), *ROOT.glob("*/README.md")}
)
LINK = re.compile(r"\]\(([^)\s]+)\)")
#: `docs/x.md, "Section"` or `(x.md, "Section")`: a section named in prose, its words over line breaks
SECTION = re.compile(r"((?:docs/)?[\w.-]+\.md),?\s+\"([^\"]+)\"")


def _prose(text: str) -> str:
    """``text`` without its fenced code blocks (a heading's '#' and a link's brackets there are code)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#+\s+(.*)$", _prose(doc.read_text()), re.M)}


def _starts(doc: Path) -> list[str]:
    """What each heading, list item and paragraph of ``doc`` begins with, markup dropped, one space a gap."""
    lines = re.findall(r"^\s*(?:#+\s+|[-*]\s+|\d+\.\s+)?(.*)$", _prose(doc.read_text()), re.M)
    return [" ".join(re.sub(r"[`*]", "", line).split()).lower() for line in lines]


def _target(doc: Path, name: str) -> Path:
    for base in (doc.parent, ROOT, ROOT / "docs"):
        if (base / name).is_file():
            return base / name
    return doc.parent / name


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_relative_links_lead_to_a_file_and_its_heading(doc: Path) -> None:
    broken = []
    for link in LINK.findall(re.sub(r"`[^`\n]*`", "", _prose(doc.read_text()))):  # `f(x)[i](db)` is code
        if re.match(r"[a-z]+:", link):  # https:, mailto:: not this checkout's
            continue
        path, _, anchor = link.partition("#")
        target = (doc.parent / path).resolve() if path else doc
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link}: no heading #{anchor} in {target.name}")
    assert not broken, f"{doc.relative_to(ROOT)}: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_sections_named_in_prose_exist(doc: Path) -> None:
    missing = []
    for name, section in SECTION.findall(_prose(doc.read_text())):
        target = _target(doc, name)
        said = " ".join(re.sub(r"[`*]", "", section).split()).lower()
        if not target.is_file():
            missing.append(f"{name}: no such file")
        elif not any(start.startswith(said) for start in _starts(target)):
            missing.append(f'{name}, "{section}": no heading or paragraph begins so')
    assert not missing, f"{doc.relative_to(ROOT)}: {missing}"


def test_the_docs_name_sections_and_link_headings() -> None:
    text = "\n".join(_prose(d.read_text()) for d in DOCS)
    assert len(SECTION.findall(text)) > 50 and len([x for x in LINK.findall(text) if "#" in x]) >= 3
