"""Bounds on what short-lived RPIs may move the receiver's references, on honest scenes (ref16, issue 13).

Usage: python research/reference_bounds.py OUT_DIR SCENES SEEDS [--minutes M] [--variants a,b]
       python research/reference_bounds.py --table OUT_DIR SEEDS [--deltas]
       python research/reference_bounds.py --recordings [--only NAMES] [DATASET_DIR ...]   (``credit_recordings.py``'s report)
e.g.   python research/reference_bounds.py /tmp/refb classroom,office,wall 11,12

Each (scene, seed) runs once through the real engine (memory stores, ``gaen`` and the shipped
``bluezone``, windows and receiver contexts kept: ``engine.run(keep_windows=True)``); on the kept
windows every variant of ``VARIANTS`` (the shipped scorer with settings changed) is scored as the
engine scores (``receiver.for_receiver``, a pair's windows added up), and kept as
``OUT_DIR/<scene>_<seed>.pkl`` (an existing file is not run again) in ``credit_table.py``'s form, so
``python research/credit_table.py OUT_DIR SEEDS --variants ... --digits 5`` reads it too.  Printed per run:
how many windows each variant scores differently from the shipped scorer (any field of the score), and
F1 / ROC-AUC / PR-AUC of each beside the shipped one's.  ``--table`` prints those again from the files.
``--recordings``: the shared recordings (MIT LL with its bystanders as each receiver's company) under each
variant.  The attack these bounds answer: ``reference_attack.py``.  Tuning seeds only (docs/simulation.md).
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
from credit_recordings import main as recordings
from estimator_cache import each_run, scene_path
from estimator_sweep import metrics

from bluezone.matching.bluezone_scorer import BluezoneConfig, BluezoneScorer
from bluezone.matching.receiver import for_receiver
from bluezone.sim import engine, report
from bluezone.sim.scenario import load_scenario

#: name -> settings over the shipped defaults
VARIANTS: dict[str, dict] = {
    "shipped": {},  # the engine's scorer again, on the kept windows: must equal the engine's own scores
    "run2": {"reference_min_minutes": 2},
    "run3": {"reference_min_minutes": 3},
    **{f"near{share:g}": {"minute_reference_near_share": share} for share in (0.75, 0.5, 0.25, 0.0)},
    # ref17: a reference weak company cannot raise past the k-th strongest other link (``cap``), or that
    # k-th strongest link itself (``kth``; a minute with fewer than k others gets the day-level shift)
    **{f"cap{k}": {"minute_reference_strongest": k} for k in (2, 3, 4)},
    # ... the same bound on the "near" side alone, past a near share of 0 (``ncapK``) or 0.5 (``n50capK``)
    **{f"ncap{k}": {"minute_reference_strongest": k, "minute_reference_strongest_near_only": True,
                    "minute_reference_near_share": 0.0} for k in (1, 2, 3, 4)},
    **{f"n50cap{k}": {"minute_reference_strongest": k, "minute_reference_strongest_near_only": True,
                      "minute_reference_near_share": 0.5} for k in (2, 3)},
    "kth1": {"minute_reference_quantile": 0.0},
    **{f"kth{k}": {"minute_reference_quantile": 100.0, "minute_reference_strongest": k,
                   "minute_reference_min_links": max(k, 2)} for k in (2, 3)},
}
#: the variants a run scores (``--variants a,b``; "shipped" always): all of them by default
CHOSEN: list[str] = list(VARIANTS)


def engine_run(name: str, seed: int, minutes: float | None) -> tuple[engine.RunResult, dict]:
    """One run through the engine (``gaen`` and the shipped ``bluezone``, windows and receiver contexts kept): the
    result, and the cache's common part (keys, truth, close-contact minutes, the engine's scores per pair)."""
    scenario = load_scenario(scene_path(name))
    if minutes:
        scenario = scenario.with_overrides(duration_min=min(minutes, scenario.duration_min))
    result = engine.run(scenario, seed=seed, scorers=["gaen", "bluezone"], store="memory", keep_windows=True)
    keys, true = report.units(result)
    scores = {
        n: (np.array([s[k].weighted_minutes if k in s else 0.0 for k in keys]),
            np.array([s[k].close_contact if k in s else False for k in keys]))
        for n, s in result.scores.items()
    }
    return result, {"keys": keys, "true": true, "cc": scenario.close_contact_min, "scores": scores}


def collect(name: str, seed: int, minutes: float | None) -> dict:
    """One run: truth, the engine's scores and each variant's, and how many windows each variant changed."""
    result, common = engine_run(name, seed, minutes)
    keys, scores = common["keys"], common["scores"]
    index = {k: i for i, k in enumerate(keys)}
    changed = {}
    shipped = BluezoneScorer()
    base = {key: [for_receiver(shipped, result.contexts[key[2]]).score(w) for w in windows]
            for key, windows in result.windows.items()}
    for variant in CHOSEN:
        scorer = BluezoneScorer(BluezoneConfig(**VARIANTS[variant]))
        weighted, decided = np.zeros(len(keys)), np.zeros(len(keys), bool)
        differ = 0
        for key, windows in result.windows.items():
            judge = for_receiver(scorer, result.contexts[key[2]])
            for w, b in zip(windows, base[key], strict=True):
                s = judge.score(w)
                differ += s != b
                if key in index:
                    weighted[index[key]] += s.weighted_minutes
                    decided[index[key]] |= s.close_contact
        scores[variant] = (weighted, decided)
        changed[variant] = differ
    windows = sum(len(ws) for ws in result.windows.values())
    return {**common, "changed": changed, "windows": windows}


def line(name: str, seed: int, d: dict, deltas: bool = False) -> str:
    """One run's F1/ROC-AUC/PR-AUC by variant (``deltas``: each variant's minus the shipped scorer's)."""
    truth = np.asarray(d["true"]) >= d["cc"]
    parts = [f"{name} {seed}: {d['windows']} windows"]
    base = metrics(truth, *d["scores"]["bluezone"])
    for variant in ["bluezone", *(v for v in VARIANTS if v in d["scores"])]:
        weighted, decided = d["scores"][variant]
        got = metrics(truth, weighted, decided)
        changed = "" if variant == "bluezone" else f" ({d['changed'][variant]} changed)"
        if deltas and variant != "bluezone":
            parts.append(f"{variant}{changed} " + "/".join(f"{g - b:+.5f}" for g, b in zip(got, base, strict=True)))
        else:
            parts.append(f"{variant}{changed} " + "/".join(f"{g:.5f}" for g in got))
    return "  ".join(parts)


def main(argv: list[str]) -> None:
    if "--variants" in argv:
        at = argv.index("--variants")
        CHOSEN[:] = ["shipped", *(v for v in argv[at + 1].split(",") if v != "shipped")]
        argv = argv[:at] + argv[at + 2:]
    if argv[:1] == ["--recordings"]:
        recordings(argv[1:], {n: (BluezoneScorer, BluezoneConfig, VARIANTS[n]) for n in CHOSEN if n != "shipped"})
        return
    if argv[0] == "--table":
        seeds = {int(s) for s in argv[2].split(",")}
        for path in sorted(Path(argv[1]).glob("*.pkl")):
            scene, _, seed = path.stem.rpartition("_")
            if int(seed) in seeds:
                print(line(scene, int(seed), pickle.loads(path.read_bytes()), "--deltas" in argv), flush=True)
        return
    each_run(argv, collect, line)


if __name__ == "__main__":
    main(sys.argv[1:])
