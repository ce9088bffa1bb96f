"""The real thing on loopback: uvicorn on 127.0.0.1, and the `bluezone` commands a user runs."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from server_helpers import NOW, free_port, make_nodes

from bluezone.cli import cli
from bluezone.client.keyserver import KeyServerClient
from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.errors import InputError
from bluezone.keyformat.keys import KEY_DTYPE
from bluezone.server.signing import keygen


def _run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), obj={}, input=input)
    return result.exit_code, result.stdout, result.stderr


def test_cli_end_to_end_on_loopback(live_server: dict, tmp_path: Path) -> None:
    _, nodes = make_nodes(tmp_path, now=time.time())
    url, db = live_server["url"], str(live_server["db"])
    code_rc, out, err = _run("server", "issue-code", "--server-db", db, "--signing-key-dir", str(live_server["keys"]), "--json", "--type", "confirmed")
    assert code_rc == 0, err
    issued = json.loads(out)
    assert set(issued) >= {"code", "expires_at"} and len(issued["code"]) == 16

    rc, out, err = _run("upload", "--server", url, "--code", issued["code"], "--db", str(nodes["a"]), "--dry-run")
    assert rc == 0 and len(json.loads(out)["temporaryExposureKeys"]) == 5  # today's key not included
    # (the questions before sending: test_upload_asks_before_sending, on a chosen clock)
    rc, out, err = _run("upload", "--server", url, "--code", issued["code"], "--db", str(nodes["a"]), "--yes")
    assert rc == 0, err
    assert "server stored 5 new key(s)" in out
    # what comes next: keys alone warn the people near the F0 (no venue named), and a confirmed test's code leaves
    # nothing to do (the likely-code advice was said to everyone: note27)
    assert out.endswith("next: published at the server's next export; people near you are warned when they next check\n")
    assert "upload again" not in out
    rc, out, err = _run("upload", "--server", url, "--code", issued["code"], "--db", str(nodes["a"]), "--yes")
    assert rc == 2 and "already used" in err  # single use: the user's input, exit 2

    rc, out, err = _run("server", "export", "--server-db", db, "--signing-key-dir", str(live_server["keys"]),
                        "--export-dir", str(live_server["exports"]))
    assert rc == 0 and out.startswith("5 keys in"), err

    rc, out, err = _run("check", "--server", url, "--db", str(nodes["b"]), "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["close_contact"] is True and len(report["batches"]) == 5
    assert report["keys"] >= 5 * 100  # F0's 5 and the fake keys each file was padded with (nobody's)
    assert report["sightings"] == 60 and report["rejected_batches"] == {}
    rc, out, err = _run("check", "--server", url, "--db", str(nodes["c"]))
    assert rc == 0 and "0 close contact(s)" in out, err

    # the node pinned the key on first use; a different --server-key now is an error
    other = tmp_path / "other"
    keygen(other)
    rc, out, err = _run("check", "--server", url, "--db", str(nodes["b"]), "--server-key",
                        str(other / "signing_key.json"))
    assert rc == 1 and "differs from the key pinned" in err


def test_negative_code_withdraws_a_likely_report_cli(live_server: dict, tmp_path: Path) -> None:
    """upload (likely) -> check finds B -> upload (negative) -> check tells B the exposure is withdrawn."""
    _, nodes = make_nodes(tmp_path, now=time.time())
    url, db = live_server["url"], str(live_server["db"])
    export = ("server", "export", "--server-db", db, "--signing-key-dir", str(live_server["keys"]),
              "--export-dir", str(live_server["exports"]))
    likely = json.loads(_run("server", "issue-code", "--server-db", db, "--signing-key-dir", str(live_server["keys"]), "--json", "--type", "likely")[1])["code"]
    rc, out, err = _run("upload", "--server", url, "--code", likely, "--db", str(nodes["a"]), "--yes", "--json")
    assert rc == 0 and (json.loads(out)["stored"], json.loads(out)["revised"]) == (5, 0), err
    assert _run(*export)[0] == 0
    rc, out, err = _run("check", "--server", url, "--db", str(nodes["b"]), "--json")
    assert rc == 0 and json.loads(out)["close_contact"] is True, err

    negative = json.loads(_run("server", "issue-code", "--server-db", db, "--signing-key-dir", str(live_server["keys"]), "--json", "--type", "negative")[1])["code"]
    rc, out, err = _run("upload", "--server", url, "--code", negative, "--db", str(nodes["a"]), "--dry-run")
    assert rc == 0 and json.loads(out)["revisionToken"] == "<revision token of your last upload>"  # sent, not shown
    rc, out, err = _run("upload", "--server", url, "--code", negative, "--db", str(nodes["a"]), "--yes")
    assert rc == 0 and "server stored 0 new key(s), revised 5" in out, err
    assert _run(*export)[0] == 0
    rc, out, err = _run("check", "--server", url, "--db", str(nodes["b"]))
    assert rc == 0 and "0 exposure(s)" in out and "withdrawn" in out, err
    rc, out, err = _run("check", "--server", url, "--db", str(nodes["c"]), "--json")  # first check: keys and revisions at once
    report = json.loads(out)
    # each day's file of revisions: the real one among 99 or more revisions of earlier fakes (docs/server.md, Padding)
    assert rc == 0 and report["revoked_keys"] == report["revised_keys"] >= 5 * 100 and report["withdrawn"] == []


def test_a_batch_of_withdrawn_keys_is_not_read_as_an_empty_store(live_server: dict, tmp_path: Path) -> None:
    """A likely report revoked by a negative test before any export is published as revoked keys (with
    revoked padding): nobody matches them, so no sightings are read, and `check` said 'none of them could
    match: B.db holds no sightings of the days they cover' of a store with an hour of them (walk17, the
    demo's café a likely then a negative upload later)."""
    _, nodes = make_nodes(tmp_path, now=time.time())
    url, db, keys = live_server["url"], str(live_server["db"]), str(live_server["keys"])
    for kind in ("likely", "negative"):
        code = json.loads(_run("server", "issue-code", "--server-db", db, "--signing-key-dir", keys, "--json", "--type", kind)[1])["code"]
        assert _run("upload", "--server", url, "--code", code, "--db", str(nodes["a"]), "--yes")[0] == 0
    assert _run("server", "export", "--server-db", db, "--signing-key-dir", keys, "--export-dir", str(live_server["exports"]))[0] == 0
    rc, out, err = _run("check", "--server", url, "--db", str(nodes["b"]))
    assert rc == 0 and out.startswith("0 exposure(s), 0 close contact(s) (F1) from "), (out, err)
    assert "none of them could match" not in out, out


