"""A package namespace that imports its parts on first use (PEP 562).

``import bluezone.proximity.store`` runs ``bluezone/__init__.py`` and
``bluezone/proximity/__init__.py`` first; if those imported every name they export, reading the
store (``bluezone check``) would also import the daemon, asyncio and the radio backends, and
``bluezone.server.storage`` would pull in FastAPI.  Each package instead lists its names and the
module that defines each, and this module's ``__getattr__`` imports that module when a name is
first asked for.

Nothing but ``sys`` is imported as this module loads (``importlib`` when a name is first asked for; the types for
mypy alone): ``bluezone/__init__.py`` loads it before the console script reaches the ``try`` that says a Ctrl-C in
one line, and in a clean venv (no ``.pth`` file's imports before it) ``importlib`` and ``collections.abc`` were
~3-10 ms there, where a Ctrl-C was a traceback and exit -2."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose ``exports`` map each exported name to the
    submodule (relative to ``package``) that defines it."""

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        import importlib

        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__
