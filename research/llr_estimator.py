"""A per-minute log-likelihood-ratio estimator and a two-state near/far model (issue 13, item 2).

Usage: python research/llr_estimator.py TUNE_CACHE --tune SEEDS [--hold-cache DIR --hold SEEDS] [--scene-cache DIR --scene-seeds SEEDS] [--recordings] [--table OUT.json] [--choice CHOICE.json]
e.g.   python research/llr_estimator.py /tmp/llr_est --tune 11,12 --hold-cache /tmp/esthold --hold 0,3,4,5,6,7,8,9 --recordings --choice /tmp/llr_choice.json
       python research/llr_estimator.py /tmp/llr_est --tune 11,12 --choice /tmp/llr_choice.json --scene-cache /tmp/llr_scenes --scene-seeds 0,3

TUNE_CACHE must come from the present ``estimator_cache.py`` (it keeps each minute's truth, ``near``).
``--noise N``: a paired bootstrap of the chosen setting's ranking against the shipped scorer's.
``--choice``: where the chosen settings are kept; given an existing file, the sweep is skipped and
those settings are shown (the second example: the same choice on scenes of new kinds).

Instead of a 9-minute rolling median and a hard cut at 59 dB, each judged minute gives evidence:
the log-likelihood ratio LLR(x) of "within 2 m" against "farther" for its attenuation x (the
10th percentile after the shipped same-minute correction, ``estimator_sweep.corrected``), read
from class-conditional histograms fitted on the *tuning* caches only (``estimator_cache.py`` keeps
each minute's true share within the close distance, ``near``; a minute is near when at least half
of it was).  Per scene the two histograms are normalised, then averaged over scenes (so the market's
16,000 pairs do not outvote the clinic), smoothed (Gaussian, 1.5 dB), their log ratio made
monotone (more attenuation is never more evidence of near: pool-adjacent-violators) and clipped to
+-``LLR_CLIP``.  Three ways to turn the minutes' LLRs into a ranking and a verdict:

- ``hmm``: a two-state hidden Markov chain per judged link (near / far), stationary share ``prior``
  of near, each minute re-drawing its state from that share with probability ``switch`` (so a gap of
  k minutes mixes by 1 - (1 - switch)^k), emissions exp(``scale`` x LLR) (``scale`` < 1 discounts the
  correlation of neighbouring minutes' shadowing).  Forward-backward gives each minute's posterior
  of near; the ranking is the expected near minutes (posteriors summed, bridged gaps credited as the
  scorer credits them) and the verdict is expected near minutes >= ``minutes``.  ``switch`` = 1 is
  the independent per-minute posterior sigmoid(scale x LLR + logit prior);
- ``sum``: the ranking is the sum of the minutes' LLRs (the accumulated evidence), the verdict
  sum >= ``minutes`` (here a threshold on the sum);
- ``hybrid``: the chain's expected near minutes rank, the shipped verdict decides (the split the
  shipped scorer makes between its ramp and its hard minutes);
- the shipped scorer (``estimator_sweep.shipped``) beside them, and GAEN.

A setting's worth is chosen as the shipped defaults were (``estimator_sweep.best``): the worst
scene-mean margin over GAEN in F1, ROC-AUC and PR-AUC on the tuning seeds; then shown on the held-back
seeds, scenes of new kinds (``--scene-cache``: caches of ``estimator_cache.py`` for the scene files
and generated scenes) and the recordings (``--recordings``: one-minute windows of the shared tuning
part, read as ``bluezone evaluate`` reads them, nDCF at the default decision and per distance,
detection at <= 1.2 m and >= 3 m).  ``--table`` writes the fitted LLR table as JSON.

Adopted: the hybrid (``simulations/results/llr_choice.json``'s "llr chosen") is now the bluezone
scorer's ranking (``bluezone/matching/near_chain.py``, the table shipped as
``bluezone/matching/data/llr_table.json``; tests/sim/test_estimator_research.py checks the engine
against ``apply`` here).  "shipped" in this script's tables is the scorer before that, the ramp
(``estimator_sweep.shipped``, ``ranking = "ramp"``); caches made from now on store the chain's
weighted minutes as the engine's ``scores["bluezone"]`` (estimator_sweep's "the scorer the cache ran with").
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from estimator_sweep import Flat, corrected, credit, estimate, load, metrics, shipped
from bluezone.sim.metrics import confusion

EDGES = np.arange(30.0, 101.0, 1.0)  # dB: 1-dB bins of corrected attenuation; outside is clamped
CENTRES = (EDGES[:-1] + EDGES[1:]) / 2
SMOOTH_DB = 1.5
LLR_CLIP = 4.0
CLOSE_MINUTES = 15.0
SCALES = (0.15, 0.25, 0.35, 0.5, 0.75, 1.0)
SWITCHES = (0.1, 0.2, 0.3, 0.5, 1.0)
PRIORS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
HMM_MINUTES = (3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.5, 15.0)
SUM_CUTS = (-20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 20.0, 40.0)


# ---------------------------------------------------------------- the LLR table (tuning material only)


def pav_decreasing(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The weighted least-squares non-increasing fit to ``y`` (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [value, weight, length]
    for v, wt in zip(y.tolist(), w.tolist()):
        blocks.append([v, wt, 1])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            wsum = w1 + w2
            blocks.append([(v1 * w1 + v2 * w2) / wsum if wsum > 0 else (v1 + v2) / 2, wsum, n1 + n2])
    return np.concatenate([np.full(n, v) for v, _, n in blocks])


def fit_table(runs: dict[tuple[str, int], Flat], correction: dict) -> dict:
    """Per-bin LLR of near against far, from the tuning runs' labelled minutes (see the docstring)."""
    per_scene: dict[str, list[np.ndarray]] = {}
    for (scene, _), f in runs.items():
        if f.near is None:
            raise SystemExit(f"{scene}: this cache has no per-minute truth ('near'); rebuild it with estimator_cache.py")
        x = np.clip(corrected(f, correction), EDGES[0], EDGES[-1] - 1e-9)
        near = f.near >= 0.5
        per_scene.setdefault(scene, []).append(
            np.array([np.histogram(x[near], EDGES)[0], np.histogram(x[~near], EDGES)[0]], np.float64)
        )
    counts = {scene: np.sum(h, axis=0) for scene, h in per_scene.items()}
    dens = np.mean([c / np.maximum(c.sum(axis=1, keepdims=True), 1.0) for c in counts.values()], axis=0)
    kernel = np.exp(-0.5 * (np.arange(-5, 6) / SMOOTH_DB) ** 2)
    dens = np.array([np.convolve(d, kernel / kernel.sum(), mode="same") for d in dens]) + 1e-6
    raw = np.log(dens[0] / dens[1])
    weight = dens.sum(axis=0)
    llr = np.clip(pav_decreasing(raw, weight), -LLR_CLIP, LLR_CLIP)
    total = np.sum(list(counts.values()), axis=0)
    return {
        "centres_db": CENTRES.tolist(), "llr": np.round(llr, 4).tolist(),
        "near_minutes": int(total[0].sum()), "far_minutes": int(total[1].sum()),
        "scenes": sorted(counts), "seeds": sorted({seed for _, seed in runs}),
    }


