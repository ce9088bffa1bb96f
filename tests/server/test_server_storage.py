"""Storage behaviour, the same over SQLite and a real PostgreSQL (see conftest.storage)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from server_helpers import KEY, NOW, schema_version, uploaded, write_first_release_tables

from bluezone.crypto.intervals import ROLLING_PERIOD, interval_number, rolling_start
from bluezone.errors import InputError, PublishError
from bluezone.keyformat.export import open_signed_export
from bluezone.keyformat.keys import empty_keys
from bluezone.server.codes import code_mistake, issue_code, normal_code
from bluezone.server import exports
from bluezone.server.exports import export_batches
from bluezone.server.publish import PublishConfig, publish
from bluezone.server.signing import keygen
from bluezone.server.storage import BatchRecord, open_storage


def _body(code: str, rows: list[tuple[int, int]]) -> bytes:
    import base64

    return json.dumps(
        {
            "temporaryExposureKeys": [
                {"key": base64.b64encode(bytes([i + 1]) * 16).decode(), "rollingStartNumber": s, "rollingPeriod": p}
                for i, (s, p) in enumerate(rows)
            ],
            "verificationPayload": code,
        }
    ).encode()


def test_code_lifecycle(storage) -> None:
    import datetime as dt

    yesterday = dt.datetime.fromtimestamp(NOW, dt.UTC).date() - dt.timedelta(days=1)
    issued = issue_code(storage, NOW, key=KEY, test_type="recursive", exposure_date=yesterday)
    assert storage.count_codes(4, issued_since=NOW) == 1 and storage.count_codes(4, used_since=0) == 0
    assert len(issued.code) == 16 and issued.code.isdigit() and issued.expires_at == NOW + 86400
    record = storage.get_code(KEY.hash(issued.code))
    assert record.report_type == 4 and record.used_at is None
    day = rolling_start(NOW) - ROLLING_PERIOD
    assert publish(storage, _body(issued.code, [(day, 144)]), "c1", NOW, PublishConfig(), code_key=KEY).inserted == 1
    assert storage.get_code(KEY.hash(issued.code)).used_at == NOW
    assert storage.count_codes(4, used_since=NOW) == 1 and storage.count_codes(1, issued_since=0) == 0
    with pytest.raises(PublishError) as info:
        publish(storage, _body(issued.code, [(day - 144, 144)]), "c1", NOW, PublishConfig(), code_key=KEY)
    assert info.value.code == "verification_code_used"
    # a used code is its holder's, not a guess: no failed try of c1's (an upload retried ten times was rate limited)
    assert storage.count_failures(0, "c1") == 0 and storage.count_failures(0) == 0


def test_publish_is_atomic(storage) -> None:
    code = issue_code(storage, NOW, key=KEY).code
    day = rolling_start(NOW) - ROLLING_PERIOD
    with pytest.raises(PublishError) as info:
        publish(storage, _body(code, [(day, 144), (rolling_start(NOW) + 500, 1)]), "c", NOW, PublishConfig(), code_key=KEY)
    assert info.value.code == "key_timing_invalid"
    assert storage.count_keys() == 0
    assert storage.get_code(KEY.hash(code)).used_at is None
    assert publish(storage, _body(code, [(day, 144)]), "c", NOW, PublishConfig(), code_key=KEY).inserted == 1


def test_duplicate_keys_across_uploads_skipped(storage) -> None:
    day = rolling_start(NOW) - ROLLING_PERIOD
    for expected in (1, 0):
        code = issue_code(storage, NOW, key=KEY).code
        assert publish(storage, _body(code, [(day, 144)]), "c", NOW, PublishConfig(), code_key=KEY).inserted == expected
    assert storage.count_keys() == 1


def test_pending_batches_and_purge(storage, tmp_path) -> None:
    rng = np.random.default_rng(1)
    keys = empty_keys(6)
    keys["key"] = np.frombuffer(rng.bytes(96), "V16")
    today = rolling_start(NOW)
    keys["rolling_start"] = [today - 20 * 144, today - 2 * 144, today - 144, today - 144 + 10, today, today]
    keys["rolling_period"] = [144, 144, 10, 134, 144, 1]
    storage.insert_keys_unchecked(keys, NOW)
    pending, ids, _ = storage.pending_keys(interval_number(NOW), today - 14 * 144)
    assert len(set(ids.tolist())) == 4
    assert len(pending) == 4  # not the 20-day-old key, not today's still-valid one
    signer = keygen(tmp_path / "k")
    batches = export_batches(storage, signer, tmp_path / "out", NOW)
    assert sum(b.num_keys for b in batches) == 4
    assert [b.name for b in storage.batches()] == [b.name for b in batches]
    assert len(storage.pending_keys(interval_number(NOW), 0)[0]) == 0  # exported keys leave the queue
    assert storage.count_keys() == 5  # the 20-day-old key was purged
    assert isinstance(storage.batches()[0], BatchRecord)


def test_unsupported_url() -> None:
    with pytest.raises(InputError):
        open_storage("mysql://x")


def test_sqlite_file_is_private_under_any_umask(tmp_path, caplog) -> None:
    """It holds keys not yet published and short codes' HMACs (10 digits): nobody else's to read."""
    import os
    import stat

    from bluezone.server.storage import SQLiteStorage

    previous = os.umask(0)
    try:
        storage = SQLiteStorage(tmp_path / "new" / "keys.db")
        issue_code(storage, NOW, key=KEY)
        storage.close()
    finally:
        os.umask(previous)
    for name in ("keys.db", "keys.db-wal", "keys.db-shm"):
        path = tmp_path / "new" / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    shared = tmp_path / "shared.db"
    SQLiteStorage(shared).close()
    os.chmod(shared, 0o644)
    with caplog.at_level("WARNING"):
        SQLiteStorage(shared).close()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644  # an operator's choice is left alone, with a warning
    assert any("readable by others" in r.getMessage() for r in caplog.records)


def test_code_kinds_and_lifetimes(tmp_path) -> None:
    """Long codes (16 digits) live up to a day, short ones (11 digits, read over the phone) up to an hour."""
    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.server.codes import LONG, SHORT
    from bluezone.server.storage import SQLiteStorage

    storage = SQLiteStorage(tmp_path / "keys.db")
    try:
        long = issue_code(storage, NOW, key=KEY)
        assert len(long.code) == 16 and long.code.isdigit() and long.expires_at == NOW + 86400
        short = issue_code(storage, NOW, key=KEY, kind=SHORT)
        assert len(short.code) == 11 and short.expires_at == NOW + 900
        assert issue_code(storage, NOW, key=KEY, kind=SHORT, lifetime=3600).expires_at == NOW + 3600
        with pytest.raises(InputError, match="at most 3600"):
            issue_code(storage, NOW, key=KEY, kind=SHORT, lifetime=3601)
        with pytest.raises(InputError, match="at most 86400"):
            issue_code(storage, NOW, key=KEY, kind=LONG, lifetime=86401)
    finally:
        storage.close()
    keygen(tmp_path / "k")
    args = ["server", "issue-code", "--server-db", str(tmp_path / "keys.db"), "--signing-key-dir", str(tmp_path / "k")]
    result = CliRunner().invoke(cli, [*args, "--lifetime", "2592000"], obj={})
    assert result.exit_code == 2 and "86400" in result.output
    result = CliRunner().invoke(cli, [*args, "--short", "--lifetime", "7200"], obj={})
    assert result.exit_code == 2 and "at most 3600" in result.output
    result = CliRunner().invoke(cli, [*args, "--short"], obj={})
    assert result.exit_code == 0
    # shown in the groups docs/server.md tells staff to read out (it was one run of 11 digits)
    shown = result.output.partition("  (")[0]
    assert [len(group) for group in shown.split()] == [3, 4, 4] and code_mistake(normal_code(shown)) is None
    result = CliRunner().invoke(cli, [*args, "--short", "--json"], obj={})
    assert len(json.loads(result.output)["code"]) == 11  # scripts get the digits alone


def _publish(storage, code: str, rows: list[tuple[int, int]], token: str | None = None):
    body = json.loads(_body(code, rows))
    if token is not None:
        body["revisionToken"] = token
    return publish(storage, json.dumps(body).encode(), "c", NOW, PublishConfig(), code_key=KEY)


def _stored_type(storage, key: bytes) -> tuple[int, int | None]:
    with storage._transaction() as cur:
        return storage._exec(
            cur, "SELECT report_type, revised_report_type FROM exposure_keys WHERE key_data = ?", [key]
        ).fetchone()


def test_likely_keys_revised_to_negative_with_the_token_only(storage, tmp_path) -> None:
    """A negative test withdraws a "likely" report, but only for the device that made it."""
    day = rolling_start(NOW) - ROLLING_PERIOD
    first = _publish(storage, issue_code(storage, NOW, key=KEY, test_type="likely").code, [(day, 144), (day - 144, 144)])
    assert (first.inserted, first.revised) == (2, 0)
    for token, reason in ((None, "missing_revision_token"), ("not the token", "invalid_revision_token")):
        code = issue_code(storage, NOW, key=KEY, test_type="negative").code
        with pytest.raises(PublishError) as err:
            _publish(storage, code, [(day, 144)], token)
        assert (err.value.status, err.value.code) == (400, reason)
        assert storage.get_code(KEY.hash(code)).used_at is None  # a refused revision burns no code
        assert _stored_type(storage, b"\x01" * 16) == (2, None)
    # before any export: the first export carries the key as "revoked", and no revision after it
    revised = _publish(storage, issue_code(storage, NOW, key=KEY, test_type="negative").code, [(day, 144)], first.revision_token)
    assert (revised.inserted, revised.revised) == (0, 1) and revised.revision_token != first.revision_token
    assert _stored_type(storage, b"\x01" * 16) == (2, 5)
    with pytest.raises(PublishError) as err:  # once revised, a key stays as it is
        _publish(storage, issue_code(storage, NOW, key=KEY, test_type="confirmed").code, [(day, 144)], revised.revision_token)
    assert err.value.code == "key_already_revised"
    signer = keygen(tmp_path / "k")
    batches = export_batches(storage, signer, tmp_path / "out", NOW)
    assert sum(b.num_keys for b in batches) == 2
    types = {}
    for b in batches:
        export, _ = open_signed_export((tmp_path / "out" / b.name).read_bytes(), signer.public_key)
        assert len(export.revised_keys) == 0
        types.update({bytes(k["key"])[0]: int(k["report_type"]) for k in uploaded(export.keys, storage)})
    assert types == {1: 5, 2: 2}
    assert export_batches(storage, signer, tmp_path / "out", NOW + 60) == []  # the revision went out with the key


def test_revision_after_export_goes_into_revised_keys(storage, tmp_path) -> None:
    signer = keygen(tmp_path / "k")
    day = rolling_start(NOW) - ROLLING_PERIOD
    first = _publish(storage, issue_code(storage, NOW, key=KEY, test_type="likely").code, [(day, 144)])
    (batch,) = export_batches(storage, signer, tmp_path / "out", NOW)
    # the same key re-sent with the same type and the token: nothing changes; the new token covers it too
    again = _publish(storage, issue_code(storage, NOW, key=KEY, test_type="likely").code, [(day, 144)], first.revision_token)
    assert (again.inserted, again.revised) == (0, 0)
    # and the first token stays good (had the answer with the new one been lost, the keys would be locked)
    confirmed = _publish(storage, issue_code(storage, NOW, key=KEY, test_type="confirmed").code, [(day, 144)], first.revision_token)
    assert confirmed.revised == 1 and _stored_type(storage, b"\x01" * 16) == (2, 1)
    (revision,) = export_batches(storage, signer, tmp_path / "out", NOW + 60)
    export, _ = open_signed_export((tmp_path / "out" / revision.name).read_bytes(), signer.public_key)
    (real,) = uploaded(export.revised_keys, storage)  # among revisions of the first file's fakes (padding)
    assert len(export.keys) == 0 and revision.num_keys == 1 and revision.padding_keys == len(export.revised_keys) - 1
    assert bytes(real["key"]) == b"\x01" * 16 and real["report_type"] == 1
    assert export_batches(storage, signer, tmp_path / "out", NOW + 120) == []  # exported once
    assert revision.name != batch.name


def _exported_types(storage, signer, out, now: float) -> tuple[dict[int, int], dict[int, int]]:
    """The real keys' report types in the files of an export at ``now``: (new keys, revised keys) by first byte."""
    new: dict[int, int] = {}
    revised: dict[int, int] = {}
    for batch in export_batches(storage, signer, out, now):
        export, _ = open_signed_export((out / batch.name).read_bytes(), signer.public_key)
        for found, into in ((export.keys, new), (export.revised_keys, revised)):
            for k in uploaded(found, storage):
                assert bytes(k["key"])[0] not in into  # each key once
                into[bytes(k["key"])[0]] = int(k["report_type"])
    return new, revised


