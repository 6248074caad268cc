# -*- test-case-name: tests.test_vendor_plugins -*-
"""Telnyx SIP connection, FQDN type (``vendor = "telnyx"``; VENDORS.md §6).

Recognised by ``X-call_leg_id`` / ``X-call_session_id`` or any ``X-Telnyx-*`` header, a
``User-Agent``/``Server`` starting ``Telnyx``, or a Telnyx proxy host (``sip.telnyx.com``,
``.eu``, ``.com.au``, ``.ca``, ``.asia``) in Via, From, Contact or Record-Route, or a Via
address among the proxy addresses below.

From Telnyx: ``X-call_leg_id`` and ``X-call_session_id`` get their documented spelling and go
to the agent host with every ``X-Telnyx-*`` header; ``X-call_session_id`` (else the leg id) is
the vendor call id.  The connection's number format is a Telnyx setting: digits-only numbers
of 9 to 15 digits are taken as E.164 without the ``+`` and get it (option ``plus_e164 = false``
when the connection sends national numbers; then set ``country_code``).

Toward Telnyx (outbound calls): with IP authentication plus token, option ``telnyx_token``
adds ``X-Telnyx-Token``; option ``p_charge_info`` (an E.164 number on the connection) adds
``P-Charge-Info: <sip:+E164@sip.telnyx.com>``.  Neither is added without its option.

Defaults: TLS 5061 (Telnyx sends inbound calls over TLS when the connection says so; TLS 1.2 or
later), SRTP off (Telnyx's per-connection "encrypted media" is off by default), RFC 4733 DTMF.
Signalling ranges: the regional proxy addresses VENDORS.md lists (US, Europe, Australia,
Canada, Asia beta) -- not confirmed current.  RTP uses UDP 16384-32768.

Unconfirmed: certificate/mTLS/SNI requirements, the default DTMF setting, OPTIONS, session
timers and REFER, media ranges beyond 103.115.244.128/25 and 185.246.41.128/25, codec lists,
the User-Agent string.
"""

from __future__ import annotations

import re

from twisted.plugin import IPlugin
from zope.interface import implementer

from sbc.quirks import CanonicalCall, IVendorQuirk, QuirkBase, QuirkContext, SipMessage, VendorDefaults
from sbc.quirks.helpers import (address_hosts, agent_matches, has_header, networks, plus_numbers, respell,
                                text_option, via_in)

_SPELLINGS = ("X-call_leg_id", "X-call_session_id", "X-Telnyx-Token")
_TELNYX_HOST_RE = re.compile(r"(?:^|\.)telnyx\.(?:com|eu|com\.au|ca|asia)\Z", re.I)
_E164_RE = re.compile(r"\+[1-9][0-9]{6,14}\Z")


@implementer(IPlugin, IVendorQuirk)
class TelnyxQuirk(QuirkBase):
    name = "telnyx"
    title = "Telnyx (SIP connection, FQDN)"
    order = 100
    defaults = VendorDefaults(
        transport="tls",
        mutual_tls=False,
        srtp="off",
        dtmf="rfc4733",
        options_interval=None,
        signalling_ranges=(
            "192.76.120.10/32", "64.16.250.10/32",      # US: sip.telnyx.com
            "185.246.41.140/32", "185.246.41.141/32",   # Europe: sip.telnyx.eu
            "103.115.244.145/32", "103.115.244.146/32", # Australia: sip.telnyx.com.au
            "192.76.120.31/32", "64.16.250.13/32",      # Canada: sip.telnyx.ca
            "103.115.244.158/32", "103.115.244.159/32", # Asia (beta): sip.telnyx.asia
        ),
        ranges_confirmed=False,
        call_id_headers=("X-call_session_id", "X-call_leg_id"),
        pass_x_headers=("X-call_*", "X-Telnyx-*"),
        unconfirmed=(
            "certificate, mutual TLS and SNI requirements",
            "default DTMF setting of a connection (RFC 2833 typical)",
            "OPTIONS pinging, session timers and REFER",
            "media ranges beyond 103.115.244.128/25 and 185.246.41.128/25",
            "codec lists per connection",
            "User-Agent string",
        ),
    )

    def recognise(self, message: SipMessage) -> bool:
        if via_in(message, _RANGES):
            return True
        if has_header(message, ("X-Telnyx-*", "X-call_leg_id", "X-call_session_id")):
            return True
        if agent_matches(message, lambda value: value.strip().lower().startswith("telnyx")):
            return True
        return any(_TELNYX_HOST_RE.search(h) for h in address_hosts(message))

    def request_from_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        respell(message, _SPELLINGS)

    def canonical(self, call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        super().canonical(call, message, ctx)
        plus_numbers(call, ctx)

    def request_to_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        if message.method != "INVITE":
            return
        token = text_option(ctx, "telnyx_token")
        if token:
            message.set("X-Telnyx-Token", token)
        number = ctx.option("p_charge_info")
        if isinstance(number, str) and _E164_RE.match(number):
            message.set("P-Charge-Info", f"<sip:{number}@sip.telnyx.com>")


#: Networks whose Via addresses mark a request as this vendor's.
_RANGES = networks(TelnyxQuirk.defaults.signalling_ranges)

telnyx = TelnyxQuirk()