def llr_of(x: np.ndarray, table: dict) -> np.ndarray:
    return np.interp(x, table["centres_db"], table["llr"])


# ---------------------------------------------------------------- the two-state model, vectorised over links


@dataclass
class Padded:
    """Each judged link's minutes as one row: ``index`` into the flat minutes (-1 past its end) and
    ``gap`` (minutes since the previous judged minute; 0 for the first)."""

    index: np.ndarray
    gap: np.ndarray
    length: np.ndarray


def padded(f: Flat) -> Padded:
    n = len(f.unit)
    if n == 0:
        return Padded(np.zeros((0, 0), int), np.zeros((0, 0)), np.zeros(0, int))
    start = np.flatnonzero(np.r_[True, np.diff(f.unit) != 0])
    length = np.diff(np.r_[start, n])
    row = np.repeat(np.arange(len(start)), length)
    col = np.arange(n) - np.repeat(start, length)
    index = np.full((len(start), length.max()), -1)
    index[row, col] = np.arange(n)
    gap = np.zeros(index.shape)
    gap[row[col > 0], col[col > 0]] = np.diff(f.slot)[(col > 0)[1:]]
    return Padded(index, gap, length)


def posterior(p: Padded, evidence: np.ndarray, switch: float, prior: float) -> np.ndarray:
    """Each minute's posterior of near (flat order) under the sticky two-state chain; ``evidence``
    is each minute's log-likelihood ratio (already scaled)."""
    rows, cols = p.index.shape
    out = np.zeros(len(evidence))
    if rows == 0:
        return out
    e = np.where(p.index >= 0, np.exp(evidence[np.maximum(p.index, 0)]), 1.0)
    keep = np.where(p.gap > 0, (1.0 - switch) ** np.maximum(p.gap, 1), 0.0)  # memory across the gap; 0 at the start
    fn, ff = np.empty((rows, cols)), np.empty((rows, cols))
    an, af = np.full(rows, prior), np.full(rows, 1.0 - prior)
    for t in range(cols):
        live = t < p.length
        d = keep[:, t]
        s = an + af
        pn = d * an + (1 - d) * prior * s
        pf = d * af + (1 - d) * (1 - prior) * s
        pn = pn * e[:, t]
        s = pn + pf
        an = np.where(live, pn / s, an)
        af = np.where(live, pf / s, af)
        fn[:, t], ff[:, t] = an, af
    bn, bf = np.ones(rows), np.ones(rows)
    post = np.empty((rows, cols))
    post[:, cols - 1] = fn[:, cols - 1]
    for t in range(cols - 2, -1, -1):
        live = t + 1 < p.length
        d = keep[:, t + 1]
        xn, xf = e[:, t + 1] * bn, bf
        mix = prior * xn + (1 - prior) * xf
        nn = d * xn + (1 - d) * mix
        nf = d * xf + (1 - d) * mix
        s = nn + nf
        bn = np.where(live, nn / s, 1.0)
        bf = np.where(live, nf / s, 1.0)
        a, b = fn[:, t] * bn, ff[:, t] * bf
        post[:, t] = a / (a + b)
    valid = p.index >= 0
    out[p.index[valid]] = post[valid]
    return out


