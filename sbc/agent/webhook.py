# -*- test-case-name: tests.test_agent_webhook -*-
"""Agent events as HTTP webhooks, signed the way Standard Webhooks sign.

:class:`WebhookSink` is an :class:`sbc.agent.hub.EventSubscriber`: subscribe it to the hub
(``hub.subscribe(sink, None)``) and it POSTs each event's JSON to one URL with::

    content-type: application/json
    webhook-id: msg_<32 hex digits>          (one per event, the same on every retry)
    webhook-timestamp: <unix seconds of this attempt>
    webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>

The key is the secret's UTF-8 bytes, or, for a secret written ``whsec_<base64>``, the
base64-decoded rest.  The body sent is exactly the bytes signed.

Delivery is one request at a time, in publish order.  A network error, a timeout or a
non-2xx answer is retried ``retries`` times after ``backoff``, ``2*backoff``, ``4*backoff``
... seconds (at most ``max_backoff``); then the event is given up (counted ``failed``).
Events waiting behind are held in a queue of at most ``queue_limit``: when it is full the
oldest waiting event is dropped (counted ``dropped``).  ``event_received`` only appends to
that queue, so the hub's ``publish`` never waits for the network.

Timers (backoff, request timeout) use the given ``IReactorTime``; the HTTP requests go
through the given ``IAgent`` (given a reactor instead, the sink builds a pooled ``Agent``).
Feed it either as a hub subscriber (``hub.subscribe(sink)``) or by calling
:meth:`WebhookSink.publish`; call :meth:`WebhookSink.stop` on shutdown.  Neither the
secret nor the URL's userinfo is logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from attrs import define
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer, IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IResponse
from zope.interface import implementer

from sbc.events.schema import AgentEvent, encode

__all__ = ["WebhookSink", "sign", "signing_key", "webhook_sink"]

_log = Logger()


def signing_key(secret: str | bytes | None) -> bytes:
    """The HMAC key for ``secret``: ``whsec_<base64>`` is decoded, anything else used as is.

    Raises ``ValueError`` for an empty secret or a ``whsec_`` one that is not valid base64.
    """
    if not isinstance(secret, (str, bytes)):
        raise ValueError("webhook secret is required (a string)")
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    if raw.startswith(b"whsec_"):
        try:
            raw = base64.b64decode(raw[len(b"whsec_"):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("webhook secret whsec_... is not valid base64") from None
    if not raw:
        raise ValueError("webhook secret is empty")
    return raw


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256(key, id.timestamp.body)>``."""
    signed = msg_id.encode("ascii") + b"." + str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


@implementer(IBodyProducer)
class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self._data)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class _Discard(Protocol):
    """Reads and forgets a response body (so the connection can go back to the pool)."""

    def dataReceived(self, data: bytes) -> None:
        pass


@define(eq=False)
class _Message:
    msg_id: str
    body: bytes
    call_id: str
    attempts: int = 0


