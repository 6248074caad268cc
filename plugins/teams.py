# -*- test-case-name: tests.test_vendor_plugins -*-
"""Microsoft Teams Direct Routing (``vendor = "teams"``; VENDORS.md §1).

Recognised by the ``Microsoft.PSTNHub.SIPProxy`` User-Agent/Server, by the ``X-MS-UserLocation``
/ ``X-MS-MediaPath`` headers Microsoft adds, or by a ``pstnhub.microsoft.com`` (or US government
``pstnhub.*.teams.microsoft.us``) host in Via, From, Contact or Record-Route, or a Via address
in 52.112.0.0/14, 52.120.0.0/14 (older documents) or 52.122.0.0/15.

From Teams: the ``X-MS-*`` headers get their usual spelling and are passed to the agent host;
numbers are already ``+E.164`` (a digits-only number of 9 to 15 digits gets its ``+``).

Toward Teams (requests and responses):

* Contact carries the SBC's FQDN (never an IP: Microsoft answers 403) with ``transport=tls``
  and the SBC's TLS port (kept from a Contact that already says ``transport=tls``, else option
  ``tls_port``, default 5061); an OPTIONS without Contact gets one.  Nothing changes when
  ``[sbc] fqdn`` is an IP address: give it the DNS name on the SBC's certificate.
* ``X-MS-SBC: <vendor>/<model>/<version>`` on requests and responses (option ``x_ms_sbc``).
* Microsoft rejects requests carrying ``Replaces``: the header is removed (and ``replaces``
  dropped from Require); option ``allow_replaces = true`` keeps it.
* A ``+E.164`` Request-URI gets ``user=phone`` (Microsoft's recommendation).

Defaults: TLS only, mutual TLS (Microsoft presents a client certificate), SRTP (SDES
AES_CM_128_HMAC_SHA1_80) required, RFC 4733 DTMF (dynamic payload type), OPTIONS every 60 s
(Microsoft demotes an SBC that sent none in the last three minutes), FQDN Contact and
Record-Route, no Replaces.  Signalling ranges: 52.112.0.0/14 and 52.122.0.0/15, which
VENDORS.md gives as current; 52.120.0.0/14 from older documents is left out (add it to the
trunk's ``allow`` if your Teams traffic comes from there).  GCC High / DoD use other ranges.

Unconfirmed (VENDORS.md): SNI, Microsoft's own OPTIONS interval, session-timer values,
whether 100rel is required, PAI handling details, the names in Microsoft's client
certificate, SIP INFO DTMF.
"""

from __future__ import annotations

import re

from twisted.plugin import IPlugin
from zope.interface import implementer

from sbc.quirks import CanonicalCall, IVendorQuirk, QuirkBase, QuirkContext, SipMessage, VendorDefaults
from sbc.quirks.helpers import (address_hosts, agent_matches, flag, is_ip, networks, plus_numbers, respell,
                                text_option, via_in)
from sbc.quirks.message import encode
from sbc.sip.errors import SipParseError
from sbc.sip.message import parse_name_addr
from sbc.sip.uri import parse_uri

#: Default X-MS-SBC value (Vendor/Model/Version); trunk option ``x_ms_sbc`` overrides it.
X_MS_SBC = "sbc-project/sbc/0.1"

_SPELLINGS = ("X-MS-SBC", "X-MS-UserLocation", "X-MS-MediaPath", "X-MS-UserSite", "X-MS-OrganizationId")
_MS_HOST_RE = re.compile(r"(?:^|\.)pstnhub\.(?:[a-z0-9-]+\.)*(?:microsoft\.com|teams\.microsoft\.us)\Z", re.I)


