"""HTTP calls from a node to one key server: publish keys, fetch the signing key and batches.

``KeyServerClient`` talks HTTP through httpx; pass ``http=`` (any ``httpx.Client``, e.g.
one with an in-process transport) or ``transport=`` so tests need no network.  Answers are
read at most a bounded size far, so a broken or hostile server cannot fill the device's memory,
and within a total ``deadline`` per request, so one sending a byte a second cannot keep a check
running for days.  Transient failures (a dropped or refused connection, a read timeout, 429,
502, 503, 504) are tried again with exponential backoff, GET requests only: a publish whose
request went out is never sent twice (httpx's transport retries only the connection itself).
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from bluezone.client.deadline import Deadline, transport_with_deadline
from bluezone.client.pinning import PinnedKey
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.errors import InputError, KeyServerError, TransientKeyServerError, UploadRefusedError
from bluezone.keyformat.batch_names import EXPORT_FILE, ROLLUP_FILE
from bluezone.keyformat.keyfile import publish_body
from bluezone.keyformat.keys import MAX_KEY_FILE_BYTES, MAX_REVISION_TOKEN_CHARS

log = logging.getLogger(__name__)

#: Seconds a whole answer may take, headers to last byte (a national day's batch is a few MB).
DEADLINE_SECONDS = 300.0
#: Tries after the first for a GET that failed transiently; waits of 1, 2, 4 ... s between them.
RETRIES = 3
BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
TRANSIENT_STATUS = frozenset({429, 502, 503, 504})
MAX_ANSWER_BYTES = 1024 * 1024  # signing key, index and publish answers are a few kB at most
#: What the server's exports are called: a plain file name of at most 255 bytes (a longer one is no
#: file, and a roll-up name of 5,000 digits crashed int() reading its day).
BATCH_NAME = re.compile(r"^[A-Za-z0-9_-]{1,251}\.zip$")
#: Publish refusals that are the user's input, not the server's trouble.
USER_REFUSALS = {
    "verification_code_invalid": "the verification code is not valid: compare it digit by digit with the one the health"
    " authority gave you, or ask them for a new one",
    "verification_code_mistyped": "this verification code has a typo (a digit too many or too few, or its check digit"
    " does not match): read it again, digit by digit",
    "verification_code_used": "the verification code was already used (each code works once): if you uploaded with it"
    " before, your keys are on the server and there is nothing more to do; if not, ask the health authority for a new one",
    "verification_code_expired": "the verification code has expired: ask the health authority for a new one",
    "verification_code_revoked": "the health authority withdrew this verification code: ask them for a new one",
    "key_before_exposure": "",
    # check-ins the server refuses (too many on one day, too old): the server's reason, send with --no-checkins
    "checkin_invalid": "",
    "checkin_timing_invalid": "",
    # check-ins alone (a venue owner's warning, a device that only checked in) under a code that publishes none
    "checkin_code_type_invalid": "a negative test's or a close contact's (recursive) code publishes no check-ins, and"
    " nothing else was sent; ask the health authority for a confirmed or likely code (this one is not used up)",
    # a later test's code: the token is kept per server address in the database that made the first upload
    "missing_revision_token": "these keys were sent before under another code, and this database holds no revision"
    " token of that upload for this server address: upload from the device and database that sent them, with --server"
    " written as it was then (this code is not used up)",
}


#: The most of a server's own words (its error text) an error message repeats.
MAX_SHOWN_CHARS = 200


def _shown(text: str) -> str:
    """A server's text as it may appear in our one-line errors: printable characters only (no newline,
    no terminal escape sequence a hostile server could send to the user's terminal), cut short."""
    text = "".join(c if c.isprintable() else " " for c in text[: MAX_SHOWN_CHARS + 1]).strip()
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "..."


#: ``scheme://`` and the ``user:password@`` after it (a key server behind HTTP basic authentication)
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*@)")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_ENCODE_USERINFO = "in a user name or password write '/' as %2F, '?' as %3F, '#' as %23, '@' as %40, ':' as %3A"


def shown_url(url: str, userinfo: str = "***@") -> str:
    """``url`` as it may be shown (errors, prompts, reports, logs): a user name and password given in it
    (``https://user:pw@host``) as ``***``; they were printed, and kept in the store as the server's name."""
    return _USERINFO.sub(lambda m: m[1] + userinfo, url, count=1) if _USERINFO.match(url) else url


