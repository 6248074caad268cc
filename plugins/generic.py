# -*- test-case-name: tests.test_quirks_plugins -*-
"""The generic SIP trunk (VENDORS.md §11): the baseline every other vendor builds on.

Recognises anything (it is the fallback) with the lowest priority among equals (order 1000,
so any vendor's plugin runs before it when a trunk combines them).  Changes no message: the
host's standard canonicalisation already covers what a generic trunk sends -- From plus
P-Asserted-Identity with Privacy (RFC 3325), Remote-Party-ID on older gear, Diversion
(RFC 5806) or History-Info (RFC 7044) for redirects, User-to-User (RFC 7433), numbers in
E.164 where possible.  Passes no X- header through: a generic trunk's X- headers mean
nothing agreed.  Defaults: UDP (5060), optional SDES SRTP, RFC 4733 DTMF, OPTIONS every 60 s.
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import implementer

from sbc.quirks.interface import IVendorQuirk, QuirkBase, VendorDefaults
from sbc.quirks.message import SipMessage


@implementer(IPlugin, IVendorQuirk)
class GenericQuirk(QuirkBase):
    name = "generic"
    title = "Generic SIP trunk"
    order = 1000
    defaults = VendorDefaults(
        transport="udp",
        srtp="optional",
        dtmf="rfc4733",
        options_interval=60.0,
    )

    def recognise(self, message: SipMessage) -> bool:
        return message.method is not None


generic = GenericQuirk()
