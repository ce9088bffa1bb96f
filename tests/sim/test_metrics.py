"""Precision, recall and F1 when there is nothing to find: undefined, never a perfect 1.000."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from bluezone.sim.metrics import MIN_TRUE_CONTACTS, Confusion, average_precision, confusion, contacts_note, roc_auc, summary


def test_no_true_contacts_and_none_flagged_is_undefined_not_perfect() -> None:
    c = Confusion(tp=0, fp=0, fn=0, tn=40)
    assert math.isnan(c.precision) and math.isnan(c.recall) and math.isnan(c.f1)


def test_no_true_contacts_but_false_alarms() -> None:
    c = Confusion(tp=0, fp=3, fn=0, tn=37)
    assert c.precision == 0.0 and math.isnan(c.recall) and math.isnan(c.f1)


def test_true_contacts_all_missed_is_f1_zero() -> None:
    c = Confusion(tp=0, fp=0, fn=4, tn=36)
    assert math.isnan(c.precision) and c.recall == 0.0 and c.f1 == 0.0


@given(st.integers(0, 50), st.integers(0, 50), st.integers(0, 50))
def test_f1_is_the_harmonic_mean_where_both_are_defined(tp: int, fp: int, fn: int) -> None:
    c = Confusion(tp, fp, fn, 0)
    if tp + fp and tp + fn and tp:
        assert math.isclose(c.f1, 2 * c.precision * c.recall / (c.precision + c.recall))


def test_summary_and_table_of_a_run_without_true_contacts() -> None:
    from bluezone.sim.report import table

    truth = np.zeros(20, bool)
    s = summary(truth, truth, np.zeros(20), np.zeros(20), np.zeros(20))
    assert s["precision"] is None and s["recall"] is None and s["f1"] is None
    # no curve either: it used to say recall 0.0 at every threshold, over no contacts
    assert s["pr_curve"] == {"threshold_minutes": [], "precision": [], "recall": []}
    report = {
        "scenario": "empty", "seed": 0, "people": 2, "phones": 2, "uploaders": 1, "duration_min": 1.0,
        "pairs_judged": 20, "true_close_contacts": 0, "sightings": 0, "store": "memory", "seconds": 0.1,
        "scorers": {"bluezone": s},
    }
    lines = table(report).splitlines()
    row = lines[-1]
    assert "n/a" in row and "1.000" not in row
    assert lines[1].endswith("  store memory  ran 0.1 s")  # the run's time, not a memory figure (walk12)
    assert confusion(truth, truth).tn == 20


def test_a_confusion_as_a_report_gives_it() -> None:
    """Ratios rounded to 4 places, an undefined one None (JSON null), and the counts: the one form
    summary(), evaluate's verdicts and the levels report share."""
    assert Confusion(tp=2, fp=1, fn=0, tn=5).as_dict() == {
        "precision": 0.6667, "recall": 1.0, "f1": 0.8, "confusion": {"tp": 2, "fp": 1, "fn": 0, "tn": 5},
    }
    assert Confusion(tp=0, fp=0, fn=0, tn=3).as_dict() == {
        "precision": None, "recall": None, "f1": None, "confusion": {"tp": 0, "fp": 0, "fn": 0, "tn": 3},
    }


def test_ndcf_without_true_contacts_is_undefined_not_the_false_alarm_rate() -> None:
    """Generated room seed 45 (nothing to find) reported nDCF 0.045 against GAEN's 0.002: its false-alarm
    rate with a miss rate of 0 over no contacts; evaluate's nDCF is None there, and now so is this one."""
    truth = np.zeros(20, bool)
    flagged = np.r_[np.ones(2, bool), np.zeros(18, bool)]
    assert summary(truth, flagged, np.zeros(20), np.zeros(20), np.zeros(20))["ndcf"] is None
    assert summary(np.ones(4, bool), np.ones(4, bool), np.ones(4), np.ones(4), np.ones(4))["ndcf"] is None
    both = summary(np.r_[True, True, False, False], np.r_[True, False, True, False], np.zeros(4), np.zeros(4), np.zeros(4))
    assert both["ndcf"] == 1.0  # half missed + half false alarms


@given(st.lists(st.floats(0, 60), max_size=300))
def test_a_note_exactly_when_true_contacts_are_too_few(minutes: list[float]) -> None:
    contacts = sum(m >= 15 for m in minutes)
    note = contacts_note(np.array(minutes))
    assert (note is None) == (contacts >= MIN_TRUE_CONTACTS)
    if note is not None:
        assert "\n" not in note and (f"only {contacts} true" in note or contacts == 0)


def test_the_notes_say_what_the_numbers_cannot() -> None:
    """Room 45 (nothing to find, the closest pair 13.6 minutes) and carriage 44 (4 contacts, 84 pairs
    riding one stop short) as their reports now put them."""
    room = np.r_[np.zeros(411), np.full(8, 11.0), 13.62]
    assert contacts_note(room) == (
        "no true close contact among 420 pairs (the most any pair spent within 2 m: 13.6 of 15 minutes):"
        " recall, F1, ROC-AUC, PR-AUC and nDCF are undefined (n/a); this run counts false alarms (FP) only"
    )
    carriage = np.r_[np.zeros(2462), np.full(84, 13.6), np.full(4, 17.0)]
    four = contacts_note(carriage) or ""
    assert four.startswith("only 4 true close contacts (fewer than 10; 84 more pairs within 2 m for 10-15 minutes)")
    assert "moves recall by 0.25" in four
    assert "1 true close contact (" in (contacts_note(np.array([15.0, 0.0]), 15, 1.8) or "")
    assert contacts_note(np.array([0.5]), 1.0, 1.8) == (
        "no true close contact among 1 pair (the most any pair spent within 1.8 m: 0.5 of 1 minutes): recall, F1,"
        " ROC-AUC, PR-AUC and nDCF are undefined (n/a); this run counts false alarms (FP) only"
    )


def _brute_roc_auc(truth: np.ndarray, score: np.ndarray) -> float:
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in score[truth] for n in score[~truth]]))


def _brute_average_precision(truth: np.ndarray, score: np.ndarray) -> float:
    """Step-wise: at each distinct threshold, from the highest, the recall gained times the precision."""
    total, before = 0.0, 0.0
    for threshold in sorted(set(score.tolist()), reverse=True):
        flagged = score >= threshold
        tp = int((flagged & truth).sum())
        total += (tp / truth.sum() - before) * tp / flagged.sum()
        before = tp / truth.sum()
    return total


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=2, max_size=30))
def test_roc_and_pr_auc_agree_with_their_definitions_ties_included(pairs: list[tuple[bool, int]]) -> None:
    """A run with a handful of contacts and many tied scores (weighted minutes 0) is where an AUC slips."""
    truth = np.array([t for t, _ in pairs])
    score = np.array([s for _, s in pairs], float)
    if truth.any() and (~truth).any():
        assert math.isclose(roc_auc(truth, score), _brute_roc_auc(truth, score), abs_tol=1e-12)
    if truth.any():
        assert math.isclose(average_precision(truth, score), _brute_average_precision(truth, score), abs_tol=1e-12)
    else:
        assert math.isnan(average_precision(truth, score))
