"""An export day's files rolled up once the day is a day old, so index.txt stays small at national scale.

An exporter running every 10 minutes writes one file per day of the keys it exports and one per day
of the check-ins: up to ~4,300 files a day, more than 1 MiB of index.txt over 14 days.  Once an
export day is ``rollup_after_days`` old its files are replaced by one set per day of their keys (and
of their check-ins).  A node that processed every replaced file never downloads the roll-up; one that
missed them downloads the roll-ups, not the small files; one that had some downloads the roll-up and
is not told twice.  Keys are kept no longer than before (roll-ups are cut per day of the keys).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from server_helpers import NOW, Server, check_node, make_nodes, publish_f0_with_cafe_checkin

from bluezone.client.check import SIGNED_BEFORE_REPIN, ServerCheckResult, check_server
from bluezone.client.keyserver import KeyServerClient, covered_rollups
from bluezone.client.state import ServerState
from bluezone.client.uploading import upload_own_keys
from bluezone.crypto.intervals import DAY_SECONDS, ROLLING_PERIOD, rolling_start
from bluezone.errors import InputError, RejectedBatchesError, ServerStorageError
from bluezone.keyformat.export import open_signed_export
from bluezone.keyformat.keys import empty_keys
from bluezone.keyformat.venue_export import is_venue_file, open_signed_venue_zip
from bluezone.proximity.store import SightingStore
from bluezone.server.exports import EXPORT_FILE, INDEX_FILE, ROLLUP_FILE, ExportConfig, roll_up_closed_days
from bluezone.venues.checkins import visits
from bluezone.writefile import final_name



def _random_upload(server: Server, seed: int, days: int = 6) -> None:
    """Someone else's keys for the ``days`` days before today, published."""
    rng = np.random.default_rng(seed)
    keys = empty_keys(days)
    keys["key"] = np.frombuffer(rng.bytes(16 * days), "V16")
    keys["rolling_start"] = rolling_start(server.clock.now()) - ROLLING_PERIOD * np.arange(days, 0, -1)
    keys["rolling_period"] = ROLLING_PERIOD
    server.client.publish(keys, server.code(test_type="confirmed"))


def _listed(server: Server) -> list[str]:
    return (server.exports / INDEX_FILE).read_text().split()


def _keys_in(server: Server, names: list[str]) -> tuple[set[bytes], set[bytes]]:
    """(keys, revised keys) of the listed key files ``names``, verified."""
    plain: set[bytes] = set()
    revised: set[bytes] = set()
    for name in names:
        if is_venue_file(name):
            continue
        export, _ = open_signed_export((server.exports / name).read_bytes(), server.signer.public_key)
        plain |= {bytes(k) for k in export.keys["key"]}
        revised |= {bytes(k) + bytes([t]) for k, t in zip(export.revised_keys["key"], export.revised_keys["report_type"])}
    return plain, revised


def _reports_in(server: Server, names: list[str]) -> list[bytes]:
    out: list[bytes] = []
    for name in names:
        if is_venue_file(name):
            out += [bytes(r) for r in open_signed_venue_zip((server.exports / name).read_bytes(), server.signer.public_key)]
    return sorted(out)


class Fetching:
    """check_server against ``server``, recording which files it downloads."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.fetched: list[str] = []

    def check(self, db: Path) -> ServerCheckResult:
        self.fetched = []
        client = self.server.client
        real = KeyServerClient.batch

        def batch(name: str) -> bytes:
            self.fetched.append(name)
            return real(client, name)

        client.batch = batch  # type: ignore[method-assign]
        try:
            with SightingStore.open(db, create=False) as store:
                return check_server(client, ServerState(store), now=self.server.clock.now(), load_visits=lambda: visits(store))
        finally:
            del client.batch


@pytest.fixture
def day0(tmp_path: Path) -> tuple[Server, dict[str, Path]]:
    server = Server(tmp_path)
    _, nodes = make_nodes(tmp_path)
    publish_f0_with_cafe_checkin(server, nodes)
    for seed in range(3):  # three more exports this day, with others' keys
        server.clock.advance(600)
        _random_upload(server, seed)
        server.export()
    yield server, nodes
    server.storage.close()


def _to_day(server: Server, days: int, hour: float = 12) -> None:
    """The virtual clock to ``hour`` UTC, ``days`` days after NOW's day."""
    target = NOW - NOW % DAY_SECONDS + days * DAY_SECONDS + hour * 3600
    server.clock.advance(target - server.clock.now())


