"""check_key_file: a key file matched as it streams (keys derived batch by batch, in workers, against
every RPI the store heard, revisions applied at the end) reports exactly what checking the file's
keys as one array reports: the same exposures, key rows, key count and sightings, with one job or
two, whatever the batch size, for revised, revoked and re-instated keys, for a file protobuf has to
parse after all, and the same errors for a bad or forged file."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from cryptography.hazmat.primitives.asymmetric import ec
from matching_helpers import DAY, INFO, SCORERS, SIGNER, advert_sightings, as_array, day_file, make_keys, neighbours, scene

import bluezone.keyformat.exportstream as exportstream
import bluezone.matching.check as check_module
import bluezone.matching.keystream as keystream
from bluezone.cli import cli
from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS
from bluezone.errors import ExportSignatureError, KeyFileError, NotAStoreError
from bluezone.keyformat.export import EXPORT_HEADER, build_export_bin, signed_export_zip
from bluezone.keyformat.keyfile import load_keys, load_signed_keys, write_keys_json
from bluezone.keyformat.keys import REPORT_TYPE_REVOKED
from bluezone.matching.check import check_key_file, check_keys
from bluezone.matching.receiver import StoredReceiverContext, for_receiver
from bluezone.proximity.store import SightingStore


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keystream, "BATCH", 256)
    monkeypatch.setattr(keystream, "EARLY_BATCH", 256)
    monkeypatch.setattr(exportstream, "PIECE", 4096)


class _Streams(list):
    """The key streams a check made (their batch sizes), to tell that the keys went to workers as the file was read."""


@pytest.fixture
def store_read_first(monkeypatch: pytest.MonkeyPatch) -> _Streams:
    """With jobs > 1: the store counted as read once it has been (the file waits for it), so the keys
    go to the workers from the first batch on, whichever thread would have been faster."""
    monkeypatch.setattr(check_module._HeardInBackground, "ready", lambda self: self._read.exception() is None)
    made = _Streams()

    class Recorded(keystream.KeyStream):
        def __init__(self, heard: object, jobs: int = 1, batch: int | None = None) -> None:
            made.append(batch)
            super().__init__(heard, jobs, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(check_module, "KeyStream", Recorded)
    return made


@pytest.mark.usefixtures("small_batches")
@pytest.mark.parametrize("scorer", sorted(SCORERS))
@pytest.mark.parametrize("per_rpi", [30, 1])
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_streamed_file_reports_what_its_keys_as_an_array_report(tmp_path: Path, scorer: str, per_rpi: int, jobs: int) -> None:
    path, db, file_keys, revised = day_file(tmp_path, per_rpi)
    expected = as_array(path, db, scorer)
    streamed = check_key_file(path, db, scorer=SCORERS[scorer], jobs=jobs, buffer_keys=500)
    assert streamed.streamed_keys is not None and len(streamed.keys) == 0  # no key kept
    assert streamed.as_dict() == expected.as_dict()
    assert streamed.exposures == expected.exposures
    assert streamed.key_count == len(file_keys) + 2  # the two keys published before come after the file's
    found = {e.key_index for e in streamed.exposures}
    # scene keys 1, 2, 4, 5, 7 and re-instated 6; not 0 (revoked by the revision) nor 3 (revoked in
    # the file); the new key, not the revoked new one
    assert found == {1001, 1002, 1004, 1005, 1006, 1007, len(file_keys)}
    assert {e.transmission_risk for e in streamed.exposures if e.key_index == 1001} == {7}


@pytest.mark.usefixtures("small_batches")
def test_a_small_file_is_checked_as_an_array_and_leaves_the_store_unopened_until_it_is_read(tmp_path: Path) -> None:
    path, db, file_keys, _ = day_file(tmp_path)
    whole = check_key_file(path, db, scorer=SCORERS["bluezone"])  # 3,009 keys: under a million
    assert whole.streamed_keys is None and len(whole.keys) == len(file_keys) + 2
    assert whole.as_dict() == as_array(path, db, "bluezone").as_dict()
    # streamed from the first key on: the same
    assert check_key_file(path, db, scorer=SCORERS["bluezone"], buffer_keys=0).as_dict() == whole.as_dict()
    # a bad small file is said before the store is looked at (here: there is none)
    broken = tmp_path / "broken.bin"
    broken.write_bytes(build_export_bin(file_keys, region="VN")[:-5])
    with pytest.raises(KeyFileError, match="broken.bin"):
        check_key_file(broken, tmp_path / "missing.db", scorer=SCORERS["bluezone"])
    with pytest.raises(NotAStoreError):  # streamed: the store is opened once the first keys are in
        check_key_file(path, tmp_path / "missing.db", scorer=SCORERS["bluezone"], buffer_keys=0)


@pytest.mark.parametrize("scorer", sorted(SCORERS))
@pytest.mark.parametrize("per_rpi", [30, 1])
def test_a_small_file_checked_with_the_store_read_while_it_is_read_reports_the_same(tmp_path: Path, scorer: str, per_rpi: int) -> None:
    """With jobs > 1 the store's RPIs of every day are read in a thread while the file is read (the
    keys' days not yet known), not those of the keys' days after it: the same report."""
    path, db, file_keys, _ = day_file(tmp_path, per_rpi)
    expected = as_array(path, db, scorer)
    overlapped = check_key_file(path, db, scorer=SCORERS[scorer], jobs=2)
    assert overlapped.streamed_keys is None and len(overlapped.keys) == len(file_keys) + 2
    assert overlapped.as_dict() == expected.as_dict()
    assert overlapped.exposures == expected.exposures


@pytest.mark.usefixtures("small_batches")
@pytest.mark.parametrize("scorer", sorted(SCORERS))
@pytest.mark.parametrize("per_rpi", [30, 1])
def test_a_small_file_derived_as_it_is_read_reports_what_the_array_reports(
    tmp_path: Path, scorer: str, per_rpi: int, store_read_first: _Streams
) -> None:
    """With jobs > 1 a file's keys go to the workers as it is read, once the store has been read, and
    are kept too: the file, which fits, is still had whole (revisions applied as to an array, no
    second pass), and the report is the array's."""
    path, db, file_keys, _ = day_file(tmp_path, per_rpi)
    expected = as_array(path, db, scorer)
    early = check_key_file(path, db, scorer=SCORERS[scorer], jobs=2)
    assert store_read_first == [256]  # a stream, from the first keys on
    assert early.streamed_keys is None and len(early.keys) == len(file_keys) + 2
    assert np.array_equal(early.keys, expected.keys)
    assert early.as_dict() == expected.as_dict()
    assert early.exposures == expected.exposures


