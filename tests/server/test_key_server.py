"""The key server in process (starlette's TestClient = an httpx2 client) on a virtual clock."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from server_helpers import JSON_HEADERS, NOW, URL, Server, check_node, make_nodes, uploaded
from starlette.testclient import TestClient  # an httpx2.Client over the ASGI app (httpx's API)

from bluezone.client.check import check_server
from bluezone.client.pinning import PinnedKey
from bluezone.client.state import ServerState
from bluezone.client.uploading import keys_to_upload
from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.errors import KeyServerError, PublishError, ServerKeyChangedError
from bluezone.keyformat.export import open_signed_export
from bluezone.keyformat.venue_reports import ProtectedReport
from bluezone.proximity.store import SightingStore
from bluezone.server.app import create_app
from bluezone.server.codes import revoke_code
from bluezone.server.publish import PublishConfig, parse_request


@pytest.fixture
def server(tmp_path: Path) -> Server:
    s = Server(tmp_path)
    yield s
    s.storage.close()


def test_the_in_process_server_is_reached_through_httpx2(server: Server) -> None:
    """The test extra installs httpx2: without it starlette's TestClient falls back to plain httpx
    (unmaintained) and warns on every run that this is deprecated."""
    import httpx2

    assert isinstance(server.http, httpx2.Client)
    assert server.client.signing_key().public_key == server.signer.public_info()["public_key"]  # a request through it


def _body(keys: list[tuple[bytes, int, int]], code: str) -> dict:
    return {
        "temporaryExposureKeys": [
            {"key": base64.b64encode(k).decode(), "rollingStartNumber": s, "rollingPeriod": p, "transmissionRisk": 0}
            for k, s, p in keys
        ],
        "verificationPayload": code,
    }


def test_f0_upload_export_and_f1_check(server: Server, tmp_path: Path) -> None:
    daily, nodes = make_nodes(tmp_path)
    with SightingStore.open(nodes["a"], create=False) as a:
        keys = keys_to_upload(a.daily_keys(), server.clock.now(), include_today=False)
    assert len(keys) == 5 and keys["rolling_start"].max() < rolling_start(NOW)  # today's key kept back
    assert server.client.publish(keys, server.code(test_type="confirmed")).inserted == 5
    batches = server.export()
    assert sum(b.num_keys for b in batches) == 5
    result_b = check_node(server, nodes["b"])
    assert result_b.pinned_now and not result_b.rejected and len(uploaded(result_b.keys, server.storage)) == 5
    assert len(result_b.keys) >= 5 * 100  # the files padded with fake keys, which match nobody
    assert [e.score.close_contact for e in result_b.exposures] == [True]
    assert (result_b.keys["report_type"] == 1).all()
    result_c = check_node(server, nodes["c"])
    assert not any(e.score.close_contact for e in result_c.exposures)
    again = check_node(server, nodes["b"])  # batches are remembered
    assert again.batches == [] and len(again.keys) == 0 and not again.pinned_now


def test_codes_reused_expired_wrong_refused(server: Server) -> None:
    day = rolling_start(NOW) - ROLLING_PERIOD
    code = server.code()
    status, doc = server.post(_body([(b"\x01" * 16, day, 144)], code))
    assert (status, doc["insertedExposures"], doc["revisedExposures"]) == (200, 1, 0) and len(doc["revisionToken"]) >= 40
    status, doc = server.post(_body([(b"\x02" * 16, day - 144, 144)], code))
    assert (status, doc["code"]) == (403, "verification_code_used")
    expiring = server.code(lifetime=3600)
    server.clock.advance(3601)
    status, doc = server.post(_body([(b"\x03" * 16, day, 144)], expiring))
    assert (status, doc["code"]) == (403, "verification_code_expired")
    status, doc = server.post(_body([(b"\x04" * 16, day, 144)], "1234567812345678"))
    assert (status, doc["code"]) == (403, "verification_code_invalid")
    assert server.storage.count_keys() == 1
    # only the guess counts as a failed try: a code this server issued (used, expired) is its holder's
    assert server.storage.count_failures(0) == 1


def test_failed_guesses_rate_limited_per_client(tmp_path: Path) -> None:
    server = Server(tmp_path, PublishConfig(max_failures_per_client=3))
    day = rolling_start(NOW) - ROLLING_PERIOD
    body = _body([(b"\x01" * 16, day, 144)], "0000000000000000")
    assert [server.post(body)[0] for _ in range(4)] == [403, 403, 403, 429]
    good = server.code()
    assert server.post(_body([(b"\x01" * 16, day, 144)], good))[1]["code"] == "rate_limited"
    server.clock.advance(3601)  # the window has passed
    assert server.post(_body([(b"\x01" * 16, day, 144)], good))[0] == 200


def test_failed_guesses_from_everywhere_never_lock_out_a_valid_code(tmp_path: Path) -> None:
    """Issue 14.1: 1,000 failed codes from many clients (4 s of work) made the server answer 429 to
    every valid code for an hour.  Only the clients that failed are limited now."""
    server = Server(tmp_path)
    day = rolling_start(NOW) - ROLLING_PERIOD
    for i in range(1200):
        server.storage.record_failure(f"10.0.{i // 250}.{i % 250}", NOW - 60)
    status, doc = server.post(_body([(b"\x01" * 16, day, 144)], server.code()))
    assert status == 200, doc


def test_one_ipv6_host_is_one_client() -> None:
    """A host owns a whole /64: counted per address, it would get 2^64 times the tries."""
    from bluezone.server.publish import client_key

    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("testclient") == "testclient"


@pytest.mark.parametrize(
    "make_body, error",
    [
        (lambda code, day: _body([(bytes([i]) * 16, day + i, 1) for i in range(20)], code), "too_many_keys_per_day"),
        (lambda code, day: _body([(b"\x01" * 16, rolling_start(NOW) + 200, 144)], code), "key_timing_invalid"),
        (lambda code, day: _body([(b"\x01" * 16, day - 15 * 144, 144)], code), "key_timing_invalid"),
        (lambda code, day: _body([(b"\x01" * 16, day, 144), (b"\x02" * 16, day + 100, 144)], code), "key_overlap"),
        (lambda code, day: _body([(b"\x01" * 16, day, 144), (b"\x01" * 16, day - 144, 144)], code), "key_duplicate"),
        (lambda code, day: _body([(b"\x01" * 15, day, 144)], code), "key_invalid"),
        (lambda code, day: _body([(b"\x01" * 16, day, 0)], code), "key_invalid"),
        (lambda code, day: _body([(b"\x01" * 16, day, 145)], code), "key_invalid"),
        (lambda code, day: json.dumps(_body([(b"\x01" * 16, day, 144)], code)).encode()[:-7], "unparsable_request"),
        (lambda code, day: b"", "unparsable_request"),
        (lambda code, day: {"temporaryExposureKeys": [], "verificationPayload": code}, "missing_keys"),
        (lambda code, day: {**_body([(b"\x01" * 16, day, 144)], code), "symptomOnsetInterval": 10**30}, "bad_request"),
        (lambda code, day: {**_body([(b"\x01" * 16, day, 144)], code), "revisionToken": 7}, "invalid_revision_token"),
        (lambda code, day: {**_body([(b"\x01" * 16, day, 144)], code), "revisionToken": "t" * 257}, "invalid_revision_token"),
        (lambda code, day: {**_body([(b"\x01" * 16, day, 144)], code), "revisionToken": "\ud800"}, "invalid_revision_token"),
        (lambda code, day: {**_body([(b"\x01" * 16, day, 144)], "\ud800")}, "bad_request"),  # was a 500: unhashable
    ],
)
def test_invalid_uploads_400_nothing_stored(server: Server, make_body, error: str) -> None:
    code = server.code()
    day = rolling_start(NOW) - 3 * ROLLING_PERIOD
    status, doc = server.post(make_body(code, day))
    assert (status, doc["code"]) == (400, error)
    assert server.storage.count_keys() == 0
    # the code was not burned by the bad request
    assert server.post(_body([(b"\x09" * 16, day, 144)], code))[0] == 200


def test_request_size_limit(server: Server) -> None:
    day = rolling_start(NOW) - ROLLING_PERIOD
    body = _body([(b"\x01" * 16, day, 144)], server.code())
    body["padding"] = "x" * (70 * 1024)
    status, doc = server.post(body)
    assert (status, doc["code"]) == (413, "request_too_large")
    # refused unread, but the answer says what fits (10,000 check-ins are ~1.7 MB)
    assert doc["error"] == (
        "request larger than 65536 bytes: a publish holds at most 30 keys and 204 check-ins, 12 a day"
    )
    assert server.storage.count_keys() == 0


def test_report_type_and_days_since_onset(server: Server) -> None:
    import datetime as dt

    today = dt.datetime.fromtimestamp(NOW, dt.UTC).date()
    code = server.code(test_type="likely", symptom_onset=today - dt.timedelta(days=2))
    base = rolling_start(NOW)
    keys = [(bytes([i + 1]) * 16, base - d * ROLLING_PERIOD, 144) for i, d in enumerate((1, 2, 3))]
    assert server.post(_body(keys, code))[0] == 200
    pending, _, _ = server.storage.pending_keys(base, 0)
    by_start = {int(k["rolling_start"]): k for k in pending}
    assert {s: int(k["days_since_onset"]) for s, k in by_start.items()} == {
        base - 144: 1, base - 288: 0, base - 432: -1
    }
    assert (pending["report_type"] == 2).all()


def test_embargo_shuffle_and_split(server: Server) -> None:
    today = rolling_start(NOW)
    rows = []
    for day in range(1, 4):  # 3 days x 8 short keys + today's key
        rows += [(bytes([day, i]) * 8, today - day * 144 + 18 * i, 18) for i in range(8)]
    rows.append((b"\xee" * 16, today, 144))
    for chunk in (rows[:14], rows[14:]):
        assert server.post(_body(chunk, server.code()))[0] == 200
    batches = server.export(max_keys_per_file=3)
    assert len(batches) == 9 and sum(b.num_keys for b in batches) == 24
    assert {(b.batch_num, b.batch_size) for b in batches} == {(1, 3), (2, 3), (3, 3)}
    exported = []
    for b in batches:
        export, _ = open_signed_export((server.exports / b.name).read_bytes(), server.signer.public_key)
        assert export.batch_num == b.batch_num and len(export.keys) <= 3
        exported += [bytes(k) for k in export.keys["key"]]
    assert b"\xee" * 16 not in exported  # today's key is embargoed
    sent = [k for k, _, _ in rows[:-1]]
    assert sorted(exported) == sorted(sent) and exported != sent  # shuffled
    assert server.client.index() == [b.name for b in batches]
    assert server.export() == []  # nothing new
    server.clock.advance(24 * 3600)  # today's key has expired: now it is exported
    later = server.export()
    assert [b.num_keys for b in later] == [1]


def test_tampered_and_unsigned_batches_rejected(server: Server, tmp_path: Path) -> None:
    daily, nodes = make_nodes(tmp_path)
    with SightingStore.open(nodes["a"], create=False) as a:
        keys = keys_to_upload(a.daily_keys(), NOW, include_today=False)
    server.client.publish(keys, server.code())
    batches = server.export()
    target = server.exports / batches[0].name
    with zipfile.ZipFile(target) as z:
        export_bin, export_sig = z.read("export.bin"), z.read("export.sig")
    tampered = bytearray(export_bin)
    tampered[-3] ^= 0x40
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("export.bin", bytes(tampered))
        z.writestr("export.sig", export_sig)
    target.write_bytes(buf.getvalue())
    unsigned = server.exports / batches[1].name
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("export.bin", zipfile.ZipFile(unsigned).read("export.bin"))
    unsigned.write_bytes(buf.getvalue())
    result = check_node(server, nodes["b"])
    assert set(result.rejected) == {batches[0].name, batches[1].name}
    assert "does not verify" in result.rejected[batches[0].name]
    assert "no export.sig" in result.rejected[batches[1].name]
    assert len(uploaded(result.keys, server.storage)) == len(keys) - 2
    again = check_node(server, nodes["b"])  # rejected batches are not remembered as processed
    assert set(again.rejected) == {batches[0].name, batches[1].name}


def test_server_key_change_is_an_error(server: Server, tmp_path: Path) -> None:
    _, nodes = make_nodes(tmp_path)
    check_node(server, nodes["b"])  # pins on first use
    impostor = Server(tmp_path / "impostor")
    with SightingStore.open(nodes["b"], create=False) as store:
        state = ServerState(store)
        with pytest.raises(ServerKeyChangedError):
            check_server(impostor.client, state, store.sightings)
        other = PinnedKey(impostor.signer.public_info()["public_key"])
        with pytest.raises(ServerKeyChangedError):
            check_server(server.client, state, store.sightings, server_key=other)


def test_a_rotated_key_is_accepted_with_repin_only(server: Server, tmp_path: Path) -> None:
    """After the health authority rotated its key, the owner had to delete a row of keyserver_pins by
    hand ('remove the pin to re-pin' said no more): --repin with the new key replaces the pin."""
    _, nodes = make_nodes(tmp_path)
    check_node(server, nodes["b"])  # pins the first key on first use
    rotated = Server(tmp_path / "rotated")  # the same URL, signing with a new key
    new_key = PinnedKey(rotated.signer.public_info()["public_key"], "bluezone", "v2")
    try:
        with pytest.raises(ServerKeyChangedError, match="give the right one with --repin"):
            check_node(rotated, nodes["b"], server_key=new_key)
        result = check_node(rotated, nodes["b"], server_key=new_key, repin=True)
        assert result.pinned_now and not result.rejected
        with SightingStore.open(nodes["b"], create=False) as store:
            assert ServerState(store).pinned(rotated.client.base_url).public_key == new_key.public_key
        assert not check_node(rotated, nodes["b"]).rejected  # the new key announced is the one pinned now
        with pytest.raises(ServerKeyChangedError):  # and the old one no longer passes
            check_node(server, nodes["b"])
    finally:
        rotated.storage.close()



def test_a_node_that_gives_its_pinned_key_is_stopped_by_a_rotation_too(server: Server, tmp_path: Path) -> None:
    """A node configured as the README says (`server-key` in config.toml) gives its pinned key on every
    check, and the announced key was compared only without one: after the health authority rotated, it
    listed every new batch as 'does not verify' on every check, where docs/server.md's rotation says a check
    stops at once with what to do (walk12). Now the same stop; --repin with the new key still passes."""
    _, nodes = make_nodes(tmp_path)
    old_key = PinnedKey(server.signer.public_info()["public_key"])
    assert check_node(server, nodes["b"], server_key=old_key).pinned_now
    assert not check_node(server, nodes["b"], server_key=old_key).rejected  # the same key, announced: as before
    rotated = Server(tmp_path / "rotated")  # the same URL, signing with a new key
    new_key = PinnedKey(rotated.signer.public_info()["public_key"], "bluezone", "v2")
    try:
        with pytest.raises(ServerKeyChangedError, match="now announces a different signing key.*--server-key FILE --repin"):
            check_node(rotated, nodes["b"], server_key=old_key)
        assert not check_node(rotated, nodes["b"], server_key=new_key, repin=True).rejected
    finally:
        rotated.storage.close()

def test_repin_goes_with_a_server_and_its_key(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bluezone.cli import cli

    runner = CliRunner()
    db = tmp_path / "node.db"
    SightingStore.open(db).close()
    for args in (["--repin", "--keys", str(db)], ["--repin", "--server", "http://127.0.0.1:9"]):
        result = runner.invoke(cli, ["check", "--db", str(db), *args], obj={})
        assert result.exit_code == 2 and "--repin" in result.output and "--server-key" in result.output, result.output


def test_given_server_key_pins_and_verifies(server: Server, tmp_path: Path) -> None:
    _, nodes = make_nodes(tmp_path)
    wrong = Server(tmp_path / "other").signer.public_info()
    day = rolling_start(NOW) - ROLLING_PERIOD
    server.post(_body([(b"\x01" * 16, day, 144)], server.code()))
    server.export()
    result = check_node(server, nodes["c"], server_key=PinnedKey(wrong["public_key"]))
    assert len(result.rejected) == 1 and len(result.keys) == 0


def test_client_errors_are_keyservererror(server: Server) -> None:
    with pytest.raises(KeyServerError) as info:
        server.client.publish(np.zeros(0, dtype=[("key", "V16")]), "1")  # type: ignore[arg-type]
    assert info.value.code == "missing_keys" and info.value.status == 400


def test_openapi(server: Server) -> None:
    spec = server.http.get("/openapi.json").json()
    assert "/v1/publish" in spec["paths"]
    schema = spec["paths"]["/v1/publish"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "temporaryExposureKeys" in schema["properties"]


def test_scheduled_export_runs_in_the_app(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import time

    caplog.set_level(logging.INFO, logger="bluezone.server.app")
    s = Server(tmp_path)
    day = rolling_start(NOW) - ROLLING_PERIOD
    s.post(_body([(b"\x05" * 16, day, 144), (b"\x06" * 16, rolling_start(NOW), 144)], s.code()))
    app = create_app(
        s.storage, code_key=s.code_key, export_dir=s.exports, signer=s.signer, clock=s.clock, export_every=3600
    )
    with TestClient(app, base_url=URL) as http:  # runs the lifespan: the first export is immediate
        for _ in range(500):  # the first export writes index.txt, then logs what its embargo holds back
            if http.get("/v1/exports/index.txt").text and "wait until" in caplog.text:
                break
            time.sleep(0.01)
        names = http.get("/v1/exports/index.txt").text.split()
    assert len(names) == 1
    export, _ = open_signed_export((s.exports / names[0]).read_bytes(), s.signer.public_key)
    assert [bytes(k) for k in uploaded(export.keys, s.storage)["key"]] == [b"\x05" * 16]
    # today's key waits for its embargo, and the log says so (issue 14.11)
    assert "1 key(s) wait until their validity ends: exportable from 2025-11-21 00:00 UTC" in caplog.text
    s.storage.close()


def test_export_file_names_are_checked(server: Server) -> None:
    assert server.http.get("/v1/exports/..%2Fserver.db").status_code == 404
    assert server.http.get("/v1/exports/nothing.zip").status_code == 404
    assert server.http.get("/v1/exports/index.txt").text == ""


def test_negative_code_publishes_no_new_keys(server: Server, tmp_path: Path) -> None:
    _, nodes = make_nodes(tmp_path)
    with SightingStore.open(nodes["a"], create=False) as a:
        keys = keys_to_upload(a.daily_keys(), NOW, include_today=False)
    assert server.client.publish(keys, server.code(test_type="negative")).inserted == 0
    assert server.export() == []
    result = check_node(server, nodes["b"])
    assert len(result.keys) == 0 and result.exposures == []


def test_negative_test_revokes_a_likely_report_and_withdraws_the_exposure(server: Server, tmp_path: Path) -> None:
    """likely -> exposure reported -> negative test: the device's token revises its keys on the
    server, the next batch carries them in ``revised_keys``, and the contact hears it is withdrawn."""
    from bluezone.client.uploading import upload_own_keys

    _, nodes = make_nodes(tmp_path)
    with SightingStore.open(nodes["a"], create=False) as a:
        first = upload_own_keys(a, server.client, server.code(test_type="likely"), NOW, include_today=False).receipt
    assert (first.inserted, first.revised) == (5, 0) and first.revision_token
    server.export()
    before = check_node(server, nodes["b"])
    assert [e.score.close_contact for e in before.exposures] == [True] and (before.keys["report_type"] == 2).all()

    server.clock.advance(3600)
    with SightingStore.open(nodes["a"], create=False) as a:
        negative = upload_own_keys(
            a, server.client, server.code(test_type="negative"), server.clock.now(), include_today=False
        ).receipt
    assert (negative.inserted, negative.revised) == (0, 5)
    revisions = server.export()  # one file per day, as for new keys
    assert len(revisions) == 5 and sum(b.num_keys for b in revisions) == 5
    fakes = sum(b.padding_keys for b in revisions)  # revisions of earlier fakes: a node cannot tell them apart
    assert fakes >= 5 * 99
    after = check_node(server, nodes["b"])
    assert after.batches == [b.name for b in revisions] and after.revised == after.revoked == 5 + fakes
    assert after.exposures == [] and [e.score.close_contact for e in after.withdrawn] == [True]
    assert after.as_dict()["withdrawn"][0]["date"] == before.exposures[0].date
    # someone checking for the first time now gets the keys and their revocation together: nothing to report
    fresh = tmp_path / "fresh.db"
    import shutil

    shutil.copy(nodes["b"], fresh)
    with sqlite3.connect(fresh) as conn:  # forget the batches, as a device that never checked
        conn.execute("DELETE FROM keyserver_batches")
    first_time = check_node(server, fresh)
    assert len(first_time.batches) == 10 and first_time.revoked == 5 + fakes
    assert first_time.exposures == [] and first_time.withdrawn == []


def test_a_likely_report_confirmed_later_updates_the_exposure_not_repeats_it(server: Server, tmp_path: Path) -> None:
    from bluezone.client.uploading import upload_own_keys

    _, nodes = make_nodes(tmp_path)
    with SightingStore.open(nodes["a"], create=False) as a:
        upload_own_keys(a, server.client, server.code(test_type="likely"), NOW, include_today=False)
    server.export()
    assert [e.score.close_contact for e in check_node(server, nodes["b"]).exposures] == [True]
    server.clock.advance(3600)
    with SightingStore.open(nodes["a"], create=False) as a:
        confirmed = upload_own_keys(
            a, server.client, server.code(test_type="confirmed"), server.clock.now(), include_today=False
        ).receipt
    assert confirmed.revised == 5
    fakes = sum(b.padding_keys for b in server.export())  # revisions of earlier fakes, matching nobody
    after = check_node(server, nodes["b"])
    assert after.exposures == [] and after.withdrawn == [] and [e.score.close_contact for e in after.updated] == [True]
    assert after.revoked == 0 and len(after.keys) == 0 and after.revised == 5 + fakes and fakes >= 5 * 99


def test_revision_tokens_are_forgotten_with_the_keys(tmp_path: Path) -> None:
    state = ServerState(SightingStore.open(tmp_path / "node.db"))
    state.save_revision_token(URL, "t1", NOW)
    assert state.revision_token(URL, NOW + 14 * 86400) == "t1"
    assert state.revision_token(URL, NOW + 14 * 86400 + 1) is None  # its keys have left the server too
    assert state.revision_token(URL) is None  # and it is gone


def test_revision_without_the_devices_token_is_refused(server: Server, tmp_path: Path) -> None:
    _, nodes = make_nodes(tmp_path)
    with SightingStore.open(nodes["a"], create=False) as a:
        keys = keys_to_upload(a.daily_keys(), NOW, include_today=False)
    first = server.client.publish(keys, server.code(test_type="likely"))
    code = server.code(test_type="negative")
    for token, reason in ((None, "missing_revision_token"), ("x" * 43, "invalid_revision_token")):
        with pytest.raises(KeyServerError) as err:  # e.g. somebody else who read the published keys
            server.client.publish(keys, code, revision_token=token)
        assert err.value.code == reason and err.value.status == 400
    assert server.client.publish(keys, code, revision_token=first.revision_token).revised == 5  # the code was not burned


def test_code_used_once_under_concurrency(server: Server) -> None:
    from concurrent.futures import ThreadPoolExecutor

    code = server.code()
    day = rolling_start(NOW) - ROLLING_PERIOD
    bodies = [_body([(bytes([i + 1]) * 16, day, 144)], code) for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(s for s, _ in pool.map(server.post, bodies))
    assert statuses == [200] + [403] * 7
    assert server.storage.count_keys() == 1


def test_logs_never_tie_an_address_code_or_key_to_a_publish(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    """An address beside a successful publish would say who tested positive."""
    key = bytes(range(16))
    code = server.code(test_type="confirmed")
    start = rolling_start(NOW) - ROLLING_PERIOD
    with caplog.at_level("INFO", logger="bluezone"):
        status, _ = server.post(_body([(key, start, ROLLING_PERIOD)], code))
    assert status == 200
    published = [r.getMessage() for r in caplog.records if "published" in r.getMessage()]
    assert published, "the publish is logged (as a count)"
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "testclient" not in text  # TestClient's client address
    assert code not in text and key.hex() not in text and base64.b64encode(key).decode() not in text


def test_a_retried_upload_does_not_log_its_address(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    """A code this server issued, refused as used, expired or revoked, is almost surely its holder's: a phone
    that sends again when the answer to its upload was lost on a mobile network (or the person running
    `bluezone upload` again), a code read out too late.  'failed verification code from <address>: used'
    tied the address of somebody who tested positive to it, in a log kept for weeks.  A guess (no such
    code) still names its address, for the operator who blocks it."""
    start = rolling_start(NOW) - ROLLING_PERIOD
    used, late, withdrawn = server.code(), server.code(), server.code()
    assert server.post(_body([(bytes(range(16)), start, ROLLING_PERIOD)], used))[0] == 200
    revoke_code(server.storage, withdrawn, NOW, key=server.code_key)
    with caplog.at_level("INFO", logger="bluezone"):
        assert server.post(_body([(bytes(range(16)), start, ROLLING_PERIOD)], used))[0] == 403
        server.clock.advance(2 * 86400)  # the long code expired
        assert server.post(_body([(bytes(range(1, 17)), start, ROLLING_PERIOD)], late))[0] == 403
        assert server.post(_body([(bytes(range(2, 18)), start, ROLLING_PERIOD)], withdrawn))[0] == 403
    failed = [r.getMessage() for r in caplog.records if "verification code" in r.getMessage()]
    assert len(failed) == 3 and not any("testclient" in line for line in failed), failed
    caplog.clear()
    with caplog.at_level("INFO", logger="bluezone"):
        assert server.post(_body([(bytes(range(3, 19)), start, ROLLING_PERIOD)], "1" * 16))[0] == 403
    assert any("testclient" in r.getMessage() for r in caplog.records)  # a guess: who keeps guessing


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_fields = st.sampled_from(
    ["key", "rollingStartNumber", "rollingPeriod", "transmissionRisk", "verificationPayload", "symptomOnsetInterval",
     "padding", "temporaryExposureKeys", "revisionToken"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=_fields, value=st.integers(-(2**100), 2**100) | _json, on_key=st.booleans())
@example(field="symptomOnsetInterval", value=10**30, on_key=False)  # was a 500: numpy overflow in validate_keys
def test_any_value_in_any_field_is_refused_cleanly_or_stored(server: Server, field: str, value: object, on_key: bool) -> None:
    """Whatever a client sends, the answer is a 2xx or a 4xx with a code, never a 500, and a refusal stores nothing."""
    code = server.code()
    day = rolling_start(NOW) - 2 * ROLLING_PERIOD
    body = _body([(b"\x05" * 16, day, 144), (b"\x06" * 16, day - ROLLING_PERIOD, 144)], code)
    (body["temporaryExposureKeys"][0] if on_key and field in body["temporaryExposureKeys"][0] else body)[field] = value
    before = server.storage.count_keys()
    r = server.http.post("/v1/publish", content=json.dumps(body, allow_nan=True), headers=JSON_HEADERS)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert isinstance(r.json()["code"], str)
        assert server.storage.count_keys() == before


def test_optional_fields_sent_as_null_are_taken_as_absent(server: Server) -> None:
    """GAEN's reference server (Go) takes an optional field sent as null as absent; here 'revisionToken' and
    'symptomOnsetInterval' were, but 'padding', a key's 'rollingPeriod' and 'transmissionRisk', and the keys
    beside check-ins were refused with a 400 (an upload lost for a null its app sends for "none")."""
    day = rolling_start(NOW) - 2 * ROLLING_PERIOD
    body = _body([(b"\x05" * 16, day, 144)], server.code())
    body["padding"] = None
    body["temporaryExposureKeys"][0].update(rollingPeriod=None, transmissionRisk=None)
    parsed = parse_request(json.dumps(body).encode(), PublishConfig())
    assert parsed.keys["rolling_period"].tolist() == [ROLLING_PERIOD] and parsed.keys["transmission_risk"].tolist() == [0]
    status, answer = server.post(body)
    assert status == 200 and answer["insertedExposures"] == 1
    alone = {"temporaryExposureKeys": None, "verificationPayload": "1", "checkInProtectedReports": [
        {"day": int(NOW // 86_400), "report": base64.b64encode(bytes(ProtectedReport.fake())).decode()}]}
    assert len(parse_request(json.dumps(alone).encode(), PublishConfig()).venue_reports) == 1  # check-ins alone
    body["temporaryExposureKeys"][0]["rollingStartNumber"] = None  # not optional
    with pytest.raises(PublishError, match="missing 'rollingStartNumber'"):
        parse_request(json.dumps(body).encode(), PublishConfig())


def test_an_upload_retried_many_times_is_neither_rate_limited_nor_logged_with_its_address(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A phone that keeps sending its upload again (its answer lost each time, an app's retries) got 403
    'used' ten times, each counted as a failed try of its address; the eleventh was 429 rate_limited and
    logged 'publish refused: client <address> ... over the failed-code limit': the address of somebody who
    tested positive, in the log and in the failed-tries table, which 680751d kept out of the 'used' line.
    A code this server issued is not a guess (a guess hits one as rarely as a live code): only a code
    nobody was issued counts against the address."""
    start = rolling_start(NOW) - ROLLING_PERIOD
    code = server.code()
    body = _body([(bytes(range(16)), start, ROLLING_PERIOD)], code)
    assert server.post(body)[0] == 200
    with caplog.at_level("INFO", logger="bluezone"):
        answers = [server.post(body) for _ in range(PublishConfig().max_failures_per_client + 2)]
    assert {(status, answer["code"]) for status, answer in answers} == {(403, "verification_code_used")}
    assert not any("testclient" in r.getMessage() for r in caplog.records)
    assert server.storage.count_failures(NOW - 3600) == 0