def _port(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
        return value
    return 5061


@implementer(IPlugin, IVendorQuirk)
class TeamsQuirk(QuirkBase):
    name = "teams"
    title = "Microsoft Teams Direct Routing"
    order = 100
    defaults = VendorDefaults(
        transport="tls",
        mutual_tls=True,
        srtp="required",
        dtmf="rfc4733",
        options_interval=60.0,
        record_route=True,
        fqdn_contact=True,
        follow_record_route=False,
        allow_replaces=False,
        signalling_ranges=("52.112.0.0/14", "52.122.0.0/15"),
        ranges_confirmed=True,
        call_id_headers=(),
        pass_x_headers=("X-MS-*",),
        unconfirmed=(
            "SNI sent/expected by Microsoft (use sip.pstnhub.microsoft.com when connecting out)",
            "interval of Microsoft's own OPTIONS toward the SBC (commonly ~60 s)",
            "session-timer values offered by the SIP proxy",
            "whether Teams requires 100rel/PRACK",
            "P-Asserted-Identity handling details (ForwardPai)",
            "names in Microsoft's TLS client certificate (for match_tls_names)",
            "SIP INFO or in-band DTMF (assumed RFC 4733 only)",
            "X-MS-UserSite / X-MS-OrganizationId (only X-MS-UserLocation and X-MS-MediaPath are confirmed)",
        ),
    )

    def recognise(self, message: SipMessage) -> bool:
        if via_in(message, _RANGES):
            return True
        if agent_matches(message, lambda value: value.strip().startswith("Microsoft.PSTNHub")):
            return True
        if message.has("X-MS-UserLocation") or message.has("X-MS-MediaPath"):
            return True
        return any(_MS_HOST_RE.search(h) for h in address_hosts(message))

    def request_from_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        respell(message, _SPELLINGS)

    def canonical(self, call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        super().canonical(call, message, ctx)
        plus_numbers(call, ctx)

    def request_to_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        self._contact(message, ctx, add_missing=message.method == "OPTIONS")
        self._x_ms_sbc(message, ctx)
        if not flag(ctx, "allow_replaces", False):
            message.remove("Replaces")
            require = message.get_all("Require")
            if require:
                kept = [t.strip() for v in require for t in v.split(",")
                        if t.strip() and t.strip().lower() != "replaces"]
                message.remove("Require")
                if kept:
                    message.set("Require", ", ".join(kept))
        if message.uri:
            try:
                uri = parse_uri(message.uri)
            except SipParseError:
                return
            user = uri.user or ""
            if uri.is_sip and user.startswith("+") and user[1:].isdigit() and not uri.has_param("user"):
                message.uri = str(uri.with_param("user", "phone"))

    def sdp_from_pbx(self, sdp: bytes, ctx: QuirkContext) -> bytes:
        """Microsoft requires AES_CM_128_HMAC_SHA1_80 (VENDORS.md §1), but Teams offers
        AES_CM_128_HMAC_SHA1_32 first: keep only the _80 crypto lines when there are any, so
        that the answer (which takes the first usable line) uses _80."""
        lines = sdp.splitlines(keepends=True)
        crypto = [line.startswith(b"a=crypto:") for line in lines]
        wanted = [c and b" AES_CM_128_HMAC_SHA1_80 " in line for c, line in zip(crypto, lines)]
        if not any(wanted):
            return sdp
        return b"".join(line for line, c, w in zip(lines, crypto, wanted) if w or not c)

    def response_to_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        status = message.status or 0
        if 101 <= status < 300:  # not 3xx: a redirect's Contact names the target, not us
            self._contact(message, ctx, add_missing=False)
        self._x_ms_sbc(message, ctx)

    # ---- helpers

    def _x_ms_sbc(self, message: SipMessage, ctx: QuirkContext) -> None:
        if not message.has("X-MS-SBC"):
            # a missing or bad option value: the default, not no header
            message.set("X-MS-SBC", text_option(ctx, "x_ms_sbc", X_MS_SBC) or X_MS_SBC)

    def _contact(self, message: SipMessage, ctx: QuirkContext, add_missing: bool) -> None:
        fqdn = ctx.sbc_fqdn
        if not fqdn or is_ip(fqdn):
            return  # nothing we can do: the operator must give [sbc] fqdn a DNS name
        values = message.get_all("Contact")
        if not values:
            if add_missing:
                message.set("Contact", f"<sip:{fqdn}:{_port(ctx.option('tls_port', 5061))};transport=tls>")
            return
        out = []
        for value in values:
            if value.strip() == "*":
                out.append(value)
                continue
            try:
                addr = parse_name_addr(encode(value))
            except (SipParseError, ValueError):
                out.append(value)
                continue
            if not addr.uri.is_sip:
                out.append(value)
                continue
            port = addr.uri.port if addr.uri.transport == "tls" and addr.uri.port else None
            if port is None:
                port = _port(ctx.option("tls_port", 5061))
            uri = addr.uri.with_host(fqdn, port).with_param("transport", "tls")
            out.append(addr.with_uri(uri).to_bytes().decode("utf-8", "surrogateescape"))
        message.set("Contact", ", ".join(out))


#: Networks whose Via addresses mark a request as this vendor's.
_RANGES = networks(("52.112.0.0/14", "52.120.0.0/14", "52.122.0.0/15"))

teams = TeamsQuirk()
