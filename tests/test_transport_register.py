# -*- test-case-name: tests.test_transport_register -*-
"""Tests for sbc.transport.register (RegistrationTU) and sbc.transport.pinger (PingerTU,
ping_targets): transactions, ownership of responses, status, reconfiguration."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from sbc.b2bua.core import LiteralResolver
from sbc.config import load_config_text
from sbc.sip.endpoint import Peer
from sbc.sip.message import Request, make_response
from sbc.sip.transaction import Timers
from sbc.transport.pinger import PingerTU, ping_targets
from sbc.transport.register import RegistrationTU, sent_by_host

TRUNKS = """
[[trunk]]
name = "a"
allow = ["192.0.2.0/24"]
agent_uri = "sip:{user}@127.0.0.1:5090"
peer_uri = "sip:192.0.2.10:5060;transport=tcp"
options_interval = 20
[trunk.register]
registrar = "sip:192.0.2.20"
aor = "sip:+15550100@example.com"
username = "+15550100"
password = "pw-secret"
expires = 600

[[trunk]]
name = "b"
allow = ["198.51.100.0/24"]
agent_uri = "sip:{user}@127.0.0.1:5090"

[[trunk]]
name = "c"
allow = ["203.0.113.0/24"]
agent_uri = "sip:{user}@agent.example.com"
outbound_proxy = "sip:10.0.0.5:5080;lr"
peer_uri = "sip:pbx.example.com"

