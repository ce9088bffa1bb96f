"""Choose the estimator's settings by the worst margin over GAEN, on cached scenes and seeds.

Usage: python research/estimator_sweep.py CACHE_DIR --tune SEEDS --hold SEEDS [--hold-cache DIR] [--scenes a,b,...] [--per-seed] [--by-seed] [--metrics f1,roc] [--shipped] [--noise N]
e.g.   python research/estimator_sweep.py /tmp/est --tune 11,12 --hold-cache /tmp/esthold --hold 0,3,4,5,6,7,8,9
       python research/estimator_sweep.py /tmp/esthold --shipped --hold 0,3,4,5,6,7,8,9 --per-seed --noise 200

Reads ``CACHE_DIR/<scene>_<seed>.pkl`` (from ``estimator_cache.py``), flattens every judged
unit's minutes into arrays once, then scores settings vectorised.  A setting is a per-minute
correction (``CORRECTIONS``: how much of the receiver's same-minute reference is taken off), a
decision threshold (``DECISIONS``: 15 minutes at or under it make a close contact) and a ramp
width (``WIDTHS``: the graded weighted minutes that rank contacts, centred on the threshold).  It is judged on the *tuning* seeds
only: per scene the mean margin over GAEN in F1, ROC-AUC and PR-AUC; its worth is the worst of
those margins over scenes (the issue asks for all three at least GAEN's on every scene).  The
best settings are then shown on the held-back seeds, which took no part in the choice.  Output goes to stdout (``simulations/results/estimator_sweep.txt`` keeps a run).

``--shipped`` skips the choice and shows the shipped defaults (``shipped()``) on the ``--hold`` seeds;
``--noise N`` adds to ``--per-seed`` a paired bootstrap of each run's margins (``paired_noise``):
is a single seed's loss more than the noise of one run?  ``--rankings`` (with ``--shipped``) compares
the shipped graded ranking with rankings that put the verdict's hard minutes first (``RANKINGS``).
"""

from __future__ import annotations

import argparse
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bluezone.matching.bluezone_scorer import BluezoneConfig
from bluezone.sim.metrics import average_precision, confusion, pr_curve, roc_auc

SMOOTH = 9
GAP_FILL = 2
CLOSE_MINUTES = 15.0


@dataclass
class Flat:
    """Every judged minute of one run, in unit order and slot order within a unit."""

    unit: np.ndarray  # index into the run's ``keys``
    slot: np.ndarray
    p10: np.ndarray
    count: np.ndarray
    sd: np.ndarray
    day_ref: np.ndarray
    others: dict[str, np.ndarray]
    others_n: np.ndarray
    truth: np.ndarray  # per key
    receiver: np.ndarray  # per key: the receiving device (the bootstrap's cluster)
    scores: dict[str, tuple[np.ndarray, np.ndarray]]  # per scorer: (weighted minutes, close contact) per key
    window: np.ndarray  # (minutes, SMOOTH) indices of each minute's smoothing window (edge-clamped)
    bridge: tuple[np.ndarray, np.ndarray, np.ndarray]  # (left minute, right minute, gap) for bridged gaps
    near: np.ndarray | None = None  # per minute, the share truly within the close distance (caches that keep it)


