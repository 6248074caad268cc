# -*- test-case-name: tests.test_agent_websocket -*-
"""Tests for sbc.agent.websocket: real WebSocket clients (twisted.web.websocket) against the
admin Site listening on 127.0.0.1, port 0."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, readBody
from twisted.web.client import _StandardEndpointFactory  # noqa: the client endpoint factory
from twisted.web.http_headers import Headers
from twisted.web.test.requesthelper import DummyRequest
from twisted.web.websocket import ConnectionRejected, WebSocketClientEndpoint, WebSocketTransport
from zope.interface import implementer

from sbc.admin import build_admin_site
from sbc.agent.hub import EventHub
from sbc.agent.websocket import EventStreamProtocol, V1Resource, events_resource
from sbc.events.schema import CallEnded, CallStarted, DtmfEventReceived, TextSubmitted

TIMEOUT = 10.0


def started(call_id: str, big: str = "") -> CallStarted:
    headers = [("X-A", "1")] + ([("X-Big", big)] if big else [])
    return CallStarted(call_id, 1730000000.0, "pbx", "generic", "inbound", "sip:1@a", "sip:2@b", headers)


def key(call_id: str, digit: str) -> DtmfEventReceived:
    return DtmfEventReceived(call_id, digit, 1730000001.5)


class Collector:
    """Client-side WebSocketProtocol: collects JSON messages; Deferreds for N messages / loss."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.transport: WebSocketTransport | None = None
        self.lost: Deferred[None] = Deferred()
        self.reason: Failure | None = None
        self._waiting: list[tuple[int, Deferred[list[dict[str, Any]]]]] = []

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        pass

    def textMessageReceived(self, message: str) -> None:
        self.messages.append(json.loads(message))
        still = []
        for count, d in self._waiting:
            if len(self.messages) >= count:
                d.callback(self.messages[:count])
            else:
                still.append((count, d))
        self._waiting = still

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        raise AssertionError("events are text messages")

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        self.reason = reason
        self.lost.callback(None)

    def wait_for(self, count: int) -> Deferred[list[dict[str, Any]]]:
        d: Deferred[list[dict[str, Any]]] = Deferred()
        if len(self.messages) >= count:
            d.callback(self.messages[:count])
        else:
            self._waiting.append((count, d))
        d.addTimeout(TIMEOUT, reactor)
        return d

    def tcp(self) -> Any:
        """The client's byte transport (under the WebSocket wire protocol)."""
        return self.transport.transport  # type: ignore[union-attr]


class _HeaderInjector(ProtocolWrapper):
    """Adds request headers to the opening handshake (the Twisted 26.10 WebSocket client has
    no way to send an Authorization header)."""

    def __init__(self, factory: WrappingFactory, wrapped: Protocol, extra: bytes) -> None:
        super().__init__(factory, wrapped)
        self._extra = extra

    def write(self, data: bytes) -> None:
        if self._extra:
            head, sep, rest = data.partition(b"\r\n")
            data, self._extra = head + sep + self._extra + rest, b""
        super().write(data)


class _InjectingFactory(WrappingFactory):
    def __init__(self, wrapped: Factory, extra: bytes) -> None:
        super().__init__(wrapped)
        self._extra = extra

    def buildProtocol(self, addr: Any) -> _HeaderInjector:
        return _HeaderInjector(self, self.wrappedFactory.buildProtocol(addr), self._extra)


@implementer(IStreamClientEndpoint)
class _InjectingEndpoint:
    def __init__(self, inner: IStreamClientEndpoint, extra: bytes) -> None:
        self._inner = inner
        self._extra = extra

    def connect(self, factory: Factory) -> Deferred[Any]:
        d = self._inner.connect(_InjectingFactory(factory, self._extra))
        return d.addCallback(lambda wrapper: wrapper.wrappedProtocol)


class _InjectingEndpointFactory:
    def __init__(self, extra: bytes) -> None:
        self._inner = _StandardEndpointFactory(reactor, None, None, None)
        self._extra = extra

    def endpointForURI(self, uri: Any) -> _InjectingEndpoint:
        return _InjectingEndpoint(self._inner.endpointForURI(uri), self._extra)


class _ClientFactory:
    def __init__(self, protocol: Collector) -> None:
        self._protocol = protocol

    def buildProtocol(self, url: str) -> Collector:
        return self._protocol


