"""A reference form, its nominal and the threshold retuned together, re-scored from one engine run (est18, issue 13).

Usage: python research/reference_retune.py CACHE_DIR SCENES SEEDS [--minutes M]
       python research/reference_retune.py --score CACHE_DIR OUT_DIR VARIANT[,VARIANT...] [SEEDS]
       python research/credit_table.py OUT_DIR SEEDS --variants bluezone,cap4_r63_t59,... [--digits 5]
       python research/reference_retune.py --runs OUT_DIR VARIANT[,VARIANT...] [SEEDS]
       python research/reference_retune.py --recordings VARIANT[,...] [DATASET_DIR ...]   (``credit_recordings.py``'s report)

The first form runs each (scene, seed) once through the real engine (memory stores, ``gaen`` and the shipped
``bluezone``) and keeps every pair's exposure windows and every receiver's context
(``engine.run(keep_windows=True)``) as ``CACHE_DIR/<scene>_<seed>.pkl``: any setting of the scorer can then
be scored on them as the engine scores it, without a new run.  ``reference_bounds.py`` scored its variants
during the run only, so a new nominal or threshold needed a new run.

``--score`` writes ``OUT_DIR/<scene>_<seed>.pkl`` in ``credit_table.py``'s form with every VARIANT's scores
(an existing file gains only the variants it lacks).  A VARIANT is ``FORM[_rDB][_tDB]``: a form of
``reference_bounds.VARIANTS`` ("shipped", "cap3", "cap4", ...) with ``minute_reference_db`` = DB after ``_r``
and ``threshold_db`` = DB after ``_t``, ``minute_reference_quantile`` after ``_q``, ``minute_reference_weight`` after
``_w``, ``ranking_reference_strongest`` after ``_k`` (``_k0``: the ranking's own reference off, the scorer before
est20) (e.g. ``cap4_r62_t59.5``; ``capK`` for any k; ``scapK_sDB``: ``SlackCapScorer``; ``rankK_sDB``: the scorer's
``ranking_reference_strongest`` = K, ``ranking_reference_slack_db`` = DB).  ``RANKING~VERDICT``
(e.g. ``shipped~cap4_r62``) is one variant's ranking (``weighted_minutes``) with another's verdict: what a
scorer reading its ranking and its verdict each its own way would give.  ``--runs`` prints each run's
margins over GAEN.  The shipped scorer re-scored must equal the
engine's own scores to the digit (checked on every file: a difference is printed).  Tuning seeds only
(docs/simulation.md).
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from credit_recordings import main as recordings
from estimator_sweep import metrics
from reference_bounds import VARIANTS, each_run, engine_run

from bluezone.matching.bluezone_scorer import BluezoneConfig, BluezoneScorer
from bluezone.matching.receiver import for_receiver

#: the settings a variant name's suffixes set
SUFFIXES = {"r": "minute_reference_db", "t": "threshold_db", "q": "minute_reference_quantile", "w": "minute_reference_weight",
            "k": "ranking_reference_strongest"}


@dataclass
class SlackCapScorer(BluezoneScorer):
    """The shipped scorer whose same-minute reference is never weaker than the minute's k-th strongest other
    link plus ``slack_db`` (``scapK_sDB``): the two-sided cap moves only minutes whose k-th strongest link sits
    more than ``slack_db`` under the percentile, so a sparse minute (where the cap never binds) keeps its shift
    to the bit and only crowded minutes read their company nearer.  The scorer's ``ranking_reference_strongest``
    and ``ranking_reference_slack_db`` (``rankK_sDB``) are this for the ranking alone (the verdict kept):
    ``scapK_sDB~shipped``; this separate form checks them (tests/sim/test_estimator_research.py)."""

    k: int = 4
    slack_db: float = 0.0

    def minute_shifts(self, window, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shift = self.capped(window, slots, super().minute_shifts(window, slots)[0])
        return shift, shift

    def capped(self, window, slots: np.ndarray, shift: np.ndarray) -> np.ndarray:
        c = self.config
        if self.receiver is None or c.minute_reference_weight == 0 or len(slots) == 0:
            return shift
        kth, count = self.receiver.minute_reference(slots, 100.0, window.sighting_index, c.reference_min_minutes, self.k)
        ref, _ = self.receiver.minute_reference(slots, c.minute_reference_quantile, window.sighting_index, c.reference_min_minutes)
        capped = (count >= c.minute_reference_min_links) & (kth + self.slack_db < ref)
        clip = c.minute_reference_clip_db
        shift[capped] = c.minute_reference_weight * np.clip(kth[capped] + self.slack_db - c.minute_reference_db, -clip,
                                                           clip * c.minute_reference_near_share)
        return shift


def settings(variant: str) -> dict:
    """``FORM[_rDB][_tDB]...`` -> the scorer's settings over the shipped defaults (``scapK``: the shipped form's)."""
    form, *rest = variant.split("_")
    if form not in VARIANTS and form.startswith("cap"):  # any k, as reference_bounds.py's cap3 and cap4
        out: dict = {"minute_reference_strongest": int(form[3:])}
    elif form.startswith("rank"):  # the scorer's own setting: the slack cap for the ranking only
        slack = [float(p[1:]) for p in rest if p[0] == "s"]
        out = {"ranking_reference_strongest": int(form[4:]), "ranking_reference_slack_db": slack[0] if slack else 0.0}
    else:
        out = {} if form.startswith("scap") else dict(VARIANTS[form])
    for part in rest:
        if part[0] in SUFFIXES:
            key = SUFFIXES[part[0]]
            out[key] = int(part[1:]) if key == "ranking_reference_strongest" else float(part[1:])
    return out


def scorer(variant: str) -> BluezoneScorer:
    """The scorer a variant name stands for (``scapK_sDB``: ``SlackCapScorer`` with k = K and a slack of DB)."""
    config = BluezoneConfig(**settings(variant))
    form, *rest = variant.split("_")
    if form.startswith("scap"):
        slack = [float(p[1:]) for p in rest if p[0] == "s"]
        return SlackCapScorer(config, k=int(form[4:]), slack_db=slack[0] if slack else 0.0)
    return BluezoneScorer(config)


def maker(variant: str) -> Callable[[BluezoneConfig], BluezoneScorer]:
    """``scorer(variant)`` as a registry's ``scorer_cls(config)`` (the config may carry evaluate's overrides)."""

    def make(config: BluezoneConfig) -> BluezoneScorer:
        return replace(scorer(variant), config=config)

    make.__name__ = "BluezoneScorer"  # credit_recordings.py moves its distance decisions as bluezone's
    return make


def collect(name: str, seed: int, minutes: float | None) -> dict:
    """One run: truth, the engine's scores, every pair's windows and every receiver's context."""
    result, common = engine_run(name, seed, minutes)
    return {**common, "windows": result.windows, "contexts": result.contexts}