def flatten(d: dict) -> Flat:
    idx = {k: i for i, k in enumerate(d["keys"])}
    parts = [(idx[k], u) for k, u in d["units"].items() if k in idx and len(u["slot"])]
    unit = np.concatenate([np.full(len(u["slot"]), i) for i, u in parts]) if parts else np.zeros(0, int)
    cat = {name: np.concatenate([u[name] for _, u in parts]) if parts else np.zeros(0) for name in parts[0][1]} if parts else {}
    slot = cat.get("slot", np.zeros(0, np.int64))
    new_run = np.r_[True, (np.diff(unit) != 0) | (np.diff(slot) > GAP_FILL + 1)] if len(slot) else np.zeros(0, bool)
    run_id = np.cumsum(new_run) - 1
    starts = np.flatnonzero(new_run)
    ends = np.r_[starts[1:], len(slot)] - 1
    pos = np.arange(len(slot))
    half = SMOOTH // 2
    window = np.clip(pos[:, None] + np.arange(-half, half + 1)[None, :], starts[run_id][:, None], ends[run_id][:, None])
    same = ~new_run[1:]
    gaps = np.diff(slot) - 1 if len(slot) else np.zeros(0)
    b = same & (gaps >= 1) & (gaps <= GAP_FILL)
    left = np.flatnonzero(b)
    return Flat(
        unit, slot, cat.get("p10"), cat.get("count"), cat.get("sd"), cat.get("day_ref"),
        {k[7:]: v for k, v in cat.items() if k.startswith("others_") and k != "others_n"},
        cat.get("others_n"), d["true"] >= d["cc"] - 1e-9, np.array([k[2] for k in d["keys"]]), d["scores"], window,
        (left, left + 1, gaps[left]), cat.get("near"),
    )


def estimate(f: Flat, s: dict) -> tuple[np.ndarray, np.ndarray]:
    """(weighted minutes, close contact) per key for setting ``s`` (see ``best``); the same
    arithmetic as the scorer.  With ``decision_db`` the verdict counts minutes at or under that
    threshold (hard), while the weighted minutes keep the ramp; else weighted >= 15."""
    z = corrected(f, s)
    zs = np.median(z[f.window], axis=1) if len(z) else z
    if s["width"] > 0 and s.get("shape", "ramp") == "ramp" and s.get("width_above"):
        # an asymmetric ramp: half-width ``width`` under the threshold, ``width_above`` over it
        below = np.minimum(1.0, 0.5 + (s["threshold"] - zs) / (2 * s["width"]))
        w = np.where(zs <= s["threshold"], below, np.maximum(0.0, 0.5 - (zs - s["threshold"]) / (2 * s["width_above"])))
    elif s["width"] > 0 and s.get("shape", "ramp") == "ramp":
        w = np.clip((s["threshold"] + s["width"] - zs) / (2 * s["width"]), 0.0, 1.0)
    elif s["width"] > 0:
        w = 1.0 / (1.0 + np.exp(np.clip((zs - s["threshold"]) / s["width"], -50, 50)))
    else:
        w = (zs <= s["threshold"]).astype(np.float64)
    total = credit(f, w)
    if s.get("decision_db") is None:
        return total, total >= CLOSE_MINUTES - 1e-9
    return total, credit(f, (zs <= s["decision_db"]).astype(np.float64)) >= CLOSE_MINUTES - 1e-9


def corrected(f: Flat, s: dict) -> np.ndarray:
    """Each judged minute's attenuation after the same-minute correction of setting ``s``, before
    smoothing (the scorer's ``value - minute_shift``)."""
    z = f.p10.astype(np.float64)
    if s["beta"] > 0:
        ref = np.where(f.others_n >= s["kmin"], f.others[s["q"]], np.nan)
        shift = s["beta"] * np.clip(ref - s["centre"], -s["clip"], s["clip"])
        # too few other links: the day-level shift (BluezoneConfig's calibration_*: 0.7 x clip(day - 58, 5))
        day = np.where(np.isnan(f.day_ref), 0.0, DAY_WEIGHT * np.clip(f.day_ref - DAY_REFERENCE, -DAY_CLIP, DAY_CLIP))
        z = z - np.where(np.isnan(ref), day, shift)
    if s.get("sd_weight"):
        z = z + s["sd_weight"] * (f.sd - 4.0)
    return z


def credit(f: Flat, w: np.ndarray) -> np.ndarray:
    """Minutes per key: each judged minute's weight, plus bridged gaps at their neighbours' weight."""
    total = np.bincount(f.unit, w, minlength=len(f.truth))
    left, right, gap = f.bridge
    total += np.bincount(f.unit[left], gap * np.minimum(w[left], w[right]), minlength=len(f.truth))
    return total


