# -*- test-case-name: tests.test_agent_webhook -*-
"""Tests for sbc.agent.webhook: Standard Webhooks signatures, retries, the bounded queue.

Retry timing runs on a ``Clock``; the signature is checked on requests received by a real
``twisted.web`` server on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from sbc.agent.hub import EventHub
from sbc.agent.webhook import WebhookSink, sign, signing_key
from sbc.events.schema import AgentEvent, DtmfEventReceived, TextSubmitted, encode

SECRET_KEY = b"\x01\x02 super secret key bytes \xff"
WHSEC = "whsec_" + base64.b64encode(SECRET_KEY).decode()


def verify(headers: dict[str, str], body: bytes, key: bytes) -> bool:
    """An independent Standard Webhooks check, as a receiver would do it."""
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in headers["webhook-signature"].split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


def key(digit: str, call_id: str = "c1") -> DtmfEventReceived:
    return DtmfEventReceived(call_id, digit, 1730000000.0)


# -- a fake IAgent for the synchronous tests -------------------------------------------------

class _Consumer:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


class FakeResponse:
    def __init__(self, code: int) -> None:
        self.code = code
        self.delivered = False

    def deliverBody(self, protocol: Any) -> None:
        self.delivered = True


class FakeAgent:
    def __init__(self) -> None:
        self.requests: list[tuple[bytes, bytes, dict[str, str], bytes, Deferred[Any]]] = []
        self.cancelled = 0

    def request(self, method: bytes, uri: bytes, headers: Headers | None = None,
                bodyProducer: Any = None) -> Deferred[Any]:
        consumer = _Consumer()
        bodyProducer.startProducing(consumer)
        assert bodyProducer.length == len(consumer.data)
        flat = {k.decode().lower(): v[0].decode() for k, v in headers.getAllRawHeaders()} if headers else {}

        def cancel(d: Deferred[Any]) -> None:
            self.cancelled += 1

        d: Deferred[Any] = Deferred(cancel)
        self.requests.append((method, uri, flat, consumer.data, d))
        return d

    def answer(self, index: int, code: int) -> None:
        self.requests[index][4].callback(FakeResponse(code))

    def fail(self, index: int) -> None:
        self.requests[index][4].errback(Failure(ConnectionRefusedError()))


class SigningTests(SynchronousTestCase):
    def test_whsec_secret_is_base64_decoded(self) -> None:
        self.assertEqual(signing_key(WHSEC), SECRET_KEY)
        self.assertEqual(signing_key(WHSEC.encode()), SECRET_KEY)

    def test_plain_secret_is_used_as_utf8(self) -> None:
        self.assertEqual(signing_key("pässword"), "pässword".encode())

    def test_bad_secrets(self) -> None:
        self.assertRaises(ValueError, signing_key, "")
        self.assertRaises(ValueError, signing_key, "whsec_")
        self.assertRaises(ValueError, signing_key, "whsec_not base64!")

    def test_sign_known_vector(self) -> None:
        # Computed by hand: HMAC-SHA256(key, "msg_1.1700000000.{}"), base64.
        digest = hmac.new(b"k", b"msg_1.1700000000.{}", hashlib.sha256).digest()
        self.assertEqual(sign(b"k", "msg_1", 1700000000, b"{}"), "v1," + base64.b64encode(digest).decode())

    def test_bad_url(self) -> None:
        for url in ("ftp://x/", "http:///nohost", "not a url", "", "http://h:99999/", "http://hé/"):
            self.assertRaises(ValueError, WebhookSink, FakeAgent(), url, "s", Clock())

    def test_missing_secret(self) -> None:
        self.assertRaises(ValueError, WebhookSink, FakeAgent(), "http://h/", None, Clock())

    def test_agent_needs_a_clock(self) -> None:
        self.assertRaises(TypeError, WebhookSink, FakeAgent(), "http://h/", "s")

    def test_reactor_instead_of_agent(self) -> None:
        reactor = MemoryReactorClock()
        sink = WebhookSink(reactor, "http://127.0.0.1:8080/hook", "s", retries=2)
        sink.publish(key("1"))
        reactor.advance(0)
        self.assertEqual(len(reactor.tcpClients), 1)         # a real Agent connecting
        self.assertEqual(reactor.tcpClients[0][:2], ("127.0.0.1", 8080))
        sink.stop()


class DeliveryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1730000000)
        self.agent = FakeAgent()
        self.sink = WebhookSink(self.agent, "https://agent.example/hook", WHSEC, self.clock, retries=5,
                                timeout=10.0, queue_limit=3)

    def send(self, event: AgentEvent) -> None:
        self.sink.event_received(event, encode(event))

    def test_publish_encodes(self) -> None:
        self.sink.publish(TextSubmitted("c1", "12", "idle", 0.0))
        self.sink.publish("garbage")  # type: ignore[arg-type]
        self.clock.advance(0)
        self.assertEqual([r[3] for r in self.agent.requests], [encode(TextSubmitted("c1", "12", "idle", 0.0))])
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)

    def test_post_is_signed_and_not_sent_from_inside_publish(self) -> None:
        self.send(key("5"))
        self.assertEqual(self.agent.requests, [])         # nothing from inside publish
        self.clock.advance(0)
        method, uri, headers, body, _ = self.agent.requests[0]
        self.assertEqual((method, uri), (b"POST", b"https://agent.example/hook"))
        self.assertEqual(body, encode(key("5")))
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(headers["webhook-timestamp"], "1730000000")
        self.assertTrue(headers["webhook-id"].startswith("msg_"))
        self.assertTrue(verify(headers, body, SECRET_KEY))
        self.assertFalse(verify(headers, body + b" ", SECRET_KEY))
        self.agent.answer(0, 204)
        self.assertEqual(self.sink.delivered, 1)
        self.assertFalse(self.sink.busy)

    def test_exponential_backoff_then_give_up(self) -> None:
        self.send(key("1"))
        self.clock.advance(0)
        ids, stamps = set(), []
        for attempt, delay in enumerate([1, 2, 4, 8, 16]):
            self.assertEqual(len(self.agent.requests), attempt + 1)
            self.agent.answer(attempt, 503) if attempt % 2 else self.agent.fail(attempt)
            self.clock.advance(delay - 0.001)
            self.assertEqual(len(self.agent.requests), attempt + 1)     # not before the backoff
            self.clock.advance(0.001)
        self.assertEqual(len(self.agent.requests), 6)                    # 1 + 5 retries
        self.agent.answer(5, 500)
        self.assertEqual(self.sink.failed, 1)
        self.assertEqual(self.sink.retried, 5)
        self.assertFalse(self.sink.busy)
        for _, _, headers, body, _ in self.agent.requests:
            ids.add(headers["webhook-id"])
            stamps.append(int(headers["webhook-timestamp"]))
            self.assertTrue(verify(headers, body, SECRET_KEY))
        self.assertEqual(len(ids), 1)                                    # same id on every retry
        self.assertEqual(stamps, sorted(stamps))
        self.assertGreater(stamps[-1], stamps[0])                        # re-signed per attempt
        self.clock.advance(1000)
        self.assertEqual(len(self.agent.requests), 6)

    def test_backoff_is_capped(self) -> None:
        sink = WebhookSink(self.agent, "http://h/", "s", self.clock, retries=10, backoff=1.0, max_backoff=5.0)
        sink.event_received(key("1"), encode(key("1")))
        self.clock.advance(0)
        for attempt in range(8):
            self.agent.fail(attempt)
            self.clock.advance(5)
        self.assertEqual(len(self.agent.requests), 9)

    def test_timeout_cancels_and_retries(self) -> None:
        self.send(key("1"))
        self.clock.advance(0)
        self.clock.advance(10)
        self.assertEqual(self.agent.cancelled, 1)
        self.assertEqual(self.sink.retried, 1)
        self.clock.advance(1)
        self.assertEqual(len(self.agent.requests), 2)
        self.agent.answer(1, 200)
        self.assertEqual(self.sink.delivered, 1)

    def test_in_order_one_at_a_time(self) -> None:
        for digit in "123":
            self.send(key(digit))
        self.clock.advance(0)
        self.assertEqual(len(self.agent.requests), 1)
        self.agent.fail(0)
        self.clock.advance(1)
        self.agent.answer(1, 200)
        self.clock.advance(0)
        self.agent.answer(2, 200)
        self.clock.advance(0)
        self.agent.answer(3, 200)
        self.assertEqual([json.loads(r[3])["event"] for r in self.agent.requests], ["1", "1", "2", "3"])
        self.assertEqual(self.sink.delivered, 3)

    def test_full_queue_drops_oldest_waiting(self) -> None:
        self.send(key("0"))
        self.clock.advance(0)                 # "0" in flight
        for digit in "12345":
            self.send(key(digit))             # queue_limit 3: "1" and "2" are dropped
        self.assertEqual(self.sink.dropped, 2)
        self.assertEqual(self.sink.stats()["queued"], 3)
        for index in range(4):
            self.agent.answer(index, 200)
            self.clock.advance(0)
        self.assertEqual([json.loads(r[3])["event"] for r in self.agent.requests], ["0", "3", "4", "5"])

    def test_synchronous_agent_error_is_retried(self) -> None:
        class Broken:
            calls = 0

            def request(self, *args: Any, **kwargs: Any) -> Deferred[Any]:
                Broken.calls += 1
                raise RuntimeError("no")

        sink = WebhookSink(Broken(), "http://h/", "s", self.clock, retries=1)
        sink.event_received(key("1"), encode(key("1")))
        self.clock.advance(0)
        self.clock.advance(1)
        self.assertEqual(Broken.calls, 2)
        self.assertEqual(sink.failed, 1)

    def test_stop_cancels_everything(self) -> None:
        self.send(key("1"))
        self.send(key("2"))
        self.clock.advance(0)
        self.sink.stop()
        self.assertEqual(self.agent.cancelled, 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.send(key("3"))
        self.clock.advance(100)
        self.assertEqual(len(self.agent.requests), 1)

    def test_as_hub_subscriber_publish_never_blocks(self) -> None:
        hub = EventHub(self.clock)
        hub.subscribe(self.sink, None)
        for digit in "123456789":
            hub.publish(key(digit))           # the agent never answers
        self.assertEqual(hub.delivered, 9)
        self.assertEqual(self.sink.dropped, 6)          # nothing sent yet; queue_limit 3
        self.assertEqual(hub.dropped, 0)
        self.clock.advance(0)
        self.assertEqual([json.loads(r[3])["event"] for r in self.agent.requests], ["7"])


class Hook(Resource):
    """A webhook receiver: records (headers, body) and answers codes from a script."""

    isLeaf = True

    def __init__(self, codes: list[int]) -> None:
        super().__init__()
        self.codes = codes
        self.received: list[tuple[dict[str, str], bytes]] = []

    def render_POST(self, request: Request) -> bytes:
        headers = {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()}
        self.received.append((headers, request.content.read()))
        request.setResponseCode(self.codes.pop(0) if self.codes else 200)
        return b"ok"


class LoopbackTests(TestCase):
    timeout = 20

    def serve(self, codes: list[int]) -> tuple[Hook, str]:
        hook = Hook(codes)
        port = reactor.listenTCP(0, Site(hook), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return hook, f"http://127.0.0.1:{port.getHost().port}/hook"

    def agent(self) -> Agent:
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        return Agent(reactor, pool=pool)

    @inlineCallbacks
    def test_signature_verifies_at_a_real_receiver(self) -> Any:
        hook, url = self.serve([])
        sink = WebhookSink(self.agent(), url, WHSEC, reactor)
        self.addCleanup(sink.stop)
        event = TextSubmitted("c1", "1234", "#", 1730000000.0)
        sink.event_received(event, encode(event))
        yield sink.when_settled()
        self.assertEqual(sink.delivered, 1)
        headers, body = hook.received[0]
        self.assertEqual(body, encode(event))
        self.assertEqual(json.loads(body)["item"]["content"][0]["text"], "1234")
        self.assertTrue(verify(headers, body, SECRET_KEY))
        self.assertFalse(verify(headers, body, b"another key"))
        self.assertEqual(headers["content-type"], "application/json")

    @inlineCallbacks
    def test_retry_after_500_on_a_clock(self) -> Any:
        hook, url = self.serve([500])
        clock = Clock()
        clock.advance(1730000000)
        sink = WebhookSink(self.agent(), url, WHSEC, clock, backoff=2.0)
        self.addCleanup(sink.stop)
        sink.event_received(key("7"), encode(key("7")))
        clock.advance(0)
        yield sink.when_settled()
        self.assertEqual((len(hook.received), sink.retried, sink.delivered), (1, 1, 0))
        clock.advance(1.9)
        self.assertEqual(len(hook.received), 1)
        clock.advance(0.1)
        yield sink.when_settled()
        self.assertEqual((len(hook.received), sink.delivered), (2, 1))
        (h1, b1), (h2, b2) = hook.received
        self.assertEqual(h1["webhook-id"], h2["webhook-id"])
        self.assertEqual(int(h2["webhook-timestamp"]) - int(h1["webhook-timestamp"]), 2)
        self.assertTrue(verify(h1, b1, SECRET_KEY) and verify(h2, b2, SECRET_KEY))

    @inlineCallbacks
    def test_connection_refused_is_retried(self) -> Any:
        hook, url = self.serve([])
        port = int(url.split(":")[2].split("/")[0])
        closed = reactor.listenTCP(0, Site(Resource()), interface="127.0.0.1")
        dead = closed.getHost().port
        yield closed.stopListening()
        clock = Clock()
        sink = WebhookSink(self.agent(), f"http://127.0.0.1:{dead}/hook", "s", clock, retries=1)
        self.addCleanup(sink.stop)
        sink.event_received(key("1"), encode(key("1")))
        clock.advance(0)
        yield sink.when_settled()
        self.assertEqual((sink.retried, sink.delivered, sink.failed), (1, 0, 0))
        clock.advance(1)
        yield sink.when_settled()
        self.assertEqual((sink.failed, len(hook.received)), (1, 0))
        self.assertNotEqual(port, dead)
