"""Bluezone v3 F0 lists against stored Bluezone v3 sightings: parse, derive, match, score.

The F0 list is the JSON the app's server published and ``BluezoneIdTrace.checkContactF``
read: ``{"data": [{"daily_key": HEX, "time_start": s, "max": n, "time_end": s}, ...]}``.  For
each entry the app walks slots of 86,400,000 // ``max`` ms from ``time_start`` while a slot
starts at or before ``time_end``, hashing the daily key forward after every ``max`` slots;
slot k's ID is looked for among sightings inside that slot.  Here the walk is the same, but:

- only the days that can hold a stored sighting are derived (``ids_for_keys`` batches the
  SHA-256 chains of every entry that needs a day);
- a sighting matches an ID within ``tolerance`` seconds around its slot (default 2 h, GAEN's
  clock-drift allowance; the app used none: either phone's clock may be off);
- matches become the same :class:`ExposureWindow` the GAEN matcher makes (per entry and UTC
  day), so the same scorers judge them.  The adverts carry no TX power: attenuation uses
  ``DEFAULT_TX_POWER`` (what an Android phone's low advertising power amounts to, as bluezone's
  own daemon assumes) and the window is flagged ``tx_power_estimated``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bluezone.crypto import bluezone3 as bz3
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.errors import KeyFileError
from bluezone.keyformat.keys import json_values
from bluezone.matching.matcher import DEFAULT_TX_POWER, ExposureWindow
from bluezone.progress import Progress
from bluezone.proximity.sightings import BLUEZONE3_SIGHTING_DTYPE, SIGHTING_DTYPE

log = logging.getLogger(__name__)

PROTOCOL = "bluezone3"
#: GAEN's +-2 h clock-drift allowance, in seconds.
TOLERANCE_SECONDS = 7200
#: An entry may span at most this long (the app kept 14 days; a year bounds the work).
MAX_SPAN_SECONDS = 366 * DAY_SECONDS
MAX_LIST_BYTES = 256 * 1024 * 1024
MAX_ENTRIES = 1_000_000
#: Most JSON values a list may hold (``keys.json_values``): MAX_ENTRIES entries of five fields.
MAX_JSON_VALUES = 12 * MAX_ENTRIES
#: IDs derived at once while matching (64 MiB of SHA-256 digests): bounds memory for any F0 list.
CANDIDATE_BUDGET = 1 << 21

#: The stage ``match`` reports its progress under (a chunk of entries at a time).
MATCH_STAGE = "matching the Bluezone v3 F0 list"

#: One F0 list entry, as the app's server published it (times in Unix seconds).
F0_DTYPE = np.dtype([("daily_key", "V32"), ("time_start", "i8"), ("max", "i4"), ("time_end", "i8")])


def _int_field(entry: dict[str, Any], name: str, where: str) -> int:
    value = entry.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise KeyFileError(f"{where}: {name!r} must be an integer, got {json.dumps(value)[:40]}")
    return value


def parse_f0_list(data: bytes) -> np.ndarray:
    """An F0_DTYPE array from the JSON bytes; any defect is a one-line KeyFileError naming the entry."""
    if (values := json_values(data)) > MAX_JSON_VALUES:  # json makes an object of each: count first
        raise KeyFileError(f"the F0 list is too large: too many JSON values (~{values:,}, limit {MAX_JSON_VALUES:,})")
    try:
        doc = json.loads(data)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise KeyFileError(f"not a Bluezone v3 F0 list (invalid JSON: {exc})") from None
    except RecursionError:
        raise KeyFileError("not a Bluezone v3 F0 list (JSON nested too deeply)") from None
    except MemoryError:  # a hostile file can take 20 times its size as Python objects
        raise KeyFileError(f"the F0 list is too large to read in this memory ({len(data):,} bytes)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise KeyFileError('a Bluezone v3 F0 list is a JSON object with a "data" list')
    entries = doc["data"]
    if len(entries) > MAX_ENTRIES:
        raise KeyFileError(f"too many F0 list entries ({len(entries)}, limit {MAX_ENTRIES})")
    out = np.zeros(len(entries), F0_DTYPE)
    for i, entry in enumerate(entries):
        where = f"data[{i}]"
        if not isinstance(entry, dict):
            raise KeyFileError(f"{where}: each entry must be an object")
        key = entry.get("daily_key")
        try:
            raw = bytes.fromhex(key) if isinstance(key, str) else None
        except ValueError:
            raw = None
        if raw is None:
            raise KeyFileError(f"{where}: 'daily_key' must be {bz3.DAILY_KEY_LENGTH * 2} hex digits")
        if len(raw) != bz3.DAILY_KEY_LENGTH:
            raise KeyFileError(f"{where}: 'daily_key' must be {bz3.DAILY_KEY_LENGTH} bytes, got {len(raw)}")
        start, slots, end = (_int_field(entry, n, where) for n in ("time_start", "max", "time_end"))
        if not 2 <= slots <= bz3.MAX_SLOTS_PER_DAY:
            raise KeyFileError(f"{where}: 'max' (slots per day) must be 2-{bz3.MAX_SLOTS_PER_DAY}, got {slots}")
        if not 0 <= start < 2**40:
            raise KeyFileError(f"{where}: 'time_start' must be Unix seconds >= 0, got {start}")
        if not start <= end <= start + MAX_SPAN_SECONDS:
            raise KeyFileError(f"{where}: 'time_end' must lie 0-366 days after 'time_start', got {end - start} s")
        out[i] = (raw, start, slots, end)
    return out


def load_f0_list(path: str | Path) -> np.ndarray:
    """An F0 list from a file; errors are KeyFileError lines starting with the path."""
    from bluezone.readfile import read_regular_file

    path = Path(path)
    data = read_regular_file(path, MAX_LIST_BYTES, "F0 list", KeyFileError)  # no FIFO, device or endless file
    try:
        return parse_f0_list(data)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from None


def sightings_span(entries: np.ndarray, tolerance: float = TOLERANCE_SECONDS) -> tuple[float, float] | None:
    """Unix-seconds range of sightings that can match ``entries``."""
    if len(entries) == 0:
        return None
    return float(entries["time_start"].min() - tolerance), float(entries["time_end"].max() + DAY_SECONDS + tolerance)


def _words(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """12-byte IDs (uint8 (n, 12)) as a uint64 and a uint32 word each."""
    ids = np.ascontiguousarray(ids, np.uint8).reshape(-1, bz3.ID_LENGTH)
    return ids[:, :8].copy().view("<u8").ravel(), ids[:, 8:].copy().view("<u4").ravel()


def candidates(entries: np.ndarray, since: float, until: float, tolerance: float) -> tuple[np.ndarray, ...]:
    """Every ID the entries sent in slots that can meet a sighting in [since, until].

    Returns (entry row, slot start ms, slot end ms, IDs uint8 (m, 12)); the slots follow the
    app's walk (``max`` slots a day from ``time_start``, the last one starting at or before
    ``time_end``).
    """
    keys_out, start_out, end_out, ids_out = [], [], [], []
    for slots in np.unique(entries["max"]).tolist():
        rows = np.flatnonzero(entries["max"] == slots)
        sel = entries[rows]
        step = bz3.DAY_MS // slots
        day_ms = slots * step  # the app's "day": max slots, a few ms short of 24 h if max does not divide it
        start_ms = sel["time_start"] * 1000
        last_slot = (sel["time_end"] * 1000 - start_ms) // step  # slots 0..last_slot are walked
        first_day = np.maximum((int((since - tolerance) * 1000) - start_ms - step) // day_ms, 0)
        last_day = np.minimum((int((until + tolerance) * 1000) - start_ms) // day_ms, last_slot // slots)
        keep = first_day <= last_day
        rows, sel, start_ms, last_slot = rows[keep], sel[keep], start_ms[keep], last_slot[keep]
        first_day, last_day = first_day[keep], last_day[keep]
        if len(rows) == 0:
            continue
        # walk each entry's key chain up to its own first needed day (an entry from a year back: ~350
        # SHA-256s; stepping every entry of the chunk in step with the farthest one cost ~1,400 list
        # items a day), then day by day
        chain = [bz3.daily_key(bytes(k), s) for k, s in zip(sel["daily_key"], first_day.tolist())]
        n_days = (last_day - first_day + 1).astype(np.int64)
        pair_entry: list[np.ndarray] = []
        pair_day: list[np.ndarray] = []
        pair_key: list[bytes] = []
        for d in range(int(n_days.max())):
            live = np.flatnonzero(d < n_days)
            pair_entry.append(live)
            pair_day.append(first_day[live] + d)
            pair_key.extend(chain[i] for i in live.tolist())
            chain = [bz3.next_daily_key(k) if d + 1 < n else k for k, n in zip(chain, n_days.tolist())]
        p_entry, p_day = np.concatenate(pair_entry), np.concatenate(pair_day)
        ids = bz3.ids_for_keys(pair_key, slots)  # (pairs, slots, 12)
        k = p_day[:, None] * slots + np.arange(slots)[None, :]  # slot number from time_start
        s0 = start_ms[p_entry][:, None] + k * step
        walked = k <= last_slot[p_entry][:, None]
        near = (s0 + step >= int((since - tolerance) * 1000)) & (s0 <= int((until + tolerance) * 1000))
        take = walked & near
        keys_out.append(rows[np.broadcast_to(p_entry[:, None], k.shape)[take]])
        start_out.append(s0[take])
        end_out.append(s0[take] + step)
        ids_out.append(ids[take])
    if not keys_out:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, 12), np.uint8)
    return np.concatenate(keys_out), np.concatenate(start_out), np.concatenate(end_out), np.concatenate(ids_out)


def _equal_words(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with a[i] == b[j]; sorts the shorter side and binary-searches the longer."""
    if len(a) > len(b):
        j, i = _equal_words(b, a)
        return i, j
    order = np.argsort(a, kind="stable")
    lo = np.searchsorted(a[order], b, "left")
    counts = np.searchsorted(a[order], b, "right") - lo
    j = np.repeat(np.arange(len(b)), counts)
    i = order[np.repeat(lo, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))]
    return i, j


