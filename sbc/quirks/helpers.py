# -*- test-case-name: tests.test_quirks_helpers -*-
"""Small building blocks for vendor quirk plugins.

Plugins may not import each other (``tests/test_layering.py``), so the pieces several vendors
need live here: header re-spelling, the ``+`` rule for E.164 numbers written without their
plus, recognition by Via address, host name, User-Agent/Server or header name, boolean and
text options read strictly, and passing vendor ``X-`` headers to the agent host.

Pure: the standard library, :mod:`sbc.sip` and the rest of :mod:`sbc.quirks`; no Twisted.
Every function here accepts whatever a PBX sends (a header that does not parse is skipped or
left as it is) and raises nothing of its own.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Union

from sbc.sip.errors import SipParseError
from sbc.sip.message import parse_name_addr, parse_via
from sbc.sip.uri import parse_uri

from .canonical import CanonicalCall
from .interface import QuirkContext, header_matches
from .message import SipMessage, encode

__all__ = [
    "ADDRESS_HEADERS",
    "Network",
    "PLUS_OPTION",
    "address_hosts",
    "agent_matches",
    "flag",
    "has_header",
    "in_domain",
    "is_ip",
    "networks",
    "pass_headers",
    "plus_e164",
    "plus_name_addr",
    "plus_numbers",
    "plus_request_numbers",
    "respell",
    "text_option",
    "via_addresses",
    "via_in",
]

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

#: The trunk option that turns the ``+`` rule (:func:`plus_numbers`) on or off.
PLUS_OPTION = "plus_e164"

#: Headers whose host names tell where a request came from.
ADDRESS_HEADERS = ("Via", "From", "Contact", "Record-Route")

_HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z]{2,}")


# ---- header names


def respell(message: SipMessage, spellings: Iterable[str]) -> None:
    """Give the headers named in ``spellings`` that exact spelling, keeping every header's
    place.  Names are case-insensitive in SIP, but the agent host gets one spelling whatever
    the PBX sent.  A message already spelt right is left untouched."""
    wanted = {s.lower(): s for s in spellings}
    headers = message.headers()
    if all(wanted.get(n.lower(), n) == n for n, _ in headers):
        return
    for name in {n for n, _ in headers}:
        message.remove(name)
    for name, value in headers:
        message.add(wanted.get(name.lower(), name), value)


def has_header(message: SipMessage, patterns: tuple[str, ...] | list[str]) -> bool:
    """True when any header's name matches ``patterns`` (case-insensitive; ``"X-Foo-*"`` is
    a prefix, as in ``VendorDefaults.pass_x_headers``)."""
    return any(header_matches(name, patterns) for name, _ in message.headers())


def pass_headers(call: CanonicalCall, message: SipMessage, patterns: tuple[str, ...] | list[str],
                 exclude: tuple[str, ...] | list[str] = ()) -> None:
    """Pass every header matching ``patterns`` and not ``exclude`` to the agent host, in
    message order (``CanonicalCall.pass_through`` still refuses contract names and bad
    values)."""
    for name, value in message.headers():
        if header_matches(name, patterns) and not header_matches(name, exclude):
            call.pass_through(name, value)


# ---- numbers


def plus_e164(number: str | None) -> str | None:
    """``"+" + number`` for a digits-only number of 9 to 15 digits not starting with 0 (an
    international number written without its plus); anything else as it is."""
    if number and number.isdigit() and 9 <= len(number) <= 15 and number[0] != "0":
        return "+" + number
    return number


def plus_numbers(call: CanonicalCall, ctx: QuirkContext, default: bool = True) -> None:
    """Apply :func:`plus_e164` to the canonical callee, caller and redirecting number, unless
    the trunk's boolean option ``plus_e164`` (``default`` when unset) turns it off."""
    if not flag(ctx, PLUS_OPTION, default):
        return
    call.callee = plus_e164(call.callee)
    call.caller = plus_e164(call.caller)
    call.redirecting = plus_e164(call.redirecting)


