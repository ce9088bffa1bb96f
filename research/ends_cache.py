"""The verdict's present credit at an encounter's outer ends: a grid re-scored from one engine run (ends16, issue 13).

Usage: python research/ends_cache.py CACHE_DIR SCENES SEEDS [--minutes M]
       python research/ends_cache.py --grid CACHE_DIR OUT_DIR [THRESHOLDS [CUTS]]
       python research/ends_cache.py --pairs GRID_DIR SEEDS BASE,VARIANT [SCENES]
       python research/ends_cache.py --recordings CREDIT_THRESHOLD@CUT[,...] [DATASET_DIR ...]   (``credit_recordings.py``'s report)
       python research/credit_table.py OUT_DIR SEEDS --variants bluezone,ends_59@14.9,... [--digits 5]

The first form is ``estimator_cache.py``'s run (the engine's ``gaen`` and shipped ``bluezone``) keeping,
for every window of every pair, what any verdict credit needs: the judged slots, their smoothed and
corrected attenuation (the scorer's own ``minute_attenuation``, ``minute_shift`` and ``smoothed``, told
about its receiver as the engine does) and each judged slot's first and last sighting time (all that
``present_share`` reads of a slot).  The verdict cache before it (``verdict_cache.py``) kept minutes per
variant only, so a credit it had not run needed new runs.  It also keeps the real scorer's scores with
``verdict_credit = "ends"`` at 59 dB (``ends_59_scorer``), which ``--grid`` checks its own against.

``--grid`` writes a copy of each cache whose ``scores`` hold ``CREDIT_THRESHOLD@CUT`` for every credit in
``BRIDGES`` (``slots``; ``present``: runs bridged as the scorer bridges, 2 empty minutes; ``b5`` ... ``b30``:
runs bridged over up to that many empty minutes; ``ends``: the window one run, only its first and last
slot cut; ``span``: whole slots capped at the window's minutes under ``ends``, ``cap`` under ``present``),
threshold and cut: the shipped ranking (``weighted_minutes`` cannot move with the verdict's
credit) and close contact = the pair's largest window verdict minutes >= CUT; and ``minutes``: those
verdict minutes per pair.  ``--pairs`` lists the pairs whose verdicts differ between two of them, with
their true minutes within 2 m.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
from credit_recordings import main as recordings
from estimator_cache import main as run_cache

from bluezone.matching.bluezone_scorer import WHOLE_WINDOW, BluezoneConfig, BluezoneScorer, minute_attenuation
from bluezone.matching.receiver import for_receiver
from bluezone.matching.scoring import present_share

THRESHOLDS = (58.5, 59.0, 59.5)
CUTS = (14.5, 14.6, 14.7, 14.8, 14.85, 14.9, 14.95, 15.0)
#: verdict credit -> empty minutes a run bridges (None: whole slots)
BRIDGES: dict[str, int | None] = {"slots": None, "present": BluezoneConfig().gap_fill_slots, "b5": 5, "b10": 10,
                                  "b30": 30, "ends": WHOLE_WINDOW, "span": WHOLE_WINDOW, "cap": BluezoneConfig().gap_fill_slots}
#: credits whose verdict minutes are whole slots capped at the window's minutes under that bridge
CAPPED = ("span", "cap")


def window_minutes(scorer: BluezoneScorer, window) -> dict[str, np.ndarray]:
    """A window's judged slots, their smoothed corrected attenuation, threshold offset and first/last sighting."""
    c = scorer.config
    slots, value, _ = minute_attenuation(window.times, window.attenuation, c)
    shift = scorer.minute_shift(window, slots)
    smooth = scorer.smoothed(slots, value - shift) if shift.any() else scorer.smoothed(slots, value)
    times = np.asarray(window.times, np.float64)
    slot_of = np.floor(times / c.slot_seconds).astype(np.int64)
    judged = np.isin(slot_of, slots)
    where = np.searchsorted(slots, slot_of[judged])
    first, last = np.full(len(slots), np.inf), np.full(len(slots), -np.inf)
    np.minimum.at(first, where, times[judged])
    np.maximum.at(last, where, times[judged])
    offset = scorer.threshold_for(window.day, window.sighting_index) - c.threshold_db
    return {"slot": slots, "smooth": smooth, "first": first, "last": last, "offset": np.float64(offset)}


def keep(result, keys: list) -> dict:
    """``estimator_cache``'s ``extra``: every pair's windows as ``window_minutes``, and the real "ends" scorer's scores."""
    index = {k: i for i, k in enumerate(keys)}
    shipped = BluezoneScorer()
    ends = BluezoneScorer(BluezoneConfig(verdict_credit="ends"))
    kept: dict[tuple, list[dict]] = {}
    weighted, decided, within = np.zeros(len(keys)), np.zeros(len(keys), bool), np.zeros(len(keys))
    for key, windows in result.windows.items():
        if key not in index:
            continue
        context, i = result.contexts[key[2]], index[key]
        kept[key] = [window_minutes(for_receiver(shipped, context), w) for w in windows]
        for w in windows:
            s = for_receiver(ends, context).score(w)
            weighted[i] += s.weighted_minutes
            decided[i] |= s.close_contact
            within[i] = max(within[i], s.minutes_by_bucket["within_2m"])
    return {"windows_kept": kept, "ends_59_scorer": (weighted, decided, within)}


