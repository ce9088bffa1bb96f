"""Export files padded with fake keys: a quiet export window no longer gives a file of one person's keys.

Without padding one upload in an export's minutes became one file per day of its keys, each holding
that key alone, all named with the export's time: the files said which keys were one person's.  Each
file of fewer than ``min_keys_per_file`` keys of its own is filled with fakes that copy a real key's
fields but the key, so that neither the count nor the fields tell who uploaded; the server counts them
apart (``padding_keys``) and roll-ups keep them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from server_helpers import NOW, Server, check_node, make_nodes, uploaded

from bluezone.crypto.intervals import DAY_SECONDS, ROLLING_PERIOD, rolling_start
from bluezone.errors import InputError
from bluezone.keyformat.export import open_signed_export
from bluezone.keyformat.keys import empty_keys
from bluezone.proximity.store import SightingStore
from bluezone.server import padding
from bluezone.server.exports import ROLLUP_FILE, ExportConfig, export_batches
from bluezone.server.signing import keygen
from bluezone.server.storage import CONFIRMED, LIKELY, RECURSIVE, REVOKED


def _keys(n_days: int, seed: int, *, per_day: int = 1, report_type: int = CONFIRMED) -> np.ndarray:
    """``per_day`` keys on each of the ``n_days`` days before NOW's, random."""
    rng = np.random.default_rng(seed)
    keys = empty_keys(n_days * per_day)
    keys["key"] = np.frombuffer(rng.bytes(16 * len(keys)), "V16")
    keys["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD * np.repeat(np.arange(n_days, 0, -1), per_day)
    keys["rolling_period"] = ROLLING_PERIOD
    keys["transmission_risk"] = rng.integers(0, 8, len(keys))
    keys["report_type"] = report_type
    keys["days_since_onset"] = rng.integers(-5, 10, len(keys))
    return keys


def _files(out: Path, batches: list, public_key) -> list[np.ndarray]:
    return [open_signed_export((out / b.name).read_bytes(), public_key)[0].keys for b in batches]


def test_one_upload_alone_gives_files_of_a_hundred_or_more_keys_that_look_alike(storage, tmp_path: Path) -> None:
    """One F0's 14 keys in an export: each day's file holds its key and 99-119 fakes, in random places,
    with the key's validity, risk, type and onset; the records count 1 key and the rest as padding."""
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    real = _keys(14, seed=1)
    storage.insert_keys_unchecked(real, NOW)
    batches = export_batches(storage, signer, out, NOW, ExportConfig(), np.random.default_rng(3))
    assert len(batches) == 14 and [b.num_keys for b in batches] == [1] * 14
    sizes = [len(k) for k in _files(out, batches, signer.public_key)]
    assert all(100 <= n <= 120 for n in sizes) and len(set(sizes)) > 1  # 100 plus 0-20 at random
    assert [b.padding_keys for b in batches] == [n - 1 for n in sizes]
    places = []
    for keys, mine in zip(_files(out, batches, signer.public_key), real):
        fields = ["rolling_start", "rolling_period", "transmission_risk", "report_type", "days_since_onset"]
        assert all((keys[f] == mine[f]).all() for f in fields)  # only the key differs
        assert len(np.unique(keys["key"])) == len(keys)
        (at,) = np.flatnonzero(keys["key"] == mine["key"])
        places.append(at / len(keys))
        assert list(uploaded(keys, storage)) == [mine]  # the server tells them apart: the fakes are nobody's keys
    assert np.ptp(places) > 0.3  # shuffled in, not first or last


def test_a_file_with_enough_keys_of_its_own_and_a_file_of_revisions_are_not_padded(storage, tmp_path: Path) -> None:
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    storage.insert_keys_unchecked(_keys(1, seed=2, per_day=130), NOW)
    (full,) = export_batches(storage, signer, out, NOW, ExportConfig())
    assert (full.num_keys, full.padding_keys) == (130, 0)
    config = ExportConfig(min_keys_per_file=0)  # off
    storage.insert_keys_unchecked(_keys(1, seed=3, per_day=2), NOW)
    (bare,) = export_batches(storage, signer, out, NOW + 60, config)
    assert (bare.num_keys, bare.padding_keys) == (2, 0) and len(_files(out, [bare], signer.public_key)[0]) == 2


def _revise_all(storage, report_type: int = CONFIRMED, days_since_onset: int = 3, at: float = NOW) -> None:
    """Every stored key not revised yet revised at ``at`` (as a publish with its revision token does),
    queued for the next export."""
    _revise(storage, "revised_at IS NULL", [], report_type, days_since_onset, at)


def _revise(storage, where: str, params: list, report_type: int, days_since_onset: int, at: float) -> None:
    """The keys ``where`` selects revised at ``at``, each revision kept (schema 17) and queued, as a publish does."""
    with storage._transaction() as cur:
        storage._exec(
            cur, "UPDATE exposure_keys SET revised_report_type = ?, revised_days_since_onset = ?, revised_at = ?"
            f" WHERE {where}", [report_type, days_since_onset, at, *params],
        )
        storage._exec(
            cur, "INSERT INTO key_revisions (key_id, report_type, days_since_onset, revised_at)"
            " SELECT id, revised_report_type, revised_days_since_onset, revised_at FROM exposure_keys WHERE revised_at = ?",
            [at],
        )
        storage._queue_keys(cur, "revision_queue", f"k.revised_at = {at!r}")


def _published(out: Path, batches: list, public_key) -> list:
    return [open_signed_export((out / b.name).read_bytes(), public_key)[0] for b in batches]


def test_a_file_of_one_persons_revisions_is_padded_with_revisions_of_earlier_fakes(storage, tmp_path: Path) -> None:
    """A likely case confirmed: each day's file of revisions holds its revised key among ~100 revisions of
    fakes published before in that day's file (the fake's key, validity and risk, the revision's new type
    and onset), counted as padding; a later revision revises other fakes, never one revised already."""
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    likely = _keys(3, seed=4, report_type=LIKELY)
    storage.insert_keys_unchecked(likely, NOW)
    first = export_batches(storage, signer, out, NOW, ExportConfig(), np.random.default_rng(1))
    assert [b.num_keys for b in first] == [1] * 3 and min(b.padding_keys for b in first) >= 99
    fakes_of_day = {b.start_timestamp: f.keys for b, f in zip(first, _published(out, first, signer.public_key))}
    _revise_all(storage, CONFIRMED, days_since_onset=3)
    revisions = export_batches(storage, signer, out, NOW + 600, ExportConfig(), np.random.default_rng(2))
    assert len(revisions) == 3
    revised_before: set[bytes] = set()
    for batch, export in zip(revisions, _published(out, revisions, signer.public_key)):
        earlier = {bytes(k["key"]): k for k in fakes_of_day[batch.start_timestamp]}
        assert len(export.keys) == 0 and 100 <= len(export.revised_keys) <= min(120, len(earlier))
        assert (batch.num_keys, batch.padding_keys) == (1, len(export.revised_keys) - 1)  # never counted as real
        (real,) = uploaded(export.revised_keys, storage)
        assert bytes(real["key"]) in {bytes(k) for k in likely["key"]}
        for revised in export.revised_keys:
            was = earlier[bytes(revised["key"])]  # every one was published before in that day's file
            assert [revised[f] for f in ("rolling_start", "rolling_period", "transmission_risk")] == [
                was[f] for f in ("rolling_start", "rolling_period", "transmission_risk")]
            assert (revised["report_type"], revised["days_since_onset"]) == (CONFIRMED, 3)  # as the real one changed
        revised_before |= {bytes(k) for k in export.revised_keys["key"]}
    # another likely upload on the first day, confirmed: its file of revisions revises fakes not revised yet
    storage.insert_keys_unchecked(_keys(3, seed=5, report_type=LIKELY)[:1], NOW + 1200)
    export_batches(storage, signer, out, NOW + 1200, ExportConfig(), np.random.default_rng(3))
    _revise_all(storage, at=NOW + 1500)
    (again,) = export_batches(storage, signer, out, NOW + 1800, ExportConfig(), np.random.default_rng(4))
    (export,) = _published(out, [again], signer.public_key)
    assert again.num_keys == 1 and again.padding_keys >= 99
    assert not revised_before & {bytes(k) for k in export.revised_keys["key"]}


def test_fakes_copy_only_new_keys_and_padding_off_pads_no_revisions(tmp_path: Path) -> None:
    """Beside new keys, fakes copy the new ones; with --min-keys-per-file 0 a revision goes out alone."""
    server = Server(tmp_path)
    storage = server.storage
    storage.insert_keys_unchecked(_keys(1, seed=4, report_type=LIKELY), NOW)
    first = server.export()
    assert [b.num_keys for b in first] == [1] and first[0].padding_keys >= 99
    _revise_all(storage)
    server.clock.advance(600)
    (revision,) = server.export(min_keys_per_file=0)
    (export,) = _published(server.exports, [revision], server.signer.public_key)
    assert (revision.num_keys, revision.padding_keys, len(export.keys), len(export.revised_keys)) == (1, 0, 0, 1)
    storage.close()


def test_roll_ups_count_revisions_of_fakes_made_on_an_earlier_export_day_as_padding(storage, tmp_path: Path) -> None:
    """A fake published one export day and revised the next: the next day's roll-up tells it apart with
    the earlier day's secret, so the roll-ups count exactly the real keys and revisions."""
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    storage.insert_keys_unchecked(_keys(2, seed=6, report_type=LIKELY), NOW)
    small = export_batches(storage, signer, out, NOW, ExportConfig())
    _revise_all(storage)
    small += export_batches(storage, signer, out, NOW + DAY_SECONDS, ExportConfig())
    assert [b.num_keys for b in small] == [1] * 4 and min(b.padding_keys for b in small) >= 99
    export_batches(storage, signer, out, NOW + 3 * DAY_SECONDS, ExportConfig())
    rollups = [b for b in storage.batches() if ROLLUP_FILE.match(b.name)]
    assert len(rollups) == 4
    assert sum(b.num_keys for b in rollups) == 4 and sum(b.padding_keys for b in rollups) == sum(b.padding_keys for b in small)


def test_a_node_that_met_f0_finds_the_same_exposure_among_the_fakes(tmp_path: Path) -> None:
    """End to end through check --server: the padded files bring F0's keys and ~100 fakes each; the
    fakes match nothing (a random 16-byte key is nobody's): each node's exposure is F0's, as unpadded."""
    server = Server(tmp_path)
    try:
        _, nodes = make_nodes(tmp_path)
        with SightingStore.open(nodes["a"], create=False) as a:
            f0 = a.daily_keys()
        from bluezone.client.uploading import keys_to_upload

        keys = keys_to_upload(f0, NOW, include_today=False)
        server.client.publish(keys, server.code(test_type="confirmed"))
        batches = server.export()
        assert sum(b.num_keys for b in batches) == 5 and sum(b.padding_keys for b in batches) >= 5 * 99
        near, far = check_node(server, nodes["b"]), check_node(server, nodes["c"])
        assert len(near.keys) == sum(b.num_keys + b.padding_keys for b in batches)
        assert [e.score.close_contact for e in near.exposures] == [True]
        assert [e.score.close_contact for e in far.exposures] == [False]
        mine = {bytes(k) for k in keys["key"]}
        assert all(bytes(r.keys[e.key_index]["key"]) in mine for r in (near, far) for e in r.exposures)
    finally:
        server.storage.close()


def test_roll_ups_keep_the_padding_and_count_it_apart(tmp_path: Path) -> None:
    """A roll-up holds every key of the files it replaces, fakes included (dropping them would show
    which keys of the small files were real), and counts them as padding, not as keys."""
    server = Server(tmp_path)
    try:
        for seed in range(3):  # three quiet exports of one upload each
            server.storage.insert_keys_unchecked(_keys(3, seed=10 + seed), server.clock.now())
            small = server.export()
            server.clock.advance(600)
        small_keys = [b for b in server.storage.batches()]
        real = sum(b.num_keys for b in small_keys)
        fakes = sum(b.padding_keys for b in small_keys)
        assert (real, len(small_keys)) == (9, 9) and fakes >= 9 * 99
        held = set()
        for b in small_keys:
            held |= {bytes(k) for k in _files(server.exports, [b], server.signer.public_key)[0]["key"]}
        server.clock.advance(2 * DAY_SECONDS)
        server.export()
        rollups = [b for b in server.storage.batches() if ROLLUP_FILE.match(b.name)]
        assert len(rollups) == 3 and small
        assert sum(b.num_keys for b in rollups) == real and sum(b.padding_keys for b in rollups) == fakes
        rolled = set()
        for b in rollups:
            rolled |= {bytes(k) for k in _files(server.exports, [b], server.signer.public_key)[0]["key"]}
        assert rolled == held
    finally:
        server.storage.close()


def test_the_padding_secret_is_one_per_export_day_and_goes_with_its_files(storage) -> None:
    first = storage.padding_secret(100, padding.new_secret())
    assert storage.padding_secret(100, padding.new_secret()) == first  # a second exporter gets the same one
    assert storage.padding_secret(101) is None and len(first) == 16
    today = 118
    storage.purge(today * ROLLING_PERIOD - 14 * ROLLING_PERIOD, 0)
    assert storage.padding_secret(100) is None


@settings(max_examples=50, deadline=None)
@given(count=st.integers(1, 200), seed=st.integers(0, 2**32 - 1))
def test_fakes_are_told_apart_with_their_secret_only(count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    real = _keys(1, seed=seed, per_day=3)
    secret = padding.new_secret()
    fakes = padding.fake_keys(real, count, secret, rng)
    both = np.concatenate([real, fakes])
    assert padding.is_fake(both, secret).tolist() == [False] * 3 + [True] * count
    assert not padding.is_fake(both, padding.new_secret()).any() and not padding.is_fake(both, None).any()
    assert len(np.unique(both["key"])) == len(both)


@pytest.mark.parametrize("bad", [{"min_keys_per_file": -1}, {"padding_range": -1}])
def test_a_negative_padding_is_refused(bad: dict) -> None:
    with pytest.raises(InputError):
        ExportConfig(**bad)


@pytest.mark.parametrize("new_onset_shift", [0, 2], ids=["onset kept", "onset moved 2 days"])
def test_revisions_of_fakes_move_their_onset_as_the_real_revision_moved_its_own(
    storage, tmp_path: Path, new_onset_shift: int
) -> None:
    """Two likely cases' keys of one day, onsets 5 days apart (days since onset 2 and -3); one is confirmed.
    A real revision moves its key's days since onset by the change of its uploader's onset (0 when the
    onset stands, as for every key of that uploader).  A fake took its first onset from either case and
    its revised onset from the confirmed one: an observer comparing the two files saw fakes move by 5 days
    while the real key moved by 0, and told them apart.  Now every revision in the file moves alike."""
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    likely = _keys(1, seed=6, per_day=2, report_type=LIKELY)
    likely["days_since_onset"] = [2, -3]
    storage.insert_keys_unchecked(likely, NOW)
    (first,) = export_batches(storage, signer, out, NOW, ExportConfig(), np.random.default_rng(5))
    (published,) = _published(out, [first], signer.public_key)
    before = {bytes(k["key"]): int(k["days_since_onset"]) for k in published.keys}
    assert set(before.values()) == {2, -3}  # fakes copied both cases
    confirmed = bytes(likely[0]["key"])
    # the first case confirmed, as a publish with its revision token does
    _revise(storage, "key_data = ?", [confirmed], CONFIRMED, 2 + new_onset_shift, NOW + 300)
    (again,) = export_batches(storage, signer, out, NOW + 600, ExportConfig(), np.random.default_rng(6))
    (revision,) = _published(out, [again], signer.public_key)
    assert again.num_keys == 1 and again.padding_keys >= 99
    moved = {bytes(k["key"]): int(k["days_since_onset"]) - before[bytes(k["key"])] for k in revision.revised_keys}
    assert moved[confirmed] == new_onset_shift
    assert set(moved.values()) == {new_onset_shift}  # the fakes' too: none moved by the other case's 5 days
    assert set(revision.revised_keys["days_since_onset"].tolist()) == {2 + new_onset_shift, -3 + new_onset_shift}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from([LIKELY, RECURSIVE]), min_size=1, max_size=30),
    st.lists(st.sampled_from([LIKELY, CONFIRMED, REVOKED]), min_size=1, max_size=10),
    st.integers(0, 2**32 - 1),
)
def test_a_fake_revision_never_keeps_its_type(fake_types: list[int], real_types: list[int], seed: int) -> None:
    """No real key is revised to the type it has (a likely one is confirmed or revoked; only a recursive one
    becomes likely): a fake likely key "revised" to likely beside a real recursive -> likely revision would
    tell the fakes, and so the real keys, apart.  ``revisable_like`` leaves out the fakes no real revision
    could move; each of the others takes a real revision to another type."""
    fakes = empty_keys(len(fake_types))
    fakes["key"] = [bytes([i]) * 16 for i in range(len(fake_types))]
    fakes["report_type"] = fake_types
    real = empty_keys(len(real_types))
    real["report_type"] = real_types
    pool = padding.revisable_like(fakes, real)
    if set(real_types) == {LIKELY}:
        assert set(pool["report_type"].tolist()) <= {RECURSIVE}
    if not len(pool):
        return
    count = np.random.default_rng(seed).integers(1, len(pool) + 1)
    revised = padding.fake_revisions(pool, real, int(count), np.random.default_rng(seed))
    before = dict(zip(pool["key"].tolist(), pool["report_type"].tolist()))
    assert all(before[k] != t for k, t in zip(revised["key"].tolist(), revised["report_type"].tolist()))
    assert set(revised["report_type"].tolist()) <= set(real_types)
