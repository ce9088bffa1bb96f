"""A stderr that refuses writes (``2>/dev/full``) changes no exit code: an input error ended 1, the OSError of its own
one-line message, where a script reads 2.  Through the console script, as a shell runs it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _run(*args: str) -> int:
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        return subprocess.run([sys.executable, "-m", "bluezone", *args], stdout=subprocess.DEVNULL, stderr=fd,
                              timeout=120).returncode
    finally:
        os.close(fd)


@pytest.mark.parametrize("args", [
    ("check", "--keys", "/nonexistent/keys.json", "--db", "/nonexistent/s.db"),  # a BluezoneError's input error
    ("status", "--no-such-option"),  # click's usage error
    ("no-such-command",),
], ids=["input", "option", "command"])
def test_an_input_error_is_still_exit_2(args: tuple[str, ...]) -> None:
    assert _run(*args) == 2

