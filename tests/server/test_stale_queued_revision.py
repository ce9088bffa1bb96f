"""A revision queued that no file may carry: one a file already carried (a revocation that raced an export
on PostgreSQL queued one again until 26ea10c), or one a revocation undid.  Until srv21 one such row made every
export record nothing (its ``carried = 0`` count never matched) until its key aged out: no key and no revision
was published for up to 14 days.  Each row here is planted as such a path would leave it; the export drops it
with a warning, queues the key as it stands if that revision is carried by no file, and goes on: nothing
published twice, nothing undone published.  On SQLite and PostgreSQL (the ``storage`` fixture)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from revision_helpers import KEYS, export_kinds, revision_body, upload_keys
from server_helpers import KEY, NOW, revoked_during

from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.keyformat.keys import empty_keys
from bluezone.server.exports import ExportConfig, export_batches
from bluezone.server.codes import issue_code
from bluezone.server.publish import PublishConfig, publish
from bluezone.server.signing import keygen
from bluezone.server.status import server_status
from bluezone.server.storage import CONFIRMED, LIKELY, RECURSIVE, Storage, open_storage, queue_rows


def _requeue_as_standing(storage: Storage) -> None:
    """KEYS queued again as they stand: what the revocation of 26ea10c did after an export carried that revision."""
    with storage._transaction() as cur:
        storage._queue_keys(cur, "revision_queue", "k.key_data IN (?, ?)", KEYS)


def _queued(storage: Storage) -> list[tuple[int, int]]:
    with storage._transaction(write=False) as cur:
        return [tuple(r) for r in storage._exec(cur, "SELECT revision_id, key_id FROM revision_queue ORDER BY 1")]


def _revisions(storage: Storage) -> list[tuple[int, int, int]]:
    with storage._transaction(write=False) as cur:
        return [tuple(r) for r in storage._exec(cur, "SELECT id, key_id, carried FROM key_revisions ORDER BY id")]


def test_a_queued_revision_a_file_carried_is_dropped_and_exports_go_on(
    storage: Storage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    signer, out = keygen(tmp_path / "keys"), tmp_path / "exports"
    _, first = upload_keys(storage, "recursive")
    assert export_kinds(storage, signer, out, NOW + 20) == ({k: RECURSIVE for k in KEYS}, {})
    upload_keys(storage, "likely", first.revision_token, at=NOW + 30)
    assert export_kinds(storage, signer, out, NOW + 40) == ({}, {k: LIKELY for k in KEYS})
    _requeue_as_standing(storage)  # the likely revisions, carried, queued again
    assert len(_queued(storage)) == 2
    before = server_status(storage, NOW + 45)
    assert before.stale_revisions == 2 and before.as_dict()["stale_revisions"] == 2
    assert any("2 queued revision(s)" in line for line in before.lines())

    other = [b"\x41" * 16]
    _upload_other(storage, other)
    with caplog.at_level(logging.WARNING, "bluezone.server"):
        keys, revised = export_kinds(storage, signer, out, NOW + 50, only=None)  # raised ServerStorageError before srv21
    assert other[0] in keys and revised == {}  # the new key published, the likely revisions not a second time
    assert _queued(storage) == []
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("2 queued revision(s)" in m and "already carried" in m for m in warned), warned
    after = server_status(storage, NOW + 55)
    assert after.stale_revisions == 0 and after.revisions_dropped == 2
    assert export_kinds(storage, signer, out, NOW + 60) == ({}, {})


def test_a_queued_revision_in_place_of_the_standing_one_is_dropped_and_the_standing_one_goes_out(
    storage: Storage, tmp_path: Path
) -> None:
    """The row named the likely revision (carried) where the confirmed one (carried by no file) should wait: the
    export drops it and queues the keys as they stand, so the confirmation still goes out, once."""
    signer, out = keygen(tmp_path / "keys"), tmp_path / "exports"
    _, first = upload_keys(storage, "recursive")
    export_kinds(storage, signer, out, NOW + 20)
    _, second = upload_keys(storage, "likely", first.revision_token, at=NOW + 30)
    export_kinds(storage, signer, out, NOW + 40)
    upload_keys(storage, "confirmed", second.revision_token, at=NOW + 50)
    with storage._transaction() as cur:
        storage._exec(cur, "DELETE FROM revision_queue")
        storage._queue_revisions(cur, "revision_queue", _rows_as_likely(storage, cur), _likely_ids(storage, cur))
    assert export_kinds(storage, signer, out, NOW + 60) == ({}, {k: CONFIRMED for k in KEYS})
    assert all(carried for _, _, carried in _revisions(storage))
    assert export_kinds(storage, signer, out, NOW + 70) == ({}, {})


def test_a_queued_revision_a_revocation_undid_is_never_published(storage: Storage, tmp_path: Path) -> None:
    """Its row left behind, the revision gone: dropped, and the keys stand (and are queued) as nothing newer."""
    signer, out = keygen(tmp_path / "keys"), tmp_path / "exports"
    _, first = upload_keys(storage, "recursive")
    export_kinds(storage, signer, out, NOW + 20)
    upload_keys(storage, "likely", first.revision_token, at=NOW + 30)
    with storage._transaction() as cur:
        storage._exec(cur, "DELETE FROM key_revisions")
        storage._exec(cur, "UPDATE exposure_keys SET revised_report_type = NULL, revised_days_since_onset = NULL,"
                           " revised_at = NULL, revised_code_hash = NULL")
    assert len(_queued(storage)) == 2
    other = [b"\x42" * 16]
    _upload_other(storage, other)
    keys, revised = export_kinds(storage, signer, out, NOW + 60, only=None)
    assert other[0] in keys and revised == {}
    assert _queued(storage) == []


def test_settling_beside_a_revocation_of_the_same_keys_is_no_deadlock(
    postgres_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settling deleted a stale row and then locked its key; a revocation of the key's upload code locks the
    key and then deletes its queue rows: each waited for the other and PostgreSQL aborted one (srv21, reasoned;
    reproduced by the lead). The settling now locks the keys first, as a revocation does."""
    import threading

    revoker, exporter = open_storage(postgres_dsn), open_storage(postgres_dsn)
    try:
        code, first = upload_keys(revoker, "recursive")  # not exported: the keys still wait in export_queue
        upload_keys(revoker, "likely", first.revision_token, at=NOW + 30)
        with revoker._transaction() as cur:  # the likely revisions undone under their queue rows: stale rows
            revoker._exec(cur, "DELETE FROM key_revisions")
            revoker._exec(cur, "UPDATE exposure_keys SET revised_report_type = NULL, revised_days_since_onset = NULL,"
                               " revised_at = NULL, revised_code_hash = NULL")
        assert exporter.stale_revisions() == (2, 0)
        held, go = threading.Event(), threading.Event()
        run = exporter._exec

        def pausing(cur: Any, sql: str, *args: Any) -> Any:
            """Held once the stale rows are deleted (their rows locked), before the settling goes on."""
            out = run(cur, sql, *args)
            if sql.startswith("DELETE FROM revision_queue WHERE revision_id BETWEEN") and not held.is_set():
                held.set()
                assert go.wait(30)
            return out

        monkeypatch.setattr(exporter, "_exec", pausing)
        said = revoked_during(postgres_dsn, revoker, code, NOW + 40, held, go, settle=exporter.settle_revision_queue)
        assert "settle" in said and "revoked" in said, said
        assert said["settle"] == (2, 0) and said["revoked"].withheld.keys == 2
        assert _queued(revoker) == [] and revoker.stale_revisions() == (0, 2)
    finally:
        exporter.close()
        revoker.close()