# ---------------------------------------------------------------- scoring settings


def hmm_minutes(f: Flat, p: Padded, llr: np.ndarray, scale: float, switch: float, prior: float) -> np.ndarray:
    """Expected near minutes per key."""
    if switch >= 1.0:  # independent minutes: no chain needed
        post = 1.0 / (1.0 + np.exp(-(scale * llr + np.log(prior / (1 - prior)))))
    else:
        post = posterior(p, scale * llr, switch, prior)
    return credit(f, post)


def llr_sum(f: Flat, llr: np.ndarray) -> np.ndarray:
    return np.bincount(f.unit, llr, minlength=len(f.truth))


def margins(f: Flat, score: np.ndarray, decided: np.ndarray) -> np.ndarray:
    g = f.scores["gaen"]
    mine, base = metrics(f.truth, score, decided), metrics(f.truth, g[0], g[1])
    return np.r_[np.subtract(mine, base), mine, base]


def sweep(runs: dict[tuple[str, int], Flat], table: dict, correction: dict) -> list[tuple[float, dict, dict]]:
    """Every setting's per-scene mean margins (F1, ROC-AUC, PR-AUC) and values; sorted best first."""
    cached = {k: (f, padded(f), llr_of(corrected(f, correction), table)) for k, f in runs.items()}
    results: dict[str, dict[str, list[np.ndarray]]] = {}
    settings: dict[str, dict] = {}

    def add(s: dict, scene: str, m: np.ndarray) -> None:
        key = json.dumps(s, sort_keys=True)
        settings[key] = s
        results.setdefault(key, {}).setdefault(scene, []).append(m)

    for (scene, _), (f, p, llr) in cached.items():
        verdict = estimate(f, shipped())[1]
        for scale in SCALES:
            for switch in SWITCHES:
                for prior in PRIORS:
                    e = hmm_minutes(f, p, llr, scale, switch, prior)
                    for k in HMM_MINUTES:
                        add(dict(kind="hmm", scale=scale, switch=switch, prior=prior, minutes=k), scene, margins(f, e, e >= k - 1e-9))
                    add(dict(kind="hybrid", scale=scale, switch=switch, prior=prior), scene, margins(f, e, verdict))
        total = llr_sum(f, llr)
        for cut in SUM_CUTS:
            add(dict(kind="sum", minutes=cut), scene, margins(f, total, total >= cut))
    out = []
    for key, per in results.items():
        r = {scene: np.mean(v, axis=0) for scene, v in per.items()}
        m = np.array([v[:3] for v in r.values()])
        out.append((float(m.min()), settings[key], r))
    top = max(w for w, _, _ in out)
    # as estimator_sweep.best: within 0.002 of the best worth, the better worst F1 margin first
    out.sort(key=lambda t: (t[0] < top - 0.002, -min(v[0] for v in t[2].values()) if t[0] >= top - 0.002 else -t[0]))
    return out


