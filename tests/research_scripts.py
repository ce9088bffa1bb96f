"""research/'s scripts loaded as modules by the tests that check them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

RESEARCH = Path(__file__).resolve().parents[1] / "research"


def research(name: str) -> ModuleType:
    """``research/<name>.py`` as the module ``name`` (kept in ``sys.modules``: the scripts import each other as
    scripts, and a test may load one that another imports).  research/ is on the path while it loads, so that the
    siblings it imports load too, whatever ran before: under xdist a test that relied on an earlier test of its file
    having loaded them failed when the split put it first on its worker (the lead's CI, 27th session), and the
    half-loaded module it left then failed the next test to import it.  A script that fails to load is not kept."""
    spec = importlib.util.spec_from_file_location(name, RESEARCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(RESEARCH))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        sys.path.remove(str(RESEARCH))
    return module
