# -*- test-case-name: tests.test_vendor_plugins -*-
"""Zoom Phone BYOC-P / Premises Peering (``vendor = "zoom"``; VENDORS.md §4).

Recognised by Zoom's ``X-Trace-ID`` header, a ``zoom.us`` host in Via, From, Contact or
Record-Route, or a ``User-Agent``/``Server`` naming Zoom.

From Zoom: ``X-Trace-ID`` (Zoom's call trace id) gets its spelling, becomes the vendor call
id and is passed to the agent host.  ``Privacy: none`` and the P-Asserted-Identity are read by
the canonical form as usual.  BYOC-P numbers are ``+E.164``; a digits-only number of 9 to 15
digits gets its ``+`` (BYOP-P may send local or extension numbers: set ``plus_e164 = false``
and ``country_code`` for such trunks).

Zoom's SDES offer lists AEAD_AES_256_GCM, AES_256_CM_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_80 and
AES_CM_128_HMAC_SHA1_32 in that order, with Opus (102), G.722, G.711, G.729 and
telephone-event 101; the SBC's media layer answers with a suite and codec it supports.  The
plugin does not rewrite SDP.

Defaults: TLS 5061 (TLS 1.2 minimum, public-CA certificate, Zoom's DigiCert root and
intermediate installed), mutual TLS supported, SRTP required, RFC 4733 DTMF (Zoom also
accepts ``application/dtmf-relay`` INFO), early offer, Replaces supported.  No published
signalling ranges were retrieved: list Zoom's addresses in the trunk's ``allow``.

Unconfirmed: Zoom's OPTIONS interval (the SBC must answer them), proxy host names
(byoc.zoom.us ...), the regional signalling/media ranges, 100rel/PRACK and REFER toward the SBC.
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import implementer

from sbc.quirks import CanonicalCall, IVendorQuirk, QuirkBase, QuirkContext, SipMessage, VendorDefaults
from sbc.quirks.helpers import address_hosts, agent_matches, in_domain, plus_numbers, respell

_SPELLINGS = ("X-Trace-ID",)


@implementer(IPlugin, IVendorQuirk)
class ZoomQuirk(QuirkBase):
    name = "zoom"
    title = "Zoom Phone BYOC (Premises Peering)"
    order = 100
    defaults = VendorDefaults(
        transport="tls",
        mutual_tls=True,
        srtp="required",
        dtmf="rfc4733",
        options_interval=None,
        allow_replaces=True,
        signalling_ranges=(),
        ranges_confirmed=False,
        call_id_headers=("X-Trace-ID",),
        pass_x_headers=("X-Trace-ID",),
        unconfirmed=(
            "interval of Zoom's OPTIONS (the SBC must answer them)",
            "proxy host names such as byoc.zoom.us (third-party guide only)",
            "regional signalling and media ranges (not retrieved)",
            "100rel/PRACK and REFER toward the SBC",
        ),
    )

    def recognise(self, message: SipMessage) -> bool:
        if message.has("X-Trace-ID"):
            return True
        if agent_matches(message, lambda value: "zoom" in value.lower()):
            return True
        return any(in_domain(h, "zoom.us") for h in address_hosts(message))

    def request_from_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        respell(message, _SPELLINGS)

    def canonical(self, call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        super().canonical(call, message, ctx)
        plus_numbers(call, ctx)


zoom = ZoomQuirk()