def apply(f: Flat, s: dict, table: dict, correction: dict) -> tuple[np.ndarray, np.ndarray]:
    """(ranking score, verdict) per key for setting ``s`` (``kind`` hmm, sum or shipped)."""
    if s["kind"] == "shipped":
        return estimate(f, shipped())
    llr = llr_of(corrected(f, correction), table)
    if s["kind"] == "sum":
        total = llr_sum(f, llr)
        return total, total >= s["minutes"]
    e = hmm_minutes(f, padded(f), llr, s["scale"], s["switch"], s["prior"])
    if s["kind"] == "hybrid":
        return e, estimate(f, shipped())[1]
    return e, e >= s["minutes"] - 1e-9


def scene_table(runs: dict[tuple[str, int], Flat], named: dict[str, dict], table: dict, correction: dict) -> str:
    """Per scene: each setting's mean F1 / ROC-AUC / PR-AUC and worst-seed margins over GAEN, GAEN's
    means, and the (scene, seed) runs where a setting loses any metric to GAEN."""
    rows: dict[str, dict[str, list[np.ndarray]]] = {}
    losses: dict[str, list[str]] = {n: [] for n in named}
    for (scene, seed), f in sorted(runs.items()):
        for name, s in named.items():
            m = margins(f, *apply(f, s, table, correction))
            rows.setdefault(scene, {}).setdefault(name, []).append(m)
            if (m[:3] < 0).any():
                losses[name].append(f"{scene} {seed} " + "/".join(f"{v:+.3f}" for v in m[:3]))
    lines = [f"{'scene':<13}{'runs':>4}  " + "  ".join(f"{n + ' F1/ROC/PR (worst margin)':>44}" for n in named) + f"  {'gaen F1/ROC/PR':>20}"]
    for scene, per in rows.items():
        cells = []
        for name in named:
            v = np.array(per[name])
            cells.append(f"{'/'.join(f'{x:.3f}' for x in v[:, 3:6].mean(0))} ({'/'.join(f'{x:+.3f}' for x in v[:, :3].min(0))})")
        g = np.array(per[next(iter(named))])[:, 6:9].mean(0)
        lines.append(f"{scene:<13}{len(per[next(iter(named))]):>4}  " + "  ".join(f"{c:>44}" for c in cells) + f"  {'/'.join(f'{x:.3f}' for x in g):>20}")
    for name, ls in losses.items():
        lines.append(f"{name}: {len(ls)} runs with a margin below zero" + ("".join(f"\n    {x}" for x in ls)))
    return "\n".join(lines)


