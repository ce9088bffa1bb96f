"""Matching: the vectorised matcher, risk scoring, and the whole check (key formats: ``bluezone.keyformat``)."""

from bluezone.lazyexports import lazy_exports as _lazy_exports

#: Loaded on first use, so that the package's commands (``bluezone check --help``, ``keys derive``)
#: do not import numpy and the matcher before they need them.
_EXPORTS = {
    "CheckResult": "check",
    "Exposure": "check",
    "check_keys": "check",
    "check_sightings": "check",
    "MATCH_DTYPE": "matcher",
    "ExposureWindow": "matcher",
    "SightingIndex": "matcher",
    "exposure_windows": "matcher",
    "find_exposures": "matcher",
    "match": "matcher",
    "GaenConfig": "scoring",
    "GaenScorer": "scoring",
    "Score": "scoring",
    "Scorer": "scoring",
    "get_scorer": "scoring",
    "register_scorer": "scoring",
    "scorer_names": "scoring",
}

__all__ = [
    "MATCH_DTYPE",
    "CheckResult",
    "Exposure",
    "ExposureWindow",
    "GaenConfig",
    "GaenScorer",
    "Score",
    "Scorer",
    "SightingIndex",
    "check_keys",
    "check_sightings",
    "exposure_windows",
    "find_exposures",
    "get_scorer",
    "match",
    "register_scorer",
    "scorer_names",
]

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)