def _upload_other(storage: Storage, keys: list[bytes]) -> None:
    """``keys`` uploaded new under a confirmed code: what the next export must publish."""
    code = issue_code(storage, NOW, key=KEY, test_type="confirmed").code
    publish(storage, revision_body(code, None, keys), "192.0.2.2", NOW + 35, PublishConfig(), code_key=KEY)


def _likely_ids(storage: Storage, cur: Any) -> list[int]:
    return [int(i) for (i,) in storage._exec(cur, "SELECT id FROM key_revisions WHERE report_type = ? ORDER BY key_id",
                                             [LIKELY]).fetchall()]


def _rows_as_likely(storage: Storage, cur: Any) -> list[tuple[int, int, int, bytes]]:
    """The keys' queue rows as they stood revised likely (what a file carried)."""
    rows = storage._exec(cur, "SELECT k.id, k.key_data, k.rolling_start, k.rolling_period, k.transmission_risk, r.id"
                              " FROM exposure_keys k JOIN key_revisions r ON r.key_id = k.id AND r.report_type = ?"
                              " ORDER BY k.id", [LIKELY]).fetchall()
    keys = empty_keys(len(rows))
    keys["key"] = [bytes(r[1]) for r in rows]
    keys["rolling_start"], keys["rolling_period"] = [r[2] for r in rows], [r[3] for r in rows]
    keys["transmission_risk"], keys["report_type"] = [r[4] for r in rows], LIKELY
    return queue_rows(np.array([r[0] for r in rows], np.int64), keys, np.array([r[5] for r in rows], np.int64))


@pytest.mark.slow
def test_more_stale_rows_than_a_statement_takes_parameters_are_settled(storage: Storage, tmp_path: Path) -> None:
    """70,000 such rows (past SQLite's 32,766 and PostgreSQL's 65,535 parameters a statement): dropped in one
    export, which goes on (the first version of the settling named every key in one statement, and raised)."""
    n = 70_000
    keys = empty_keys(n)
    keys["key"] = np.frombuffer(np.random.default_rng(3).bytes(16 * n), "V16")
    keys["rolling_start"] = rolling_start(NOW) - 2 * ROLLING_PERIOD
    keys["report_type"] = LIKELY
    storage.insert_keys_unchecked(keys, NOW)
    with storage._transaction() as cur:  # each exported, revised confirmed, that carried, and queued again
        storage._exec(cur, "DELETE FROM export_queue")
        storage._exec(cur, "UPDATE exposure_keys SET revised_report_type = ?, revised_at = ?", [CONFIRMED, NOW])
        storage._exec(cur, "INSERT INTO key_revisions (key_id, report_type, revised_at, carried)"
                           " SELECT id, ?, ?, 1 FROM exposure_keys", [CONFIRMED, NOW])
        storage._queue_keys(cur, "revision_queue", "1 = 1")
    assert storage.stale_revisions() == (n, 0)
    export_batches(storage, keygen(tmp_path / "keys"), tmp_path / "exports", NOW + 60, ExportConfig())
    assert storage.stale_revisions() == (0, n) and _queued(storage) == []
