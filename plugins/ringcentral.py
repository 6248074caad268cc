# -*- test-case-name: tests.test_vendor_plugins -*-
"""RingCentral BYOC / Premises Peering (``vendor = "ringcentral"``; VENDORS.md §3).

**Everything RingCentral-specific here is unconfirmed**: no BYOC interconnect specification
or capture was found, so the plugin is a thin profile of what UCaaS BYOC programmes typically
need, to be checked against RingCentral's specification and a customer trace.

Recognised by a ``ringcentral.com`` host in Via, From, Contact or Record-Route, or a
``User-Agent``/``Server`` naming RingCentral.  Numbers are expected as ``+E.164``: a
digits-only number of 9 to 15 digits gets its ``+`` (option ``plus_e164 = false`` turns this
off).  No header rewriting.

Defaults (all unconfirmed): TLS 1.2 on 5061 with a public-CA certificate naming the SBC FQDN,
no mutual TLS, SRTP optional (SDES AES_CM_128_HMAC_SHA1_80 expected), RFC 4733 DTMF
(payload type 101 expected), OPTIONS every 60 s both ways.  No published ranges.
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import implementer

from sbc.quirks import CanonicalCall, IVendorQuirk, QuirkBase, QuirkContext, SipMessage, VendorDefaults
from sbc.quirks.helpers import address_hosts, agent_matches, in_domain, plus_numbers



@implementer(IPlugin, IVendorQuirk)
class RingCentralQuirk(QuirkBase):
    name = "ringcentral"
    title = "RingCentral BYOC (Premises Peering)"
    order = 100
    defaults = VendorDefaults(
        transport="tls",
        mutual_tls=False,
        srtp="optional",
        dtmf="rfc4733",
        options_interval=60.0,
        signalling_ranges=(),
        ranges_confirmed=False,
        unconfirmed=(
            "the whole profile: no RingCentral BYOC interconnect specification was found",
            "transport TLS 1.2 on 5061 and certificate requirements",
            "SRTP (SDES AES_CM_128_HMAC_SHA1_80 expected)",
            "RFC 2833 DTMF with payload type 101",
            "OPTIONS keepalive in both directions",
            "+E.164 numbering",
            "recognition by ringcentral.com host names / User-Agent",
            "RingCentral signalling ranges",
        ),
    )

    def recognise(self, message: SipMessage) -> bool:
        if agent_matches(message, lambda value: "ringcentral" in value.lower()):
            return True
        return any(in_domain(h, "ringcentral.com") for h in address_hosts(message))

    def canonical(self, call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        super().canonical(call, message, ctx)
        plus_numbers(call, ctx)


ringcentral = RingCentralQuirk()
