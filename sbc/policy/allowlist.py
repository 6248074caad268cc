# -*- test-case-name: tests.test_policy_allowlist -*-
"""
The pre-parse source filter: which source addresses may talk to the SBC at all.

An :class:`Allowlist` is compiled once (at start-up and on every SIGHUP reload) from every
trunk's ``allow`` networks, the agent hosts' networks and the peers the SBC itself sends to
(IP literals in ``agent_uri``, ``peer_uri``, ``outbound_proxy``).  The transports ask
:meth:`Allowlist.admits` about the socket's source address before they parse a byte or keep
any state; everything not admitted is dropped (UDP) or closed (TCP/TLS).  Default deny.

Cost, cheapest first:

1. a per-source verdict cache (a dict keyed by the address text, bounded: when full it is
   emptied, so a flood of spoofed sources cannot grow it);
2. exact hosts (/32, /128 networks) in a set of their canonical text;
3. everything else as merged integer ranges per address family, searched with
   :func:`bisect.bisect_right` after :func:`socket.inet_pton`.

IPv4-mapped IPv6 sources (``::ffff:192.0.2.1``, seen on dual-stack sockets) are judged as
the IPv4 address they carry.  :meth:`Allowlist.remember` admits a host the SBC has sent a
request to (a DNS-resolved agent host, registrar or PBX): its answers and requests are let
through, in a table of bounded size.

:meth:`Allowlist.rules_for` is the slow, explaining path (which rule admits an address, and
where the rule came from) for ``sbc explain`` and log lines; it is never on the hot path.

Pure: no Twisted, no I/O.
"""

from __future__ import annotations

import ipaddress
import socket
from bisect import bisect_right
from typing import Any, Iterable, Mapping

from attrs import frozen

__all__ = ["Allowlist", "Rule", "normalise_host", "rules_from_config"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Entries the verdict cache holds before it is emptied.
DEFAULT_CACHE_SIZE = 65_536
#: Hosts :meth:`Allowlist.remember` keeps (oldest forgotten first).
DEFAULT_REMEMBERED = 4_096

_V4_MAPPED = "::ffff:"


@frozen
class Rule:
    """One admitted network and why it is admitted.

    ``owner`` names what the network belongs to (``trunk:<name>``, ``agent``,
    ``peer:<trunk>``); ``origin`` says where it came from when that is not the file itself
    (``vendor:<name>`` for a vendor plugin's published range), else ``""``.
    """

    network: Network
    owner: str
    origin: str = ""

    def describe(self) -> str:
        text = f"{self.network} ({self.owner}"
        if self.origin:
            text += f", from {self.origin}"
        return text + ")"


def normalise_host(host: str) -> str:
    """The address text judged for ``host``: IPv4-mapped IPv6 becomes the IPv4 address;
    an IPv6 zone (``%eth0``) is dropped.  Anything else is returned as it is."""
    if "%" in host:
        host = host.split("%", 1)[0]
    if host[:7].lower() == _V4_MAPPED and "." in host:
        return host[7:]
    return host


def _to_int(host: str) -> tuple[int, int] | None:
    """(family 4 or 6, integer value) of an address literal, None if it is not one."""
    try:
        if ":" in host:
            return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, host), "big")
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, host), "big")
    except (OSError, ValueError, TypeError):
        return None


