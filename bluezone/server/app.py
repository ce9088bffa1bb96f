"""The key server's ASGI app (FastAPI): publish, export files, signing key, OpenAPI.

Built by ``create_app`` from its parts (storage, clock, signer, export directory) so
tests run it in process on a virtual clock and ``bluezone server run`` serves it with
uvicorn (``serve.py``: deadlines, connection caps).  The request body of ``/v1/publish`` is read
by hand, with a size limit, so a huge or truncated body costs nothing and gets a machine-readable
400/413, and a client that leaves mid-request is one log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bluezone.clock import Clock, SystemClock
from bluezone.errors import InputError, PublishError, ServerStorageError
from bluezone.readfile import open_regular_file, read_regular_file
from bluezone.server.codes import CodeKey
from bluezone.server.exportclock import export_unless_clock_jumped
from bluezone.server.exports import INDEX_FILE, ExportConfig, embargoed
from bluezone.server.publish import PublishConfig, publish, too_large, verify
from bluezone.server.signing import Signer
from bluezone.server.storage import Storage

log = logging.getLogger(__name__)

_EXPORT_NAME = re.compile(r"^[A-Za-z0-9_-]+\.zip$")
#: How long /readyz waits for the database: well below a load balancer's own timeout (typically 5 s).
READY_TIMEOUT_SECONDS = 2.0

_TEK_SCHEMA = {
    "type": "object",
    "required": ["key", "rollingStartNumber"],
    "properties": {
        "key": {"type": "string", "format": "byte", "description": "16-byte Temporary Exposure Key, base64"},
        "rollingStartNumber": {"type": "integer", "description": "ENIntervalNumber the key starts at"},
        "rollingPeriod": {"type": "integer", "minimum": 1, "maximum": 144, "default": 144},
        "transmissionRisk": {"type": "integer", "minimum": 0, "maximum": 8, "default": 0},
    },
}
_PUBLISH_SCHEMA = {
    "type": "object",
    "required": ["temporaryExposureKeys", "verificationPayload"],
    "properties": {
        "temporaryExposureKeys": {"type": "array", "items": _TEK_SCHEMA, "maxItems": 30},
        "verificationPayload": {"type": "string", "description": "the one-time code from the health authority"},
        "symptomOnsetInterval": {"type": "integer", "description": "ENIntervalNumber of symptom onset"},
        "revisionToken": {"type": "string", "description": "from an earlier upload of these keys: needed to change their report type"},
        "padding": {"type": "string", "description": "random bytes to hide the request size"},
    },
}
_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"code": {"type": "string"}, "error": {"type": "string"}},
}
_NOT_JSON = {"description": "body not sent as application/json", "content": {"application/json": {"schema": _ERROR_SCHEMA}}}


#: In the scope of a ``HEAD`` that ``HeadAsGet`` runs as its ``GET``: a route whose body costs a read (an export zip)
#: sends the GET's headers and reads nothing (``head_only``).
HEAD_ONLY = "bluezone.head_only"


class HeadAsGet:
    """Answers ``HEAD`` as its ``GET``, headers only: HTTP requires it of every server (RFC 9110, 9.1), and FastAPI's
    routes answered 405, so an uptime monitor checking ``/healthz`` with ``HEAD`` saw the server down for good.
    A body made anyway is thrown away here; a route that would read it from disk asks ``head_only`` first."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] in ("http.response.body", "http.response.pathsend"):
                message = {"type": "http.response.body", "body": b"", "more_body": message.get("more_body", False)}
            await send(message)

        await self.app({**scope, "method": "GET", HEAD_ONLY: True}, receive, headers_only)


def head_only(request: Request) -> bool:
    """Whether ``request`` is a ``HEAD`` (run as its ``GET``): its body would be thrown away unread."""
    return bool(request.scope.get(HEAD_ONLY))


