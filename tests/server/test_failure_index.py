"""Failed code tries are counted per client (an IPv4 address, an IPv6 /64) and window, one row per
client (schema 10).  A row per try, kept two days, let the /64s of one IPv6 /48 (10 tries each) add
~650,000 rows an hour, ~3 GB before the purge; every publish also had to count them (schema 6
indexed (client, at) for that)."""

from __future__ import annotations

from bluezone.server.storage import Storage

NOW = 1_700_000_000.0
LIMIT = 10
WINDOW = 3600.0


def _tries(storage: Storage, client: str, at: float, n: int) -> int:
    """How many of ``n`` failed tries of ``client`` at ``at`` the limit lets through."""
    allowed = 0
    for _ in range(n):
        token = storage.claim_code_try(client, at, at - WINDOW, LIMIT)
        if token is not None:
            storage.settle_code_try(client, token, "invalid")
            allowed += 1
    return allowed


def test_a_spraying_prefix_leaves_one_row_per_client_of_the_last_window(storage: Storage) -> None:
    """Each hour 200 new /64s of one /48 fail 15 times each: the table holds one row per /64 of the
    current hour (rows of windows that ended are dropped by the next try), never a row per try."""
    for hour in range(3):
        at = NOW + hour * WINDOW * 1.5
        for i in range(200):
            assert _tries(storage, f"2001:db8:1:{hour * 200 + i:x}::/64", at + i, 15) == LIMIT
        assert storage.count_try_rows() == 200  # was 2,000 more rows each hour, kept two days
        assert storage.count_failures(at - WINDOW) == 200 * LIMIT


def test_the_per_client_limit_is_unchanged(storage: Storage) -> None:
    client = "192.0.2.1"
    assert _tries(storage, client, NOW, 12) == LIMIT
    assert _tries(storage, client, NOW + WINDOW - 1, 1) == 0  # the window has not passed
    assert _tries(storage, client, NOW + WINDOW + 1, 12) == LIMIT  # a new window
    # a good code (settled with no reason) is not a failure: it leaves room for another try
    token = storage.claim_code_try("192.0.2.2", NOW, NOW - WINDOW, LIMIT)
    assert token is not None
    storage.settle_code_try("192.0.2.2", token, None)
    assert storage.count_failures(0, "192.0.2.2") == 0 and _tries(storage, "192.0.2.2", NOW, 12) == LIMIT
    # never more than LIMIT in any window: over a day at most 24 windows' worth, as before
    total = sum(_tries(storage, "192.0.2.3", NOW + m * 60, 1) for m in range(24 * 60))
    assert total == 24 * LIMIT


def test_a_good_code_leaves_no_row_naming_its_client(storage: Storage) -> None:
    """A try is counted before it is made and forgotten when the code was good, but its row stayed with 0
    failures: the client's address (and its /48) beside the time of a successful upload, in the database for
    the rest of the hour or until the next try.  A row that counts nothing now goes; one with failures
    before the good code keeps them."""
    client, site = "2001:db8:0:5::/64", "shared:2001:db8::/48"
    token = storage.claim_code_try(client, NOW, NOW - WINDOW, LIMIT, [(site, 100)])
    assert token is not None
    storage.settle_code_try(client, token, None)
    assert storage.count_try_rows() == 0  # was 2
    assert _tries(storage, "192.0.2.4", NOW, 2) == 2
    token = storage.claim_code_try("192.0.2.4", NOW + 1, NOW + 1 - WINDOW, LIMIT)
    assert token is not None
    storage.settle_code_try("192.0.2.4", token, None)
    assert storage.count_failures(0, "192.0.2.4") == 2 and _tries(storage, "192.0.2.4", NOW + 2, 12) == LIMIT - 2
