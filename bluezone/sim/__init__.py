"""Simulated crowds through bluezone's real code: scenarios, mobility, radio, truth, metrics.

``load_scenario`` (or ``sim.generate.generate``) gives a Scenario, ``run`` runs it through real
daemons and scorers, ``summarise``/``table`` report it; ``sim.evaluate.evaluate`` replays real
recordings instead.  Names are loaded on first use (the simulator pulls in matplotlib).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Scenario": "scenario",
    "RadioModel": "scenario",
    "load_scenario": "scenario",
    "scenario_from_mapping": "scenario",
    "scenario_names": "catalogue",
    "find_scenario": "catalogue",
    "RunResult": "engine",
    "run": "engine",
    "summarise": "report",
    "table": "report",
    "Dataset": "datasets",
    "Recording": "datasets",
    "load_dataset": "datasets",
}

__all__ = sorted(_EXPORTS, key=lambda name: (not name[0].isupper(), name))


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
