"""What an upload's "next:" lines say, for what the server says the code is for: they told every F0 to keep
the device and upload again "if a 'likely' code", a confirmed test's F0 too (note27), and a close contact
(recursive) nothing of the later test that revises its keys."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest
from server_helpers import NOW, Server, make_nodes

from bluezone.client.keyserver import KeyServerClient
from bluezone.client.uploading import code_type_for, upload_own_keys, what_next
from bluezone.errors import KeyServerError, UploadRefusedError
from bluezone.proximity.store import SightingStore

PUBLISHED = "next: published at the server's next export; people near you are warned when they next check"


@pytest.fixture
def server(tmp_path: Path):
    s = Server(tmp_path)
    yield s
    s.storage.close()


def _upload(server: Server, db: Path, test_type: str) -> list[str]:
    """An upload of node ``db``'s keys with a code of ``test_type``, as `bluezone upload` asks and tells."""
    exposed = dt.datetime.fromtimestamp(NOW, dt.UTC).date() - dt.timedelta(days=3)
    code = server.code(test_type=test_type, **({"exposure_date": exposed} if test_type == "recursive" else {}))
    kind = code_type_for(server.client, code, checkins=False)
    with SightingStore.open(db, create=False) as store:
        result = upload_own_keys(store, server.client, code, server.clock.now(), include_today=False,
                                 exposure_date=exposed if test_type == "recursive" else None)
    return what_next(result.receipt, kind)


def test_a_confirmed_tests_upload_is_told_nothing_more_to_do(server: Server, tmp_path: Path) -> None:
    _, nodes = make_nodes(tmp_path)
    assert _upload(server, nodes["a"], "confirmed") == [PUBLISHED]


def test_a_likely_code_is_told_to_keep_the_device_and_upload_the_test(server: Server, tmp_path: Path) -> None:
    _, nodes = make_nodes(tmp_path)
    assert _upload(server, nodes["a"], "likely") == [
        PUBLISHED,
        "  (a 'likely' code, no test yet: keep this device and its database, and upload again with the confirmed code"
        " when you get it; a negative test's code withdraws your keys' warning)",
    ]
    server.clock.advance(3600)  # the test is negative: the warning is withdrawn, and nothing is left to do
    assert _upload(server, nodes["a"], "negative") == [
        "next: your keys' warning is withdrawn at the server's next export; people near you learn of it when they"
        " next check"
    ]


def test_a_close_contact_is_told_a_later_test_revises_its_warnings(server: Server, tmp_path: Path) -> None:
    _, nodes = make_nodes(tmp_path)
    lines = _upload(server, nodes["a"], "recursive")
    assert lines[0] == PUBLISHED and "'likely'" not in "".join(lines), lines
    assert lines[1] == (
        "  (a close contact's code: keep this device and its database, and if you are diagnosed or tested later,"
        " upload again with that code: the warnings of those you met are updated, or withdrawn by a negative test)"
    )
    server.clock.advance(3600)  # diagnosed 'likely': its keys revised (and older ones sent), the test still to come
    lines = _upload(server, nodes["a"], "likely")
    assert lines[1].startswith("  (a 'likely' code, no test yet: keep this device"), lines


def _answering(status: int) -> KeyServerClient:
    def answer(request: httpx.Request) -> httpx.Response:
        if not status:
            raise httpx.ConnectError("Connection refused", request=request)
        return httpx.Response(status, json={})

    return KeyServerClient("http://keys.test", http=httpx.Client(transport=httpx.MockTransport(answer)))


def test_a_server_that_cannot_say_gets_the_likely_advice_as_an_if() -> None:
    """An older server (no /v1/verify), or one failing to say when only the advice depends on it: the upload
    goes on (it did not ask before), and the advice is hedged; with check-ins to send, or no server reached
    (the upload would wait for it again), the failure stands."""
    assert code_type_for(_answering(404), "12345678", checkins=True) is None
    assert code_type_for(_answering(500), "12345678", checkins=False) is None
    with pytest.raises(KeyServerError):
        code_type_for(_answering(500), "12345678", checkins=True)
    with pytest.raises(KeyServerError, match="cannot reach the key server"):  # not reached: nor would the upload be
        code_type_for(_answering(0), "12345678", checkins=False)
    lines = what_next(_receipt(inserted=5), None)
    assert lines[0] == PUBLISHED and lines[1].startswith("  (if the code was a 'likely' one, no test yet: keep"), lines


@pytest.mark.parametrize("test_type", ["likely", "confirmed", None])
def test_check_ins_alone_are_not_told_to_upload_again(test_type: str | None) -> None:
    """A device that never ran `bluezone run` sends its check-ins alone: no keys on the server for a later code
    to revise, so no 'upload again with the confirmed code' (a check-in is never sent twice)."""
    lines = what_next(_receipt(checkins=2), test_type)
    assert lines[0] == (
        "next: published at the server's next export; those at the venues you sent are warned when they next check"
    )
    assert lines[1:] == (
        ["  (check-ins are not revised: their warning stays published 14 days whatever your test says)"]
        if test_type == "likely" else []
    )


def test_a_refused_code_is_refused_before_the_upload(server: Server, tmp_path: Path) -> None:
    """Only a failure to say is passed over: a code the server refuses is the upload's own refusal, exit 2."""
    _, nodes = make_nodes(tmp_path)
    code = server.code(test_type="confirmed")
    with SightingStore.open(nodes["a"], create=False) as store:
        upload_own_keys(store, server.client, code, NOW, include_today=False)  # the code used up
    with pytest.raises(UploadRefusedError, match="already used"):
        code_type_for(server.client, code, checkins=False)


def _receipt(inserted: int = 0, revised: int = 0, checkins: int = 0):
    from bluezone.client.keyserver import PublishReceipt

    return PublishReceipt(inserted, revised, None, checkins)
