"""Replay real recordings through the scorers: ``bluezone evaluate DATASET``.

Each recording is cut into one-minute windows; each window is an exposure window as the
matcher would build it: attenuation = TX power - (RSSI + RSSI correction), both numbers taken
per phone model from Google's calibration table (``bluezone.calibration``) where the dataset
names the phones and the table knows them, else the nominal ``tx_power`` and 0 dB; the report
lists every phone and where its numbers came from.  Where a recording also holds the
other devices its receiver heard (MIT LL's PACT logs), they are the receiver's other links: a
bluezone scorer judges each minute against them (the same-minute reference of
``bluezone.matching.receiver``), read at the nominal TX power and never scored.  Per window: detected "closer than 2 m"
when the scorer judges at least half of the minute it credits (per-distance detection rates), and
ranked by the scorer's typical attenuation for ROC and PR.  nDCF = P_miss + P_fa (NIST
TC4TL's metric, its distances 1.2, 1.8 and 3.0 m) scores that same default detection, fixed
before looking, against "within D" for each distance D (and against "closer than 2 m", the
question that decision answers: ``ndcf_close``); and, as TC4TL asked of its systems,
a decision made for each D: the scorer's attenuation thresholds moved by what the path-loss
model of docs/radio-model.md says separates D from 2 m, 10·n·log10(D / 2 m) dB with n = 2
(``distance_decisions``), the same rule for every scorer, also fixed before looking.  Per setup (carriage combination): 15-minute exposures are built by chaining
real one-minute windows, k of them from recordings under 2 m and the rest from farther
ones, so the truth (k >= 15) is known; the scorers' close-contact verdicts on these
chains give precision, recall and F1.  Confidence intervals come from bootstrapping over
whole recordings, within strata of (setup, under / over 2 m): a plain resample often drops
every far recording of a setup, whose chains are then all close contacts, and the intervals
came out above the point estimate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bluezone.calibration.table import CalibrationTable, default_table
from bluezone.matching.bluezone_scorer import BluezoneScorer, minute_attenuation
from bluezone.matching.matcher import DEFAULT_TX_POWER, ExposureWindow
from bluezone.matching.receiver import ReceiverContext, for_receiver, receiver_context
from bluezone.matching.scoring import Score, Scorer, get_scorer, scorer_names
from bluezone.printable import printable_line
from bluezone.progress import Progress
from bluezone.proximity.sightings import SIGHTING_DTYPE
from bluezone.sim.datasets import Recording, load_dataset
from bluezone.sim.scenario import RadioModel
from bluezone.sim.metrics import average_precision, confusion, fmt, roc_auc, rounded

log = logging.getLogger(__name__)

NOMINAL_TX_POWER = -24  # dBm: the simulator's default calibrated TX power (docs/radio-model.md)
CLOSE_M = 2.0
CHAIN_MINUTES = 20
CLOSE_MINUTES = 15
MIN_WINDOW_S = 30.0
#: NIST TC4TL's distances (4, 6 and 10 ft rounded).  "Within D" allows 5 cm, so a recording
#: at 4 ft (1.22 m) is within 1.2 m, as in TC4TL, and one at 5 ft (1.52 m) is not.
TC4TL_DISTANCES_M = (1.2, 1.8, 3.0)
TC4TL_SLACK_M = 0.05
#: The settings, per scorer, that place its per-minute "within 2 m" decision on the attenuation
#: axis: a decision for distance D moves each of them by ``distance_shift_db(D)``.  A scorer not
#: listed (a plugin) gets the default decision only.
DISTANCE_SETTINGS: dict[str, tuple[str, ...]] = {
    "bluezone": ("threshold_db",),
    "gaen": ("immediate_db", "near_db", "medium_db"),
}


def distance_shift_db(distance_m: float, exponent: float | None = None) -> float:
    """How much more attenuation a link has at ``distance_m`` than at 2 m by the path-loss model
    the simulator and the scorers' defaults share (docs/radio-model.md: n = 2 unless given)."""
    n = RadioModel().exponent if exponent is None else exponent
    return 10.0 * n * float(np.log10(distance_m / CLOSE_M))


