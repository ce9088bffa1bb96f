"""Every ``GET`` of the key server answers ``HEAD`` too, as HTTP requires of a server (RFC 9110, 9.1).

FastAPI's routes answered ``HEAD`` with 405: an uptime monitor that checks with ``HEAD`` (UptimeRobot's
default) saw ``/healthz`` down for good, and ``curl -I`` or a CDN's revalidation of an export file were refused.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import BinaryIO

import pytest
from server_helpers import Server, f0_keys

from bluezone.server import app as app_module


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


class CountedReads:
    """An open export file that counts the bytes read from it."""

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.bytes_read = file, 0

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        self.file.close()

    @property
    def closed(self) -> bool:
        return self.file.closed

    def __enter__(self) -> CountedReads:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_head_on_an_export_reads_none_of_it(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """HEAD ran the GET and threw its body away: since the zips are streamed from one open descriptor (4c2cc55),
    a HEAD on a large export read the whole file from disk, and a monitor or CDN asking often read it each time."""
    size = 3 << 20
    (server.exports / "big.zip").write_bytes(bytes(range(256)) * (size // 256))
    opened: list[CountedReads] = []

    def counted(path: Path) -> tuple[CountedReads, int] | None:
        found = real(path)
        if found is None:
            return None
        opened.append(CountedReads(found[0]))
        return opened[-1], found[1]

    real = app_module._open_export
    monkeypatch.setattr(app_module, "_open_export", counted)
    head = server.http.head("/v1/exports/big.zip")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == size and head.headers["content-type"] == "application/zip"
    assert [f.bytes_read for f in opened] == [0] and opened[0].closed  # not read, and not left open
    got = server.http.get("/v1/exports/big.zip")
    assert len(got.content) == size and opened[1].bytes_read == size and opened[1].closed


def test_head_on_the_index_reads_none_of_it(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """HEAD on index.txt ran the GET, which reads the whole index (up to a MiB at national scale without roll-ups),
    and threw it away: a CDN revalidating the index, or a monitor asking often, read it each time."""
    index = server.exports / "index.txt"
    index.write_text(index.read_text() + "".join(f"{n:014d}-{n + 1:014d}.zip\n" for n in range(20_000)))
    reads: list[Path] = []
    real = app_module._read_index
    monkeypatch.setattr(app_module, "_read_index", lambda path: reads.append(path) or real(path))
    head = server.http.head("/v1/exports/index.txt")
    assert head.status_code == 200 and head.content == b"" and reads == []
    got = server.http.get("/v1/exports/index.txt")
    assert len(reads) == 1 and int(head.headers["content-length"]) == len(got.content) == index.stat().st_size
    assert head.headers["content-type"] == got.headers["content-type"]
    index.unlink()  # before the first export: an empty index, as the GET sends
    assert server.http.head("/v1/exports/index.txt").headers["content-length"] == "0" == str(len(
        server.http.get("/v1/exports/index.txt").content))
