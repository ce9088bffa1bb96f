"""One simulated run, pair by pair: who is a true contact, who is flagged, how far apart they were.

Usage: python research/explain_run.py KIND_OR_SCENE SEED [--all]
e.g.   python research/explain_run.py carriage 44      (a generated carriage, as `bluezone simulate --generate carriage --seed 44`)
       python research/explain_run.py clinic 47        (a scenario of simulations/)

Runs the scene once through the real engine (both scorers, the same figures as ``bluezone simulate``)
with a truth that also keeps, per judged pair, the minutes both were present, the mean and least
head distance while present and the minutes within 1.5 / 2 / 2.25 / 2.5 / 3 m.  Prints every pair
that is a true contact or that either scorer flags (``--all``: every pair with a minute within 3 m),
with each scorer's ranking minutes and the minutes its windows credit (GAEN's: the time present since credit14), then a
summary: how many pairs sit just under the 15 minutes, and the flagged pairs' distances.
Written for the thirteenth session's unexplained fresh results (docs/simulation.md, "Unexplained
fresh results, thirteenth session"); the explanation of a run without re-drawing it, as
``fresh_seeds.py --explain`` needs its cache.
"""

from __future__ import annotations

import argparse

import numpy as np

from bluezone.sim import engine, report
from bluezone.sim.catalogue import find_scenario
from bluezone.sim.generate import KINDS, generate
from bluezone.sim.scenario import CARRIAGES, load_scenario
from bluezone.sim.truth import Truth

RADII = (1.5, 2.0, 2.25, 2.5, 3.0)


class DistanceTruth(Truth):
    """The engine's truth, plus per pair the minutes together and the distances while together."""

    def add(self, day: int, d: np.ndarray, separated: np.ndarray, dt: float, now: float | None = None) -> None:
        super().add(day, d, separated, dt, now)
        if not hasattr(self, "together_s"):
            shape = (self.senders, self.devices)
            self.together_s, self.d_sum, self.d_min = np.zeros(shape), np.zeros(shape), np.full(shape, np.inf)
            self.within_s = {r: np.zeros(shape) for r in RADII}
        ok = np.isfinite(d) & ~separated
        self.together_s += ok * dt
        self.d_sum += np.where(ok, d, 0.0) * dt
        self.d_min = np.where(ok, np.minimum(self.d_min, np.where(ok, d, np.inf)), self.d_min)
        for r, acc in self.within_s.items():
            acc += (ok & (d < r)) * dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scene")
    ap.add_argument("seed", type=int)
    ap.add_argument("--all", action="store_true", help="every pair with a minute within 3 m, not only true or flagged ones")
    a = ap.parse_args()
    scenario = generate(a.scene, a.seed) if a.scene in KINDS else load_scenario(find_scenario(a.scene))
    engine.Truth = DistanceTruth  # type: ignore[misc]  # research only: the same run, a truth that keeps more
    result = engine.run(scenario, a.seed)
    summary = report.summarise(result)
    t = result.truth
    assert isinstance(t, DistanceTruth)
    print(report.table(summary))
    keys, true2 = report.units(result)
    need = scenario.close_contact_min - 1e-9
    print(f"\n{'':6}{'sender':>7}{'rx':>5}{'true min':>9}{'present':>8}{'mean m':>7}{'min m':>6}"
          + "".join(f"{'<' + str(r):>6}" for r in RADII) + "   bluezone (ranked, credited min)  gaen (weighted, credited)  carriages (sender -> receiver)")
    flagged_d: dict[str, list[float]] = {"bluezone": [], "gaen": []}
    over: list[float] = []  # credited minus present, pairs heard for 5+ minutes
    under_flagged = {"bluezone": 0, "gaen": 0}  # false alarms together less than the close-contact minutes
    for (day, row, dev), minutes in zip(keys, true2):
        got = {n: result.scores[n].get((day, row, dev)) for n in ("bluezone", "gaen")}
        present = t.together_s[row, dev] / 60
        heard = got["gaen"]
        if heard is not None and present >= 5:
            over.append(heard.minutes - present)
        for n, s in got.items():
            if s is not None and s.close_contact and minutes < need and present < need:
                under_flagged[n] += 1
        flags = {n: bool(s and s.close_contact) for n, s in got.items()}
        near3 = t.within_s[3.0][row, dev] > 0
        if not (minutes >= need or any(flags.values()) or (a.all and near3)):
            continue
        sender = int(result.senders[row])
        mean_d = t.d_sum[row, dev] / max(t.together_s[row, dev], 1e-9)
        for n, f in flags.items():
            if f and minutes < need:
                flagged_d[n].append(mean_d)
        cells = "".join(f"{t.within_s[r][row, dev] / 60:6.1f}" for r in RADII)
        verdicts = "  ".join(f"{'FLAG' if flags[n] else '  - '} {s.weighted_minutes if s else 0.0:5.1f} {s.minutes if s else 0.0:5.1f}"
                             for n, s in got.items())
        carriages = f"{CARRIAGES[result.devices.carriage[sender]]} -> {CARRIAGES[result.devices.carriage[dev]]}"
        print(f"{'TRUE' if minutes >= need else 'far':<6}{sender:>7}{dev:>5}{minutes:9.1f}{t.together_s[row, dev] / 60:8.1f}"
              f"{mean_d:7.2f}{t.d_min[row, dev]:6.2f}{cells}   {verdicts}   {carriages}")
    under = int(((true2 >= need - 5) & (true2 < need)).sum())
    print(f"\npairs within 2 m for {need - 5 + 1e-9:.0f}-{need:.0f} minutes (just under the line): {under};"
          f" true contacts: {int((true2 >= need).sum())}; most minutes within 2 m: {true2.max(initial=0):.1f}")
    if over:
        print(f"minutes GAEN credits minus minutes present, {len(over)} pairs heard 5+ minutes:"
              f" median {np.median(over):+.2f}, 90th percentile {np.percentile(over, 90):+.2f}")
    print("false alarms of pairs together less than the close-contact minutes: "
          + ", ".join(f"{n} {k}" for n, k in under_flagged.items()))
    for n, ds in flagged_d.items():
        if ds:
            print(f"{n} false alarms: {len(ds)}, mean distance while present: median {np.median(ds):.2f} m"
                  f" (range {min(ds):.2f}-{max(ds):.2f})")


if __name__ == "__main__":
    main()
