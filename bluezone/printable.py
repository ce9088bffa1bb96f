"""Text from outside the program (a path the user named, a variable's name) as one printable line.

A path may hold any byte but NUL: a newline prints a second line that looks like the program's own, and
an ESC starts a terminal escape sequence (recolour, clear the screen, set the title, write the clipboard
through OSC 52) that click passes to a terminal.  Shown through ``printable_line``, such a path stays
recognisable (``/tmp/a\\nb``) and does nothing to the terminal.
"""

from __future__ import annotations

import logging
import os
import sys


def printable_line(text: str) -> str:
    """``text`` with every character that is not printable (control and format characters, line and
    paragraph separators, a surrogate standing for an undecodable byte) shown as its Python escape:
    ``\\n``, ``\\x1b``, ``\\u202e``, ``\\udcff``.  Printable text, any script's, comes back unchanged."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def stderr_is_journal() -> bool:
    """Whether stderr is systemd's journal stream (``$JOURNAL_STREAM`` names its device and inode, as
    systemd.exec(5) says to check): a unit's output, not a terminal, a file it was redirected to, or a
    test's capture (``sys.stderr``'s own descriptor, none for click's runner)."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not inode:
        return False
    try:
        status = os.fstat(sys.stderr.fileno())
        return (status.st_dev, status.st_ino) == (int(device), int(inode))
    except (AttributeError, OSError, ValueError):  # (io.UnsupportedOperation is both of the last two)
        return False


def error_line(text: str) -> str:
    """An ``Error: ...`` line for stderr, printable, and marked an error for the journal when that is where it goes."""
    return _stderr_line(text, logging.ERROR)


def warning_line(text: str) -> str:
    """A ``Warning: ...`` line the CLI writes itself (not a log record), as ``error_line``: marked a warning for the
    journal, where it was stored as INFO and ``journalctl -p warning`` left it out."""
    return _stderr_line(text, logging.WARNING)


def _stderr_line(text: str, levelno: int) -> str:
    line = printable_line(text)
    return with_priority(line, levelno) if stderr_is_journal() else line


def with_priority(line: str, levelno: int) -> str:
    """``line`` led by syslog's priority for ``levelno`` as sd-daemon(3)'s ``<4>``, which journald takes off."""
    return f"<{journal_priority(levelno)}>{line}"


def journal_priority(levelno: int) -> int:
    """syslog's priority for a logging level: 3 error (and critical), 4 warning, 6 info, 7 debug."""
    return 3 if levelno >= logging.ERROR else 4 if levelno >= logging.WARNING else 6 if levelno >= logging.INFO else 7


class OneLineFormatter(logging.Formatter):
    """Each log record's line printable (``printable_line``): a logged value (a path, a database's error,
    an address from a header) cannot fake a second record or drive the terminal.  A traceback, added
    after the line, keeps its lines.  The CLI's handler and the key server's use it.

    Into systemd's journal (``journal``; by default, when stderr is its stream) each record starts with its
    priority as sd-daemon(3)'s ``<4>``, which journald takes off: else every line was stored as INFO, and
    ``journalctl -u bluezone -p warning`` showed none of the daemon's warnings (user30's walk)."""

    def __init__(self, fmt: str | None = None, *, journal: bool | None = None) -> None:
        super().__init__(fmt)
        self.journal = stderr_is_journal() if journal is None else journal

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        line = printable_line(super().formatMessage(record))
        return with_priority(line, record.levelno) if self.journal else line
