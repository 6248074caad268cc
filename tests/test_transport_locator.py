# -*- test-case-name: tests.test_transport_locator -*-
"""Tests for sbc.transport.locator over a fake IResolver: no DNS traffic ever."""

from __future__ import annotations

import ast
import random
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IResolver
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger
from twisted.names import common, dns
from twisted.names.error import DNSNameError, DNSQueryRefusedError, DNSServerError, DomainError
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

import sbc.transport.locator as locator_module
from sbc.sip.locate import DnsCache, LocateError, LocatorPlan, Naptr, Query, Rcode, RRType, Target
from sbc.sip.uri import parse_uri
from sbc.transport.locator import Locator, answer_from_records, system_resolver

HANG = object()


def rr(name: str, payload: Any, ttl: int = 300) -> dns.RRHeader:
    return dns.RRHeader(name=name, type=payload.TYPE, ttl=ttl, payload=payload)


def naptr(name: str, order: int, pref: int, service: bytes, replacement: bytes, ttl: int = 300) -> dns.RRHeader:
    return rr(name, dns.Record_NAPTR(order, pref, b"s", service, b"", replacement), ttl)


def srv(name: str, priority: int, weight: int, port: int, target: bytes, ttl: int = 300) -> dns.RRHeader:
    return rr(name, dns.Record_SRV(priority, weight, port, target), ttl)


def a(name: str, address: str, ttl: int = 300) -> dns.RRHeader:
    return rr(name, dns.Record_A(address), ttl)


def aaaa(name: str, address: str, ttl: int = 300) -> dns.RRHeader:
    return rr(name, dns.Record_AAAA(address), ttl)


def soa(name: str, ttl: int, minimum: int) -> dns.RRHeader:
    return rr(name, dns.Record_SOA(b"ns." + name.encode(), b"admin." + name.encode(), minimum=minimum), ttl)


def nxdomain(authority: list[dns.RRHeader] | None = None) -> DNSNameError:
    message = dns.Message(rCode=dns.ENAME)
    message.authority = authority or []
    return DNSNameError(message)


class FakeResolver(common.ResolverBase):
    """An IResolver answering from a dict keyed by (name, wire type).

    A value is a list of answer RRs, a (answers, authority) tuple, an exception (the lookup
    fails with it), ``HANG`` (a Deferred that never fires, for time-outs) or a Deferred the
    test fires itself.  Missing keys fail with DNSNameError (NXDOMAIN).
    """

    def __init__(self, zone: dict[tuple[str, int], Any]) -> None:
        super().__init__()
        self.zone = zone
        self.calls: list[tuple[str, int, Any]] = []

    def _lookup(self, name: bytes, cls: int, type: int, timeout: Any) -> Deferred[Any]:
        key = (name.decode("ascii").lower(), type)
        self.calls.append((key[0], type, timeout))
        value = self.zone.get(key, None)
        if value is None:
            return fail(nxdomain())
        if value is HANG:
            return Deferred()
        if isinstance(value, Deferred):
            return value
        if isinstance(value, BaseException):
            return fail(value)
        if isinstance(value, tuple):
            return succeed((value[0], value[1], []))
        return succeed((value, [], []))

    def count(self, name: str, type: int) -> int:
        return sum(1 for n, t, _ in self.calls if (n, t) == (name, type))


def make(
    zone: dict[tuple[str, int], Any], clock: Clock | None = None, **kwargs: Any
) -> tuple[Locator, FakeResolver, Clock, list[dict[str, Any]]]:
    clock = clock or Clock()
    resolver = FakeResolver(zone)
    kwargs.setdefault("random", random.Random(0))
    loc = Locator(resolver, clock, **kwargs)
    events: list[dict[str, Any]] = []
    loc.log = Logger(observer=events.append)  # type: ignore[assignment]
    return loc, resolver, clock, events


EXAMPLE_ZONE: dict[tuple[str, int], Any] = {
    ("example.com", dns.NAPTR): [
        naptr("example.com", 10, 10, b"SIPS+D2T", b"_sips._tcp.example.com"),
        naptr("example.com", 20, 10, b"SIP+D2U", b"_sip._udp.example.com"),
        naptr("example.com", 5, 10, b"SIP+D2S", b"_sip._sctp.example.com"),
    ],
    ("_sips._tcp.example.com", dns.SRV): [
        srv("_sips._tcp.example.com", 10, 0, 5061, b"sbc1.example.com"),
        srv("_sips._tcp.example.com", 20, 0, 5061, b"sbc2.example.com"),
    ],
    ("_sip._udp.example.com", dns.SRV): [srv("_sip._udp.example.com", 10, 0, 5060, b"sbc1.example.com")],
    ("sbc1.example.com", dns.A): [a("sbc1.example.com", "192.0.2.1", ttl=60)],
    ("sbc1.example.com", dns.AAAA): [aaaa("sbc1.example.com", "2001:db8::1", ttl=60)],
    ("sbc2.example.com", dns.A): [a("sbc2.example.com", "192.0.2.2", ttl=60)],
    ("sbc2.example.com", dns.AAAA): ([], [soa("example.com", 3600, 120)]),
}