def _shown_refused(url: str) -> str:
    """A refused ``url`` as its error may show it: everything before its last '@' but the scheme as
    ``***``.  ``shown_url`` finds a password only where a parser would (``https://alice:pa#ss@host``
    ends its authority at '#', ``alice:pw@host`` has no scheme): such a URL is refused, and its
    password was printed in the refusal."""
    head, at, rest = url.rpartition("@")
    if not at:
        return url
    scheme, sep, _ = head.partition("://")
    return f"{scheme}://***@{rest}" if sep and _SCHEME.fullmatch(scheme) else f"***@{rest}"


def base_url_of(url: str) -> str:
    """The server's base URL as the node keys its state by and shows it: without credentials (the same
    server with another password is the same server).  The API lives under ``/v1/`` of it, so
    a URL given with ``/v1`` (or a trailing slash) is the same server and must not ask for /v1/v1/...;
    so is one given as its exports' folder or index (``/v1/exports``, ``.../index.txt``), what a static
    host's address looks like (it asked for /v1/exports/v1/exports/index.txt: 404)."""
    base = shown_url(url, "").rstrip("/")
    for tail in ("/v1/exports/index.txt", "/v1/exports", "/v1"):
        if base.endswith(tail):
            return base.removesuffix(tail)
    return base


def checked_server_url(base_url: str) -> str:
    """``base_url`` as the node keys its state by (``base_url_of``), or InputError for one no request could
    use.  Commands check it before anything else: ``upload`` used it in the store first (a byte that is no
    UTF-8 was 'UnicodeEncodeError', exit 1) and asked its questions before the client refused it."""
    shown = _shown_refused(base_url)
    if not base_url.startswith(("http://", "https://")):
        raise InputError(f"server URL must start with http:// or https://, got {shown!r}")
    if any(c.isspace() for c in base_url):  # 'http://keys example.org' was looked up in DNS 4 times, then exit 1
        raise InputError(f"server URL {shown!r} holds a space: give the key server's address as published")
    if "?" in base_url or "#" in base_url:  # the API's paths were put after it: '...#frag/v1/signing-key' asked '/'
        raise InputError(f"server URL {shown!r}: give the key server's address without '?' or '#' (e.g. https://keys.example.org)")
    if "\\" in base_url:  # 'https://keys.example.org\@evil.example': a browser's host is keys.example.org (it reads a
        # backslash as '/'), httpx's is evil.example, with the user name 'keys.example.org\': the upload went there
        raise InputError(f"server URL {shown!r} holds a backslash, which URL readers take apart differently: give the"
                         " key server's address as published (in a user name or password write it as %5C)")
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise InputError(f"not a usable server URL {shown!r}: {_unusable(base_url, exc)}") from None
    try:
        # an xn-- label is decoded here, and the lookup encodes the host as below: 'keys..example.org', a label of
        # 64 characters or 'xn--a' was 'UnicodeError', exit 1, once connecting
        host = url.host
        url.raw_host.decode("ascii").encode("idna")
    except UnicodeError:
        raise InputError(
            f"server URL {shown!r} gives no host name DNS can look up (an empty label, one over 63 characters, or an"
            " xn-- label that is no name): give the key server's address as published"
        ) from None
    if not host:
        raise InputError(f"server URL {shown!r} has no host")
    if b"@" in url.raw_path:  # 'https://alice:p@ss/word@keys.example.org' sent 'alice:p' to the host 'ss', and the
        # password's tail ('word@keys...') was shown in every message and kept in the store as the server's name
        raise InputError(f"server URL {shown!r}: an '@' after the host; {_ENCODE_USERINFO}")
    if url.port is not None and not 0 < url.port < 65536:
        raise InputError(f"server URL {shown!r}: port {url.port} is not 1-65535")
    if url.userinfo and url.scheme == "http" and not _loopback(host):
        # basic authentication is the password itself in every request's header: over http:// anybody on the
        # way (a café's Wi-Fi, a proxy) reads it, and the node sent it on every check
        raise InputError(
            f"server URL {shown!r}: a user name and password over plain http:// would be sent in clear to"
            f" the server; give its https:// address (http:// with a password only to this machine: localhost)"
        )
    return base_url_of(base_url)


