"""A run's random streams: one per job, all children of the run's seed.

One generator for everything made every draw depend on every other.  The channel draws per audible
link, and walkers drew their next waypoint from the same generator a step later, so a radio setting
that changed how many links were audible moved the crowd: a paired what-if on one seed (one radio or
calibration setting against another) compared two different crowds.  Each job now draws from its own
child of the seed (``numpy.random.SeedSequence.spawn``), so changing what one job consumes leaves
every other job's draws as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True)
class Streams:
    """The generators of one run.  The fields' order is the children's order: a new stream goes last
    (anywhere else it would hand every later job another child, and change every run)."""

    crowd: np.random.Generator  # where people are and when (mobility: each group a child of its own)
    phones: np.random.Generator  # who carries a phone, which model, where on the body
    uploaders: np.random.Generator  # who uploads, when [devices] positives is a count
    keys: np.random.Generator  # daily keys and the times RPIs rotate
    shadowing: np.random.Generator  # each link's static and slow offsets (a fixed number of draws a step)
    packets: np.random.Generator  # adverts heard: how many, when, their fast noise
    cloud: np.random.Generator  # which packets the RSSI-vs-distance plot keeps


def streams(seed: int) -> Streams:
    """The streams of a run with ``seed`` (the same seed, the same streams)."""
    names = [f.name for f in fields(Streams)]
    children = np.random.SeedSequence(seed).spawn(len(names))
    return Streams(**{name: np.random.default_rng(child) for name, child in zip(names, children)})
