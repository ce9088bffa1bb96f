"""`bluezone server keygen | issue-code | export` as an operator meets them (issue 14: 5, 6, 10, 11)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sqlite3
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from server_helpers import NOW

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.keyformat.keys import empty_keys
from bluezone.server.codes import CODE_KEY_FILE, CodeKey
from bluezone.server.storage import SQLiteStorage


def _run(*args: str, now: float | None = None) -> tuple[int, str, str]:
    obj = {} if now is None else {"clock": VirtualClock(now)}
    result = CliRunner().invoke(cli, list(args), obj=obj)
    return result.exit_code, result.stdout, result.stderr


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keygen_sets_modes_whatever_the_umask(tmp_path: Path) -> None:
    """Under umask 000 the key directory was 0777 and the public files 0666."""
    out = tmp_path / "deep" / "keys"
    old = os.umask(0)
    try:
        rc, _, err = _run("server", "keygen", "--out", str(out))
    finally:
        os.umask(old)
    assert rc == 0, err
    assert _mode(out) == 0o700
    assert _mode(out / "private.pem") == _mode(out / CODE_KEY_FILE) == 0o600
    assert _mode(out / "public.pem") == _mode(out / "signing_key.json") == 0o644
    old = os.umask(0)
    try:  # --force rewrites files that already exist: the modes are set again, not inherited
        os.chmod(out / "public.pem", 0o666)
        os.chmod(out / "private.pem", 0o644)
        assert _run("server", "keygen", "--out", str(out), "--force")[0] == 0
    finally:
        os.umask(old)
    assert _mode(out / "private.pem") == 0o600 and _mode(out / "public.pem") == 0o644


def test_keygen_takes_the_key_directory_by_the_name_the_other_server_commands_use(tmp_path: Path) -> None:
    """An operator who typed `keygen --signing-key-dir DIR` as for run, issue-code and export got "No such option"."""
    keys = tmp_path / "keys"
    rc, _, err = _run("server", "keygen", "--signing-key-dir", str(keys))
    assert rc == 0, err
    rc, out, err = _run("server", "issue-code", "--server-db", str(tmp_path / "s.db"), "--signing-key-dir", str(keys),
                        "--create-db")
    assert rc == 0 and re.match(r"\d{4} \d{4} \d{4} \d{4}  \(expires ", out), err


def test_keygen_adds_the_code_key_to_an_older_key_directory(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    (keys / CODE_KEY_FILE).unlink()  # as an older bluezone left it
    private = (keys / "private.pem").read_bytes()
    rc, out, err = _run("server", "issue-code", "--server-db", str(tmp_path / "s.db"), "--signing-key-dir", str(keys),
                        "--create-db")
    assert rc == 2 and "server keygen --out" in err and err.count("\n") == 1
    rc, out, err = _run("server", "keygen", "--out", str(keys))
    assert rc == 0 and "code key written" in out and "kept" in out, err
    assert (keys / "private.pem").read_bytes() == private and _mode(keys / CODE_KEY_FILE) == 0o600
    code_key = (keys / CODE_KEY_FILE).read_text()
    rc, out, err = _run("server", "keygen", "--out", str(keys), "--force")  # a new signing key keeps the code key
    assert rc == 0 and (keys / CODE_KEY_FILE).read_text() == code_key
    assert _run("server", "keygen", "--out", str(keys))[0] == 2  # both there: refused as before


def test_keygen_says_what_to_do_when_it_refuses_and_after_a_rotation(tmp_path: Path) -> None:
    """The refusal said only 'refusing to replace a signing key clients have pinned', and a rotation
    (--force) said nothing of the running server still signing with the old key or of nodes having to
    re-pin (walk14: the server announced v1 while signing_key.json said v2)."""
    keys = tmp_path / "keys"
    rc, out, _ = _run("server", "keygen", "--out", str(keys))
    assert rc == 0 and "next:" not in out  # a first key replaces nothing
    rc, _, err = _run("server", "keygen", "--out", str(keys))
    assert rc == 2 and err.count("\n") == 1, err
    assert f"publish is {keys / 'signing_key.json'}" in err and "give --force" in err and "Rotating the signing key" in err
    rc, out, err = _run("server", "keygen", "--out", str(keys), "--force")
    assert rc == 0, err
    assert "next: restart every `bluezone server run`" in out and "until then it signs with bluezone/v1" in out
    assert "--server-key signing_key.json --repin" in out


@pytest.mark.parametrize("command", ["export", "run"])
def test_an_export_directory_holding_the_signing_keys_is_refused(tmp_path: Path, command: str) -> None:
    """docs/server.md's cron line named both directories DIR: `export --signing-key-dir DIR --export-dir DIR`
    wrote index.txt beside private.pem, and its `rsync --delete DIR/ host:...` would publish the private key
    and the code key; `server run` would have exported there too (walk14)."""
    keys = tmp_path / "srv" / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    db = tmp_path / "srv" / "s.db"
    for export_dir in (keys, keys.parent, tmp_path / "srv" / "keys" / ".." / "keys"):
        rc, _, err = _run("server", command, "--server-db", str(db), "--signing-key-dir", str(keys),
                          "--export-dir", str(export_dir), *(["--create-db"] if command == "export" else []))
        assert rc == 2 and err.count("\n") == 1 and "holds the signing key directory" in err, err
    assert sorted(p.name for p in keys.iterdir()) == ["code_hmac.key", "private.pem", "public.pem", "signing_key.json"]
    assert not db.exists()  # refused before the database was opened or made
    rc, _, err = _run("server", "export", "--server-db", str(db), "--signing-key-dir", str(keys), "--create-db",
                      "--export-dir", str(keys / "exports"))  # inside the key directory: only the exports are published
    assert rc == 0 and (keys / "exports" / "index.txt").exists(), err



@pytest.mark.timeout(60)  # without the refusal `server run` serves for good
@pytest.mark.parametrize("command", ["export", "run"])
def test_an_export_directory_holding_the_database_is_refused(tmp_path: Path, command: str) -> None:
    """As the key directory (walk14): `--server-db /srv/site/server.db --export-dir /srv/site` wrote the
    exports beside the database, and a sync of the export directory to a static host published it, with the
    failed code tries' client addresses (attack14)."""
    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    site = tmp_path / "site"
    for db in (site / "s.db", site / "state" / "s.db"):
        rc, _, err = _run("server", command, "--server-db", str(db), "--signing-key-dir", str(keys),
                          "--export-dir", str(site), *(["--create-db"] if command == "export" else []))
        assert rc == 2 and err.count("\n") == 1 and "holds the server's database" in err, err
        assert not db.exists()  # refused before the database was opened or made
    rc, _, err = _run("server", "export", "--server-db", str(tmp_path / "s.db"), "--signing-key-dir", str(keys),
                      "--create-db", "--export-dir", str(site))  # beside it: only the exports are published
    assert rc == 0 and (site / "index.txt").exists(), err

