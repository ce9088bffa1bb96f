"""``index.txt`` is sent as it was read: its Content-Length is the length of the body sent with it.

It was a FileResponse, which stats the file and then opens it: an export renaming a new ``index.txt`` into
place between the two sent the new file under the old one's length (a node read a cut or overlong index, and
an HTTP/1.1 connection kept alive was out of step).  Here every ``stat`` and ``open`` of the index, once it
returns, has the index replaced by one of another length, so whatever the server looks at first is no longer
there when it looks again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from server_helpers import Server

from bluezone.server.exports import INDEX_FILE, PUBLIC
from bluezone.writefile import write_file


def test_the_index_length_is_its_body_while_exports_replace_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = Server(tmp_path)
    index = server.exports / INDEX_FILE
    server.exports.mkdir(parents=True, exist_ok=True)
    versions = [b"".join(b"%d-1-ab-%04d.zip\n" % (n, i) for i in range(n)) for n in range(1, 40)]
    write_file(index, versions[0], PUBLIC)
    replaced: list[int] = []
    real_stat, real_open = os.stat, os.open

    def replace_after(real: Any) -> Any:
        def call(path: Any, *args: Any, **kw: Any) -> Any:
            result = real(path, *args, **kw)
            if isinstance(path, (str, Path)) and Path(path) == index and len(replaced) < len(versions) - 1:
                replaced.append(len(replaced) + 1)
                with monkeypatch.context() as undone:  # write_file's own stat and open are not hooked
                    undone.setattr(os, "stat", real_stat)
                    undone.setattr(os, "open", real_open)
                    write_file(index, versions[replaced[-1]], PUBLIC)
            return result
        return call

    monkeypatch.setattr(os, "stat", replace_after(real_stat))
    monkeypatch.setattr(os, "open", replace_after(real_open))
    try:
        for _ in range(3):
            r = server.http.get("/v1/exports/index.txt")
            assert r.status_code == 200
            assert int(r.headers["content-length"]) == len(r.content) and r.content in versions, r.headers
        assert replaced  # the index was replaced under the server while it was served
    finally:
        server.storage.close()


def test_no_index_before_the_first_export_is_an_empty_one(tmp_path: Path) -> None:
    server = Server(tmp_path)
    try:
        r = server.http.get("/v1/exports/index.txt")
        assert r.status_code == 200 and r.content == b"" and r.headers["content-type"].startswith("text/plain")
    finally:
        server.storage.close()
