"""Batches of a key file's keys derived by forked workers and this process, whichever claims one first.

A ``ProcessPoolExecutor`` pickled every batch through a pipe, from two threads of this process that
need the GIL while this process parses the key file, and committed two batches to a worker ahead of
time.  On the largest real day (358,105 keys, two jobs) its worker idled 35-40 ms between batches,
and this process, done with the file, waited 15-40 ms for the worker's last two (docs/benchmarks.md,
issue 17, thirteenth session).  Here this process copies each batch into a slot of an anonymous
shared mapping the workers inherit, and counts it on a semaphore; whoever is free takes the next
batch's number from a ``SharedCounter`` (as ``matcher._SharedBlocks`` hands out a whole array's
chunks), and only the few keys found come back, through a pipe per worker.  Once the file is
read this process claims the batches left too, so at the end it waits for one batch a worker at most.
"""

from __future__ import annotations

import mmap
import multiprocessing
import multiprocessing.connection
from collections.abc import Callable, Iterator

import numpy as np

from bluezone.errors import MatchWorkerError
from bluezone.keyformat.keys import KEY_DTYPE
from bluezone.matching.forked import ctrl_c_held, leave_ctrl_c_to_parent
from bluezone.matching.sharedcounter import SharedCounter

#: What a batch gives: (rows of the batch, their keys, what they found), as ``Derive`` returns it.
Found = tuple[np.ndarray, np.ndarray, np.ndarray]
Derive = Callable[[np.ndarray], Found]