def test_check_rejects_tampered_batch_cli(live_server: dict, tmp_path: Path) -> None:
    _, nodes = make_nodes(tmp_path, now=time.time())
    url, db = live_server["url"], str(live_server["db"])
    code = json.loads(_run("server", "issue-code", "--server-db", db, "--signing-key-dir", str(live_server["keys"]), "--json")[1])["code"]
    assert _run("upload", "--server", url, "--code", code, "--db", str(nodes["a"]), "--yes")[0] == 0
    assert _run("server", "export", "--server-db", db, "--signing-key-dir", str(live_server["keys"]),
                "--export-dir", str(live_server["exports"]))[0] == 0
    batch = sorted(live_server["exports"].glob("*.zip"))[0]
    data = bytearray(batch.read_bytes())
    data[60] ^= 0xFF  # inside the compressed export.bin
    batch.write_bytes(bytes(data))
    rc, out, err = _run("check", "--server", url, "--db", str(nodes["b"]), "--server-key",
                        str(live_server["keys"] / "signing_key.json"))
    assert rc == 1 and "rejected and not used" in err


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    assert _run("server", "keygen", "--out", str(tmp_path / "k"))[0] == 0
    assert (tmp_path / "k" / "private.pem").stat().st_mode & 0o077 == 0
    rc, out, err = _run("server", "keygen", "--out", str(tmp_path / "k"))
    assert rc == 2 and "refusing" in err


