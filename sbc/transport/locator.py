# -*- test-case-name: tests.test_transport_locator -*-
"""
RFC 3263 server location over ``twisted.names``.

:class:`Locator` drives the sans-IO :class:`~sbc.sip.locate.LocatorPlan` with an injected
:class:`~twisted.internet.interfaces.IResolver` (NAPTR through ``lookupNamingAuthorityPointer``,
SRV through ``lookupService``, A through ``lookupAddress``, AAAA through
``lookupIPV6Address``) and an injected clock, shares one :class:`~sbc.sip.locate.DnsCache`
across calls, joins identical queries that are in flight at the same time, and orders the
result so that targets marked failed (:meth:`Locator.mark_failed`) come last for a while.

The Deferred from :meth:`Locator.resolve` fires with a list of targets, possibly empty (every
DNS failure is logged and treated as "no records"); it fails only with
:class:`~sbc.sip.locate.LocateError`, for a URI that cannot be located at all.

Production: ``Locator(system_resolver(reactor), reactor)``.  ``system_resolver`` builds the
same chain as ``twisted.names.client.createResolver()`` (``/etc/hosts``, then the servers of
``/etc/resolv.conf``) but bound to the given reactor, and without Twisted's cache since the
locator keeps its own.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any, cast

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IReactorTime, IResolver
from twisted.logger import Logger
from twisted.names import dns
from twisted.names.error import AuthoritativeDomainError, DNSNameError, DomainError
from twisted.python.failure import Failure

from sbc.sip.locate import (
    TRANSPORTS,
    Answer,
    DnsCache,
    LocateError,
    LocatorPlan,
    Naptr,
    Quarantine,
    Query,
    RandomSource,
    Rcode,
    Record,
    RRType,
    Srv,
    Target,
)
from sbc.sip.uri import URI

__all__ = ["LocateError", "Locator", "Target", "answer_from_records", "system_resolver"]

_LOOKUP = {
    RRType.NAPTR: "lookupNamingAuthorityPointer",
    RRType.SRV: "lookupService",
    RRType.A: "lookupAddress",
    RRType.AAAA: "lookupIPV6Address",
}
_WIRE_TYPE = {RRType.NAPTR: dns.NAPTR, RRType.SRV: dns.SRV, RRType.A: dns.A, RRType.AAAA: dns.AAAA}


def system_resolver(
    reactor: Any, resolvconf: bytes = b"/etc/resolv.conf", hosts_file: bytes = b"/etc/hosts"
) -> IResolver:
    """The host's resolver configuration, bound to ``reactor`` (not the global one)."""
    from twisted.names import client, hosts, resolve

    chain = resolve.ResolverChain(  # type: ignore[no-untyped-call]
        [hosts.Resolver(hosts_file), client.Resolver(resolv=resolvconf, reactor=reactor)]  # type: ignore[no-untyped-call]
    )
    return cast(IResolver, chain)


def _text(value: object) -> str:
    """Text of a Charstr, Name, bytes or str field from twisted.names."""
    if isinstance(value, dns.Charstr):
        value = value.string
    elif isinstance(value, dns.Name):
        value = value.name
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def _owner(rr: dns.RRHeader) -> str:
    return _text(rr.name).rstrip(".").lower()


def _negative_ttl(authority: Sequence[object]) -> float | None:
    """RFC 2308 §5: the negative TTL is the smaller of the SOA's TTL and its MINIMUM."""
    ttls = [
        min(int(rr.ttl), int(rr.payload.minimum))
        for rr in authority
        if isinstance(rr, dns.RRHeader) and rr.type == dns.SOA and rr.payload is not None
    ]
    return float(min(ttls)) if ttls else None


def _record(rtype: RRType, payload: Any) -> Record | None:
    if rtype is RRType.NAPTR:
        return Naptr(
            int(payload.order),
            int(payload.preference),
            _text(payload.flags),
            _text(payload.service),
            _text(payload.regexp),
            _text(payload.replacement),
        )
    if rtype is RRType.SRV:
        return Srv(int(payload.priority), int(payload.weight), int(payload.port), _text(payload.target))
    if rtype is RRType.A:
        return str(payload.dottedQuad())
    return socket.inet_ntop(socket.AF_INET6, payload.address)


