"""A node pins a server's signing key only once the key has verified a file (or the server announces
the same key and lists nothing yet): a first check with a wrong ``--server-key`` pinned it, and every
later check, with the right key too, was refused (last session's note)."""

from __future__ import annotations

from pathlib import Path

import pytest
from server_helpers import NOW, Server, check_node, make_nodes

from bluezone.client.pinning import PinnedKey
from bluezone.client.state import ServerState
from bluezone.client.uploading import keys_to_upload
from bluezone.errors import RejectedBatchesError, ServerKeyChangedError
from bluezone.proximity.store import SightingStore
from bluezone.server.exports import ExportConfig, export_batches
from bluezone.server.signing import Signer, keygen


@pytest.fixture
def server(tmp_path: Path) -> Server:
    s = Server(tmp_path)
    yield s
    s.storage.close()


def _pinned(db: Path, server: Server) -> PinnedKey | None:
    with SightingStore.open(db, create=False) as store:
        return ServerState(store).pinned(server.client.base_url)


def _publish_and_export(server: Server, nodes: dict, signer: Signer | None = None) -> None:
    """Node a's keys uploaded and exported, signed by the server's key or ``signer``."""
    with SightingStore.open(nodes["a"], create=False) as a:
        keys = keys_to_upload(a.daily_keys(), NOW, include_today=False)
    server.client.publish(keys, server.code(test_type="confirmed"))
    export_batches(server.storage, signer or server.signer, server.exports, NOW, ExportConfig())


def test_a_wrong_first_key_is_not_pinned_and_the_right_one_then_works(server: Server, tmp_path: Path) -> None:
    _, nodes = make_nodes(tmp_path)
    _publish_and_export(server, nodes)
    wrong = PinnedKey(keygen(tmp_path / "other").public_info()["public_key"])
    first = check_node(server, nodes["b"], server_key=wrong)
    assert first.rejected and not first.batches and not first.pinned_now
    assert _pinned(nodes["b"], server) is None
    with pytest.raises(RejectedBatchesError, match="verified none of .*not pinned"):
        first.raise_for_rejected()
    right = PinnedKey(server.signer.public_info()["public_key"])
    second = check_node(server, nodes["b"], server_key=right)  # was ServerKeyChangedError: the wrong key pinned
    assert second.pinned_now and not second.rejected and [e.score.close_contact for e in second.exposures] == [True]
    assert _pinned(nodes["b"], server) == right


def test_a_key_the_server_announces_is_pinned_though_no_file_verifies_yet(server: Server, tmp_path: Path) -> None:
    """Just after a rotation the files are still the old key's while the server announces the new one:
    the new key, announced (first use) or given, is pinned; the roll-ups bring the files under it."""
    _, nodes = make_nodes(tmp_path)
    _publish_and_export(server, nodes, signer=keygen(tmp_path / "old"))
    announced = PinnedKey(server.signer.public_info()["public_key"])
    for node, given in ((nodes["b"], None), (nodes["c"], announced)):
        result = check_node(server, node, server_key=given)
        assert result.rejected and result.pinned_now and _pinned(node, server).public_key == announced.public_key


def test_a_key_the_server_also_announces_is_pinned_before_any_file(server: Server, tmp_path: Path) -> None:
    """Given once on a first check before anything was published, the key still guards later checks
    made without --server-key: two sources agree on it."""
    _, nodes = make_nodes(tmp_path)
    right = PinnedKey(server.signer.public_info()["public_key"])
    assert check_node(server, nodes["b"], server_key=right).pinned_now
    assert _pinned(nodes["b"], server) == right


def test_a_given_key_the_server_does_not_announce_waits_for_a_file(server: Server, tmp_path: Path) -> None:
    _, nodes = make_nodes(tmp_path)
    wrong = PinnedKey(keygen(tmp_path / "other").public_info()["public_key"])
    result = check_node(server, nodes["b"], server_key=wrong)
    assert not result.pinned_now and _pinned(nodes["b"], server) is None


def test_a_wrong_key_pinned_by_an_earlier_version_is_replaced_with_repin(server: Server, tmp_path: Path) -> None:
    _, nodes = make_nodes(tmp_path)
    _publish_and_export(server, nodes)
    wrong = PinnedKey(keygen(tmp_path / "other").public_info()["public_key"])
    with SightingStore.open(nodes["b"], create=False) as store:
        ServerState(store).pin(server.client.base_url, wrong, NOW)
    right = PinnedKey(server.signer.public_info()["public_key"])
    with pytest.raises(ServerKeyChangedError, match="a wrong one.*--repin"):
        check_node(server, nodes["b"], server_key=right)
    assert check_node(server, nodes["b"], server_key=right, repin=True).pinned_now
    assert _pinned(nodes["b"], server) == right


