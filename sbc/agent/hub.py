# -*- test-case-name: tests.test_agent_hub -*-
"""The agent event hub: one publisher (the B2BUA), many subscribers (WebSocket clients, the
webhook sink ...), a bounded replay buffer per call.

:meth:`EventHub.publish` is called from the signalling and media paths, so it never blocks
and never raises: each event is encoded once, appended to its call's replay buffer and
offered to every matching subscriber.  A subscriber that cannot keep up is cut off instead of
buffered without limit: it may :meth:`Subscription.pause` (a WebSocket does when its TCP
send buffer is full) and the hub queues at most ``queue_limit`` live events for it; one more
and the subscriber is dropped (``subscription_closed("overflow")``, counted in ``dropped``).
A subscriber whose ``event_received`` raises is dropped too (``"error"``).

Replay.  Every call's events are kept, at most ``replay_per_call`` of them (0: none; the oldest go
first), until ``replay_seconds`` after its ``call.ended``; then the call is forgotten (a
timer on the given ``IReactorTime``).  At most ``max_calls`` calls are held; a new call
beyond that evicts the oldest.

- ``subscribe(s, call_id)`` (``/v1/calls/{call_id}/events``): ``s`` first gets that call's
  buffered events, then its live ones.  Once ``call.ended`` has been delivered the
  subscription finishes (``subscription_closed("call ended")``, not counted as dropped).
- ``subscribe(s, None)`` (``/v1/events``): ``s`` first gets the buffered events of every
  call whose first event was published within the last ``replay_seconds``, in publish order,
  then every call's live events.

Replayed events do not count against ``queue_limit``.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from typing import Protocol, get_args

from attrs import define, field
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from sbc.events.schema import AgentEvent, CallEnded, CallStarted, encode

__all__ = ["EventHub", "EventSubscriber", "Subscription"]

_log = Logger()

_EVENT_TYPES = get_args(AgentEvent)  # the event classes, for isinstance

_Entry = tuple[int, AgentEvent, bytes]     # (global publish sequence, event, its JSON bytes)
#: What the replay buffer keeps: (global publish sequence, event).  The JSON is encoded again
#: for a replay (rare) instead of being held for every call (it was a third of a held call's
#: buffer).
_Kept = tuple[int, AgentEvent]


class EventSubscriber(Protocol):
    """What the hub delivers to.  Both methods are called synchronously from ``publish``."""

    def event_received(self, event: AgentEvent, data: bytes) -> None:
        """One event and its encoded JSON (see :func:`sbc.events.schema.encode`)."""

    def subscription_closed(self, reason: str) -> None:
        """The hub ended this subscription: ``"overflow"``, ``"error"``, ``"call ended"``
        or ``"shutdown"``.  Not called after the subscriber unsubscribed itself."""


@define(eq=False)
class _CallBuffer:
    first_seen: float
    # A list trimmed to ``replay_per_call`` by the hub: a held call has one or two events, and
    # a deque would take 760 bytes for them.
    events: list[_Kept]
    ended: bool = False
    forget: IDelayedCall | None = None


class Subscription:
    """A handle on one subscriber.  Call it to unsubscribe (idempotent)."""

    def __init__(self, hub: EventHub, subscriber: EventSubscriber, call_id: str | None) -> None:
        self._hub = hub
        self.subscriber = subscriber
        self.call_id = call_id
        self.active = True
        self.paused = False
        self._queue: deque[_Entry] = deque()
        self._replay_left = 0
        self._flushing = False

    def __call__(self) -> None:
        self._hub._remove(self)

    @property
    def queued(self) -> int:
        """Live events waiting for :meth:`resume` (replayed ones not counted)."""
        return len(self._queue) - self._replay_left

    def pause(self) -> None:
        """Queue events instead of delivering them (at most ``queue_limit``)."""
        self.paused = True

    def resume(self) -> None:
        """Deliver what is queued, then deliver live again."""
        self.paused = False
        self._flush()

    def _offer(self, entry: _Entry) -> None:
        if not self.active:
            return
        if self.paused or self._queue or self._flushing:
            self._queue.append(entry)
            if self.queued > self._hub.queue_limit:
                self._hub._drop(self, "overflow")
            return
        self._deliver(entry)

    def _flush(self) -> None:
        if self._flushing:          # a re-entrant resume() from inside event_received
            return
        self._flushing = True
        try:
            while self.active and not self.paused and self._queue:
                entry = self._queue.popleft()
                if self._replay_left:
                    self._replay_left -= 1
                self._deliver(entry)
        finally:
            self._flushing = False

    def _deliver(self, entry: _Entry) -> None:
        _, event, data = entry
        try:
            self.subscriber.event_received(event, data)
        except Exception:
            _log.failure("agent event subscriber {subscriber!r} raised; dropped", subscriber=self.subscriber)
            self._hub._drop(self, "error")
            return
        self._hub.delivered += 1
        if self.call_id is not None and isinstance(event, CallEnded):
            self._hub._close(self, "call ended")


@define(eq=False)
class EventHub:
    """Fans agent events out to subscribers; see the module docstring."""

    clock: IReactorTime
    replay_per_call: int = 256
    replay_seconds: float = 60.0
    queue_limit: int = 1024
    max_calls: int = 10_000

    published: int = field(default=0, init=False)
    delivered: int = field(default=0, init=False)
    dropped: int = field(default=0, init=False)          # subscribers cut off (overflow or error)
    invalid: int = field(default=0, init=False)          # publish() given something it cannot encode
    evicted: int = field(default=0, init=False)          # calls forgotten early because of max_calls
    _calls: OrderedDict[str, _CallBuffer] = field(factory=OrderedDict, init=False)
    _all: list[Subscription] = field(factory=list, init=False)
    _by_call: dict[str, list[Subscription]] = field(factory=dict, init=False)
    _seq: itertools.count[int] = field(factory=itertools.count, init=False)

    @property
    def subscribers(self) -> int:
        return len(self._all) + sum(len(subs) for subs in self._by_call.values())

    @property
    def calls(self) -> int:
        """Calls whose events are held for replay."""
        return len(self._calls)

    def stats(self) -> dict[str, int]:
        return {
            "published": self.published,
            "delivered": self.delivered,
            "dropped": self.dropped,
            "subscribers": self.subscribers,
            "calls": self.calls,
            "invalid": self.invalid,
            "evicted": self.evicted,
        }

    # -- publishing -----------------------------------------------------------------------

    def publish(self, event: AgentEvent) -> None:
        """Buffer ``event`` for replay and offer it to every matching subscriber.

        Never raises and never blocks.
        """
        try:
            if not isinstance(event, _EVENT_TYPES):
                raise TypeError(f"not an agent event: {type(event).__name__}")
            call_id = event.call_id
            # Encoded only when someone is listening: most calls' events are only kept for
            # a replay that never comes (a replay encodes them then).
            listening = self._all or self._by_call.get(call_id)
            data = encode(event) if listening else b""
        except Exception:
            self.invalid += 1
            _log.failure("cannot encode agent event {event!r}; not published", event=event)
            return
        try:
            entry: _Entry = (next(self._seq), event, data)
            self._buffer(call_id, event, entry)
            self.published += 1
            for sub in tuple(self._all):
                sub._offer(entry)
            for sub in tuple(self._by_call.get(call_id, ())):
                sub._offer(entry)
        except Exception:
            _log.failure("agent event hub failed publishing {call_id}", call_id=call_id)

    def _buffer(self, call_id: str, event: AgentEvent, entry: _Entry) -> None:
        buf = self._calls.get(call_id)
        if buf is not None and buf.ended and isinstance(event, CallStarted):
            self._forget(call_id, buf)           # the call id was reused: a new call
            buf = None
        if buf is None:
            while len(self._calls) >= max(1, self.max_calls):
                old_id, old = next(iter(self._calls.items()))
                self._forget(old_id, old)
                self.evicted += 1
            buf = _CallBuffer(self.clock.seconds(), [])
            self._calls[call_id] = buf
        events = buf.events
        events.append((entry[0], event))
        if len(events) > self.replay_per_call:
            del events[:len(events) - max(0, self.replay_per_call)]
        if isinstance(event, CallEnded):
            buf.ended = True
            if buf.forget is not None and buf.forget.active():
                buf.forget.cancel()
            buf.forget = self.clock.callLater(max(0.0, self.replay_seconds), self._forget, call_id, buf)

    def _forget(self, call_id: str, buf: _CallBuffer) -> None:
        if buf.forget is not None and buf.forget.active():
            buf.forget.cancel()
        buf.forget = None
        if self._calls.get(call_id) is buf:
            del self._calls[call_id]

    # -- subscribing ----------------------------------------------------------------------

    def subscribe(self, subscriber: EventSubscriber, call_id: str | None = None) -> Subscription:
        """Replay, then deliver live events of ``call_id`` (or of every call when None).

        Returns the :class:`Subscription`; calling it unsubscribes.
        """
        sub = Subscription(self, subscriber, call_id)
        replay = self._replay(call_id)
        sub._queue.extend(replay)
        sub._replay_left = len(replay)
        if call_id is None:
            self._all.append(sub)
        else:
            self._by_call.setdefault(call_id, []).append(sub)
        sub._flush()
        return sub

    def _replay(self, call_id: str | None) -> list[_Entry]:
        if call_id is not None:
            buf = self._calls.get(call_id)
            kept = list(buf.events) if buf is not None else []
        else:
            since = self.clock.seconds() - self.replay_seconds
            kept = [entry for buf in self._calls.values() if buf.first_seen >= since for entry in buf.events]
            kept.sort(key=lambda entry: entry[0])
        out: list[_Entry] = []
        for seq, event in kept:
            try:
                out.append((seq, event, encode(event)))
            except Exception:
                self.invalid += 1
                _log.failure("cannot encode agent event {event!r}; not replayed", event=event)
        return out

    def _remove(self, sub: Subscription) -> bool:
        if not sub.active:
            return False
        sub.active = False
        sub._queue.clear()
        sub._replay_left = 0
        if sub.call_id is None:
            self._all.remove(sub)
        else:
            subs = self._by_call[sub.call_id]
            subs.remove(sub)
            if not subs:
                del self._by_call[sub.call_id]
        return True

    def _close(self, sub: Subscription, reason: str) -> None:
        if self._remove(sub):
            try:
                sub.subscriber.subscription_closed(reason)
            except Exception:
                _log.failure("agent event subscriber {subscriber!r} raised on close", subscriber=sub.subscriber)

    def _drop(self, sub: Subscription, reason: str) -> None:
        if sub.active:
            self.dropped += 1
            _log.warn("agent event subscriber {subscriber!r} dropped: {reason}", subscriber=sub.subscriber,
                      reason=reason, call_id=sub.call_id)
        self._close(sub, reason)

    def close(self) -> None:
        """Shut down: end every subscription ("shutdown") and forget every call."""
        for sub in tuple(self._all) + tuple(s for subs in self._by_call.values() for s in subs):
            self._close(sub, "shutdown")
        for call_id, buf in tuple(self._calls.items()):
            self._forget(call_id, buf)