def test_bad_inputs_one_line_errors(tmp_path: Path) -> None:
    keygen(tmp_path / "k")
    rc, out, err = _run("server", "issue-code", "--server-db", str(tmp_path / "s.db"), "--signing-key-dir", str(tmp_path / "k"),
                        "--create-db", "--test-date", "2999-01-01")
    assert rc == 2 and "future" in err
    rc, out, err = _run("upload", "--server", "ftp://x", "--code", "12345678", "--db", str(tmp_path / "none.db"))
    assert rc == 2 and err.startswith("Error:")
    rc, out, err = _run("check", "--server", "http://127.0.0.1:9", "--keys", "x.json")
    assert rc == 2


def test_check_keys_accepts_gaen_export_zip(tmp_path: Path) -> None:
    """`bluezone check --keys` reads Google's signed export zip (and a bare export.bin)."""
    from bluezone.proximity.store import SightingStore

    vectors = Path(__file__).parents[1] / "data" / "vectors"
    db = tmp_path / "node.db"
    SightingStore.open(db).close()
    for name, n in (("gaen_export_google_signed.zip", 140), ("gaen_export_google_app.bin", 110)):
        rc, out, err = _run("check", "--keys", str(vectors / name), "--db", str(db), "--json")
        assert rc == 0, err
        assert json.loads(out)["keys"] == n
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    rc, out, err = _run("check", "--keys", str(bad), "--db", str(db))
    assert rc == 2 and err.startswith("Error:") and len(err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.wall_clock
def test_server_run_command_serves(tmp_path: Path) -> None:
    """`bluezone server run` as a user starts it: a separate process on loopback."""
    import os
    import subprocess
    import sys

    import httpx

    assert _run("server", "keygen", "--out", str(tmp_path / "k"))[0] == 0
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bluezone.cli", "server", "run", "--server-db", str(tmp_path / "s.db"), "--port", str(port),
         "--signing-key-dir", str(tmp_path / "k"), "--export-every", "1", "--max-keys-per-day", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        spec = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                spec = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2).json()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert spec is not None, proc.stdout.read().decode() if proc.poll() is not None else "server did not answer"
        assert "/v1/publish" in spec["paths"]
        info = httpx.get(f"http://127.0.0.1:{port}/v1/signing-key").json()
        assert info == json.loads((tmp_path / "k" / "signing_key.json").read_text())
        while not (tmp_path / "s-exports" / "index.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the scheduled export writes the (empty) index
        assert (tmp_path / "s-exports" / "index.txt").read_text() == ""
        code = json.loads(_run("server", "issue-code", "--server-db", str(tmp_path / "s.db"), "--signing-key-dir",
                               str(tmp_path / "k"), "--json")[1])["code"]
        from bluezone.crypto.intervals import rolling_start
        from bluezone.keyformat.keyfile import publish_body
        from bluezone.keyformat.keys import empty_keys

        keys = empty_keys(4)
        keys["key"] = [bytes([i + 1]) * 16 for i in range(4)]
        keys["rolling_start"] = rolling_start(time.time()) - 144 + 10 * np.arange(4)
        keys["rolling_period"] = 10
        r = httpx.post(f"http://127.0.0.1:{port}/v1/publish", json=publish_body(keys, code))
        assert (r.status_code, r.json()["code"]) == (400, "too_many_keys_per_day")  # --max-keys-per-day 3
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0].decode()  # waits, reads all, closes the pipe
    assert "Application startup complete" in output, output
    # one format for bluezone's and uvicorn's lines (uvicorn's own "INFO:     ..." sat beside ours)
    import re

    lines = [line for line in output.splitlines() if line.strip()]
    pattern = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")
    assert lines and all(pattern.match(line) for line in lines), output
    start = next(line for line in lines if "key server: database" in line)  # what runs from where, at start
    assert str((tmp_path / "s.db").resolve()) in start and str((tmp_path / "s-exports").resolve()) in start
    assert "signing key bluezone/v1" in start and f"http://127.0.0.1:{port}" in start
    assert "/v1/publish" not in output and "127.0.0.1:" not in output.replace(f"http://127.0.0.1:{port}", "")  # no access log


