"""A broken or hostile key server: every answer it can give ends in one KeyServerError, never a
traceback, a full memory or a request outside the exports directory."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from server_helpers import NOW

from bluezone.client.check import check_server
from bluezone.client.keyserver import MAX_ANSWER_BYTES, KeyServerClient
from bluezone.client.state import ServerState
from bluezone.errors import KeyServerError
from bluezone.proximity.store import SightingStore
from bluezone.server.signing import keygen

Handler = Callable[[httpx.Request], httpx.Response]


def _server(signing_key: object, index: bytes = b"", batch: bytes = b"") -> tuple[Handler, list[str]]:
    asked: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path == "/v1/signing-key":
            return httpx.Response(200, json=signing_key)
        if request.url.path == "/v1/exports/index.txt":
            return httpx.Response(200, content=index)
        return httpx.Response(200, content=batch)

    return handle, asked


def _check(handler: Handler) -> None:
    # the client's backoff between retries of a 502 goes to its sleep seam, not time.sleep (7 s here)
    client = KeyServerClient("http://keys.test", transport=httpx.MockTransport(handler), sleep=lambda seconds: None)
    check_server(client, ServerState(SightingStore.open(":memory:")), lambda t0, t1: None, now=NOW)  # type: ignore[arg-type, return-value]


@pytest.mark.parametrize(
    "answer, message",
    [
        (httpx.Response(200, content=b"<html>hello</html>"), "not a JSON object"),
        (httpx.Response(200, json=[1, 2]), "not a JSON object"),
        (httpx.Response(200, content=b"[" * 5000 + b"]" * 5000), "not a JSON object"),  # json's RecursionError
        (httpx.Response(400, content=b"[" * 5000 + b"]" * 5000), "400"),
        (httpx.Response(200, json={"key_id": "x"}), "no public_key"),
        (httpx.Response(200, json={"public_key": 7}), "no public_key"),
        (httpx.Response(200, content=b"{" + b" " * (MAX_ANSWER_BYTES + 10) + b"}"), "larger than"),
        (httpx.Response(502, content=b"<html>bad gateway</html>"), "502"),
    ],
)
def test_bad_signing_key_answers(answer: httpx.Response, message: str) -> None:
    with pytest.raises(KeyServerError, match=message):
        _check(lambda request: answer)


def test_a_static_host_without_a_pinned_key_says_to_give_it() -> None:
    """Exports served as static files (as docs/server.md advises) have no /v1/signing-key: the first
    check said only '404 File not found (a web page ...: check the URL)', as if the URL were wrong."""
    def static_host(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/exports/index.txt":
            return httpx.Response(200, content=b"")
        return httpx.Response(404, content=b"<html>File not found</html>", headers={"content-type": "text/html"})

    with pytest.raises(KeyServerError, match="404, but exports are listed there .*give the key server's key with --server-key FILE"):
        _check(static_host)


def test_index_may_only_name_batch_files(tmp_path) -> None:
    handler, asked = _server(keygen(tmp_path / "k").public_info(), index=b"ok-1.zip\n../../v1/publish\n")
    with pytest.raises(KeyServerError, match="not a batch file name"):
        _check(handler)
    assert asked == ["/v1/signing-key", "/v1/exports/index.txt"]  # nothing fetched from the list


@pytest.mark.parametrize("name", [b"1" * 5000 + b"-venues-day3xab-0001.zip", b"a" * 300 + b".zip"])
def test_index_names_longer_than_a_file_name_are_refused(tmp_path, name: bytes) -> None:
    """A roll-up name of 5,000 digits crashed the check (int() refuses over 4,300 digits: ValueError, exit 1)."""
    handler, asked = _server(keygen(tmp_path / "k").public_info(), index=b"ok-1.zip\n" + name + b"\n")
    with pytest.raises(KeyServerError, match="not a batch file name"):
        _check(handler)
    assert asked == ["/v1/signing-key", "/v1/exports/index.txt"]


def test_an_endless_batch_is_cut_off(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bluezone.client import keyserver as client_module

    monkeypatch.setattr(client_module, "MAX_KEY_FILE_BYTES", 1000)
    handler, _ = _server(keygen(tmp_path / "k").public_info(), index=b"big.zip\n", batch=b"PK" + b"\0" * 5000)
    with pytest.raises(KeyServerError, match="larger than 1000 bytes"):
        _check(handler)


@pytest.mark.parametrize(
    "answer",
    [
        {"insertedExposures": True, "revisedExposures": -3, "revisionToken": 12},
        {"insertedExposures": "5", "revisionToken": "t" * 100_000},
        {},
    ],
)
def test_odd_publish_answers_give_no_counts_and_no_token(answer: dict) -> None:
    """A server's odd publish answer cannot plant a huge token in the node's database or a bogus count."""
    from bluezone.keyformat.keys import empty_keys

    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    receipt = KeyServerClient("http://keys.test", transport=transport).publish(empty_keys(1), "12345678")
    assert (receipt.inserted, receipt.revised, receipt.revision_token) == (0, 0, None)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(403, json={"code": "x\x1b[2J", "error": "gone\n\x1b]52;c;cm0gLXJmIH4=\x07\r" + "A" * 100_000}),
        httpx.Response(404, content=b"<html>\x1b[31mred\x9b2J\nsecond line\xe2\x80\xae</html>"),
        httpx.Response(400, json={"code": "bad", "error": "\u2028spoofed\u202e line"}),
    ],
)
def test_a_servers_error_text_reaches_the_terminal_as_one_short_printable_line(answer: httpx.Response) -> None:
    """The server's error text went into the CLI's error line whole: a hostile server could print a
    megabyte, newlines faking other output, or escape sequences (clear the screen, write the
    clipboard through OSC 52) on the user's terminal."""
    with pytest.raises(KeyServerError) as refused:
        _check(lambda request: answer)
    message = str(refused.value)
    assert message.isprintable() and len(message) < 400, message


