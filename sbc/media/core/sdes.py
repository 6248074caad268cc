# -*- test-case-name: tests.test_media_sdes -*-
"""SDES (RFC 4568): the ``a=crypto`` attribute, parsed, chosen and rendered.

A crypto attribute value reads ``<tag> <crypto-suite> <key-params> [<session-params>...]``
(RFC 4568 §9.1), for example ``1 AES_CM_128_HMAC_SHA1_80 inline:<base64>|2^31``.  Each party
puts its *own* sending key in its SDP: the key we read from a peer's SDP is the one we
unprotect that peer's packets with, and the key we render is the one we protect ours with.

What we can use is bounded by the SRTP library (pylibsrtp over libsrtp 2):

* suites: the four in `SUITES` (RFC 4568 §6.2 for AES-CM, RFC 7714 §14.2 for AEAD-GCM);
  ``key`` is master key || master salt, 16+14, 16+14, 16+12 and 32+12 bytes;
* one ``inline:`` key-param with no MKI.  pylibsrtp cannot put or read an MKI in packets, so a
  line carrying ``|<mki>:<length>`` (and so any line with several keys, which RFC 4568 §6.1
  only allows with an MKI) is refused; `choose` then tries the offerer's next line;
* a lifetime ``|2^n`` or ``|<decimal>`` between 1 and 2^48 packets, the suites' maximum.  It
  bounds how many packets may use that key, and `sbc.media.srtp.SrtpEndpoint` enforces it;
* session parameters: ``KDR=0`` (session keys derived once: libsrtp's only mode), ``WSH=<n>``
  (n >= 64, a replay window hint) and ``FEC_ORDER=FEC_SRTP`` (the default order; we apply no
  FEC) are accepted.  ``UNENCRYPTED_SRTP``, ``UNENCRYPTED_SRTCP``, ``UNAUTHENTICATED_SRTP``,
  ``KDR`` other than 0, ``FEC_ORDER=SRTP_FEC``, ``FEC_KEY`` and unknown parameters make the
  line unusable (RFC 4568 §6.3: a line with a parameter the answerer cannot support is not
  selected).  An unknown parameter written with a leading ``-`` is non-critical (§9.2) and
  is ignored.

Anything else -- bad base64, a wrong key length, an unknown suite or key method, a tag longer
than nine digits, non-ASCII bytes -- gives ``None``, never an exception.

Keys are secrets: `SrtpKeying` keeps ``key`` out of its repr, and nothing here logs.

Pure: no Twisted import, no pylibsrtp import.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping, Sequence

from attrs import field, frozen

__all__ = [
    "KEY_LENGTHS",
    "MAX_LIFETIME",
    "SUITES",
    "SrtpKeying",
    "choose",
    "crypto_value",
    "match_answer",
    "new_keying",
    "parse_crypto_value",
]

SUITES: tuple[str, ...] = (
    "AES_CM_128_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32",
    "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM",
)

#: master key length + master salt length, in bytes, per suite
KEY_LENGTHS: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": 16 + 14,
    "AES_CM_128_HMAC_SHA1_32": 16 + 14,
    "AEAD_AES_128_GCM": 16 + 12,
    "AEAD_AES_256_GCM": 32 + 12,
}

#: the largest master key lifetime (in SRTP packets) any of SUITES allows
MAX_LIFETIME = 2**48

_MAX_TAG = 999_999_999  # tag = 1*9DIGIT
_MIN_WSH = 64

# Fields are separated by runs of SP / HTAB; the whole value must be visible ASCII otherwise.
_FIELD_SEP = re.compile(rb"[ \t]+")
_VISIBLE = re.compile(rb"[\x21-\x7e \t]*\Z")
_DIGITS = re.compile(rb"[0-9]+\Z")
_B64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}\Z")


@frozen
class SrtpKeying:
    """One party's SRTP master key for a suite.

    ``key`` is master key || master salt (`KEY_LENGTHS`); it is never shown by repr().
    ``lifetime`` is the most packets the key may protect (None: the suite's maximum).
    """

    suite: str
    key: bytes = field(repr=False)
    lifetime: int | None = None


def new_keying(suite: str) -> SrtpKeying:
    """A fresh random key for ``suite`` (from os.urandom).  Raises ValueError for an unknown suite."""
    length = KEY_LENGTHS.get(suite)
    if length is None:
        raise ValueError(f"unknown SRTP crypto suite {suite!r}")
    return SrtpKeying(suite, os.urandom(length))


def _lifetime_text(lifetime: int) -> str:
    if lifetime > 0 and lifetime & (lifetime - 1) == 0:
        return f"2^{lifetime.bit_length() - 1}"
    return str(lifetime)


def crypto_value(tag: int, keying: SrtpKeying) -> bytes:
    """The ``a=crypto`` value (without ``a=crypto:``) that offers or answers ``keying``."""
    if not 0 <= tag <= _MAX_TAG:
        raise ValueError(f"crypto tag out of range: {tag}")
    if len(keying.key) != KEY_LENGTHS.get(keying.suite, -1):
        raise ValueError(f"not a usable {keying.suite!r} key")  # the key itself stays out of the message
    if keying.lifetime is not None and not 1 <= keying.lifetime <= MAX_LIFETIME:
        raise ValueError(f"lifetime out of range: {keying.lifetime}")
    info = base64.b64encode(keying.key)
    if keying.lifetime is not None:
        info += b"|" + _lifetime_text(keying.lifetime).encode("ascii")
    return b"%d %s inline:%s" % (tag, keying.suite.encode("ascii"), info)


def _parse_lifetime(text: bytes) -> int | None:
    if text.startswith(b"2^"):
        exponent = text[2:]
        if not _DIGITS.match(exponent) or len(exponent) > 2:
            return None
        value = 2 ** int(exponent)
    else:
        if not _DIGITS.match(text) or len(text) > 15:  # 2^48 has 15 digits
            return None
        value = int(text)
    if not 1 <= value <= MAX_LIFETIME:
        return None
    return value


def _decode_key(text: bytes, length: int) -> bytes | None:
    # Some senders drop the base64 padding; put it back before the strict decode.
    if not _B64.match(text):
        return None
    if b"=" in text:
        if len(text) % 4:
            return None  # padding in the wrong place
    elif len(text) % 4:
        text += b"=" * (-len(text) % 4)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == length else None


def _parse_key_params(key_params: bytes, suite: str) -> SrtpKeying | None:
    method, sep, info = key_params.partition(b":")
    if not sep or method.lower() != b"inline" or b";" in info:
        return None  # another key method, or several keys (which need an MKI)
    pieces = info.split(b"|")
    if len(pieces) > 2:
        return None  # key|lifetime|mki: we cannot do MKI
    lifetime = None
    if len(pieces) == 2:
        if b":" in pieces[1]:
            return None  # key|mki:length
        lifetime = _parse_lifetime(pieces[1])
        if lifetime is None:
            return None
    key = _decode_key(pieces[0], KEY_LENGTHS[suite])
    if key is None:
        return None
    return SrtpKeying(suite, key, lifetime)


def _session_param_ok(param: bytes) -> bool:
    name, sep, value = param.partition(b"=")
    upper = name.upper()
    if upper == b"KDR":
        return bool(sep) and value in (b"0", b"00")  # 1*2DIGIT; 0: derive session keys once
    if upper == b"WSH":
        return bool(sep) and bool(_DIGITS.match(value)) and len(value) <= 9 and int(value) >= _MIN_WSH
    if upper == b"FEC_ORDER":
        return bool(sep) and value.upper() == b"FEC_SRTP"
    if param.startswith(b"-") and len(param) > 1:
        return True  # non-critical extension: ignore it
    # UNENCRYPTED_SRTP, UNENCRYPTED_SRTCP, UNAUTHENTICATED_SRTP, FEC_KEY and anything unknown.
    return False


def parse_crypto_value(value: bytes) -> tuple[int, SrtpKeying] | None:
    """``(tag, keying)`` from an ``a=crypto`` value, or None when we cannot use the line."""
    if not isinstance(value, bytes) or not _VISIBLE.match(value):
        return None
    fields = _FIELD_SEP.split(value.strip(b" \t"))
    if len(fields) < 3:
        return None
    tag_text, suite_text, key_params, *session_params = fields
    if not _DIGITS.match(tag_text) or len(tag_text) > 9:
        return None
    suite = suite_text.decode("ascii").upper()
    if suite not in KEY_LENGTHS:
        return None
    if not all(_session_param_ok(p) for p in session_params):
        return None
    keying = _parse_key_params(key_params, suite)
    if keying is None:
        return None
    return int(tag_text), keying


def choose(offered: Sequence[bytes], suites: Sequence[str] = SUITES) -> tuple[int, SrtpKeying] | None:
    """The first offered line (in the offer's order) we can use with one of ``suites``.

    The answerer picks one crypto attribute and answers with exactly one, carrying the same
    tag and suite and its own key (RFC 4568 §5.1.2, §7.1.2); the offerer lists them in its
    order of preference, so the first usable one wins.  ``suites`` filters, it does not
    reorder.  The answer line is then ``crypto_value(tag, new_keying(keying.suite))``.
    """
    allowed = frozenset(suites)
    for value in offered:
        parsed = parse_crypto_value(value)
        if parsed is not None and parsed[1].suite in allowed:
            return parsed
    return None


def match_answer(
    offered: Mapping[int, SrtpKeying], answered: Sequence[bytes]
) -> tuple[SrtpKeying, SrtpKeying] | None:
    """Check the answer to our offer: ``(our keying, the answerer's keying)`` or None.

    ``offered`` maps each tag we offered to the keying we put on that line; ``answered`` holds
    the answer's crypto values for the same media stream.  The answer must carry exactly one
    crypto attribute, whose tag we offered with the same suite, and which we can use.
    """
    if len(answered) != 1:
        return None
    parsed = parse_crypto_value(answered[0])
    if parsed is None:
        return None
    tag, theirs = parsed
    ours = offered.get(tag)
    if ours is None or ours.suite != theirs.suite:
        return None
    return ours, theirs
