# -*- test-case-name: tests.test_vendor_plugins -*-
"""NICE CXone, external SIP / BYOC (``vendor = "nice"``; VENDORS.md §8).

**Everything NICE-specific here is unconfirmed**: nothing authoritative about CXone's external
SIP interconnect was found.  The plugin is a thin carrier-grade profile until NICE's "CXone
SIP interconnect/BYOC" specification and a sample trace are available.

Recognised by a NICE CXone / inContact host (``*.niceincontact.com``, ``*.incontact.com``,
``*.nice-incontact.com``, ``*.cxone.cloud``) in Via, From, Contact or Record-Route, or a
``User-Agent``/``Server`` naming NICE CXone or inContact.  CXone uses E.164 (community
material): a digits-only number of 9 to 15 digits gets its ``+`` (option ``plus_e164 = false``
turns this off).  No header rewriting.

Defaults (all unconfirmed): UDP 5060 (TCP 5060 or TLS 5061 depending on the contract), SRTP
optional, RFC 4733 DTMF with payload type 101, OPTIONS every 60 s, customer addresses
allow-listed by NICE.  No published ranges.
"""

from __future__ import annotations

import re

from twisted.plugin import IPlugin
from zope.interface import implementer

from sbc.quirks import CanonicalCall, IVendorQuirk, QuirkBase, QuirkContext, SipMessage, VendorDefaults
from sbc.quirks.helpers import address_hosts, agent_matches, plus_numbers

_NICE_HOST_RE = re.compile(r"(?:^|\.)(?:niceincontact\.com|nice-incontact\.com|incontact\.com|cxone\.cloud)\Z", re.I)
_NICE_AGENT_RE = re.compile(r"\b(?:cxone|incontact)\b|\bnice\b", re.I)


@implementer(IPlugin, IVendorQuirk)
class NiceQuirk(QuirkBase):
    name = "nice"
    title = "NICE CXone"
    order = 100
    defaults = VendorDefaults(
        transport="udp",
        mutual_tls=False,
        srtp="optional",
        dtmf="rfc4733",
        options_interval=60.0,
        signalling_ranges=(),
        ranges_confirmed=False,
        unconfirmed=(
            "the whole profile: no CXone SIP interconnect specification was found",
            "transport (UDP/TCP 5060 or TLS 5061 depending on contract)",
            "G.711 and RFC 2833 DTMF with payload type 101",
            "OPTIONS pinging",
            "E.164 numbering (community material only)",
            "recognition by niceincontact.com / incontact.com host names and User-Agent",
            "NICE signalling ranges",
        ),
    )

    def recognise(self, message: SipMessage) -> bool:
        if agent_matches(message, lambda value: _NICE_AGENT_RE.search(value) is not None):
            return True
        return any(_NICE_HOST_RE.search(h) for h in address_hosts(message))

    def canonical(self, call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        super().canonical(call, message, ctx)
        plus_numbers(call, ctx)


nice = NiceQuirk()