def _sent_as_json(request: Request) -> bool:
    """Whether the request says its body is JSON (``application/json``, parameters such as a charset aside):
    a browser sends that to another site only after asking it (CORS preflight), which this server never allows."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0]
    return media_type.strip().lower() == "application/json"


#: Far above any index (14 days of names at national scale without roll-ups: ~1 MiB), held once per request.
INDEX_READ_LIMIT = 64 << 20


def _read_index(path: Path) -> bytes:
    """``index.txt`` as one read of the file an export last renamed into place, so the length sent is its
    body's: a FileResponse stats, then opens, and an export replacing the index between the two sent the new
    file under the old one's length.  Empty before the first export (or where no regular file stands)."""
    try:
        return read_regular_file(path, INDEX_READ_LIMIT, "export index")
    except InputError as exc:
        if os.path.lexists(path):  # not the usual "no export yet"
            log.warning("%s: served an empty index", exc)
        return b""


def _index_length(path: Path) -> int:
    """The length of what ``_read_index`` sends, from the file's size: a HEAD (a CDN revalidating the index, a
    monitor) read the whole index, up to a MiB at national scale, for headers."""
    try:
        with open_regular_file(path, INDEX_READ_LIMIT, "export index") as file:
            return os.fstat(file.fileno()).st_size
    except InputError:
        return 0


#: An export file is sent in chunks of this size (Starlette's FileResponse's).
EXPORT_CHUNK = 64 << 10


def _open_export(path: Path) -> tuple[BinaryIO, int] | None:
    """``path`` open and its size, or None where no regular file stands: sent from this descriptor, so an export
    purged meanwhile (``remove_stale_files``) is still sent whole.  A FileResponse looked, stat'ed and opened the
    name apart: a purge between gave a RuntimeError and a 500, or a 200 cut off after its headers."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # (non-blocking: a FIFO never hangs it)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
    except OSError:
        info = None
    if info is None or not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb"), info.st_size


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    while chunk := file.read(EXPORT_CHUNK):
        yield chunk


class ExportResponse(StreamingResponse):
    """An export zip sent from its open ``file``, which is closed when the answer ends, however it ends: for a
    client gone mid-way Starlette leaves the chunks' generator unfinished, and its file stayed open until the
    garbage collector found the cycle holding it (9 of 30 such downloads 2 s later), a descriptor each."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        super().__init__(_chunks(file), media_type="application/zip", headers={"content-length": str(size)})
        self.file = file

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.file.close()  # (a read under way in a thread is waited for: anyio does not abandon it when cancelled)


def _failure_words(exc: Exception) -> str:
    """A scheduled export's failure in words: the storage's own message, or the system's for a file it could not
    write (keys and check-ins not in a file it recorded wait for the next export)."""
    if isinstance(exc, OSError):
        return f"cannot write the export files: {exc.strerror or exc}; what is not in a recorded file waits"
    return str(exc)