def in_clear(base_url: str) -> str | None:
    """A line saying that ``base_url`` (a checked one) is plain http:// to another machine, or None: an upload's
    code and keys (a venue warning's reports) then cross the network unencrypted, and a typed ``http://`` for
    ``https://`` went without a word (the server's reply is the same)."""
    url = httpx.URL(base_url)
    if url.scheme != "http" or _loopback(url.host):
        return None
    return (
        "  (plain http://: anyone on the way, a Wi-Fi or a provider, can read the code and what is sent, and see"
        " who sends it; a health authority's key server is https://)"
    )


def _unusable(url: str, exc: httpx.InvalidURL) -> str:
    """Why httpx took no ``url`` (http(s)://), without a word of its password: its reason quotes a part
    ("Invalid port: 'pa'" of 'https://u:pa/ss@...'), so with credentials given it is told only when the
    host after them fails alone (shown anyway: "Invalid IPv4 address: '0177.0.0.1'"); else they need encoding."""
    if "@" not in url:
        return str(exc)
    scheme, _, _ = url.partition("://")
    try:
        httpx.URL(f"{scheme}://{url.rpartition('@')[2]}")
    except httpx.InvalidURL as bare:
        return f"{bare} (its host)"
    return _ENCODE_USERINFO


def _loopback(host: str) -> bool:
    """Whether ``host`` is this machine by its name or address (what never leaves it: no one on the way)."""
    import ipaddress

    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _credentials(base_url: str) -> dict[str, Any]:
    """The user name and password given in ``base_url``, as a request's HTTP basic authentication
    (``auth=``, none without them: the client's own setting, whatever httpx-like client it is)."""
    url = httpx.URL(base_url)
    return {"auth": (url.username, url.password)} if url.userinfo else {}


