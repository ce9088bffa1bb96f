"""Where bluezone's extra false alarms sit, and verdict rules against pairs at 2-3 m for a whole visit.

Usage: python research/margin_alarms.py CACHE_DIR SEEDS [--scenes a,b] [--facts] [--carriage] [--sweep] [--day] [--show NAME={JSON}]
e.g.   python research/margin_alarms.py /tmp/tune 11,12 --scenes clinic,streetfood,storeys --facts
       python research/margin_alarms.py /tmp/tune 11,12,13,14,15,16 --sweep

Reads ``estimator_cache.py`` caches.  The fresh losses of the twelfth session (docs/simulation.md,
"Fresh seeds, twelfth session") were false alarms from pairs 2-3 m apart for a whole visit, often
with a phone on a table.  ``--facts`` measures, per scene, bluezone's flagged pairs split into true
contacts and false alarms: how long they were judged, their hard minutes (the verdict's count at the
59 dB threshold), how many of those minutes sit deep under it (3 and 6 dB), the chain's expected
near minutes (the shipped ranking), the median smoothed corrected attenuation, and (for scene files
where every phone uploads) the two phones' carriages and the pair's median head distance.

``--sweep`` scores verdict rules that only *remove* flagged pairs (the ranking, hence ROC-AUC and
PR-AUC, is unchanged): per scene the mean F1 margin over GAEN, and the runs below GAEN in F1, next
to the shipped verdict.  The rules:

- ``chain >= K``: the chain's expected near minutes must also reach K (evidence, not only count);
- ``deep d >= N``: at least N of the counted minutes at or under 59 - d dB (a visit whose minutes
  all sit at the threshold's edge is what a pair at 2.5 m for a long visit looks like);
- ``edge w d``: minutes within d dB under the threshold count w instead of 1 (a graded edge).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np
from estimator_sweep import Flat, corrected, credit, load, metrics, shipped
from llr_estimator import hmm_minutes, padded

from bluezone.matching.bluezone_scorer import BluezoneConfig
from bluezone.matching.near_chain import minute_llr
from bluezone.sim.metrics import confusion

CLOSE_MINUTES = 15.0


def smoothed(f: Flat, s: dict) -> np.ndarray:
    """Each judged minute's smoothed, corrected attenuation (the scorer's ``smooth``)."""
    z = corrected(f, s)
    return np.median(z[f.window], axis=1) if len(z) else z


def unit_facts(f: Flat) -> dict[str, np.ndarray]:
    """Per key: what the verdict saw (see the module docstring)."""
    s = shipped()
    zs = smoothed(f, s)
    t = s["decision_db"]
    n = len(f.truth)
    med = np.full(n, np.nan)
    order = np.argsort(f.unit, kind="stable")
    bounds = np.searchsorted(f.unit[order], np.arange(n + 1))
    for i in range(n):
        if bounds[i + 1] > bounds[i]:
            med[i] = np.median(zs[order[bounds[i]:bounds[i + 1]]])
    return {
        "judged": credit(f, np.ones(len(zs))),
        "hard": credit(f, (zs <= t).astype(float)),
        "deep3": credit(f, (zs <= t - 3).astype(float)),
        "deep6": credit(f, (zs <= t - 6).astype(float)),
        "chain": f.scores["bluezone"][0],
        "true": np.bincount(f.unit, f.near, minlength=n) if f.near is not None else np.full(n, np.nan),
        "median": med,
        "flagged": f.scores["bluezone"][1],
    }


def pair_facts(scene: str, seed: int, d: dict, idx: np.ndarray) -> tuple[Counter, np.ndarray]:
    """Carriages (sender, receiver) and median head distance of the pairs ``idx``, the crowd and
    phones drawn again from the seed as ``fresh_seeds.who`` does; empty where not every phone uploads."""
    from bluezone.sim.scenario import CARRIAGES

    scenario, crowd, devices = devices_of(scene, seed)
    if scenario.devices.positives != "all":
        return Counter(), np.full(len(idx), np.nan)
    track = [crowd.step(t) for t in np.arange(0.0, scenario.duration_min * 60.0, 60.0)]
    kinds: Counter = Counter()
    dist = np.full(len(idx), np.nan)
    for j, i in enumerate(idx):
        _, row, device = d["keys"][i]
        a, r = devices.person[row], devices.person[device]
        kinds[(CARRIAGES[devices.carriage[row]], CARRIAGES[devices.carriage[device]])] += 1
        both = [np.linalg.norm(p[a] - p[r]) for p, _, present in track if present[a] and present[r]]
        dist[j] = np.median(both) if both else np.nan
    return kinds, dist


def devices_of(scene: str, seed: int):
    """The run's phones drawn again from the seed (the engine draws the crowd, then the phones, first)."""
    from fresh_seeds import SIMULATIONS

    from bluezone.sim.engine import people
    from bluezone.sim.generate import generate
    from bluezone.sim.streams import streams
    from bluezone.sim.scenario import load_scenario

    scenario = generate(scene[4:], seed) if scene.startswith("gen-") else load_scenario(SIMULATIONS / f"{scene}.toml")
    crowd, devices = people(scenario, streams(seed))
    return scenario, crowd, devices


