"""bluezone's own scorer: what a continuously scanning daemon can do that a phone cannot.

A phone under GAEN scans a few seconds every few minutes and averages a handful of
attenuations per scan.  A Linux daemon hears dozens of adverts per minute from each
neighbour, so per minute it can take a robust *low percentile* of attenuation (the
strongest packets: fading, a passing body or an unlucky antenna angle only ever add loss,
so the least-attenuated packets track distance best), smooth that per link with a rolling
median over several minutes (the slow shadowing lasts tens of seconds, a contact lasts
tens of minutes), skip minutes with too few packets to judge, and bridge short gaps where
scanning or the channel dropped out.  A minute counts as "within about 2 m" when its
smoothed attenuation is at most ``threshold_db`` (or with a logistic weight of width
``soft_width_db`` > 0); the counted minutes estimate the minutes within 2 m, and 15 or more
make a close contact.

Receiver self-calibration (``for_receiver``): a phone in a bag hears *every* neighbour weaker.
Each minute is judged against the receiver's *other* links heard in that same minute
(``ReceiverContext.minute_reference``, their 25th percentile): ``minute_reference_weight`` times
how far that reference sits from ``minute_reference_db`` (clipped) is taken off the minute's
attenuation.  Everyone heard in one minute shares the receiver's carriage and the room's level at
that moment, so this cancels part of both, minute by minute.  A minute with fewer than two other
links gets the day-level shift instead (``calibration_*``: part of how far the day's low end, the
5th percentile of all link-minutes, sits from ``reference_db``).  Without a context (``score`` on
a bare scorer) nothing shifts.
Setting ``minute_reference_weight = 0`` brings back the earlier day-level threshold shift
(``calibration_*``).  The company is whoever the receiver heard, so a nearby transmitter can invent it:
weak made-up RPIs raise the reference and move every minute toward "near" (docs/radio-model.md).
``reference_min_minutes`` counts only links heard in runs of that many minutes (stops RPIs invented a
minute each, not those kept alive); ``minute_reference_near_share`` bounds what any company can move a
minute toward "near"; ``minute_reference_strongest`` keeps the reference no weaker than the minute's k-th
strongest other link, which weaker invented company cannot move (ref17).  All are off by default: they
change honest scores, so fresh seeds decide (none has passed the tuning seeds: docs/simulation.md).
``ranking_reference_strongest`` with ``ranking_reference_slack_db`` (6 and 1 dB, on by default since est20) gives
the ranking alone its own reference, bounded by the minute's k-th strongest other link plus a slack, which binds
only in crowded minutes: it raised the office's and the wedding's ROC-AUC and PR-AUC on fresh seeds 96-103 and
104-111, took no run below GAEN and cannot move a verdict (docs/simulation.md, est20).  0 turns it off.

Two outputs per window: the verdict counts the minutes whose smoothed, corrected attenuation is at
or under ``threshold_db``, credited no more than the time present (``verdict_credit = "span"``; 14.9
make a close contact); ``weighted_minutes``, the ranking, is the
expected number of near minutes under a two-state near/far chain (``near_chain``: each corrected
minute's log-likelihood ratio from a table fitted on simulated tuning seeds, ``chain_*`` settings),
so a contact just over the threshold all day ranks above a far one.  The chain only ranks: as a
verdict it lost F1 (research/llr_estimator.py's "hmm"), as a soft verdict did before it.
``ranking = "ramp"`` brings back the earlier ranking, every minute graded on a linear ramp
+-``ramp_db`` around the threshold.  Minutes are whole slots (``credit``) or the time present; the verdict
may credit its own way (``verdict_credit``) while the ranking keeps ``credit``.

Defaults (10th percentile, 59 dB, 9-minute median, same-minute 25th percentile at weight 0.7
around 65 dB clipped to +-8 dB) come from ``research/estimator_sweep.py``, the chain's (scale 0.25,
switch 0.2, prior 0.05, and its table) from ``research/llr_estimator.py``: the worst margin over
GAEN in F1, ROC-AUC and PR-AUC over every shipped scene on seeds 11-12, checked on seeds 0 and 3-9
held back (docs/simulation.md).  ``[scoring.bluezone]`` in a TOML
file, or ``check --set``, changes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bluezone.config import read_toml_table
from bluezone.errors import ConfigError
from bluezone.matching.matcher import ExposureWindow
from bluezone.matching.near_chain import minute_llr, near_posterior
from bluezone.matching.receiver import MAX_RUN, ReceiverContext, bounded, group_percentile, strongest_of
from bluezone.matching.scoring import (
    MAX_SLOT_SECONDS, MAX_SLOTS, Score, change_points, check_credit, check_ranges, check_setting_types, configured,
    in_slot_order, median, present_share, refuse_unknown_settings, register_scorer, share_between,
)


#: A bridge (empty slots) longer than any window: ``present_share`` then makes the window one run.
WHOLE_WINDOW = 2**40
#: The largest ``ranking_reference_slack_db``: twice the widest shift a clip of 8 dB allows, past which no
#: minute is ever bounded (the setting is then off by another name).
MAX_SLACK_DB = 20.0
VERDICT_CREDITS = ("same", "slots", "present", "ends", "span")


@dataclass(frozen=True)
class BluezoneConfig:
    """The bluezone scorer's settings; the defaults and how they were chosen are in docs/simulation.md."""

    percentile: float = 10.0  # of attenuation within a minute (low = strongest packets)
    threshold_db: float = 59.0  # smoothed per-minute attenuation at about 2 m (nominal receiver)
    soft_width_db: float = 0.0  # logistic width; 0 for a hard threshold (the default: see below)
    min_sightings: int = 2  # per minute, else the minute is not judged
    smooth_slots: int = 9  # rolling median over this many minutes of one link (odd)
    gap_fill_slots: int = 2  # missing minutes between judged ones credited at their neighbours' weight
    # 14.9, not 15: the "span" verdict credits a 15-minute bus ride 14.96-15.00 (docs/simulation.md, seeds 88-95)
    close_contact_minutes: float = 14.9
    slot_seconds: float = 60.0
    # "slots": every judged minute counts whole; "present": the ends of a run of judged minutes count
    # only the part between its first sighting and its last, plus one ``sampling_seconds`` (scoring.py's
    # ``present_share``: whole minutes credited a 13.6-minute ride 15)
    credit: str = "slots"
    # The verdict's own credit ("slots" or "present"; "same": as ``credit``): the minutes within 2 m and
    # the close contact count by it, the ranking (``weighted_minutes``) keeps ``credit``, so ROC and PR do
    # not move.  Whole slots credit a pair truly near 14.9 minutes 15-16 (clinic 74); the present credit
    # for both ranks worse (the office's PR-AUC) and loses 15-minute bus rides' 16th slot.  "ends": the
    # time present only at the window's outer ends (its first and last judged slot), whole slots inside:
    # "present" also cut every break inside a long contact (office 85: 145 minutes near credited 14.60).
    # "span": whole slots, but never more minutes than the window's time present ("ends" over all its
    # judged minutes): a long contact whose near minutes include its first or last keeps them whole.
    # The default since the sixteenth session (chosen on tuning seeds 11-12, passed fresh seeds 88-95).
    verdict_credit: str = "span"
    sampling_seconds: float = 10.0  # as GaenConfig's: the simulator's scan cycle, above a daemon's and the recordings'
    reference_db: float = 58.0  # receiver reference (see receiver.py) that needs no shift
    calibration_weight: float = 0.7  # share of (reference - reference_db) added to the threshold; 0 = off
    calibration_clip_db: float = 5.0  # bound on the shift
    calibration_min_link_minutes: int = 10  # fewer (RPI, minute) groups behind a day's reference: no shift
    # Weighted minutes (the ranking; the verdict still counts the minutes at or under the threshold):
    # "chain": the expected near minutes of the two-state chain (near_chain.py; chosen by
    # research/llr_estimator.py on tuning seeds 11-12, shown on seeds 0, 3-9: docs/simulation.md);
    # "ramp": a minute weighs 1 at ramp_db under the threshold, 0 at ramp_db over it, linearly between.
    ranking: str = "chain"
    chain_scale: float = 0.25  # each minute's log-likelihood ratio is discounted by this (minutes correlate)
    chain_switch: float = 0.2  # chance a minute re-draws near/far from chain_prior
    chain_prior: float = 0.05  # share of near minutes the chain expects
    ramp_db: float = 10.0  # half-width; 0: weighted minutes are the verdict's minutes ("ramp" only)
    # Same-minute reference (receiver.py ``minute_reference``): each minute is judged against the
    # receiver's other links heard in that minute; replaces the day shift above when weight > 0.
    minute_reference_weight: float = 0.7  # share of (reference - minute_reference_db) taken off; 0 = off
    minute_reference_quantile: float = 25.0  # of the other links' attenuations in the minute
    minute_reference_db: float = 65.0  # a minute reference that needs no shift (typical: 62-72 dB)
    minute_reference_clip_db: float = 8.0  # bound on the shift
    minute_reference_min_links: int = 2  # fewer other links in a minute: the day-level shift stands in
    # Both references count a link only in a run of this many consecutive minutes heard (receiver.py
    # ``value_run``): RPIs invented a minute each by a nearby transmitter then move neither (ref16).
    reference_min_minutes: int = 1
    # Share of the clip a minute may move toward "near" (1: as far as toward "far"): what a transmitter
    # inventing weak company can gain at most, whatever it does, is weight x clip x this (ref16).
    minute_reference_near_share: float = 1.0
    # The reference is never weaker than the k-th strongest other link of the minute (0: no bound): however
    # many weaker RPIs a transmitter invents, it cannot move the reference past that link (ref17).  With
    # ``minute_reference_strongest_near_only`` the bound holds only past the near share's own bound, which it
    # replaces: a minute moves toward "near" as far as the share allows, and further only as far as its k-th
    # strongest other link says (up to the clip); every shift toward "far" is the percentile's.
    minute_reference_strongest: int = 0
    minute_reference_strongest_near_only: bool = False
    # The ranking's own reference (0: the verdict's): a minute's reference for the ranking is never weaker than
    # its k-th strongest other link plus ``ranking_reference_slack_db``, so the bound binds only where that link
    # sits more than the slack under the percentile (a crowded minute) and a sparse minute keeps the verdict's
    # shift to the bit.  The verdict (``close_contact``, the minutes within 2 m) never reads it (est19), nor does
    # ``ranking = "ramp"`` (it ranks the verdict's own minutes).  Chosen on tuning seeds 11-16 (est19), the
    # default since fresh seeds 104-111 passed the rule named before them (est20).
    ranking_reference_strongest: int = 6
    ranking_reference_slack_db: float = 1.0

    def __post_init__(self) -> None:
        check_setting_types(self)
        check_ranges(self, (
            ("percentile", 0 <= self.percentile <= 100, "0-100"),
            ("soft_width_db", self.soft_width_db >= 0, ">= 0"),
            ("min_sightings", self.min_sightings >= 1, ">= 1"),
            ("smooth_slots", 1 <= self.smooth_slots <= MAX_SLOTS, f"1-{MAX_SLOTS}"),
            ("gap_fill_slots", 0 <= self.gap_fill_slots <= MAX_SLOTS, f"0-{MAX_SLOTS}"),
            ("close_contact_minutes", self.close_contact_minutes > 0, "> 0"),
            ("slot_seconds", 1 <= self.slot_seconds <= MAX_SLOT_SECONDS, f"1-{MAX_SLOT_SECONDS:g}"),
            ("calibration_weight", 0 <= self.calibration_weight <= 1, "0-1"),
            ("calibration_clip_db", self.calibration_clip_db >= 0, ">= 0"),
            ("calibration_min_link_minutes", self.calibration_min_link_minutes >= 1, ">= 1"),
        ))
        check_credit(self.credit, self.sampling_seconds, self.slot_seconds)
        if self.verdict_credit not in VERDICT_CREDITS:
            raise ConfigError(f"verdict_credit must be one of {', '.join(VERDICT_CREDITS)}, got {self.verdict_credit!r}")
        check_ranges(self, [("ramp_db", self.ramp_db >= 0, ">= 0")])
        if self.ranking not in ("chain", "ramp"):
            raise ConfigError(f"ranking must be 'chain' or 'ramp', got {self.ranking!r}")
        # a switch or prior closer to 0 or 1 lets a long link's evidence underflow the chain to 0/0 (nan)
        check_ranges(self, (
            ("chain_scale", self.chain_scale > 0, "> 0"),
            ("chain_switch", 1e-6 <= self.chain_switch <= 1, "1e-6 to 1"),
            ("chain_prior", 1e-6 <= self.chain_prior <= 1 - 1e-6, "1e-6 to 1 - 1e-6"),
            ("minute_reference_weight", 0 <= self.minute_reference_weight <= 1, "0-1"),
            ("minute_reference_quantile", 0 <= self.minute_reference_quantile <= 100, "0-100"),
            ("minute_reference_clip_db", self.minute_reference_clip_db >= 0, ">= 0"),
            ("minute_reference_min_links", self.minute_reference_min_links >= 1, ">= 1"),
            ("reference_min_minutes", 1 <= self.reference_min_minutes <= MAX_RUN, f"1-{MAX_RUN}"),
            ("minute_reference_near_share", 0 <= self.minute_reference_near_share <= 1, "0-1"),
            ("minute_reference_strongest", self.minute_reference_strongest >= 0, ">= 0"),
        ))
        if self.minute_reference_strongest_near_only and self.minute_reference_strongest == 0:
            raise ConfigError("minute_reference_strongest_near_only needs minute_reference_strongest >= 1 (which link bounds it)")
        check_ranges(self, (
            ("ranking_reference_strongest", self.ranking_reference_strongest >= 0, ">= 0"),
            ("ranking_reference_slack_db", 0 <= self.ranking_reference_slack_db <= MAX_SLACK_DB, f"0-{MAX_SLACK_DB:g}"),
        ))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> BluezoneConfig:
        refuse_unknown_settings(cls, data, "bluezone")
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ConfigError(f"bad bluezone scorer settings: {exc}") from None

    @classmethod
    def from_toml(cls, path: str | Path, table: str = "scoring.bluezone") -> BluezoneConfig:
        return cls.from_mapping(read_toml_table(path, table, "scorer config"))


