"""What the sender's own carriage or calibration, sent beside its adverts, would gain over GAEN: an upper bound.

Usage: python research/sender_metadata.py CACHE_DIR SEEDS [--scenes a,b] [--misread P]
e.g.   python research/sender_metadata.py /tmp/tune 11,12,13,14,15,16 --scenes bus,classroom,clinic,market,office,wall,wedding
       python research/sender_metadata.py /tmp/tune 11,12 --scenes streetfood,storeys

Reads ``estimator_cache.py`` caches of TUNING seeds only (the figures are what an author weighs
before a protocol change, not a setting to ship).  A receiver never sees the sender's carriage or
calibration (docs/simulation.md, "Fresh seeds 48-55": the same-minute correction cancels part of the
receiver's carriage and none of the sender's).  Here each judged minute's attenuation is also
corrected by what the sender would have sent about itself, ``weight * (offset - centre)`` taken off
before the scorer smooths, counts and chains (``margin_alarms.candidate``, the shipped arithmetic),
and so is every other link the receiver heard in that minute, the company its same-minute reference
is made of (``company_delta``: in these scenes only uploaders send, so the company is the cached
links), with the offsets:

- ``oracle carriage``: the sender's true carriage loss at 1 m in the run's radio model (the scene's
  ``carriage_loss_db`` plus half its body loss times the carriage's body factor, the mean over angles);
- ``oracle calibration``: the sender's true TX error (model and unit), which its advertised TX power
  leaves out; ``oracle both``: the two;
- ``2 bits``: the sender's carriage class (in hand / pocket / bag / on a table) mapped to the nominal
  loss above, and the same with a share ``--misread`` of phones reading their class wrong for the whole
  run (a sensor's guess); ``1 bit``: covered (pocket, bag) or open (hand, table), each the mean of its
  two classes;
- ``self-measured``: what the sender measures of itself as a receiver, the shipped same-minute shift
  (``p10 - corrected``: its company's 25th percentile against 65 dB, or its day reference), averaged
  over each 10-minute RPI interval (one AEM per RPI), sent as is or quantised to 2 bits (-4.5, -1.5,
  +1.5, +4.5 dB).

``centre`` is the median offset over the loaded runs' judged minutes, so a variant at 59 dB keeps the
verdict's level; the verdict's threshold is also swept (55-67 dB), for every variant and for the
shipped scorer alike, and the best chosen on the same runs: an upper bound, as asked.  Each line:
worth (the worst scene-mean margin over GAEN in F1, ROC-AUC, PR-AUC), runs below GAEN in F1, and per
scene the mean margins.  GAEN is scored as it is (it reads only the TX power).
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
from pathlib import Path

import numpy as np
from estimator_sweep import CLOSE_MINUTES, Flat, corrected, credit, load, metrics
from llr_estimator import padded
from fresh_seeds import SIMULATIONS
from margin_alarms import SHIPPED, candidate

from bluezone.matching.receiver import group_percentile
from bluezone.sim.channel import _BODY_FACTOR
from bluezone.sim.engine import people
from bluezone.sim.metrics import confusion
from bluezone.sim.generate import generate
from bluezone.sim.scenario import CARRIAGES, Scenario, load_scenario
from bluezone.sim.streams import streams

THRESHOLDS = tuple(np.arange(55.0, 67.01, 0.5))  # dB: wide, as a centred offset of up to 10 dB moves the verdict's level
WEIGHTS = (0.5, 1.0)
RPI_MINUTES = 10  # one AEM per RPI interval: a sender's self-measure is held that long
LEVELS = np.array([-4.5, -1.5, 1.5, 4.5])  # 2 bits of self-measured shift, dB
COVERED = ("pocket", "bag")


@dataclasses.dataclass(frozen=True)
class Senders:
    """Per uploader row of one run: the sending phone's carriage class, nominal carriage loss and TX error."""

    carriage: np.ndarray  # index into CARRIAGES
    device: np.ndarray  # the uploader's device number
    tx_error: np.ndarray  # dB: the true deviation from its advertised TX power
    nominal: np.ndarray  # dB per class: the radio's carriage loss at 1 m plus its mean body loss


