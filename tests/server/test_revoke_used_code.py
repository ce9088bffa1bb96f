"""`server revoke-code` of a code already used: a health authority that revokes it expects its keys not to
go out.  What its upload stored that no export has published yet (keys, check-ins) is withheld, and it says
how many were already published (they cannot be recalled: exit 1).  Before, it only said "already used"
and the next export published every key of the upload.  On SQLite and PostgreSQL (the ``storage`` fixture)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from server_helpers import KEY, NOW, TODAY, checkin_entry, checkin_upload, uploaded

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.keyformat.export import open_signed_export
from bluezone.server.codes import CodeKey, issue_code, revoke_code
from bluezone.server.exports import ExportConfig, export_batches
from bluezone.server.publish import PublishConfig, publish
from bluezone.server.signing import Signer, keygen
from bluezone.errors import ServerStorageError
from bluezone.server.storage import Storage, Withheld, open_storage

DAY = rolling_start(NOW) - ROLLING_PERIOD


def _upload(
    storage: Storage, keys: list[bytes], *, code_key: CodeKey = KEY, checkins: int = 0, code: str | None = None
) -> str:
    """Keys of the days before NOW (and ``checkins`` check-ins) uploaded under ``code`` (a new one if None)."""
    code = code or issue_code(storage, NOW, key=code_key).code
    entries = [{"key": base64.b64encode(k).decode(), "rollingStartNumber": DAY - i * ROLLING_PERIOD} for i, k in enumerate(keys)]
    doc = json.loads(checkin_upload(code, [checkin_entry(TODAY - 1)] * checkins, keys=False))
    doc["temporaryExposureKeys"] = entries
    publish(storage, json.dumps(doc).encode(), "192.0.2.1", NOW + 5, PublishConfig(), code_key=code_key)
    return code


def _published(storage: Storage, signer: Signer, out: Path) -> set[bytes]:
    """An export now, and every uploaded (not padding) key of every key file written so far."""
    export_batches(storage, signer, out, NOW + 60, ExportConfig())
    keys: set[bytes] = set()
    for f in sorted(out.glob("*.zip")):
        export, _ = open_signed_export(f.read_bytes(), signer.public_key)
        keys |= {bytes(k) for k in uploaded(export.keys, storage)["key"]}
    return keys


def _venue_reports(storage: Storage) -> int:
    return storage.count_venue_reports()


def test_a_used_code_revoked_before_the_export_withholds_its_keys_and_check_ins(storage: Storage, tmp_path: Path) -> None:
    signer = keygen(tmp_path / "keys")
    wrong = _upload(storage, [b"\x01" * 16, b"\x02" * 16], checkins=2)
    good = _upload(storage, [b"\x03" * 16])
    reports = _venue_reports(storage)  # the two check-ins and the decoys the server mixed in (it cannot tell them apart)
    said = revoke_code(storage, wrong, NOW + 10, key=KEY)
    assert (said.state, said.withheld, said.all_withheld) == ("used", Withheld(2, reports, 0, 0), True)
    assert said.sentence().endswith(
        f"2 key(s) and {reports} check-in report(s) (decoys among them) not yet published withheld; none was published"
    )
    assert _published(storage, signer, tmp_path / "out") == {b"\x03" * 16}  # was all three
    assert _venue_reports(storage) == 0
    with storage._transaction() as cur:  # nothing of the withheld keys is left to go out later
        for table in ("export_queue", "revision_queue", "revision_tokens"):
            assert storage._exec(cur, f"SELECT COUNT(*) FROM {table}").fetchone()[0] == (table == "revision_tokens")
    again = revoke_code(storage, wrong, NOW + 20, key=KEY)  # said "already used at ..., now revoked" again
    assert (again.state, again.at, again.withheld, again.all_withheld) == ("already_revoked", NOW + 10, None, True)
    assert revoke_code(storage, good, NOW + 90, key=KEY).withheld == Withheld(0, 0, 1, 0)  # exported: said so
    # the same key, uploaded again under a right code, is stored and published (it was not only dequeued)
    _upload(storage, [b"\x01" * 16])
    assert b"\x01" * 16 in _published(storage, signer, tmp_path / "out")


def test_a_key_also_uploaded_under_another_code_is_not_withheld_by_revoking_one(storage: Storage, tmp_path: Path) -> None:
    """attack17: a key uploaded under a mistaken code, then again under the right one, kept the first code's
    hash, so revoking the mistaken code deleted it and the right upload was lost without a word."""
    signer = keygen(tmp_path / "keys")
    wrong = _upload(storage, [b"\x01" * 16, b"\x02" * 16])
    right = _upload(storage, [b"\x01" * 16])  # the same key again, under a good code
    said = revoke_code(storage, wrong, NOW + 10, key=KEY)
    assert said.withheld == Withheld(1, 0, 0, 0)  # only the key no other code uploaded
    assert _published(storage, signer, tmp_path / "out") == {b"\x01" * 16}
    assert revoke_code(storage, right, NOW + 90, key=KEY).withheld == Withheld(0, 0, 0, 0)  # shared: neither's alone


def test_what_was_already_published_is_counted_and_the_rest_withheld(storage: Storage, tmp_path: Path) -> None:
    signer = keygen(tmp_path / "keys")
    code = issue_code(storage, NOW, key=KEY).code
    today = rolling_start(NOW)  # today's key waits for the embargo: still in the queue after the export
    entries = [{"key": base64.b64encode(b"\x05" * 16).decode(), "rollingStartNumber": DAY},
               {"key": base64.b64encode(b"\x06" * 16).decode(), "rollingStartNumber": today}]
    body = json.dumps({"temporaryExposureKeys": entries, "verificationPayload": code}).encode()
    assert publish(storage, body, "192.0.2.1", NOW + 5, PublishConfig(), code_key=KEY).inserted == 2
    assert _published(storage, signer, tmp_path / "out") == {b"\x05" * 16}
    said = revoke_code(storage, code, NOW + 120, key=KEY)
    assert said.withheld == Withheld(1, 0, 1, 0) and not said.all_withheld
    assert "1 key(s) and 0 check-in report(s) already published cannot be recalled" in said.sentence()


def test_published_check_in_reports_are_said_to_hold_decoys(storage: Storage, tmp_path: Path) -> None:
    """A case who sent one visit, exported, then its code revoked: "4 check-in report(s) already published" with
    no word of the decoys the server mixed in (said only of those withheld) read as reports the server made up."""
    signer = keygen(tmp_path / "keys")
    code = _upload(storage, [b"\x09" * 16], checkins=1)
    reports = _venue_reports(storage)
    assert reports > 1  # the one check-in and its decoys
    export_batches(storage, signer, tmp_path / "out", NOW + 60, ExportConfig())  # the key and the check-ins go out
    said = revoke_code(storage, code, NOW + 120, key=KEY)
    assert said.withheld == Withheld(0, 0, 1, reports)
    assert said.sentence().endswith(
        f"1 key(s) and {reports} check-in report(s) (decoys among them) already published cannot be recalled"
    )


def test_revoke_code_command_on_used_codes(tmp_path: Path) -> None:
    keys, db = tmp_path / "keys", tmp_path / "s.db"
    signer = keygen(keys)
    storage = open_storage(db)
    try:
        waiting = _upload(storage, [b"\x07" * 16], code_key=CodeKey.load(keys))
        out = _upload(storage, [b"\x08" * 16], code_key=CodeKey.load(keys))
    finally:
        storage.close()

    def run(*args: str) -> Any:
        return CliRunner().invoke(
            cli, ["server", "revoke-code", "--server-db", str(db), "--signing-key-dir", str(keys), *args],
            obj={"clock": VirtualClock(NOW + 30)},
        )

    result = run("--code", waiting, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["withheld"] == {
        "keys": 1, "checkins": 0, "published_keys": 0, "published_checkins": 0, "revisions": 0, "published_revisions": 0,
        "vouched": 0,
    }
    storage = open_storage(db)
    try:
        assert _published(storage, signer, tmp_path / "out") == {b"\x08" * 16}
    finally:
        storage.close()
    result = run("--code", out)
    assert result.exit_code == 1
    assert result.output.startswith("Error: code already used at 2025-11-20T12:00:05+00:00, now revoked: 0 key(s)")
    assert "1 key(s) and 0 check-in report(s) already published cannot be recalled" in result.output
    for code in (waiting, out):  # again: nothing to do, as for an expired code (it said "now revoked" again, exit 1)
        result = run("--code", code)
        assert result.exit_code == 0, result.output
        assert result.output == "code already revoked at 2025-11-20T12:00:30+00:00: an upload with it is refused\n"


def test_a_code_used_before_the_upgrade_says_it_cannot_withhold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bluezone.server.storage import schema

    path = tmp_path / "v14.db"
    with monkeypatch.context() as m:  # what the previous release left: schema 14, no link from a code to its keys
        m.setattr(schema, "SCHEMA_VERSION", 14)
        s = open_storage(path)
        try:
            used, unused = issue_code(s, NOW, key=KEY).code, issue_code(s, NOW, key=KEY).code
            with s._transaction() as cur:  # its upload, as that release stored it: no code with the keys
                s._exec(cur, "UPDATE codes SET used_at = ? WHERE code_hash = ?", [NOW + 5, KEY.hash(used)])
        finally:
            s.close()
    s = open_storage(path)
    try:
        said = revoke_code(s, used, NOW + 10, key=KEY)
        assert said.state == "used" and said.withheld is None and not said.all_withheld
        assert "used before this version kept which keys a code uploaded" in said.sentence()
        _upload(s, [b"\x0a" * 16], code=unused)  # issued before the upgrade, used after: its keys are known
        assert revoke_code(s, unused, NOW + 10, key=KEY).withheld == Withheld(1, 0, 0, 0)
        assert s.count_keys() == 0
    finally:
        s.close()


def test_an_export_that_read_the_keys_before_the_revocation_publishes_none_of_them(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export read the queue, then the code was revoked before it recorded its files: it records nothing
    and drops its files (said as a revocation or another export, not only "another export"); the next export
    publishes the rest, never the withheld keys."""
    signer = keygen(tmp_path / "keys")
    wrong = _upload(storage, [b"\x0b" * 16])
    _upload(storage, [b"\x0c" * 16])
    taking = storage.export_transaction

    def revoked_meanwhile(*args: Any) -> Any:
        monkeypatch.setattr(storage, "export_transaction", taking)
        assert revoke_code(storage, wrong, NOW + 30, key=KEY).withheld == Withheld(1, 0, 0, 0)
        return taking(*args)

    monkeypatch.setattr(storage, "export_transaction", revoked_meanwhile)
    with pytest.raises(ServerStorageError, match="another export published, or a code revocation withheld,"):
        export_batches(storage, signer, tmp_path / "out", NOW + 60, ExportConfig())
    assert not list((tmp_path / "out").glob("*.zip"))
    assert _published(storage, signer, tmp_path / "out") == {b"\x0c" * 16}