def versus_shipped(runs: dict[tuple[str, int], Flat], s: dict, table: dict, correction: dict, n: int, seed: int = 0) -> str:
    """Per scene, setting ``s``'s ROC-AUC and PR-AUC minus the shipped scorer's (mean over the runs)
    with a paired bootstrap: in each draw every run's receivers are drawn with replacement, each with
    all its judged pairs (``estimator_sweep.paired_noise``'s unit), and both are scored on that draw.
    Is a difference between the two rankings more than the noise of the runs?"""
    from bluezone.sim.metrics import average_precision, roc_auc

    rng = np.random.default_rng(seed)
    per: dict[str, list[tuple[np.ndarray, np.ndarray, list[np.ndarray]]]] = {}
    for (scene, _), f in sorted(runs.items()):
        mine, ship = apply(f, s, table, correction)[0], estimate(f, shipped())[0]
        _, inverse = np.unique(f.receiver, return_inverse=True)
        members = [np.flatnonzero(inverse == i) for i in range(inverse.max() + 1)]
        per.setdefault(scene, []).append((mine, ship, members, f.truth))
    lines = [f"{s} minus shipped: ROC-AUC / PR-AUC, mean over the runs [95 % of {n} paired draws], share of draws below zero"]
    for scene, rs in per.items():
        point = np.mean([[roc_auc(t, a) - roc_auc(t, b), average_precision(t, a) - average_precision(t, b)] for a, b, _, t in rs], axis=0)
        draws = []
        for _ in range(n):
            d = []
            for a, b, members, t in rs:
                idx = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
                if t[idx].all() or not t[idx].any():
                    continue
                d.append([roc_auc(t[idx], a[idx]) - roc_auc(t[idx], b[idx]), average_precision(t[idx], a[idx]) - average_precision(t[idx], b[idx])])
            if d:
                draws.append(np.mean(d, axis=0))
        m = np.array(draws)
        lo, hi = np.percentile(m, 2.5, axis=0), np.percentile(m, 97.5, axis=0)
        lines.append(f"  {scene:<13}" + "  ".join(f"{point[i]:+.3f} [{lo[i]:+.3f}, {hi[i]:+.3f}] {np.mean(m[:, i] < 0):.0%}" for i in range(2)))
    return "\n".join(lines)


# ---------------------------------------------------------------- the recordings


