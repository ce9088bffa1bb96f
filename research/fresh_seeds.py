"""The shipped scorer against GAEN on fresh seeds: per run, per scene mean, and a paired bootstrap of the means.

Usage: python research/fresh_seeds.py CACHE_DIR SEEDS [--draws N] [--open market,streetfood]
e.g.   python research/estimator_cache.py /tmp/fresh clinic,wall,bus,classroom,office,wedding,market 40,41,42,43,44,45,46,47
       python research/fresh_seeds.py /tmp/fresh 40,41,42,43,44,45,46,47 --draws 500

Reads ``CACHE_DIR/<scene>_<seed>.pkl`` made by ``estimator_cache.py`` with the present code: its
``scores`` are the engine's own (the shipped ``bluezone`` scorer and ``gaen``, the numbers
``bluezone simulate --seed N --json`` reports), so nothing here re-implements a scorer.  Prints:

- per run: F1 / ROC-AUC / PR-AUC of both scorers and bluezone's margins, ``LOSS`` where one is
  below zero, and with ``--draws`` the run's paired bootstrap (``run_draws``, as
  ``estimator_sweep.paired_noise``; kept in ``CACHE_DIR/draws/``);
- per scene: the means over the seeds, the mean and worst-seed margins, and a paired bootstrap of
  the *mean* margins (in draw k every run's receivers are drawn with replacement, each with all its
  pairs, both scorers scored on the draw, and the k-th margins averaged over the seeds): its 95 %
  interval and the share of draws below zero;
- with ``--explain SCENE:SEED`` (a run that loses): the pairs whose verdicts differ between the two
  scorers (true minutes within 2 m, bluezone's hard minutes under the threshold, its expected near
  minutes, GAEN's weighted minutes, the judged minutes' median corrected attenuation, how many of
  them had the receiver's company to compare with) and the top of bluezone's ranking with GAEN's rank
  of the same pairs;
- for the open scenes (``--open``): precision and recall at the default, the best recall at
  precision >= 0.80 along each scorer's ranking, and the hindsight ceiling of the scorer's family
  on the run as written (``detection_ceiling.ceiling`` on the cached raw 10th percentiles: best
  precision at recall >= 0.85, best recall at precision >= 0.80).
"""

from __future__ import annotations

import argparse
import pickle
import warnings
from pathlib import Path

import numpy as np
from detection_ceiling import ceiling
from estimator_sweep import Flat, corrected, estimate, flatten, metrics, shipped

from bluezone.sim.metrics import confusion, pr_curve

NAMES = ("F1", "ROC-AUC", "PR-AUC")
SIMULATIONS = Path(__file__).resolve().parents[1] / "simulations"


def load(cache: Path, seeds: list[int]) -> dict[tuple[str, int], tuple[dict, Flat]]:
    runs = {}
    for path in sorted(cache.glob("*.pkl")):
        scene, _, seed = path.stem.rpartition("_")
        if int(seed) in seeds:
            d = pickle.loads(path.read_bytes())
            runs[(scene, int(seed))] = (d, flatten(d))
    return runs


def recall_at_precision(truth: np.ndarray, score: np.ndarray, floor: float = 0.80) -> float:
    _, precision, recall = pr_curve(truth, score)
    ok = precision >= floor
    return float(recall[ok].max()) if ok.any() else 0.0


def run_draws(f: Flat, draws: int, seed: int = 0) -> np.ndarray:
    """A run's paired bootstrap: per draw (receivers drawn with replacement, each with all its judged
    pairs, both scorers scored on the same draw) bluezone's margins over GAEN in F1, ROC-AUC and PR-AUC;
    a draw with nothing (or only contacts) to find is nan."""
    rng = np.random.default_rng(seed)
    _, inverse = np.unique(f.receiver, return_inverse=True)
    members = [np.flatnonzero(inverse == i) for i in range(inverse.max() + 1)]
    b, g = f.scores["bluezone"], f.scores["gaen"]
    out = np.full((draws, 3), np.nan)
    for k in range(draws):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        t = f.truth[idx]
        if t.any() and not t.all():
            out[k] = np.subtract(metrics(t, b[0][idx], b[1][idx]), metrics(t, g[0][idx], g[1][idx]))
    return out


def cached_draws(cache: Path, scene: str, seed: int, f: Flat, draws: int) -> np.ndarray:
    """``run_draws`` kept beside the cache (``draws/<scene>_<seed>_<draws>.npy``): a run is drawn once."""
    path = cache / "draws" / f"{scene}_{seed}_{draws}.npy"
    if path.exists():
        return np.load(path)
    path.parent.mkdir(exist_ok=True)
    out = run_draws(f, draws, seed)
    np.save(path.with_suffix(".part.npy"), out)
    path.with_suffix(".part.npy").replace(path)
    return out


