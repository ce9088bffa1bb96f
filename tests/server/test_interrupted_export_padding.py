"""An export interrupted between writing its files and recording them must not leave a file that, beside
the next export's, tells the real keys from the fakes (attack21).

The interrupted export's file holds the real keys and one set of fakes; its keys stay queued, so the next
export publishes them again with other fakes.  Whoever holds both files (a CDN that synced the export
directory, a mirror, someone fetching the file by name: the key server served every export name in the
directory) intersects them: the fakes differ, the real keys do not.  Each test keeps every file that was
ever in the export directory, at each step, as a syncing CDN would, and checks that no real key is in two
of them (SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from server_helpers import NOW

from bluezone.crypto.intervals import DAY_SECONDS, ROLLING_PERIOD, rolling_start
from bluezone.keyformat.export import open_signed_export
from bluezone.keyformat.keys import empty_keys
from bluezone.server import exports, staging
from bluezone.server.exports import INDEX_FILE, ExportConfig, export_batches
from bluezone.server.signing import Signer, keygen
from bluezone.server.staging import staging_root


def _yesterdays(count: int, seed: int) -> np.ndarray:
    keys = empty_keys(count)
    keys["key"] = np.frombuffer(np.random.default_rng(seed).bytes(16 * count), "V16")
    keys["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD
    return keys


def _key_set(keys: np.ndarray) -> set[bytes]:
    raw = np.ascontiguousarray(keys["key"]).tobytes()
    return {raw[i : i + 16] for i in range(0, len(raw), 16)}


def _synced(out: Path, signer: Signer, seen: dict[str, set[bytes]]) -> None:
    """What a CDN syncing ``out`` now copies: every export file's keys and revised keys, by name."""
    for path in out.glob("*.zip"):
        export, _ = open_signed_export(path.read_bytes(), signer.public_key)
        seen.setdefault(path.name, _key_set(export.keys) | _key_set(export.revised_keys))


def _holding(seen: dict[str, set[bytes]], real: set[bytes]) -> str:
    """How the files in ``seen`` holding real keys combine (for an assertion's message)."""
    holding = [keys for keys in seen.values() if keys & real]
    if len(holding) < 2:
        return f"{len(holding)} file(s) hold real keys"
    shared = set.intersection(*holding)
    told = "exactly the real keys" if shared == real else f"{len(shared & real)} real and {len(shared - real)} fake keys"
    return f"{len(holding)} files hold real keys; their intersection is {told}"


