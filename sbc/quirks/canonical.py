# -*- test-case-name: tests.test_quirks_canonical -*-
"""The canonical form of a call toward the agent host (the header contract of issue 6).

Whoever sent the call, the agent host sees the same thing.  :func:`build_canonical` fills a
:class:`CanonicalCall` from the standard headers of the PBX's INVITE (after the vendor's
``request_from_pbx`` hooks); each vendor plugin's ``canonical`` hook then adds what only it
knows (its call id header, the X- headers it passes through, a number it writes oddly);
:meth:`CanonicalCall.headers` gives the header list that goes on the INVITE toward the agent
host and into the ``call.started`` agent event.

The contract, in this order (absent values leave their header out):

======================== ==============================================================
``X-SBC-Trunk``          the trunk's name (always)
``X-SBC-Vendor``         the trunk's vendor plugin (always)
``X-SBC-Original-Call-ID`` the PBX's Call-ID (always)
``X-SBC-Vendor-Call-ID`` the vendor's own call id (Twilio CallSid, Chime transaction id...)
``X-SBC-Callee``         the called number as +E.164 (else the Request-URI user as it is);
                         the Request-URI and To user toward the agent host are the same
``X-SBC-Caller``         the caller as +E.164 (else the user as it is); never for an
                         anonymous caller
``P-Asserted-Identity``  ``"Name" <sip:+E164@<sbc fqdn>;user=phone>`` (``<sip:user@fqdn>``
                         when not a number); ``<sip:anonymous@anonymous.invalid>`` for an
                         anonymous caller; absent when the caller is unknown
``Privacy``              ``id`` for an anonymous caller, else ``none`` (always)
``X-SBC-Redirecting``    the redirecting number (Diversion, else History-Info), +E.164 when
                         a number
``X-SBC-UUI``            User-to-User data decoded to text (hex, or as its ``encoding``
                         parameter says; a leading IA5 protocol discriminator 0x04 dropped)
``X-SBC-UUI-Hex``        the decoded User-to-User data in lower-case hex, when it is not text
(vendor ``X-`` headers)  passed through as the vendor plugin and the trunk configure them
======================== ==============================================================

Caller identity comes from P-Asserted-Identity, else Remote-Party-ID (``party=calling`` or no
party), else From.  The caller is anonymous -- and stays anonymous: no number, no name --
when a Privacy header asks for ``id``, ``user`` or ``header``, when the Remote-Party-ID has
``privacy=full`` or ``privacy=uri`` (``privacy=name`` hides only the name), or when the
identity used is ``anonymous``/``restricted``/``private`` or in ``anonymous.invalid``.

Numbers are made +E.164 by :func:`sbc.policy.normalise.to_e164` with the trunk's options
``country_code`` and ``international_prefix`` (QuirkContext.options).  Incoming headers
whose names start with ``X-SBC-`` are never trusted: the host removes them.
"""

from __future__ import annotations

import base64
import binascii
import re

from attrs import Factory, define

from sbc.policy.normalise import canonical_number
from sbc.sip.errors import SipParseError
from sbc.sip.message import NameAddr, parse_name_addr
from sbc.sip.uri import unescape

from .interface import QuirkContext
from .message import SipMessage, encode

__all__ = [
    "CanonicalCall",
    "CONTRACT_HEADERS",
    "build_canonical",
    "caller_identity",
    "decode_uui",
    "redirecting_number",
    "ANONYMOUS_PAI",
]

#: The fixed header names of the contract, in their order (pass-through headers follow).
CONTRACT_HEADERS = (
    "X-SBC-Trunk",
    "X-SBC-Vendor",
    "X-SBC-Original-Call-ID",
    "X-SBC-Vendor-Call-ID",
    "X-SBC-Callee",
    "X-SBC-Caller",
    "P-Asserted-Identity",
    "Privacy",
    "X-SBC-Redirecting",
    "X-SBC-UUI",
    "X-SBC-UUI-Hex",
)
ANONYMOUS_PAI = "<sip:anonymous@anonymous.invalid>"
_ANONYMOUS_USERS = frozenset({"anonymous", "restricted", "private"})
_PRIVACY_ID = frozenset({"id", "user", "header"})
_SAFE_VALUE_RE = re.compile(r"[^\x00-\x1f\x7f]*\Z")
_HEX_RE = re.compile(r"(?:[0-9A-Fa-f]{2})+\Z")
_PASS_NAME_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
#: The most pass-through headers one call carries (more are dropped).
MAX_EXTRA = 32
_MAX_VALUE = 1024


