"""A key revised twice (schema 17): an F1 who uploaded for F2 warnings (recursive), is diagnosed "likely",
then tests positive.  Each revision is kept, so ``server revoke-code`` undoes exactly its own code's (the
key stands as the revision before it, which a file may already carry) and an export takes out of
revision_queue only the revisions its files carried.  Under e05f390 the confirmed upload was refused
(key_already_revised); under d8ed463, which allowed it, revoking the confirming code put the keys back to
recursive while the likely revision stood, and an export that read the likely revision dropped the
confirmed one.  On SQLite and PostgreSQL (the ``storage`` fixture) unless named."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from revision_helpers import DAY, EXPOSED, KEYS, export_kinds, revision_body, upload_keys
from server_helpers import KEY, NOW, revoked_while_held

from bluezone.errors import ServerStorageError
from bluezone.keyformat.export import open_signed_export
from bluezone.server.codes import issue_code, revoke_code
from bluezone.server.exports import ExportConfig, export_batches
from bluezone.server.publish import PublishConfig, PublishResult, publish
from bluezone.server.signing import Signer, keygen
from bluezone.server.storage import CONFIRMED, LIKELY, RECURSIVE, REVOKED, Storage, Withheld, open_storage

def _chain(storage: Storage) -> tuple[list[str], list[PublishResult]]:
    """Recursive, then likely, then confirmed: the codes and answers (each revising both keys)."""
    codes, answers, token = [], [], None
    for i, kind in enumerate(("recursive", "likely", "confirmed")):
        code, answer = upload_keys(storage, kind, token, at=NOW + 5 + 10 * i)
        assert (answer.inserted, answer.revised) == ((2, 0) if i == 0 else (0, 2))
        codes.append(code)
        answers.append(answer)
        token = answer.revision_token
    return codes, answers


def _each(kind: int) -> dict[bytes, int]:
    return {k: kind for k in KEYS}


@pytest.mark.parametrize("exported", ["never", "recursive", "likely"])
def test_an_f1s_keys_become_likely_then_confirmed_and_go_out_once_each(storage: Storage, tmp_path: Path, exported: str) -> None:
    """Exported before the likely upload, between the two revisions, or not at all: the files say each
    step once, and the last file says confirmed."""
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    token = None
    for kind in ("recursive", "likely"):
        _, answer = upload_keys(storage, kind, token)
        token = answer.revision_token
        if exported == kind:
            assert export_kinds(storage, signer, out, NOW + 30) != ({}, {})
    _, confirmed = upload_keys(storage, "confirmed", token, at=NOW + 40)
    assert confirmed.revised == 2
    expected = {"never": (_each(CONFIRMED), {}), "recursive": ({}, _each(CONFIRMED)), "likely": ({}, _each(CONFIRMED))}
    assert export_kinds(storage, signer, out, NOW + 60) == expected[exported]
    assert export_kinds(storage, signer, out, NOW + 90) == ({}, {})  # out once


@pytest.mark.parametrize("likely_carried", [True, False])
def test_revoking_the_confirming_code_leaves_the_keys_likely_not_recursive(
    storage: Storage, tmp_path: Path, likely_carried: bool
) -> None:
    """attack18's case: the confirming code revoked before a file carried its revision.  The keys stand as
    the likely revision (d8ed463 put them back to recursive: F2s would have heard a weaker warning); if no
    file carried the likely revision either, it goes out now."""
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    _, first = upload_keys(storage, "recursive")
    assert export_kinds(storage, signer, out, NOW + 8) == (_each(RECURSIVE), {})
    likely_code, likely = upload_keys(storage, "likely", first.revision_token, at=NOW + 10)
    if likely_carried:
        assert export_kinds(storage, signer, out, NOW + 15) == ({}, _each(LIKELY))
    confirming, _ = upload_keys(storage, "confirmed", likely.revision_token, at=NOW + 20)
    said = revoke_code(storage, confirming, NOW + 25, key=KEY)
    assert (said.withheld, said.all_withheld) == (Withheld(0, 0, 0, 0, revisions=2), True)
    assert export_kinds(storage, signer, out, NOW + 60) == ({}, {} if likely_carried else _each(LIKELY))
    # revoking the likely code too: a file carried its revision (before, or just now), counted (exit 1)
    said = revoke_code(storage, likely_code, NOW + 70, key=KEY)
    assert (said.withheld, said.all_withheld) == (Withheld(0, 0, 0, 0, published_revisions=2), False)
    assert export_kinds(storage, signer, out, NOW + 90) == ({}, {})


def test_revoking_the_likely_code_under_a_standing_confirmation_undoes_only_its_own(storage: Storage, tmp_path: Path) -> None:
    """The likely revision's code revoked while the confirmed one stands: the keys stay confirmed, and
    revoking the confirming code afterwards brings them back to recursive (nobody vouches for likely)."""
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    codes, _ = _chain(storage)
    assert revoke_code(storage, codes[1], NOW + 40, key=KEY).withheld == Withheld(0, 0, 0, 0, revisions=2)
    assert export_kinds(storage, signer, out, NOW + 50) == (_each(CONFIRMED), {})
    assert revoke_code(storage, codes[2], NOW + 60, key=KEY).withheld == Withheld(0, 0, 0, 0, published_revisions=2)


def test_the_first_and_the_last_code_revoked_leave_the_keys_to_the_middle_one(storage: Storage, tmp_path: Path) -> None:
    """The recursive upload's code and the confirming code revoked, none of it in a file: the likely code
    still vouches for the keys, which go out likely (the withholding took every key whose own code was
    revoked once its revision was undone, whoever else stood for it)."""
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    codes, _ = _chain(storage)
    assert revoke_code(storage, codes[0], NOW + 40, key=KEY).withheld == Withheld(0, 0, 0, 0)
    assert revoke_code(storage, codes[2], NOW + 50, key=KEY).withheld == Withheld(0, 0, 0, 0, revisions=2)
    assert export_kinds(storage, signer, out, NOW + 60) == (_each(LIKELY), {})
    assert revoke_code(storage, codes[1], NOW + 70, key=KEY).withheld == Withheld(0, 0, 0, 0, published_revisions=2)


def test_a_negative_test_after_a_likely_diagnosis_revokes_the_keys(storage: Storage, tmp_path: Path) -> None:
    """recursive -> likely -> negative: revoked, and revoked is final."""
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    _, first = upload_keys(storage, "recursive")
    assert export_kinds(storage, signer, out, NOW + 8) == (_each(RECURSIVE), {})
    _, likely = upload_keys(storage, "likely", first.revision_token, at=NOW + 10)
    _, negative = upload_keys(storage, "negative", likely.revision_token, at=NOW + 20)
    assert negative.revised == 2
    assert export_kinds(storage, signer, out, NOW + 60) == ({}, _each(REVOKED))
    code = issue_code(storage, NOW, key=KEY, test_type="confirmed").code
    with pytest.raises(Exception, match="cannot be revised again"):
        publish(storage, revision_body(code, negative.revision_token), "192.0.2.1", NOW + 70, PublishConfig(), code_key=KEY)


def _meanwhile(storage: Storage, monkeypatch: pytest.MonkeyPatch, *steps: Callable[[], object]) -> None:
    """The next export's ``steps`` run once it read its keys and revisions, before it takes them out."""
    taking = storage.export_transaction

    def landing(*args: np.ndarray) -> object:
        monkeypatch.setattr(storage, "export_transaction", taking)
        for step in steps:
            step()
        return taking(*args)

    monkeypatch.setattr(storage, "export_transaction", landing)


