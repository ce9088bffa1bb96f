"""An upload while PostgreSQL is away is ``503 {"code": "database_unavailable"}`` and one log line.

It was starlette's ``500 Internal Server Error`` in plain text and a traceback in the log for every upload and
every ``/v1/verify`` (the ``{"code", "error"}`` every other refusal has, missing); the code is not used up, and
the same upload goes through once the database is back.
"""

from __future__ import annotations

import base64
import json
import logging
import time

import psycopg
import pytest
from server_helpers import JSON_HEADERS
from starlette.testclient import TestClient

from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.server.app import create_app
from bluezone.server.codes import CodeKey, issue_code
from bluezone.server.storage import open_storage

KEY = CodeKey(bytes(32))


def _body(code: str, now: float) -> str:
    key = {"key": base64.b64encode(b"\x17" * 16).decode(), "rollingStartNumber": rolling_start(now) - ROLLING_PERIOD}
    return json.dumps({"temporaryExposureKeys": [key], "verificationPayload": code})


def test_an_upload_while_postgresql_is_away_is_503_and_goes_through_once_it_is_back(
    postgres_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    storage = open_storage(postgres_dsn)
    now = time.time()
    code = issue_code(storage, now, key=KEY, test_type="confirmed").code
    with psycopg.connect(postgres_dsn) as conn:
        dbname = conn.info.dbname
    admin_dsn = postgres_dsn.replace(f"@/{dbname}?", "@/postgres?")
    try:
        http = TestClient(create_app(storage, code_key=KEY), raise_server_exceptions=False)
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [dbname])
            try:
                for path in ("/v1/publish", "/v1/verify"):
                    r = http.post(path, content=_body(code, now), headers=JSON_HEADERS)
                    assert r.status_code == 503, (path, r.text)
                    assert r.json()["code"] == "database_unavailable" and "try again" in r.json()["error"]
                    assert "connect" not in r.json()["error"]  # the database's own words (host, role) stay in the log
            finally:
                admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]
        assert sum("database" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records) == 2
        r = http.post("/v1/publish", content=_body(code, now), headers=JSON_HEADERS)
        assert r.status_code == 200 and r.json()["insertedExposures"] == 1  # the code was not used up
    finally:
        storage.close()
