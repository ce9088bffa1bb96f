"""A hostile index.txt: thousands of listed files, none of them good.

index.txt is read up to 1 MiB, room for ~27,000 names, and every listed file was downloaded (up to
256 MiB, 300 s each) on every check, since a rejected file was not remembered.  One check now
fetches at most ``MAX_NEW_FILES_PER_CHECK`` new files (the rest wait for the next check, said in
one line), and a rejected file is not fetched again while it is listed (14 days), unless the node
re-pins another signing key.  The hostile server is in process (httpx's mock transport).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner
from server_helpers import NOW, Server, make_nodes

from bluezone.client import check as check_module
from bluezone.client.check import ServerCheckResult, check_server
from bluezone.client.pinning import PinnedKey
from bluezone.client.keyserver import KeyServerClient
from bluezone.client.state import ServerState
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.errors import RejectedBatchesError, ServerKeyChangedError
from bluezone.proximity.store import SightingStore
from bluezone.server.exports import INDEX_FILE
from bluezone.server.signing import keygen

CAP = 50


class Hostile:
    """A server announcing a real signing key and listing ``n`` junk files."""

    def __init__(self, tmp_path: Path, n: int) -> None:
        self.key = keygen(tmp_path / "k").public_info()
        self.index = "".join(f"{NOW:.0f}-{i:05d}.zip\n" for i in range(n)).encode()
        self.fetched: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/signing-key":
            return httpx.Response(200, json=self.key)
        if path == "/v1/exports/index.txt":
            return httpx.Response(200, content=self.index)
        self.fetched.append(path.rsplit("/", 1)[1])
        return httpx.Response(200, content=b"PK\x05\x06" + bytes(18))  # an empty zip: no export.bin

    def check(self, store: SightingStore, now: float = NOW, server_key: PinnedKey | None = None) -> ServerCheckResult:
        self.fetched.clear()
        client = KeyServerClient("http://keys.test", transport=httpx.MockTransport(self.handle), sleep=lambda s: None)
        return check_server(  # type: ignore[return-value]
            client, ServerState(store), lambda t0, t1: None, now=now, server_key=server_key,  # type: ignore[arg-type]
        )


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check_module, "MAX_NEW_FILES_PER_CHECK", CAP, raising=False)  # fails on the behaviour without the cap


def test_one_check_fetches_at_most_the_cap_and_rejected_files_are_not_fetched_again(tmp_path: Path, small_cap: None) -> None:
    server = Hostile(tmp_path, 120)
    names = server.index.decode().split()
    with SightingStore.open(tmp_path / "node.db") as store:
        first = server.check(store)
        assert server.fetched == names[:50] and list(first.rejected) == names[:50]
        assert (first.left_for_next_check, first.rejected_earlier) == (70, 0)
        second = server.check(store, NOW + 600)
        assert server.fetched == names[50:100] and (second.left_for_next_check, second.rejected_earlier) == (20, 50)
        third = server.check(store, NOW + 1200)
        assert server.fetched == names[100:] and (third.left_for_next_check, third.rejected_earlier) == (0, 100)
        fourth = server.check(store, NOW + 1800)
        assert server.fetched == [] and fourth.rejected_earlier == 120 and list(fourth.rejected) == names
        assert fourth.rejected[names[0]].endswith("(an earlier check; not fetched again)")
        assert fourth.rejected[names[0]].startswith(first.rejected[names[0]])
        with pytest.raises(RejectedBatchesError, match="^120 batch"):  # still an error while listed, in one line
            fourth.raise_for_rejected()
        assert fourth.as_dict()["rejected_earlier"] == 120 and first.as_dict()["left_for_next_check"] == 70


def test_rejected_files_are_fetched_again_after_the_retention_or_a_new_pin(tmp_path: Path, small_cap: None) -> None:
    server = Hostile(tmp_path, 3)
    with SightingStore.open(tmp_path / "node.db") as store:
        server.check(store)
        server.check(store, NOW + 600)
        assert server.fetched == []
        server.check(store, NOW + 14 * DAY_SECONDS + 60)  # the window is over: the names are forgotten
        assert len(server.fetched) == 3
        store.purge(NOW + 29 * DAY_SECONDS)
        assert store.db.conn.execute("SELECT COUNT(*) FROM keyserver_rejected").fetchone()[0] == 0
        # a new key after the pin was deleted: not taken on first use while the old one's rejections are
        # remembered (a key given, rejected, then forgotten let an impostor's key in), only when given
        server.check(store, NOW + 29 * DAY_SECONDS + 60)
        with store.db.conn:
            store.db.conn.execute("DELETE FROM keyserver_pins")
        server.key = keygen(tmp_path / "k2").public_info()
        with pytest.raises(ServerKeyChangedError, match="other than the one an earlier check verified its files with"):
            server.check(store, NOW + 29 * DAY_SECONDS + 120)
        server.check(store, NOW + 29 * DAY_SECONDS + 120, server_key=PinnedKey(server.key["public_key"]))
        assert len(server.fetched) == 3


def test_the_cap_is_said_in_one_line(tmp_path: Path, small_cap: None) -> None:
    from bluezone.matching.cli import _print_check

    server = Hostile(tmp_path, CAP + 7)
    with SightingStore.open(tmp_path / "node.db") as store:
        result = server.check(store)

    @click.command()
    def show() -> None:
        _print_check(result, gaen=True)

    lines = [line for line in CliRunner().invoke(show).output.splitlines() if "next check" in line]
    assert lines == [f"7 more new file(s) listed than one check fetches ({CAP}): the next check fetches them"]


def test_real_batches_listed_after_the_cap_are_matched_by_the_next_check(tmp_path: Path, small_cap: None) -> None:
    """The files beyond the cap are not lost: an exposure in them is reported by a later check."""
    from bluezone.client.uploading import keys_to_upload

    server = Server(tmp_path)
    _, nodes = make_nodes(tmp_path)
    with SightingStore.open(nodes["a"], create=False) as a:
        keys = keys_to_upload(a.daily_keys(), NOW, include_today=False)
    server.client.publish(keys, server.code(test_type="confirmed"))
    real = [b.name for b in server.export()]
    junk = [f"{NOW:.0f}-junk-{i:03d}.zip" for i in range(CAP + 10)]
    for name in junk:
        shutil.copy(Path(__file__).parent / "test_hostile_index.py", server.exports / name)
    (server.exports / INDEX_FILE).write_text("".join(f"{n}\n" for n in junk + real))
    with SightingStore.open(nodes["b"], create=False) as b:
        state = ServerState(b)
        first = check_server(server.client, state, now=NOW)
        assert first.exposures == [] and first.left_for_next_check == 10 + len(real) and len(first.rejected) == CAP
        second = check_server(server.client, state, now=NOW + 600)
        assert second.left_for_next_check == 0 and len(second.rejected) == CAP + 10 and second.batches == real
        assert len(second.exposures) == 1
