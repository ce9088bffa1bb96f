"""The layering rules of docs/architecture.md, checked on the source so they stay true.

Imports are read with ``ast`` (module level and inside functions alike, and the
``"bluezone.pkg.module:attribute"`` strings of commands imported on first use), so a lazy import
cannot hide an edge.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import bluezone
from bluezone import errors

ROOT = Path(bluezone.__file__).parent


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """The bluezone modules ``name`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and LAZY_TARGET.fullmatch(node.value):
            found.add(node.value.partition(":")[0])  # imported when first used, e.g. cli.py's LAZY_COMMANDS
    return {m for m in found if m in MODULES and m != name}


#: A module named as ``"bluezone.pkg.module:attribute"`` is imported on first use (``LazyCommands``).
LAZY_TARGET = re.compile(r"bluezone(\.\w+)+:\w+")


GRAPH = {name: _imports(name) for name in MODULES}


def _area(name: str) -> str:
    return name.split(".")[1] if "." in name else ""


def _edges(source: str, target: str) -> list[str]:
    return sorted(f"{a} -> {b}" for a, deps in GRAPH.items() if _area(a) == source for b in deps if _area(b) == target)


def test_no_import_cycle() -> None:
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> None:
        if node in path:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(node) :] + [node]))
        if node in done:
            return
        path.append(node)
        for dep in sorted(GRAPH[node]):
            visit(dep)
        path.pop()
        done.add(node)

    for name in sorted(GRAPH):
        visit(name)


#: Top-level modules every package may use: small, and importing only each other and crypto.
BASE = {"errors", "clock", "boottime", "config", "readfile", "writefile", "progress", "lazyexports", "printable", "inthread", "exitnow", "sigint"}


def test_base_modules_stay_at_the_base() -> None:
    others = {_area(m) for m in MODULES} - BASE - {"crypto"}
    wrong = [e for source in BASE for target in others for e in _edges(source, target)]
    assert not wrong, f"{sorted(BASE)} may import only each other and crypto: {wrong}"


@pytest.mark.parametrize(
    "source, allowed",
    [
        # pure functions: bytes in, bytes out; its names loaded on first use (lazyexports: the standard library alone)
        ("crypto", {"crypto", "errors", "lazyexports"}),
        ("keyformat", {"keyformat", "crypto", *BASE}),  # neutral ground for node and server
        ("proximity", {"proximity", "crypto", *BASE}),  # nothing up the data flow
        ("matching", {"matching", "keyformat", "proximity", "crypto", *BASE}),
    ],
)
def test_packages_import_only_what_they_may(source: str, allowed: set[str]) -> None:
    # a package's cli.py is a command, in the diagram's top row: it may use what commands use
    wrong = [
        e for target in {_area(m) for m in MODULES} - allowed for e in _edges(source, target)
        if not e.partition(" -> ")[0].endswith(".cli")
    ]
    assert not wrong, f"{source} may import only {sorted(allowed)}: {wrong}"


def _reach(start: str) -> set[str]:
    """Every bluezone module ``start`` loads, directly or not (a module's parent packages too,
    but not the root ``bluezone``, whose ``__init__`` every import runs)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        parents = {".".join(name.split(".")[:i]) for i in range(2, name.count(".") + 1)}
        for dep in GRAPH[name] | (parents & set(MODULES)):
            if dep not in seen and dep != "bluezone":
                seen.add(dep)
                todo.append(dep)
    return seen


@pytest.mark.parametrize(
    "side, forbidden",
    [
        ("client", {"server", "sim"}),  # a node ships no server code
        ("server", {"client", "matching", "proximity", "sim"}),  # a key server no node code
    ],
)
def test_key_server_and_node_stay_apart(side: str, forbidden: set[str]) -> None:
    wrong = sorted(
        f"{name} -> {dep}" for name in MODULES if _area(name) == side for dep in _reach(name) if _area(dep) in forbidden
    )
    assert not wrong, f"{side} must not load {sorted(forbidden)}, even through another package: {wrong[:5]}"


def test_nothing_outside_the_store_reaches_into_its_connection() -> None:
    store = ROOT / "proximity" / "store"
    offenders = [
        f"{p.relative_to(ROOT.parent)}:{i}"
        for p in MODULES.values()
        if not p.is_relative_to(store)
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if ".db.conn" in line or "store.db." in line
    ]
    assert not offenders, f"use a SightingStore method instead: {offenders}"


def test_every_exception_class_lives_in_errors_under_bluezone_error() -> None:
    elsewhere = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            # a private class (``_Transient``) is a module's own control flow, never seen by callers
            if isinstance(node, ast.ClassDef) and name != "bluezone.errors" and not node.name.startswith("_"):
                bases = {ast.unparse(b) for b in node.bases}
                if node.name.endswith(("Error", "Exception")) or bases & {"Exception", "ValueError", "RuntimeError"}:
                    elsewhere.append(f"{name}.{node.name}")
    assert not elsewhere, f"exception classes belong in bluezone/errors.py: {elsewhere}"
    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, Exception) and cls.__module__ == errors.__name__:
            assert issubclass(cls, errors.BluezoneError), cls
            assert cls.__name__ in (errors.__doc__ or ""), f"{cls.__name__} is missing from the tree in errors.py"


def test_cli_modules_do_not_use_each_other_as_libraries() -> None:
    """The root CLI may mount ``server``'s and ``sim``'s command groups, nothing else of theirs."""
    tree = ast.parse(MODULES["bluezone.cli"].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("bluezone.server.cli", "bluezone.sim.cli"):
            names = {a.name for a in node.names}
            assert names <= {"server", "simulate", "evaluate"}, f"{node.module}: {names}"


def test_json_option_is_defined_once() -> None:
    """Every command's ``--json`` comes from ``clitypes.json_option``, so they all behave alike."""
    defined = [name for name, path in MODULES.items() if name != "bluezone.clitypes" and '"--json"' in path.read_text()]
    assert not defined, f"use clitypes.json_option: {defined}"


def test_public_classes_and_functions_say_what_they_are() -> None:
    """Every public top-level class and function has a docstring (generated protobuf code aside)."""
    bare = [
        f"{name}.{node.name}"
        for name, path in MODULES.items()
        if not name.endswith("_pb2")
        for node in ast.parse(path.read_text()).body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and not node.name.startswith("_")
        and not ast.get_docstring(node)
    ]
    assert not bare, f"add a one-line docstring: {bare}"


def _names_bound(tree: ast.Module) -> dict[str, str]:
    """Names a package's ``__init__`` binds at module level (lazy ``_EXPORTS`` keys too), each with
    the module it takes the object from ("" when the package defines it)."""
    bound: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            bound.update((a.asname or a.name, node.module or "") for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound[node.name] = ""
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound.update((t.id, "") for t in targets if isinstance(t, ast.Name))
            if any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets) and isinstance(node.value, ast.Dict):
                bound.update((k.value, "lazy") for k in node.value.keys if isinstance(k, ast.Constant))
    return bound


def test_no_package_hides_a_module_of_its_own() -> None:
    """``import bluezone.pkg.mod`` must give the module: a package that exports another object of
    that name (``bluezone.crypto.rpi`` the function once hid ``crypto/rpi.py``) makes
    ``import bluezone.pkg.mod as m`` and ``bluezone.pkg.mod.x`` reach the wrong object."""
    hidden = [
        f"{package}.{name} (from {source or package})"
        for package, path in MODULES.items()
        if path.name == "__init__.py"
        for name, source in _names_bound(ast.parse(path.read_text())).items()
        if f"{package}.{name}" in MODULES and source != package  # ``from pkg import mod`` is the module
    ]
    assert not hidden, f"rename the module or stop exporting the name: {hidden}"


def _architecture_map() -> str:
    """The ``bluezone/`` tree drawn in docs/architecture.md."""
    text = (ROOT.parent / "docs" / "architecture.md").read_text()
    found = re.search(r"```\n(bluezone/\n.*?)```", text, re.S)
    assert found, "docs/architecture.md has lost its bluezone/ tree"
    return found.group(1)


def test_the_architecture_map_names_every_module_and_package() -> None:
    """A newcomer finds each top-level module and package of bluezone/ in the map, and no name that is gone."""
    drawn = set(re.findall(r"^  (\w+(?:\.py|/))", _architecture_map(), re.M))
    there = {p.name + "/" for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    there |= {p.name for p in ROOT.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    assert drawn == there, f"missing from the map: {sorted(there - drawn)}; gone: {sorted(drawn - there)}"


def test_the_files_the_architecture_map_names_exist() -> None:
    """A file a package's entry names (``check.py`` under ``matching/``) is in that package."""
    package, gone = "", []
    for line in _architecture_map().splitlines()[1:]:
        entry = re.match(r"^  (\S+)", line)
        if entry:
            package = entry.group(1) if entry.group(1).endswith("/") else ""
        if package:
            gone += [f"{package}{f}" for f in re.findall(r"\b\w+\.(?:py|proto)\b", line) if not (ROOT / package / f).exists()]
    assert not gone, f"docs/architecture.md names files that do not exist: {gone}"


def test_the_error_tree_is_drawn_as_the_classes_are() -> None:
    """errors.py's docstring draws each class under its parent, other bases as "(also X)": a class
    moved in the code but not in the drawing would send a reader to catch the wrong one."""
    parents: list[str] = []
    wrong = []
    for line in (errors.__doc__ or "").splitlines():
        drawn = re.match(r"^(\* |[ |]*\+ )(\w+)", line)
        if not drawn:
            continue
        depth = 0 if drawn.group(1) == "* " else (len(drawn.group(1)) - 4) // 2 + 1
        name = drawn.group(2)
        parents = parents[:depth] + [name]
        bases = {b.__name__ for b in getattr(errors, name).__bases__}
        said = {parents[depth - 1] if depth else "Exception", *re.findall(r"\(also (\w+)\)", line)}
        if bases != said:
            wrong.append(f"{name}: drawn under {sorted(said)}, subclasses {sorted(bases)}")
    assert not wrong, wrong


#: The rows of docs/architecture.md's diagram, top to bottom (each package's ``cli.py`` is a command).
LAYERS = [
    {"cli", "clitypes", "cliconfig", "clioutput", "demo", "checkreport", "__main__"},
    {"sim"},
    {"client"},
    {"venues"},
    {"matching", "calibration"},
    {"proximity", "server"},
    {"keyformat"},
    {"crypto", *BASE},
]


def _row(name: str) -> int:
    if name.endswith(".cli"):
        return 0
    return next(i for i, row in enumerate(LAYERS) if _area(name) in row)


def test_each_row_of_the_diagram_imports_only_from_below() -> None:
    """A module imports its own package and the rows below its own; only the base row's modules
    use each other (``config`` reads ``crypto``'s interval length)."""
    wrong = sorted(
        f"{a} -> {b}"
        for a, deps in GRAPH.items()
        if a != "bluezone"
        for b in deps
        if _area(a) != _area(b)
        and (_row(b) < _row(a) or (_row(b) == _row(a) and _row(a) != len(LAYERS) - 1 and _row(a) != 0))
    )
    assert not wrong, f"an import against docs/architecture.md's rows: {wrong}"


def test_the_diagram_draws_these_rows() -> None:
    text = (ROOT.parent / "docs" / "architecture.md").read_text()
    diagram = re.search(r"```\n(commands .*?)```", text, re.S)
    assert diagram, "docs/architecture.md has lost its diagram"
    lines = diagram.group(1).splitlines()
    at = [next((i for i, line in enumerate(lines) if re.search(rf"\b{name}(/|\.py|\b)", line)), -1) for name in
          [sorted(row - {"__main__"})[0] for row in LAYERS]]
    assert -1 not in at and at == sorted(at), f"the diagram's rows are not LAYERS': {at}"
    for row, line in zip(LAYERS, at):
        names = re.findall(r"\b(\w+)(?:/|\.py)?", lines[line])
        assert row - {"__main__"} <= set(names), f"{sorted(row)} drawn apart: {lines[line]!r}"


def test_a_day_in_seconds_is_written_once() -> None:
    """``crypto.intervals.DAY_SECONDS`` is a day's seconds everywhere, in code and in SQL: a literal
    86400 beside it reads as another unit to the next engineer (text for people may say 86400)."""
    sql = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|WHERE)\b")
    found = []
    for name, path in MODULES.items():
        if name == "bluezone.crypto.intervals":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Constant) or isinstance(node.value, bool):
                continue
            if isinstance(node.value, (int, float)) and node.value == 86400:
                found.append(f"{name}:{node.lineno}")
            elif isinstance(node.value, str) and "86400" in node.value and sql.search(node.value):
                found.append(f"{name}:{node.lineno} (SQL)")
    assert not found, f"use DAY_SECONDS: {found}"


def test_tests_share_helpers_modules_not_each_other() -> None:
    """A test module imported by another runs its module-level set-up twice under two names and hides
    what is shared: shared code goes in a ``*_helpers.py`` module or a conftest fixture."""
    tests = Path(__file__).parent
    found = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(tests)}: {n}" for n in names if n.rpartition(".")[2].startswith("test_")]
    assert not found, f"move what these import into a helpers module: {found}"
