# -*- test-case-name: tests.test_quirks_canonical -*-
"""Telephone numbers to E.164 (ITU-T E.164; RFC 3966 for the tel-URI forms), sans-IO.

:func:`to_e164` turns the many ways a number arrives -- ``+1 (716) 871-2781``,
``0017168712781``, ``17168712781`` on a North American trunk, ``07700 900123`` on a UK one,
``5551234;phone-context=+1716`` -- into ``+<digits>`` (1 to 15 digits after the plus), and
answers None for what is not a phone number (``alice``, ``*72``, a 4-digit extension).
What is unambiguous is always converted: a leading ``+``, or a ``phone-context`` that is a
global number prefix.  Everything else needs the trunk's country: with ``country_code``
given, the international prefix (``011`` for country 1, ``00`` elsewhere, or
``international_prefix``) becomes ``+``; in country 1 (NANP) a 10-digit number starting
with 2-9 gets ``+1`` and an 11-digit one starting ``1`` gets ``+``; elsewhere a national
number starting with the trunk prefix ``0`` gets ``+<cc>`` in its place.

Pure functions on ``str``; no exception for any input.
"""

from __future__ import annotations

import re

__all__ = ["to_e164", "canonical_number", "strip_visual_separators", "MIN_DIGITS", "MAX_DIGITS"]

#: Fewest digits (country code included) taken as a full international number.
MIN_DIGITS = 7
#: E.164: at most 15 digits.
MAX_DIGITS = 15

_VISUAL_RE = re.compile(r"[\s\-.()\[\]/]")  # RFC 3966 visual-separator, plus spaces and slashes
_DIGITS_RE = re.compile(r"\+?[0-9]+\Z")
_CC_RE = re.compile(r"[1-9][0-9]{0,2}\Z")


def strip_visual_separators(text: str) -> str:
    return _VISUAL_RE.sub("", text)


def _params(text: str) -> tuple[str, dict[str, str]]:
    number, _, rest = text.partition(";")
    params: dict[str, str] = {}
    if rest:
        for item in rest.split(";"):
            name, _, value = item.partition("=")
            params[name.strip().lower()] = value.strip()
    return number, params


def _international(digits: str) -> str | None:
    if MIN_DIGITS <= len(digits) <= MAX_DIGITS and digits[0] != "0":
        return "+" + digits
    return None


def to_e164(text: str | None, country_code: str | None = None,
            international_prefix: str | None = None) -> str | None:
    """``+<digits>`` for a phone number, None for anything else (see the module doc)."""
    if not text or not isinstance(text, str) or len(text) > 256:
        return None
    number, params = _params(text.strip())
    number = strip_visual_separators(number)
    if number.lower().startswith("tel:"):
        number = strip_visual_separators(number[4:])
    if not _DIGITS_RE.match(number):
        return None
    if number.startswith("+"):
        return _international(number[1:])
    context = strip_visual_separators(params.get("phone-context", ""))
    if context.startswith("+") and context[1:].isdigit():
        return _international(context[1:] + number)
    if country_code is None or not _CC_RE.match(country_code):
        return None
    prefix = international_prefix or ("011" if country_code == "1" else "00")
    if prefix.isdigit() and number.startswith(prefix) and len(number) > len(prefix):
        return _international(number[len(prefix):])
    if country_code == "1":
        if len(number) == 10 and number[0] in "23456789":
            return "+1" + number
        if len(number) == 11 and number[0] == "1" and number[1] in "23456789":
            return "+" + number
        return None
    if number.startswith("0") and not number.startswith("00") and len(number) >= 6:
        return _international(country_code + number[1:])
    return None


def canonical_number(user: str | None, country_code: str | None = None,
                     international_prefix: str | None = None) -> str | None:
    """The canonical form of a URI user: ``+E.164`` when it is a phone number, else the user
    as it is (None stays None)."""
    if user is None:
        return None
    e164 = to_e164(user, country_code, international_prefix)
    return e164 if e164 is not None else user