class KeyServerClient:
    """HTTP calls to one key server (sync; one ``httpx.Client``)."""

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        deadline: float = DEADLINE_SECONDS,
        retries: int = RETRIES,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = checked_server_url(base_url)  # (no credentials: shown in errors, the state's key)
        self._auth = _credentials(base_url)
        self._deadline = Deadline(monotonic)
        if transport is None and http is None:  # retries: a connection that could not be made
            transport = transport_with_deadline(self._deadline, retries)
        self._http = http or httpx.Client(transport=transport, timeout=timeout)
        self._owns_http = http is None
        self.deadline = deadline
        self.retries = retries
        self._monotonic = monotonic
        self._sleep = sleep

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> KeyServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, max_bytes: int = MAX_ANSWER_BYTES, **kwargs: Any) -> bytes:
        """The body of a successful answer, read at most ``max_bytes`` far and within ``deadline``
        seconds: a broken or hostile server must not be able to fill this device's memory or
        hold it for ever.  A GET that fails transiently is tried again, with backoff."""
        url = self.base_url + path
        tries = 1 + (self.retries if method == "GET" else 0)
        for attempt in range(tries):
            try:
                return self._request_once(method, url, max_bytes, **kwargs)
            except TransientKeyServerError as exc:
                if attempt + 1 == tries:
                    what = f" after {tries} tries" if tries > 1 else ""
                    raise KeyServerError(f"{exc}{what}", exc.code, exc.status) from None
                wait = min(BACKOFF_SECONDS * 2**attempt, MAX_BACKOFF_SECONDS)
                log.warning("%s; trying again in %.0f s", exc, wait)
                self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _request_once(self, method: str, url: str, max_bytes: int, **kwargs: Any) -> bytes:
        deadline = self._deadline.start(self.deadline)
        try:
            # uncompressed only, refused before its body is read: httpx inflates each chunk whole, so gzip in
            # gzip (a 1.8 kB answer saying "Content-Encoding: gzip, gzip") became 1 GB at once, before the
            # size cap below could look
            headers = {**kwargs.pop("headers", {}), "Accept-Encoding": "identity"}
            with self._http.stream(method, url, headers=headers, **self._auth, **kwargs) as response:
                encoding = response.headers.get("content-encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise KeyServerError(f"{url}: the answer is compressed ({_shown(encoding)}), though not asked to be")
                # gathered where the bytes returned come from without a copy (a bytearray's bytes() held a
                # 256 MiB batch twice: 586 MiB peak for one hostile file where a Raspberry Pi may have 512)
                body = io.BytesIO()
                for chunk in response.iter_bytes():
                    body.write(chunk)
                    if body.tell() > max_bytes:
                        raise KeyServerError(f"{url}: the answer is larger than {max_bytes} bytes")
                    if self._monotonic() > deadline:
                        raise self._too_slow(url)
        except httpx.HTTPError as exc:
            if self._monotonic() > deadline:  # the deadline cut a socket operation short (headers too)
                raise self._too_slow(url) from None
            # some httpx errors have no text (a read timeout): the reason is then their name
            raise TransientKeyServerError(f"cannot reach the key server at {url}: {str(exc) or type(exc).__name__}") from None
        data = body.getvalue()
        del body
        if 300 <= response.status_code < 400:
            # httpx follows none, and the answer was read as the file asked for: a batch moved elsewhere (a CDN's
            # signed URL) was a 'malformed batch', rejected and not fetched again for 14 days.  Not followed: the
            # node asks only the server it was given
            where = _shown(response.headers.get("location", ""))
            raise KeyServerError(
                f"{url}: {response.status_code} redirect to {where!r}, not followed (give the key server's address as it"
                " answers, e.g. https:// for http://; its files must be served from there, not redirected elsewhere)",
                "", response.status_code,
            )
        if response.status_code >= 400:
            try:
                doc = json.loads(data)
                code, message = str(doc.get("code", "")), _shown(str(doc.get("error", "")))
            except (ValueError, AttributeError, RecursionError):
                opening = data[:MAX_SHOWN_CHARS].decode("utf-8", "replace")
                code, message = "", _shown(opening)
                if opening.lstrip()[:1] == "<":  # a web server's error page: its markup tells the user nothing
                    message = f"{_shown(response.reason_phrase)} (a web page, not a key server's answer: check the URL)"
            reason = " ".join(part for part in (_shown(code), message) if part) or _shown(response.reason_phrase)
            text = f"{url}: {response.status_code} {reason}".rstrip()
            if response.status_code in TRANSIENT_STATUS:
                raise TransientKeyServerError(text, code, response.status_code)
            raise KeyServerError(text, code, response.status_code)
        return data

    def _too_slow(self, url: str) -> KeyServerError:
        return KeyServerError(
            f"{url}: no complete answer within {self.deadline:g} s: "
            "giving up (the server or the network is far too slow)"
        )

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        data = self._request(method, path, **kwargs)
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):  # a hostile server's [[[[...]]]]
            doc = None
        if not isinstance(doc, dict):
            raise KeyServerError(f"{self.base_url}{path}: the answer is not a JSON object")
        return doc

    def publish(
        self, keys: np.ndarray, code: str, symptom_onset_interval: int | None = None, revision_token: str | None = None,
        checkins: Sequence[dict[str, Any]] = (),
    ) -> PublishReceipt:
        """Upload ``keys`` (KEY_DTYPE) with a verification code (and the token of an earlier upload,
        to revise those keys; and sealed check-ins, ``venues.upload``); what the server took."""
        body = publish_body(keys, code, symptom_onset_interval, revision_token, checkins)
        try:
            doc = self._json("POST", "/v1/publish", json=body)
        except KeyServerError as exc:
            if exc.code == "request_too_large" and checkins:  # only check-ins can make a real upload this big
                what = str(exc).split(": ", 2)[-1].removeprefix(f"{exc.status} {exc.code} ")
                raise UploadRefusedError(
                    f"upload refused: {len(checkins)} check-ins are too many for one upload ({what}); "
                    "send the keys alone with --no-checkins",
                    exc.code, exc.status,
                ) from None
            if exc.code in USER_REFUSALS:
                what = USER_REFUSALS[exc.code] or str(exc).split(": ", 2)[-1]
                if exc.code.startswith("checkin") and not USER_REFUSALS[exc.code]:  # the server's reason, bare
                    what = what.removeprefix(f"{exc.status} {exc.code} ") + " (send the keys alone with --no-checkins)"
                raise UploadRefusedError(f"upload refused: {what}", exc.code, exc.status) from None
            # 501: a static web host (python -m http.server, a CDN) given as --server knows no POST at all
            if exc.status >= 500 and exc.status != 501:  # '500 Internal Server Error' alone (its database down) read as the upload's fault
                raise type(exc)(
                    f"{exc} (the key server failed, not the upload: try again later with the same code; a code is"
                    " used up only by an upload the server stored)", exc.code, exc.status,
                ) from None
            raise
        token = doc.get("revisionToken")
        return PublishReceipt(
            _count(doc.get("insertedExposures")),
            _count(doc.get("revisedExposures")),
            token if isinstance(token, str) and 0 < len(token) <= MAX_REVISION_TOKEN_CHARS else None,
            checkins=_count(doc.get("insertedCheckIns")),
        )

    def code_type(self, code: str) -> str | None:
        """What the server says ``code`` is for (``confirmed``, ``likely``, ``negative``, ``recursive``; the code
        stays unused), or None from a server that cannot say (no /v1/verify: an older bluezone, another server).
        A code it refuses (invalid, used, expired, revoked) is UploadRefusedError, as its upload would be."""
        try:
            doc = self._json("POST", "/v1/verify", json={"verificationPayload": code})
        except KeyServerError as exc:
            if exc.status in (404, 405, 501):
                return None
            if exc.code in USER_REFUSALS:
                raise UploadRefusedError(f"upload refused: {USER_REFUSALS[exc.code] or str(exc)}", exc.code, exc.status) from None
            raise
        kind = doc.get("testType")
        return kind if kind in ("confirmed", "likely", "negative", "recursive") else None

    def signing_key(self) -> PinnedKey:
        doc = self._json("GET", "/v1/signing-key")
        key = doc.get("public_key")
        if not isinstance(key, str) or not key:
            raise KeyServerError(f"{self.base_url}/v1/signing-key: no public_key in the answer")
        key_id, version = doc.get("key_id"), doc.get("key_version")
        return PinnedKey(key, key_id if isinstance(key_id, str) else None, version if isinstance(version, str) else None)

    def index(self) -> list[str]:
        """Batch names, oldest first; a name that is not a plain file name is an error (no paths)."""
        text = self._request("GET", "/v1/exports/index.txt").decode("utf-8", "replace")
        names = [line.strip() for line in text.splitlines() if line.strip()]
        for name in names:
            if not BATCH_NAME.fullmatch(name):
                raise KeyServerError(f"{self.base_url}/v1/exports/index.txt lists {name[:60]!r}, not a batch file name")
        return names

    def batch(self, name: str) -> bytes:
        return self._request("GET", f"/v1/exports/{name}", max_bytes=MAX_KEY_FILE_BYTES)


