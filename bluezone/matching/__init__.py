"""Matching: the vectorised matcher, risk scoring, and the whole check (key formats: ``bluezone.keyformat``)."""

from bluezone.matching.check import CheckResult, Exposure, check_keys, check_sightings
from bluezone.matching.matcher import (
    MATCH_DTYPE,
    ExposureWindow,
    SightingIndex,
    exposure_windows,
    find_exposures,
    match,
)
from bluezone.matching.scoring import (
    GaenConfig,
    GaenScorer,
    Score,
    Scorer,
    get_scorer,
    register_scorer,
    scorer_names,
)

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