def _merge(ranges: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Sorted, merged ``(first, last)`` ranges as two parallel lists."""
    starts: list[int] = []
    ends: list[int] = []
    for first, last in sorted(ranges):
        if ends and first <= ends[-1] + 1:
            if last > ends[-1]:
                ends[-1] = last
            continue
        starts.append(first)
        ends.append(last)
    return starts, ends


class Allowlist:
    """
    The compiled source filter.

    :param rules: the admitted networks (:class:`Rule`).
    :param admit_all: admit every source whatever the rules say (a trunk with
        ``0.0.0.0/0`` or ``::/0``, or a trunk admitted by digest credentials alone).
    :param admit_all_why: one line saying which trunk made it so (for the start-up log).
    """

    def __init__(self, rules: Iterable[Rule] = (), *, admit_all: bool = False, admit_all_why: str = "",
                 cache_size: int = DEFAULT_CACHE_SIZE, remembered: int = DEFAULT_REMEMBERED) -> None:
        self.rules = tuple(rules)
        why = admit_all_why
        for rule in self.rules:
            if rule.network.prefixlen == 0:
                admit_all = True
                why = why or f"{rule.owner} admits {rule.network}"
        self.admit_all = admit_all
        self.admit_all_why = why
        self._cache_size = max(16, cache_size)
        self._remember_size = max(1, remembered)
        self._cache: dict[str, bool] = {}
        self._remembered: dict[str, None] = {}
        exact: set[str] = set()
        spans: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for rule in self.rules:
            net = rule.network
            if net.prefixlen == net.max_prefixlen:
                exact.add(str(net.network_address))
            first = int(net.network_address)
            spans[net.version].append((first, first + net.num_addresses - 1))
        self._exact = frozenset(exact)
        self._v4 = _merge(spans[4])
        self._v6 = _merge(spans[6])

    # -- the hot path ----------------------------------------------------------------------

    def admits(self, host: str) -> bool:
        """May ``host`` (an address literal, as the socket reports it) talk to us?"""
        verdict = self._cache.get(host)
        if verdict is not None:
            return verdict
        return self._judge(host)

    def _judge(self, host: str) -> bool:
        if self.admit_all:
            verdict = True
        else:
            key = normalise_host(host)
            verdict = key in self._exact or key in self._remembered or self._in_ranges(key)
        cache = self._cache
        if len(cache) >= self._cache_size:
            cache.clear()
        cache[host] = verdict
        return verdict

    def _in_ranges(self, host: str) -> bool:
        parsed = _to_int(host)
        if parsed is None:
            return False
        family, value = parsed
        starts, ends = self._v4 if family == 4 else self._v6
        i = bisect_right(starts, value) - 1
        return i >= 0 and value <= ends[i]

    # -- dynamic peers ---------------------------------------------------------------------

    def remember(self, host: str) -> None:
        """Admit ``host`` from now on: the SBC sent it a request (its answers must get in).
        Bounded: the oldest remembered host is forgotten first."""
        if self.admits(host):
            return  # admitted already (by a rule, or remembered): one cached lookup
        key = normalise_host(host)
        table = self._remembered
        if _to_int(key) is None:
            return
        if len(table) >= self._remember_size:
            del table[next(iter(table))]
        table[key] = None
        # A new peer is rare (the first request to it): start the verdict cache over, so that no
        # spelling of the address (IPv4-mapped or not) keeps an old "no".
        self._cache.clear()

    @property
    def remembered(self) -> tuple[str, ...]:
        return tuple(self._remembered)

    def carry_over(self, old: "Allowlist") -> "Allowlist":
        """Keep ``old``'s remembered peers (a reload must not shut out the agent host's
        answers); returns self."""
        for host in old._remembered:
            self.remember(host)
        return self

    # -- the explaining path ---------------------------------------------------------------

    def rules_for(self, host: str) -> list[Rule]:
        """Every rule that admits ``host``, in configuration order (slow; for explanations)."""
        try:
            addr = ipaddress.ip_address(normalise_host(host))
        except ValueError:
            return []
        return [r for r in self.rules if r.network.version == addr.version and addr in r.network]

    def is_remembered(self, host: str) -> bool:
        return normalise_host(host) in self._remembered

    def __repr__(self) -> str:
        return (f"<Allowlist {len(self.rules)} rule(s), {len(self._exact)} exact, {len(self._v4[0])} IPv4 and "
                f"{len(self._v6[0])} IPv6 range(s){', admits all' if self.admit_all else ''}>")


def _literal_host(uri: str | None) -> str | None:
    """The IP literal host of a SIP URI text (template braces allowed), else None."""
    if not uri:
        return None
    text = uri.split(":", 1)[1] if ":" in uri else uri
    if "@" in text:
        text = text.rsplit("@", 1)[1]
    if text.startswith("["):
        host = text[1:text.find("]")] if "]" in text else ""
    else:
        host = text.split(";", 1)[0].split("?", 1)[0].split(":", 1)[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host


def rules_from_config(trunks: Iterable[Any], agent_allow: Iterable[Network] = (), *,
                      vendor_ranges: Mapping[str, Iterable[str]] | None = None,
                      origins: Mapping[str, Mapping[Network, str]] | None = None) -> tuple[list[Rule], str]:
    """The rules for a configuration: ``(rules, admit_all_why)``.

    ``trunks`` are :class:`~sbc.config.TrunkConfig`-like objects: ``name``, ``allow``
    (networks, or entries with a ``name`` attribute standing for ``vendor:<name>``, resolved
    through ``vendor_ranges``; an unresolved one is skipped), and optionally ``agent_uri``,
    ``peer_uri``, ``outbound_proxy`` whose IP literal hosts are admitted as peers.
    ``origins``: trunk name -> {network: "vendor:<name>"} for networks that were already
    resolved from vendor entries.  A trunk with an empty ``allow`` (admitted by digest
    credentials alone) makes the filter admit everyone: ``admit_all_why`` says so.
    """
    rules: list[Rule] = []
    why = ""
    for trunk in trunks:
        owner = f"trunk:{trunk.name}"
        known = (origins or {}).get(trunk.name, {})
        entries = tuple(getattr(trunk, "allow", ()) or ())
        if not entries:
            why = why or f"{owner} has no allow networks (digest credentials alone admit it)"
        for entry in entries:
            if isinstance(entry, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
                rules.append(Rule(entry, owner, known.get(entry, "")))
                continue
            name = getattr(entry, "name", None)
            if name is None or vendor_ranges is None:
                continue
            for text in vendor_ranges.get(name, ()):
                try:
                    net = ipaddress.ip_network(text)
                except ValueError:
                    continue
                rules.append(Rule(net, owner, f"vendor:{name}"))
        for attr in ("agent_uri", "peer_uri", "outbound_proxy"):
            host = _literal_host(getattr(trunk, attr, None))
            if host is not None:
                rules.append(Rule(ipaddress.ip_network(host), f"peer:{trunk.name}", attr))
        register = getattr(trunk, "register", None)
        if register is not None:
            for attr in ("registrar", "proxy", "outbound_proxy"):
                host = _literal_host(getattr(register, attr, None))
                if host is not None:
                    rules.append(Rule(ipaddress.ip_network(host), f"peer:{trunk.name}", f"register.{attr}"))
    for net in agent_allow:
        rules.append(Rule(net, "agent"))
    return rules, why
