"""Run a scenario through bluezone's real code and compare what it says with the truth.

Per time step: the crowd moves (mobility), the channel turns positions into received
adverts (numpy over all links), and each packet becomes a sighting carrying the payload
the sender's real key schedule broadcast at that moment.  Sightings are written in
batches into each receiver's sighting store.  At the end the positives export their daily
keys, every phone runs the real matcher over its store, and every registered scorer
judges each exposure window.

Only adverts from phones that will upload are turned into sightings: anyone else's RPIs
cannot match a diagnosis key, so they would change no match, only cost memory (this is
what lets 1,000 people run in minutes).  They would change one thing: receiver
self-calibration (``bluezone.matching.receiver``) reads everything a phone stored, so in
crowds with fewer uploaders its reference rests on the uploaders' adverts only, where a real
daemon's rests on everyone's (measured in docs/simulation.md: in the market as written it
keeps bluezone as far ahead).  ``positives = "all"`` makes every phone an uploader, so every advert
is stored and every pair is judged.
"""

from __future__ import annotations

import logging
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bluezone.errors import ConfigError
from bluezone.matching.matcher import ExposureWindow
from bluezone.matching.memory import available_memory
from bluezone.matching.receiver import ReceiverContext, for_receiver, receiver_context
from bluezone.matching.scoring import get_scorer, scorer_names
from bluezone.proximity.ingest import payloads_to_sightings
from bluezone.sim.channel import DeviceTable, LinkShadowing, make_devices
from bluezone.sim.keys import Schedule, make_schedule
from bluezone.sim.mobility import Crowd
from bluezone.sim.phonematch import read_in_groups, windows_by_phone
from bluezone.sim.scenario import Scenario
from bluezone.sim.store import open_stores
from bluezone.sim.streams import Streams, streams
from bluezone.sim.truth import RADII_M, Truth, day_of

log = logging.getLogger(__name__)

CLOUD_SIZE = 20_000  # packets kept for the RSSI-vs-distance plot
#: Peak bytes a run holds per (uploader, phone) link: the channel's per-link state, each step's link
#: arrays and the truth's sums (measured: 1,000, 2,000 and 3,000 people all uploading peaked at 631,
#: 2,315 and 4,810 MiB, 520-590 bytes a link).  10,000 people all uploading would need ~55 GiB.
LINK_BYTES = 600
#: With ``min_spacing_m``, each step also pushes every pair of people present apart (``mobility.keep_apart``):
#: ~130 bytes a pair at its peak (measured at 1,000 and 2,000 people), 13 GB for 10,000 people.
PAIR_BYTES = 130
FLUSH_STEPS = 60  # steps of sightings buffered before a batched write per receiver


@dataclass
class PairScore:
    """One scorer's verdict on one (receiver, positive) pair for one day."""

    weighted_minutes: float
    minutes: float
    close_contact: bool


@dataclass
class RunResult:
    """Everything a simulation run produced: devices, truth, each scorer's pair scores."""

    scenario: Scenario
    seed: int
    devices: DeviceTable
    senders: np.ndarray  # device index of each uploader
    truth: Truth
    scores: dict[str, dict[tuple[int, int, int], PairScore]]  # scorer -> (day, sender row, device) -> score
    cloud: np.ndarray  # (k, 2): distance m, attenuation dB
    scene: dict[str, Any]  # positions at a few moments, for the plot
    sightings: int
    seconds: float
    stats: dict[str, Any] = field(default_factory=dict)
    windows: dict[tuple[int, int, int], list[ExposureWindow]] | None = None  # kept on request (tuning)
    contexts: dict[int, ReceiverContext] | None = None  # per receiver device, kept with the windows