def match(
    entries: np.ndarray,
    sightings: np.ndarray,
    tolerance: float = TOLERANCE_SECONDS,
    *,
    budget: int = CANDIDATE_BUDGET,
    progress: Progress | None = None,
) -> np.ndarray:
    """(entry row, sighting row) pairs, int64 (n, 2), ordered by entry then time.

    Entries are derived in chunks of about ``budget`` IDs, so memory stays flat for any list (a
    million entries, or ``max`` 1440, derived at once needed gigabytes of SHA-256 digests).  Each chunk
    done is told to ``progress`` (``MATCH_STAGE``, the share of entries done): a long list at ``max`` 1440
    costs about 33 ms an entry, hours for a million.
    """
    none = np.empty((0, 2), np.int64)
    if len(entries) == 0 or len(sightings) == 0:
        return none
    times = sightings["time"]
    since, until = float(times.min()), float(times.max())
    stored = np.ascontiguousarray(sightings["bzid"]).view(np.uint8).reshape(-1, bz3.ID_LENGTH)
    s_hi, s_lo = _words(stored)
    days = int((until - since + 2 * tolerance) // DAY_SECONDS) + 2  # the most days one entry can need
    per_chunk = max(1, budget // (int(entries["max"].max()) * days))
    found = [none]
    for first in range(0, len(entries), per_chunk):
        entry, lo_ms, hi_ms, ids = candidates(entries[first : first + per_chunk], since, until, tolerance)
        if len(entry):
            c_hi, c_lo = _words(ids)
            rows, which = _equal_words(s_hi, c_hi)  # (sighting row, candidate) pairs whose first 8 bytes agree
            t_ms = times[rows] * 1000
            ok = (s_lo[rows] == c_lo[which]) & (t_ms >= lo_ms[which] - tolerance * 1000) & (t_ms <= hi_ms[which] + tolerance * 1000)
            found.append(np.stack([entry[which[ok]] + first, rows[ok]], axis=1))
        if progress is not None:
            progress(MATCH_STAGE, min(first + per_chunk, len(entries)) / len(entries))
    # one sighting can sit in the tolerance of two slots of the same ID only if an ID repeats: keep one
    pairs = np.unique(np.concatenate(found), axis=0)
    return pairs[np.lexsort((times[pairs[:, 1]], pairs[:, 0]))]


def exposure_windows(
    entries: np.ndarray,
    sightings: np.ndarray,
    pairs: np.ndarray,
    *,
    rssi_correction: int = 0,
    tx_power: int = DEFAULT_TX_POWER,
) -> list[ExposureWindow]:
    """Matches grouped per (entry, UTC day), as the GAEN matcher groups them."""
    if len(pairs) == 0:
        return []
    t = sightings["time"][pairs[:, 1]]
    days = (np.floor_divide(t, DAY_SECONDS) * DAY_SECONDS).astype(np.int64)
    order = np.lexsort((t, days, pairs[:, 0]))
    pairs, t, days = pairs[order], t[order], days[order]
    new = np.r_[True, (np.diff(pairs[:, 0]) != 0) | (np.diff(days) != 0)]
    bounds = np.r_[np.flatnonzero(new), len(pairs)]
    m = sightings[pairs[:, 1]]
    has_tx = m["tx_power"] != -128
    tx = np.where(has_tx, m["tx_power"], tx_power).astype(np.int32)
    attenuation = tx - (m["rssi"].astype(np.int32) + rssi_correction)
    out = []
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        out.append(
            ExposureWindow(
                key_index=int(pairs[a, 0]),
                day=int(days[a]),
                times=t[a:b].copy(),
                rssi=m["rssi"][a:b].astype(np.int32),
                attenuation=attenuation[a:b],
                tx_power_estimated=not bool(has_tx[a:b].all()),
                transmission_risk=0,
                report_type=1,  # the app's lists held confirmed cases only
                sighting_index=pairs[a:b, 1].copy(),
            )
        )
    return out


def as_gaen_shaped(sightings: np.ndarray) -> np.ndarray:
    """Bluezone v3 sightings in SIGHTING_DTYPE (ID padded to 16 bytes), for receiver calibration."""
    out = np.zeros(len(sightings), SIGHTING_DTYPE)
    raw = np.zeros((len(sightings), 16), np.uint8)
    raw[:, :12] = np.ascontiguousarray(sightings["bzid"]).view(np.uint8).reshape(-1, 12)
    out["rpi"] = raw.view("V16").ravel()
    out["time"], out["rssi"], out["tx_power"] = sightings["time"], sightings["rssi"], sightings["tx_power"]
    return out


def check_bluezone3(
    entries: np.ndarray,
    sightings: np.ndarray,
    scorer: Any = None,
    *,
    rssi_correction: int = 0,
    calibrate_receiver: bool = True,
    other_sightings: np.ndarray | None = None,
) -> list[Any]:
    """Scored exposures (``Exposure`` with ``protocol="bluezone3"``) of v3 ``sightings`` against an F0 list.

    ``other_sightings`` (this device's GAEN sightings, SIGHTING_DTYPE) join the receiver's
    self-calibration, which otherwise sees only the v3 sightings.
    """
    from bluezone.matching.receiver import context_for, for_receiver
    from bluezone.matching.scoring import get_scorer

    if sightings.dtype != BLUEZONE3_SIGHTING_DTYPE:
        raise ValueError(f"Bluezone v3 sightings must have BLUEZONE3_SIGHTING_DTYPE, got {sightings.dtype}")
    scorer = scorer or get_scorer()
    if calibrate_receiver and hasattr(scorer, "for_receiver"):
        context_rows = as_gaen_shaped(sightings)  # first, so window.sighting_index points into it
        if other_sightings is not None and len(other_sightings):
            context_rows = np.concatenate([context_rows, other_sightings])
        scorer = for_receiver(scorer, context_for(scorer, context_rows, rssi_correction=rssi_correction))
    windows = exposure_windows(entries, sightings, match(entries, sightings), rssi_correction=rssi_correction)
    return _scored(windows, scorer)


def _scored(windows: list[ExposureWindow], scorer: Any) -> list[Any]:
    """The windows' exposures (``protocol="bluezone3"``) by date then start."""
    from bluezone.matching.check import Exposure

    exposures = [replace(Exposure.from_window(w, scorer.score(w)), protocol=PROTOCOL) for w in windows]
    return sorted(exposures, key=lambda e: (e.date, e.start))


def check_bluezone3_store(
    entries: np.ndarray,
    store: Any,
    scorer: Any = None,
    *,
    rssi_correction: Any = 0,
    progress: Progress | None = None,
) -> tuple[list[Any], int]:
    """Exposures of an F0 list against a SightingStore's v3 sightings; also how many sightings were read.

    The same exposures as ``check_bluezone3`` given every GAEN sighting of the v3 sightings' days as
    ``other_sightings``, but the GAEN rows are read only where the scorer asks for the receiver's
    context (``StoredReceiverContext``, as a GAEN check reads them), not all 14 days of them.
    ``rssi_correction``: a number, or an ``RssiCorrection`` added to the sightings of its adapter alone."""
    span = sightings_span(entries)
    if span is None:
        return [], 0
    from bluezone.matching.check import as_correction, whole_days, within
    from bluezone.matching.receiver import MIN_SIGHTINGS, StoredReceiverContext, for_receiver, slot_seconds_of
    from bluezone.matching.scoring import get_scorer

    # whole UTC days: the receiver's day reference is taken from all it stored that day
    correction = as_correction(rssi_correction)  # added as the rows are read: nothing more to add below
    sightings = store.bluezone3_sightings(*whole_days(span), correction=correction)
    read = within(sightings, span)
    if read == 0:
        return [], 0
    windows = exposure_windows(entries, sightings, match(entries, sightings, progress=progress))
    if not windows:  # the usual answer: then no scorer asks about the receiver, and nothing more is read
        return [], read
    scorer = scorer or get_scorer()
    if hasattr(scorer, "for_receiver"):
        days = whole_days((float(sightings["time"].min()), float(sightings["time"].max()) + 1))
        source = _StoreWithBluezone3(store, as_gaen_shaped(sightings), correction)
        context = StoredReceiverContext(
            source, source.own_ids, days, source.repeated(*days, MIN_SIGHTINGS), slot_seconds=slot_seconds_of(scorer)
        )
        scorer = for_receiver(scorer, context)
    return _scored(windows, scorer), read


class _StoreWithBluezone3:
    """A ``SightingSource`` of a store's GAEN sightings and, beside them, its v3 sightings
    (GAEN-shaped, as ``check_bluezone3`` calibrates on both), the v3 row ``i`` with id ``-1 - i``; the GAEN rows read
    with ``correction``, as the v3 rows were."""

    def __init__(self, store: Any, bluezone3_rows: np.ndarray, correction: Any = None) -> None:
        self.store = store
        self.correction = correction
        self.rows = bluezone3_rows
        self.own_ids = -1 - np.arange(len(bluezone3_rows), dtype=np.int64)

    def repeated(self, since: float, until: float, times: int) -> np.ndarray:
        """The RPIs and padded v3 IDs heard at least ``times`` times (a superset is enough)."""
        gaen = self.store.heard_rpis(since, until, repeated=times)[1]
        own = self.rows["rpi"][(self.rows["time"] >= since) & (self.rows["time"] < until)]
        ids, counts = np.unique(own, return_counts=True)
        return np.concatenate([gaen, ids[counts >= times].view(np.uint8).reshape(-1, 16)])

    def _with_own(self, read: tuple[np.ndarray, np.ndarray], keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.concatenate([self.rows[keep], read[0]])
        ids = np.concatenate([self.own_ids[keep], read[1]])
        order = np.argsort(rows["time"], kind="stable")
        return rows[order], ids[order]

    def _within(self, since: float, until: float) -> np.ndarray:
        return (self.rows["time"] >= since) & (self.rows["time"] < until)

    def usable_sightings(self, since: float, until: float) -> tuple[np.ndarray, np.ndarray]:
        return self._with_own(self.store.usable_sightings(since, until, self.correction), self._within(since, until))

    def sightings_with_rpis(self, rpis: np.ndarray, since: float, until: float) -> tuple[np.ndarray, np.ndarray]:
        wanted = np.ascontiguousarray(rpis).view("V16").reshape(-1)
        keep = self._within(since, until) & np.isin(self.rows["rpi"], wanted)
        return self._with_own(self.store.sightings_with_rpis(rpis, since, until, self.correction), keep)

    def count_sightings(self, since: float, until: float, at_most: int | None = None) -> int:
        """The store's count (no further than ``at_most``) and the Bluezone v3 sightings'."""
        return int(self.store.count_sightings(since, until, at_most)) + int(np.count_nonzero(self._within(since, until)))


def own_f0_list(store: Any, now: float, days: int = 14) -> dict[str, Any]:
    """This device's Bluezone v3 IDs of the last ``days`` days as an F0 list entry (what a Bluezone v3
    F0 handed its server), from the key chain the daemon keeps; KeyFileError when it never sent v3."""
    if not 1 <= days <= 14:
        raise KeyFileError(f"days must be 1-14, got {days}")
    stored = store.bluezone3_key()
    today = int(now // DAY_SECONDS)
    if stored is None or stored[0] > today:
        raise KeyFileError("this device never sent Bluezone v3 IDs (bluezone run --also-bluezone-v3): nothing to export")
    first = max(stored[0], today - days + 1)
    key = bz3.daily_key(stored[1], first - stored[0])
    return {"data": [{"daily_key": key.hex(), "time_start": first * DAY_SECONDS, "max": bz3.SLOTS_PER_DAY, "time_end": int(now)}]}


def restart_chain(store: Any, now: float) -> None:
    """Start a new random Bluezone v3 key chain today, after the old one's key was handed over in an
    F0 list: that key hashes forward to every later day's, so anyone holding the (published) list
    could otherwise follow this device's v3 IDs from then on.  A running daemon sends from the new
    chain at its next ID change; the old chain's days can no longer be exported (they were)."""
    store.save_bluezone3_key(int(now // DAY_SECONDS), os.urandom(bz3.DAILY_KEY_LENGTH), now)
