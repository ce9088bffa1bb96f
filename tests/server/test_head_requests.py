"""Every ``GET`` of the key server answers ``HEAD`` too, as HTTP requires of a server (RFC 9110, 9.1).

FastAPI's routes answered ``HEAD`` with 405: an uptime monitor that checks with ``HEAD`` (UptimeRobot's
default) saw ``/healthz`` down for good, and ``curl -I`` or a CDN's revalidation of an export file were refused.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from server_helpers import Server, f0_keys


@pytest.fixture
def server(tmp_path: Path):
    s = Server(tmp_path)
    keys = [{"key": base64.b64encode(k.key).decode(), "rollingStartNumber": k.rolling_start} for k in f0_keys(s.clock.now(), 3)[:-1]]
    assert s.post({"temporaryExposureKeys": keys, "verificationPayload": s.code(test_type="confirmed")})[0] == 200
    s.export()
    yield s
    s.storage.close()


def test_head_answers_as_get_does_without_a_body(server: Server) -> None:
    index = server.http.get("/v1/exports/index.txt")
    names = index.text.split()
    assert names  # a real export to ask about
    for path in ["/healthz", "/readyz", "/v1/signing-key", "/openapi.json", "/v1/exports/index.txt", f"/v1/exports/{names[0]}",
                 "/v1/exports/nosuch.zip"]:
        got, head = server.http.get(path), server.http.head(path)
        assert head.status_code == got.status_code, path
        assert head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path
        assert int(head.headers["content-length"]) == len(got.content), path


def test_other_methods_are_still_refused(server: Server) -> None:
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        assert server.http.request(method, "/healthz").status_code == 405
