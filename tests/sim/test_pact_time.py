"""A PACT stamp's time parsed with its whole second once (speed18) is strptime's, to the bit, and any
stamp strptime refuses is refused the same way (a malformed line, skipped and counted)."""

from __future__ import annotations

import datetime as dt

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bluezone.sim.datasets import _pact_time, _whole_second


def first_form(stamp: str) -> float:
    """``_pact_time`` at f0e36c1: strptime for every stamp."""
    if stamp.endswith("Z"):
        return dt.datetime.fromisoformat(stamp[:-1]).replace(tzinfo=dt.UTC).timestamp()
    return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.UTC).timestamp()


def outcome(parse, stamp: str) -> tuple[str, object]:
    try:
        value = parse(stamp)
    except Exception as exc:  # noqa: BLE001 - the kind of error is what is compared
        return type(exc).__name__, None
    return "float", float(value).hex()


def digits(low: int, high: int, width: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda v: str(v).zfill(width))


stamps = st.builds(
    lambda y, mo, d, h, mi, s, f, sep: f"{y}-{mo}-{d}{sep}{h}:{mi}:{s}.{f}",
    digits(1, 9999, 4), digits(0, 13, 2), digits(0, 32, 2), digits(0, 24, 2), digits(0, 60, 2), digits(0, 61, 2),
    st.text("0123456789", min_size=0, max_size=8), st.sampled_from([" ", "  ", "T"]),
)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(stamps, stamps.map(lambda s: s.replace("0", "\u0660")), st.text(max_size=30)))
@example("2020-05-11 12:44:19.549")  # MIT LL's own
@example("2020-05-11 12:44:19.549999")
@example("1970-01-01 00:00:00.000001")
@example("2020-5-11 1:44:19.5")  # strptime takes single digits
@example("2020-02-30 12:44:19.549")  # no such day
@example("2020-05-11 12:44:60.549")
@example("2020-05-11 12:44:19.5491234")  # seven digits of fraction
@example("2020-05-11 12:44:19.549\n")
def test_a_stamps_time_is_strptimes(stamp: str) -> None:
    assert outcome(_pact_time, stamp) == outcome(first_form, stamp)
    assert outcome(_pact_time, stamp) == outcome(first_form, stamp)  # from the cached whole second


def test_a_seconds_adverts_parse_it_once() -> None:
    """A log holds dozens of adverts a second: strptime runs once for them all."""
    _whole_second.cache_clear()
    times = [_pact_time(f"2020-05-11 12:44:19.{ms:03d}") for ms in range(0, 1000, 10)]
    assert times == [first_form(f"2020-05-11 12:44:19.{ms:03d}") for ms in range(0, 1000, 10)]
    assert _whole_second.cache_info().misses == 1
