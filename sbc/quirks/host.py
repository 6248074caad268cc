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
from typing import Any, Collection

from sbc.sip.message import Request

from .canonical import CanonicalCall
from .chain import QuirkChain, QuirkNotice

__all__ = ["InboundCall", "REPLACED"]

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

    def headers(self) -> tuple[tuple[str, str], ...]:
        """The canonical header list (for ``Call.canonical_headers`` and ``call.started``)."""
        return self.canonical.headers()

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
