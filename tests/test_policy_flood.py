# -*- test-case-name: tests.test_policy_flood -*-
"""Flood control per source (sbc.policy.flood): pure, fake clock."""

from __future__ import annotations

from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.policy.flood import FloodGuard, FloodSettings


class TokenBucketTests(SynchronousTestCase):
    def test_burst_then_rate(self) -> None:
        g = FloodGuard(FloodSettings(rate=10.0, burst=5))
        self.assertEqual([g.take("a", 0.0) for _ in range(7)], [True] * 5 + [False] * 2)
        self.assertFalse(g.take("a", 0.05))  # half a token
        self.assertTrue(g.take("a", 0.1))  # one token refilled (0.5 + 0.5)
        self.assertFalse(g.take("a", 0.1))
        self.assertTrue(g.take("b", 0.1))  # another source has its own bucket

    def test_refill_is_capped_at_burst(self) -> None:
        g = FloodGuard(FloodSettings(rate=100.0, burst=3))
        g.take("a", 0.0)
        self.assertEqual([g.take("a", 1000.0) for _ in range(4)], [True, True, True, False])

    def test_rate_zero_is_off(self) -> None:
        g = FloodGuard(FloodSettings(rate=0.0, burst=1))
        self.assertTrue(all(g.take("a", 0.0) for _ in range(10_000)))
        self.assertEqual(g.sizes()["buckets"], 0)

    @given(st.lists(st.floats(0.0, 0.5), min_size=1, max_size=200), st.floats(1.0, 200.0), st.integers(1, 50))
    def test_never_more_than_burst_plus_rate_times_elapsed(self, gaps: list[float], rate: float, burst: int) -> None:
        g = FloodGuard(FloodSettings(rate=rate, burst=burst))
        now = 0.0
        admitted = 0
        for gap in gaps:
            now += gap
            admitted += g.take("a", now)
        self.assertLessEqual(admitted, burst + rate * now + 1e-6)


class BanTests(SynchronousTestCase):
    def settings(self, **kw: float) -> FloodSettings:
        base = dict(rate=10.0, burst=10, threshold=3, window=10.0, ban_duration=60.0, max_sources=100)
        base.update(kw)
        return FloodSettings(**base)  # type: ignore[arg-type]

    def test_threshold_strikes_within_the_window_ban(self) -> None:
        g = FloodGuard(self.settings())
        self.assertFalse(g.strike("a", 0.0))
        self.assertFalse(g.strike("a", 1.0))
        self.assertFalse(g.banned("a", 1.0))
        self.assertTrue(g.strike("a", 2.0))
        self.assertTrue(g.banned("a", 2.0))
        self.assertTrue(g.banned("a", 61.9))
        self.assertFalse(g.banned("b", 3.0))
        self.assertEqual(g.banned_until("a"), 62.0)

    def test_ban_expires(self) -> None:
        g = FloodGuard(self.settings())
        g.ban("a", 0.0)
        self.assertTrue(g.banned("a", 59.99))
        self.assertFalse(g.banned("a", 60.0))
        self.assertEqual(g.ban_count, 0)  # forgotten when found expired

    def test_strikes_outside_the_window_do_not_add_up(self) -> None:
        g = FloodGuard(self.settings())
        for t in (0.0, 5.0, 10.0, 15.0, 20.0, 25.0):  # never 3 within 10 s of the window start
            self.assertFalse(g.strike("a", t))
        self.assertFalse(g.banned("a", 26.0))

    def test_threshold_zero_never_bans(self) -> None:
        g = FloodGuard(self.settings(threshold=0))
        for i in range(100):
            self.assertFalse(g.strike("a", float(i) / 100))
        self.assertFalse(g.banned("a", 1.0))

    def test_reconfigure_keeps_bans_unless_bans_are_off(self) -> None:
        g = FloodGuard(self.settings())
        g.ban("a", 0.0)
        g.configure(self.settings(rate=1.0))
        self.assertTrue(g.banned("a", 1.0))
        g.configure(self.settings(threshold=0))
        self.assertFalse(g.banned("a", 1.0))


class BoundedTests(SynchronousTestCase):
    def test_spoofed_sources_cost_bounded_memory(self) -> None:
        g = FloodGuard(FloodSettings(rate=1.0, burst=1, threshold=2, window=10.0, max_sources=64))
        for i in range(10_000):
            host = f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}"
            g.take(host, i / 1000)
            g.strike(host, i / 1000)
            g.strike(host, i / 1000)  # banned
        sizes = g.sizes()
        self.assertLessEqual(max(sizes.values()), 64)
        self.assertEqual(g.bans_made, 10_000)

    def test_oldest_bucket_is_evicted_first(self) -> None:
        g = FloodGuard(FloodSettings(rate=1.0, burst=2, max_sources=4))
        g.take("old", 0.0)
        g.take("old", 0.0)
        self.assertFalse(g.take("old", 0.0))
        for i in range(3):
            g.take(f"x{i}", 0.0)
        self.assertFalse(g.take("old", 0.0))  # still known: no fresh burst
        for i in range(3, 10):
            g.take(f"x{i}", 0.0)
        self.assertTrue(g.take("old", 0.0))  # evicted: starts again with a full bucket