@pytest.mark.parametrize("export_between", [True, False])
def test_an_f1s_recursive_keys_become_likely_then_confirmed(storage, tmp_path, export_between: bool) -> None:
    """An F1 uploads for F2 warnings (recursive), is later diagnosed "likely", then tests positive: a stronger
    report always wins, each upload revising the keys sent before (once each, never a second copy), as GAEN's
    reference server lets a likely report be confirmed; nothing goes down, and confirmed is final.  Refused at
    the confirmed upload since e05f390 (key_already_revised: a key was revised once until schema 17 kept each
    revision), and before d8ed463 at the likely one (invalid_report_type_transition)."""
    import datetime as dt

    signer = keygen(tmp_path / "k")
    day = rolling_start(NOW) - ROLLING_PERIOD
    exposed = dt.datetime.fromtimestamp(day * 600, dt.UTC).date()
    first = _publish(storage, issue_code(storage, NOW, key=KEY, test_type="recursive", exposure_date=exposed).code, [(day, 144)])
    assert _exported_types(storage, signer, tmp_path / "out", NOW) == ({1: 4}, {})
    # the likely code's upload: the 14 days' keys, the one sent before revised, the one before the exposure new
    likely = _publish(storage, issue_code(storage, NOW, key=KEY, test_type="likely").code, [(day, 144), (day - 144, 144)],
                      first.revision_token)
    assert (likely.inserted, likely.revised) == (1, 1) and _stored_type(storage, b"\x01" * 16) == (4, 2)
    if export_between:
        assert _exported_types(storage, signer, tmp_path / "out", NOW + 60) == ({2: 2}, {1: 2})
    with pytest.raises(PublishError) as err:  # nothing goes down: a recursive code does not undo a diagnosis
        _publish(storage, issue_code(storage, NOW, key=KEY, test_type="recursive", exposure_date=exposed).code,
                 [(day, 144)], likely.revision_token)
    assert err.value.code == "invalid_report_type_transition" and _stored_type(storage, b"\x01" * 16) == (4, 2)
    confirmed = _publish(storage, issue_code(storage, NOW, key=KEY, test_type="confirmed").code,
                         [(day, 144), (day - 144, 144)], likely.revision_token)
    assert (confirmed.inserted, confirmed.revised) == (0, 2)
    assert _stored_type(storage, b"\x01" * 16) == (4, 1) and _stored_type(storage, b"\x02" * 16) == (2, 1)
    # the key revised twice before one export is in its revised keys once, as it stands now
    expected = ({}, {1: 1, 2: 1}) if export_between else ({2: 1}, {1: 1})
    assert _exported_types(storage, signer, tmp_path / "out", NOW + 120) == expected
    with pytest.raises(PublishError) as err:  # confirmed is final
        _publish(storage, issue_code(storage, NOW, key=KEY, test_type="negative").code, [(day, 144)], confirmed.revision_token)
    assert err.value.code == "key_already_revised"


