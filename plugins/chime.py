# -*- test-case-name: tests.test_vendor_plugins -*-
"""Amazon Chime SDK Voice Connector, encryption enabled (``vendor = "chime"``; VENDORS.md §9).

Recognised by ``X-VoiceConnector-ID``, an ``X-SMA-*`` header, the ``VineProx`` User-Agent, a
``*.voiceconnector.chime.aws`` host, an ``X-Amzn-TargetArn`` naming a Chime resource, or a Via
address in the published signalling ranges -- unless the request also carries Amazon
Connect's headers (then it is the ``connect`` vendor's).

From the Voice Connector:

* Chime's Contact is a private 10.x address (with an ``alias=`` parameter), so in-dialog
  requests toward Chime must follow the Record-Route set (Chime's public proxy), never the
  Contact: the defaults say so (``follow_record_route``).
* The stray ``;transport=UDP`` header parameter on To is left alone (hooks may not change
  To; the agent host's To is built from the canonical callee anyway).
* ``X-VoiceConnector-ID``, ``X-Amzn-TargetArn`` and ``X-SMA-Max-Forwards`` get their spelling;
  ``X-VoiceConnector-ID``, every ``X-Amzn-*`` header and the custom ``x-`` headers a SIP media
  application Lambda sets (e.g. ``X-RequestorEmail``) go to the agent host; the hop counter
  ``X-SMA-Max-Forwards`` does not (option ``pass_app_headers = false`` passes only the Chime
  and Amazon headers).  User-to-User (``;encoding=hex``) and Diversion are read by the
  canonical form.
* Numbers are ``+E.164``: a digits-only number of 9 to 15 digits gets its ``+``.

Toward the Voice Connector (``<id>.voiceconnector.chime.aws``): numbers must be E.164 (and
From a number in the Chime inventory), so a digits-only Request-URI or P-Asserted-Identity
user of 9 to 15 digits gets its ``+`` (option ``plus_e164 = false`` turns both directions
off).  From and To belong to the dialog and hooks may not change them: the agent host must
dial with ``+E.164`` From numbers.

Defaults: TLS 5061 (inbound calls use TLS and unencrypted outbound calls are blocked when
encryption is on; import Chime's wildcard root certificate), SRTP required, RFC 4733 DTMF
(payload type 101 in Chime's offer), OPTIONS every 30 s (what AWS's samples use), follow
Record-Route.  Signalling ranges: us-east-1 3.80.16.0/23, us-west-2 99.77.253.0/24,
ap-northeast-2 99.77.242.0/24, ap-southeast-1 99.77.240.0/24 -- the other regions were cut
off in the research copy: **not complete, not confirmed**.

Unconfirmed: TLS version/ciphers, mutual TLS and SNI; the SRTP suite (expect
AES_CM_128_HMAC_SHA1_80); codecs beyond G.711; the required OPTIONS interval; session timers,
100rel and REFER; the remaining regions' ranges and all media ranges.
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import implementer

from sbc.quirks import CanonicalCall, IVendorQuirk, QuirkBase, QuirkContext, SipMessage, VendorDefaults
from sbc.quirks.helpers import (address_hosts, agent_matches, flag, has_header, networks, pass_headers,
                                plus_numbers, plus_request_numbers, respell, via_in)

_SPELLINGS = ("X-VoiceConnector-ID", "X-Amzn-TargetArn", "X-SMA-Max-Forwards")


def is_connect(message: SipMessage) -> bool:
    """True for a request Amazon Connect placed through a Voice Connector."""
    return (has_header(message, ("X-Amzn-Connect*",))
            or any(":connect:" in value for value in message.get_all("X-Amzn-SourceArn")))


@implementer(IPlugin, IVendorQuirk)
class ChimeQuirk(QuirkBase):
    name = "chime"
    title = "Amazon Chime SDK Voice Connector"
    order = 100
    defaults = VendorDefaults(
        transport="tls",
        mutual_tls=False,
        srtp="required",
        dtmf="rfc4733",
        options_interval=30.0,
        record_route=False,
        follow_record_route=True,
        allow_replaces=True,
        signalling_ranges=("3.80.16.0/23", "99.77.253.0/24", "99.77.242.0/24", "99.77.240.0/24"),
        ranges_confirmed=False,
        call_id_headers=(),
        pass_x_headers=("X-VoiceConnector-ID", "X-Amzn-*"),
        unconfirmed=(
            "TLS version/ciphers, mutual TLS and SNI",
            "SRTP suite with encryption on (expected AES_CM_128_HMAC_SHA1_80)",
            "codecs beyond G.711",
            "required OPTIONS interval (AWS samples qualify every 30 s)",
            "session timers, 100rel and REFER",
            "signalling ranges of ca-central-1, eu-central-1, eu-west-2, ap-northeast-1, ap-southeast-2",
            "media ranges",
        ),
    )

    def recognise(self, message: SipMessage) -> bool:
        if is_connect(message):
            return False
        if via_in(message, _RANGES):
            return True
        if has_header(message, ("X-SMA-*",)):
            return True
        if message.has("X-VoiceConnector-ID"):
            return True
        target = message.get("X-Amzn-TargetArn")
        if target is not None and ":chime:" in target:
            return True
        if agent_matches(message, lambda value: value.strip().startswith("VineProx")):
            return True
        return any(h.lower().endswith(".voiceconnector.chime.aws") for h in address_hosts(message))

    def request_from_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        respell(message, _SPELLINGS)

    def canonical(self, call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        super().canonical(call, message, ctx)
        if flag(ctx, "pass_app_headers", True):
            pass_headers(call, message, ("X-*",), exclude=("X-SMA-*",))
        plus_numbers(call, ctx)

    def request_to_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        plus_request_numbers(message, ctx)  # Request-URI and P-Asserted-Identity; From/To are the dialog's


#: Networks whose Via addresses mark a request as this vendor's.
_RANGES = networks(ChimeQuirk.defaults.signalling_ranges)

chime = ChimeQuirk()
