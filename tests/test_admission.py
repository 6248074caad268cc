# -*- test-case-name: tests.test_admission -*-
"""Admission at the edge, through the transports (fake transports, fake clock, no sockets):
a source outside the allowlist gets nothing and nothing is parsed; bans; request rates;
header limits; the per-source call cap; refusal reasons counted and logged; the service
wiring and SIGHUP; ``sbc explain``."""

from __future__ import annotations

import io
import ipaddress
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, strategies as st
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver, StringTransportWithDisconnection
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from sbc.config import load_config, load_config_text
from sbc.policy.allowlist import Allowlist, Rule
from sbc.policy.flood import FloodSettings
from sbc.sip.endpoint import Peer
from sbc.sip.message import parse_message
from sbc.transport.admission import Admission, CallCapHandler, count_header_lines
from sbc.transport.stream import SipStreamFactory

from .test_service import BASE, FakeReactor, TRUNK_A
from .test_transport import make_driver, options, udp

ALLOWED = "192.0.2.7"
OUTSIDER = "203.0.113.66"


def admission_for(driver: Any, clock: Clock, *nets: str, flood: FloodSettings | None = None,
                  max_headers: int = 0, cap: int = 0) -> Admission:
    allow = Allowlist([Rule(ipaddress.ip_network(n), "trunk:t") for n in (nets or ("192.0.2.0/24", "2001:db8::/32"))])
    admission = Admission(clock, driver._count, allowlist=allow, max_headers=max_headers, max_calls_per_source=cap)
    admission.set_flood(flood)
    driver.admission = admission
    return admission


def invite(call_id: str = "c1", host: str = ALLOWED, extra: str = "", branch: str = "z9hG4bK-i1") -> bytes:
    return (
        "INVITE sip:+15551234@sbc.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:5060;branch={branch}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:alice@pbx.example.com>;tag=a1\r\n"
        "To: <sip:+15551234@sbc.example.com>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{host}>\r\n"
        + extra + "Content-Length: 0\r\n\r\n"
    ).encode()


class SpyEndpoint:
    """Wraps the driver's endpoint and records every call to its parsing entry points."""

    def __init__(self, driver: Any) -> None:
        self.inner = driver.endpoint
        self.calls: list[str] = []
        driver.endpoint = self

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def receive(self, *a: Any) -> None:
        self.calls.append("receive")
        self.inner.receive(*a)

    def receive_message(self, *a: Any) -> None:
        self.calls.append("receive_message")
        self.inner.receive_message(*a)

    def receive_parse_failure(self, *a: Any) -> None:
        self.calls.append("receive_parse_failure")
        self.inner.receive_parse_failure(*a)


class UdpAdmissionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.driver = make_driver(self.clock)
        self.spy = SpyEndpoint(self.driver)
        self.proto, self.transport = udp(self.driver)
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def test_outsider_gets_nothing_and_nothing_is_parsed(self) -> None:
        admission_for(self.driver, self.clock)
        for data in (options(), invite(host=OUTSIDER), b"\x00junk" * 40, b"SIP/2.0 200 OK\r\n\r\n"):
            self.proto.datagramReceived(data, (OUTSIDER, 5060))
        self.assertEqual(self.transport.written, [])
        self.assertEqual(self.spy.calls, [])
        self.assertEqual(self.driver.counters.get("source-not-allowed"), 4)
        logged = [e for e in self.events if e.get("reason") == "source-not-allowed"]
        self.assertTrue(logged)
        self.assertEqual(logged[0]["host"], OUTSIDER)

    def test_allowed_source_is_answered(self) -> None:
        admission_for(self.driver, self.clock)
        self.proto.datagramReceived(options(), (ALLOWED, 5060))
        self.assertEqual(parse_message(self.transport.written[0][0]).status, 200)
        self.assertEqual(self.spy.calls, ["receive"])
        self.assertNotIn("source-not-allowed", self.driver.counters)

    def test_ipv6_and_ipv4_mapped_sources(self) -> None:
        admission_for(self.driver, self.clock)
        self.proto.datagramReceived(options(), ("2001:db8::5", 5060))
        self.proto.datagramReceived(options(branch="z9hG4bK-2"), ("::ffff:" + ALLOWED, 5060))
        self.proto.datagramReceived(options(branch="z9hG4bK-3"), ("2001:db9::5", 5060))
        self.assertEqual([addr[0] for _, addr in self.transport.written], ["2001:db8::5", "::ffff:" + ALLOWED])
        self.assertEqual(self.driver.counters.get("source-not-allowed"), 1)

    def test_refusal_log_is_rate_limited(self) -> None:
        admission_for(self.driver, self.clock)
        for i in range(500):
            self.proto.datagramReceived(b"junk junk", (OUTSIDER, 1000 + i))
        logged = [e for e in self.events if e.get("reason") == "source-not-allowed"]
        self.assertEqual(self.driver.counters["source-not-allowed"], 500)
        self.assertLessEqual(len(logged), 10)

    def test_keepalives_cost_nothing(self) -> None:
        admission_for(self.driver, self.clock, flood=FloodSettings(rate=1.0, burst=1, threshold=0))
        for _ in range(50):
            self.proto.datagramReceived(b"\r\n\r\n", (ALLOWED, 5060))
        self.proto.datagramReceived(options(), (ALLOWED, 5060))
        self.assertEqual(len(self.transport.written), 1)
        self.assertEqual(self.driver.counters, {})

    def test_request_rate_drops_then_bans(self) -> None:
        admission = admission_for(self.driver, self.clock,
                                  flood=FloodSettings(rate=5.0, burst=5, threshold=10, window=10.0, ban_duration=30.0))
        for i in range(5):
            self.proto.datagramReceived(options(branch=f"z9hG4bK-{i}"), (ALLOWED, 5060))
        self.assertEqual(len(self.transport.written), 5)
        for i in range(10):
            self.proto.datagramReceived(b"junk %d" % i, (ALLOWED, 5060))
        self.assertEqual(self.driver.counters["rate-limited"], 10)
        self.assertTrue(admission.guard.banned(ALLOWED, self.clock.seconds()))
        self.assertTrue(any("banned" in e.get("log_format", "") for e in self.events))
        calls = len(self.spy.calls)
        self.clock.advance(5)  # tokens again, but banned
        self.proto.datagramReceived(options(branch="z9hG4bK-b"), (ALLOWED, 5060))
        self.assertEqual(self.driver.counters["banned"], 1)
        self.assertEqual(len(self.spy.calls), calls)
        self.assertEqual(len(self.transport.written), 5)
        # Another admitted source is untouched.
        self.proto.datagramReceived(options(branch="z9hG4bK-o"), ("192.0.2.8", 5060))
        self.assertEqual(len(self.transport.written), 6)
        self.clock.advance(30)  # the ban expires
        self.proto.datagramReceived(options(branch="z9hG4bK-c"), (ALLOWED, 5060))
        self.assertEqual(len(self.transport.written), 7)

    def test_responses_are_not_rate_limited(self) -> None:
        admission_for(self.driver, self.clock, flood=FloodSettings(rate=1.0, burst=1, threshold=0))
        response = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-x\r\n\r\n"
        for _ in range(20):
            self.proto.datagramReceived(response, (ALLOWED, 5060))
        self.assertNotIn("rate-limited", self.driver.counters)
        self.assertEqual(len(self.spy.calls), 20)

    def test_too_many_headers_gets_400(self) -> None:
        admission_for(self.driver, self.clock, max_headers=20)
        padded = invite(extra="".join(f"X-H{i}: {i}\r\n" for i in range(30)))
        self.proto.datagramReceived(padded, (ALLOWED, 5060))
        reply = parse_message(self.transport.written[0][0])
        self.assertEqual((reply.status, reply.reason), (400, "Too Many Headers"))
        self.assertEqual(self.spy.calls, [])  # answered from the raw lines, never parsed
        self.assertEqual(self.driver.counters["too-many-headers"], 1)
        self.proto.datagramReceived(invite(call_id="ok"), (ALLOWED, 5060))
        self.assertEqual(self.spy.calls, ["receive"])

    def test_too_many_headers_unanswerable_is_dropped(self) -> None:
        admission_for(self.driver, self.clock, max_headers=5)
        self.proto.datagramReceived(b"garbage\r\n" * 20, (ALLOWED, 5060))
        self.proto.datagramReceived(b"SIP/2.0 200 OK\r\n" + b"X: y\r\n" * 10 + b"\r\n", (ALLOWED, 5060))
        self.assertEqual(self.transport.written, [])
        self.assertEqual(self.driver.counters["too-many-headers"], 2)

    def test_count_header_lines(self) -> None:
        self.assertEqual(count_header_lines(options()), 7)
        self.assertEqual(count_header_lines(b"A\r\nB: 1\r\nC: 2"), 2)
        self.assertEqual(count_header_lines(b""), 0)
        # bare LF line ends: the body's lines are not headers
        self.assertEqual(count_header_lines(b"OPTIONS sip:a SIP/2.0\nA: 1\nB: 2\n\nv=0\no=x\ns=y\n"), 2)

    def test_junk_that_looks_like_responses_is_banned_by_its_refusals(self) -> None:
        admission = admission_for(self.driver, self.clock, flood=FloodSettings(rate=1.0, burst=1, threshold=5))
        for i in range(5):
            self.proto.datagramReceived(b"SIP/2.0 200 OK\r\nbroken %d\r\n\r\n" % i, (ALLOWED, 5060))
        self.assertTrue(admission.guard.banned(ALLOWED, self.clock.seconds()))
        self.proto.datagramReceived(b"SIP/2.0 200 OK\r\n\r\n", (ALLOWED, 5060))
        self.assertEqual(self.driver.counters["banned"], 1)

    def test_refusal_logs_hold_no_credentials_or_bodies(self) -> None:
        from twisted.logger import formatEvent

        admission_for(self.driver, self.clock, flood=FloodSettings(rate=1.0, burst=3, threshold=0), max_headers=12)
        secret = "SECRETRESPONSE0123456789abcdef"
        key = "WVNfX19KRVlfS0VZX01BVEVSSUFMX0ZPUl9TUlRQXzA"
        body = f"v=0\r\no=- 1 1 IN IP4 {ALLOWED}\r\ns=-\r\nc=IN IP4 {ALLOWED}\r\nt=0 0\r\n" \
               f"m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n"
        auth = f'Authorization: Digest username="alice", realm="r", nonce="n", uri="sip:x", response="{secret}"\r\n'
        message = invite(extra=auth + "Content-Type: application/sdp\r\n").replace(
            b"Content-Length: 0\r\n\r\n", f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
        self.proto.datagramReceived(message, (ALLOWED, 5060))  # an INVITE nobody serves: 405
        self.proto.datagramReceived(message.replace(b"CSeq: 1", b"CSeq: x"), (ALLOWED, 5060))  # 400
        self.proto.datagramReceived(invite(extra=auth * 20), (ALLOWED, 5060))  # too many headers
        self.proto.datagramReceived(message, (ALLOWED, 5060))  # rate-limited
        self.proto.datagramReceived(message, (OUTSIDER, 5060))  # source-not-allowed
        self.assertTrue({"rejected", "too-many-headers", "rate-limited", "source-not-allowed"} <= set(self.driver.counters),
                        self.driver.counters)
        text = "\n".join(formatEvent(e) + repr(sorted(e.items(), key=lambda kv: kv[0])) for e in self.events)
        self.assertIn("too-many-headers", text)
        for leak in (secret, key, "a=crypto", "Authorization", "v=0"):
            self.assertNotIn(leak, text)

    def test_allowlist_off_admits_everyone(self) -> None:
        admission = admission_for(self.driver, self.clock)
        admission.set_allowlist(None)
        self.proto.datagramReceived(options(), (OUTSIDER, 5060))
        self.assertEqual(len(self.transport.written), 1)

    def test_peer_we_send_a_request_to_is_remembered(self) -> None:
        admission = admission_for(self.driver, self.clock)
        request = parse_message(options())

        class Tu:
            def __init__(self) -> None:
                self.out = [(request, Peer("udp", "198.51.100.20", 5060, 0))]

            def messages_to_send(self) -> list:
                out, self.out = self.out, []
                return out

            def next_deadline(self) -> None:
                return None

            def handle_timer(self, now: float) -> None:
                pass

        self.assertFalse(admission.allowlist.admits("198.51.100.20"))
        self.driver.add_tu(Tu())
        self.assertTrue(admission.allowlist.admits("198.51.100.20"))
        self.proto.datagramReceived(b"SIP/2.0 200 OK\r\n\r\n", ("198.51.100.20", 5060))
        self.assertNotIn("source-not-allowed", self.driver.counters)


class UdpPropertyTests(SynchronousTestCase):
    @given(st.binary(max_size=400), st.sampled_from([ALLOWED, OUTSIDER, "::ffff:" + ALLOWED, "2001:db8::1", "bogus"]),
           st.integers(0, 3))
    def test_any_datagram_from_any_source_raises_nothing(self, data: bytes, host: str, extra: int) -> None:
        clock = Clock()
        driver = make_driver(clock)
        admission_for(driver, clock, flood=FloodSettings(rate=2.0, burst=2, threshold=3), max_headers=5, cap=1)
        proto, transport = udp(driver)
        for i in range(extra + 1):
            proto.datagramReceived(data, (host, 5060 + i))
            clock.advance(0.1)
        if host in (OUTSIDER, "bogus"):
            self.assertEqual(transport.written, [])


class StreamAdmissionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.driver = make_driver(self.clock)
        self.spy = SpyEndpoint(self.driver)

    def connect(self, factory: SipStreamFactory, host: str) -> tuple[Any, StringTransportWithDisconnection]:
        addr = (IPv6Address if ":" in host else IPv4Address)("TCP", host, 40000)
        proto = factory.buildProtocol(addr)
        if proto is None:
            return None, None  # type: ignore[return-value]
        proto.callLater = self.clock.callLater
        transport = StringTransportWithDisconnection(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 5060), peerAddress=addr)
        transport.protocol = proto
        proto.makeConnection(transport)
        return proto, transport

    def test_tcp_outsider_refused_at_accept(self) -> None:
        admission_for(self.driver, self.clock)
        proto, _ = self.connect(SipStreamFactory(self.driver, "tcp"), OUTSIDER)
        self.assertIsNone(proto)
        self.assertEqual(self.driver.counters["source-not-allowed"], 1)
        self.assertEqual(self.driver.stream_count, 0)
        ok, transport = self.connect(SipStreamFactory(self.driver, "tcp"), ALLOWED)
        self.assertIsNotNone(ok)
        self.assertEqual(self.driver.stream_count, 1)

    def test_tls_outsider_aborted_as_it_is_made(self) -> None:
        admission_for(self.driver, self.clock)
        proto, transport = self.connect(SipStreamFactory(self.driver, "tls"), OUTSIDER)
        self.assertIsNotNone(proto)
        self.assertFalse(transport.connected)  # aborted in connectionMade
        self.assertEqual(self.driver.stream_count, 0)
        self.assertEqual(self.driver.counters["source-not-allowed"], 1)

    def test_banned_source_refused_at_accept(self) -> None:
        admission = admission_for(self.driver, self.clock, flood=FloodSettings())
        admission.guard.ban(ALLOWED, self.clock.seconds())
        proto, _ = self.connect(SipStreamFactory(self.driver, "tcp"), ALLOWED)
        self.assertIsNone(proto)
        self.assertEqual(self.driver.counters["banned"], 1)

    def test_stream_requests_rate_limited_then_connection_closed_on_ban(self) -> None:
        admission_for(self.driver, self.clock, flood=FloodSettings(rate=1.0, burst=2, threshold=3, window=10.0))
        proto, transport = self.connect(SipStreamFactory(self.driver, "tcp"), ALLOWED)
        proto.dataReceived(options(transport="TCP") + options(branch="z9hG4bK-2", transport="TCP"))
        self.assertEqual(self.spy.calls, ["receive_message", "receive_message"])
        proto.dataReceived(options(branch="z9hG4bK-3", transport="TCP"))
        self.assertEqual(self.driver.counters["rate-limited"], 1)
        self.assertEqual(len(self.spy.calls), 2)
        self.assertTrue(transport.connected)
        proto.dataReceived(b"\r\n\r\n" * 5)  # keep-alives are free
        self.assertEqual(self.driver.counters["rate-limited"], 1)
        proto.dataReceived(options(branch="z9hG4bK-4", transport="TCP") + options(branch="z9hG4bK-5", transport="TCP"))
        self.assertFalse(transport.connected)  # the third strike banned it
        self.assertEqual(len(self.spy.calls), 2)

    def test_stream_too_many_headers(self) -> None:
        admission_for(self.driver, self.clock, max_headers=10)
        proto, transport = self.connect(SipStreamFactory(self.driver, "tcp"), ALLOWED)
        proto.dataReceived(invite(extra="".join(f"X-H{i}: {i}\r\n" for i in range(20))))
        reply = parse_message(transport.value())
        self.assertEqual((reply.status, reply.reason), (400, "Too Many Headers"))
        self.assertEqual(self.spy.calls, [])
        self.assertTrue(transport.connected)


