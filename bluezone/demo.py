"""``bluezone demo``: the whole system in a minute, with no Bluetooth.

Eight emulated devices spend an hour around a café table on a virtual clock that ends
now: their real daemons advertise and scan on an emulated radio and write real sighting
databases.  An (F0) tests positive: a health authority issues a one-time code on an
embedded key server, An uploads her daily keys with it, the server publishes them in a
signed GAEN export, and every other device downloads it, checks the signature and runs
the matcher.  Then one chain goes a level further: Binh, warned F1, is given a recursive code
and publishes his keys from his exposure day on, and Khanh, whom Binh met after the café, is
warned F2.  The report puts each person's level beside what really happened.

The café has a check-in poster (An scans it) and a venue beacon by the door: the daemons of
everyone who stays a few minutes check in by themselves.  An uploads her check-in with her
keys, so Em, who sat 8 m away all hour and is no Bluetooth contact, is warned through the
venue, and so is Hoa at the counter; Dung, who only walked past, is not.
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bluezone.crypto.intervals import DAY_SECONDS, INTERVAL_SECONDS, interval_number

Position = tuple[float, float]
SCENE_SECONDS = 3600.0
#: the scene ends this long before now, so that An's key for today can be released the same
#: day (its rolling period is cut to end with the current 10-minute interval when she uploads).
SCENE_END_BEFORE_NOW = 2 * INTERVAL_SECONDS
CLOSE_METRES = 2.0
CLOSE_MINUTES = 15.0
#: The venue beacon by the café's door; anyone within ~40 m is "in the café" for the truth.
BEACON_AT: Position = (2.0, -3.0)
CAFE_METRES = 40.0
VENUE = ("Café Hoa", "12 Trần Phú, Hà Nội")


@dataclass(frozen=True)
class Person:
    """One person of the café scene: who, their story, and where they are minute by minute."""

    name: str
    story: str
    where: Callable[[float], Position | None]  # minutes since the scene began -> metres, None: away


def _away(index: int) -> Position:
    """A spot of one's own far beyond radio range of the café and of each other."""
    return (10_000.0 * (index + 1), 0.0)


def _seated(at: Position, start_min: float, end_min: float) -> Callable[[float], Position | None]:
    return lambda m: at if start_min <= m < end_min else None


def _walk_past(start_min: float, speed: float = 1.0) -> Callable[[float], Position | None]:
    def where(m: float) -> Position | None:
        x = -30.0 + (m - start_min) * 60.0 * speed
        return (x, 1.0) if -30.0 <= x <= 30.0 else None

    return where


F0 = "An"
#: A second place, far from the café and from everyone's own spot.
ELSEWHERE: Position = (3000.0, 0.0)
#: The café: An sits at the origin for the whole hour.
SCENE: tuple[Person, ...] = (
    Person("An", "tests positive the next morning (F0)", lambda m: (0.0, 0.0)),
    Person("Binh", "shares An's table, 0.8 m, for 35 min", lambda m: _binh(m)),
    Person("Chi", "joins at 1.5 m for 25 min", _seated((1.5, 0.5), 25, 50)),
    Person("Dung", "walks past at 1 m, once", _walk_past(30)),
    Person("Em", "works at a table 8 m away all hour", _seated((8.0, 3.0), 0, 60)),
    Person("Giang", "chats at 1.4 m for 8 min", _seated((1.0, -1.0), 45, 53)),
    Person("Hoa", "at the counter, 25 m away", _seated((25.0, 0.0), 0, 60)),
    Person("Khanh", "meets Binh after the café, 1 m, 18 min", _seated(ELSEWHERE, 42, 60)),
)
#: Who is given a recursive code in the demo's chain (a true F1), and what truth says of F2.
F1_CHAIN = "Binh"


def _binh(m: float) -> Position | None:
    """At An's table 5-40 min, then with Khanh elsewhere 42-60 min."""
    if 5 <= m < 40:
        return (0.8, 0.0)
    if 42 <= m < 60:
        return (ELSEWHERE[0] + 1.0, ELSEWHERE[1])
    return None


def true_minutes_within(person: Person, f0: Person, metres: float, step: float = 5.0, since: float = 0.0) -> float:
    """Ground truth: minutes the two were within ``metres`` of each other (from minute ``since`` on)."""
    minutes = np.arange(since, SCENE_SECONDS / 60.0, step / 60.0)
    near = 0
    for m in minutes:
        a, b = person.where(float(m)), f0.where(float(m))
        near += a is not None and b is not None and math.hypot(a[0] - b[0], a[1] - b[1]) <= metres
    return near * step / 60.0