def test_a_day_old_export_day_is_rolled_up_into_one_file_per_day_of_keys(day0: tuple[Server, dict[str, Path]]) -> None:
    server, _ = day0
    small = _listed(server)
    assert small and all(EXPORT_FILE.match(n) for n in small)
    keys, revised = _keys_in(server, small)
    reports = _reports_in(server, small)
    key_days = {n.split("-")[1] for n in small if not is_venue_file(n)}
    _to_day(server, 1, hour=23.9)  # a day after: not yet
    server.export()
    assert _listed(server) == small
    _to_day(server, 2, hour=0.1)  # day 0 has been over a day: rolled up
    server.export()
    listed = _listed(server)
    assert listed and all(ROLLUP_FILE.match(n) for n in listed), listed
    assert _keys_in(server, listed) == (keys, revised)  # every key and revision, once
    assert _reports_in(server, listed) == reports  # every check-in (fakes too), once
    rolled_keys = [n for n in listed if not is_venue_file(n)]
    assert {n.split("-")[1] for n in rolled_keys} == key_days and len(rolled_keys) == len(key_days)
    for name in rolled_keys:  # n: the files of that export day and key day replaced
        assert ROLLUP_FILE.match(name)["replaces"] == str(sum(1 for s in small if s.split("-")[1] == name.split("-")[1]))
    venue_rollups = [n for n in listed if is_venue_file(n)]
    assert venue_rollups and all(ROLLUP_FILE.match(n)["replaces"] == str(sum(map(is_venue_file, small))) for n in venue_rollups)
    on_disk = {p.name for p in server.exports.glob("*.zip")}
    # the replaced key files stay a day (a node may have read the old index); check-in files go at once
    assert on_disk == set(listed) | {n for n in small if not is_venue_file(n)}
    assert {b.name for b in server.storage.batches()} == set(listed)
    server.clock.advance(600)
    server.export()
    assert _listed(server) == listed  # rolled up once


def test_rollups_leave_when_their_day_of_keys_is_14_days_old(day0: tuple[Server, dict[str, Path]]) -> None:
    server, _ = day0
    _to_day(server, 2, hour=0.1)
    server.export()
    listed = _listed(server)
    oldest = min(int(n.split("-")[1]) for n in listed if not is_venue_file(n))
    server.clock.advance(oldest + DAY_SECONDS + 14 * DAY_SECONDS + 1 - server.clock.now())
    server.export()
    left = _listed(server)
    assert left and all(int(n.split("-")[1]) > oldest for n in left if not is_venue_file(n))
    assert not any((server.exports / n).exists() for n in listed if n not in left)
    newest = max(b.start_timestamp for b in server.storage.batches())
    server.clock.advance(newest + 15 * DAY_SECONDS + 1 - server.clock.now())
    server.export()
    assert _listed(server) == [] and not list(server.exports.glob("*.zip"))


def test_a_node_checking_daily_never_downloads_a_rollup(day0: tuple[Server, dict[str, Path]]) -> None:
    server, nodes = day0
    node = Fetching(server)
    first = node.check(nodes["b"])
    assert len(first.exposures) == 1 and len(first.venue_exposures) == 1 and node.fetched == _listed(server)
    server.clock.advance(3 * 3600)
    _random_upload(server, 10)
    server.export()  # after b's check: b has not seen this file yet
    _to_day(server, 1, hour=11)
    node.check(nodes["b"])
    assert node.fetched and all(EXPORT_FILE.match(n) for n in node.fetched)
    _to_day(server, 2, hour=10)
    server.export()  # day 0 rolled up
    assert all(ROLLUP_FILE.match(n) for n in _listed(server))
    again = node.check(nodes["b"])
    assert node.fetched == [] and again.exposures == [] and again.venue_exposures == []
    assert len(again.earlier) == 1 and len(again.earlier_venue) == 1  # still told, from the memory


def test_a_node_away_downloads_the_rollups_not_the_small_files(day0: tuple[Server, dict[str, Path]]) -> None:
    server, nodes = day0
    small = _listed(server)
    _to_day(server, 2, hour=10)
    server.export()
    node = Fetching(server)
    result = node.check(nodes["b"])
    assert sorted(node.fetched) == sorted(_listed(server)) and len(node.fetched) < len(small)
    assert len(result.exposures) == 1 and len(result.venue_exposures) == 1
    assert [e.score.close_contact for e in result.exposures] == [True]


def test_a_node_that_had_some_of_the_files_downloads_the_rollup_and_is_not_told_twice(
    day0: tuple[Server, dict[str, Path]],
) -> None:
    server, nodes = day0
    node = Fetching(server)
    first = node.check(nodes["b"])  # everything up to now: F0's files among them
    assert len(first.exposures) == 1
    server.clock.advance(600)
    _random_upload(server, 20)
    server.export()  # a file of day 0 b never sees as itself
    _to_day(server, 2, hour=10)
    server.export()
    again = node.check(nodes["b"])
    assert again.new_batches > 0 and set(node.fetched) <= set(_listed(server))  # the roll-ups b lacks a file of
    assert again.exposures == [] and again.venue_exposures == []
    assert len(again.earlier) == 1 and len(again.earlier_venue) == 1


