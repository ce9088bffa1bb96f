"""The console script's stdout, which remembers a write it refused: so the CLI tells its own output failing (a
full disk, a stream closed, a reader gone) from a command's other OSErrors, and says it in one line as coreutils'
"write error" does, not "Error: OSError: ..." or a traceback (``--help`` and ``--version`` write before any
command runs).  Not a probing flush: unbuffered (``PYTHONUNBUFFERED``), a refused write keeps nothing to fail again.

And a stdout closed before the command started (``bluezone status >&-``) is held by /dev/null opened read-only:
Python leaves ``sys.stdout`` None there, click then writes nothing (exit 0, the report lost), and the next file
the command opened would take its number, to be written as if it were stdout.  A closed stderr is held by /dev/null
as it is, writable: there is nobody to tell, and its exit code still says what went wrong; so is a stderr that
refuses a write (``2>/dev/full``), from then on.

Under any locale the output is written whole or refused in one line: an ASCII stdout is written in UTF-8, as click
would (wrapping it again, past this one); text another encoding has no bytes for is a refused write.  An ASCII
stderr is written in UTF-8 too; what its encoding has no bytes for is escaped (``\u1eef``, ``\udcff``), as Python
escapes it there: the error is still said whole."""

from __future__ import annotations

import codecs
import io
import os
import string
import sys


class Stdout(io.TextIOWrapper):
    """``sys.stdout`` that keeps the error of a write or flush it could not do (``refused``): the stream's, or
    text its encoding has no bytes for (a venue's "Sữa" to a Latin-1 locale's stdout)."""

    refused: OSError | UnicodeEncodeError | None = None

    def write(self, text: str) -> int:
        try:
            return super().write(text)
        except (OSError, UnicodeEncodeError) as exc:
            self.refused = exc
            raise

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as exc:
            self.refused = exc
            raise


class Stderr(io.TextIOWrapper):
    """``sys.stderr`` that takes a write it cannot do (``2>/dev/full``, a reader gone) as said to nobody: from then on
    it writes to /dev/null, so the exit code still says what went wrong (an input error's 2 was the OSError's 1) and
    what is still buffered has nothing to fail on at exit."""

    def write(self, text: str) -> int:
        try:
            return super().write(text)
        except OSError:
            self._to_nobody()
            return len(text)

    def flush(self) -> None:
        try:
            super().flush()
        except OSError:
            self._to_nobody()

    def _to_nobody(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self.fileno())
        os.close(devnull)
        super().flush()  # what the refused write left in the buffer, into /dev/null


def take_over_standard_streams() -> None:
    """Hold a closed stdout or stderr, and put a ``Stdout`` in the place of Python's own ``sys.stdout``, writing
    to its buffer as it is set (``-u``, line buffering on a terminal); the one it replaces is kept alive by
    ``sys.__stdout__`` (collected, it would close the buffer they share)."""
    if _held_if_closed(1, os.O_RDONLY) and sys.stdout is None:  # writing to it fails: "Bad file descriptor"
        sys.stdout = Stdout(io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True)
    _held_if_closed(2, os.O_WRONLY)  # nobody to tell: what is said goes nowhere (not into a file; exitnow writes to 2)
    errors = sys.stderr
    if errors is sys.__stderr__ and isinstance(errors, io.TextIOWrapper):
        # an ASCII stderr (click would wrap it again, past this one) written in UTF-8 as stdout is; its errors
        # Python's own, backslashreplace, not click's 'replace': a --debug traceback's path with bytes an ASCII
        # locale cannot decode said "caf??.png" where the one-line error said "caf\udcc3\udca9.png"
        ascii_only = codecs.lookup(errors.encoding).name == "ascii"
        sys.stderr = Stderr(
            errors.buffer, encoding="utf-8" if ascii_only else errors.encoding, errors=errors.errors,
            line_buffering=errors.line_buffering,
            write_through=errors.write_through,
        )
    own = sys.stdout
    if own is sys.__stdout__ and isinstance(own, io.TextIOWrapper):
        # an ASCII stdout (PYTHONIOENCODING=ascii, a C locale outside UTF-8 mode) click would wrap again, in UTF-8
        # with 'replace' (click._compat's rule), and write past this one: its wrapping done here instead
        ascii_only = codecs.lookup(own.encoding).name == "ascii"
        sys.stdout = Stdout(
            own.buffer, encoding="utf-8" if ascii_only else own.encoding, errors="replace" if ascii_only else own.errors,
            line_buffering=own.line_buffering, write_through=own.write_through,
        )