@dataclass(frozen=True)
class Verdict:
    """One person's line of the report: what happened, and what bluezone concluded."""

    name: str
    story: str
    true_minutes_within_2m: float
    truly_close: bool
    flagged: bool  # F1, by the default scorer
    flagged_gaen: bool  # F1, by the GAEN-style baseline
    minutes: float
    closest_attenuation: float | None
    typical_attenuation: float | None
    distance_band: str
    truly_f2: bool = False  # close to a true F1 after that F1's exposure began (and not F1 itself)
    flagged_f2: bool = False  # warned F2 by the default scorer (recursive keys of the chain's F1)
    true_minutes_in_cafe: float = 0.0  # minutes in the café (An was there all the hour)
    venue_minutes: float = 0.0  # overlap of their check-in with An's, as `check` reported it

    @property
    def true_level(self) -> str | None:
        return "F1" if self.truly_close else "F2" if self.truly_f2 else None

    @property
    def level(self) -> str | None:
        """What the device was told: F1 wins over F2 (levels never go deeper)."""
        return "F1" if self.flagged else "F2" if self.flagged_f2 else None

    @property
    def correct(self) -> bool:
        return self.level == self.true_level

    @property
    def venue_warned(self) -> bool:
        return self.venue_minutes >= CLOSE_MINUTES

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__, "true_level": self.true_level, "level": self.level, "correct": self.correct,
            "venue_warned": self.venue_warned,
        }


@dataclass(frozen=True)
class DemoResult:
    """What the demo found for each person, beside the truth, and what went through the key server."""

    verdicts: list[Verdict]
    f0: str
    scene_start: float
    scene_end: float
    out_dir: Path | None
    keys_uploaded: int
    batches: int
    scorer: str
    chain: dict[str, Any] | None = None  # the F1 who uploaded with a recursive code, and what went out
    checkins_uploaded: int = 0
    venue_url: str = ""

    def as_dict(self) -> dict[str, Any]:
        iso = lambda t: dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")  # noqa: E731
        return {
            "f0": self.f0,
            "scene_start": iso(self.scene_start),
            "scene_end": iso(self.scene_end),
            "scorer": self.scorer,
            "keys_uploaded": self.keys_uploaded,
            "checkins_uploaded": self.checkins_uploaded,
            "venue_url": self.venue_url,
            "batches": self.batches,
            "out_dir": str(self.out_dir) if self.out_dir else None,
            "people": [v.as_dict() for v in self.verdicts],
            "chain": self.chain,
            "all_correct": all(v.correct for v in self.verdicts),
        }


