"""Google's per-device BLE calibration table for Exposure Notifications, and look-ups in it.

GAEN computes attenuation = TX power - (RSSI + RSSI correction), with both numbers taken per
device model from a table Google published as CSV (``data/README.md`` says which file, where
from and under which licence).  The table's reference is "a typical iPhone": an Android
model's RSSI correction makes its RSSI what an iPhone would read, and its TX power is what
an iPhone would report for the same power.  So an iPhone's RSSI correction is 0 by the
table's definition, while the TX power iPhones put in their AEM is Apple's and not in it.

Names are matched ignoring case, spaces, ``_`` and ``-`` (``ASUS_Z00AD``, ``asus z00ad`` and
``ASUSZ00AD`` are one model).  An unknown device gives ``None``: the caller decides what
to assume and says so; nothing here invents a number.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from bluezone.errors import CalibrationTableError, UnknownDeviceError

#: The table shipped with bluezone (``bluezone/calibration/data/``).
DEFAULT_TABLE = "en-calibration-2020-06-13.csv"
TABLE_DATE = "2020-06-13"
HEADER = ("oem", "model", "rssi correction", "tx", "has direct measurement")
#: Bounds no real phone comes near; a row outside them is malformed, not a calibration.
RSSI_CORRECTION_RANGE = (-60, 60)
TX_POWER_RANGE = (-100, 30)
APPLE = "apple"
#: Google's table is ~50 kB; its editions stay far below this.
MAX_TABLE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class DeviceCalibration:
    """The calibration of one device model, and where it comes from.

    ``source`` is ``measured`` (Google measured the model), ``estimated`` (in Google's table
    without a direct measurement: Google's own estimate, typically from sister models) or
    ``reference`` (an iPhone: RSSI correction 0 by the table's definition, TX power unknown).
    """

    manufacturer: str
    model: str
    rssi_correction_db: int
    tx_power_dbm: int | None
    source: str

    def as_dict(self) -> dict[str, object]:
        return {
            "manufacturer": self.manufacturer,
            "model": self.model,
            "rssi_correction_db": self.rssi_correction_db,
            "tx_power_dbm": self.tx_power_dbm,
            "source": self.source,
        }


def normalise(name: str) -> str:
    """A device or manufacturer name as the table is searched: case, spaces, ``_`` and ``-`` folded."""
    return re.sub(r"[\s_\-]+", "", name.casefold())


def _is_iphone(manufacturer: str | None, model: str) -> bool:
    return (manufacturer is not None and normalise(manufacturer) == APPLE) or normalise(model).startswith("iphone")


class CalibrationTable:
    """Rows of a Google EN calibration CSV, searchable by (manufacturer, model) or model alone."""

    def __init__(self, rows: list[DeviceCalibration], name: str = "") -> None:
        self.name = name
        self.rows = rows
        self._by_pair: dict[tuple[str, str], DeviceCalibration] = {}
        self._by_model: dict[str, list[DeviceCalibration]] = {}
        for row in rows:
            key = (normalise(row.manufacturer), normalise(row.model))
            # two spellings of one model (e.g. "MI 4C" and "Mi 4c"): a measured row wins, else the first
            kept = self._by_pair.get(key)
            if kept is None or (kept.source != "measured" and row.source == "measured"):
                self._by_pair[key] = row
        for row in self._by_pair.values():
            self._by_model.setdefault(normalise(row.model), []).append(row)

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def from_text(cls, text: str, name: str = "") -> CalibrationTable:
        """Parse Google's CSV (header ``oem,model,rssi correction ...,tx ...,has direct measurement``)."""
        reader = csv.reader(io.StringIO(text))
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise CalibrationTableError(f"{name or 'calibration table'}: not CSV ({exc})") from None
        if header is None or len(header) < len(HEADER) or not all(
            normalise(h).startswith(normalise(want)) for h, want in zip(header, HEADER, strict=False)
        ):
            raise CalibrationTableError(
                f"{name or 'calibration table'}: header must start with {','.join(HEADER)}, got {header!r}"
            )
        rows = []
        try:
            for number, fields in enumerate(reader, start=2):
                if not fields or all(not f.strip() for f in fields):
                    continue
                rows.append(_parse_row(fields, number, name))
        except csv.Error as exc:
            raise CalibrationTableError(f"{name or 'calibration table'}: not CSV ({exc})") from None
        if not rows:
            raise CalibrationTableError(f"{name or 'calibration table'}: no device rows")
        return cls(rows, name)

    @classmethod
    def from_path(cls, path: str | Path) -> CalibrationTable:
        from bluezone.readfile import read_regular_file

        # not Path.read_text: a FIFO or /dev/zero named as the table hung evaluate (or ate memory)
        raw = read_regular_file(path, MAX_TABLE_BYTES, "calibration table", CalibrationTableError)
        try:
            text = raw.decode("utf-8-sig")  # a spreadsheet's "CSV UTF-8" starts with a byte order mark
        except UnicodeError as exc:
            raise CalibrationTableError(f"{path}: cannot read calibration table ({exc})") from None
        return cls.from_text(text, str(path))

    def lookup(self, model: str, manufacturer: str | None = None) -> DeviceCalibration | None:
        """The calibration of a device, or ``None`` when the table does not know it.

        With a manufacturer, the (manufacturer, model) pair must match.  Without one, the model
        alone must match rows that agree (a model name used by several makers with different
        values is ambiguous: ``None``).  iPhones are the table's reference receivers: RSSI
        correction 0, TX power unknown.
        """
        if not model or not model.strip():
            return None
        if _is_iphone(manufacturer, model):
            return DeviceCalibration("Apple", model.strip(), 0, None, "reference")
        if manufacturer:
            return self._by_pair.get((normalise(manufacturer), normalise(model)))
        found = self._by_model.get(normalise(model), [])
        values = {(r.rssi_correction_db, r.tx_power_dbm) for r in found}
        return found[0] if len(values) == 1 else None

    def search(self, text: str, limit: int | None = 30) -> list[DeviceCalibration]:
        """Rows whose manufacturer + model contain ``text`` (normalised), measured ones first."""
        needle = normalise(text)
        if not needle:
            return []
        found = [r for r in self._by_pair.values() if needle in normalise(r.manufacturer) + normalise(r.model)]
        found.sort(key=lambda r: (r.source != "measured", normalise(r.manufacturer), normalise(r.model)))
        return found[:limit]

    def require(self, model: str, manufacturer: str | None = None) -> DeviceCalibration:
        """Like ``lookup``, but an unknown device is an error that says what to do."""
        found = self.lookup(model, manufacturer)
        if found is None:
            who = f"{manufacturer} {model}" if manufacturer else model
            raise UnknownDeviceError(
                f"{who!r} is not in the calibration table {self.name or DEFAULT_TABLE}; "
                "give its RSSI correction and TX power yourself, or calibrate it against a known device"
            )
        return found


def _parse_row(fields: list[str], number: int, name: str) -> DeviceCalibration:
    where = f"{name or 'calibration table'} line {number}"
    if len(fields) < len(HEADER):
        raise CalibrationTableError(f"{where}: {len(fields)} fields, expected {len(HEADER)}")
    oem, model, correction, tx, measured = (f.strip() for f in fields[: len(HEADER)])
    if not oem or not model:
        raise CalibrationTableError(f"{where}: empty manufacturer or model")
    try:
        rssi_correction, tx_power = int(correction), int(tx)
    except ValueError:
        raise CalibrationTableError(f"{where}: RSSI correction and TX power must be whole dB, got {correction!r}, {tx!r}") from None
    if not RSSI_CORRECTION_RANGE[0] <= rssi_correction <= RSSI_CORRECTION_RANGE[1]:
        raise CalibrationTableError(f"{where}: RSSI correction {rssi_correction} dB out of range {RSSI_CORRECTION_RANGE}")
    if not TX_POWER_RANGE[0] <= tx_power <= TX_POWER_RANGE[1]:
        raise CalibrationTableError(f"{where}: TX power {tx_power} dBm out of range {TX_POWER_RANGE}")
    flag = measured.casefold()
    if flag not in ("yes", "no"):
        raise CalibrationTableError(f"{where}: 'has direct measurement' must be yes or no, got {measured!r}")
    return DeviceCalibration(oem, model, rssi_correction, tx_power, "measured" if flag == "yes" else "estimated")


@cache
def default_table() -> CalibrationTable:
    """The table shipped with bluezone (read once)."""
    text = resources.files("bluezone.calibration").joinpath("data", DEFAULT_TABLE).read_text(encoding="utf-8")
    return CalibrationTable.from_text(text, DEFAULT_TABLE)


def lookup(model: str, manufacturer: str | None = None) -> DeviceCalibration | None:
    """``default_table().lookup(...)``: a device's calibration from the shipped table, or None."""
    return default_table().lookup(model, manufacturer)