def distance_decisions(name: str, distances: tuple[float, ...] = TC4TL_DISTANCES_M) -> dict[str, Scorer] | None:
    """The scorer ``name`` with its default thresholds moved to decide "within D" for each D
    (None for a scorer whose thresholds are not known here).  Integer settings (GAEN's
    thresholds are whole dB in the API) are moved by the shift rounded to whole dB."""
    settings = DISTANCE_SETTINGS.get(name)
    if settings is None:
        return None
    base = get_scorer(name)
    config = getattr(base, "config")
    out: dict[str, Scorer] = {}
    for d in distances:
        shift = distance_shift_db(d)
        moved = {}
        for key in settings:
            value = getattr(config, key)
            moved[key] = value + int(round(shift)) if isinstance(value, int) else value + shift
        out[f"{d:.1f}"] = get_scorer(name, overrides=moved)
    return out


@dataclass(frozen=True)
class BeaconPower:
    """The TX power, on GAEN's scale, of a dataset's transmitters whose app (not GAEN) set the
    power and whose model the table gives none for; and how it was found."""

    tx_power_dbm: float
    source: str


#: MIT LL's beacons are iPhones running the BlueProx app at its own (high) power.  Google's table
#: has no TX power for iPhones (they are its reference) and Apple publishes none, so it was measured
#: as ``bluezone calibrate`` measures an adapter: TX = A(d) + median RSSI heard at d (A(d) = 50 dB +
#: 20·log10(d / 1 m), an iPhone receiver's correction 0), on the one folder with both phones in
#: hand, HandDOWN_HandDOWN: -3.4, -2.8, -3.3, +1.3 dBm at 1.52, 1.83, 3.05, 3.66 m, median -3 dBm.
#: The other 12 folders took no part (docs/calibration.md reports them apart).  It sits 11 dB under
#: the TX Power Level those adverts carry (+8 dBm), as Google's table puts Android phones at low
#: power 10-15 dB under their radios' nominal -15 dBm (Pixel 4: -28 dBm).
BEACON_TX_POWER: dict[str, BeaconPower] = {
    "mitll_pact": BeaconPower(-3.0, "BlueProx app on iPhones, calibrated on HandDOWN_HandDOWN (bluezone calibrate's formula)"),
}


@dataclass(frozen=True)
class LinkCalibration:
    """The numbers one recording is read with: attenuation = tx_power - (rssi + rssi_correction)."""

    tx_power_dbm: float
    rssi_correction_db: float


def calibrations(
    recordings: list[Recording], table: CalibrationTable | None, nominal_tx: int, beacon: BeaconPower | None = None
) -> tuple[dict[str, LinkCalibration], dict[str, Any]]:
    """Per recording id and setup, the link calibration; and a report of every phone's numbers.

    A transmitter the table gives no TX power for (an iPhone, or a phone it does not know) is read
    at ``beacon``'s power when the dataset has one, else at the nominal value (listed under
    ``nominal``); a receiver it does not know gets 0 dB (also listed).
    """
    links: dict[str, LinkCalibration] = {}
    phones: dict[str, dict[str, Any]] = {}
    nominal: set[str] = set()

    def phone(model: str) -> dict[str, Any]:
        if model not in phones:
            found = table.lookup(model) if (table is not None and model) else None
            phones[model] = (
                found.as_dict()
                if found is not None
                else {"model": model, "rssi_correction_db": None, "tx_power_dbm": None, "source": "unknown"}
            )
        return phones[model]

    for r in recordings:
        rx, tx = phone(r.receiver), phone(r.transmitter)
        correction = rx["rssi_correction_db"]
        power = tx["tx_power_dbm"]
        if correction is None:
            nominal.add(f"{r.receiver or '(unnamed)'} RSSI correction")
        if power is None and beacon is None:
            nominal.add(f"{r.transmitter or '(unnamed)'} TX power")
        fallback = nominal_tx if beacon is None else beacon.tx_power_dbm
        links[_link_key(r)] = LinkCalibration(
            float(fallback if power is None else power), float(0 if correction is None else correction)
        )
    summary = {
        "table": table.name if table is not None else None,
        "phones": {k or "(unnamed)": v for k, v in sorted(phones.items())},
        "nominal": sorted(nominal),
        "beacon_tx_power": None if beacon is None else {"dbm": beacon.tx_power_dbm, "source": beacon.source},
    }
    return links, summary


def _link_key(r: Recording) -> str:
    return f"{r.rid}|{r.setup}|{r.distance_m}"


