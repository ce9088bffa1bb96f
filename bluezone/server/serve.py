"""Serving the key server on the open internet: uvicorn with deadlines, connection caps, one log format.

uvicorn alone waits for ever on a request whose body is shorter than its Content-Length, accepts
connections until the process runs out of file descriptors, trusts ``X-Forwarded-For`` from
127.0.0.1, logs in its own format beside ours, and answers a port in use with exit code 3.  Here:

- a *request deadline* (headers and body of one request, ``request_timeout``): then ``408`` and the
  connection is closed; a client that stops reading a response is dropped after ``send_timeout``;
- *connection caps* checked when a connection is accepted: in all (``max_connections``, well below
  the descriptor limit, with the accept batch sized to match) and per client address (``max_connections_per_client``, not for a named proxy),
  so one host cannot take every slot and ``/healthz`` keeps answering others; at the total cap a client holding
  fewer connections gets one in place of the busiest client's that waits longest on its client (``room_for``), so
  many addresses holding slow connections cannot keep everyone else out either;
- proxy headers only from the proxies the operator names (``forwarded_allow_ips``);
- uvicorn's loggers go through bluezone's one handler and format, and a flood of the same message
  (refused connections, ``Too many open files``) is cut to a few lines a minute with a count;
- the socket is bound before uvicorn starts (``server run``: before it creates anything), so a port in use is
  one ``ServeError`` line (exit 1), a --host name of no address one ``InputError`` line (exit 2);
- ``serve_workers``: several processes on that one socket (PostgreSQL only), each with its own app and
  database connection, the exports in one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import ipaddress
import json
import logging
import multiprocessing
import os
import resource
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from bluezone.errors import InputError, ServeError
from bluezone.printable import OneLineFormatter
from bluezone.server.publish import client_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeSettings:
    """How the key server faces its clients; the defaults suit a server on the internet."""

    host: str = "127.0.0.1"
    port: int = 8080
    #: Comma-separated addresses or networks whose X-Forwarded-For / X-Forwarded-Proto are believed;
    #: None: none, the peer address is the client (uvicorn's default trusted 127.0.0.1).
    forwarded_allow_ips: str | None = None
    max_connections: int = 1000
    max_connections_per_client: int = 50
    request_timeout: float = 20.0  # to receive one request's headers and body
    send_timeout: float = 60.0  # a response's writing may stall this long
    keep_alive: int = 5  # seconds an idle connection stays open between requests
    access_log: bool = False

    def __post_init__(self) -> None:
        if self.max_connections < 1 or self.max_connections_per_client < 1:
            raise InputError("connection limits must be at least 1")
        # (nan passed "<= 0": a deadline timer at nan sat in asyncio's timer heap, whose order it breaks)
        if not (self.request_timeout > 0 and self.send_timeout > 0):
            raise InputError("timeouts must be positive")
        for entry in (self.forwarded_allow_ips or "").split(","):
            entry = entry.strip()
            try:
                everyone = entry == "*" or (bool(entry) and ipaddress.ip_network(entry, strict=False).prefixlen == 0)
            except ValueError:
                # uvicorn would take it as a literal no peer matches: every upload would then seem to
                # come from the proxy, and 10 failed codes from anyone would lock everybody out
                raise InputError(
                    f"--forwarded-allow-ips: {entry!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8)"
                ) from None
            if everyone:
                # every address trusted, uvicorn takes the leftmost X-Forwarded-For entry, which the client
                # writes itself: each guess could claim a new client and never meet the per-client limits
                raise InputError(
                    f"--forwarded-allow-ips: {entry!r} would believe X-Forwarded-For from anyone, so every client could "
                    "name itself anew and pass the per-client limits: give the proxy's own addresses or network "
                    "(e.g. 127.0.0.1, 10.0.0.0/8)"
                )

    def is_proxy(self, address: str) -> bool:
        """Whether ``address`` is a proxy named in ``forwarded_allow_ips`` (an address or a network)."""
        for entry in (self.forwarded_allow_ips or "").split(","):
            entry = entry.strip()
            if entry == address:
                return True
            try:
                if ipaddress.ip_address(address) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        return False


def descriptor_budget(wanted: int, reserve: int = 64) -> tuple[int, int]:
    """(connections, accept batch) that cannot run the process out of descriptors.

    asyncio accepts up to ``backlog`` sockets in one go, before any of them reaches the protocol
    that would close it over the cap, and a burst may see a few such batches: so connections get at
    most half of what is left after ``reserve`` (database, logs, listening socket), and a batch an
    eighth.  (With 1,000 connections and the default backlog of 2,048 under a limit of 1,024, a
    burst hit "Too many open files", and asyncio then stops accepting for a second, /healthz too.)"""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    usable = 1 << 30 if soft == resource.RLIM_INFINITY else max(16, soft - reserve)
    return max(1, min(wanted, usable // 2)), max(8, min(2048, usable // 8))


_TIMEOUT_BODY = json.dumps({"code": "request_timeout", "error": "request not received in time"}).encode()
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + f"content-length: {len(_TIMEOUT_BODY)}\r\n\r\n".encode()
    + _TIMEOUT_BODY
)


def guarded_protocol(settings: ServeSettings, max_connections: int) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with the caps and deadlines above (one class per server: the connections open,
    by client, live in its closure)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    #: the connections open, by client key: the per-client cap counts them, and room at the total cap is made from them
    open_by_client: dict[str, set[GuardedH11Protocol]] = {}

    def room_for(newcomer: str) -> GuardedH11Protocol | None:
        """The connection to close so that a client of ``newcomer``'s key gets one at the total cap: of the
        clients holding at least two more than it does, the busiest one's connection that has waited longest on
        its client (None: none such, the newcomer is refused).  Slow connections from many addresses filled the
        cap and kept everyone else out for as long as they kept coming; they now make room for whoever holds
        fewer.  (Room for a client holding one fewer had the attacker's addresses cut each other's connections in
        a loop: twice the CPU, for nothing.)"""
        holds = len(open_by_client.get(newcomer, ()))
        best: tuple[int, float] | None = None
        victim = None
        for connections in open_by_client.values():
            if len(connections) < holds + 2:
                continue
            for connection in connections:
                if connection.waiting_on_client():
                    rank = (len(connections), -connection.waiting_since)
                    if best is None or rank > best:
                        best, victim = rank, connection
        return victim

    class GuardedH11Protocol(H11Protocol):
        _peer: str | None = None
        _deadline: asyncio.TimerHandle | None = None
        _deadline_cycle: Any = None
        _stall: asyncio.TimerHandle | None = None
        waiting_since = 0.0  # when the deadline of the request awaited began (loop time)

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            address = self.client[0] if self.client else "unknown"
            peer = client_key(address)  # an IPv6 /64 is one client
            held = len(open_by_client.get(peer, ()))
            if held >= settings.max_connections_per_client and not settings.is_proxy(address):
                warn_limited(log, "connection from %s refused: %d connections open from it", peer, held)
                transport.abort()
                return
            if sum(map(len, open_by_client.values())) >= max_connections:
                victim = room_for(peer)
                if victim is None:  # whoever came next, maybe to upload: not named
                    warn_limited(log, "a connection refused: %d connections open (the limit)", max_connections)
                    transport.abort()
                    return
                warn_limited(log, "a connection waiting on its client closed to make room: %d connections open (the"
                             " limit)", max_connections)
                victim._cut()
            self._peer = peer
            open_by_client.setdefault(peer, set()).add(self)
            self._arm()

        def _arm(self) -> None:
            """Start the deadline of the next request: at connection, and when a response is complete."""
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline_cycle = self.cycle
            self.waiting_since = self.loop.time()
            self._deadline = self.loop.call_later(settings.request_timeout, self._expire)

        def waiting_on_client(self) -> bool:
            """Whether this connection waits for its client (a request's headers or the rest of its body, or
            the next request), not for the server (a request received, its answer under way)."""
            if self._deadline is None or self._peer is None or self.transport.is_closing():
                return False
            return self.cycle is self._deadline_cycle or bool(self.cycle.more_body)

        def _expire(self) -> None:
            self._deadline = None
            started = self.cycle is not self._deadline_cycle  # a new request's headers arrived
            if started and not self.cycle.more_body:
                return  # and its body too: the app has the whole request
            # no address at INFO: the request may be an upload, and an address beside it says who tested positive
            log.info("a client was too slow: the request %s not received in %g s; connection closed",
                     "body" if started else "headers", settings.request_timeout)
            self._cut()

        def _cut(self) -> None:
            """Close this connection, which waits on its client: a 408 unless its answer has begun."""
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            self._release()
            if self.cycle is self._deadline_cycle or not self.cycle.response_started:
                self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()

        def _release(self) -> None:
            """Take this connection out of its client's count (once: when cut, or when lost)."""
            if self._peer is not None:
                connections = open_by_client.get(self._peer, set())
                connections.discard(self)
                if not connections:
                    open_by_client.pop(self._peer, None)
                self._peer = None

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._stall is None:
                self._stall = self.loop.call_later(settings.send_timeout, self._stalled)

        def resume_writing(self) -> None:
            super().resume_writing()
            if self._stall is not None:
                self._stall.cancel()
                self._stall = None

        def _stalled(self) -> None:
            self._stall = None
            log.info("a client stopped reading for %g s; connection closed", settings.send_timeout)
            self.transport.abort()

        def on_response_complete(self) -> None:
            # the next request's deadline (pipelined, or after keep-alive) armed first: uvicorn starts a pipelined
            # one in the call below, which armed after took it for one not yet received and cut its answer
            if not self.transport.is_closing():
                self._arm()
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            for timer in (self._deadline, self._stall):
                if timer is not None:
                    timer.cancel()
            self._deadline = self._stall = None
            self._release()
            super().connection_lost(exc)

    return GuardedH11Protocol


