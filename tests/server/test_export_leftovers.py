"""Files an export wrote but never recorded (the exporter interrupted or killed between writing its files
and recording them) never reach the export directory (``bluezone.server.staging``); recorded files leave
it after the retention, with their records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from server_helpers import NOW, storage_with_yesterdays_keys

from bluezone.crypto.intervals import DAY_SECONDS, ROLLING_PERIOD, rolling_start
from bluezone.keyformat.keys import empty_keys
from bluezone.keyformat.venue_reports import ProtectedReport
from bluezone.server import exports
from bluezone.server.exports import INDEX_FILE, export_batches
from bluezone.server.signing import keygen
from bluezone.server.staging import staging_root


def test_files_of_an_interrupted_export_never_reach_the_export_directory(tmp_path, monkeypatch) -> None:
    """Ctrl-C (or kill -9) while an export signs its third file: the two written stayed in the export
    directory, unlisted and unrecorded, holding real keys, served by name until the retention ended, and the
    next export published their keys again with other fakes (test_interrupted_export_padding.py).  Now they
    are written beside it and never reach it; what an earlier version left there unrecorded, finished or
    half written, goes at the next export, and names not of the exporter's are left alone."""
    storage = storage_with_yesterdays_keys(tmp_path / "server.db", 50, seed=3)
    signer, out, config = keygen(tmp_path / "k"), tmp_path / "out", exports.ExportConfig(max_keys_per_file=10)
    real, calls = exports.signed_export_zip, []

    def interrupted_at_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(exports, "signed_export_zip", interrupted_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        export_batches(storage, signer, out, NOW, config)
    monkeypatch.undo()
    assert list(out.glob("*.zip*")) == [] and storage.batches() == []
    assert len(list(staging_root(out).glob("*/*.zip"))) == 2  # left as a kill leaves them, for the next export
    day = rolling_start(NOW) * 600 - DAY_SECONDS
    earlier = [out / f"{int(NOW) - 3600}-{day}-0a1b2c-0001.zip", out / f"{int(NOW) - 3600}-venues-0a1b2c-0001.zip"]
    third = f"{int(NOW)}-{day}-0a1b2c-0003.zip"
    earlier += [out / f".{third}.0123456789abcdef.tmp", out / f".{third}.tmp"]  # killed before the rename (both names)
    for path in earlier:
        path.write_bytes(b"PK\x03\x04")
    unrelated = [out / "README.zip", out / "2020-backup.zip", out / "1700000000-notes.zip"]  # not an export's names
    for path in unrelated:
        path.write_bytes(b"x")

    published = export_batches(storage, signer, out, NOW + 60, config)
    assert sum(b.num_keys for b in published) == 50
    names = sorted(p.name for p in published)
    assert sorted(p.name for p in out.iterdir()) == sorted([INDEX_FILE, *names, *(p.name for p in unrelated)])
    assert sorted((out / INDEX_FILE).read_text().split()) == names and list(staging_root(out).iterdir()) == []

    export_batches(storage, signer, out, NOW + 16 * DAY_SECONDS, config)
    assert sorted(p.name for p in out.iterdir()) == sorted([INDEX_FILE, *(p.name for p in unrelated)])
    storage.close()


def test_the_records_of_files_past_the_retention_go_with_them(storage, tmp_path) -> None:
    """Each export recorded its files in ``batches`` and nothing deleted a record: a server exporting
    hourly kept ~8,800 rows a year for files long gone (roll-ups' replaced files excepted).  The records go
    when their files do, the check-ins published in them first (SQLite and PostgreSQL)."""
    keys = empty_keys(3)
    keys["key"] = np.frombuffer(np.random.default_rng(4).bytes(16 * 3), "V16")
    keys["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD * np.array([1, 2, 3])
    keys["rolling_period"] = ROLLING_PERIOD
    storage.insert_keys_unchecked(keys, NOW)
    with storage._transaction() as cur:  # a check-in of yesterday, as a publish stores it
        storage._exec(cur, "INSERT INTO venue_reports (report, day, received_at) VALUES (?, ?, ?)",
                      [bytes(ProtectedReport.fake()), int(NOW // DAY_SECONDS) - 1, NOW])
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    first = export_batches(storage, signer, out, NOW, exports.ExportConfig(rollup_after_days=None))
    assert len(first) == 4 and len(storage.batches()) == 4
    later = NOW + 13 * DAY_SECONDS
    export_batches(storage, signer, out, later, exports.ExportConfig(rollup_after_days=None))
    kept = {b.name for b in storage.batches()}
    assert kept == {b.name for b in first if b.end_timestamp >= later - 14 * DAY_SECONDS} and len(kept) == 2  # yesterday's
    export_batches(storage, signer, out, NOW + 16 * DAY_SECONDS, exports.ExportConfig(rollup_after_days=None))
    assert storage.batches() == [] and sorted(p.name for p in out.iterdir()) == [INDEX_FILE]
    assert storage.count_venue_reports() == 0


def test_a_planted_temporary_name_neither_redirects_nor_holds_the_export(tmp_path) -> None:
    """Whoever can write into the export directory (the roll-ups' threat, fb977bc) knows the name each file
    is first written under (``.index.txt.tmp``, ``.<batch>.tmp``): a symbolic link there had the export write
    the index into the file it named (the server's own private key, truncated), and a FIFO there held the
    export for ever (an open for writing waits for a reader).  The export writes a file of its own instead."""
    import os
    import threading

    storage = storage_with_yesterdays_keys(tmp_path / "server.db", 3, seed=5)
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "k" / "private.pem"
    kept = victim.read_bytes()
    (out / f".{INDEX_FILE}.tmp").symlink_to(victim)
    export_batches(storage, signer, out, NOW + DAY_SECONDS)
    assert victim.read_bytes() == kept  # nothing written through the link (left where it was planted)
    listed = (out / INDEX_FILE).read_text().split()
    assert len(listed) == 1 and (out / listed[0]).is_file() and not (out / INDEX_FILE).is_symlink()
    (out / f".{INDEX_FILE}.tmp").unlink()
    os.mkfifo(out / f".{INDEX_FILE}.tmp")
    export = threading.Thread(target=export_batches, args=(storage, signer, out, NOW + DAY_SECONDS + 3600), daemon=True)
    export.start()
    export.join(30)
    stuck = export.is_alive()
    if stuck:  # a reader lets the blocked open go, so the test can end
        os.close(os.open(out / f".{INDEX_FILE}.tmp", os.O_RDONLY | os.O_NONBLOCK))
        export.join()
    storage.close()
    assert not stuck, "the export waited on the FIFO"
    assert (out / INDEX_FILE).read_text().split() == listed


def test_an_export_directory_on_a_filesystem_of_its_own_gets_whole_files(tmp_path, monkeypatch) -> None:
    """An export directory that is a mount point of its own (a volume) cannot take a rename from the staging
    folder beside it (EXDEV): each file is copied in whole under a temporary name and renamed there, so the
    directory never holds a part of a file, and the staging folder is emptied as with a rename."""
    import errno
    import os

    from bluezone.keyformat.export import open_signed_export
    from bluezone.server import staging

    storage = storage_with_yesterdays_keys(tmp_path / "server.db", 50, seed=3)
    signer, out, config = keygen(tmp_path / "k"), tmp_path / "out", exports.ExportConfig(max_keys_per_file=10)
    plain_rename, refused = os.rename, []

    def across_filesystems(source, target):
        if staging_root(out) in Path(source).parents:
            refused.append(Path(target).name)
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return plain_rename(source, target)

    monkeypatch.setattr(staging.os, "rename", across_filesystems)
    published = export_batches(storage, signer, out, NOW, config)
    monkeypatch.undo()
    names = sorted(b.name for b in published)
    assert sum(b.num_keys for b in published) == 50 and sorted(refused) == names
    assert sorted(p.name for p in out.iterdir()) == sorted([INDEX_FILE, *names])  # no temporary name left
    assert sorted((out / INDEX_FILE).read_text().split()) == names and list(staging_root(out).iterdir()) == []
    for name in names:
        open_signed_export((out / name).read_bytes(), signer.public_key)  # whole and verified
    storage.close()
