"""Diagnosis key files: strict JSON parsing, round trips, and only KeyFileError on bad input."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bluezone.crypto import DailyKey
from bluezone.errors import InputError, KeyFileError
from bluezone.keyformat import export, keyfile
from bluezone.keyformat.keyfile import dump_keys_json, load_keys, parse_keys, parse_keys_json
from bluezone.keyformat.keys import KEY_DTYPE, NO_DAYS_SINCE_ONSET, key_bytes, keys_from_daily

B64 = base64.b64encode(bytes(range(16))).decode()


def doc(**entry: object) -> bytes:
    base: dict[str, object] = {"key": B64, "rollingStartNumber": 2650000, "rollingPeriod": 144, "transmissionRisk": 3}
    base.update(entry)
    return json.dumps({"temporaryExposureKeys": [{"key": B64, "rollingStartNumber": 1, "rollingPeriod": 1}, base]}).encode()


def test_parse_good_file() -> None:
    keys = parse_keys_json(doc())
    assert keys.dtype == KEY_DTYPE and len(keys) == 2
    assert keys[1]["key"].tobytes() == bytes(range(16))
    assert (keys[1]["rolling_start"], keys[1]["rolling_period"], keys[1]["transmission_risk"]) == (2650000, 144, 3)
    assert keys[1]["days_since_onset"] == NO_DAYS_SINCE_ONSET
    assert key_bytes(keys).shape == (2, 16)


def test_period_zero_means_144_as_google_does() -> None:
    assert parse_keys_json(doc(rollingPeriod=0))[1]["rolling_period"] == 144


def test_optional_fields() -> None:
    no_risk = json.loads(doc())
    del no_risk["temporaryExposureKeys"][1]["transmissionRisk"]
    assert parse_keys_json(json.dumps(no_risk))[1]["transmission_risk"] == 0
    keys = parse_keys_json(doc(reportType=1, daysSinceOnsetOfSymptoms=-3))
    assert (keys[1]["report_type"], keys[1]["days_since_onset"]) == (1, -3)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (doc(key="not base64!!"), "temporaryExposureKeys[1]: 'key' is not valid base64"),
        (doc(key=base64.b64encode(b"short").decode()), "must decode to 16 bytes, got 5"),
        (doc(key=12), "'key' must be a base64 string"),
        (doc(rollingPeriod=145), "'rollingPeriod' must be 0-144, got 145"),
        (doc(rollingPeriod=-1), "'rollingPeriod' must be 0-144"),
        (doc(rollingStartNumber=-5), "'rollingStartNumber' must be 0-"),
        (doc(rollingStartNumber="2650000"), "'rollingStartNumber' must be an integer, got str"),
        (doc(rollingStartNumber=2.5), "must be an integer, got float"),
        (doc(rollingPeriod=True), "'rollingPeriod' must be an integer, got bool"),
        (doc(rollingStartNumber=2**31), "'rollingStartNumber' must be 0-"),
        (doc(transmissionRisk=9), "'transmissionRisk' must be 0-8"),
        (doc(reportType=6), "'reportType' must be 0-5"),
        (doc(daysSinceOnsetOfSymptoms=15), "'daysSinceOnsetOfSymptoms'"),
        (json.dumps({"temporaryExposureKeys": [{"key": B64, "rollingPeriod": 1}]}).encode(), "[0]: missing field 'rollingStartNumber'"),
        (json.dumps({"temporaryExposureKeys": [{"key": B64, "rollingStartNumber": 1}]}).encode(), "missing field 'rollingPeriod'"),
        (json.dumps({"temporaryExposureKeys": [{"rollingStartNumber": 1}]}).encode(), "missing field 'key'"),
        (json.dumps({"temporaryExposureKeys": ["x"]}).encode(), "[0]: must be an object"),
        (json.dumps({"temporaryExposureKeys": {}}).encode(), "must be a list"),
        (json.dumps({"keys": []}).encode(), "no 'temporaryExposureKeys'"),
        (json.dumps([1, 2]).encode(), "must be a JSON object"),
        (b"{not json", "not valid JSON"),
        (b"{\"temporaryExposureKeys\": [\xff]}", "not valid JSON"),
    ],
)
def test_malformed_json(data: bytes, fragment: str) -> None:
    with pytest.raises(KeyFileError) as info:
        parse_keys_json(data)
    message = str(info.value)
    assert fragment in message and "\n" not in message
    assert isinstance(info.value, InputError)


def test_round_trip_with_daily_keys() -> None:
    daily = [DailyKey(bytes([i]) * 16, 2_900_016 + 144 * i, 144 - i) for i in range(5)]
    keys = keys_from_daily(daily, transmission_risk=2)
    again = parse_keys_json(dump_keys_json(keys))
    assert np.array_equal(again, keys)


key_rows = st.tuples(
    st.binary(min_size=16, max_size=16),
    st.integers(0, 2**31 - 1 - 144),
    st.integers(1, 144),
    st.integers(0, 8),
    st.integers(0, 5),
    st.one_of(st.just(NO_DAYS_SINCE_ONSET), st.integers(-14, 14)),
)


@given(st.lists(key_rows, max_size=20))
def test_round_trip_property(rows: list[tuple[bytes, int, int, int, int, int]]) -> None:
    keys = np.array(rows, dtype=KEY_DTYPE)
    assert np.array_equal(parse_keys_json(dump_keys_json(keys)), keys)


@given(st.binary(max_size=300))
def test_random_bytes_only_raise_key_file_error(data: bytes) -> None:
    try:
        parse_keys(data)
    except KeyFileError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=20,
)
entry_like = st.fixed_dictionaries(
    {},
    optional={
        "key": st.one_of(st.just(B64), st.text(max_size=30), json_values),
        "rollingStartNumber": st.one_of(st.integers(-10, 2**32), json_values),
        "rollingPeriod": st.one_of(st.integers(-5, 200), json_values),
        "transmissionRisk": st.one_of(st.integers(-2, 10), json_values),
    },
)


@given(st.one_of(json_values, st.fixed_dictionaries({"temporaryExposureKeys": st.lists(entry_like, max_size=4)})))
def test_random_json_only_raises_key_file_error(value: object) -> None:
    try:
        keys = parse_keys_json(json.dumps(value))
    except KeyFileError:
        return
    assert ((keys["rolling_period"] >= 1) & (keys["rolling_period"] <= 144)).all()


def test_load_keys_reports_path_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read key file"):
        load_keys(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"temporaryExposureKeys": [{"key": "AAAA", "rollingStartNumber": 1, "rollingPeriod": 1}]}')
    with pytest.raises(KeyFileError, match=r"bad.json: temporaryExposureKeys\[0\]: 'key' must decode to 16 bytes"):
        load_keys(bad)
    good = tmp_path / "good.json"
    good.write_bytes(doc())
    assert len(load_keys(good)) == 2


def test_too_large_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keyfile, "MAX_KEY_FILE_BYTES", 100)
    path = tmp_path / "big.json"
    path.write_bytes(doc())
    with pytest.raises(KeyFileError, match="too large"):
        load_keys(path)
    with pytest.raises(KeyFileError, match="too large"):
        parse_keys_json(doc())


@pytest.mark.parametrize(
    ("data", "kind"),
    [(b"EK Export v1    \x0a\x00", "export"), (b"PK\x03\x04rest", "zip"), (b"\xef\xbb\xbf  {", "json"), (b"[]", "json")],
)
def test_content_sniffing(data: bytes, kind: str) -> None:
    assert keyfile.sniff_key_format(data) == kind


def test_not_a_key_file() -> None:
    with pytest.raises(KeyFileError, match="not a key file"):
        parse_keys(b"hello")


@given(st.sampled_from([export.EXPORT_HEADER, keyfile.ZIP_MAGIC]), st.binary(max_size=200))
def test_random_export_like_bytes_only_raise_key_file_error(head: bytes, tail: bytes) -> None:
    try:
        parse_keys(head + tail)
    except KeyFileError:
        pass


def test_load_keys_reads_google_export_files() -> None:
    vectors = Path(__file__).parents[1] / "data" / "vectors"
    assert len(load_keys(vectors / "gaen_export_google_testdata.bin")) == 200
    assert len(load_keys(vectors / "gaen_export_google_signed.zip")) == 140


def test_a_new_file_not_written_whole_is_not_left_to_refuse_the_retry(tmp_path: Path) -> None:
    """An F0 list is written only to a new file (1a83708): one that ran out of room half way (a full disk)
    stayed, and the retry was refused as "f0.json already exists: it may be the F0 list not yet handed
    over", for a truncated file that is none.  The half-written file goes; the retry writes it."""
    import resource
    import signal

    listing = tmp_path / "f0.json"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (100, hard))
    try:
        with pytest.raises(OSError):
            keyfile.write_private(listing, b"x" * 1000, new=True)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert not listing.exists()
    keyfile.write_private(listing, b"{}\n", new=True)
    assert listing.read_bytes() == b"{}\n" and listing.stat().st_mode & 0o777 == 0o600
