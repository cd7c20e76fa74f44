"""Usernames and emails as identifiers: PRECIS (RFC 8264/8265) and a look-alike skeleton.

The scheme, in three steps:
1. PRECIS. A username or email is enforced with the UsernameCasePreserved profile for display
   (width-mapped: fullwidth "Ａ" -> "A"; NFC: a combining "e\u0301" and a precomposed "é" are one
   string) and UsernameCaseMapped for comparison (also lower-cased): that is `username_normalized`,
   unique per issuer. Its IdentifierClass refuses spaces, controls and default-ignorable code
   points, so zero-width characters and the soft hyphen never get in.
2. One script. A username whose letters mix scripts ("аda", a Cyrillic "а" among Latin letters)
   is refused; Common and Inherited characters (digits, punctuation, combining marks) go with any.
3. Skeleton. Each character of the compared form is replaced by the smallest code point among it
   and its Unicode confusables (TR39 data, `confusable-homoglyphs`), so "аса" (all Cyrillic) and
   "aca" share a skeleton. A new or renamed user whose skeleton another user of the issuer already
   has is refused (409), as a look-alike of that user.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from confusable_homoglyphs import confusables
from precis_i18n import get_profile

_CASE_MAPPED = get_profile("UsernameCaseMapped")
_CASE_PRESERVED = get_profile("UsernameCasePreserved")
_ANY_SCRIPT = ["COMMON", "INHERITED"]


class IdentifierError(ValueError):
    pass


def _enforce(profile: Any, value: str) -> str:
    try:
        return profile.enforce(value)
    except UnicodeError as exc:
        raise IdentifierError("username contains characters that are not allowed in an identifier "
                              "(spaces, controls, invisible or compatibility characters)") from exc


def display_form(value: str) -> str:
    """The username as stored and shown (PRECIS UsernameCasePreserved). Raises IdentifierError."""
    return _enforce(_CASE_PRESERVED, value)


def compare_form(value: str) -> str:
    """The form usernames are compared in (PRECIS UsernameCaseMapped). Raises IdentifierError."""
    return _enforce(_CASE_MAPPED, value)


def lookup_form(value: str) -> str:
    """For lookups (sign-in, invitations): the compared form, or a value nothing stored can equal."""
    try:
        return _CASE_MAPPED.enforce(value.strip())
    except UnicodeError:
        return "\uffff" + value[:64]


def check_single_script(value: str) -> None:
    if confusables.is_mixed_script(value, allowed_aliases=_ANY_SCRIPT):
        raise IdentifierError("username mixes letters of different scripts")


@lru_cache(maxsize=4096)
def _prototype(char: str) -> str:
    homoglyphs = confusables.confusables_data.get(char) or []
    candidates = [char, *(h["c"] for h in homoglyphs if len(h["c"]) == 1)]
    return min(candidates, key=ord)


def skeleton(compared: str) -> str:
    """Look-alike key of a compared-form username (see the module docstring)."""
    return "".join(_prototype(c) for c in compared)