def test_an_upload_after_the_revocation_that_draws_a_withheld_keys_id_is_not_lost(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export read the queue; the code was revoked (its keys, the largest ids, deleted) and a new upload
    stored its keys before the export recorded its files.  SQLite draws the largest id deleted again, so the
    new keys had the withheld keys' ids: the export's take-out found as many ids as it read, recorded files
    carrying the withheld keys and took the new ones out of the queue unpublished.  Now it records nothing."""
    signer = keygen(tmp_path / "keys")
    wrong = _upload(storage, [b"\x0d" * 16, b"\x0e" * 16])
    taking = storage.export_transaction

    def revoked_and_uploaded_meanwhile(*args: Any) -> Any:
        monkeypatch.setattr(storage, "export_transaction", taking)
        assert revoke_code(storage, wrong, NOW + 30, key=KEY).withheld == Withheld(2, 0, 0, 0)
        _upload(storage, [b"\x1d" * 16, b"\x1e" * 16])
        return taking(*args)

    monkeypatch.setattr(storage, "export_transaction", revoked_and_uploaded_meanwhile)
    with pytest.raises(ServerStorageError, match="a code revocation withheld"):
        export_batches(storage, signer, tmp_path / "out", NOW + 60, ExportConfig())
    assert not list((tmp_path / "out").glob("*.zip"))  # was: the withheld keys published
    assert _published(storage, signer, tmp_path / "out") == {b"\x1d" * 16, b"\x1e" * 16}  # was: none