def recordings(named: dict[str, dict], table: dict) -> str:
    """One-minute windows of both shared datasets, read as ``bluezone evaluate`` reads them:
    ROC-AUC against "within D", nDCF of the default decision (a window flagged when its expected
    near minutes reach 0.5, evaluate's rule) and of a decision per D (attenuation moved by the
    path-loss model's 20 log10(D / 2 m), as ``evaluate`` moves the scorers' thresholds), detection
    at <= 1.2 m and >= 3 m; Ng also by halves (even places of the sorted setups: tuning half)."""
    from single_decision import QUESTIONS, cost, detected, load as load_minutes, within, SHARED

    from bluezone.matching.bluezone_scorer import minute_attenuation
    from bluezone.matching.scoring import get_scorer
    from bluezone.sim.evaluate import TC4TL_DISTANCES_M, distance_shift_db, judged, minutes_window
    from bluezone.sim.metrics import roc_auc

    lines = []
    base = get_scorer("bluezone")
    for label in ("ng_rss_smartphone", "mitll_pact"):
        minutes = load_minutes(SHARED / label)
        dist = np.array([m.distance_m for m in minutes])
        x = np.full(len(minutes), np.nan)  # the window's corrected 10th percentile (nan: too few packets)
        for i, m in enumerate(minutes):
            scorer = judged(base, [m])
            window = minutes_window(m.times, m.attenuation)
            slots, value, _ = minute_attenuation(window.times, window.attenuation, scorer.config)
            if len(value):
                x[i] = float((value - scorer.minute_shift(window, slots))[0])
        gaen_flag = detected("gaen", minutes)
        ship_flag = detected("bluezone", minutes)
        ship_score = np.where(np.isnan(x), -np.inf, -x)
        flags = {"gaen": (gaen_flag, None), "shipped": (ship_flag, ship_score)}
        for name, s in named.items():
            if s["kind"] not in ("hmm", "hybrid"):
                continue

            def score_at(shift_db: float, s=s) -> np.ndarray:
                ev = s["scale"] * llr_of(np.where(np.isnan(x), 200.0, x - shift_db), table) + np.log(s["prior"] / (1 - s["prior"]))
                return np.where(np.isnan(x), 0.0, 1.0 / (1.0 + np.exp(-ev)))

            if s["kind"] == "hybrid":  # the shipped verdict decides each minute; the chain only ranks
                flags[name] = (ship_flag, score_at(0.0))
            else:
                flags[name] = (score_at(0.0) >= 0.5, score_at(0.0), {d: score_at(distance_shift_db(d)) >= 0.5 for d in TC4TL_DISTANCES_M})
        setups = sorted({m.setup for m in minutes})
        parts = {"all": np.ones(len(minutes), bool)}
        if label == "ng_rss_smartphone":
            parts["tuning half"] = np.isin([m.setup for m in minutes], setups[0::2])
            parts["held-back half"] = ~parts["tuning half"]
        for part, sel in parts.items():
            lines.append(f"\n{label} ({part}, {int(sel.sum())} one-minute windows)")
            lines.append(f"{'':<28}" + "  ".join(f"nDCF {d:g} m" for d in QUESTIONS) + "  detect<=1.2  detect>=3  " + "  ".join(f"ROC {d:g} m" for d in TC4TL_DISTANCES_M) + "  nDCF per D 1.2/1.8/3.0")
            for name, v in flags.items():
                flag = v[0][sel]
                cells = [f"{cost(within(dist[sel], d), flag)[0]:>9.3f}" for d in QUESTIONS]
                cells += [f"{np.mean(flag[dist[sel] <= 1.2 + 1e-9]):>11.2f}", f"{np.mean(flag[dist[sel] >= 3.0 - 1e-9]):>9.2f}"]
                if v[1] is not None:
                    cells += [f"{roc_auc(within(dist[sel], d), v[1][sel]):>8.3f}" for d in TC4TL_DISTANCES_M]
                else:
                    cells += [f"{'':>8}"] * len(TC4TL_DISTANCES_M)
                if len(v) > 2:
                    cells.append("/".join(f"{cost(within(dist[sel], d), v[2][d][sel])[0]:.3f}" for d in TC4TL_DISTANCES_M))
                lines.append(f"{name:<28}" + "  ".join(cells))
        lines.append(chained(label, minutes, x, named, table))
    return "\n".join(lines)