def test_a_revision_of_a_rolled_up_key_reaches_a_node_told_before(tmp_path: Path) -> None:
    """F0 reports likely (b told), tests negative the same day; b, away two days, hears it withdrawn
    from the roll-up that holds both the likely keys and their revision."""
    server = Server(tmp_path)
    _, nodes = make_nodes(tmp_path)
    shutil.copy(nodes["b"], tmp_path / "b-fresh.db")  # b, had it not checked until now
    with SightingStore.open(nodes["a"], create=False) as a:
        upload_own_keys(a, server.client, server.code(test_type="likely"), NOW, include_today=False)
    server.export()
    node = Fetching(server)
    assert len(node.check(nodes["b"]).exposures) == 1
    server.clock.advance(3600)
    with SightingStore.open(nodes["a"], create=False) as a:
        upload_own_keys(a, server.client, server.code(test_type="negative"), server.clock.now(), include_today=False)
    server.export()
    _to_day(server, 2, hour=10)
    server.export()
    rolled = node.check(nodes["b"])
    assert rolled.exposures == [] and len(rolled.withdrawn) == 1 and rolled.earlier == []
    fresh = Fetching(server).check(tmp_path / "b-fresh.db")  # b had it never seen the likely keys: told nothing
    assert fresh.exposures == [] and fresh.withdrawn == []
    server.storage.close()


def test_another_exporter_rolling_up_first_leaves_nothing_behind(day0: tuple[Server, dict[str, Path]]) -> None:
    server, _ = day0
    _to_day(server, 2, hour=0.1)
    stale = server.storage.batches()  # what a second exporter read before the first recorded its roll-ups
    server.export()
    listed, on_disk = _listed(server), sorted(p.name for p in server.exports.glob("*.zip"))
    server.storage.batches = lambda since=0.0: [b for b in stale if b.end_timestamp >= since]  # type: ignore[method-assign]
    for name in {b.name for b in stale}:  # its files were still there when it read them
        if not (server.exports / name).exists():
            (server.exports / name).write_bytes(b"")
    rolled = roll_up_closed_days(server.storage, server.signer, server.exports, server.clock.now(), ExportConfig(), np.random.default_rng(1))
    del server.storage.batches
    assert rolled == [] and _listed(server) == listed
    assert {b.name for b in server.storage.batches()} == set(listed)
    left = sorted(p.name for p in server.exports.glob("*.zip") if p.stat().st_size)
    assert left == on_disk  # the loser's roll-ups removed