def _safe(value: str | None, limit: int = _MAX_VALUE) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > limit or not _SAFE_VALUE_RE.match(value):
        return None
    return value


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@define
class CanonicalCall:
    """The call as the agent host sees it; mutable while the hooks fill it."""

    trunk: str
    vendor: str
    original_call_id: str
    sbc_fqdn: str = "sbc.invalid"
    #: "+E.164" when the called user is a phone number, else the user as is.
    callee: str | None = None
    caller: str | None = None
    caller_name: str | None = None
    #: Anonymous caller: no number and no name reach the agent host.
    privacy: bool = False
    redirecting: str | None = None
    vendor_call_id: str | None = None
    #: Decoded User-to-User data as text, or None (then see ``uui_hex``).
    uui: str | None = None
    uui_hex: str | None = None
    #: Vendor X- headers passed through, (name, value) in order.
    extra: list[tuple[str, str]] = Factory(list)

    def pass_through(self, name: str, value: str) -> None:
        """Pass vendor header ``name`` through to the agent host (not ``X-SBC-*``, not a
        contract header, not twice the same line; at most :data:`MAX_EXTRA`)."""
        v = _safe(value)
        if v is None or not _PASS_NAME_RE.match(name) or name.lower().startswith("x-sbc-"):
            return
        if name.lower() in _CONTRACT_KEYS or len(self.extra) >= MAX_EXTRA:
            return
        if (name.lower(), v) in ((n.lower(), x) for n, x in self.extra):
            return
        self.extra.append((name, v))

    def copy(self) -> CanonicalCall:
        other = CanonicalCall(self.trunk, self.vendor, self.original_call_id, self.sbc_fqdn)
        for name in ("callee", "caller", "caller_name", "privacy", "redirecting", "vendor_call_id", "uui",
                     "uui_hex"):
            setattr(other, name, getattr(self, name))
        other.extra = list(self.extra)
        return other

    def identity(self) -> str | None:
        """The P-Asserted-Identity value toward the agent host."""
        if self.privacy:
            return ANONYMOUS_PAI
        caller = _safe(self.caller, 256)
        if caller is None:
            return None
        host = self.sbc_fqdn
        if caller.startswith("+") and caller[1:].isdigit():
            uri = f"sip:{caller}@{host};user=phone"
        else:
            uri = f"sip:{_escape_user(caller)}@{host}"
        name = _safe(self.caller_name, 256)
        return f"{_quote(name)} <{uri}>" if name else f"<{uri}>"

    def headers(self) -> tuple[tuple[str, str], ...]:
        """The canonical header list (see the module documentation)."""
        out: list[tuple[str, str]] = [
            ("X-SBC-Trunk", self.trunk),
            ("X-SBC-Vendor", self.vendor),
        ]
        call_id = _safe(self.original_call_id)
        if call_id is not None:
            out.append(("X-SBC-Original-Call-ID", call_id))
        for name, value in (("X-SBC-Vendor-Call-ID", self.vendor_call_id), ("X-SBC-Callee", self.callee)):
            v = _safe(value)
            if v is not None:
                out.append((name, v))
        if not self.privacy:
            v = _safe(self.caller, 256)
            if v is not None:
                out.append(("X-SBC-Caller", v))
        pai = self.identity()
        if pai is not None:
            out.append(("P-Asserted-Identity", pai))
        out.append(("Privacy", "id" if self.privacy else "none"))
        v = _safe(self.redirecting, 256)
        if v is not None:
            out.append(("X-SBC-Redirecting", v))
        v = _safe(self.uui)
        if v is not None:
            out.append(("X-SBC-UUI", v))
        elif self.uui_hex and _HEX_RE.match(self.uui_hex) and len(self.uui_hex) <= 2 * _MAX_VALUE:
            out.append(("X-SBC-UUI-Hex", self.uui_hex.lower()))
        out.extend(self.extra)
        return tuple(out)


_CONTRACT_KEYS = frozenset(h.lower() for h in CONTRACT_HEADERS)
_USER_UNSAFE_RE = re.compile(r"[^A-Za-z0-9\-_.!~*'()&=+$,;?/]")


def _escape_user(user: str) -> str:
    return _USER_UNSAFE_RE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group(0).encode("utf-8")), user)


# --------------------------------------------------------------------------- parts


def _addr(value: str) -> NameAddr | None:
    try:
        return parse_name_addr(encode(value))
    except (SipParseError, ValueError, UnicodeError):
        return None


def _user_of(addr: NameAddr) -> str | None:
    user = addr.uri.user
    if user is None:
        return None
    try:
        return unescape(user)
    except (ValueError, UnicodeError, SipParseError):  # pragma: no cover - defensive
        return user


def _is_anonymous(addr: NameAddr) -> bool:
    user = (_user_of(addr) or "").lower()
    return user in _ANONYMOUS_USERS or addr.uri.host.lower() == "anonymous.invalid"


