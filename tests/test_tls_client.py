# -*- test-case-name: tests.test_tls_client -*-
"""
TLS in the driver and the stream protocol, with fake transports and a fake clock: requests
wait for the handshake of a TLS connection we open, reuse it afterwards, and get a local 503
when it fails; an accepted TLS client whose certificate is refused is cut off before any SIP
is read; ``ClientTls`` builds verifying client options from ``[tls]``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.endpoint import Endpoint, Peer
from sbc.sip.message import Request, Response, parse_message
from sbc.transport.driver import SipDriver, Target
from sbc.transport.stream import SipStreamFactory, SipStreamProtocol
from sbc.transport.tls import ClientTls, ClientVerdict, TlsSetupError

from .tls_pki import issue, make_ca


def invite(branch: str = "z9hG4bK-tls-1", method: str = "INVITE") -> Request:
    message = parse_message((
        f"{method} sip:agent@agent.example.com;transport=tls SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS 192.0.2.10:5061;branch={branch}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:pbx@example.com>;tag=a1\r\nTo: <sip:agent@agent.example.com>\r\n"
        f"Call-ID: {branch}@sbc\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


class _Conn:
    """What ``connect_tls`` hands back: a protocol with a fake transport."""

    def __init__(self, driver: SipDriver, host: str, port: int) -> None:
        factory = SipStreamFactory(driver, "tls", client=True)
        self.proto = factory.buildProtocol(IPv4Address("TCP", host, port))
        assert isinstance(self.proto, SipStreamProtocol)
        self.transport = StringTransportWithDisconnection(peerAddress=IPv4Address("TCP", host, port))
        self.transport.protocol = self.proto
        self.proto.makeConnection(self.transport)


class _Setup:
    def __init__(self) -> None:
        self.clock = Clock()
        self.responses: list[tuple[Response, Peer]] = []
        self.endpoint = Endpoint(fqdn="sbc.example.com")
        self.endpoint.set_response_handler(lambda r, p, now: self.responses.append((r, p)))
        self.connects: list[tuple[str, int, Deferred[Any]]] = []
        self.driver = SipDriver(self.endpoint, self.clock, connect_tls=self.connect)

    def connect(self, host: str, port: int) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.connects.append((host, port, d))
        return d


class OutboundTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.s = _Setup()

    def test_requests_wait_for_one_connection(self) -> None:
        target = Target("tls", "192.0.2.20", 5061)
        self.s.driver.send_request(invite("z9hG4bK-a"), target)
        self.s.driver.send_request(invite("z9hG4bK-b"), target)
        self.assertEqual([(h, p) for h, p, _ in self.s.connects], [("192.0.2.20", 5061)])
        conn = _Conn(self.s.driver, "192.0.2.20", 5061)
        # Connected but not yet through the handshake: not offered to new requests.
        self.s.driver.send_request(invite("z9hG4bK-c"), target)
        self.assertEqual(len(self.s.connects), 1)
        self.assertEqual(conn.transport.value(), b"")
        conn.proto.handshakeCompleted()
        self.s.connects[0][2].callback(conn.proto)
        sent = conn.transport.value()
        for branch in (b"z9hG4bK-a", b"z9hG4bK-b", b"z9hG4bK-c"):
            self.assertIn(branch, sent)
        # Reused afterwards, no new connection.
        self.s.driver.send_request(invite("z9hG4bK-d"), target)
        self.assertIn(b"z9hG4bK-d", conn.transport.value())
        self.assertEqual(len(self.s.connects), 1)

    def test_failed_connection_answers_503_locally(self) -> None:
        target = Target("tls", "192.0.2.20", 5061)
        self.s.driver.send_request(invite("z9hG4bK-x"), target)
        self.s.driver.send_request(invite("z9hG4bK-ack", method="ACK"), target)
        self.s.driver.send_request(invite("z9hG4bK-y", method="OPTIONS"), target)
        self.s.connects[0][2].errback(Failure(ConnectionError("certificate verify failed")))
        self.assertEqual(self.s.responses, [])  # never from inside the failure callback
        self.s.clock.advance(0)
        got = [(r.status, r.call_id, p) for r, p in self.s.responses]
        self.assertEqual(got, [
            (503, "z9hG4bK-x@sbc", Peer("tls", "192.0.2.20", 5061, 0)),
            (503, "z9hG4bK-y@sbc", Peer("tls", "192.0.2.20", 5061, 0)),
        ])
        self.assertEqual(self.s.driver.counters.get("tls-connect-failed"), 1)
        # The next request tries a new connection.
        self.s.driver.send_request(invite("z9hG4bK-z"), target)
        self.assertEqual(len(self.s.connects), 2)

    def test_handshake_failure_fails_the_handshake_deferred(self) -> None:
        conn = _Conn(self.s.driver, "192.0.2.20", 5061)
        handshake = conn.proto.handshake
        assert handshake is not None
        failures: list[Failure] = []
        handshake.addErrback(failures.append)
        conn.proto.connectionLost(Failure(ConnectionError("bad certificate")))
        self.assertEqual(len(failures), 1)
        self.assertIn("bad certificate", failures[0].getErrorMessage())
        self.assertEqual(self.s.driver.stream_count, 0)

    def test_tcp_without_connector_still_dropped(self) -> None:
        self.s.driver.send_request(invite(), Target("tcp", "192.0.2.20", 5060))
        self.assertEqual(self.s.driver.counters.get("no-route"), 1)


class _Handle:
    """Stands for the OpenSSL connection the verdict is taken from."""


class _Judge:
    def __init__(self, verdict: ClientVerdict) -> None:
        self.verdict = verdict
        self.asked: list[str] = []

    def check_client(self, host: str, connection: Any) -> ClientVerdict:
        self.asked.append(host)
        return self.verdict


class _TlsTransport(StringTransportWithDisconnection):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.aborted = False

    def getHandle(self) -> _Handle:
        return _Handle()

    def abortConnection(self) -> None:
        self.aborted = True
        self.loseConnection()


OPTIONS = (b"OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 198.51.100.7:5061;branch=z9hG4bK-o\r\n"
           b"Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=f1\r\nTo: <sip:ping@127.0.0.1>\r\n"
           b"Call-ID: o@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")


class AcceptedTests(SynchronousTestCase):
    def connect(self, verdict: ClientVerdict) -> tuple[SipDriver, SipStreamProtocol, _TlsTransport, _Judge]:
        driver = SipDriver(Endpoint(fqdn="sbc.example.com"), Clock())
        judge = _Judge(verdict)
        proto = SipStreamFactory(driver, "tls", server_tls=judge).buildProtocol(
            IPv4Address("TCP", "198.51.100.7", 40000))
        assert isinstance(proto, SipStreamProtocol)
        transport = _TlsTransport(peerAddress=IPv4Address("TCP", "198.51.100.7", 40000))
        transport.protocol = proto
        proto.makeConnection(transport)
        return driver, proto, transport, judge

    def test_refused_certificate_closes_before_sip(self) -> None:
        driver, proto, transport, judge = self.connect(ClientVerdict(False, "no client certificate"))
        proto.dataReceived(OPTIONS)  # before the verdict: not read
        proto.handshakeCompleted()
        proto.dataReceived(OPTIONS)
        self.assertTrue(transport.aborted)
        self.assertEqual(judge.asked, ["198.51.100.7"])
        self.assertEqual(transport.value(), b"")
        self.assertEqual(driver.counters.get("tls-client-refused"), 1)

    def test_accepted_certificate_reads_sip_and_knows_trunks(self) -> None:
        driver, proto, transport, _ = self.connect(ClientVerdict(True, "", frozenset({"teams"})))
        proto.handshakeCompleted()
        proto.dataReceived(OPTIONS)
        self.assertFalse(transport.aborted)
        self.assertTrue(transport.value().startswith(b"SIP/2.0 200"))
        assert proto.peer is not None
        self.assertEqual(driver.tls_trunks(proto.peer), frozenset({"teams"}))
        self.assertEqual(driver.tls_trunks(Peer("tcp", proto.peer.host, proto.peer.port, proto.conn)), frozenset())

    def test_judge_raising_closes(self) -> None:
        driver, proto, transport, judge = self.connect(ClientVerdict(True))

        def boom(host: str, connection: Any) -> ClientVerdict:
            raise RuntimeError("broken")

        judge.check_client = boom  # type: ignore[method-assign]
        proto.handshakeCompleted()
        self.assertTrue(transport.aborted)
        self.flushLoggedErrors(RuntimeError)


class _Admission:
    """The source allowlist's answer, and who asked."""

    max_headers = 0
    allowlist = None

    def __init__(self, admitted: bool) -> None:
        self.admitted = admitted
        self.asked: list[tuple[str, str, int]] = []

    def notice(self, reason: str, host: str) -> None:
        pass

    def source_admitted(self, transport: str, host: str, port: int) -> bool:
        self.asked.append((transport, host, port))
        return self.admitted

    def stream_request(self, transport: str, host: str, port: int) -> bool:
        return True