def carriage(runs: dict, raw: dict) -> None:
    """How much of a phone's carriage the same-minute correction cancels: the median attenuation of the
    minutes truly near (at least half the minute within 2 m), raw and corrected, by the receiving and by
    the sending phone's carriage; and the receiver's own references by its carriage."""
    from bluezone.sim.scenario import CARRIAGES

    for (scene, seed), f in sorted(runs.items()):
        _, _, devices = devices_of(scene, seed)
        keys = raw[(scene, seed)]["keys"]
        z = corrected(f, shipped())
        near = f.near >= 0.5
        print(f"{scene} {seed}: minutes truly near, median raw / corrected dB (minutes)")
        for who, column in (("receiver", 2), ("sender", 1)):
            car = np.array([devices.carriage[k[column]] for k in keys])[f.unit]
            cells = [f"{name} {np.median(f.p10[m]):.1f} / {np.median(z[m]):.1f} ({m.sum()})"
                     for i, name in enumerate(CARRIAGES) if (m := near & (car == i)).sum() >= 50]
            print(f"  by {who}'s carriage: " + " | ".join(cells))
        car = np.array([devices.carriage[k[2]] for k in keys])[f.unit]
        for name, values in (("day reference", f.day_ref), ("same-minute 25th pct", f.others["25"])):
            print(f"  receiver's {name} by its carriage: " + " | ".join(
                f"{c} {np.nanmedian(values[car == i]):.1f}" for i, c in enumerate(CARRIAGES) if (car == i).sum() >= 50))


def facts(runs: dict, raw: dict) -> None:
    names = ("judged", "hard", "deep3", "deep6", "chain", "true", "median")
    for (scene, seed), f in sorted(runs.items()):
        u = unit_facts(f)
        g = f.scores["gaen"][1]
        print(f"\n{scene} {seed}: contacts {int(f.truth.sum())}, bluezone flags {int(u['flagged'].sum())}, GAEN {int(g.sum())}")
        for label, sel in (("true contact, flagged", f.truth & u["flagged"]), ("false alarm, flagged", ~f.truth & u["flagged"]),
                           ("false alarm, bluezone only", ~f.truth & u["flagged"] & ~g), ("contact, bluezone only", f.truth & u["flagged"] & ~g),
                           ("contact, missed", f.truth & ~u["flagged"])):
            idx = np.flatnonzero(sel)
            if not len(idx):
                continue
            q = " ".join(f"{n} {np.nanpercentile(u[n][idx], 25):.1f}/{np.nanmedian(u[n][idx]):.1f}/{np.nanpercentile(u[n][idx], 75):.1f}" for n in names)
            print(f"  {label:<28}{len(idx):>4}  (quartiles) {q}")
            if "bluezone only" in label or label.startswith("false alarm, flagged"):
                kinds, dist = pair_facts(scene, seed, raw[(scene, seed)], idx)
                if kinds:
                    print(f"      distance {np.nanpercentile(dist, 25):.2f}/{np.nanmedian(dist):.2f}/{np.nanpercentile(dist, 75):.2f} m;"
                          " carriages " + ", ".join(f"{a}->{b} {n}" for (a, b), n in kinds.most_common(6)))


def receiver_corrected(f: Flat, s: dict) -> np.ndarray:
    """The same-minute correction (``estimator_sweep.corrected``) and, with ``day_weight``, a second
    term for the receiver's carriage: that share of how far the receiver's day reference (the 5th
    percentile of all its link-minutes that day, without this link: its nearest links, where a carriage
    loss has not faded with distance) sits from ``day_centre``, clipped to +-8 dB, also taken off."""
    z = corrected(f, s)
    if s.get("day_weight"):
        z = z - s["day_weight"] * np.nan_to_num(np.clip(f.day_ref - s["day_centre"], -8.0, 8.0))
    return z


def candidate(f: Flat, p, s: dict) -> tuple[np.ndarray, np.ndarray]:
    """(ranking, verdict) per key for setting ``s``: the same-minute correction (``beta``, ``q``,
    ``centre``, ``clip``), the verdict's ``threshold`` and an optional ``veto`` (the chain's expected
    near minutes must also reach it), the chain ranking on the same corrected minutes with the shipped
    table and chain settings (the scorer's arithmetic: ``minute_llr(value - shift)``)."""
    c = BluezoneConfig()
    z = receiver_corrected(f, s)
    zs = np.median(z[f.window], axis=1) if len(z) else z
    rank = hmm_minutes(f, p, minute_llr(z), c.chain_scale, c.chain_switch, c.chain_prior)
    decided = credit(f, (zs <= s["threshold"]).astype(float)) >= CLOSE_MINUTES - 1e-9
    return rank, decided & (rank >= s.get("veto", 0.0) - 1e-9)


