"""Building blocks for key-server tests: two nodes that met (F0's daily keys in one store, the
sightings of its adverts in others), the key server in process, and check-in uploads."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import threading
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
from starlette.testclient import TestClient  # an httpx2.Client over the ASGI app (httpx's API)

from bluezone.client.check import check_server
from bluezone.client.keyserver import KeyServerClient
from bluezone.client.state import ServerState
from bluezone.clock import VirtualClock
from bluezone.crypto import Metadata, aem, aem_key, rpi, rpi_key
from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS, ROLLING_PERIOD, rolling_start
from bluezone.crypto.keys import DailyKey
from bluezone.keyformat.keys import empty_keys
from bluezone.proximity.sightings import SIGHTING_DTYPE
from bluezone.proximity.store import SightingStore
from bluezone.keyformat.venue_reports import ProtectedReport
from bluezone.server.app import create_app
from bluezone.server.codes import CodeKey, issue_code, revoke_code
from bluezone.server.exports import ExportConfig, export_batches
from bluezone.server.publish import PublishConfig, publish
from bluezone.server.signing import keygen
from bluezone.server.storage import SQLiteStorage, Storage, open_storage
from bluezone.venues.location import Venue

#: A fixed "now" (2025-11-20 12:00 UTC) for the virtual clock.
NOW = 1_763_640_000.0
#: A code key for tests that hash codes without a key directory.
KEY = CodeKey(bytes(range(32)))
#: The venue of the check-in tests.
CAFE = Venue.create("Café Hoa", "12 Trần Phú", "food-service", 45, seed=bytes(16))

#: NOW's UTC day number.
TODAY = int(NOW // DAY_SECONDS)
#: The in-process key server's address (starlette's TestClient answers it).
URL = "http://keys.test"
#: what every real client sends with a body for /v1/publish and /v1/verify (the server refuses others: 415)
JSON_HEADERS = {"content-type": "application/json"}


def f0_keys(now: float, days: int = 5, seed: int = 7) -> list[DailyKey]:
    """One daily key per day for the ``days`` days before today, and today's."""
    rng = np.random.default_rng(seed)
    today = rolling_start(now)
    return [DailyKey(rng.bytes(16), today - d * ROLLING_PERIOD) for d in range(days, -1, -1)]


