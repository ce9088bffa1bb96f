"""``upload`` on a store with nothing to send said "... in this database: nothing to upload": with no
--db, the user could not tell which database was read (the default one, while the keys were in
another), nor how to point at another; ``check`` and ``status`` name it.  Now upload does too."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.clock import VirtualClock
from bluezone.proximity.store import SightingStore, default_db_path

NOW = 1_764_000_000.0 + 12 * 3600  # midday UTC


def _upload(*extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["upload", "--server", "http://127.0.0.1:9", "--code", "12345678", "--yes", *extra],
        obj={"clock": VirtualClock(NOW)},
    )
    return result.exit_code, result.output


def test_an_empty_default_store_is_named_with_how_to_read_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    default = default_db_path()
    default.parent.mkdir(parents=True)
    with SightingStore.open(default, purge_now=NOW):
        pass  # created, empty: a daemon that never ran here
    before = default.read_bytes()
    rc, out = _upload()
    assert rc == 2
    assert out == (
        f"Error: no daily keys and no check-ins of the last 14 days in {default}: nothing to upload"
        " (to read another database: --db PATH)\n"
    )
    assert default.read_bytes() == before  # nothing written to it


def test_a_store_given_with_db_is_named_as_given(tmp_path: Path) -> None:
    db = tmp_path / "phone.db"
    with SightingStore.open(db, purge_now=NOW):
        pass
    rc, out = _upload("--db", str(db), "--no-checkins")
    assert rc == 2 and f"no daily keys of the last 14 days in {db}: nothing to upload" in out
