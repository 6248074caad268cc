# -*- test-case-name: tests.test_sip_locate -*-
"""Tests for sbc.sip.locate: the RFC 3263 plan, RFC 2782 ordering, the DNS cache."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.locate import (
    Answer,
    DnsCache,
    LocateError,
    LocatorPlan,
    Naptr,
    Quarantine,
    Query,
    Rcode,
    RRType,
    Srv,
    Target,
    default_port,
    failover_on,
    normalise_name,
    order_srv,
)
from sbc.sip.uri import parse_uri

NAPTR, SRV, A, AAAA = RRType.NAPTR, RRType.SRV, RRType.A, RRType.AAAA


def q(name: str, rtype: RRType) -> Query:
    return Query(name, rtype)


def ans(name: str, rtype: RRType, *records: object, ttl: float | None = 300) -> Answer:
    return Answer(Query(name, rtype), tuple(records), ttl)  # type: ignore[arg-type]


def nx(name: str, rtype: RRType, ttl: float | None = None) -> Answer:
    return Answer(Query(name, rtype), (), ttl, Rcode.NXDOMAIN)


def drive(plan: LocatorPlan, zone: Mapping[Query, Answer], rounds: int = 20) -> list[list[Query]]:
    """Answer every query from ``zone`` (NXDOMAIN when absent); return the query batches."""
    batches = []
    for _ in range(rounds):
        batch = plan.next_queries()
        if not batch:
            break
        batches.append(batch)
        for query in batch:
            plan.feed(zone.get(query, Answer(query, (), None, Rcode.NXDOMAIN)))
    return batches


def zone_of(*answers: Answer) -> dict[Query, Answer]:
    return {a.query: a for a in answers}


class ScriptedRandom:
    """randint() returns scripted values (clamped into range), recording each call."""

    def __init__(self, values: list[int]) -> None:
        self.values = list(values)
        self.calls: list[tuple[int, int]] = []

    def randint(self, a: int, b: int) -> int:
        self.calls.append((a, b))
        value = self.values.pop(0) if self.values else a
        return max(a, min(b, value))


class ExplicitTargetTests(SynchronousTestCase):
    """§4.1/§4.2 when the URI fixes the address or the port: no NAPTR, no SRV."""

    def test_ipv4_literal_sip_defaults_udp_5060(self) -> None:
        plan = LocatorPlan("sip:bob@192.0.2.10")
        self.assertEqual(plan.next_queries(), [])
        self.assertTrue(plan.done)
        self.assertEqual(plan.targets(), [Target("udp", "192.0.2.10", "192.0.2.10", 5060)])

    def test_ipv4_literal_sips_defaults_tls_5061(self) -> None:
        plan = LocatorPlan(parse_uri("sips:bob@192.0.2.10"))
        self.assertEqual(plan.targets(), [Target("tls", "192.0.2.10", "192.0.2.10", 5061)])

    def test_ipv6_literal_with_port_and_transport(self) -> None:
        plan = LocatorPlan("sip:[2001:DB8::1]:5080;transport=TCP")
        self.assertEqual(plan.next_queries(), [])
        self.assertEqual(plan.targets(), [Target("tcp", "2001:db8::1", "2001:db8::1", 5080)])

    def test_ip_literal_with_transport_tls_uses_5061(self) -> None:
        plan = LocatorPlan("sip:192.0.2.1;transport=tls")
        self.assertEqual(plan.targets(), [Target("tls", "192.0.2.1", "192.0.2.1", 5061)])

    def test_explicit_port_looks_up_addresses_only(self) -> None:
        plan = LocatorPlan("sip:agent.example.com:5090")
        batches = drive(
            plan,
            zone_of(ans("agent.example.com", A, "192.0.2.5"), ans("agent.example.com", AAAA, "2001:db8::5")),
        )
        self.assertEqual(batches, [[q("agent.example.com", A), q("agent.example.com", AAAA)]])
        self.assertEqual(
            plan.targets(),
            [
                Target("udp", "agent.example.com", "192.0.2.5", 5090),
                Target("udp", "agent.example.com", "2001:db8::5", 5090),
            ],
        )

    def test_explicit_port_sips_is_tls(self) -> None:
        plan = LocatorPlan("sips:agent.example.com:5071")
        drive(plan, zone_of(ans("agent.example.com", A, "192.0.2.5")))
        self.assertEqual(plan.targets(), [Target("tls", "agent.example.com", "192.0.2.5", 5071)])

    def test_sip_default_is_udp_whatever_the_preference(self) -> None:
        plan = LocatorPlan("sip:192.0.2.1", transports=("tls", "tcp", "udp"))
        self.assertEqual(plan.targets(), [Target("udp", "192.0.2.1", "192.0.2.1", 5060)])

    def test_explicit_port_sip_without_udp_uses_first_preference(self) -> None:
        plan = LocatorPlan("sip:agent.example.com:5090", transports=("tls", "tcp"))
        drive(plan, zone_of(ans("agent.example.com", A, "192.0.2.5")))
        self.assertEqual(plan.targets(), [Target("tls", "agent.example.com", "192.0.2.5", 5090)])

    def test_teams_style_uri(self) -> None:
        plan = LocatorPlan("sip:+15551234567@sip.pstnhub.microsoft.com:5061;transport=tls;user=phone")
        batches = drive(plan, zone_of(ans("sip.pstnhub.microsoft.com", A, "52.114.14.70")))
        self.assertEqual(len(batches), 1)
        self.assertNotIn(NAPTR, [x.rtype for x in batches[0]])
        self.assertEqual(
            plan.targets(), [Target("tls", "sip.pstnhub.microsoft.com", "52.114.14.70", 5061)]
        )

    def test_maddr_overrides_host(self) -> None:
        plan = LocatorPlan("sip:bob@example.com;maddr=198.51.100.7")
        self.assertEqual(plan.targets(), [Target("udp", "198.51.100.7", "198.51.100.7", 5060)])

    def test_maddr_name(self) -> None:
        plan = LocatorPlan("sip:bob@example.com:5070;maddr=Proxy.Example.NET")
        batches = drive(plan, zone_of(ans("proxy.example.net", A, "198.51.100.8")))
        self.assertEqual(batches[0][0], q("proxy.example.net", A))
        self.assertEqual(plan.targets(), [Target("udp", "proxy.example.net", "198.51.100.8", 5070)])

    def test_no_address_records_means_no_targets(self) -> None:
        plan = LocatorPlan("sip:gone.example.com:5060")
        drive(plan, {})
        self.assertTrue(plan.done)
        self.assertEqual(plan.targets(), [])


class TransportParamTests(SynchronousTestCase):
    """An explicit transport and no port: SRV for that transport, then A/AAAA."""

    def test_transport_tls_queries_sips_srv(self) -> None:
        plan = LocatorPlan("sip:agent.example.com;transport=tls")
        zone = zone_of(
            ans("_sips._tcp.agent.example.com", SRV, Srv(0, 0, 5071, "h1.example.com")),
            ans("h1.example.com", A, "192.0.2.1"),
        )
        batches = drive(plan, zone)
        self.assertEqual(batches[0], [q("_sips._tcp.agent.example.com", SRV)])
        self.assertEqual(plan.targets(), [Target("tls", "h1.example.com", "192.0.2.1", 5071)])

    def test_sips_transport_tcp_is_tls(self) -> None:
        plan = LocatorPlan("sips:agent.example.com;transport=tcp")
        batches = drive(plan, {})
        self.assertEqual(batches[0], [q("_sips._tcp.agent.example.com", SRV)])

    def test_transport_udp_queries_sip_udp(self) -> None:
        plan = LocatorPlan("sip:agent.example.com;transport=UDP")
        batches = drive(plan, {})
        self.assertEqual(batches[0], [q("_sip._udp.agent.example.com", SRV)])

    def test_no_srv_falls_back_to_address_with_default_port(self) -> None:
        plan = LocatorPlan("sip:agent.example.com;transport=tcp")
        zone = zone_of(ans("agent.example.com", A, "192.0.2.9"))
        batches = drive(plan, zone)
        self.assertEqual(batches[1], [q("agent.example.com", A), q("agent.example.com", AAAA)])
        self.assertEqual(plan.targets(), [Target("tcp", "agent.example.com", "192.0.2.9", 5060)])

    def test_sips_with_udp_refused(self) -> None:
        self.assertRaises(LocateError, LocatorPlan, "sips:agent.example.com;transport=udp")

    def test_unknown_transport_refused(self) -> None:
        self.assertRaises(LocateError, LocatorPlan, "sip:agent.example.com;transport=sctp")
        self.assertRaises(LocateError, LocatorPlan, "sip:agent.example.com;transport=ws")

    def test_disabled_transport_refused(self) -> None:
        self.assertRaises(
            LocateError, LocatorPlan, "sip:agent.example.com;transport=udp", transports=("tcp", "tls")
        )

    def test_sips_without_tls_refused(self) -> None:
        self.assertRaises(LocateError, LocatorPlan, "sips:192.0.2.1", transports=("udp", "tcp"))


class BadInputTests(SynchronousTestCase):
    def test_non_sip_schemes(self) -> None:
        self.assertRaises(LocateError, LocatorPlan, "tel:+15551234567")
        self.assertRaises(LocateError, LocatorPlan, "mailto:bob@example.com")

    def test_unparsable(self) -> None:
        self.assertRaises(LocateError, LocatorPlan, "not a uri")
        self.assertRaises(LocateError, LocatorPlan, b"sip:")

    def test_bad_arguments(self) -> None:
        self.assertRaises(LocateError, LocatorPlan, "sip:a.example", transports=())
        self.assertRaises(LocateError, LocatorPlan, "sip:a.example", transports=("udp", "udp"))
        self.assertRaises(LocateError, LocatorPlan, "sip:a.example", transports=("sctp",))
        self.assertRaises(LocateError, LocatorPlan, "sip:a.example", families=("ipv5",))
        self.assertRaises(LocateError, LocatorPlan, "sip:a.example", max_hosts=0)
        self.assertRaises(LocateError, DnsCache, max_entries=0)
        self.assertRaises(LocateError, Quarantine, period=-1)

    def test_targets_before_done(self) -> None:
        plan = LocatorPlan("sip:example.com")
        self.assertFalse(plan.done)
        self.assertRaises(LocateError, plan.targets)

    def test_feed_wants_an_answer(self) -> None:
        plan = LocatorPlan("sip:example.com")
        self.assertRaises(LocateError, plan.feed, "nonsense")  # type: ignore[arg-type]

    @given(st.text(max_size=60))
    def test_arbitrary_text_raises_only_locate_error(self, text: str) -> None:
        try:
            plan = LocatorPlan(text)
        except LocateError:
            return
        self.assertIn(plan.uri.scheme, ("sip", "sips"))


class NaptrTests(SynchronousTestCase):
    """§4.1: NAPTR selection with regexp-less replacements."""

    def full_zone(self) -> dict[Query, Answer]:
        return zone_of(
            ans(
                "example.com",
                NAPTR,
                Naptr(50, 50, "s", "SIP+D2U", "", "_sip._udp.example.com"),
                Naptr(90, 50, "s", "SIP+D2T", "", "_sip._tcp.example.com."),
                Naptr(50, 10, "S", "SIPS+D2T", "", "_SIPS._TCP.example.com"),
                Naptr(10, 10, "s", "SIP+D2S", "", "_sip._sctp.example.com"),  # SCTP: not ours
                Naptr(10, 10, "s", "E2U+sip", "", "_x._udp.example.com"),  # ENUM: not SIP
                Naptr(10, 20, "u", "SIP+D2T", "!^.*$!sip:x@y!", ""),  # regexp: ignored
                Naptr(10, 30, "a", "SIP+D2T", "", "a.example.com"),  # not an SRV pointer
            ),
            ans("_sips._tcp.example.com", SRV, Srv(0, 0, 5061, "tls.example.com")),
            ans("_sip._udp.example.com", SRV, Srv(0, 0, 5060, "udp.example.com")),
            ans("_sip._tcp.example.com", SRV, Srv(0, 0, 5060, "tcp.example.com")),
            ans("tls.example.com", A, "192.0.2.3"),
            ans("udp.example.com", A, "192.0.2.1"),
            ans("tcp.example.com", A, "192.0.2.2"),
        )

    def test_order_then_preference_and_unsupported_ignored(self) -> None:
        plan = LocatorPlan("sip:bob@Example.COM")
        batches = drive(plan, self.full_zone())
        self.assertEqual(batches[0], [q("example.com", NAPTR)])
        self.assertEqual(
            batches[1],
            [
                q("_sips._tcp.example.com", SRV),
                q("_sip._udp.example.com", SRV),
                q("_sip._tcp.example.com", SRV),
            ],
        )
        self.assertEqual(
            [(t.transport, t.ip) for t in plan.targets()],
            [("tls", "192.0.2.3"), ("udp", "192.0.2.1"), ("tcp", "192.0.2.2")],
        )

    def test_order_outranks_preference(self) -> None:
        zone = zone_of(
            ans(
                "example.com",
                NAPTR,
                Naptr(20, 1, "s", "SIP+D2U", "", "_sip._udp.example.com"),
                Naptr(10, 99, "s", "SIP+D2T", "", "_sip._tcp.example.com"),
                Naptr(10, 50, "s", "SIPS+D2T", "", "_sips._tcp.example.com"),
            ),
        )
        plan = LocatorPlan("sip:bob@example.com")
        batches = drive(plan, zone)
        self.assertEqual(
            batches[1],
            [
                q("_sips._tcp.example.com", SRV),
                q("_sip._tcp.example.com", SRV),
                q("_sip._udp.example.com", SRV),
            ],
        )

    def test_sips_uri_keeps_only_sips_services(self) -> None:
        plan = LocatorPlan("sips:bob@example.com")
        batches = drive(plan, self.full_zone())
        self.assertEqual(batches[1], [q("_sips._tcp.example.com", SRV)])
        self.assertEqual([t.transport for t in plan.targets()], ["tls"])

    def test_services_for_disabled_transports_ignored(self) -> None:
        plan = LocatorPlan("sip:bob@example.com", transports=("tcp",))
        batches = drive(plan, self.full_zone())
        self.assertEqual(batches[1], [q("_sip._tcp.example.com", SRV)])
        self.assertEqual(plan.targets(), [Target("tcp", "tcp.example.com", "192.0.2.2", 5060)])

    def test_only_unusable_naptr_falls_back_to_srv(self) -> None:
        zone = zone_of(
            ans("example.com", NAPTR, Naptr(10, 10, "s", "SIP+D2S", "", "_sip._sctp.example.com")),
        )
        plan = LocatorPlan("sip:bob@example.com", transports=("tls", "tcp"))
        batches = drive(plan, zone)
        self.assertEqual(
            batches[1], [q("_sips._tcp.example.com", SRV), q("_sip._tcp.example.com", SRV)]
        )

    def test_naptr_srv_missing_falls_back_to_domain_address(self) -> None:
        zone = zone_of(
            ans("example.com", NAPTR, Naptr(10, 10, "s", "SIP+D2T", "", "_sip._tcp.example.com")),
            ans("example.com", A, "192.0.2.77"),
        )
        plan = LocatorPlan("sip:bob@example.com")
        drive(plan, zone)
        self.assertEqual(plan.targets(), [Target("tcp", "example.com", "192.0.2.77", 5060)])

    def test_naptr_failure_treated_as_absent_and_not_cached(self) -> None:
        cache = DnsCache()
        zone = zone_of(
            Answer(q("example.com", NAPTR), (), None, Rcode.FAILURE),
            ans("_sip._udp.example.com", SRV, Srv(1, 1, 5062, "u.example.com")),
            ans("u.example.com", A, "192.0.2.4"),
        )
        plan = LocatorPlan("sip:bob@example.com", cache=cache)
        drive(plan, zone)
        self.assertEqual(plan.targets(), [Target("udp", "u.example.com", "192.0.2.4", 5062)])
        self.assertIsNone(cache.get(q("example.com", NAPTR), 0.0))
        self.assertIsNotNone(cache.get(q("u.example.com", A), 0.0))

    def test_duplicate_naptr_replacement_queried_once(self) -> None:
        zone = zone_of(
            ans(
                "example.com",
                NAPTR,
                Naptr(10, 10, "s", "SIP+D2T", "", "_sip._tcp.example.com"),
                Naptr(20, 10, "s", "SIP+D2T", "", "_sip._tcp.example.com."),
            ),
        )
        plan = LocatorPlan("sip:bob@example.com")
        batches = drive(plan, zone)
        self.assertEqual(batches[1], [q("_sip._tcp.example.com", SRV)])


class SrvTests(SynchronousTestCase):
    """No NAPTR: SRV for each supported transport; §4.2 ordering; A/AAAA fallback."""

    def test_srv_per_transport_in_preference_order(self) -> None:
        zone = zone_of(
            ans("_sip._tcp.example.com", SRV, Srv(0, 0, 5060, "t.example.com")),
            ans("_sips._tcp.example.com", SRV, Srv(0, 0, 5061, "s.example.com")),
            ans("t.example.com", A, "192.0.2.20"),
            ans("s.example.com", A, "192.0.2.21"),
        )
        plan = LocatorPlan("sip:bob@example.com", transports=("tls", "tcp", "udp"))
        batches = drive(plan, zone)
        self.assertEqual(
            batches[1],
            [
                q("_sips._tcp.example.com", SRV),
                q("_sip._tcp.example.com", SRV),
                q("_sip._udp.example.com", SRV),
            ],
        )
        self.assertEqual(
            plan.targets(),
            [
                Target("tls", "s.example.com", "192.0.2.21", 5061),
                Target("tcp", "t.example.com", "192.0.2.20", 5060),
            ],
        )

    def test_no_naptr_no_srv_uses_domain_udp(self) -> None:
        plan = LocatorPlan("sip:bob@example.com")
        drive(plan, zone_of(ans("example.com", A, "192.0.2.30")))
        self.assertEqual(plan.targets(), [Target("udp", "example.com", "192.0.2.30", 5060)])

    def test_no_naptr_no_srv_sips_uses_domain_tls(self) -> None:
        plan = LocatorPlan("sips:bob@example.com")
        batches = drive(plan, zone_of(ans("example.com", A, "192.0.2.30")))
        self.assertEqual(batches[1], [q("_sips._tcp.example.com", SRV)])
        self.assertEqual(plan.targets(), [Target("tls", "example.com", "192.0.2.30", 5061)])

    def test_dot_target_means_not_available(self) -> None:
        zone = zone_of(
            ans("_sip._udp.example.com", SRV, Srv(0, 0, 0, ".")),
            ans("example.com", A, "192.0.2.30"),
        )
        plan = LocatorPlan("sip:bob@example.com;transport=udp")
        batches = drive(plan, zone)
        self.assertEqual(len(batches), 1)
        self.assertEqual(plan.targets(), [])

    def test_priority_before_weight(self) -> None:
        zone = zone_of(
            ans(
                "_sip._udp.example.com",
                SRV,
                Srv(20, 1000, 5060, "backup.example.com"),
                Srv(10, 1, 5060, "primary.example.com"),
            ),
            ans("backup.example.com", A, "192.0.2.2"),
            ans("primary.example.com", A, "192.0.2.1"),
        )
        for seed in range(20):
            plan = LocatorPlan("sip:x@example.com", random=random.Random(seed))
            drive(plan, zone)
            self.assertEqual([t.host for t in plan.targets()], ["primary.example.com", "backup.example.com"])

    def test_weights_with_seeded_random(self) -> None:
        zone = zone_of(
            ans(
                "_sip._udp.example.com",
                SRV,
                Srv(10, 90, 5060, "heavy.example.com"),
                Srv(10, 10, 5060, "light.example.com"),
            ),
            ans("heavy.example.com", A, "192.0.2.1"),
            ans("light.example.com", A, "192.0.2.2"),
        )
        rng = random.Random(3263)
        firsts = Counter()
        for _ in range(1000):
            plan = LocatorPlan("sip:x@example.com", random=rng)
            drive(plan, zone)
            targets = plan.targets()
            self.assertEqual(len(targets), 2)
            firsts[targets[0].host] += 1
        self.assertTrue(850 <= firsts["heavy.example.com"] <= 950, firsts)

    def test_same_seed_same_order(self) -> None:
        records = [Srv(1, w, 5060, f"h{w}.example.com") for w in (5, 10, 20, 40)]
        self.assertEqual(order_srv(records, random.Random(7)), order_srv(records, random.Random(7)))

    def test_order_srv_follows_rfc2782_selection(self) -> None:
        a, b, c = Srv(1, 0, 1, "a"), Srv(1, 30, 1, "b"), Srv(1, 70, 1, "c")
        # Weights 0, 30, 70 -> running sums 0, 30, 100.  Draw 31 -> c; then sums 0, 30: draw 0 -> a.
        rng = ScriptedRandom([31, 0, 0])
        self.assertEqual(order_srv([b, c, a], rng), [c, a, b])
        self.assertEqual(rng.calls, [(0, 100), (0, 30), (0, 30)])

    def test_zero_weights_only(self) -> None:
        records = [Srv(1, 0, 1, "a"), Srv(1, 0, 1, "b")]
        self.assertEqual(order_srv(records, ScriptedRandom([0, 0])), records)

    @given(
        st.lists(
            st.builds(
                Srv,
                st.integers(0, 3),
                st.integers(0, 100),
                st.integers(1, 65535),
                st.sampled_from(["a", "b", "c", "d"]),
            ),
            max_size=8,
        ),
        st.integers(0, 2**32),
    )
    def test_order_srv_is_a_priority_sorted_permutation(self, records: list[Srv], seed: int) -> None:
        out = order_srv(records, random.Random(seed))
        self.assertEqual(Counter(out), Counter(records))
        self.assertEqual([r.priority for r in out], sorted(r.priority for r in records))

    def test_srv_targets_expanded_to_every_address(self) -> None:
        zone = zone_of(
            ans("_sip._udp.example.com", SRV, Srv(0, 0, 5060, "multi.example.com")),
            ans("multi.example.com", A, "192.0.2.1", "192.0.2.2"),
            ans("multi.example.com", AAAA, "2001:db8::1"),
        )
        plan = LocatorPlan("sip:x@example.com")
        drive(plan, zone)
        self.assertEqual(
            [t.ip for t in plan.targets()], ["192.0.2.1", "192.0.2.2", "2001:db8::1"]
        )

    def test_duplicates_removed(self) -> None:
        zone = zone_of(
            ans(
                "_sip._udp.example.com",
                SRV,
                Srv(0, 0, 5060, "one.example.com"),
                Srv(1, 0, 5060, "alias.example.com"),
            ),
            ans("one.example.com", A, "192.0.2.1"),
            ans("alias.example.com", A, "192.0.2.1"),
        )
        plan = LocatorPlan("sip:x@example.com")
        drive(plan, zone)
        self.assertEqual(plan.targets(), [Target("udp", "one.example.com", "192.0.2.1", 5060)])

    def test_srv_target_that_is_an_ip_needs_no_lookup(self) -> None:
        zone = zone_of(ans("_sip._udp.example.com", SRV, Srv(0, 0, 5070, "192.0.2.50")))
        plan = LocatorPlan("sip:x@example.com")
        batches = drive(plan, zone)
        self.assertEqual(len(batches), 2)
        self.assertEqual(plan.targets(), [Target("udp", "192.0.2.50", "192.0.2.50", 5070)])

    def test_invalid_srv_ports_skipped(self) -> None:
        zone = zone_of(
            ans("_sip._udp.example.com", SRV, Srv(0, 0, 0, "zero.example.com"), Srv(1, 0, 5060, "ok.example.com")),
            ans("ok.example.com", A, "192.0.2.8"),
            ans("zero.example.com", A, "192.0.2.9"),
        )
        plan = LocatorPlan("sip:x@example.com")
        drive(plan, zone)
        self.assertEqual([t.host for t in plan.targets()], ["ok.example.com"])

    def test_max_hosts_bounds_work(self) -> None:
        records = [Srv(i, 0, 5060, f"h{i}.example.com") for i in range(50)]
        zone = zone_of(ans("_sip._udp.example.com", SRV, *records))
        zone.update(zone_of(*(ans(f"h{i}.example.com", A, f"192.0.2.{i + 1}") for i in range(50))))
        plan = LocatorPlan("sip:x@example.com", max_hosts=4, families=("ipv4",))
        batches = drive(plan, zone)
        self.assertEqual(len(batches[-1]), 4)
        self.assertEqual([t.host for t in plan.targets()], [f"h{i}.example.com" for i in range(4)])


class AddressTests(SynchronousTestCase):
    def test_aaaa_only_host(self) -> None:
        plan = LocatorPlan("sip:v6.example.com:5060")
        drive(plan, zone_of(ans("v6.example.com", AAAA, "2001:DB8:0:0::7")))
        self.assertEqual(plan.targets(), [Target("udp", "v6.example.com", "2001:db8::7", 5060)])

    def test_prefer_ipv6(self) -> None:
        plan = LocatorPlan("sip:dual.example.com:5060", families=("ipv6", "ipv4"))
        batches = drive(
            plan, zone_of(ans("dual.example.com", A, "192.0.2.1"), ans("dual.example.com", AAAA, "2001:db8::1"))
        )
        self.assertEqual(batches[0], [q("dual.example.com", AAAA), q("dual.example.com", A)])
        self.assertEqual([t.ip for t in plan.targets()], ["2001:db8::1", "192.0.2.1"])

    def test_ipv4_only_never_asks_aaaa(self) -> None:
        plan = LocatorPlan("sip:dual.example.com:5060", families=("ipv4",))
        batches = drive(plan, zone_of(ans("dual.example.com", A, "192.0.2.1")))
        self.assertEqual(batches, [[q("dual.example.com", A)]])

    def test_cname_less_records_and_garbage_ignored(self) -> None:
        # The A answer holds bare address records (no CNAME chain); wrong-family and junk
        # entries are dropped rather than trusted.
        plan = LocatorPlan("sip:h.example.com:5060")
        drive(
            plan,
            zone_of(
                ans("h.example.com", A, "192.0.2.1", "2001:db8::1", "not-an-ip", Srv(0, 0, 1, "x")),
                ans("h.example.com", AAAA, "192.0.2.9", "2001:db8::2"),
            ),
        )
        self.assertEqual([t.ip for t in plan.targets()], ["192.0.2.1", "2001:db8::2"])


class PlanDrivingTests(SynchronousTestCase):
    def test_each_query_handed_out_once(self) -> None:
        plan = LocatorPlan("sip:x.example.com:5060")
        first = plan.next_queries()
        self.assertEqual(len(first), 2)
        self.assertEqual(plan.next_queries(), [])
        self.assertEqual(plan.pending(), first)
        plan.feed(ans("x.example.com", A, "192.0.2.1"))
        self.assertEqual(plan.pending(), [q("x.example.com", AAAA)])
        self.assertFalse(plan.done)
        plan.feed(ans("x.example.com", AAAA))
        self.assertTrue(plan.done)

    def test_addresses_asked_while_other_srvs_pending(self) -> None:
        plan = LocatorPlan("sip:x@example.com", transports=("tls", "udp"))
        plan.feed(ans("example.com", NAPTR, ttl=None))
        self.assertEqual(
            plan.next_queries(), [q("_sips._tcp.example.com", SRV), q("_sip._udp.example.com", SRV)]
        )
        plan.feed(ans("_sips._tcp.example.com", SRV, Srv(0, 0, 5061, "t.example.com")))
        self.assertEqual(plan.next_queries(), [q("t.example.com", A), q("t.example.com", AAAA)])
        plan.feed(ans("t.example.com", A, "192.0.2.1"))
        plan.feed(ans("t.example.com", AAAA))
        self.assertFalse(plan.done)
        self.assertEqual(plan.pending(), [q("_sip._udp.example.com", SRV)])
        plan.feed(nx("_sip._udp.example.com", SRV))
        self.assertEqual(plan.targets(), [Target("tls", "t.example.com", "192.0.2.1", 5061)])

    def test_unrequested_answers_are_used(self) -> None:
        plan = LocatorPlan("sip:x.example.com:5060")
        plan.feed(ans("x.example.com", A, "192.0.2.1"))
        plan.feed(ans("x.example.com", AAAA))
        self.assertEqual(plan.next_queries(), [])
        self.assertEqual(len(plan.targets()), 1)

    def test_targets_stable(self) -> None:
        zone = zone_of(
            ans("_sip._udp.example.com", SRV, *(Srv(0, 10, 5060, f"h{i}.example.com") for i in range(5))),
            *(ans(f"h{i}.example.com", A, f"192.0.2.{i + 1}") for i in range(5)),
        )
        plan = LocatorPlan("sip:x@example.com", random=random.Random(1))
        drive(plan, zone)
        self.assertEqual(plan.targets(), plan.targets())

    @given(
        st.dictionaries(
            st.sampled_from(
                [
                    q("example.com", NAPTR),
                    q("_sip._udp.example.com", SRV),
                    q("_sip._tcp.example.com", SRV),
                    q("_sips._tcp.example.com", SRV),
                    q("a.example.com", A),
                    q("a.example.com", AAAA),
                    q("example.com", A),
                ]
            ),
            st.tuples(
                st.sampled_from(list(Rcode)),
                st.lists(
                    st.one_of(
                        st.builds(
                            Naptr,
                            st.integers(0, 3),
                            st.integers(0, 3),
                            st.sampled_from(["s", "S", "a", ""]),
                            st.sampled_from(["SIP+D2U", "SIP+D2T", "SIPS+D2T", "SIP+D2S", "x"]),
                            st.sampled_from(["", "!x!y!"]),
                            st.sampled_from(["_sip._udp.example.com", "_sips._tcp.example.com", ".", ""]),
                        ),
                        st.builds(
                            Srv,
                            st.integers(0, 3),
                            st.integers(0, 10),
                            st.integers(0, 70000),
                            st.sampled_from(["a.example.com", ".", "", "192.0.2.1"]),
                        ),
                        st.sampled_from(["192.0.2.1", "2001:db8::1", "junk"]),
                    ),
                    max_size=4,
                ),
            ),
        ),
        st.sampled_from(["sip:x@example.com", "sips:x@example.com", "sip:x@example.com;transport=tcp"]),
    )
    def test_any_answers_terminate_with_valid_targets(
        self, raw: dict[Query, tuple[Rcode, list[object]]], uri: str
    ) -> None:
        zone = {query: Answer(query, tuple(recs), 60, rcode) for query, (rcode, recs) in raw.items()}  # type: ignore[arg-type]
        plan = LocatorPlan(uri, random=random.Random(0))
        drive(plan, zone)
        self.assertTrue(plan.done)
        for target in plan.targets():
            self.assertIn(target.transport, ("udp", "tcp", "tls"))
            self.assertTrue(0 < target.port <= 65535)
            if uri.startswith("sips"):
                self.assertEqual(target.transport, "tls")


class DnsCacheTests(SynchronousTestCase):
    def test_expires_at_ttl(self) -> None:
        cache = DnsCache()
        answer = ans("h.example.com", A, "192.0.2.1", ttl=60)
        cache.put(answer, 1000.0)
        self.assertEqual(cache.get(answer.query, 1059.9), answer)
        self.assertIsNone(cache.get(answer.query, 1060.0))
        self.assertEqual(len(cache), 0)

    def test_key_is_case_and_dot_insensitive(self) -> None:
        cache = DnsCache()
        cache.put(ans("H.Example.COM.", A, "192.0.2.1", ttl=60), 0.0)
        self.assertIsNotNone(cache.get(q("h.example.com", A), 1.0))
        self.assertIsNone(cache.get(q("h.example.com", AAAA), 1.0))

    def test_zero_or_unknown_ttl_not_cached(self) -> None:
        cache = DnsCache()
        cache.put(ans("a.example.com", A, "192.0.2.1", ttl=0), 0.0)
        cache.put(ans("b.example.com", A, "192.0.2.1", ttl=None), 0.0)
        self.assertEqual(len(cache), 0)

    def test_max_ttl_caps(self) -> None:
        cache = DnsCache(max_ttl=100)
        answer = ans("a.example.com", A, "192.0.2.1", ttl=10**6)
        cache.put(answer, 0.0)
        self.assertIsNotNone(cache.get(answer.query, 99.0))
        self.assertIsNone(cache.get(answer.query, 100.0))

    def test_nxdomain_cached_for_bounded_time(self) -> None:
        cache = DnsCache(negative_ttl=30, max_negative_ttl=120)
        unknown = nx("a.example.com", NAPTR)
        long = nx("b.example.com", NAPTR, ttl=86400)
        short = nx("c.example.com", NAPTR, ttl=5)
        for answer in (unknown, long, short):
            cache.put(answer, 0.0)
        self.assertEqual(cache.get(unknown.query, 29.0), unknown)
        self.assertIsNone(cache.get(unknown.query, 30.0))
        self.assertEqual(cache.get(long.query, 119.0), long)
        self.assertIsNone(cache.get(long.query, 120.0))
        self.assertIsNone(cache.get(short.query, 5.0))

    def test_nodata_is_negative(self) -> None:
        cache = DnsCache(negative_ttl=10)
        nodata = ans("a.example.com", AAAA, ttl=None)
        self.assertTrue(nodata.negative)
        cache.put(nodata, 0.0)
        self.assertEqual(cache.get(nodata.query, 9.0), nodata)
        self.assertIsNone(cache.get(nodata.query, 10.0))

    def test_failures_not_cached(self) -> None:
        cache = DnsCache()
        cache.put(Answer(q("a.example.com", A), (), 300, Rcode.FAILURE), 0.0)
        self.assertEqual(len(cache), 0)

    def test_bounded_size_evicts_expired_then_oldest(self) -> None:
        cache = DnsCache(max_entries=2)
        cache.put(ans("old.example.com", A, "192.0.2.1", ttl=10), 0.0)
        cache.put(ans("mid.example.com", A, "192.0.2.2", ttl=1000), 1.0)
        cache.put(ans("new.example.com", A, "192.0.2.3", ttl=1000), 20.0)  # old has expired
        self.assertIsNotNone(cache.get(q("mid.example.com", A), 21.0))
        cache.put(ans("newer.example.com", A, "192.0.2.4", ttl=1000), 22.0)  # evicts mid
        self.assertIsNone(cache.get(q("mid.example.com", A), 23.0))
        self.assertIsNotNone(cache.get(q("new.example.com", A), 23.0))
        self.assertEqual(len(cache), 2)

    def test_plan_reuses_cache_until_expiry(self) -> None:
        cache = DnsCache()
        zone = zone_of(
            ans("example.com", NAPTR, ttl=None),  # NODATA: cached negatively (30 s)
            ans("_sip._udp.example.com", SRV, Srv(0, 0, 5060, "h.example.com"), ttl=600),
            ans("h.example.com", A, "192.0.2.1", ttl=120),
            ans("h.example.com", AAAA, ttl=None),
        )
        first = LocatorPlan("sip:x@example.com", cache=cache, now=0.0)
        drive(first, zone)
        expected = [Target("udp", "h.example.com", "192.0.2.1", 5060)]
        self.assertEqual(first.targets(), expected)

        warm = LocatorPlan("sip:x@example.com", cache=cache, now=10.0)
        self.assertEqual(warm.next_queries(), [])
        self.assertEqual(warm.targets(), expected)

        later = LocatorPlan("sip:x@example.com", cache=cache, now=60.0)
        batches = drive(later, zone)
        # The negatives (30 s: NAPTR, the absent SRVs, AAAA) expired; the positive SRV (600 s)
        # and A (120 s) are still fresh.
        self.assertEqual(
            batches,
            [
                [q("example.com", NAPTR)],
                # The cached SRV's target is expanded while the other SRVs are pending.
                [
                    q("_sip._tcp.example.com", SRV),
                    q("_sips._tcp.example.com", SRV),
                    q("h.example.com", AAAA),
                ],
            ],
        )

        expired = LocatorPlan("sip:x@example.com", cache=cache, now=200.0)
        batches = drive(expired, zone)
        self.assertIn(q("h.example.com", A), batches[-1])
        self.assertNotIn(q("_sip._udp.example.com", SRV), [x for b in batches for x in b])


class FailoverTests(SynchronousTestCase):
    def test_failover_on(self) -> None:
        self.assertTrue(failover_on(None))
        self.assertTrue(failover_on(503))
        for status in (200, 404, 480, 486, 500, 502, 504, 603):
            self.assertFalse(failover_on(status), status)

    def test_quarantine_moves_failed_target_back(self) -> None:
        t1, t2, t3 = (Target("udp", f"h{i}", f"192.0.2.{i}", 5060) for i in (1, 2, 3))
        quarantine = Quarantine(period=30.0)
        quarantine.mark(t2, 100.0)
        quarantine.mark(t1, 101.0)
        self.assertEqual(quarantine.order([t1, t2, t3], 110.0), [t3, t2, t1])
        self.assertEqual(quarantine.order([t1, t2, t3], 130.0), [t2, t3, t1])
        self.assertEqual(quarantine.order([t1, t2, t3], 131.0), [t1, t2, t3])
        self.assertFalse(quarantine.is_quarantined(t1, 131.0))

    def test_quarantine_clear_and_bound(self) -> None:
        quarantine = Quarantine(period=30.0, max_entries=2)
        targets = [Target("udp", "h", f"192.0.2.{i}", 5060) for i in range(3)]
        for target in targets:
            quarantine.mark(target, 0.0)
        self.assertFalse(quarantine.is_quarantined(targets[0], 1.0))
        self.assertTrue(quarantine.is_quarantined(targets[2], 1.0))
        quarantine.clear(targets[2])
        self.assertFalse(quarantine.is_quarantined(targets[2], 1.0))


class HelperTests(SynchronousTestCase):
    def test_default_port(self) -> None:
        self.assertEqual((default_port("udp"), default_port("tcp"), default_port("tls")), (5060, 5060, 5061))

    def test_normalise_name(self) -> None:
        self.assertEqual(normalise_name(" Sip.PSTNhub.Microsoft.com. "), "sip.pstnhub.microsoft.com")
