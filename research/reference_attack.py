"""Can a nearby transmitter push the receiver's same-minute reference and make a far contact F1? (ref16, issue 13)

Usage: python research/reference_attack.py [--seeds 1,2,3,4,5] [--per-minute 0,2,4,6,8,12] [--lifetime 1,10]
                                           [--burst 1] [--rssi -99] [--minutes 60] [--min-run 2] [--near-share 0.5,0]
                                           [--victim Em] [--variants cap3,kth2]

The demo's café (``bluezone.demo.SCENE``: An is the F0, Em works at a table 8 m away all hour) runs on
the emulated radio with real daemons and stores, plus an attacker's transmitter 2 m from Em that invents
``per-minute`` RPIs a minute, each sent in one burst of ``burst`` seconds (about 4 adverts a second, so Em
hears a few of them at about -96 dBm: far company), each RPI sent again in the next ``lifetime - 1``
minutes (a transmitter that keeps its RPIs alive, as a real phone does for 10-20 minutes, is the one a
"heard in several minutes" rule cannot tell from a phone).  An's keys are exported as ``keys export``
does, and Em's store is checked as ``bluezone check`` checks it (``check_store``: the stored receiver
context) with the shipped ``bluezone`` scorer, the bounds (``reference_min_minutes = --min-run``: only links
heard in runs of that many minutes count; ``minute_reference_near_share``: how much of the clip a minute
may move toward "near") and ``gaen``.  Printed per (RPIs a minute, lifetime): on how many seeds Em is an F1
by each, Em's verdict minutes within 2 m, how many fake link-minutes Em stored and how often each was heard
a minute (measured, not assumed).  ``--variants``: ``reference_bounds.py``'s variants by name (ref17: a
reference capped at the k-th strongest other link, ``capK``, or that link itself, ``kthK``) or
``reference_retune.py``'s (est19: ``rank6_s1``, the ranking's own reference; the last column is each scorer's
ranking score per seed).  ``--victim Chi --rssi -70``: the other direction, strong invented
company that makes a true contact (Chi, 1.5 m from An for 25 minutes) read farther.

``transmit_fake_rpis`` is the attacker, also used by tests/matching/test_reference_attack.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bluezone.clock import Clock
from bluezone.crypto.payload import Metadata
from bluezone.demo import SCENE
from bluezone.matching.bluezone_scorer import BluezoneConfig, BluezoneScorer
from bluezone.matching.check import check_store
from bluezone.matching.export_own import export_own_keys
from bluezone.matching.scoring import get_scorer
from bluezone.proximity.backends.emulated import Links, LogDistanceChannel
from bluezone.proximity.emulation import run_emulated
from bluezone.proximity.radio import Radio
from bluezone.proximity.store import SightingStore

#: 2026-01-01 18:00 UTC: a fixed hour inside one UTC day.
START = 1_767_290_400.0
#: The attacker's spot, 2 m from Em at (8, 3); what Em hears of it is the attacker's choice (``AttackerChannel``).
ATTACKER_AT = (8.0, 5.0)


@dataclass
class AttackerChannel:
    """The emulated radio's channel, but the attacker's packets reach Em at ``rssi`` dBm exactly and nobody
    else: a transmitter that sets its power (or a directional antenna) to be heard just over one
    receiver's floor (the emulated radio's is -100 dBm), the weakest company it can be."""

    rssi_dbm: float = -99.0
    victim: str = "Em"
    air: Any = None  # the air it serves (its radios are known by label once open)
    base: LogDistanceChannel = field(default_factory=LogDistanceChannel)

    def rssi(self, links: Links, rng: np.random.Generator) -> np.ndarray:
        out = self.base.rssi(links, rng)
        attacker = [r.index for r in self.air.radios if r.label == "attacker"]
        victim = [r.index for r in self.air.radios if r.label == self.victim]
        mine = np.isin(links.tx, attacker)
        out[mine] = np.where(np.isin(links.rx[mine], victim), self.rssi_dbm, np.nan)
        return out


async def transmit_fake_rpis(
    radio: Radio, clock: Clock, duration: float, per_minute: int, *, lifetime: int = 1, burst: float = 1.0,
    tx_power: int = -40, seed: int = 0, sent: set[bytes] | None = None,
) -> None:
    """Send ``per_minute`` invented RPIs a minute for ``duration`` seconds, each in one burst of
    ``burst`` seconds; an RPI is sent again in each of its ``lifetime`` minutes (the first minute's
    are staggered, so that about ``per_minute / lifetime`` are new each minute).  ``sent`` collects them."""
    rng = random.Random(seed)
    aem = bytes(Metadata(tx_power))  # not encrypted under any key: nobody can read it, as for a real stranger
    alive = [(rng.randbytes(16), -(i % lifetime)) for i in range(per_minute)]  # (RPI, minute it was made)
    start = clock.now()
    async with radio:
        for minute in range(int(duration // 60)):
            alive = [(rpi, born) if minute - born < lifetime else (rng.randbytes(16), minute) for rpi, born in alive]
            if sent is not None:
                sent.update(rpi for rpi, _ in alive)
            gap = 60.0 / max(per_minute, 1)
            for i, (rpi, _) in enumerate(alive):
                await clock.sleep(max(start + minute * 60.0 + i * gap - clock.now(), 0.0))
                await radio.advertise(rpi + aem, tx_power)
                await clock.sleep(burst)
                await radio.stop_advertising()


def attacked_café(
    db_dir: Path, seed: int, per_minute: int, *, lifetime: int = 1, burst: float = 1.0, rssi: float = -99.0,
    minutes: float = 60.0, sent: set[bytes] | None = None, victim: str = "Em",
) -> dict[str, Path]:
    """The demo's café for ``minutes`` on the emulated radio, with the attacker heard by ``victim`` alone;
    the stores by name (``sent`` collects the attacker's RPIs)."""
    people = [p for p in SCENE if p.name != "Khanh"]  # Khanh meets Binh elsewhere: not in this question
    positions = {
        p.name: (lambda t, p=p, i=i: p.where((t - START) / 60.0) or (10_000.0 * (i + 1), 0.0))
        for i, p in enumerate(people)
    }

    channel = AttackerChannel(rssi, victim)

    def attacker(air: Any, clock: Clock) -> list:
        channel.air = air
        if per_minute == 0:
            return []
        radio = air.radio("attacker", ATTACKER_AT)
        return [transmit_fake_rpis(radio, clock, minutes * 60.0, per_minute, lifetime=lifetime, burst=burst,
                                   seed=seed, sent=sent)]

    return run_emulated(positions, db_dir, START, minutes * 60.0, seed=seed, channel=channel, also=attacker)


def verdict(dbs: dict[str, Path], scorer: Any, who: str = "Em") -> tuple[bool, float, float]:
    """(``who`` an F1?, their largest verdict minutes within 2 m, their largest ranking score
    (``weighted_minutes``)) as ``bluezone check`` decides with ``scorer``."""
    with SightingStore.open(dbs["An"], create=False) as store:
        keys = export_own_keys(store.daily_keys(), 14, START + 7200)
    with SightingStore.open(dbs[who], create=False) as store:
        _, exposures = check_store(keys, store, scorer)
    within = max((e.score.minutes_by_bucket.get("within_2m", 0.0) for e in exposures), default=0.0)
    ranked = max((e.score.weighted_minutes for e in exposures), default=0.0)
    return any(e.score.close_contact for e in exposures), float(within), float(ranked)


def fake_link_minutes(db: Path, fake: set[bytes]) -> tuple[int, float]:
    """(link-minutes of the attacker's RPIs in the store ``db``, their median packets a minute): measured."""
    with SightingStore.open(db, create=False) as store:
        rows = store.sightings()
    mine = np.fromiter((bytes(r) in fake for r in rows["rpi"]), bool, len(rows))
    if not mine.any():
        return 0, 0.0
    words = np.ascontiguousarray(rows["rpi"][mine]).view("<u8").reshape(-1, 2)
    minute = np.floor(rows["time"][mine] / 60.0).astype(np.int64)
    _, counts = np.unique(np.c_[words, minute], axis=0, return_counts=True)
    return len(counts), float(np.median(counts))


def variant_settings(name: str) -> dict:
    """The settings of ``reference_bounds.py``'s variant ``name``, or ``reference_retune.py``'s (``rank6_s1``: the
    ranking's own reference; imported only when asked: they load the simulator)."""
    from reference_bounds import VARIANTS
    from reference_retune import settings

    return VARIANTS[name] if name in VARIANTS else settings(name)


def main(argv: list[str]) -> None:
    opts = {"--seeds": "1,2,3,4,5", "--per-minute": "0,2,4,6,8,12", "--lifetime": "1,10", "--burst": "1",
            "--rssi": "-99", "--minutes": "60", "--min-run": "2", "--near-share": "0.5,0", "--victim": "Em",
            "--variants": ""}
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        if flag not in opts:
            raise SystemExit(f"unknown option {flag}")
        opts[flag] = value
    seeds = [int(s) for s in opts["--seeds"].split(",")]
    run = int(opts["--min-run"])
    scorers = {
        "bluezone": get_scorer("bluezone"),
        f"run>={run}": BluezoneScorer(BluezoneConfig(reference_min_minutes=run)),
        **{f"near{share}": BluezoneScorer(BluezoneConfig(minute_reference_near_share=float(share)))
           for share in opts["--near-share"].split(",") if share},
        **{name: BluezoneScorer(BluezoneConfig(**variant_settings(name))) for name in opts["--variants"].split(",") if name},
        "gaen": get_scorer("gaen"),
    }
    print(f"victim {opts['--victim']}, heard at {opts['--rssi']} dBm\nrpis/min lifetime  F1 of {len(seeds)} seeds ({', '.join(scorers)})  verdict minutes within 2 m per seed "
          "(the same)  fake link-minutes  packets/link-minute  ranking (weighted minutes) per seed", flush=True)
    for per_minute in [int(n) for n in opts["--per-minute"].split(",")]:
        for lifetime in [int(n) for n in opts["--lifetime"].split(",")] if per_minute else [1]:
            flips = {name: 0 for name in scorers}
            within: dict[str, list[float]] = {name: [] for name in scorers}
            ranked: dict[str, list[float]] = {name: [] for name in scorers}
            fakes, packets = [], []
            for seed in seeds:
                with tempfile.TemporaryDirectory(prefix="refattack-") as tmp:
                    sent: set[bytes] = set()
                    dbs = attacked_café(Path(tmp), seed, per_minute, lifetime=lifetime, burst=float(opts["--burst"]),
                                        rssi=float(opts["--rssi"]), minutes=float(opts["--minutes"]), sent=sent,
                                        victim=opts["--victim"])
                    for name, scorer in scorers.items():
                        f1, minutes, weighted = verdict(dbs, scorer, opts["--victim"])
                        flips[name] += f1
                        within[name].append(minutes)
                        ranked[name].append(weighted)
                    n, p = fake_link_minutes(dbs[opts["--victim"]], sent)
                    fakes.append(n)
                    packets.append(p)
            print(f"{per_minute:>8} {lifetime:>8}  {' '.join(str(flips[n]) for n in scorers):<10}  "
                  f"{' | '.join(' '.join(f'{m:.0f}' for m in within[n]) for n in scorers if n != 'gaen'):<40}  "
                  f"{np.mean(fakes):>6.0f}  {np.median(packets):>6.1f}  "
                  f"{' | '.join(' '.join(f'{m:.1f}' for m in ranked[n]) for n in scorers)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
