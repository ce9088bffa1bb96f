"""A Ctrl-C right after a two-job check started a thread on its store, before it noted to wait for it: the
thread was never waited for.  The count's (``bluezone-count``) ran on while the unwinding check closed the
store under it: SIGSEGV after "Interrupted" (2 in ~130 random Ctrl-Cs of ``check --jobs 2`` on the largest real
day); the store's (``bluezone-store``) kept the store it opened open to the process's end.  The interrupt is
injected at that exact point: SIGINT raised as ``InThread`` returns from starting the thread."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
from matching_helpers import SCORERS, day_file

import bluezone.matching.check as check_module
from bluezone.inthread import InThread
from bluezone.matching.check import check_key_file


@pytest.mark.parametrize("thread, waited_by", [("bluezone-store", "_HeardInBackground"), ("bluezone-count", "_CountInBackground")])
def test_a_ctrl_c_as_a_thread_on_the_store_starts_waits_for_it_before_the_store_closes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, thread: str, waited_by: str
) -> None:
    path, db, _, _ = day_file(tmp_path)
    start = InThread.__init__
    interrupted: list[str] = []

    def started_then_ctrl_c(self: InThread, name: str, work: object) -> None:
        start(self, name, work)  # type: ignore[arg-type]
        if name == thread:
            interrupted.append(name)
            signal.raise_signal(signal.SIGINT)  # Python's handler: KeyboardInterrupt at the next step

    holder = getattr(check_module, waited_by)
    close = holder.close
    closed: list[str] = []

    def close_noted(self: object) -> None:
        closed.append(waited_by)
        close(self)

    monkeypatch.setattr(InThread, "__init__", started_then_ctrl_c)
    monkeypatch.setattr(holder, "close", close_noted)
    with pytest.raises(KeyboardInterrupt):
        check_key_file(path, db, scorer=SCORERS["bluezone"], jobs=2, buffer_keys=0)
    assert interrupted == [thread]
    assert closed == [waited_by]  # waited for (and the store closed after it) on the way out
    assert not [t for t in threading.enumerate() if t.name == thread]
    assert not os.path.exists(f"{db}-wal") and not os.path.exists(f"{db}-shm")  # every connection closed