def metrics(truth: np.ndarray, score: np.ndarray, decided: np.ndarray) -> tuple[float, float, float]:
    return confusion(truth, decided).f1, roc_auc(truth, score), average_precision(truth, score)


#: Typical same-minute reference per quantile (median over the tuning scenes' receivers, seed 11):
#: the centre, so that a bare scorer (no receiver) is judged at the same threshold.
CENTRES = {"10": 62.0, "25": 65.0, "50": 68.0}
DAY_REFERENCE, DAY_WEIGHT, DAY_CLIP = 58.0, 0.7, 5.0  # BluezoneConfig's reference_db, calibration_weight and _clip_db
#: How each minute is corrected: share of the same-minute reference taken off, its quantile, its clip.
CORRECTIONS = [(0.0, "25", 8.0)] + [(beta, q, 8.0) for beta in (0.3, 0.5, 0.7) for q in ("25", "50")]
DECISIONS = (56.0, 57.0, 58.0, 59.0, 60.0, 61.0, 62.0)  # dB: a minute at or under it counts for the verdict
WIDTHS = (4.0, 6.0, 8.0, 10.0, 12.0)  # dB: half-width of the ramp, centred on the decision threshold


def best(runs: dict[tuple[str, int], Flat]) -> list[tuple[float, dict, dict[str, np.ndarray]]]:
    """Per correction, the best decision threshold and ramp width.  The ramp is centred on the
    threshold (so one minute's weight is at least 0.5 exactly when it counts for the verdict); the
    verdict's F1 does not depend on the width, so each threshold gets its best width for ranking
    and the setting's worth is min(worst F1 margin, worst ranking margin) over scenes."""
    out = []
    for beta, q, clip in CORRECTIONS:
        common = dict(beta=beta, q=q, kmin=2, centre=CENTRES[q], clip=clip, shape="ramp")
        options = []
        for d in DECISIONS:
            by_width = {w: judge(runs, {**common, "decision_db": d, "threshold": d, "width": w}) for w in WIDTHS}
            w_best = max(WIDTHS, key=lambda w: worth(by_width[w]))
            options.append((worth(by_width[w_best]), {**common, "decision_db": d, "threshold": d, "width": w_best}, by_width[w_best]))
        options.sort(key=lambda t: -t[0])
        w, setting, result = options[0]
        out.append(options[0])
        print(f"correction beta={beta} q={q} clip={clip}: best threshold {setting['decision_db']:g} dB, ramp +- {setting['width']:g} dB, worth {w:+.3f}", flush=True)
    top = max(t[0] for t in out)
    # the best worth; settings within 0.002 of it (noise) are ordered by their worst F1 margin:
    # the verdict is what a user sees
    return sorted(out, key=lambda t: (t[0] < top - 0.002, -worst_f1(t[2]) if t[0] >= top - 0.002 else -t[0]))


def worst_f1(result: dict[str, np.ndarray]) -> float:
    return float(np.array(list(result.values()))[:, 0].min())