def scored(d: dict, variant: str) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, (weighted minutes summed over its windows, any window a close contact) as the engine adds them up."""
    judged = scorer(variant)
    index = {k: i for i, k in enumerate(d["keys"])}
    weighted, decided = np.zeros(len(index)), np.zeros(len(index), bool)
    for key, windows in d["windows"].items():
        if key not in index:
            continue
        judge = for_receiver(judged, d["contexts"][key[2]])
        for w in windows:
            s = judge.score(w)
            weighted[index[key]] += s.weighted_minutes
            decided[index[key]] |= s.close_contact
    return weighted, decided


def score(cache: Path, out: Path, variants: list[str], seeds: set[int] | None) -> None:
    """``--score``: each cache's variants into ``out`` (credit_table.py's form); the shipped one checked."""
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(cache.glob("*.pkl")):
        if seeds and int(path.stem.rpartition("_")[2]) not in seeds:
            continue
        target = out / path.name
        names = [part for v in ["shipped", *variants] for part in v.split("~")]
        kept = pickle.loads(target.read_bytes()) if target.exists() else None
        d = None
        if kept is None or any(n not in kept["scores"] for n in names):  # the run itself only when something is new
            d = pickle.loads(path.read_bytes())
            kept = kept or {k: d[k] for k in ("keys", "true", "cc")} | {"scores": dict(d["scores"])}
        for name in names:
            if name not in kept["scores"]:
                kept["scores"][name] = scored(d, name)
        for variant in variants:
            ranking, _, verdict = variant.partition("~")
            if verdict:  # one variant's ranking with another's verdict: what a scorer reading each its own way gives
                kept["scores"][variant] = (kept["scores"][ranking][0], kept["scores"][verdict][1])
        w, v = kept["scores"]["shipped"], kept["scores"]["bluezone"]
        if not (np.array_equal(np.round(w[0], 3), np.round(v[0], 3)) and np.array_equal(w[1], v[1])):
            print(f"{path.name}: the shipped scorer re-scored differs from the engine's", flush=True)
        target.with_suffix(".part").write_bytes(pickle.dumps(kept))
        target.with_suffix(".part").replace(target)
        print(path.stem, "scored", len(kept["scores"]) - 3, "variants", flush=True)


def runs(out: Path, variants: list[str], seeds: set[int] | None) -> None:
    """``--runs``: per run, GAEN's F1 / ROC-AUC / PR-AUC and each variant's margins over it."""
    for path in sorted(out.glob("*.pkl")):
        if seeds and int(path.stem.rpartition("_")[2]) not in seeds:
            continue
        d = pickle.loads(path.read_bytes())
        truth = np.asarray(d["true"]) >= d["cc"]
        gaen = metrics(truth, *d["scores"]["gaen"])
        cells = [f"{v} " + "/".join(f"{m - g:+.3f}" for m, g in zip(metrics(truth, *d["scores"][v]), gaen, strict=True))
                 for v in variants if v in d["scores"]]
        print(f"{path.stem:<13} true {int(truth.sum()):>3}  gaen " + "/".join(f"{g:.3f}" for g in gaen) + "  " + "  ".join(cells))


def main(argv: list[str]) -> None:
    if argv[0] == "--runs":
        runs(Path(argv[1]), argv[2].split(","), {int(s) for s in argv[3].split(",")} if len(argv) > 3 else None)
        return
    if argv[0] == "--score":
        score(Path(argv[1]), Path(argv[2]), argv[3].split(","), {int(s) for s in argv[4].split(",")} if len(argv) > 4 else None)
        return
    if argv[0] == "--recordings":
        recordings(argv[2:], {n: (maker(n), BluezoneConfig, settings(n)) for n in argv[1].split(",")})
        return
    each_run(argv, collect, lambda scene, seed, d: f"{scene} {seed} windows {sum(len(w) for w in d['windows'].values())}")

if __name__ == "__main__":
    main(sys.argv[1:])