EXAMPLE_TARGETS = [
    Target("tls", "sbc1.example.com", "192.0.2.1", 5061),
    Target("tls", "sbc1.example.com", "2001:db8::1", 5061),
    Target("tls", "sbc2.example.com", "192.0.2.2", 5061),
    Target("udp", "sbc1.example.com", "192.0.2.1", 5060),
    Target("udp", "sbc1.example.com", "2001:db8::1", 5060),
]


class ResolveTests(SynchronousTestCase):
    def test_full_naptr_srv_address_chain(self) -> None:
        loc, resolver, clock, _ = make(dict(EXAMPLE_ZONE))
        targets = self.successResultOf(loc.resolve("sip:+15551234567@example.com"))
        self.assertEqual(targets, EXAMPLE_TARGETS)
        self.assertEqual(resolver.calls[0][:2], ("example.com", dns.NAPTR))
        self.assertEqual(resolver.count("_sip._sctp.example.com", dns.SRV), 0)
        self.assertEqual(resolver.count("sbc1.example.com", dns.A), 1)
        self.assertEqual({call[2] for call in resolver.calls}, {(1.0, 3.0)})
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_ip_literal_needs_no_dns(self) -> None:
        loc, resolver, _, _ = make({})
        targets = self.successResultOf(loc.resolve(b"sips:[2001:db8::9]:5063"))
        self.assertEqual(targets, [Target("tls", "2001:db8::9", "2001:db8::9", 5063)])
        self.assertEqual(resolver.calls, [])

    def test_explicit_port_uses_lookup_address_and_ipv6(self) -> None:
        zone = {
            ("agent.example.com", dns.A): [a("agent.example.com", "192.0.2.40")],
            ("agent.example.com", dns.AAAA): [aaaa("agent.example.com", "2001:db8::40")],
        }
        loc, resolver, _, _ = make(zone)
        targets = self.successResultOf(loc.resolve("sip:agent.example.com:5090;transport=tcp"))
        self.assertEqual(
            targets,
            [
                Target("tcp", "agent.example.com", "192.0.2.40", 5090),
                Target("tcp", "agent.example.com", "2001:db8::40", 5090),
            ],
        )
        self.assertEqual(len(resolver.calls), 2)

    def test_no_naptr_then_srv_then_addresses(self) -> None:
        zone = {
            ("example.net", dns.NAPTR): DomainError("example.net"),
            ("_sip._tcp.example.net", dns.SRV): [srv("_sip._tcp.example.net", 0, 0, 5070, b"pbx.example.net")],
            ("pbx.example.net", dns.A): [a("pbx.example.net", "198.51.100.1")],
        }
        loc, resolver, _, _ = make(zone, transports=("tcp",), families=("ipv4",))
        targets = self.successResultOf(loc.resolve("sip:pbx@example.net"))
        self.assertEqual(targets, [Target("tcp", "pbx.example.net", "198.51.100.1", 5070)])
        self.assertEqual(
            [c[:2] for c in resolver.calls],
            [("example.net", dns.NAPTR), ("_sip._tcp.example.net", dns.SRV), ("pbx.example.net", dns.A)],
        )

    def test_bad_uri_is_a_typed_failure(self) -> None:
        loc, resolver, _, events = make({})
        self.failureResultOf(loc.resolve("tel:+15551234567"), LocateError)
        self.failureResultOf(loc.resolve("sips:x@example.com;transport=udp"), LocateError)
        self.failureResultOf(loc.resolve(b"\xff\x00garbage"), LocateError)
        self.assertEqual(resolver.calls, [])
        self.assertEqual(len(events), 3)

    def test_bad_settings_refused_at_construction(self) -> None:
        self.assertRaises(LocateError, Locator, FakeResolver({}), Clock(), transports=("sctp",))
        self.assertRaises(LocateError, Locator, FakeResolver({}), Clock(), timeouts=())
        self.assertRaises(LocateError, Locator, FakeResolver({}), Clock(), timeouts=(0,))


