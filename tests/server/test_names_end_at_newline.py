"""A name checked by a regex ends where the name ends, not before a trailing newline.

The checks were ``re.match`` with ``$``, which also matches before a final ``\\n``: ``GET /v1/exports/a.zip%0A``
passed the export-name check (and served a file of that name planted in the export folder, one the exporter never
wrote), ``--region 'VN\\n'`` passed into every signed export.bin, and a venue file's or batch's name with a newline
was taken as one.  Each is a ``fullmatch`` now.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from server_helpers import Server

from bluezone.errors import InputError
from bluezone.keyformat.batch_names import EXPORT_FILE, ROLLUP_FILE
from bluezone.keyformat.venue_export import is_venue_file
from bluezone.server.exports import ExportConfig


def test_an_export_name_with_a_trailing_newline_is_not_served(tmp_path: Path) -> None:
    server = Server(tmp_path)
    try:
        server.exports.mkdir(parents=True, exist_ok=True)
        (server.exports / "a.zip").write_bytes(b"zip")
        (server.exports / "a.zip\n").write_bytes(b"planted")
        assert server.http.get("/v1/exports/a.zip").content == b"zip"
        r = server.http.get("/v1/exports/a.zip%0A")
        assert r.status_code == 404 and r.json()["code"] == "not_found", r.content
    finally:
        server.storage.close()


def test_a_region_with_a_trailing_newline_is_refused() -> None:
    assert ExportConfig(region="VN").region == "VN"
    with pytest.raises(InputError, match="region"):
        ExportConfig(region="VN\n")


@given(st.text(alphabet="0123456789abcdefvenusdayx-.zip\n", max_size=60))
def test_no_batch_name_taken_ends_in_a_newline(name: str) -> None:
    taken = is_venue_file(name) or EXPORT_FILE.fullmatch(name) or ROLLUP_FILE.fullmatch(name)
    assert not (taken and name.endswith("\n"))
    for good in ("1763640000-venues-a1b2c3-0012.zip", "1763640000-1763424000-a1b2c3-0001.zip"):
        assert (is_venue_file(good) or EXPORT_FILE.fullmatch(good)) and not is_venue_file(good + "\n")
