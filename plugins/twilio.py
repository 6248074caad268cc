# -*- test-case-name: tests.test_vendor_plugins -*-
"""Twilio Programmable Voice ``<Dial><Sip>`` and Elastic SIP Trunking (``vendor = "twilio"``;
VENDORS.md §5).

Recognised by any ``X-Twilio-*`` header, a ``User-Agent``/``Server`` starting ``Twilio``, a
``twilio.com`` host in Via, From, Contact or Record-Route, or a Via address in the signalling
ranges below.

From Twilio: ``X-Twilio-AccountSid``, ``X-Twilio-CallSid``, ``X-Twilio-VerStat`` and
``X-Twilio-Error`` get their documented spelling; ``X-Twilio-CallSid`` becomes the vendor call
id (``X-SBC-Vendor-Call-ID``); every ``X-`` header is passed to the agent host (TwiML puts the
application's own context in ``x-`` headers on the ``<Sip>`` URI); digits-only numbers of 9 to
15 digits get their ``+`` (Twilio numbers are E.164; option ``plus_e164 = false`` turns this off).

Toward Twilio: Twilio accepts only ``x-`` custom headers plus ``User-to-User``,
``Remote-Party-ID``, ``P-Preferred-Identity`` and ``P-Called-Party-ID`` (warning 13252
otherwise).  Request-URI ``?headers`` that break the rule are dropped, and so are message
headers that are neither standard SIP headers nor allowed custom ones (option
``strict_headers = false`` keeps them).  ``X-`` headers on the final response to Twilio reach
the application's ``<Dial action>`` URL.

Defaults: UDP/TCP 5060 or TLS 5061 ("secure trunking" is an opt-in: TLS + SRTP), SRTP
optional, RFC 4733 DTMF, no OPTIONS opinion.  Signalling ranges: the eight per-edge /30
networks VENDORS.md lists (Twilio asks to allow all of them) -- not confirmed current.
Media comes from 168.86.128.0/18, UDP 10000-60000 (since 2024-02-21).

Unconfirmed: TLS versions/ciphers and mTLS, the ``transport=tls``/``secure=true`` URI
parameters, the SRTP suite, the telephone-event payload type, OPTIONS pinging toward the
origination URI, session timers/100rel/REFER, the User-Agent string, the larger edge ranges
in one public PBX configuration.
"""

from __future__ import annotations

from attrs import evolve
from twisted.plugin import IPlugin
from zope.interface import implementer

from sbc.quirks import CanonicalCall, IVendorQuirk, QuirkBase, QuirkContext, SipMessage, VendorDefaults
from sbc.quirks.helpers import address_hosts, agent_matches, flag, has_header, networks, plus_numbers, respell, via_in
from sbc.sip.errors import SipParseError
from sbc.sip.uri import parse_uri

_SPELLINGS = ("X-Twilio-AccountSid", "X-Twilio-CallSid", "X-Twilio-VerStat", "X-Twilio-Error", "X-Twilio-ApiVersion")

#: Non-``x-`` custom headers Twilio accepts (2024-06-03 changelog).
ALLOWED_CUSTOM = ("User-to-User", "Remote-Party-ID", "P-Preferred-Identity", "P-Called-Party-ID")
#: Standard headers (RFC 3261 and the extensions the SBC speaks) that are never "custom".
STANDARD = frozenset(h.lower() for h in (
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
    "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition",
    "Content-Encoding", "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date",
    "Diversion", "Error-Info", "Event", "Expires", "From", "History-Info", "In-Reply-To", "Max-Forwards",
    "Min-Expires", "Min-SE", "MIME-Version", "Organization", "P-Asserted-Identity", "Priority", "Privacy",
    "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason", "Record-Route",
    "Refer-To", "Referred-By", "Replaces", "Reply-To", "Require", "Retry-After", "Route", "RSeq",
    "Server", "Session-Expires", "Session-ID", "Subject", "Subscription-State", "Supported", "Timestamp",
    "To", "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate", "Identity", "Path",
))


def allowed_custom(name: str) -> bool:
    """True when Twilio accepts ``name`` as a header (standard, ``x-`` or one of the four)."""
    lname = name.lower()
    return lname.startswith("x-") or lname in STANDARD or lname in {h.lower() for h in ALLOWED_CUSTOM}


@implementer(IPlugin, IVendorQuirk)
class TwilioQuirk(QuirkBase):
    name = "twilio"
    title = "Twilio (Programmable Voice SIP, Elastic SIP Trunking)"
    order = 100
    defaults = VendorDefaults(
        transport="udp",
        mutual_tls=False,
        srtp="optional",
        dtmf="rfc4733",
        options_interval=None,
        signalling_ranges=(
            "54.172.60.0/30",     # us1 Ashburn
            "54.244.51.0/30",     # us2 Umatilla
            "54.171.127.192/30",  # ie1 Dublin
            "35.156.191.128/30",  # de1 Frankfurt
            "54.65.63.192/30",    # jp1 Tokyo
            "54.169.127.128/30",  # sg1 Singapore
            "54.252.254.64/30",   # au1 Sydney
            "177.71.206.192/30",  # br1 Sao Paulo
        ),
        ranges_confirmed=False,
        call_id_headers=("X-Twilio-CallSid",),
        pass_x_headers=("X-*",),
        unconfirmed=(
            "TLS versions/ciphers and mutual TLS",
            "URI parameters transport=tls / secure=true for Dial/Sip",
            "SRTP suite (expected AES_CM_128_HMAC_SHA1_80)",
            "RFC 2833 telephone-event payload type (101 typical)",
            "OPTIONS pinging toward the origination URI",
            "session timers, 100rel and REFER behaviour",
            "User-Agent 'Twilio Gateway'",
            "larger per-edge signalling ranges seen in one public PBX configuration",
            "signalling ranges: per-edge /30s as reproduced in public repositories",
        ),
    )

    def recognise(self, message: SipMessage) -> bool:
        if via_in(message, _RANGES):
            return True
        if has_header(message, ("X-Twilio-*",)):
            return True
        if agent_matches(message, lambda value: value.strip().lower().startswith("twilio")):
            return True
        return any(h.lower().endswith(".twilio.com") for h in address_hosts(message))

    def request_from_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        respell(message, _SPELLINGS)

    def response_from_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        respell(message, _SPELLINGS)

    def canonical(self, call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        super().canonical(call, message, ctx)
        plus_numbers(call, ctx)

    def request_to_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        if message.uri:
            try:
                uri = parse_uri(message.uri)
            except SipParseError:
                uri = None
            if uri is not None and uri.headers:
                kept = tuple((n, v) for n, v in uri.headers if allowed_custom(n))
                if kept != uri.headers:
                    message.uri = str(evolve(uri, headers=kept))
        if flag(ctx, "strict_headers", True):
            for name in {n for n, _ in message.headers()}:
                if not allowed_custom(name):
                    message.remove(name)


#: Networks whose Via addresses mark a request as this vendor's.
_RANGES = networks(TwilioQuirk.defaults.signalling_ranges)

twilio = TwilioQuirk()