@dataclass(frozen=True)
class Minute:
    """One minute of a recording: its attenuations, distance and setup, and the receiver's other
    links heard in that minute (their link-minute values, as ``receiver_context`` makes them)."""

    rid: str
    setup: str
    distance_m: float
    times: np.ndarray  # seconds from the minute's start
    attenuation: np.ndarray
    others: np.ndarray = field(default_factory=lambda: np.empty(0))  # dB, one per bystander heard in the minute


def bystander_minutes(recording: Recording, slot: np.ndarray, rssi_correction: float) -> dict[int, np.ndarray]:
    """Per slot (minutes from the recording's first advert), the link-minute values of the
    bystanders heard in it: what a bluezone receiver's context holds of them (a 10th percentile
    of each device's minute, at least 2 adverts), at the nominal TX power, since theirs is unknown."""
    b = recording.bystanders
    if len(b) == 0 or len(recording.times) == 0:
        return {}
    sightings = np.zeros(len(b), SIGHTING_DTYPE)
    sightings["time"] = b["time"] - recording.times[0]
    ids = np.zeros((len(b), 2), "<u8")
    ids[:, 0] = b["link"]
    sightings["rpi"] = ids.view("V16").reshape(-1)
    sightings["rssi"] = b["rssi"]
    context = receiver_context(sightings[sightings["time"] >= 0], nominal_tx_power=DEFAULT_TX_POWER)
    if context.value_slot is None or len(context.values) == 0:
        return {}
    wanted = set(np.unique(slot).tolist())
    return {
        int(s): context.values[context.value_slot == s] - rssi_correction  # percentiles move with the correction
        for s in np.unique(context.value_slot)
        if int(s) in wanted
    }


def bystander_context(minutes: list[Minute]) -> ReceiverContext | None:
    """The receiver context of consecutive ``minutes`` (minute i in slot i, day 0), None without bystanders."""
    if not any(len(m.others) for m in minutes):
        return None
    values = np.concatenate([m.others for m in minutes])
    slots = np.concatenate([np.full(len(m.others), i, np.int64) for i, m in enumerate(minutes)])
    return ReceiverContext(values, np.zeros(len(values), np.int64), np.empty(0, np.int64), value_slot=slots)


def judged(scorer: Scorer, minutes: list[Minute]) -> Scorer:
    """``scorer`` told about the receiver's other links in ``minutes`` (itself when there are none)."""
    context = bystander_context(minutes)
    return scorer if context is None else for_receiver(scorer, context)


def judged_attenuation(scorer: Scorer, window: ExposureWindow, typical: float) -> float:
    """The attenuation a scorer judged the window by: for bluezone with a receiver context, the
    median smoothed per-minute attenuation after the same-minute correction (``Score`` shows it
    before), else ``typical``."""
    if not isinstance(scorer, BluezoneScorer) or scorer.receiver is None:
        return typical
    slots, value, _ = minute_attenuation(window.times, window.attenuation, scorer.config)
    if len(value) == 0:
        return typical
    return float(np.median(scorer.smoothed(slots, value - scorer.minute_shift(window, slots))))


def minutes_of(recordings: list[Recording], tx_power: int, links: dict[str, LinkCalibration] | None = None) -> list[Minute]:
    """Cut every recording into one-minute windows (a last part under 30 s is dropped).

    Attenuation is ``tx_power - rssi``, or with ``links`` each recording's calibrated reading;
    each minute carries its bystanders' link-minutes (``Recording.bystanders``, when read).
    """
    out = []
    for r in recordings:
        link = (links or {}).get(_link_key(r), LinkCalibration(float(tx_power), 0.0))
        if len(r.times) == 0:
            continue
        t = r.times - r.times[0]
        slot = np.floor(t / 60.0).astype(np.int64)
        heard = bystander_minutes(r, slot, link.rssi_correction_db)
        for s in np.unique(slot):
            m = slot == s
            if t[m].max() - t[m].min() < MIN_WINDOW_S and s == slot.max() and s > 0:
                continue
            attenuation = link.tx_power_dbm - (r.rssi[m] + link.rssi_correction_db)
            others = heard.get(int(s), np.empty(0))
            out.append(Minute(r.rid, r.setup, r.distance_m, t[m] - s * 60.0, attenuation, others))
    return out