def test_a_recursive_key_becomes_confirmed_in_one_revision(storage, tmp_path) -> None:
    """An F1 who uploaded for F2 warnings and then tests positive: recursive -> confirmed, once."""
    import datetime as dt

    day = rolling_start(NOW) - ROLLING_PERIOD
    exposed = dt.datetime.fromtimestamp(day * 600, dt.UTC).date()
    first = _publish(storage, issue_code(storage, NOW, key=KEY, test_type="recursive", exposure_date=exposed).code, [(day, 144)])
    confirmed = _publish(storage, issue_code(storage, NOW, key=KEY, test_type="confirmed").code, [(day, 144)],
                         first.revision_token)
    assert confirmed.revised == 1 and _stored_type(storage, b"\x01" * 16) == (4, 1)
    with pytest.raises(PublishError) as err:
        _publish(storage, issue_code(storage, NOW, key=KEY, test_type="negative").code, [(day, 144)], confirmed.revision_token)
    assert err.value.code == "key_already_revised"


def test_only_likely_reports_can_be_revised(storage) -> None:
    day = rolling_start(NOW) - ROLLING_PERIOD
    first = _publish(storage, issue_code(storage, NOW, key=KEY, test_type="confirmed").code, [(day, 144)])
    with pytest.raises(PublishError) as err:
        _publish(storage, issue_code(storage, NOW, key=KEY, test_type="negative").code, [(day, 144)], first.revision_token)
    assert err.value.code == "invalid_report_type_transition" and _stored_type(storage, b"\x01" * 16) == (1, None)


def test_new_keys_of_a_negative_test_are_not_stored(storage) -> None:
    """As in GAEN: a negative test revokes what was published; it publishes nothing new."""
    day = rolling_start(NOW) - ROLLING_PERIOD
    outcome = _publish(storage, issue_code(storage, NOW, key=KEY, test_type="negative").code, [(day, 144)])
    assert (outcome.inserted, outcome.revised, storage.count_keys()) == (0, 0, 0)
    later = _publish(storage, issue_code(storage, NOW, key=KEY, test_type="confirmed").code, [(day, 144)])
    assert later.inserted == 1  # and it does not stand in the way of a later positive report


def test_a_revision_made_while_an_export_runs_goes_out_in_the_next(storage, tmp_path, monkeypatch) -> None:
    """The revision lands after the export read the key (from another thread, as the server's thread
    pool runs it; on PostgreSQL it waits until the export's transaction, which holds the key's queue
    row, commits): the file carries the key as read, the next file the revision."""
    from concurrent.futures import ThreadPoolExecutor

    signer = keygen(tmp_path / "k")
    day = rolling_start(NOW) - ROLLING_PERIOD
    first = _publish(storage, issue_code(storage, NOW, key=KEY, test_type="likely").code, [(day, 144)])
    code = issue_code(storage, NOW, key=KEY, test_type="negative").code
    sign, revising = exports.signed_export_zip, []

    with ThreadPoolExecutor(1) as pool:
        def sign_while_revised(*args, **kwargs):
            if not revising:
                revising.append(pool.submit(_publish, storage, code, [(day, 144)], first.revision_token))
            return sign(*args, **kwargs)

        monkeypatch.setattr(exports, "signed_export_zip", sign_while_revised)
        (batch,) = export_batches(storage, signer, tmp_path / "out", NOW)
        monkeypatch.setattr(exports, "signed_export_zip", sign)
        assert revising[0].result(timeout=60).revised == 1
    export, _ = open_signed_export((tmp_path / "out" / batch.name).read_bytes(), signer.public_key)
    assert uploaded(export.keys, storage)["report_type"].tolist() == [2]  # read before the revision
    (later,) = export_batches(storage, signer, tmp_path / "out", NOW + 60)
    export, _ = open_signed_export((tmp_path / "out" / later.name).read_bytes(), signer.public_key)
    assert len(export.keys) == 0 and uploaded(export.revised_keys, storage)["report_type"].tolist() == [5]


def test_two_servers_revising_one_key_at_once_one_wins(storage, request) -> None:
    """Two server processes on one database revising one key at once (negative, confirmed): one wins, whatever the interleaving."""
    from concurrent.futures import ThreadPoolExecutor

    day = rolling_start(NOW) - ROLLING_PERIOD
    first = _publish(storage, issue_code(storage, NOW, key=KEY, test_type="likely").code, [(day, 144)])
    codes = [issue_code(storage, NOW, key=KEY, test_type=t).code for t in ("negative", "confirmed")]
    from bluezone.server.storage import SQLiteStorage

    other = open_storage(storage.path if isinstance(storage, SQLiteStorage) else request.getfixturevalue("postgres_dsn"))
    servers = [storage, other]  # two connections, as two server processes have

    def attempt(i: int) -> str:
        try:
            _publish(servers[i], codes[i], [(day, 144)], first.revision_token)
            return "revised"
        except PublishError as exc:
            return exc.code

    try:
        with ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(attempt, range(2)))
    finally:
        other.close()
    assert outcomes == ["key_already_revised", "revised"]