@pytest.mark.usefixtures("small_batches")
@pytest.mark.parametrize("widened", [False, True])
def test_with_two_jobs_the_sightings_are_counted_beside_the_last_keys(
    tmp_path: Path, store_read_first: _Streams, monkeypatch: pytest.MonkeyPatch, widened: bool
) -> None:
    """With jobs > 1 the file's span is known once it is read: its usable sightings are counted in a
    thread while the last keys derive.  A revised key the file lacks, valid days after every key of
    the file and heard then, widens the span: counted again, here.  The report is the array's."""
    path, db, file_keys, revised = day_file(tmp_path)
    if widened:
        later_tek = b"L" * 16
        revised = np.concatenate([revised, make_keys([(later_tek, DAY + 3 * 144, 144)], risk=4)])
        with SightingStore.open(db) as store:
            store.add_sightings(advert_sightings(later_tek, DAY + 3 * 144 + 20, (DAY + 3 * 144 + 20) * INTERVAL_SECONDS + np.arange(0, 600, 15.0), rssi=-60))
        path.write_bytes(signed_export_zip(file_keys, SIGNER, INFO, region="VN", revised_keys=revised))
    expected = as_array(path, db, "bluezone")
    counted: list[tuple[str, tuple[float, float]]] = []
    count_usable = SightingStore.count_usable

    def recorded(self: SightingStore, since: float, until: float) -> int:
        counted.append((threading.current_thread().name, (since, until)))
        return count_usable(self, since, until)

    monkeypatch.setattr(SightingStore, "count_usable", recorded)
    beside = check_key_file(path, db, scorer=SCORERS["bluezone"], jobs=2)
    assert store_read_first == [256]  # streamed to the workers as it was read
    assert beside.as_dict() == expected.as_dict() and beside.sightings > 0
    assert counted[0][0].startswith("bluezone-count")
    if widened:  # the thread's count was for the file's keys alone: counted again for the wider span
        assert len(counted) == 2 and counted[1][0] == threading.current_thread().name and counted[1][1] != counted[0][1]
        assert any(e.key_index == len(file_keys) + 2 for e in beside.exposures)  # the later key matched
    else:
        assert len(counted) == 1