class AnswerConversionTests(SynchronousTestCase):
    def test_cname_less_a_records(self) -> None:
        query = Query("h.example.com", RRType.A)
        answer = answer_from_records(query, [a("h.example.com", "192.0.2.1", 30), a("h.example.com", "192.0.2.2", 90)])
        self.assertEqual(answer.records, ("192.0.2.1", "192.0.2.2"))
        self.assertEqual(answer.ttl, 30.0)
        self.assertEqual(answer.rcode, Rcode.NOERROR)

    def test_cname_chain_followed_and_strangers_ignored(self) -> None:
        query = Query("alias.example.com", RRType.A)
        answers = [
            a("real.example.com", "192.0.2.7", 600),
            rr("alias.example.com", dns.Record_CNAME(b"mid.example.com"), 20),
            rr("mid.example.com", dns.Record_CNAME(b"real.example.com"), 900),
            a("stranger.example.org", "203.0.113.66", 600),
        ]
        answer = answer_from_records(query, answers)
        self.assertEqual(answer.records, ("192.0.2.7",))
        self.assertEqual(answer.ttl, 20.0)

    def test_naptr_fields_decoded(self) -> None:
        query = Query("example.com", RRType.NAPTR)
        answer = answer_from_records(query, [naptr("Example.COM.", 10, 20, b"SIP+D2T", b"_sip._tcp.example.com")])
        self.assertEqual(answer.records, (Naptr(10, 20, "s", "SIP+D2T", "", "_sip._tcp.example.com"),))

    def test_wrong_types_ignored_and_nodata_takes_soa_ttl(self) -> None:
        query = Query("h.example.com", RRType.AAAA)
        answer = answer_from_records(
            query, [a("h.example.com", "192.0.2.1")], [soa("example.com", 900, 60)]
        )
        self.assertEqual(answer.records, ())
        self.assertTrue(answer.negative)
        self.assertEqual(answer.ttl, 60.0)

    def test_junk_entries_ignored(self) -> None:
        query = Query("h.example.com", RRType.A)
        junk: list[Any] = ["junk", None, rr("h.example.com", dns.Record_A("192.0.2.3"))]
        answer = answer_from_records(query, junk)
        self.assertEqual(answer.records, ("192.0.2.3",))

    def test_cname_loop_terminates(self) -> None:
        query = Query("a.example.com", RRType.A)
        answers = [
            rr("a.example.com", dns.Record_CNAME(b"b.example.com")),
            rr("b.example.com", dns.Record_CNAME(b"a.example.com")),
        ]
        answer = answer_from_records(query, answers, [soa("example.com", 100, 50)])
        self.assertEqual(answer.records, ())
        self.assertEqual(answer.ttl, 50.0)