#: Two writes whose bytes an encoding must give as they come, the same as the two written at once: a character set does.
_PROBE = ("bluezone 1.0: ok\n", "done.\n")


def unwritable_encoding() -> str | None:
    """What to say, if stdout's or stderr's encoding does not write text as it is given (a codec, not a character
    set): ``PYTHONIOENCODING=idna`` held each line back until a dot, and what came after the last one was lost at
    exit, exit 0; ``punycode`` ended every write with a '-'; ``undefined`` fails every write; ``unicode_escape`` wrote
    each line's end as a backslash and an n, all the output one line."""
    for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        encoding = getattr(stream, "encoding", None)
        if isinstance(encoding, str) and not _writes_as_given(encoding):
            origin = ", from PYTHONIOENCODING" if os.environ.get("PYTHONIOENCODING") else ""
            return (
                f"Error: {name}'s encoding ({encoding}{origin}) does not write text as it is given: use a character"
                " set, PYTHONIOENCODING=utf-8 (or a UTF-8 locale, LANG=C.UTF-8)"
            )
    return None


def _writes_as_given(encoding: str) -> bool:
    """Whether ``encoding`` writes each piece of text at once, as the bytes of the whole it is part of, and reads
    them back as that text, writing a line's end and the characters it has as a character set does."""
    first, second = _PROBE
    try:
        pieces = codecs.getincrementalencoder(encoding)()
        written = pieces.encode(first) + pieces.encode(second)
        if written != codecs.encode(first + second, encoding) or codecs.decode(written, encoding) != first + second:
            return False
        return _writes_plainly(encoding)
    except (LookupError, UnicodeError, ValueError, TypeError):
        return False


#: Characters no character set writes with a letter's bytes: a line's end; and three a character set writes
#: as bytes of their own or refuses (latin-1 has é, cp1252 €, Vietnamese ữ).
_LINE_END, _BEYOND_ASCII = "\n", "éữ€"
_LETTERS = string.ascii_letters + string.digits


def _writes_plainly(encoding: str) -> bool:
    """Whether ``encoding`` writes a line's end with no letter's bytes in it (unicode_escape writes backslash-n,
    and a terminal shows one line), and each character as bytes no printable text of other characters is also
    written as (raw_unicode_escape writes ữ as the six characters \\u1eef, as that text is written)."""
    pieces = codecs.getincrementalencoder(encoding)()
    pieces.encode("x")  # (a BOM, a shift: the bytes before any text's own)
    line_end = pieces.encode(_LINE_END)
    if line_end != b"\n" and (not line_end or any(pieces.encode(letter) in line_end for letter in _LETTERS)):
        return False
    for char in _BEYOND_ASCII:
        try:
            written = _bytes_of(encoding, char)
            other = written.decode("latin-1")  # (the text an ASCII-based codec spelt it with)
            if other != char and other.isprintable() and _bytes_of(encoding, other) == written:
                return False
        except UnicodeEncodeError:  # (a character set without it refuses it: said when written)
            continue
    return True


def _bytes_of(encoding: str, text: str) -> bytes:
    """The bytes ``encoding`` writes ``text`` as after a first letter (not a BOM or a shift before any text)."""
    pieces = codecs.getincrementalencoder(encoding)()
    pieces.encode("x")
    return pieces.encode(text)


def _held_if_closed(fd: int, flags: int) -> bool:
    """If ``fd`` is closed, /dev/null opened there with ``flags``; whether it was."""
    try:
        os.fstat(fd)
    except OSError:
        held = os.open(os.devnull, flags)
        if held != fd:  # (a lower one closed too: it took that)
            os.dup2(held, fd)
            os.close(held)
        return True
    return False


def refused_output() -> OSError | UnicodeEncodeError | None:
    """The error of the write stdout refused, if it has refused one."""
    return sys.stdout.refused if isinstance(sys.stdout, Stdout) else None


def refusal_line(refused: OSError | UnicodeEncodeError) -> str:
    """What to say of a write stdout refused: the system's reason, or the text its encoding cannot write and
    what to do about it."""
    if isinstance(refused, UnicodeEncodeError):
        text = refused.object[refused.start : refused.end]
        if codecs.lookup(refused.encoding).name == "utf-8":  # a lone surrogate: an undecodable byte, not text
            return f"Error: cannot write the output: {text!r} is not text (an undecodable byte)"
        return (
            f"Error: cannot write the output: {text!r} has no place in stdout's encoding ({refused.encoding}): use a"
            " UTF-8 locale (LANG=C.UTF-8) or PYTHONIOENCODING=utf-8"
        )
    return f"Error: cannot write the output: {refused.strerror or refused}"