def plus_name_addr(value: str) -> str:
    """The name-addr ``value`` with :func:`plus_e164` applied to the user of its SIP or SIPS
    URI; ``value`` itself when nothing changes or it does not parse."""
    try:
        addr = parse_name_addr(encode(value))
    except (SipParseError, ValueError):
        return value
    user = addr.uri.user
    fixed = plus_e164(user)
    if fixed == user or not addr.uri.is_sip:
        return value
    return addr.with_uri(addr.uri.with_user(fixed)).to_bytes().decode("utf-8", "surrogateescape")


def plus_request_numbers(message: SipMessage, ctx: QuirkContext, default: bool = True) -> None:
    """Apply :func:`plus_e164` to the user of a SIP Request-URI and of each
    P-Asserted-Identity (From and To belong to the dialog: hooks may not change them), unless
    the trunk's boolean option ``plus_e164`` (``default`` when unset) turns it off."""
    if not flag(ctx, PLUS_OPTION, default):
        return
    if message.uri:
        try:
            uri = parse_uri(message.uri)
        except SipParseError:
            uri = None
        if uri is not None and uri.is_sip:
            fixed = plus_e164(uri.user)
            if fixed != uri.user:
                message.uri = str(uri.with_user(fixed))
    values = message.get_all("P-Asserted-Identity")
    if values:
        fixed_values = [plus_name_addr(v) for v in values]
        if fixed_values != values:
            message.set("P-Asserted-Identity", ", ".join(fixed_values))


# ---- options


def flag(ctx: QuirkContext, name: str, default: bool) -> bool:
    """The trunk's boolean vendor option ``name``; ``default`` when it is missing or not a
    boolean (``"false"`` or ``0`` do not count: only ``true``/``false`` in the configuration)."""
    value = ctx.option(name, default)
    return value if isinstance(value, bool) else default


def text_option(ctx: QuirkContext, name: str, default: str | None = None) -> str | None:
    """The trunk's vendor option ``name`` when it is a non-empty printable string (fit for a
    header value), else ``default``."""
    value = ctx.option(name)
    if isinstance(value, str) and value and value.isprintable():
        return value
    return default


# ---- where a message comes from


def is_ip(host: str) -> bool:
    """True when ``host`` is an IPv4 or IPv6 address (brackets allowed), not a name."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """The networks of ``cidrs`` (e.g. ``defaults.signalling_ranges``); a bad one raises
    ``ValueError`` (call it at import time, on the plugin's own constants)."""
    return tuple(ipaddress.ip_network(c) for c in cidrs)


def via_addresses(message: SipMessage) -> list[Address]:
    """The IP addresses in the Via headers, sent-by and ``received=``; host names and Via
    values that do not parse are skipped."""
    out: list[Address] = []
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


def via_in(message: SipMessage, nets: Iterable[Network]) -> bool:
    """True when a Via address (see :func:`via_addresses`) lies in one of ``nets``."""
    nets = tuple(nets)
    return any(address in net for address in via_addresses(message) for net in nets
               if address.version == net.version)


def address_hosts(message: SipMessage, headers: Iterable[str] = ADDRESS_HEADERS) -> Iterator[str]:
    """The DNS host names (a dot and a top-level label of letters) in ``headers``, as
    written, header by header."""
    for header in headers:
        for value in message.get_all(header):
            yield from _HOST_RE.findall(value)


def in_domain(host: str, domain: str) -> bool:
    """True when ``host`` is ``domain`` or a name below it (case-insensitive)."""
    host, domain = host.lower(), domain.lower()
    return host == domain or host.endswith("." + domain)


def agent_matches(message: SipMessage, test: Callable[[str], bool]) -> bool:
    """True when the User-Agent (requests) or Server (responses) value passes ``test``."""
    for header in ("User-Agent", "Server"):
        value = message.get(header)
        if value is not None and test(value):
            return True
    return False