def detail(runs: dict[tuple[str, int], Flat], s: dict) -> str:
    """Per scene over the given runs: F1 / ROC-AUC / PR-AUC of the chosen setting, the scorer the
    cache ran with (previous) and GAEN (means), the chosen setting's worst-seed margins over GAEN,
    its precision / recall at the default, and the best recall at precision >= 0.80 along its
    weighted-minute ranking (a hindsight ceiling of this ranking)."""
    rows: dict[str, list] = {}
    for (scene, seed), f in sorted(runs.items()):
        est, decided = estimate(f, s)
        new = metrics(f.truth, est, decided)
        prev = metrics(f.truth, f.scores["bluezone"][0], f.scores["bluezone"][1])
        gaen = metrics(f.truth, f.scores["gaen"][0], f.scores["gaen"][1])
        c = confusion(f.truth, decided)
        _, precision, recall = pr_curve(f.truth, est)
        r80 = float(recall[precision >= 0.8].max()) if (precision >= 0.8).any() else 0.0
        rows.setdefault(scene, []).append((new, prev, gaen, np.subtract(new, gaen), (c.precision, c.recall, r80)))
    lines = [f"{'scene':<11}{'seeds':>5}  {'new F1/ROC/PR':>20}  {'previous':>20}  {'gaen':>20}  {'worst-seed margin':>22}  new P / R, R at P>=0.8"]
    for scene, rs in rows.items():
        mean = lambda i: np.nanmean([r[i] for r in rs], axis=0)  # noqa: E731
        worst = np.nanmin([r[3] for r in rs], axis=0)
        pr = mean(4)
        lines.append(
            f"{scene:<11}{len(rs):>5}  " + "  ".join(f"{'/'.join(f'{v:.3f}' for v in mean(i)):>20}" for i in range(3))
            + f"  {'/'.join(f'{v:+.3f}' for v in worst):>22}  {pr[0]:.2f} / {pr[1]:.2f}, {pr[2]:.2f}"
        )
    return "\n".join(lines)


def per_seed(runs: dict[tuple[str, int], Flat], s: dict, noise: int = 0) -> str:
    """One line per (scene, seed): the setting's F1 / ROC-AUC / PR-AUC, GAEN's, and the margins,
    marked LOSS where any margin is below zero; with ``noise`` also ``paired_noise``'s intervals."""
    lines = []
    for (scene, seed), f in sorted(runs.items()):
        est, decided = estimate(f, s)
        new = metrics(f.truth, est, decided)
        gaen = metrics(f.truth, f.scores["gaen"][0], f.scores["gaen"][1])
        m = np.subtract(new, gaen)
        line = (
            f"{scene:<11}{seed:>4}  " + "/".join(f"{v:.3f}" for v in new) + "  gaen " + "/".join(f"{v:.3f}" for v in gaen)
            + "  margin " + "/".join(f"{v:+.3f}" for v in m) + ("  LOSS" if (m < 0).any() else "")
        )
        if noise:
            lo, hi, below = paired_noise(f, est, decided, noise)
            line += "  95 % " + " ".join(f"[{a:+.3f},{b:+.3f}]" for a, b in zip(lo, hi)) + "  P(<0) " + "/".join(f"{p:.2f}" for p in below)
        lines.append(line)
    return "\n".join(lines)


