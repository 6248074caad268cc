# -*- test-case-name: tests.test_service -*-
"""Tests for sbc.service: response dispatch, registrations and pings wired to the driver,
graceful shutdown, SIGHUP reload.  No sockets: a memory reactor with a fake UDP port."""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import EventLoggingObserver, MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from sbc.config import load_config, load_config_text
from sbc.service import ResponseDispatcher, build_service
from sbc.sip.message import Request, Response, make_response, parse_message

BASE = """
[sbc]
fqdn = "sbc.example.com"
[[listen]]
transport = "udp"
address = "127.0.0.1"
port = 5060
[admin]
enabled = false
[calls]
drain_timeout = 10
[agent]
options_interval = 30
down_after = 2
"""

TRUNK_A = """
[[trunk]]
name = "a"
allow = ["192.0.2.0/24"]
agent_uri = "sip:{user}@127.0.0.1:5090"
peer_uri = "sip:192.0.2.10:5060"
options_interval = 20
dial = ['\\+1[0-9]+']
[trunk.register]
registrar = "sip:127.0.0.1:5070"
aor = "sip:+15550100@example.com"
username = "+15550100"
password = "pw-never-shown"
"""

TRUNK_B = """
[[trunk]]
name = "b"
allow = ["198.51.100.0/24"]
agent_uri = "sip:{user}@127.0.0.1:5091"
"""


class _FakeUdpPort:
    def __init__(self, protocol: Any, interface: str, port: int) -> None:
        self.protocol = protocol
        self.host = IPv4Address("UDP", interface, port)
        self.written: list[tuple[bytes, tuple[str, int]]] = []
        self.listening = True

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.written.append((data, addr))

    def getHost(self) -> IPv4Address:
        return self.host

    def stopListening(self) -> None:
        self.listening = False
        self.protocol.doStop()


