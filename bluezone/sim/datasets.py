"""Loaders for real phone-to-phone RSSI recordings laid out as README, manifest.csv, data/.

Two layouts are understood, told apart by their files:

- MIT LL PACT logs (``data/<carriage folder>/*.txt.gz``): one receiving iPhone's log per
  recording; the partner's adverts are the ``Bluetooth`` rows named ``BlueProxTx``; the
  separation is the latest ``Range`` line (feet).  RSSI 127 ("not available") is dropped,
  and so are the near-duplicates the README describes (same id and RSSI within 1 ms; 3.5 ms of
  the wall clock in logs without Apple's clock).  With ``bystanders=True`` the other devices the
  receiver heard (every ``Bluetooth`` row not named ``BlueProxTx``, from any id the beacon never
  used) are kept beside each recording as ``Recording.bystanders``: per peripheral id, the same
  rules (RSSI 127 dropped, duplicates removed per id).  They are context for the receiver (its
  other links in the same minute, ``bluezone.matching.receiver``), never scored or labelled;
  their TX power is unknown.
- Ng et al. (``data/<Set>/RSS_human*.csv``): columns device, elapsed, rss, dist (cm); one
  recording per (set, distance), both phones' rows, grouped per device.  When a device's
  ``elapsed`` is rounded (100 s steps in two sets), its rows are spread evenly over the
  span, since the order of rows is all the timing that is left.

Both layouts name their phones, and each ``Recording`` carries the receiving and the
transmitting phone's model, so an evaluation can apply per-device calibration: PACT logs in
their metadata lines (``receiver`` / ``self_tester``: model, device name; ``beacon`` /
``partner_tester``: model, or only a name), Ng et al. in the ``device`` column.  The Ng README
leaves open whether ``device`` is the phone that logged the row or the one heard; we read it
as the phone heard (``gryphonelab`` is a Bluetooth name a scanner reports, not a model), so the
receiver is the other phone of the set.

Everything becomes ``Recording`` records; a recording that changes distance inside the
file is split into parts that share the recording's id (so a bootstrap keeps them together).
Recordings made by other people have odd lines: a malformed line (a field that is not a
number, an RSSI outside -127..20 dBm, a distance that is not positive) is skipped and counted,
and a file that cannot be read at all is skipped with its reason, so one bad file does not
stop an evaluation; both are reported in ``Dataset.problems``.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import re
import logging
from collections.abc import Callable
from functools import lru_cache, partial
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bluezone.errors import DatasetError

log = logging.getLogger(__name__)

FEET = 0.3048
#: Farther apart than this a recording is no BLE measurement but a typo (PACT's Range lines are checked
#: against 1e4 ft, the same): a CSV row with dist = 1e30 cm reported "detected at 1e28 m".
MAX_DISTANCE_FT = 1e4
#: Seconds into a recording a CSV row may say (~116 days; Ng et al.'s are under an hour): one row at
#: elapsed = 1e308 made its recording span infinity and moved GAEN's F1 on the whole dataset 0.76 -> 0.59.
MAX_ELAPSED_S = 1e7
PACT_NAME = "BlueProxTx"
NG_COLUMNS = {"device", "elapsed", "rss", "dist"}
MIN_RSSI, MAX_RSSI = -127, 20  # dBm a BLE receiver can report
#: What a dataset directory holds, as errors say it (docs/simulation.md, "Your own recordings").
LAYOUTS = "DATASET/data/<setup>/*.csv (RSS CSVs) or DATASET/data/<setup>/*.txt.gz (MIT LL PACT logs)"
CSV_ROW = "device, elapsed (s), rss (whole dBm), dist (whole cm) under the header device,elapsed,rss,dist"
#: An advert of a device other than the recording's transmitter: when (s), how strong (dBm), which
#: device (a number per peripheral id within the log).
BYSTANDER_DTYPE = np.dtype([("time", "f8"), ("rssi", "f8"), ("link", "i4")])
#: Text a PACT log may hold once decompressed: MIT LL's largest is ~2 MB.  Its rows are kept as Python
#: objects (~650 bytes each), so a 1.5 MB .gz of 5M repeated rows took 3.3 GB and 106 s.
MAX_LOG_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Dataset:
    """The recordings of one dataset directory, and what was skipped reading it."""

    layout: str  # "mitll_pact" or "ng_rss_smartphone"
    recordings: list[Recording]
    problems: list[str]  # one line per skipped file or per file with skipped lines


@dataclass(frozen=True)
class Recording:
    """RSSI over time of one phone hearing another at a known distance."""

    rid: str  # whole recording (bootstrap unit)
    setup: str  # carriage combination, the unit within which minutes are chained
    distance_m: float
    times: np.ndarray  # seconds, increasing
    rssi: np.ndarray  # dBm
    receiver: str = ""  # model of the phone that measured the RSSI ("" when the dataset does not say)
    transmitter: str = ""  # model (or name) of the phone heard
    #: other devices the receiver heard meanwhile (BYSTANDER_DTYPE; empty unless asked for and present)
    bystanders: np.ndarray = field(default_factory=lambda: np.empty(0, BYSTANDER_DTYPE))


def load_dataset(root: str | Path, *, bystanders: bool = False) -> Dataset:
    """The recordings of a dataset directory; unreadable files and lines are skipped and reported.

    ``bystanders``: also keep the other devices each receiver heard (PACT logs; the Ng CSVs hold
    only the two phones of a set), as ``Recording.bystanders``.
    """
    root = Path(root)
    data = root / "data"
    if not data.is_dir():
        inside = sorted(d.name for d in root.iterdir() if (d / "data").is_dir()) if root.is_dir() else []
        hint = f"; datasets in it: {', '.join(inside)}" if inside else ""  # given their parent folder
        if not inside and root.is_dir() and (any(root.glob("*/*.csv")) or any(root.glob("*/*.txt.gz"))):
            # setup folders given: the data/ folder itself, or a dataset made without one (the parent then
            # holds no data/ either: "give the directory above it (.)" sent a newcomer nowhere)
            hint = (
                f"; give the directory above it ({root.parent})" if root.name == "data"
                else f"; move its setup folders into {root / 'data'}/"
            )
        raise DatasetError(f"{root}: no data/ directory (expected {LAYOUTS}){hint}")
    logs = sorted(data.glob("*/*.txt.gz"))
    csvs = sorted(data.glob("*/*.csv"))
    reader: Callable[[Path, Path], tuple[list[Recording], int]]
    if logs:
        layout, files, reader = "mitll_pact", logs, partial(_read_pact, bystanders=bystanders)
    elif csvs:
        layout, files, reader = "ng_rss_smartphone", csvs, _read_ng
    else:
        raise DatasetError(f"{data}: neither PACT logs nor RSS CSVs (expected {LAYOUTS})")
    recordings: list[Recording] = []
    problems: list[str] = []
    for path in files:
        name = path.relative_to(data)
        if not path.is_file():  # a FIFO hung the reader, a link to /dev/zero ran it out of memory
            problems.append(f"{name}: skipped (not a regular file)")
            continue
        try:
            found, bad_lines = reader(path, data)
        except DatasetError as exc:
            problems.append(f"{name}: skipped ({exc})")
            continue
        if bad_lines:
            problems.append(f"{name}: {bad_lines} malformed line(s) skipped")
        recordings.extend(found)
    if not recordings:
        detail = f" ({problems[0]}{', ...' if len(problems) > 1 else ''})" if problems else ""
        rows = f"; an RSS CSV's rows are {CSV_ROW}" if layout == "ng_rss_smartphone" else ""
        raise DatasetError(f"{root}: no usable recordings{detail}{rows}")
    for problem in problems:  # said here, not as read: with nothing usable the error says it (one line, not two)
        log.warning("%s", problem)
    return Dataset(layout, recordings, problems)


#: A PACT log's own stamp (2020-05-11 12:44:19.549), in plain digits: its whole second and its fraction.
_PACT_STAMP = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2})\.([0-9]{1,6})")


def _pact_time(stamp: str) -> float:
    """Unix seconds of a PACT stamp, as ``strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")`` in UTC gives them.
    strptime per advert was a third of ``bluezone evaluate``'s time on MIT LL's logs (428,000 calls): a
    stamp in the logs' own form has its whole second parsed once (``_whole_second``) and its fraction
    added as ``timestamp()`` adds it (whole microseconds over 10**6, one division); any other goes to
    strptime, which accepts more (single digits, spaces) and says what is wrong."""
    if stamp.endswith("Z"):
        return dt.datetime.fromisoformat(stamp[:-1]).replace(tzinfo=dt.UTC).timestamp()
    found = _PACT_STAMP.fullmatch(stamp)
    if found is None:
        return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.UTC).timestamp()
    return (_whole_second(found[1]) * 10**6 + int(found[2].ljust(6, "0"))) / 10**6


@lru_cache(maxsize=4096)
def _whole_second(text: str) -> int:
    """Unix seconds of "YYYY-MM-DD HH:MM:SS" in UTC (a ValueError for no such time, as strptime's)."""
    return int(dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC).timestamp())


