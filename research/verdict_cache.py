"""The verdict's credit apart from the ranking's: engine scores of a grid of verdicts in one run (verdict15, issue 13).

Usage: python research/verdict_cache.py CACHE_DIR SCENES SEEDS [--minutes M]
       python research/verdict_cache.py --grid CACHE_DIR OUT_DIR [CUTS]     (CUTS default 14.5,14.6,...,15.0)
       python research/credit_table.py OUT_DIR SEEDS --variants bluezone,vp_59@14.8,...

The first form is ``estimator_cache.py``'s run with more scorers in the one engine run (as
``credit_cache.py``): the shipped ``bluezone`` (whole slots, 59 dB), ``gaen`` (the time present) and
bluezone whose *verdict* credits the time present (``verdict_credit = "present"``) at several thresholds
(``vp_58`` ... ``vp_60``), its ranking the shipped one, so ROC-AUC and PR-AUC are the shipped scorer's.
The cache keeps each variant's verdict minutes (``within_2m``) before the 15-minute cut, so ``--grid``
tries other cuts without another run: it writes a copy of each cache whose ``scores`` hold every
``VARIANT@CUT`` (the variant's ranking, close contact = verdict minutes >= CUT) beside the engine's own,
for ``credit_table.py`` and (through ``credit_cache.py --view``) ``fresh_seeds.py``.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
from credit_cache import register_variants
from estimator_cache import main as run_cache

from bluezone.matching.bluezone_scorer import BluezoneConfig, BluezoneScorer

THRESHOLDS = (58.0, 58.5, 59.0, 59.5, 60.0)
CUTS = (14.5, 14.6, 14.7, 14.8, 14.9, 15.0)
#: name -> (scorer class, config class, settings over the defaults)
VARIANTS: dict[str, tuple[type, type, dict]] = {
    f"vp_{t:g}": (BluezoneScorer, BluezoneConfig, {"verdict_credit": "present", "threshold_db": t}) for t in THRESHOLDS
}
SCORERS = ("gaen", "bluezone", *VARIANTS)


def grid(cache: Path, out: Path, cuts: tuple[float, ...]) -> None:
    """Copies of the caches with ``VARIANT@CUT`` scores for every cached verdict and cut.

    At the engine's own cut the verdicts must be the engine's (a check that the cached minutes are
    what the scorer decided on, up to their rounding to 3 decimals)."""
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(cache.glob("*.pkl")):
        d = pickle.loads(path.read_bytes())
        for name, minutes in d["verdict"].items():
            weighted, decided = d["scores"][name]
            mismatch = int(((minutes >= d["cc"] - 1e-9) != decided).sum())
            if mismatch:
                print(f"{path.name} {name}: {mismatch} verdicts at {d['cc']:g} differ from the engine's (rounding)", flush=True)
            for cut in cuts:
                d["scores"][f"{name}@{cut:g}"] = (weighted, np.asarray(minutes) >= cut - 1e-9)
        (out / path.name).write_bytes(pickle.dumps(d))


def main(argv: list[str]) -> None:
    if argv[0] == "--grid":
        cuts = tuple(float(c) for c in argv[3].split(",")) if len(argv) > 3 else CUTS
        grid(Path(argv[1]), Path(argv[2]), cuts)
        return
    register_variants(VARIANTS)
    run_cache(argv, SCORERS)


if __name__ == "__main__":
    main(sys.argv[1:])