def test_a_good_code_refused_as_rate_limited_does_not_log_its_address(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A guesser behind the same NAT or /48 (or a GUESSING alarm's smaller budget) has a positive person's
    upload refused 429 before its code is read: 'publish refused: client <address> ...' tied that person's
    address to an upload.  The guesses themselves still name it."""
    start = rolling_start(NOW) - ROLLING_PERIOD
    good = server.code()
    with caplog.at_level("INFO", logger="bluezone"):
        guesses = [server.post(_body([(bytes(range(16)), start, ROLLING_PERIOD)], "1" * 16))[0]
                   for _ in range(PublishConfig().max_failures_per_client)]
    assert set(guesses) == {403} and any("testclient" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("INFO", logger="bluezone"):
        status, answer = server.post(_body([(bytes(range(16)), start, ROLLING_PERIOD)], good))
    assert (status, answer["code"]) == (429, "rate_limited")
    refused = [r.getMessage() for r in caplog.records]
    assert any("over the failed-code limit" in line for line in refused), refused
    assert not any("testclient" in line for line in refused), refused


def test_no_page_loads_third_party_javascript_unless_asked(tmp_path: Path) -> None:
    """FastAPI's /docs and /redoc pages load swagger-ui/redoc from cdn.jsdelivr.net into the key server's
    origin, where /v1/publish is: a compromised CDN could script against the API.  Neither is served by
    default; ``docs=True`` (``server run --docs``) serves /docs; the spec stays at /openapi.json."""
    from fastapi.testclient import TestClient

    from bluezone.server.app import create_app
    from bluezone.server.codes import CodeKey
    from bluezone.server.storage import open_storage

    storage = open_storage(tmp_path / "server.db")
    try:
        plain = TestClient(create_app(storage, code_key=CodeKey(bytes(32))))
        assert plain.get("/docs").status_code == 404 and plain.get("/redoc").status_code == 404
        assert "/v1/publish" in plain.get("/openapi.json").json()["paths"]
        asked = TestClient(create_app(storage, code_key=CodeKey(bytes(32)), docs=True))
        assert asked.get("/docs").status_code == 200 and "swagger-ui" in asked.get("/docs").text
    finally:
        storage.close()


@pytest.mark.parametrize("flag, docs", [([], None), (["--docs"], "/docs")])
def test_server_run_serves_docs_only_with_the_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: list[str], docs: str | None) -> None:
    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.server import serve
    from bluezone.server.signing import keygen

    served: list = []
    monkeypatch.setattr(serve, "serve", lambda app, *args: served.append(app))  # started, then stopped at once
    keygen(tmp_path / "keys")
    result = CliRunner().invoke(cli, ["server", "run", "--server-db", str(tmp_path / "s.db"), "--signing-key-dir",
                                      str(tmp_path / "keys"), "--export-every", "0", *flag])
    assert result.exit_code == 0, result.output
    assert served[0].docs_url == docs and served[0].redoc_url is None and served[0].openapi_url == "/openapi.json"
