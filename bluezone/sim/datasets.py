"""Loaders for real phone-to-phone RSSI recordings laid out as README, manifest.csv, data/.

Two layouts are understood, told apart by their files:

- MIT LL PACT logs (``data/<carriage folder>/*.txt.gz``): one receiving iPhone's log per
  recording; the partner's adverts are the ``Bluetooth`` rows named ``BlueProxTx``; the
  separation is the latest ``Range`` line (feet).  RSSI 127 ("not available") is dropped,
  and so are the near-duplicates the README describes (same id and RSSI within 1 ms).
- Ng et al. (``data/<Set>/RSS_human*.csv``): columns device, elapsed, rss, dist (cm); one
  recording per (set, distance), both phones' rows, grouped per device.  When a device's
  ``elapsed`` is rounded (100 s steps in two sets), its rows are spread evenly over the
  span, since the order of rows is all the timing that is left.

Everything becomes ``Recording`` records; a recording that changes distance inside the
file is split into parts that share the recording's id (so a bootstrap keeps them together).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bluezone.errors import InputError

log = logging.getLogger(__name__)

FEET = 0.3048
PACT_NAME = "BlueProxTx"


class DatasetError(InputError):
    """A dataset directory cannot be read."""


@dataclass(frozen=True)
class Recording:
    rid: str  # whole recording (bootstrap unit)
    setup: str  # carriage combination, the unit within which minutes are chained
    distance_m: float
    times: np.ndarray  # seconds, increasing
    rssi: np.ndarray  # dBm


def load_dataset(root: str | Path) -> tuple[str, list[Recording]]:
    """(layout name, recordings) of a dataset directory."""
    root = Path(root)
    data = root / "data"
    if not data.is_dir():
        raise DatasetError(f"{root}: no data/ directory (expected README, manifest.csv, data/)")
    logs = sorted(data.glob("*/*.txt.gz"))
    csvs = sorted(data.glob("*/*.csv"))
    if logs:
        recordings = [r for p in logs for r in _read_pact(p, data)]
        layout = "mitll_pact"
    elif csvs:
        recordings = [r for p in csvs for r in _read_ng(p, data)]
        layout = "ng_rss_smartphone"
    else:
        raise DatasetError(f"{data}: neither PACT logs (*/*.txt.gz) nor RSS CSVs (*/*.csv)")
    if not recordings:
        raise DatasetError(f"{root}: no usable recordings")
    return layout, recordings


def _pact_time(stamp: str) -> float:
    if stamp.endswith("Z"):
        return dt.datetime.fromisoformat(stamp[:-1]).replace(tzinfo=dt.UTC).timestamp()
    return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.UTC).timestamp()


def _read_pact(path: Path, data: Path) -> list[Recording]:
    setup = path.parent.name
    rid = str(path.relative_to(data))
    rows: list[tuple[float, float, int, str, float]] = []  # range ft, time, rssi, id, apple time
    range_ft: float | None = None
    try:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\r\n").split(",")
                if len(parts) < 3:
                    continue
                kind = parts[1]
                if kind == "Range":
                    range_ft = float(parts[2])
                elif kind == "Bluetooth" and len(parts) >= 7 and parts[4] == PACT_NAME and range_ft is not None:
                    rssi = int(parts[3])
                    if rssi == 127:
                        continue
                    rows.append((range_ft, _pact_time(parts[0]), rssi, parts[2], float(parts[6])))
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read PACT log: {exc}") from None
    if not rows:
        return []
    rng_ft = np.array([r[0] for r in rows])
    times = np.array([r[1] for r in rows])
    rssi = np.array([r[2] for r in rows])
    ids = np.array([r[3] for r in rows])
    apple = np.array([r[4] for r in rows])
    stamp = np.where(apple > 0, apple, times)
    dup = np.r_[False, (ids[1:] == ids[:-1]) & (rssi[1:] == rssi[:-1]) & (np.abs(np.diff(stamp)) < 0.001)]
    keep = ~dup
    out = []
    for value in np.unique(rng_ft[keep]):
        m = keep & (rng_ft == value)
        order = np.argsort(times[m], kind="stable")
        out.append(Recording(rid, setup, float(value) * FEET, times[m][order], rssi[m][order].astype(np.float64)))
    return out


def _read_ng(path: Path, data: Path) -> list[Recording]:
    setup = path.parent.name
    groups: dict[tuple[int, str], list[tuple[float, int]]] = {}
    try:
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                groups.setdefault((int(row["dist"]), row["device"]), []).append((float(row["elapsed"]), int(row["rss"])))
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read RSS CSV: {exc}") from None
    out = []
    for (dist_cm, device), values in sorted(groups.items()):
        times = np.array([v[0] for v in values])
        rssi = np.array([v[1] for v in values], np.float64)
        if len(np.unique(times)) < len(times) / 10:  # rounded clock: keep order, spread over the span
            span = max(times.max() - times.min(), len(times) / 10.0)
            times = times.min() + np.arange(len(times)) * span / len(times)
        order = np.argsort(times, kind="stable")
        out.append(Recording(f"{setup}/{dist_cm}", f"{setup}/{device}", dist_cm / 100.0, times[order], rssi[order]))
    return out