class WebhookSink:
    """POSTs agent events to ``url``; see the module docstring."""

    def __init__(self, agent: Any, url: str, secret: str | bytes | None, clock: IReactorTime | None = None,
                 retries: int = 5, timeout: float = 10.0, *, backoff: float = 1.0, max_backoff: float = 60.0,
                 queue_limit: int = 1000, new_id: Callable[[], str] | None = None) -> None:
        """``agent`` is an ``IAgent``, or a reactor (then a pooled ``Agent`` is built on it and
        the reactor is the clock too).  Raises ``ValueError`` for a bad URL or secret."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("webhook url must be an http:// or https:// URL with a host")
        self._url = url.encode("ascii")
        self._where = f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"
        self._key = signing_key(secret)
        if not callable(getattr(agent, "request", None)):
            reactor = agent
            agent = _default_agent(reactor, timeout)
            if clock is None:
                clock = reactor
        if clock is None:
            raise TypeError("WebhookSink needs a clock when given an IAgent")
        self._agent = agent
        self._clock = clock
        self.retries = max(0, retries)
        self.timeout = timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.queue_limit = max(1, queue_limit)
        self._new_id = new_id or (lambda: "msg_" + uuid.uuid4().hex)
        self._queue: deque[_Message] = deque()
        self._current: _Message | None = None
        self._request: Deferred[Any] | None = None
        self._retry: IDelayedCall | None = None
        self._kick: IDelayedCall | None = None
        self._settled: list[Deferred[None]] = []
        self._running = True
        self.attempts = 0        # HTTP requests made
        self.delivered = 0       # events answered 2xx
        self.retried = 0         # attempts that failed and were scheduled again
        self.failed = 0          # events given up after the last retry
        self.dropped = 0         # events dropped from a full queue

    def stats(self) -> dict[str, int]:
        return {
            "attempts": self.attempts,
            "delivered": self.delivered,
            "retried": self.retried,
            "failed": self.failed,
            "dropped": self.dropped,
            "queued": len(self._queue),
        }

    @property
    def busy(self) -> bool:
        """An event is being sent or waits for its next retry."""
        return self._current is not None

    # -- input: hub subscriber, or a sink fed directly -----------------------------------

    def publish(self, event: AgentEvent) -> None:
        """Queue ``event`` for delivery (the same as receiving it from the hub).  Never raises."""
        try:
            self.event_received(event, encode(event))
        except Exception:
            _log.failure("webhook sink cannot queue {event!r}", event=event)

    def event_received(self, event: AgentEvent, data: bytes) -> None:
        if not self._running:
            return
        self._queue.append(_Message(self._new_id(), data, event.call_id))
        while len(self._queue) > self.queue_limit:
            old = self._queue.popleft()
            self.dropped += 1
            _log.warn("webhook queue full: event for call {call_id} dropped ({webhook_id})",
                      call_id=old.call_id, webhook_id=old.msg_id)
        if self._current is None and self._kick is None:
            # Send from the next reactor turn, not from inside the hub's publish().
            self._kick = self._clock.callLater(0, self._next)

    def subscription_closed(self, reason: str) -> None:
        _log.info("webhook sink unsubscribed from the hub: {reason}", reason=reason)

    # -- delivery -------------------------------------------------------------------------

    def _next(self) -> None:
        self._kick = None
        if not self._running or self._current is not None or not self._queue:
            return
        self._current = self._queue.popleft()
        self._attempt()

    def _attempt(self) -> None:
        msg = self._current
        if msg is None or not self._running:
            return
        self._retry = None
        msg.attempts += 1
        self.attempts += 1
        timestamp = int(self._clock.seconds())
        headers = Headers({
            b"content-type": [b"application/json"],
            b"user-agent": [b"sbc-webhook"],
            b"webhook-id": [msg.msg_id.encode("ascii")],
            b"webhook-timestamp": [str(timestamp).encode("ascii")],
            b"webhook-signature": [sign(self._key, msg.msg_id, timestamp, msg.body).encode("ascii")],
        })
        try:
            d = self._agent.request(b"POST", self._url, headers, _Body(msg.body))
        except Exception:
            d = Deferred()
            d.errback(Failure())
        d.addTimeout(self.timeout, self._clock)
        self._request = d
        d.addCallbacks(self._answered, self._errored, callbackArgs=(msg,), errbackArgs=(msg,))
        d.addErrback(lambda f: _log.failure("webhook delivery bookkeeping failed", f))
        d.addBoth(self._maybe_settled)

    def _maybe_settled(self, result: object) -> None:
        if self._request is None and self._kick is None:
            self._fire_settled()

    def _answered(self, response: IResponse, msg: _Message) -> None:
        self._request = None
        try:
            response.deliverBody(_Discard())
        except Exception:
            pass
        if 200 <= response.code < 300:
            self.delivered += 1
            self._done(msg)
        else:
            self._failed(msg, f"HTTP {response.code}")

    def _errored(self, failure: Failure, msg: _Message) -> None:
        self._request = None
        if not self._running:
            return
        self._failed(msg, failure.getErrorMessage() or failure.type.__name__)

    def _failed(self, msg: _Message, why: str) -> None:
        if not self._running or self._current is not msg:
            return
        if msg.attempts > self.retries:
            self.failed += 1
            _log.warn("webhook to {url} gave up on {webhook_id} (call {call_id}) after {attempts} attempts: {why}",
                      url=self._where, webhook_id=msg.msg_id, call_id=msg.call_id, attempts=msg.attempts, why=why)
            self._done(msg)
            return
        self.retried += 1
        delay = min(self.max_backoff, self.backoff * 2 ** (msg.attempts - 1))
        _log.info("webhook to {url} failed for {webhook_id} ({why}); retry in {delay}s",
                  url=self._where, webhook_id=msg.msg_id, why=why, delay=delay, call_id=msg.call_id)
        self._retry = self._clock.callLater(delay, self._attempt)

    def _done(self, msg: _Message) -> None:
        if self._current is msg:
            self._current = None
        if self._running and self._queue and self._kick is None:
            self._kick = self._clock.callLater(0, self._next)

    # -- control --------------------------------------------------------------------------

    def when_settled(self) -> Deferred[None]:
        """Fires when no request is in flight or about to start (idle, or waiting for a
        retry timer)."""
        if self._request is None and self._kick is None:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._settled.append(d)
        return d

    def _fire_settled(self) -> None:
        waiting, self._settled = self._settled, []
        for d in waiting:
            d.callback(None)

    def stop(self) -> None:
        """Stop delivering: cancel the retry timer and any request in flight; forget the queue."""
        self._running = False
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._kick is not None and self._kick.active():
            self._kick.cancel()
        self._kick = None
        request, self._request = self._request, None
        if request is not None:
            request.cancel()
        self._queue.clear()
        self._current = None
        self._fire_settled()


def _default_agent(reactor: Any, timeout: float) -> IAgent:
    from twisted.web.client import Agent, HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 1
    return Agent(reactor, connectTimeout=timeout, pool=pool)


def webhook_sink(reactor: Any, url: str, secret: str | bytes, retries: int = 5, timeout: float = 10.0,
                 **kwargs: Any) -> WebhookSink:
    """A :class:`WebhookSink` over a pooled ``twisted.web.client.Agent`` on ``reactor``
    (HTTPS certificates are verified against the system trust store)."""
    return WebhookSink(_default_agent(reactor, timeout), url, secret, reactor, retries, timeout, **kwargs)