@pytest.mark.parametrize("first_exported", [True, False])
def test_an_export_that_read_the_likely_revision_carries_it_and_the_next_the_confirmed_one(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_exported: bool
) -> None:
    """The confirmed upload lands while an export that read the likely revision writes its files: that
    export records the likely revision as it read it (the confirmation replaced it in the queue: srv19's
    export recorded nothing, so under frequent revisions exports kept failing), and the next one carries
    the confirmation.  The files go up the ladder, each step once (it dequeued by key id and dropped the
    confirmation before schema 17: no file ever said confirmed)."""
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    _, first = upload_keys(storage, "recursive")
    if first_exported:
        assert export_kinds(storage, signer, out, NOW + 8) == (_each(RECURSIVE), {})
    _, likely = upload_keys(storage, "likely", first.revision_token, at=NOW + 10)
    _meanwhile(storage, monkeypatch, lambda: upload_keys(storage, "confirmed", likely.revision_token, at=NOW + 30))
    assert export_kinds(storage, signer, out, NOW + 40) == (({}, _each(LIKELY)) if first_exported else (_each(LIKELY), {}))
    assert export_kinds(storage, signer, out, NOW + 60) == ({}, _each(CONFIRMED))
    assert export_kinds(storage, signer, out, NOW + 90) == ({}, {})