class SharedBatches:
    """``workers`` forked processes deriving batches of at most ``slot_keys`` keys with ``derive``,
    up to ``slots`` of them posted and not yet collected at once.  Not thread-safe: one owner."""

    def __init__(self, derive: Derive, workers: int, slots: int, slot_keys: int) -> None:
        context = multiprocessing.get_context("fork")
        self._derive = derive
        self._slot_keys = slot_keys
        # MAP_SHARED and anonymous: the forked workers see what this process writes after the fork
        self._keys = np.frombuffer(mmap.mmap(-1, slots * slot_keys * KEY_DTYPE.itemsize), KEY_DTYPE).reshape(slots, slot_keys)
        self._lengths = np.frombuffer(mmap.mmap(-1, slots * 8), np.int64)
        self._ready = context.Semaphore(0)  # batches posted and not yet claimed, then one a worker to stop
        self._next = SharedCounter()  # the next batch to claim: a restart's stopped workers keep their own
        self._collected: list[bool] = []  # per batch posted: its keys found and handed back
        self._outstanding = 0  # batches posted and not yet collected
        self._pipes: list[multiprocessing.connection.Connection] = []
        self._working: list[multiprocessing.connection.Connection] = []  # pipes of workers that may still send
        self._processes: list[multiprocessing.process.BaseProcess] = []
        with ctrl_c_held():  # the workers are born with SIGINT blocked (forked.py)
            for _ in range(workers):
                reader, writer = context.Pipe(duplex=False)
                process = context.Process(target=self._work, args=(writer,), daemon=True, name="bluezone-derive")
                process.start()
                writer.close()
                self._pipes.append(reader)
                self._working.append(reader)
                self._processes.append(process)

    @property
    def posted(self) -> int:
        return len(self._collected)

    @property
    def pids(self) -> list[int]:
        """The workers' process ids (while they run)."""
        return [p.pid for p in self._processes if p.pid is not None]

    def next_slot(self) -> np.ndarray | None:
        """The shared slot (KEY_DTYPE, ``slot_keys``) the next batch goes to, to build it there (``post``
        then copies nothing): None while it still holds a batch not collected."""
        number = self.posted
        if number >= len(self._keys) and not self._collected[number - len(self._keys)]:
            return None
        return self._keys[number % len(self._keys)]

    def post(self, keys: np.ndarray) -> int | None:
        """Hand ``keys`` (KEY_DTYPE, at most ``slot_keys``) to whoever claims them first: their batch
        number, or None when every slot still holds a batch not collected (then derive them here).
        Keys built in ``next_slot`` stay where they are; others are copied there."""
        number, slot = self.posted, self.next_slot()
        if slot is None:
            return None
        # not __array_interface__: of a structured array numpy builds its descr in Python and drops any
        # error there, a Ctrl-C's KeyboardInterrupt too (the check then ran to its end: ~1 in 4 at a fork)
        if keys.ctypes.data != slot.ctypes.data:
            slot[: len(keys)] = keys
        self._lengths[number % len(self._keys)] = len(keys)
        self._collected.append(False)
        self._outstanding += 1
        self._ready.release()
        return number

    def collect(self, wait: bool = False, between: Callable[[], None] | None = None) -> Iterator[tuple[int, Found]]:
        """(batch number, found) of the batches the workers have finished since the last call; with
        ``wait``, first every batch left is claimed and derived here (after each, what the workers
        finished meanwhile: the caller's work on it is done while they still derive), then the
        workers' last awaited.  ``between()`` is called before each batch is claimed here: the
        caller's work on what it was handed since is then done in one go, not batch by batch."""
        if wait:
            while True:
                if between is not None:
                    between()
                if (number := self._claim(block=False)) is None:
                    break
                self._mark_collected(number)
                yield number, self._derive(self._batch(number))
                yield from self._received(wait=False)
        yield from self._received(wait)

    def _received(self, wait: bool) -> Iterator[tuple[int, Found]]:
        """(batch number, found) of what the workers have sent; with ``wait``, until none is outstanding."""
        while self._outstanding:
            if not self._working:  # every worker said it ended with nothing left: none can send more
                raise MatchWorkerError("the worker processes deriving keys ended with batches not derived")
            ready = multiprocessing.connection.wait(self._working, timeout=None if wait else 0)
            if not ready:
                return
            for pipe in ready:
                assert isinstance(pipe, multiprocessing.connection.Connection)
                try:
                    message = pipe.recv()
                except EOFError:
                    raise MatchWorkerError("a worker process deriving keys ended (killed?) before the check did") from None
                if message is None:  # it found nothing left to claim (``no_more``) and ends: no error
                    self._working.remove(pipe)
                    continue
                number, found = message
                if isinstance(found, BaseException):
                    raise found
                self._mark_collected(number)
                yield number, found

    def no_more(self) -> None:
        """Nothing more will be posted: a worker that finds no batch left to claim ends then, not at
        ``close``, so that its exit (10-20 ms unmapping its copy of this process) overlaps this
        process's last batch instead of delaying this process's own exit, which waits for it."""
        self._next.end_at(self.posted)
        self._ready.release()  # handed on by whoever finds nothing left (``_claim``)

    def close(self) -> None:
        """Tell the workers to stop after the batch each is on; again: nothing more.  Not waited
        for: a worker's exit (unmapping its copy of this process) takes 10-20 ms, and each exits on
        its own (reaped by ``multiprocessing`` at the next fork or at this process's exit)."""
        if not self._processes:
            return
        self._next.stop()
        for _ in self._processes:
            self._ready.release()  # one each, to wake it to the stop
        for pipe in self._pipes:
            pipe.close()  # a worker still sending (this process failed mid-way) stops there
        self._processes, self._pipes, self._working = [], [], []

    def _mark_collected(self, number: int) -> None:
        self._collected[number] = True
        self._outstanding -= 1

    def _batch(self, number: int) -> np.ndarray:
        slot = number % len(self._keys)
        return self._keys[slot, : self._lengths[slot]]

    def _claim(self, block: bool) -> int | None:
        """The next posted batch nobody has claimed (None: none, or stopping)."""
        if not self._ready.acquire(block):
            return None
        number = self._next.take()
        if number is None:  # the end (``no_more``, ``close``): the next one to look sees it too
            self._ready.release()
        return number

    def _work(self, pipe: multiprocessing.connection.Connection) -> None:
        """A worker: derive the batches it claims until told to stop, then say so (None): its pipe's
        end alone is a worker killed, while another worker may still send the last batch."""
        leave_ctrl_c_to_parent()
        try:
            while (number := self._claim(block=True)) is not None:
                try:
                    found: Found | BaseException = self._derive(self._batch(number))
                except Exception as exc:  # noqa: BLE001 - raised again in the parent, which says it
                    found = exc
                pipe.send((number, found))
            pipe.send(None)
        except OSError:  # the parent has stopped listening (it failed, or was interrupted)
            return
