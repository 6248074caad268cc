"""Acme Cloud PBX: a sample third-party vendor quirk plugin for the sbc SIP SBC.

Acme (a made-up vendor) sends its own call id in ``X-Acme-Call-Id``, puts the caller's
number in ``X-Acme-Caller`` (its From user is the PBX's name), writes called numbers with a leading
``9`` for an outside line, and wants ``X-Acme-Sbc: <our FQDN>`` on every request we send it.
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import implementer

from sbc.quirks import CanonicalCall, IVendorQuirk, QuirkBase, QuirkContext, SipMessage, VendorDefaults
from sbc.policy.normalise import to_e164


@implementer(IPlugin, IVendorQuirk)
class AcmeQuirk(QuirkBase):
    name = "acme"
    title = "Acme Cloud PBX (sample third-party plugin)"
    order = 50
    defaults = VendorDefaults(
        transport="tls",
        srtp="required",
        call_id_headers=("X-Acme-Call-Id",),
        pass_x_headers=("X-Acme-Queue",),
        unconfirmed=("the outside-line prefix 9 (configurable: option acme_outside_prefix)",),
    )

    def recognise(self, message: SipMessage) -> bool:
        return message.get("X-Acme-Call-Id") is not None

    def request_from_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        message.remove("X-Acme-Debug")

    def request_to_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        message.set("X-Acme-Sbc", ctx.sbc_fqdn)

    def canonical(self, call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        super().canonical(call, message, ctx)
        prefix = str(ctx.option("acme_outside_prefix", "9"))
        if call.callee and prefix and call.callee.startswith(prefix):
            number = to_e164(call.callee[len(prefix):], "1")
            if number is not None:
                call.callee = number
        if not call.privacy and not (call.caller or "").startswith("+"):
            number = to_e164(message.get("X-Acme-Caller") or "", "1")
            if number is not None:
                call.caller = number


acme = AcmeQuirk()
