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

import ipaddress
import re

from twisted.plugin import IPlugin
from zope.interface import implementer

from sbc.quirks import CanonicalCall, IVendorQuirk, QuirkBase, QuirkContext, SipMessage, VendorDefaults
from sbc.quirks.message import encode
from sbc.sip.errors import SipParseError
from sbc.sip.message import parse_name_addr, parse_via
from sbc.sip.uri import parse_uri

_SPELLINGS = ("X-VoiceConnector-ID", "X-Amzn-TargetArn", "X-SMA-Max-Forwards")
_HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z]{2,}")
_ADDRESS_HEADERS = ("Via", "From", "Contact", "Record-Route")


def _respell(message: SipMessage, spellings: tuple[str, ...]) -> None:
    """Give vendor headers their documented spelling, keeping every header's position (names
    are case-insensitive, but the agent host gets one spelling whatever the PBX sent)."""
    wanted = {s.lower(): s for s in spellings}
    headers = message.headers()
    if all(wanted.get(n.lower(), n) == n for n, _ in headers):
        return
    for name in {n for n, _ in headers}:
        message.remove(name)
    for name, value in headers:
        message.add(wanted.get(name.lower(), name), value)


def _plus(number: str | None) -> str | None:
    if number and number.isdigit() and 9 <= len(number) <= 15 and number[0] != "0":
        return "+" + number
    return number


def is_connect(message: SipMessage) -> bool:
    """True for a request Amazon Connect placed through a Voice Connector."""
    for name, value in message.headers():
        lname = name.lower()
        if lname.startswith("x-amzn-connect"):
            return True
        if lname == "x-amzn-sourcearn" and ":connect:" in value:
            return True
    return False


def _plus_user(value: str) -> str:
    """The name-addr ``value`` with a ``+`` before a digits-only user of 9 to 15 digits."""
    try:
        addr = parse_name_addr(encode(value))
    except (SipParseError, ValueError):
        return value
    user = addr.uri.user
    fixed = _plus(user)
    if fixed == user or not addr.uri.is_sip:
        return value
    return addr.with_uri(addr.uri.with_user(fixed)).to_bytes().decode("utf-8", "surrogateescape")


def _via_addresses(message: SipMessage) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The IP addresses in the Via headers (sent-by and received=)."""
    out = []
    for value in message.get_all("Via"):
        try:
            via = parse_via(encode(value))
        except (SipParseError, ValueError):
            continue
        for host in (via.host, via.received):
            if host:
                try:
                    out.append(ipaddress.ip_address(host.strip("[]")))
                except ValueError:
                    pass
    return out


def _from_ranges(message: SipMessage, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    return any(address in net for address in _via_addresses(message) for net in networks
               if address.version == net.version)


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
        if _from_ranges(message, _RANGES):
            return True
        if any(name.lower().startswith("x-sma-") for name, _ in message.headers()):
            return True
        if message.has("X-VoiceConnector-ID"):
            return True
        target = message.get("X-Amzn-TargetArn")
        if target is not None and ":chime:" in target:
            return True
        for header in ("User-Agent", "Server"):
            value = message.get(header)
            if value is not None and value.strip().startswith("VineProx"):
                return True
        for header in _ADDRESS_HEADERS:
            for value in message.get_all(header):
                if any(h.lower().endswith(".voiceconnector.chime.aws") for h in _HOST_RE.findall(value)):
                    return True
        return False

    def request_from_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        _respell(message, _SPELLINGS)

    def canonical(self, call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        super().canonical(call, message, ctx)
        if ctx.option("pass_app_headers", True) is not False:
            for name, value in message.headers():
                lname = name.lower()
                if lname.startswith("x-") and not lname.startswith("x-sma-"):
                    call.pass_through(name, value)
        if ctx.option("plus_e164", True) is not False:
            call.callee = _plus(call.callee)
            call.caller = _plus(call.caller)
            call.redirecting = _plus(call.redirecting)

    def request_to_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        if ctx.option("plus_e164", True) is False:
            return
        if message.uri:
            try:
                uri = parse_uri(message.uri)
            except SipParseError:
                uri = None
            if uri is not None and uri.is_sip:
                fixed = _plus(uri.user)
                if fixed != uri.user:
                    message.uri = str(uri.with_user(fixed))
        # From and To are the dialog's (the host refuses changes to them): only the
        # asserted identity is fixed here.
        values = message.get_all("P-Asserted-Identity")
        if values:
            fixed_values = [_plus_user(v) for v in values]
            if fixed_values != values:
                message.set("P-Asserted-Identity", ", ".join(fixed_values))


#: Networks whose Via addresses mark a request as this vendor's.
_RANGES = tuple(ipaddress.ip_network(n) for n in ChimeQuirk.defaults.signalling_ranges)

chime = ChimeQuirk()