def minutes_window(times: np.ndarray, attenuation: np.ndarray) -> ExposureWindow:
    """A recording's minutes as the matcher's ExposureWindow, so any scorer judges them (the
    research scripts use it too)."""
    att = np.round(attenuation).astype(np.int32)
    return ExposureWindow(
        key_index=0, day=0, times=times, rssi=NOMINAL_TX_POWER - att, attenuation=att, tx_power_estimated=False
    )


def chain(minutes: list[Minute], closes: int, total: int, rng: np.random.Generator) -> list[Minute] | None:
    """``total`` consecutive minutes of one setup: ``closes`` under 2 m, in one block."""
    near = [m for m in minutes if m.distance_m < CLOSE_M]
    far = [m for m in minutes if m.distance_m >= CLOSE_M]
    if (closes and not near) or (total - closes and not far):
        return None
    before = int(rng.integers(0, total - closes + 1))
    picks = (
        [far[i] for i in rng.integers(0, len(far), before)] if before else []
    ) + ([near[i] for i in rng.integers(0, len(near), closes)] if closes else [])
    rest = total - closes - before
    picks += [far[i] for i in rng.integers(0, len(far), rest)] if rest else []
    return picks


def window_of(picks: list[Minute]) -> ExposureWindow:
    """The exposure window of consecutive minutes (minute i from 60·i s on)."""
    times = np.concatenate([m.times + 60.0 * i for i, m in enumerate(picks)])
    return minutes_window(times, np.concatenate([m.attenuation for m in picks]))


def _chains(minutes: list[Minute], count: int, rng: np.random.Generator) -> list[tuple[list[Minute], int]]:
    setups: dict[str, list[Minute]] = {}
    for m in minutes:
        setups.setdefault(m.setup, []).append(m)
    names = sorted(setups)
    out = []
    for i in range(count):
        ms = setups[names[i % len(names)]]
        has_near = any(m.distance_m < CLOSE_M for m in ms)
        has_far = any(m.distance_m >= CLOSE_M for m in ms)
        lo = CHAIN_MINUTES if not has_far else 0
        hi = 0 if not has_near else CHAIN_MINUTES
        k = int(rng.integers(lo, hi + 1)) if hi >= lo else 0
        picks = chain(ms, k, CHAIN_MINUTES, rng)
        if picks is not None:
            out.append((picks, k))
    return out


def verdict_minutes(score: Score) -> float:
    """The minutes a scorer's verdict counts: bluezone's minutes at or under its threshold (its
    weighted minutes only rank: a chain's expected near minutes), GAEN's weighted minutes."""
    return score.minutes_by_bucket.get("within_2m", score.weighted_minutes)


def verdict_share(score: Score) -> float:
    """``verdict_minutes`` as a share of the minutes the window was credited (0 when none): a
    one-minute window is detected when at least half of it is.  Crediting the time present, a
    minute heard for 40 s is credited 0.67 minutes; judged near all along it is as near as a full one
    (with whole slots its minutes were 1, and this the verdict's minutes, as before).  To two decimals:
    a score's minutes are rounded to three, and 0.417 of 0.833 must not read as under a half."""
    return round(verdict_minutes(score) / score.minutes, 2) if score.minutes > 0 else 0.0