def run(
    scenario: Scenario,
    seed: int = 0,
    *,
    scorers: list[str] | None = None,
    store: str = "auto",
    progress: Callable[[float], None] | None = None,
    keep_windows: bool = False,
) -> RunResult:
    """Simulate ``scenario`` with ``seed``; every registered scorer unless ``scorers`` is given."""
    began = _time.perf_counter()
    rng = streams(seed)
    crowd, devices = people(scenario, rng)
    n = len(devices.person)
    if n < 2:
        raise ConfigError(f"scenario {scenario.name}: fewer than two phones with seed {seed}; raise [devices] share")
    positives = scenario.devices.positives
    if positives != "all" and int(positives) > n:  # fewer phones drawn than the file's uploaders (its shares below 1)
        log.warning("scenario %s: [devices] positives = %s, but seed %d gave %d phones: all %d upload",
                    scenario.name, positives, seed, n, n)
    senders = np.arange(n) if positives == "all" else np.sort(rng.uploaders.choice(n, min(int(positives), n), replace=False))
    check_memory(scenario, n, len(senders), available_memory())
    end = scenario.start + scenario.duration_min * 60.0
    schedule = make_schedule(len(senders), scenario.start, end, devices.tx_power[senders], rng.keys)
    channel = LinkShadowing(scenario, devices, senders, rng.shadowing, rng.packets)
    truth = Truth(
        len(senders), n, tuple(sorted({*RADII_M, scenario.close_distance_m})), close_radius=scenario.close_distance_m
    )
    stores = open_stores(n, store)
    sender_row = np.full(n, -1)
    sender_row[senders] = np.arange(len(senders))
    cloud: list[np.ndarray] = []
    buffered: list[tuple[np.ndarray, np.ndarray]] = []
    scene: dict[str, Any] = {"snapshots": []}
    total = 0
    steps = scenario.steps
    dt = scenario.step_s
    snap_at = {0, steps // 2, steps - 1}
    for i in range(steps):
        t = i * dt
        pos, heading, present = crowd.step(t)
        dpos, dhead = pos[devices.person], heading[devices.person]
        packets, d, separated = channel.step(t, dt, dpos, dhead, scenario.start)
        truth.add(day_of(scenario.start + t), d, separated, dt, now=scenario.start + t)
        device_present = present[devices.person]
        truth.add_presence(day_of(scenario.start + t), device_present[senders], device_present, dt)
        if i in snap_at:
            scene["snapshots"].append({"t": t, "pos": pos.copy(), "device_person": devices.person})
        if len(packets):
            rows = sender_row[packets.tx]
            rpi, aem = schedule.payload_at(rows, packets.time)
            payload = np.empty((len(packets), 20), np.uint8)
            payload[:, :16] = rpi.view(np.uint8).reshape(-1, 16)
            payload[:, 16:] = aem.view(np.uint8).reshape(-1, 4)
            # The daemon's own ingest decides what becomes a sighting, as for a real radio.
            batch, ok = payloads_to_sightings(packets.time, payload.view("V20").ravel().tolist(), packets.rssi)
            buffered.append((packets.rx[ok], batch))
            total += len(batch)
            take = rng.cloud.random(len(packets)) < min(1.0, 4 * CLOUD_SIZE / max(steps * len(packets), 1))
            if take.any():
                att = devices.tx_power[packets.tx[take]].astype(float) - (
                    packets.rssi[take] + devices.rssi_correction[packets.rx[take]]
                )
                cloud.append(np.c_[packets.distance[take], att])
        if buffered and (i % FLUSH_STEPS == FLUSH_STEPS - 1 or i == steps - 1):
            _flush(stores, buffered)
            buffered = []
        if progress and i % 60 == 0:
            progress(i / steps)
    windows: dict[tuple[int, int, int], list[ExposureWindow]] | None = {} if keep_windows else None
    contexts: dict[int, ReceiverContext] | None = {} if keep_windows else None
    scores = _check(stores, schedule, senders, devices, scorers or scorer_names(), windows, contexts)
    stores.close()
    cloud_arr = np.concatenate(cloud) if cloud else np.empty((0, 2))
    if len(cloud_arr) > CLOUD_SIZE:
        cloud_arr = cloud_arr[rng.cloud.choice(len(cloud_arr), CLOUD_SIZE, replace=False)]
    if progress:
        progress(1.0)
    scene["walls"] = [(w.start, w.end) for w in scenario.space.walls]
    scene["zones"] = [z.region for z in scenario.space.zones]
    scene["storey"] = crowd.storey
    scene["size"] = (scenario.space.width_m, scenario.space.depth_m)
    return RunResult(
        scenario=scenario,
        seed=seed,
        devices=devices,
        senders=senders,
        truth=truth,
        scores=scores,
        cloud=cloud_arr,
        scene=scene,
        sightings=total,
        seconds=_time.perf_counter() - began,
        stats={"store": stores.kind, "phones": n, "uploaders": len(senders)},
        windows=windows,
        contexts=contexts,
    )


def people(scenario: Scenario, rng: Streams) -> tuple[Crowd, DeviceTable]:
    """The crowd and its phones of a run with these streams (``people(sc, streams(seed))`` is ``run(sc, seed)``'s):
    drawn from streams of their own, so a script can redraw them without the radio."""
    crowd = Crowd(scenario, rng.crowd)
    return crowd, make_devices(scenario, rng.phones, crowd.posture, crowd.storey)


def check_memory(scenario: Scenario, phones: int, uploaders: int, available: int | None) -> None:
    """Refuse up front a run that cannot fit in ``available`` bytes (None: unknown, run): it grows with
    uploaders x phones, and found out as a MemoryError (or the OOM killer) it took the machine first."""
    need = phones * uploaders * LINK_BYTES
    if available is not None and need > available:
        raise ConfigError(
            f"scenario {scenario.name}: {phones:,} phones hearing {uploaders:,} uploaders need about "
            f"{need / 2**30:.1f} GiB ({LINK_BYTES} bytes a link), more than the {available / 2**30:.1f} GiB "
            "available: give [devices] positives a count, or fewer people"
        )
    spacing = scenario.people**2 * PAIR_BYTES if scenario.space.min_spacing_m > 0 else 0
    if available is not None and need + spacing > available:
        raise ConfigError(
            f"scenario {scenario.name}: keeping {scenario.people:,} people apart ([space] min_spacing_m) needs about "
            f"{(need + spacing) / 2**30:.1f} GiB with the links, more than the {available / 2**30:.1f} GiB available: "
            "min_spacing_m = 0, or fewer people"
        )


def _flush(stores: Any, buffered: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """One batched write per receiver for the buffered steps."""
    rx = np.concatenate([b[0] for b in buffered])
    batch = np.concatenate([b[1] for b in buffered])
    order = np.argsort(rx, kind="stable")
    rx, batch = rx[order], batch[order]
    cuts = np.flatnonzero(np.diff(rx)) + 1
    for lo, hi in zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(rx)].tolist()):
        stores.write(int(rx[lo]), batch[lo:hi])