def test_a_key_given_that_verified_nothing_is_not_traded_for_the_announced_one_on_first_use(tmp_path: Path) -> None:
    """The attack: a server that is not the health authority's (a hijacked address, a man in the middle)
    signs and announces its own key.  A first check given the authority's key rejects its files and pins
    nothing; a later check without --server-key (a cron job) trusted the announced key on first use,
    pinned it and matched the forged files (an exposure).  Before 7a6f7d6 the given key was pinned at once
    and the later check refused; now the key given before, having rejected this server's files, refuses it."""
    mitm = Server(tmp_path)  # everything it signs and announces is its own key
    try:
        _, nodes = make_nodes(tmp_path)
        _publish_and_export(mitm, nodes)
        authority = PinnedKey(keygen(tmp_path / "authority").public_info()["public_key"])
        first = check_node(mitm, nodes["b"], server_key=authority)
        assert first.rejected and not first.pinned_now
        with pytest.raises(ServerKeyChangedError, match="other than the one an earlier check verified its files with"):
            check_node(mitm, nodes["b"])  # was: the server's key pinned, 1 exposure from its files
        assert _pinned(nodes["b"], mitm) is None
    finally:
        mitm.storage.close()


def test_a_given_key_is_not_said_to_be_pinned_on_first_use(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`check --server URL --server-key FILE` (the safe way) warned "pinned ... on first use", as if the
    key given had been ignored and the server's announced one trusted (walk14; `bluezone demo` printed it
    seven times); trust on first use, without a key, still warns."""
    _, nodes = make_nodes(tmp_path)
    _publish_and_export(server, nodes)
    right = PinnedKey(server.signer.public_info()["public_key"])
    with caplog.at_level("INFO", logger="bluezone.client.check"):
        assert check_node(server, nodes["b"], server_key=right).pinned_now
    given = [r for r in caplog.records if "pinned" in r.getMessage()]
    assert [(r.levelname, "given" in r.getMessage(), "first use" in r.getMessage()) for r in given] == [
        ("INFO", True, False)
    ]
    caplog.clear()
    with caplog.at_level("INFO", logger="bluezone.client.check"):
        assert check_node(server, nodes["c"]).pinned_now
    assert [r.levelname for r in caplog.records if "on first use" in r.getMessage()] == ["WARNING"]


def _status(db: Path) -> str:
    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.clock import VirtualClock

    result = CliRunner().invoke(cli, ["status", "--db", str(db)], obj={"clock": VirtualClock(NOW)})
    assert result.exit_code == 0, result.output
    return result.output


def test_a_given_key_no_file_confirmed_yet_is_kept_for_the_next_check(tmp_path: Path) -> None:
    """A first check given the health authority's key, against a server (an impostor) that has published
    nothing yet: nothing verified, nothing rejected, and the server announces another key, so nothing
    was pinned and the key given was forgotten.  The impostor then publishes forged files, and a later
    check without --server-key (a cron job) trusted the announced key on first use and matched them.  Now
    the key given is kept, given and unconfirmed: `status` says so and the next check uses it."""
    mitm = Server(tmp_path)
    try:
        _, nodes = make_nodes(tmp_path)
        authority = PinnedKey(keygen(tmp_path / "authority").public_info()["public_key"])
        first = check_node(mitm, nodes["b"], server_key=authority)
        assert not first.pinned_now and not first.rejected and not first.batches
        said = [line for line in _status(nodes["b"]).splitlines() if line.startswith("server key ")]
        assert len(said) == 1 and mitm.client.base_url in said[0]
        assert said[0].endswith("not yet confirmed by a signed file; the next check uses it")
        _publish_and_export(mitm, nodes)  # signed with its own key, which it announces
        later = check_node(mitm, nodes["b"])  # no --server-key
        assert later.rejected and not later.batches and not later.exposures and not later.pinned_now
        assert _pinned(nodes["b"], mitm) is None
        with pytest.raises(ServerKeyChangedError, match="earlier check verified its files with"):
            check_node(mitm, nodes["b"])  # the key given rejected its files: no trust on first use after it either
    finally:
        mitm.storage.close()


def test_a_kept_given_key_is_pinned_once_a_file_verifies_with_it(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The right key given before anything was published, to a server that announces none (exports from a
    static host): kept; the next check, without --server-key, verifies the first file with it and pins it,
    and `status` no longer lists it as unconfirmed."""
    from bluezone.errors import KeyServerError

    def no_key() -> PinnedKey:
        raise KeyServerError("no signing-key endpoint", "not_found", 404)

    monkeypatch.setattr(server.client, "signing_key", no_key)
    _, nodes = make_nodes(tmp_path)
    right = PinnedKey(server.signer.public_info()["public_key"])
    assert not check_node(server, nodes["b"], server_key=right).pinned_now
    assert "not yet confirmed" in _status(nodes["b"])
    _publish_and_export(server, nodes)
    later = check_node(server, nodes["b"])  # was: KeyServerError, a static host serves no key to trust on first use
    assert later.pinned_now and [e.score.close_contact for e in later.exposures] == [True]
    assert _pinned(nodes["b"], server) == right and "not yet confirmed" not in _status(nodes["b"])
