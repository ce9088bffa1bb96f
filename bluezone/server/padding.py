"""Padding of export files with fake keys, so that a file does not tell how few people uploaded.

An export every few minutes writes one file per UTC day of the keys it takes: in a quiet window with
one upload, 14 files of one key each, named with the same export time, said "these 14 keys are one
person's, who tested positive in these minutes".  A file with fewer than ``min_keys`` keys of its own
is filled up to ``min_keys`` plus a random 0-``extra`` with fake keys (Google's reference export
worker pads a file to 1,000 keys plus 0-100; Corona-Warn-App's submission adds 9 fakes per real key).

A fake copies everything but the key itself from a real key of its file, picked at random (validity,
transmission risk, report type, days since onset: the file's real keys and its fakes look alike), as
both do.  Its 16 bytes are an AES-128 block under a secret of its export day: random to anyone without
the secret (a GAEN daily key is 16 random bytes), recognisable by the server, which counts its files'
real keys exactly, roll-ups included, without a list of which keys are fake.  A fake matches nobody: a
node matches a key through the RPIs derived from it, and a random 16-byte key equals a real one, or
derives an RPI a node stored, with a probability of about 2^-128 per pair (10^9 fakes, 144 RPIs each,
against a node's ~10^6 stored RPIs: about 4 x 10^-22).

A file of revisions (a likely case confirmed, an F1's negative test) is padded the same way with
revisions of fakes published before in files of the same day of keys (``fake_revisions``): without
them, a file holding exactly one person's revised keys would link those keys again and pick out the
real key of each padded file they were first published in.
"""

from __future__ import annotations

import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bluezone.keyformat.keys import MAX_DAYS_SINCE_ONSET, NO_DAYS_SINCE_ONSET

SECRET_BYTES = 16
#: The first half of a fake's block before encryption; the second half is random.  A real key decrypts
#: to it with a probability of 2^-64.
_MARK = b"bzpad\x00\x00\x01"


def new_secret() -> bytes:
    """A fresh secret for an export day's fakes."""
    return os.urandom(SECRET_BYTES)


def padding_count(real: int, min_keys: int, extra: int, rng: np.random.Generator) -> int:
    """How many fakes a file of ``real`` keys (or revisions: each padded apart) of its own gets: none
    without any, else up to ``min_keys`` + 0-``extra``."""
    if real == 0 or min_keys == 0:
        return 0
    return max(0, min_keys + int(rng.integers(0, extra + 1)) - real)


def fake_keys(real: np.ndarray, count: int, secret: bytes, rng: np.random.Generator) -> np.ndarray:
    """``count`` fake keys (KEY_DTYPE), each a copy of one of ``real`` but for its key."""
    fakes = real.take(rng.integers(0, len(real), count))
    blocks = np.empty((count, 16), np.uint8)
    blocks[:, :8] = np.frombuffer(_MARK, np.uint8)
    blocks[:, 8:] = np.frombuffer(os.urandom(8 * count), np.uint8).reshape(count, 8)
    encrypted = _aes(secret).encryptor().update(blocks.tobytes())
    fakes["key"] = np.frombuffer(encrypted, "V16")
    return fakes


def fake_revisions(
    fakes: np.ndarray, real: np.ndarray, count: int, rng: np.random.Generator, real_onsets_before: np.ndarray | None = None
) -> np.ndarray:
    """``count`` of ``fakes`` (published before, not revised yet; ``revisable_like`` ``real``), each revised
    as one of the real revisions ``real`` picked at random (one to another type than the fake's): that
    revision's new report type, and its days since onset moved by as many days as the real one moved its own (``real_onsets_before``: the real keys' days
    since onset as first published, in ``real``'s order).  A real revision moves its key's by its
    uploader's change of onset (none when the onset stands), every key of that uploader alike; a fake
    that took its first value from one case and its revised value from another moved by their
    difference, which told it apart.  Where a move is not known (no onset before or after, or the real
    key's first file unread) it takes the revision's own value.  The rest (key, validity, risk) is the
    fake's as first published."""
    revised = fakes.take(rng.choice(len(fakes), count, replace=False))
    picked = rng.integers(0, len(real), count)
    # no real key is revised to the type it has (a likely one is confirmed or revoked, never "revised" to
    # likely as a recursive one may be): a fake picked so takes one of the real revisions to another type
    same = np.flatnonzero(real["report_type"].take(picked) == revised["report_type"])
    for kind in np.unique(revised["report_type"].take(same)):
        rows = same[revised["report_type"].take(same) == kind]
        others = np.flatnonzero(real["report_type"] != kind)
        picked[rows] = others[rng.integers(0, len(others), len(rows))]
    like = real.take(picked)
    onset = like["days_since_onset"].astype(np.int64)
    if real_onsets_before is not None:
        before = np.asarray(real_onsets_before, np.int64).take(picked)
        own = revised["days_since_onset"].astype(np.int64)
        known = (before != NO_DAYS_SINCE_ONSET) & (onset != NO_DAYS_SINCE_ONSET) & (own != NO_DAYS_SINCE_ONSET)
        moved = own + onset - before
        moved = np.where(np.abs(moved) <= MAX_DAYS_SINCE_ONSET, moved, NO_DAYS_SINCE_ONSET)  # as publish keeps it
        onset = np.where(known, moved, onset)
    revised["report_type"], revised["days_since_onset"] = like["report_type"], onset
    return revised


def revisable_like(fakes: np.ndarray, real: np.ndarray) -> np.ndarray:
    """The ``fakes`` that ``fake_revisions`` may revise as one of ``real``: not those of the one type every
    real revision has (a likely fake beside only recursive -> likely revisions would become likely again)."""
    types = np.unique(real["report_type"])
    return fakes[fakes["report_type"] != types[0]] if len(types) == 1 and len(fakes) else fakes


def is_fake(keys: np.ndarray, secret: bytes | None) -> np.ndarray:
    """Which of ``keys`` (KEY_DTYPE) are fakes made with ``secret`` (none without one)."""
    if secret is None or not len(keys):
        return np.zeros(len(keys), bool)
    plain = np.frombuffer(_aes(secret).decryptor().update(np.ascontiguousarray(keys["key"]).tobytes()), np.uint8)
    return (plain.reshape(len(keys), 16)[:, :8] == np.frombuffer(_MARK, np.uint8)).all(axis=1)


def _aes(secret: bytes) -> Cipher:
    # ECB on purpose: each key is one block, encrypted alone (a block cipher as a keyed permutation)
    return Cipher(algorithms.AES(secret), modes.ECB())
