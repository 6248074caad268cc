# -*- test-case-name: tests.test_quirks_interface -*-
"""The vendor quirk plugin interface (issue 6): what a plugin provides, what the host gives it.

A vendor plugin is an object providing :class:`IVendorQuirk` (and ``twisted.plugin.IPlugin``,
so that :mod:`sbc.quirks.loader` finds it in the top-level ``plugins`` package).  Subclass
:class:`QuirkBase`, which implements every hook as a no-op, and override what the vendor
needs::

    from twisted.plugin import IPlugin
    from zope.interface import implementer
    from sbc.quirks import IVendorQuirk, QuirkBase, VendorDefaults

    @implementer(IPlugin, IVendorQuirk)
    class AcmeQuirk(QuirkBase):
        name = "acme"
        title = "Acme Cloud PBX"
        defaults = VendorDefaults(call_id_headers=("X-Acme-Call-Id",))

        def request_to_pbx(self, message, ctx):
            message.set("X-Acme-Sbc", ctx.sbc_fqdn)

    acme = AcmeQuirk()

Hooks receive a mutable :class:`~sbc.quirks.message.SipMessage` (plain ``str`` values) and
change it in place; their return value is ignored, except for the two SDP hooks, which
return the new SDP bytes.  The host (:class:`sbc.quirks.chain.QuirkChain`) runs each hook on
a copy: when a hook raises, the message stays as it was before that hook and the failure is
recorded as a notice.  Hooks must not do I/O and must not keep the message.

This module is pure: zope.interface, attrs and the standard library only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Mapping

from attrs import field, frozen
from zope.interface import Attribute, Interface, implementer

if TYPE_CHECKING:  # pragma: no cover
    from .canonical import CanonicalCall
    from .message import SipMessage

__all__ = [
    "IVendorQuirk",
    "QuirkBase",
    "QuirkContext",
    "VendorDefaults",
    "NAME_RE",
    "TRANSPORTS",
    "SRTP_MODES",
    "DTMF_MODES",
    "DIRECTIONS",
]

#: A vendor key: what a trunk's ``vendor = "..."`` names.
NAME_RE = re.compile(r"[a-z0-9-]+\Z")
TRANSPORTS = ("udp", "tcp", "tls")
SRTP_MODES = ("required", "optional", "off")
DTMF_MODES = ("rfc4733", "info", "both")
DIRECTIONS = ("inbound", "outbound")


class IVendorQuirk(Interface):
    """One vendor's SIP dialect: how its traffic is recognised and fixed up."""

    name = Attribute("Vendor key used as the trunk's `vendor = ...` ([a-z0-9-]+), e.g. 'teams'.")
    title = Attribute("Human name, e.g. 'Microsoft Teams Direct Routing'.")
    order = Attribute("int: plugins run in (order, name) order; 100 by default.")
    defaults = Attribute("A VendorDefaults: transport, TLS, SRTP, DTMF, ranges, header lists.")

    def recognise(message: SipMessage) -> bool:
        """True when this request (from a PBX) looks like this vendor's traffic."""

    def request_from_pbx(message: SipMessage, ctx: QuirkContext) -> None:
        """Change a request arriving from the PBX, before canonicalisation."""

    def request_to_pbx(message: SipMessage, ctx: QuirkContext) -> None:
        """Change a request the SBC sends toward the PBX."""

    def response_from_pbx(message: SipMessage, ctx: QuirkContext) -> None:
        """Change a response arriving from the PBX."""

    def response_to_pbx(message: SipMessage, ctx: QuirkContext) -> None:
        """Change a response the SBC sends toward the PBX."""

    def canonical(call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        """Fill vendor facts (vendor call id, passed-through X- headers, numbers) into
        ``call``, which the host has already filled from the standard headers."""

    def sdp_from_pbx(sdp: bytes, ctx: QuirkContext) -> bytes:
        """Return the SDP body of a message from the PBX, possibly rewritten."""

    def sdp_to_pbx(sdp: bytes, ctx: QuirkContext) -> bytes:
        """Return the SDP body of a message toward the PBX, possibly rewritten."""


def _one_of(choices: tuple[str, ...]) -> Any:
    def check(instance: object, attribute: Any, value: object) -> None:
        if value not in choices:
            raise ValueError(f"{attribute.name} must be one of {', '.join(choices)}, not {value!r}")
    return check


def _optional_positive(instance: object, attribute: Any, value: object) -> None:
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0):
        raise ValueError(f"{attribute.name} must be a positive number of seconds or None, not {value!r}")


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)  # type: ignore[attr-defined]


