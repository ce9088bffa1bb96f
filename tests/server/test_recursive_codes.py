"""Recursive codes (a close contact, F1, of a case): issuing limits, upload limits, and that a
recursive upload can never be replayed or passed off as a confirmed one."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from server_helpers import JSON_HEADERS, NOW
from starlette.testclient import TestClient

from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.errors import InputError
from bluezone.server.app import create_app
from bluezone.server.codes import CodeKey, CodeLimitError, issue_code
from bluezone.server.publish import PublishConfig
from bluezone.server.signing import keygen
from bluezone.server.storage import SQLiteStorage

URL = "http://keys.test"
TODAY = dt.datetime.fromtimestamp(NOW, dt.UTC).date()
DAY = rolling_start(NOW)


class Server:
    def __init__(self, tmp: Path, config: PublishConfig = PublishConfig()) -> None:
        self.clock = VirtualClock(NOW)
        self.storage = SQLiteStorage(tmp / "server.db")
        self.signer = keygen(tmp / "signing")
        self.code_key = CodeKey.load(tmp / "signing")
        app = create_app(self.storage, code_key=self.code_key, export_dir=tmp / "exports", signer=self.signer,
                         clock=self.clock, publish_config=config)
        self.http = TestClient(app, base_url=URL)

    def code(self, **kw: object) -> str:
        return issue_code(self.storage, self.clock.now(), key=self.code_key, **kw).code  # type: ignore[arg-type]

    def recursive(self, days_ago: int = 3) -> str:
        return self.code(test_type="recursive", exposure_date=TODAY - dt.timedelta(days=days_ago))

    def post(self, keys: list[tuple[bytes, int]], code: str, token: str | None = None) -> tuple[int, dict]:
        body = {
            "temporaryExposureKeys": [
                {"key": base64.b64encode(k).decode(), "rollingStartNumber": s, "rollingPeriod": ROLLING_PERIOD}
                for k, s in keys
            ],
            "verificationPayload": code,
            **({"revisionToken": token} if token else {}),
        }
        r = self.http.post("/v1/publish", content=json.dumps(body), headers=JSON_HEADERS)
        return r.status_code, r.json()

    def stored_types(self) -> list[int]:
        rows = self.storage._conn.execute(  # type: ignore[attr-defined]
            "SELECT COALESCE(revised_report_type, report_type) FROM exposure_keys ORDER BY rolling_start"
        ).fetchall()
        return [int(r[0]) for r in rows]


@pytest.fixture
def server(tmp_path: Path):
    s = Server(tmp_path)
    yield s
    s.storage.close()


def f1_keys(days: int = 3) -> list[tuple[bytes, int]]:
    """The keys of the last ``days`` days before today."""
    return [(bytes([d + 1]) * 16, DAY - d * ROLLING_PERIOD) for d in range(days, 0, -1)]


def test_a_recursive_code_needs_an_exposure_date_within_14_days(server: Server) -> None:
    with pytest.raises(InputError, match="--exposure-date"):
        server.code(test_type="recursive")
    with pytest.raises(InputError, match="not --test-date"):
        server.code(test_type="recursive", exposure_date=TODAY, test_date=TODAY)
    with pytest.raises(InputError, match="last 14 days"):
        server.code(test_type="recursive", exposure_date=TODAY - dt.timedelta(days=15))
    with pytest.raises(InputError, match="only with a recursive code"):
        server.code(test_type="confirmed", exposure_date=TODAY)


def test_recursive_codes_per_day_are_limited(server: Server) -> None:
    for _ in range(3):
        issue_code(server.storage, NOW, key=server.code_key, test_type="recursive", exposure_date=TODAY,
                   max_recursive_per_day=3)
    with pytest.raises(CodeLimitError, match="3 recursive codes"):
        issue_code(server.storage, NOW, key=server.code_key, test_type="recursive", exposure_date=TODAY,
                   max_recursive_per_day=3)
    server.code(test_type="confirmed")  # other codes are not limited
    issue_code(server.storage, NOW + 86401, key=server.code_key, test_type="recursive", exposure_date=TODAY,
               max_recursive_per_day=3)  # a day later


def test_recursive_upload_stores_report_type_4_from_the_exposure_day_only(server: Server) -> None:
    status, doc = server.post(f1_keys(5), server.recursive(days_ago=3))
    assert (status, doc["code"]) == (400, "key_before_exposure")
    assert "--exposure-date" in doc["error"] and server.stored_types() == []  # nothing stored
    status, doc = server.post(f1_keys(3), server.recursive(days_ago=3))
    assert (status, doc["insertedExposures"]) == (200, 3)
    assert server.stored_types() == [4, 4, 4]


def test_recursive_uploads_hold_few_keys_and_are_rate_limited(tmp_path: Path) -> None:
    s = Server(tmp_path, PublishConfig(max_recursive_keys=2, max_recursive_per_hour=2))
    status, doc = s.post(f1_keys(3), s.recursive())
    assert (status, doc["code"]) == (400, "too_many_keys")
    for i in range(2):
        assert s.post([(bytes([50 + i]) * 16, DAY - ROLLING_PERIOD)], s.recursive())[0] == 200
    waiting = s.recursive()
    status, doc = s.post([(b"\x60" * 16, DAY - ROLLING_PERIOD)], waiting)
    assert (status, doc["code"]) == (429, "rate_limited")
    assert s.post([(b"\x61" * 16, DAY - ROLLING_PERIOD)], s.code(test_type="confirmed"))[0] == 200  # F0s go on
    s.clock.advance(3601)
    assert s.post([(b"\x60" * 16, DAY - ROLLING_PERIOD)], waiting)[0] == 200  # the code was not burned
    s.storage.close()


def test_a_recursive_upload_cannot_be_replayed_as_a_confirmed_one(server: Server) -> None:
    keys = f1_keys(3)
    code = server.recursive()
    status, first = server.post(keys, code)
    assert status == 200
    # the same request again (a replay): its code is spent
    status, doc = server.post(keys, code)
    assert (status, doc["code"]) == (403, "verification_code_used")
    status, doc = server.post(keys, code, token=first["revisionToken"])
    assert (status, doc["code"]) == (403, "verification_code_used")
    # whoever copied the keys (from an export) with a real confirmed code but no token: refused, nothing changes
    status, doc = server.post(keys, server.code(test_type="confirmed"))
    assert (status, doc["code"]) == (400, "missing_revision_token")
    status, doc = server.post(keys, server.code(test_type="confirmed"), token="y" * 43)
    assert (status, doc["code"]) == (400, "invalid_revision_token")
    # another recursive code cannot upgrade either: the type stays recursive
    status, doc = server.post(keys, server.recursive(), token=first["revisionToken"])
    assert (status, doc["revisedExposures"]) == (200, 0)
    assert server.stored_types() == [4, 4, 4]
    # the F1's own device, its token and a confirmed code (it tested positive): revised, once
    status, doc = server.post(keys, server.code(test_type="confirmed"), token=first["revisionToken"])
    assert (status, doc["revisedExposures"]) == (200, 3)
    assert server.stored_types() == [1, 1, 1]
    status, doc = server.post(keys, server.code(test_type="negative"), token=first["revisionToken"])
    assert (status, doc["code"]) == (400, "key_already_revised")


def test_the_same_recursive_code_twice_is_refused(server: Server) -> None:
    code = server.recursive()
    assert server.post(f1_keys(2), code)[0] == 200
    status, doc = server.post([(b"\x77" * 16, DAY - ROLLING_PERIOD)], code)
    assert (status, doc["code"]) == (403, "verification_code_used")


def test_a_negative_f1_revokes_its_recursive_keys(server: Server) -> None:
    keys = f1_keys(2)
    _, first = server.post(keys, server.recursive())
    status, doc = server.post(keys, server.code(test_type="negative"), token=first["revisionToken"])
    assert (status, doc["revisedExposures"]) == (200, 2)
    assert server.stored_types() == [5, 5]
