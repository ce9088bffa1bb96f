"""Two daemons on bumble radios (in-process controllers on a LocalLink), in virtual time.

The GAEN behaviour BlueZ cannot give: every new RPI goes out from a new random address.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from bumble import hci
from bumble.controller import Controller
from bumble.device import Device
from bumble.link import LocalLink

from bluezone.clock import VirtualClock
from bluezone.config import DaemonConfig
from bluezone.crypto.intervals import DAY_SECONDS
from bluezone.crypto.keys import rpi_key
from bluezone.crypto.derivation import rpi
from bluezone.proximity.backends.bumble_radio import BumbleRadio
from bluezone.proximity.daemon import Daemon
from bluezone.proximity.store import SightingStore

START = 1_700_006_400.0 // DAY_SECONDS * DAY_SECONDS + 3600.0
# GAEN's 10-20 min narrowed to 10-11 min: three RPIs in 22.5 virtual minutes (bumble's
# in-process controllers cost real CPU per advert, at 4-5 adverts a second)
CONFIG = DaemonConfig(rpi_rotation_min=600.0, rpi_rotation_max=660.0)


@pytest.mark.slow
def test_bumble_daemons_log_each_other_with_a_new_address_per_rpi() -> None:
    clock = VirtualClock(START)
    daemons: list[Daemon] = []

    async def main() -> None:
        link = LocalLink()  # bumble's controllers need the running loop
        for name, public in (("A", "F0:00:00:00:00:0A"), ("B", "F0:00:00:00:00:0B")):
            controller = Controller(name, link=link, public_address=public)
            device = Device.with_hci(name, hci.Address(public), controller, controller)
            radio = BumbleRadio.on_device(device, clock=clock)
            daemons.append(Daemon(radio, SightingStore.open(":memory:"), clock, CONFIG, on_status=lambda _: None))
        await asyncio.gather(*(d.run(duration=1350) for d in daemons))

    clock.run(main())
    a, b = daemons
    for me, other in ((a, b), (b, a)):
        assert other.key is not None
        rpik = rpi_key(other.key.key)
        sent = [rpi(rpik, interval) for _, interval in other.rotations]
        assert len(sent) >= 3
        rows = me.store.db.conn.execute("SELECT rpi, address, rssi FROM sightings").fetchall()
        logged = {bytes(r[0]) for r in rows}
        assert logged == set(sent)  # every RPI the other sent, nothing else
        addresses = {bytes(r[0]): set() for r in rows}
        for value, address, _ in rows:
            addresses[bytes(value)].add(address)
        # one address per RPI, a different one for each RPI
        assert all(len(v) == 1 for v in addresses.values())
        assert len({next(iter(v)) for v in addresses.values()}) == len(sent)
        assert np.all(me.store.sightings()["rssi"] < 0)
        assert me.stats.malformed == 0 and me.stats.sightings_stored > 100
        assert me.radio.health()["address_rotations"] == len(me.rotations)
