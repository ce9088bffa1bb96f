"""Which adapter heard a sighting (schema 14): this device's adapters by Bluetooth address, each sighting stored with
its adapter's id, and a calibration's RSSI correction as a read applies it: to the sightings of the adapter it was
measured on, not to another's."""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from bluezone.proximity.store.base import StoreBase

#: ``sightings.adapter`` of a sighting heard by an adapter that could not say its address (``Radio.adapter_address``
#: None); NULL there: no adapter recorded (a row stored before schema 14, or by code that names none).
UNKNOWN_ADAPTER = 0
#: ``adapters_of``'s code for a sighting with no adapter recorded.
NOT_RECORDED = -1
#: How often a writing store notes again that an adapter is in use (``last_used``, which the purge goes by).
_NOTE_EVERY = 3600.0
_IN_BATCH = 500  # rowids per `rowid IN (...)` query


@dataclass(frozen=True)
class RssiCorrection:
    """This receiver's RSSI correction (dB, ``bluezone calibrate``'s) and the adapter it was measured on (its Bluetooth
    address, as ``calibration_adapter`` names it).  A read adds it to the RSSI of each sighting that adapter heard, and of
    each stored with no adapter recorded (as before schema 14); not to another adapter's, whose error it is not
    (docs/calibration.md).  ``adapter`` None (a correction given by hand, a calibration of an adapter that could not
    say its address or made before session 30): added to every sighting, as before."""

    db: int = 0
    adapter: str | None = None

    def applies_to(self, address: str | None) -> bool:
        """Whether a sighting heard by ``address`` (None: no adapter recorded, "": an unknown one) is corrected."""
        return self.adapter is None or address is None or address.upper() == self.adapter.upper()


class Adapters(StoreBase):
    """This device's adapters, as the sightings name them."""

    def _adapter_id(self, address: str | None, at: float) -> int | None:
        """The ``adapter`` value of sightings heard at ``at`` by the adapter at ``address`` ("": one that could not say
        its address; None: none recorded), noting it in ``adapters`` when it is new or not noted for ``_NOTE_EVERY``
        (inside the caller's transaction, which forgets the ids noted when it rolls back: ``noting_adapters``)."""
        if address is None:
            return None
        if not address:
            return UNKNOWN_ADAPTER
        address = address.upper()  # (as BlueZ spells it; a config may not)
        known = self._adapter_ids.get(address)
        if known is not None and known[1] <= at < known[1] + _NOTE_EVERY:
            return known[0]
        conn = self._conn
        conn.execute(
            "INSERT INTO adapters (address, last_used) VALUES (?, ?)"
            " ON CONFLICT (address) DO UPDATE SET last_used = max(last_used, excluded.last_used)",
            (address, float(at)),
        )
        adapter_id = int(conn.execute("SELECT id FROM adapters WHERE address = ?", (address,)).fetchone()[0])
        self._adapter_ids[address] = (adapter_id, float(at))
        return adapter_id

    @contextlib.contextmanager
    def _heard_by(self, adapter: str | None, times: np.ndarray) -> Iterator[tuple[str, str]]:
        """A batch's transaction, and what its INSERT adds to its columns and values for the sightings' ``adapter``
        (a literal: no value bound per row; nothing where none is recorded: the column's NULL), heard by ``adapter``
        (``add_sightings``) at ``times``; the adapter ids noted in it forgotten if it rolls back."""
        try:
            with self._conn:
                at = float(times.max()) if len(times) else 0.0
                heard_by = self._adapter_id(adapter, at if math.isfinite(at) else 0.0)
                yield ("", "") if heard_by is None else (", adapter", f", {int(heard_by)}")
        except BaseException:
            self._adapter_ids.clear()
            raise

    def _corrected_rssi(self, correction: RssiCorrection | None) -> str:
        """SQL for a sighting's RSSI with ``correction`` added where it applies (``RssiCorrection``)."""
        if correction is None or correction.db == 0:
            return "rssi"
        db = int(correction.db)
        if correction.adapter is None:
            return f"rssi + {db}"
        row = self._conn.execute("SELECT id FROM adapters WHERE address = ?", (correction.adapter.upper(),)).fetchone()
        mine = "adapter IS NULL" if row is None else f"(adapter = {int(row[0])} OR adapter IS NULL)"
        return f"(rssi + CASE WHEN {mine} THEN {db} ELSE 0 END)"

    def adapters_of(self, ids: np.ndarray, table: str = "sightings") -> tuple[np.ndarray, dict[int, str]]:
        """(the ``adapter`` of each sighting of store id ``ids``, ``NOT_RECORDED`` where none is; each adapter id's
        address).  An id the purge forgot (unused for the retention) has no address: an unknown adapter."""
        ids = np.asarray(ids, np.int64)
        found: dict[int, int] = {}
        for start in range(0, len(ids), _IN_BATCH):
            batch = ids[start : start + _IN_BATCH].tolist()
            query = f"SELECT rowid, adapter FROM {table} WHERE rowid IN ({', '.join('?' * len(batch))})"
            found.update((int(rowid), NOT_RECORDED if a is None else int(a)) for rowid, a in self._conn.execute(query, batch))
        codes = np.fromiter((found.get(i, NOT_RECORDED) for i in ids.tolist()), np.int64, len(ids))
        return codes, {int(i): str(a) for i, a in self._conn.execute("SELECT id, address FROM adapters")}

    def adapter_addresses(self, ids: np.ndarray, table: str = "sightings") -> list[str | None]:
        """The address of the adapter that heard each sighting of store id ``ids``: "" for an unknown adapter, None
        where none was recorded."""
        codes, addresses = self.adapters_of(ids, table)
        return [None if c == NOT_RECORDED else addresses.get(c, "") for c in codes.tolist()]


def forget_unused_adapters(conn: sqlite3.Connection, cutoff: float) -> int:
    """The purge's part: adapters not used since ``cutoff`` (and ``_NOTE_EVERY`` before it, the most a batch's time
    runs ahead of its adapter's ``last_used``): every sighting they heard goes in the same purge, so a new adapter
    given a forgotten one's id (the largest id is reused) is never taken for the adapter of an older sighting."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'adapters'").fetchone():
        return 0  # (tests purge stores kept at an older schema)
    return int(conn.execute("DELETE FROM adapters WHERE last_used < ?", (cutoff - _NOTE_EVERY,)).rowcount)
