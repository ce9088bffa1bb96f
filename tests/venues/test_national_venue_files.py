"""A check's venue-warning files hold the whole country's reports (and three fakes for each real one), of which a
device can open only those naming one of its own venues.  Every report was held as an object until the check's end:
a million took ~365 MiB and 8.7 s to hold (attack29), where the key path streams a national day in bounded memory."""

from __future__ import annotations

import random
import tracemalloc

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from bluezone.client.check import check_server
from bluezone.client.keyserver import KeyServerClient
from bluezone.client.state import ServerState
from bluezone.crypto.intervals import INTERVAL_SECONDS
from bluezone.keyformat.export import SignatureInfo
from bluezone.keyformat.venue_export import signed_venue_zip
from bluezone.keyformat.venue_reports import ProtectedReport
from bluezone.proximity.store import SightingStore
from bluezone.venues.checkins import record_visit, visits
from bluezone.venues.location import Venue

NOW = 1_796_400_000.0  # 2026-12-05 (a multiple of 600 s)
FOREIGN = 100_000


def test_a_check_holds_only_the_reports_naming_my_venues() -> None:
    cafe = Venue.create("Café Hoa", "1 Road", "food-service", 60, seed=bytes([1]) * 16)
    store = SightingStore.open(":memory:")
    record_visit(store, cafe, NOW - 7200, NOW - 3600, NOW)  # 2 h ago, for an hour
    case = ProtectedReport.seal(cafe.location_id, int(NOW - 5400) // INTERVAL_SECONDS, 3, 4)  # 30 min of mine
    rng = random.Random(29)
    reports = [case, *(ProtectedReport.fake(rng.randbytes(96)) for _ in range(FOREIGN))]
    private = ec.generate_private_key(ec.SECP256R1())
    data = signed_venue_zip(reports, private, SignatureInfo("310", "v1"), "VN", int(NOW // 3600))
    public = {"key_id": "310", "key_version": "v1", "public_key": _pem(private)}

    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/signing-key":
            return httpx.Response(200, json=public)
        if request.url.path == "/v1/exports/index.txt":
            return httpx.Response(200, content=b"1796400000-venues-a9f82d-0001.zip\n")
        return httpx.Response(200, content=data)

    client = KeyServerClient("http://keys.test", transport=httpx.MockTransport(serve), sleep=lambda seconds: None)
    tracemalloc.start()
    try:
        result = check_server(client, ServerState(store), lambda t0, t1: None, now=NOW, load_visits=lambda: visits(store))  # type: ignore[arg-type, return-value]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(e.visit.description, e.minutes, e.cases) for e in result.venue_exposures] == [("Café Hoa", 30.0, 1)]
    # the file is held three times on the way (the answer, the download, its export.bin: 30 MiB for 10); its reports
    # as objects were 23 MiB more (53 MiB)
    assert peak < 4 * len(data), f"{peak / 2**20:.0f} MiB held for a {len(data) / 2**20:.0f} MiB file"


def _pem(private: ec.EllipticCurvePrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