def test_an_interrupted_exports_file_and_the_re_export_do_not_give_the_real_keys_away(
    storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after its file is written, before it is recorded, with a CDN syncing the directory at that moment:
    on main the leftover file (5 real keys, ~100 fakes) and the next export's (the same 5 keys, other fakes)
    intersected in exactly the 5 real keys."""
    first = _yesterdays(5, seed=1)
    storage.insert_keys_unchecked(first, NOW)
    real = _key_set(first)
    signer, out = keygen(tmp_path / "keys"), tmp_path / "exports"
    seen: dict[str, set[bytes]] = {}

    @contextlib.contextmanager
    def killed_before_recording(*args: object, **kwargs: object) -> Iterator[list[object]]:
        yield []  # the files are written into it
        _synced(out, signer, seen)  # a CDN syncing the export directory right then
        raise KeyboardInterrupt  # (kill -9: nothing recorded, nothing cleaned up)

    monkeypatch.setattr(storage, "export_transaction", killed_before_recording)
    with pytest.raises(KeyboardInterrupt):
        export_batches(storage, signer, out, NOW, ExportConfig())
    monkeypatch.undo()
    _synced(out, signer, seen)
    storage.insert_keys_unchecked(_yesterdays(3, seed=2), NOW + 60)  # someone else's keys meanwhile
    written = export_batches(storage, signer, out, NOW + 600, ExportConfig())
    _synced(out, signer, seen)

    assert sum(b.num_keys for b in written) == 8 and all(b.padding_keys for b in written)
    assert sum(1 for keys in seen.values() if keys & real) == 1, _holding(seen, real)
    listed = (out / INDEX_FILE).read_text().split()
    assert sorted(seen) == sorted(listed) == sorted(b.name for b in written)


def _raise_at(call: int, then: object) -> object:
    """``then`` wrapped to raise KeyboardInterrupt (a kill: nothing cleans up after it) at its ``call``-th call."""
    calls = []

    def wrapped(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return then(*args, **kwargs)  # type: ignore[operator]

    return wrapped


#: Where an export is killed: (what is patched, its attribute, at which call).
_STEPS = {
    "signing the second file": (exports, "signed_export_zip", 2),
    "files written, not recorded": (staging, "sync_directory", 1),
    "recorded, not moved in": (staging.Staging, "publish", 1),
    "one of two moved in": (staging, "_move", 2),
    "moved in, index not rewritten": (exports, "write_index", 1),
}


@pytest.mark.parametrize("step", _STEPS)
def test_a_kill_at_any_step_publishes_each_key_once_and_loses_none(
    storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """A kill at each step of an export, a CDN syncing the export directory right after it and after the next
    export: no real key is in two files ever visible, every file ever visible is recorded, every key ends up
    listed, and nothing is left beside the directory."""
    first = np.concatenate([_yesterdays(4, seed=3), _yesterdays(3, seed=4)])
    first["rolling_start"][4:] -= ROLLING_PERIOD  # two days: two files
    storage.insert_keys_unchecked(first, NOW)
    signer, out = keygen(tmp_path / "keys"), tmp_path / "exports"
    seen: dict[str, set[bytes]] = {}
    owner, name, call = _STEPS[step]
    monkeypatch.setattr(owner, name, _raise_at(call, getattr(owner, name)))
    with pytest.raises(KeyboardInterrupt):
        export_batches(storage, signer, out, NOW, ExportConfig())
    monkeypatch.undo()
    _synced(out, signer, seen)
    later = _yesterdays(2, seed=5)
    storage.insert_keys_unchecked(later, NOW + 60)
    export_batches(storage, signer, out, NOW + 600, ExportConfig())
    _synced(out, signer, seen)

    real = _key_set(first) | _key_set(later)
    for key in real:
        assert sum(1 for keys in seen.values() if key in keys) == 1, _holding(seen, real)
    assert set(seen) <= {b.name for b in storage.batches()}
    listed = (out / INDEX_FILE).read_text().split()
    assert real <= set().union(*(seen[n] for n in listed))
    assert list(staging_root(out).iterdir()) == []


def test_an_exporter_at_work_keeps_its_folder_and_a_dead_ones_is_settled(storage, tmp_path: Path) -> None:
    """Two exporters at once (`server run --workers`, cron's `server export` beside one): the folder of one
    at work (its lock held) is left alone by the other's settling, which would otherwise delete the files it
    has not recorded yet; once it has gone (its lock released by the kernel), its recorded files are
    moved in and the rest deleted."""
    out = tmp_path / "exports"
    out.mkdir()
    record = exports.BatchRecord("1763640000-1763510400-0a1b2c-0001.zip", NOW, 0, DAY_SECONDS, 1, 1, 1)
    storage.add_venue_batch(record, [])
    at_work = staging.Staging(out, storage)
    for name in (record.name, "1763640000-1763510400-0d0e0f-0001.zip"):
        (at_work.path / name).write_bytes(b"signed")
    assert staging.settle_leftovers(storage, out) == 0 and len(list(at_work.path.iterdir())) == 2
    os.close(at_work._fd)  # killed: its lock goes with the process
    assert staging.settle_leftovers(storage, out) == 1
    assert [p.name for p in out.iterdir()] == [record.name] and list(staging_root(out).iterdir()) == []


def test_server_export_says_in_one_line_when_it_cannot_make_the_staging_folder(tmp_path: Path) -> None:
    """The folder beside the export directory cannot be made (here a file holds its name; an export directory
    whose parent this user may not write is the same): one line, exit 2, nothing exported, every key waiting."""
    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.clock import VirtualClock
    from bluezone.server.storage import open_storage

    db, keys, out = tmp_path / "server.db", tmp_path / "keys", tmp_path / "exports"
    storage = open_storage(db)
    storage.insert_keys_unchecked(_yesterdays(3, seed=6), NOW)
    storage.close()
    keygen(keys)
    staging_root(out).write_bytes(b"")
    result = CliRunner().invoke(cli, ["server", "export", "--server-db", str(db), "--signing-key-dir", str(keys),
                                      "--export-dir", str(out)], obj={"clock": VirtualClock(NOW)})
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "cannot make the export staging directory" in result.stderr and str(staging_root(out)) in result.stderr
    storage = open_storage(db)
    assert storage.batches() == [] and len(storage.pending_keys(10**9, 0)[0]) == 3
    storage.close()


_KILLED_AFTER_WRITING = """
import os, signal, sys
from pathlib import Path
from bluezone.server import staging
from bluezone.server.exports import export_batches
from bluezone.server.signing import load_signer
from bluezone.server.storage import open_storage

written = staging.Staging.sync
def sync_then_die(self):
    written(self)
    os.kill(os.getpid(), signal.SIGKILL)
staging.Staging.sync = sync_then_die
export_batches(open_storage(sys.argv[1]), load_signer(Path(sys.argv[2])), Path(sys.argv[3]), float(sys.argv[4]))
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_export_killed_after_writing_leaves_nothing_visible_and_its_lock_goes_with_it(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """kill -9 for real (a process, not an exception): its files written and synced, nothing recorded.  The
    export directory holds nothing of it, the kernel released its folder's lock, and the next export deletes
    its files and publishes each key once."""
    import signal
    import subprocess
    import sys

    from bluezone.server.storage import open_storage

    db = str(tmp_path / "server.db") if backend == "sqlite" else request.getfixturevalue("postgres_dsn")
    storage = open_storage(db)
    first = _yesterdays(5, seed=7)
    storage.insert_keys_unchecked(first, NOW)
    signer, out = keygen(tmp_path / "keys"), tmp_path / "exports"
    killed = subprocess.run([sys.executable, "-c", _KILLED_AFTER_WRITING, db, str(tmp_path / "keys"), str(out), str(NOW)],
                            capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert list(out.glob("*.zip*")) == [] and len(list(staging_root(out).glob("*/*.zip"))) == 1
    seen: dict[str, set[bytes]] = {}
    written = export_batches(storage, signer, out, NOW + 600, ExportConfig())
    _synced(out, signer, seen)
    storage.close()
    assert [b.name for b in written] == list(seen) and seen[written[0].name] & _key_set(first) == _key_set(first)
    assert list(staging_root(out).iterdir()) == []
