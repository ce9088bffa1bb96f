"""Shared bits for the simulator tests: a tiny scenario built in code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SIMULATIONS = REPO / "simulations"
DATASETS = REPO / "tests" / "data" / "datasets"


def pairs_scenario(minutes: float = 25.0, **radio: Any) -> dict[str, Any]:
    """Six people in a line 1.2 m apart (neighbours are close contacts) and six 4 m apart (none are)."""
    return {
        "name": "pairs",
        "duration_min": minutes,
        "space": {"width_m": 30.0, "depth_m": 10.0},
        "devices": {"share": 1.0, "positives": "all", "carriage": {"hand": 1.0}},
        "groups": [
            {"kind": "seated", "people": 6, "layout": "line", "origin": [1.0, 2.0], "rows": 1, "columns": 6,
             "spacing_m": [1.2, 1.2], "sway_m": 0.05},
            {"kind": "seated", "people": 6, "layout": "line", "origin": [1.0, 8.0], "rows": 1, "columns": 6,
             "spacing_m": [4.5, 4.5], "sway_m": 0.05},
        ],
        "radio": radio,
        "scanning": {"window_s": 2.0, "interval_s": 10.0},
    }