def chained(label: str, minutes: list, x: np.ndarray, named: dict[str, dict], table: dict, count: int = 400) -> str:
    """``evaluate``'s chained exposures (20 minutes of one setup, k of them under 2 m in one block;
    a close contact when k >= 15): F1 of each verdict, ROC-AUC / PR-AUC of each ranking.  The
    chain's per-minute attenuations are each minute's own corrected 10th percentile (its own
    bystanders), which is what the chained scorer sees unless a minute falls back to the day shift."""
    from bluezone.matching.scoring import get_scorer
    from bluezone.sim.evaluate import CHAIN_MINUTES, CLOSE_MINUTES as CHAIN_CLOSE, _chains, judged, window_of
    from bluezone.sim.metrics import average_precision, roc_auc

    position = {id(m): i for i, m in enumerate(minutes)}
    chains = _chains(minutes, count, np.random.default_rng(0))
    truth = np.array([k >= CHAIN_CLOSE for _, k in chains])
    out = {}
    for name in ("gaen", "bluezone"):
        scores = [judged(get_scorer(name), picks).score(window_of(picks)) for picks, _ in chains]
        out["shipped" if name == "bluezone" else name] = (np.array([s.weighted_minutes for s in scores]), np.array([s.close_contact for s in scores]))
    for name, s in named.items():
        if s["kind"] not in ("hmm", "hybrid"):
            continue
        e, decided = [], []
        for picks, _ in chains:
            xs = np.array([x[position[id(m)]] for m in picks])
            ok = ~np.isnan(xs)
            slot = np.arange(len(xs))[ok]
            rows = Padded(slot[None, :] * 0 + np.arange(len(slot))[None, :], np.r_[0, np.diff(slot)][None, :].astype(float), np.array([len(slot)]))
            post = posterior(rows, s["scale"] * llr_of(xs[ok], table), s["switch"], s["prior"]) if len(slot) else np.zeros(0)
            e.append(float(post.sum()))
        e = np.array(e)
        out[name] = (e, out["shipped"][1] if s["kind"] == "hybrid" else e >= s["minutes"] - 1e-9)
    rows = [f"  chained ({len(chains)} chains of {CHAIN_MINUTES} minutes, {int(truth.sum())} close contacts): F1 / ROC-AUC / PR-AUC"]
    for name, (score, decided) in out.items():
        rows.append(f"  {name:<26}{confusion(truth, decided).f1:.3f} / {roc_auc(truth, score):.3f} / {average_precision(truth, score):.3f}")
    return "\n".join(rows)