def test_a_compressed_answer_is_refused_unread() -> None:
    """httpx inflates each chunk it reads whole: gzip in gzip ('Content-Encoding: gzip, gzip', 1.8 kB
    on the wire for 1 GB) made 2 GB at once (7 s) before the 1 MiB cap could look.  The client asks for
    an uncompressed answer, reads it raw, and refuses a compressed one.  Over a real loopback socket:
    the mock transport of the other tests takes another path."""
    import gzip
    import socket
    import threading
    import tracemalloc
    import zlib

    deflater = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = gzip.compress(b"".join([deflater.compress(bytes(1 << 20)) for _ in range(200)] + [deflater.flush()]), 9)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    asked: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            asked.append(conn.recv(65536))
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip, gzip\r\nConnection: close\r\n"
                         + f"Content-Length: {len(bomb)}\r\n\r\n".encode() + bomb)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = KeyServerClient(f"http://127.0.0.1:{listener.getsockname()[1]}", retries=0)
    tracemalloc.start()
    try:
        with pytest.raises(KeyServerError, match="compressed"):
            client.index()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        client.close()
        listener.close()
    assert peak < 20_000_000, peak  # 200 MB inflated before
    assert b"accept-encoding: identity" in asked[0].lower()


def test_a_web_page_instead_of_a_key_server_is_said_so() -> None:
    """`check --server` given a web site's URL printed the start of its HTML error page:
    'Error: .../v1/signing-key: 404 <!DOCTYPE HTML> <html lang="en"> <head> <meta charset=...'."""
    page = b'<!DOCTYPE HTML>\n<html lang="en">\n<head><title>Error response</title></head><body>404</body></html>'
    with pytest.raises(KeyServerError) as refused:
        _check(lambda request: httpx.Response(404, content=page, headers={"content-type": "text/html"}))
    assert str(refused.value) == (
        "http://keys.test/v1/signing-key: 404 Not Found (a web page, not a key server's answer: check the URL)"
    )


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_failing_an_upload_says_to_try_again_with_the_same_code(status: int) -> None:
    """With the key server's database down an upload ended in '.../v1/publish: 500 Internal Server Error'
    alone: whether the code was spent, or the keys were wrong, it did not say."""
    from bluezone.keyformat.keys import empty_keys

    keys = empty_keys(1)
    keys["key"], keys["rolling_start"], keys["rolling_period"] = b"\x01" * 16, 2_940_000, 144
    client = KeyServerClient(
        "http://keys.test", sleep=lambda seconds: None,
        transport=httpx.MockTransport(lambda request: httpx.Response(status, content=b"Internal Server Error")),
    )
    with pytest.raises(KeyServerError) as failed:
        client.publish(keys, "1234567890123456")
    assert str(failed.value).endswith("try again later with the same code; a code is used up only by an upload"
                                      " the server stored)")
    assert f"/v1/publish: {status}" in str(failed.value)


