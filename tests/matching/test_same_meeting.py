"""An F2 exposure in the same minutes as an F1 of the same check is that meeting (``levels.same_meetings``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bluezone.keyformat.keys import REPORT_TYPE_CONFIRMED, REPORT_TYPE_RECURSIVE
from bluezone.matching.check import Exposure
from bluezone.matching.levels import same_meetings
from bluezone.matching.scoring import Score


def _exposure(start: float, end: float, report_type: int, close: bool = True) -> Exposure:
    score = Score("gaen", {}, 0.0, (end - start) / 60, 40, 45.0, "< 1.5 m", close)
    return Exposure("2026-12-07", start, end, 10, 0, 0, False, score, report_type=report_type)


_spans = st.tuples(st.integers(0, 200), st.integers(0, 60)).map(lambda s: (60.0 * s[0], 60.0 * (s[0] + s[1])))
_kinds = st.sampled_from([(REPORT_TYPE_CONFIRMED, True), (REPORT_TYPE_RECURSIVE, True), (REPORT_TYPE_RECURSIVE, False)])


@given(st.lists(st.tuples(_spans, _kinds), max_size=8))
def test_each_f2_overlapping_an_f1_is_paired_with_the_f1_it_overlaps_most(items: list) -> None:
    exposures = [_exposure(s, e, rt, close) for (s, e), (rt, close) in items]
    pairs = same_meetings(exposures)

    def overlap(a: Exposure, b: Exposure) -> float | None:
        return min(a.end, b.end) - max(a.start, b.start) if a.start <= b.end and b.start <= a.end else None

    for j, e in enumerate(exposures):
        overlaps = [(overlap(e, f), i) for i, f in enumerate(exposures) if f.level == "F1" and overlap(e, f) is not None]
        if e.level != "F2" or not overlaps:
            assert j not in pairs  # an F1, an exposure that is no close contact, an F2 at other minutes: its own
            continue
        most = max(o for o, _ in overlaps)
        assert exposures[pairs[j]].level == "F1" and overlap(e, exposures[pairs[j]]) == most
        assert pairs[j] == min(i for o, i in overlaps if o == most)  # ties: the first listed


def test_an_f2_just_after_an_f1_is_another_meeting() -> None:
    f1, f2 = _exposure(0, 600, REPORT_TYPE_CONFIRMED), _exposure(660, 1800, REPORT_TYPE_RECURSIVE)
    assert same_meetings([f1, f2]) == {} and same_meetings([f1, _exposure(600, 900, REPORT_TYPE_RECURSIVE)]) == {1: 0}
