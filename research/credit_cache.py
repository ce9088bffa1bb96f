"""Run scenes once and keep, per judged unit, every credit variant's engine scores (credit14, issue 13).

Usage: python research/credit_cache.py CACHE_DIR SCENES SEEDS [--minutes M]
       python research/credit_cache.py --view CACHE_DIR OUT_DIR BLUEZONE_NAME GAEN_NAME

The first form is ``estimator_cache.py``'s run (the same per-minute features) with more scorers in the
one engine run, registered here under names of their own (``VARIANTS``): GAEN with whole slots
(``gaen_slots``, the baseline before) and with the time present (``gaen``, the baseline now), the
shipped bluezone (``bluezone``: whole slots, 59 dB) and bluezone crediting the time present at several
thresholds (``bz_present_59`` ...).  The same sightings for all, so the variants differ by the scorer
alone.  ``--view`` writes a copy of each cache whose ``scores`` hold only two of them, renamed
``bluezone`` and ``gaen``, which ``fresh_seeds.py`` and ``estimator_sweep.py`` then read unchanged.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from estimator_cache import main as run_cache

from bluezone.matching.bluezone_scorer import BluezoneConfig, BluezoneScorer
from bluezone.matching.scoring import GaenConfig, GaenScorer, configured, register_scorer

THRESHOLDS = (58.0, 58.5, 59.0, 59.5, 60.0, 60.5)
#: name -> (scorer class, config class, settings over the defaults)
VARIANTS: dict[str, tuple[type, type, dict]] = {
    "gaen_slots": (GaenScorer, GaenConfig, {"credit": "slots"}),
    **{f"bz_present_{t:g}": (BluezoneScorer, BluezoneConfig, {"credit": "present", "threshold_db": t}) for t in THRESHOLDS},
}
SCORERS = ("gaen", "bluezone", *VARIANTS)


def register_variants(variants: dict[str, tuple[type, type, dict]] | None = None) -> None:
    """Register every variant (``VARIANTS`` unless given) by name, so the engine's ``get_scorer`` finds it."""
    for name, (scorer_cls, config_cls, settings) in (VARIANTS if variants is None else variants).items():
        factory = configured(config_cls, scorer_cls)
        register_scorer(name, lambda config_path=None, _f=factory, _s=settings, **o: _f(config_path, **{**_s, **o}))


def view(cache: Path, out: Path, bluezone: str, gaen: str) -> None:
    """Copies of the caches with two variants' scores as ``bluezone`` and ``gaen``."""
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(cache.glob("*.pkl")):
        d = pickle.loads(path.read_bytes())
        d["scores"] = {"bluezone": d["scores"][bluezone], "gaen": d["scores"][gaen]}
        (out / path.name).write_bytes(pickle.dumps(d))


def main(argv: list[str]) -> None:
    if argv[0] == "--view":
        view(Path(argv[1]), Path(argv[2]), argv[3], argv[4])
        return
    register_variants()
    run_cache(argv, SCORERS)


if __name__ == "__main__":
    main(sys.argv[1:])
