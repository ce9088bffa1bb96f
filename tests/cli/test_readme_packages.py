"""The README's table of packages names every package of bluezone, and only ones that exist: it
still sent readers to matching/ for key files and to server/ for the node's client after both moved
(keyformat/, client/), and did not name venues/ or calibration/."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_table_names_every_package_and_no_other() -> None:
    readme = (ROOT / "README.md").read_text()
    table = re.search(r"\| package \| one job \|\n\|[-|]+\|\n((?:\|.*\|\n)+)", readme)
    assert table, "README has no '| package | one job |' table"
    named = re.findall(r"^\| `([^`]+)` \|", table.group(1), re.M)
    for path in named:
        assert (ROOT / path).exists(), f"README's table names {path}, which does not exist"
    packages = {f"bluezone/{p.parent.name}/" for p in (ROOT / "bluezone").glob("*/__init__.py")}
    assert packages <= set(named), f"README's table does not name {sorted(packages - set(named))}"
    matching = next(line for line in table.group(1).splitlines() if line.startswith("| `bluezone/matching/`"))
    assert "key files" not in matching, "key files live in bluezone/keyformat/"


def test_the_readme_documentation_list_links_every_page_of_docs() -> None:
    """A reader starting at the README finds every page: it linked neither docs/architecture.md (where
    each module lives and where a new one goes) nor docs/bluezone3.md."""
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Documentation\n(.*?)^## ", readme, re.S | re.M)
    assert section, "README has no '## Documentation' section"
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)\)", section.group(1)))
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert pages == linked, f"not linked: {sorted(pages - linked)}; no such page: {sorted(linked - pages)}"