class FakeReactor(MemoryReactorClock):
    """MemoryReactorClock plus a fake listenUDP and callFromThread (recorded, then run)."""

    def __init__(self) -> None:
        super().__init__()
        self.udp_ports: list[_FakeUdpPort] = []
        self.from_thread: list[Any] = []

    def listenUDP(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> _FakeUdpPort:
        fake = _FakeUdpPort(protocol, interface or "0.0.0.0", port)
        self.udp_ports.append(fake)
        protocol.makeConnection(fake)
        return fake

    def callFromThread(self, f: Any, *args: Any, **kwargs: Any) -> None:
        self.from_thread.append(f)
        f(*args, **kwargs)


def pump(reactor: FakeReactor, seconds: float, step: float = 0.1) -> None:
    for _ in range(int(round(seconds / step))):
        reactor.advance(step)


def sent(reactor: FakeReactor) -> list[tuple[Any, tuple[str, int]]]:
    return [(parse_message(data), addr) for data, addr in reactor.udp_ports[0].written]


def requests_to(reactor: FakeReactor, method: str, port: int) -> list[Request]:
    return [m for m, addr in sent(reactor) if isinstance(m, Request) and m.method == method and addr[1] == port]


def deliver(reactor: FakeReactor, response: Response, port: int, host: str = "127.0.0.1") -> None:
    reactor.udp_ports[0].protocol.datagramReceived(response.to_bytes(), (host, port))


def started(text: str, reactor: FakeReactor | None = None) -> tuple[Any, FakeReactor]:
    reactor = reactor or FakeReactor()
    top = build_service(load_config_text(text), reactor, install_signals=False)
    top.startService()
    return top, reactor


class WiringTests(SynchronousTestCase):
    def test_registers_at_start_and_pings_after_an_interval(self) -> None:
        top, reactor = started(BASE + TRUNK_A)
        self.addCleanup(top.stopService)
        self.assertEqual(requests_to(reactor, "OPTIONS", 5090), [])
        self.assertEqual(top.peer_status(), {"agent:127.0.0.1:5090": True, "peer:a": True})
        pump(reactor, 30.0, step=0.5)
        [register] = requests_to(reactor, "REGISTER", 5070)[:1]
        self.assertEqual(register.uri, b"sip:127.0.0.1:5070")
        self.assertTrue(register.top_via.branch.startswith("z9hG4bKreg"))
        self.assertEqual(register.get("Contact"), b"<sip:sbc@sbc.example.com:5060>;expires=3600")
        [agent] = requests_to(reactor, "OPTIONS", 5090)
        self.assertEqual(agent.uri, b"sip:127.0.0.1:5090")
        self.assertEqual(agent.get("Contact"), b"<sip:sbc.example.com:5060>")
        self.assertGreaterEqual(len([m for m, addr in sent(reactor) if addr == ("192.0.2.10", 5060)]), 1)
        self.assertEqual(set(top.peer_status()), {"agent:127.0.0.1:5090", "peer:a"})
        self.assertNotIn("pw-never-shown", repr(top.registration_status()))

    def test_responses_reach_their_tu(self) -> None:
        top, reactor = started(BASE + TRUNK_A)
        self.addCleanup(top.stopService)
        [register] = requests_to(reactor, "REGISTER", 5070)
        deliver(reactor, make_response(register, 200, to_tag="r1", headers=[("Expires", b"600")]), 5070)
        status = top.registration_status()["a"]
        self.assertEqual((status["state"], status["last_status"]), ("registered", 200))
        self.assertEqual(top.health()["registrations"], {"a": "registered"})
        self.assertEqual(top.health()["peers"], {"agent:127.0.0.1:5090": True, "peer:a": True})
        pump(reactor, 30.0, step=0.5)
        [options] = requests_to(reactor, "OPTIONS", 5090)[:1]
        deliver(reactor, make_response(options, 200, to_tag="o1"), 5090)
        self.assertEqual(top.pinger.peer_details()["agent:127.0.0.1:5090"]["state"], "up")
        obs = top.observability
        self.assertEqual(obs.peers.get("agent:127.0.0.1:5090"), True)
        self.assertIn("agent:127.0.0.1:5090", obs.agent_peers)
        # A response nobody owns goes to the B2BUA (a stray: counted there, not crashing).
        stray = make_response(options, 200, to_tag="o2")
        deliver(reactor, stray, 5090)
        self.assertTrue(top.running)

    def test_agent_down_after_failed_pings(self) -> None:
        top, reactor = started(BASE + TRUNK_A)
        self.addCleanup(top.stopService)
        changes: list[tuple[str, bool]] = []
        top.pinger.on_change(lambda name, up: changes.append((name, up)))
        self.assertTrue(top.agent_up("a"))
        pump(reactor, 100.0, step=0.5)  # first ping at 30 s, then two Timer F (32 s) expiries
        self.assertFalse(top.agent_up("a"))
        self.assertTrue(top.agent_up("no-such-trunk"))
        self.assertIn(("agent:127.0.0.1:5090", False), changes)
        self.assertFalse(top.peer_status()["agent:127.0.0.1:5090"])
        # New calls for the trunk are refused with 503 + Retry-After while it is down.
        raw = (
            "INVITE sip:alice@127.0.0.1:5060 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-down-1\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:pbx@192.0.2.9>;tag=f1\r\nTo: <sip:alice@127.0.0.1>\r\n"
            "Call-ID: down-1@pbx\r\nCSeq: 1 INVITE\r\nContact: <sip:pbx@192.0.2.9:5060>\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        reactor.udp_ports[0].protocol.datagramReceived(raw, ("192.0.2.9", 5060))
        [refusal] = [m for m, addr in sent(reactor) if isinstance(m, Response) and addr == ("192.0.2.9", 5060)]
        self.assertEqual(refusal.status, 503)
        self.assertEqual(refusal.get("Retry-After"), b"30")
        # One answered ping brings it back.
        pump(reactor, 30.0, step=0.5)
        options = requests_to(reactor, "OPTIONS", 5090)[-1]
        deliver(reactor, make_response(options, 200, to_tag="x"), 5090)
        self.assertTrue(top.agent_up("a"))

    def test_limits_from_calls_section(self) -> None:
        limits = "drain_timeout = 10\nmax_calls = 7\nmax_calls_per_trunk = 3\nno_answer_timeout = 0"
        top, _ = started(BASE.replace("drain_timeout = 10", limits) + TRUNK_B)
        self.addCleanup(top.stopService)
        b2bua = top.b2bua
        self.assertEqual((b2bua.max_calls, b2bua.max_calls_per_trunk, b2bua.no_answer_timeout), (7, 3, None))

    def test_agent_reliable_provisionals_switch(self) -> None:
        top, _ = started(BASE + TRUNK_B)
        self.addCleanup(top.stopService)
        self.assertTrue(top.b2bua.agent_100rel)
        self.assertIn("replaces", top.b2bua.option_tags)
        off, _ = started(BASE.replace("down_after = 2", "down_after = 2\nreliable_provisionals = false") + TRUNK_B)
        self.addCleanup(off.stopService)
        self.assertFalse(off.b2bua.agent_100rel)

    def test_b2bua_hooks_are_set_when_it_has_them(self) -> None:
        import sbc.b2bua.core as core

        class HookedB2bua(core.B2bua):
            agent_up = None
            agent_allow = ()

        self.patch(core, "B2bua", HookedB2bua)
        text = BASE.replace("down_after = 2", 'down_after = 2\nallow = ["10.20.0.0/16"]') + TRUNK_A
        top, reactor = started(text)
        self.addCleanup(top.stopService)
        self.assertEqual(top.b2bua.agent_up, top.agent_up)
        self.assertEqual([str(n) for n in top.b2bua.agent_allow], ["10.20.0.0/16"])

    def test_b2bua_exists_without_trunks(self) -> None:
        top, _ = started(BASE)
        self.addCleanup(top.stopService)
        self.assertIsNotNone(top.b2bua)
        self.assertEqual(top.peer_status(), {})
        self.assertEqual(top.registration_status(), {})


class DispatcherTests(SynchronousTestCase):
    def test_first_owner_wins_else_fallback(self) -> None:
        seen: list[str] = []

        class Tu:
            def __init__(self, name: str, mine: bool) -> None:
                self.name, self.mine = name, mine

            def owns(self, response: Any) -> bool:
                return self.mine

            def handle_response(self, response: Any, peer: Any, now: float) -> None:
                seen.append(self.name)

        d = ResponseDispatcher(lambda r, p, n: seen.append("fallback"))
        d.add(Tu("x", False))
        d(object(), object(), 0.0)  # type: ignore[arg-type]
        d.add(Tu("y", True))
        d(object(), object(), 0.0)  # type: ignore[arg-type]
        self.assertEqual(seen, ["fallback", "y"])
        ResponseDispatcher()(object(), object(), 0.0)  # type: ignore[arg-type]  # no fallback: dropped


class ShutdownTests(SynchronousTestCase):
    def test_drain_ends_when_calls_end(self) -> None:
        top, reactor = started(BASE + TRUNK_B)
        b2bua = top.b2bua
        b2bua.calls["fake"] = object()
        d = top.stopService()
        self.assertFalse(b2bua.accepting)
        self.assertTrue(top.health()["draining"])
        pump(reactor, 5.0)
        self.assertNoResult(d)
        self.assertTrue(reactor.udp_ports[0].listening)
        del b2bua.calls["fake"]
        pump(reactor, 0.2)
        self.successResultOf(d)
        self.assertFalse(reactor.udp_ports[0].listening)
        self.assertFalse(top.running)

    def test_drain_timeout_then_calls_are_ended(self) -> None:
        top, reactor = started(BASE + TRUNK_B)
        b2bua = top.b2bua
        b2bua.calls["fake"] = object()
        ended: list[tuple[float, str]] = []

        def terminate_all(now: float, reason: str = "shutdown") -> None:
            ended.append((now, reason))
            b2bua.calls.clear()

        b2bua.terminate_all = terminate_all
        d = top.stopService()
        pump(reactor, 9.8)
        self.assertEqual(ended, [])
        self.assertNoResult(d)
        pump(reactor, 0.4)
        self.assertEqual(len(ended), 1)
        self.assertLess(abs(ended[0][0] - 10.0), 0.15)
        self.assertEqual(ended[0][1], "shutdown")
        pump(reactor, 0.2)
        self.successResultOf(d)
        self.assertFalse(reactor.udp_ports[0].listening)

    def test_calls_that_will_not_end_do_not_block_shutdown(self) -> None:
        top, reactor = started(BASE + TRUNK_B)
        top.b2bua.calls["stuck"] = object()
        top.b2bua.terminate_all = lambda now, reason="shutdown": None
        d = top.stopService()
        pump(reactor, 10.0 + 3.0 + 0.5)
        self.successResultOf(d)

    def test_no_calls_stops_at_once_and_new_calls_refused(self) -> None:
        top, reactor = started(BASE + TRUNK_B)
        d = top.stopService()
        self.successResultOf(d)
        self.assertFalse(top.b2bua.accepting)
        self.assertIs(top.stopService(), d)

    def test_deregisters_on_stop(self) -> None:
        top, reactor = started(BASE + TRUNK_A)
        [register] = requests_to(reactor, "REGISTER", 5070)
        deliver(reactor, make_response(register, 200, to_tag="r1"), 5070)
        self.assertEqual(top.registration_status()["a"]["state"], "registered")
        d = top.stopService()
        unregister = requests_to(reactor, "REGISTER", 5070)[-1]
        self.assertEqual(unregister.get("Expires"), b"0")
        self.assertIn(b"expires=0", unregister.get("Contact") or b"")
        self.assertNoResult(d)
        deliver(reactor, make_response(unregister, 200, to_tag="r1"), 5070)
        pump(reactor, 0.2)
        self.successResultOf(d)

    def test_deregistration_without_answer_times_out(self) -> None:
        top, reactor = started(BASE + TRUNK_A)
        [register] = requests_to(reactor, "REGISTER", 5070)
        deliver(reactor, make_response(register, 200, to_tag="r1"), 5070)
        d = top.stopService()
        pump(reactor, 2.9)
        self.assertNoResult(d)
        pump(reactor, 0.3)
        self.successResultOf(d)


class ReloadTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sbc-reload-"))
        self.path = self.dir / "sbc.toml"
        self.path.write_text(BASE + TRUNK_B)
        self.reactor = FakeReactor()
        self.top = build_service(load_config(self.path), self.reactor, install_signals=False)
        self.top.startService()
        self.addCleanup(self.top.stopService)
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def test_reload_swaps_trunks_and_keeps_calls(self) -> None:
        b2bua = self.top.b2bua
        call = object()
        b2bua.calls["in-progress"] = call
        self.path.write_text(BASE.replace("down_after = 2", "down_after = 4") + TRUNK_A)
        self.assertTrue(self.top.reload())
        self.assertEqual([t.name for t in b2bua.trunks], ["a"])
        self.assertIs(b2bua.calls["in-progress"], call)
        self.assertEqual([t.name for t in self.top.config.trunks], ["a"])
        self.assertEqual(set(self.top.peer_status()), {"agent:127.0.0.1:5090", "peer:a"})
        self.assertEqual(self.top.pinger.pinger.down_after, 4)
        self.assertEqual(list(self.top.registration_status()), ["a"])
        # The new trunk's registration started at once.
        self.assertEqual(len(requests_to(self.reactor, "REGISTER", 5070)), 1)
        self.assertTrue(any("reloaded" in str(e.get("log_format")) for e in self.events))

    def test_invalid_reload_keeps_old_config(self) -> None:
        old = self.top.config
        self.path.write_text(BASE + TRUNK_B + "bogus = 1\n")
        self.assertFalse(self.top.reload())
        self.assertIs(self.top.config, old)
        self.assertEqual([t.name for t in self.top.b2bua.trunks], ["b"])
        errors = [e for e in self.events if "reload failed" in str(e.get("log_format"))]
        self.assertEqual(len(errors), 1)
        self.assertIn("trunk[0].bogus: unknown key", errors[0]["error"])
        self.assertNotIn("\n", errors[0]["error"])
        self.path.write_text("[[trunk]]\nname = 'x'\n")
        self.assertFalse(self.top.reload())
        self.path.unlink()
        self.assertFalse(self.top.reload())
        self.assertTrue(self.top.running)

    def test_invalid_regex_reload_error_names_the_key(self) -> None:
        self.path.write_text(BASE + TRUNK_B + "match_ruri = ['(']\n")
        self.assertFalse(self.top.reload())
        [error] = [e for e in self.events if "reload failed" in str(e.get("log_format"))]
        self.assertIn("trunk[0].match_ruri[0]", error["error"])

    def test_reload_of_fixed_sections_warns(self) -> None:
        self.path.write_text(BASE.replace("5060", "5062") + TRUNK_B)
        self.assertTrue(self.top.reload())
        self.assertTrue(any("need a restart" in str(e.get("log_format")) for e in self.events))

    def test_sighup_schedules_reload_via_callFromThread(self) -> None:
        previous = signal.getsignal(signal.SIGHUP)
        top = build_service(load_config(self.path), self.reactor, install_signals=True)
        top.startService()
        try:
            self.assertEqual(signal.getsignal(signal.SIGHUP), top._on_sighup)
            self.path.write_text(BASE + TRUNK_A)
            signal.raise_signal(signal.SIGHUP)
            self.assertEqual(self.reactor.from_thread, [top.reload])
            self.assertEqual([t.name for t in top.b2bua.trunks], ["a"])
        finally:
            d = top.stopService()
            pump(self.reactor, 3.5)  # the new trunk's REGISTER is unanswered: farewell timeout
            self.successResultOf(d)
        self.assertEqual(signal.getsignal(signal.SIGHUP), previous)


DNS_BASE = BASE + """
[[trunk]]
name = "fq"
allow = ["192.0.2.0/24"]
agent_uri = "sip:{user}@agent.example.com:5090"
[trunk.register]
registrar = "sip:registrar.example.com:5070"
aor = "sip:sbc@example.com"
"""


class DnsTests(SynchronousTestCase):
    """FQDN agent hosts and registrars, located through the RFC 3263 locator."""

    def setUp(self) -> None:
        from twisted.internet.defer import Deferred
        from twisted.names import dns

        from tests.test_transport_locator import FakeResolver, a, soa

        self.dns = dns
        self.a = a
        self.agent_answer: Deferred[Any] = Deferred()
        self.registrar_answer: Deferred[Any] = Deferred()
        nodata = ([], [soa("example.com", 3600, 120)])
        self.zone = FakeResolver({
            ("agent.example.com", dns.A): self.agent_answer,
            ("agent.example.com", dns.AAAA): nodata,
            ("registrar.example.com", dns.A): self.registrar_answer,
            ("registrar.example.com", dns.AAAA): nodata,
        })
        self.reactor = FakeReactor()
        self.top = build_service(load_config_text(DNS_BASE), self.reactor, install_signals=False, dns=self.zone)
        self.top.startService()
        self.addCleanup(self.top.stopService)

    def test_register_waits_for_dns_then_goes_to_the_address(self) -> None:
        self.assertEqual(self.reactor.udp_ports[0].written, [])
        self.assertEqual(self.top.registration_status()["fq"]["state"], "unregistered")
        self.registrar_answer.callback(([self.a("registrar.example.com", "192.0.2.60")], [], []))
        self.reactor.advance(0)
        [register] = requests_to(self.reactor, "REGISTER", 5070)
        self.assertEqual([addr for m, addr in sent(self.reactor)], [("192.0.2.60", 5070)])
        self.assertEqual(register.uri, b"sip:registrar.example.com:5070")

    def test_registrar_that_cannot_be_located_fails_and_retries_later(self) -> None:
        from twisted.names.error import DNSNameError

        self.registrar_answer.errback(DNSNameError(self.dns.Message(rCode=self.dns.ENAME)))
        self.reactor.advance(0)
        status = self.top.registration_status()["fq"]
        self.assertEqual(status["state"], "failed")
        self.assertGreater(status["next_attempt_at"], self.reactor.seconds())
        self.assertEqual(sent(self.reactor), [])
        self.flushLoggedErrors()

    def test_ping_plan_follows_dns(self) -> None:
        self.assertEqual(self.top.peer_status(), {})
        self.agent_answer.callback(([self.a("agent.example.com", "192.0.2.50")], [], []))
        self.reactor.advance(0)
        self.assertEqual(self.top.peer_status(), {"agent:192.0.2.50:5090": True})
        pump(self.reactor, 30.0, step=0.5)
        self.assertEqual(len(requests_to(self.reactor, "OPTIONS", 5090)[:1]), 1)

    def test_call_to_an_fqdn_agent_waits_for_dns(self) -> None:
        raw = (
            "INVITE sip:alice@127.0.0.1:5060 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-dns-1\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:pbx@192.0.2.9>;tag=f1\r\n"
            "To: <sip:alice@127.0.0.1>\r\n"
            "Call-ID: dns-1@pbx\r\n"
            "CSeq: 1 INVITE\r\n"
            "Contact: <sip:pbx@192.0.2.9:5060>\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        self.reactor.udp_ports[0].protocol.datagramReceived(raw, ("192.0.2.9", 5060))
        self.assertEqual(requests_to(self.reactor, "INVITE", 5090), [])
        self.assertEqual(len(self.top.b2bua.calls), 1)
        self.agent_answer.callback(([self.a("agent.example.com", "192.0.2.50")], [], []))
        self.reactor.advance(0)
        [invite] = requests_to(self.reactor, "INVITE", 5090)[:1]
        addrs = {addr for m, addr in sent(self.reactor) if isinstance(m, Request) and m.method == "INVITE"}
        self.assertEqual(addrs, {("192.0.2.50", 5090)})
        self.assertEqual(invite.uri, b"sip:alice@agent.example.com:5090")
