"""Same-day release: today's key, uploaded with --include-today, is cut to end with the current
interval, published once that interval is over, and replaced on the device by a new key then."""

from __future__ import annotations

from pathlib import Path

from server_helpers import NOW, Server, check_node, encounter, make_nodes

from bluezone.client.uploading import keys_to_upload, today_key_in_use, upload_own_keys
from bluezone.crypto.intervals import interval_number, rolling_start
from bluezone.proximity.store import SightingStore


def test_today_key_is_cut_at_the_current_interval(tmp_path: Path) -> None:
    daily, _ = make_nodes(tmp_path)
    current = interval_number(NOW)
    assert today_key_in_use(daily, NOW)
    without = keys_to_upload(daily, NOW, include_today=False)
    with_today = keys_to_upload(daily, NOW, include_today=True)
    assert len(with_today) == len(without) + 1
    today = with_today[with_today["rolling_start"] == rolling_start(NOW)][0]
    assert today["rolling_start"] + today["rolling_period"] == current + 1  # publishable when this interval ends


def test_released_today_key_is_published_and_matched_the_same_day(tmp_path: Path) -> None:
    server = Server(tmp_path)
    daily, nodes = make_nodes(tmp_path)
    today = daily[-1]
    met_at = interval_number(NOW) - 5  # 50 minutes ago, for 30 minutes
    with SightingStore.open(nodes["b"], create=False) as b:
        b.add_sightings(encounter(today, met_at, 30, rssi=-70))
    with SightingStore.open(nodes["a"], create=False) as a:
        result = upload_own_keys(a, server.client, server.code(test_type="confirmed"), NOW, include_today=True)
        sent, stored = result.keys, result.receipt
        assert stored.inserted == len(sent) == 6
        # the device now knows today's key ends with this interval; its daemon starts a new one then
        assert a.key_covering(interval_number(NOW)) is not None and a.key_covering(interval_number(NOW) + 1) is None
    assert sum(b.num_keys for b in server.export()) == 5  # today's key is embargoed while still on air
    server.clock.advance(600)
    batches = server.export()  # the interval is over: so is the cut key's validity
    assert sum(b.num_keys for b in batches) == 1
    result = check_node(server, nodes["b"])
    today_exposures = [e for e in result.exposures if e.start >= met_at * 600]
    assert today_exposures and today_exposures[0].score.close_contact
    server.storage.close()
