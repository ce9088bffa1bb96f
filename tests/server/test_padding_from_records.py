"""srv21: an export of revisions pads them with revisions of fakes published before.  Until srv21 it found those
fakes by reading back and verifying every listed file of their days (about half of a revisions export, srv20);
since schema 18 each key file's fakes and fake revisions come with its record, and the revisions' days since
onset as last published from key_revisions.  The files must not change: here the same uploads, exports and
roll-ups run twice on fresh databases with the same randomness (fakes, secrets, names, shuffles), once with
the records' padding and once with it erased before each export (what a file recorded before schema 18 has, so
the files are read as before), and every export.bin must be the same to the byte.  On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import psycopg
import pytest
from revision_helpers import revision_body
from server_helpers import KEY, NOW

from bluezone.crypto.intervals import DAY_SECONDS, ROLLING_PERIOD, rolling_start
from bluezone.keyformat.export import parse_whole_export_bin
from bluezone.server import exports, padding
from bluezone.server.codes import issue_code
from bluezone.server.exports import ExportConfig, export_batches
from bluezone.server.publish import PublishConfig, PublishResult, publish
from bluezone.server.signing import Signer, keygen
from bluezone.server.storage import Storage, open_storage

DAY = rolling_start(NOW) - ROLLING_PERIOD
ONE, TWO = [b"\x51" * 16, b"\x52" * 16], [b"\x61" * 16, b"\x62" * 16, b"\x63" * 16]


def _onset(days_ago: int) -> dt.date:
    return dt.datetime.fromtimestamp(NOW - days_ago * DAY_SECONDS, dt.UTC).date()


def upload_keys(storage: Storage, keys: list[bytes], kind: str, token: str | None, at: float, onset: int) -> PublishResult:
    extra: dict[str, Any] = {"exposure_date": _onset(3)} if kind == "recursive" else {"symptom_onset": _onset(onset)}
    code = issue_code(storage, at, key=KEY, test_type=kind, **extra).code
    return publish(storage, revision_body(code, token, keys), "192.0.2.1", at, PublishConfig(), code_key=KEY)


def _story(storage: Storage, signer: Signer, out: Path, erase: bool) -> Iterator[list[bytes]]:
    """Two F1s' keys published, revised likely then confirmed (onsets moving), across a roll-up: each export's
    export.bin payloads in name order (``erase``: the records' padding erased before each export)."""

    def export(at: float) -> list[bytes]:
        if erase:
            with storage._transaction() as cur:
                storage._exec(cur, "UPDATE batches SET fake_keys = NULL, fake_revisions = NULL")
        written = export_batches(storage, signer, out, at, ExportConfig(), np.random.default_rng(int(at)))
        payloads = []
        for batch in sorted(written, key=lambda b: b.name):
            with zipfile.ZipFile(io.BytesIO((out / batch.name).read_bytes())) as z:
                payloads.append(z.read("export.bin"))
        return payloads

    one = upload_keys(storage, ONE, "recursive", None, NOW + 5, 0)
    two = upload_keys(storage, TWO, "recursive", None, NOW + 6, 0)
    yield export(NOW + 20)
    one = upload_keys(storage, ONE, "likely", one.revision_token, NOW + 30, 4)
    yield export(NOW + 40)
    upload_keys(storage, ONE, "confirmed", one.revision_token, NOW + 50, 2)
    yield export(NOW + 60)
    later = NOW + 2 * DAY_SECONDS  # the first day's files rolled up
    yield export(later)
    two = upload_keys(storage, TWO, "likely", two.revision_token, later + 10, 5)
    yield export(later + 20)
    upload_keys(storage, TWO, "confirmed", two.revision_token, later + 30, 3)
    yield export(later + 40)


def _seeded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake keys, padding secrets and file names drawn from a seeded generator, not the system's randomness."""
    rng = np.random.default_rng(11)
    monkeypatch.setattr(padding, "os", SimpleNamespace(urandom=lambda n: rng.bytes(n)))
    monkeypatch.setattr(exports, "secrets", SimpleNamespace(token_hex=lambda n: rng.bytes(n).hex()))


@pytest.fixture(params=["sqlite", "postgres"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Storage]:
    opened: list[Storage] = []

    def make(name: str) -> Storage:
        if request.param == "sqlite":
            opened.append(open_storage(tmp_path / f"{name}.db"))
        else:
            cluster = request.getfixturevalue("postgres_cluster")
            db = f"t_{name}_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(cluster, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {db}")
            opened.append(open_storage(cluster.replace("/postgres?", f"/{db}?")))
        return opened[-1]

    request.addfinalizer(lambda: [s.close() for s in opened])
    return make


def test_padding_kept_with_the_records_writes_the_same_files_as_reading_them_back(
    fresh: Callable[[str], Storage], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer = keygen(tmp_path / "keys")
    read_back: list[int] = []
    from_files = exports._fakes_from_files
    monkeypatch.setattr(exports, "_fakes_from_files", lambda *a: read_back.append(1) or from_files(*a))

    _seeded(monkeypatch)
    kept = list(_story(fresh("kept"), signer, tmp_path / "kept", erase=False))
    assert read_back == []  # no file read back
    _seeded(monkeypatch)
    files = list(_story(fresh("files"), signer, tmp_path / "files", erase=True))
    assert len(read_back) == 4  # each export of revisions read the files, as before schema 18

    assert [len(p) for p in kept] == [len(p) for p in files]
    assert kept == files
    # not a trivial story: files of revisions hold fake revisions, with onsets moved, beside the real ones
    fakes, onsets = _fake_revisions(kept)
    assert fakes > 20 and onsets > 1, (fakes, onsets)


def _fake_revisions(exported: list[list[bytes]]) -> tuple[int, int]:
    """How many revised keys the payloads carry that are not ONE's or TWO's, and how many onsets they show."""
    revisions, onsets = 0, set()
    for payloads in exported:
        for payload in payloads:
            export = parse_whole_export_bin(payload)
            fake = ~np.isin(export.revised_keys["key"], np.array(ONE + TWO, "V16"))
            revisions += int(fake.sum())
            onsets |= set(export.revised_keys["days_since_onset"][fake].tolist())
    return revisions, len(onsets)