def covered_rollups(names: Iterable[str], processed: Collection[str]) -> set[str]:
    """The roll-ups among ``names`` that hold nothing new for a node that processed ``processed``: it
    processed every file of that export day they replace (the exporter rolls a day's files up a day
    after it ends, so a node checking at least daily never downloads a roll-up; one away longer
    downloads the roll-ups instead of the day's thousands of small files).  A node that processed only
    some of them downloads the roll-up: what it had comes again and is matched, not reported twice.

    The rule counts files, it cannot name them: so a day and kind listed with two roll-ups (two
    exporters, or a clock stepping back over midnight) is never skipped, since a file missed and
    another of the same day processed would count the same."""
    had: Counter[tuple[int, str]] = Counter()
    for name in processed:
        if match := EXPORT_FILE.fullmatch(name):
            had[int(match["stamp"]) // DAY_SECONDS, match["kind"]] += 1
    rollups = [(name, match) for name in names if (match := ROLLUP_FILE.fullmatch(name))]
    tags: dict[tuple[int, str], set[str]] = {}
    for _, match in rollups:
        tags.setdefault((int(match["day"]) // DAY_SECONDS, match["kind"]), set()).add(match["tag"])
    covered = set()
    for name, match in rollups:
        day = int(match["day"]) // DAY_SECONDS, match["kind"]
        if len(tags[day]) == 1 and had[day] == int(match["replaces"]):
            covered.add(name)
    return covered


@dataclass(frozen=True)
class PublishReceipt:
    """What the server took from an upload."""

    inserted: int  # keys the server stored new
    revised: int  # keys it had, whose report type this upload changed
    revision_token: str | None  # show it with a later upload of the same keys (None: the server gave none)
    checkins: int = 0  # check-ins (venue reports) the server took


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