class WebSocketTests(TestCase):
    timeout = 30

    def serve(self, token: str | None = None, queue_limit: int = 1024, ping_clock: Clock | None = None) -> None:
        self.hub = EventHub(reactor, queue_limit=queue_limit)
        self.v1: V1Resource = events_resource(self.hub, token, clock=ping_clock)
        site = build_admin_site(lambda: {"status": "ok"}, events=self.v1)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(self.hub.close)
        self.base = f"ws://127.0.0.1:{port.getHost().port}"
        self.http_base = f"http://127.0.0.1:{port.getHost().port}"
        self.clients: list[Collector] = []
        self.addCleanup(self.disconnect_all)

    @inlineCallbacks
    def disconnect_all(self) -> Any:
        waits = []
        for client in self.clients:
            if not client.lost.called:
                client.tcp().resumeProducing()
                client.tcp().abortConnection()
                waits.append(client.lost)
        for conn in tuple(self.v1.connections):
            waits.append(conn.when_lost())
        yield gatherResults(waits)

    @inlineCallbacks
    def connect(self, path: str, token: str | None = None, header: bytes | None = None) -> Any:
        extra = header if header is not None else (
            b"Authorization: Bearer " + token.encode() + b"\r\n" if token else b"")
        endpoint = WebSocketClientEndpoint(_InjectingEndpointFactory(extra), self.base + path)
        collector = Collector()
        d = Deferred.fromCoroutine(endpoint.connect(_ClientFactory(collector)))
        d.addTimeout(TIMEOUT, reactor)
        yield d
        self.clients.append(collector)
        return collector

    @inlineCallbacks
    def wait_subscribers(self, count: int) -> Any:
        # negotiationFinished runs in the same reactor turn as the 101 is written, so by the
        # time the client has the 101 the subscription exists.
        self.assertEqual(self.hub.subscribers, count)
        yield None

    @inlineCallbacks
    def test_subscribe_publish_receive(self) -> Any:
        self.serve()
        client = yield self.connect("/v1/events")
        yield self.wait_subscribers(1)
        self.hub.publish(started("c1"))
        self.hub.publish(key("c1", "5"))
        self.hub.publish(TextSubmitted("c1", "5", "#", 1730000002.0))
        messages = yield client.wait_for(3)
        self.assertEqual([m["type"] for m in messages],
                         ["call.started", "input_audio_buffer.dtmf_event_received", "conversation.item.create"])
        self.assertEqual(messages[1], {"type": "input_audio_buffer.dtmf_event_received", "event": "5",
                                       "received_at": 1730000001, "call_id": "c1"})
        self.assertEqual(messages[2]["item"]["content"][0]["text"], "5")
        self.assertEqual(self.hub.delivered, 3)

    @inlineCallbacks
    def test_late_subscriber_gets_replay(self) -> Any:
        self.serve()
        self.hub.publish(started("c1"))
        self.hub.publish(key("c1", "1"))
        self.hub.publish(key("c1", "2"))
        everything = yield self.connect("/v1/events")
        one_call = yield self.connect("/v1/calls/c1/events")
        self.hub.publish(key("c1", "3"))
        for client in (everything, one_call):
            messages = yield client.wait_for(4)
            self.assertEqual([m.get("event") for m in messages], [None, "1", "2", "3"])

    @inlineCallbacks
    def test_per_call_filter_and_close_on_call_end(self) -> Any:
        self.serve()
        client = yield self.connect("/v1/calls/c%2F2/events")     # "c/2", percent-encoded
        self.hub.publish(started("c1"))
        self.hub.publish(started("c/2"))
        self.hub.publish(key("c1", "1"))
        self.hub.publish(key("c/2", "2"))
        self.hub.publish(CallEnded("c/2", 1730000009.0, "bye from a"))
        yield client.lost
        self.assertEqual([(m["type"], m["call_id"]) for m in client.messages],
                         [("call.started", "c/2"), ("input_audio_buffer.dtmf_event_received", "c/2"),
                          ("call.ended", "c/2")])
        self.assertIsInstance(client.reason, Failure)
        self.assertEqual(self.hub.subscribers, 0)

    @inlineCallbacks
    def test_token_required_missing_is_401(self) -> Any:
        self.serve(token="s3cret")
        failure = yield self.assertFailure(self.connect("/v1/events"), ConnectionRejected)
        self.assertEqual(failure.response.code, 401)
        self.assertEqual(failure.response.headers.getRawHeaders(b"www-authenticate"), [b'Bearer realm="sbc"'])
        self.assertEqual(self.hub.subscribers, 0)

    @inlineCallbacks
    def test_token_required_wrong_is_401(self) -> Any:
        self.serve(token="s3cret")
        for header in (b"Authorization: Bearer s3creT\r\n", b"Authorization: Basic s3cret\r\n",
                       b"Authorization: Bearer\r\n", b"Authorization: Bearer s3cret2\r\n"):
            failure = yield self.assertFailure(self.connect("/v1/calls/x/events", header=header),
                                               ConnectionRejected)
            self.assertEqual(failure.response.code, 401)
        self.assertEqual(self.hub.subscribers, 0)

    @inlineCallbacks
    def test_token_right_is_accepted(self) -> Any:
        self.serve(token="s3cret")
        client = yield self.connect("/v1/events", token="s3cret")
        self.hub.publish(key("c1", "9"))
        messages = yield client.wait_for(1)
        self.assertEqual(messages[0]["event"], "9")

    @inlineCallbacks
    def test_plain_http_get_is_refused(self) -> Any:
        self.serve(token="s3cret")
        agent = Agent(reactor)
        response = yield agent.request(b"GET", (self.http_base + "/v1/events").encode())
        yield readBody(response)
        self.assertEqual(response.code, 401)
        response = yield agent.request(b"GET", (self.http_base + "/v1/events").encode(),
                                       Headers({b"authorization": [b"Bearer s3cret"]}))
        body = yield readBody(response)
        self.assertEqual(response.code, 400)          # no Upgrade: not a WebSocket handshake
        self.assertIn(b"websocket", body)
        response = yield agent.request(b"GET", (self.http_base + "/v1/nothing").encode(),
                                       Headers({b"authorization": [b"Bearer s3cret"]}))
        yield readBody(response)
        self.assertEqual(response.code, 404)
        yield agent._pool.closeCachedConnections()

    @inlineCallbacks
    def test_stuck_subscriber_does_not_block_publish(self) -> Any:
        """A client that stops reading is cut off; a healthy one gets every event."""
        self.serve(queue_limit=4)
        stuck = yield self.connect("/v1/events")
        healthy = yield self.connect("/v1/events")
        stuck.tcp().pauseProducing()                 # stop reading from the socket
        big = "x" * 32_768
        sent = 0
        while self.hub.dropped == 0 and sent < 2000:
            self.hub.publish(started(f"c{sent}", big))
            sent += 1
            yield healthy.wait_for(sent)
        self.assertEqual(self.hub.dropped, 1)
        self.assertEqual(self.hub.subscribers, 1)
        self.assertEqual([m["call_id"] for m in healthy.messages], [f"c{i}" for i in range(sent)])
        self.assertLess(len(stuck.messages), sent)
        stuck.tcp().resumeProducing()
        yield stuck.lost                              # the server aborted it

    @inlineCallbacks
    def test_silent_client_cut_off_by_missed_pong(self) -> Any:
        clock = Clock()
        self.serve(ping_clock=clock)
        client = yield self.connect("/v1/events")
        (conn,) = self.v1.connections
        client.tcp().pauseProducing()                 # never sees the ping, never pongs
        clock.advance(30)
        self.assertEqual(self.hub.subscribers, 1)
        clock.advance(30)
        yield conn.when_lost()
        self.assertEqual((self.hub.subscribers, self.hub.dropped), (0, 1))
        self.assertEqual(self.v1.connections, set())

    @inlineCallbacks
    def test_hub_close_closes_streams(self) -> Any:
        self.serve()
        client = yield self.connect("/v1/events")
        self.hub.close()
        yield client.lost
        self.assertEqual(self.hub.subscribers, 0)


