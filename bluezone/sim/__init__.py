"""Simulated crowds through bluezone's real code: scenarios, mobility, radio, truth, metrics.

``load_scenario`` (or ``sim.generate.generate``) gives a Scenario, ``run`` runs it through real
daemons and scorers, ``summarise``/``table`` report it; ``sim.evaluate.evaluate`` replays real
recordings instead.  Names are loaded on first use (the simulator pulls in matplotlib).
"""

from __future__ import annotations

from bluezone.lazyexports import lazy_exports as _lazy_exports

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

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