def verdict_minutes(kept: dict, keys: list, credit: str, threshold: float) -> np.ndarray:
    """Per pair, its largest window's verdict minutes (unrounded) under ``credit`` at ``threshold``,
    through the scorer's own ``present_share`` and ``credited``."""
    scorer = BluezoneScorer(BluezoneConfig(threshold_db=threshold))
    c, bridge = scorer.config, BRIDGES[credit]
    out = np.zeros(len(keys))
    for i, key in enumerate(keys):
        for w in kept.get(key, ()):
            weight = scorer.verdict_weight(w["smooth"], threshold + w["offset"])
            share = None
            if bridge is not None and len(w["slot"]):
                times = np.column_stack([w["first"], w["last"]]).ravel()
                share = present_share(times, c.slot_seconds, bridge, c.sampling_seconds)[1]
            if credit in CAPPED:
                within = min(scorer.credited(w["slot"], weight), scorer.credited(w["slot"], np.ones(len(weight)), share))
            else:
                within = scorer.credited(w["slot"], weight, share)
            out[i] = max(out[i], within)
    return out


def grid(cache: Path, out: Path, thresholds: tuple[float, ...], cuts: tuple[float, ...]) -> None:
    """Copies of the caches with ``CREDIT_THRESHOLD@CUT`` scores; checks "ends" at 59 dB and 15 against the real scorer's."""
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(cache.glob("*.pkl")):
        d = pickle.loads(path.read_bytes())
        weighted = d["scores"]["bluezone"][0]
        d["minutes"] = {}
        for credit in BRIDGES:
            for t in thresholds:
                minutes = verdict_minutes(d["windows_kept"], d["keys"], credit, t)
                d["minutes"][f"{credit}_{t:g}"] = minutes
                for cut in cuts:
                    d["scores"][f"{credit}_{t:g}@{cut:g}"] = (weighted, minutes >= cut - 1e-9)
        real = d["ends_59_scorer"]
        mine = d["minutes"]["ends_59"]
        if not ((mine >= d["cc"] - 1e-9) == real[1]).all() or not (np.round(mine, 3) == real[2]).all():
            print(f"{path.name}: ends_59 differs from the real scorer's", flush=True)
        del d["windows_kept"]
        (out / path.name).write_bytes(pickle.dumps(d))


def pairs(grid_dir: Path, seeds: set[int], base: str, variant: str, scenes: set[str] | None) -> None:
    """Every pair whose verdict differs between ``base`` and ``variant`` (``CREDIT_THRESHOLD@CUT``)."""
    for path in sorted(grid_dir.glob("*.pkl")):
        scene, _, seed = path.stem.rpartition("_")
        if int(seed) not in seeds or (scenes and scene not in scenes):
            continue
        d = pickle.loads(path.read_bytes())
        a, b = d["scores"][base][1], d["scores"][variant][1]
        for i in np.flatnonzero(a != b):
            truth = "TRUE " if d["true"][i] >= d["cc"] else "false"
            minutes = " ".join(f"{n} {d['minutes'][n.partition('@')[0]][i]:.2f}" for n in (base, variant) if "@" in n)
            print(f"{scene} {seed} pair {d['keys'][i]}: {truth} true {d['true'][i]:.2f} min, "
                  f"{base} {bool(a[i])} -> {variant} {bool(b[i])}; {minutes}", flush=True)


def main(argv: list[str]) -> None:
    if argv[0] == "--grid":
        thresholds = tuple(float(x) for x in argv[3].split(",")) if len(argv) > 3 else THRESHOLDS
        cuts = tuple(float(x) for x in argv[4].split(",")) if len(argv) > 4 else CUTS
        grid(Path(argv[1]), Path(argv[2]), thresholds, cuts)
        return
    if argv[0] == "--pairs":
        base, variant = argv[3].split(",")
        pairs(Path(argv[1]), {int(s) for s in argv[2].split(",")}, base, variant, set(argv[4].split(",")) if len(argv) > 4 else None)
        return
    if argv[0] == "--recordings":  # e.g. ends_59@14.9: verdict_credit "ends", threshold 59 dB, close contact at 14.9
        variants = {}
        for name in argv[1].split(","):
            credit, _, rest = name.partition("_")
            threshold, _, cut = rest.partition("@")
            variants[name] = (BluezoneScorer, BluezoneConfig, {
                "verdict_credit": credit, "threshold_db": float(threshold), "close_contact_minutes": float(cut)})
        recordings(argv[2:], variants)
        return
    run_cache(argv, extra=keep)


if __name__ == "__main__":
    main(sys.argv[1:])