class _LoopbackServer:
    """The key server on 127.0.0.1 (a free port) in a background thread, for as long as needed."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="bluezone-demo-server", daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the embedded key server did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def run_demo(
    out_dir: Path | None = None,
    *,
    seed: int = 1,
    now: float | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> DemoResult:
    """Run the café scene end to end; keep the databases in ``out_dir`` if given."""
    from bluezone.client.check import check_server
    from bluezone.client.keyserver import KeyServerClient
    from bluezone.client.pinning import PinnedKey
    from bluezone.client.state import ServerState
    from bluezone.client.uploading import upload_own_keys
    from bluezone.clock import VirtualClock
    from bluezone.keyformat.keyfile import dump_keys_json, write_private
    from bluezone.matching.check import check_sightings
    from bluezone.matching.export_own import export_own_keys
    from bluezone.matching.scoring import DEFAULT_SCORER, get_scorer
    from bluezone.proximity.emulation import run_emulated
    from bluezone.proximity.store import SightingStore
    from bluezone.server.app import create_app
    from bluezone.server.codes import CodeKey, issue_code
    from bluezone.server.exports import export_batches
    from bluezone.server.signing import keygen
    from bluezone.server.storage import SQLiteStorage
    from bluezone.venues import beacon
    from bluezone.venues.broadcast import run_beacon
    from bluezone.venues.checkins import check_in, visits
    from bluezone.venues.location import Venue
    from bluezone.venues.nearby import BeaconCheckIns
    from bluezone.venues.owner import create_venue_dir, load_venue_dir
    from bluezone.venues.upload import reports_to_upload

    now = time.time() if now is None else now
    start, end = scene_span(now)
    with tempfile.TemporaryDirectory(prefix="bluezone-demo-") as tmp:
        work = Path(out_dir) if out_dir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        keys_file = work / f"{F0}-keys.json"
        # a link planted as the key file (a shared --out) was written through: the file it names overwritten, 0600
        if any(work.glob("*.db")) or (work / "key-server").exists() or keys_file.exists() or keys_file.is_symlink():
            from bluezone.errors import InputError

            raise InputError(f"{work} already holds a demo: give an empty or new --out directory")

        people = {p.name: p for p in SCENE}
        positions = {
            p.name: (lambda t, p=p, i=i: p.where((t - start) / 60.0) or _away(i)) for i, p in enumerate(SCENE)
        }
        venue = create_venue_dir(work / "cafe", Venue.create(*VENUE, "food-service", 60))
        secrets = load_venue_dir(work / "cafe")
        # a temporary directory's path named a poster gone when the demo ends: named only where it stays
        poster = f" ({work / 'cafe' / 'poster.png'})" if out_dir is not None else " (--out DIR keeps it)"
        progress(f"the café has a check-in poster{poster} and a venue beacon by the door")
        with SightingStore.open(work / f"{F0}.db") as f0_store:  # An scans the poster as she sits down
            check_in(f0_store, secrets.venue, start, source="url")
        progress(f"{len(SCENE)} emulated devices spend an hour in a café (virtual clock, {_hhmm(start)}-{_hhmm(end)} UTC)")
        wall = time.perf_counter()
        dbs = run_emulated(
            positions, work, start, SCENE_SECONDS, seed=seed,
            listeners=lambda store: [BeaconCheckIns(store)],
            also=lambda air, clock: [
                run_beacon(air.radio("café beacon", BEACON_AT, beacon.SERVICE_UUID), secrets, clock, SCENE_SECONDS)
            ],
        )
        progress(f"  done in {time.perf_counter() - wall:.1f} s of real time")

        server_dir = work / "key-server"
        storage = SQLiteStorage(server_dir / "server.db")
        signer = keygen(server_dir / "signing")
        exports = server_dir / "server-exports"  # where `server run`/`export` put them beside server.db: go on from here
        # the server's clock reads the demo's ``now`` (frozen: nothing on it sleeps)
        code_key = CodeKey.load(server_dir / "signing")
        app = create_app(storage, code_key=code_key, export_dir=exports, signer=signer, clock=VirtualClock(now))
        try:
            with _LoopbackServer(app) as url:
                progress(f"embedded key server on {url}")
                code = issue_code(storage, now, key=code_key, test_type="confirmed").code
                progress(f"{F0} tests positive; the health authority issues a one-time code")
                with SightingStore.open(dbs[F0], create=False) as f0_store, KeyServerClient(url) as client:
                    outgoing = reports_to_upload(visits(f0_store, start - DAY_SECONDS), start - DAY_SECONDS, now)
                    uploaded = upload_own_keys(f0_store, client, code, now, include_today=True, checkins=outgoing)
                    sent, receipt = uploaded.keys, uploaded.receipt
                    # a new file (O_EXCL, never through a link): checked above, and a link planted since is refused
                    write_private(keys_file, dump_keys_json(export_own_keys(f0_store.daily_keys(), 14, now)), new=True)
                progress(
                    f"{F0} uploads {len(sent)} daily key(s) (today's released the same day) and "
                    f"{receipt.checkins} check-in(s) with it"
                )
                # today's key ends with the current 10-minute interval: the server publishes it after that
                published = (interval_number(now) + 1) * INTERVAL_SECONDS
                batches = export_batches(storage, signer, exports, published)
                progress(f"the server publishes {len(batches)} signed export batch(es) when the interval ends")

                # the devices ship with the server's public key, as a health authority's app would
                pin = PinnedKey(**{k: v for k, v in signer.public_info().items() if k != "algorithm"})
                scorer = get_scorer(DEFAULT_SCORER)
                gaen = get_scorer("gaen")
                verdicts = []
                exposures_of: dict[str, list[Any]] = {}
                with KeyServerClient(url) as client:
                    for name, path in dbs.items():
                        if name == F0:
                            continue
                        with SightingStore.open(path, create=False) as store:
                            result = check_server(
                                client, ServerState(store), store.sightings, server_key=pin, scorer=scorer, now=published,
                                load_visits=partial(visits, store),
                            )
                            if result.rejected:
                                raise RuntimeError(f"{name}: batches rejected: {result.rejected}")
                            baseline = check_sightings(result.keys, store.sightings(start - 7200, end + 7200), gaen)
                        exposures_of[name] = result.exposures
                        verdicts.append(
                            _verdict(people[name], people[F0], result.exposures, baseline, result.venue_exposures)
                        )
                progress("every other device downloads, verifies and checks")
                chain = None
                binh = next(v for v in verdicts if v.name == F1_CHAIN)
                if binh.flagged:
                    chain, verdicts = _second_level(
                        url, storage, signer, code_key, exports, exposures_of[F1_CHAIN], dbs, verdicts, pin, scorer,
                        now, published, progress,
                    )
        finally:
            storage.close()
        return DemoResult(
            verdicts, F0, start, end, Path(out_dir) if out_dir else None, len(sent), len(batches), scorer.name, chain,
            receipt.checkins, venue["url"],
        )


def _second_level(
    url: str,
    storage: Any,
    signer: Any,
    code_key: Any,
    exports: Path,
    f1_exposures: list[Any],
    dbs: dict[str, Path],
    verdicts: list[Verdict],
    pin: Any,
    scorer: Any,
    now: float,
    published: float,
    progress: Callable[[str], None],
) -> tuple[dict[str, Any], list[Verdict]]:
    """The chain's F1 uploads with a recursive code; the other devices check again and may be warned F2."""
    from dataclasses import replace

    from bluezone.client.check import check_server
    from bluezone.client.keyserver import KeyServerClient
    from bluezone.client.state import ServerState
    from bluezone.client.uploading import upload_own_keys
    from bluezone.proximity.store import SightingStore
    from bluezone.server.codes import issue_code
    from bluezone.server.exports import export_batches

    exposed = dt.date.fromisoformat(min(e.date for e in f1_exposures if e.level == "F1"))
    code = issue_code(storage, now, key=code_key, test_type="recursive", exposure_date=exposed).code
    with SightingStore.open(dbs[F1_CHAIN], create=False) as store, KeyServerClient(url) as client:
        sent = upload_own_keys(store, client, code, now, include_today=True, exposure_date=exposed).keys
    export_batches(storage, signer, exports, published)
    progress(f"{F1_CHAIN}, warned F1, gets a recursive code and uploads {len(sent)} key(s) from {exposed} on")
    out = []
    with KeyServerClient(url) as client:
        for v in verdicts:
            if v.name == F1_CHAIN:
                out.append(v)
                continue
            with SightingStore.open(dbs[v.name], create=False) as store:
                result = check_server(client, ServerState(store), store.sightings, server_key=pin, scorer=scorer, now=published)
            out.append(replace(v, flagged_f2=any(e.level == "F2" for e in result.exposures)))
    progress("every other device checks again: close contacts of the close contact are warned F2")
    warned = [v.name for v in out if v.level == "F2"]
    return {"f1": F1_CHAIN, "exposure_date": exposed.isoformat(), "keys_uploaded": len(sent), "f2": warned}, out


