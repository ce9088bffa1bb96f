"""The store's heard RPIs read by a check's forked workers themselves, the first one handing them back.

With more than one job a check used to read the store's distinct RPIs in a thread of the reading
process, beside the key file, and fork its workers only once that read had ended: the pre-filter
needs every heard RPI before a single key is derived.  Sharing the GIL with the file's parser, the
thread took ~0.14 s of wall time for ~0.07 s of work, while the second core sat idle: on the largest
real day (358,105 keys, two jobs) 0.8-1.0 cores were busy for the first ~30 % of the check
(docs/benchmarks.md, issue 17, thirteenth session).  Here the workers are forked first, each reads
the store in a process of its own while this one reads the key file, and derives as soon as its read
is done; the first worker sends what it read to this process (``receive``), which opens the store
itself only for the exposures.  One read of the store's RPIs is shared by this process and the first
worker; workers past the first read their own (a core each, otherwise idle at that point).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np

from bluezone.errors import MatchWorkerError
from bluezone.matching.matcher import HeardIndex, keys_heard

#: What a store's read gives: (every distinct RPI uint8 (n, 16), the intervals heard, the RPIs heard
#: at least ``receiver.MIN_SIGHTINGS`` times), as ``check.read_heard`` returns them.
Heard = tuple[np.ndarray, np.ndarray, np.ndarray]
#: (rows of a batch, their keys, the heard RPIs they sent): what is kept of a batch.
Found = tuple[np.ndarray, np.ndarray, np.ndarray]


def found_in(heard: HeardIndex, keys: np.ndarray) -> Found:
    """(rows, keys, RPIs) of the ``keys`` that sent an RPI in ``heard``: what is kept of a batch."""
    rows, rpis = keys_heard(keys, heard)
    return rows, keys[rows], rpis


class HeardInWorker:
    """A key stream's ``derive`` whose heard RPIs are read by each worker as it starts (``prepare``)
    with ``read``, and in this process are ``here()`` (waiting for them).  Workers forked once
    ``here()`` has answered inherit this process's instead of reading the store again."""

    def __init__(self, read: Callable[[], Heard], here: Callable[[], HeardIndex]) -> None:
        self._read = read
        self._here = here
        self._index: HeardIndex | None = None
        import multiprocessing  # made only where workers are forked: not in one job's imports

        self._reader, self._writer = multiprocessing.get_context("fork").Pipe(duplex=False)

    def prepare(self, worker: int) -> bool:
        """In a worker, first thing: read the store (unless inherited); the first worker sends what it
        read, or why it could not, to this process.  False: it could not (the worker derives nothing;
        this process raises the error once the key file has been read, as a bad file's comes first)."""
        if worker != 0:
            self._writer.close()  # not theirs to send: this process's end of file comes with the first's
        if self._index is not None:
            return True
        logging.disable(logging.WARNING)  # this process opens the store again and says what is to be said
        heard: Heard | BaseException
        try:
            heard = self._read()
        except Exception as exc:  # noqa: BLE001 - raised in this process, which says it
            heard = exc
        if not self._writer.closed:  # from a thread: this process takes it as its reading of the file allows
            threading.Thread(target=self._send, args=(heard,), name="bluezone-heard").start()  # joined at exit
        if not isinstance(heard, BaseException):
            self._index = HeardIndex(heard[0], heard[1])
        return self._index is not None

    def _send(self, heard: Heard | BaseException) -> None:
        """In the first worker: what it read, to this process."""
        try:
            self._writer.send(heard)
        except OSError:  # this process has stopped listening (it failed, or was interrupted)
            pass
        finally:
            self._writer.close()

    def forked(self) -> None:
        """In this process, once the first workers are forked: only they hold the sending end, so a
        first worker that dies before sending is an end of file here, not a wait for ever."""
        self._writer.close()

    def receive(self) -> Heard:
        """What the first worker read (its error raised here); blocks until it has read."""
        try:
            heard: Heard | BaseException = self._reader.recv()
        except EOFError:
            raise MatchWorkerError("a worker process reading the store ended (killed?) before the check did") from None
        finally:
            self._reader.close()
        if isinstance(heard, BaseException):
            raise heard
        return heard

    def index(self) -> HeardIndex:
        """The heard RPIs in this process (a worker's own, or this process's, waited for)."""
        if self._index is None:
            self._index = self._here()
        return self._index

    def __call__(self, keys: np.ndarray) -> Found:
        return found_in(self.index(), keys)