def test_issued_codes_are_keyed_with_the_key_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    db = tmp_path / "s.db"
    rc, out, err = _run("server", "issue-code", "--server-db", str(db), "--signing-key-dir", str(keys), "--create-db", "--json")
    assert rc == 0, err
    code = json.loads(out)["code"]
    storage = SQLiteStorage(db)
    try:
        assert storage.get_code(CodeKey.load(keys).hash(code)) is not None
    finally:
        storage.close()


def test_a_missing_database_is_refused_not_created(tmp_path: Path) -> None:
    """`issue-code --db typo.db` made a new database (and directory) and handed out a code the
    running server would reject; `export` exported from an empty new database."""
    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    typo = tmp_path / "srv" / "typo.db"
    for command in (["issue-code"], ["export"]):
        rc, out, err = _run("server", *command, "--server-db", str(typo), "--signing-key-dir", str(keys))
        assert rc == 2 and err.count("\n") == 1 and "does not exist" in err and "--create-db" in err, err
        assert not typo.exists() and not typo.parent.exists()
    rc, out, err = _run("server", "export", "--server-db", str(tmp_path), "--signing-key-dir", str(keys),
                        "--export-dir", str(tmp_path / "e"))
    assert rc == 2 and "is not a regular file" in err
    rc, out, err = _run("server", "issue-code", "--server-db", str(typo), "--signing-key-dir", str(keys), "--create-db")
    assert rc == 0 and typo.is_file(), err
    assert _run("server", "export", "--server-db", str(typo), "--signing-key-dir", str(keys))[0] == 0


