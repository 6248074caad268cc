# -*- test-case-name: tests.test_sip_locate -*-
"""Locating SIP servers (RFC 3263) as a sans-IO plan over DNS answers.

Nothing here performs a lookup.  A :class:`LocatorPlan` is built for one URI; it says which DNS
queries it still needs (:meth:`LocatorPlan.next_queries`), accepts answers in any order
(:meth:`LocatorPlan.feed`), and once :attr:`LocatorPlan.done` gives the ordered list of
:class:`Target` to try (:meth:`LocatorPlan.targets`).  Any DNS client can drive it;
:mod:`sbc.transport.locator` does so over ``twisted.names``.

The decision logic:

* RFC 3263 §4 -- the TARGET is the ``maddr`` parameter if present, else the host.
* §4.1 transport -- an explicit ``transport`` parameter wins (``sips`` + ``tcp`` means TLS;
  ``sips`` + ``udp`` cannot be honoured); otherwise an IP literal or an explicit port gives
  UDP for ``sip`` and TLS for ``sips``; otherwise NAPTR (``SIP+D2U``, ``SIP+D2T``, ``SIPS+D2T``
  with flag ``s`` and an empty regexp; other services are ignored; ``sips`` keeps only
  ``SIPS+D2T``), sorted by order then preference; with no usable NAPTR, SRV queries for every
  supported transport (``_sip._udp``, ``_sip._tcp``, ``_sips._tcp``) in the caller's order of
  preference; with no SRV either, A/AAAA of the domain with the default transport.
* §4.2 port and address -- IP literal: that address, the explicit or default port (5060, or
  5061 for TLS); explicit port: A/AAAA of the host; otherwise SRV, ordered by priority and,
  within a priority, by RFC 2782 weighted random selection (random source injectable).  An
  SRV set whose only target is ``.`` means the service is decidedly not available.
* §4.3 failover -- the result lists every target (NAPTR order, then SRV order, then each
  address of each SRV host); the caller tries them in order and moves to the next on a
  timeout, a transport error or a 503 (:func:`failover_on`).  :class:`Quarantine` pushes
  recently failed targets to the back of the list.

Caching: :class:`DnsCache` keeps answers keyed by (name, type) until their TTL (the minimum
over the RRset) runs out, against an injected ``now``; NXDOMAIN and NODATA are cached for a
bounded time; failures (SERVFAIL, timeouts) are not cached.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
import random as _random
from collections.abc import Sequence
from typing import Protocol, Union

from attrs import field, frozen

from sbc.sip.errors import SipError, SipParseError
from sbc.sip.uri import URI, parse_uri

__all__ = [
    "TRANSPORTS",
    "Answer",
    "DnsCache",
    "LocateError",
    "LocatorPlan",
    "Naptr",
    "Query",
    "Quarantine",
    "RRType",
    "RandomSource",
    "Rcode",
    "Record",
    "Srv",
    "Target",
    "default_port",
    "failover_on",
    "normalise_name",
    "order_srv",
]

#: Transports this module knows, in the default order of preference.
TRANSPORTS: tuple[str, ...] = ("udp", "tcp", "tls")

_SRV_SERVICE = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}
_NAPTR_SERVICE = {"sip+d2u": "udp", "sip+d2t": "tcp", "sips+d2t": "tls"}
_FAMILIES = ("ipv4", "ipv6")
_DEFAULT_RANDOM = _random.Random()  # load spreading only; tests inject their own


class LocateError(SipError):
    """The URI cannot be located (not sip/sips, an unusable or unsupported transport), a
    constructor argument is invalid, or a plan was asked for targets before it was done."""


class RRType(enum.Enum):
    NAPTR = "NAPTR"
    SRV = "SRV"
    A = "A"
    AAAA = "AAAA"


class Rcode(enum.Enum):
    """Outcome of one query.  ``FAILURE`` covers SERVFAIL, REFUSED, timeouts and any other
    error: treated as "no records" by the plan, never cached."""

    NOERROR = "NOERROR"
    NXDOMAIN = "NXDOMAIN"
    FAILURE = "FAILURE"


def normalise_name(name: str) -> str:
    """A DNS name in the form used for cache keys: lower case, no trailing dot."""
    return name.strip().rstrip(".").lower()


@frozen
class Query:
    name: str = field(converter=normalise_name)
    rtype: RRType


@frozen
class Naptr:
    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str


@frozen
class Srv:
    priority: int
    weight: int
    port: int
    target: str


Record = Union[Naptr, Srv, str]  # str: an address (A or AAAA) as text


@frozen
class Answer:
    """The answer to one :class:`Query`.

    ``records`` holds :class:`Naptr` for NAPTR, :class:`Srv` for SRV and address text for A/AAAA
    (records of the wrong kind are ignored).  ``ttl`` is the minimum TTL of the RRset in
    seconds; for a negative answer the SOA-derived negative TTL (RFC 2308); ``None`` when not
    known.
    """

    query: Query
    records: tuple[Record, ...] = ()
    ttl: float | None = None
    rcode: Rcode = Rcode.NOERROR

    @property
    def negative(self) -> bool:
        """NXDOMAIN, or NOERROR with no records (NODATA)."""
        return self.rcode is Rcode.NXDOMAIN or (self.rcode is Rcode.NOERROR and not self.records)


@frozen
class Target:
    """One place to send a request.

    ``host`` is the name whose address record gave ``ip`` (the SRV target, or the URI's
    host), or the address itself for an IP literal.  ``ip`` is bare (no IPv6 brackets).
    For TLS the identity to check is the URI's domain (RFC 5922), which the caller holds.
    """

    transport: str
    host: str
    ip: str
    port: int


def default_port(transport: str) -> int:
    return 5061 if transport == "tls" else 5060


def failover_on(status: int | None) -> bool:
    """Whether a client transaction outcome moves on to the next target (RFC 3263 §4.3):
    ``None`` for a timeout or transport error, else the final status code (503 only)."""
    return status is None or status == 503


class RandomSource(Protocol):
    def randint(self, a: int, b: int) -> int: ...


def order_srv(records: Sequence[Srv], rng: RandomSource) -> list[Srv]:
    """RFC 2782 ordering: ascending priority; within a priority, repeated weighted random
    selection (zero-weight records placed first, a number drawn uniformly from 0 to the sum of
    the remaining weights, the first record whose running sum reaches it taken next)."""
    out: list[Srv] = []
    for priority in sorted({r.priority for r in records}):
        same = [r for r in records if r.priority == priority]
        remaining = [r for r in same if r.weight == 0] + [r for r in same if r.weight != 0]
        while remaining:
            pick = rng.randint(0, sum(r.weight for r in remaining))
            running = 0
            chosen = len(remaining) - 1
            for index, record in enumerate(remaining):
                running += record.weight
                if running >= pick:
                    chosen = index
                    break
            out.append(remaining.pop(chosen))
    return out


_NOT_V4 = re.compile(r"[^0-9.]")


@functools.lru_cache(maxsize=4096)
def _ip_literal(host: str) -> str | None:
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" not in text and _NOT_V4.search(text):
        return None  # a host name: skip the (slow, exception-raising) address parse
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _valid_address(text: object, rtype: RRType) -> str | None:
    if not isinstance(text, str):
        return None
    return _parse_address(text, rtype)


@functools.lru_cache(maxsize=4096)
def _parse_address(text: str, rtype: RRType) -> str | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if (address.version == 4) != (rtype is RRType.A):
        return None
    return str(address)


class DnsCache:
    """Answers keyed by (name, type), each kept until ``now`` reaches its expiry.

    Positive answers live for their TTL (capped by ``max_ttl``; a TTL of 0 or unknown is not
    cached).  Negative answers (NXDOMAIN, NODATA) live for their negative TTL, or
    ``negative_ttl`` when unknown, never longer than ``max_negative_ttl``.  Failures are not
    cached.  Beyond ``max_entries`` expired entries go first, then the oldest.
    """

    def __init__(
        self,
        *,
        max_entries: int = 4096,
        max_ttl: float = 86400.0,
        negative_ttl: float = 30.0,
        max_negative_ttl: float = 300.0,
    ) -> None:
        if max_entries < 1 or max_ttl < 0 or negative_ttl < 0 or max_negative_ttl < 0:
            raise LocateError("bad DnsCache limits")
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self.negative_ttl = negative_ttl
        self.max_negative_ttl = max_negative_ttl
        self._entries: dict[Query, tuple[float, Answer]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def lifetime(self, answer: Answer) -> float:
        """How long ``answer`` would be kept (0: not cached)."""
        if answer.rcode is Rcode.FAILURE:
            return 0.0
        if answer.negative:
            ttl = self.negative_ttl if answer.ttl is None else answer.ttl
            return max(0.0, min(float(ttl), self.max_negative_ttl))
        if answer.ttl is None:
            return 0.0
        return max(0.0, min(float(answer.ttl), self.max_ttl))

    def put(self, answer: Answer, now: float) -> None:
        lifetime = self.lifetime(answer)
        if lifetime <= 0:
            return
        self._entries.pop(answer.query, None)
        if len(self._entries) >= self.max_entries:
            self.expire(now)
            while len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]
        self._entries[answer.query] = (now + lifetime, answer)

    def get(self, query: Query, now: float) -> Answer | None:
        entry = self._entries.get(query)
        if entry is None:
            return None
        expires, answer = entry
        if now >= expires:
            del self._entries[query]
            return None
        return answer

    def expire(self, now: float) -> int:
        """Drop every expired entry; return how many went."""
        dead = [q for q, (expires, _) in self._entries.items() if now >= expires]
        for query in dead:
            del self._entries[query]
        return len(dead)


class Quarantine:
    """Targets that failed recently, kept out of the way for ``period`` seconds.

    :meth:`order` keeps the given order but moves quarantined targets to the back (those
    released soonest first), so failover prefers healthy ones and still has somewhere to go
    when everything failed recently.
    """

    def __init__(self, period: float = 30.0, max_entries: int = 4096) -> None:
        if period < 0 or max_entries < 1:
            raise LocateError("bad Quarantine limits")
        self.period = period
        self.max_entries = max_entries
        self._until: dict[Target, float] = {}

    def mark(self, target: Target, now: float) -> None:
        self._until.pop(target, None)
        if len(self._until) >= self.max_entries:
            self._expire(now)
            while len(self._until) >= self.max_entries:
                del self._until[next(iter(self._until))]
        self._until[target] = now + self.period

    def clear(self, target: Target) -> None:
        self._until.pop(target, None)

    def is_quarantined(self, target: Target, now: float) -> bool:
        until = self._until.get(target)
        if until is None:
            return False
        if now >= until:
            del self._until[target]
            return False
        return True

    @property
    def active(self) -> bool:
        """Some target is (or was until lately) quarantined."""
        return bool(self._until)

    def order(self, targets: Sequence[Target], now: float) -> list[Target]:
        healthy = [t for t in targets if not self.is_quarantined(t, now)]
        sick = [t for t in targets if t in self._until]
        sick.sort(key=lambda t: self._until[t])  # stable: ties keep the given order
        return healthy + sick

    def _expire(self, now: float) -> None:
        for target in [t for t, until in self._until.items() if now >= until]:
            del self._until[target]


# A branch of the plan: targets from one SRV RRset, or from a host and port directly.
@frozen
class _SrvBranch:
    transport: str
    query: Query
    records: tuple[Srv, ...]


@frozen
class _HostBranch:
    transport: str
    host: str
    port: int


_Branch = Union[_SrvBranch, _HostBranch]


class LocatorPlan:
    """The RFC 3263 procedure for one URI, driven by DNS answers from the caller.

    :param uri: a ``sip:``/``sips:`` :class:`~sbc.sip.uri.URI` (or its text).
    :param transports: the transports we can use, most preferred first (a subset of
        ``udp``, ``tcp``, ``tls``).
    :param cache: consulted before asking for a query; fed with every answer.
    :param now: the time used with ``cache``.
    :param random: source for RFC 2782 weighted selection (``randint(a, b)``).
    :param families: address families to look up, in order of preference
        (``ipv4`` -> A, ``ipv6`` -> AAAA).
    :param max_hosts: at most this many distinct SRV targets are expanded (bounds the work a
        hostile zone can cause); later ones are dropped.
    :raises LocateError: for a URI that cannot be located or invalid arguments.
    """

    def __init__(
        self,
        uri: URI | str | bytes,
        transports: Sequence[str] = TRANSPORTS,
        *,
        cache: DnsCache | None = None,
        now: float = 0.0,
        random: RandomSource | None = None,
        families: Sequence[str] = _FAMILIES,
        max_hosts: int = 16,
    ) -> None:
        if not isinstance(uri, URI):
            try:
                uri = parse_uri(uri)
            except SipParseError as e:
                raise LocateError(f"unparsable URI: {e.reason}") from None
        self.uri = uri
        chosen = tuple(str(t).lower() for t in transports)
        if not chosen or any(t not in TRANSPORTS for t in chosen) or len(set(chosen)) != len(chosen):
            raise LocateError("transports must be distinct values among udp, tcp, tls")
        fams = tuple(families)
        if not fams or any(f not in _FAMILIES for f in fams) or len(set(fams)) != len(fams):
            raise LocateError("families must be distinct values among ipv4, ipv6")
        if max_hosts < 1:
            raise LocateError("max_hosts must be positive")
        self.transports = chosen
        self._families = tuple(RRType.A if f == "ipv4" else RRType.AAAA for f in fams)
        self._cache = cache
        self._now = now
        self._random: RandomSource = random if random is not None else _DEFAULT_RANDOM
        self._max_hosts = max_hosts
        self._answers: dict[Query, Answer] = {}
        self._issued: set[Query] = set()
        self._srv_order: dict[Query, list[Srv]] = {}
        self._result: list[Target] | None = None

        if uri.scheme not in ("sip", "sips"):
            raise LocateError(f"cannot locate a {uri.scheme!r} URI")
        self._sips = uri.scheme == "sips"
        maddr = uri.param("maddr")
        self.domain = normalise_name(maddr) if maddr else uri.host
        if not self.domain:
            raise LocateError("URI has no host")
        self._explicit = self._explicit_transport(uri.transport)
        self._ip = _ip_literal(self.domain)
        if self._ip is None:
            self.domain = normalise_name(self.domain)
            if not self.domain:
                raise LocateError("URI has no host")
        self._port = uri.port
        if self._ip is not None or self._port is not None:
            self._explicit = self._explicit or self._default_transport()

    @property
    def literal(self) -> bool:
        """The URI names an IP address: the targets come without any DNS query."""
        return self._ip is not None

    # -- transport choice --------------------------------------------------------------

    def _explicit_transport(self, param: str | None) -> str | None:
        if param is None:
            return None
        if param == "udp":
            if self._sips:
                raise LocateError("a sips URI cannot use transport=udp")
            transport = "udp"
        elif param == "tcp":
            transport = "tls" if self._sips else "tcp"
        elif param == "tls":
            transport = "tls"
        else:
            raise LocateError(f"unsupported transport {param!r}")
        if transport not in self.transports:
            raise LocateError(f"transport {transport} is not enabled")
        return transport

    def _default_transport(self) -> str:
        """UDP for sip and TLS for sips (RFC 3263 §4.1); for sip without UDP enabled, our
        most preferred transport."""
        if self._sips:
            if "tls" not in self.transports:
                raise LocateError("a sips URI needs tls, which is not enabled")
            return "tls"
        return "udp" if "udp" in self.transports else self.transports[0]

    def _allowed(self, transport: str) -> bool:
        return transport in self.transports and (transport == "tls" or not self._sips)

    # -- driving -----------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._result is not None or not self._evaluate()[0]

    def next_queries(self) -> list[Query]:
        """Queries needed now that were not handed out before (each is returned once).
        Answers already in the cache are used instead of asking."""
        needed, _ = self._evaluate()
        fresh = [q for q in needed if q not in self._issued]
        self._issued.update(fresh)
        return fresh

    def pending(self) -> list[Query]:
        """Every query still needed, handed out or not."""
        return self._evaluate()[0]

    def feed(self, answer: Answer, now: float | None = None) -> None:
        """Accept the answer to a query (asked for or not) and store it in the cache."""
        if not isinstance(answer, Answer):
            raise LocateError("feed() takes an Answer")
        if now is not None:
            self._now = now
        self._answers[answer.query] = answer
        if self._cache is not None:
            self._cache.put(answer, self._now)

    def targets(self) -> list[Target]:
        """The ordered, de-duplicated targets.  Stable once computed.

        :raises LocateError: if queries are still pending.
        """
        if self._result is None:
            needed, branches = self._evaluate()
            if needed:
                raise LocateError("plan still needs DNS answers")
            self._result = self._expand(branches)
        return list(self._result)

    # -- the procedure -----------------------------------------------------------------

    def _answer(self, query: Query) -> Answer | None:
        answer = self._answers.get(query)
        if answer is None and self._cache is not None:
            answer = self._cache.get(query, self._now)
            if answer is not None:
                self._answers[query] = answer
        return answer

    def _evaluate(self) -> tuple[list[Query], list[_Branch]]:
        """(queries still needed, branches known so far).  Branches are complete only when no
        query is needed."""
        need: list[Query] = []
        branches: list[_Branch] = []
        if self._ip is not None:
            assert self._explicit is not None
            port = self._port if self._port is not None else default_port(self._explicit)
            branches.append(_HostBranch(self._explicit, self._ip, port))
            return need, branches
        if self._port is not None:
            assert self._explicit is not None
            branches.append(_HostBranch(self._explicit, self.domain, self._port))
        elif self._explicit is not None:
            srv = self._srv_branch(self._explicit, f"{_SRV_SERVICE[self._explicit]}.{self.domain}", need)
            if srv is not None:
                if srv.records:
                    branches.append(srv)
                elif not self._decidedly_absent(srv.query):
                    branches.append(
                        _HostBranch(self._explicit, self.domain, default_port(self._explicit))
                    )
        else:
            self._naptr_or_srv(need, branches)
        # Address queries for SRV targets already known go out while other SRV queries are
        # still pending: every branch found so far is in the final result.
        self._address_needs(branches, need)
        return need, branches

    def _naptr_or_srv(self, need: list[Query], branches: list[_Branch]) -> None:
        naptr_query = Query(self.domain, RRType.NAPTR)
        answer = self._answer(naptr_query)
        if answer is None:
            need.append(naptr_query)
            return
        usable = self._usable_naptr(answer)
        if usable:
            results = [self._srv_branch(t, name, need) for t, name in usable]
            found = [b for b in results if b is not None and b.records]
            branches.extend(found)
            if need:
                return
            if not found and not all(
                b is not None and self._decidedly_absent(b.query) for b in results
            ):
                first = usable[0][0]
                branches.append(_HostBranch(first, self.domain, default_port(first)))
            return
        wanted = [t for t in self.transports if self._allowed(t)]
        results = [self._srv_branch(t, f"{_SRV_SERVICE[t]}.{self.domain}", need) for t in wanted]
        found = [b for b in results if b is not None and b.records]
        branches.extend(found)
        if need:
            return
        if not found and not any(b is not None and self._decidedly_absent(b.query) for b in results):
            transport = self._default_transport()
            branches.append(_HostBranch(transport, self.domain, default_port(transport)))

    def _usable_naptr(self, answer: Answer) -> list[tuple[str, str]]:
        """(transport, SRV name) of the usable NAPTR records, best first, without repeats."""
        records = [r for r in answer.records if isinstance(r, Naptr)]
        records.sort(key=lambda r: (r.order, r.preference))
        out: list[tuple[str, str]] = []
        for record in records:
            if record.flags.lower() != "s" or record.regexp:
                continue
            transport = _NAPTR_SERVICE.get(record.service.lower())
            if transport is None or not self._allowed(transport):
                continue
            name = normalise_name(record.replacement)
            if not name:
                continue
            if (transport, name) not in out:
                out.append((transport, name))
            if len(out) >= self._max_hosts:
                break
        return out

    def _srv_branch(self, transport: str, name: str, need: list[Query]) -> _SrvBranch | None:
        query = Query(name, RRType.SRV)
        answer = self._answer(query)
        if answer is None:
            need.append(query)
            return None
        records = tuple(
            r
            for r in answer.records
            if isinstance(r, Srv) and normalise_name(r.target) and 0 < r.port <= 65535
        )
        return _SrvBranch(transport, query, records)

    def _decidedly_absent(self, query: Query) -> bool:
        """An SRV RRset whose targets are all "." (RFC 2782): the service is not offered."""
        answer = self._answers.get(query)
        if answer is None:
            return False
        srvs = [r for r in answer.records if isinstance(r, Srv)]
        return bool(srvs) and all(not normalise_name(r.target) for r in srvs)

    def _hosts(self, branches: list[_Branch]) -> list[str]:
        """Distinct names needing address records, in plan order, at most ``max_hosts``
        (from SRV RRsets in priority order)."""
        hosts: list[str] = []
        for branch in branches:
            if isinstance(branch, _HostBranch):
                names = [branch.host]
            else:
                names = [r.target for r in sorted(branch.records, key=lambda r: r.priority)]
            for name in names:
                host = name if _ip_literal(name) else normalise_name(name)
                if host not in hosts and len(hosts) < self._max_hosts:
                    hosts.append(host)
        return hosts

    def _address_needs(self, branches: list[_Branch], need: list[Query]) -> None:
        for host in self._hosts(branches):
            if _ip_literal(host) is not None:
                continue
            for rtype in self._families:
                query = Query(host, rtype)
                if self._answer(query) is None:
                    need.append(query)

    def _addresses(self, host: str) -> list[str]:
        literal = _ip_literal(host)
        if literal is not None:
            return [literal]
        out: list[str] = []
        for rtype in self._families:
            answer = self._answers.get(Query(host, rtype))
            if answer is None or answer.rcode is not Rcode.NOERROR:
                continue
            for record in answer.records:
                address = _valid_address(record, rtype)
                if address is not None and address not in out:
                    out.append(address)
        return out

    def _expand(self, branches: list[_Branch]) -> list[Target]:
        allowed = set(self._hosts(branches))
        out: list[Target] = []
        seen: set[tuple[str, str, int]] = set()

        def add(transport: str, host: str, port: int) -> None:
            for ip in self._addresses(host):
                key = (transport, ip, port)
                if key not in seen:
                    seen.add(key)
                    out.append(Target(transport, host, ip, port))

        for branch in branches:
            if isinstance(branch, _HostBranch):
                host = branch.host if _ip_literal(branch.host) else normalise_name(branch.host)
                if host in allowed or _ip_literal(host):
                    add(branch.transport, _ip_literal(host) or host, branch.port)
                continue
            order = self._srv_order.get(branch.query)
            if order is None:
                order = self._srv_order[branch.query] = order_srv(branch.records, self._random)
            for record in order:
                host = record.target if _ip_literal(record.target) else normalise_name(record.target)
                if host in allowed:
                    add(branch.transport, host, record.port)
        return out

