"""The shared rule for which heard adverts reach the daemon."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bluezone.crypto.payload import SERVICE_UUID, SERVICE_UUID16
from bluezone.proximity.backends.fd6f import fd6f_payload, uuid16_to_str

BATTERY = uuid16_to_str(0x180F)


def test_uuid16_form_matches_bluez() -> None:
    assert uuid16_to_str(SERVICE_UUID16) == SERVICE_UUID


def test_service_data_wins_and_case_is_ignored() -> None:
    assert fd6f_payload([], {SERVICE_UUID.upper(): b"x" * 20, BATTERY: b"\x64"}) == b"x" * 20


def test_listed_without_data_is_passed_as_empty_for_counting() -> None:
    assert fd6f_payload([SERVICE_UUID], {}) == b""


def test_unrelated_adverts_are_ignored() -> None:
    assert fd6f_payload([BATTERY], {BATTERY: b"\x64"}) is None
    assert fd6f_payload([], {}) is None


@given(st.binary(max_size=40))
def test_any_payload_bytes_pass_unchanged(data: bytes) -> None:
    assert fd6f_payload([SERVICE_UUID], {SERVICE_UUID: data}) == data