def _plausible_rssi(value: float) -> bool:
    return MIN_RSSI <= value <= MAX_RSSI


def _read_pact(path: Path, data: Path, bystanders: bool = False) -> tuple[list[Recording], int]:
    """(recordings, malformed lines skipped) of one PACT log; with ``bystanders``, each recording
    carries the other devices heard at its range."""
    setup = path.parent.name
    rid = str(path.relative_to(data))
    rows: list[tuple[float, float, int, str, float]] = []  # range ft, time, rssi, id, apple time
    others: list[tuple[float, float, int, str, float]] = []  # the same, of every other device
    range_ft: float | None = None
    receiver = transmitter = ""
    bad = 0
    try:
        with gzip.open(path, "rb") as raw:  # measured first: parsing 64 MiB of rows before giving up took 11 s
            size = 0
            while chunk := raw.read(1 << 20):
                size += len(chunk)
                if size > MAX_LOG_BYTES:
                    raise DatasetError(
                        f"more than {MAX_LOG_BYTES >> 20} MiB once decompressed (MIT LL's logs are ~2 MB): not read"
                    )
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\r\n").split(",")
                if len(parts) < 3:
                    continue
                kind = parts[1]
                if kind in ("receiver", "self_tester"):
                    receiver = receiver or parts[2].strip()
                elif kind in ("beacon", "partner_tester"):
                    transmitter = transmitter or next((p.strip() for p in parts[2:] if p.strip()), "")
                try:
                    if kind == "Range":
                        value = float(parts[2])
                        if not 0 < value < MAX_DISTANCE_FT:
                            raise ValueError("distance")
                        range_ft = value
                    elif kind == "Bluetooth" and len(parts) >= 7 and range_ft is not None:
                        beacon = parts[4] == PACT_NAME
                        if not (beacon or bystanders):
                            continue
                        level = int(parts[3])
                        if level == 127:  # iOS: not available
                            continue
                        if not _plausible_rssi(level):
                            raise ValueError("rssi")
                        (rows if beacon else others).append(
                            (range_ft, _pact_time(parts[0]), level, parts[2], float(parts[6]))
                        )
                except (ValueError, OverflowError):
                    bad += 1
    except (OSError, EOFError, UnicodeError) as exc:
        raise DatasetError(f"cannot read PACT log: {exc}") from None
    if not rows:
        return [], bad
    rng_ft, times, rssi, ids, keep = _deduplicated(rows)
    beacon_ids = set(ids.tolist())
    o_rng, o_times, o_rssi, o_ids, o_keep = _deduplicated([r for r in others if r[3] not in beacon_ids], per_id=True)
    o_link = np.unique(o_ids, return_inverse=True)[1].reshape(-1) if len(o_ids) else np.empty(0, np.int64)
    out = []
    for value in np.unique(rng_ft[keep]):
        m = keep & (rng_ft == value)
        order = np.argsort(times[m], kind="stable")
        heard = o_keep & (o_rng == value)
        near = np.zeros(int(heard.sum()), BYSTANDER_DTYPE)
        near["time"], near["rssi"], near["link"] = o_times[heard], o_rssi[heard], o_link[heard]
        out.append(
            Recording(
                rid,
                setup,
                float(value) * FEET,
                times[m][order],
                rssi[m][order].astype(np.float64),
                receiver,
                transmitter,
                near[np.argsort(near["time"], kind="stable")],
            )
        )
    return out, bad