class FailureTests(SynchronousTestCase):
    def test_servfail_everywhere_gives_empty_list_and_warnings(self) -> None:
        zone = {
            ("example.com", dns.NAPTR): DNSServerError(dns.Message(rCode=dns.ESERVER)),
            ("_sip._udp.example.com", dns.SRV): DNSServerError(dns.Message(rCode=dns.ESERVER)),
            ("example.com", dns.A): DNSServerError(dns.Message(rCode=dns.ESERVER)),
            ("example.com", dns.AAAA): DNSServerError(dns.Message(rCode=dns.ESERVER)),
        }
        loc, _, _, events = make(zone, transports=("udp",))
        self.assertEqual(self.successResultOf(loc.resolve("sip:x@example.com")), [])
        formats = [e["log_format"] for e in events]
        self.assertEqual(sum(1 for f in formats if "failed" in f), 4)
        self.assertTrue(any("no SIP targets" in f for f in formats))
        self.assertEqual(len(loc.cache), 0)  # failures are never cached

    def test_error_mapping(self) -> None:
        loc, _, _, _ = make({})
        query = Query("h.example.com", RRType.A)
        cases = [
            (DomainError("h.example.com"), Rcode.NXDOMAIN),
            (nxdomain(), Rcode.NXDOMAIN),
            (DNSServerError(dns.Message(rCode=dns.ESERVER)), Rcode.FAILURE),
            (DNSQueryRefusedError(dns.Message(rCode=dns.EREFUSED)), Rcode.FAILURE),
            (RuntimeError("x"), Rcode.FAILURE),
        ]
        for error, rcode in cases:
            self.assertEqual(loc._from_failure(Failure(error), query).rcode, rcode, error)

    def test_timeout_abandons_query(self) -> None:
        zone = dict(EXAMPLE_ZONE)
        zone[("sbc2.example.com", dns.A)] = HANG
        loc, _, clock, events = make(zone)
        d = loc.resolve("sip:x@example.com")
        self.assertNoResult(d)
        clock.advance(4.9)
        self.assertNoResult(d)
        clock.advance(0.2)
        targets = self.successResultOf(d)
        self.assertEqual(targets, [t for t in EXAMPLE_TARGETS if t.host != "sbc2.example.com"])
        self.assertTrue(any("TimeoutError" in str(e.get("error")) for e in events))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_resolver_raising_synchronously(self) -> None:
        class Exploding(FakeResolver):
            def lookupNamingAuthorityPointer(self, name: Any, timeout: Any = None) -> Deferred[Any]:
                raise RuntimeError("boom")

        clock = Clock()
        resolver = Exploding({("example.com", dns.A): [a("example.com", "192.0.2.9")]})
        loc = Locator(resolver, clock, transports=("udp",), families=("ipv4",))
        loc.log = Logger(observer=lambda e: None)  # type: ignore[assignment]
        targets = self.successResultOf(loc.resolve("sip:x@example.com"))
        self.assertEqual(targets, [Target("udp", "example.com", "192.0.2.9", 5060)])

    def test_garbage_result_is_a_failure_not_a_crash(self) -> None:
        garbage: Deferred[Any] = Deferred()
        loc, _, _, events = make({("h.example.com", dns.A): garbage}, families=("ipv4",))
        d = loc.resolve("sip:h.example.com:5060")
        garbage.callback("not a tuple")
        self.assertEqual(self.successResultOf(d), [])
        self.assertTrue(any(e.get("log_failure") is not None for e in events))

    def test_bug_in_plan_is_logged_and_yields_empty_list(self) -> None:
        loc, _, _, events = make({})

        def broken(self: LocatorPlan) -> list[Target]:
            raise RuntimeError("bug")

        self.patch(LocatorPlan, "targets", broken)
        self.assertEqual(self.successResultOf(loc.resolve("sip:192.0.2.1")), [])
        self.assertTrue(any(e.get("log_failure") is not None for e in events))

    def test_nxdomain_cached_with_soa_negative_ttl(self) -> None:
        zone: dict[tuple[str, int], Any] = {
            ("gone.example.com", dns.A): nxdomain([soa("example.com", 3600, 45)]),
            ("gone.example.com", dns.AAAA): nxdomain([soa("example.com", 3600, 45)]),
        }
        loc, resolver, clock, _ = make(zone)
        self.assertEqual(self.successResultOf(loc.resolve("sip:gone.example.com:5060")), [])
        self.assertEqual(len(resolver.calls), 2)
        clock.advance(44)
        self.assertEqual(self.successResultOf(loc.resolve("sip:gone.example.com:5060")), [])
        self.assertEqual(len(resolver.calls), 2)
        clock.advance(1)
        self.successResultOf(loc.resolve("sip:gone.example.com:5060"))
        self.assertEqual(len(resolver.calls), 4)