class AuthorizationHeaderTests(SynchronousTestCase):
    """The bearer check on its own (DummyRequest, no sockets)."""

    def check(self, token: str | None, header: bytes | None) -> bool:
        request = DummyRequest([b"events"])
        if header is not None:
            request.requestHeaders.addRawHeader(b"authorization", header)
        return events_resource(EventHub(Clock()), token).authorized(request)

    def test_no_token_configured_lets_everyone_in(self) -> None:
        self.assertTrue(self.check(None, None))
        self.assertTrue(self.check("", b"Bearer whatever"))

    def test_token_variants(self) -> None:
        self.assertTrue(self.check("t0k", b"Bearer t0k"))
        self.assertTrue(self.check("t0k", b"bearer  t0k "))
        self.assertTrue(self.check("tök", "Bearer tök".encode()))
        for header in (None, b"", b"Bearer", b"Bearer ", b"Bearer t0", b"Bearer t0kk", b"Basic t0k",
                       b"t0k", b"Bearer T0K", b"\xff\xfe"):
            self.assertFalse(self.check("t0k", header), header)

    def test_unauthorized_child_is_401(self) -> None:
        root = events_resource(EventHub(Clock()), "t0k")
        request = DummyRequest([b"calls", b"x", b"events"])
        child = root.getChildWithDefault(b"calls", request)
        body = child.render(request)
        self.assertEqual(request.responseCode, 401)
        self.assertEqual(json.loads(body), {"error": "unauthorized"})
        self.assertEqual(request.responseHeaders.getRawHeaders(b"www-authenticate"), [b'Bearer realm="sbc"'])


