"""``/v1/publish`` and ``/v1/verify`` take JSON sent as JSON only (``Content-Type: application/json``).

A web page can make every browser that visits it POST a ``text/plain`` body to another site without asking
it first (a CORS "simple request"; ``application/json`` needs a preflight, which this server refuses).  The
server read such a body as JSON all the same: any page could make its visitors guess codes for it, each
from an address of its own (a botnet for the price of a web page; a hit publishes the page's keys, no answer
needs reading), and spend the failed tries of the visitors' own addresses, so that somebody behind the same
carrier NAT who tested positive was refused ``429``.  Now such a body is refused ``415`` unread: no try
spent, the code left as it was.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from server_helpers import NOW, Server

from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.server.codes import code_mistake

YESTERDAY = rolling_start(NOW) - ROLLING_PERIOD


@pytest.fixture
def server(tmp_path: Path):
    s = Server(tmp_path)
    yield s
    s.storage.close()


def _body(code: str) -> str:
    key = {"key": base64.b64encode(b"\x42" * 16).decode(), "rollingStartNumber": YESTERDAY, "rollingPeriod": ROLLING_PERIOD}
    return json.dumps({"temporaryExposureKeys": [key], "verificationPayload": code})


def _wrong(good: str) -> str:
    return next(c for c in (f"{int(good) + i:0{len(good)}d}" for i in range(1, 100)) if code_mistake(c) is None)


@pytest.mark.parametrize("path", ["/v1/publish", "/v1/verify"])
@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_a_body_not_sent_as_json_is_refused_and_spends_nothing(server: Server, path: str, content_type: str | None) -> None:
    good = server.code(test_type="confirmed")
    headers = {} if content_type is None else {"content-type": content_type}
    for _ in range(12):  # past the 10 failed tries of one client
        r = server.http.post(path, content=_body(_wrong(good)), headers=headers)
        assert (r.status_code, r.json()["code"]) == (415, "unsupported_media_type")
        assert "application/json" in r.json()["error"]
    r = server.http.post(path, content=_body(good), headers=headers)
    assert r.status_code == 415  # a good code too: refused unread, not used up
    r = server.http.post(path, content=_body(good), headers={"content-type": "application/json"})
    assert r.status_code == 200  # not rate limited, the code unused


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_json_is_taken_with_its_parameters_and_in_any_case(server: Server, content_type: str) -> None:
    r = server.http.post("/v1/publish", content=_body(server.code(test_type="confirmed")), headers={"content-type": content_type})
    assert r.status_code == 200 and r.json()["insertedExposures"] == 1


def test_the_openapi_spec_names_the_refusal(server: Server) -> None:
    spec = server.http.get("/openapi.json").json()
    for path in ("/v1/publish", "/v1/verify"):
        assert "415" in spec["paths"][path]["post"]["responses"]
