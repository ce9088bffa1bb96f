"""How many minutes of a link were near: a two-state near/far chain over its judged minutes.

bluezone's verdict counts the minutes whose smoothed attenuation is at or under a threshold; that
count is a poor *ranking* (a contact one dB over the threshold all day scores like a stranger).
Here each judged minute gives evidence instead: the log-likelihood ratio of "within 2 m" against
"farther" for its corrected attenuation, read from a table fitted on simulated tuning seeds
(``data/llr_table.json``, from ``research/llr_estimator.py``).  A link is near or far each minute; it
keeps its state from one minute to the next, and with probability ``switch`` a minute re-draws it
from the share ``prior`` (so across a gap of k minutes the memory is (1 - switch)^k).  Evidence is
discounted by ``scale`` (neighbouring minutes share their shadowing, so they are not independent).
Forward-backward gives each minute's posterior of near; their sum is the expected near minutes.

The recursions are products of 2x2 matrices, computed as a log-depth prefix scan with numpy (about
ten vectorised steps for a whole day's minutes) rather than a Python loop per minute.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

LLR_TABLE = "llr_table.json"
#: Bound on one slot's scaled log-likelihood ratio (the shipped settings reach 1).
MAX_EVIDENCE = 50.0


@lru_cache(maxsize=1)
def llr_table() -> tuple[np.ndarray, np.ndarray]:
    """(bin centres in dB, log-likelihood ratio per bin) of the shipped table (read beside this module,
    as the package installs it: ``importlib.resources`` cost ~2-3 ms of every check's serial start)."""
    data = json.loads((Path(__file__).parent / "data" / LLR_TABLE).read_text(encoding="utf-8"))
    return np.asarray(data["centres_db"], np.float64), np.asarray(data["llr"], np.float64)


def minute_llr(attenuation: np.ndarray) -> np.ndarray:
    """Each minute's log-likelihood ratio of near for its corrected attenuation (ends held flat)."""
    centres, llr = llr_table()
    return np.interp(np.asarray(attenuation, np.float64), centres, llr)


def _prefix_products(m: np.ndarray) -> np.ndarray:
    """Prefix products ``M[t] @ M[t-1] @ ... @ M[0]`` of positive 2x2 matrices, in place in ``m`` (shape
    (2, 2, rows, n): entry (i, j) of each row's sequence), each scaled to sum 1 (only directions matter
    here).  Hillis-Steele scan: log2(n) vectorised steps, each over all four entries at once (a window's
    chain is short: numpy's cost per call, not the arithmetic, is its time)."""
    m /= m[0, 0] + m[0, 1] + m[1, 0] + m[1, 1]
    k = 1
    while k < m.shape[-1]:
        earlier, later = m[..., :-k], m[..., k:]
        # entry (i, j) of later @ earlier: later[i, 0] earlier[0, j] + later[i, 1] earlier[1, j]
        new = later[:, 0:1] * earlier[0:1, :] + later[:, 1:2] * earlier[1:2, :]
        m[..., k:] = new / (new[0, 0] + new[0, 1] + new[1, 0] + new[1, 1])
        k *= 2
    return m


def near_posterior(
    slots: np.ndarray, llr: np.ndarray, scale: float, switch: float, prior: float, minutes_per_slot: float = 1.0
) -> np.ndarray:
    """Posterior of near for each judged slot (``slots`` increasing, ``llr`` its evidence).

    ``scale`` and ``switch`` are per minute, as the table and the chain were fitted: a slot of other
    length (``slot_seconds`` != 60) carries its share of a minute's evidence, and its memory fades
    by the minutes between slots, so the expected near minutes do not depend on the slot length."""
    n = len(slots)
    if n == 0:
        return np.zeros(0)
    # a slot's evidence is capped (a likelihood ratio of e^50 is certainty already): a large scale or slot
    # would otherwise overflow exp to inf, and the scan would divide inf by inf
    e = np.exp(np.clip(scale * minutes_per_slot * np.asarray(llr, np.float64), -MAX_EVIDENCE, MAX_EVIDENCE))
    gap = np.diff(np.asarray(slots, np.float64))
    keep = np.empty(n)
    keep[0] = 0.0  # the first slot has no past
    keep[1:] = np.where(np.isnan(gap), 0.0, (1.0 - switch) ** (np.maximum(gap, 1.0) * minutes_per_slot))
    # m[:, :, 0, t] maps (near, far) beliefs after minute t-1 to minute t: transition, then minute t's
    # evidence; m[:, :, 0] is scanned forward, m[:, :, 1] the transposes backward (beta[t] = m[t+1]^T
    # beta[t+1], beta[n-1] = 1)
    m = np.empty((2, 2, 2, n))
    m[0, 0, 0] = e * (keep + (1 - keep) * prior)
    m[0, 1, 0] = e * (1 - keep) * prior
    m[1, 0, 0] = (1 - keep) * (1 - prior)
    m[1, 1, 0] = keep + (1 - keep) * (1 - prior)
    m[:, :, 1, :-1] = m[:, :, 0, :0:-1].swapaxes(0, 1)
    m[:, :, 1, -1] = np.eye(2)
    m = _prefix_products(m)
    forward = m[:, 0, 0] * prior + m[:, 1, 0] * (1 - prior)
    backward = np.ones((2, n))
    backward[:, :-1] = (m[:, 0, 1] + m[:, 1, 1])[:, n - 2 :: -1]
    joint = forward * backward
    return joint[0] / joint.sum(axis=0)