class _FakeWs:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.pings = 0
        self.closed: int | None = None

    def sendTextMessage(self, text: str) -> None:
        self.texts.append(text)

    def ping(self, payload: bytes = b"") -> None:
        self.pings += 1

    def loseConnection(self, code: int = 1000) -> None:
        self.closed = code


class _FakeTcp:
    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True


class _FakeChannel:
    def __init__(self) -> None:
        self.transport = _FakeTcp()


class _FakeRequest:
    """Just what EventStreamProtocol uses of a twisted.web Request."""

    def __init__(self) -> None:
        self.channel = _FakeChannel()
        self.producer: Any = None

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        assert streaming and self.producer is None
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def getClientAddress(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 40000)


class StreamProtocolTests(SynchronousTestCase):
    """EventStreamProtocol against fakes: ping/pong, back-pressure, closing."""

    def open(self, call_id: str | None = None, queue_limit: int = 4) -> tuple[EventStreamProtocol, _FakeWs,
                                                                              _FakeRequest]:
        self.clock = Clock()
        self.hub = EventHub(self.clock, queue_limit=queue_limit)
        self.v1 = events_resource(self.hub, None, clock=self.clock, ping_interval=30.0)
        request = _FakeRequest()
        proto = EventStreamProtocol(self.hub, call_id, request, self.v1)  # type: ignore[arg-type]
        ws = _FakeWs()
        proto.negotiationStarted(ws)
        proto.negotiationFinished()
        return proto, ws, request

    def test_events_are_json_text(self) -> None:
        _, ws, request = self.open()
        self.hub.publish(key("c1", "4"))
        self.assertEqual([json.loads(t)["event"] for t in ws.texts], ["4"])
        self.assertIsNotNone(request.producer)

    def test_ping_pong_keeps_the_stream(self) -> None:
        proto, ws, request = self.open()
        for round_ in range(3):
            self.clock.advance(30)
            self.assertEqual(ws.pings, round_ + 1)
            proto.pongReceived(b"sbc")
        self.assertFalse(request.channel.transport.aborted)
        self.assertEqual(self.hub.subscribers, 1)

    def test_missed_pong_aborts(self) -> None:
        proto, ws, request = self.open()
        self.clock.advance(30)
        self.clock.advance(30)
        self.assertEqual(ws.pings, 1)
        self.assertTrue(request.channel.transport.aborted)
        self.assertEqual(self.hub.subscribers, 0)
        self.assertEqual(self.hub.dropped, 1)
        self.assertIsNone(request.producer)
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.v1.connections, set())

    def test_paused_transport_queues_then_overflow_aborts(self) -> None:
        _, ws, request = self.open(queue_limit=2)
        request.producer.pauseProducing()
        self.hub.publish(key("c1", "1"))
        self.hub.publish(key("c1", "2"))
        self.assertEqual(ws.texts, [])
        request.producer.resumeProducing()
        self.assertEqual(len(ws.texts), 2)
        request.producer.pauseProducing()
        for digit in "345":
            self.hub.publish(key("c1", digit))
        self.assertTrue(request.channel.transport.aborted)
        self.assertEqual(len(ws.texts), 2)
        self.assertEqual(self.hub.dropped, 1)

    def test_call_end_closes_normally(self) -> None:
        proto, ws, request = self.open(call_id="c1")
        self.hub.publish(CallEnded("c1", 0.0, "bye"))
        self.assertEqual(ws.closed, 1000)
        self.assertFalse(request.channel.transport.aborted)
        # Only the hub's replay timer is left: no more pings.
        self.assertEqual([call.func for call in self.clock.getDelayedCalls()], [self.hub._forget])

    def test_too_many_streams_is_503(self) -> None:
        self.open()
        v1 = events_resource(self.hub, None, max_connections=1)
        v1.connections.add(object())  # type: ignore[arg-type]
        request = DummyRequest([b""])
        body = v1.getChildWithDefault(b"events", request).render(request)
        self.assertEqual(request.responseCode, 503)
        self.assertEqual(json.loads(body), {"error": "too many event streams"})