class _Call:
    def __init__(self, host: str, call_id: str, ended: float | None = None) -> None:
        self.ended = ended
        self.a = type("A", (), {"peer": Peer("udp", host, 5060, 1), "invite": parse_message(invite(call_id))})()


class CallCapTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.driver = make_driver(self.clock)
        self.admission = admission_for(self.driver, self.clock, flood=FloodSettings(), cap=2)
        self.seen: list[str] = []
        outer = self

        class Inner:
            methods = frozenset({"INVITE", "ACK", "BYE"})
            calls: dict[str, _Call] = {}
            marker = "inner"

            def handle_request(self, request: Any, peer: Peer, now: float) -> None:
                outer.seen.append(request.call_id)

        self.inner = Inner()
        self.handler = CallCapHandler(self.inner, self.admission, self.driver.endpoint)
        self.driver.endpoint.add_handler(self.handler)
        self.proto, self.transport = udp(self.driver)

    def test_cap_gives_503_with_retry_after(self) -> None:
        self.inner.calls.update({"x": _Call(ALLOWED, "c1"), "y": _Call(ALLOWED, "c2"), "z": _Call("192.0.2.99", "c3")})
        self.proto.datagramReceived(invite("c4"), (ALLOWED, 5060))
        reply = parse_message(self.transport.written[0][0])
        self.assertEqual(reply.status, 503)
        self.assertEqual(reply.get("Retry-After"), b"30")
        self.assertIsNotNone(reply.to.tag)
        self.assertEqual(self.seen, [])
        self.assertEqual(self.driver.counters["rate-limited"], 1)
        # a retransmission of a call in progress goes on to the B2BUA; another source too
        self.proto.datagramReceived(invite("c2"), (ALLOWED, 5060))
        self.proto.datagramReceived(invite("c5", host="192.0.2.99", branch="z9hG4bK-o"), ("192.0.2.99", 5060))
        self.assertEqual(self.seen, ["c2", "c5"])
        self.assertEqual(self.handler.marker, "inner")  # everything else is the B2BUA's

    def test_ended_calls_and_no_cap(self) -> None:
        self.inner.calls.update({"x": _Call(ALLOWED, "c1", ended=1.0), "y": _Call(ALLOWED, "c2")})
        self.proto.datagramReceived(invite("c4"), (ALLOWED, 5060))
        self.assertEqual(self.seen, ["c4"])
        self.admission.max_calls_per_source = 0
        self.inner.calls.update({f"n{i}": _Call(ALLOWED, f"d{i}") for i in range(5)})
        self.proto.datagramReceived(invite("c6", branch="z9hG4bK-6"), (ALLOWED, 5060))
        self.assertEqual(self.seen, ["c4", "c6"])


