# -*- test-case-name: tests.test_sip_pinger -*-
"""Tests for sbc.sip.pinger: OPTIONS keep-alives, up/down after outcomes, request shape."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.message import Request, make_response, parse_message
from sbc.sip.pinger import PingTarget, Pinger, Transition

AGENT = PingTarget("agent", "sip:127.0.0.1:5090", "udp", "127.0.0.1", 5090, 30.0)
PBX = PingTarget("pbx", "sip:192.0.2.10:5060;transport=tcp", "tcp", "192.0.2.10", 5060, 10.0)


def make_pinger(down_after: int = 2, timeout: float = 32.0) -> Pinger:
    counter = itertools.count(1)
    return Pinger(
        fqdn="sbc.example.com",
        via_host="192.0.2.1",
        via_port=5060,
        down_after=down_after,
        timeout=timeout,
        branch_source=lambda: f"png{next(counter)}",
        token_source=lambda: f"tok{next(counter)}",
        user_agent="sbc/test",
    )


def answer(request: Request, status: int) -> object:
    return make_response(request, status, to_tag="t1")


class RequestShapeTests(SynchronousTestCase):
    def test_options_request(self) -> None:
        p = make_pinger()
        p.set_targets([AGENT, PBX], 100.0)
        sent = dict(p.handle_timer(100.0))
        self.assertEqual(sorted(sent), ["agent", "pbx"])
        udp, tcp = sent["agent"], sent["pbx"]
        self.assertEqual(udp.method, "OPTIONS")
        self.assertEqual(udp.uri, b"sip:127.0.0.1:5090")
        self.assertEqual(udp.get("Contact"), b"<sip:sbc.example.com:5060>")
        self.assertEqual(tcp.get("Contact"), b"<sip:sbc.example.com:5060;transport=tcp>")
        self.assertEqual(udp.top_via.transport, "UDP")
        self.assertEqual(tcp.top_via.transport, "TCP")
        self.assertTrue(udp.top_via.branch.startswith("z9hG4bKpng"))
        self.assertNotEqual(udp.top_via.branch, tcp.top_via.branch)
        self.assertEqual(udp.cseq.method, "OPTIONS")
        self.assertEqual(udp.get("User-Agent"), b"sbc/test")
        self.assertEqual(udp.max_forwards, 70)
        self.assertIsNotNone(udp.from_.tag)
        self.assertIsNone(udp.to.tag)
        # It survives a round trip through the parser.
        again = parse_message(udp.to_bytes())
        self.assertEqual(again.call_id, udp.call_id)

    def test_ipv6_via_host_bracketed(self) -> None:
        p = Pinger(fqdn="::1", via_host="::1", via_port=5060, branch_source=lambda: "b")
        p.set_targets([PingTarget("a", "sip:[::1]:5090", "udp", "::1", 5090, 5.0)], 0.0)
        [(_, request)] = p.handle_timer(0.0)
        self.assertEqual(request.top_via.host, "[::1]")
        self.assertEqual(request.get("Contact"), b"<sip:[::1]:5060>")

    def test_bad_target(self) -> None:
        self.assertRaises(ValueError, PingTarget, "a", "sip:h", "udp", "h", 5060, 0.0)
        self.assertRaises(Exception, PingTarget, "a", "http://x", "udp", "h", 5060, 1.0)
        self.assertRaises(ValueError, make_pinger, 0)
        p = make_pinger()
        self.assertRaises(ValueError, p.set_targets, [AGENT, AGENT], 0.0)


class HealthTests(SynchronousTestCase):
    def test_unknown_until_first_outcome_and_optimistic(self) -> None:
        p = make_pinger()
        p.set_targets([AGENT], 0.0)
        self.assertTrue(p.is_up("agent"))
        self.assertTrue(p.is_up("no-such-target"))
        self.assertEqual(p.status()["agent"].state, "unknown")

    def test_first_success_marks_up(self) -> None:
        p = make_pinger()
        p.set_targets([AGENT], 0.0)
        [(_, req)] = p.handle_timer(0.0)
        p.response("agent", answer(req, 200), 0.1)
        self.assertEqual(p.transitions(), [Transition("agent", True, "answered 200", 0.1)])
        self.assertEqual(p.status()["agent"].state, "up")
        self.assertEqual(p.transitions(), [])

    def test_any_final_but_failure_statuses_is_success(self) -> None:
        for status in (200, 404, 405, 481, 501, 603):
            p = make_pinger(down_after=1)
            p.set_targets([AGENT], 0.0)
            [(_, req)] = p.handle_timer(0.0)
            p.response("agent", answer(req, status), 1.0)
            self.assertTrue(p.is_up("agent"), status)
            self.assertEqual(p.status()["agent"].state, "up")

    def test_provisional_ignored(self) -> None:
        p = make_pinger()
        p.set_targets([AGENT], 0.0)
        [(_, req)] = p.handle_timer(0.0)
        p.response("agent", answer(req, 100), 0.1)
        self.assertIs(p.pending("agent"), req)
        self.assertEqual(p.status()["agent"].state, "unknown")

    def test_down_after_consecutive_failures_then_up_on_first_success(self) -> None:
        p = make_pinger(down_after=2)
        p.set_targets([AGENT], 0.0)
        [(_, req)] = p.handle_timer(0.0)
        p.response("agent", answer(req, 200), 0.1)
        p.transitions()
        [(_, req)] = p.handle_timer(30.0)
        p.timeout("agent", 62.0)  # Timer F
        self.assertTrue(p.is_up("agent"))
        self.assertEqual(p.transitions(), [])
        [(_, req)] = p.handle_timer(62.0)  # overdue: sent at once
        p.response("agent", answer(req, 503), 62.5)
        self.assertFalse(p.is_up("agent"))
        [down] = p.transitions()
        self.assertEqual((down.name, down.up, down.at), ("agent", False, 62.5))
        self.assertIn("503", down.reason)
        # Further failures do not repeat the transition.
        [(_, req)] = p.handle_timer(92.0)
        p.timeout("agent", 124.0)
        self.assertEqual(p.transitions(), [])
        self.assertEqual(p.status()["agent"].failures, 3)
        [(_, req)] = p.handle_timer(124.0)
        p.response("agent", answer(req, 200), 124.2)
        self.assertTrue(p.is_up("agent"))
        self.assertEqual([t.up for t in p.transitions()], [True])
        self.assertEqual(p.status()["agent"].failures, 0)

    def test_a_success_resets_the_failure_count(self) -> None:
        p = make_pinger(down_after=2)
        p.set_targets([AGENT], 0.0)
        now = 0.0
        for status in (503, 200, 503, 200, 503):
            [(_, req)] = p.handle_timer(now)
            p.response("agent", answer(req, status), now + 0.1)
            now += 30.0
        self.assertTrue(p.is_up("agent"))
        self.assertEqual([t.up for t in p.transitions()], [True])

    def test_down_from_unknown(self) -> None:
        p = make_pinger(down_after=2)
        p.set_targets([AGENT], 0.0)
        for now in (0.0, 32.0):
            [(_, req)] = p.handle_timer(now)
            p.timeout("agent", now + 32.0)
        self.assertFalse(p.is_up("agent"))
        self.assertEqual([t.up for t in p.transitions()], [False])

    def test_408_and_504_are_failures(self) -> None:
        for status in (408, 504):
            p = make_pinger(down_after=1)
            p.set_targets([AGENT], 0.0)
            [(_, req)] = p.handle_timer(0.0)
            p.response("agent", answer(req, status), 1.0)
            self.assertFalse(p.is_up("agent"))

    def test_own_timeout_is_a_failure(self) -> None:
        p = make_pinger(down_after=1, timeout=32.0)
        p.set_targets([AGENT], 0.0)
        p.handle_timer(0.0)
        self.assertEqual(p.next_deadline(), 32.0)
        self.assertEqual(p.handle_timer(31.9), [])
        sent = p.handle_timer(32.0)
        self.assertFalse(p.is_up("agent"))
        self.assertEqual(len(sent), 1)  # the interval (30 s) has passed: the next ping goes now

    def test_mismatched_or_late_responses_ignored(self) -> None:
        p = make_pinger(down_after=1)
        p.set_targets([AGENT], 0.0)
        [(_, first)] = p.handle_timer(0.0)
        p.timeout("agent", 32.0)
        self.assertFalse(p.is_up("agent"))
        p.transitions()
        [(_, second)] = p.handle_timer(32.0)
        p.response("agent", answer(first, 200), 33.0)  # the old one, late
        self.assertFalse(p.is_up("agent"))
        p.response("other", answer(second, 200), 33.0)
        p.timeout("other", 33.0)
        self.assertFalse(p.is_up("agent"))
        p.response("agent", answer(second, 200), 33.5)
        self.assertTrue(p.is_up("agent"))


    def test_timeout_of_an_older_ping_ignored(self) -> None:
        p = make_pinger(down_after=1, timeout=10.0)
        p.set_targets([AGENT], 0.0)
        [(_, first)] = p.handle_timer(0.0)
        [(_, second)] = p.handle_timer(30.0)  # own timeout of the first, then the next ping
        p.transitions()
        p.response("agent", answer(second, 200), 30.5)
        p.timeout("agent", 31.0, first)
        self.assertTrue(p.is_up("agent"))
        [(_, third)] = p.handle_timer(60.5)
        p.timeout("agent", 61.0, second)
        self.assertIs(p.pending("agent"), third)
        p.timeout("agent", 92.0, third)
        self.assertFalse(p.is_up("agent"))


class ScheduleTests(SynchronousTestCase):
    def test_first_after_interval(self) -> None:
        p = Pinger(fqdn="f", via_host="192.0.2.1", via_port=5060, branch_source=lambda: "b",
                   first_after_interval=True)
        p.set_targets([AGENT], 100.0)
        self.assertEqual(p.next_deadline(), 130.0)
        self.assertEqual(p.handle_timer(129.9), [])
        self.assertEqual(len(p.handle_timer(130.0)), 1)

    def test_one_ping_in_flight_and_interval(self) -> None:
        p = make_pinger()
        p.set_targets([AGENT], 0.0)
        self.assertEqual(p.next_deadline(), 0.0)
        [(_, req)] = p.handle_timer(0.0)
        self.assertEqual(p.handle_timer(31.0), [])  # still waiting for the answer
        p.response("agent", answer(req, 200), 0.2)
        self.assertEqual(p.next_deadline(), 30.0)
        self.assertEqual(p.handle_timer(29.9), [])
        self.assertEqual(len(p.handle_timer(30.0)), 1)

    def test_set_targets_keeps_unchanged_state(self) -> None:
        p = make_pinger(down_after=1)
        p.set_targets([AGENT, PBX], 0.0)
        sent = dict(p.handle_timer(0.0))
        p.timeout("agent", 1.0)
        p.response("pbx", answer(sent["pbx"], 200), 1.0)
        p.transitions()
        moved = PingTarget("pbx", "sip:192.0.2.11:5060", "udp", "192.0.2.11", 5060, 10.0)
        slower = PingTarget("agent", AGENT.uri, "udp", "127.0.0.1", 5090, 60.0)
        p.set_targets([slower, moved], 2.0)
        self.assertFalse(p.is_up("agent"))  # kept
        self.assertEqual(p.status()["pbx"].state, "unknown")  # new address: starts over
        self.assertEqual(p.target("agent"), slower)
        self.assertEqual([name for name, _ in p.handle_timer(2.0)], ["pbx"])
        p.set_targets([], 3.0)
        self.assertEqual(p.names(), [])
        self.assertIsNone(p.next_deadline())
        self.assertEqual(p.handle_timer(100.0), [])

    @given(st.lists(st.tuples(st.sampled_from(["ok", "fail", "503", "tick"]), st.floats(0.0, 40.0)), max_size=40),
           st.integers(1, 4))
    def test_random_outcomes_follow_the_rule(self, steps: list[tuple[str, float]], down_after: int) -> None:
        """Up iff the last outcome was a success, down iff the last ``down_after`` were
        failures, unknown before either; transitions alternate and match the state."""
        p = make_pinger(down_after=down_after)
        p.set_targets([AGENT], 0.0)
        now = 0.0
        outcomes: list[bool] = []
        for what, dt in steps:
            now += dt
            for name, req in p.handle_timer(now):
                if what == "ok":
                    p.response(name, answer(req, 200), now)
                    outcomes.append(True)
                elif what == "503":
                    p.response(name, answer(req, 503), now)
                    outcomes.append(False)
                elif what == "fail":
                    p.timeout(name, now)
                    outcomes.append(False)
            pending = p.pending("agent")
            if pending is not None and p.next_deadline() is not None:
                self.assertGreater(p.next_deadline(), now - 1e-9)
        transitions = p.transitions()
        for a, b in zip(transitions, transitions[1:]):
            self.assertNotEqual(a.up, b.up)
        state = p.status()["agent"].state
        if transitions:
            self.assertEqual(state, "up" if transitions[-1].up else "down")
        # Without "tick" steps every ping got an explicit outcome: check the state against
        # the history itself.
        if all(what != "tick" for what, _ in steps) and outcomes:
            tail = outcomes[-down_after:]
            if outcomes[-1]:
                self.assertEqual(state, "up")
            elif len(tail) == down_after and not any(tail):
                self.assertEqual(state, "down")
            elif True in outcomes:
                self.assertEqual(state, "up")
            else:
                self.assertEqual(state, "unknown")
