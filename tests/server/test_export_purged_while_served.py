"""An export file purged (``remove_stale_files``, another process's export) while a phone downloads it is sent whole
or is a 404, never a 500.  The route checked ``is_file()``, then Starlette's FileResponse stat'ed the path again and
opened it by name after sending its headers: purged between the check and the stat it raised RuntimeError (a 500
and a traceback), between the stat and the open it cut off a 200.  Here the purge comes right after the server's
first look at the file, whichever call makes it."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from server_helpers import Server, f0_keys
from starlette.testclient import TestClient


def _exported(tmp_path: Path) -> tuple[Server, Path]:
    s = Server(tmp_path)
    keys = [{"key": base64.b64encode(k.key).decode(), "rollingStartNumber": k.rolling_start} for k in f0_keys(s.clock.now(), 3)[:-1]]
    assert s.post({"temporaryExposureKeys": keys, "verificationPayload": s.code(test_type="confirmed")})[0] == 200
    s.export()
    name = s.http.get("/v1/exports/index.txt").text.split()[0]
    return s, s.exports / name


def test_an_export_purged_right_after_the_server_looked_at_it_is_sent_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, path = _exported(tmp_path)
    try:
        body = path.read_bytes()
        looked_at = os.stat(path)
        purged: list[str] = []

        def purging_after(real: Any) -> Any:
            def look(*args: Any, **kwargs: Any) -> os.stat_result:
                found = real(*args, **kwargs)
                same = stat.S_ISREG(found.st_mode) and (found.st_dev, found.st_ino) == (looked_at.st_dev, looked_at.st_ino)
                if same and not purged:
                    path.unlink()  # the purge, between the server's look and what it sends
                    purged.append(path.name)
                return found
            return look

        monkeypatch.setattr(os, "stat", purging_after(os.stat))
        monkeypatch.setattr(os, "fstat", purging_after(os.fstat))
        r = TestClient(server.app, raise_server_exceptions=False).get(f"/v1/exports/{path.name}")
        monkeypatch.undo()
        assert purged and not path.exists()
        assert r.status_code == 200, r.text  # was a 500 (RuntimeError: File at path ... does not exist.)
        assert r.content == body and int(r.headers["content-length"]) == len(body)
        # purged before it: a 404, as any name not (or no longer) exported
        r = server.http.get(f"/v1/exports/{path.name}")
        assert r.status_code == 404 and r.json()["code"] == "not_found"
    finally:
        server.storage.close()
