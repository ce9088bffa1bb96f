"""Guessing short codes from many addresses: the failed-try budgets beside the per-client one.

The per-client limit counts an IPv6 /64 as one client, so a /48 (a tunnel broker gives anybody one
free) made 65,536 x 10 = ~655,000 tries an hour, about 6.5 of 1,000 live 8-digit codes an hour.  Now a
/48's /64s share a budget, and past an alarm level of failures from everybody each client gets fewer
tries (a typo or two still goes through, so nobody who has not failed that often is locked out).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from server_helpers import KEY, NOW

from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.errors import PublishError
from bluezone.server.codes import SHORT, issue_code
from bluezone.server.publish import EVERYBODY, PublishConfig, publish, site_key
from bluezone.server.storage import Storage

CONFIG = PublishConfig(max_failures_per_client=10, max_failures_per_site=25, guessing_alarm=60, max_failures_under_attack=2)


def _body(code: str) -> bytes:
    day = rolling_start(NOW) - ROLLING_PERIOD
    key = {"key": "AAAAAAAAAAAAAAAAAAAAAA==", "rollingStartNumber": day}
    return json.dumps({"temporaryExposureKeys": [key], "verificationPayload": code}).encode()


def _try(storage: Storage, host: str, code: str = "00000000", at: float = NOW) -> int:
    try:
        publish(storage, _body(code), host, at, CONFIG, code_key=KEY)
    except PublishError as exc:
        return exc.status
    return 200


def test_the_64s_of_one_48_share_its_budget(storage: Storage) -> None:
    """Every /64 of one /48 gets its own 10, but all of them together only the /48's 25."""
    statuses = [_try(storage, f"2001:db8:7:{n:x}::1") for n in range(40)]  # a fresh /64 for each guess
    assert statuses == [403] * 25 + [429] * 15
    # another /48 (a neighbour on another prefix), an IPv4 client: their own budgets
    assert _try(storage, "2001:db8:8::1") == 403 and _try(storage, "192.0.2.9") == 403
    good = issue_code(storage, NOW, key=KEY, kind=SHORT).code
    assert _try(storage, "2001:db8:8:1::1", good) == 200
    # the /48's window ends an hour after its first failure
    assert _try(storage, "2001:db8:7:ffff::1", at=NOW + 3599) == 429
    assert _try(storage, "2001:db8:7:ffff::1", at=NOW + 3601) == 403


def test_a_good_code_does_not_use_up_the_sites_budget(storage: Storage) -> None:
    for _ in range(30):
        assert _try(storage, "2001:db8:9::5", issue_code(storage, NOW, key=KEY, kind=SHORT).code) == 200
    assert storage.count_failures(0, site_key("2001:db8:9::5")) == 0


def test_past_the_alarm_each_client_gets_fewer_tries_but_a_good_code_passes(storage: Storage) -> None:
    """A botnet: many IPv4 addresses, each within its own limit.  Past the alarm (60 failures from
    everybody in the window) a new address gets 2 failed tries instead of 10; a person with a good
    code (or one typo, then the good code) still gets through."""
    for n in range(6):
        assert [_try(storage, f"198.51.100.{n}") for _ in range(11)] == [403] * 10 + [429]
    assert storage.count_failures(0, EVERYBODY) == 60 and storage.count_failures(0) == 60
    assert [_try(storage, "198.51.100.77") for _ in range(3)] == [403, 403, 429]
    good = issue_code(storage, NOW, key=KEY, kind=SHORT).code
    assert _try(storage, "203.0.113.5", "12345678") == 403 and _try(storage, "203.0.113.5", good) == 200
    # a new window of everybody's budget: 10 tries a client again
    later = NOW + 3601
    assert [_try(storage, "198.51.100.78", at=later) for _ in range(11)] == [403] * 10 + [429]


def test_ipv4_and_mapped_addresses_have_no_site() -> None:
    assert site_key("192.0.2.1") is None and site_key("::ffff:192.0.2.1") is None and site_key("testclient") is None
    assert site_key("2001:db8:7:1::1") == site_key("2001:db8:7:ffff:1::9") == "shared:2001:db8:7::/48"
    assert site_key("2001:db8:8::1") != site_key("2001:db8:7::1")



def test_server_run_and_status_take_the_guessing_alarm(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`server run --guessing-alarm N` is the level the server it starts tightens at."""
    from click.testing import CliRunner

    from bluezone.cli import cli
    from bluezone.server import app, serve
    from bluezone.server.signing import keygen

    made: dict[str, Any] = {}
    real_create_app = app.create_app
    monkeypatch.setattr(app, "create_app", lambda *a, **kw: made.update(kw) or real_create_app(*a, **kw))
    monkeypatch.setattr(serve, "serve", lambda *args: None)  # started, then stopped at once
    keygen(tmp_path / "keys")
    result = CliRunner().invoke(cli, ["server", "run", "--server-db", str(tmp_path / "s.db"), "--signing-key-dir",
                                      str(tmp_path / "keys"), "--guessing-alarm", "5", "--export-every", "0"])
    assert result.exit_code == 0, result.output
    assert made["publish_config"].guessing_alarm == 5 and made["publish_config"].max_failures_per_site == 100