def test_an_upload_to_a_static_web_host_says_to_check_the_url_not_to_try_later() -> None:
    """`upload --server` given a plain web server's URL (python -m http.server: POST is '501 Unsupported
    method') said 'a web page, not a key server's answer: check the URL (the key server failed, not the
    upload: try again later with the same code ...)': trying later fails the same way (walk17)."""
    from bluezone.keyformat.keys import empty_keys

    keys = empty_keys(1)
    keys["key"], keys["rolling_start"], keys["rolling_period"] = b"\x01" * 16, 2_940_000, 144
    page = b"<!DOCTYPE HTML>\n<html><head><title>Error response</title></head><body>501</body></html>"
    client = KeyServerClient("http://keys.test", sleep=lambda seconds: None, transport=httpx.MockTransport(
        lambda request: httpx.Response(501, content=page, headers={"content-type": "text/html"})))
    with pytest.raises(KeyServerError) as refused:
        client.publish(keys, "1234567890123456")
    assert str(refused.value) == (
        "http://keys.test/v1/publish: 501 Not Implemented (a web page, not a key server's answer: check the URL)"
    )


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirected_batch_is_one_line_and_not_remembered_as_rejected(tmp_path, status: int) -> None:
    """httpx follows no redirect, and a 3xx answer was read as the file: a batch moved to a CDN's signed URL (or an
    http:// server answering 'go to https://') was 'malformed batch: ... File is not a zip file', rejected, and
    remembered as rejected: not fetched again for 14 days, whatever the server did next.  A redirect is said, with
    where it points, and nothing is remembered; nothing is asked of the other host."""
    info = keygen(tmp_path / "k").public_info()
    asked: list[str] = []

    def moved(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        if request.url.path == "/v1/signing-key":
            return httpx.Response(200, json=info)
        if request.url.path == "/v1/exports/index.txt":
            return httpx.Response(200, content=b"export-1.zip\n")
        return httpx.Response(status, headers={"location": "https://cdn.example/x.zip?sig=" + "a" * 300}, content=b"<html>Found</html>")

    store = SightingStore.open(":memory:")
    client = KeyServerClient("http://keys.test", transport=httpx.MockTransport(moved), sleep=lambda seconds: None)
    with pytest.raises(KeyServerError) as refused:
        check_server(client, ServerState(store), lambda t0, t1: None, now=NOW)  # type: ignore[arg-type, return-value]
    message = str(refused.value)
    assert message.startswith(f"http://keys.test/v1/exports/export-1.zip: {status} redirect to 'https://cdn.example/x.zip?sig=aaa")
    assert "not followed" in message and message.isprintable(), message
    assert store.rejected_batches("http://keys.test", info["public_key"], NOW) == {}
    assert store.keyserver_batches("http://keys.test") == set()
    assert all(url.startswith("http://keys.test/") for url in asked), asked


def test_a_redirected_signing_key_or_index_says_where_to(tmp_path) -> None:
    """An http:// URL of a server that answers only https:// with a redirect: 'the answer is not a JSON object'."""
    with pytest.raises(KeyServerError, match=r"/v1/signing-key: 301 redirect to 'https://keys.test/v1/signing-key'"):
        _check(lambda request: httpx.Response(301, headers={"location": "https://keys.test/v1/signing-key"}))


def test_a_large_batch_is_held_once_while_it_downloads() -> None:
    """The answer grew in a bytearray and was copied into bytes: a 256 MiB batch (the cap; a hostile server's,
    or a national file) was held twice, 586 MiB peak for one file on a device that may have 512 MiB."""
    import tracemalloc

    size, chunk = 16 << 20, b"\0" * (1 << 20)

    class Body(httpx.SyncByteStream):
        def __iter__(self):  # type: ignore[no-untyped-def]
            for _ in range(size // len(chunk)):
                yield chunk

    client = KeyServerClient("http://keys.test", transport=httpx.MockTransport(lambda request: httpx.Response(200, stream=Body())))
    tracemalloc.start()
    try:
        data = client.batch("big.zip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(data) == size and isinstance(data, bytes)
    assert peak < 1.3 * size, f"{peak / size:.2f} times the answer"