def test_a_failure_while_recording_leaves_the_small_files_listed(day0: tuple[Server, dict[str, Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    server, _ = day0
    small = _listed(server)
    _to_day(server, 2, hour=0.1)

    def fail(*args: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(server.storage, "replace_batches", fail)
    with pytest.raises(RuntimeError):
        server.export()
    assert _listed(server) == small and sorted(p.name for p in server.exports.glob("*.zip")) == sorted(small)
    monkeypatch.undo()
    server.export()
    assert all(ROLLUP_FILE.match(n) for n in _listed(server))


def test_a_crash_after_recording_is_finished_by_the_next_export(day0: tuple[Server, dict[str, Path]]) -> None:
    server, _ = day0
    small = _listed(server)
    _to_day(server, 2, hour=0.1)
    rolled = roll_up_closed_days(server.storage, server.signer, server.exports, server.clock.now(), ExportConfig(), np.random.default_rng(1))
    assert rolled and _listed(server) == small  # recorded; the index not rewritten yet (the crash)
    assert all((server.exports / n).exists() for n in small)  # still served to whoever read that index
    server.clock.advance(600)
    server.export()
    assert sorted(_listed(server)) == sorted(r.name for r in rolled)
    _to_day(server, 3, hour=0.1)
    server.export()
    assert sorted(p.name for p in server.exports.glob("*.zip")) == sorted(r.name for r in rolled)


def test_no_rollups_when_turned_off(day0: tuple[Server, dict[str, Path]]) -> None:
    server, _ = day0
    small = _listed(server)
    _to_day(server, 3)
    server.export(rollup_after_days=None)
    assert _listed(server) == small


@pytest.mark.parametrize("bad", [-1, 14, 20])
def test_rollup_after_days_out_of_range_is_refused(bad: int) -> None:
    with pytest.raises(InputError, match="rollup_after_days"):
        ExportConfig(rollup_after_days=bad)


def test_replace_batches_on_both_backends(storage: object) -> None:
    """The roll-up's record replaces the files' in one transaction; a second replacement records nothing."""
    from bluezone.server.storage import BatchRecord

    old = [BatchRecord(f"{int(NOW)}-86400-abcdef-{i:04d}.zip", NOW, 86400, 2 * 86400, i, 2, 3) for i in (1, 2)]
    with storage.export_transaction(np.array([], np.int64), np.array([], np.int64)) as batches:  # type: ignore[attr-defined]
        batches += old
    new = BatchRecord("86400-86400-day2xabcdef-0001.zip", NOW, 86400, 2 * 86400, 1, 1, 6)
    storage.replace_batches([b.name for b in old], [new])  # type: ignore[attr-defined]
    assert [b.name for b in storage.batches()] == [new.name]  # type: ignore[attr-defined]
    again = BatchRecord("86400-86400-day2x012345-0001.zip", NOW, 86400, 2 * 86400, 1, 1, 6)
    with pytest.raises(ServerStorageError, match="another export"):
        storage.replace_batches([b.name for b in old], [again])  # type: ignore[attr-defined]
    assert [b.name for b in storage.batches()] == [new.name]  # type: ignore[attr-defined]


def test_the_names_the_exporter_writes_are_read_as_it_means_them() -> None:
    """One definition for both sides (bluezone.keyformat.batch_names): what each part of a name means."""
    small = EXPORT_FILE.match("1763640000-1763424000-a1b2c3-0001.zip")
    assert small and (small["stamp"], small["kind"]) == ("1763640000", "1763424000")
    assert EXPORT_FILE.match("1763640000-venues-a1b2c3-0012.zip")["kind"] == "venues"
    keys = ROLLUP_FILE.match("1763596800-1763424000-day144x0a1b2c-0001.zip")
    assert keys and (keys["day"], keys["kind"], keys["replaces"], keys["start"]) == ("1763596800", "1763424000", "144", None)
    venues = ROLLUP_FILE.match("1763596800-venues-day288x0a1b2c-0002.zip")
    assert venues and (venues["kind"], venues["replaces"], venues["start"]) == ("venues", "288", None)
    before = ROLLUP_FILE.match("1763596800-venues-day288x1763424000x0a1b2c-0002.zip")  # as first written: with the day
    assert before and (before["kind"], before["replaces"], before["start"]) == ("venues", "288", "1763424000")
    assert not EXPORT_FILE.match(keys.string) and not ROLLUP_FILE.match(small.string)  # never taken for each other
    assert is_venue_file("1763596800-venues-day288x1763424000x0a1b2c-0002.zip")
    assert not is_venue_file("1763596800-1763424000-day144x0a1b2c-0001.zip")


@given(
    st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["86400", "172800", "venues"])), max_size=30),
    st.integers(0, 2), st.sampled_from(["86400", "172800", "venues"]), st.integers(0, 12),
)
def test_a_rollup_is_covered_exactly_when_every_file_it_replaces_was_processed(
    processed: list[tuple[int, str]], day: int, kind: str, replaces: int,
) -> None:
    names = {f"{d * DAY_SECONDS + 60 + i}-{k}-abcdef-0001.zip" for i, (d, k) in enumerate(processed)}
    tag = "x172800x0a1b2c" if kind == "venues" else "x0a1b2c"
    rollup = f"{day * DAY_SECONDS}-{kind}-day{replaces}{tag}-0001.zip"
    had = sum(1 for d, k in processed if (d, k) == (day, kind))
    assert (rollup in covered_rollups([rollup, "junk.zip"], names)) == (had == replaces)


def test_a_day_listed_with_two_rollups_is_never_skipped() -> None:
    """Counting cannot tell which files two roll-ups of one day hold: the node downloads both."""
    processed = {f"{DAY_SECONDS + 60 + i}-86400-abcdef-0001.zip" for i in range(3)}
    one = f"{DAY_SECONDS}-86400-day3x0a1b2c-0001.zip"
    other = f"{DAY_SECONDS}-86400-day3x0d0e0f-0001.zip"
    assert covered_rollups([one, one.replace("0001.zip", "0002.zip")], processed) == {one, one.replace("0001.zip", "0002.zip")}
    assert covered_rollups([one, other], processed) == set()
    # another kind or export day of the same names is judged on its own
    venues = f"{DAY_SECONDS}-venues-day0x0a1b2c-0001.zip"
    assert covered_rollups([one, other, venues], processed) == {venues}


@pytest.mark.parametrize(("options", "rolled"), [((), False), (("--rollup-after-days", "0"), True), (("--rollup-after-days", "0", "--no-rollups"), False)])
def test_server_export_rolls_up_as_told(tmp_path: Path, options: tuple[str, ...], rolled: bool) -> None:
    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.clock import VirtualClock
    from bluezone.server.signing import keygen
    from bluezone.server.storage import SQLiteStorage

    db, keys_dir = tmp_path / "s.db", tmp_path / "keys"
    keygen(keys_dir)
    storage = SQLiteStorage(db)
    try:
        keys = empty_keys(2)
        keys["key"] = [bytes([1]) * 16, bytes([2]) * 16]
        keys["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD * np.array([2, 1])
        keys["rolling_period"] = ROLLING_PERIOD
        storage.insert_keys_unchecked(keys, NOW)
    finally:
        storage.close()
    export = ["server", "export", "--server-db", str(db), "--signing-key-dir", str(keys_dir), *options]
    for now in (NOW, NOW + DAY_SECONDS):  # the next day: with --rollup-after-days 0 NOW's day is rolled up
        result = CliRunner().invoke(cli, export, obj={"clock": VirtualClock(now)})
        assert result.exit_code == 0, result.stderr
    listed = (tmp_path / "s-exports" / INDEX_FILE).read_text().split()
    assert len(listed) == 2 and all(bool(ROLLUP_FILE.match(n)) == rolled and bool(EXPORT_FILE.match(n)) != rolled for n in listed)


def test_bad_rollup_option_is_a_usage_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bluezone.cli import cli

    result = CliRunner().invoke(cli, ["server", "export", "--server-db", str(tmp_path / "s.db"), "--signing-key-dir",
                                      str(tmp_path), "--rollup-after-days", "14"])
    assert result.exit_code == 2 and "rollup-after-days" in result.stderr


def test_rollup_leftovers_of_a_crash_go_at_the_next_export(day0: tuple[Server, dict[str, Path]]) -> None:
    """A roll-up an earlier version wrote into the export directory but never recorded (or its copy half
    written) was deleted only once its day was past the 14 days: another exporter's roll-up lay there
    unrecorded too until it recorded it.  Roll-ups are now written beside the directory and moved in once
    recorded (bluezone/server/staging.py), so an unrecorded one there is a leftover: gone at the next export."""
    server, _ = day0
    day = int(NOW // DAY_SECONDS) * DAY_SECONDS
    key_day = day - 3 * DAY_SECONDS
    left = [f"{day}-{key_day}-day5x0a1b2c-0001.zip", f".{day}-venues-day2x{key_day}x0a1b2c-0001.zip.tmp"]
    for name in left:
        (server.exports / name).write_bytes(b"signed keys")
    listed = _listed(server)
    server.clock.advance(60)
    server.export()
    assert not any((server.exports / n).exists() for n in left) and _listed(server) == listed


def test_a_node_that_read_the_index_before_the_rollup_still_gets_every_file_it_lists(
    day0: tuple[Server, dict[str, Path]],
) -> None:
    """The replaced key files stay on disk a day after the roll-up that replaced them: a node that
    read index.txt just before that export (a check under way across it, a CDN's cached index, a
    second exporter's file not yet recorded) gets them.  Check-in files go at once (their names do
    not say their check-ins' day, which must not outlive its 14 days): their 404 no longer fails the
    whole check; they are left for the next check, which reads the roll-ups."""
    from bluezone.matching.cli import _print_check

    server, nodes = day0
    small = _listed(server)
    _to_day(server, 2, hour=0.1)
    server.export()  # day 0 rolled up
    assert all(ROLLUP_FILE.match(n) for n in _listed(server))
    node = Fetching(server)
    server.client.index = lambda: small  # type: ignore[method-assign]  # what the node read before
    try:
        result = node.check(nodes["b"])
    finally:
        del server.client.index
    venue_files = [n for n in small if is_venue_file(n)]
    assert sorted(node.fetched) == sorted(small) and len(result.exposures) == 1
    assert venue_files and result.gone == venue_files and result.as_dict()["gone_batches"] == venue_files

    @click.command()
    def show() -> None:
        _print_check(result, gaen=True)

    assert f"{len(venue_files)} listed file(s) gone when fetched" in CliRunner().invoke(show).output
    again = node.check(nodes["b"])  # the current index: the check-in roll-up, for the files gone
    assert again.venue_exposures and again.gone == [] and set(node.fetched) <= set(_listed(server))
    _to_day(server, 3, hour=0.1)  # a day after the roll-up: the key files gone from disk too
    server.export()
    assert sorted(p.name for p in server.exports.glob("*.zip")) == sorted(_listed(server))


def test_a_rollup_that_cannot_be_written_does_not_hold_back_the_export(
    day0: tuple[Server, dict[str, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A roll-up is the largest write of the day (a copy of the day's files until they go): on a disk
    with room for an export's new files but not for it, the new files are still listed (they were
    recorded as published), and the roll-up is made by a later export once there is room."""
    import bluezone.server.exports as exports

    server, _ = day0
    small = _listed(server)
    _to_day(server, 2, hour=0.1)
    _random_upload(server, 30)
    real = exports.write_file

    def full_for_rollups(path: Path, data: bytes, mode: int | None, **kw: bool) -> None:
        if not ROLLUP_FILE.match(path.name):
            return real(path, data, mode, **kw)
        with monkeypatch.context() as disk:  # as the disk fills: its copy written, not all of it kept
            disk.setattr(os, "fsync", _no_space)
            real(path, data, mode, **kw)

    monkeypatch.setattr(exports, "write_file", full_for_rollups)
    written = server.export()
    new = [b.name for b in written]
    assert new and set(_listed(server)) == set(small) | set(new)  # the new keys published, day 0 as it was
    assert not any(ROLLUP_FILE.match(final_name(p.name)) for p in server.exports.iterdir())
    monkeypatch.undo()
    server.clock.advance(600)
    server.export()
    assert set(new) <= set(_listed(server)) and not set(small) & set(_listed(server))  # rolled up now


def test_a_checkin_rollups_name_says_nothing_of_its_checkins_day(day0: tuple[Server, dict[str, Path]]) -> None:
    """A check-in's time is sealed in its report; the small files' names never said their check-ins'
    day, and a roll-up's must not either (anyone reading index.txt would learn on which day a case
    checked in somewhere, a day after the upload)."""
    server, _ = day0
    _to_day(server, 2, hour=0.1)
    server.export()
    rollups = [n for n in _listed(server) if is_venue_file(n)]
    days = {b.start_timestamp for b in server.storage.batches() if b.name in rollups}
    assert rollups and days and int(NOW // DAY_SECONDS) * DAY_SECONDS not in days  # check-ins of earlier days
    assert not any(str(d) in n for n in rollups for d in days)
    assert all(ROLLUP_FILE.match(n)["start"] is None for n in rollups) and len(set(rollups)) == len(rollups)


def _verified_with(key, exports: Path, names: list[str]) -> tuple[set[bytes], list[bytes]]:
    """The keys and check-in reports of the files ``names``, each verified with ``key`` (a Signer)."""
    keys: set[bytes] = set()
    reports: list[bytes] = []
    for name in names:
        data = (exports / name).read_bytes()
        if is_venue_file(name):
            reports += [bytes(r) for r in open_signed_venue_zip(data, key.public_key, key.info.key_id)]
        else:
            export, _ = open_signed_export(data, key.public_key, key.info.key_id)
            keys |= {bytes(k) for k in export.keys["key"]}
    return keys, sorted(reports)


def test_a_day_exported_before_a_key_rotation_is_rolled_up_and_signed_with_the_new_key(
    day0: tuple[Server, dict[str, Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After a rotation (`server keygen --force`) the days not yet rolled up were signed with the old key,
    which the roll-up checked them against the new one: each export logged 'not rolled up', and the days
    kept their small files, which a node that re-pinned the new key refuses.  Now the roll-up verifies
    them with the key that signed them (the exporter remembers the keys it signed with) and signs the
    roll-ups with the new key; a file signed by a key the server never used is still refused."""
    import logging

    from bluezone.server.exports import export_batches
    from bluezone.server.signing import keygen

    server, _ = day0
    old_keys, old_reports = _verified_with(server.signer, server.exports, _listed(server))
    rotated = keygen(tmp_path / "rotated", force=True)
    server.clock.advance(2 * DAY_SECONDS)
    with caplog.at_level(logging.WARNING, logger="bluezone.server.exports"):
        export_batches(server.storage, rotated, server.exports, server.clock.now(), ExportConfig())
    assert "not rolled up" not in caplog.text
    listed = _listed(server)
    assert not [n for n in listed if EXPORT_FILE.match(n) and int(n.split("-")[0]) < server.clock.now() - DAY_SECONDS]
    assert any(ROLLUP_FILE.match(n) for n in listed)
    keys, reports = _verified_with(rotated, server.exports, listed)  # every listed file: the new key's
    assert old_keys <= keys and old_reports == reports


def test_a_file_signed_by_a_key_the_server_never_used_is_not_rolled_up(
    day0: tuple[Server, dict[str, Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The keys a roll-up trusts are the ones the exporter signed with: a file written into the export
    directory under another key (someone with write access there) is not signed again with the server's."""
    import logging

    from bluezone.keyformat.export import signed_export_zip
    from bluezone.server.exports import export_batches
    from bluezone.server.signing import keygen

    server, _ = day0
    name = next(n for n in _listed(server) if EXPORT_FILE.match(n) and not is_venue_file(n))
    intruder = keygen(tmp_path / "intruder")
    keys = empty_keys(1)
    keys["key"] = np.frombuffer(b"\x42" * 16, "V16")
    keys["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD
    keys["rolling_period"] = ROLLING_PERIOD
    (server.exports / name).write_bytes(signed_export_zip(keys, intruder.private_key, intruder.info, region="XX"))
    server.clock.advance(2 * DAY_SECONDS)
    with caplog.at_level(logging.ERROR, logger="bluezone.server.exports"):
        export_batches(server.storage, server.signer, server.exports, server.clock.now(), ExportConfig())
    assert "not rolled up" in caplog.text and name in _listed(server)
    rolled, _ = _verified_with(server.signer, server.exports, [n for n in _listed(server) if ROLLUP_FILE.match(n)])
    assert b"\x42" * 16 not in rolled


def test_a_file_forged_with_a_leaked_old_key_is_not_signed_again_with_the_new_one(
    day0: tuple[Server, dict[str, Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A rotation because the old key leaked: whoever holds it and can write into the export directory
    replaces a listed file of a day not yet rolled up with forged keys, signed with the old key.  The
    roll-up verified each file with any key the exporter had signed with, took the forgery, and signed
    it with the new key, which every re-pinned node accepts.  Now each file's SHA-256 is recorded as it
    is written, and a roll-up reads only files still as they were written."""
    import logging

    from bluezone.keyformat.export import signed_export_zip
    from bluezone.server.exports import export_batches
    from bluezone.server.signing import keygen

    server, _ = day0
    leaked = server.signer
    name = next(n for n in _listed(server) if EXPORT_FILE.match(n) and not is_venue_file(n))
    forged = empty_keys(1)
    forged["key"] = np.frombuffer(b"\x42" * 16, "V16")
    forged["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD
    forged["rolling_period"] = ROLLING_PERIOD
    (server.exports / name).write_bytes(signed_export_zip(forged, leaked.private_key, leaked.info, region="XX"))
    rotated = keygen(tmp_path / "rotated", force=True)
    server.clock.advance(2 * DAY_SECONDS)
    with caplog.at_level(logging.ERROR, logger="bluezone.server.exports"):
        export_batches(server.storage, rotated, server.exports, server.clock.now(), ExportConfig())
    assert "not rolled up" in caplog.text and "changed since it was written" in caplog.text
    rolled, _ = _verified_with(rotated, server.exports, [n for n in _listed(server) if ROLLUP_FILE.match(n)])
    assert b"\x42" * 16 not in rolled


def test_each_file_is_recorded_with_its_sha256_and_files_recorded_before_are_rolled_up_by_signature(
    day0: tuple[Server, dict[str, Path]],
) -> None:
    """Every file's record carries the SHA-256 of its bytes (schema 14); a file recorded by an older bluezone
    has none, and its roll-up checks its signature alone, as before."""
    import hashlib

    server, _ = day0
    records = server.storage.batches()
    assert records and all(r.sha256 == hashlib.sha256((server.exports / r.name).read_bytes()).hexdigest() for r in records)
    with server.storage._transaction() as cur:
        server.storage._exec(cur, "UPDATE batches SET sha256 = NULL")
    before, reports = _keys_in(server, _listed(server))[0], _reports_in(server, _listed(server))
    server.clock.advance(2 * DAY_SECONDS)
    server.export()
    listed = _listed(server)
    assert any(ROLLUP_FILE.match(n) for n in listed)
    assert before <= _keys_in(server, listed)[0] and _reports_in(server, listed) == reports
    assert all(r.sha256 for r in server.storage.batches() if ROLLUP_FILE.match(r.name))


def test_the_exporter_remembers_the_keys_it_signed_with_until_their_files_are_gone(storage) -> None:
    storage.note_signing_key("old", 1_000.0)
    storage.note_signing_key("new", 5_000.0)
    storage.note_signing_key("old", 6_000.0)  # (two exporters on either key: the later use counts)
    assert storage.signing_keys(0) == ["old", "new"] and storage.signing_keys(5_500) == ["old"]
    storage.purge(10 * ROLLING_PERIOD, 0)  # 14 days after day 8: every file signed before then is gone
    assert storage.signing_keys(0) == []


def test_server_status_counts_the_roll_ups(day0: tuple[Server, dict[str, Path]]) -> None:
    """How many of the listed files are roll-ups was only logged by each export; `server status` says it."""
    from bluezone.server.status import server_status

    server, _ = day0
    assert server_status(server.storage, server.clock.now()).rollup_files_14_days == 0
    server.clock.advance(2 * DAY_SECONDS)
    server.export()
    rollups = [n for n in _listed(server) if ROLLUP_FILE.match(n)]
    status = server_status(server.storage, server.clock.now())
    assert rollups and status.rollup_files_14_days == len(rollups) and status.as_dict()["rollup_files_14_days"] == len(rollups)
    assert any(f"({len(rollups)} of them roll-ups)" in line for line in status.lines())


def test_a_node_that_re_pins_after_a_rotation_gets_what_it_had_not_fetched_in_the_roll_up(tmp_path: Path) -> None:
    """End to end: F0's files came out under the old key after node b's last check; the server rotated
    its key and b re-pinned the new one, so b refuses those files; the roll-up of their day, signed
    with the new key, brings F0's keys, and b finds the exposure."""
    from starlette.testclient import TestClient

    from bluezone.client.pinning import PinnedKey
    from bluezone.server.app import create_app
    from bluezone.server.exports import export_batches
    from bluezone.server.signing import keygen
    from server_helpers import URL

    server = Server(tmp_path)
    try:
        _, nodes = make_nodes(tmp_path)
        old = PinnedKey(server.signer.public_info()["public_key"], server.signer.info.key_id)
        assert check_node(server, nodes["b"], server_key=old).exposures == []  # b's last check before the rotation
        publish_f0_with_cafe_checkin(server, nodes)
        server.export()  # F0's files, signed with the old key: b has not fetched them
        rotated = keygen(tmp_path / "rotated", force=True)
        new = PinnedKey(rotated.public_info()["public_key"], rotated.info.key_id)
        # the rotation's step 2: `server run` restarted, it announces the new key (a node compares it with its pin)
        restarted = create_app(server.storage, code_key=server.code_key, export_dir=server.exports, signer=rotated,
                               clock=server.clock)
        server.client = KeyServerClient(URL, http=TestClient(restarted, base_url=URL))
        server.clock.advance(600)
        refused = check_node(server, nodes["b"], server_key=new, repin=True)
        assert refused.rejected and refused.exposures == []
        # the error line said only "does not verify against the pinned public key", exit 1 at every check until
        # the roll-up: now why (the key pinned before --repin verifies them) and that there is nothing to do
        assert set(refused.rejected.values()) == {SIGNED_BEFORE_REPIN}, refused.rejected
        assert any(is_venue_file(name) for name in refused.rejected)  # a venue file's rejection says it too
        with pytest.raises(RejectedBatchesError, match=r"signed with the server's old key: nothing to do, its roll-ups"):
            refused.raise_for_rejected()
        server.clock.advance(600)
        again = check_node(server, nodes["b"], server_key=new)  # not fetched again: the reason remembered
        assert again.rejected.keys() == refused.rejected.keys()
        assert all(why.startswith(SIGNED_BEFORE_REPIN) for why in again.rejected.values()), again.rejected
        with pytest.raises(RejectedBatchesError, match=r"\(e\.g\. .*: signed with the key pinned before --repin"):
            again.raise_for_rejected()
        server.clock.advance(2 * DAY_SECONDS)
        export_batches(server.storage, rotated, server.exports, server.clock.now(), ExportConfig())  # rolls the day up
        later = check_node(server, nodes["b"], server_key=new)
        assert [e.score.close_contact for e in later.exposures] == [True]
        assert any(ROLLUP_FILE.match(name) for name in later.batches)
    finally:
        server.storage.close()


def test_a_fifo_in_place_of_a_listed_file_does_not_stop_the_exports(
    day0: tuple[Server, dict[str, Path]], caplog: pytest.LogCaptureFixture
) -> None:
    """Whoever can write into the export directory (the roll-up's own threat: a leaked old key) put a FIFO
    where a listed file was: the roll-up opened it to check its SHA-256 and waited for a writer for ever, so
    the scheduled export never ended, no export ran again, and the server could not stop (it waits for the
    export under way).  Files the exporter reads back are now opened as regular files only, and bounded."""
    import logging
    import threading

    from bluezone.server.exports import export_batches

    server, _ = day0
    name = next(n for n in _listed(server) if EXPORT_FILE.match(n) and not is_venue_file(n))
    (server.exports / name).unlink()
    os.mkfifo(server.exports / name)
    server.clock.advance(2 * DAY_SECONDS)
    now = server.clock.now()
    export = threading.Thread(
        target=export_batches, args=(server.storage, server.signer, server.exports, now, ExportConfig()), daemon=True
    )
    with caplog.at_level(logging.ERROR, logger="bluezone.server.exports"):
        export.start()
        export.join(60)
        stuck = export.is_alive()
        if stuck:  # let the blocked open go (a writer comes and goes) so the test can end
            os.close(os.open(server.exports / name, os.O_WRONLY))
            export.join()
    assert not stuck, "the export waited on the FIFO"
    assert "not rolled up" in caplog.text


def _no_space(fd: int) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")