def _open_files(path: Path) -> int:
    """How many of this process's file descriptors are open on ``path``."""
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == str(path.resolve())) if fds.is_dir() else 0


def test_the_store_read_beside_the_file_leaves_no_thread_and_no_open_store(tmp_path: Path) -> None:
    path, db, file_keys, _ = day_file(tmp_path)
    threads = threading.active_count()
    check_key_file(path, db, scorer=SCORERS["bluezone"], jobs=2)
    assert threading.active_count() == threads and _open_files(db) == 0
    # a bad file's error comes first, as with one job, though the store was looked at meanwhile
    broken = tmp_path / "broken.bin"
    broken.write_bytes(build_export_bin(file_keys, region="VN")[:-5])
    for store in (tmp_path / "missing.db", db):
        with pytest.raises(KeyFileError, match="broken.bin"):
            check_key_file(broken, store, scorer=SCORERS["bluezone"], jobs=2)
    # a good file with no store: the store's error
    with pytest.raises(NotAStoreError):
        check_key_file(path, tmp_path / "missing.db", scorer=SCORERS["bluezone"], jobs=2)
    assert threading.active_count() == threads and _open_files(db) == 0


@pytest.mark.usefixtures("small_batches")
def test_a_file_without_revisions_and_a_json_file_stream_too(tmp_path: Path) -> None:
    keys, rows = scene()
    db = tmp_path / "store.db"
    with SightingStore.open(db) as store:
        store.add_sightings(rows)
    zipped, plain = tmp_path / "k.zip", tmp_path / "k.json"
    zipped.write_bytes(signed_export_zip(keys, SIGNER, INFO, region="VN"))
    write_keys_json(keys, plain)
    expected = check_keys(keys, db, scorer=SCORERS["bluezone"]).as_dict()
    for path in (zipped, plain):
        assert check_key_file(path, db, scorer=SCORERS["bluezone"], buffer_keys=0, jobs=2).as_dict() == expected


@pytest.mark.usefixtures("small_batches")
def test_a_file_protobuf_parses_after_all_is_matched_once(tmp_path: Path) -> None:
    """An odd field at the end (a two-byte tag) sends the file to protobuf after every key has
    streamed: what was derived is forgotten and the keys come again, once."""
    path, db, file_keys, revised = day_file(tmp_path)
    odd = tmp_path / "odd.bin"
    body = build_export_bin(file_keys, region="VN", revised_keys=revised)
    odd.write_bytes(body + b"\xc2\x0c\x01x")  # field 200, length 1
    expected = check_keys(load_keys(odd), db, scorer=SCORERS["bluezone"])
    streamed = check_key_file(odd, db, scorer=SCORERS["bluezone"], buffer_keys=0, jobs=2)
    assert streamed.as_dict() == expected.as_dict() and streamed.key_count == len(file_keys) + 2
    assert odd.read_bytes().startswith(EXPORT_HEADER)


@pytest.mark.usefixtures("small_batches")
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_bad_key_at_the_end_of_a_streamed_file_is_the_same_error_and_nothing_is_reported(tmp_path: Path, jobs: int) -> None:
    path, db, file_keys, _ = day_file(tmp_path)
    bad = tmp_path / "bad.bin"
    entry = b"\x0a\x0f" + b"k" * 15 + b"\x10\xa0\x80\xb1\x01" + b"\x18\x90\x01"  # key_data of 15 bytes
    bad.write_bytes(build_export_bin(file_keys, region="VN") + b"\x3a" + bytes([len(entry)]) + entry)
    with pytest.raises(KeyFileError) as loaded:
        load_keys(bad)
    with pytest.raises(KeyFileError) as streamed:
        check_key_file(bad, db, scorer=SCORERS["bluezone"], buffer_keys=0, jobs=jobs)
    assert str(streamed.value) == str(loaded.value)
    assert f"keys[{len(file_keys)}]: key_data must be 16 bytes, got 15" in str(loaded.value)


