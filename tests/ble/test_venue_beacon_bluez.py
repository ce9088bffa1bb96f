"""A venue beacon through the real BlueZ backend, on two BlueZoo adapters: one sends the
beacon's frames under 0x4256 (``advertise_as``), the other hears them and a listener checks in."""

from __future__ import annotations

import asyncio

import pytest

from bluezone.errors import RadioError
from bluezone.proximity.backends.bluez import BluezRadio
from bluezone.proximity.radio import Advert
from bluezone.proximity.store import SightingStore
from bluezone.venues import beacon
from bluezone.venues.location import Venue
from bluezone.venues.nearby import BeaconCheckIns, NearbyPolicy

from .conftest import BlueZoo

pytestmark = pytest.mark.timeout(90)
CAFE = Venue.create("Café Hoa", "12 Trần Phú", "food-service", 45, seed=bytes(16))
KEY = bytes(range(32))


@pytest.mark.slow  # real-time BlueZoo, about 8 s
async def test_bluez_sends_and_hears_venue_beacon_frames(bluezoo: BlueZoo) -> None:
    sender = BluezRadio("hci0", stall_seconds=600, backoff=(0.2, 1.0))
    receiver = BluezRadio("hci1", stall_seconds=600, backoff=(0.2, 1.0))
    frames = beacon.frames(CAFE.payload, KEY, 1)
    heard: list[Advert] = []
    store = SightingStore.open(":memory:")
    # the BlueZ path under test, the policy at its least: no dwell, any RSSI, one frame after the set opened
    listener = BeaconCheckIns(store, NearbyPolicy(dwell=0.0, min_rssi=-127, min_frames=1))
    try:
        async with sender, receiver:
            await receiver.start_scanning(heard.append)
            with pytest.raises(RadioError):
                await sender.advertise_as("not a uuid", frames[0], 0)
            for frame in frames:
                await sender.advertise_as(beacon.SERVICE_UUID, frame, 0)
                async with asyncio.timeout(15):
                    while not any(a.service_data == frame for a in heard):
                        await asyncio.sleep(0.05)
        got = [a for a in heard if a.service_uuid == beacon.SERVICE_UUID]
        assert {a.service_data for a in got} >= set(frames)
        for advert in got:
            listener.on_advert(advert)
        assert listener.checkins == 1 and store.checkin_rows()[0][2] == "Café Hoa"
    finally:
        store.close()
