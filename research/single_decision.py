"""The single default decision: why GAEN's wins on Ng at 1.2 m, and what moving ours would cost.

Usage: python research/single_decision.py [--tune-cache DIR] [--tune SEEDS] [--hold-cache DIR] [--hold SEEDS] [--bootstrap N] [--twelfth]
e.g.   python research/single_decision.py --tune-cache /tmp/verdict_est --tune 11,12,13,14,15,16 --hold-cache /tmp/esthold --hold 0,3,4,5,6,7,8,9

``bluezone evaluate`` judges one-minute windows: a window is detected when the scorer credits it
at least half a minute (bluezone: its 10th-percentile attenuation at or under ``threshold_db``;
GAEN: its mean attenuation in the immediate or near bucket, <= 63 dB), and nDCF = P_miss + P_fa
scores that one decision against "within D" for D = 1.2, 1.8, 3.0 m (NIST TC4TL). This script:

1. *Operating points* on Ng and MIT LL (read as ``evaluate`` reads them: calibrated, MIT LL with
   its bystanders): detection per distance, P_miss and P_fa at each D, and at 2.0 m ("closer than
   2 m", the question both default decisions answer);
2. *Noise*: a paired bootstrap of GAEN's nDCF minus bluezone's at each D (whole recordings
   resampled within (setup, under / over 2 m) strata, as ``evaluate`` does): its 95 % interval and
   how often bluezone comes out worse;
3. *The trade-off*: bluezone's ``threshold_db`` moved (54-61 dB; everything else as shipped), scored
   on Ng's two halves (setups sorted by name, even places = tuning half, odd = held-back half; the
   two halves are the two phones of each carriage pair, so they share geometry), MIT LL, and the
   cached shipped scenes (``estimator_cache.py`` pickles; ``estimator_sweep.py``'s arithmetic, the
   shipped same-minute correction): worst mean margin over GAEN in F1 / ROC-AUC / PR-AUC over scenes;
4. *Ranking*: ROC-AUC at each D of other per-minute statistics than the 10th percentile on Ng;
5. *A choice made on tuning material only*: the threshold with the best worst margin over the scenes'
   tuning seeds (F1, ROC-AUC, PR-AUC) and Ng's tuning half (GAEN's nDCF minus bluezone's at each D),
   then shown on what took no part (held-back seeds, Ng's other half, MIT LL);
6. *Which windows flip Ng at 1.2 m* (``flips``): per distance, the windows one decision flags and the
   other does not, what each band adds to P_miss and P_fa, by receiving phone, and the nDCF with the
   band between the two questions (1.4-1.8 m: beyond 1.2 m, closer than 2 m) left out;
7. *One threshold for both recordings and the scenes* (``--twelfth``): per threshold, whether each
   recording meets "below GAEN's and below 0.8 at 1.2 / 1.8 / 3.0 m", the scenes' F1 margin over GAEN
   (mean over seeds per scene, worst scene; the shipped near/far chain ranks, and it does not read
   ``threshold_db``, so ROC-AUC and PR-AUC do not move with it), and the worth on the tuning material
   (the worse of the tuning scenes' worst F1 margin and both whole recordings' worst nDCF margin);
   ``--hold`` seeds are shown, not chosen on.

``--twelfth`` e.g. ``--tune-cache /tmp/llr_est --tune 11,12 --hold-cache /tmp/fresh --hold 40,41,42,43,44,45,46,47 --twelfth``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bluezone.calibration.table import default_table
from bluezone.matching.scoring import get_scorer
from bluezone.sim.datasets import load_dataset
from bluezone.sim.metrics import roc_auc
from bluezone.sim.evaluate import (
    BEACON_TX_POWER,
    CLOSE_M,
    NOMINAL_TX_POWER,
    TC4TL_DISTANCES_M,
    TC4TL_SLACK_M,
    Minute,
    minutes_window,
    calibrations,
    judged,
    minutes_of,
    verdict_share,
)
from estimator_sweep import judge, load as load_runs, shipped

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
THRESHOLDS = np.arange(54.0, 61.5, 0.5)
QUESTIONS = (*TC4TL_DISTANCES_M, CLOSE_M)  # 2.0: "strictly closer than 2 m", the decisions' own question


def within(dist: np.ndarray, d: float) -> np.ndarray:
    return dist < CLOSE_M if d == CLOSE_M else dist <= d + TC4TL_SLACK_M


def detected(name: str, minutes: list[Minute], threshold: float | None = None) -> np.ndarray:
    """Whether each one-minute window is flagged (``evaluate``'s rule: the verdict's minutes, not the
    ranking's, since the near/far chain ranks), bluezone at ``threshold``."""
    scorer = get_scorer(name) if threshold is None else get_scorer(name, overrides={"threshold_db": float(threshold)})
    return np.array([verdict_share(judged(scorer, [m]).score(minutes_window(m.times, m.attenuation))) >= 0.5 for m in minutes])


def cost(inside: np.ndarray, flagged: np.ndarray) -> tuple[float, float, float]:
    """(nDCF, P_miss, P_fa)."""
    p_miss, p_fa = float(np.mean(~flagged[inside])), float(np.mean(flagged[~inside]))
    return p_miss + p_fa, p_miss, p_fa


def load(root: Path) -> list[Minute]:
    dataset = load_dataset(root, bystanders=True)
    links, _ = calibrations(dataset.recordings, default_table(), NOMINAL_TX_POWER, BEACON_TX_POWER.get(dataset.layout))
    return minutes_of(dataset.recordings, NOMINAL_TX_POWER, links)


def operating_points(label: str, minutes: list[Minute], flags: dict[str, np.ndarray]) -> None:
    dist = np.array([m.distance_m for m in minutes])
    print(f"\n{label}: share of one-minute windows flagged per distance (windows)")
    print("distance m   " + "  ".join(f"{d:>5.2f}" for d in np.unique(dist)))
    print("windows      " + "  ".join(f"{int((dist == d).sum()):>5d}" for d in np.unique(dist)))
    for name, f in flags.items():
        print(f"{name:<13}" + "  ".join(f"{np.mean(f[dist == d]):>5.2f}" for d in np.unique(dist)))
    print("nDCF (P_miss + P_fa) of the default decisions against 'within D'")
    for name, f in flags.items():
        print(f"{name:<13}" + "  ".join(
            f"{d:g} m {c[0]:.3f} ({c[1]:.2f} + {c[2]:.2f})" for d in QUESTIONS for c in [cost(within(dist, d), f)]
        ))


def paired_bootstrap(label: str, minutes: list[Minute], flags: dict[str, np.ndarray], n: int, seed: int = 0) -> None:
    """GAEN's nDCF minus bluezone's (positive: bluezone better), whole recordings resampled within strata."""
    dist = np.array([m.distance_m for m in minutes])
    rids = sorted({m.rid for m in minutes})
    rows = {r: np.flatnonzero([m.rid == r for m in minutes]) for r in rids}
    strata: dict[tuple[str, bool], list[str]] = {}
    for r in rids:
        strata.setdefault((minutes[rows[r][0]].setup, bool(dist[rows[r][0]] < CLOSE_M)), []).append(r)
    rng = np.random.default_rng(seed)
    diffs: dict[float, list[float]] = {d: [] for d in QUESTIONS}
    for _ in range(n):
        pick = [r for members in strata.values() for r in rng.choice(members, len(members), replace=True)]
        idx = np.concatenate([rows[r] for r in pick])
        for d in QUESTIONS:
            inside = within(dist[idx], d)
            if inside.all() or not inside.any():
                continue
            diffs[d].append(cost(inside, flags["gaen"][idx])[0] - cost(inside, flags["bluezone"][idx])[0])
    print(f"\n{label}: GAEN's nDCF minus bluezone's (default decisions), paired bootstrap over recordings ({n} resamples)")
    for d in QUESTIONS:
        point = cost(within(dist, d), flags["gaen"])[0] - cost(within(dist, d), flags["bluezone"])[0]
        v = np.array(diffs[d])
        print(f"  {d:g} m: {point:+.3f}  95 % [{np.percentile(v, 2.5):+.3f}, {np.percentile(v, 97.5):+.3f}]"
              f"  bluezone worse in {np.mean(v < 0):.0%} of resamples")


def ranking_statistics(label: str, minutes: list[Minute], half: np.ndarray) -> None:
    """ROC-AUC at each D of per-minute statistics of attenuation (lower ranks closer): could another
    statistic than bluezone's 10th percentile (or GAEN's typical, the median) rank Ng better?"""
    dist = np.array([m.distance_m for m in minutes])
    stats = {f"p{q}": np.array([np.percentile(m.attenuation, q) for m in minutes]) for q in (0, 5, 10, 25, 50)}
    stats["mean"] = np.array([np.mean(m.attenuation) for m in minutes])
    # packet spread beside the level (the idea): on Ng close minutes spread more (SD ~6 dB against ~4.5 at 3 m+)
    stats["p10-sd"] = stats["p10"] - np.array([np.std(m.attenuation) for m in minutes])
    print(f"\n{label}: ROC-AUC of per-minute statistics, all / tuning half / held-back half")
    for d in TC4TL_DISTANCES_M:
        inside = within(dist, d)
        print(f"  {d:g} m: " + "  ".join(
            f"{k} {roc_auc(inside, -v):.3f}/{roc_auc(inside[half], -v[half]):.3f}/{roc_auc(inside[~half], -v[~half]):.3f}"
            for k, v in stats.items()
        ))


def recording_margins(minutes: list[Minute], part: np.ndarray, grid: dict[float, np.ndarray], gaen: np.ndarray) -> dict[float, np.ndarray]:
    """Per threshold: GAEN's nDCF minus bluezone's at 1.2 / 1.8 / 3.0 m on the minutes in ``part``."""
    dist = np.array([m.distance_m for m in minutes])[part]
    return {
        t: np.array([cost(within(dist, d), gaen[part])[0] - cost(within(dist, d), f[part])[0] for d in TC4TL_DISTANCES_M])
        for t, f in grid.items()
    }


def scene_margins(runs: dict, thresholds: np.ndarray) -> dict[float, dict[str, np.ndarray]]:
    return {t: judge(runs, {**shipped(), "threshold": float(t), "decision_db": float(t)}) for t in thresholds}


BAND_M = (1.3, 1.9)  # Ng's 1.4-1.8 m windows: beyond 1.2 m (TC4TL's slack 0.05 m), closer than 2 m


def flips(label: str, minutes: list[Minute], flags: dict[str, np.ndarray], d: float = 1.2) -> None:
    """Which windows make bluezone's nDCF at ``d`` differ from GAEN's: per distance, windows flagged by
    one decision only, and what they add to P_miss (inside) or P_fa (outside); by receiving phone; and
    the nDCF with the windows between ``d`` and 2 m left out (the band where the two questions differ)."""
    dist = np.array([m.distance_m for m in minutes])
    phone = np.array([m.setup.rpartition("/")[2] for m in minutes])
    inside = within(dist, d)
    bz, ga = flags["bluezone"], flags["gaen"]
    n_in, n_out = int(inside.sum()), int((~inside).sum())
    print(f"\n{label}: windows flagged by one default decision only, and bluezone's nDCF minus GAEN's at {d:g} m they make"
          f" ({n_in} windows inside, {n_out} outside)")
    print("distance m  windows  bluezone only  gaen only  both  neither  adds to bluezone - gaen")
    total = 0.0
    for x in np.unique(dist):
        at = dist == x
        only_b, only_g = int((bz & ~ga & at).sum()), int((ga & ~bz & at).sum())
        inside_x = bool(inside[at][0])
        add = -(only_b - only_g) / n_in if inside_x else (only_b - only_g) / n_out
        total += add
        print(f"{x:>9.2f}  {int(at.sum()):>7d}  {only_b:>13d}  {only_g:>9d}  {int((bz & ga & at).sum()):>4d}"
              f"  {int((~bz & ~ga & at).sum()):>7d}  {add:+.3f} ({'P_miss' if inside_x else 'P_fa'})")
    print(f"total {total:+.3f} (= {cost(inside, bz)[0]:.3f} - {cost(inside, ga)[0]:.3f})")
    band = (dist > BAND_M[0]) & (dist < BAND_M[1])
    flagged_b, flagged_g = bz & band, ga & band
    print(f"the {int(band.sum())} windows at {BAND_M[0] + 0.1:g}-{BAND_M[1] - 0.1:g} m: bluezone flags {int(flagged_b.sum())}, GAEN"
          f" {int(flagged_g.sum())}; their 10th percentile (bluezone's statistic) median {np.median([np.percentile(m.attenuation, 10) for m, b in zip(minutes, band) if b]):.1f} dB,"
          f" their mean (GAEN's) median {np.median([np.mean(m.attenuation) for m, b in zip(minutes, band) if b]):.1f} dB")
    for p in np.unique(phone) if all("/" in m.setup for m in minutes) else []:  # Ng's setups name the receiving phone
        sel = phone == p
        if not inside[sel].any() or inside[sel].all():
            continue
        print(f"  received by {p:<12} {d:g} m nDCF bluezone {cost(inside[sel], bz[sel])[0]:.3f} gaen {cost(inside[sel], ga[sel])[0]:.3f};"
              f" band windows flagged bluezone {int((bz & band & sel).sum())} / gaen {int((ga & band & sel).sum())} of {int((band & sel).sum())}")
    keep = ~band
    print(f"nDCF at {d:g} m without those windows: bluezone {cost(inside[keep], bz[keep])[0]:.3f}"
          f" ({cost(inside[keep], bz[keep])[1]:.2f} + {cost(inside[keep], bz[keep])[2]:.2f}),"
          f" gaen {cost(inside[keep], ga[keep])[0]:.3f} ({cost(inside[keep], ga[keep])[1]:.2f} + {cost(inside[keep], ga[keep])[2]:.2f})")
    as_gaen = np.where(band, ga, bz)
    print(f"bluezone with GAEN's decisions on those windows only: {d:g} m nDCF {cost(inside, as_gaen)[0]:.3f},"
          f" 2 m (closer than 2 m) {cost(within(dist, CLOSE_M), as_gaen)[0]:.3f} against its own {cost(within(dist, CLOSE_M), bz)[0]:.3f}")


def scene_f1(runs: dict, thresholds: np.ndarray) -> dict[float, dict[str, np.ndarray]]:
    """Per threshold, per scene: bluezone's F1 margins over GAEN per run (the verdict at that threshold,
    ``estimator_sweep``'s arithmetic, checked equal to the engine's at the shipped 59 dB)."""
    from bluezone.sim.metrics import confusion
    from estimator_sweep import estimate

    out: dict[float, dict[str, np.ndarray]] = {}
    for t in thresholds:
        per: dict[str, list[float]] = {}
        for (scene, _), f in sorted(runs.items()):
            _, decided = estimate(f, {**shipped(), "decision_db": float(t)})
            if f.truth.any():  # a run with nothing to find has no F1
                per.setdefault(scene, []).append(confusion(f.truth, decided).f1 - confusion(f.truth, f.scores["gaen"][1]).f1)
        out[float(t)] = {k: np.array(v) for k, v in per.items()}
    return out


def twelfth(data: dict[str, list[Minute]], grids: dict, gaen: dict, tune: dict | None, hold: dict | None) -> None:
    """One threshold for both whole recordings and the scenes (``--twelfth``; see the module docstring, 7)."""
    ndcf_gaen = {}
    print("\nOne threshold: each recording's nDCF at 1.2 / 1.8 / 3.0 m (GAEN's in the header; 'meets': below GAEN's and"
          " below 0.8 at all three), the scenes' F1 margin over GAEN (worst scene mean, its scene; runs below GAEN)")
    for label, minutes in data.items():
        dist = np.array([m.distance_m for m in minutes])
        ndcf_gaen[label] = [cost(within(dist, d), gaen[label])[0] for d in TC4TL_DISTANCES_M]
        print(f"  GAEN {label}: " + "/".join(f"{x:.3f}" for x in ndcf_gaen[label]))
    worths = {}
    for t in sorted(grids["ng_rss_smartphone"]):
        cells, rec_margin = [], []
        for label, minutes in data.items():
            dist = np.array([m.distance_m for m in minutes])
            mine = [cost(within(dist, d), grids[label][t])[0] for d in TC4TL_DISTANCES_M]
            meets = all(a < g and a < 0.8 for a, g in zip(mine, ndcf_gaen[label]))
            rec_margin += [g - a for a, g in zip(mine, ndcf_gaen[label])]
            cells.append(f"{label[:5]} " + "/".join(f"{x:.3f}" for x in mine) + (" meets" if meets else " -----"))
        for name, runs in (("tune", tune), ("hold", hold)):
            if runs:
                means = {k: float(np.nanmean(v)) for k, v in runs[t].items() if not np.isnan(v).all()}
                worst = min(means, key=means.get)
                lost = sum(int((v < 0).sum()) for v in runs[t].values())
                cells.append(f"scenes {name} F1 {means[worst]:+.3f} ({worst}; {lost} runs below)")
        if tune:
            worths[t] = min(min(rec_margin), min(float(np.nanmean(v)) for v in tune[t].values()))
            cells.append(f"worth {worths[t]:+.3f}")
        print(f"{t:>5.1f} dB | " + " | ".join(cells))
    if worths:
        best = max(worths, key=lambda t: (worths[t], -abs(t - 59.0)))
        print(f"best worth on the tuning material (scene seeds, both whole recordings): {best:g} dB ({worths[best]:+.3f});"
              f" shipped 59 dB {worths[59.0]:+.3f}")
        if hold:
            for t in (59.0, best):
                print(f"  {t:g} dB on the held-back seeds, F1 margin per scene, mean (worst seed): " + " ".join(
                    f"{k} {np.nanmean(v):+.3f} ({np.nanmin(v):+.3f})" for k, v in hold[t].items() if not np.isnan(v).all()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ng", type=Path, default=SHARED / "ng_rss_smartphone")
    ap.add_argument("--mitll", type=Path, default=SHARED / "mitll_pact")
    ap.add_argument("--tune-cache", type=Path)
    ap.add_argument("--tune", default="11,12,13,14,15,16")
    ap.add_argument("--hold-cache", type=Path)
    ap.add_argument("--hold", default="0,3,4,5,6,7,8,9")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--twelfth", action="store_true", help="only the windows that flip Ng at 1.2 m and one threshold for both recordings")
    a = ap.parse_args()

    data = {"ng_rss_smartphone": load(a.ng), "mitll_pact": load(a.mitll)}
    grids: dict[str, dict[float, np.ndarray]] = {}
    gaen: dict[str, np.ndarray] = {}
    for label, minutes in data.items():
        gaen[label] = detected("gaen", minutes)
        grids[label] = {float(t): detected("bluezone", minutes, t) for t in THRESHOLDS}
        flags = {"bluezone": grids[label][59.0], "gaen": gaen[label]}
        operating_points(label, minutes, {**flags, "bluezone 55": grids[label][55.0]})
        if a.twelfth:
            flips(label, minutes, flags)
        else:
            paired_bootstrap(label, minutes, flags, a.bootstrap)
    if a.twelfth:
        tune = scene_f1(load_runs(a.tune_cache, None, [int(x) for x in a.tune.split(",")]), THRESHOLDS) if a.tune_cache else None
        hold = scene_f1(load_runs(a.hold_cache, None, [int(x) for x in a.hold.split(",")]), THRESHOLDS) if a.hold_cache else None
        twelfth(data, grids, gaen, tune, hold)
        return

    ng = data["ng_rss_smartphone"]
    setups = sorted({m.setup for m in ng})
    tune_half = np.isin([m.setup for m in ng], setups[0::2])
    print(f"\nNg tuning half (even places of the sorted setups): {', '.join(setups[0::2])}")
    ranking_statistics("ng_rss_smartphone", ng, tune_half)
    parts = {
        "Ng tune": recording_margins(ng, tune_half, grids["ng_rss_smartphone"], gaen["ng_rss_smartphone"]),
        "Ng held": recording_margins(ng, ~tune_half, grids["ng_rss_smartphone"], gaen["ng_rss_smartphone"]),
        "Ng all": recording_margins(ng, np.ones(len(ng), bool), grids["ng_rss_smartphone"], gaen["ng_rss_smartphone"]),
        "MIT LL": recording_margins(data["mitll_pact"], np.ones(len(data["mitll_pact"]), bool), grids["mitll_pact"], gaen["mitll_pact"]),
    }
    mit_dist = np.array([m.distance_m for m in data["mitll_pact"]])
    mit_ndcf = {t: [cost(within(mit_dist, d), f)[0] for d in TC4TL_DISTANCES_M] for t, f in grids["mitll_pact"].items()}
    scenes = {}
    if a.tune_cache:
        scenes["tune"] = scene_margins(load_runs(a.tune_cache, None, [int(x) for x in a.tune.split(",")]), THRESHOLDS)
    if a.hold_cache:
        scenes["hold"] = scene_margins(load_runs(a.hold_cache, None, [int(x) for x in a.hold.split(",")]), THRESHOLDS)

    print("\nbluezone's threshold_db moved, one decision at every D. Recordings: GAEN's nDCF minus bluezone's at"
          " 1.2 / 1.8 / 3.0 m (positive: bluezone better); MIT LL also bluezone's nDCF. Scenes: worst scene mean"
          " margin over GAEN in F1 / ROC-AUC / PR-AUC, and the scene that binds it")
    worths = {}
    for t in THRESHOLDS:
        t = float(t)
        cells = [f"{k} " + "/".join(f"{x:+.3f}" for x in v[t]) for k, v in parts.items()]
        cells.append("MIT LL nDCF " + "/".join(f"{x:.3f}" for x in mit_ndcf[t]))
        for k, v in scenes.items():
            m = np.array([r[:3] for r in v[t].values()])
            names = list(v[t])
            cells.append(f"scenes {k} " + "/".join(f"{x:+.3f}" for x in m.min(axis=0)) + f" ({names[int(np.argmin(m.min(axis=1)))]})")
        if "tune" in scenes:
            worths[t] = min(float(parts["Ng tune"][t].min()), float(np.array([r[:3] for r in scenes["tune"][t].values()]).min()))
            cells.append(f"worth on tuning material {worths[t]:+.3f}")
        print(f"{t:>5.1f} dB | " + " | ".join(cells))
    if worths:
        best = max(worths, key=lambda t: (worths[t], -abs(t - 59.0)))
        print(f"\nchosen on tuning material only (scene seeds {a.tune}, Ng tuning half): {best:g} dB, worth {worths[best]:+.3f}")
        print("held back: Ng held " + "/".join(f"{x:+.3f}" for x in parts["Ng held"][best])
              + ", MIT LL " + "/".join(f"{x:+.3f}" for x in parts["MIT LL"][best])
              + (", scenes " + " ".join(f"{s}:{'/'.join(f'{x:+.3f}' for x in v[:3])}" for s, v in sorted(scenes["hold"][best].items()))
                 if "hold" in scenes else ""))


if __name__ == "__main__":
    main()