def test_server_benchmark_command_small() -> None:
    rc, out, err = _run("server", "benchmark", "--uploads", "3", "--export-keys", "500", "--repeat", "1", "--json")
    assert rc == 0, err
    result = json.loads(out)
    assert result["backend"] == "SQLite" and result["uploads_per_second"] > 0
    assert result["export_keys"] == 500 and result["export_files"] >= 1


def test_server_benchmark_refuses_a_key_servers_database(tmp_path: Path) -> None:
    from bluezone.server.storage import open_storage

    db = tmp_path / "real.db"
    storage = open_storage(db)
    keys = np.zeros(3, dtype=KEY_DTYPE)  # keys of real uploads
    keys["key"] = [bytes([i]) * 16 for i in (1, 2, 3)]
    keys["rolling_start"], keys["rolling_period"] = rolling_start(NOW) - ROLLING_PERIOD, ROLLING_PERIOD
    storage.insert_keys_unchecked(keys, NOW)
    storage.close()
    before = db.read_bytes()
    rc, out, err = _run("server", "benchmark", "--server-db", str(db), "--uploads", "1", "--export-keys", "10")
    assert rc == 2 and out == ""
    assert err.strip().count("\n") == 0 and "holds a key server's data (exposure_keys)" in err, err
    assert db.read_bytes() == before  # nothing added, nothing re-queued


def test_upload_json_with_today_released_the_same_day(live_server: dict, tmp_path: Path) -> None:
    _, nodes = make_nodes(tmp_path, now=time.time())
    url, db = live_server["url"], str(live_server["db"])
    code = json.loads(_run("server", "issue-code", "--server-db", db, "--signing-key-dir", str(live_server["keys"]), "--json")[1])["code"]
    rc, out, err = _run("upload", "--server", url, "--code", code, "--db", str(nodes["a"]), "--yes",
                        "--include-today", "--json")
    assert rc == 0, err
    report = json.loads(out)
    from bluezone.crypto.intervals import interval_number

    assert report["sent"] == report["stored"] == 6
    today = report["keys"][-1]
    uploaded_in = today["rolling_start"] + today["rolling_period"] - 1  # today's key ends with the upload's interval
    before = interval_number(time.time())
    rc, out, err = _run("server", "export", "--server-db", db, "--signing-key-dir", str(live_server["keys"]),
                        "--export-dir", str(live_server["exports"]))
    after = interval_number(time.time())
    # today's key is embargoed until that interval is over; the export read the clock between
    # ``before`` and ``after`` (both counts are right only if an interval ended meanwhile)
    expected = {6 if interval > uploaded_in else 5 for interval in (before, after)}
    assert rc == 0 and int(out.split()[0]) in expected and out.split()[1:3] == ["keys", "in"], err


@pytest.mark.parametrize(
    "url, message",
    [
        ("keys.example.org", "must start with http"),
        ("http://[::1", "not a usable server URL"),
        ("http://keys..example.org", "no host name"),  # 'UnicodeError: ... idna codec failed', exit 1, at connecting
        ("http://", "has no host"),
        ("https://keys.example.org:99999", "not 1-65535"),
        ("https://keys.example.org#top", "without '?' or '#'"),  # was a 404 for '/', exit 1
        ("https://keys.example.org/v1/exports/index.txt?", "without '?' or '#'"),  # was 'not a JSON object', exit 1
    ],
)
def test_bad_server_urls_are_one_line_input_errors(tmp_path: Path, url: str, message: str) -> None:
    """Caught before any connection: ``http://[::1`` used to end in a generic exit-1 error."""
    _, nodes = make_nodes(tmp_path, now=time.time())
    rc, out, err = _run("check", "--server", url, "--db", str(nodes["b"]))
    assert rc == 2 and out == "" and err.startswith("Error: ") and err.count("\n") == 1
    assert message in err and "--debug" not in err


