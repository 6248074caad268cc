"""Transport adapters driven with fake transports and a fake clock (no sockets)."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import FakeDatagramTransport, StringTransportWithDisconnection
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.endpoint import Endpoint, Peer
from sbc.sip.message import parse_message
from sbc.transport._ratelimit import RateLimitedLog
from sbc.transport.driver import SipDriver, Target
from sbc.transport.stream import SipStreamFactory, SipStreamProtocol
from sbc.transport.udp import SipDatagramProtocol


def options(branch: str = "z9hG4bK-1", transport: str = "UDP", pad: int = 0) -> bytes:
    return (
        "OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 10.1.1.1:5070;branch={branch}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=f1\r\nTo: <sip:ping@127.0.0.1>\r\n"
        f"Call-ID: {branch}@x\r\nCSeq: 1 OPTIONS\r\n"
        + (f"X-Pad: {'p' * pad}\r\n" if pad else "")
        + "Content-Length: 0\r\n\r\n"
    ).encode()


class _Host:
    def __init__(self, port: int) -> None:
        self.port = port


class FakeUdp(FakeDatagramTransport):
    def getHost(self) -> _Host:
        return _Host(5060)


def make_driver(clock: Clock | None = None, **kw) -> SipDriver:
    clock = clock or Clock()
    endpoint_box: list[SipDriver] = []
    endpoint = Endpoint(fqdn="sbc.example.com",
                        contact_port=lambda peer: endpoint_box[0].local_port(peer))
    driver = SipDriver(endpoint, clock, **kw)
    endpoint_box.append(driver)
    return driver


def udp(driver: SipDriver) -> tuple[SipDatagramProtocol, FakeUdp]:
    proto = SipDatagramProtocol(driver)
    transport = FakeUdp()
    proto.transport = transport
    proto.startProtocol()
    return proto, transport


def stream(driver: SipDriver, clock: Clock | None = None, **kw) -> tuple[SipStreamProtocol, StringTransportWithDisconnection]:
    factory = SipStreamFactory(driver, "tcp", **kw)
    proto = factory.buildProtocol(IPv4Address("TCP", "10.1.1.1", 40000))
    assert proto is not None
    # TimeoutMixin's hook: always a fake clock, never the global reactor's.
    proto.callLater = (clock or Clock()).callLater  # type: ignore[method-assign]
    transport = StringTransportWithDisconnection(
        hostAddress=IPv4Address("TCP", "127.0.0.1", 5060),
        peerAddress=IPv4Address("TCP", "10.1.1.1", 40000))
    transport.protocol = proto
    proto.makeConnection(transport)
    return proto, transport


class UdpTests(SynchronousTestCase):
    def test_options_answered_to_source_address(self) -> None:
        driver = make_driver()
        proto, transport = udp(driver)
        proto.datagramReceived(options(), ("192.0.2.9", 6000))
        self.assertEqual(len(transport.written), 1)
        data, addr = transport.written[0]
        self.assertEqual(addr, ("192.0.2.9", 6000))
        reply = parse_message(data)
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.top_via.received, "192.0.2.9")
        self.assertEqual(reply.top_via.rport, "6000")
        self.assertEqual(reply.contacts[0].uri.port, 5060)

    def test_large_datagram_parsed_whole(self) -> None:
        driver = make_driver()
        proto, transport = udp(driver)
        big = options(pad=30_000)
        self.assertGreater(len(big), 8192)
        proto.datagramReceived(big, ("192.0.2.9", 6000))
        self.assertEqual(parse_message(transport.written[0][0]).status, 200)

    def test_oversized_datagram_gets_513(self) -> None:
        driver = make_driver(max_message_size=4096)
        proto, transport = udp(driver)
        proto.datagramReceived(options(pad=5000), ("192.0.2.9", 6000))
        self.assertTrue(transport.written[0][0].startswith(b"SIP/2.0 513 "))

    def test_keepalive_datagrams_ignored(self) -> None:
        driver = make_driver()
        proto, transport = udp(driver)
        for ka in (b"\r\n\r\n", b"\r\n", b" "):
            proto.datagramReceived(ka, ("192.0.2.9", 6000))
        self.assertEqual(transport.written, [])

    def test_core_exception_never_escapes(self) -> None:
        driver = make_driver()
        proto, transport = udp(driver)

        def boom(*a: object) -> None:
            raise RuntimeError("bug")

        driver.endpoint.receive = boom  # type: ignore[method-assign]
        proto.datagramReceived(options(), ("192.0.2.9", 6000))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_small_request_goes_udp(self) -> None:
        driver = make_driver()
        proto, transport = udp(driver)
        driver.send_request(parse_message(options()), Target("udp", "192.0.2.50", 5060))
        self.assertEqual(transport.written[0][1], ("192.0.2.50", 5060))


class DirectSendTests(SynchronousTestCase):
    """Datagrams to an IP address go straight to the socket; anything else takes Twisted's
    checked ``write``."""

    def test_ip_addresses_use_the_socket(self) -> None:
        import socket

        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(receiver.close)
        self.addCleanup(sender.close)
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(2)
        port = receiver.getsockname()[1]
        driver = make_driver()
        proto, transport = udp(driver)
        transport.socket = sender  # type: ignore[attr-defined]
        proto.send(b"one", ("127.0.0.1", port))
        proto.send(b"two", ("127.0.0.1", port))
        self.assertEqual(receiver.recv(100), b"one")
        self.assertEqual(receiver.recv(100), b"two")
        self.assertEqual(transport.written, [])
        proto.send(b"three", ("localhost", port))
        self.assertEqual(transport.written, [(b"three", ("localhost", port))])

    def test_send_error_is_logged_not_raised(self) -> None:
        class Broken:
            def sendto(self, data: bytes, addr: object) -> None:
                raise OSError(105, "No buffer space available")

        driver = make_driver()
        proto, transport = udp(driver)
        transport.socket = Broken()  # type: ignore[attr-defined]
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        proto.send(b"x", ("127.0.0.1", 9))
        self.assertTrue(any("UDP send" in e.get("log_format", "") for e in events))


class StreamTests(SynchronousTestCase):
    def test_messages_split_across_reads(self) -> None:
        driver = make_driver()
        proto, transport = stream(driver)
        data = options("z9hG4bK-a", "TCP") + options("z9hG4bK-b", "TCP")
        for i in range(0, len(data), 7):
            proto.dataReceived(data[i:i + 7])
        replies = transport.value().split(b"SIP/2.0 200 OK")
        self.assertEqual(len(replies), 3)
        self.assertIn(b"transport=tcp", transport.value())

    def test_crlf_keepalive_answered(self) -> None:
        driver = make_driver()
        proto, transport = stream(driver)
        proto.dataReceived(b"\r\n\r\n")
        self.assertEqual(transport.value(), b"\r\n")

    def test_oversized_message_513_and_close(self) -> None:
        driver = make_driver()
        proto, transport = stream(driver, max_message=2048)
        proto.dataReceived(options("z9hG4bK-big", "TCP", pad=4000))
        self.assertTrue(transport.value().startswith(b"SIP/2.0 513 "), transport.value()[:80])
        self.assertFalse(transport.connected)

    def test_unbounded_headers_never_buffered(self) -> None:
        driver = make_driver()
        proto, transport = stream(driver, max_message=2048)
        for _ in range(100):
            proto.dataReceived(b"X-Junk: " + b"j" * 100 + b"\r\n")
            if not transport.connected:
                break
        self.assertFalse(transport.connected)

    def test_malformed_message_400_connection_kept(self) -> None:
        driver = make_driver()
        proto, transport = stream(driver)
        bad = options("z9hG4bK-m", "TCP").replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
        proto.dataReceived(bad + options("z9hG4bK-ok", "TCP"))
        out = transport.value()
        self.assertTrue(out.startswith(b"SIP/2.0 400 "))
        self.assertIn(b"SIP/2.0 200 OK", out)
        self.assertTrue(transport.connected)

    def test_idle_connection_closed(self) -> None:
        clock = Clock()
        driver = make_driver(clock)
        proto, transport = stream(driver, clock, idle_timeout=30)
        clock.advance(29)
        self.assertTrue(transport.connected)
        proto.dataReceived(b"\r\n\r\n")
        clock.advance(29)
        self.assertTrue(transport.connected)
        clock.advance(2)
        self.assertFalse(transport.connected)
        self.assertEqual(driver.stream_count, 0)

    def test_connection_limit(self) -> None:
        driver = make_driver()
        stream(driver, max_connections=1)
        factory = SipStreamFactory(driver, "tcp", max_connections=1)
        self.assertIsNone(factory.buildProtocol(IPv4Address("TCP", "10.1.1.2", 1)))

    def test_response_returns_on_same_connection_after_close_dropped(self) -> None:
        driver = make_driver()
        proto, transport = stream(driver)
        peer = proto.peer
        proto.transport.loseConnection()
        self.assertEqual(driver.stream_count, 0)
        self.assertFalse(driver.send_to_peer(b"x", peer))
        self.assertEqual(driver.counters["connection-gone"], 1)

    def test_large_request_switches_to_tcp(self) -> None:
        """RFC 3261 §18.1.1: over 1300 bytes a UDP request goes over TCP, Via updated."""
        driver_box: list[SipStreamProtocol] = []
        connects: list[tuple[str, int]] = []
        pending: Deferred[SipStreamProtocol] = Deferred()

        def connect(host: str, port: int) -> Deferred[SipStreamProtocol]:
            connects.append((host, port))
            return pending

        driver = make_driver(connect_tcp=connect)
        udp_proto, udp_transport = udp(driver)
        big = parse_message(options(pad=2000))
        driver.send_request(big, Target("udp", "192.0.2.50", 5060))
        driver.send_request(big, Target("udp", "192.0.2.50", 5060))
        self.assertEqual(connects, [("192.0.2.50", 5060)])
        self.assertEqual(udp_transport.written, [])
        proto, transport = stream(driver)
        driver_box.append(proto)
        pending.callback(proto)
        sent = transport.value()
        self.assertEqual(sent.count(b"Via: SIP/2.0/TCP 10.1.1.1:5070"), 2)


class UdpFallbackTests(SynchronousTestCase):
    def test_large_request_falls_back_to_udp_when_tcp_is_refused(self) -> None:
        """RFC 3261 §18.1.1: a refused connection means the request goes over UDP after all,
        with its original Via; retransmissions then go straight to UDP for a while."""
        from twisted.internet.defer import fail
        from twisted.internet.error import ConnectionRefusedError

        clock = Clock()
        attempts: list[tuple[str, int]] = []

        def connect(host: str, port: int) -> Deferred[SipStreamProtocol]:
            attempts.append((host, port))
            return fail(ConnectionRefusedError())

        driver = make_driver(clock, connect_tcp=connect)
        _, udp_transport = udp(driver)
        big = parse_message(options(pad=2000))
        target = Target("udp", "192.0.2.50", 5060)
        driver.send_request(big, target)
        self.assertEqual(attempts, [("192.0.2.50", 5060)])
        self.assertEqual(len(udp_transport.written), 1)
        data, addr = udp_transport.written[0]
        self.assertEqual(addr, ("192.0.2.50", 5060))
        self.assertIn(b"Via: SIP/2.0/UDP 10.1.1.1:5070", data)
        driver.send_request(big, target)  # a retransmission: no new connect attempt
        self.assertEqual(len(attempts), 1)
        self.assertEqual(len(udp_transport.written), 2)
        clock.advance(61)
        driver.send_request(big, target)
        self.assertEqual(len(attempts), 2)


class RateLimitTests(SynchronousTestCase):
    def test_burst_then_suppressed_then_summary(self) -> None:
        from twisted.logger import Logger

        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        clock = Clock()
        limited = RateLimitedLog(Logger(namespace="test.ratelimit"), clock, burst=3, window=10)
        results = [limited.emit("k", "junk {n}", n=i) for i in range(10)]
        self.assertEqual(results, [True] * 3 + [False] * 7)
        clock.advance(10)
        self.assertTrue(limited.emit("k", "junk {n}", n=99))
        mine = [e for e in events if e.get("log_namespace") == "test.ratelimit"]
        self.assertEqual(len(mine), 4)
        self.assertEqual(mine[-1]["suppressed"], 7)


class FakeTu:
    """A transaction user that sends what it is told and records its timer calls."""

    def __init__(self) -> None:
        self.out: list = []
        self.deadline: float | None = None
        self.fired: list[float] = []

    def messages_to_send(self):
        out, self.out = self.out, []
        return out

    def next_deadline(self) -> float | None:
        return self.deadline

    def handle_timer(self, now: float) -> None:
        self.fired.append(now)
        self.deadline = None
        self.out.append((parse_message(options("z9hG4bK-timer")), Peer("udp", "192.0.2.60", 5060, 0)))


class TransactionUserTests(SynchronousTestCase):
    def test_tu_output_sent_and_timer_scheduled_from_deadline(self) -> None:
        clock = Clock()
        driver = make_driver(clock)
        proto, transport = udp(driver)
        tu = FakeTu()
        tu.deadline = 2.5
        tu.out.append((parse_message(options("z9hG4bK-now")), Peer("udp", "192.0.2.50", 5070, 0)))
        driver.add_tu(tu)
        self.assertEqual([addr for _, addr in transport.written], [("192.0.2.50", 5070)])
        clock.advance(2.4)
        self.assertEqual(tu.fired, [])
        clock.advance(0.1)
        self.assertEqual(tu.fired, [2.5])
        self.assertEqual(transport.written[-1][1], ("192.0.2.60", 5060))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_earlier_deadline_reschedules(self) -> None:
        clock = Clock()
        driver = make_driver(clock)
        udp(driver)
        tu = FakeTu()
        tu.deadline = 10.0
        driver.add_tu(tu)
        tu.deadline = 1.0
        driver.flush()
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(1.0)
        self.assertEqual(tu.fired, [1.0])

    def test_ipv6_target_uses_ipv6_socket(self) -> None:
        driver = make_driver()
        v4, v4_transport = udp(driver)
        v6 = SipDatagramProtocol(driver)
        v6_transport = FakeUdp()
        v6.transport = v6_transport
        v6.startProtocol()
        v6.is_ipv6 = True
        driver.send_request(parse_message(options()), Target("udp", "2001:db8::5", 5060))
        self.assertEqual(v4_transport.written, [])
        self.assertEqual(v6_transport.written[0][1], ("2001:db8::5", 5060))