@frozen
class VendorDefaults:
    """What a vendor needs from the SBC (defaults; a trunk's configuration may override them)."""

    #: Signalling transport the vendor uses toward us and expects from us.
    transport: str = field(default="udp", validator=_one_of(TRANSPORTS))
    #: Both sides present certificates (Teams).
    mutual_tls: bool = False
    #: SRTP toward the PBX: "required", "optional" (offer/accept both) or "off".
    srtp: str = field(default="optional", validator=_one_of(SRTP_MODES))
    #: DTMF method: RFC 4733 telephone-events, SIP INFO, or both.
    dtmf: str = field(default="rfc4733", validator=_one_of(DTMF_MODES))
    #: Seconds between OPTIONS pings the SBC should send to the PBX (Teams: 60); None: no opinion.
    options_interval: float | None = field(default=None, validator=_optional_positive)
    #: The SBC must add a Record-Route with its FQDN to requests toward the PBX.
    record_route: bool = False
    #: The SBC's Contact toward the PBX must carry its FQDN, never an IP address.
    fqdn_contact: bool = False
    #: In-dialog requests toward the PBX follow its Record-Route set, not its Contact (Chime).
    follow_record_route: bool = False
    #: The PBX accepts INVITEs with Replaces (Teams does not).
    allow_replaces: bool = True
    #: Published signalling source networks (CIDR); config refers to them as "vendor:<name>".
    signalling_ranges: tuple[str, ...] = field(default=(), converter=_strings)
    #: True when the ranges above were checked against the vendor's published list.
    ranges_confirmed: bool = False
    #: Headers carrying the vendor's own call identifier, first present wins.
    call_id_headers: tuple[str, ...] = field(default=(), converter=_strings)
    #: Vendor X- headers passed through to the agent host (case-insensitive; a trailing "*"
    #: is a prefix match, e.g. "X-Twilio-*").
    pass_x_headers: tuple[str, ...] = field(default=(), converter=_strings)
    #: Facts the research marks unconfirmed (shown by docs and ``sbc normalize``).
    unconfirmed: tuple[str, ...] = field(default=(), converter=_strings)


def _freeze_options(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict(value or {})


@frozen
class QuirkContext:
    """Where a hook runs: the trunk, its vendor, our FQDN and the call's direction.

    ``direction`` is the call's: "inbound" (the PBX called the agent host) or "outbound"
    (the agent host called through the trunk).  ``options`` are the trunk's vendor options
    from the configuration (e.g. a value VENDORS.md marks unconfirmed); ``call_id`` the
    Call-ID of the PBX's leg when known (for logs)."""

    trunk: str
    vendor: str
    sbc_fqdn: str
    direction: str = field(default="inbound", validator=_one_of(DIRECTIONS))
    options: Mapping[str, Any] = field(factory=dict, converter=_freeze_options, eq=False, hash=False)
    call_id: str = ""

    def option(self, name: str, default: Any = None) -> Any:
        """A vendor option of this trunk, or ``default``."""
        return self.options.get(name, default)


@implementer(IVendorQuirk)
class QuirkBase:
    """IVendorQuirk with no-op hooks and default attributes: subclass it.

    ``recognise`` matches when any of ``defaults.call_id_headers`` is present (override it
    for anything smarter); ``canonical`` takes the vendor call id from those headers and
    passes through the headers ``defaults.pass_x_headers`` names.
    """

    name: str = "base"
    title: str = "Quirk base class"
    order: int = 100
    defaults: VendorDefaults = VendorDefaults()

    def recognise(self, message: SipMessage) -> bool:
        return any(message.get(h) is not None for h in self.defaults.call_id_headers)

    def request_from_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        return None

    def request_to_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        return None

    def response_from_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        return None

    def response_to_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        return None

    def canonical(self, call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        if call.vendor_call_id is None:
            for header in self.defaults.call_id_headers:
                value = message.get(header)
                if value:
                    call.vendor_call_id = value.strip()
                    break
        for name, value in message.headers():
            if header_matches(name, self.defaults.pass_x_headers):
                call.pass_through(name, value)

    def sdp_from_pbx(self, sdp: bytes, ctx: QuirkContext) -> bytes:
        return sdp

    def sdp_to_pbx(self, sdp: bytes, ctx: QuirkContext) -> bytes:
        return sdp

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def header_matches(name: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """True when header ``name`` is one of ``patterns`` (case-insensitive; "X-Foo-*" is a
    prefix pattern)."""
    lname = name.lower()
    for pattern in patterns:
        p = pattern.lower()
        if p.endswith("*"):
            if lname.startswith(p[:-1]):
                return True
        elif lname == p:
            return True
    return False
