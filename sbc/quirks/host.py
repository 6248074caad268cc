# -*- test-case-name: tests.test_quirks_b2bua -*-
"""What the B2BUA core does with a trunk's :class:`~sbc.quirks.chain.QuirkChain`, kept out
of the core so that the core only calls in (sans-IO, no Twisted).

:class:`InboundCall` runs, for an INVITE from a PBX, the ``request_from_pbx`` (and
``sdp_from_pbx``) hooks and the canonicalisation, and gives the core what the B leg INVITE
toward the agent host needs: the called user for the agent URI template (+E.164 when a
number), the caller for From, the body, and the header list -- the canonical headers first,
then the headers the core's allowlist copies (P-Asserted-Identity and Privacy are replaced by
the canonical ones, incoming ``X-SBC-*`` are dropped as spoofed, a header the vendor passes
through is not copied twice).
"""

from __future__ import annotations

import re
from ipaddress import ip_address
from typing import Any, Collection

from sbc.sip.message import Request, Response

from .canonical import CanonicalCall
from .chain import QuirkChain, QuirkNotice

__all__ = ["InboundCall", "REPLACED", "pbx_leg", "record_route", "startup_warnings"]

#: Incoming headers the canonical list replaces.
REPLACED = frozenset({"p-asserted-identity", "privacy"})
_SAFE_USER_RE = re.compile(r"[A-Za-z0-9+*#._~-]{1,128}\Z")


class InboundCall:
    """The quirk and canonical view of one INVITE from a PBX."""

    def __init__(self, chain: QuirkChain, request: Request, call_id: str = "") -> None:
        self.chain = chain
        ctx = chain.context("inbound", call_id or _call_id(request))
        #: The INVITE after the vendor's ``request_from_pbx``/``sdp_from_pbx`` hooks.
        self.request = chain.request_from_pbx(request, ctx)
        self.canonical: CanonicalCall = chain.canonical(self.request, ctx)
        #: Hook failures (the core logs them as ``quirk-error`` notices).
        self.notices: list[QuirkNotice] = chain.notices()
        self._headers: tuple[tuple[str, str], ...] | None = None

    def headers(self) -> tuple[tuple[str, str], ...]:
        """The canonical header list (for ``Call.canonical_headers``, ``call.started`` and the
        B leg's INVITE; worked out once, the canonical call being settled by then)."""
        if self._headers is None:
            self._headers = self.canonical.headers()
        return self._headers

    def callee(self, fallback: str | None) -> str | None:
        """The user for the agent URI template: the canonical callee when it is a safe URI
        user, else ``fallback`` (the core's own choice)."""
        callee = self.canonical.callee
        return callee if callee is not None and _SAFE_USER_RE.match(callee) else fallback

    def caller(self, user: str | None, display: str | None) -> tuple[str | None, str | None]:
        """(From user, From display name) toward the agent host: anonymous stays anonymous,
        a phone number is +E.164, anything else as the PBX sent it."""
        call = self.canonical
        if call.privacy:
            return None, "Anonymous"
        caller = call.caller
        if caller is not None and caller.startswith("+") and caller[1:].isdigit():
            user = caller
        return user, call.caller_name if call.caller_name is not None else display

    def try_headers(self, copy_keys: Collection[str], copy_x: bool) -> tuple[tuple[str, bytes], ...]:
        """Canonical headers, then the copied ones (see the module documentation)."""
        canonical = self.headers()
        passed = {name.lower() for name, _ in self.canonical.extra}
        out: list[tuple[str, bytes]] = [(name, value.encode("utf-8", "surrogateescape")) for name, value in canonical]
        for h in self.request.headers:
            key = h.key
            if key in REPLACED or key.startswith("x-sbc-") or key in passed:
                continue
            if key in copy_keys or (copy_x and key.startswith("x-")):
                out.append((h.name, h.value))
        return tuple(out)


def _call_id(request: Request) -> str:
    value = request.get("Call-ID")
    return value.decode("latin-1") if value else ""


def pbx_leg(call: Any, leg: Any) -> bool:
    """Whether ``leg`` of ``call`` faces the PBX (the A leg of an inbound call, the B leg of
    an outbound one)."""
    return leg is (call.a if call.direction == "inbound" else call.b)


def _is_ip(host: str) -> bool:
    try:
        ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def record_route(chain: QuirkChain, message: Any, *, initial: bool, fqdn: str, port: int,
                 transport: str) -> Any:
    """``message`` (toward the PBX) with our Record-Route on top when the trunk's vendor
    wants one (``VendorDefaults.record_route``: Teams, Genesys): an initial INVITE we send,
    or a 101-299 response to the PBX's initial INVITE (``initial``).  The entry is
    ``<sip:<fqdn>:<port>;transport=<t>;lr>``; nothing is added when ``fqdn`` is an IP
    address (configure the SBC's DNS name) or when our entry is already there."""
    primary = chain.primary
    if primary is None or not primary.defaults.record_route or not fqdn or _is_ip(fqdn):
        return message
    if isinstance(message, Request):
        if message.method != "INVITE" or not initial:
            return message
    elif not (isinstance(message, Response) and initial and 101 <= message.status < 300):
        return message
    t = transport.lower()
    param = "" if t == "udp" else f";transport={t}"
    value = f"<sip:{fqdn}:{port}{param};lr>"
    mine = f"sip:{fqdn}:{port}".lower().encode()
    if any(mine in v.lower() for v in message.get_all("Record-Route")):
        return message
    return message.prepend_header("Record-Route", value)


def startup_warnings(chains: Any, *, fqdn: str, transports: Collection[str]) -> list[str]:
    """What the configuration lacks for the trunks' vendors, one sentence each (for the
    service to log at start-up): an IP address as ``[sbc] fqdn`` where the vendor needs our
    FQDN in Contact or Record-Route, no listener of the vendor's transport.  ``chains``:
    trunk name -> QuirkChain; ``transports``: the listeners' transports."""
    out = []
    have = {t.lower() for t in transports}
    for name, chain in sorted(dict(chains).items()):
        primary = chain.primary
        if primary is None:
            continue
        d = primary.defaults
        if (d.fqdn_contact or d.record_route) and (not fqdn or _is_ip(fqdn)):
            out.append(f"trunk {name}: {primary.title} needs the SBC's DNS name in Contact/Record-Route, "
                       f"but [sbc] fqdn is {fqdn!r}")
        if d.transport not in have:
            out.append(f"trunk {name}: {primary.title} uses {d.transport.upper()}, and no {d.transport} "
                       "listener is configured")
    return out
