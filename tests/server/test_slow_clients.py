"""Issue 14.1 (proxy headers) and 14.2 (slow clients) against the real uvicorn on loopback.

The server runs as ``bluezone server run`` configures it (``serve.uvicorn_config``), in a thread,
with deadlines of a fraction of a second so the tests are quick.  Loopback only: the attacker
connects from 127.0.0.1, the health check from 127.0.0.2 (Linux routes all of 127/8 to lo).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import h11
import httpx
import pytest
import uvicorn
from server_helpers import KEY

from bluezone.errors import InputError
from bluezone.server.app import create_app
from bluezone.server.publish import PublishConfig
from bluezone.server.serve import RateLimitFilter, ServeSettings, bind, uvicorn_config
from bluezone.server.storage import SQLiteStorage

DEADLINE = 0.5


class Running:
    def __init__(self, tmp: Path, settings: ServeSettings) -> None:
        self.storage = SQLiteStorage(tmp / "server.db")
        self.exports = tmp / "exports"
        self.exports.mkdir()
        app = create_app(self.storage, code_key=KEY, export_dir=self.exports,
                         publish_config=PublishConfig(max_failures_per_client=3))
        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn_config(app, settings))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.clients: list[socket.socket] = []
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)

    def connect(self, source: str = "127.0.0.1") -> socket.socket:
        """A raw connection from ``source``, closed by ``stop`` if the test leaves it open."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10, source_address=(source, 0))
        self.clients.append(s)
        return s

    def healthz(self, source: str = "127.0.0.2") -> int:
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(transport=transport, timeout=5) as http:
            return http.get(f"http://127.0.0.1:{self.port}/healthz").status_code

    def stop(self) -> None:
        for s in self.clients:
            s.close()
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()
        self.storage.close()


@pytest.fixture
def running(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Running]:
    overrides = getattr(request, "param", {})
    settings = ServeSettings(**{"port": 0, "request_timeout": DEADLINE, "send_timeout": DEADLINE, **overrides})
    r = Running(tmp_path, settings)
    try:
        yield r
    finally:
        r.stop()


def _read_all(s: socket.socket, limit: float = 10) -> bytes:
    s.settimeout(limit)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return out


def _response(s: socket.socket) -> bytes:
    """One whole HTTP response (headers and a Content-Length body may come in separate segments)."""
    s.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += s.recv(65536)
    return head + b"\r\n\r\n" + body


