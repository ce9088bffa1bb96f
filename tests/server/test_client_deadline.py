"""The node's key-server client: a total deadline per download, retries with backoff on transient
errors, a base URL given with /v1, and a reason in every error (issue 14, items 3 and 14)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from bluezone.client.keyserver import KeyServerClient
from bluezone.errors import KeyServerError


class FakeTime:
    """monotonic() and sleep() of a client under test: time passes only when told."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def client(handler, clock: FakeTime, **kw) -> KeyServerClient:  # type: ignore[no-untyped-def]
    return KeyServerClient(
        "http://keys.test", transport=httpx.MockTransport(handler), monotonic=clock.monotonic, sleep=clock.sleep, **kw
    )


def test_a_server_sending_a_byte_a_second_is_given_up_at_the_deadline() -> None:
    clock = FakeTime()
    sent = []

    def trickle() -> Iterator[bytes]:
        for _ in range(10**6):  # would take 11 days
            clock.now += 1.0
            sent.append(1)
            yield b"x"

    c = client(lambda request: httpx.Response(200, content=trickle()), clock, deadline=60.0)
    with pytest.raises(KeyServerError, match=r"no complete answer within 60 s"):
        c.batch("b-1.zip")
    assert len(sent) <= 62  # stopped at the deadline, not after a million seconds
    assert clock.slept == []  # a slow server is not retried: it would only be slow again


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_transient_answers_are_retried_with_backoff(status: int) -> None:
    clock = FakeTime()
    answers = [httpx.Response(status), httpx.Response(status), httpx.Response(200, content=b"a-1.zip\n")]
    c = client(lambda request: answers.pop(0), clock)
    assert c.index() == ["a-1.zip"]
    assert clock.slept == [1.0, 2.0]


def test_a_connection_that_drops_is_retried_and_gives_up_with_a_reason() -> None:
    clock = FakeTime()
    tries = []

    def drop(request: httpx.Request) -> httpx.Response:
        tries.append(1)
        raise httpx.ReadTimeout("", request=request)

    c = client(drop, clock, retries=3)
    with pytest.raises(KeyServerError) as err:
        c.index()
    assert len(tries) == 4 and clock.slept == [1.0, 2.0, 4.0]
    assert "ReadTimeout" in str(err.value) and "4 tries" in str(err.value)


def test_uploads_are_not_retried_after_the_request_went_out() -> None:
    clock = FakeTime()
    tries = []

    def fail(request: httpx.Request) -> httpx.Response:
        tries.append(1)
        return httpx.Response(503)

    c = client(fail, clock)
    with pytest.raises(KeyServerError, match="503"):
        c._request("POST", "/v1/publish", json={})
    assert len(tries) == 1


def test_a_base_url_ending_in_v1_is_not_doubled_and_404_says_why() -> None:
    clock = FakeTime()
    asked: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return httpx.Response(404)

    # also as a static host's exports are addressed (walk12: /v1/exports asked for /v1/exports/v1/exports/index.txt)
    for base in ("http://keys.test/v1", "http://keys.test/v1/", "http://keys.test", "http://keys.test/v1/exports/",
                 "http://keys.test/v1/exports/index.txt"):
        c = KeyServerClient(base, transport=httpx.MockTransport(handle), monotonic=clock.monotonic, sleep=clock.sleep)
        with pytest.raises(KeyServerError) as err:
            c.index()
        assert str(err.value).endswith("404 Not Found")
    assert asked == ["/v1/exports/index.txt"] * 5
    prefixed = KeyServerClient("https://example.org/keys/v1", transport=httpx.MockTransport(handle))
    assert prefixed.base_url == "https://example.org/keys"


@contextmanager
def trickling_server(head: bytes) -> Iterator[int]:
    """A socket server on loopback that sends ``head``, then one byte every 0.1 s for ever; its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(4096)
        try:
            conn.sendall(head)
            while not stop.is_set():
                conn.sendall(b"x")
                time.sleep(0.1)
        except OSError:
            pass
        finally:
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


def test_a_real_trickling_server_on_loopback_is_cut_off() -> None:
    """The figure, end to end: the body one byte every 0.1 s."""
    started = time.monotonic()
    with trickling_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n") as port:
        with pytest.raises(KeyServerError, match="no complete answer within 1 s"):
            KeyServerClient(f"http://127.0.0.1:{port}", deadline=1.0).batch("b-1.zip")
    assert time.monotonic() - started < 10


def test_a_server_trickling_its_headers_is_cut_off_at_the_deadline() -> None:
    """The deadline covers the status line and headers too: httpx's read timeout restarts at every
    byte, and h11 takes 16 kB of headers, so one byte each 29 s held a check for over five days."""
    started = time.monotonic()
    with trickling_server(b"HTTP/1.1 200 OK\r\nX-Slow: ") as port:
        with pytest.raises(KeyServerError, match="no complete answer within 1 s"):
            KeyServerClient(f"http://127.0.0.1:{port}", timeout=5.0, deadline=1.0).index()
    assert time.monotonic() - started < 4  # not retried: a slow server would only be slow again