[[trunk]]
name = "d"
allow = ["203.0.113.128/25"]
agent_uri = "sip:{user}@agent.example.com"
"""

CHALLENGE = b'Digest realm="example.com", nonce="n0nce", qop="auth", algorithm=SHA-256'


def trunks(text: str = TRUNKS) -> Any:
    return load_config_text(text).trunks


def make_reg(**kwargs: Any) -> RegistrationTU:
    return RegistrationTU(
        timers=Timers(), fqdn="sbc.example.com", via_host="192.0.2.1", ports={"udp": 5060, "tcp": 5062},
        resolver=LiteralResolver(), user_agent="sbc/test", prefix="regtest", jitter=lambda: 0.0, **kwargs)


def out(tu: Any) -> list[tuple[Request, Peer]]:
    return [(m, p) for m, p in tu.messages_to_send() if isinstance(m, Request)]


def reply(tu: Any, request: Request, status: int, now: float, headers: Any = ()) -> None:
    tu.handle_response(make_response(request, status, to_tag="x", headers=headers), Peer("udp", "192.0.2.20", 5060, 1), now)


class RegistrationTUTests(SynchronousTestCase):
    def test_register_challenge_success(self) -> None:
        tu = make_reg()
        tu.set_trunks(trunks(), 0.0)
        self.assertEqual(out(tu), [])  # nothing before start
        tu.start(0.0)
        [(request, peer)] = out(tu)
        self.assertEqual(peer, Peer("udp", "192.0.2.20", 5060, 0))
        self.assertEqual(request.uri, b"sip:192.0.2.20")
        self.assertEqual(request.get("Contact"), b"<sip:sbc@sbc.example.com:5060>;expires=600")
        self.assertEqual(request.top_via.host, "192.0.2.1")
        self.assertTrue(tu.owns(make_response(request, 401, to_tag="x")))
        reply(tu, request, 401, 0.1, [("WWW-Authenticate", CHALLENGE)])
        [(answered, _)] = out(tu)
        self.assertIn(b'username="+15550100"', answered.get("Authorization") or b"")
        self.assertEqual(tu.status()["a"]["state"], "unregistered")
        reply(tu, answered, 200, 0.2, [("Expires", b"600")])
        status = tu.status()["a"]
        self.assertEqual((status["state"], status["last_status"], status["expires_at"]), ("registered", 200, 600.2))
        self.assertNotIn("pw-secret", repr(status))
        self.assertEqual(tu.next_deadline(), 0.1 + 5.0)  # Timer K of the 401 transaction first
        tu.handle_timer(5.2)
        self.assertEqual(out(tu), [])
        self.assertEqual(tu.next_deadline(), 0.2 + 540.0)
        # The refresh goes out when due.
        tu.handle_timer(540.2)
        [(refresh, _)] = out(tu)
        self.assertEqual(refresh.call_id, request.call_id)
        self.assertGreater(refresh.cseq.seq, answered.cseq.seq)

    def test_owns_only_live_own_transactions(self) -> None:
        tu = make_reg()
        tu.set_trunks(trunks(), 0.0)
        tu.start(0.0)
        [(request, _)] = out(tu)
        response = make_response(request, 200, to_tag="x")
        self.assertTrue(tu.owns(response))
        other = make_response(request, 200, to_tag="x", top_via=b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKb2bua1")
        self.assertFalse(tu.owns(other))
        reply(tu, request, 200, 0.1)
        tu.handle_timer(40.0)  # Timer K ends the transaction
        self.assertFalse(tu.owns(response))

    def test_timer_f_is_a_failure_with_backoff(self) -> None:
        tu = make_reg()
        tu.set_trunks(trunks(), 0.0)
        tu.start(0.0)
        out(tu)
        now = 0.0
        while now < 33.0:
            now += 0.5
            tu.handle_timer(now)
        status = tu.status()["a"]
        self.assertEqual((status["state"], status["failures"], status["last_status"]), ("failed", 1, 408))
        self.assertEqual(status["next_attempt_at"], 32.0 + 15.0)  # retry_base 30 s * (0.5 + 0.5 * 0)

    def test_unlocatable_registrar_fails_without_sending(self) -> None:
        text = TRUNKS.replace('registrar = "sip:192.0.2.20"', 'registrar = "sip:registrar.example.com"')
        tu = make_reg()
        tu.set_trunks(trunks(text), 0.0)
        tu.start(0.0)
        self.assertEqual(out(tu), [])
        self.assertEqual(tu.status()["a"]["state"], "failed")

    def test_stop_deregisters_and_reports_stopped(self) -> None:
        tu = make_reg()
        tu.set_trunks(trunks(), 0.0)
        tu.start(0.0)
        [(request, _)] = out(tu)
        reply(tu, request, 200, 0.1)
        self.assertTrue(tu.stopped() is False)
        tu.stop(1.0)
        [(unregister, _)] = out(tu)
        self.assertEqual(unregister.get("Expires"), b"0")
        self.assertFalse(tu.stopped())
        reply(tu, unregister, 200, 1.1)
        self.assertTrue(tu.stopped())
        self.assertEqual(tu.status(), {})

    def test_reconfigure(self) -> None:
        tu = make_reg()
        tu.set_trunks(trunks(), 0.0)
        tu.start(0.0)
        [(request, _)] = out(tu)
        reply(tu, request, 200, 0.1)
        # Unchanged: nothing happens.
        tu.set_trunks(trunks(), 1.0)
        self.assertEqual(out(tu), [])
        # Changed registration: the old binding is removed, the new one registered.
        changed = TRUNKS.replace("expires = 600", "expires = 1200")
        tu.set_trunks(trunks(changed), 2.0)
        sent = [r for r, _ in out(tu)]
        self.assertEqual(sorted(r.get("Expires") for r in sent), [b"0", b"1200"])
        self.assertEqual(tu.status()["a"]["state"], "unregistered")
        # Removed trunk: de-registered, gone from the status.
        unregister = next(r for r in sent if r.get("Expires") == b"0")
        reply(tu, unregister, 200, 2.1)
        reply(tu, next(r for r in sent if r.get("Expires") == b"1200"), 200, 2.2)
        self.assertEqual(tu.status()["a"]["state"], "registered")
        self.assertTrue(tu.stopped() is False)
        tu.set_trunks([], 3.0)
        [(gone, _)] = out(tu)
        self.assertEqual(gone.get("Expires"), b"0")
        self.assertEqual(tu.status(), {})

    def test_tcp_registrar_and_sent_by(self) -> None:
        text = TRUNKS.replace('registrar = "sip:192.0.2.20"', 'registrar = "sip:192.0.2.20;transport=tcp"')
        tu = make_reg()
        tu.set_trunks(trunks(text), 0.0)
        tu.start(0.0)
        [(request, peer)] = out(tu)
        self.assertEqual((peer.transport, request.top_via.transport), ("tcp", "TCP"))
        self.assertEqual(request.get("Contact"), b"<sip:sbc@sbc.example.com:5062;transport=tcp>;expires=600")
        self.assertEqual(sent_by_host("0.0.0.0", "sbc.example.com"), "sbc.example.com")
        self.assertEqual(sent_by_host("::", "sbc.example.com"), "sbc.example.com")
        self.assertEqual(sent_by_host("192.0.2.1", "sbc.example.com"), "192.0.2.1")


AGENT = load_config_text("[agent]\noptions_interval = 30\ndown_after = 2").agent


class PingTargetsTests(SynchronousTestCase):
    def test_plan(self) -> None:
        plan = ping_targets(trunks(), AGENT, LiteralResolver())
        names = [t.name for t in plan.targets]
        self.assertEqual(names, ["agent:127.0.0.1:5090", "peer:a", "agent:10.0.0.5:5080"])
        self.assertEqual(plan.agent_of, {"a": "agent:127.0.0.1:5090", "b": "agent:127.0.0.1:5090",
                                         "c": "agent:10.0.0.5:5080"})
        by_name = {t.name: t for t in plan.targets}
        peer = by_name["peer:a"]
        self.assertEqual((peer.uri, peer.transport, peer.host, peer.port, peer.interval),
                         ("sip:192.0.2.10:5060;transport=tcp", "tcp", "192.0.2.10", 5060, 20.0))
        self.assertEqual(by_name["agent:10.0.0.5:5080"].uri, "sip:10.0.0.5:5080")
        self.assertEqual(by_name["agent:127.0.0.1:5090"].interval, 30.0)
        # FQDN targets without a resolver that knows them are reported, not pinged.
        self.assertEqual(len(plan.unresolved), 2)
        self.assertTrue(any("pbx.example.com" in line for line in plan.unresolved))

    def test_intervals_of_zero_turn_pings_off(self) -> None:
        off = load_config_text("[agent]\noptions_interval = 0").agent
        text = TRUNKS.replace("options_interval = 20", "options_interval = 0")
        plan = ping_targets(trunks(text), off, LiteralResolver())
        self.assertEqual(plan.targets, ())
        self.assertEqual(plan.agent_of, {})


class PingerTUTests(SynchronousTestCase):
    def make(self) -> tuple[PingerTU, list[tuple[str, bool]]]:
        changes: list[tuple[str, bool]] = []
        tu = PingerTU(timers=Timers(), fqdn="sbc.example.com", via_host="192.0.2.1", via_port=5060,
                      down_after=2, on_change=lambda n, u: changes.append((n, u)), prefix="pingtest")
        tu.set_plan(ping_targets(trunks(), AGENT, LiteralResolver()), 0.0)
        tu.start(0.0)
        return tu, changes

    def run_until(self, tu: PingerTU, end: float, now: float = 0.0) -> list[tuple[Request, Peer]]:
        sent = []
        while now < end:
            now = round(now + 0.5, 3)
            tu.handle_timer(now)
            sent += out(tu)
        return sent

    def test_pings_after_interval_and_answers(self) -> None:
        tu, changes = self.make()
        self.assertEqual(tu.next_deadline(), 20.0)  # peer:a every 20 s, agents every 30 s
        sent = self.run_until(tu, 30.0)
        firsts = {(p.host, p.port): r for r, p in sent}
        self.assertEqual(set(firsts), {("192.0.2.10", 5060), ("127.0.0.1", 5090), ("10.0.0.5", 5080)})
        agent = firsts[("127.0.0.1", 5090)]
        self.assertTrue(agent.top_via.branch.startswith("z9hG4bKpingtest-"))
        response = make_response(agent, 200, to_tag="t")
        self.assertTrue(tu.owns(response))
        tu.handle_response(response, Peer("udp", "127.0.0.1", 5090, 1), 30.1)
        self.assertEqual(changes, [("agent:127.0.0.1:5090", True)])
        self.assertTrue(tu.agent_up("a") and tu.agent_up("b"))
        self.assertEqual(tu.peer_details()["agent:127.0.0.1:5090"]["state"], "up")

    def test_down_after_two_timer_f_and_503(self) -> None:
        tu, changes = self.make()
        self.run_until(tu, 30.0)  # first round sent at 20/30 s
        self.run_until(tu, 100.0, 30.0)  # two Timer F expiries for each
        self.assertFalse(tu.agent_up("a"))
        self.assertFalse(tu.agent_up("c"))
        self.assertTrue(tu.agent_up("d"))  # not pinged (FQDN): never refused
        self.assertIn(("agent:127.0.0.1:5090", False), changes)
        self.assertEqual(tu.peer_status()["peer:a"], False)

    def test_callback_errors_are_contained(self) -> None:
        tu = PingerTU(timers=Timers(), fqdn="f", via_host="192.0.2.1", via_port=5060, down_after=1,
                      on_change=lambda n, u: 1 / 0)
        tu.set_plan(ping_targets(trunks(), AGENT, LiteralResolver()), 0.0)
        tu.start(0.0)
        sent = self.run_until(tu, 30.0)
        agent = next(r for r, p in sent if p.port == 5090)
        tu.handle_response(make_response(agent, 503, to_tag="t"), Peer("udp", "127.0.0.1", 5090, 1), 30.1)
        self.assertFalse(tu.agent_up("a"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_stopped_pinger_sends_nothing(self) -> None:
        tu, _ = self.make()
        tu.stop()
        self.assertIsNone(tu.next_deadline())
        self.assertEqual(self.run_until(tu, 60.0), [])