def answer_from_records(
    query: Query, answers: Sequence[object], authority: Sequence[object] = ()
) -> Answer:
    """Turn the answer and authority sections of a twisted.names result into an
    :class:`~sbc.sip.locate.Answer`.

    Only records of the queried type owned by the queried name, or by a name it reaches through
    CNAME records in the same answer, are kept.  The TTL is the minimum over those records and
    the CNAMEs used; an empty answer takes the SOA negative TTL from ``authority``.
    """
    headers = [rr for rr in answers if isinstance(rr, dns.RRHeader)]
    owners = {query.name}
    used: list[dns.RRHeader] = []
    for _ in range(len(headers)):  # follow CNAME chains in any order; bounded, loop-proof
        grown = False
        for rr in headers:
            if rr.type == dns.CNAME and rr.payload is not None and rr not in used and _owner(rr) in owners:
                used.append(rr)
                owners.add(_text(getattr(rr.payload, "name", b"")).rstrip(".").lower())
                grown = True
        if not grown:
            break
    wanted = _WIRE_TYPE[query.rtype]
    records: list[Record] = []
    for rr in headers:
        if rr.type != wanted or _owner(rr) not in owners or rr.payload is None:
            continue
        try:
            record = _record(query.rtype, rr.payload)
        except (ValueError, TypeError, AttributeError, OSError):
            continue
        if record is not None:
            records.append(record)
            used.append(rr)
    if not records:
        return Answer(query, (), _negative_ttl(authority), Rcode.NOERROR)
    return Answer(query, tuple(records), float(min(int(rr.ttl) for rr in used)), Rcode.NOERROR)


