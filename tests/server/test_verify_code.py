"""``POST /v1/verify``: what a code is for, the code left unused, so that a node sends check-ins only with a
positive test's code (a negative test's upload sent them: the server kept none, but saw each venue's hash)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from pathlib import Path

import httpx
import pytest
from server_helpers import JSON_HEADERS, NOW, Server

from bluezone.client.keyserver import KeyServerClient
from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.errors import UploadRefusedError
from bluezone.server.codes import code_mistake

YESTERDAY = rolling_start(NOW) - ROLLING_PERIOD


@pytest.fixture
def server(tmp_path: Path):
    s = Server(tmp_path)
    yield s
    s.storage.close()


def _code(server: Server, test_type: str) -> str:
    if test_type == "recursive":  # exposed three days ago: yesterday's key may go
        return server.code(test_type=test_type, exposure_date=dt.datetime.fromtimestamp(NOW, dt.UTC).date() - dt.timedelta(days=3))
    return server.code(test_type=test_type)


def _upload(server: Server, code: str, key: bytes = b"\x31" * 16) -> int:
    entry = {"key": base64.b64encode(key).decode(), "rollingStartNumber": YESTERDAY, "rollingPeriod": ROLLING_PERIOD}
    return server.post({"temporaryExposureKeys": [entry], "verificationPayload": code})[0]


def _verify(server: Server, code: str) -> tuple[int, dict]:
    r = server.http.post("/v1/verify", content=json.dumps({"verificationPayload": code}), headers=JSON_HEADERS)
    return r.status_code, r.json()


@pytest.mark.parametrize("test_type", ["confirmed", "likely", "negative", "recursive"])
def test_a_code_says_what_it_is_for_and_stays_unused(server: Server, test_type: str) -> None:
    code = _code(server, test_type)
    assert _verify(server, code) == (200, {"testType": test_type})
    assert _verify(server, code) == (200, {"testType": test_type})  # asked again: still unused
    assert _upload(server, code) == 200  # and the upload takes it
    assert _verify(server, code)[1]["code"] == "verification_code_used"


def test_a_wrong_code_is_refused_as_an_upload_would_be_and_counts_as_a_guess(server: Server) -> None:
    """No cheaper oracle than publishing: the same 403s, and a wrong code spends the client's failed tries."""
    good = server.code(test_type="confirmed")
    wrong = next(c for c in (f"{int(good) + i:0{len(good)}d}" for i in range(1, 100)) if code_mistake(c) is None)
    assert _verify(server, wrong) == (403, {"code": "verification_code_invalid", "error": "verification code is not valid"})
    mistyped = next(c for c in (good[:-1], good + "0", good[1:]) if code_mistake(c) is not None)
    assert _verify(server, mistyped)[1]["code"] == "verification_code_mistyped"  # a typo spends no try
    statuses = [_verify(server, wrong)[0] for _ in range(10)]  # max_failures_per_client: 10 an hour
    assert statuses == [403] * 9 + [429]  # the failed-try budget, as for uploads (one was spent above)
    assert _upload(server, good) == 429  # one budget for both: the good code waits too


def test_the_client_asks_and_an_older_server_says_nothing(server: Server) -> None:
    assert server.client.code_type(server.code(test_type="negative")) == "negative"
    code = server.code(test_type="likely")
    assert _upload(server, code) == 200
    with pytest.raises(UploadRefusedError, match="already used"):
        server.client.code_type(code)
    old = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(404, json={"detail": "Not Found"})))
    assert KeyServerClient("http://old.test", http=old).code_type("12345678") is None


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b'"12345678"', b"{}", b'{"verificationPayload": 12345678}',
    b'{"verificationPayload": null}', b'{"verificationPayload": "' + b"9" * 5000 + b'"}', b"\xff\xfe{",
])
def test_a_malformed_ask_is_one_clear_400_and_spends_no_code(server: Server, body: bytes) -> None:
    """Bad bodies get a 400 with a reason (no 500, no traceback), and a good code beside them stays usable."""
    code = server.code(test_type="confirmed")
    r = server.http.post("/v1/verify", content=body, headers=JSON_HEADERS)
    assert r.status_code in (400, 413) and r.json()["error"] and "Traceback" not in r.text, (body[:40], r.text)
    assert _verify(server, code) == (200, {"testType": "confirmed"})


def test_issue_code_prints_a_long_code_in_fours_that_upload_and_the_server_take_as_printed(
    server: Server, tmp_path: Path
) -> None:
    """Sixteen digits unbroken, read out over the phone, are easily lost count of: printed in groups of four,
    taken back with the spaces, or with dashes, by upload's check and by the server's verify and publish."""
    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.client.uploading import check_code
    from bluezone.clock import VirtualClock

    result = CliRunner().invoke(
        cli, ["server", "issue-code", "--server-db", str(tmp_path / "server.db"), "--signing-key-dir", str(tmp_path / "signing")],
        obj={"clock": VirtualClock(NOW)},
    )
    assert result.exit_code == 0, result.output
    printed = result.output.split("  (expires")[0]
    assert re.fullmatch(r"\d{4} \d{4} \d{4} \d{4}", printed), result.output  # was the 16 digits unbroken
    dashed = printed.replace(" ", "-")
    assert check_code(printed) == check_code(dashed) == printed.replace(" ", "")
    assert _verify(server, printed) == _verify(server, dashed) == (200, {"testType": "confirmed"})
    assert _upload(server, dashed) == 200