@pytest.mark.parametrize("region", ["", "X", "../x", "V N", "a" * 17])
def test_export_region_typos_are_input_errors(tmp_path: Path, region: str) -> None:
    """The region goes into every signed export.bin: a typo is caught before anything is signed."""
    assert _run("server", "keygen", "--out", str(tmp_path / "k"))[0] == 0
    rc, out, err = _run("server", "export", "--server-db", str(tmp_path / "s.db"), "--signing-key-dir", str(tmp_path / "k"),
                        "--region", region)
    assert rc == 2 and err.startswith("Error: region must be") and err.count("\n") == 1
    assert not (tmp_path / "s-exports").exists() or not any((tmp_path / "s-exports").glob("*.zip"))


def test_upload_asks_before_sending(tmp_path: Path) -> None:
    """On a chosen clock, not the wall clock: whenever today's key is on air, from the day's first
    interval to its last, sending it is a question; answered no, only the finished days go."""
    from bluezone.clock import VirtualClock
    from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS, rolling_start

    _, nodes = make_nodes(tmp_path, now=NOW)
    args = ["upload", "--server", "http://127.0.0.1:9", "--code", "12345678", "--db", str(nodes["a"])]
    midnight = rolling_start(NOW) * INTERVAL_SECONDS
    for when in (NOW, midnight + 5.0, midnight + DAY_SECONDS - 300):
        asked = CliRunner().invoke(cli, args, obj={"clock": VirtualClock(when)}, input="n\nn\n")
        assert asked.exit_code == 1 and "Is your day over" in asked.stderr and "Send them?" in asked.stderr
        assert "today's key is not sent" in asked.stderr and asked.stderr.count("  00:00-24:00 UTC") == 5


def test_upload_shows_each_key_by_its_utc_hours(tmp_path: Path) -> None:
    """Today's key, cut at the current 10 minutes, was listed as "valid 1120 min" at 18:35 UTC, which
    reads as time still to run; now by its hours, as every finished day's: "00:00-18:40 UTC"."""
    from bluezone.clock import VirtualClock
    from bluezone.crypto.intervals import INTERVAL_SECONDS, rolling_start

    _, nodes = make_nodes(tmp_path, now=NOW)
    midnight = rolling_start(NOW) * INTERVAL_SECONDS
    args = ["upload", "--server", "http://127.0.0.1:9", "--code", "12345678", "--db", str(nodes["a"]), "--include-today"]
    asked = CliRunner().invoke(cli, args, obj={"clock": VirtualClock(midnight + 18 * 3600 + 35 * 60)}, input="n\n")
    today = dt.datetime.fromtimestamp(midnight, dt.UTC).date().isoformat()
    assert asked.exit_code == 1 and f"  {today}  00:00-18:40 UTC\n" in asked.stderr, asked.stderr
    assert "today's key is sent up to now" in asked.stderr and " min\n" not in asked.stderr.split("Send them?")[0]


@settings(max_examples=200, deadline=None)
@given(path=st.sampled_from(["", "/", "/v1", "/v1/exports/index.txt"]), mark=st.sampled_from("?#"), rest=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=12))
def test_a_server_url_with_a_query_or_fragment_is_refused_before_any_request(path: str, mark: str, rest: str) -> None:
    """The client puts /v1/... after the URL given: after a '?' or '#' the paths became the query or fragment,
    and the server was asked for '/' (404) or its index as the signing key ('not a JSON object'), exit 1."""
    with pytest.raises(InputError, match="without '\\?' or '#'"):
        KeyServerClient(f"https://keys.example.org{path}{mark}{rest}")