def _check(
    stores: Any,
    schedule: Schedule,
    senders: np.ndarray,
    devices: DeviceTable,
    names: list[str],
    keep: dict[tuple[int, int, int], list[ExposureWindow]] | None = None,
    keep_contexts: dict[int, ReceiverContext] | None = None,
) -> dict[str, dict[tuple[int, int, int], PairScore]]:
    """Every phone matches its store against all positives' keys; every scorer scores."""
    keys, owner = schedule.diagnosis_keys(np.arange(len(senders)))
    judges = {name: get_scorer(name) for name in names}
    out: dict[str, dict[tuple[int, int, int], PairScore]] = {name: {} for name in names}
    for group in read_in_groups(stores.read, len(devices.person)):
        # one match for a group of phones (bluezone/sim/phonematch.py): each gets its own store's windows
        corrections = [int(devices.rssi_correction[device]) for device, _ in group]
        found = windows_by_phone(keys, [sightings for _, sightings in group], corrections)
        for (device, sightings), correction, windows in zip(group, corrections, found):
            # As ``check_sightings`` does: scorers that can are calibrated on everything this phone stored.
            context = receiver_context(sightings, rssi_correction=correction)
            if keep_contexts is not None:
                keep_contexts[device] = context
            calibrated = {name: for_receiver(scorer, context) for name, scorer in judges.items()}
            for w in windows:
                row = int(owner[w.key_index])
                if senders[row] == device:
                    continue
                if keep is not None:
                    keep.setdefault((w.day, row, device), []).append(w)
                for name, scorer in calibrated.items():
                    s = scorer.score(w)
                    pair = (w.day, row, device)
                    prev = out[name].get(pair)
                    if prev is None:
                        out[name][pair] = PairScore(s.weighted_minutes, s.minutes, s.close_contact)
                    else:  # one sender can have two keys on one day only at a key change; add up
                        out[name][pair] = PairScore(
                            prev.weighted_minutes + s.weighted_minutes,
                            prev.minutes + s.minutes,
                            prev.close_contact or s.close_contact,
                        )
    return out