def _window_metrics(
    truth: np.ndarray,
    score: np.ndarray,
    rank: np.ndarray,
    distances: np.ndarray,
    at_distance: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Per-minute metrics: ROC/PR rank minutes by the scorer's typical attenuation (lower is
    closer: weighted minutes of a single minute saturate at 0 or 1 and would hide the ranking);
    detection is the verdict's share of the minutes (``verdict_share``) >= 0.5, and nDCF scores it at each
    TC4TL distance and against "closer than 2 m", the question the default decisions answer
    (``ndcf_close``); with ``at_distance`` (the verdict's minutes of the decision made for each
    distance) also those."""
    detected = score >= 0.5
    c = confusion(truth, detected)
    out = {
        "roc_auc": rounded(roc_auc(truth, rank)),
        "pr_auc": rounded(average_precision(truth, rank)),
        "window_precision": rounded(c.precision),
        "window_recall": rounded(c.recall),
        "ndcf": {f"{d:.1f}": ndcf_at_distance(distances <= d + TC4TL_SLACK_M, detected, rank) for d in TC4TL_DISTANCES_M},
        # the same decision against the question it answers, "closer than 2 m" (``close_m``)
        "ndcf_close": ndcf_at_distance(distances < CLOSE_M, detected, rank),
    }
    if at_distance is not None:
        out["ndcf_per_distance"] = {
            key: ndcf_at_distance(distances <= float(key) + TC4TL_SLACK_M, weights >= 0.5, rank) for key, weights in at_distance.items()
        }
    return out


def ndcf_at_distance(within: np.ndarray, detected: np.ndarray, rank: np.ndarray) -> dict[str, float | None]:
    """NIST TC4TL's normalised detection cost of a fixed decision on a recording's minutes against one
    distance question (``within``: closer than it), P_miss + P_fa (None when a class is empty), with its two
    parts and the ROC-AUC of the ranking at the same distance (``metrics.verdict_ndcf`` is a run's one number)."""
    within, detected = np.asarray(within, bool), np.asarray(detected, bool)
    p_miss = float(np.mean(~detected[within])) if within.any() else None
    p_fa = float(np.mean(detected[~within])) if (~within).any() else None
    cost = None if p_miss is None or p_fa is None else p_miss + p_fa
    return {
        "ndcf": None if cost is None else round(cost, 4),
        "p_miss": None if p_miss is None else round(p_miss, 4),
        "p_fa": None if p_fa is None else round(p_fa, 4),
        "roc_auc": rounded(roc_auc(within, rank)),
    }


def _chain_metrics(scorer: Scorer, chains: list[tuple[list[Minute], int]]) -> dict[str, Any]:
    truth = np.array([k >= CLOSE_MINUTES for _, k in chains])
    scores = [judged(scorer, picks).score(window_of(picks)) for picks, _ in chains]
    predicted = np.array([s.close_contact for s in scores])
    est = np.array([s.weighted_minutes for s in scores])
    true_min = np.array([k for _, k in chains], float)
    c = confusion(truth, predicted)
    return {
        **c.as_dict(),
        "minutes_mae": round(float(np.mean(np.abs(est - true_min))), 3) if len(chains) else None,
    }


def evaluate(
    root: str | Path,
    *,
    seed: int = 0,
    chains: int = 400,
    bootstrap: int = 100,
    tx_power: int | None = None,
    scorers: list[str] | None = None,
    progress: Progress | None = None,
    calibration: CalibrationTable | None | bool = True,
    rssi_shift_db: float = 0.0,
    bystanders: bool = True,
) -> dict[str, Any]:
    """The evaluation report of one dataset directory, as a JSON-ready dict.

    ``calibration``: True reads each phone with the shipped calibration table, a table reads
    with that one, False or None reads every phone at the nominal ``tx_power`` and 0 dB.
    ``tx_power`` is the TX power of transmitters the table gives none for; None: the dataset's
    measured beacon power (``BEACON_TX_POWER``) when calibrating, else ``NOMINAL_TX_POWER``.
    ``rssi_shift_db`` is added to every RSSI: what the verdicts would be if every phone's
    calibration were off by that much (docs/calibration.md).
    ``bystanders``: the other devices each receiver heard (PACT logs) are its other links, the
    context a bluezone receiver judges each minute against (``bluezone.matching.receiver``); they
    are read at the nominal TX power (theirs is unknown) and never scored.  False: each recording
    is a receiver alone with its one link, as before.
    """
    say = progress or (lambda stage, fraction: None)
    say("reading the recordings", 0.0)
    dataset = load_dataset(root, bystanders=bystanders)
    table = default_table() if calibration is True else (calibration or None)
    beacon = BEACON_TX_POWER.get(dataset.layout) if (table is not None and tx_power is None) else None
    tx_power = NOMINAL_TX_POWER if tx_power is None else tx_power
    links, calibration_report = calibrations(dataset.recordings, table, tx_power, beacon)
    if rssi_shift_db:
        links = {k: LinkCalibration(v.tx_power_dbm, v.rssi_correction_db + rssi_shift_db) for k, v in links.items()}
    minutes = minutes_of(dataset.recordings, tx_power, links)
    names = scorers or scorer_names()
    judges = {n: get_scorer(n) for n in names}
    rng = np.random.default_rng(seed)
    truth = np.array([m.distance_m < CLOSE_M for m in minutes])
    distances = np.array([m.distance_m for m in minutes])
    say("reading the recordings", 1.0)
    window_scores, window_rank = {}, {}
    per_distance: dict[str, dict[str, np.ndarray] | None] = {}
    windows = [minutes_window(m.times, m.attenuation) for m in minutes]
    for done, (n, j) in enumerate(judges.items()):
        say("scoring one-minute windows", done / len(judges))
        bound = [judged(j, [m]) for m in minutes]
        scored = [b.score(w) for b, w in zip(bound, windows)]
        window_scores[n] = np.array([verdict_share(s) for s in scored])
        window_rank[n] = -np.array([judged_attenuation(b, w, s.typical_attenuation) for b, w, s in zip(bound, windows, scored)])
        deciders = distance_decisions(n)
        per_distance[n] = (
            None
            if deciders is None
            else {
                key: np.array([verdict_share(judged(d, [m]).score(w)) for m, w in zip(minutes, windows)])
                for key, d in deciders.items()
            }
        )
    say("scoring one-minute windows", 1.0)
    chain_set = _chains(minutes, chains, rng)
    rids = sorted({m.rid for m in minutes})
    by_rid = {r: [i for i, m in enumerate(minutes) if m.rid == r] for r in rids}
    report: dict[str, Any] = {
        "dataset": str(root),
        "layout": dataset.layout,
        "recordings": len(rids),
        "problems": dataset.problems,
        "close_m": CLOSE_M,  # strictly closer counts as close: recordings at exactly 2.0 m are "not close"
        "minutes": len(minutes),
        "minutes_under_2m": int(truth.sum()),
        "chains": len(chain_set),
        "chain_minutes": CHAIN_MINUTES,
        "nominal_tx_power_dbm": tx_power,
        "calibration": calibration_report,
        "rssi_shift_db": rssi_shift_db,
        "bystanders": {
            "read": bystanders,
            "minutes_with_2_or_more": sum(len(m.others) >= 2 for m in minutes),
            "tx_power_dbm": DEFAULT_TX_POWER,
        },
        "seed": seed,
        "scorers": {},
    }
    strata: dict[tuple[str, bool, bool], list[int]] = {}
    for i, r in enumerate(rids):
        parts = [minutes[j] for j in by_rid[r]]
        near = any(m.distance_m < CLOSE_M for m in parts)
        strata.setdefault((parts[0].setup, near, not near or any(m.distance_m >= CLOSE_M for m in parts)), []).append(i)
    ndcf_keys = [f"ndcf_{d:.1f}" for d in TC4TL_DISTANCES_M] + ["ndcf_close"]
    ndcf_keys += [f"ndcf_per_distance_{d:.1f}" for d in TC4TL_DISTANCES_M]
    boot: dict[str, dict[str, list[float]]] = {
        n: {k: [] for k in ("roc_auc", "pr_auc", "f1", "precision", "recall", *ndcf_keys)} for n in names
    }
    for b in range(bootstrap):
        pick = np.concatenate([rng.choice(members, len(members), replace=True) for members in strata.values()])
        idx = np.concatenate([by_rid[rids[i]] for i in pick])
        sample = [minutes[i] for i in idx]
        small = _chains(sample, max(chains // 4, 20), rng)
        for n, j in judges.items():
            sub = per_distance[n]
            w = _window_metrics(
                truth[idx], window_scores[n][idx], window_rank[n][idx], distances[idx],
                None if sub is None else {k: v[idx] for k, v in sub.items()},
            )
            cm = _chain_metrics(j, small)
            for k in ("roc_auc", "pr_auc"):
                if w[k] is not None:
                    boot[n][k].append(w[k])
            for prefix in ("ndcf", "ndcf_per_distance"):
                for d, v in w.get(prefix, {}).items():
                    if v["ndcf"] is not None:
                        boot[n][f"{prefix}_{d}"].append(v["ndcf"])
            if w["ndcf_close"]["ndcf"] is not None:
                boot[n]["ndcf_close"].append(w["ndcf_close"]["ndcf"])
            for k in ("f1", "precision", "recall"):
                if cm[k] is not None:
                    boot[n][k].append(cm[k])
        say("bootstrap", (b + 1) / max(bootstrap, 1))
    for n, j in judges.items():
        entry = _window_metrics(truth, window_scores[n], window_rank[n], distances, per_distance[n])
        if per_distance[n] is not None:
            for key, v in entry["ndcf_per_distance"].items():
                v["threshold_shift_db"] = round(distance_shift_db(float(key)), 2)
        entry.update(_chain_metrics(j, chain_set))
        entry["detection_by_distance"] = {
            f"{d:.2f}": round(float(np.mean(window_scores[n][distances == d] >= 0.5)), 4) for d in np.unique(distances)
        }
        entry["ci95"] = {
            k: [round(float(np.percentile(v, 2.5)), 4), round(float(np.percentile(v, 97.5)), 4)] for k, v in boot[n].items() if v
        }
        report["scorers"][n] = entry
    return report


def table(report: dict[str, Any]) -> str:
    """The evaluation report as the text ``bluezone evaluate`` prints."""
    chained = f"chained {report['chain_minutes']}-minute exposures"
    lines = [
        f"dataset {report['dataset']} ({report['layout']}): {report['recordings']} recordings, {report['minutes']} "
        f"one-minute windows ({report['minutes_under_2m']} under 2 m), {report['chains']} chained {report['chain_minutes']}-minute exposures",
        *(f"skipped: {p}" for p in report.get("problems", [])),
        _calibration_line(report),
        _bystander_line(report),
        # the header alone did not say which figures judge one-minute windows and which the chained exposures
        f"{'':<10}{'1-minute windows':>16} | {chained}",
        f"{'scorer':<10}{'ROC-AUC':>9}{'PR-AUC':>8}{'precision':>11}{'recall':>8}{'F1':>7}   F1 95% CI",
    ]
    for n, s in report["scorers"].items():
        ci = s["ci95"].get("f1", [None, None])  # none with --bootstrap 0
        lines.append(
            f"{n:<10}{fmt(s['roc_auc']):>9}{fmt(s['pr_auc']):>8}{fmt(s['precision']):>11}{fmt(s['recall']):>8}{fmt(s['f1']):>7}   [{fmt(ci[0])}, {fmt(ci[1])}]"
        )
        rates = "  ".join(f"{d} m: {v:.2f}" for d, v in s["detection_by_distance"].items())
        lines.append(f"{'':<10}one-minute windows flagged, per distance: {rates}")
        costs = "  ".join(
            f"{d} m: {fmt(v['ndcf'])} (ROC-AUC {fmt(v['roc_auc'])})" for d, v in s.get("ndcf", {}).items()
        )
        close = s.get("ndcf_close") or {}
        if close:
            costs += f"; closer than {report['close_m']:g} m (the decision's own question): {fmt(close['ndcf'])}"
        lines.append(f"{'':<10}nDCF = P_miss + P_fa at TC4TL distances: {costs}")
        if s.get("ndcf_per_distance"):
            own = "  ".join(
                f"{d} m: {fmt(v['ndcf'])} ({v['threshold_shift_db']:+.1f} dB)" for d, v in s["ndcf_per_distance"].items()
            )
            lines.append(f"{'':<10}nDCF, a decision for each distance (thresholds moved by the path-loss model): {own}")
    # a dataset's own names (phones, files, folders) as printable text: an escape sequence in one went to the terminal
    return "\n".join(printable_line(line) for line in lines)


def _bystander_line(report: dict[str, Any]) -> str:
    b = report.get("bystanders") or {}
    if not b.get("read"):
        return "receiver context: none (each recording is its receiver's only link)"
    return (
        f"receiver context: other devices heard, at {b['tx_power_dbm']} dBm (their TX power is unknown), "
        f"2 or more in {b['minutes_with_2_or_more']} of {report['minutes']} minutes"
    )


def _calibration_line(report: dict[str, Any]) -> str:
    cal = report.get("calibration") or {}
    if not cal.get("table"):
        return f"calibration: none (every phone at {report['nominal_tx_power_dbm']} dBm TX power, 0 dB RSSI correction)"
    known = [
        f"{m} ({p['source']}: {p['rssi_correction_db']:+d} dB, TX {p['tx_power_dbm'] if p['tx_power_dbm'] is not None else '?'})"
        for m, p in cal["phones"].items()
        if p["source"] != "unknown"
    ]
    text = f"calibration: {cal['table']}: " + (", ".join(known) if known else "no phone of this dataset is in the table")
    if cal.get("beacon_tx_power"):
        text += f"; transmitters without a TX power in it at {cal['beacon_tx_power']['dbm']:g} dBm ({cal['beacon_tx_power']['source']})"
    if cal.get("nominal"):
        text += f"; nominal ({report['nominal_tx_power_dbm']} dBm, 0 dB) for: " + ", ".join(cal["nominal"])
    return text