class RateLimitFilter(logging.Filter):
    """Lets ``burst`` records of one message template through per ``period`` seconds; the first one
    after a quiet spell says how many were dropped.  A flood of 'connection refused' or 'Too many open
    files' lines grew the log to 117 MB; this keeps it to a few lines a minute."""

    def __init__(self, burst: int = 10, period: float = 60.0, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.burst, self.period, self.clock = burst, period, clock
        self._windows: dict[tuple[str, str], tuple[float, int, int]] = {}  # key -> (start, passed, dropped)

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        start, passed, dropped = self._window(key)
        if passed >= self.burst:
            self._windows[key] = (start, passed, dropped + 1)
            return False
        if dropped:
            record.msg = f"{record.getMessage()} [{dropped} similar message(s) dropped]"
            record.args = None
        self._windows[key] = (start, passed + 1, 0)
        if len(self._windows) > 10_000:  # templates are few; bound the table anyway
            self._windows.clear()
        return True

    def full(self, key: tuple[str, str]) -> bool:
        """Whether a record of ``key`` (logger name, message template) would be dropped now."""
        return self._window(key)[1] >= self.burst

    def count_dropped(self, key: tuple[str, str]) -> None:
        """Count a record of ``key`` dropped without it being built (``warn_limited``)."""
        start, passed, dropped = self._window(key)
        self._windows[key] = (start, passed, dropped + 1)

    def _window(self, key: tuple[str, str]) -> tuple[float, int, int]:
        """``key``'s window now: (start, records passed, records dropped), a new one after ``period``."""
        now = self.clock()
        start, passed, dropped = self._windows.get(key, (now, 0, 0))
        if now - start >= self.period:
            start, passed = now, 0
        return start, passed, dropped


def flood_limits(logger: logging.Logger) -> list[RateLimitFilter] | None:
    """The flood limits of every handler a warning of ``logger`` reaches, or None if one of them has none (or the
    logger filters records itself, or no handler would take it): then only a record built tells."""
    if logger.filters:
        return None
    limits: list[RateLimitFilter] = []
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if handler.level > logging.WARNING:
                continue
            limit = next((f for f in handler.filters if isinstance(f, RateLimitFilter)), None)
            if limit is None:
                return None
            limits.append(limit)
        current = current.parent if current.propagate else None
    return limits or None


def warn_limited(logger: logging.Logger, msg: str, *args: object) -> None:
    """``logger.warning(msg, *args)``, but when every handler it reaches would drop it by its flood limit, only that
    drop is counted, as the filter would have: a record built (its caller's frame looked up, its time, thread and
    process) only to be dropped was 9% of the server's CPU under a flood of refused connections."""
    if not logger.isEnabledFor(logging.WARNING):
        return
    limits = flood_limits(logger)
    key = (logger.name, msg)
    if limits is not None and all(limit.full(key) for limit in limits):
        for limit in limits:
            limit.count_dropped(key)
        return
    logger.warning(msg, *args, stacklevel=2)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: With several workers each line says whose it is (journalctl shows the first process's pid only).
WORKERS_LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def configure_logging(workers: int = 1) -> None:
    """One handler and format for bluezone's and uvicorn's loggers, rate-limited, each record one
    printable line (a value with a newline forged a record of its own with ``--workers``, whose
    format replaced the CLI's, or in a program serving the app itself); INFO for a server unless
    the command line asked for more (or less) than the default WARNING."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig()
    for handler in root.handlers:
        if not any(isinstance(f, RateLimitFilter) for f in handler.filters):
            handler.addFilter(RateLimitFilter())
        handler.setFormatter(OneLineFormatter(WORKERS_LOG_FORMAT if workers > 1 else LOG_FORMAT))
    if root.level == logging.WARNING:
        for name in ("bluezone", "uvicorn"):
            logging.getLogger(name).setLevel(logging.INFO)


#: getaddrinfo's answers that the name has no address (a typo, not a DNS server down): an input error.
NO_SUCH_NAME = frozenset(
    getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA", "EAI_ADDRFAMILY") if hasattr(socket, name)
)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or one line saying why not: InputError (exit 2) for a --host name of no
    address, ServeError (exit 1) for what may pass (a port in use, DNS not answering, an address not up yet)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise unresolved(host, exc) from None
    except UnicodeError:  # a name the lookup cannot even encode (IDNA): 'a..b', a label over 63 characters
        raise InputError(f"--host {host!r} is no address or name this machine can resolve (no valid host name): give"
                         " an address of this machine, e.g. 127.0.0.1 or 0.0.0.0") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise unbound(host, port, exc) from None
    return sock


def unresolved(host: str, exc: socket.gaierror) -> InputError | ServeError:
    """Why ``host`` gave no address: it has none (exit 2: fix --host), or the resolver failed, which may
    pass (exit 1, the reason: a service manager starts it again)."""
    if exc.errno in NO_SUCH_NAME:
        return InputError(f"--host {host!r} is no address or name this machine can resolve ({exc.strerror}): give"
                          " an address of this machine, e.g. 127.0.0.1 or 0.0.0.0")
    return ServeError(f"cannot resolve --host {host!r} now ({exc.strerror}): try again, or give its address")


def unbound(host: str, port: int, exc: OSError) -> ServeError:
    """Why binding ``host``:``port`` failed, in one line: each may pass (ServeError, exit 1)."""
    if exc.errno == errno.EADDRINUSE:
        return ServeError(f"port {port} on {host} is already in use (another key server?): stop it or give --port")
    if exc.errno == errno.EACCES:
        return ServeError(f"not allowed to listen on port {port} on {host}: use a port above 1023")
    if exc.errno == errno.EADDRNOTAVAIL:  # may pass: at boot an address can come up after network-online.target
        # (an IPv6 one is "tentative" until duplicate address detection ends, a VPN's or DHCP's later): exit 1
        # is restarted by systemd, exit 2 would leave the server down after a reboot
        return ServeError(f"--host {host!r} is not an address of this machine (yet?): give one of its addresses,"
                          " e.g. 127.0.0.1 or 0.0.0.0")
    return ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def uvicorn_config(app: Any, settings: ServeSettings) -> Any:
    """The uvicorn.Config of a key server: our protocol, our logging, proxy headers only when asked."""
    import uvicorn

    max_connections, accept_batch = descriptor_budget(settings.max_connections)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(settings, max_connections),
        log_config=None,  # uvicorn's own format would sit beside ours
        log_level=None,
        access_log=settings.access_log,
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips or "",
        server_header=False,
        timeout_keep_alive=settings.keep_alive,
        timeout_graceful_shutdown=10,
        # uvicorn's own limit counts request tasks, which can outlive their connection (a publish still waiting
        # for the database, a request of a connection just cut for room), and connections refused or cut but not yet
        # lost: at the cap plus one it answered 503 to the newcomer room was made for.  Connections are capped in
        # the protocol, at accept
        limit_concurrency=2 * max_connections,
        backlog=accept_batch,
        lifespan="on",
    )


def serve(app: Any, settings: ServeSettings, started: str, sock: socket.socket | None = None) -> None:
    """Bind (unless given ``sock``, bound already: then closed here), log ``started`` (what is served from
    where) and run until SIGINT/SIGTERM."""
    import uvicorn

    configure_logging()
    sock = sock or bind(settings.host, settings.port)
    config = uvicorn_config(app, settings)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    log.info("%s; listening on http://%s:%d", started, host, sock.getsockname()[1])
    if settings.forwarded_allow_ips:
        log.info("client addresses from X-Forwarded-For of %s", settings.forwarded_allow_ips)
    server = uvicorn.Server(config)
    try:
        run_until_stopped(server, sock)
    finally:
        sock.close()
    if not server.started:
        raise ServeError("the key server did not start (see the log above)")


def run_until_stopped(server: Any, sock: socket.socket, then: Any = None) -> None:
    """``server.run`` (a uvicorn.Server) on ``sock`` until SIGTERM or SIGINT, then return, so that the caller
    closes its database.  uvicorn (0.29 and later) raises the signal that stopped it again once it has shut
    down, under the handler it found: the default one killed the process there (exit 143), before the
    caller's ``finally`` closed the storage: SQLite's WAL was left beside the database (a copy of the file
    alone after `systemctl stop` lacked the last writes) and each worker's PostgreSQL connections were cut,
    not closed.  Its own handler is left in place around it instead (a signal before it runs: it starts,
    then stops at once), and what was there before is put back after (``then``: that handler instead)."""
    stops = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, server.handle_exit) for sig in stops}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if then is None else then)


#: Seconds the workers get to finish the requests under way once told to stop (uvicorn's graceful shutdown
#: is 10 s, and an export under way finishes first), before they are killed.
WORKERS_STOP_SECONDS = 30.0


def serve_workers(
    make_app: Callable[[int], contextlib.AbstractContextManager[Any]], settings: ServeSettings, started: str, workers: int,
    sock: socket.socket | None = None,
) -> None:
    """Serve with ``workers`` processes on one listening socket; ``make_app(i)`` gives worker ``i`` its app
    (and closes what it opened, its database connection, when the worker ends).

    The socket is bound here (unless given bound), then each worker is forked: the kernel hands each new connection to one
    of them.  SIGTERM or SIGINT stops them all, each finishing its requests (as one process does).  A
    worker that ends by itself ends the others too, and the command with its exit code (2, a
    configuration error such as a refused login, is not restarted by systemd; anything else is 1): a
    key server half its size, or without the worker that exports, is not left running unnoticed."""
    if workers < 1:
        raise InputError("--workers must be at least 1")
    configure_logging(workers)
    sock = sock or bind(settings.host, settings.port)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    log.info("%s; listening on http://%s:%d with %d workers", started, host, sock.getsockname()[1], workers)
    if settings.forwarded_allow_ips:
        log.info("client addresses from X-Forwarded-For of %s", settings.forwarded_allow_ips)
    stop: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _: stop.append(signum)) for sig in (signal.SIGTERM, signal.SIGINT)}
    context = multiprocessing.get_context("fork")  # the app is built in the worker: nothing of it is pickled
    processes = []
    ended, code = None, None
    try:
        for index in range(workers):
            process = context.Process(
                target=_run_worker, args=(make_app, index, workers, settings, sock, os.getpid(), stop),
                name=f"bluezone-worker-{index}",
            )
            process.start()
            processes.append(process)
        while not stop and ended is None:
            done = wait([p.sentinel for p in processes], timeout=0.5)
            ended = next((p for p in processes if p.sentinel in done), None)
        if stop:  # systemd (KillMode=control-group) and Ctrl-C signal the workers too: they end first, as asked
            ended = None
        if ended is not None:
            ended.join()  # its sentinel closes a moment before its exit code can be read
            code = ended.exitcode
            log.error("worker %d (pid %s) ended (exit code %s): stopping the other workers", processes.index(ended),
                      ended.pid, code)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests under way
        _stop_workers(processes, stop)
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if ended is not None:
        raise SystemExit(2 if code == 2 else 1)


def _stop_workers(processes: list[Any], stop: list[int]) -> None:
    """Wait for the workers told to stop, at most WORKERS_STOP_SECONDS, then kill those left; a further
    SIGTERM or SIGINT meanwhile (a second Ctrl-C, `kill` again) kills them at once, as uvicorn's second
    Ctrl-C does (it waited the whole 30 s)."""
    asked = len(stop)
    deadline = time.monotonic() + WORKERS_STOP_SECONDS
    for process in processes:
        while process.is_alive() and len(stop) == asked and time.monotonic() < deadline:
            process.join(min(0.1, max(0.0, deadline - time.monotonic())))
        if process.is_alive():
            if len(stop) > asked:
                log.warning("worker pid %s killed: asked again to stop", process.pid)
            else:
                log.warning("worker pid %s did not stop within %g s: killed", process.pid, WORKERS_STOP_SECONDS)
            process.kill()
            process.join()


def _run_worker(
    make_app: Callable[[int], contextlib.AbstractContextManager[Any]], index: int, workers: int,
    settings: ServeSettings, sock: socket.socket, parent: int, stopped: list[int],
) -> None:
    """One worker (a forked process): its own app and database connection, uvicorn on the shared socket."""
    import uvicorn

    from bluezone.errors import BluezoneError

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop_before_serving)  # until uvicorn's own is in place (``run_until_stopped``)
    if stopped:  # a stop between the fork and the line above went to the parent's handler, forked with it: noted
        raise SystemExit(0)  # in ``stopped`` (its copy of the parent's list), else swallowed (killed after 30 s)
    _end_with(parent)
    try:
        with make_app(index) as app:
            log.info("worker %d of %d serving%s", index, workers, " (runs the scheduled exports)" if index == 0 else "")
            server = uvicorn.Server(uvicorn_config(app, settings))
            # stopped: a stop asked again (the parent's, just after systemd's to the whole group) waits for the
            # close below; under the default handler it killed the worker first, its connection cut, not closed
            run_until_stopped(server, sock, then=signal.SIG_IGN)
    except BluezoneError as exc:  # a refused login, the database gone at start: one line, its exit code
        log.error("worker %d: %s", index, exc)
        raise SystemExit(exc.exit_code) from None
    if not server.started:
        raise SystemExit(1)


def _stop_before_serving(_signum: int, _frame: object) -> None:
    """A stop that comes while a worker opens its app (its database connection) and uvicorn, before uvicorn's
    handler is in place: the worker ends there, through the ``with`` that closes them (exit 0, as asked).  Under
    the default handler it was killed with its PostgreSQL connection cut, not closed (systemd's SIGTERM to the
    group just after a worker said it serves: CI, the suite on both cores).  A stop asked again is ignored, as
    once uvicorn has run (``run_until_stopped``): the parent's own, half a second after systemd's, raised here
    again inside the close and cut it short (the parent kills a worker asked twice to stop)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    raise SystemExit(0)


#: prctl(2) option: the signal a process gets when its parent ends (Linux).
PR_SET_PDEATHSIG = 1


def _end_with(parent: int) -> None:
    """SIGTERM this worker when ``parent`` ends: a parent killed outright (SIGKILL, the OOM killer) left its
    workers serving, orphans holding the port, one of them exporting, that nothing watched or stopped."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the workers outlive a killed parent
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it ended before the line above
        raise SystemExit(1)