def paired_noise(f: Flat, est: np.ndarray, decided: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A paired bootstrap of one run's margins over GAEN (F1, ROC-AUC, PR-AUC): receivers are
    drawn with replacement, each with all its judged pairs, and both scorers are scored on the same
    draw.  Returns the 2.5th and 97.5th percentiles of each margin and the share of draws below
    zero.  Pairs of one receiver share its carriage and calibration, so whole receivers are the
    unit; people still meet several receivers, so this is, if anything, narrower than the
    seed-to-seed spread."""
    rng = np.random.default_rng(seed)
    receivers, inverse = np.unique(f.receiver, return_inverse=True)
    members = [np.flatnonzero(inverse == i) for i in range(len(receivers))]
    g_est, g_decided = f.scores["gaen"]
    out = []
    for _ in range(n):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        t = f.truth[idx]
        if t.all() or not t.any():
            continue
        out.append(np.subtract(metrics(t, est[idx], decided[idx]), metrics(t, g_est[idx], g_decided[idx])))
    m = np.array(out)
    return np.nanpercentile(m, 2.5, axis=0), np.nanpercentile(m, 97.5, axis=0), np.mean(m < 0, axis=0)


#: Ways to rank pairs from the shipped setting's hard minutes h (the verdict's count), its graded
#: minutes g (the ramp's, what the scorer reports) and the graded minutes a of a ramp only 4 dB
#: wide over the threshold (a far link's long stay adds up less): the market's top ranks better by h.
RANKINGS = {
    "graded (shipped)": lambda h, g, a: g,
    "hard first, graded breaks ties": lambda h, g, a: h + g / (g.max() + 1.0),
    "hard + 0.3 x graded": lambda h, g, a: h + 0.3 * g,
    "ramp 10 dB under, 4 dB over": lambda h, g, a: a,
}


def rankings(runs: dict[tuple[str, int], Flat], s: dict) -> str:
    """Per scene, each ranking's ROC-AUC / PR-AUC margin over GAEN: mean over the runs and worst run."""
    per: dict[str, list[list[np.ndarray]]] = {}
    for (scene, seed), f in sorted(runs.items()):
        g, decided = estimate(f, s)
        h, _ = estimate(f, {**s, "width": 0.0})
        a, _ = estimate(f, {**s, "width_above": 4.0})
        gaen = metrics(f.truth, *f.scores["gaen"])
        per.setdefault(scene, []).append(
            [np.subtract(metrics(f.truth, rank(h, g, a), decided), gaen)[1:] for rank in RANKINGS.values()]
        )
    lines = ["ROC-AUC / PR-AUC margin over GAEN, mean over the runs (worst run): " + " | ".join(RANKINGS)]
    for scene, rows in per.items():
        r = np.array(rows)
        lines.append(f"{scene:<11}" + " | ".join(
            f"{r[:, i, 0].mean():+.3f}/{r[:, i, 1].mean():+.3f} ({r[:, i, 0].min():+.3f}/{r[:, i, 1].min():+.3f})"
            for i in range(len(RANKINGS))
        ))
    return "\n".join(lines)


def shipped() -> dict:
    """The shipped defaults (``BluezoneConfig()``) in this script's terms (``--shipped``)."""
    c = BluezoneConfig()
    return dict(
        beta=c.minute_reference_weight, q=f"{c.minute_reference_quantile:g}", kmin=c.minute_reference_min_links,
        centre=c.minute_reference_db, clip=c.minute_reference_clip_db, shape="ramp",
        decision_db=c.threshold_db, threshold=c.threshold_db, width=c.ramp_db,
    )


def load(cache: Path, scenes: list[str] | None, seeds: list[int]) -> dict[tuple[str, int], Flat]:
    runs = {}
    for path in sorted(cache.glob("*.pkl")):
        scene, _, seed = path.stem.rpartition("_")
        if int(seed) in seeds and (scenes is None or scene in scenes):
            runs[(scene, int(seed))] = flatten(pickle.loads(path.read_bytes()))
    return runs


#: ``--by-seed``: judge every (scene, seed) on its own, so a setting's worth is its worst single
#: seed's margin rather than its worst scene's mean margin.
BY_SEED = False


def judge(runs: dict[tuple[str, int], Flat], s: dict) -> dict[str, np.ndarray]:
    """Per scene (per scene and seed with ``BY_SEED``), mean over seeds of (F1, ROC-AUC, PR-AUC)
    margins over GAEN, and the values."""
    per: dict[str, list[np.ndarray]] = {}
    for (scene, seed), f in runs.items():
        if BY_SEED:
            scene = f"{scene}@{seed}"
        est, decided = estimate(f, s)
        mine = metrics(f.truth, est, decided)
        g = f.scores["gaen"]
        base = metrics(f.truth, g[0], g[1])
        per.setdefault(scene, []).append(np.r_[np.subtract(mine, base), mine, base])
    return {scene: np.nanmean(v, axis=0) for scene, v in per.items()}


def judge_present(runs: dict[tuple[str, int], Flat]) -> dict[str, np.ndarray]:
    """As ``judge``, for the scorer the cache was run with (``bluezone``, before this estimator)."""
    per: dict[str, list[np.ndarray]] = {}
    for (scene, seed), f in runs.items():
        if BY_SEED:
            scene = f"{scene}@{seed}"
        b, g = f.scores["bluezone"], f.scores["gaen"]
        mine, base = metrics(f.truth, b[0], b[1]), metrics(f.truth, g[0], g[1])
        per.setdefault(scene, []).append(np.r_[np.subtract(mine, base), mine, base])
    return {scene: np.nanmean(v, axis=0) for scene, v in per.items()}


#: Which margins (0 F1, 1 ROC-AUC, 2 PR-AUC) a setting's worth is the minimum of (``--metrics``).
WORTH_COLUMNS = [0, 1, 2]


def worth(result: dict[str, np.ndarray]) -> float:
    m = np.array(list(result.values()))
    return float(np.nanmin(m[:, WORTH_COLUMNS]))


def line(s: dict, result: dict[str, np.ndarray]) -> str:
    label = s.get("label") or " ".join(f"{k}={v}" for k, v in s.items())
    cells = " ".join(f"{sc}:{v[0]:+.3f}/{v[1]:+.3f}/{v[2]:+.3f}" for sc, v in sorted(result.items()))
    return f"worth {worth(result):+.3f} | {label} | {cells}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache", type=Path)
    ap.add_argument("--tune", default="")
    ap.add_argument("--hold", default="")
    ap.add_argument("--hold-cache", type=Path, help="where the held-back runs are cached (default: CACHE_DIR)")
    ap.add_argument("--scenes")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--per-seed", action="store_true", help="also list the chosen setting's margins per held-back seed")
    ap.add_argument("--by-seed", action="store_true", help="a setting's worth is its worst single tuning seed, not scene mean")
    ap.add_argument("--metrics", default="f1,roc,pr", help="margins that count towards the worth (default: f1,roc,pr)")
    ap.add_argument("--shipped", action="store_true", help="no choice: show the shipped defaults on the --hold seeds")
    ap.add_argument("--noise", type=int, default=0, help="with --per-seed: N paired bootstrap draws per run")
    ap.add_argument("--rankings", action="store_true", help="with --shipped: the graded ranking against hard-first ones")
    a = ap.parse_args()
    if not a.shipped and not a.tune:
        ap.error("--tune SEEDS is needed unless --shipped")
    global BY_SEED, WORTH_COLUMNS
    BY_SEED = a.by_seed
    WORTH_COLUMNS = [("f1", "roc", "pr").index(m) for m in a.metrics.split(",")]
    scenes = a.scenes.split(",") if a.scenes else None
    if a.shipped:
        hold = load(a.hold_cache or a.cache, scenes, [int(x) for x in a.hold.split(",")])
        s = shipped()
        print(f"shipped defaults {s} on {sorted(hold)}")
        print(line({"label": "shipped"}, judge(hold, s)))
        print(detail(hold, s))
        if a.per_seed:
            print(per_seed(hold, s, a.noise))
        if a.rankings:
            print(rankings(hold, s))
        return
    tune = load(a.cache, scenes, [int(x) for x in a.tune.split(",")])
    print(f"tuning runs: {sorted(tune)}")
    results = best(tune)
    print("margins over GAEN per scene: F1 / ROC-AUC / PR-AUC (means over tuning seeds)")
    print(line({"label": "present bluezone scorer"}, judge_present(tune)))
    for w, s, r in results[: a.top]:
        print(line(s, r))
    if a.hold:
        hold = load(a.hold_cache or a.cache, scenes, [int(x) for x in a.hold.split(",")])
        print(f"held-back runs: {sorted(hold)}")
        print(line({"label": "present bluezone scorer"}, judge_present(hold)))
        for w, s, r in results[: a.top]:
            print(line(s, judge(hold, s)))
        print(f"chosen: {results[0][1]}")
        print(detail(hold, results[0][1]))
        if a.per_seed:
            print(per_seed(hold, results[0][1], a.noise))


if __name__ == "__main__":
    main()