def scene_span(now: float) -> tuple[float, float]:
    """The hour just before ``now`` (less the release margin), kept inside one UTC day.

    An exposure is scored per daily key, so an hour split by midnight would be two shorter
    exposures; shortly after midnight the scene ends at midnight instead.
    """
    end = now - SCENE_END_BEFORE_NOW
    midnight = end // DAY_SECONDS * DAY_SECONDS
    if end - SCENE_SECONDS < midnight:
        end = midnight
    return end - SCENE_SECONDS, end


def _first_close_minute(person: Person, other: Person, metres: float, step: float = 5.0) -> float | None:
    for m in np.arange(0.0, SCENE_SECONDS / 60.0, step / 60.0):
        a, b = person.where(float(m)), other.where(float(m))
        if a is not None and b is not None and math.hypot(a[0] - b[0], a[1] - b[1]) <= metres:
            return float(m)
    return None


def truly_f2(person: Person, f0: Person) -> bool:
    """Truth: within 2 m of a true F1 for 15+ minutes after that F1 first came near the F0 (and not F1 itself)."""
    if person.name == f0.name or true_minutes_within(person, f0, CLOSE_METRES) >= CLOSE_MINUTES:
        return False
    for other in SCENE:
        if other.name in (person.name, f0.name) or true_minutes_within(other, f0, CLOSE_METRES) < CLOSE_MINUTES:
            continue
        began = _first_close_minute(other, f0, CLOSE_METRES) or 0.0
        if true_minutes_within(person, other, CLOSE_METRES, since=began) >= CLOSE_MINUTES:
            return True
    return False


def true_minutes_in_cafe(person: Person, step: float = 5.0) -> float:
    """Ground truth: minutes ``person`` was in the café (An was there all the hour)."""
    minutes = np.arange(0.0, SCENE_SECONDS / 60.0, step / 60.0)
    inside = 0
    for m in minutes:
        at = person.where(float(m))
        inside += at is not None and math.hypot(at[0] - BEACON_AT[0], at[1] - BEACON_AT[1]) <= CAFE_METRES
    return inside * step / 60.0


