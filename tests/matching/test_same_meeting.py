"""An F2 exposure in the same minutes as an F1 of the same check, or of an earlier one, is that meeting
(``levels.same_meetings``, ``levels.same_meetings_told``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bluezone.keyformat.keys import REPORT_TYPE_CONFIRMED, REPORT_TYPE_RECURSIVE
from bluezone.matching.check import Exposure
from bluezone.matching.levels import same_meetings, same_meetings_told
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


def _told(exposure: Exposure, level: str = "F1") -> dict:
    """An exposure as an earlier check kept it (``as_dict()``, times as ISO text)."""
    return {**exposure.as_dict(), "level": level}


@given(st.lists(st.tuples(_spans, _kinds), max_size=6), st.lists(st.tuples(_spans, st.sampled_from(["F1", "F2", None])), max_size=4))
def test_an_f2_is_paired_with_the_told_f1_it_overlaps_most_as_with_one_of_its_own_check(items: list, told: list) -> None:
    exposures = [_exposure(s, e, rt, close) for (s, e), (rt, close) in items]
    earlier = [_told(_exposure(s, e, REPORT_TYPE_CONFIRMED), level) for (s, e), level in told]
    # the pairing ``same_meetings`` makes of the F2s listed after the told exposures (their places kept)
    told_f1 = [_exposure(s, e, REPORT_TYPE_CONFIRMED if level == "F1" else REPORT_TYPE_RECURSIVE, level is not None)
               for (s, e), level in told]
    # this check's own F1s out of the way (no close contact): only the told ones to pair with
    others = [_exposure(e.start, e.end, REPORT_TYPE_CONFIRMED, False) if e.level == "F1" else e for e in exposures]
    as_own = same_meetings([*told_f1, *others])
    assert same_meetings_told(exposures, earlier) == {j - len(told): i for j, i in as_own.items() if j >= len(told)}


def test_a_told_f1_at_other_minutes_or_unreadable_pairs_nothing() -> None:
    f1, f2 = _exposure(0, 600, REPORT_TYPE_CONFIRMED), _exposure(660, 1800, REPORT_TYPE_RECURSIVE)
    assert same_meetings_told([f2], [_told(f1)]) == {}
    assert same_meetings_told([f2], [_told(f1), _told(_exposure(1500, 2000, REPORT_TYPE_CONFIRMED))]) == {0: 1}
    assert same_meetings_told([f2], [_told(_exposure(1500, 2000, REPORT_TYPE_CONFIRMED), "F2")]) == {}  # an F2 told
    # a row kept without times, or with damaged ones, is not paired (never a crash)
    assert same_meetings_told([f2], [{"level": "F1"}, {**_told(f1), "start": "x"}, {**_told(f1), "end": None}]) == {}