class Locator:
    """
    Locates SIP targets for the B2BUA.

    :param resolver: any ``IResolver`` (``system_resolver(reactor)`` in production, a fake in
        tests).
    :param clock: gives ``now`` for the cache and quarantine, and runs query time-outs.
    :param transports: transports we can use, most preferred first.
    :param cache: shared DNS cache (a fresh one by default).
    :param quarantine: seconds a target marked failed is moved to the back of results.
    :param timeouts: per-attempt time-outs passed to the resolver; a query that has not
        answered after their sum plus one second is abandoned as a failure.
    :param families: address families, in order of preference (``ipv4``, ``ipv6``).
    :param random: RFC 2782 weighted-selection source (``randint``).
    :param max_hosts: cap on SRV targets expanded per resolution.
    """

    log = Logger()

    def __init__(
        self,
        resolver: IResolver,
        clock: IReactorTime,
        *,
        transports: Sequence[str] = TRANSPORTS,
        cache: DnsCache | None = None,
        quarantine: float = 30.0,
        timeouts: Sequence[float] = (1.0, 3.0),
        families: Sequence[str] = ("ipv4", "ipv6"),
        random: RandomSource | None = None,
        max_hosts: int = 16,
    ) -> None:
        if not timeouts or any(t <= 0 for t in timeouts):
            raise LocateError("timeouts must be positive")
        self._resolver = resolver
        self._clock = clock
        self._transports = tuple(transports)
        self.cache = cache if cache is not None else DnsCache()
        self.quarantine = Quarantine(quarantine)
        self._timeouts = tuple(float(t) for t in timeouts)
        self._guard = sum(self._timeouts) + 1.0
        self._families = tuple(families)
        self._random = random
        self._max_hosts = max_hosts
        self._inflight: dict[Query, list[Deferred[Answer]]] = {}
        self._literals: dict[URI | str | bytes, list[Target]] = {}
        # Fail fast on bad settings rather than on the first call.
        LocatorPlan("sip:127.0.0.1", self._transports, families=self._families, max_hosts=max_hosts)

    # -- public interface --------------------------------------------------------------

    def resolve(self, uri: URI | str | bytes) -> Deferred[list[Target]]:
        """Targets for ``uri`` in the order to try them (RFC 3263 §4.3): fires with a list,
        empty when nothing could be found; fails only with ``LocateError``."""
        try:
            plan = self._plan(uri)
        except LocateError as e:
            self.log.warn("cannot locate {uri}: {reason}", uri=_show(uri), reason=str(e))
            return fail(e)
        result: Deferred[list[Target]] = Deferred()
        self._step(plan, result)
        return result

    def cached(self, uri: URI | str | bytes) -> list[Target] | None:
        """Synchronous answer from the cache alone, for sans-IO callers (the B2BUA core's
        ``Resolver``): the ordered targets when no DNS query is needed (an IP literal, or every
        record still cached), else ``None`` -- call :meth:`resolve` then, which fills the cache.

        :raises LocateError: for a URI that cannot be located at all.
        """
        targets = self._literals.get(uri)
        if targets is None:
            plan = self._plan(uri)
            if not plan.done:
                return None
            targets = plan.targets()
            if plan.literal:
                # An IP-literal target needs no DNS: its plan never changes, so it is built
                # once (the agent host is usually named this way, and every B-leg request
                # asks).  Bounded, as the URIs come from configuration and dialogs.
                if len(self._literals) >= 1024:
                    self._literals.clear()
                self._literals[uri] = targets
        if not self.quarantine.active:
            return list(targets)
        return self.quarantine.order(targets, self._clock.seconds())

    def mark_failed(self, target: Target, now: float | None = None) -> None:
        """``target`` timed out, answered 503 or had a transport error: later results put it
        last until the quarantine period has passed."""
        when = self._clock.seconds() if now is None else now
        self.quarantine.mark(target, when)
        self.log.info(
            "SIP target {transport}:{ip}:{port} ({host}) failed; quarantined for {period}s",
            transport=target.transport,
            ip=target.ip,
            port=target.port,
            host=target.host,
            period=self.quarantine.period,
        )

    def mark_ok(self, target: Target) -> None:
        """``target`` answered: lift any quarantine."""
        self.quarantine.clear(target)

    # -- driving the plan --------------------------------------------------------------

    def _plan(self, uri: URI | str | bytes) -> LocatorPlan:
        return LocatorPlan(
            uri,
            self._transports,
            cache=self.cache,
            now=self._clock.seconds(),
            random=self._random,
            families=self._families,
            max_hosts=self._max_hosts,
        )

    def _step(self, plan: LocatorPlan, result: Deferred[list[Target]]) -> None:
        if result.called:
            return
        try:
            if plan.done:
                targets = self.quarantine.order(plan.targets(), self._clock.seconds())
                if not targets:
                    self.log.warn("no SIP targets found for {uri}", uri=str(plan.uri))
                result.callback(targets)
                return
            for query in plan.next_queries():
                self._ask(query).addCallback(self._answered, plan, result)
        except Exception:
            self.log.failure("locating {uri} failed", uri=str(plan.uri))
            if not result.called:
                result.callback([])

    def _answered(self, answer: Answer, plan: LocatorPlan, result: Deferred[list[Target]]) -> None:
        if result.called:
            return
        try:
            plan.feed(answer, self._clock.seconds())
        except Exception:
            self.log.failure("locating {uri} failed", uri=str(plan.uri))
            result.callback([])
            return
        self._step(plan, result)

    def _ask(self, query: Query) -> Deferred[Answer]:
        """One Deferred per caller; identical concurrent queries share one lookup.  Never
        fails: errors become FAILURE or NXDOMAIN answers."""
        mine: Deferred[Answer] = Deferred()
        waiters = self._inflight.get(query)
        if waiters is not None:
            waiters.append(mine)
            return mine
        self._inflight[query] = [mine]
        d = maybeDeferred(self._lookup, query)
        d.addTimeout(self._guard, self._clock)
        d.addCallbacks(
            self._from_result, self._from_failure, callbackArgs=(query,), errbackArgs=(query,)
        )
        d.addErrback(self._unexpected, query)
        d.addCallback(self._deliver, query)
        return mine

    def _lookup(self, query: Query) -> Deferred[Any]:
        lookup: Callable[..., Deferred[Any]] = getattr(self._resolver, _LOOKUP[query.rtype])
        return lookup(query.name, timeout=self._timeouts)

    def _unexpected(self, failure: Failure, query: Query) -> Answer:
        self.log.failure(
            "DNS {rtype} {name}: unusable result", failure, rtype=query.rtype.value, name=query.name
        )
        return Answer(query, (), None, Rcode.FAILURE)

    def _deliver(self, answer: Answer, query: Query) -> None:
        for waiter in self._inflight.pop(query, []):
            waiter.callback(answer)

    def _from_result(self, result: Any, query: Query) -> Answer:
        answers, authority, _additional = result
        return answer_from_records(query, answers, authority)

    def _from_failure(self, failure: Failure, query: Query) -> Answer:
        error = failure.value
        # DNSServerError, DNSQueryRefusedError etc. subclass DomainError too: only a name
        # error (or a bare DomainError, as the hosts and authority resolvers raise) is NXDOMAIN.
        if type(error) is DomainError or isinstance(error, (DNSNameError, AuthoritativeDomainError)):
            message = error.args[0] if error.args else None
            ttl = _negative_ttl(message.authority) if isinstance(message, dns.Message) else None
            self.log.debug("DNS {rtype} {name}: NXDOMAIN", rtype=query.rtype.value, name=query.name)
            return Answer(query, (), ttl, Rcode.NXDOMAIN)
        self.log.warn(
            "DNS {rtype} {name} failed: {error}",
            rtype=query.rtype.value,
            name=query.name,
            error=f"{type(error).__name__}: {error}",
        )
        return Answer(query, (), None, Rcode.FAILURE)


def _show(uri: object) -> str:
    if isinstance(uri, bytes):
        return uri.decode("latin-1", "replace")
    return str(uri)
