"""Two first ``check --server`` of one store at once: the later one to finish re-pinned the server's
signing key over the first one's pin without ``--repin`` (only a warning logged).  The pin is now a
compare and set: the later check sees the first one's pin and is judged against it.  Deterministic:
the second check runs whole inside the first, between its reading of the pin and its pinning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from server_helpers import Server, check_node, make_nodes

from bluezone.client.check import check_server
from bluezone.client.keyserver import KeyServerClient
from bluezone.client.pinning import PinnedKey
from bluezone.client.state import ServerState
from bluezone.client.uploading import keys_to_upload
from bluezone.errors import ServerKeyChangedError
from bluezone.proximity.store import SightingStore
from bluezone.server.exports import ExportConfig, export_batches


class _MeanwhileClient:
    """``client`` whose first index() runs ``meanwhile`` first: after the check's resolve_pin, before its pin."""

    def __init__(self, client: KeyServerClient, meanwhile: Callable[[], Any]) -> None:
        self._client, self._meanwhile = client, meanwhile

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def index(self) -> list[str]:
        meanwhile, self._meanwhile = self._meanwhile, lambda: None
        meanwhile()
        return self._client.index()


def _check_through(client: Any, server: Server, db: Path):
    """``check_node`` through ``client``."""
    with SightingStore.open(db, create=False) as store:
        return check_server(client, ServerState(store), store.sightings, now=server.clock.now())


def _published(server: Server, nodes: dict) -> Server:
    with SightingStore.open(nodes["a"], create=False) as a:
        keys = keys_to_upload(a.daily_keys(), server.clock.now(), include_today=False)
    server.client.publish(keys, server.code(test_type="confirmed"))
    export_batches(server.storage, server.signer, server.exports, server.clock.now(), ExportConfig())
    return server


def _pinned(db: Path, url: str) -> PinnedKey | None:
    with SightingStore.open(db, create=False) as store:
        return ServerState(store).pinned(url)


def _key(server: Server) -> str:
    return str(server.signer.public_info()["public_key"])


@pytest.fixture
def servers(tmp_path: Path):
    """The health authority's server and one at the same URL signing with its own key (a man in the middle
    of one connection), both with node a's keys published."""
    _, nodes = make_nodes(tmp_path)
    (tmp_path / "mitm").mkdir()
    real, mitm = Server(tmp_path), Server(tmp_path / "mitm")
    try:
        yield _published(real, nodes), _published(mitm, nodes), nodes
    finally:
        real.storage.close()
        mitm.storage.close()


def test_a_first_check_that_ends_second_does_not_re_pin_the_other_ones_key(servers) -> None:
    real, mitm, nodes = servers
    done: list = []
    racing = _MeanwhileClient(mitm.client, lambda: done.append(check_node(real, nodes["b"])))
    with pytest.raises(ServerKeyChangedError, match="another check of this store pinned a different signing key"):
        _check_through(racing, mitm, nodes["b"])
    assert done[0].pinned_now and [e.score.close_contact for e in done[0].exposures] == [True]
    assert _pinned(nodes["b"], real.client.base_url).public_key == _key(real)  # was the man in the middle's
    with SightingStore.open(nodes["b"], create=False) as store:  # the refused check remembered none of its files
        assert ServerState(store).processed(real.client.base_url) == set(done[0].batches)


def test_two_first_checks_that_pin_the_same_key_both_pass(
    servers, caplog: pytest.LogCaptureFixture
) -> None:
    real, _, nodes = servers
    done: list = []
    racing = _MeanwhileClient(real.client, lambda: done.append(check_node(real, nodes["b"])))
    with caplog.at_level("INFO", logger="bluezone.client.check"):
        later = _check_through(racing, real, nodes["b"])
    assert done[0].pinned_now and not later.pinned_now and later.batches == done[0].batches
    assert _pinned(nodes["b"], real.client.base_url).public_key == _key(real)
    assert not [r for r in caplog.records if "re-pinned" in r.getMessage()]  # was a warning: nothing changed