def encounter(tek: DailyKey, first_interval: int, minutes: int, rssi: int, tx_power: int = -20) -> np.ndarray:
    """Sightings every 30 s for ``minutes`` of the adverts ``tek`` sent from ``first_interval``."""
    times = first_interval * INTERVAL_SECONDS + 5 + 30.0 * np.arange(2 * minutes)
    out = np.zeros(len(times), SIGHTING_DTYPE)
    out["time"] = times
    out["rssi"] = rssi
    out["tx_power"] = -128
    for interval in np.unique((times // INTERVAL_SECONDS).astype(int)):
        value = rpi(rpi_key(tek.key), int(interval))
        sel = (times // INTERVAL_SECONDS).astype(int) == interval
        out["rpi"][sel] = np.void(value)
        out["aem"][sel] = np.void(aem(aem_key(tek.key), value, bytes(Metadata(tx_power=tx_power))))
    return out


def make_nodes(tmp_path, now: float = NOW) -> tuple:
    """A (F0, own keys), B (30 min within ~1 m of A two days ago), C (10 m away, same time)."""
    keys = f0_keys(now)
    met = keys[-3]  # two days ago
    start = met.rolling_start + 60
    paths = {}
    for name, sightings in (
        ("a", None),
        ("b", encounter(met, start, 30, rssi=-72)),
        ("c", encounter(met, start, 30, rssi=-100)),
    ):
        path = tmp_path / f"{name}.db"
        with SightingStore.open(path, purge_now=now) as store:
            if sightings is None:
                for k in keys:
                    store.save_daily_key(k, created_at=now)
            else:
                store.add_sightings(sightings)
        paths[name] = path
    return keys, paths


def publish_f0_with_cafe_checkin(server: Server, nodes: dict) -> None:
    """F0 (node a) uploads its keys and a check-in at the café two days ago, 08:00-09:00 UTC, where node b
    was too; the server exports once."""
    from bluezone.client.uploading import keys_to_upload
    from bluezone.venues.checkins import record_visit
    from bluezone.venues.upload import reports_to_upload
    from bluezone.venues.visits import Visit

    visit_start = rolling_start(NOW) * INTERVAL_SECONDS - 2 * 86400 + 8 * 3600
    with SightingStore.open(nodes["b"], create=False) as b:
        record_visit(b, CAFE, visit_start, visit_start + 3600, NOW)
    case = Visit(0, CAFE.location_id, CAFE.description, CAFE.address, visit_start, visit_start + 3600, True, "url")
    checkins = [r.entry() for r in reports_to_upload([case], NOW - 14 * 86400, NOW)]
    with SightingStore.open(nodes["a"], create=False) as a:
        keys = keys_to_upload(a.daily_keys(), NOW, include_today=False)
    server.client.publish(keys, server.code(test_type="confirmed"), checkins=checkins)
    server.export()


def storage_with_yesterdays_keys(db: Path, count: int, seed: int) -> Storage:
    """A new SQLite key server database holding ``count`` random keys of the day before NOW, waiting for export."""
    from bluezone.keyformat.keys import empty_keys
    from bluezone.server.storage import open_storage

    storage = open_storage(db)
    keys = empty_keys(count)
    keys["key"] = np.frombuffer(np.random.default_rng(seed).bytes(16 * count), "V16")
    keys["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD
    storage.insert_keys_unchecked(keys, NOW)
    return storage


def uploaded(keys: np.ndarray, storage, now: float = NOW) -> np.ndarray:
    """``keys`` (a node's download, an export's) without the fake keys the server padded its files
    with, told apart by the secrets of the export days around ``now`` (bluezone/server/padding.py)."""
    from bluezone.server.padding import is_fake

    fake = np.zeros(len(keys), bool)
    for day in range(int(now // 86_400) - 20, int(now // 86_400) + 20):
        fake |= is_fake(keys, storage.padding_secret(day))
    return keys[~fake]


class Server:
    """The key server in process on a virtual clock at NOW: its storage, signing key, export folder,
    app, and a client through starlette's TestClient (an httpx2 client over the ASGI app)."""

    def __init__(self, tmp: Path, publish_config: PublishConfig = PublishConfig()) -> None:
        self.clock = VirtualClock(NOW)
        self.storage = SQLiteStorage(tmp / "server.db")
        self.signer = keygen(tmp / "signing")
        self.exports = tmp / "exports"
        self.code_key = CodeKey.load(tmp / "signing")
        self.app = create_app(
            self.storage, code_key=self.code_key, export_dir=self.exports, signer=self.signer, clock=self.clock,
            publish_config=publish_config,
        )
        self.http = TestClient(self.app, base_url=URL)
        self.client = KeyServerClient(URL, http=self.http)

    def code(self, **kw: object) -> str:
        return issue_code(self.storage, self.clock.now(), key=self.code_key, **kw).code  # type: ignore[arg-type]

    def export(self, **kw: object) -> list:
        return export_batches(self.storage, self.signer, self.exports, self.clock.now(), ExportConfig(**kw))  # type: ignore[arg-type]

    def post(self, body: object) -> tuple[int, dict]:
        r = self.http.post(
            "/v1/publish", content=body if isinstance(body, bytes) else json.dumps(body), headers=JSON_HEADERS
        )
        return r.status_code, r.json()


def check_node(server: Server, db: Path, **kw: object):
    """A node's ``check --server`` of its store at ``db`` against ``server``, at the server's now."""
    with SightingStore.open(db, create=False) as store:
        return check_server(
            server.client,
            ServerState(store),
            store.sightings,
            now=server.clock.now(),
            **kw,  # type: ignore[arg-type]
        )


def checkin_entry(day: int, start_interval: int | None = None) -> dict:
    """One check-in at CAFE as an upload carries it (UTC day, sealed report), from 10:00 of ``day``
    unless ``start_interval`` says when."""
    start = start_interval if start_interval is not None else day * ROLLING_PERIOD + 60
    report = ProtectedReport.seal(CAFE.location_id, start, 6, 6)
    return {"day": day, "report": base64.b64encode(bytes(report)).decode()}


def checkin_upload(code: str, checkins: list, keys: bool = True) -> bytes:
    """A publish request with ``checkins`` under ``code``, and one key of yesterday unless not ``keys``."""
    doc: dict = {"verificationPayload": code, "checkInProtectedReports": checkins}
    if keys:
        day = rolling_start(NOW) - ROLLING_PERIOD
        doc["temporaryExposureKeys"] = [
            {"key": base64.b64encode(bytes([9]) * 16).decode(), "rollingStartNumber": day, "rollingPeriod": 144}
        ]
    return json.dumps(doc).encode()


def write_first_release_tables(conn: Any, postgres: bool = False) -> None:
    """The first release's tables (schema 1) and one likely key, through ``conn`` (sqlite3, or psycopg
    with ``postgres``; the caller commits): what a migration test upgrades."""
    from bluezone.server.storage import schema

    for stmt in schema.FIRST_TABLES:
        conn.execute(stmt.format(serial="BIGSERIAL", blob="BYTEA") if postgres else stmt.format(serial="INTEGER", blob="BLOB"))
    conn.execute("INSERT INTO meta (name, value) VALUES ('schema_version', '1')")
    conn.execute(
        "INSERT INTO exposure_keys (key_data, rolling_start, rolling_period, transmission_risk, report_type,"
        f" received_at) VALUES ({'%s' if postgres else '?'}, 2940000, 144, 0, 2, 0)", [b"\x07" * 16],
    )


def schema_version(storage: Storage) -> int:
    """The schema version a key server database says it is at."""
    with storage._transaction(write=False) as cur:
        return int(storage._exec(cur, "SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0])


def connections_open(dsn: str) -> int:
    """Connections to ``dsn``'s database besides the one asking."""
    import psycopg  # (PostgreSQL's tests only)

    with psycopg.connect(dsn) as conn:
        return int(conn.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0])


def connections_left(dsn: str, seconds: float = 10.0) -> int:
    """``connections_open`` once it is 0, or after ``seconds``: a backend whose client closed leaves
    pg_stat_activity a moment later (seen still there in a suite on both cores at load 6)."""
    deadline = time.monotonic() + seconds
    while (left := connections_open(dsn)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def waiting_for_a_lock(dsn: str, done: threading.Thread, seconds: float = 20.0) -> None:
    """Until another connection waits for a row lock (or ``done`` has ended): the revocation is blocked."""
    import psycopg  # (PostgreSQL's tests only)

    deadline = time.monotonic() + seconds
    with psycopg.connect(dsn, autocommit=True) as conn:
        while done.is_alive() and time.monotonic() < deadline:
            (waiting,) = conn.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ).fetchone()
            if waiting:
                return
            time.sleep(0.01)


def revoked_while_held(
    dsn: str, uploader: Storage, revoker: Storage, monkeypatch: Any, held_at: str,
    body: bytes, at: float, code: str,
) -> dict[str, Any]:
    """``body`` published through ``uploader``, its transaction held open once a statement starting ``held_at``
    ran, while ``code`` is revoked through ``revoker`` (seen waiting for a lock); then both let finish: their
    answers (``upload``, ``revoked``)."""
    held, go = threading.Event(), threading.Event()
    run = uploader._exec

    def holding(cur: Any, sql: str, params: Any = ()) -> Any:
        out = run(cur, sql, params)
        if sql.startswith(held_at) and not held.is_set():
            held.set()
            assert go.wait(30)
        return out

    monkeypatch.setattr(uploader, "_exec", holding)
    return revoked_during(
        dsn, revoker, code, at + 1, held, go,
        upload=lambda: publish(uploader, body, "192.0.2.1", at, PublishConfig(), code_key=KEY),
    )


def revoked_during(
    dsn: str, revoker: Storage, code: str, at: float, held: threading.Event, go: threading.Event,
    **work: Callable[[], Any],
) -> dict[str, Any]:
    """The one piece of ``work`` (name -> call) run in a thread until it sets ``held``; then ``code`` revoked through
    ``revoker`` at ``at`` until it is seen waiting for a lock, and ``go`` lets both finish: their answers by name
    (and ``revoked``), or what either raised (``NAME raised``, ``revoked raised``)."""
    ((name, call),) = work.items()
    said: dict[str, Any] = {}

    def answer(as_name: str, call: Callable[[], Any]) -> None:
        try:
            said[as_name] = call()
        except BaseException as exc:
            said[f"{as_name} raised"] = exc
            raise

    worker = threading.Thread(target=answer, args=(name, call))
    worker.start()
    try:
        assert held.wait(30)
        revocation = threading.Thread(target=answer, args=("revoked", lambda: revoke_code(revoker, code, at, key=KEY)))
        revocation.start()
        waiting_for_a_lock(dsn, revocation)
        go.set()
        worker.join(30)
        revocation.join(30)
    finally:
        go.set()
    return said


def until_it_answers(proc: subprocess.Popen[bytes], url: str, seconds: float = 60) -> None:
    """Wait until a server started as ``proc`` answers 200 at ``url`` (fails if it ends or takes longer)."""
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)


def free_port() -> int:
    """A loopback port free now, for a server started in another process (which binds it itself: another
    process may take it in between, unlikely among the kernel's ~28,000 ephemeral ports)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ScriptedClock:
    """Each export reads the next time of ``times`` (then the last again); counts the readings."""

    def __init__(self, times: list[float]) -> None:
        self.times, self.readings = times, 0

    def now(self) -> float:
        self.readings += 1
        return self.times[min(self.readings, len(self.times)) - 1]

    async def sleep(self, seconds: float) -> None:  # pragma: no cover - the app sleeps with asyncio
        raise AssertionError


def storage_with_five_past_days(tmp_path: Path, seed: int) -> Storage:
    """A key server database holding one uploaded key for each of the five days before NOW."""
    storage = open_storage(str(tmp_path / "s.db"))
    keys = empty_keys(5)
    keys["key"] = np.frombuffer(np.random.default_rng(seed).bytes(16 * 5), "V16")
    keys["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD * np.arange(1, 6)
    keys["rolling_period"] = ROLLING_PERIOD
    storage.insert_keys_unchecked(keys, NOW)
    return storage


def published_f0_keys(tmp_path: Path) -> tuple[SQLiteStorage, Any, KeyServerClient, dict[str, Path]]:
    """A key server (SQLite) that published F0's keys in one export, its signer, its client, and the nodes
    (``make_nodes``)."""
    from bluezone.client.uploading import keys_to_upload

    storage = SQLiteStorage(tmp_path / "server.db")
    signer = keygen(tmp_path / "signing")
    code_key = CodeKey.load(tmp_path / "signing")
    app = create_app(storage, code_key=code_key, export_dir=tmp_path / "exports", signer=signer, clock=VirtualClock(NOW))
    client = KeyServerClient(URL, http=TestClient(app, base_url=URL))
    _, nodes = make_nodes(tmp_path)
    with SightingStore.open(nodes["a"], create=False) as a:
        keys = keys_to_upload(a.daily_keys(), NOW, include_today=False)
    client.publish(keys, issue_code(storage, NOW, key=code_key, test_type="confirmed").code)
    export_batches(storage, signer, tmp_path / "exports", NOW, ExportConfig())
    return storage, signer, client, nodes


def run_cli(*args: str) -> tuple[int, str, str]:
    """``bluezone ARGS`` in this process: (exit code, stdout, stderr)."""
    from click.testing import CliRunner

    from bluezone.cli import cli

    result = CliRunner().invoke(cli, list(args), obj={})
    return result.exit_code, result.stdout, result.stderr


def cli_code(live_server: dict, *args: str) -> str:
    """A code issued by ``bluezone server issue-code ARGS`` on ``live_server``'s database (asserted to succeed)."""
    rc, out, err = run_cli("server", "issue-code", "--server-db", str(live_server["db"]), "--signing-key-dir",
                           str(live_server["keys"]), "--json", *args)
    assert rc == 0, err
    return json.loads(out)["code"]


def cli_export(live_server: dict) -> None:
    """``bluezone server export`` into ``live_server``'s export folder (asserted to succeed)."""
    rc, _, err = run_cli("server", "export", "--server-db", str(live_server["db"]), "--signing-key-dir",
                         str(live_server["keys"]), "--export-dir", str(live_server["exports"]))
    assert rc == 0, err
