"""A venue exposure's times across a change of the clocks (a day of 23 or 25 hours) name each end's zone.

In Berlin on 2026-10-25 the clocks go back from 03:00 CEST to 02:00 CET: a stay from 00:30 to 01:30 UTC was shown
'02:30-02:30 CEST', an hour read as none and its end in the wrong zone; on 2026-03-29 (forward, 02:00 CET to 03:00
CEST) 00:30-01:30 UTC was '01:30-03:30 CET', an hour read as two."""

from __future__ import annotations

import time

import pytest

from bluezone.checkreport import _local_span


@pytest.mark.parametrize(
    "start, end, shown",
    [
        ("2026-10-25T00:30:00+00:00", "2026-10-25T01:30:00+00:00", "02:30 CEST-02:30 CET"),
        ("2026-03-29T00:30:00+00:00", "2026-03-29T01:30:00+00:00", "01:30 CET-03:30 CEST"),
        ("2026-10-24T12:00:00+00:00", "2026-10-24T13:00:00+00:00", "14:00-15:00 CEST"),  # no change: as before
    ],
)
def test_each_end_of_a_stay_across_a_clock_change_names_its_zone(start: str, end: str, shown: str) -> None:
    with pytest.MonkeyPatch.context() as zone:
        zone.setenv("TZ", "Europe/Berlin")
        time.tzset()
        try:
            got = _local_span({"start": start, "end": end}, start[:10])
        finally:
            zone.undo()
            time.tzset()
    assert got == shown
