"""research/ is not API, but it must keep running: every script compiles, documents its usage,
is listed in research/README.md, and every name it imports from bluezone still exists."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

RESEARCH = Path(__file__).resolve().parents[1] / "research"
SCRIPTS = sorted(RESEARCH.glob("*.py"))


def test_there_are_scripts_and_a_readme_listing_each() -> None:
    readme = (RESEARCH / "README.md").read_text()
    assert len(SCRIPTS) >= 10 and "not API" in readme
    assert [s.name for s in SCRIPTS if f"`{s.name}`" not in readme] == []


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_compiles_documents_usage_and_imports_what_exists(script: Path) -> None:
    tree = ast.parse(script.read_text(), str(script))
    doc = ast.get_docstring(tree) or ""
    assert f"python research/{script.name}" in doc, "the docstring gives the command"
    siblings = {s.stem for s in SCRIPTS}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bluezone"):
            module = importlib.import_module(node.module)
            missing = [a.name for a in node.names if not hasattr(module, a.name)
                       and importlib.util.find_spec(f"{node.module}.{a.name}") is None]
            assert not missing, f"{script.name}: {node.module} has no {missing}"
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = node.module.split(".")[0]
            assert top in siblings or importlib.util.find_spec(top) is not None, f"{script.name}: {node.module}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert importlib.util.find_spec(alias.name.split(".")[0]) is not None, f"{script.name}: {alias.name}"