@pytest.mark.parametrize("command", [["issue-code"], ["revoke-code", "--code", "12345678"], ["export"], ["run"]])
def test_a_missing_key_directory_is_named_not_made_again(tmp_path: Path, command: list[str]) -> None:
    """A mistyped --signing-key-dir was answered 'run `bluezone server keygen --out TYPO` once': a new code key
    there would issue codes the running server refuses, a new signing key sign files no node takes (user29)."""
    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    db = tmp_path / "server.db"
    assert _run("server", "issue-code", "--server-db", str(db), "--signing-key-dir", str(keys), "--create-db")[0] == 0
    typo = tmp_path / "kyes"
    rc, out, err = _run("server", *command, "--server-db", str(db), "--signing-key-dir", str(typo), "--port", "1") \
        if command == ["run"] else _run("server", *command, "--server-db", str(db), "--signing-key-dir", str(typo))
    assert rc == 2 and out == "" and err.count("\n") == 1, err
    assert f"--signing-key-dir {typo} does not exist: give the directory `bluezone server keygen --out` made" in err
    assert "keygen --out " + str(typo) not in err and not typo.exists()


def test_an_export_on_postgresql_is_told_which_export_directory_to_give(tmp_path: Path) -> None:
    """'with PostgreSQL give --export-dir' said nothing of which: a hand export into another directory than the one
    `server run` serves records its files as published, and the server's index.txt never lists them (user29)."""
    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    rc, _, err = _run("server", "export", "--server-db", "postgresql://nobody@/none?host=/nonexistent",
                      "--signing-key-dir", str(keys))
    assert rc == 2 and err.count("\n") == 1
    assert "give --export-dir: the directory the exports are published from (the one `server run --export-dir`" in err


@pytest.mark.parametrize("command", [["issue-code"], ["export"], ["status"], ["revoke-code", "--code", "12345678"]])
def test_an_empty_file_is_refused_as_a_missing_database_is(tmp_path: Path, command: list[str]) -> None:
    """`touch server.db` (or a shell redirect's target) given to issue-code was taken for a new database: a
    code the running server rejects was handed out, and `status` said 'exports: ok' of it (walk17)."""
    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    empty = tmp_path / "server.db"
    empty.touch()
    key_dir = [] if command == ["status"] else ["--signing-key-dir", str(keys)]
    rc, out, err = _run("server", *command, "--server-db", str(empty), *key_dir)
    assert rc == 2 and err.count("\n") == 1 and "is an empty file" in err and "-db" in err, err
    assert empty.stat().st_size == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["keys", "server.db"]
    if command == ["issue-code"]:  # what the advice says works
        assert _run("server", "issue-code", "--server-db", str(empty), *key_dir, "--create-db")[0] == 0


def test_a_wrong_file_readable_by_others_is_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A log file given as --server-db printed 'readable by others; chmod 600 it' above 'is not a key server
    database': two lines, the first advising to keep the wrong file (walk17)."""
    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    log_file = tmp_path / "server.log"
    log_file.write_text("2026-12-06 06:07:40 INFO key server: listening\n")
    log_file.chmod(0o644)
    caplog.set_level(logging.WARNING)
    rc, out, err = _run("server", "issue-code", "--server-db", str(log_file), "--signing-key-dir", str(keys))
    assert rc == 2 and err.count("\n") == 1 and "not a key server database" in err, err
    assert "chmod" not in caplog.text, caplog.text
    db = tmp_path / "s.db"
    assert _run("server", "issue-code", "--server-db", str(db), "--signing-key-dir", str(keys), "--create-db")[0] == 0
    db.chmod(0o644)  # the server's own database readable by others is still warned of
    assert _run("server", "issue-code", "--server-db", str(db), "--signing-key-dir", str(keys))[0] == 0
    assert "readable by others; chmod 600 it" in caplog.text, caplog.text