@pytest.mark.usefixtures("small_batches")
def test_a_forged_streamed_zip_is_refused_as_before_and_the_store_is_unchanged(tmp_path: Path) -> None:
    path, db, _, _ = day_file(tmp_path)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(ExportSignatureError) as loaded:
        load_signed_keys(path, other, "310")
    before = db.read_bytes()
    with pytest.raises(ExportSignatureError) as streamed:
        check_key_file(path, db, scorer=SCORERS["bluezone"], buffer_keys=0, jobs=2, public_key=other, key_id="310")
    assert str(streamed.value) == str(loaded.value)
    with SightingStore.open(db) as store:
        assert len(store.sightings()) > 0
    assert db.read_bytes() == before
    good = check_key_file(path, db, scorer=SCORERS["bluezone"], buffer_keys=0, public_key=SIGNER.public_key(), key_id="310")
    assert good.as_dict() == as_array(path, db, "bluezone", public_key=SIGNER.public_key(), key_id="310").as_dict()


def test_bluezone_check_streams_a_large_file_and_prints_what_it_did(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, db, file_keys, _ = day_file(tmp_path)
    runner = CliRunner()
    before = runner.invoke(cli, ["check", "--keys", str(path), "--db", str(db), "--json", "--jobs", "2"])
    text_before = runner.invoke(cli, ["check", "--keys", str(path), "--db", str(db), "--jobs", "1"])
    monkeypatch.setattr(keystream, "BUFFER_KEYS", 100)
    monkeypatch.setattr(keystream, "BATCH", 256)
    after = runner.invoke(cli, ["check", "--keys", str(path), "--db", str(db), "--json", "--jobs", "2"])
    text_after = runner.invoke(cli, ["check", "--keys", str(path), "--db", str(db), "--jobs", "1"])
    assert before.exit_code == after.exit_code == 0, after.output
    assert json.loads(after.output) == json.loads(before.output)
    assert json.loads(after.output)["keys"] == len(file_keys) + 2
    assert text_after.output == text_before.output and f"from {len(file_keys) + 2} keys" in text_after.output
    broken = tmp_path / "broken.zip"
    broken.write_bytes(path.read_bytes()[:-200])
    failed = runner.invoke(cli, ["check", "--keys", str(broken), "--db", str(db)])
    assert failed.exit_code == 2 and len(failed.output.strip().splitlines()) == 1 and str(broken) in failed.output


_TEKS = [bytes(np.random.default_rng(100 + i).bytes(16)) for i in range(6)]  # 0-3 heard, 4-5 never


@pytest.fixture(scope="module")
def heard_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store that heard the first four of ``_TEKS`` on the scene's first day, among neighbours."""
    rng = np.random.default_rng(11)
    rows = [neighbours(rng, DAY + 40, 30, 4, 10)]
    for i, tek in enumerate(_TEKS[:4]):
        first = DAY + 60 + 7 * i
        rows.append(advert_sightings(tek, first, first * INTERVAL_SECONDS + np.arange(0, 900, 20.0), rssi=-60 - 5 * i))
    db = tmp_path_factory.mktemp("heard") / "store.db"
    with SightingStore.open(db) as store:
        store.add_sightings(np.concatenate(rows))
    return db


_entries = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 8)), max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    keys=_entries, revised=_entries, jobs=st.sampled_from([1, 2]), buffer_keys=st.sampled_from([0, None]),
    store_first=st.booleans(),
)
def test_any_revisions_stream_as_the_array_reads_them(
    heard_store: Path, keys: list, revised: list, jobs: int, buffer_keys: int | None, store_first: bool
) -> None:
    """Keys drawn from heard and unheard daily keys, repeated, in any report type; revisions of
    them or of keys the file lacks, repeated, revoking or not: streamed (``buffer_keys`` 0), or kept
    whole (with ``jobs`` 2 the store read meanwhile, and with ``store_first`` the keys derived as
    they come, in batches of two, by the worker and this process), == as an array."""
    def rows(entries: list) -> np.ndarray:
        out = make_keys([(_TEKS[t], DAY, 144) for t, _, _ in entries])
        out["report_type"] = [r for _, r, _ in entries]
        out["transmission_risk"] = [k for _, _, k in entries]
        return out

    with tempfile.TemporaryDirectory() as where, pytest.MonkeyPatch.context() as patch:
        patch.setattr(keystream, "BATCH", 2)
        patch.setattr(keystream, "EARLY_BATCH", 2)
        patch.setattr(exportstream, "PIECE", 64)
        patch.setattr(check_module._HeardInBackground, "ready", lambda self: store_first and self._read.exception() is None)
        path = Path(where) / "k.zip"
        path.write_bytes(signed_export_zip(rows(keys), SIGNER, INFO, region="VN", revised_keys=rows(revised)))
        expected = check_keys(load_keys(path), heard_store, scorer=SCORERS["gaen"]).as_dict()
        streamed = check_key_file(path, heard_store, scorer=SCORERS["gaen"], jobs=jobs, buffer_keys=buffer_keys)
        assert streamed.as_dict() == expected