class CacheAndSharingTests(SynchronousTestCase):
    def test_ttl_cache_with_clock(self) -> None:
        loc, resolver, clock, _ = make(dict(EXAMPLE_ZONE))
        self.successResultOf(loc.resolve("sip:x@example.com"))
        first = len(resolver.calls)
        clock.advance(59)
        self.assertEqual(self.successResultOf(loc.resolve("sip:y@example.com")), EXAMPLE_TARGETS)
        self.assertEqual(len(resolver.calls), first)
        clock.advance(1)  # the 60 s address records expire; NAPTR/SRV (300 s) do not
        self.successResultOf(loc.resolve("sip:x@example.com"))
        refreshed = [c[:2] for c in resolver.calls[first:]]
        self.assertIn(("sbc1.example.com", dns.A), refreshed)
        self.assertNotIn(("example.com", dns.NAPTR), refreshed)

    def test_shared_cache_between_locators(self) -> None:
        cache = DnsCache()
        loc1, r1, clock, _ = make(dict(EXAMPLE_ZONE), cache=cache)
        loc2, r2, _, _ = make({}, clock=clock, cache=cache)
        self.successResultOf(loc1.resolve("sip:x@example.com"))
        self.assertEqual(self.successResultOf(loc2.resolve("sip:x@example.com")), EXAMPLE_TARGETS)
        self.assertEqual(r2.calls, [])

    def test_cached_is_synchronous_and_does_no_io(self) -> None:
        loc, resolver, clock, _ = make(dict(EXAMPLE_ZONE))
        self.assertEqual(loc.cached("sip:192.0.2.1:5070"), [Target("udp", "192.0.2.1", "192.0.2.1", 5070)])
        self.assertIsNone(loc.cached("sip:x@example.com"))
        self.assertEqual(resolver.calls, [])
        self.successResultOf(loc.resolve("sip:x@example.com"))
        calls = len(resolver.calls)
        self.assertEqual(loc.cached("sip:x@example.com"), EXAMPLE_TARGETS)
        loc.mark_failed(EXAMPLE_TARGETS[0])
        self.assertEqual(loc.cached("sip:x@example.com"), EXAMPLE_TARGETS[1:] + EXAMPLE_TARGETS[:1])
        clock.advance(60)  # address records expired
        self.assertIsNone(loc.cached("sip:x@example.com"))
        self.assertEqual(len(resolver.calls), calls)
        self.assertRaises(LocateError, loc.cached, "tel:+1555")

    def test_ip_literal_plan_built_once(self) -> None:
        """An IP literal's targets never depend on DNS: the plan is built on the first
        question only, and callers get their own list each time."""
        loc, resolver, _, _ = make({})
        plans: list[object] = []
        real = loc._plan
        loc._plan = lambda uri: plans.append(uri) or real(uri)  # type: ignore[method-assign]
        uri = parse_uri("sip:agent@192.0.2.7:5090;transport=tcp")
        first = loc.cached(uri)
        assert first is not None
        first.clear()
        expected = [Target("tcp", "192.0.2.7", "192.0.2.7", 5090)]
        self.assertEqual(loc.cached(uri), expected)
        self.assertEqual(loc.cached(parse_uri("sip:agent@192.0.2.7:5090;transport=tcp")), expected)
        self.assertEqual(len(plans), 1)
        # A name is planned each time (its records expire).
        self.assertIsNone(loc.cached("sip:x@example.com"))
        self.assertIsNone(loc.cached("sip:x@example.com"))
        self.assertEqual(len(plans), 3)
        self.assertEqual(resolver.calls, [])

    def test_concurrent_identical_queries_share_one_lookup(self) -> None:
        pending: Deferred[Any] = Deferred()
        zone = {("agent.example.com", dns.A): pending}
        loc, resolver, _, _ = make(zone, families=("ipv4",))
        d1 = loc.resolve("sip:agent.example.com:5090")
        d2 = loc.resolve("sip:other@agent.example.com:5090")
        self.assertEqual(resolver.count("agent.example.com", dns.A), 1)
        self.assertNoResult(d1)
        pending.callback(([a("agent.example.com", "192.0.2.5")], [], []))
        expected = [Target("udp", "agent.example.com", "192.0.2.5", 5090)]
        self.assertEqual(self.successResultOf(d1), expected)
        self.assertEqual(self.successResultOf(d2), expected)


class QuarantineTests(SynchronousTestCase):
    def test_failed_target_goes_last_then_returns(self) -> None:
        loc, _, clock, events = make(dict(EXAMPLE_ZONE), quarantine=20.0)
        first = self.successResultOf(loc.resolve("sip:x@example.com"))
        loc.mark_failed(first[0])
        self.assertEqual(len(events), 1)
        again = self.successResultOf(loc.resolve("sip:x@example.com"))
        self.assertEqual(again, first[1:] + first[:1])
        clock.advance(20)
        self.assertEqual(self.successResultOf(loc.resolve("sip:x@example.com")), first)

    def test_mark_failed_with_explicit_now_and_mark_ok(self) -> None:
        loc, _, clock, _ = make(dict(EXAMPLE_ZONE), quarantine=20.0)
        first = self.successResultOf(loc.resolve("sip:x@example.com"))
        loc.mark_failed(first[1], now=clock.seconds() - 15)
        clock.advance(4)
        self.assertEqual(self.successResultOf(loc.resolve("sip:x@example.com"))[-1], first[1])
        loc.mark_ok(first[1])
        self.assertEqual(self.successResultOf(loc.resolve("sip:x@example.com")), first)

    def test_all_failed_still_returns_everything(self) -> None:
        loc, _, _, _ = make(dict(EXAMPLE_ZONE))
        first = self.successResultOf(loc.resolve("sip:x@example.com"))
        for target in reversed(first):
            loc.mark_failed(target)
        self.assertEqual(sorted(self.successResultOf(loc.resolve("sip:x@example.com")), key=str), sorted(first, key=str))