def interval(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """95 % interval and share of draws below zero, per margin (columns)."""
    return np.nanpercentile(a, 2.5, axis=0), np.nanpercentile(a, 97.5, axis=0), np.nanmean(np.where(np.isnan(a), np.nan, a < 0), axis=0)


def raw_minutes(d: dict) -> dict:
    """The cache in ``detection_ceiling.ceiling``'s shape: per unit, the uncorrected 10th percentiles."""
    units = {k: {10: (u["slot"], u["p10"], u["count"])} for k, u in d["units"].items()}
    return {"keys": d["keys"], "true": d["true"], "cc": d["cc"], "units": units}


def explain(f: Flat, top: int = 15) -> None:
    """Which pairs make one run's margins: verdicts that differ, and the top of bluezone's ranking."""
    s = shipped()
    hard, decided = estimate(f, {**s, "width": 0.0})
    assert (decided == f.scores["bluezone"][1]).all(), "the cache's verdicts are not the shipped scorer's"
    z = corrected(f, s)
    true_min = np.bincount(f.unit, f.near, minlength=len(f.truth)) if f.near is not None else np.full(len(f.truth), np.nan)
    judged = np.bincount(f.unit, minlength=len(f.truth))
    company = np.bincount(f.unit, f.others_n >= s["kmin"], minlength=len(f.truth))
    med = np.full(len(f.truth), np.nan)
    for i in np.unique(f.unit):
        med[i] = np.median(z[f.unit == i])
    bz_rank = np.argsort(np.argsort(-f.scores["bluezone"][0], kind="stable"), kind="stable") + 1
    ga_rank = np.argsort(np.argsort(-f.scores["gaen"][0], kind="stable"), kind="stable") + 1

    def row(i: int) -> str:
        return (f"  unit {i:>6} receiver {f.receiver[i]:>4}  true {'CONTACT' if f.truth[i] else 'far    '}"
                f" truly near (of the judged minutes) {true_min[i]:5.1f}  bluezone hard {hard[i]:5.1f} expected {f.scores['bluezone'][0][i]:5.1f}"
                f" rank {bz_rank[i]:>5}  gaen {f.scores['gaen'][0][i]:5.1f} rank {ga_rank[i]:>5}"
                f"  judged {judged[i]:>4} min, median corrected {med[i]:5.1f} dB, {company[i]:>4} with company")

    b, g = f.scores["bluezone"][1], f.scores["gaen"][1]
    for label, sel in (("bluezone misses, GAEN finds", f.truth & ~b & g), ("GAEN misses, bluezone finds", f.truth & b & ~g),
                       ("bluezone false alarm, GAEN not", ~f.truth & b & ~g), ("GAEN false alarm, bluezone not", ~f.truth & ~b & g)):
        idx = np.flatnonzero(sel)
        print(f"{label}: {len(idx)}")
        for i in idx[np.argsort(-true_min[idx])]:
            print(row(i))
    print(f"top {top} of bluezone's ranking:")
    for i in np.argsort(-f.scores["bluezone"][0], kind="stable")[:top]:
        print(row(i))


def markdown(per_scene: dict[str, list], means: dict[str, tuple], seeds: list[int]) -> str:
    """The two tables docs/simulation.md shows: per scene means with the bootstrap, and margins per seed."""
    lines = ["| scene | seeds | true contacts / pairs | bluezone F1 / ROC / PR | GAEN F1 / ROC / PR | mean margin F1 / ROC / PR"
             " | 95 % of the mean margin (paired bootstrap) | worst seed | runs below GAEN |", "|---" * 9 + "|"]
    for scene, rs in per_scene.items():
        ms = np.array([r[3] for r in rs])
        contacts = np.mean([r[4].truth.sum() for r in rs])
        pairs = np.mean([len(r[4].truth) for r in rs])
        lo, hi = means.get(scene, (None, None))
        interval = " ".join(f"[{x:+.3f}, {y:+.3f}]" for x, y in zip(lo, hi)) if lo is not None else ""
        below = sum(int((np.nan_to_num(m) < 0).any()) for m in ms)
        lines.append(
            f"| {scene} | {len(rs)} | {contacts:.0f} / {pairs:.0f} | {' / '.join(f'{v:.3f}' for v in np.nanmean([r[1] for r in rs], axis=0))}"
            f" | {' / '.join(f'{v:.3f}' for v in np.nanmean([r[2] for r in rs], axis=0))}"
            f" | {' / '.join(f'{v:+.3f}' for v in np.nanmean(ms, axis=0))} | {interval}"
            f" | {' / '.join(f'{v:+.3f}' for v in np.nanmin(ms, axis=0))} | {below} |"
        )
    lines += ["", "| scene | " + " | ".join(str(s) for s in seeds) + " |", "|---" * (len(seeds) + 1) + "|"]
    for scene, rs in per_scene.items():
        by_seed = {r[0]: r[3] for r in rs}
        cells = ["/".join(f"{v:+.3f}" for v in by_seed[s]) if s in by_seed else "n/a" for s in seeds]
        lines.append(f"| {scene} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def who(scene: str, seed: int, f: Flat, d: dict) -> None:
    """``--explain`` for the scenes' people: the run's crowd and phones drawn again from the seed's own
    streams (``engine.people``, as the run drew them), and per kind of differing verdict the pairs'
    groups, carriages and head distance (seated people's seats, sampled over the run; movers drift)."""
    from collections import Counter

    from bluezone.sim.engine import people
    from bluezone.sim.generate import generate
    from bluezone.sim.streams import streams
    from bluezone.sim.scenario import CARRIAGES, load_scenario

    scenario = generate(scene[4:], seed) if scene.startswith("gen-") else load_scenario(SIMULATIONS / f"{scene}.toml")
    crowd, devices = people(scenario, streams(seed))
    minutes = np.arange(0.0, scenario.duration_min * 60.0, 60.0)
    track = [crowd.step(t) for t in minutes]  # positions and presence per minute (a re-draw of movers' paths)
    senders = np.arange(len(devices.person)) if scenario.devices.positives == "all" else None
    names = [g.name or g.kind for g in scenario.groups]
    b, g = f.scores["bluezone"][1], f.scores["gaen"][1]
    for label, sel in (("bluezone false alarm, GAEN not", ~f.truth & b & ~g), ("bluezone finds, GAEN misses", f.truth & b & ~g),
                       ("GAEN false alarm, bluezone not", ~f.truth & ~b & g), ("GAEN finds, bluezone misses", f.truth & ~b & g)):
        kinds: Counter = Counter()
        dist = []
        for i in np.flatnonzero(sel):
            _, row, device = d["keys"][i]
            if senders is None:
                continue  # uploaders drawn after the crowd: not reconstructed here
            a, r = devices.person[row], devices.person[device]
            kinds[(names[crowd.group_of[a]], CARRIAGES[devices.carriage[row]], names[crowd.group_of[r]], CARRIAGES[devices.carriage[device]])] += 1
            both = [np.linalg.norm(p[a] - p[r]) for p, _, present in track if present[a] and present[r]]
            dist.append(np.median(both) if both else np.nan)
        if kinds:
            print(f"{label}: {sum(kinds.values())} pairs, median distance {np.nanmedian(dist):.2f} m (quartiles"
                  f" {np.nanpercentile(dist, 25):.2f}-{np.nanpercentile(dist, 75):.2f}); sender group, carriage -> receiver group, carriage:")
            for k, n in kinds.most_common(8):
                print(f"  {n:>4}  {k[0]} ({k[1]}) -> {k[2]} ({k[3]})")


def fmt(v) -> str:
    return "/".join(f"{x:.3f}" for x in v)


def signed(v) -> str:
    return "/".join(f"{x:+.3f}" for x in v)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache", type=Path)
    ap.add_argument("seeds")
    ap.add_argument("--draws", type=int, default=0, help="paired bootstrap draws (per run and for the means)")
    ap.add_argument("--open", default="market,streetfood", help="scenes to report recall at precision >= 0.80 for")
    ap.add_argument("--explain", help="SCENE:SEED: the pairs behind one run's margins")
    ap.add_argument("--markdown", action="store_true", help="also print the tables as docs/simulation.md shows them")
    a = ap.parse_args()
    warnings.simplefilter("ignore", RuntimeWarning)  # a run with nothing to find has undefined metrics (nan)
    runs = load(a.cache, [int(s) for s in a.seeds.split(",")])
    if a.explain:
        scene, _, seed = a.explain.rpartition(":")
        explain(runs[(scene, int(seed))][1])
        who(scene, int(seed), runs[(scene, int(seed))][1], runs[(scene, int(seed))][0])
        return
    scenes = list(dict.fromkeys(scene for scene, _ in runs))
    print("per run: bluezone F1/ROC-AUC/PR-AUC  gaen F1/ROC-AUC/PR-AUC  margin  (LOSS: a margin below zero)")
    per_scene: dict[str, list] = {}
    for (scene, seed), (d, f) in runs.items():
        if not f.truth.any():  # nothing to find: F1, ROC-AUC and PR-AUC are undefined; say what each flagged
            print(f"{scene:<13}{seed:>4}  contacts    0 / {len(f.truth):>6}  no true contact: bluezone flags"
                  f" {int(f.scores['bluezone'][1].sum())}, gaen {int(f.scores['gaen'][1].sum())} (left out of the means)")
            continue
        bz, ga = metrics(f.truth, *f.scores["bluezone"]), metrics(f.truth, *f.scores["gaen"])
        m = np.subtract(bz, ga)
        c = confusion(f.truth, f.scores["bluezone"][1])
        line = (f"{scene:<13}{seed:>4}  contacts {int(f.truth.sum()):>4} / {len(f.truth):>6}  P/R {c.precision:.2f}/{c.recall:.2f}  "
                f"bz {fmt(bz)}  gaen {fmt(ga)}  margin {signed(m)}" + ("  LOSS" if (np.nan_to_num(m) < 0).any() else ""))
        if a.draws:
            lo, hi, below = interval(cached_draws(a.cache, scene, seed, f, a.draws))
            line += "  95 % " + " ".join(f"[{x:+.3f},{y:+.3f}]" for x, y in zip(lo, hi)) + "  P(<0) " + "/".join(f"{p:.2f}" for p in below)
        print(line, flush=True)
        per_scene.setdefault(scene, []).append((seed, bz, ga, m, f, d))
    print("\nper scene (means over seeds): bluezone F1/ROC/PR | gaen | mean margin | worst-seed margin | runs with a loss")
    intervals: dict[str, tuple] = {}
    for scene in scenes:
        rs = per_scene.get(scene)
        if not rs:
            continue
        bz = np.nanmean([r[1] for r in rs], axis=0)
        ga = np.nanmean([r[2] for r in rs], axis=0)
        ms = np.array([r[3] for r in rs])
        losses = [f"{r[0]}:" + ",".join(n for n, v in zip(NAMES, r[3]) if v < 0) for r in rs if (np.nan_to_num(r[3]) < 0).any()]
        line = (f"{scene:<13}{len(rs):>2} seeds  bz {fmt(bz)}  gaen {fmt(ga)}  mean {signed(np.nanmean(ms, axis=0))}"
                f"  worst {signed(np.nanmin(ms, axis=0))}  losses {' '.join(losses) or 'none'}")
        if a.draws:
            # the mean over the seeds in each draw: every run's receivers drawn on their own
            lo, hi, below = interval(np.nanmean([cached_draws(a.cache, scene, r[0], r[4], a.draws) for r in rs], axis=0))
            intervals[scene] = (lo, hi)
            line += "  mean 95 % " + " ".join(f"[{x:+.3f},{y:+.3f}]" for x, y in zip(lo, hi)) + "  P(<0) " + "/".join(f"{p:.2f}" for p in below)
        print(line, flush=True)
    if a.markdown:
        print("\n" + markdown(per_scene, intervals, [int(s) for s in a.seeds.split(",")]))
    open_scenes = [s for s in a.open.split(",") if s in per_scene]
    if open_scenes:
        print("\nopen scenes: P/R at the default | best recall at precision >= 0.80 along the ranking, bluezone / gaen"
              " | hindsight ceiling of the scorer's family as written: best P at R >= 0.85, best R at P >= 0.80")
    for scene in open_scenes:
        rows = []
        for seed, _, _, _, f, d in per_scene[scene]:
            c = confusion(f.truth, f.scores["bluezone"][1])
            r_bz = recall_at_precision(f.truth, f.scores["bluezone"][0])
            r_ga = recall_at_precision(f.truth, f.scores["gaen"][0])
            p85, r80, _ = ceiling(raw_minutes(d))
            rows.append((c.precision, c.recall, r_bz, r_ga, p85, r80))
            print(f"{scene:<13}{seed:>4}  P/R {c.precision:.2f}/{c.recall:.2f}  R@P>=0.8 {r_bz:.2f} / {r_ga:.2f}"
                  f"  ceiling P@R>=0.85 {p85:.2f}  R@P>=0.8 {r80:.2f}", flush=True)
        m = np.mean(rows, axis=0)
        print(f"{scene:<13}mean  P/R {m[0]:.2f}/{m[1]:.2f}  R@P>=0.8 {m[2]:.2f} / {m[3]:.2f}  ceiling P@R>=0.85 {m[4]:.2f}  R@P>=0.8 {m[5]:.2f}")


if __name__ == "__main__":
    main()
