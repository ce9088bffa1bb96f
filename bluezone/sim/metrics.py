"""Scores against truth: precision, recall, F1, confusion table, minutes error, PR curve.

A unit is one (receiver, positive, day): the receiver checked the positive's keys.  It is a
true close contact when the two were within ``close_distance_m`` for at least
``close_contact_min`` minutes that day (no separating wall between them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Below this many true close contacts one contact found or missed moves recall by more than 0.1,
#: so a run's F1 cannot tell two scorers apart: the report says so beside the numbers.
MIN_TRUE_CONTACTS = 10


@dataclass(frozen=True)
class Confusion:
    """Counts of true/false positives and negatives, with the ratios made of them."""

    tp: int
    fp: int
    fn: int
    tn: int

    # A ratio over nothing is undefined (nan, null in JSON), not a perfect score: a run with
    # no true close contacts says nothing about how well a scorer finds them.
    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def f1(self) -> float:
        """2TP / (2TP + FP + FN): 0 when true contacts were all missed, undefined without any."""
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn) if self.tp + self.fn else math.nan

    def counts(self) -> dict[str, int]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn}

    def as_dict(self) -> dict[str, Any]:
        """Precision, recall and F1 as a report gives them (None when undefined), and the counts."""
        return {
            "precision": rounded(self.precision),
            "recall": rounded(self.recall),
            "f1": rounded(self.f1),
            "confusion": self.counts(),
        }


def confusion(truth: np.ndarray, predicted: np.ndarray) -> Confusion:
    """The confusion counts of ``predicted`` against ``truth`` (boolean arrays)."""
    truth, predicted = np.asarray(truth, bool), np.asarray(predicted, bool)
    return Confusion(
        tp=int((truth & predicted).sum()),
        fp=int((~truth & predicted).sum()),
        fn=int((truth & ~predicted).sum()),
        tn=int((~truth & ~predicted).sum()),
    )


def pr_curve(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, precision, recall) for "score >= threshold", thresholds descending."""
    truth = np.asarray(truth, bool)
    score = np.asarray(score, float)
    thresholds = np.unique(score)[::-1]
    positives = max(int(truth.sum()), 1)
    order = np.argsort(-score, kind="stable")
    s, t = score[order], truth[order]
    tp = np.cumsum(t)
    fp = np.cumsum(~t)
    last = np.searchsorted(-s, -thresholds, "right") - 1
    precision = tp[last] / np.maximum(tp[last] + fp[last], 1)
    recall = tp[last] / positives
    return thresholds, precision, recall


def average_precision(truth: np.ndarray, score: np.ndarray) -> float:
    """Area under the PR curve, step-wise (scikit-learn's average precision)."""
    if not np.any(truth):
        return float("nan")
    _, precision, recall = pr_curve(truth, score)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(truth: np.ndarray, score: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    truth = np.asarray(truth, bool)
    score = np.asarray(score, float)
    pos, neg = score[truth], score[~truth]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = _rankdata(np.r_[pos, neg])
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _rankdata(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties sharing the mean rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x))
    starts = np.r_[0, np.flatnonzero(np.diff(xs)) + 1]
    ends = np.r_[starts[1:], len(x)]
    for a, b in zip(starts.tolist(), ends.tolist()):
        ranks[order[a:b]] = (a + b + 1) / 2
    return ranks


def verdict_ndcf(truth: np.ndarray, predicted: np.ndarray) -> float:
    """NIST TC4TL's normalised detection cost of yes/no verdicts (a simulated run's pairs): P_miss +
    P_false_alarm (equal weights), one number (``evaluate.ndcf_at_distance`` is the recordings' per minute).

    Undefined (nan) without true contacts or without anyone else: a miss rate over nothing is not
    0, and the sum would pass a false-alarm rate off as a detection cost (evaluate's is None too).
    """
    c = confusion(truth, predicted)
    if not (c.tp + c.fn and c.fp + c.tn):
        return math.nan
    return c.fn / (c.tp + c.fn) + c.fp / (c.fp + c.tn)


def contacts_note(true_minutes: np.ndarray, minutes: float = 15.0, distance_m: float = 2.0) -> str | None:
    """What a run's verdict figures can say with so few true close contacts (None: enough of them).

    ``true_minutes``: per judged pair, minutes within ``distance_m``; a contact has ``minutes`` or more.
    A researcher reads "F1 0.000" or a 0.1 margin as a finding; with 4 contacts it is one or two
    pairs, so the report says so in words, with how near the line the other pairs came.
    """
    true_minutes = np.asarray(true_minutes, float)
    need = minutes - 1e-9
    contacts = int((true_minutes >= need).sum())
    if contacts >= MIN_TRUE_CONTACTS:
        return None
    if contacts == 0:
        pairs = f"{len(true_minutes)} pair{'s' if len(true_minutes) != 1 else ''}"
        return (f"no true close contact among {pairs} (the most any pair spent within {distance_m:g} m:"
                f" {true_minutes.max(initial=0.0):.1f} of {minutes:g} minutes): recall, F1, ROC-AUC, PR-AUC and nDCF"
                " are undefined (n/a); this run counts false alarms (FP) only")
    near = int(((true_minutes >= need - 5) & (true_minutes < need)).sum())
    return (f"only {contacts} true close contact{'s' if contacts > 1 else ''} (fewer than {MIN_TRUE_CONTACTS}; {near}"
            f" more pairs within {distance_m:g} m for {max(minutes - 5, 0):g}-{minutes:g} minutes): one found or missed"
            f" moves recall by {1 / contacts:.2f}, so this run's F1, recall, ROC-AUC and PR-AUC cannot rank the scorers;"
            " compare means over seeds")


def summary(truth: np.ndarray, predicted: np.ndarray, score: np.ndarray, est_min: np.ndarray, true_min: np.ndarray) -> dict[str, Any]:
    """Everything the report shows for one scorer."""
    c = confusion(truth, predicted)
    touched = (true_min > 0) | (est_min > 0)
    err = est_min[touched] - true_min[touched]
    # no true contact, no curve: its recall would read 0 at every threshold, a claim over nothing
    thresholds, precision, recall = pr_curve(truth, score) if truth.any() else (np.empty(0),) * 3
    return {
        **c.as_dict(),
        "pr_auc": rounded(average_precision(truth, score)),
        "roc_auc": rounded(roc_auc(truth, score)),
        "ndcf": rounded(verdict_ndcf(truth, predicted)),
        "minutes_mae": round(float(np.mean(np.abs(err))), 3) if len(err) else 0.0,
        "minutes_bias": round(float(np.mean(err)), 3) if len(err) else 0.0,
        "pr_curve": {
            "threshold_minutes": [round(float(x), 3) for x in thresholds[:200]],
            "precision": [round(float(x), 4) for x in precision[:200]],
            "recall": [round(float(x), 4) for x in recall[:200]],
        },
    }


def rounded(x: float) -> float | None:
    """``x`` rounded for a report; None (JSON null, "n/a" in tables) when undefined."""
    return None if np.isnan(x) else round(float(x), 4)


def fmt(x: float | None, width: int = 0) -> str:
    """A metric for a table: three decimals, or "n/a" when undefined."""
    return f"{'n/a' if x is None or np.isnan(x) else f'{x:.3f}':>{width}}"