class _NamedJudge(_Judge):
    admits_by_name = True


class AllowlistTests(SynchronousTestCase):
    """With match_tls_names, the allowlist is asked after the handshake, not at accept."""

    def build(self, admitted: bool, verdict: ClientVerdict, judge_cls: type = _NamedJudge) -> tuple[
            SipStreamProtocol | None, _TlsTransport, _Admission, SipDriver]:
        driver = SipDriver(Endpoint(fqdn="sbc.example.com"), Clock())
        admission = _Admission(admitted)
        driver.admission = admission  # type: ignore[assignment]
        proto = SipStreamFactory(driver, "tls", server_tls=judge_cls(verdict)).buildProtocol(
            IPv4Address("TCP", "203.0.113.9", 40000))
        transport = _TlsTransport(peerAddress=IPv4Address("TCP", "203.0.113.9", 40000))
        if isinstance(proto, SipStreamProtocol):
            transport.protocol = proto
            proto.makeConnection(transport)
        return proto, transport, admission, driver

    def test_named_certificate_admits_unknown_source(self) -> None:
        proto, transport, admission, driver = self.build(False, ClientVerdict(True, "", frozenset({"partner"})))
        assert isinstance(proto, SipStreamProtocol)
        proto.handshakeCompleted()
        proto.dataReceived(OPTIONS)
        self.assertFalse(transport.aborted)
        self.assertEqual(admission.asked, [])
        self.assertTrue(transport.value().startswith(b"SIP/2.0 200"))

    def test_no_named_certificate_asks_allowlist_after_handshake(self) -> None:
        proto, transport, admission, _ = self.build(False, ClientVerdict(True))
        assert isinstance(proto, SipStreamProtocol)
        self.assertEqual(admission.asked, [])
        proto.handshakeCompleted()
        self.assertEqual(admission.asked, [("tls", "203.0.113.9", 40000)])
        proto.dataReceived(OPTIONS)
        self.assertTrue(transport.aborted)
        self.assertEqual(transport.value(), b"")

    def test_allowed_source_without_names(self) -> None:
        proto, transport, _, _ = self.build(True, ClientVerdict(True))
        assert isinstance(proto, SipStreamProtocol)
        proto.handshakeCompleted()
        self.assertFalse(transport.aborted)

    def test_without_names_allowlist_asked_at_accept(self) -> None:
        proto, _, admission, _ = self.build(False, ClientVerdict(True), judge_cls=_Judge)
        self.assertNotIsInstance(proto, SipStreamProtocol)
        self.assertEqual(admission.asked, [("tls", "203.0.113.9", 40000)])


class ClientTlsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(self.mktemp())
        self.dir.mkdir()

    def test_from_config_with_client_certificate(self) -> None:
        ca = make_ca()
        ca_path = self.dir / "ca.pem"
        ca_path.write_bytes(ca.cert_pem)
        inter = make_ca("Intermediate", issuer=ca)
        cert, key = issue(inter, "sbc.example.com").write(self.dir, "client", chain=inter)
        tls = SimpleNamespace(ca=ca_path, client_certificate=cert, client_private_key=key)
        client = ClientTls.from_config(tls, [SimpleNamespace(tls_ca=ca_path)])
        assert client.client is not None
        self.assertEqual(client.client.getSubject().commonName, b"sbc.example.com")
        self.assertEqual(len(client.chain), 1)
        self.assertEqual(len(client.trust.cas), 2)
        self.assertFalse(client.trust.system)
        creator = client.creator("agent.example.com")
        self.assertEqual(creator._hostname, "agent.example.com")

    def test_default_is_system_trust(self) -> None:
        client = ClientTls.from_config(None)
        self.assertTrue(client.trust.system)
        self.assertIsNone(client.client)

    def test_bad_file(self) -> None:
        with self.assertRaises(TlsSetupError):
            ClientTls.from_config(SimpleNamespace(ca=self.dir / "missing.pem", client_certificate=None))