def minute_separation(runs: dict[tuple[str, int], Flat], s: dict, table: dict, correction: dict) -> str:
    """Per scene, ROC-AUC of single minutes against their own truth (near: at least half the minute
    within the close distance): the corrected attenuation alone, after the shipped 9-minute median,
    and the chosen chain's posterior.  How much each way of pooling neighbouring minutes helps."""
    from bluezone.sim.metrics import roc_auc

    per: dict[str, list[list[float]]] = {}
    for (scene, _), f in sorted(runs.items()):
        x = corrected(f, correction)
        near = f.near >= 0.5
        post = posterior(padded(f), s["scale"] * llr_of(x, table), s["switch"], s["prior"]) if s["kind"] in ("hmm", "hybrid") else llr_of(x, table)
        per.setdefault(scene, []).append([roc_auc(near, -x), roc_auc(near, -np.median(x[f.window], axis=1)), roc_auc(near, post)])
    return "\n".join(f"  {scene:<11}" + " / ".join(f"{v:.3f}" for v in np.mean(r, axis=0)) for scene, r in per.items())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache", type=Path)
    ap.add_argument("--tune", required=True)
    ap.add_argument("--hold-cache", type=Path)
    ap.add_argument("--hold", default="")
    ap.add_argument("--scene-cache", type=Path, help="caches of scenes of new kinds (estimator_cache.py on their files)")
    ap.add_argument("--scene-seeds", default="0,3")
    ap.add_argument("--recordings", action="store_true")
    ap.add_argument("--table", type=Path, help="write the fitted LLR table here (JSON)")
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--noise", type=int, default=0, help="N paired draws: the chosen setting's ROC-AUC / PR-AUC against the shipped scorer's")
    ap.add_argument("--choice", type=Path, help="keep the chosen settings here (JSON); if it exists, show those without sweeping again")
    a = ap.parse_args()
    correction = shipped()
    tune = load(a.cache, None, [int(x) for x in a.tune.split(",")])
    print(f"tuning runs: {sorted(tune)}")
    table = fit_table(tune, correction)
    print(f"LLR table from {table['near_minutes']} near and {table['far_minutes']} far tuning minutes (scenes weighed equally):")
    print("  " + " ".join(f"{c:g}:{v:+.2f}" for c, v in zip(table["centres_db"], table["llr"]) if 40 <= c <= 85))
    if a.table:
        a.table.write_text(json.dumps(table, indent=1) + "\n")
    if a.choice and a.choice.exists():
        named = json.loads(a.choice.read_text())
        print(f"settings from {a.choice} (chosen on the tuning seeds before): {json.dumps(named)}")
        show(a, named, table, correction)
        return
    results = sweep(tune, table, correction)
    shipped_tune = {}
    for (scene, _), f in tune.items():
        shipped_tune.setdefault(scene, []).append(margins(f, *estimate(f, shipped())))
    ship = {s: np.mean(v, axis=0) for s, v in shipped_tune.items()}
    fmt = lambda r: " ".join(f"{sc}:{v[0]:+.3f}/{v[1]:+.3f}/{v[2]:+.3f}" for sc, v in sorted(r.items()))  # noqa: E731
    print("\nmargins over GAEN per scene, F1 / ROC-AUC / PR-AUC, means over the tuning seeds; worth = the worst")
    print(f"worth {min(v[:3].min() for v in ship.values()):+.3f} | shipped scorer | {fmt(ship)}")
    for w, s, r in results[: a.top]:
        print(f"worth {w:+.3f} | {json.dumps(s)} | {fmt(r)}")
    for kind in ("sum", "hmm", "hybrid"):
        best_kind = next(t for t in results if t[1]["kind"] == kind and (kind == "sum" or t[1]["switch"] < 1))
        print(f"best {kind}{'' if kind == 'sum' else ' (sticky)'}: worth {best_kind[0]:+.3f} | {json.dumps(best_kind[1])} | {fmt(best_kind[2])}")
    indep = next(t for t in results if t[1]["kind"] == "hmm" and t[1]["switch"] >= 1)
    print(f"best independent minutes: worth {indep[0]:+.3f} | {json.dumps(indep[1])} | {fmt(indep[2])}")
    chosen = results[0][1]
    named = {"shipped": {"kind": "shipped"}, "llr chosen": chosen}
    for kind in ("hmm", "hybrid", "sum"):
        if chosen["kind"] != kind:
            named[f"best {kind}"] = next(t[1] for t in results if t[1]["kind"] == kind)
    print(f"\nchosen on the tuning seeds: {json.dumps(chosen)}")
    print("minute-level ROC-AUC on the tuning runs (a minute against its own truth): corrected attenuation / its 9-minute median (shipped) / the chosen chain's posterior")
    print(minute_separation(tune, chosen, table, correction))
    if a.choice:
        a.choice.write_text(json.dumps(named, indent=1) + "\n")
    show(a, named, table, correction)


def show(a: argparse.Namespace, named: dict[str, dict], table: dict, correction: dict) -> None:
    """The named settings on what took no part in choosing them."""
    if a.hold:
        hold = load(a.hold_cache or a.cache, None, [int(x) for x in a.hold.split(",")])
        print(f"\nheld-back runs ({len(hold)}): means, (worst-seed margin over GAEN)")
        print(scene_table(hold, named, table, correction))
        if a.noise:
            print(versus_shipped(hold, named["llr chosen"], table, correction, a.noise))
    if a.scene_cache:
        scenes = load(a.scene_cache, None, [int(x) for x in a.scene_seeds.split(",")])
        print(f"\nscenes of new kinds ({len(scenes)} runs): means, (worst-seed margin over GAEN)")
        print(scene_table(scenes, named, table, correction))
        if a.noise:
            print(versus_shipped(scenes, named["llr chosen"], table, correction, a.noise))
    if a.recordings:
        print(recordings(named, table))


if __name__ == "__main__":
    main()