def test_export_before_the_embargo_ends_says_how_many_keys_wait_and_until_when(tmp_path: Path) -> None:
    """It said "0 keys in 0 new batch(es)", which reads as if the upload was lost."""
    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    db = tmp_path / "s.db"
    storage = SQLiteStorage(db)
    try:
        today = rolling_start(NOW)
        k = empty_keys(3)
        k["key"] = [bytes([i + 1]) * 16 for i in range(3)]
        k["rolling_start"] = [today, today, today - ROLLING_PERIOD]
        k["rolling_period"] = [ROLLING_PERIOD, 80, ROLLING_PERIOD]  # two of today's keys, one of yesterday's
        k["report_type"] = 1
        storage.insert_keys_unchecked(k, NOW)
    finally:
        storage.close()
    export = ("server", "export", "--server-db", str(db), "--signing-key-dir", str(keys))
    rc, out, err = _run(*export, now=NOW)
    assert rc == 0, err
    lines = out.splitlines()
    said = re.fullmatch(r"1 keys in 1 new batch\(es\) \(padded with (\d+) fake keys\) in (.*)", lines[0])
    assert said and 99 <= int(said[1]) <= 119 and said[2] == str(tmp_path / "s-exports")  # padding counted apart
    assert lines[1] == (
        "2 key(s) wait until their validity ends: exportable from 2025-11-20 13:20 UTC, all by 2025-11-21 00:00 UTC"
    )
    rc, out, err = _run(*export, "--json", "--min-keys-per-file", "0", now=NOW + 3 * 3600)
    doc = json.loads(out)
    assert rc == 0 and [(b["num_keys"], b["padding_keys"]) for b in doc["batches"]] == [(1, 0)]  # not padded
    assert doc["waiting"] == {"keys": 1, "first_release": "2025-11-21T00:00", "last_release": "2025-11-21T00:00"}
    rc, out, err = _run(*export, now=NOW + 12 * 3600)
    assert rc == 0 and out.startswith("1 keys in 1 new batch(es)") and len(out.splitlines()) == 1


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """It was uvicorn's text and exit code 3."""
    import socket
    import subprocess
    import sys

    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "bluezone.cli", "server", "run", "--server-db", str(tmp_path / "s.db"),
             "--signing-key-dir", str(keys), "--port", str(port)],
            capture_output=True, text=True, timeout=120,
        )
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "Error" in line or "error" in line]
    assert errors == [f"Error: port {port} on 127.0.0.1 is already in use (another key server?): stop it or give --port"]
    assert "Traceback" not in proc.stderr and "uvicorn" not in proc.stderr
    # the port is tried before anything is made: a new database and export directory were left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys"]


@pytest.mark.parametrize(
    ("host", "code"),
    # no name a lookup can take (an empty label, one over 63 characters, the byte 0xff as Python gives it):
    # 'UnicodeError: encoding with 'idna' codec failed', exit 1 and 'run with --debug'
    [("nosuchhost.invalid", 2), ("192.0.2.1", 1), ("keys..example.org", 2), ("k" * 64, 2), ("\udcff", 2)],
)
def test_a_host_of_no_address_here_is_one_line_naming_it(tmp_path: Path, host: str, code: int) -> None:
    """A --host that does not resolve is a usage error (exit 2); an address this machine does not hold may
    come up later (exit 1: systemd starts the server again)."""
    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    rc, out, err = _run("server", "run", "--server-db", str(tmp_path / "s.db"), "--signing-key-dir", str(keys),
                        "--host", host, "--port", "0")
    assert rc == code and len(err.splitlines()) == 1, err
    assert err.startswith(f"Error: --host {host!r} is no") and "e.g. 127.0.0.1 or 0.0.0.0" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys"]


def test_a_refused_start_leaves_neither_a_new_database_nor_new_export_directories(tmp_path: Path) -> None:
    """An export directory that cannot be made was found after the new database was created (left behind);
    a database refused now also takes back the export directories this start made."""
    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    (tmp_path / "afile").write_text("")
    run = ("server", "run", "--signing-key-dir", str(keys), "--port", "0")
    rc, _, err = _run(*run, "--server-db", str(tmp_path / "new.db"), "--export-dir", str(tmp_path / "afile" / "exports"))
    assert rc == 2 and "cannot make the export directory" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "keys"]  # new.db was left
    rc, _, err = _run(*run, "--server-db", str(tmp_path / "afile" / "new.db"), "--export-dir", str(tmp_path / "a" / "b"))
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert err == f"Error: cannot make the folder of key server database {tmp_path / 'afile' / 'new.db'}: {tmp_path / 'afile'}"\
        " is a file, not a folder (check --server-db)\n"  # was exit 1, "[Errno 17] File exists"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "keys"]  # a/b was left
    rc, _, err = _run(*run, "--server-db", str(tmp_path / "afile" / "x" / "new.db"), "--export-dir", str(tmp_path / "a"))
    assert rc == 2 and f": {tmp_path / 'afile'} is a file, not a folder" in err  # the file in the way, however deep
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "f").write_text("x")
    rc, _, err = _run(*run, "--server-db", str(tmp_path / "afile" / "new.db"), "--export-dir", str(tmp_path / "kept"))
    assert rc == 2 and (tmp_path / "kept" / "f").read_text() == "x"  # what was there before stays