def _deduplicated(
    rows: list[tuple[float, float, int, str, float]], per_id: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(range ft, time, rssi, id, which rows to keep) of (range ft, time, rssi, id, apple time) rows.

    The README's rule: same id and RSSI within 1 ms of Apple's clock; the iPhone 6s logs have no
    Apple time (-1), and on their millisecond wall clock the same duplicates sit 0-3 ms apart (the
    beacon's own adverts are tens of ms apart), so there the window is 3.5 ms.  The beacon's rows
    are compared in file order; ``per_id`` (many devices interleaved) compares each id's rows in
    time order.
    """
    if not rows:
        empty = np.empty(0)
        return empty, empty, empty, np.empty(0, str), np.empty(0, bool)
    rng_ft = np.array([r[0] for r in rows])
    times = np.array([r[1] for r in rows])
    rssi = np.array([r[2] for r in rows], np.float64)
    ids = np.array([r[3] for r in rows])
    apple = np.array([r[4] for r in rows])
    has_apple = apple > 0
    stamp = np.where(has_apple, apple, times)
    order = np.lexsort((stamp, ids)) if per_id else np.arange(len(rows))
    i, r, s, a = ids[order], rssi[order], stamp[order], has_apple[order]
    window = np.where(a[1:] & a[:-1], 0.001, 0.0035)
    dup = np.r_[False, (i[1:] == i[:-1]) & (r[1:] == r[:-1]) & (np.abs(np.diff(s)) < window)]
    keep = np.empty(len(rows), bool)
    keep[order] = ~dup
    return rng_ft, times, rssi, ids, keep


def _read_ng(path: Path, data: Path) -> tuple[list[Recording], int]:
    """(recordings, malformed rows skipped) of one consolidated RSS CSV."""
    setup = path.parent.name
    groups: dict[tuple[int, str], list[tuple[float, int]]] = {}
    bad = 0
    try:
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:  # (a spreadsheet's byte order mark)
            reader = csv.DictReader(f)
            missing = NG_COLUMNS - set(reader.fieldnames or [])
            if missing:
                raise DatasetError(f"RSS CSV without column(s) {', '.join(sorted(missing))}")
            for row in reader:
                try:
                    dist, elapsed, rss = int(row["dist"]), float(row["elapsed"]), int(row["rss"])
                    plausible = 0 < dist < MAX_DISTANCE_FT * FEET * 100 and abs(elapsed) <= MAX_ELAPSED_S  # nan fails too
                    if not plausible or not _plausible_rssi(rss) or not row["device"]:
                        raise ValueError("out of range")
                except (ValueError, TypeError):
                    bad += 1
                    continue
                groups.setdefault((dist, row["device"]), []).append((elapsed, rss))
    except (OSError, UnicodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read RSS CSV: {exc}") from None
    devices = sorted({device for _, device in groups})
    out = []
    for (dist_cm, device), values in sorted(groups.items()):
        partner = next(iter(set(devices) - {device})) if len(devices) == 2 else ""
        times = np.array([v[0] for v in values])
        rssi = np.array([v[1] for v in values], np.float64)
        if len(np.unique(times)) < len(times) / 10:  # rounded clock: keep order, spread over the span
            span = max(times.max() - times.min(), len(times) / 10.0)
            times = times.min() + np.arange(len(times)) * span / len(times)
        order = np.argsort(times, kind="stable")
        out.append(
            Recording(
                f"{setup}/{dist_cm}", f"{setup}/{device}", dist_cm / 100.0, times[order], rssi[order], partner, device
            )
        )
    return out, bad
