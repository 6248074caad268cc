# -*- test-case-name: tests.test_vendor_plugins -*-
"""Cisco Webex Calling through a Local Gateway (Cisco CUBE) (``vendor = "webex"``;
VENDORS.md §2).

The SBC usually sits on the **premises side of CUBE**: CUBE talks TLS/SRTP to Webex and
whatever it is configured for toward us, and its ``voice class sip-profiles`` can rewrite any
header.  The plugin is therefore tolerant and does little.

Recognised by a ``User-Agent``/``Server`` starting ``Cisco-SIPGateway`` (CUBE), a
``Cisco-Guid`` header, or a ``webex.com`` host (e.g. ``*.bcld.webex.com``) in Via, From,
Contact or Record-Route.

From CUBE: Diversion, History-Info, P-Asserted-Identity and Remote-Party-ID are read by the
canonical form as usual; ``Cisco-Guid`` is the vendor call id and is passed to the agent host.
Numbers: CUBE sends whatever its translation rules make; the plugin does not guess a missing
``+`` unless option ``plus_e164 = true``; otherwise set the trunk's ``country_code``.

Defaults: TLS 5061 toward the Webex edge (SRV ``_sips._tcp``), no mutual TLS on the premises
leg (certificate-based Local Gateways use mutual TLS toward Webex, and no wildcard
certificates), SRTP optional, RFC 4733 DTMF, OPTIONS every 60 s (CUBE
``sip-options-keepalive``), no published ranges.

Unconfirmed: CUBE's User-Agent string, Cisco-Guid, ports 5062/8934, TLS 1.2 ciphers and SRTP
suites for Webex Calling, RFC 2833 for Webex, the keepalive default, E.164 numbering, which
identity headers CUBE emits by default, Webex Calling address ranges.
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import implementer

from sbc.quirks import CanonicalCall, IVendorQuirk, QuirkBase, QuirkContext, SipMessage, VendorDefaults
from sbc.quirks.helpers import address_hosts, agent_matches, plus_numbers



@implementer(IPlugin, IVendorQuirk)
class WebexQuirk(QuirkBase):
    name = "webex"
    title = "Cisco Webex Calling (Local Gateway / CUBE)"
    order = 100
    defaults = VendorDefaults(
        transport="tls",
        mutual_tls=False,
        srtp="optional",
        dtmf="rfc4733",
        options_interval=60.0,
        signalling_ranges=(),
        ranges_confirmed=False,
        call_id_headers=("Cisco-Guid",),
        pass_x_headers=("Cisco-Guid",),
        unconfirmed=(
            "CUBE User-Agent/Server 'Cisco-SIPGateway/IOS-(version)'",
            "Cisco-Guid header as the call id",
            "CUBE port 5062 and Webex edge port 8934",
            "TLS 1.2 cipher list and SRTP suites for Webex Calling",
            "RFC 2833 DTMF for Webex Calling",
            "CUBE sip-options-keepalive default (60 s up / 30 s down)",
            "E.164 numbering from CUBE",
            "identity headers CUBE emits by default (Diversion/History-Info/PAI/RPID)",
            "Webex Calling signalling and media ranges (not retrieved)",
        ),
    )

    def recognise(self, message: SipMessage) -> bool:
        if agent_matches(message, lambda value: value.strip().lower().startswith("cisco-sipgateway")):
            return True
        if message.has("Cisco-Guid"):
            return True
        return any(h.lower().endswith(".webex.com") for h in address_hosts(message))

    def canonical(self, call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        super().canonical(call, message, ctx)
        plus_numbers(call, ctx, default=False)  # off unless asked: CUBE sends what its rules make


webex = WebexQuirk()
