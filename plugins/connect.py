# -*- test-case-name: tests.test_vendor_plugins -*-
"""Amazon Connect through a Chime SDK Voice Connector (``vendor = "connect"``; VENDORS.md §10).

Connect's *TransferParticipantToThirdParty* (``VoiceConnectorType: ChimeConnector``) sends the
call through a Voice Connector, so everything about the transport leg is as for ``chime``
(TLS, SRTP, Record-Route, ranges, the private Contact, E.164 numbers both ways).  This plugin runs before ``chime`` (order 90) and is recognised by any
``X-Amzn-Connect*`` header or an ``X-Amzn-SourceArn`` naming a Connect instance.

From Connect: ``X-Amzn-ConnectContactId`` (else ``X-Amzn-ConnectInitialContactId``, else the
``contactId`` in the User-to-User JSON) is the vendor call id; ``X-Amzn-ConnectContactId``,
``-ConnectInitialContactId``, ``-SourceAccount``, ``-SourceArn``, ``-TargetArn``, every other
``X-Amzn-*`` header and ``X-VoiceConnector-ID`` go to the agent host, and so do custom ``x-``
headers (contact attributes added by a SIP media application Lambda), but not
``X-SMA-Max-Forwards`` (option ``pass_app_headers = false`` passes only the Amazon headers).  Connect's User-to-User is
reported to be hex-encoded JSON (``;encoding=hex``): the canonical form decodes hex to text and
this plugin re-writes valid JSON compactly with sorted keys (anything else is left as decoded:
the tolerant decoder falls back to the raw data).

Defaults: as ``chime`` plus the Connect contact ids as call id headers.

Unconfirmed: the hex JSON User-to-User (from third-party type definitions only), how
arbitrary contact attributes become SIP headers (the documented route is an SMA Lambda adding
``x-`` headers), and everything ``chime`` lists.
"""

from __future__ import annotations

import json
import re

from twisted.plugin import IPlugin
from zope.interface import implementer

from sbc.quirks import CanonicalCall, IVendorQuirk, QuirkBase, QuirkContext, SipMessage, VendorDefaults
from sbc.quirks.helpers import flag, has_header, pass_headers, plus_numbers, plus_request_numbers, respell

_SPELLINGS = (
    "X-Amzn-ConnectContactId", "X-Amzn-ConnectInitialContactId", "X-Amzn-SourceAccount",
    "X-Amzn-SourceArn", "X-Amzn-TargetArn", "X-VoiceConnector-ID", "X-SMA-Max-Forwards",
)
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]{0,127}\Z")


def uui_json(text: str | None) -> dict[str, object] | None:
    """The JSON object in decoded User-to-User text, or None."""
    if not text or not text.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


@implementer(IPlugin, IVendorQuirk)
class ConnectQuirk(QuirkBase):
    name = "connect"
    title = "Amazon Connect (via a Chime SDK Voice Connector)"
    order = 90
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
        call_id_headers=("X-Amzn-ConnectContactId", "X-Amzn-ConnectInitialContactId"),
        pass_x_headers=("X-Amzn-*", "X-VoiceConnector-ID"),
        unconfirmed=(
            "User-to-User as hex-encoded JSON (third-party type definitions only)",
            "how contact attributes become SIP headers (SMA Lambda x- headers is the known route)",
            "TLS version/ciphers, mutual TLS and SNI (as chime)",
            "SRTP suite with encryption on (as chime)",
            "required OPTIONS interval (as chime)",
            "signalling ranges of the regions missing from the research copy (as chime)",
        ),
    )

    def recognise(self, message: SipMessage) -> bool:
        return (has_header(message, ("X-Amzn-Connect*",))
                or any(":connect:" in value for value in message.get_all("X-Amzn-SourceArn")))

    def request_from_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        respell(message, _SPELLINGS)

    def canonical(self, call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        super().canonical(call, message, ctx)
        if flag(ctx, "pass_app_headers", True):
            pass_headers(call, message, ("X-*",), exclude=("X-SMA-*",))
        data = uui_json(call.uui)
        if data is not None:
            call.uui = json.dumps(data, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
            contact = data.get("contactId")
            if call.vendor_call_id is None and isinstance(contact, str) and _ID_RE.match(contact):
                call.vendor_call_id = contact
        plus_numbers(call, ctx)

    def request_to_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        plus_request_numbers(message, ctx)  # Request-URI and P-Asserted-Identity; From/To are the dialog's


connect = ConnectQuirk()