def senders_of(scenario: Scenario, seed: int) -> Senders:
    """The run's uploaders drawn again from the seed, as ``engine.run`` draws them (the crowd and the
    phones from their own streams, ``engine.people``; with a count of positives the uploaders from theirs).
    Caches made before 1bf338b (one stream for everything) need this script as of b2fddb1 instead."""
    rng = streams(seed)
    _, devices = people(scenario, rng)
    n = len(devices.person)
    positives = scenario.devices.positives
    rows = np.arange(n) if positives == "all" else np.sort(rng.uploaders.choice(n, min(int(positives), n), replace=False))
    loss = dict(scenario.radio.carriage_loss_db)
    nominal = np.array([loss.get(c, 0.0) + scenario.radio.body_loss_db * _BODY_FACTOR[c] / 2 for c in CARRIAGES])
    return Senders(devices.carriage[rows], rows, devices.tx_error[rows], nominal)


def scene_of(name: str, seed: int) -> Scenario:
    """A cache's scene: a file of ``simulations/`` or a generated kind (``gen-KIND``) drawn from the seed."""
    return generate(name[4:], seed) if name.startswith("gen-") else load_scenario(SIMULATIONS / f"{name}.toml")


def self_shift(f: Flat) -> dict[tuple[int, int], float]:
    """Per (device, RPI interval): the shipped same-minute shift the device applies to itself as a
    receiver (``p10 - corrected``), averaged over its judged minutes in that interval."""
    shift = f.p10 - corrected(f, SHIPPED)
    key = f.receiver[f.unit].astype(np.int64) * 10**9 + f.slot // RPI_MINUTES
    groups, inverse = np.unique(key, return_inverse=True)
    mean = np.bincount(inverse, shift) / np.bincount(inverse)
    return {(int(g // 10**9), int(g % 10**9)): float(v) for g, v in zip(groups, mean)}


def offsets(f: Flat, keys: list, s: Senders, misread: float, seed: int) -> dict[str, np.ndarray]:
    """Per judged minute, the offset each variant's sender sends (dB, before centring)."""
    row = np.array([k[1] for k in keys])[f.unit]
    carriage = s.carriage[row]
    rng = np.random.default_rng(seed + 1000)
    wrong = rng.random(len(s.carriage)) < misread
    guessed = np.where(wrong, (s.carriage + rng.integers(1, len(CARRIAGES), len(s.carriage))) % len(CARRIAGES), s.carriage)
    covered = np.isin(np.arange(len(CARRIAGES)), [CARRIAGES.index(c) for c in COVERED])
    one_bit = np.where(covered, s.nominal[covered].mean(), s.nominal[~covered].mean())
    table = self_shift(f)
    own = np.array([table.get((int(d), int(t) // RPI_MINUTES), np.nan) for d, t in zip(s.device[row], f.slot)])
    own = np.nan_to_num(own)  # a sender that judged nobody in that interval sends 0
    quantised = LEVELS[np.clip(np.floor(own / 3.0) + 2, 0, 3).astype(int)]
    return {
        "oracle carriage": s.nominal[carriage],
        "oracle calibration": -s.tx_error[row],
        "oracle both": s.nominal[carriage] - s.tx_error[row],
        "2 bits (class)": s.nominal[carriage],
        f"2 bits, {misread:.0%} misread": s.nominal[guessed[row]],
        "1 bit (covered or open)": one_bit[carriage],
        "self-measured": own,
        "self-measured, 2 bits": quantised,
    }


def score(runs: dict, shifted: dict, threshold: float) -> tuple[float, int, dict[str, np.ndarray]]:
    """(worth, runs below GAEN in F1, per scene mean margins) of one variant at one threshold;
    ``shifted[k]`` is (ranking, smoothed minutes' verdict count per key at each threshold)."""
    per: dict[str, list] = {}
    losses = 0
    for k, f in runs.items():
        rank, decided_at = shifted[k]
        decided = decided_at[threshold]
        m = np.subtract(metrics(f.truth, rank, decided), metrics(f.truth, *f.scores["gaen"]))
        per.setdefault(k[0], []).append(m)
        losses += int(m[0] < 0)
    means = {sc: np.mean(v, axis=0) for sc, v in per.items()}
    return float(np.min(list(means.values()))), losses, means


def company_delta(f: Flat, sent: np.ndarray) -> np.ndarray:
    """How far each minute's same-minute reference moves when every link the receiver hears in that
    minute is corrected by its own sender's offset ``sent`` (not only the judged one): the 25th
    percentile of the receiver's judged links in that minute, corrected minus raw.  In these scenes
    every phone heard is an uploader, so those links are the company the reference is made of."""
    key = f.receiver[f.unit].astype(np.int64) * 10**9 + f.slot
    groups, inverse = np.unique(key, return_inverse=True)
    q = float(SHIPPED["q"])
    out = []
    for values in (f.p10 - sent, f.p10):
        order = np.lexsort((values, inverse))
        first = np.searchsorted(inverse[order], np.arange(len(groups)))
        out.append(group_percentile(values[order], first, np.bincount(inverse, minlength=len(groups)), q))
    return (out[0] - out[1])[inverse]


def run_variant(runs: dict, pads: dict, offset: dict | None, weight: float, centre: float) -> dict:
    """Per run: the chain's ranking and the verdict at every threshold with the offsets taken off the
    judged link and, through ``company_delta``, off the company it is compared with (the verdict as
    ``candidate`` makes it: 15 minutes of smoothed corrected minutes at or under the threshold)."""
    out = {}
    for k, f in runs.items():
        g = f
        if offset is not None:
            sent = weight * (offset[k] - centre)
            g = dataclasses.replace(f, p10=f.p10 - sent, others={**f.others, SHIPPED["q"]: f.others[SHIPPED["q"]] + company_delta(f, sent)})
        rank, _ = candidate(g, pads[k], {**SHIPPED, "threshold": -1.0})
        z = corrected(g, SHIPPED)
        zs = np.median(z[g.window], axis=1) if len(z) else z
        out[k] = (rank, {t: credit(g, (zs <= t).astype(float)) >= CLOSE_MINUTES - 1e-9 for t in THRESHOLDS})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache", type=Path)
    ap.add_argument("seeds")
    ap.add_argument("--scenes")
    ap.add_argument("--misread", type=float, default=0.2, help="share of phones reading their carriage class wrong")
    a = ap.parse_args()
    seeds = [int(x) for x in a.seeds.split(",")]
    runs = {k: f for k, f in load(a.cache, a.scenes.split(",") if a.scenes else None, seeds).items() if f.truth.any()}
    pads = {k: padded(f) for k, f in runs.items()}
    per_run: dict[str, dict] = {}
    for k, f in runs.items():
        keys = pickle.loads((a.cache / f"{k[0]}_{k[1]}.pkl").read_bytes())["keys"]
        rank, decided = candidate(f, pads[k], SHIPPED)
        assert (decided == f.scores["bluezone"][1]).all(), f"{k}: the cache's verdicts are not the shipped scorer's"
        for name, v in offsets(f, keys, senders_of(scene_of(*k), k[1]), a.misread, k[1]).items():
            per_run.setdefault(name, {})[k] = v
    scenes = sorted({sc for sc, _ in runs})
    print(f"runs: {len(runs)} ({', '.join(scenes)}; seeds {a.seeds}); per scene mean margin over GAEN F1/ROC-AUC/PR-AUC")
    kept: dict[str, tuple] = {}
    rows = [("shipped (no sender metadata)", None, 1.0)] + [(n, v, w) for n, v in per_run.items() for w in WEIGHTS]
    for name, offset, weight in rows:
        centre = float(np.median(np.concatenate(list(offset.values())))) if offset else 0.0
        result = run_variant(runs, pads, offset, weight, centre)
        at59 = score(runs, result, 59.0)
        best = max(((t, *score(runs, result, t)) for t in THRESHOLDS), key=lambda r: (r[1], -r[2]))
        label = name if offset is None else f"{name}, weight {weight:g} (centre {centre:.1f} dB)"
        for tag, (w, n, means) in (("59 dB", at59), (f"best {best[0]:g} dB", best[1:])):
            mean = np.mean(list(means.values()), axis=0)
            print(f"{label:<58} {tag:<12} worth {w:+.3f}  mean {'/'.join(f'{v:+.3f}' for v in mean)}  below GAEN in F1 {n:>2} of {len(runs)} | "
                  + " ".join(f"{sc} " + "/".join(f"{v:+.3f}" for v in means[sc]) for sc in scenes), flush=True)
        kept[label] = (result, best[0])
    label = next(x for x in kept if x.startswith("oracle both, weight 1"))
    oracle, threshold = kept[label]
    print(f"\nbluezone-only false alarms and contacts: shipped at 59 dB -> {label} at its best {threshold:g} dB:")
    for k, f in sorted(runs.items()):
        g = f.scores["gaen"][1]
        before, after = f.scores["bluezone"][1], oracle[k][1][threshold]
        c0, c1 = confusion(f.truth, before), confusion(f.truth, after)
        print(f"  {k[0]:<11}{k[1]:>3}  false alarms GAEN does not raise {int((~f.truth & before & ~g).sum()):>3} -> {int((~f.truth & after & ~g).sum()):>3}"
              f"  contacts found {c0.tp:>3} -> {c1.tp:>3} of {int(f.truth.sum())}  F1 {c0.f1:.3f} -> {c1.f1:.3f} (GAEN {confusion(f.truth, g).f1:.3f})")


if __name__ == "__main__":
    main()