class B2buaRefusalTests(SynchronousTestCase):
    """The B2BUA's refusals reach the refusal counter under their own reason, and strike."""

    def test_no_matching_trunk_counted_and_struck(self) -> None:
        reactor = FakeReactor()
        text = BASE + TRUNK_A.replace('allow = ["192.0.2.0/24"]', 'allow = ["192.0.2.0/24"]\nmatch_ruri = ["^sip:9"]') + \
            "[security]\nban_threshold = 2\n"
        from sbc.service import build_service

        top = build_service(load_config_text(text), reactor, install_signals=False)
        top.startService()
        self.addCleanup(top.stopService)
        port = reactor.udp_ports[0]
        port.protocol.datagramReceived(invite("m1"), (ALLOWED, 5060))
        replies = [parse_message(d) for d, _ in port.written if d.startswith(b"SIP/2.0")]
        self.assertIn(404, [r.status for r in replies])
        self.assertEqual(top.driver.counters.get("no-matching-trunk"), 1)
        port.protocol.datagramReceived(invite("m2", branch="z9hG4bK-m2"), (ALLOWED, 5060))
        self.assertTrue(top.driver.admission.guard.banned(ALLOWED, reactor.seconds()))


class ServiceWiringTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sbc-admission-"))
        self.path = self.dir / "sbc.toml"
        self.path.write_text(BASE + TRUNK_A)
        self.reactor = FakeReactor()
        from sbc.service import build_service

        self.top = build_service(load_config(self.path), self.reactor, install_signals=False)
        self.top.startService()
        self.addCleanup(self.top.stopService)
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def receive(self, data: bytes, host: str) -> None:
        self.reactor.udp_ports[0].protocol.datagramReceived(data, (host, 5060))

    def test_defaults_and_peers(self) -> None:
        admission = self.top.driver.admission
        self.assertEqual(admission.max_headers, 100)
        self.assertEqual((admission.guard.settings.rate, admission.guard.settings.burst), (5000.0, 10000))
        allow = admission.allowlist
        for host in (ALLOWED, "127.0.0.1", "192.0.2.10"):  # trunk, agent_uri/registrar, peer_uri
            self.assertTrue(allow.admits(host), host)
        self.assertFalse(allow.admits(OUTSIDER))
        before = len(self.reactor.udp_ports[0].written)
        self.receive(options(), OUTSIDER)
        self.assertEqual(len(self.reactor.udp_ports[0].written), before)
        self.assertEqual(self.top.driver.counters["source-not-allowed"], 1)
        self.assertTrue(isinstance(self.top.driver.endpoint._handlers["INVITE"], CallCapHandler))

    def test_sighup_reload_rebuilds_the_allowlist(self) -> None:
        self.assertFalse(self.top.driver.admission.allowlist.admits(OUTSIDER))
        self.path.write_text(BASE + TRUNK_A.replace('"192.0.2.0/24"', '"192.0.2.0/24", "203.0.113.0/24"')
                             + "[security]\nmax_headers = 7\nrequest_rate = 3\n")
        self.assertTrue(self.top.reload())
        admission = self.top.driver.admission
        self.assertTrue(admission.allowlist.admits(OUTSIDER))
        self.assertEqual(admission.max_headers, 7)
        self.assertEqual(admission.guard.settings.rate, 3.0)

    def test_catch_all_trunk_is_logged(self) -> None:
        self.path.write_text(BASE + TRUNK_A.replace('"192.0.2.0/24"', '"0.0.0.0/0"'))
        self.assertTrue(self.top.reload())
        self.assertTrue(self.top.driver.admission.allowlist.admits(OUTSIDER))
        warned = [e for e in self.events if "admits every source" in e.get("log_format", "")]
        self.assertEqual(len(warned), 1)
        self.assertIn("trunk:a", warned[0]["why"])

    def test_metrics_list_the_new_reasons(self) -> None:
        from sbc.metrics import ADMISSION_REASONS

        for reason in ("source-not-allowed", "banned", "rate-limited", "too-many-headers", "no-matching-trunk",
                       "auth-failed"):
            self.assertIn(reason, ADMISSION_REASONS)


