"""Short codes of 10 random digits and a check digit: a botnet's hits fall 100x, and a typo costs no try.

A 100,000-address botnet got ~3 hits an hour on 1,000 live 8-digit codes (docs/server.md, "Codes"); with
10^10 codes it gets ~0.03.  The check digit (Damm) tells a misheard digit or two swapped neighbours
from a code before it is looked up, so a person who mistyped is told so and keeps every try of the
failed-code budget (3 an hour during a guessing alarm).  8-digit codes issued before keep working.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from server_helpers import KEY, NOW
from stdnum import damm

from bluezone.client.keyserver import KeyServerClient
from bluezone.clock import VirtualClock
from bluezone.crypto.intervals import ROLLING_PERIOD, rolling_start
from bluezone.errors import PublishError, UploadRefusedError
from bluezone.keyformat.keys import empty_keys
from bluezone.server.app import create_app
from bluezone.server.codes import LONG, SHORT, code_mistake, day_number, issue_code, normal_code
from bluezone.server.publish import PublishConfig, publish
from bluezone.server.storage import CodeRecord, Storage

CONFIG = PublishConfig(max_failures_per_client=10)


def _body(code: str) -> bytes:
    key = {"key": "AAAAAAAAAAAAAAAAAAAAAA==", "rollingStartNumber": rolling_start(NOW) - ROLLING_PERIOD}
    return json.dumps({"temporaryExposureKeys": [key], "verificationPayload": code}).encode()


def _try(storage: Storage, code: str, host: str = "192.0.2.7") -> tuple[int, str]:
    try:
        publish(storage, _body(code), host, NOW, CONFIG, code_key=KEY)
    except PublishError as exc:
        return exc.status, exc.code
    return 200, "ok"


def _typos(code: str) -> list[str]:
    """Every code one wrong digit or one swap of two different neighbours away from ``code``."""
    wrong = [code[:i] + d + code[i + 1 :] for i in range(len(code)) for d in "0123456789" if d != code[i]]
    swapped = [code[:i] + code[i + 1] + code[i] + code[i + 2 :] for i in range(len(code) - 1) if code[i] != code[i + 1]]
    return wrong + swapped


def test_short_codes_are_eleven_digits_that_check(storage: Storage) -> None:
    for _ in range(20):
        code = issue_code(storage, NOW, key=KEY, kind=SHORT).code
        assert len(code) == 11 and code.isdigit() and damm.is_valid(code) and code_mistake(code) is None
    assert len(issue_code(storage, NOW, key=KEY, kind=LONG).code) == 16


@given(st.text("0123456789", min_size=10, max_size=10))
def test_every_misheard_digit_and_swap_is_told_before_any_lookup(random: str) -> None:
    code = random + damm.calc_check_digit(random)
    assert code_mistake(code) is None
    for typo in _typos(code):
        assert "typo" in (code_mistake(typo) or ""), typo


@given(st.text(st.characters(codec="ascii"), max_size=30))
def test_code_mistake_never_raises_and_takes_only_codes_of_issued_lengths(text: str) -> None:
    code = normal_code(text)
    mistake = code_mistake(code)
    assert mistake is None or isinstance(mistake, str)
    if mistake is None:
        assert code.isdigit() and len(code) in (8, 11, 16)


def test_typos_cost_no_try_of_the_budget(storage: Storage) -> None:
    """30 typos of a live code from one client (its budget is 10 failures): each one is told as a typo
    (400, nothing counted), and the code, read again correctly, goes through.  Before the check digit
    the 11th typo was 429 and the good code too."""
    good = issue_code(storage, NOW, key=KEY, kind=SHORT).code
    typos = _typos(good)[:30]
    assert {_try(storage, typo) for typo in typos} == {(400, "verification_code_mistyped")}
    assert storage.count_failures(0, "192.0.2.7") == 0
    assert _try(storage, good) == (200, "ok")


def test_a_wrong_length_costs_no_try_either_but_a_wrong_code_does(storage: Storage) -> None:
    assert _try(storage, "1234567890") == (400, "verification_code_mistyped")  # a digit left out
    assert _try(storage, "12345678901234") == (400, "verification_code_mistyped")
    assert storage.count_failures(0, "192.0.2.7") == 0
    guess = "1234567890" + damm.calc_check_digit("1234567890")  # what a guesser sends: it checks
    assert _try(storage, guess) == (403, "verification_code_invalid")
    assert storage.count_failures(0, "192.0.2.7") == 1


def test_a_code_read_out_in_groups_is_taken(storage: Storage) -> None:
    code = issue_code(storage, NOW, key=KEY, kind=SHORT).code
    assert _try(storage, f"{code[:3]} {code[3:7]}-{code[7:]}") == (200, "ok")


def test_an_eight_digit_code_issued_before_works_until_it_expires(storage: Storage) -> None:
    """Short codes issued by the previous release (8 digits, no check digit) are taken as before."""
    test_day = day_number(dt.datetime.fromtimestamp(NOW, dt.UTC).date())

    def old_code(digits: str, expires_at: float) -> None:
        storage.add_code(CodeRecord(KEY.hash(digits), 1, "confirmed", test_day, None, NOW - 60, expires_at, None))

    old_code("48151623", NOW + 840)
    old_code("42424242", NOW - 1)
    assert _try(storage, "48151623") == (200, "ok")
    assert _try(storage, "42424242") == (403, "verification_code_expired")
    assert _try(storage, "11111111") == (403, "verification_code_invalid")  # and a wrong one counts, as it did


def test_upload_says_the_code_has_a_typo(storage: Storage) -> None:
    """The node's side: one line saying what to do (exit 2), the code not used up."""
    from fastapi.testclient import TestClient

    good = issue_code(storage, NOW, key=KEY, kind=SHORT).code
    keys = empty_keys(1)
    keys["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD
    keys["rolling_period"] = ROLLING_PERIOD
    with TestClient(create_app(storage, code_key=KEY, clock=VirtualClock(NOW))) as http:
        client = KeyServerClient("http://testserver", http=http)
        with pytest.raises(UploadRefusedError, match=r"^upload refused: this verification code has a typo"):
            client.publish(keys, _typos(good)[0])
        assert client.publish(keys, good).inserted == 1


def test_upload_says_what_to_do_with_a_wrong_or_used_code(storage: Storage) -> None:
    """Walk15: 'the verification code is not valid' and '... already used (each code works once)' said
    nothing of what to do next: check the digits, that the keys already went, or ask for a new code."""
    from fastapi.testclient import TestClient

    good = issue_code(storage, NOW, key=KEY).code
    keys = empty_keys(1)
    keys["rolling_start"] = rolling_start(NOW) - ROLLING_PERIOD
    keys["rolling_period"] = ROLLING_PERIOD
    with TestClient(create_app(storage, code_key=KEY, clock=VirtualClock(NOW))) as http:
        client = KeyServerClient("http://testserver", http=http)
        with pytest.raises(UploadRefusedError) as wrong:
            client.publish(keys, "1" * 16)
        assert client.publish(keys, good).inserted == 1
        with pytest.raises(UploadRefusedError) as used:
            client.publish(keys, good)
    assert str(wrong.value) == (
        "upload refused: the verification code is not valid: compare it digit by digit with the one the health"
        " authority gave you, or ask them for a new one"
    )
    assert str(used.value) == (
        "upload refused: the verification code was already used (each code works once): if you uploaded with it"
        " before, your keys are on the server and there is nothing more to do; if not, ask the health authority"
        " for a new one"
    )
    assert wrong.value.exit_code == used.value.exit_code == 2
