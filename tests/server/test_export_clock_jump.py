"""The scheduled export and a clock that jumps ahead: what an export would delete (keys and files past the
retention) waits one export, as the daemon's purge does.  attack12 found one export at a clock a month ahead
deleted every key, file and index line the server had; the clock put right, they were gone for good."""

from __future__ import annotations

import time
from pathlib import Path

from server_helpers import KEY, NOW, ScriptedClock, storage_with_five_past_days
from starlette.testclient import TestClient

from bluezone.crypto.intervals import DAY_SECONDS, ROLLING_PERIOD, rolling_start
from bluezone.keyformat.keys import empty_keys
from bluezone.server.app import create_app
from bluezone.server.exports import INDEX_FILE, export_batches
from bluezone.server.signing import keygen
from bluezone.server.storage import open_storage


def run_exports(tmp_path: Path, times: list[float], exported_at: float | None = None) -> tuple[int, list[str], int]:
    """Keys of five past days uploaded (and exported at ``exported_at`` by an earlier run of the server), then
    the scheduled export run at ``times``: keys left, the index, files."""
    storage = storage_with_five_past_days(tmp_path, seed=3)
    clock, out, signer = ScriptedClock(times), tmp_path / "out", keygen(tmp_path / "k")
    if exported_at is not None:
        export_batches(storage, signer, out, exported_at)
    app = create_app(storage, code_key=KEY, export_dir=out, signer=signer, clock=clock, export_every=0.01)
    with TestClient(app):
        deadline = time.monotonic() + 60
        while clock.readings <= len(times) and time.monotonic() < deadline:  # every time read, the last export done
            time.sleep(0.01)
    try:
        return storage.count_keys(), (out / INDEX_FILE).read_text().split(), len(list(out.glob("*.zip")))
    finally:
        storage.close()


def test_an_export_at_a_clock_a_month_ahead_deletes_nothing(tmp_path: Path) -> None:
    left, index, files = run_exports(tmp_path, [NOW + 3600, NOW + 30 * DAY_SECONDS, NOW + 7200])
    assert (left, len(index), files) == (5, 5, 5)  # was (0, 0, 0)


def test_a_clock_still_ahead_at_the_next_export_deletes_what_is_past_the_retention(tmp_path: Path) -> None:
    """The server was off a month: the retention holds one export later."""
    left, index, files = run_exports(tmp_path, [NOW + 3600, NOW + 30 * DAY_SECONDS, NOW + 30 * DAY_SECONDS + 3600])
    assert (left, index, files) == (0, [], 0)


def test_a_server_started_with_its_clock_a_month_ahead_deletes_nothing(tmp_path: Path) -> None:
    """A bad RTC is most often found at boot: the first export of a run compares with the last export's time
    (kept in the database), as the daemon compares with its newest record."""
    left, index, files = run_exports(tmp_path, [NOW + 30 * DAY_SECONDS, NOW + 7200], exported_at=NOW + 3600)
    assert (left, len(index), files) == (5, 5, 5)  # was (0, 0, 0)


def test_the_held_export_s_index_still_lists_every_file_it_kept(tmp_path: Path) -> None:
    """Between the held export and the next (an hour), index.txt listed only the files of the 14 days
    before the jumped clock: none of the kept ones, so a phone polling then saw none of them."""
    storage = storage_with_five_past_days(tmp_path, seed=4)
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    try:
        export_batches(storage, signer, out, NOW + 3600)
        before = (out / INDEX_FILE).read_text().split()
        export_batches(storage, signer, out, NOW + 30 * DAY_SECONDS, hold=True)
        held = (out / INDEX_FILE).read_text().split()
    finally:
        storage.close()
    assert len(before) == 5 and held[: len(before)] == before  # was []


def test_a_held_export_publishes_no_key_still_on_air(tmp_path: Path) -> None:
    """Today's key waits for its validity to end (the embargo: published while still broadcast, it lets anyone
    follow its owner for the rest of the day).  At a clock jumped past midnight the held export published it:
    uploaded at 12:00 UTC, out at the export of 13:00 whose clock read 01:00 the next day."""
    storage = open_storage(str(tmp_path / "s.db"))
    today = empty_keys(1)
    today["key"], today["rolling_start"], today["rolling_period"] = b"\x07" * 16, rolling_start(NOW), ROLLING_PERIOD
    storage.insert_keys_unchecked(today, NOW)
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    try:
        export_batches(storage, signer, out, NOW + 12 * 3600 + 1800, hold=True)
        waiting = storage.pending_keys(max_end_interval=2**31 - 1, min_start_interval=0)[0]
    finally:
        storage.close()
    assert bytes(waiting["key"][0]) == b"\x07" * 16 and len(list(out.glob("*.zip"))) == 0  # was exported, 1 file
