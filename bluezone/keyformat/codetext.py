"""A verification code as a person types it, read the same way by ``upload``, ``venue warn`` and
the key server's ``revoke-code``: one parser, so a code one command takes is never refused by another.
"""

from __future__ import annotations

import unicodedata


def code_digits(typed: str) -> str:
    """``typed`` with the spaces and dashes between groups left out ("3572 4109", "3572-4109"; any
    whitespace, any dash: a letter's en dash) and digits of any script as ASCII (a phone keyboard's
    Arabic-Indic or a CJK input method's full-width ones are the same code).  Anything else is kept,
    for the caller to refuse with its own words (superscripts and circled digits are not digits here)."""
    kept = (c for c in typed if not c.isspace() and unicodedata.category(c) != "Pd")  # Pd: every kind of dash
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in kept)