def create_app(
    storage: Storage,
    *,
    code_key: CodeKey,
    export_dir: str | Path | None = None,
    signer: Signer | None = None,
    clock: Clock | None = None,
    publish_config: PublishConfig = PublishConfig(),
    export_config: ExportConfig = ExportConfig(),
    export_every: float | None = None,
    ready_timeout: float = READY_TIMEOUT_SECONDS,
    docs: bool = False,
) -> FastAPI:
    """The app; with ``export_every`` (seconds) and a signer, batches are exported on a schedule.
    ``/healthz`` answers while the process does (liveness); ``/readyz`` only while the database answers
    within ``ready_timeout`` seconds (readiness: whether a load balancer should send it uploads)."""
    clock = clock or SystemClock()
    exports = Path(export_dir) if export_dir is not None else None

    #: the scheduled export under way in a thread (cancelling its task does not stop the thread)
    exporting: list[asyncio.Future[Any]] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None
        if export_every and signer is not None and exports is not None:
            task = asyncio.create_task(_export_loop(export_every))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            # an export under way finishes first: the caller closes the storage once this returns, and a
            # SQLite connection closed under the export's thread crashed the process (exit 139)
            for job in exporting:
                try:
                    await job
                except Exception:  # noqa: BLE001 - stopping anyway; the next start retries
                    log.exception("scheduled export failed")

    def _export_once(now: float, every: float) -> Any:
        assert signer is not None and exports is not None
        # a clock far past the last export's (kept in the database: a server booted with its clock a month
        # ahead, or cron's exports beside it) exports and deletes nothing until the next export (exportclock.py)
        run = export_unless_clock_jumped(storage, signer, exports, now, export_config, every=every)
        if run.jump is not None:
            log.warning("%s", run.held_sentence())
        return embargoed(storage, now)

    async def _export_loop(every: float) -> None:
        while True:
            try:
                job = asyncio.ensure_future(run_in_threadpool(_export_once, clock.now(), every))
                exporting[:] = [job]
                waiting = await asyncio.shield(job)
                exporting.clear()
                if waiting.keys:  # so "0 keys" after an upload does not read as a lost upload
                    log.info("%s", waiting.sentence())
            except (ServerStorageError, OSError) as exc:  # the database away, a full disk: one line, as `server export`
                exporting.clear()  # says it (a traceback at every export of an hour-long outage said nothing more)
                log.warning("scheduled export failed, tried again in %g s: %s", every, _failure_words(exc))
            except Exception:  # noqa: BLE001 - keep serving; the next run retries
                exporting.clear()
                log.exception("scheduled export failed")
            await asyncio.sleep(every)

    app = FastAPI(
        title="bluezone key server",
        version="1",
        description="Diagnosis key upload (GAEN publish API shape) and signed GAEN export batches.",
        lifespan=lifespan,
        # FastAPI's pages (/docs, /redoc) load their JavaScript from a CDN into the key server's own origin,
        # where the publish API is: off unless asked for (``server run --docs``); /openapi.json stays
        docs_url="/docs" if docs else None,
        redoc_url=None,
    )
    app.add_middleware(HeadAsGet)

    @app.post(
        "/v1/publish",
        summary="Upload the daily keys of a person who tested positive",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _PUBLISH_SCHEMA}}}},
        responses={
            200: {"content": {"application/json": {"schema": {"type": "object", "properties": {
                "insertedExposures": {"type": "integer"},
                "revisedExposures": {"type": "integer"},
                "revisionToken": {"type": "string", "description": "show it to revise these keys later"},
            }}}}},
            400: {"description": "invalid request", "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
            403: {"description": "verification code invalid, used, expired or revoked", "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
            413: {"description": "request too large", "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
            415: _NOT_JSON,
            429: {"description": "too many failed codes", "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
        },
    )
    async def publish_keys(request: Request) -> JSONResponse:
        return await _answer(
            request, lambda body, client: publish(storage, body, client, clock.now(), publish_config, code_key=code_key).as_dict()
        )

    @app.post(
        "/v1/verify",
        summary="The test type of a verification code, which stays unused (a node sends check-ins only with a positive one)",
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "properties": {"verificationPayload": {"type": "string"}}}}}}},
        responses={
            200: {"content": {"application/json": {"schema": {"type": "object", "properties": {
                "testType": {"type": "string", "enum": ["confirmed", "likely", "negative", "recursive"]},
            }}}}},
            400: {"description": "invalid request", "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
            403: {"description": "verification code invalid, used, expired or revoked", "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
            415: _NOT_JSON,
            429: {"description": "too many failed codes", "content": {"application/json": {"schema": _ERROR_SCHEMA}}},
        },
    )
    async def verify_code(request: Request) -> JSONResponse:
        return await _answer(
            request, lambda body, client: {"testType": verify(storage, body, client, clock.now(), publish_config, code_key=code_key)}
        )

    async def _answer(request: Request, answer: Callable[[bytes, str], dict[str, Any]]) -> JSONResponse:
        """``answer(body, client address)`` run in a thread as the JSON reply; a PublishError as its status."""
        if not _sent_as_json(request):
            # a web page can make its visitors' browsers POST text/plain here unasked (a CORS "simple request"):
            # each a guess from an address of its own, spending that address's failed tries (a carrier NAT's)
            return JSONResponse(
                {"code": "unsupported_media_type", "error": "the request body must be sent as Content-Type: application/json"},
                415,
            )
        body = await _body(request)
        if isinstance(body, JSONResponse):
            return body
        client = request.client.host if request.client else "unknown"
        try:
            return JSONResponse(await run_in_threadpool(answer, body, client))
        except PublishError as exc:
            return JSONResponse(exc.as_dict(), exc.status)
        except ServerStorageError as exc:  # PostgreSQL away: was a plain-text 500 and a traceback per upload
            log.warning("%s: answered 503", exc)  # its words (host, role; the password masked) for the log only
            return JSONResponse(
                {"code": "database_unavailable", "error": "the key server's database is not answering: try again later"}, 503
            )

    async def _body(request: Request) -> bytes | JSONResponse:
        """The request's body, read up to the publish limit (413 past it: a huge or endless body costs nothing)."""
        limit = publish_config.max_body_bytes
        try:
            declared = int(request.headers.get("content-length", "0"))
        except ValueError:
            declared = 0
        if declared > limit:
            return JSONResponse(too_large(publish_config).as_dict(), 413)
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    return JSONResponse(too_large(publish_config).as_dict(), 413)
        except ClientDisconnect:  # one line, not a traceback: it happens all the time on mobile networks
            # (no address: an upload is a sign of a positive test)
            log.info("publish: a client went away before its whole request arrived")
            return JSONResponse({"code": "client_disconnected", "error": "request incomplete"}, 400)
        return bytes(body)

    @app.get("/v1/signing-key", summary="The export signing key (id, version, base64 DER public key)")
    async def signing_key() -> dict[str, Any]:
        if signer is None:
            return JSONResponse({"code": "no_signing_key", "error": "this server has no signing key"}, 404)  # type: ignore[return-value]
        return signer.public_info()

    @app.get("/v1/exports/index.txt", response_class=PlainTextResponse, summary="Batch file names, one per line")
    async def export_index(request: Request) -> Any:
        if exports is not None and head_only(request):  # the GET's length, from the file's size: none of it read
            length = await run_in_threadpool(_index_length, exports / INDEX_FILE)
            return PlainTextResponse(b"", headers={"content-length": str(length)})
        return PlainTextResponse(b"" if exports is None else await run_in_threadpool(_read_index, exports / INDEX_FILE))

    @app.get("/v1/exports/{name}", summary="One signed export batch (zip with export.bin and export.sig)")
    async def export_file(name: str, request: Request) -> Any:
        opened = _open_export(exports / name) if exports is not None and _EXPORT_NAME.fullmatch(name) else None
        if opened is None:
            return JSONResponse({"code": "not_found", "error": "no such export file"}, 404)
        file, size = opened
        headers = {"content-length": str(size)}
        if head_only(request):  # the GET's headers: its body was read whole from disk, then thrown away
            file.close()
            return Response(media_type="application/zip", headers=headers)
        return ExportResponse(file, size)

    @app.get("/healthz", summary="Liveness: the process answers (it touches no database)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    #: the database check under way and when it began: a connection attempt can hang past the timeout, and checks
    #: piling up behind it would hold a thread each
    checking: list[tuple[asyncio.Future[Any], float]] = []

    @app.get(
        "/readyz",
        summary="Readiness: the database answers (503 when it does not; send uploads elsewhere)",
        responses={503: {"description": "not ready", "content": {"application/json": {"schema": _ERROR_SCHEMA}}}},
    )
    async def readyz() -> JSONResponse:
        loop = asyncio.get_running_loop()
        if checking and not checking[0][0].done():
            # a check under way is shared: a second load balancer's check arriving meanwhile was told 503 at once
            job, began = checking[0]
            if loop.time() - began >= ready_timeout:
                return _not_ready("the last database check has not ended yet")
        else:
            # the process's own export holds its connection for seconds on a large day: the server is busy, not
            # broken, so the database is asked on a connection of its own (behind it, /readyz said 503)
            own_export = any(not job.done() for job in exporting)
            job = asyncio.ensure_future(run_in_threadpool(storage.ping, own_connection=own_export))
            job.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved, even if late
            began = loop.time()
            checking[:] = [(job, began)]
        try:
            await asyncio.wait_for(asyncio.shield(job), began + ready_timeout - loop.time())
        except TimeoutError:
            log.warning("not ready: the database did not answer within %g s", ready_timeout)
            return _not_ready(f"the database did not answer within {ready_timeout:g} s")
        except Exception as exc:  # noqa: BLE001 - whatever the database raised, the server is not ready
            # the detail (host, database, role) goes to the log, not to whoever asks
            log.warning("not ready: the database failed: %s", exc)
            return _not_ready("the database failed")
        return JSONResponse({"status": "ready"})

    def _not_ready(reason: str) -> JSONResponse:
        return JSONResponse({"code": "not_ready", "error": reason}, 503)

    return app
