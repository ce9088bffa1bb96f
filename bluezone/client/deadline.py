"""A total deadline for a sync httpx request, status line and headers included.

httpx's timeouts hold per socket operation only: a server that sends its headers one byte every
29 s (h11 takes up to 16 kB of them) kept a request alive for days before the first body byte,
where the client's own between-chunks check cannot see it.  Every socket operation here waits
at most until the deadline of the request in progress, and fails as httpcore's own timeouts do.

A TLS handshake that fails for good (an https URL on a plain-HTTP port, a certificate this
machine does not trust) is a :class:`KeyServerError` at once: as httpcore's ConnectError it was
tried again by the pool and then by the client, ~7-15 s before the same error.
"""

from __future__ import annotations

import ssl
import typing
from collections.abc import Callable, Iterable

import httpcore
import httpx

from bluezone.errors import KeyServerError


class Deadline:
    """When the request in progress must be done (None: no request, no limit)."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self.monotonic = monotonic
        self.at: float | None = None

    def start(self, seconds: float) -> float:
        self.at = self.monotonic() + seconds
        return self.at

    def cap(self, timeout: float | None, error: type[Exception]) -> float | None:
        """``timeout`` shortened to what is left; ``error`` once nothing is."""
        if self.at is None:
            return timeout
        left = self.at - self.monotonic()
        if left <= 0:
            raise error("the request's total deadline has passed")
        return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, deadline: Deadline) -> None:
        self._stream, self._deadline = stream, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._deadline.cap(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._deadline.cap(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        peer = self._stream.get_extra_info("server_addr")  # for the message: a failed handshake closes the socket
        try:
            tls = self._stream.start_tls(ssl_context, server_hostname, self._deadline.cap(timeout, httpcore.ConnectTimeout))
        except httpcore.ConnectError as exc:
            if lasting := _lasting_tls_failure(exc.__cause__):
                where = f"https://{server_hostname}" + (f":{peer[1]}" if isinstance(peer, tuple) else "")
                raise KeyServerError(f"{where}: TLS handshake failed, not tried again: {lasting}") from None
            raise
        return _Stream(tls, self._deadline)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


#: What OpenSSL says when the other end answers a TLS hello in plain text (an HTTP server).
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL", "HTTP_REQUEST"})


def _lasting_tls_failure(error: BaseException | None) -> str:
    """Why a handshake failed, if trying again cannot help (else ""): not a TLS server, an untrusted
    certificate, no protocol or cipher in common.  A connection cut mid-handshake may be the network."""
    if not isinstance(error, ssl.SSLError) or isinstance(error, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError):
        return ""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"the server's certificate is not trusted on this machine ({error.verify_message})"
    if error.reason in _NOT_TLS:
        return f"the server does not speak https on that port ({error.reason}); if it is plain HTTP, give an http:// URL"
    return f"{error.reason or error}"


class _Backend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend, deadline: Deadline) -> None:
        self._backend, self._deadline = backend, deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(
            host, port, self._deadline.cap(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return _Stream(stream, self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[typing.Any] | None = None
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_unix_socket(path, self._deadline.cap(timeout, httpcore.ConnectTimeout), socket_options)
        return _Stream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def transport_with_deadline(deadline: Deadline, retries: int) -> httpx.HTTPTransport:
    """httpx's own transport, its socket operations bounded by ``deadline``.  httpx offers no
    public way to give its pool a network backend: this sets the pool's one attribute for it."""
    transport = httpx.HTTPTransport(retries=retries)
    pool = transport._pool
    pool._network_backend = _Backend(pool._network_backend, deadline)
    return transport