def test_schema_1_database_is_migrated_in_place(tmp_path) -> None:
    """A key server database of the first release opens with its keys and codes intact."""
    import sqlite3

    from bluezone.server.storage import schema

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    write_first_release_tables(conn)
    conn.commit()
    conn.close()
    s = open_storage(path)
    try:
        assert schema_version(s) == schema.SCHEMA_VERSION
        with s._transaction() as cur:
            row = s._exec(cur, "SELECT report_type, revised_report_type, revised_at FROM exposure_keys").fetchone()
            tokens = s._exec(cur, "SELECT COUNT(*) FROM revision_tokens").fetchone()[0]
        assert tuple(row) == (2, None, None) and tokens == 0
    finally:
        s.close()
    open_storage(path).close()  # opening again changes nothing


def test_codes_are_stored_as_keyed_hashes(storage) -> None:
    """Issue 14.5: a leaked database gave away live codes (plain SHA-256 of 8 digits, ~100 s of work).
    The stored hash needs the code key, which lives outside the database."""
    import hashlib

    from bluezone.server.codes import SHORT, CodeKey

    code = issue_code(storage, NOW, key=KEY, kind=SHORT).code
    with storage._transaction() as cur:
        (stored,) = storage._exec(cur, "SELECT code_hash FROM codes").fetchone()
    assert stored != hashlib.sha256(code.encode()).hexdigest()
    # brute force over the 8-digit space with the wrong key finds nothing
    other = CodeKey(b"\x01" * 32)
    assert all(other.hash(f"{n:08d}") != stored for n in range(int(code) - 500, int(code) + 500))
    assert storage.get_code(KEY.hash(code)) is not None
    with pytest.raises(PublishError) as info:  # the same digits under another key are not the code
        publish(storage, _body(code, [(rolling_start(NOW) - 144, 144)]), "c", NOW, PublishConfig(), code_key=other)
    assert info.value.code == "verification_code_invalid"


def test_codes_issued_before_the_code_key_still_verify_until_they_expire(tmp_path, monkeypatch) -> None:
    """A schema-2 database with plain SHA-256 codes: after the upgrade those codes still work (and
    only until they expire); new codes are keyed."""
    import hashlib
    import sqlite3

    from bluezone.server.storage import schema

    path = tmp_path / "v2.db"
    with monkeypatch.context() as m:  # what the previous release left: schema 2, no `keyed` column
        m.setattr(schema, "SCHEMA_VERSION", 2)
        open_storage(path).close()
    conn = sqlite3.connect(path)
    for code, expires in (("11112222", NOW + 3600), ("33334444", NOW + 3600), ("55556666", NOW - 1)):
        conn.execute(
            "INSERT INTO codes (code_hash, report_type, test_type, issued_at, expires_at) VALUES (?, 1, 'confirmed', ?, ?)",
            [hashlib.sha256(code.encode()).hexdigest(), NOW - 600, expires],
        )
    conn.commit()
    conn.close()
    s = open_storage(path)
    try:
        day = rolling_start(NOW) - ROLLING_PERIOD
        assert publish(s, _body("11112222", [(day, 144)]), "c", NOW, PublishConfig(), code_key=KEY).inserted == 1
        with pytest.raises(PublishError) as info:
            publish(s, _body("55556666", [(day, 144)]), "c", NOW, PublishConfig(), code_key=KEY)
        assert info.value.code == "verification_code_expired"
        with pytest.raises(PublishError) as info:  # past its expiry the old code is as dead as any
            publish(s, _body("33334444", [(day, 144)]), "c", NOW + 3601, PublishConfig(), code_key=KEY)
        assert info.value.code == "verification_code_expired"
        new = issue_code(s, NOW, key=KEY).code
        with s._transaction() as cur:
            keyed = s._exec(cur, "SELECT keyed FROM codes WHERE code_hash = ?", [KEY.hash(new)]).fetchone()[0]
        assert keyed == 1 and schema.SCHEMA_VERSION >= 3  # 4: venue check-ins
        # a new code's hash is not accepted as a plain SHA-256 of anything: only the keyed path opens it
        assert publish(s, _body(new, [(day - 288, 144), (day - 144, 144)]), "c", NOW, PublishConfig(), code_key=KEY).inserted == 1
    finally:
        s.close()


def test_a_code_drawn_twice_is_drawn_again(storage, monkeypatch) -> None:
    """Short codes collide with a code on record now and then (the server benchmark hit it at 8 digits): draw again."""
    import itertools
    import types

    from stdnum import damm

    from bluezone.errors import ServerStorageError
    from bluezone.server import codes

    digits = itertools.chain("1" * 10, "1" * 10, "2" * 10)
    monkeypatch.setattr(codes, "secrets", types.SimpleNamespace(choice=lambda _: next(digits)))
    assert issue_code(storage, NOW, key=KEY, kind=codes.SHORT).code == "1111111111" + damm.calc_check_digit("1" * 10)
    assert issue_code(storage, NOW, key=KEY, kind=codes.SHORT).code == "2222222222" + damm.calc_check_digit("2" * 10)
    monkeypatch.setattr(codes, "secrets", types.SimpleNamespace(choice=lambda _: "1"))
    with pytest.raises(ServerStorageError, match="no free verification code"):
        issue_code(storage, NOW, key=KEY, kind=codes.SHORT)


def test_expired_codes_are_purged(storage) -> None:
    old = issue_code(storage, NOW - 3 * 86400, key=KEY, lifetime=3600).code
    live = issue_code(storage, NOW, key=KEY).code
    storage.purge(0, NOW - 2 * 86400)
    assert storage.get_code(KEY.hash(old)) is None and storage.get_code(KEY.hash(live)) is not None


@pytest.fixture(params=["sqlite", "postgres"])
def new_db(request, tmp_path) -> str:
    """Where a new key server database can be made, on each backend (nothing opened yet)."""
    return str(tmp_path / "server.db") if request.param == "sqlite" else request.getfixturevalue("postgres_dsn")


def _queue(storage, name: str) -> list[int]:
    with storage._transaction() as cur:
        return sorted(int(i) for (i,) in storage._exec(cur, f"SELECT key_id FROM {name}"))


