"""Progress for long work: a click progress bar per stage on a terminal, nothing when piped.

Library functions that run for seconds or minutes take ``progress: Progress | None`` and call
it with what they are doing and how far along (0 to 1); they never print.  The commands pass a
:class:`TerminalProgress` when stderr is a terminal, so a pipe or a log gets the result alone::

    with terminal_progress("server benchmark: 300 uploads x 3, then 1,000,000 keys exported") as progress:
        result = run_benchmark(..., progress=progress)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import click

#: ``progress(stage, fraction)``: ``stage`` says what runs now, ``fraction`` how much of it is done.
Progress = Callable[[str, float], None]
STEPS = 1000


class TerminalProgress:
    """One click progress bar per stage, on ``file`` (a terminal)."""

    def __init__(self, file: TextIO) -> None:
        self.file = file
        self.stage: str | None = None
        self._bar: Any = None
        self._done = 0

    def __call__(self, stage: str, fraction: float) -> None:
        if stage != self.stage:
            self.close()
            self.stage = stage
            self._bar = click.progressbar(length=STEPS, label=stage, file=self.file, show_eta=True, width=30)
            self._bar.__enter__()
        target = max(self._done, min(STEPS, int(round(fraction * STEPS))))
        if target > self._done:
            self._bar.update(target - self._done)
            self._done = target

    def close(self) -> None:
        """Finish the current bar (its line stays, as a record of the stage)."""
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
        self._bar, self._done, self.stage = None, 0, None


def is_terminal(file: TextIO | None = None) -> bool:
    """Whether ``file`` (stderr by default) is a terminal, where progress may be drawn."""
    stream = file if file is not None else sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def terminal_progress(start: str | None = None, file: TextIO | None = None) -> Iterator[Progress | None]:
    """On a terminal: print ``start`` once and yield a progress display; piped: yield None, print nothing."""
    stream = file if file is not None else sys.stderr
    if not is_terminal(stream):
        yield None
        return
    if start:
        click.echo(start, file=stream)
    display = TerminalProgress(stream)
    try:
        yield display
    finally:
        display.close()


def fraction_of(progress: Progress | None, stage: str) -> Callable[[float], None] | None:
    """A fraction-only callback for one stage (what ``sim.engine.run`` takes)."""
    if progress is None:
        return None
    return lambda fraction: progress(stage, fraction)
