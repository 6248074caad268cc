# -*- test-case-name: tests.test_agent_websocket -*-
"""Agent events over WebSocket on the admin HTTP server (``twisted.web.websocket``).

:func:`events_resource` returns the ``v1`` child of the admin root:

- ``GET /v1/events``: every call's events (after the replay of recent calls);
- ``GET /v1/calls/{call_id}/events``: one call's events, its replay buffer first; the server
  closes the WebSocket (code 1000) once ``call.ended`` has been sent.

Each event is one text message holding :func:`sbc.events.schema.encode`'s JSON.  Messages from
the client are ignored.

Authentication: when a token is configured every ``/v1`` request must carry
``Authorization: Bearer <token>`` (compared in constant time); otherwise the answer is HTTP
401 before any upgrade.  Whether a token is required (it is on a non-loopback listener) is
decided by the configuration, not here.

Liveness: given a clock, every stream is pinged every ``ping_interval`` seconds and aborted
when a ping goes unanswered until the next one.  At most ``max_connections`` streams are
open at once (HTTP 503 beyond).

Flow control: each connection registers itself as the push producer of its HTTP request, so
when the TCP send buffer passes Twisted's bound (64 KiB) the subscription is paused and the
hub queues at most ``queue_limit`` events for it; past that the connection is aborted (a
client that does not read must not grow our memory, nor hold up the hub).
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.websocket import WebSocketResource, WebSocketTransport
from wsproto.utilities import LocalProtocolError
from zope.interface import implementer

from sbc.agent.hub import EventHub, Subscription
from sbc.events.schema import AgentEvent

__all__ = ["EventStreamProtocol", "V1Resource", "events_resource"]

_log = Logger()

# RFC 6455 §7.4.1 close codes.
_NORMAL = 1000
_GOING_AWAY = 1001


def _json(request: Request, code: int, body: object) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, sort_keys=True).encode("utf-8") + b"\n"


def _peer(request: Request) -> str:
    try:
        return str(request.getClientAddress())
    except Exception:
        return "?"


@implementer(IPushProducer)
class EventStreamProtocol:
    """One WebSocket subscriber: a :class:`twisted.web.websocket.WebSocketProtocol` that is also
    an :class:`sbc.agent.hub.EventSubscriber` and the push producer of its HTTP request."""

    def __init__(self, hub: EventHub, call_id: str | None, request: Request, owner: V1Resource) -> None:
        self._hub = hub
        self.call_id = call_id
        self._request = request
        self._owner = owner
        self._ws: WebSocketTransport | None = None
        self._subscription: Subscription | None = None
        self._producing = False
        self._closed = False
        self._gone = False
        self._waiters: list[Deferred[None]] = []
        self._peer = _peer(request)
        self._ping_timer: IDelayedCall | None = None
        self._awaiting_pong = False

    # -- WebSocketProtocol --------------------------------------------------------------

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self._ws = transport

    def negotiationFinished(self) -> None:
        if self._closed:
            return
        _log.info("agent event subscriber {peer} connected (call {call_id})", peer=self._peer,
                  call_id=self.call_id or "*")
        self._owner.connections.add(self)
        try:
            self._request.registerProducer(self, True)
            self._producing = True
        except Exception:
            # Without back-pressure a stuck client would only be caught by the hub's queue
            # bound after the TCP buffer grew; refuse rather than run unbounded.
            _log.failure("cannot register producer for {peer}; closing", peer=self._peer)
            self._abort()
            return
        self._schedule_ping()
        self._subscription = self._hub.subscribe(self, self.call_id)

    def textMessageReceived(self, message: str) -> None:
        pass

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        pass

    def pongReceived(self, payload: bytes) -> None:
        self._awaiting_pong = False

    def connectionLost(self, reason: Failure) -> None:
        self._closed = True
        self._stop_pinging()
        self._unsubscribe()
        self._unregister()
        self._owner.connections.discard(self)
        _log.info("agent event subscriber {peer} disconnected (call {call_id})", peer=self._peer,
                  call_id=self.call_id or "*")
        self._gone = True
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    # -- EventSubscriber ----------------------------------------------------------------

    def event_received(self, event: AgentEvent, data: bytes) -> None:
        if self._closed or self._ws is None:
            return
        try:
            self._ws.sendTextMessage(data.decode("utf-8"))
        except LocalProtocolError:
            # The client already sent its Close: the connection is going; stop quietly.
            self._closed = True
            self._unsubscribe()

    def subscription_closed(self, reason: str) -> None:
        self._subscription = None
        if reason in ("call ended", "shutdown"):
            self._close(_NORMAL if reason == "call ended" else _GOING_AWAY)
        else:
            _log.warn("agent event subscriber {peer} cut off: {reason}", peer=self._peer, reason=reason,
                      call_id=self.call_id)
            self._abort()

    # -- IPushProducer (the HTTP channel relays the TCP transport's calls) ---------------

    def pauseProducing(self) -> None:
        if self._subscription is not None:
            self._subscription.pause()

    def resumeProducing(self) -> None:
        if self._subscription is not None:
            self._subscription.resume()

    def stopProducing(self) -> None:
        self._unsubscribe()

    # -- helpers ------------------------------------------------------------------------

    def when_lost(self) -> Deferred[None]:
        """A Deferred that fires once the connection is gone (for tests and shutdown)."""
        if self._gone:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        return d

    def _schedule_ping(self) -> None:
        clock, interval = self._owner.clock, self._owner.ping_interval
        if clock is not None and interval and interval > 0 and not self._closed:
            self._ping_timer = clock.callLater(interval, self._ping)

    def _ping(self) -> None:
        self._ping_timer = None
        if self._closed or self._ws is None:
            return
        if self._awaiting_pong:
            _log.warn("agent event subscriber {peer} cut off: no pong", peer=self._peer, call_id=self.call_id)
            self._hub.dropped += 1
            self._abort()
            return
        self._awaiting_pong = True
        try:
            self._ws.ping(b"sbc")
        except LocalProtocolError:
            return
        self._schedule_ping()

    def _stop_pinging(self) -> None:
        timer, self._ping_timer = self._ping_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _unsubscribe(self) -> None:
        sub, self._subscription = self._subscription, None
        if sub is not None:
            sub()

    def _unregister(self) -> None:
        if self._producing:
            self._producing = False
            try:
                self._request.unregisterProducer()
            except Exception:
                _log.failure("unregistering the producer of {peer}", peer=self._peer)

    def _close(self, code: int) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_pinging()
        self._unregister()
        if self._ws is not None:
            try:
                self._ws.loseConnection(code)
            except Exception:
                self._abort()

    def _abort(self) -> None:
        self._closed = True
        self._stop_pinging()
        self._unsubscribe()
        self._unregister()
        transport: Any = self._request.channel.transport if self._request.channel is not None else None
        if transport is None:
            return
        abort = getattr(transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            transport.loseConnection()


class _StreamFactory:
    """A :class:`twisted.web.websocket.WebSocketServerFactory` for one path."""

    def __init__(self, owner: V1Resource, call_id: str | None) -> None:
        self.owner = owner
        self._call_id = call_id

    def buildProtocol(self, request: Request) -> EventStreamProtocol:
        return EventStreamProtocol(self.owner.hub, self._call_id, request, self.owner)


class _Status(Resource):
    isLeaf = True

    def __init__(self, code: int, error: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        super().__init__()
        self._code = code
        self._error = error
        self._headers = headers

    def render(self, request: Request) -> bytes:
        for name, value in self._headers:
            request.setHeader(name, value)
        return _json(request, self._code, {"error": self._error})


class _Stream(WebSocketResource):
    """The WebSocket endpoint itself; nothing may follow it in the path."""

    isLeaf = True

    def __init__(self, factory: _StreamFactory) -> None:
        super().__init__(factory)
        self._owner = factory.owner

    def render(self, request: Request) -> Any:
        if request.postpath not in ([], [b""]):
            return _json(request, 404, {"error": "not found"})
        if len(self._owner.connections) >= self._owner.max_connections:
            _log.warn("agent event request from {peer} refused: {count} streams open", peer=_peer(request),
                      count=len(self._owner.connections))
            return _json(request, 503, {"error": "too many event streams"})
        return super().render(request)


class _CallNode(Resource):
    def __init__(self, owner: V1Resource, call_id: str) -> None:
        super().__init__()
        self._owner = owner
        self._call_id = call_id

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"events":
            return _Stream(_StreamFactory(self._owner, self._call_id))
        return _Status(404, "not found")

    def render(self, request: Request) -> bytes:
        return _json(request, 404, {"error": "not found"})


class _Calls(Resource):
    def __init__(self, owner: V1Resource) -> None:
        super().__init__()
        self._owner = owner

    def getChild(self, path: bytes, request: Request) -> Resource:
        try:
            call_id = path.decode("utf-8")
        except UnicodeDecodeError:
            return _Status(404, "not found")
        if not call_id:
            return _Status(404, "not found")
        return _CallNode(self._owner, call_id)

    def render(self, request: Request) -> bytes:
        return _json(request, 404, {"error": "not found"})


class V1Resource(Resource):
    """``/v1``: checks the bearer token, then serves the event streams."""

    def __init__(self, hub: EventHub, token: str | None, *, clock: IReactorTime | None = None,
                 ping_interval: float = 30.0, max_connections: int = 256) -> None:
        super().__init__()
        self.hub = hub
        self._token = token.encode("utf-8") if token else None
        self.clock = clock
        self.ping_interval = ping_interval
        self.max_connections = max_connections
        self.connections: set[EventStreamProtocol] = set()
        self.putChild(b"events", _Stream(_StreamFactory(self, None)))
        self.putChild(b"calls", _Calls(self))

    def authorized(self, request: Request) -> bool:
        if self._token is None:
            return True
        header = request.getHeader(b"authorization")
        if header is None:
            return False
        scheme, _, credentials = header.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(credentials.strip(), self._token)

    def getChildWithDefault(self, path: bytes, request: Request) -> Resource:
        if not self.authorized(request):
            _log.warn("agent event request from {peer} refused: bad or missing bearer token",
                      peer=_peer(request))
            return _Status(401, "unauthorized", ((b"www-authenticate", b'Bearer realm="sbc"'),))
        return super().getChildWithDefault(path, request)

    def render(self, request: Request) -> bytes:
        if not self.authorized(request):
            request.setHeader(b"www-authenticate", b'Bearer realm="sbc"')
            return _json(request, 401, {"error": "unauthorized"})
        return _json(request, 404, {"error": "not found"})

    def close(self, code: int = _GOING_AWAY) -> None:
        """Close every open event stream (the hub's ``close()`` also does, via its subscriptions)."""
        for conn in tuple(self.connections):
            conn._close(code)


def events_resource(hub: EventHub, token: str | None = None, *, clock: IReactorTime | None = None,
                    ping_interval: float = 30.0, max_connections: int = 256) -> V1Resource:
    """The ``v1`` child for the admin root: ``root.putChild(b"v1", events_resource(hub, token))``.

    With a ``clock`` each stream is pinged every ``ping_interval`` seconds and aborted when the
    previous ping got no pong (a dead or stuck client).  At most ``max_connections`` streams
    are open at once; more get HTTP 503.
    """
    return V1Resource(hub, token, clock=clock, ping_interval=ping_interval, max_connections=max_connections)
