"""Text from outside the program (a path the user named, a variable's name) as one printable line.

A path may hold any byte but NUL: a newline prints a second line that looks like the program's own, and
an ESC starts a terminal escape sequence (recolour, clear the screen, set the title, write the clipboard
through OSC 52) that click passes to a terminal.  Shown through ``printable_line``, such a path stays
recognisable (``/tmp/a\\nb``) and does nothing to the terminal.
"""

from __future__ import annotations

import logging


def printable_line(text: str) -> str:
    """``text`` with every character that is not printable (control and format characters, line and
    paragraph separators, a surrogate standing for an undecodable byte) shown as its Python escape:
    ``\\n``, ``\\x1b``, ``\\u202e``, ``\\udcff``.  Printable text, any script's, comes back unchanged."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class OneLineFormatter(logging.Formatter):
    """Each log record's line printable (``printable_line``): a logged value (a path, a database's error,
    an address from a header) cannot fake a second record or drive the terminal.  A traceback, added
    after the line, keeps its lines.  The CLI's handler and the key server's use it."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return printable_line(super().formatMessage(record))