def test_a_schema_7_database_keeps_its_pending_and_exported_keys_in_the_export_queue(new_db, tmp_path, monkeypatch) -> None:
    """Schema 8 moved "not yet exported" from each key's batch_id into export_queue (and revisions
    not yet in a file into revision_queue): what a schema-7 server left to export is exported, once,
    as it would have been; nothing exported before goes out again."""
    from bluezone.server.storage import schema

    with monkeypatch.context() as m:
        m.setattr(schema, "SCHEMA_VERSION", 7)
        old = open_storage(new_db)
    yesterday, today = rolling_start(NOW) - ROLLING_PERIOD, rolling_start(NOW)
    batch, revised_batch = "batch_id", "revised_batch_id"
    rows = {  # first key byte: (rolling start, report type, revised to, exported in batch 1, revision exported)
        1: (yesterday, 1, None, True, False),  # exported
        2: (yesterday, 2, None, False, False),  # waiting
        3: (yesterday, 2, 1, True, False),  # exported, then confirmed: the revision waits
        4: (yesterday, 2, 5, True, True),  # exported, revoked, revision exported
        5: (yesterday, 2, 5, False, False),  # revoked before its first export: goes out revoked
        6: (today, 1, None, False, False),  # still valid today: embargoed
        7: (today - 20 * ROLLING_PERIOD, 1, None, False, False),  # too old to export: purged
    }
    with old._transaction() as cur:
        old._exec(cur, "INSERT INTO batches (name, created_at, start_timestamp, end_timestamp, batch_num, batch_size,"
                       " num_keys) VALUES ('old.zip', 0, 0, 0, 1, 1, 3)")
        (batch_id,) = old._exec(cur, "SELECT id FROM batches").fetchone()
        for byte, (start, kind, revised, exported, revision_exported) in rows.items():
            old._exec(
                cur,
                f"INSERT INTO exposure_keys (key_data, rolling_start, rolling_period, transmission_risk, report_type,"
                f" received_at, revised_report_type, revised_at, {batch}, {revised_batch}) VALUES (?, ?, 144, 0, ?, 0, ?, ?, ?, ?)",
                [bytes([byte]) * 16, start, kind, revised, None if revised is None else NOW - 60,
                 batch_id if exported else None, batch_id if revision_exported else None],
            )
    old.close()
    storage = open_storage(new_db)
    try:
        assert schema_version(storage) == schema.SCHEMA_VERSION
        with storage._transaction() as cur:
            ids = dict((bytes(k)[0], int(i)) for k, i in storage._exec(cur, "SELECT key_data, id FROM exposure_keys"))
        assert _queue(storage, "export_queue") == sorted(ids[b] for b in (2, 5, 6, 7))
        assert _queue(storage, "revision_queue") == sorted(ids[b] for b in (3, 5))
        assert exports.embargoed(storage, NOW).keys == 1
        signer, out = keygen(tmp_path / "k"), tmp_path / "out"
        (first,) = export_batches(storage, signer, out, NOW)
        export, _ = open_signed_export((out / first.name).read_bytes(), signer.public_key)
        assert {bytes(k["key"])[0]: int(k["report_type"]) for k in uploaded(export.keys, storage)} == {2: 2, 5: 5}
        assert {bytes(k["key"])[0]: int(k["report_type"]) for k in export.revised_keys} == {3: 1}
        assert export_batches(storage, signer, out, NOW + 60) == []  # each went out once
        (later,) = export_batches(storage, signer, out, NOW + 86400)
        export, _ = open_signed_export((out / later.name).read_bytes(), signer.public_key)
        assert [bytes(k)[0] for k in uploaded(export.keys, storage)["key"]] == [6] and len(export.revised_keys) == 0
        assert storage.count_keys() == 6 and _queue(storage, "export_queue") == _queue(storage, "revision_queue") == []
    finally:
        storage.close()
    open_storage(new_db).close()  # opening again changes nothing


def test_a_schema_8_database_keeps_its_queue_with_each_key_as_it_stands(new_db, tmp_path, monkeypatch) -> None:
    """Schema 9 keeps in export_queue what the export writes of each key: a schema-8 queue (ids only) is
    filled from the keys as they stand, a revision before the first export in them; ids whose key is
    gone are dropped; nothing exported before goes out again."""
    from bluezone.server.storage import schema

    with monkeypatch.context() as m:
        m.setattr(schema, "SCHEMA_VERSION", 8)
        old = open_storage(new_db)
    yesterday = rolling_start(NOW) - ROLLING_PERIOD
    rows = {  # first key byte: (report type, revised to, days since onset, revised onset, queued, revision queued)
        1: (1, None, -3, None, False, False),  # exported
        2: (2, None, None, None, True, False),  # waiting, onset unknown
        3: (2, 1, 4, 5, False, True),  # exported, then confirmed: the revision waits
        4: (2, 5, 2, None, True, True),  # revoked before its first export: goes out revoked, onset unknown now
        5: (1, None, 7, None, True, False),  # waiting, transmission risk 6
    }
    with old._transaction() as cur:
        for byte, (kind, revised, onset, revised_onset, queued, revision_queued) in rows.items():
            (key_id,) = old._exec(
                cur,
                "INSERT INTO exposure_keys (key_data, rolling_start, rolling_period, transmission_risk, report_type,"
                " days_since_onset, received_at, revised_report_type, revised_days_since_onset, revised_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?) RETURNING id",
                [bytes([byte]) * 16, yesterday, 100 + byte, 6 if byte == 5 else 0, kind, onset, revised, revised_onset,
                 None if revised is None else NOW - 60],
            ).fetchone()
            if queued:
                old._exec(cur, "INSERT INTO export_queue (key_id) VALUES (?)", [key_id])
            if revision_queued:
                old._exec(cur, "INSERT INTO revision_queue (key_id) VALUES (?)", [key_id])
        old._exec(cur, "INSERT INTO export_queue (key_id) VALUES (?)", [10**6])  # its key purged (no foreign key)
    old.close()
    storage = open_storage(new_db)
    try:
        assert schema_version(storage) == schema.SCHEMA_VERSION
        unknown = int(empty_keys(1)["days_since_onset"][0])
        queued, _, revised = storage.pending_keys(interval_number(NOW), 0)
        assert {bytes(k["key"])[0]: (int(k["rolling_period"]), int(k["transmission_risk"]), int(k["report_type"]),
                                     int(k["days_since_onset"]), bool(r)) for k, r in zip(queued, revised)} == {
            2: (102, 0, 2, unknown, False), 4: (104, 0, 5, unknown, True), 5: (105, 6, 1, 7, False)}
        revisions, _, _ = storage.pending_revisions(0)
        assert [(bytes(k["key"])[0], int(k["report_type"]), int(k["days_since_onset"])) for k in revisions] == [(3, 1, 5)]
        signer, out = keygen(tmp_path / "k"), tmp_path / "out"
        (batch,) = export_batches(storage, signer, out, NOW)
        export, _ = open_signed_export((out / batch.name).read_bytes(), signer.public_key)
        got = {bytes(k["key"])[0]: (int(k["rolling_period"]), int(k["transmission_risk"]), int(k["report_type"]),
                                    int(k["days_since_onset"])) for k in uploaded(export.keys, storage)}
        assert got == {2: (102, 0, 2, unknown), 4: (104, 0, 5, unknown), 5: (105, 6, 1, 7)}
        assert {bytes(k["key"])[0]: int(k["report_type"]) for k in export.revised_keys} == {3: 1}
        assert export_batches(storage, signer, out, NOW + 60) == []  # each went out once, the revisions too
        assert _queue(storage, "export_queue") == _queue(storage, "revision_queue") == []
    finally:
        storage.close()


