# -*- test-case-name: tests.test_media_info -*-
"""
DTMF carried in SIP INFO bodies.

``application/dtmf-relay`` (the de facto Cisco format)::

    Signal=5
    Duration=160

and ``application/dtmf`` (the body is the key alone).  Signals are a key character, or the
RFC 4733 event code as a number (10 is ``*``, 11 is ``#``, 12-15 are ``A``-``D``).
"""

from __future__ import annotations

from sbc.media.core.rfc4733 import DIGITS

__all__ = ["DTMF_CONTENT_TYPES", "parse_dtmf_info"]

DTMF_CONTENT_TYPES = ("application/dtmf-relay", "application/dtmf")
_MAX_BODY = 1024


def _signal(value: str) -> str | None:
    value = value.strip().upper()
    if len(value) == 1 and value in DIGITS:
        return value
    if value.isdigit() and len(value) <= 2 and int(value) < 16:
        return DIGITS[int(value)]
    return None


def parse_dtmf_info(content_type: str, body: bytes) -> str | None:
    """The key an INFO body carries, or None when it is not DTMF or not valid."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in DTMF_CONTENT_TYPES or len(body) > _MAX_BODY:
        return None
    text = body.decode("latin-1")
    if media_type == "application/dtmf":
        return _signal(text)
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip().lower() == "signal":
            return _signal(value)
    return None