SHIPPED = dict(beta=0.7, q="25", kmin=2, centre=65.0, clip=8.0, threshold=59.0, veto=0.0)  # BluezoneConfig()'s


def settings() -> list[dict]:
    """The grid: the same-minute correction's weight, quantile, centre and clip (the clip was fixed at
    8 dB in every earlier sweep; it binds wherever the company reads strong: crowds, phones on tables),
    the verdict's threshold and the chain veto."""
    out = []
    for beta in (0.5, 0.7, 1.0):
        for q in ("25",):
            for centre in (62.0, 65.0, 66.5, 68.0):
                for clip in (8.0, 16.0):
                    for threshold in (58.0, 58.5, 59.0, 59.5, 60.0):
                        for veto in (0.0, 8.0):
                            out.append(dict(beta=beta, q=q, kmin=2, centre=centre, clip=clip, threshold=threshold, veto=veto))
    return out


def day_settings() -> list[dict]:
    """``--day``: the shipped correction plus the receiver's day-reference term (``receiver_corrected``)."""
    return [dict(SHIPPED, day_weight=w, day_centre=c, threshold=t) for w in (0.3, 0.5, 0.7) for c in (50.0, 53.0, 56.0)
            for t in (58.0, 58.5, 59.0, 59.5, 60.0)] + [SHIPPED]


def sweep(runs: dict, grid: list[dict], top: int = 25) -> list[tuple]:
    """Every setting of ``settings()`` on ``runs``: per scene the mean margins over GAEN (F1, ROC-AUC,
    PR-AUC), the worth (the worst of them, as estimator_sweep's), and the runs below GAEN in F1 (a run
    with nothing to find: more false alarms than GAEN).  The chain is computed once per correction."""
    padded_runs = {k: padded(f) for k, f in runs.items()}
    gaen = {k: metrics(f.truth, *f.scores["gaen"]) for k, f in runs.items()}
    by_correction: dict[tuple, list[dict]] = {}
    for s in grid:
        by_correction.setdefault((s["beta"], s["q"], s["centre"], s["clip"], s.get("day_weight"), s.get("day_centre")), []).append(s)
    results = []
    for group in by_correction.values():
        per = [dict(per={}, losses=0, s=s) for s in group]
        for k, f in runs.items():
            rank, _ = candidate(f, padded_runs[k], {**group[0], "threshold": -1.0})
            z = receiver_corrected(f, group[0])
            zs = np.median(z[f.window], axis=1) if len(z) else z
            roc_pr = None
            for r in per:
                s = r["s"]
                decided = (credit(f, (zs <= s["threshold"]).astype(float)) >= CLOSE_MINUTES - 1e-9) & (rank >= s["veto"] - 1e-9)
                if not f.truth.any():
                    r["losses"] += int(decided.sum() > f.scores["gaen"][1].sum())
                    continue
                if roc_pr is None:
                    roc_pr = metrics(f.truth, rank, decided)[1:]
                m = np.subtract((confusion(f.truth, decided).f1, *roc_pr), gaen[k])
                r["per"].setdefault(k[0], []).append(m)
                r["losses"] += int(m[0] < 0)
        for r in per:
            means = {sc: np.mean(v, axis=0) for sc, v in r["per"].items()}
            results.append((float(np.min([m for m in means.values()])), r["losses"], r["s"], means))
    results.sort(key=lambda t: -t[0])
    scenes = sorted({sc for sc, _ in runs})
    print("worth | runs below GAEN in F1 | setting | per scene mean margin F1/ROC/PR: " + " ".join(scenes))
    shipped_row = [r for r in results if r[2] == SHIPPED]
    for w, n, s, means in shipped_row + results[:top]:
        print(f"{w:+.3f} {n:>3} | {label(s)} | " + " ".join("/".join(f"{v:+.3f}" for v in means[sc]) for sc in scenes if sc in means))
    base = shipped_row[0]
    print("\nby the rule fixed for the fresh seeds (docs/simulation.md, seeds 48-55): every scene's mean margin at least the"
          f" shipped one's - 0.001 and fewer runs below GAEN in F1 than its {base[1]}; fewest runs, then best worth")
    keep = [r for r in results if r[1] < base[1] and all((r[3][sc] >= base[3][sc] - 0.001).all() for sc in base[3])]
    for w, n, s, means in sorted(keep, key=lambda r: (r[1], -r[0]))[:top]:
        print(f"{w:+.3f} {n:>3} | {label(s)} | " + " ".join("/".join(f"{v:+.3f}" for v in means[sc]) for sc in scenes if sc in means))
    return results