def _verdict(
    person: Person, f0: Person, exposures: list[Any], baseline: list[Any], venue_exposures: Sequence[Any] = ()
) -> Verdict:
    truth = true_minutes_within(person, f0, CLOSE_METRES)
    best = max(exposures, key=lambda e: e.score.minutes, default=None)
    s = best.score if best is not None else None
    return Verdict(
        name=person.name,
        story=person.story,
        true_minutes_within_2m=round(truth, 1),
        truly_close=truth >= CLOSE_MINUTES,
        flagged=any(e.score.close_contact for e in exposures),
        flagged_gaen=any(e.score.close_contact for e in baseline),
        minutes=float(s.minutes) if s else 0.0,
        closest_attenuation=s.closest_attenuation if s else None,
        typical_attenuation=s.typical_attenuation if s else None,
        distance_band=s.distance_band if s else "-",
        truly_f2=truly_f2(person, f0),
        true_minutes_in_cafe=round(true_minutes_in_cafe(person), 1),
        venue_minutes=round(sum(v.minutes for v in venue_exposures), 1),
    )


def _hhmm(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%H:%M")


def format_report(result: DemoResult) -> str:
    """The terminal table: each person's truth beside bluezone's verdict."""
    yes = lambda b: "F1" if b else "-"  # noqa: E731
    level = lambda x: x or "-"  # noqa: E731
    lines = [
        f"{'person':<7} {'what happened':<40} {'<2 m':>6} {'truth':>5} {result.scorer:>8} {'gaen':>5} "
        f"{'minutes':>7} {'closest':>7} {'typical':>7}  {'distance':<9} {'café':>5} {'venue':>6}",
    ]
    for v in result.verdicts:
        att = lambda a: "-" if a is None else f"{a:.0f} dB"  # noqa: E731
        lines.append(
            f"{v.name:<7} {v.story:<40} {v.true_minutes_within_2m:>4.0f} m {level(v.true_level):>5} "
            f"{level(v.level):>8} {yes(v.flagged_gaen):>5} {v.minutes:>7.0f} {att(v.closest_attenuation):>7} "
            f"{att(v.typical_attenuation):>7}  {v.distance_band:<9} {v.true_minutes_in_cafe:>3.0f} m "
            f"{(f'{v.venue_minutes:.0f} m' if v.venue_minutes else '-'):>6}"
        )
    right = sum(v.correct for v in result.verdicts)
    lines.append("")
    lines.append(
        f"{right} of {len(result.verdicts)} people classified correctly by the {result.scorer} scorer "
        f"(F1 = within {CLOSE_METRES:g} m of {result.f0} for {CLOSE_MINUTES:g}+ minutes; F2 = the same with an F1, "
        "afterwards; gaen: F1 only)."
    )
    if result.chain:
        c = result.chain
        f2 = ", ".join(c["f2"]) or "nobody"
        lines.append(
            f"Chain: {result.f0} (F0) -> {c['f1']} (F1: a recursive code, {c['keys_uploaded']} key(s) from "
            f"{c['exposure_date']} on) -> {f2} (F2: a close contact of a close contact, told to watch for symptoms)."
        )
    venue_only = [v.name for v in result.verdicts if v.venue_warned and not v.flagged]
    lines.append(
        f"Through the café's check-in ({result.checkins_uploaded} check-in uploaded by {result.f0}): "
        f"{sum(v.venue_warned for v in result.verdicts)} warned of 15+ minutes in the same room"
        + (f", {' and '.join(venue_only)} though no Bluetooth close contact of {result.f0}'s." if venue_only else ".")
    )
    if result.out_dir:
        lines.append(
            f"Databases, {result.f0}'s key file and the key server's files are in {result.out_dir}: try\n"
            f"  bluezone status --db {result.out_dir}/Binh.db\n"
            f"  bluezone check --keys {result.out_dir}/{result.f0}-keys.json --db {result.out_dir}/Binh.db\n"
            f"  bluezone checkins --db {result.out_dir}/Em.db      (the poster: {result.out_dir}/cafe/poster.png)\n"
            f"  bluezone server run --server-db {result.out_dir}/key-server/server.db --signing-key-dir"
            f" {result.out_dir}/key-server/signing --port 8080      (the key server again, its exports kept)"
        )
    return "\n".join(lines)
