"""`server revoke-code` of a code that revised keys an earlier code uploaded (a "likely" report confirmed, or
revoked by a negative test): the revision is the revoked code's, so what no file has published yet is taken
back and the keys go out as they stood before it.  Before (schema 15), only what the revoked code's own
upload stored was withheld and the revision was published.  On SQLite and PostgreSQL (the ``storage`` fixture)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from server_helpers import KEY, NOW, revoked_while_held, uploaded

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.keyformat.export import open_signed_export
from bluezone.server.codes import CodeKey, issue_code, revoke_code
from bluezone.server.exports import ExportConfig, export_batches
from bluezone.server.publish import PublishConfig, publish
from bluezone.server.signing import Signer, keygen
from bluezone.server.storage import CONFIRMED, LIKELY, Storage, Withheld, open_storage

DAY = rolling_start(NOW) - ROLLING_PERIOD
KEYS = [b"\x21" * 16, b"\x22" * 16]


def _upload(
    storage: Storage, test_type: str, token: str | None = None, at: float = NOW + 5, code_key: CodeKey = KEY
) -> tuple[str, str]:
    """KEYS uploaded under a new code of ``test_type`` (with ``token``: a revision): the code and the token back."""
    code = issue_code(storage, NOW, key=code_key, test_type=test_type).code
    entries = [{"key": base64.b64encode(k).decode(), "rollingStartNumber": DAY - i * ROLLING_PERIOD} for i, k in enumerate(KEYS)]
    body = {"temporaryExposureKeys": entries, "verificationPayload": code, **({"revisionToken": token} if token else {})}
    result = publish(storage, json.dumps(body).encode(), "192.0.2.1", at, PublishConfig(), code_key=code_key)
    assert (result.inserted, result.revised) == ((0, len(KEYS)) if token else (len(KEYS), 0))
    return code, result.revision_token


def _files(storage: Storage, signer: Signer, out: Path, at: float) -> tuple[dict[bytes, int], dict[bytes, int]]:
    """An export at ``at``, then every uploaded key in every file so far -> its report type, and every revision."""
    export_batches(storage, signer, out, at, ExportConfig())
    keys: dict[bytes, int] = {}
    revised: dict[bytes, int] = {}
    for f in sorted(out.glob("*.zip")):
        export, _ = open_signed_export(f.read_bytes(), signer.public_key)
        for found, into in ((export.keys, keys), (export.revised_keys, revised)):
            real = uploaded(found, storage) if len(found) else found
            into.update({bytes(k["key"]): int(k["report_type"]) for k in real if bytes(k["key"]) in KEYS})
    return keys, revised


@pytest.mark.parametrize("second", ["confirmed", "negative"])
def test_a_revision_before_the_first_export_is_taken_back(storage: Storage, tmp_path: Path, second: str) -> None:
    signer = keygen(tmp_path / "keys")
    _, token = _upload(storage, "likely")
    revising, _ = _upload(storage, second, token, at=NOW + 10)
    said = revoke_code(storage, revising, NOW + 20, key=KEY)
    assert (said.withheld, said.all_withheld) == (Withheld(0, 0, 0, 0, revisions=2), True)
    assert said.sentence().endswith("0 key(s), 2 revision(s) of earlier codes' keys and 0 check-in report(s) not yet"
                                    " published withheld; none was published")
    assert _files(storage, signer, tmp_path / "out", NOW + 60) == ({k: LIKELY for k in KEYS}, {})  # was CONFIRMED/REVOKED
    # taken back, not only held: the keys can be revised again under a right code, with the same token
    _upload(storage, "confirmed", token, at=NOW + 70)
    assert _files(storage, signer, tmp_path / "out", NOW + 80)[1] == {k: CONFIRMED for k in KEYS}


def test_a_revision_of_published_keys_waiting_for_its_file_is_taken_back(storage: Storage, tmp_path: Path) -> None:
    signer = keygen(tmp_path / "keys")
    _, token = _upload(storage, "likely")
    assert _files(storage, signer, tmp_path / "out", NOW + 8) == ({k: LIKELY for k in KEYS}, {})
    revising, _ = _upload(storage, "negative", token, at=NOW + 10)
    assert revoke_code(storage, revising, NOW + 20, key=KEY).withheld == Withheld(0, 0, 0, 0, revisions=2)
    assert _files(storage, signer, tmp_path / "out", NOW + 60) == ({k: LIKELY for k in KEYS}, {})  # no revised_keys


def test_a_published_revision_is_counted_and_the_command_exits_1(tmp_path: Path) -> None:
    keys, db = tmp_path / "keys", tmp_path / "s.db"
    signer = keygen(keys)
    storage = open_storage(db)
    try:
        _, token = _upload(storage, "likely", code_key=CodeKey.load(keys))
        revising, _ = _upload(storage, "confirmed", token, at=NOW + 10, code_key=CodeKey.load(keys))
        assert _files(storage, signer, tmp_path / "out", NOW + 20)[0] == {k: CONFIRMED for k in KEYS}
    finally:
        storage.close()
    result = CliRunner().invoke(
        cli, ["server", "revoke-code", "--server-db", str(db), "--signing-key-dir", str(keys), "--code", revising, "--json"],
        obj={"clock": VirtualClock(NOW + 30)},
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["withheld"] == {
        "keys": 0, "checkins": 0, "published_keys": 0, "published_checkins": 0, "revisions": 0, "published_revisions": 2,
        "vouched": 0,
    }
    assert result.stderr.strip().endswith(
        "0 key(s), 2 revision(s) of earlier codes' keys and 0 check-in report(s) already published cannot be recalled"
    )


def test_the_earlier_code_revoked_too_withholds_the_keys_once_no_code_stands_for_them(storage: Storage, tmp_path: Path) -> None:
    """Revoking the first code while a second one's revision stands keeps the keys (the second vouches for
    them); revoking the second too takes its revision back and withholds the keys (nobody stands for them)."""
    signer = keygen(tmp_path / "keys")
    first, token = _upload(storage, "likely")
    revising, _ = _upload(storage, "confirmed", token, at=NOW + 10)
    assert revoke_code(storage, first, NOW + 20, key=KEY).withheld == Withheld(0, 0, 0, 0)
    assert revoke_code(storage, revising, NOW + 30, key=KEY).withheld == Withheld(2, 0, 0, 0, revisions=2)
    assert _files(storage, signer, tmp_path / "out", NOW + 60) == ({}, {})
    assert storage.count_keys() == 0


def test_revising_under_a_revoked_code_leaves_the_first_codes_revocation_working(storage: Storage, tmp_path: Path) -> None:
    """The revision no longer clears the first code's hash from the keys: revoked in the other order, the
    first code withholds the keys once the revision is gone."""
    signer = keygen(tmp_path / "keys")
    first, token = _upload(storage, "likely")
    revising, _ = _upload(storage, "confirmed", token, at=NOW + 10)
    assert revoke_code(storage, revising, NOW + 20, key=KEY).withheld == Withheld(0, 0, 0, 0, revisions=2)
    assert revoke_code(storage, first, NOW + 30, key=KEY).withheld == Withheld(2, 0, 0, 0)
    assert _files(storage, signer, tmp_path / "out", NOW + 60) == ({}, {})


def test_an_export_that_read_the_revision_before_its_revocation_records_nothing(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer = keygen(tmp_path / "keys")
    _, token = _upload(storage, "likely")
    revising, _ = _upload(storage, "confirmed", token, at=NOW + 10)
    taking = storage.export_transaction

    def revoked_meanwhile(*args: np.ndarray) -> object:
        monkeypatch.setattr(storage, "export_transaction", taking)
        assert revoke_code(storage, revising, NOW + 30, key=KEY).withheld == Withheld(0, 0, 0, 0, revisions=2)
        return taking(*args)

    monkeypatch.setattr(storage, "export_transaction", revoked_meanwhile)
    with pytest.raises(Exception, match="a code revocation withheld"):
        export_batches(storage, signer, tmp_path / "out", NOW + 60, ExportConfig())
    assert _files(storage, signer, tmp_path / "out", NOW + 70) == ({k: LIKELY for k in KEYS}, {})


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("beside", [(), ("confirmed",), ("likely",)])
def test_revisions_made_before_the_upgrade_are_linked_to_their_code_by_its_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, backend: str, beside: tuple[str, ...]
) -> None:
    """The migrations find the code of each earlier revision: the revision and the code's use share their
    time to the bit (one publish's clock reading) and its type (a confirmed code's revision is confirmed, a
    negative one's revoked).  Two codes of the revision's type used at that very instant link neither;
    another code of another type used then (someone else's likely upload) no longer keeps it unlinked
    (schema 16's migration matched the time alone: unlinked, so revoking the code left the revision)."""
    from bluezone.server.storage import schema

    path = str(tmp_path / "v15.db") if backend == "sqlite" else request.getfixturevalue("postgres_dsn")
    with monkeypatch.context() as m:
        m.setattr(schema, "SCHEMA_VERSION", 15)
        s = open_storage(path)
        try:
            _, token = _upload(s, "likely")
            code, *others = [issue_code(s, NOW, key=KEY, test_type=kind).code for kind in ("confirmed", *beside)]
            with s._transaction() as cur:  # what schema 15's publish stored: the revision, no code beside it
                for used in (code, *others):
                    s._exec(cur, "UPDATE codes SET used_at = ? WHERE code_hash = ?", [NOW + 10.123456789, KEY.hash(used)])
                s._exec(cur, "UPDATE exposure_keys SET revised_report_type = ?, revised_at = ?, code_hash = NULL",
                        [CONFIRMED, NOW + 10.123456789])
                s._exec(cur, "INSERT INTO revision_queue SELECT * FROM export_queue")
        finally:
            s.close()
    s = open_storage(path)
    try:
        linked = 0 if beside == ("confirmed",) else 2
        assert revoke_code(s, code, NOW + 20, key=KEY).withheld == Withheld(0, 0, 0, 0, revisions=linked)
    finally:
        s.close()


def test_the_earlier_codes_keys_published_with_a_revoked_revision_are_counted_published(storage: Storage, tmp_path: Path) -> None:
    """A file carried the keys with a revision whose code was then revoked: revoking the earlier code says its
    keys were published (exit 1), not "none was published" (the revision left its code's hash on them)."""
    signer = keygen(tmp_path / "keys")
    first, token = _upload(storage, "likely")
    revising, _ = _upload(storage, "confirmed", token, at=NOW + 10)
    assert _files(storage, signer, tmp_path / "out", NOW + 20)[0] == {k: CONFIRMED for k in KEYS}
    assert revoke_code(storage, revising, NOW + 30, key=KEY).withheld == Withheld(0, 0, 0, 0, published_revisions=2)
    said = revoke_code(storage, first, NOW + 40, key=KEY)
    assert (said.withheld, said.all_withheld) == (Withheld(0, 0, 2, 0), False)


def test_the_earlier_codes_published_keys_are_counted_while_a_revision_of_them_stands(storage: Storage, tmp_path: Path) -> None:
    """A file carried the first code's keys as likely, then a second code confirmed them: revoking the first code
    says its keys are out (exit 1).  It counted as published only keys no standing code had revised, and said
    "none was published" (exit 0)."""
    signer = keygen(tmp_path / "keys")
    first, token = _upload(storage, "likely")
    assert _files(storage, signer, tmp_path / "out", NOW + 8)[0] == {k: LIKELY for k in KEYS}
    _upload(storage, "confirmed", token, at=NOW + 10)
    said = revoke_code(storage, first, NOW + 20, key=KEY)
    assert (said.withheld, said.all_withheld) == (Withheld(0, 0, len(KEYS), 0), False)
    assert said.sentence().endswith(f"{len(KEYS)} key(s) and 0 check-in report(s) already published cannot be recalled")
    # the standing revision still goes out: only the count was wrong
    assert _files(storage, signer, tmp_path / "out", NOW + 60)[1] == {k: CONFIRMED for k in KEYS}


def test_the_earlier_codes_keys_kept_unpublished_for_a_standing_revision_are_not_counted_published(
    storage: Storage, tmp_path: Path
) -> None:
    """Revised before any file: the revising code vouches for them, they are kept and not yet out."""
    signer = keygen(tmp_path / "keys")
    first, token = _upload(storage, "likely")
    _upload(storage, "confirmed", token, at=NOW + 10)
    said = revoke_code(storage, first, NOW + 20, key=KEY)
    assert (said.withheld, said.all_withheld) == (Withheld(0, 0, 0, 0), True)
    assert _files(storage, signer, tmp_path / "out", NOW + 60)[0] == {k: CONFIRMED for k in KEYS}


# A likely code revoked while the same person's confirmed upload revises its keys, on PostgreSQL (READ COMMITTED;
# SQLite takes one writer at a time).  The revocation chose the keys to withhold from its snapshot, before the
# revision committed, and deleted them after it: the confirmed upload was answered "revised 2" and its keys were
# never published.  Either order alone publishes them (revoked first: the upload stores them anew; revised
# first: the confirmed code vouches for them).

def test_a_revision_committing_while_its_first_code_is_revoked_is_not_lost(
    postgres_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    revoker, uploader = open_storage(postgres_dsn), open_storage(postgres_dsn)
    try:
        signer = keygen(tmp_path / "keys")
        first, token = _upload(revoker, "likely")
        code = issue_code(revoker, NOW, key=KEY, test_type="confirmed").code
        entries = [{"key": base64.b64encode(k).decode(), "rollingStartNumber": DAY - i * ROLLING_PERIOD}
                   for i, k in enumerate(KEYS)]
        body = json.dumps({"temporaryExposureKeys": entries, "verificationPayload": code, "revisionToken": token}).encode()
        # the upload's transaction held open once it has revised the keys, until the revocation waits
        said = revoked_while_held(postgres_dsn, uploader, revoker, monkeypatch, "INSERT INTO revision_queue", body,
                                  NOW + 10, first)
        assert said["upload"].revised == len(KEYS)
        assert said["revoked"].all_withheld  # nothing of the first code's was out; the confirmed code vouches
        assert _files(revoker, signer, tmp_path / "out", NOW + 60)[0] == {k: CONFIRMED for k in KEYS}  # was {}: lost
    finally:
        uploader.close()
        revoker.close()