SHIPPED_SCENES = ("bus", "classroom", "clinic", "market", "office", "wall", "wedding")


def show(runs: dict, candidates: dict[str, dict]) -> None:
    """``--show``: the shipped scorer (the caches' own scores) and each named candidate on ``runs``, per
    run and per scene, and the rule fixed for the fresh seeds 48-55 (docs/simulation.md): no shipped
    scene's mean margin over GAEN lower than the shipped one's by more than 0.001, fewer runs below GAEN
    in F1 (a run with nothing to find: more false alarms than GAEN), all 56 shipped runs present."""
    rows: dict[str, dict[str, list]] = {}
    for k, f in sorted(runs.items()):
        gaen = metrics(f.truth, *f.scores["gaen"])
        p = padded(f)
        line = f"{k[0]:<13}{k[1]:>4} contacts {int(f.truth.sum()):>4}"
        for name, s in {"shipped": None, **candidates}.items():
            rank, decided = (f.scores["bluezone"] if s is None else candidate(f, p, s))
            if not f.truth.any():
                loss = int(decided.sum() > f.scores["gaen"][1].sum())
                rows.setdefault(name, {}).setdefault(k[0], []).append((np.full(3, np.nan), loss))
                line += f" | {name} flags {int(decided.sum())} (GAEN {int(f.scores['gaen'][1].sum())})"
                continue
            m = np.subtract(metrics(f.truth, rank, decided), gaen)
            rows.setdefault(name, {}).setdefault(k[0], []).append((m, int(m[0] < 0)))
            line += f" | {name} " + "/".join(f"{v:+.3f}" for v in m) + (" F1-LOSS" if m[0] < 0 else "")
        print(line)
    print("\nper scene, mean margin over GAEN F1/ROC/PR (runs below GAEN in F1), runs:")
    for scene in sorted({sc for sc, _ in runs}):
        print(f"{scene:<13}" + " | ".join(
            f"{name} " + "/".join(f"{v:+.3f}" for v in np.nanmean([m for m, _ in per[scene]], axis=0))
            + f" ({sum(x for _, x in per[scene])}) n={len(per[scene])}" for name, per in rows.items()))
    base = rows["shipped"]
    for name in candidates:
        per = rows[name]
        fell = [sc for sc in SHIPPED_SCENES if sc in base and
                (np.nanmean([m for m, _ in per[sc]], axis=0) < np.nanmean([m for m, _ in base[sc]], axis=0) - 0.001).any()]
        losses = (sum(x for v in base.values() for _, x in v), sum(x for v in per.values() for _, x in v))
        complete = sum(len(base.get(sc, [])) for sc in SHIPPED_SCENES)
        ok = not fell and losses[1] < losses[0] and complete == 56
        print(f"\nrule for {name}: shipped scenes whose mean margin falls: {', '.join(fell) or 'none'}; runs below GAEN in F1"
              f" {losses[0]} -> {losses[1]}; shipped runs present {complete} of 56: {'SHIPS' if ok else 'does not ship'}")


def label(s: dict) -> str:
    day = f" day {s['day_weight']:g} x (ref - {s['day_centre']:g})" if s.get("day_weight") else ""
    return f"beta {s['beta']:g} q{s['q']} centre {s['centre']:g} clip {s['clip']:g}{day} thr {s['threshold']:g} veto {s['veto']:g}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache")
    ap.add_argument("seeds")
    ap.add_argument("--scenes")
    ap.add_argument("--facts", action="store_true")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--show", action="append", default=[], metavar="NAME={JSON}",
                    help='a candidate beside the shipped scorer, e.g. \'strict={"threshold": 58.5}\' (repeatable)')
    ap.add_argument("--day", action="store_true", help="sweep the receiver's day-reference term beside the shipped correction")
    ap.add_argument("--carriage", action="store_true", help="how much of each phone's carriage the correction cancels")
    a = ap.parse_args()
    import pickle
    from pathlib import Path

    scenes = a.scenes.split(",") if a.scenes else None
    seeds = [int(s) for s in a.seeds.split(",")]
    runs = load(Path(a.cache), scenes, seeds)
    raw = {k: pickle.loads((Path(a.cache) / f"{k[0]}_{k[1]}.pkl").read_bytes()) for k in runs} if a.facts or a.carriage else {}
    if a.facts:
        facts(runs, raw)
    if a.carriage:
        carriage(runs, raw)
    if a.show:
        show(runs, {c: {**SHIPPED, **json.loads(v)} for c, _, v in (x.partition("=") for x in a.show)})
    if a.sweep:
        sweep(runs, settings())
    if a.day:
        sweep(runs, day_settings())


if __name__ == "__main__":
    main()