def test_an_address_not_up_yet_is_restarted_by_systemd_not_left_down() -> None:
    """At boot an address may come up after network-online.target (an IPv6 address is tentative until
    duplicate address detection ends: bind gives EADDRNOTAVAIL).  7514709 made that exit 2, which the unit's
    RestartPreventExitStatus=2 never restarts: the key server stayed down after a reboot."""
    import errno

    from bluezone.errors import ServeError
    from bluezone.server.serve import unbound

    said = unbound("2001:db8::7", 8080, OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"))
    assert type(said) is ServeError and said.exit_code == 1
    assert str(said).startswith("--host '2001:db8::7' is not an address of this machine (yet?)")
    unit = (Path(__file__).parents[2] / "packaging" / "bluezone-server.service").read_text()
    assert "RestartPreventExitStatus=2" in unit and "Restart=on-failure" in unit


def test_a_resolver_that_fails_for_now_is_told_apart_from_a_name_of_no_address() -> None:
    """EAI_AGAIN (DNS not answering) may pass: exit 1, so a service manager starts the server again; a name
    with no address is the operator's to fix (exit 2)."""
    import socket

    from bluezone.errors import InputError, ServeError
    from bluezone.server.serve import unresolved

    again = unresolved("keys.example", socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"))
    assert type(again) is ServeError and again.exit_code == 1
    assert str(again) == "cannot resolve --host 'keys.example' now (Temporary failure in name resolution): try again, or give its address"
    gone = unresolved("keys.example", socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert isinstance(gone, InputError) and gone.exit_code == 2


def test_the_database_url_is_logged_without_its_password() -> None:
    from bluezone.server.cli import _shown_db

    assert _shown_db("postgresql://bz:s3cret@db.example:5433/keys") == "postgresql://bz:***@db.example:5433/keys"
    assert _shown_db("postgresql://bz@db.example/keys") == "postgresql://bz@db.example/keys"
    # libpq takes the password as a parameter too: it was logged whole; an IPv6 host lost its brackets
    assert _shown_db("postgresql://bz@db.example/keys?password=s3cret") == "postgresql://bz@db.example/keys?password=***"
    assert _shown_db("postgresql://bz:s3cret@[::1]:5433/keys") == "postgresql://bz:***@[::1]:5433/keys"


@pytest.mark.parametrize("kind", ["fifo", "dir", "zero"])
@pytest.mark.parametrize(
    "command", [["issue-code", "--create-db"], ["export", "--create-db", "--export-dir", "e"], ["run", "--port", "0", "--export-dir", "e"]]
)
def test_a_database_that_is_no_regular_file_is_one_line(tmp_path: Path, kind: str, command: list[str]) -> None:
    """--server-db naming a FIFO or /dev/zero with --create-db (or for `server run`, which creates)
    ended in 'OperationalError: disk I/O error', exit 1; a directory advised --create-db."""
    import os

    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    db = tmp_path / "odd.db"
    if kind == "fifo":
        os.mkfifo(db)
    elif kind == "dir":
        db.mkdir()
    else:
        db.symlink_to("/dev/zero")
    args = [str(tmp_path / a) if a == "e" else a for a in command[1:]]
    rc, out, err = _run("server", command[0], "--server-db", str(db), "--signing-key-dir", str(keys), *args)
    assert rc == 2 and "is not a regular file" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("dsn", ["postgresql://u:s3cret@[bad/x", "mysql://u:s3cret@127.0.0.1/x"])
def test_a_malformed_postgresql_url_does_not_print_its_password(tmp_path: Path, dsn: str) -> None:
    """psycopg quotes a malformed URL whole in its error; under systemd that line goes to the journal."""
    pytest.importorskip("psycopg")
    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    rc, out, err = _run("server", "issue-code", "--server-db", dsn, "--signing-key-dir", str(keys))
    assert rc == 2 and ("not a usable PostgreSQL URL" in err or "unsupported database URL" in err), err
    assert "s3cret" not in err + out and "u:***@" in err


@pytest.mark.parametrize(
    "dsn", ["postgresql://u:s3cret@keys..example.org/x", "postgresql://u:s3cret@" + "k" * 64 + "/x", "postgresql://u:s3cret@\udcff/x"]
)
def test_a_postgresql_url_of_no_host_name_is_a_usage_error(tmp_path: Path, dsn: str) -> None:
    """A host no lookup can take (an empty label, one over 63 characters, the byte 0xff as Python gives it) was
    'UnicodeError: encoding with 'idna' codec failed' or 'UnicodeEncodeError: ... surrogates', exit 1: systemd
    restarts such a server every 5 s for ever."""
    pytest.importorskip("psycopg")
    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    rc, out, err = _run("server", "issue-code", "--server-db", dsn, "--signing-key-dir", str(keys))
    assert rc == 2 and err.startswith("Error: not a usable PostgreSQL URL") and err.count("\n") == 1, err
    assert "s3cret" not in err + out


@pytest.mark.parametrize(
    ("dsn", "said"),
    [
        ("postgresql://u:s3cret@127.0.0.1:5432/x?sslmode=bogus", 'invalid sslmode value: "bogus"'),
        ("postgresql://u:s3cret@127.0.0.1:99999/x", 'invalid port number: "99999"'),
        ("postgresql://u:s3cret@127.0.0.1/x?target_session_attrs=whatever", "invalid target_session_attrs value"),
        ("postgresql://u:s3cret@127.0.0.1/x?hostaddr=192.0.2.1,192.0.2.2", "could not match 1 host names"),
    ],
)
@pytest.mark.parametrize("command", [["issue-code"], ["run", "--port", "0", "--export-dir", "e"]])
def test_a_postgresql_url_with_a_wrong_option_is_a_usage_error(tmp_path: Path, dsn: str, said: str, command: list[str]) -> None:
    """libpq refuses an option's value before it connects ('connection is bad: invalid sslmode value'): that was
    'cannot connect to PostgreSQL', exit 1, and systemd restarts such a server every 5 s for ever."""
    pytest.importorskip("psycopg")
    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    args = [str(tmp_path / a) if a == "e" else a for a in command[1:]]
    rc, out, err = _run("server", command[0], "--server-db", dsn, "--signing-key-dir", str(keys), *args)
    assert rc == 2 and err.startswith("Error: not a usable PostgreSQL URL") and said in err and err.count("\n") == 1, err
    assert "s3cret" not in err + out


@pytest.mark.parametrize("command", [["issue-code"], ["export", "--export-dir", "e"], ["run", "--port", "0", "--export-dir", "e"]])
def test_a_file_that_is_no_database_is_a_usage_error(tmp_path: Path, command: list[str]) -> None:
    """--server-db naming a text file exited 1, which the systemd unit restarts every 5 s for ever;
    the wrong file named is a usage error (exit 2, not restarted), as a node's NotAStoreError is."""
    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    db = tmp_path / "notes.db"
    db.write_text("not a database\n" * 100)
    args = [str(tmp_path / a) if a == "e" else a for a in command[1:]]
    rc, out, err = _run("server", command[0], "--server-db", str(db), "--signing-key-dir", str(keys), *args)
    assert rc == 2 and "is not a key server database" in err and err.count("\n") == 1, err
    assert db.read_text() == "not a database\n" * 100


@pytest.mark.parametrize("command", [["status"], ["issue-code"], ["export", "--export-dir", "e"]])
def test_a_nodes_sighting_store_is_not_taken_for_a_key_server_database(tmp_path: Path, command: list[str]) -> None:
    """`server status --server-db` naming the node's bluezone.db said "codes issued: none", exit 0, and
    left the key server's eleven tables in the node's store; the node's store refuses a server database."""
    from bluezone.proximity.store import SightingStore

    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    db = tmp_path / "bluezone.db"
    SightingStore.open(db).close()
    before = db.read_bytes()
    args = [str(tmp_path / a) if a == "e" else a for a in command[1:]]
    signing = [] if command[0] == "status" else ["--signing-key-dir", str(keys)]
    rc, out, err = _run("server", command[0], "--server-db", str(db), *signing, *args)
    assert rc == 2 and "is not a key server database (it has tables" in err and err.count("\n") == 1, err
    assert db.read_bytes() == before
    with contextlib.closing(sqlite3.connect(db)) as conn:  # still a node's store, and nothing else
        assert not {"meta", "codes"} & {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}


def test_an_export_directory_that_cannot_be_made_is_one_line_at_start(tmp_path: Path) -> None:
    """`export` said 'Error: NotADirectoryError: [Errno 20] ...' (exit 1); `server run` served on and logged
    a traceback at every scheduled export."""
    import subprocess
    import sys

    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    (tmp_path / "a-file").write_text("")
    bad = tmp_path / "a-file" / "exports"
    db = str(tmp_path / "s.db")
    rc, out, err = _run("server", "export", "--server-db", db, "--signing-key-dir", str(keys), "--export-dir", str(bad),
                        "--create-db")
    assert rc == 2 and err == f"Error: cannot make the export directory {bad}: Not a directory (check --export-dir)\n"
    proc = subprocess.run(
        [sys.executable, "-m", "bluezone.cli", "server", "run", "--server-db", db, "--signing-key-dir", str(keys),
         "--port", "0", "--export-dir", str(bad)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"Error: cannot make the export directory {bad}: Not a directory (check --export-dir)"
    ]


@pytest.mark.parametrize("command", [["issue-code"], ["export", "--export-dir", "e"], ["run", "--port", "0", "--export-dir", "e"]])
def test_postgresql_without_psycopg_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """psycopg is an extra ('bluezone[postgres]'): without it the key server exited 1, which the systemd
    unit restarts every 5 s for ever; a missing dependency the user must install is a usage error."""
    import sys

    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ModuleNotFoundError
    args = [str(tmp_path / a) if a == "e" else a for a in command[1:]]
    dsn = "postgresql://bz@127.0.0.1:1/keys"
    rc, out, err = _run("server", command[0], "--server-db", dsn, "--signing-key-dir", str(keys), *args)
    assert rc == 2 and "pip install 'bluezone[postgres]'" in err and err.count("\n") == 1, err


def test_export_counts_check_ins_apart_from_keys(tmp_path: Path) -> None:
    """One check-in and no key was '4 keys in 1 new batch(es)': the venue file's reports (decoys
    included) were counted as keys."""
    from server_helpers import TODAY, checkin_entry, checkin_upload

    from bluezone.server.codes import issue_code
    from bluezone.server.publish import PublishConfig, publish

    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    db = tmp_path / "s.db"
    storage = SQLiteStorage(db)
    try:
        code = issue_code(storage, NOW, key=CodeKey.load(keys), test_type="confirmed").code
        publish(storage, checkin_upload(code, [checkin_entry(TODAY)], keys=False), "c", NOW, PublishConfig(), code_key=CodeKey.load(keys))
    finally:
        storage.close()
    rc, out, err = _run("server", "export", "--server-db", str(db), "--signing-key-dir", str(keys),
                        "--export-dir", str(tmp_path / "e"), now=NOW)
    assert rc == 0, err
    assert out.splitlines() == [
        f"0 keys in 0 new batch(es) and 4 check-in report(s), decoys included, in 1 venue-warning file(s)"
        f" in {tmp_path / 'e'}"
    ]


def test_export_onto_a_full_disk_says_where_and_leaves_the_keys_waiting(tmp_path: Path, monkeypatch) -> None:
    """A full export disk was 'Error: OSError: [Errno 28] No space left on device' with no word of where
    or what became of the keys."""
    import errno

    from bluezone.server import exports

    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys))[0] == 0
    db = tmp_path / "s.db"
    storage = SQLiteStorage(db)
    try:
        k = empty_keys(40)
        k["key"] = [bytes([i + 1]) * 16 for i in range(40)]
        k["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD
        k["rolling_period"] = ROLLING_PERIOD
        k["report_type"] = 1
        storage.insert_keys_unchecked(k, NOW)
    finally:
        storage.close()
    writes = []

    def full_disk(path: Path, data: bytes, *args: object, **kwargs: object) -> None:
        writes.append(path)
        if len(writes) > 1:  # the first file fits
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(path, data, *args, **kwargs)  # type: ignore[arg-type]

    real_write = exports.write_file
    monkeypatch.setattr(exports, "write_file", full_disk)
    out = tmp_path / "e"
    export = ("server", "export", "--server-db", str(db), "--signing-key-dir", str(keys), "--export-dir", str(out),
              "--max-keys-per-file", "10")
    rc, _, err = _run(*export, now=NOW)
    assert rc == 1 and err.strip() == (
        f"Error: the export stopped: cannot write into {out}: No space left on device; keys and check-ins not in"
        " a file it recorded still wait (make room, then export again)"
    )
    assert sorted(p.name for p in out.iterdir()) == []  # the file that fitted removed: it was never recorded
    monkeypatch.setattr(exports, "write_file", real_write)
    rc, out_text, err = _run(*export, now=NOW)
    assert rc == 0 and out_text.startswith("40 keys in 4 new batch(es)"), err


def test_keygen_force_keeps_the_key_id_and_moves_the_version_on(tmp_path: Path) -> None:
    """docs/server.md's rotation: `keygen --force` without --key-version wrote the new key as bluezone/v1
    again, the name of the key it replaced (or of the first one, after v2), and dropped a --key-id the
    apps were configured with (walk12). Now the id stays and the version moves on; a version that does
    not end in a number, or the same one given again, is a usage error and the old key stays."""
    keys = tmp_path / "keys"
    assert _run("server", "keygen", "--out", str(keys), "--key-id", "vn.gov.bluezone")[0] == 0

    def info() -> tuple[str, str]:
        doc = json.loads((keys / "signing_key.json").read_text())
        return doc["key_id"], doc["key_version"]

    assert info() == ("vn.gov.bluezone", "v1")
    rc, out, err = _run("server", "keygen", "--out", str(keys), "--force")
    assert rc == 0 and "vn.gov.bluezone/v2 written" in out and "(replacing vn.gov.bluezone/v1)" in out, err
    assert info() == ("vn.gov.bluezone", "v2")
    assert _run("server", "keygen", "--out", str(keys), "--force", "--key-version", "2027a")[0] == 0
    private = (keys / "private.pem").read_bytes()
    for again in (["--force"], ["--force", "--key-version", "2027a"]):  # no number to move on; the same name
        rc, out, err = _run("server", "keygen", "--out", str(keys), *again)
        assert rc == 2 and "the key being replaced is vn.gov.bluezone/2027a: give the new one another --key-version" in err
        assert (keys / "private.pem").read_bytes() == private
    assert _run("server", "keygen", "--out", str(tmp_path / "new"))[0] == 0  # a first key: bluezone/v1, as before
    assert json.loads((tmp_path / "new" / "signing_key.json").read_text())["key_version"] == "v1"


@pytest.mark.parametrize("flag", ["--key-id", "--key-version"])
@pytest.mark.parametrize("name", ["\udcff", "a\nb", "\x1b[31mred", "with space", "", "k" * 65])
def test_keygen_refuses_a_key_name_no_export_or_client_can_carry(tmp_path: Path, flag: str, name: str) -> None:
    """Signed into every export.sig and compared by every client: any text was taken.  A byte that is no UTF-8
    (\\udcff: the byte 0xff typed) made a key whose every export with keys failed ('UnicodeEncodeError'), and a
    newline or an escape sequence was printed to the terminal as it was ('signing key a' / 'b/v1 written')."""
    rc, out, err = _run("server", "keygen", "--out", str(tmp_path / "keys"), flag, name)
    assert rc == 2 and out == "" and err.count("\n") == 1, err
    assert "printable ASCII characters, no space" in err
    assert not (tmp_path / "keys").exists()


def test_keygen_takes_a_country_code_and_a_version(tmp_path: Path) -> None:
    rc, out, _ = _run("server", "keygen", "--out", str(tmp_path / "keys"), "--key-id", "452", "--key-version", "v2027-1")
    assert rc == 0 and out.startswith("signing key 452/v2027-1 written to ")
