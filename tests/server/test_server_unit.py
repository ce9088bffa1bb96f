"""packaging/bluezone-server.service (issue 14.17): a hardened unit that runs what the CLI accepts."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.packaging.systemd_unit import unit_settings

UNIT = Path(__file__).parents[2] / "packaging" / "bluezone-server.service"


def _settings() -> dict[str, list[str]]:
    return unit_settings(UNIT.read_text())


def test_unit_runs_a_command_line_the_cli_accepts() -> None:
    from bluezone.cli import cli

    (exec_start,) = _settings()["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0] == "bluezone" and "/opt" not in exec_start  # found on systemd's PATH, no checkout assumed
    group = cli.commands["server"]
    run = group.commands[argv[2]]  # type: ignore[attr-defined]
    ctx = run.make_context("run", argv[3:])  # parses every option as the real command would
    state = "/var/lib/bluezone-server/"
    assert ctx.params["db"].startswith(state) and str(ctx.params["signing_key_dir"]).startswith(state)
    assert ctx.params["forwarded_allow_ips"] == "127.0.0.1" and ctx.params["host"] == "127.0.0.1"


def test_unit_is_hardened() -> None:
    s = _settings()
    expected = {
        "User": "bluezone-server", "StateDirectory": "bluezone-server", "StateDirectoryMode": "0700",
        "UMask": "0077", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "ProtectSystem": "strict",
        "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectProc": "invisible",
        "ProcSubset": "pid", "RemoveIPC": "yes", "RestrictNamespaces": "yes", "LockPersonality": "yes",
        "RestartPreventExitStatus": "2",
    }
    assert {k: s.get(k, [None])[-1] for k in expected} == expected
    assert set(s["RestrictAddressFamilies"][0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert "@system-service" in s["SystemCallFilter"]



def _disk_steps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The export code's fsyncs (of a file or a directory) and renames, in order, as they happen."""
    import os

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_export_files_reach_the_disk_before_they_are_renamed(tmp_path, monkeypatch) -> None:
    """A batch file is fsynced before its rename and its directory after it (the database marks
    the keys exported next): a power loss cannot leave an empty file for published keys."""
    from bluezone.server import exports

    events = _disk_steps(monkeypatch)
    exports.write_file(tmp_path / "batch.zip", b"PK\x05\x06" + bytes(18), exports.PUBLIC)
    assert events == ["fsync-file", "replace", "fsync-dir"]
    assert (tmp_path / "batch.zip").read_bytes() == b"PK\x05\x06" + bytes(18)
    assert [p.name for p in tmp_path.iterdir()] == ["batch.zip"]  # no temporary file left


def test_an_export_syncs_its_files_then_their_directory_once_then_records_them(tmp_path, monkeypatch) -> None:
    """Every batch file is fsynced and renamed, then the directory synced once for all the renames,
    and only then are the keys taken out of the export queue."""
    from bluezone.server import exports
    from bluezone.server.signing import keygen
    from server_helpers import NOW, storage_with_yesterdays_keys

    storage = storage_with_yesterdays_keys(tmp_path / "server.db", 25, seed=2)
    signer, out = keygen(tmp_path / "k"), tmp_path / "out"
    out.mkdir()
    events = _disk_steps(monkeypatch)
    real_record = storage._record_batches

    def record_batches(cur, batches) -> None:
        events.append("record")
        real_record(cur, batches)

    monkeypatch.setattr(storage, "_record_batches", record_batches)
    batches = exports.export_batches(storage, signer, out, NOW, exports.ExportConfig(max_keys_per_file=10))
    storage.close()
    assert len(batches) == 3
    assert events[:8] == ["fsync-file", "replace"] * 3 + ["fsync-dir", "record"]
