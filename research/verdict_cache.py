"""The verdict's credit apart from the ranking's: a grid of verdicts on one engine run's windows (verdict15, issue 13).

Usage: python research/verdict_cache.py CACHE_DIR SCENES SEEDS [--minutes M]
       python research/verdict_cache.py --grid CACHE_DIR OUT_DIR [CUTS]     (CUTS default 14.5,14.6,...,15.0)
       python research/credit_table.py OUT_DIR SEEDS --variants bluezone,vp_59@14.8,...
       python research/verdict_cache.py --recordings [--only NAMES] [DATASET_DIR ...]   (``credit_recordings.py``'s report)

The first form is ``estimator_cache.py``'s run (the engine's ``gaen`` and shipped ``bluezone``, the
same per-minute features) and then, on the windows that run kept, bluezone whose *verdict* credits the
time present (``verdict_credit = "present"``) at several thresholds (``vp_58`` ... ``vp_60``) and the
shipped scorer again (``vs_59``, whole slots: its verdict minutes for other cuts), each
window scored by the real scorer told about its receiver, as the engine does (``receiver.for_receiver``),
and a pair's windows added up as the engine adds them (a key change: weighted minutes summed, close contact
if any window is one).  Their ranking is the shipped one, so ROC-AUC and PR-AUC are the shipped scorer's.
The cache keeps each variant's largest window verdict minutes (``within_2m``) before the 15-minute cut, so
``--grid`` tries other cuts without another run: it writes a copy of each cache whose ``scores`` hold every
``VARIANT@CUT`` (the variant's ranking; close contact = verdict minutes >= CUT) beside the engine's own, for
``credit_table.py`` and (through ``credit_cache.py --view``) ``fresh_seeds.py``.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
from credit_recordings import main as recordings
from estimator_cache import main as run_cache

from bluezone.matching.bluezone_scorer import BluezoneConfig, BluezoneScorer
from bluezone.matching.receiver import for_receiver

THRESHOLDS = (58.0, 58.5, 59.0, 59.5, 60.0)
CUTS = (14.5, 14.6, 14.7, 14.8, 14.9, 15.0)
#: name -> (scorer class, config class, settings over the defaults), as ``credit_cache.VARIANTS``
VARIANTS: dict[str, tuple[type, type, dict]] = {
    **{f"vp_{t:g}": (BluezoneScorer, BluezoneConfig, {"verdict_credit": "present", "threshold_db": t}) for t in THRESHOLDS},
    "vs_59": (BluezoneScorer, BluezoneConfig, {}),  # the shipped scorer again, for its verdict minutes (cuts above 15 on whole slots)
}


def variant_scores(result, keys: list) -> dict:
    """Per variant, per key: (weighted minutes, close contact) in ``scores`` and the verdict minutes in ``verdict``."""
    index = {k: i for i, k in enumerate(keys)}
    scores, verdict = {}, {}
    for name, (scorer_cls, config_cls, settings) in VARIANTS.items():
        scorer = scorer_cls(config_cls(**settings))
        weighted, decided, within = np.zeros(len(keys)), np.zeros(len(keys), bool), np.zeros(len(keys))
        for key, windows in result.windows.items():
            if key not in index:
                continue
            judge, i = for_receiver(scorer, result.contexts[key[2]]), index[key]
            for w in windows:
                s = judge.score(w)
                weighted[i] += s.weighted_minutes
                decided[i] |= s.close_contact
                within[i] = max(within[i], s.minutes_by_bucket["within_2m"])
        scores[name], verdict[name] = (weighted, decided), within
    return {"variant_scores": scores, "verdict": verdict}


def grid(cache: Path, out: Path, cuts: tuple[float, ...]) -> None:
    """Copies of the caches with ``VARIANT@CUT`` scores for every cached verdict and cut.

    At the scorer's own cut the verdicts must be the scorer's (a check that the cached minutes, rounded
    to 3 decimals, are what it decided on)."""
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(cache.glob("*.pkl")):
        d = pickle.loads(path.read_bytes())
        for name, minutes in d["verdict"].items():
            weighted, decided = d["variant_scores"][name]
            mismatch = int(((minutes >= d["cc"] - 1e-9) != decided).sum())
            if mismatch:
                print(f"{path.name} {name}: {mismatch} verdicts at {d['cc']:g} differ from the scorer's (rounding)", flush=True)
            d["scores"][name] = (weighted, decided)
            for cut in cuts:
                d["scores"][f"{name}@{cut:g}"] = (weighted, minutes >= cut - 1e-9)
        (out / path.name).write_bytes(pickle.dumps(d))


def main(argv: list[str]) -> None:
    if argv[0] == "--recordings":  # the shared recordings under each variant, at each cut (``VARIANT@CUT``)
        cut = {f"{n}@{c:g}": (s, f, {**o, "close_contact_minutes": c}) for n, (s, f, o) in VARIANTS.items() for c in CUTS}
        recordings(argv[1:], {**{n: v for n, v in VARIANTS.items() if n != "vs_59"}, **cut})
        return
    if argv[0] == "--grid":
        cuts = tuple(float(c) for c in argv[3].split(",")) if len(argv) > 3 else CUTS
        grid(Path(argv[1]), Path(argv[2]), cuts)
        return
    run_cache(argv, extra=variant_scores)


if __name__ == "__main__":
    main(sys.argv[1:])
