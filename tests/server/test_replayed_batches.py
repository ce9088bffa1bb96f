"""A signed file listed twice, or replayed under another name, is not news.

The host the export directory is synced to (a CDN, a static host) is not trusted: that is why the
files are signed.  But a signature does not cover a file's name, so such a host could list a file
twice or serve an old one under a new name.  Each copy's keys were matched again: a check reported
the same exposure twice, and a later check reported an exposure told before as new (and the same
for venue warnings).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from server_helpers import NOW, Server, make_nodes, publish_f0_with_cafe_checkin, uploaded

from bluezone.client.check import ServerCheckResult, check_server
from bluezone.client.state import ServerState

from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.proximity.store import SightingStore
from bluezone.server.exports import INDEX_FILE
from bluezone.venues.checkins import visits



def _published(tmp_path: Path) -> tuple[Server, dict[str, Path]]:
    """F0 uploads its keys and a check-in at the café; B met F0 and was at the café at that time."""
    server = Server(tmp_path)
    _, nodes = make_nodes(tmp_path)
    publish_f0_with_cafe_checkin(server, nodes)
    return server, nodes


def _check(server: Server, db: Path) -> ServerCheckResult:
    with SightingStore.open(db, create=False) as store:
        return check_server(
            server.client, ServerState(store), now=server.clock.now(), load_visits=lambda: visits(store)
        )


def _replay(server: Server) -> None:
    """Every listed file again under another name (a later stamp), and each of those listed twice."""
    index = server.exports / INDEX_FILE
    names = index.read_text().split()
    copies = []
    for name in names:
        stamp, rest = name.split("-", 1)
        copy = f"{int(stamp) + 1}-{rest}"
        shutil.copy(server.exports / name, server.exports / copy)
        copies += [copy, copy]
    index.write_text("".join(f"{n}\n" for n in names + copies))


def test_a_file_listed_twice_is_matched_once(tmp_path: Path) -> None:
    server, nodes = _published(tmp_path)
    _replay(server)
    result = _check(server, nodes["b"])
    assert len(uploaded(result.keys, server.storage)) == 5  # not 15
    files = [b for b in server.storage.batches() if "-venues-" not in b.name]
    assert len(result.keys) == sum(b.num_keys + b.padding_keys for b in files)  # the fakes once too
    assert len(result.exposures) == 1 and len(result.venue_exposures) == 1
    assert not result.earlier and not result.earlier_venue


def test_a_file_replayed_under_a_new_name_is_not_news(tmp_path: Path) -> None:
    server, nodes = _published(tmp_path)
    first = _check(server, nodes["b"])
    assert len(first.exposures) == 1 and len(first.venue_exposures) == 1
    _replay(server)
    server.clock.advance(3600)
    again = _check(server, nodes["b"])
    assert again.new_batches > 0 and not again.rejected
    assert again.exposures == [] and again.venue_exposures == []
    assert len(again.earlier) == 1 and len(again.earlier_venue) == 1  # still told, as reported before
    assert again.earlier[0]["start"] == first.exposures[0].as_dict()["start"]


def _likely_then_negative(tmp_path: Path, forget_table: bool = False) -> tuple[Server, Path, list[str], ServerCheckResult]:
    """F0 reports likely, B is told, F0 tests negative, B hears it withdrawn; the names of the first
    batches (those carrying the likely keys) and what B was first told."""
    from bluezone.client.uploading import upload_own_keys

    server = Server(tmp_path)
    _, nodes = make_nodes(tmp_path)
    with SightingStore.open(nodes["a"], create=False) as a:
        upload_own_keys(a, server.client, server.code(test_type="likely"), NOW, include_today=False)
    likely = [b.name for b in server.export()]
    told = _check(server, nodes["b"])
    assert len(told.exposures) == 1
    if forget_table:  # a schema-6 store whose key-server tables were made on first use by a bluezone without this one
        with sqlite3.connect(nodes["b"]) as conn:
            conn.execute("DROP TABLE keyserver_withdrawn")
            conn.execute("PRAGMA user_version = 6")  # the schema-7 migration makes it
    server.clock.advance(3600)
    with SightingStore.open(nodes["a"], create=False) as a:
        upload_own_keys(a, server.client, server.code(test_type="negative"), server.clock.now(), include_today=False)
    server.export()
    withdrawn = _check(server, nodes["b"])
    assert withdrawn.exposures == [] and len(withdrawn.withdrawn) == 1 and withdrawn.earlier == []
    return server, nodes["b"], likely, told


def _serve_again(server: Server, names: list[str]) -> None:
    """The host serves these old (still validly signed) files again under new names, and nothing else."""
    index = server.exports / INDEX_FILE
    copies = []
    for name in names:
        stamp, rest = name.split("-", 1)
        copy = f"{int(stamp) + 7}-{rest}"
        shutil.copy(server.exports / name, server.exports / copy)
        copies.append(copy)
    index.write_text("".join(f"{n}\n" for n in copies))


@pytest.mark.parametrize("older_store", [False, True], ids=["store", "store-without-the-table"])
def test_a_withdrawn_exposure_stays_withdrawn_when_its_batch_is_replayed(tmp_path: Path, older_store: bool) -> None:
    # The memory of reported exposures deleted a withdrawn one; the old likely batch, served again
    # under another name, then matched and was reported as a new exposure.
    server, db, likely, _ = _likely_then_negative(tmp_path, forget_table=older_store)
    _serve_again(server, likely)
    server.clock.advance(3600)
    replayed = _check(server, db)
    assert replayed.new_batches == len(likely) and not replayed.rejected and len(uploaded(replayed.keys, server.storage)) == 5
    assert replayed.exposures == [] and replayed.earlier == [] and replayed.withdrawn == []


def test_what_was_withdrawn_is_kept_as_key_and_day_and_purged_with_the_retention(tmp_path: Path) -> None:
    server, db, _, told = _likely_then_negative(tmp_path)
    with SightingStore.open(db, create=False) as store:
        rows = store.db.conn.execute("SELECT * FROM keyserver_withdrawn").fetchall()
        assert len(rows) == 1 and rows[0][2] == told.exposures[0].date and len(rows[0][1]) == 32  # no sighting, no time
        store.purge(told.exposures[0].end + 14 * DAY_SECONDS)  # the day is still within the 14 days
        assert store.db.conn.execute("SELECT COUNT(*) FROM keyserver_withdrawn").fetchone()[0] == 1
        store.purge(told.exposures[0].end + 15 * DAY_SECONDS)
        assert store.db.conn.execute("SELECT COUNT(*) FROM keyserver_withdrawn").fetchone()[0] == 0
