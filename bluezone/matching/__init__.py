"""Matching: diagnosis key files, the vectorised matcher, and risk scoring."""

from bluezone.matching.check import Exposure, check_sightings
from bluezone.matching.keyfile import KEY_DTYPE, dump_keys_json, load_keys, parse_keys, parse_keys_json
from bluezone.matching.matcher import MATCH_DTYPE, ExposureWindow, SightingIndex, exposure_windows, find_exposures, match
from bluezone.matching.scoring import GaenConfig, GaenScorer, Score, Scorer, get_scorer, register_scorer, scorer_names

__all__ = [
    "KEY_DTYPE",
    "MATCH_DTYPE",
    "Exposure",
    "ExposureWindow",
    "GaenConfig",
    "GaenScorer",
    "Score",
    "Scorer",
    "SightingIndex",
    "check_sightings",
    "dump_keys_json",
    "exposure_windows",
    "find_exposures",
    "get_scorer",
    "load_keys",
    "match",
    "parse_keys",
    "parse_keys_json",
    "register_scorer",
    "scorer_names",
]