EXPLAIN_CONFIG = """
[sbc]
fqdn = "sbc.example.com"
[[listen]]
transport = "udp"
address = "127.0.0.1"
port = 5060
[[trunk]]
name = "teams"
vendor = "teams"
allow = ["vendor:teams"]
agent_uri = "sip:{user}@10.9.9.9"
match_ruri = ['^sip:\\+1']
[[trunk]]
name = "pbx"
allow = ["192.0.2.0/24"]
agent_uri = "sip:{user}@10.9.9.9"
peer_uri = "sip:192.0.2.10"
dial = ['\\+44[0-9]+']
[agent]
allow = ["10.9.9.0/24"]
[security]
max_headers = 20
"""


class ExplainTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sbc-explain-"))
        self.config = self.dir / "sbc.toml"
        self.config.write_text(EXPLAIN_CONFIG)

    def run_explain(self, *args: str, request: bytes | None = None) -> tuple[int, str, str]:
        from sbc.__main__ import main

        argv = ["explain", "--config", str(self.config), *args]
        if request is not None:
            path = self.dir / "request.txt"
            path.write_bytes(request)
            argv += ["--request", str(path)]
        out, err = io.StringIO(), io.StringIO()
        return main(argv, out=out, err=err), out.getvalue(), err.getvalue()

    def teams_source(self) -> str:
        from sbc.quirks.loader import registry

        first = ipaddress.ip_network(registry()["teams"].defaults.signalling_ranges[0])
        return str(first.network_address + 1)

    def test_outsider_refused_exit_1(self) -> None:
        rc, out, _ = self.run_explain("--source", OUTSIDER)
        self.assertEqual(rc, 1)
        self.assertIn("REFUSED (source-not-allowed)", out)
        rc, out, _ = self.run_explain("--source", OUTSIDER, "--transport", "tls")
        self.assertIn("connections closed", out)

    def test_vendor_origin_and_match_ruri(self) -> None:
        source = self.teams_source()
        rc, out, _ = self.run_explain("--source", source, request=invite(host=source))
        self.assertEqual(rc, 0, out)
        self.assertIn("from vendor:teams", out)
        self.assertIn("ADMITTED by trunk teams", out)
        self.assertIn("match_ruri '^sip:\\\\+1' matches", out)
        rc, out, _ = self.run_explain("--source", source,
                                      request=invite(host=source).replace(b"sip:+1555", b"sip:4455"))
        self.assertEqual(rc, 1)
        self.assertIn("REFUSED (no-matching-trunk, 404)", out)

    def test_trunk_source_without_request(self) -> None:
        rc, out, _ = self.run_explain("--source", ALLOWED)
        self.assertEqual(rc, 0)
        self.assertIn("admitted by 192.0.2.0/24 (trunk:pbx)", out)
        self.assertIn("ADMITTED by trunk pbx", out)
        self.assertIn("limits for this source", out)

    def test_peer_only_source_gets_403(self) -> None:
        self.config.write_text(EXPLAIN_CONFIG.replace('allow = ["10.9.9.0/24"]', "allow = []"))
        rc, out, _ = self.run_explain("--source", "10.9.9.9")
        self.assertEqual(rc, 1)
        self.assertIn("peer:", out)
        self.assertIn("REFUSED (no-matching-trunk, 403)", out)

    def test_agent_dial(self) -> None:
        req = invite(host="10.9.9.9").replace(b"sip:+15551234@", b"sip:+445551234@")
        rc, out, _ = self.run_explain("--source", "10.9.9.9", request=req)
        self.assertEqual(rc, 0, out)
        self.assertIn("dial pattern", out)
        self.assertIn("outbound through trunk pbx", out)

    def test_too_many_headers(self) -> None:
        rc, out, _ = self.run_explain("--source", ALLOWED, request=invite(extra="X-A: 1\r\n" * 30))
        self.assertEqual(rc, 1)
        self.assertIn("too-many-headers, 400", out)

    def test_digest_only_trunk(self) -> None:
        self.config.write_text(EXPLAIN_CONFIG + '[[trunk]]\nname = "carrier"\nagent_uri = "sip:{user}@10.9.9.9"\n'
                               '[trunk.auth]\nusers = {alice = "pw-Not-Shown-123"}\n')
        rc, out, _ = self.run_explain("--source", OUTSIDER)
        self.assertEqual(rc, 0, out)
        self.assertIn("pre-parse filter: admits every source: trunk:carrier has no allow networks", out)
        self.assertIn("ADMITTED by trunk carrier", out)
        self.assertIn("digest credentials required (401 challenge", out)
        self.assertNotIn("pw-Not-Shown-123", out)

    def test_allowlist_off(self) -> None:
        self.config.write_text(EXPLAIN_CONFIG.replace("max_headers = 20", "max_headers = 20\nallowlist = false"))
        rc, out, _ = self.run_explain("--source", OUTSIDER)
        self.assertEqual(rc, 1)
        self.assertIn("pre-parse filter: off", out)
        self.assertIn("REFUSED (no-matching-trunk, 403)", out)

    def test_bad_arguments_exit_2(self) -> None:
        rc, _, err = self.run_explain("--source", "not-an-ip")
        self.assertEqual(rc, 2)
        self.assertIn("not an IP address", err)
        rc, _, err = self.run_explain("--source", ALLOWED, request=b"SIP/2.0 200 OK\r\n\r\n")
        self.assertEqual(rc, 2)
        self.config.write_text("bogus = 1\n")
        rc, _, err = self.run_explain("--source", ALLOWED)
        self.assertEqual(rc, 2)
        self.assertIn("unknown key", err)
