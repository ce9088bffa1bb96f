"""Which of the payloads BlueZ holds for a device the packet behind a bleak callback carried.

bleak calls back with a BlueZ device object's properties, not with the packet.  BlueZ keeps one
entry per service-data UUID (and per manufacturer) and replaces an entry only when a packet
carries that UUID again; a packet without it leaves the old one (src/adapter.c
``device_found_callback``: ``if (eir_data.sd_list) device_set_service_data(...)``; src/device.c
``device_set_service_data`` clears only with ``DuplicateData``, which the passive scan cannot
ask for and the active scan does (bluez.ACTIVE_SCAN_FILTERS); src/shared/ad.c
``bt_ad_add_service_data``: replace per UUID; the same in BlueZ 5.50-5.87).  So an address that
sent a GAEN advert and then a venue beacon's 0x4256 frame (passive scan) or a Bluezone v3 ID (no
service data: either scan) still shows its last RPI, and each later callback would store that
RPI again, heard now: after the device stopped sending it, a contact made longer than it was.
"""

from __future__ import annotations

from collections.abc import Mapping

#: addresses remembered; the longest unheard are forgotten first (phones change address every ~15 min)
CAPACITY = 8192


class CachedPayloads:
    """Per address, the payloads of ours BlueZ showed at its last callback."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._last: dict[str, dict[str, bytes]] = {}

    def carried(self, address: str, payloads: Mapping[str, bytes]) -> dict[str, bytes]:
        """The payloads (``{service UUID: payload}``) the packet behind this callback can be taken to carry.

        Those that are new or changed since the address's last callback, which only a packet
        carrying them can do.  If none changed, the packet repeated one of them: when the address
        shows only one, it is that one (a phone repeats its RPI for 10-20 minutes, each repeat a
        sighting with its own RSSI); when it shows several, which one is unknown, and nothing is
        taken rather than a payload the device may no longer send.  A kind shown only as listed (an
        empty payload) beside another is dropped first: BlueZ's ``UUIDs`` only grow, so the listing
        can be an earlier packet's (with DuplicateData a packet's service data replaces the old).
        """
        if len(payloads) > 1:
            payloads = {uuid: payload for uuid, payload in payloads.items() if payload}
        last = self._last.pop(address, None)
        self._last[address] = dict(payloads)  # the most recently heard at the end of the dict
        if len(self._last) > self.capacity:
            del self._last[next(iter(self._last))]
        changed = {uuid: payload for uuid, payload in payloads.items() if last is None or last.get(uuid) != payload}
        if changed or len(payloads) != 1:
            return changed
        return dict(payloads)

    def __len__(self) -> int:
        return len(self._last)
