"""The key server's own log lines: a value with a newline or an escape sequence (a path, a database's
error, a header behind a proxy) must not forge a second line nor reach the operator's terminal.

The CLI's handler escaped each line, but ``configure_logging`` replaced its formatter with a plain one
for ``--workers`` > 1, and a program serving the app itself got logging's plain format."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bluezone.server.serve import configure_logging

FORGED = "db at /srv/x\n2026-12-06 00:00:00,000 INFO bluezone.server.app: keys published \x1b]0;owned\x07"


@pytest.fixture
def root_logging() -> Iterator[logging.Logger]:
    """The root logger, put back as it was afterwards (the test clears its handlers, pytest's too:
    pytest adds its own after the fixtures are set up)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield root
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _lines(root: logging.Logger) -> list[str]:
    logging.getLogger("bluezone.server.test").warning("not ready: the database failed: %s", FORGED)
    stream = root.handlers[0].stream  # type: ignore[attr-defined]
    return stream.getvalue().splitlines()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_forged_newline_stays_in_its_own_line(root_logging: logging.Logger, workers: int) -> None:
    root_logging.handlers[:] = [logging.StreamHandler(io.StringIO())]  # as the CLI's, or a program's own
    configure_logging(workers)
    lines = _lines(root_logging)
    assert len(lines) == 1, lines
    assert lines[0].endswith("db at /srv/x\\n2026-12-06 00:00:00,000 INFO bluezone.server.app: keys published \\x1b]0;owned\\x07")
    assert ("[" in lines[0].split("bluezone.server.test")[0]) == (workers > 1)  # each worker's line says whose it is


def test_a_program_serving_the_app_itself_gets_escaped_lines_too(root_logging: logging.Logger) -> None:
    root_logging.handlers.clear()
    configure_logging()  # no handler yet: configure_logging makes the one
    root_logging.handlers[0].setStream(io.StringIO())  # type: ignore[attr-defined]
    assert _lines(root_logging)[0].endswith("keys published \\x1b]0;owned\\x07")
    assert len(_lines(root_logging)) == 2  # one line a record
