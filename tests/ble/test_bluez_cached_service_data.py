"""A device's service data as BlueZ keeps it, through bleak's own handling of BlueZ's signals, into the radio.

bluetoothd keeps one service-data entry per UUID for each address and replaces it only when a
packet carries that UUID again (BlueZ 5.50-5.87: src/adapter.c, src/device.c, src/shared/ad.c);
unless a discovery client asked for DuplicateData, it signals a repeat only when its data changed
or (without an RSSI or Pathloss filter) its RSSI moved 8 dB or more.  ``BluezDevice`` below sends
the signals bluetoothd sends for each packet, on the active scan with the filter the radio passes
and on the passive scan (an advertisement monitor, no discovery filter); bleak's ``BlueZManager``
parses them and its BlueZ scanner builds the ``AdvertisementData`` the radio gets, as on a real
system (no bus: BlueZoo replaces a device's service data whole, so it cannot show this).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from bleak import BleakScanner
from bleak.backends.bluezdbus.manager import BlueZManager
from dbus_fast import Message, Variant

from bluezone.clock import VirtualClock
from bluezone.crypto.bluezone3 import COMPANY_ID, SERVICE_UUID as BLUEZONE3_UUID
from bluezone.crypto.payload import SERVICE_UUID
from bluezone.proximity.backends.bluez import ACTIVE_SCAN_FILTERS, BluezRadio
from bluezone.proximity.backends.fd6f import VENUE_BEACON_UUID
from bluezone.proximity.radio import Advert

ADAPTER = "/org/bluez/hci0"
DEVICE = "org.bluez.Device1"
RSSI_THRESHOLD = 8  # src/device.c: an RSSI alone is signalled when it moved this many dB
RPI_A, RPI_B = b"A" * 20, b"B" * 20
FRAME = b"\x01venue frame"
BZ3_ID = b"\x07" * 12


class BluezDevice:
    """bluetoothd's record of one address: the signal each packet causes.

    ``duplicate``: a discovery client asked for DuplicateData (src/adapter.c filter_duplicate_data):
    a packet's service data (manufacturer data) replaces all the address held, and is signalled even
    when unchanged (src/device.c device_set_service_data clears first; src/shared/ad.c
    bt_ad_add_service_data reports an unchanged entry as no change).  ``proximity``: a client's filter
    has RSSI or Pathloss (discovery_filter_has_proximity): each packet's RSSI is signalled
    (device_set_rssi_with_delta with threshold 0), else only a move of 8 dB or more.  The passive scan
    has no discovery client: neither.  One packet's changes go out as one signal (gdbus coalesces).
    """

    def __init__(self, address: str, duplicate: bool = False, proximity: bool = False) -> None:
        self.address = address
        self.path = f"{ADAPTER}/dev_{address.replace(':', '_')}"
        self.props: dict[str, Variant] | None = None
        self.rssi = 0
        self.duplicate = duplicate
        self.rssi_threshold = 0 if proximity else RSSI_THRESHOLD

    def _rssi_signalled(self, rssi: int) -> bool:
        """src/device.c device_set_rssi_with_delta: whether this packet's RSSI is signalled (and kept)."""
        if rssi == 0 or self.rssi == 0:
            if rssi == self.rssi:
                return False
        elif abs(rssi - self.rssi) < self.rssi_threshold:
            return False
        self.rssi = rssi
        return True

    def packet(self, rssi: int, service_data: dict[str, bytes] | None = None, uuids: tuple[str, ...] = (),
               manufacturer_data: dict[int, bytes] | None = None) -> Message | None:
        """The InterfacesAdded or PropertiesChanged signal for one packet; None when nothing changed."""
        service_data, manufacturer_data = service_data or {}, manufacturer_data or {}
        if self.props is None:
            self.rssi = rssi
            self.props = {
                "Address": Variant("s", self.address), "AddressType": Variant("s", "random"),
                "Adapter": Variant("o", ADAPTER), "Alias": Variant("s", self.address.replace(":", "-")),
                "RSSI": Variant("n", rssi), "UUIDs": Variant("as", sorted({*uuids, *service_data})),
                "ServiceData": Variant("a{sv}", {u: Variant("ay", d) for u, d in service_data.items()}),
                "ManufacturerData": Variant("a{qv}", {c: Variant("ay", d) for c, d in manufacturer_data.items()}),
            }
            return Message.new_signal("/", "org.freedesktop.DBus.ObjectManager", "InterfacesAdded",
                                      "oa{sa{sv}}", [self.path, {DEVICE: dict(self.props)}])
        changed: dict[str, Variant] = {}
        if self._rssi_signalled(rssi):
            changed["RSSI"] = Variant("n", rssi)
        known = self.props["UUIDs"].value
        if {*uuids, *service_data} - set(known):  # listed UUIDs and service-data UUIDs accumulate
            self.props["UUIDs"] = changed["UUIDs"] = Variant("as", sorted({*known, *uuids, *service_data}))
        for name, new in (("ServiceData", service_data), ("ManufacturerData", manufacturer_data)):
            held = {k: v.value for k, v in self.props[name].value.items()}
            if new and self.duplicate:  # cleared, then each entry added anew: signalled
                held = dict(new)
            elif any(held.get(k) != v for k, v in new.items()):  # replaced per key, never removed
                held.update(new)
            else:
                continue
            sig = self.props[name].signature
            self.props[name] = changed[name] = Variant(sig, {k: Variant("ay", v) for k, v in held.items()})
        if not changed:
            return None
        return Message.new_signal(self.path, "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                  "sa{sv}as", [DEVICE, changed, []])


T0 = 1_700_000_000.0
Packet = dict[str, Any]


def gaen(rpi: bytes, rssi: int) -> Packet:
    return {"rssi": rssi, "service_data": {SERVICE_UUID: rpi + b"aem!"}, "uuids": (SERVICE_UUID,)}


def venue(frame: bytes, rssi: int) -> Packet:
    return {"rssi": rssi, "service_data": {VENUE_BEACON_UUID: frame}}


def bluezone3(bzid: bytes, rssi: int) -> Packet:
    return {"rssi": rssi, "uuids": (BLUEZONE3_UUID,), "manufacturer_data": {COMPANY_ID: bzid}}


def carried(packet: Packet) -> tuple[str, bytes]:
    """The one payload of ours a packet carries."""
    if "manufacturer_data" in packet:
        return BLUEZONE3_UUID, packet["manufacturer_data"][COMPANY_ID]
    return next(iter(packet["service_data"].items()))


def run(packets: list[tuple[float, Packet]], scan: str = "active") -> tuple[list[list[Advert]], list[int], BluezRadio]:
    """Send each (seconds after start, packet) from one address through bleak into a BluezRadio; per
    packet, the adverts the radio passed on and the RSSI BlueZ showed after it; and the radio.

    ``active``: bluetoothd behaves as the discovery filter bleak sends with the radio's filters asks;
    ``passive``: as for an advertisement monitor (no discovery client, so no DuplicateData, no RSSI).
    """
    clock = VirtualClock(T0)
    radio = BluezRadio("hci0", clock=clock)
    got: list[Advert] = []
    radio._on_advert = got.append
    manager = BlueZManager()  # its signal handling only: no bus is connected
    bluez: dict[str, Any] = {"adapter": "hci0"}
    if scan == "active":
        bluez["filters"] = ACTIVE_SCAN_FILTERS
    # the scanner's callback path only (no bus): its mode does not change what it builds from a signal
    scanner = BleakScanner(radio._detected, scanning_mode="active", bluez=bluez)
    manager._advertisement_callbacks[ADAPTER].append(scanner._backend._handle_advertising_data)  # as its start()
    address = "C0:FF:EE:00:00:01"  # a fixed (static random) address
    if scan == "active":
        sent = scanner._backend._filters  # what bleak passes to SetDiscoveryFilter
        device = BluezDevice(address, duplicate=sent["DuplicateData"].value,
                             proximity="RSSI" in sent or "Pathloss" in sent)
    else:
        device = BluezDevice(address)
    per_packet: list[list[Advert]] = []
    rssi: list[int] = []

    async def feed() -> None:
        for at, packet in packets:
            await asyncio.sleep(T0 + at - clock.now())
            before = len(got)
            signal = device.packet(**packet)
            if signal is not None:
                manager._parse_msg(signal)
            per_packet.append(got[before:])
            rssi.append(device.rssi)

    clock.run(feed())
    return per_packet, rssi, radio


def heard(per_packet: list[list[Advert]]) -> list[tuple[float, str, bytes, int]]:
    return [(a.time - T0, a.service_uuid, a.service_data, a.rssi) for adverts in per_packet for a in adverts]


def test_an_rpi_no_longer_sent_is_not_sighted_again() -> None:
    """A node that sent GAEN and now sends only its venue beacon's frames from the same address: BlueZ
    still shows the RPI, and every callback (an RSSI move) stored it again, heard now with a new RSSI
    (the passive scan; the active scan before session 30's filter)."""
    per_packet, _, radio = run(scan="passive", packets=[
        (0, gaen(RPI_A, -60)),
        (1, venue(FRAME, -61)),  # service data changed: a callback
        (2, venue(FRAME, -75)),  # only the RSSI moved: a callback, the RPI still in ServiceData
        (60, venue(FRAME, -60)),
        (300, venue(FRAME + b"2", -61)),
    ])
    assert heard(per_packet) == [
        (0, SERVICE_UUID, RPI_A + b"aem!", -60),
        (1, VENUE_BEACON_UUID, FRAME, -60),  # BlueZ signals an RSSI that moved 8 dB or more, keeps the last
        (300, VENUE_BEACON_UUID, FRAME + b"2", -60),
    ]
    assert radio.health()["adverts_unattributed"] == 2  # a repeat of one of the two: not known which


def test_bluezone3_and_gaen_from_one_address_each_reported_as_sent() -> None:
    """A Bluezone v3 advert has no service data, so BlueZ left the RPI beside its ID: it was reported as
    that RPI (GAEN first) and the v3 ID never reached the daemon (the passive scan)."""
    per_packet, _, _ = run(scan="passive", packets=[
        (0, gaen(RPI_A, -60)),
        (1, bluezone3(BZ3_ID, -64)),
        (2, gaen(RPI_A, -52)),  # the same RPI again, only the RSSI moved: which of the two is unknown
        (600, gaen(RPI_B, -70)),  # the next RPI
    ])
    assert heard(per_packet) == [
        (0, SERVICE_UUID, RPI_A + b"aem!", -60),
        (1, BLUEZONE3_UUID, BZ3_ID, -60),
        (600, SERVICE_UUID, RPI_B + b"aem!", -70),
    ]


def test_a_phones_repeats_of_one_rpi_are_each_a_sighting() -> None:
    """Unchanged service data is not stale by itself: a phone repeats its RPI for 10-20 minutes and each
    repeat BlueZ signals (on the passive scan, an RSSI move of 8 dB or more) is a sighting with its RSSI."""
    per_packet, _, radio = run(scan="passive", packets=[(0, gaen(RPI_A, -60)), (5, gaen(RPI_A, -70)), (6, gaen(RPI_A, -66)),
                             (10, gaen(RPI_A, -58)), (700, gaen(RPI_B, -58))])
    assert heard(per_packet) == [
        (0, SERVICE_UUID, RPI_A + b"aem!", -60),
        (5, SERVICE_UUID, RPI_A + b"aem!", -70),  # -66 moved 4 dB: BlueZ said nothing
        (10, SERVICE_UUID, RPI_A + b"aem!", -58),
        (700, SERVICE_UUID, RPI_B + b"aem!", -58),
    ]
    assert radio.health()["adverts_unattributed"] == 0


packets = st.one_of(
    st.builds(gaen, st.sampled_from([RPI_A, RPI_B]), st.integers(-100, -30)),
    st.builds(venue, st.sampled_from([FRAME, FRAME + b"2"]), st.integers(-100, -30)),
    st.builds(bluezone3, st.sampled_from([BZ3_ID, BZ3_ID[::-1]]), st.integers(-100, -30)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(packets, min_size=1, max_size=30), st.sampled_from(["active", "passive"]))
def test_every_advert_passed_on_is_the_packet_heard(sent: list[Packet], scan: str) -> None:
    """Whatever one address sends, in any order, on either scan: each payload the radio passes on is the
    one the packet behind that callback carried, at most one per packet."""
    per_packet, shown_rssi, _ = run([(i, p) for i, p in enumerate(sent)], scan)
    for packet, adverts, rssi in zip(sent, per_packet, shown_rssi, strict=True):
        assert [(a.service_uuid, a.service_data, a.rssi) for a in adverts] in ([], [(*carried(packet), rssi)])


def test_a_steady_phone_on_the_active_scan_is_a_sighting_at_every_advert() -> None:
    """A phone 1 m away repeats one RPI every 250 ms, its RSSI within a few dB: each advert is a sighting
    with that packet's RSSI.  With bleak's DuplicateData false BlueZ signalled the first and then only a
    move of 8 dB or more: about one sighting in minutes, the minutes heard and the RSSI statistics starved."""
    rng = random.Random(30)
    sent = [(i * 0.25, gaen(RPI_A, -60 + rng.randint(-3, 3))) for i in range(240)]  # one minute
    per_packet, _, radio = run(sent)
    assert heard(per_packet) == [(at, SERVICE_UUID, RPI_A + b"aem!", p["rssi"]) for at, p in sent]
    assert radio.health()["adverts_unattributed"] == 0
    passive, _, _ = run(sent, scan="passive")
    assert len(heard(passive)) == 1  # the monitor path: no filter asks BlueZ for more (docs/bluetooth.md)


def test_an_rssi_swing_under_8_db_is_recorded_on_the_active_scan() -> None:
    sent = [(0, gaen(RPI_A, -60)), (1, gaen(RPI_A, -64)), (2, gaen(RPI_A, -60)), (3, gaen(RPI_A, -53)),
            (4, gaen(RPI_A, -53))]
    per_packet, _, _ = run(sent)
    assert [rssi for *_, rssi in heard(per_packet)] == [-60, -64, -60, -53, -53]


def test_a_node_switching_kinds_on_the_active_scan_is_heard_at_each_packet() -> None:
    """With DuplicateData a packet's service data replaces what BlueZ held: the RPI a venue node no longer
    sends is gone at its next frame, and each repeat of the frame is a sighting.  A Bluezone v3 advert
    carries no service data, so the RPI stays beside its ID: then the cache's rule still decides."""
    per_packet, _, radio = run([
        (0, gaen(RPI_A, -60)),
        (1, venue(FRAME, -61)),
        (2, venue(FRAME, -62)),
        (3, bluezone3(BZ3_ID, -63)),  # the ID is new: that one
        (4, bluezone3(BZ3_ID, -64)),  # RPI and ID both shown, neither changed: which one is unknown
    ])
    assert heard(per_packet) == [
        (0, SERVICE_UUID, RPI_A + b"aem!", -60),
        (1, VENUE_BEACON_UUID, FRAME, -61),
        (2, VENUE_BEACON_UUID, FRAME, -62),
        (3, BLUEZONE3_UUID, BZ3_ID, -63),
    ]
    assert radio.health()["adverts_unattributed"] == 1


def test_the_addresses_remembered_are_bounded() -> None:
    from bluezone.proximity.backends.bluez_cache import CachedPayloads

    cache = CachedPayloads(capacity=3)
    for n in range(5):
        assert cache.carried(f"addr{n}", {SERVICE_UUID: b"r"}) == {SERVICE_UUID: b"r"}
    assert len(cache) == 3
    assert cache.carried("addr4", {SERVICE_UUID: b"r", VENUE_BEACON_UUID: b"f"}) == {VENUE_BEACON_UUID: b"f"}
    assert cache.carried("addr0", {SERVICE_UUID: b"r", VENUE_BEACON_UUID: b"f"}) == {SERVICE_UUID: b"r", VENUE_BEACON_UUID: b"f"}
