"""What becomes a sighting: exactly 20 bytes of 0xFD6F service data with a plausible RSSI."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from bluezone.crypto.payload import SERVICE_UUID, ServiceData
from bluezone.errors import PayloadError
from bluezone.proximity.ingest import adverts_to_sightings, payloads_to_sightings
from bluezone.proximity.radio import Advert
from bluezone.proximity.sightings import NO_TX_POWER, SIGHTING_DTYPE

OTHER_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"


def test_valid_and_malformed_adverts() -> None:
    good = bytes(range(20))
    adverts = [
        Advert(1.0, good, -60, tx_power=4, address="AA:AA:AA:AA:AA:AA"),
        Advert(2.0, good[:19], -60),  # short
        Advert(3.0, good + b"\x00", -60),  # long
        Advert(4.0, good, -60, service_uuid=OTHER_UUID),  # not GAEN
        Advert(5.0, good, 127),  # "RSSI not available"
        Advert(6.0, good, -61, service_uuid=SERVICE_UUID.upper()),
        Advert(7.0, b"", -60),
    ]
    out = adverts_to_sightings(adverts)
    assert out.malformed == 5
    assert out.sightings["time"].tolist() == [1.0, 6.0]
    assert out.addresses == ["AA:AA:AA:AA:AA:AA", None]
    assert out.sightings["tx_power"].tolist() == [4, NO_TX_POWER]
    assert bytes(out.sightings["rpi"][0]) == good[:16] and bytes(out.sightings["aem"][0]) == good[16:]
    assert adverts_to_sightings([]).malformed == 0


@given(
    st.lists(
        st.tuples(
            st.binary(min_size=0, max_size=40),
            st.integers(-200, 200),
            st.sampled_from([SERVICE_UUID, OTHER_UUID]),
            st.one_of(st.none(), st.integers(-300, 300)),
        ),
        max_size=30,
    )
)
def test_random_bytes_never_crash_and_match_the_parser(items) -> None:
    adverts = [Advert(float(i), data, rssi, uuid, tx) for i, (data, rssi, uuid, tx) in enumerate(items)]
    out = adverts_to_sightings(adverts)
    assert out.sightings.dtype == SIGHTING_DTYPE
    expected = []
    for a in adverts:
        try:
            sd = ServiceData.from_bytes(a.service_data)
        except PayloadError:
            continue
        if a.service_uuid == SERVICE_UUID and -127 <= a.rssi <= 20:
            tx = a.tx_power if a.tx_power is not None and -127 <= a.tx_power <= 127 else NO_TX_POWER
            expected.append((a.time, sd, a.rssi, tx))
    assert out.malformed == len(adverts) - len(expected)
    got = [
        (float(s["time"]), ServiceData(bytes(s["rpi"]), bytes(s["aem"])), int(s["rssi"]), int(s["tx_power"]))
        for s in out.sightings
    ]
    assert got == expected


def test_column_batches_for_the_simulator() -> None:
    rng = np.random.default_rng(0)
    payloads = [rng.bytes(20) for _ in range(1000)]
    payloads[10] = payloads[10][:5]
    sightings, ok = payloads_to_sightings(np.arange(1000.0), payloads, np.full(1000, -70))
    assert len(sightings) == 999 and not ok[10] and ok.sum() == 999
    assert bytes(sightings["rpi"][10]) == payloads[11][:16]
    assert (sightings["tx_power"] == NO_TX_POWER).all()


def test_array_payloads_match_the_list_path() -> None:
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, (500, 20), dtype=np.uint8)
    times = np.arange(500.0)
    rssi = rng.integers(-130, 30, 500)
    tx = rng.integers(-200, 200, 500)
    from_list, ok_list = payloads_to_sightings(times, [bytes(row) for row in raw], rssi, tx.tolist())
    from_array, ok_array = payloads_to_sightings(times, raw, rssi, tx)
    np.testing.assert_array_equal(ok_list, ok_array)
    np.testing.assert_array_equal(from_list, from_array)
    assert 0 < len(from_array) < 500
    short, ok = payloads_to_sightings(times[:3], raw[:3, :19], rssi[:3])
    assert len(short) == 0 and not ok.any()