def test_exports_finish_while_revisions_keep_coming(storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Six F1s (recursive, exported) diagnosed likely, then confirmed, one after another: each export reads
    one F1's likely revision and the confirmation before it, while that F1's confirmation and the next F1's
    diagnosis land.  Every export records (before, each one failed "a later revision replaced one": under
    revisions this frequent no export ever went through), and each key goes out recursive, likely,
    confirmed, one file each."""
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    people = [[bytes([0x50 + i, j]) * 8 for j in range(2)] for i in range(6)]
    tokens = {}
    for i, keys in enumerate(people):
        code = issue_code(storage, NOW, key=KEY, test_type="recursive", exposure_date=EXPOSED).code
        tokens[i] = publish(storage, revision_body(code, None, keys), "192.0.2.1", NOW + 5, PublishConfig(),
                            code_key=KEY).revision_token
    every = [k for keys in people for k in keys]
    assert export_kinds(storage, signer, out, NOW + 6, only=every) == ({k: RECURSIVE for k in every}, {})

    def revise(i: int, test_type: str) -> None:
        if i < len(people):
            code = issue_code(storage, NOW, key=KEY, test_type=test_type).code
            answer = publish(storage, revision_body(code, tokens[i], people[i]), "192.0.2.1", NOW + 10, PublishConfig(),
                             code_key=KEY)
            assert answer.revised == 2
            tokens[i] = answer.revision_token

    revise(0, "likely")
    for i in range(len(people)):
        _meanwhile(storage, monkeypatch, lambda i=i: revise(i, "confirmed"), lambda i=i: revise(i + 1, "likely"))
        expected = {k: LIKELY for k in people[i]} | ({k: CONFIRMED for k in people[i - 1]} if i else {})
        assert export_kinds(storage, signer, out, NOW + 20 + i, only=every) == ({}, expected)
    assert export_kinds(storage, signer, out, NOW + 40, only=every) == ({}, {k: CONFIRMED for k in people[-1]})
    assert export_kinds(storage, signer, out, NOW + 50, only=every) == ({}, {})


def test_two_revisions_read_and_replaced_meanwhile_all_go_out(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export read the likely revisions of two F1s (recursive first, exported); both confirmations land
    before it takes them out: it carries both likely revisions, the next export both confirmations."""
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    people = [[bytes([0x60 + i, j]) * 8 for j in range(2)] for i in range(2)]
    tokens = []
    for keys in people:
        code = issue_code(storage, NOW, key=KEY, test_type="recursive", exposure_date=EXPOSED).code
        token = publish(storage, revision_body(code, None, keys), "192.0.2.1", NOW + 5, PublishConfig(), code_key=KEY).revision_token
        code = issue_code(storage, NOW, key=KEY, test_type="likely").code
        tokens.append(publish(storage, revision_body(code, token, keys), "192.0.2.1", NOW + 6, PublishConfig(),
                              code_key=KEY).revision_token)
    every = [k for keys in people for k in keys]

    def confirm(i: int) -> None:
        code = issue_code(storage, NOW, key=KEY, test_type="confirmed").code
        publish(storage, revision_body(code, tokens[i], people[i]), "192.0.2.1", NOW + 10, PublishConfig(), code_key=KEY)

    _meanwhile(storage, monkeypatch, lambda: confirm(0), lambda: confirm(1))
    assert export_kinds(storage, signer, out, NOW + 20, only=every) == ({k: LIKELY for k in every}, {})
    assert export_kinds(storage, signer, out, NOW + 30, only=every) == ({}, {k: CONFIRMED for k in every})


def test_a_likely_revision_read_then_replaced_and_its_code_revoked_is_not_published(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export read the likely revision; the confirmation replaced it, then the likely code was revoked
    (undone: the keys stand confirmed): the export records nothing (it would publish a revoked code's
    revision) and the next one carries the confirmation."""
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    _, first = upload_keys(storage, "recursive")
    assert export_kinds(storage, signer, out, NOW + 8) == (_each(RECURSIVE), {})
    likely_code, likely = upload_keys(storage, "likely", first.revision_token, at=NOW + 10)
    _meanwhile(storage, monkeypatch, lambda: upload_keys(storage, "confirmed", likely.revision_token, at=NOW + 30),
               lambda: revoke_code(storage, likely_code, NOW + 31, key=KEY))
    with pytest.raises(ServerStorageError, match="nothing recorded"):
        export_batches(storage, signer, out, NOW + 40, ExportConfig())
    assert export_kinds(storage, signer, out, NOW + 60) == ({}, _each(CONFIRMED))


def test_a_likely_revision_read_then_replaced_by_a_confirmation_since_revoked_goes_out(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export read the likely revision; the confirmation replaced it and its code was revoked (the likely
    revision stands again, queued): the export carries the likely revision, and nothing more goes out."""
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    _, first = upload_keys(storage, "recursive")
    assert export_kinds(storage, signer, out, NOW + 8) == (_each(RECURSIVE), {})
    _, likely = upload_keys(storage, "likely", first.revision_token, at=NOW + 10)
    confirming = issue_code(storage, NOW, key=KEY, test_type="confirmed").code
    _meanwhile(storage, monkeypatch,
               lambda: publish(storage, revision_body(confirming, likely.revision_token), "192.0.2.1", NOW + 30, PublishConfig(),
                               code_key=KEY),
               lambda: revoke_code(storage, confirming, NOW + 31, key=KEY))
    assert export_kinds(storage, signer, out, NOW + 40) == ({}, _each(LIKELY))
    assert export_kinds(storage, signer, out, NOW + 60) == ({}, {})


def test_a_likely_revision_undone_while_the_confirmed_upload_commits_is_not_lost(
    postgres_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL (READ COMMITTED), two connections: the likely code is revoked while the confirmed upload,
    having changed the key's row, is held open.  The revocation waits for the keys first, then judges them
    as they now stand: the confirmation stands.  Without that wait it undid the likely revision, found no
    revision left in its snapshot and waited for the key's row to put it back to recursive, while the
    upload waited for the likely revision's queue row it had taken: a deadlock, one of them aborted."""
    revoker, uploader = open_storage(postgres_dsn), open_storage(postgres_dsn)
    try:
        signer = keygen(tmp_path / "keys")
        _, first = upload_keys(revoker, "recursive")
        likely_code, likely = upload_keys(revoker, "likely", first.revision_token, at=NOW + 10)
        code = issue_code(revoker, NOW, key=KEY, test_type="confirmed").code
        # held once the upload changed the key's row (locked)
        said = revoked_while_held(postgres_dsn, uploader, revoker, monkeypatch, "UPDATE exposure_keys SET revised_",
                                  revision_body(code, likely.revision_token), NOW + 20, likely_code)
        assert said["upload"].revised == len(KEYS) and said["revoked"].withheld.revisions == len(KEYS)
        assert export_kinds(revoker, signer, tmp_path / "out", NOW + 60) == (_each(CONFIRMED), {})
    finally:
        uploader.close()
        revoker.close()


def test_fakes_are_revised_twice_as_a_real_key_is_and_never_to_the_type_they_stand_as(storage: Storage, tmp_path: Path) -> None:
    """A real key revised twice is in two files' revisions: so are fakes padding them (only fakes never
    revised were revisable, so a key in two files' revisions was a real one), each revised up from the type
    it stands as (first published, or as a file's revision left it: never "revised" to that same type, which
    no real revision does)."""
    from bluezone.server.padding import is_fake

    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    files = []
    token = None
    for i, kind in enumerate(("recursive", "likely", "confirmed")):
        _, answer = upload_keys(storage, kind, token, at=NOW + 5 + 100 * i)
        token = answer.revision_token
        files.append([open_signed_export((out / b.name).read_bytes(), signer.public_key)[0]
                      for b in export_batches(storage, signer, out, NOW + 50 + 100 * i, ExportConfig())])
    secret = storage.padding_secret(int(NOW // 86_400))
    stands = {bytes(k["key"]): int(k["report_type"]) for f in files[0] for k in f.keys}
    assert set(stands.values()) == {RECURSIVE}
    revised_in = []
    for export_files in files[1:]:
        revised = np.concatenate([f.revised_keys for f in export_files])
        fake = is_fake(revised, secret)
        assert (~fake).sum() == len(KEYS) and fake.sum() >= 2 * 99  # each day's file padded
        order = {RECURSIVE: 1, LIKELY: 2, CONFIRMED: 3, REVOKED: 4}
        for k in revised:
            assert order[int(k["report_type"])] > order[stands[bytes(k["key"])]]  # up from how it stood, fakes too
        stands.update({bytes(k["key"]): int(k["report_type"]) for k in revised})
        revised_in.append({bytes(k["key"]) for k in revised[fake]})
    assert len(revised_in[0] & revised_in[1]) >= 99  # fakes in two files' revisions, as the real keys are


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_schema_16_database_keeps_its_revisions_and_queues_them_by_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, backend: str
) -> None:
    """Schema 17's migration keeps each key's revision (its type, onset, code, and whether a file carried
    it: one still queued did not) and names it in the queues' records, so the export carries what schema
    16 left waiting, once, and revoking a revision's code undoes it as one made after the upgrade."""
    from bluezone.keyformat.keys import empty_keys
    from bluezone.server.storage import schema
    from bluezone.server.storage.queues import queue_rows

    path = str(tmp_path / "v16.db") if backend == "sqlite" else request.getfixturevalue("postgres_dsn")
    codes = {}
    rows = {  # first key byte: (type, revised to, revised onset, in export_queue, in revision_queue)
        1: (LIKELY, CONFIRMED, 3, False, False),  # revised, carried
        2: (LIKELY, REVOKED, None, True, True),  # revised before its first file
        3: (RECURSIVE, LIKELY, 2, False, True),  # exported, then revised: the revision waits
        4: (LIKELY, None, None, True, False),  # waiting, never revised
    }
    with monkeypatch.context() as m:
        m.setattr(schema, "SCHEMA_VERSION", 16)
        old = open_storage(path)
        try:
            codes.update({byte: issue_code(old, NOW, key=KEY, test_type="confirmed").code for byte in rows})
            with old._transaction() as cur:
                for byte, (kind, revised, onset, queued, revision_queued) in rows.items():
                    old._exec(cur, "UPDATE codes SET used_at = ? WHERE code_hash = ?", [NOW - 60, KEY.hash(codes[byte])])
                    (key_id,) = old._exec(
                        cur,
                        "INSERT INTO exposure_keys (key_data, rolling_start, rolling_period, transmission_risk, report_type,"
                        " received_at, revised_report_type, revised_days_since_onset, revised_at, revised_code_hash)"
                        " VALUES (?, ?, 144, 0, ?, 0, ?, ?, ?, ?) RETURNING id",
                        [bytes([byte]) * 16, DAY, kind, revised, onset, None if revised is None else NOW - 60,
                         KEY.hash(codes[byte]) if revised else None],
                    ).fetchone()
                    stands = empty_keys(1)
                    stands[0] = (bytes([byte]) * 16, DAY, 144, 0, revised or kind, -(2**31) if onset is None else onset)
                    ((_, start, end, record),) = queue_rows(np.array([key_id]), stands, revised=int(revised is not None))
                    for queue, wanted in (("export_queue", queued), ("revision_queue", revision_queued)):
                        if wanted:
                            old._exec(cur, f"INSERT INTO {queue} (key_id, rolling_start, rolling_end, record)"
                                      " VALUES (?, ?, ?, ?)", [key_id, start, end, record])
        finally:
            old.close()
    storage = open_storage(path)
    try:
        with storage._transaction() as cur:
            kept = storage._exec(cur, "SELECT k.key_data, r.report_type, r.days_since_onset, r.code_hash, r.carried"
                                 " FROM key_revisions r JOIN exposure_keys k ON k.id = r.key_id ORDER BY k.id").fetchall()
        assert [(bytes(k)[0], *rest) for k, *rest in kept] == [
            (1, CONFIRMED, 3, KEY.hash(codes[1]), 1), (2, REVOKED, None, KEY.hash(codes[2]), 0),
            (3, LIKELY, 2, KEY.hash(codes[3]), 0)]
        signer, out = keygen(tmp_path / "k"), tmp_path / "out"
        keys, revised = _export_all(storage, signer, out, NOW)
        assert (keys, revised) == ({2: REVOKED, 4: LIKELY}, {3: LIKELY})
        assert _export_all(storage, signer, out, NOW + 60) == ({}, {})  # each once
        assert revoke_code(storage, codes[3], NOW + 70, key=KEY).withheld == Withheld(0, 0, 0, 0, published_revisions=1)
    finally:
        storage.close()


def _export_all(storage: Storage, signer: Signer, out: Path, at: float) -> tuple[dict[int, int], dict[int, int]]:
    """``export_kinds`` with every real key (not only KEYS) by its first byte."""
    keys, revised = export_kinds(storage, signer, out, at, only=None)
    return {k[0]: v for k, v in keys.items()}, {k[0]: v for k, v in revised.items()}


@pytest.mark.parametrize("exported", [False, True])
def test_a_same_type_upload_over_a_revision_vouches_for_it_and_keeps_the_first_codes_link(
    storage: Storage, tmp_path: Path, exported: bool
) -> None:
    """Likely keys confirmed (code 1), then uploaded confirmed again under code 2 (the same type as they
    stand: no token needed, nothing revised).  Revoking code 1 leaves them confirmed (code 2 says so; they
    went back to likely); revoking code 2 too takes them back to likely, and revoking the first code then
    withholds them (code 2's upload had cleared its link: they went out though every code was revoked)."""
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    first, likely = upload_keys(storage, "likely")
    confirming, _ = upload_keys(storage, "confirmed", likely.revision_token, at=NOW + 10)
    again, answer = upload_keys(storage, "confirmed", at=NOW + 20)
    assert (answer.inserted, answer.revised) == (0, 0)
    # undone, yet the keys stand confirmed as code 2 says: nothing changes in the files (was counted revisions=2)
    assert revoke_code(storage, confirming, NOW + 30, key=KEY).withheld == Withheld(0, 0, 0, 0, vouched=2)
    if exported:
        assert export_kinds(storage, signer, out, NOW + 40) == (_each(CONFIRMED), {})  # was LIKELY
        assert revoke_code(storage, again, NOW + 50, key=KEY).withheld == Withheld(0, 0, 0, 0, published_revisions=2)
        assert revoke_code(storage, first, NOW + 60, key=KEY).withheld == Withheld(0, 0, 2, 0)
        return
    assert revoke_code(storage, again, NOW + 50, key=KEY).withheld == Withheld(0, 0, 0, 0, revisions=2)
    assert revoke_code(storage, first, NOW + 60, key=KEY).withheld == Withheld(2, 0, 0, 0)  # was 0: not withheld
    assert export_kinds(storage, signer, out, NOW + 70) == ({}, {})


@pytest.mark.parametrize("exported", ["never", "before the vouch", "after the vouch"])
def test_revoking_a_code_that_only_vouched_says_nothing_changes(storage: Storage, tmp_path: Path, exported: str) -> None:
    """Likely keys confirmed (code 1), then uploaded confirmed again under code 2 (a vouch: nothing revised).
    Revoking code 2 leaves the keys confirmed as code 1 says, and nothing changes in the files: counted
    as vouched, not as revisions undone (9606e72's vouch was counted "2 revision(s) ... withheld", and once
    a file had carried code 1's revision as "already published cannot be recalled", exit 1)."""
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    first, likely = upload_keys(storage, "likely")
    confirming, _ = upload_keys(storage, "confirmed", likely.revision_token, at=NOW + 10)
    if exported == "before the vouch":
        assert export_kinds(storage, signer, out, NOW + 15) == (_each(CONFIRMED), {})
    again, answer = upload_keys(storage, "confirmed", at=NOW + 20)
    assert (answer.inserted, answer.revised) == (0, 0)
    if exported == "after the vouch":
        assert export_kinds(storage, signer, out, NOW + 25) == (_each(CONFIRMED), {})
    said = revoke_code(storage, again, NOW + 30, key=KEY)
    assert (said.withheld, said.all_withheld) == (Withheld(0, 0, 0, 0, vouched=2), True)
    assert "2 revision(s) of keys another code's upload says the same of" in said.sentence()
    assert "nothing changes in the files" in said.sentence() and "earlier codes' keys" not in said.sentence()
    assert export_kinds(storage, signer, out, NOW + 40) == ((_each(CONFIRMED), {}) if exported == "never" else ({}, {}))
    # code 1 revoked too: its revision undone (the keys stand likely again) or counted published
    said = revoke_code(storage, confirming, NOW + 50, key=KEY)
    assert said.withheld == Withheld(0, 0, 0, 0, published_revisions=2)


def test_revoke_code_command_counts_a_vouch_apart(tmp_path: Path) -> None:
    """`server revoke-code` of a code that only vouched: exit 0, the text and --json say nothing changes."""
    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.clock import VirtualClock

    def revoked(db: Path, *options: str) -> Any:
        keys = tmp_path / "keys"
        if not keys.exists():
            keygen(keys)
            (keys / "code_hmac.key").write_text(KEY.secret.hex() + "\n")
        storage = open_storage(db)
        try:
            _, likely = upload_keys(storage, "likely")
            upload_keys(storage, "confirmed", likely.revision_token, at=NOW + 10)
            again, _ = upload_keys(storage, "confirmed", at=NOW + 20)
        finally:
            storage.close()
        return CliRunner().invoke(
            cli, ["server", "revoke-code", "--server-db", str(db), "--signing-key-dir", str(keys), "--code", again, *options],
            obj={"clock": VirtualClock(NOW + 30)},
        )

    said = revoked(tmp_path / "json.db", "--json")
    assert said.exit_code == 0, said.output
    assert json.loads(said.stdout)["withheld"] == {
        "keys": 0, "checkins": 0, "published_keys": 0, "published_checkins": 0, "revisions": 0,
        "published_revisions": 0, "vouched": 2,
    }
    said = revoked(tmp_path / "text.db")
    assert said.exit_code == 0, said.output
    assert said.stdout.split(", now revoked: ")[1].strip() == (
        "0 key(s) and 0 check-in report(s) not yet published withheld; 2 revision(s) of keys another code's upload"
        " says the same of: those keys stand as they did (nothing changes in the files); none was published"
    )


@pytest.mark.parametrize("first_exported", [True, False])
def test_a_vouched_revision_standing_again_goes_out_once_and_never_to_the_type_it_had(
    storage: Storage, tmp_path: Path, first_exported: bool
) -> None:
    """recursive -> likely (code A) -> confirmed (code B), uploaded confirmed again under code C (a vouch), then
    code A revoked: the keys stand confirmed as B says.  The vouch stood as the key's latest revision: the key
    was queued again under its id beside B's revision, so a file carried each key twice (exported first), or the
    first file carried it confirmed and the next "revised" it to confirmed again (not exported): a real revision
    to the type a key stands as, which no fake gets (it told the real keys from the padding)."""
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    _, first = upload_keys(storage, "recursive")
    if first_exported:
        assert export_kinds(storage, signer, out, NOW + 8) == (_each(RECURSIVE), {})
    a, likely = upload_keys(storage, "likely", first.revision_token, at=NOW + 10)
    upload_keys(storage, "confirmed", likely.revision_token, at=NOW + 20)
    upload_keys(storage, "confirmed", at=NOW + 30)
    assert revoke_code(storage, a, NOW + 40, key=KEY).withheld == Withheld(0, 0, 0, 0, revisions=2)
    assert export_kinds(storage, signer, out, NOW + 60) == (({}, _each(CONFIRMED)) if first_exported else (_each(CONFIRMED), {}))
    assert export_kinds(storage, signer, out, NOW + 90) == ({}, {})
