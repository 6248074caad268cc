# -*- test-case-name: tests.test_policy_allowlist -*-
"""The pre-parse source allowlist (sbc.policy.allowlist): pure, no sockets."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.config import VendorRange
from sbc.policy.allowlist import Allowlist, Rule, normalise_host, rules_from_config

net = ipaddress.ip_network


def allowlist(*nets: str, **kw: object) -> Allowlist:
    return Allowlist([Rule(net(n), "trunk:t") for n in nets], **kw)  # type: ignore[arg-type]


class AdmitsTests(SynchronousTestCase):
    def test_default_deny(self) -> None:
        a = Allowlist()
        self.assertFalse(a.admits("192.0.2.1"))
        self.assertFalse(a.admits("::1"))
        self.assertFalse(a.admit_all)

    def test_exact_hosts_and_ranges(self) -> None:
        a = allowlist("127.0.0.1/32", "10.0.0.0/8", "2001:db8::/32", "::1/128")
        for host in ("127.0.0.1", "10.0.0.0", "10.255.255.255", "10.1.2.3", "2001:db8::1",
                     "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "::1"):
            self.assertTrue(a.admits(host), host)
        for host in ("127.0.0.2", "9.255.255.255", "11.0.0.0", "2001:db9::", "2001:db7:ffff::1", "::2",
                     "0.0.0.0", "255.255.255.255"):
            self.assertFalse(a.admits(host), host)

    def test_ipv4_mapped_sources_are_judged_as_ipv4(self) -> None:
        a = allowlist("192.0.2.0/24")
        self.assertTrue(a.admits("::ffff:192.0.2.7"))
        self.assertTrue(a.admits("::FFFF:192.0.2.8"))
        self.assertFalse(a.admits("::ffff:198.51.100.1"))
        self.assertEqual(normalise_host("::ffff:192.0.2.7"), "192.0.2.7")
        self.assertEqual(normalise_host("fe80::1%eth0"), "fe80::1")

    def test_garbage_is_refused_not_raised(self) -> None:
        a = allowlist("10.0.0.0/8")
        for host in ("", "example.com", "10.0.0", "10.0.0.1.2", "::g", "999.1.1.1", "\x00"):
            self.assertFalse(a.admits(host), host)

    def test_overlapping_and_adjacent_ranges_merge(self) -> None:
        a = allowlist("10.0.0.0/24", "10.0.1.0/24", "10.0.0.128/25", "10.0.3.0/24")
        self.assertEqual(a._v4[0], [int(ipaddress.ip_address("10.0.0.0")), int(ipaddress.ip_address("10.0.3.0"))])
        self.assertTrue(a.admits("10.0.1.255"))
        self.assertFalse(a.admits("10.0.2.0"))
        self.assertTrue(a.admits("10.0.3.1"))

    def test_catch_all_admits_everyone_and_says_why(self) -> None:
        a = Allowlist([Rule(net("0.0.0.0/0"), "trunk:open")])
        self.assertTrue(a.admit_all)
        self.assertIn("trunk:open", a.admit_all_why)
        self.assertTrue(a.admits("203.0.113.9"))
        self.assertTrue(a.admits("2001:db8::9"))

    def test_cache_is_bounded(self) -> None:
        a = allowlist("10.0.0.0/8", cache_size=16)
        for i in range(1000):
            a.admits(f"192.0.{i // 256}.{i % 256}")
            self.assertLessEqual(len(a._cache), 16)
        self.assertTrue(a.admits("10.9.9.9"))

    def test_remembered_peers_are_admitted_and_bounded(self) -> None:
        a = allowlist("10.0.0.0/8", remembered=2)
        self.assertFalse(a.admits("198.51.100.1"))  # cached as refused ...
        a.remember("198.51.100.1")
        self.assertTrue(a.admits("198.51.100.1"))  # ... and the cache forgot that
        a.remember("198.51.100.2")
        a.remember("198.51.100.3")  # the oldest goes
        self.assertFalse(a.admits("198.51.100.1"))
        self.assertTrue(a.admits("198.51.100.3"))
        a.remember("not an address")
        self.assertEqual(a.remembered, ("198.51.100.2", "198.51.100.3"))
        self.assertFalse(a.admits("::ffff:198.51.100.9"))
        a.remember("198.51.100.9")
        self.assertTrue(a.admits("::ffff:198.51.100.9"))  # every spelling
        self.assertEqual(a.remembered, ("198.51.100.3", "198.51.100.9"))
        a.remember("10.1.1.1")  # already admitted: not a remembered peer
        self.assertFalse(a.is_remembered("10.1.1.1"))

    def test_carry_over_keeps_remembered_peers(self) -> None:
        old = allowlist("10.0.0.0/8")
        old.remember("198.51.100.1")
        new = allowlist("172.16.0.0/12").carry_over(old)
        self.assertTrue(new.admits("198.51.100.1"))
        self.assertFalse(new.admits("10.0.0.1"))

    def test_rules_for_explains(self) -> None:
        a = Allowlist([Rule(net("52.112.0.0/14"), "trunk:teams", "vendor:teams"), Rule(net("52.112.0.0/16"), "trunk:x")])
        rules = a.rules_for("52.112.1.1")
        self.assertEqual([r.owner for r in rules], ["trunk:teams", "trunk:x"])
        self.assertEqual(rules[0].describe(), "52.112.0.0/14 (trunk:teams, from vendor:teams)")
        self.assertEqual(a.rules_for("52.116.0.1"), [])
        self.assertEqual(a.rules_for("nonsense"), [])

    @given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(8, 32)), max_size=12),
           st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=30))
    def test_same_verdict_as_ipaddress(self, specs: list[tuple[int, int]], hosts: list[int]) -> None:
        nets = [ipaddress.IPv4Network((addr, plen), strict=False) for addr, plen in specs]
        a = Allowlist([Rule(n, "trunk:t") for n in nets])
        for h in hosts:
            addr = ipaddress.IPv4Address(h)
            expected = any(addr in n for n in nets)
            self.assertEqual(a.admits(str(addr)), expected)
            self.assertEqual(a.admits(str(addr)), expected)  # cached
            self.assertEqual(a.admits(f"::ffff:{addr}"), expected)

    @given(st.lists(st.tuples(st.integers(0, 2**128 - 1), st.integers(16, 128)), max_size=8),
           st.lists(st.integers(0, 2**128 - 1), min_size=1, max_size=20))
    def test_same_verdict_as_ipaddress_v6(self, specs: list[tuple[int, int]], hosts: list[int]) -> None:
        nets = [ipaddress.IPv6Network((addr, plen), strict=False) for addr, plen in specs]
        a = Allowlist([Rule(n, "trunk:t") for n in nets])
        for h in hosts:
            addr = ipaddress.IPv6Address(h)
            if addr.ipv4_mapped is not None:
                continue
            self.assertEqual(a.admits(str(addr)), any(addr in n for n in nets))
        for n in nets:  # the edges of every network are inside
            self.assertTrue(a.admits(str(n.network_address)) or n.network_address.ipv4_mapped is not None)
            self.assertTrue(a.admits(str(n.broadcast_address)) or n.broadcast_address.ipv4_mapped is not None)


    @given(st.text(max_size=60))
    def test_any_text_gets_a_verdict_never_an_exception(self, host: str) -> None:
        a = allowlist("10.0.0.0/8", "2001:db8::/32", "127.0.0.1/32")
        verdict = a.admits(host)
        self.assertIsInstance(verdict, bool)
        a.remember(host)
        self.assertIsInstance(a.rules_for(host), list)


class FromConfigTests(SynchronousTestCase):
    def trunk(self, name: str, allow: tuple = (), **kw: object) -> SimpleNamespace:
        return SimpleNamespace(name=name, allow=allow, **kw)

    def test_trunks_agent_and_peers(self) -> None:
        rules, why = rules_from_config(
            [self.trunk("a", (net("192.0.2.0/24"),), agent_uri="sip:{user}@10.9.9.9:5070",
                        peer_uri="sip:[2001:db8::5]:5060", outbound_proxy="sip:proxy.example.com")],
            [net("10.20.0.0/16")])
        self.assertEqual(why, "")
        owners = [(str(r.network), r.owner, r.origin) for r in rules]
        self.assertEqual(owners, [("192.0.2.0/24", "trunk:a", ""), ("10.9.9.9/32", "peer:a", "agent_uri"),
                                  ("2001:db8::5/128", "peer:a", "peer_uri"), ("10.20.0.0/16", "agent", "")])
        a = Allowlist(rules)
        self.assertTrue(a.admits("10.9.9.9"))
        self.assertTrue(a.admits("2001:db8::5"))
        self.assertFalse(a.admits("10.9.9.10"))

    def test_vendor_entries_resolved_with_their_origin(self) -> None:
        rules, _ = rules_from_config([self.trunk("teams", (VendorRange("teams"), net("203.0.113.0/24")))],
                                     vendor_ranges={"teams": ["52.112.0.0/14", "not a net"]})
        self.assertEqual([(str(r.network), r.origin) for r in rules],
                         [("52.112.0.0/14", "vendor:teams"), ("203.0.113.0/24", "")])
        unresolved, _ = rules_from_config([self.trunk("teams", (VendorRange("teams"),))])
        self.assertEqual(unresolved, [])

    def test_digest_only_trunk_admits_everyone(self) -> None:
        rules, why = rules_from_config([self.trunk("d", (), auth=object())])
        self.assertIn("trunk:d", why)
        a = Allowlist(rules, admit_all=bool(why), admit_all_why=why)
        self.assertTrue(a.admits("198.51.100.77"))

    def test_registrar_literal(self) -> None:
        reg = SimpleNamespace(registrar="sip:198.51.100.9;transport=tcp", aor="sip:x@example.com")
        rules, _ = rules_from_config([self.trunk("r", (net("192.0.2.0/24"),), register=reg)])
        self.assertIn(("198.51.100.9/32", "register.registrar"), [(str(r.network), r.origin) for r in rules])

    def test_real_config(self) -> None:
        from sbc.config import load_config_text

        config = load_config_text(
            '[[trunk]]\nname = "t"\nallow = ["192.0.2.0/24", "::1/128"]\nagent_uri = "sip:{user}@127.0.0.1:5090"\n'
            '[agent]\nallow = ["10.0.0.0/8"]\n')
        from sbc.transport.admission import allowlist_for

        a = allowlist_for(config)
        self.assertTrue(a.admits("192.0.2.200"))
        self.assertTrue(a.admits("::1"))
        self.assertTrue(a.admits("127.0.0.1"))  # the agent host: answers must get in
        self.assertTrue(a.admits("10.1.1.1"))
        self.assertFalse(a.admits("127.0.0.2"))
