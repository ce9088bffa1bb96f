"""printable_line: a path or name from outside shown as one printable line that still reads as itself."""

from __future__ import annotations

import codecs

from hypothesis import given
from hypothesis import strategies as st

from bluezone.printable import printable_line


@given(st.text())
def test_any_text_comes_out_as_one_printable_line(text: str) -> None:
    shown = printable_line(text)
    assert shown.isprintable()  # no newline, ESC, bidi override or separator left
    assert len(shown.splitlines()) <= 1


@given(st.text().filter(str.isprintable))
def test_printable_text_is_unchanged(text: str) -> None:
    assert printable_line(text) == text


@given(st.text(st.characters(max_codepoint=127, blacklist_characters="\\")))
def test_the_escapes_read_back_as_the_original(text: str) -> None:
    """Recognisable: ASCII without a backslash of its own decodes from what is shown to exactly what was given."""
    assert codecs.decode(printable_line(text), "unicode_escape") == text


def test_a_path_with_a_newline_and_an_escape_sequence() -> None:
    assert printable_line("/tmp/a\nb\x1b[31mred\u202e") == "/tmp/a\\nb\\x1b[31mred\\u202e"
