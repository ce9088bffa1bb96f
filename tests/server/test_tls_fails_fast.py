"""An https URL whose port does not speak TLS, or whose certificate this machine does not trust,
fails at once with one line: as a connection error it was tried again by httpcore's pool and then by
the client with backoff, ~7-15 s before the same SSL error.  Real loopback sockets (the handshake
is what is tested)."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bluezone.cli import cli
from bluezone.client.keyserver import KeyServerClient
from bluezone.errors import KeyServerError
from bluezone.proximity.store import SightingStore


def _listen(answer: Callable[[socket.socket], None]) -> Iterator[tuple[int, list[int]]]:
    """A loopback server answering each connection with ``answer``; yields (port, [connections])."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    accepted: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            accepted.append(1)
            with conn:
                try:
                    answer(conn)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join()
        listener.close()


def _plain_http(conn: socket.socket) -> None:
    conn.recv(65536)  # the TLS hello, read as a request line
    conn.sendall(b"HTTP/1.0 400 Bad request\r\nContent-Type: text/html\r\n\r\n<html>Bad request</html>")


@pytest.fixture()
def plain_http() -> Iterator[tuple[int, list[int]]]:
    yield from _listen(_plain_http)


@pytest.fixture()
def self_signed(tmp_path: Path) -> Iterator[tuple[int, list[int]]]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    def handshake(conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            context.wrap_socket(conn, server_side=True).close()
        except ssl.SSLError:
            pass  # the client refuses our certificate

    yield from _listen(handshake)


def _never_sleep(seconds: float) -> None:
    raise AssertionError(f"tried again after {seconds} s")


def test_https_on_a_plain_http_port_fails_at_once(plain_http: tuple[int, list[int]]) -> None:
    port, accepted = plain_http
    with KeyServerClient(f"https://127.0.0.1:{port}", sleep=_never_sleep) as client:
        with pytest.raises(KeyServerError) as refused:
            client.signing_key()
    assert str(refused.value) == (
        f"https://127.0.0.1:{port}: TLS handshake failed, not tried again: the server does not speak https on "
        "that port (WRONG_VERSION_NUMBER); if it is plain HTTP, give an http:// URL"
    )
    assert len(accepted) == 1  # 16 connections before (4 tries of the client, each 4 of httpcore's pool)


def test_an_untrusted_certificate_fails_at_once(self_signed: tuple[int, list[int]]) -> None:
    port, accepted = self_signed
    with KeyServerClient(f"https://127.0.0.1:{port}", sleep=_never_sleep) as client:
        with pytest.raises(KeyServerError, match="TLS handshake failed, not tried again: the server's certificate is "
                           "not trusted on this machine .self.signed certificate"):
            client.index()
    assert len(accepted) == 1


def test_check_server_says_it_in_one_line(plain_http: tuple[int, list[int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setattr(time, "sleep", _never_sleep)
    port, accepted = plain_http
    SightingStore.open(tmp_path / "s.db").close()
    result = CliRunner().invoke(cli, ["check", "--server", f"https://127.0.0.1:{port}", "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "does not speak https on that port" in result.output and len(accepted) == 1
