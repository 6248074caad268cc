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

import re

from twisted.plugin import IPlugin
from zope.interface import implementer

from sbc.quirks import CanonicalCall, IVendorQuirk, QuirkBase, QuirkContext, SipMessage, VendorDefaults

_HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z]{2,}")
_ADDRESS_HEADERS = ("Via", "From", "Contact", "Record-Route")


def _plus(number: str | None) -> str | None:
    if number and number.isdigit() and 9 <= len(number) <= 15 and number[0] != "0":
        return "+" + number
    return number


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
        for header in ("User-Agent", "Server"):
            value = message.get(header)
            if value is not None and "ringcentral" in value.lower():
                return True
        for header in _ADDRESS_HEADERS:
            for value in message.get_all(header):
                if any(h.lower() == "ringcentral.com" or h.lower().endswith(".ringcentral.com")
                       for h in _HOST_RE.findall(value)):
                    return True
        return False

    def canonical(self, call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        super().canonical(call, message, ctx)
        if ctx.option("plus_e164", True) is not False:
            call.callee = _plus(call.callee)
            call.caller = _plus(call.caller)
            call.redirecting = _plus(call.redirecting)


ringcentral = RingCentralQuirk()