def caller_identity(message: SipMessage, country_code: str | None = None,
                    international_prefix: str | None = None) -> tuple[str | None, str | None, bool]:
    """(caller, caller name, anonymous) of a request, see the module documentation."""
    privacy_values = set()
    for value in message.get_all("Privacy"):
        privacy_values.update(p.strip().lower() for p in value.split(";"))
    anonymous = bool(privacy_values & _PRIVACY_ID)
    hide_name = False
    chosen: NameAddr | None = None
    pais = [a for a in (_addr(v) for v in message.get_all("P-Asserted-Identity")) if a is not None]
    if pais:
        # RFC 3325 allows one sip/sips and one tel identity: prefer the one with a number.
        numbered = [a for a in pais if canonical_number(_user_of(a), country_code, international_prefix) !=
                    _user_of(a) or a.uri.scheme == "tel"]
        chosen = (numbered or pais)[0]
        if chosen.display is None:
            named = [a for a in pais if a.display]
            if named:
                chosen = NameAddr(named[0].display, chosen.uri, chosen.params, chosen.bracketed)
    else:
        for value in message.get_all("Remote-Party-ID"):
            addr = _addr(value)
            if addr is None:
                continue
            party = (addr.param("party") or "calling").lower()
            if party != "calling":
                continue
            rpid_privacy = (addr.param("privacy") or "off").lower()
            if rpid_privacy in ("full", "uri"):
                anonymous = True
            elif rpid_privacy == "name":
                hide_name = True
            chosen = addr
            break
    if chosen is None:
        value = message.get("From")
        chosen = _addr(value) if value is not None else None
    if chosen is None:
        return None, None, anonymous
    if _is_anonymous(chosen):
        anonymous = True
    if anonymous:
        return None, None, True
    user = _user_of(chosen)
    caller = canonical_number(user, country_code, international_prefix) if user else None
    name = None if hide_name else _safe(chosen.display, 256)
    if name is not None and name.lower() in _ANONYMOUS_USERS:
        name = None
    return _safe(caller, 256), name, False


def _hi_index(addr: NameAddr) -> tuple[int, ...]:
    index = addr.param("index")
    if not index:
        return ()
    try:
        return tuple(int(p) for p in index.split("."))
    except ValueError:
        return ()


def redirecting_number(message: SipMessage, country_code: str | None = None,
                       international_prefix: str | None = None) -> str | None:
    """The number the call was diverted from: the topmost Diversion (RFC 5806, the most
    recent diversion), else from History-Info (RFC 7044): the entry before the last one
    retargeted with a ``cause`` (RFC 4458), else the entry before the last one."""
    for value in message.get_all("Diversion"):
        addr = _addr(value)
        if addr is not None and _user_of(addr):
            return _safe(canonical_number(_user_of(addr), country_code, international_prefix), 256)
    entries = [a for a in (_addr(v) for v in message.get_all("History-Info")) if a is not None]
    if len(entries) < 2:
        return None
    if all(_hi_index(a) for a in entries):
        entries.sort(key=_hi_index)
    target = len(entries) - 1
    for i in range(len(entries) - 1, 0, -1):
        if entries[i].uri.has_param("cause"):
            target = i
            break
    user = _user_of(entries[target - 1])
    return _safe(canonical_number(user, country_code, international_prefix), 256) if user else None


def decode_uui(value: str | None) -> tuple[str | None, str | None]:
    """Decode a User-to-User header value (RFC 7433): (text, None) when the data is
    printable text, (None, hex) otherwise, (None, None) when it cannot be decoded.

    ``encoding=hex`` (the only encoding RFC 7433 defines) and, leniently, ``encoding=base64``
    are honoured; without an encoding parameter data that is all hex digits (even length) is
    read as hex -- what ISDN interworking sends -- and anything else as text."""
    if not value:
        return None, None
    data_part, _, params_part = value.partition(";")
    data_text = data_part.strip()
    if data_text.startswith('"') and data_text.endswith('"') and len(data_text) >= 2:
        data_text = data_text[1:-1]
    encoding = None
    for item in params_part.split(";"):
        name, _, val = item.partition("=")
        if name.strip().lower() == "encoding":
            encoding = val.strip().strip('"').lower()
    raw: bytes | None
    if encoding == "hex" or (encoding is None and _HEX_RE.match(data_text)):
        try:
            raw = binascii.unhexlify(data_text)
        except (binascii.Error, ValueError):
            return None, None
    elif encoding == "base64":
        try:
            raw = base64.b64decode(data_text, validate=True)
        except (binascii.Error, ValueError):
            return None, None
    elif encoding is None:
        return _safe(data_text), None
    else:
        return None, None
    if not raw:
        return None, None
    payload = raw[1:] if raw[0] == 0x04 and len(raw) > 1 else raw  # Q.931 IA5 discriminator
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.isprintable():
        return _safe(text), None
    return None, raw.hex()


def build_canonical(message: SipMessage, ctx: QuirkContext) -> CanonicalCall:
    """The standard part of the canonical call for an INVITE from the PBX."""
    cc = ctx.option("country_code")
    ip = ctx.option("international_prefix")
    cc = str(cc) if cc is not None else None
    ip = str(ip) if ip is not None else None
    call = CanonicalCall(ctx.trunk, ctx.vendor, message.get("Call-ID") or ctx.call_id, ctx.sbc_fqdn)
    user = None
    if message.uri:
        addr = _addr(message.uri)
        if addr is not None:
            user = _user_of(addr)
    if not user:
        to = message.get("To")
        addr = _addr(to) if to is not None else None
        user = _user_of(addr) if addr is not None else None
    call.callee = _safe(canonical_number(user, cc, ip), 256) if user else None
    call.caller, call.caller_name, call.privacy = caller_identity(message, cc, ip)
    call.redirecting = redirecting_number(message, cc, ip)
    call.uui, call.uui_hex = decode_uui(message.get("User-to-User"))
    return call
