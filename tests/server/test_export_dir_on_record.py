"""One export directory per key server database (user29): an export by hand into another directory than
the one `server run` serves recorded an F0's keys as published, the served index.txt never listed its
files, no node got those keys, and `server status` said "ok".  The first exporter's directory is now on
record; another is refused (exit 2) unless the operator says the exports moved (--export-dir-moved), and
`server status` names the directory and any file of the last 14 days on record missing from it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from server_helpers import NOW, storage_with_yesterdays_keys

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.errors import InputError
from bluezone.keyformat.keys import empty_keys
from bluezone.server.exportdir import claim_export_dir
from bluezone.server.exports import INDEX_FILE, export_batches
from bluezone.server.signing import keygen
from bluezone.server.status import server_status

LATER = NOW + 3600


def _server(*args: str, now: float = NOW) -> Result:
    return CliRunner().invoke(cli, ["server", *args], obj={"clock": VirtualClock(now)})


def _add_keys(storage, count: int, seed: int) -> None:
    """``count`` random keys of the day before NOW, exportable."""
    keys = empty_keys(count)
    keys["key"] = np.frombuffer(np.random.default_rng(seed).bytes(16 * count), "V16")
    keys["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD
    storage.insert_keys_unchecked(keys, NOW)


def _queued(db: Path) -> int:
    from bluezone.server.storage import open_storage

    storage = open_storage(db, create=False)
    try:
        return storage.embargoed_keys(-1)[0]
    finally:
        storage.close()


def test_an_export_into_another_directory_is_refused_and_its_keys_go_out_where_they_are_served(tmp_path: Path) -> None:
    db, keys = tmp_path / "s.db", tmp_path / "keys"
    keygen(keys)
    storage_with_yesterdays_keys(db, 5, seed=1).close()
    a, b = tmp_path / "a", tmp_path / "b"
    export = ("export", "--server-db", str(db), "--signing-key-dir", str(keys), "--min-keys-per-file", "0")
    assert _server(*export, "--export-dir", str(a)).exit_code == 0
    from bluezone.server.storage import open_storage

    storage = open_storage(db, create=False)
    _add_keys(storage, 3, seed=2)  # an F0's upload after the server's first export
    storage.close()
    result = _server(*export, "--export-dir", str(b), now=LATER)
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
    assert result.stderr == (
        f"Error: --export-dir {b} is not this server's export directory {a}: files exported into another one are"
        f" recorded as published but never listed in the index.txt nodes read; give --export-dir {a}, or, to move the"
        f" exports there on purpose, move the files of {a} into {b} and add --export-dir-moved (once)\n"
    )
    assert not b.exists() and _queued(db) == 3  # nothing written, nothing taken from the queue
    assert _server(*export, "--export-dir", str(a), now=LATER).exit_code == 0
    assert _queued(db) == 0 and len((a / INDEX_FILE).read_text().split()) == 2  # the served index lists both files


def test_server_run_exporting_elsewhere_is_refused_before_it_serves(tmp_path: Path) -> None:
    db, keys = tmp_path / "s.db", tmp_path / "keys"
    keygen(keys)
    a, b = tmp_path / "a", tmp_path / "b"
    assert _server("export", "--server-db", str(db), "--signing-key-dir", str(keys), "--export-dir", str(a),
                   "--create-db").exit_code == 0
    result = _server("run", "--server-db", str(db), "--signing-key-dir", str(keys), "--export-dir", str(b), "--port", "0")
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
    assert f"--export-dir {b} is not this server's export directory {a}:" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.staging", "a", "keys", "s.db", *_sidecars(tmp_path)]


def _sidecars(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("s.db-"))


def test_exports_moved_on_purpose_are_recorded_once_and_the_old_directory_is_refused_then(tmp_path: Path) -> None:
    db, keys = tmp_path / "s.db", tmp_path / "keys"
    keygen(keys)
    storage_with_yesterdays_keys(db, 5, seed=1).close()
    a, b = tmp_path / "a", tmp_path / "b"
    export = ("export", "--server-db", str(db), "--signing-key-dir", str(keys))
    assert _server(*export, "--export-dir", str(a)).exit_code == 0
    a.rename(b)  # the operator moves the published files, then tells the server
    result = _server(*export, "--export-dir", str(b), "--export-dir-moved", now=LATER)
    assert result.exit_code == 0, result.output
    assert _server(*export, "--export-dir", str(b), now=LATER).exit_code == 0  # on record now: no flag needed
    assert _server(*export, "--export-dir", str(a), now=LATER).exit_code == 2
    status = _server("status", "--server-db", str(db), "--json", now=LATER)
    assert status.exit_code == 0, status.output
    doc = json.loads(status.stdout)
    assert doc["export_dir"] == str(b) and doc["missing_files"] == [] and doc["ok"]


def test_the_record_is_the_first_exporters_on_both_databases(storage, tmp_path: Path) -> None:
    assert storage.export_dir() is None
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert storage.record_export_dir(a) == a
    assert storage.record_export_dir(b) == a and storage.export_dir() == a  # the first stays
    assert storage.record_export_dir(b, replace=True) == b and storage.export_dir() == b


def _exported_elsewhere(storage, signer, out: Path, now: float) -> list:
    """What an export by hand into ``out`` left before exports refused a directory not on record: its files
    recorded as published, the record unchanged."""
    recorded = Path(storage.export_dir())
    claim_export_dir(storage, out, moved=True)
    try:
        return export_batches(storage, signer, out, now)
    finally:
        claim_export_dir(storage, recorded, moved=True)


def test_status_flags_files_on_record_missing_from_the_export_directory(storage, tmp_path: Path) -> None:
    """What an export by hand into another directory left before this fix (or files deleted by hand): the
    keys are recorded as published, and the served index leaves their files out."""
    signer = keygen(tmp_path / "keys")
    a, b = tmp_path / "a", tmp_path / "b"
    first = server_status(storage, NOW)
    assert first.export_dir is None and first.missing_files is None and first.ok
    assert "export directory: none on record yet (the first export records its --export-dir)" in first.lines()
    claim_export_dir(storage, a)
    _add_keys(storage, 5, seed=1)
    export_batches(storage, signer, a, NOW)
    assert server_status(storage, NOW).missing_files == () and f"export directory: {a}" in server_status(storage, NOW).lines()
    _add_keys(storage, 3, seed=2)
    elsewhere = _exported_elsewhere(storage, signer, b, LATER)
    status = server_status(storage, LATER)
    assert status.missing_files == tuple(f.name for f in elsewhere) and len(elsewhere) == 1
    assert not status.ok and status.as_dict()["ok"] is False and status.as_dict()["missing_files"] == [elsewhere[0].name]
    assert (f"MISSING: 1 export file(s) of the last 14 days on record are not in {a} (the first: {elsewhere[0].name}):"
            " index.txt leaves them out, so no node gets their keys") in "\n".join(status.lines())
    (b / elsewhere[0].name).rename(a / elsewhere[0].name)  # the operator copies them where they are served
    assert server_status(storage, LATER).ok


def test_status_on_a_machine_without_the_export_directory_does_not_check_its_files(storage, tmp_path: Path) -> None:
    """`server status` runs wherever the database is reached (PostgreSQL): not finding the directory there,
    or finding one no export wrote into, is no alarm; but which of these it found is said plainly (it said "no
    index.txt there" of a directory missing and of one empty alike, as of one that holds something else)."""
    signer = keygen(tmp_path / "keys")
    exports = tmp_path / "on-the-export-host"
    claim_export_dir(storage, exports)
    _add_keys(storage, 5, seed=1)
    export_batches(storage, signer, exports, NOW)
    here = tmp_path / "elsewhere"
    exports.rename(here)  # as if on another machine
    for found in ("does not exist", "is empty", "has no index.txt"):  # `server run --export-every 0` makes an empty one
        status = server_status(storage, NOW)
        assert status.missing_files is None and status.ok
        assert (f"export directory: {exports} {found} on this machine: its files are not checked here (run status on"
                " the machine that exports)") in status.lines()
        assert status.as_dict()["export_dir_here"] == {"does not exist": "absent", "is empty": "empty"}.get(found, "no index")
        exports.mkdir(exist_ok=True)
        if found == "is empty":
            (exports / "README").write_text("served from the static host\n")
    (here / INDEX_FILE).rename(exports / INDEX_FILE)  # the directory served, its files gone
    status = server_status(storage, NOW)
    assert status.missing_files == tuple(p.name for p in here.glob("*.zip")) and status.export_dir_here == "checked"


def test_status_command_exits_1_for_missing_files(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    storage = storage_with_yesterdays_keys(db, 5, seed=1)
    signer = keygen(tmp_path / "keys")
    try:
        claim_export_dir(storage, tmp_path / "a")
        export_batches(storage, signer, tmp_path / "a", NOW)
        _add_keys(storage, 3, seed=2)
        _exported_elsewhere(storage, signer, tmp_path / "b", LATER)
    finally:
        storage.close()
    result = _server("status", "--server-db", str(db), now=LATER)
    assert result.exit_code == 1 and "MISSING: 1 export file(s)" in result.stdout, result.output


def test_postgres_refuses_another_export_directory(postgres_dsn: str, tmp_path: Path) -> None:
    keygen(tmp_path / "keys")
    a, b = tmp_path / "a", tmp_path / "b"
    export = ("export", "--server-db", postgres_dsn, "--signing-key-dir", str(tmp_path / "keys"), "--create-db")
    assert _server(*export, "--export-dir", str(a)).exit_code == 0
    result = _server(*export, "--export-dir", str(b))
    assert result.exit_code == 2 and f"is not this server's export directory {a}" in result.stderr, result.output
    assert _server(*export, "--export-dir", str(b), "--export-dir-moved").exit_code == 0


def test_postgres_server_run_with_two_workers_is_refused_another_export_directory(postgres_dsn: str, tmp_path: Path) -> None:
    """user29's set-up: `server run --workers 2` exporting, an export by hand elsewhere; here the other way round
    as well: the directory a hand export recorded first refuses the server's (before any worker starts)."""
    keygen(tmp_path / "keys")
    a, b = tmp_path / "a", tmp_path / "b"
    assert _server("export", "--server-db", postgres_dsn, "--signing-key-dir", str(tmp_path / "keys"), "--create-db",
                   "--export-dir", str(a)).exit_code == 0
    result = _server("run", "--server-db", postgres_dsn, "--signing-key-dir", str(tmp_path / "keys"), "--export-dir",
                     str(b), "--workers", "2", "--port", "0")
    assert result.exit_code == 2 and f"--export-dir {b} is not this server's export directory {a}" in result.stderr
    assert not b.exists()


def test_export_batches_itself_refuses_another_directory(storage, tmp_path: Path) -> None:
    """The rule is the export's, not only the commands': a program calling ``export_batches`` (or the schedule of
    an app made with ``create_app``) into another directory recorded the keys as published there, unserved."""
    signer = keygen(tmp_path / "keys")
    a, b = tmp_path / "a", tmp_path / "b"
    _add_keys(storage, 5, seed=1)
    assert len(export_batches(storage, signer, a, NOW)) == 1
    assert storage.export_dir() == str(a.resolve())  # the first export records its directory
    _add_keys(storage, 3, seed=2)
    with pytest.raises(InputError, match=f"--export-dir {b} is not this server's export directory {a}:"):
        export_batches(storage, signer, b, LATER)
    assert not b.exists() and storage.embargoed_keys(-1)[0] == 3  # nothing written, nothing taken from the queue
    assert len(export_batches(storage, signer, a, LATER)) == 1 and storage.embargoed_keys(-1)[0] == 0


def test_server_run_exporting_nothing_records_nothing_and_says_when_it_serves_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """`server run --export-every 0` writes no export, so it records no directory (the one it serves would have
    refused the exporter's own, a cron job's); serving another than the one on record, it now says so at start
    (it said nothing, and nodes got none of the keys), and --export-dir-moved, which it cannot honour (it was
    ignored without a word), is refused."""
    from bluezone.server import serve

    monkeypatch.setattr(serve, "serve", lambda *args: None)  # started, then stopped at once
    db, keys = tmp_path / "s.db", tmp_path / "keys"
    keygen(keys)
    a, b = tmp_path / "a", tmp_path / "b"
    run = ("run", "--server-db", str(db), "--signing-key-dir", str(keys), "--port", "0", "--export-every", "0")
    with caplog.at_level("WARNING", logger="bluezone"):
        assert _server(*run, "--export-dir", str(b)).exit_code == 0
        assert not caplog.records
        assert _server("export", "--server-db", str(db), "--signing-key-dir", str(keys), "--export-dir", str(a)
                       ).exit_code == 0  # B was not recorded: the exporter's A is
        assert _server(*run, "--export-dir", str(b)).exit_code == 0
        assert [r.getMessage() for r in caplog.records] == [
            f"serving the exports in {b}, but this server's exports are written into {a} (on record): unless {b} is a"
            f" copy of it, no node gets their keys (give --export-dir {a})"
        ]
        caplog.clear()
        assert _server(*run, "--export-dir", str(a)).exit_code == 0 and not caplog.records
    moved = _server(*run, "--export-dir", str(b), "--export-dir-moved")
    assert moved.exit_code == 2 and moved.stderr == (
        "Error: --export-dir-moved moves the directory on record where this server's exports are written, and"
        " --export-every 0 writes none: give it to the command that exports (server export, or the server run with"
        " --export-every)\n"
    )