def _closed_at_once(s: socket.socket) -> bool:
    """The server closed (or reset) this connection without a word."""
    s.settimeout(5)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_body_shorter_than_its_content_length_gets_408(running: Running) -> None:
    """It waited for ever: one such request per connection held a descriptor until the process ran out."""
    s = running.connect()
    t0 = time.monotonic()
    s.sendall(b"POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    answer = _read_all(s)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"request_timeout" in answer
    assert DEADLINE * 0.9 <= time.monotonic() - t0 < DEADLINE + 5
    s.close()


def test_headers_that_never_end_get_408(running: Running) -> None:
    s = running.connect()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # no blank line
    assert _read_all(s).startswith(b"HTTP/1.1 408 ")
    silent = running.connect()  # says nothing at all
    assert _read_all(silent).startswith(b"HTTP/1.1 408 ")


def test_kept_alive_connection_gets_a_deadline_for_each_request(running: Running) -> None:
    s = running.connect()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _response(s).startswith(b"HTTP/1.1 200 ")
    t0 = time.monotonic()
    s.sendall(b"POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n")  # and no body
    assert _read_all(s).startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - t0 < DEADLINE + 5


def test_a_whole_request_is_not_cut_by_the_deadline(running: Running) -> None:
    """The deadline covers receiving; a request received in time is answered, however long it takes."""
    body = json.dumps({"temporaryExposureKeys": [], "verificationPayload": "1"}).encode()
    s = running.connect()
    s.sendall(b"POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
    time.sleep(DEADLINE / 2)
    s.sendall(body)
    time.sleep(DEADLINE)  # past the deadline, on a kept-alive connection
    answer = _response(s)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"missing_keys" in answer


def test_a_client_that_leaves_mid_body_is_one_log_line(running: Running, caplog: pytest.LogCaptureFixture) -> None:
    """A ClientDisconnect was a traceback per connection (117 MB of log under a trickle attack)."""
    caplog.set_level(logging.INFO)
    s = running.connect()
    s.sendall(b"POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"temporary")
    time.sleep(0.1)
    s.close()
    deadline = time.monotonic() + 5
    while not any("went away" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.02)
    went = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(went) == 1 and went[0].exc_info is None
    assert not any(r.exc_info for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert running.healthz() == 200


@pytest.mark.parametrize("running", [{"max_connections_per_client": 20}], indirect=True)
def test_one_address_cannot_take_every_connection(running: Running) -> None:
    """Trickling connections from one address: the 21st is closed at once, /healthz (another address)
    answers, and the 20 are closed at the deadline."""
    held = [running.connect() for _ in range(20)]
    for s in held:
        s.sendall(b"G")
    extra = running.connect()
    assert _closed_at_once(extra)
    assert running.healthz() == 200
    assert all(_read_all(s).startswith(b"HTTP/1.1 408 ") for s in held)
    again = running.connect()  # slots come back
    again.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _response(again).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("running", [{"max_connections": 10, "max_connections_per_client": 100}], indirect=True)
def test_connections_beyond_the_cap_are_closed_at_once(running: Running, caplog: pytest.LogCaptureFixture) -> None:
    """At the cap, a client holding as many connections as anyone is refused (room is made only for one holding
    fewer) ... and the one refused is not named in the log: it is whoever came next (maybe to upload)."""
    held = [running.connect(source) for source in ("127.0.0.1", "127.0.0.3") for _ in range(5)]
    time.sleep(0.05)
    with caplog.at_level("WARNING", logger="bluezone"):
        extra = running.connect("127.0.0.3")
        assert _closed_at_once(extra)
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refused and not any("127.0.0.3" in line for line in refused), refused
    for s in held:
        s.close()
    time.sleep(0.1)
    assert running.healthz() == 200


#: A publish whose body stops short of its Content-Length: the app's task waits for the rest.
STALLED = b"POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"


def _trickling(running: Running, source: str, count: int) -> list[socket.socket]:
    """``count`` connections from ``source``, each a request's first byte and no more (slowloris), or every other
    one a publish whose body stops short (a request task each, waiting)."""
    held = [running.connect(source) for _ in range(count)]
    for i, s in enumerate(held):
        s.sendall(STALLED if i % 2 else b"G")
        time.sleep(0.01)  # each waiting a little longer than the next
    return held


@pytest.mark.parametrize(
    "running", [{"max_connections": 10, "max_connections_per_client": 5, "request_timeout": 60}], indirect=True
)
def test_slow_connections_from_many_addresses_make_room_for_others(running: Running) -> None:
    """Two addresses trickling 5 connections each filled the total cap of 10, and each connection was held
    until its deadline: everyone else was refused for as long as the attacker kept reconnecting.  Now a client
    holding fewer connections gets one, and the connection closed for it is the longest waiting on its client of
    the busiest clients', never the newcomer's; room is not made for a client holding nearly as many (the
    attacker's own reconnections are refused as before, not cutting each other's in a loop)."""
    first = _trickling(running, "127.0.0.3", 5)
    second = _trickling(running, "127.0.0.4", 5)
    assert running.healthz("127.0.0.2") == 200  # refused (a reset) without the room made
    assert _read_all(first[0], limit=5).startswith(b"HTTP/1.1 408 ")  # the one that waited longest
    time.sleep(0.1)  # the health check's connection closed
    refill = _trickling(running, "127.0.0.3", 1)  # the cap full again, and an uploader's body on its way, slowly
    body = json.dumps({"temporaryExposureKeys": [], "verificationPayload": "1"}).encode()
    upload = running.connect("127.0.0.2")
    upload.sendall(b"POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:5]))
    time.sleep(0.05)
    assert _closed_at_once(running.connect("127.0.0.3"))  # holds 4 of 10, the other 5: refused
    upload.sendall(body[5:])
    assert _response(upload).startswith(b"HTTP/1.1 400 ")  # answered, not cut
    assert _answered(first[1:] + second + refill) == [first[1]]  # the room the upload took


def _slow_download(running: Running, source: str, name: str) -> socket.socket:
    """A GET of export ``name`` from ``source`` by a client that reads nothing yet (its answer stalls)."""
    s = socket.socket()
    running.clients.append(s)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind((source, 0))
    s.connect(("127.0.0.1", running.port))
    s.sendall(b"GET /v1/exports/%s HTTP/1.1\r\nHost: x\r\n\r\n" % name.encode())
    return s


@pytest.mark.parametrize(
    "running", [{"max_connections": 4, "max_connections_per_client": 4, "request_timeout": 60, "send_timeout": 60}],
    indirect=True,
)
def test_a_connection_being_answered_is_not_cut_for_room(running: Running) -> None:
    """Room is made only from connections waiting on their client: an export on its way to a phone that reads
    it slowly is not cut for a newcomer, though it waited longer; with none waiting, the newcomer is refused."""
    size = 16 << 20
    (running.exports / "big.zip").write_bytes(b"\0" * size)
    downloads = [_slow_download(running, "127.0.0.3", "big.zip") for _ in range(2)]
    time.sleep(0.2)  # their answers under way, stalled on the reader
    trickles = _trickling(running, "127.0.0.4", 2)
    assert running.healthz("127.0.0.2") == 200
    assert _answered(trickles) == [trickles[0]]
    trickles[1].close()
    time.sleep(0.1)  # the health check's connection and the other trickle closed
    downloads += [_slow_download(running, "127.0.0.4", "big.zip") for _ in range(2)]
    time.sleep(0.2)
    assert _closed_at_once(running.connect("127.0.0.5"))
    for s in downloads:  # each still under way (the first MiB of it read; whole, it takes long at 4 KiB a read)
        assert _received(s, 1 << 20).startswith(b"HTTP/1.1 200 ")


def _received(s: socket.socket, count: int) -> bytes:
    """The first ``count`` bytes the server sends on ``s`` (fewer if it closes first)."""
    s.settimeout(10)
    data = b""
    while len(data) < count and (chunk := s.recv(65536)):
        data += chunk
    assert len(data) >= count, f"closed after {len(data)} bytes"
    return data


def _answered(sockets: list[socket.socket], quiet: float = 0.5) -> list[socket.socket]:
    """Those of ``sockets`` the server has written to or closed, once none has been for ``quiet`` seconds."""
    answered: list[socket.socket] = []
    while ready := select.select([s for s in sockets if s not in answered], [], [], quiet)[0]:
        answered += ready
    return answered


def _guess(running: Running, forwarded_for: str) -> int:
    body = json.dumps({
        "temporaryExposureKeys": [{"key": "AAAAAAAAAAAAAAAAAAAAAA==", "rollingStartNumber": int(time.time() // 600) - 144}],
        "verificationPayload": "0000000000000000",
    })
    r = httpx.post(f"http://127.0.0.1:{running.port}/v1/publish", content=body,
                   headers={"X-Forwarded-For": forwarded_for, "Content-Type": "application/json"}, timeout=10)
    return r.status_code


def test_x_forwarded_for_is_not_believed_by_default(running: Running) -> None:
    """From loopback one address was enough: uvicorn believed X-Forwarded-For from 127.0.0.1, so every
    guess could claim a new client and the per-client limit never applied."""
    statuses = [_guess(running, f"198.51.100.{i}") for i in range(5)]
    assert statuses == [403, 403, 403, 429, 429]


@pytest.mark.parametrize("running", [{"forwarded_allow_ips": "127.0.0.1"}], indirect=True)
def test_x_forwarded_for_from_a_named_proxy_is_the_client(running: Running) -> None:
    statuses = [_guess(running, f"198.51.100.{i}") for i in range(5)]
    assert statuses == [403] * 5
    assert [_guess(running, "198.51.100.9") for _ in range(4)] == [403, 403, 403, 429]


def test_a_client_that_stops_reading_is_dropped(running: Running) -> None:
    """A big response to a client that reads nothing: the write stalls, and after send_timeout the
    connection is dropped instead of held for ever."""
    (running.exports / "big.zip").write_bytes(b"\0" * (64 << 20))
    s = socket.socket()
    running.clients.append(s)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind(("127.0.0.1", 0))
    s.connect(("127.0.0.1", running.port))
    s.sendall(b"GET /v1/exports/big.zip HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(DEADLINE * 4)  # read nothing meanwhile
    received = len(_read_all(s, limit=20))
    assert 0 < received < 64 << 20


def test_log_floods_are_cut_to_a_few_lines_with_a_count() -> None:
    now = [0.0]
    f = RateLimitFilter(burst=3, period=60, clock=lambda: now[0])

    def record(msg: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, msg, args, None)

    passed = [f.filter(record("socket.accept() out of system resource: %s", i)) for i in range(1000)]
    assert sum(passed) == 3
    assert f.filter(record("another message"))  # other messages are not held back
    now[0] = 61
    r = record("socket.accept() out of system resource: %s", "x")
    assert f.filter(r) and r.getMessage().endswith("[997 similar message(s) dropped]")


@pytest.mark.parametrize("running", [{"max_connections_per_client": 2}], indirect=True)
def test_a_refusal_the_flood_limit_drops_is_counted_but_never_built(running: Running) -> None:
    """Under a flood of refused connections the warnings past the limit are not built as records at all (each one
    built to be dropped was 9% of the server's CPU): the limit still counts them, and says so as before."""
    now = [0.0]
    limit = RateLimitFilter(burst=3, period=60, clock=lambda: now[0])
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    handler.addFilter(limit)
    said: list[str] = []
    built: list[str] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        built.append(str(record.msg))
        return record

    logger = logging.getLogger("bluezone.server.serve")
    logger.addHandler(handler)
    logger.propagate = False
    logging.setLogRecordFactory(counting)
    try:
        held = [running.connect() for _ in range(2)]
        for s in held:
            s.sendall(b"G")
        for _ in range(10):
            assert _closed_at_once(running.connect())
        now[0] = 61
        assert _closed_at_once(running.connect())
    finally:
        logging.setLogRecordFactory(factory)
        logger.propagate = True
        logger.removeHandler(handler)
    refused = "connection from %s refused: %d connections open from it"
    assert built.count(refused) == 4  # 3 in the first minute, 1 in the next: not 11
    assert said == ["connection from 127.0.0.1 refused: 2 connections open from it"] * 3 + [
        "connection from 127.0.0.1 refused: 2 connections open from it [7 similar message(s) dropped]"]


@pytest.mark.parametrize("timeouts", [{"request_timeout": float("nan")}, {"send_timeout": float("nan")},
                                      {"request_timeout": 0}, {"send_timeout": -1}])
def test_timeouts_that_are_no_positive_number_are_refused(timeouts: dict) -> None:
    """nan passed the "<= 0" check (the CLI's own FloatRange refuses it, a program serving the app did not): a
    deadline timer at nan sits in asyncio's timer heap, whose order it breaks."""
    with pytest.raises(InputError, match="timeouts must be positive"):
        ServeSettings(**timeouts)


def test_proxies_are_named_by_address_or_network() -> None:
    settings = ServeSettings(forwarded_allow_ips="192.0.2.7, 10.0.0.0/8,2001:db8::/32")
    assert settings.is_proxy("192.0.2.7") and settings.is_proxy("10.9.8.7") and settings.is_proxy("2001:db8::1")
    assert not settings.is_proxy("192.0.2.8") and not ServeSettings().is_proxy("127.0.0.1")


@pytest.mark.parametrize("everyone", ["*", "0.0.0.0/0", "10.0.0.1, ::/0"])
def test_believing_every_address_is_refused(everyone: str) -> None:
    """With every address trusted, uvicorn takes the leftmost X-Forwarded-For entry, which the client
    writes itself (a proxy appends the real one on the right): each guess claimed a new client, so the
    per-client limit of failed codes, and the connection caps, held nobody."""
    from uvicorn.middleware.proxy_headers import _TrustedHosts

    assert _TrustedHosts("*").get_trusted_client_address("198.51.100.1, 10.0.0.1")[0] == "198.51.100.1"
    with pytest.raises(InputError, match="the proxy's own addresses"):
        ServeSettings(forwarded_allow_ips=everyone)


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "proxy.local", "127.0.0.l", "192.0.2.7, 10.0.0.0/8, nonsense"])
def test_a_proxy_that_is_no_address_is_refused(bad: str) -> None:
    """uvicorn took a typo as a literal no peer matches: every upload then came from the proxy's
    address, so 10 failed codes from anyone answered 429 to everybody behind it for an hour."""
    with pytest.raises(InputError, match="not an IP address or network"):
        ServeSettings(forwarded_allow_ips=bad)
    assert ServeSettings(forwarded_allow_ips="").forwarded_allow_ips == ""  # trusts none


def test_server_run_refuses_a_bad_proxy_in_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bluezone.cli import cli

    result = CliRunner().invoke(cli, [
        "server", "run", "--server-db", str(tmp_path / "s.db"), "--signing-key-dir", str(tmp_path / "k"),
        "--port", "0", "--forwarded-allow-ips", "10.0.0.0/33",
    ])
    assert result.exit_code == 2 and "not an IP address or network" in result.output
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize("running", [{"send_timeout": 60}], indirect=True)
def test_a_pipelined_request_being_answered_is_not_cut_at_the_deadline(running: Running) -> None:
    """A request pipelined behind another began as the first's answer completed, before the next deadline was
    armed, so the deadline took it for one not yet received: its answer, still being written to a client
    reading slowly, was cut at the deadline with a 408 in its middle.  (The test slept 1 s for the deadline
    and read 200 bytes past the export: on a loaded machine the idle connection's 408, due 0.5 s after both
    answers, was in the last read.  It now waits for the deadline itself and reads the two answers alone.)"""
    size = 16 << 20
    (running.exports / "big.zip").write_bytes(b"\0" * size)
    s = socket.socket()
    running.clients.append(s)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    s.connect(("127.0.0.1", running.port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/exports/big.zip HTTP/1.1\r\nHost: x\r\n\r\n")
    connections = running.server.server_state.connections
    _until(lambda: len(connections) == 1)  # accepted
    (connection,) = connections
    # the deadline armed as /healthz's answer completed has fired (or cut), the export's answer under way, stalled
    _until(lambda: getattr(connection.cycle, "scope", {}).get("path") == "/v1/exports/big.zip"
           and connection._deadline is None)
    (health, _), (export, body) = _answers(s, 2)
    assert (health, export, len(body), body.count(0)) == (200, 200, size, size)


def _until(condition: Callable[[], bool], limit: float = 30) -> None:
    """Wait for ``condition`` (something the server does in its own thread), polling."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "the server did not get there"
        time.sleep(0.01)


def _answers(s: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """The first ``count`` answers on ``s`` (status, body) as an HTTP client parses them (h11), without whatever the
    server writes after them (an idle connection's 408 at the deadline)."""
    client = h11.Connection(h11.CLIENT)
    s.settimeout(10)
    answers = []
    for _ in range(count):
        client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))  # as sent, for h11's state
        client.send(h11.EndOfMessage())
        status, body = 0, bytearray()
        while not isinstance(event := client.next_event(), h11.EndOfMessage):
            if event is h11.NEED_DATA:
                client.receive_data(s.recv(65536))  # b"": closed, and a body cut short raises
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            else:
                assert not isinstance(event, h11.ConnectionClosed), f"closed after {len(body)} bytes of answer {status}"
        answers.append((status, bytes(body)))
        client.start_next_cycle()
    return answers


def _descriptors_of(name: str) -> int:
    """This process's open descriptors on files called ``name``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").endswith("/" + name)
    return count


def test_an_export_left_mid_way_closes_its_file(running: Running) -> None:
    """A client gone in the middle of an export (a phone losing its network): the file's descriptor was held
    by the chunks' generator, which nothing closed, until the garbage collector found its cycle (9 of 30 still
    open 2 s after their clients left), each a descriptor of the budget the connections share."""
    (running.exports / "left.zip").write_bytes(b"\0" * (16 << 20))
    collecting = gc.isenabled()
    gc.disable()  # only the answer's end may close them
    try:
        for _ in range(10):
            s = running.connect()
            s.sendall(b"GET /v1/exports/left.zip HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # a reset: the next write of the answer fails
        deadline = time.monotonic() + 10
        while _descriptors_of("left.zip") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _descriptors_of("left.zip") == 0
    finally:
        if collecting:
            gc.enable()