class _Watched:
    """A scorer noting, each time it scores a window, whether the check's key stream still had its
    workers (the last keys not yet derived), and scoring as ``inner`` does."""

    def __init__(self, inner: object, streams: list[keystream.KeyStream], seen: list[bool]) -> None:
        self.inner, self.streams, self.seen = inner, streams, seen

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def for_receiver(self, context: object) -> _Watched:
        return _Watched(for_receiver(self.inner, context), self.streams, self.seen)

    def score(self, window: object) -> object:
        self.seen.append(self.streams[-1].workers is not None)
        return self.inner.score(window)  # type: ignore[attr-defined]


@pytest.mark.usefixtures("small_batches")
@pytest.mark.parametrize("scorer", sorted(SCORERS))
def test_with_two_jobs_a_whole_files_exposures_are_scored_while_the_worker_derives(
    tmp_path: Path, scorer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With jobs > 1, a file that fits and revises only its own keys has its span once it is read:
    each batch's exposures are scored as the batch is found, while the worker still derives the
    last ones, not all after the last key (issue 17, twenty-second session).  The scene's keys are
    spread over the file's batches, some revised, one revoked: the report is the array's, exposures
    in the same order."""
    keys, rows = scene(per_rpi=30)
    rng = np.random.default_rng(9)
    filler = make_keys([(bytes(rng.bytes(16)), DAY + int(rng.integers(0, 288)), 144) for _ in range(3000)])
    at = np.arange(len(keys)) * 350 + 100  # one scene key every 350 rows: many batches of 256 find one
    file_keys = np.insert(filler, at - np.arange(len(keys)), keys)
    assert np.array_equal(file_keys[at], keys)
    revised = file_keys[at[[0, 1]]].copy()  # scene key 0 revoked by a negative test, key 1's risk revised
    revised["report_type"] = [REPORT_TYPE_REVOKED, 1]
    revised["transmission_risk"][1] = 7
    path = tmp_path / "day.zip"
    path.write_bytes(signed_export_zip(file_keys, SIGNER, INFO, region="VN", revised_keys=revised))
    db = tmp_path / "store.db"
    with SightingStore.open(db) as store:
        store.add_sightings(rows)
    expected = as_array(path, db, scorer)
    streams: list[keystream.KeyStream] = []

    class Kept(keystream.KeyStream):
        def __init__(self, heard: object, jobs: int = 1, batch: int | None = None) -> None:
            super().__init__(heard, jobs, batch)  # type: ignore[arg-type]
            streams.append(self)

    monkeypatch.setattr(check_module, "KeyStream", Kept)
    monkeypatch.setattr(check_module._HeardInBackground, "ready", lambda self: self._read.exception() is None)
    monkeypatch.setattr(keystream, "available_cores", lambda: 2)  # a worker even on one core
    seen: list[bool] = []
    read: list[tuple[float, float]] = []
    plain_context = StoredReceiverContext._context

    def recorded(self: StoredReceiverContext, since: float, until: float, by_rpi: bool = False) -> object:
        read.append((since, until))
        return plain_context(self, since, until, by_rpi)

    monkeypatch.setattr(StoredReceiverContext, "_context", recorded)
    checked = check_key_file(path, db, scorer=_Watched(SCORERS[scorer], streams, seen), jobs=2)  # type: ignore[arg-type]
    days = [span for span in read if span[1] - span[0] > DAY_SECONDS]
    assert len(days) == len(set(days)) and (scorer != "day-shift" or days)  # each day read whole once, for every batch
    assert checked.as_dict() == expected.as_dict()
    assert checked.exposures == expected.exposures and len({e.key_index for e in checked.exposures}) >= 4
    assert {e.transmission_risk for e in checked.exposures if e.key_index == at[1]} == {7}
    assert at[0] not in {e.key_index for e in checked.exposures}  # revoked
    assert len(seen) == len(expected.exposures) and any(seen)  # scored, some while the worker still derived