class ProductionResolverTests(SynchronousTestCase):
    def test_system_resolver_reads_hosts_without_network(self) -> None:
        base = FilePath(self.mktemp())
        base.makedirs()
        hosts = base.child("hosts")
        hosts.setContent(b"192.0.2.77 agent.test\n")
        resolvconf = base.child("resolv.conf")
        resolvconf.setContent(b"nameserver 192.0.2.53\n")
        reactor = MemoryReactorClock()
        resolver = system_resolver(reactor, resolvconf.path.encode(), hosts.path.encode())
        self.assertTrue(IResolver.providedBy(resolver))
        loc = Locator(resolver, reactor, families=("ipv4",))
        targets = self.successResultOf(loc.resolve("sip:agent.test:5090"))
        self.assertEqual(targets, [Target("udp", "agent.test", "192.0.2.77", 5090)])
        self.assertEqual(reactor.udpPorts if hasattr(reactor, "udpPorts") else {}, {})
        self.assertEqual(reactor.tcpClients, [])

    def test_module_never_imports_the_global_reactor(self) -> None:
        source = Path(locator_module.__file__).read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module == "twisted.internet":
                self.assertNotIn("reactor", [alias.name for alias in node.names])
            if isinstance(node, ast.Import):
                self.assertNotIn("twisted.internet.reactor", [alias.name for alias in node.names])


_NAMES = ["example.com", "_sip._udp.example.com", "_sips._tcp.example.com", "h.example.com"]
_RRS = st.one_of(
    st.builds(
        naptr,
        st.sampled_from(_NAMES),
        st.integers(0, 3),
        st.integers(0, 3),
        st.sampled_from([b"SIP+D2U", b"SIPS+D2T", b"SIP+D2S", b"x"]),
        st.sampled_from([b"_sip._udp.example.com", b"_sips._tcp.example.com", b"."]),
    ),
    st.builds(
        srv,
        st.sampled_from(_NAMES),
        st.integers(0, 3),
        st.integers(0, 5),
        st.integers(0, 65535),
        st.sampled_from([b"h.example.com", b".", b"example.com"]),
    ),
    st.builds(a, st.sampled_from(_NAMES), st.sampled_from(["192.0.2.1", "198.51.100.2"])),
    st.builds(aaaa, st.sampled_from(_NAMES), st.sampled_from(["2001:db8::1", "::1"])),
    st.builds(
        lambda n, t: rr(n, dns.Record_CNAME(t)),
        st.sampled_from(_NAMES),
        st.sampled_from([b"h.example.com", b"example.com"]),
    ),
)
_OUTCOMES = st.one_of(
    st.lists(_RRS, max_size=4),
    st.sampled_from([HANG, "nx", "servfail", "refused", "garbage"]),
)


class PropertyTests(SynchronousTestCase):
    @given(
        st.dictionaries(
            st.tuples(st.sampled_from(_NAMES), st.sampled_from([dns.NAPTR, dns.SRV, dns.A, dns.AAAA])),
            _OUTCOMES,
        ),
        st.sampled_from(
            [
                "sip:x@example.com",
                "sips:x@example.com",
                "sip:x@example.com;transport=udp",
                "sip:h.example.com:5070",
            ]
        ),
    )
    def test_always_settles_with_a_list(self, raw: dict[tuple[str, int], Any], uri: str) -> None:
        zone: dict[tuple[str, int], Any] = {}
        for key, outcome in raw.items():
            if outcome == "nx":
                zone[key] = nxdomain()
            elif outcome == "servfail":
                zone[key] = DNSServerError(dns.Message(rCode=dns.ESERVER))
            elif outcome == "refused":
                zone[key] = DNSQueryRefusedError(dns.Message(rCode=dns.EREFUSED))
            elif outcome == "garbage":
                zone[key] = succeed(("not", "a", "result", "tuple"))
            else:
                zone[key] = outcome
        loc, _, clock, _ = make(zone)
        d = loc.resolve(uri)
        for _ in range(4):  # at most NAPTR, SRV and address stages can hang in turn
            clock.advance(5.0)
        targets = self.successResultOf(d)
        self.assertIsInstance(targets, list)
        self.assertEqual(clock.getDelayedCalls(), [])
        for target in targets:
            self.assertTrue(0 < target.port <= 65535)
            if uri.startswith("sips"):
                self.assertEqual(target.transport, "tls")
