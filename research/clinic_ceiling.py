"""The clinic's F1 against GAEN: what a receiver sees of its false alarms and its missed contacts, and the best any
single verdict threshold could do in hindsight (est20, issue 13).  Tuning seeds only.

Usage: python research/clinic_ceiling.py SEEDS [--scene clinic]
e.g.   python research/clinic_ceiling.py 11,12,13,14,15,16 --scene wall      (est21: the wall's and the classroom's losses)

The clinic's per-run F1 losses on fresh seeds (93; 96, 98, 99) are pairs across the aisle, 2.4-3.5 m apart, flagged,
and neighbours 0.6-1.2 m apart with a phone in a pocket or bag, missed (est18, ``explain_run.py clinic 14``).  This
runs each seed once through the real engine (``explain_run.DistanceTruth``: the same run, a truth that keeps each
pair's distance) and re-scores its windows as the engine does, to print:

1. per pair class (true contact flagged / missed, false alarm, other pair heard 10+ minutes within 3 m), what the
   receiver can measure of the link: the verdict's smoothed minute attenuation (median over the pair's judged
   minutes, after the receiver's corrections), the spread of packets within a minute, packets a minute heard, and
   and what it cannot (distance, both carriages, whether the two sit in different groups: the clinic's rows face each
   other across the aisle);
2. how well each measurable separates the false alarms from the true contacts (ROC-AUC, 0.5 = not at all);
3. the ceiling: the best F1 any single verdict (threshold_db from 55 to 63 dB, close_contact_minutes from 10 to 20)
   reaches in hindsight, per run and one setting for every run, and the best cutoff of the ranking
   (weighted_minutes) per run, each against GAEN's F1 (as shipped, and at its own best cutoff in hindsight).

est21 (twenty-first session) made it read any scene: beside the clinic's rows ("other group") it keeps, per pair,
what the radio model added to the link's mean while the two phones were within 3 m, none of which a receiver can
tell from distance (``HiddenLosses``: body loss by bearing, carriage loss, wall and slab loss, the link's static
shadowing, the sender's calibration residual), whether a wall or slab stood between them, a fourth measurable
(how many of the receiver's other links sounded nearer in the same minute: its rank among its company), and per
run where the shipped verdict and GAEN's differ (contacts only one finds, false alarms only one raises).

Nothing here is a candidate: it chooses on the runs it reports.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

import numpy as np
from explain_run import DistanceTruth

from bluezone.matching.bluezone_scorer import BluezoneConfig, BluezoneScorer, minute_attenuation
from bluezone.matching.receiver import for_receiver
from bluezone.sim import engine, report
from bluezone.sim.catalogue import find_scenario
from bluezone.sim.channel import LinkShadowing
from bluezone.sim.metrics import roc_auc
from bluezone.sim.scenario import CARRIAGES, load_scenario

THRESHOLDS = np.arange(55.0, 63.01, 0.5)  # dB: the verdict's threshold_db
CUTS = np.union1d(np.arange(10.0, 20.01, 0.5), [14.9])  # minutes: the verdict's close_contact_minutes (14.9 shipped)


def f1(truth: np.ndarray, flagged: np.ndarray) -> float:
    """F1 of a verdict (0 when nothing is flagged and nothing is true is counted as 1: nothing to find, nothing said)."""
    tp = int((truth & flagged).sum())
    fp, fn = int((~truth & flagged).sum()), int((truth & ~flagged).sum())
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def best_cutoff_f1(truth: np.ndarray, score: np.ndarray) -> float:
    """The best F1 of ``score >= cutoff`` over every cutoff: the ceiling of any threshold on that score."""
    return max(f1(truth, score >= c) for c in np.unique(np.append(score, np.inf)))


RANKS = tuple(range(1, 13))  # the receiver's k strongest other links a minute, read to rank the judged link among them
MEASURABLE = ("level (lower = nearer)", "spread within a minute", "packets a minute", "nearer company a minute")
HIDDEN = ("body", "carriage", "wall/slab", "static", "sender cal.")  # dB the model added to the link's mean (HiddenLosses)


class HiddenLosses(LinkShadowing):
    """The channel as the engine runs it, summing per link while the phones are within 3 m what the model adds to the
    path loss: the body loss by bearing, the carriage loss, walls and slabs (``mean_attenuation``'s own terms, read
    as the difference with each set to zero).  Research only: swapped in as ``engine.LinkShadowing``."""

    last: HiddenLosses | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.near_steps, self.body, self.carriage, self.wall = (np.zeros(self.static.shape) for _ in range(4))
        HiddenLosses.last = self

    def mean_attenuation(self, d: np.ndarray, angle_tx: np.ndarray, angle_rx: np.ndarray, wall_loss: np.ndarray) -> np.ndarray:
        full = super().mean_attenuation(d, angle_tx, angle_rx, wall_loss)
        zero = np.zeros_like(angle_tx)
        body = full - super().mean_attenuation(d, zero, zero, wall_loss)
        kept, self.carriage_loss = self.carriage_loss, np.zeros_like(self.carriage_loss)
        carriage = full - super().mean_attenuation(d, angle_tx, angle_rx, wall_loss)
        self.carriage_loss = kept
        near = np.isfinite(d) & (d < 3.0)
        self.near_steps += near
        self.body += np.where(near, body, 0.0)
        self.carriage += np.where(near, carriage, 0.0)
        self.wall += np.where(near, np.broadcast_to(wall_loss, d.shape), 0.0)
        return full


def link_facts(window, scorer: BluezoneScorer) -> tuple[float, float, float, float]:
    """(median smoothed minute attenuation after the receiver's corrections, median within-minute spread of packets,
    packets a judged minute, median count of the receiver's other links nearer than this one in the same minute):
    what the receiver measures of one window.  The company's values are read at the nominal TX power (a receiver
    cannot decrypt their metadata), this link's at its own: the rank is approximate where the models differ."""
    c = scorer.config
    slots, value, _ = minute_attenuation(window.times, window.attenuation, c)
    if len(slots) == 0:
        return np.nan, np.nan, 0.0, np.nan
    shift, _ = scorer.minute_shifts(window, slots)
    smooth = scorer.smoothed(slots, value - shift)
    minute = (np.asarray(window.times) // c.slot_seconds).astype(np.int64)
    att = np.asarray(window.attenuation, float)
    spreads = [np.std(att[minute == s]) for s in slots]
    rank = np.nan
    if scorer.receiver is not None and scorer.receiver.value_slot is not None:
        kth = scorer.receiver.minute_levels(slots, 50.0, window.sighting_index, 1, RANKS).kth
        rank = float(np.median(np.sum([k < value for k in kth], axis=0)))  # nan (no company) compares as not nearer
    return float(np.median(smooth)), float(np.median(spreads)), len(att) / len(slots), rank


def one_run(name: str, seed: int) -> dict:
    """The run's pairs: truth, distance and carriages, GAEN's scores, and bluezone's at every threshold."""
    scenario = load_scenario(find_scenario(name))
    engine.Truth = DistanceTruth  # type: ignore[misc]  # research only: the same run, a truth that keeps more
    engine.LinkShadowing = HiddenLosses  # type: ignore[misc]  # and a channel that keeps what it added
    result = engine.run(scenario, seed=seed, scorers=["gaen", "bluezone"], store="memory", keep_windows=True)
    t = result.truth
    keys, true = report.units(result)
    need = scenario.close_contact_min - 1e-9
    n = len(keys)
    within = np.zeros((len(THRESHOLDS), n))
    weighted, facts = np.zeros(n), np.full((n, len(MEASURABLE)), np.nan)
    shipped = BluezoneScorer()
    index = {k: i for i, k in enumerate(keys)}
    for key, windows in result.windows.items():
        if key not in index:
            continue
        i = index[key]
        judge = for_receiver(shipped, result.contexts[key[2]])
        for w in windows:
            weighted[i] += judge.score(w).weighted_minutes
        facts[i] = link_facts(windows[0], judge)
        for j, th in enumerate(THRESHOLDS):
            alt = for_receiver(replace(shipped, config=BluezoneConfig(threshold_db=float(th))), result.contexts[key[2]])
            within[j, i] = max(alt.score(w).minutes_by_bucket["within_2m"] for w in windows)
    g = result.scores["gaen"]
    b = result.scores["bluezone"]
    crowd, _ = engine.people(scenario, engine.streams(seed))  # the run's own crowd: who sits in which group
    group = crowd.group_of[result.devices.person]
    rows = [k[1] for k in keys]
    devs = [k[2] for k in keys]
    senders = result.senders[rows]
    ch = HiddenLosses.last
    assert ch is not None
    steps = np.maximum(ch.near_steps[rows, devs], 1)
    static = ch.static * (ch.link.link_sd_db if ch.zones else 1.0)  # dB taken off the link's mean, all run
    hidden = np.c_[ch.body[rows, devs] / steps, ch.carriage[rows, devs] / steps, ch.wall[rows, devs] / steps,
                   -static[rows, devs], -result.devices.tx_error[senders]]
    hidden[ch.near_steps[rows, devs] == 0, :3] = np.nan
    return {
        "truth": true >= need,
        "true_min": true,
        "gaen_w": np.array([g[k].weighted_minutes if k in g else 0.0 for k in keys]),
        "gaen": np.array([bool(k in g and g[k].close_contact) for k in keys]),
        "bz": np.array([bool(k in b and b[k].close_contact) for k in keys]),
        "bz_w": weighted,
        "within": within,
        "facts": facts,
        "distance": np.array([t.d_sum[r, d] / t.together_s[r, d] if t.together_s[r, d] else np.nan  # nan: never on one side
                              for r, d in zip(rows, devs, strict=True)]),
        "near3": np.array([t.within_s[3.0][r, d] / 60 for r, d in zip(rows, devs, strict=True)]),
        "carriage": [f"{CARRIAGES[result.devices.carriage[s]]}->{CARRIAGES[result.devices.carriage[d]]}"
                     for s, d in zip(senders, devs, strict=True)],
        "apart": np.array([group[s] != group[d] for s, d in zip(senders, devs, strict=True)]),
        "walled": ch.wall[rows, devs] > 0,
        "hidden": hidden,
        "cc": scenario.close_contact_min,
    }


def classes(r: dict) -> dict[str, np.ndarray]:
    """The pairs by what the shipped verdict made of them."""
    heard = (r["near3"] >= 10) & ~r["truth"] & ~r["bz"]
    return {"true, flagged": r["truth"] & r["bz"], "true, missed": r["truth"] & ~r["bz"],
            "false alarm": ~r["truth"] & r["bz"], "other, 10+ min within 3 m": heard}


def describe(runs: dict[int, dict]) -> None:
    """Part 1 and 2: the classes' measurable and hidden facts, and each measurable's separation."""
    print("class                        pairs  dist m (median, range)  other group  across a wall  carriages (sender->receiver, top 3)"
          "          " + "  ".join(f"{m.split(' (')[0][:14]:>14}" for m in MEASURABLE))
    pooled: dict[str, list[np.ndarray]] = {}
    hidden: dict[str, np.ndarray] = {}
    for name in classes(next(iter(runs.values()))):
        sel = [(r, classes(r)[name]) for r in runs.values()]
        d = np.concatenate([r["distance"][m] for r, m in sel])
        f = np.concatenate([r["facts"][m] for r, m in sel])
        carr = [c for r, m in sel for c, x in zip(r["carriage"], m, strict=True) if x]
        apart = np.concatenate([r["apart"][m] for r, m in sel])
        walled = np.concatenate([r["walled"][m] for r, m in sel])
        top = ", ".join(f"{c} {carr.count(c)}" for c in sorted(set(carr), key=lambda c: (-carr.count(c), c))[:3])
        pooled[name] = f
        hidden[name] = np.concatenate([r["hidden"][m] for r, m in sel])
        if len(d):
            print(f"{name:<28} {len(d):>5}  {np.nanmedian(d):4.2f} ({np.nanmin(d):.2f}-{np.nanmax(d):.2f})         {apart.mean():5.0%}"
                  f"        {walled.mean():5.0%}        {top:<44} "
                  + "  ".join(f"{np.nanmedian(f[:, k]):14.1f}" for k in range(len(MEASURABLE))))
    print("\nwhat the model added to each class's links while within 3 m, dB (median; none of it visible apart from distance):")
    print(f"{'class':<28} " + "  ".join(f"{h:>11}" for h in HIDDEN) + "    sum  sender's phone covered  receiver's covered")
    for name, h in hidden.items():
        carr = [c.split("->") for r in runs.values() for c, x in zip(r["carriage"], classes(r)[name], strict=True) if x]
        if len(h):
            covered = [np.mean([c[k] in ("pocket", "bag") for c in carr]) for k in (0, 1)]
            print(f"{name:<28} " + "  ".join(f"{np.nanmedian(h[:, k]):11.1f}" for k in range(len(HIDDEN)))
                  + f"  {np.nanmedian(np.nansum(h, axis=1)):5.1f}  {covered[0]:22.0%}  {covered[1]:18.0%}")
    true = np.concatenate([pooled["true, flagged"], pooled["true, missed"]])
    for other, what_other in (("false alarm", "false alarms"), ("other, 10+ min within 3 m", "other pairs 10+ min within 3 m")):
        false = pooled[other]
        if not (len(true) and len(false)):
            continue
        labels = np.r_[np.ones(len(true), bool), np.zeros(len(false), bool)]
        for k, what in enumerate(MEASURABLE):
            values = np.r_[true[:, k], false[:, k]]
            ok = np.isfinite(values)
            auc = roc_auc(labels[ok], -values[ok] if k in (0, 3) else values[ok])
            print(f"true contacts vs {what_other}, ROC-AUC of {what} ({len(true)} / {len(false)} pairs): {auc:.3f}"
                  f" (0.5: no separation; either side of it separates)")


def against_gaen(runs: dict[int, dict]) -> None:
    """Per run, where the shipped verdict and GAEN's part: the contacts and false alarms only one of them has."""
    print("\nseed  true  both find  only bluezone finds  only GAEN finds  false alarms: both  only bluezone  only GAEN")
    for seed, r in runs.items():
        t, b, g = r["truth"], r["bz"], r["gaen"]
        print(f"{seed:>4} {int(t.sum()):>5}  {int((t & b & g).sum()):>9}  {int((t & b & ~g).sum()):>19}  {int((t & ~b & g).sum()):>15}"
              f"  {int((~t & b & g).sum()):>18}  {int((~t & b & ~g).sum()):>13}  {int((~t & ~b & g).sum()):>9}")


def ceiling(runs: dict[int, dict], also: tuple[tuple[float, float], ...] = ()) -> None:
    """Part 3: the best verdict in hindsight per run and over all runs, against GAEN; ``also``: (threshold, minutes)
    settings whose worst and mean margins to print as well (another scene's best, to see what it costs here)."""
    grid = {}
    print("\nseed  true  GAEN F1 (shipped / best cutoff)  bluezone F1 shipped  best verdict (threshold, minutes: F1)"
          "  best ranking cutoff F1")
    for seed, r in runs.items():
        scores = np.array([[f1(r["truth"], r["within"][j] >= cut - 1e-9) for cut in CUTS] for j in range(len(THRESHOLDS))])
        grid[seed] = scores
        j, k = np.unravel_index(np.argmax(scores), scores.shape)
        print(f"{seed:>4} {int(r['truth'].sum()):>5}  {f1(r['truth'], r['gaen']):.3f} / {best_cutoff_f1(r['truth'], r['gaen_w']):.3f}"
              f"                  {f1(r['truth'], r['bz']):.3f}            {THRESHOLDS[j]:.1f} dB, {CUTS[k]:.1f}: {scores[j, k]:.3f}"
              f"                 {best_cutoff_f1(r['truth'], r['bz_w']):.3f}")
    margins = np.stack([grid[s] - f1(r["truth"], r["gaen"]) for s, r in runs.items()])
    worst, mean = margins.min(axis=0), margins.mean(axis=0)
    j, k = np.unravel_index(np.argmax(worst), worst.shape)
    ship_j, ship_k = int(np.argmin(abs(THRESHOLDS - 59.0))), int(np.argmin(abs(CUTS - 14.9)))
    print(f"one verdict for every run, by its worst margin over GAEN: {THRESHOLDS[j]:.1f} dB, {CUTS[k]:.1f} minutes: "
          f"worst {worst[j, k]:+.3f}, mean {mean[j, k]:+.3f}; the shipped (59 dB, 14.9 minutes): "
          f"worst {worst[ship_j, ship_k]:+.3f}, mean {mean[ship_j, ship_k]:+.3f}")
    for th, cut in also:
        j, k = int(np.argmin(abs(THRESHOLDS - th))), int(np.argmin(abs(CUTS - cut)))
        print(f"  at {THRESHOLDS[j]:.1f} dB, {CUTS[k]:.1f} minutes: worst {worst[j, k]:+.3f}, mean {mean[j, k]:+.3f}, runs below GAEN "
              f"{int((margins[:, j, k] < 0).sum())}")
    ok = worst >= 0
    print(f"settings of the grid with every run at or above GAEN: {int(ok.sum())} of {ok.size}; thresholds among them: "
          + (f"{THRESHOLDS[ok.any(axis=1)].min():.1f}-{THRESHOLDS[ok.any(axis=1)].max():.1f} dB" if ok.any() else "none"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("seeds")
    ap.add_argument("--scene", default="clinic")
    ap.add_argument("--also", default="", help="settings to print beside the best, e.g. 56.5@14.9,60.5@16.5")
    a = ap.parse_args()
    also = tuple((float(one.split("@")[0]), float(one.split("@")[1])) for one in a.also.split(",") if one)
    runs = {int(s): one_run(a.scene, int(s)) for s in a.seeds.split(",")}
    for r in runs.values():
        assert np.array_equal(r["within"][int(np.argmin(abs(THRESHOLDS - 59.0)))] >= 14.9 - 1e-9, r["bz"]), "re-scored != engine"
    describe(runs)
    against_gaen(runs)
    ceiling(runs, also)


if __name__ == "__main__":
    main()