def minute_attenuation(
    times: np.ndarray, attenuation: np.ndarray, config: BluezoneConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slot numbers, robust attenuation per slot, sightings per slot) for slots with enough packets."""
    slots = np.floor(np.asarray(times, np.float64) / config.slot_seconds).astype(np.int64)
    slots, att = by_slot_and_value(slots, np.asarray(attenuation))
    # slots are in order now: each occupied one starts where they change (np.unique would sort again)
    first = change_points(slots) if len(slots) else np.empty(0, np.intp)
    occupied, counts = slots[first], np.diff(np.append(first, len(slots)))
    value = group_percentile(att, first, counts, config.percentile)
    keep = counts >= config.min_sightings
    return occupied[keep], value[keep], counts[keep]


#: Sightings from which a window's (slot, attenuation) pairs are sorted as one key: below, ``np.lexsort``
#: is as fast or faster (numpy's cost per call; its merge sort runs through a slot already in order).
KEYED_SORT_MIN = 1024


def by_slot_and_value(slots: np.ndarray, attenuation: np.ndarray, least: int = KEYED_SORT_MIN) -> tuple[np.ndarray, np.ndarray]:
    """(slots, attenuations as float64) sorted by slot, then attenuation.  A window's attenuations are
    whole dB (the matcher's int32), so from ``least`` sightings on both go into one integer key and one
    sort of it does what ``np.lexsort``'s two passes did (the 19,000 sightings of ``bluezone evaluate``'s
    20-minute chains: 12 bits, a radix sort): the same numbers, since equal pairs are equal whatever their
    order."""
    if attenuation.dtype.kind in "iu" and attenuation.dtype.itemsize <= 4 and len(slots) >= max(least, 2):
        low, high = int(attenuation.min()), int(attenuation.max())
        first, last = int(slots.min()), int(slots.max())
        bits = (high - low).bit_length()
        largest = ((last - first) << bits) | ((1 << bits) - 1)
        if largest < 2**63:  # the key cannot overflow
            key = (slots - first) << bits
            key |= attenuation.astype(np.int64) - low
            key = key.astype(np.min_scalar_type(largest))  # 16 bits or fewer: numpy's stable sort is a radix sort
            key.sort(kind="stable")
            mask = (1 << bits) - 1
            return (key >> bits).astype(np.int64) + first, ((key & mask).astype(np.int64) + low).astype(np.float64)
    att = attenuation.astype(np.float64)
    order = np.lexsort((att, slots))
    return slots[order], att[order]


def rolling_median(values: np.ndarray, width: int) -> np.ndarray:
    """Median over a centred window of ``width`` (edges use what exists)."""
    if width <= 1 or len(values) < 2:
        return values
    return rolling_medians(values, np.empty(0, np.intp), width)


def rolling_medians(values: np.ndarray, breaks: np.ndarray, width: int) -> np.ndarray:
    """``rolling_median`` of each run of ``values`` (along the last axis: several series of one
    window's slots at once) that starts at 0 or at one of ``breaks`` (increasing positions), all runs
    in one gather and one median: a window holds a few short runs, and numpy's cost per call, not the
    arithmetic, was a run's time.  A window at a run's edge repeats its end value, as ``np.pad``'s
    "edge" did; a run of one value is handed back as it is, as ``rolling_median`` does."""
    n = values.shape[-1]
    if width <= 1 or n == 0:
        return values.copy()
    half = width // 2
    bounds = np.concatenate(([0], breaks, [n]))
    lengths = np.diff(bounds)
    rows = np.arange(n)[:, None] + np.arange(-half, half + 1)
    np.clip(rows, np.repeat(bounds[:-1], lengths)[:, None], np.repeat(bounds[1:] - 1, lengths)[:, None], out=rows)
    out = median(values[..., rows], axis=-1)
    alone = bounds[:-1][lengths == 1]
    out[..., alone] = values[..., alone]  # the median's 0.0 + value would turn -0.0 into 0.0
    return out


@dataclass
class BluezoneScorer:
    """Robust per-minute attenuation, smoothed per link, soft-thresholded at about 2 m."""

    config: BluezoneConfig = field(default_factory=BluezoneConfig)
    name: str = "bluezone"
    receiver: ReceiverContext | None = None  # set by for_receiver; None: no self-calibration

    def for_receiver(self, context: ReceiverContext) -> BluezoneScorer:
        """This scorer calibrated for one receiver (see the module docstring)."""
        return replace(self, receiver=context)

    def threshold_for(self, day: int, exclude: np.ndarray | None = None) -> float:
        """The per-minute threshold on ``day``: ``threshold_db`` shifted by the receiver's reference
        (without the sightings ``exclude``: the judged link's own, see receiver.py)."""
        if self.config.minute_reference_weight > 0:
            return self.config.threshold_db  # the correction is per minute (minute_shift)
        return self.day_threshold(day, exclude)

    def day_threshold(self, day: int, exclude: np.ndarray | None = None) -> float:
        """``threshold_db`` moved by part of the day's reference (the earlier default, and the
        stand-in for minutes with too few other links)."""
        c = self.config
        if self.receiver is None or c.calibration_weight == 0:
            return c.threshold_db
        ref = self.receiver.reference(day, c.calibration_min_link_minutes, exclude, c.reference_min_minutes)
        if ref is None:
            return c.threshold_db
        shift = float(np.clip(ref - c.reference_db, -c.calibration_clip_db, c.calibration_clip_db))
        return c.threshold_db + c.calibration_weight * shift

    def minute_shift(self, window: ExposureWindow, slots: np.ndarray) -> np.ndarray:
        """dB taken off each judged minute's attenuation for the verdict (``minute_shifts``' first)."""
        return self.minute_shifts(window, slots)[0]

    def minute_shifts(self, window: ExposureWindow, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dB taken off each judged minute's attenuation, (for the verdict, for the ranking): part of how far
        the receiver's other links in that minute sit from ``minute_reference_db`` (the day-level shift
        stands in for a minute with too few of them; nothing without a receiver).  The ranking's is the
        verdict's array itself unless ``ranking_reference_strongest`` is set and the ranking is the chain
        (``ranking_shift``)."""
        c = self.config
        if self.receiver is None or c.minute_reference_weight == 0 or len(slots) == 0:
            none = np.zeros(len(slots))
            return none, none
        if self.receiver.value_slot is not None and self.receiver.slot_seconds != c.slot_seconds:
            raise ValueError(
                f"receiver context counts {self.receiver.slot_seconds:g}-s slots, the scorer {c.slot_seconds:g}-s ones: "
                "build it with receiver.context_for(scorer, sightings)"
            )
        clip, above, near = c.minute_reference_clip_db, -np.inf, c.minute_reference_clip_db * c.minute_reference_near_share
        if c.minute_reference_strongest and c.minute_reference_strongest_near_only:  # the k-th strongest may pass the share
            above, near = c.minute_reference_db + near, clip
        ranking_k = c.ranking_reference_strongest if c.ranking == "chain" else 0  # the ramp reads no shift of its own
        wanted = strongest_of(c.minute_reference_strongest) + strongest_of(ranking_k)
        levels = self.receiver.minute_levels(slots, c.minute_reference_quantile, window.sighting_index,
                                             c.reference_min_minutes, wanted)
        ref = bounded(levels.reference, levels.kth[0] if c.minute_reference_strongest else None, above)
        count = levels.links
        shift = c.minute_reference_weight * np.clip(ref - c.minute_reference_db, -clip, near)
        sparse = (count < c.minute_reference_min_links) | np.isnan(shift)
        if sparse.any():  # the day-level shift of the threshold, taken off the minute instead
            shift[sparse] = self.day_threshold(window.day, window.sighting_index) - c.threshold_db
        if not ranking_k:
            return shift, shift
        return shift, self.ranking_shift(shift, levels.reference, levels.links, levels.kth[-1])

    def ranking_shift(self, shift: np.ndarray, percentile: np.ndarray, count: np.ndarray, kth: np.ndarray) -> np.ndarray:
        """The ranking's shift: the verdict's ``shift``, except in minutes whose k-th strongest other link
        plus the slack sits nearer than the company's ``percentile`` (a crowded minute: in a sparse one the
        k-th strongest is at or past the percentile), read against that link plus the slack instead: a far
        crowd's percentile would move every link of the minute toward "near", its k nearest do not (the
        office's desk rows, the wedding's tables; docs/simulation.md, est19)."""
        c = self.config
        slack = c.ranking_reference_slack_db
        bound = (count >= c.minute_reference_min_links) & (kth + slack < percentile)
        if not bound.any():
            return shift
        clip = c.minute_reference_clip_db
        ranking = shift.copy()
        ranking[bound] = c.minute_reference_weight * np.clip(kth[bound] + slack - c.minute_reference_db, -clip,
                                                             clip * c.minute_reference_near_share)
        return ranking

    def smoothed(self, slots: np.ndarray, value: np.ndarray) -> np.ndarray:
        """Rolling median over consecutive runs only: a gap longer than the bridge starts a new encounter.
        ``value`` may hold several series (rows) of the same slots."""
        c = self.config
        if value.shape[-1] == 0:
            return value
        return rolling_medians(value, np.flatnonzero(np.diff(slots) > c.gap_fill_slots + 1) + 1, c.smooth_slots)

    def verdict_weight(self, smooth: np.ndarray, threshold: float) -> np.ndarray:
        """How much each minute counts towards the 15 (1 or 0 unless ``soft_width_db``)."""
        c = self.config
        if c.soft_width_db > 0:
            return 1.0 / (1.0 + np.exp((smooth - threshold) / c.soft_width_db))
        return (smooth <= threshold).astype(np.float64)

    def verdict_credit(self) -> str:
        """The credit the verdict counts by: ``verdict_credit``, or ``credit`` when that is "same"."""
        c = self.config
        return c.credit if c.verdict_credit == "same" else c.verdict_credit

    def present(self, window: ExposureWindow, slots: np.ndarray, credit: str) -> np.ndarray:
        """The share of each judged slot to credit: 1 with ``credit = "slots"``, else the part of it
        the link was present (``present_share`` over the judged slots' sightings, bridging as
        ``credited`` does; with "ends" or "span" the window is one run, so only its first and last slot
        are cut: their first and last sightings are all it takes).  With "present", a window in order
        (as the matcher gives them) needs no more either: each run's first and last judged sightings,
        found by ``np.searchsorted``, where ``present_share`` passed over every judged sighting."""
        c = self.config
        if credit == "slots" or len(slots) == 0:
            return np.ones(len(slots))
        times = np.asarray(window.times, np.float64)
        slot_of = np.floor(times / c.slot_seconds).astype(np.int64)
        if credit in ("ends", "span"):  # a slot's times all lie above an earlier slot's (floor is monotonic)
            first, last = times[slot_of == slots[0]].min(), times[slot_of == slots[-1]].max()
            return share_between(slots, first, last, c.slot_seconds, c.sampling_seconds)
        if in_slot_order(times, c.slot_seconds):  # each run's first and last judged sightings are all it takes
            starts = change_points(slots, c.gap_fill_slots + 1)  # as present_share cuts the judged slots' runs
            counts = np.diff(np.append(starts, len(slots)))
            first = times[np.searchsorted(slot_of, slots[starts], "left")]
            last = times[np.searchsorted(slot_of, slots[starts + counts - 1], "right") - 1]
            return share_between(slots, np.repeat(first, counts), np.repeat(last, counts), c.slot_seconds, c.sampling_seconds)
        # the judged slots are sorted and distinct: a sighting is judged where its slot is found
        at = np.minimum(np.searchsorted(slots, slot_of), len(slots) - 1)
        _, share = present_share(times[slots[at] == slot_of], c.slot_seconds, c.gap_fill_slots, c.sampling_seconds)
        return share

    def credited(self, slots: np.ndarray, weight: np.ndarray, share: np.ndarray | None = None) -> float:
        """Minutes: each judged minute at its weight (times its ``share`` of presence), plus short gaps
        at their neighbours' lower weight."""
        c = self.config
        minutes = float((weight if share is None else weight * share).sum())
        if len(slots) > 1:
            gaps = np.diff(slots) - 1
            bridge = (gaps >= 1) & (gaps <= c.gap_fill_slots)
            minutes += float((gaps[bridge] * np.minimum(weight[:-1], weight[1:])[bridge]).sum())
        return minutes * c.slot_seconds / 60.0

    def score(self, window: ExposureWindow) -> Score:
        c = self.config
        threshold = self.threshold_for(window.day, window.sighting_index)  # once: it may scan the day
        slots, value, _ = minute_attenuation(window.times, window.attenuation, c)
        shift, ranking_shift = self.minute_shifts(window, slots)
        shifted = bool(shift.any())
        # as corrected, and as measured (shown to users below): both smoothed in one pass
        smooth, plain = self.smoothed(slots, np.stack([value - shift, value])) if shifted else [self.smoothed(slots, value)] * 2
        share = self.present(window, slots, c.credit)  # the ranking's
        verdict_share = share if self.verdict_credit() == c.credit else self.present(window, slots, self.verdict_credit())
        weight = self.verdict_weight(smooth, threshold)
        span = self.verdict_credit() == "span"  # whole slots, capped below at the time present
        within = self.credited(slots, weight, None if span else verdict_share)
        if c.ranking == "chain":  # for ranking: how many minutes were near, judged on the evidence of each
            near = near_posterior(slots, minute_llr(value - ranking_shift), c.chain_scale, c.chain_switch, c.chain_prior,
                                  c.slot_seconds / 60.0)
            weighted = self.credited(slots, near, share)
        elif c.ramp_db > 0:  # graded: a minute just over the threshold still says something
            ramp = np.clip((threshold + c.ramp_db - smooth) / (2 * c.ramp_db), 0.0, 1.0)
            weighted = self.credited(slots, ramp, share)
        else:  # the verdict's minutes, by the ranking's credit
            weighted = within if verdict_share is share else self.credited(slots, weight, share)
        # the duration as the verdict sees it: judged minutes plus the short gaps it bridges
        total = self.credited(slots, np.ones(len(slots)), verdict_share)
        within = min(within, total) if span else within
        att = np.asarray(window.attenuation)
        judged = float(median(smooth)) if len(smooth) else float(median(att))
        # shown to users as measured: the smoothed per-minute attenuation before any correction
        typical = float(median(plain)) if shifted else judged
        return Score(
            scorer=self.name,
            minutes_by_bucket={"within_2m": round(within, 3), "beyond_2m": round(max(total - within, 0.0), 3)},
            weighted_minutes=round(weighted, 3),
            minutes=round(total, 3),
            closest_attenuation=int(att.min()),
            typical_attenuation=typical,
            distance_band="< 2 m" if judged <= threshold else "> 2 m",
            close_contact=within >= c.close_contact_minutes - 1e-9,
        )


register_scorer("bluezone", configured(BluezoneConfig, BluezoneScorer))
