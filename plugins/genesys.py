# -*- test-case-name: tests.test_vendor_plugins -*-
"""Genesys Cloud BYOC Cloud, external trunk (``vendor = "genesys"``; VENDORS.md §7).

Recognised by any ``x-inin-*`` or ``X-Genesys-*`` header, or a Genesys Cloud host
(``*.pure.cloud``, ``*.mypurecloud.*``) in Via, From, Contact or Record-Route.

From Genesys: ``x-inin-cnv`` (the Genesys conversation id, used by AI vendors for screen-pop
and hand-off) is the vendor call id; it and every other ``x-inin-*`` / ``X-Genesys-*`` header
go to the agent host.  Numbers are E.164: a digits-only number of 9 to 15 digits gets its
``+`` (option ``plus_e164 = false`` turns this off).  Genesys may send its INVITE without SDP:
the offer then comes in the SBC's 200 OK and the answer in Genesys' ACK (late offer, which the
B2BUA supports).

Toward Genesys: Genesys requires full Record-Route support for sequential requests, so the
defaults ask the SBC to Record-Route and to send in-dialog requests along the Record-Route
set.  The **Inbound SIP Termination Identifier** must be in the INVITE for Genesys to find
the organisation; where exactly is unconfirmed, so the plugin does not place it: put it where
your Genesys trunk says in the trunk's ``peer_uri`` (e.g. as the Request-URI host).

Defaults: TLS 5061 (UDP/TCP also allowed), TLS 1.2 only with public-CA certificates on both
ends, **no mutual TLS** (one-way TLS only), SRTP optional (SDES on TLS trunks), RFC 4733 DTMF
(endpoints should cope with in-band when it is absent).  No published signalling ranges were
retrieved: list your region's BYOC Cloud SIP addresses in the trunk's ``allow``.

Unconfirmed: the placement of the termination identifier, x-inin-* headers other than
x-inin-cnv and UUI passing, SRTP suites, BYOC Cloud port specifics, OPTIONS behaviour, the
per-region signalling addresses.
"""

from __future__ import annotations

import re

from twisted.plugin import IPlugin
from zope.interface import implementer

from sbc.quirks import CanonicalCall, IVendorQuirk, QuirkBase, QuirkContext, SipMessage, VendorDefaults
from sbc.quirks.helpers import address_hosts, has_header, plus_numbers

_GENESYS_HOST_RE = re.compile(r"(?:^|\.)(?:pure\.cloud|mypurecloud\.[a-z.]+)\Z", re.I)


@implementer(IPlugin, IVendorQuirk)
class GenesysQuirk(QuirkBase):
    name = "genesys"
    title = "Genesys Cloud BYOC Cloud"
    order = 100
    defaults = VendorDefaults(
        transport="tls",
        mutual_tls=False,
        srtp="optional",
        dtmf="rfc4733",
        options_interval=None,
        record_route=True,
        follow_record_route=True,
        signalling_ranges=(),
        ranges_confirmed=False,
        call_id_headers=("x-inin-cnv",),
        pass_x_headers=("x-inin-*", "X-Genesys-*"),
        unconfirmed=(
            "placement of the Inbound SIP Termination Identifier (Request-URI host/user or To)",
            "x-inin-* headers other than x-inin-cnv, and UUI passing",
            "SRTP suites on TLS trunks",
            "BYOC Cloud port specifics (5061 TLS / 5060 UDP-TCP assumed)",
            "OPTIONS behaviour of BYOC Cloud",
            "per-region BYOC Cloud signalling addresses (not retrieved)",
        ),
    )

    def recognise(self, message: SipMessage) -> bool:
        if has_header(message, ("x-inin-*", "X-Genesys-*")):
            return True
        return any(_GENESYS_HOST_RE.search(h) for h in address_hosts(message))

    def canonical(self, call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        super().canonical(call, message, ctx)
        plus_numbers(call, ctx)


genesys = GenesysQuirk()