def test_the_purge_of_expired_keys_reads_an_index(storage) -> None:
    """Each export purges keys past 14 days: by the index on their end (schema 8), not a scan of every key."""
    from bluezone.server.storage import SQLiteStorage

    purge = "DELETE FROM exposure_keys WHERE rolling_start + rolling_period < 2900000"
    with storage._transaction() as cur:
        if isinstance(storage, SQLiteStorage):
            plan = " ".join(str(row) for row in storage._exec(cur, f"EXPLAIN QUERY PLAN {purge}"))
        else:  # a small table is scanned whatever indexes it has, unless scans are ruled out
            storage._exec(cur, "SET LOCAL enable_seqscan = off")
            plan = " ".join(str(row) for row in storage._exec(cur, f"EXPLAIN {purge}"))
    assert "exposure_keys_end" in plan, plan


def test_a_key_uploaded_while_an_export_runs_goes_out_in_the_next(storage, tmp_path, monkeypatch, request) -> None:
    """Uploads commit (here through another connection, as another server process) while the export
    signs what it read: their keys are in no file yet and stay queued; nothing is lost."""
    from bluezone.server.storage import SQLiteStorage

    other = open_storage(storage.path if isinstance(storage, SQLiteStorage) else request.getfixturevalue("postgres_dsn"))
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    day = rolling_start(NOW) - ROLLING_PERIOD
    _publish(storage, issue_code(storage, NOW, key=KEY).code, [(day, 144)])
    code = issue_code(storage, NOW, key=KEY).code
    sign, uploads = exports.signed_export_zip, []

    def sign_while_uploaded(*args, **kwargs):
        body = json.dumps({"temporaryExposureKeys": [{"key": "AgICAgICAgICAgICAgICAg==", "rollingStartNumber": day}],
                           "verificationPayload": code}).encode()
        uploads.append(publish(other, body, "c", NOW, PublishConfig(), code_key=KEY).inserted)
        return sign(*args, **kwargs)

    monkeypatch.setattr(exports, "signed_export_zip", sign_while_uploaded)
    try:
        (first,) = export_batches(storage, signer, out, NOW)
    finally:
        other.close()
    monkeypatch.undo()
    export, _ = open_signed_export((out / first.name).read_bytes(), signer.public_key)
    assert uploads == [1] and [bytes(k)[0] for k in uploaded(export.keys, storage)["key"]] == [1]
    (second,) = export_batches(storage, signer, out, NOW + 60)
    export, _ = open_signed_export((out / second.name).read_bytes(), signer.public_key)
    assert [bytes(k)[0] for k in uploaded(export.keys, storage)["key"]] == [2]
    assert export_batches(storage, signer, out, NOW + 120) == []


def test_two_exports_at_once_publish_each_key_once(storage, tmp_path, monkeypatch, request) -> None:
    """Two exporters (two server processes with --export-every, or `server export` beside one), the
    second reading the queue while the first signs: one of them finds its keys gone from the queue
    when it takes them out, records nothing and removes its files, so no key is in two listed files.
    (On PostgreSQL the first holds the rows it takes until it commits: the second waits, then loses.)"""
    import threading
    from concurrent.futures import ThreadPoolExecutor, wait

    from bluezone.errors import ServerStorageError
    from bluezone.server.storage import SQLiteStorage

    keys = empty_keys(40)
    keys["key"] = np.frombuffer(np.random.default_rng(9).bytes(16 * 40), "V16")
    keys["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD
    storage.insert_keys_unchecked(keys, NOW)
    other = open_storage(storage.path if isinstance(storage, SQLiteStorage) else request.getfixturevalue("postgres_dsn"))
    signer, out, config = keygen(tmp_path / "k"), tmp_path / "out", exports.ExportConfig(max_keys_per_file=15)
    sign, read = exports.signed_export_zip, other.pending_keys
    other_read, started = threading.Event(), []

    def read_and_tell(*args, **kwargs):
        try:
            return read(*args, **kwargs)
        finally:
            other_read.set()

    def export(server):
        try:
            return export_batches(server, signer, out, NOW, config)
        except ServerStorageError as exc:
            assert "another export" in str(exc)
            return None

    monkeypatch.setattr(other, "pending_keys", read_and_tell)
    with ThreadPoolExecutor(1) as pool:
        def sign_while_another_exports(*args, **kwargs):
            if not started:  # the other export starts while this one signs its first file, and reads all 40
                started.append(pool.submit(export, other))
                assert other_read.wait(60)
            return sign(*args, **kwargs)

        monkeypatch.setattr(exports, "signed_export_zip", sign_while_another_exports)
        try:
            outcomes = [export(storage), started[0].result(timeout=60)]
        finally:
            if started:  # not closed under the other export's thread (a segfault ended a whole test run)
                wait(started)
            other.close()
    monkeypatch.undo()
    assert outcomes.count(None) == 1, outcomes  # one lost
    (done,) = [o for o in outcomes if o is not None]
    assert sum(b.num_keys for b in done) == 40 and [b.name for b in storage.batches()] == [b.name for b in done]
    assert sorted(p.name for p in out.glob("*.zip")) == sorted(b.name for b in done)  # the loser's files removed
    held = [bytes(k) for b in done for k in open_signed_export((out / b.name).read_bytes(), signer.public_key)[0].keys["key"]]
    assert sorted(held) == sorted(bytes(k) for k in keys["key"])
    assert export_batches(storage, signer, out, NOW + 60, config) == []


def test_a_database_without_key_server_tables_is_refused_unless_created(storage, tmp_path, request) -> None:
    """Issue 14.10 on both backends: `create=False` (issue-code, export) never makes a new database."""
    from bluezone.server.storage import SQLiteStorage

    if isinstance(storage, SQLiteStorage):
        target = str(tmp_path / "nowhere" / "typo.db")
    else:  # a fresh, empty database beside the one the storage fixture made
        import uuid

        import psycopg

        cluster = request.getfixturevalue("postgres_cluster")
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(cluster, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        target = cluster.replace("/postgres?", f"/{name}?")
    with pytest.raises(InputError, match="--create-db"):
        open_storage(target, create=False)
    open_storage(target).close()  # as `server run` (or --create-db) does
    open_storage(target, create=False).close()


def test_pending_keys_read_back_exactly_and_leave_the_queue_in_one_file_each(storage, tmp_path) -> None:
    """Keys come back column-wise: every byte value in key data (NUL, invalid UTF-8), onsets unknown
    (NULL) between known ones, all columns aligned; then each key is in exactly one file and out of the queue."""
    rng = np.random.default_rng(7)
    n = 3_000
    keys = empty_keys(n)
    raw = np.frombuffer(rng.bytes(16 * n), np.uint8).reshape(n, 16).copy()
    raw[:256, 0] = np.arange(256)  # every first byte, and whole keys of zeros and of 0xFF
    raw[256], raw[257] = 0, 0xFF
    keys["key"] = raw.view("V16").ravel()
    today = rolling_start(NOW)
    keys["rolling_start"] = today - ROLLING_PERIOD * rng.integers(1, 14, n)
    keys["rolling_period"] = rng.integers(1, 145, n)
    keys["transmission_risk"] = rng.integers(0, 9, n)
    keys["report_type"] = rng.integers(1, 5, n)
    keys["days_since_onset"] = np.where(rng.random(n) < 0.5, empty_keys(1)["days_since_onset"][0], rng.integers(-14, 15, n))
    storage.insert_keys_unchecked(keys, NOW)
    pending, ids, revised = storage.pending_keys(interval_number(NOW), today - 14 * ROLLING_PERIOD)
    assert len(np.unique(ids)) == n and not revised.any()
    assert pending[np.argsort(ids)].tobytes() == keys.tobytes()  # ids follow insertion order
    signer = keygen(tmp_path / "k")
    batches = export_batches(storage, signer, tmp_path / "out", NOW, exports.ExportConfig(max_keys_per_file=100))
    assert len(batches) > len(np.unique(keys["rolling_start"])) and not len(storage.pending_keys(interval_number(NOW), 0)[0])
    held = []
    for batch in batches:
        export, _ = open_signed_export((tmp_path / "out" / batch.name).read_bytes(), signer.public_key)
        assert len(export.keys) == batch.num_keys <= 100
        held.extend(bytes(k) for k in export.keys["key"])
    assert sorted(held) == sorted(bytes(k) for k in keys["key"]) and _queue(storage, "export_queue") == []


def test_pending_keys_carry_any_32_bit_value(storage) -> None:
    """The read packs two 32-bit fields into one 64-bit number: the extremes and negative values of
    every field come back as stored (nothing the publish API accepts is near them)."""
    edge = np.array([-(2**31), -(2**31) + 1, -1, 0, 1, 2**31 - 1], np.int32)
    keys = empty_keys(len(edge))
    keys["key"] = np.frombuffer(np.random.default_rng(3).bytes(16 * len(edge)), "V16")
    keys["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD
    keys["rolling_period"] = edge.clip(max=ROLLING_PERIOD)  # (the end of validity must have passed)
    keys["transmission_risk"] = keys["days_since_onset"] = edge[::-1]
    keys["report_type"] = np.array([-128, -1, 0, 1, 5, 127], np.int8)
    storage.insert_keys_unchecked(keys, NOW)
    pending, ids, revised = storage.pending_keys(interval_number(NOW), 0)
    assert pending[np.argsort(ids)].tobytes() == keys.tobytes() and not revised.any()


def test_keys_with_ids_near_the_int64_limit_leave_the_queue(tmp_path) -> None:
    """The export takes the ids it published out of the queue as a JSON array: ids near 2^62 too."""
    storage = open_storage(tmp_path / "server.db")
    keys = empty_keys(3)
    keys["key"] = np.frombuffer(bytes(range(48)), "V16")
    keys["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD
    storage.insert_keys_unchecked(keys[:2], NOW)
    with storage._transaction() as cur:  # the next key gets id 2^62 + 1
        storage._exec(cur, "DELETE FROM export_queue WHERE key_id = 2")
        storage._exec(cur, "UPDATE exposure_keys SET id = ? WHERE id = 2", [2**62])
        storage._queue_keys(cur, "export_queue", "k.id = ?", [2**62])
    storage.insert_keys_unchecked(keys[2:], NOW)
    (batch,) = export_batches(storage, keygen(tmp_path / "k"), tmp_path / "out", NOW)
    assert batch.num_keys == 3 and not len(storage.pending_keys(interval_number(NOW), 0)[0])
    assert _queue(storage, "export_queue") == [] and storage.count_keys() == 3
    storage.close()


@pytest.mark.parametrize("where", ["signing the third file", "writing the second file", "taking the keys out of the queue"])
def test_an_export_that_fails_half_way_marks_and_lists_nothing(storage, tmp_path, monkeypatch, where) -> None:
    keys = empty_keys(50)
    keys["key"] = np.frombuffer(np.random.default_rng(5).bytes(16 * 50), "V16")
    keys["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD
    storage.insert_keys_unchecked(keys, NOW)
    signer, out, config = keygen(tmp_path / "k"), tmp_path / "out", exports.ExportConfig(max_keys_per_file=10)
    if where in ("signing the third file", "writing the second file"):  # (files are written by another thread)
        name, nth = ("signed_export_zip", 3) if where.startswith("signing") else ("write_file", 2)
        real, calls = getattr(exports, name), []

        def fail_nth(*args, **kwargs):
            calls.append(1)
            if len(calls) == nth:
                raise OSError("disk full")
            return real(*args, **kwargs)

        monkeypatch.setattr(exports, name, fail_nth)
        with pytest.raises(OSError):
            export_batches(storage, signer, out, NOW, config)
    else:
        def fail(*args, **kwargs):
            raise RuntimeError("connection lost")

        monkeypatch.setattr(storage, "_dequeue", fail)
        with pytest.raises(RuntimeError):
            export_batches(storage, signer, out, NOW, config)
    monkeypatch.undo()
    assert storage.batches() == [] and len(storage.pending_keys(interval_number(NOW), 0)[0]) == 50
    assert not (out / "index.txt").exists() and list(out.iterdir()) == []  # the files written were removed
    assert sum(b.num_keys for b in export_batches(storage, signer, out, NOW, config)) == 50
    assert len((out / "index.txt").read_text().split()) == 5


def test_an_export_reading_the_queue_holds_off_no_upload_of_another_process(tmp_path, monkeypatch) -> None:
    """SQLite: the export reads the queue in a read-only transaction (WAL: a snapshot), so a write
    through another connection commits meanwhile instead of waiting for it (inside BEGIN IMMEDIATE,
    the read of a million keys held every upload for its 0.3-1 s)."""
    path = tmp_path / "server.db"
    storage, other = open_storage(path), open_storage(path)
    other._conn.execute("PRAGMA busy_timeout = 0")  # here, waiting would be failing
    keys = empty_keys(2)
    keys["key"] = np.frombuffer(bytes(range(32)), "V16")
    keys["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD
    storage.insert_keys_unchecked(keys[:1], NOW)
    read = storage._joined_records

    def read_then_upload(*args):
        result = read(*args)
        other.insert_keys_unchecked(keys[1:], NOW)  # while the read's transaction is still open
        return result

    monkeypatch.setattr(storage, "_joined_records", read_then_upload)
    pending, _, _ = storage.pending_keys(interval_number(NOW), 0)
    assert bytes(pending["key"][0]) == bytes(range(16)) and len(pending) == 1  # its snapshot
    assert other.count_keys() == 2 and len(other.pending_keys(interval_number(NOW), 0)[0]) == 2
    storage.close()
    other.close()


def test_pending_keys_read_back_exactly_from_a_utf16_database(tmp_path) -> None:
    """A database made UTF-16 before the server's first start: key bytes joined as text would be
    converted from UTF-16, so they are read in hex there."""
    import sqlite3

    path = tmp_path / "utf16.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA encoding = 'UTF-16le'")
    # the encoding is fixed once the file has content: the server's first table, as it would make it
    conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.commit()
    conn.close()
    storage = open_storage(path)
    keys = empty_keys(256)
    raw = np.zeros((256, 16), np.uint8)
    raw[:, 0], raw[:, 1], raw[:, 15] = np.arange(256), 0xD8, np.arange(256)[::-1]  # lone surrogates, NULs
    keys["key"] = raw.view("V16").ravel()
    keys["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD * (1 + np.arange(256) % 13)
    storage.insert_keys_unchecked(keys, NOW)
    pending, ids, _ = storage.pending_keys(interval_number(NOW), 0)
    assert storage._utf8 is False and pending[np.argsort(ids)].tobytes() == keys.tobytes()
    storage.close()


def test_benchmark_takes_only_a_scratch_database(storage) -> None:
    """The server benchmark re-exports every key and forgets the batches: never on a real server's data."""
    from bluezone.errors import NotScratchDatabaseError

    issue_code(storage, NOW, key=KEY)  # a real server's database: a code issued, nothing else yet
    with pytest.raises(NotScratchDatabaseError, match=r"holds a key server's data \(codes\)"):
        storage.claim_for_benchmark()
    assert storage.count_codes(1, issued_since=0) == 1 and storage.count_keys() == 0  # untouched


def test_benchmark_marks_its_scratch_database_and_may_use_it_again(tmp_path) -> None:
    scratch = open_storage(tmp_path / "scratch.db")
    try:
        scratch.claim_for_benchmark()  # empty: marked
        issue_code(scratch, NOW, key=KEY)
        scratch.claim_for_benchmark()  # holds what an earlier benchmark left: still its scratch
    finally:
        scratch.close()


def test_a_schema_9_database_counts_failed_tries_per_client(new_db, monkeypatch) -> None:
    """Schema 10 counts failed code tries in one row per client and window (code_tries) instead of a
    row per try (code_failures): the upgrade drops the old rows (the counts restart once) and the limit
    holds from then on."""
    from bluezone.server.storage import schema

    with monkeypatch.context() as m:
        m.setattr(schema, "SCHEMA_VERSION", 9)
        old = open_storage(new_db)
    for i in range(5):
        with old._transaction() as cur:
            old._exec(cur, "INSERT INTO code_failures (client, at, reason) VALUES (?, ?, 'invalid')", ["192.0.2.1", NOW - i])
    old.close()
    storage = open_storage(new_db)
    try:
        assert schema_version(storage) == schema.SCHEMA_VERSION
        tokens = [storage.claim_code_try("192.0.2.1", NOW, NOW - 3600, 3) for _ in range(4)]
        assert [t is not None for t in tokens] == [True, True, True, False]
        assert storage.count_failures(0, "192.0.2.1") == 3 and storage.count_try_rows() == 1
    finally:
        storage.close()


def test_a_schema_17_database_keeps_its_files_records_and_reads_their_fakes_from_the_files(new_db, monkeypatch) -> None:
    """Schema 18 keeps each key file's fakes with its record: a file recorded before has none (NULL, not "no
    fakes"), so the export reads that file back for them as before; one recorded after has its own."""
    from bluezone.server.storage import schema

    with monkeypatch.context() as m:
        m.setattr(schema, "SCHEMA_VERSION", 17)
        old = open_storage(new_db)
    with old._transaction() as cur:
        old._exec(cur, "INSERT INTO batches (name, created_at, start_timestamp, end_timestamp, batch_num, batch_size,"
                       " num_keys, padding_keys, sha256) VALUES ('old.zip', ?, 86400, 172800, 1, 1, 2, 100, NULL)", [NOW])
    old.close()
    storage = open_storage(new_db)
    try:
        assert schema_version(storage) == schema.SCHEMA_VERSION == 18
        new = BatchRecord("new.zip", NOW, 86400, 172800, 1, 1, 2, 1, None, b"\x01" * 33, b"")
        with storage._transaction() as cur:
            storage._record_batches(cur, [new])
        assert storage.batch_padding(0, [86400]) == [("old.zip", 86400, None, None), ("new.zip", 86400, b"\x01" * 33, b"")]
        assert storage.batch_padding(0, [0]) == [] and [b.name for b in storage.batches()] == ["old.zip", "new.zip"]
    finally:
        storage.close()


def test_a_database_not_as_its_schema_version_says_is_refused_in_one_line_unchanged(tmp_path) -> None:
    """The key server of 3746de4 (the six minutes before 48518d3) keyed exposure_keys by the key, without the id
    every migration uses, at schema version 1: opened, it failed with 'OperationalError: no such column: id', exit 1."""
    import sqlite3

    from click.testing import CliRunner

    from bluezone.cli import cli

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.execute("CREATE TABLE codes (code_hash TEXT PRIMARY KEY, report_type INTEGER NOT NULL, test_type TEXT NOT NULL,"
                 " test_day INTEGER, onset_day INTEGER, issued_at REAL NOT NULL, expires_at REAL NOT NULL, used_at REAL)")
    conn.execute("CREATE TABLE code_failures (client TEXT NOT NULL, at REAL NOT NULL, reason TEXT NOT NULL)")
    conn.execute("CREATE TABLE batches (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at REAL NOT NULL,"
                 " start_timestamp BIGINT NOT NULL, end_timestamp BIGINT NOT NULL, batch_num INTEGER NOT NULL,"
                 " batch_size INTEGER NOT NULL, num_keys INTEGER NOT NULL)")
    conn.execute("CREATE TABLE exposure_keys (key_data BLOB PRIMARY KEY, rolling_start INTEGER NOT NULL, rolling_period"
                 " INTEGER NOT NULL, transmission_risk INTEGER NOT NULL, report_type INTEGER NOT NULL, days_since_onset"
                 " INTEGER, received_at REAL NOT NULL, batch_id INTEGER REFERENCES batches (id))")
    conn.execute("CREATE INDEX exposure_keys_pending ON exposure_keys (batch_id, rolling_start)")
    conn.commit()
    before = list(conn.iterdump())
    conn.close()
    result = CliRunner().invoke(cli, ["server", "status", "--server-db", str(path)], obj={})
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"Error: key server database {path} is not as its schema version says, so it cannot be upgraded (SQLite: no"
        " such column: id); it was left as it was: one made by a build of bluezone between releases, or edited by hand"
    ]
    with sqlite3.connect(path) as conn:  # (only switched to WAL, as every open does)
        assert list(conn.iterdump()) == before


def test_a_database_with_two_names_is_refused_unchanged(tmp_path) -> None:
    """As the node's store (tests/proximity/test_store_hard_links.py): SQLite keeps the WAL by name, so a server and
    a cron's export under two names of one database (ln, cp -al) would write through two WALs and corrupt it."""
    import os

    from click.testing import CliRunner

    from bluezone.cli import cli

    path = tmp_path / "server.db"
    open_storage(path).close()
    os.link(path, tmp_path / "other.db")
    before = path.read_bytes()
    for name in (path, tmp_path / "other.db"):
        result = CliRunner().invoke(cli, ["server", "status", "--server-db", str(name)], obj={})
        assert result.exit_code == 2, result.output
        assert result.output == (
            f"Error: key server database {name} has 2 names (hard links, as ln or cp -al make): SQLite keeps its"
            " write-ahead log by name, so two processes using two names corrupt it; keep one name (cp the file to"
            " copy it)\n"
        )
    assert path.read_bytes() == before
