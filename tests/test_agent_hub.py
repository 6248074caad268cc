# -*- test-case-name: tests.test_agent_hub -*-
"""Tests for sbc.agent.hub.EventHub: fan-out, replay, flow control, a fake clock."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from sbc.agent.hub import EventHub, Subscription
from sbc.events.schema import AgentEvent, CallEnded, CallStarted, DtmfEventReceived, encode


def started(call_id: str, at: float = 0.0) -> CallStarted:
    return CallStarted(call_id, at, "pbx", "generic", "inbound", "sip:1@a", "sip:2@b", [("X-A", "1")])


def ended(call_id: str, at: float = 0.0) -> CallEnded:
    return CallEnded(call_id, at, "bye from a", 1.0, 200, 200)


def key(call_id: str, digit: str, at: float = 0.0) -> DtmfEventReceived:
    return DtmfEventReceived(call_id, digit, at)


class Recorder:
    """A subscriber that records what it gets; optionally pauses or raises."""

    def __init__(self) -> None:
        self.events: list[AgentEvent] = []
        self.data: list[bytes] = []
        self.closed: list[str] = []
        self.raise_on: int | None = None
        self.sub: Subscription | None = None
        self.pause_after_each = False

    def event_received(self, event: AgentEvent, data: bytes) -> None:
        if self.raise_on is not None and len(self.events) == self.raise_on:
            raise RuntimeError("boom")
        self.events.append(event)
        self.data.append(data)
        if self.pause_after_each and self.sub is not None:
            self.sub.pause()

    def subscription_closed(self, reason: str) -> None:
        self.closed.append(reason)

    def digits(self) -> str:
        return "".join(e.event for e in self.events if isinstance(e, DtmfEventReceived))


class FanOutTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.hub = EventHub(self.clock)

    def test_all_calls_subscriber_gets_every_event_once(self) -> None:
        r = Recorder()
        self.hub.subscribe(r, None)
        for event in (started("a"), started("b"), key("a", "1"), key("b", "2")):
            self.hub.publish(event)
        self.assertEqual(r.events, [started("a"), started("b"), key("a", "1"), key("b", "2")])
        self.assertEqual(r.data[2], encode(key("a", "1")))
        self.assertEqual(self.hub.stats()["published"], 4)
        self.assertEqual(self.hub.stats()["delivered"], 4)

    def test_per_call_subscriber_gets_only_its_call(self) -> None:
        r = Recorder()
        self.hub.subscribe(r, "b")
        for event in (started("a"), started("b"), key("a", "1"), key("b", "2")):
            self.hub.publish(event)
        self.assertEqual(r.events, [started("b"), key("b", "2")])

    def test_unsubscribe_stops_delivery_and_is_idempotent(self) -> None:
        r = Recorder()
        unsubscribe = self.hub.subscribe(r, None)
        self.assertEqual(self.hub.subscribers, 1)
        unsubscribe()
        unsubscribe()
        self.hub.publish(key("a", "1"))
        self.assertEqual(r.events, [])
        self.assertEqual(r.closed, [])
        self.assertEqual(self.hub.subscribers, 0)
        self.assertEqual(self.hub.dropped, 0)

    def test_raising_subscriber_is_dropped_and_logged_others_still_served(self) -> None:
        logged = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        bad, good = Recorder(), Recorder()
        bad.raise_on = 1
        self.hub.subscribe(bad, None)
        self.hub.subscribe(good, None)
        self.hub.publish(key("a", "1"))
        self.hub.publish(key("a", "2"))     # bad raises here: publish must not
        self.hub.publish(key("a", "3"))
        self.assertEqual(bad.digits(), "1")
        self.assertEqual(bad.closed, ["error"])
        self.assertEqual(good.digits(), "123")
        self.assertEqual(self.hub.dropped, 1)
        self.assertEqual(self.hub.subscribers, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertTrue(any(e.get("log_failure") is not None for e in logged))

    def test_publish_of_garbage_never_raises(self) -> None:
        r = Recorder()
        self.hub.subscribe(r, None)
        self.hub.publish("not an event")  # type: ignore[arg-type]
        self.hub.publish(None)  # type: ignore[arg-type]
        self.assertEqual(r.events, [])
        self.assertEqual(self.hub.invalid, 2)
        self.assertEqual(self.hub.published, 0)
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 2)

    def test_subscriber_that_publishes_reentrantly_keeps_order(self) -> None:
        seen: list[str] = []

        class Echo(Recorder):
            def event_received(inner, event: AgentEvent, data: bytes) -> None:
                seen.append(json.loads(data)["event"])
                if isinstance(event, DtmfEventReceived) and event.event == "1":
                    self.hub.publish(key("a", "2"))

        self.hub.publish(key("a", "0"))
        self.hub.subscribe(Echo(), "a")   # replay of "0"
        self.hub.publish(key("a", "1"))
        self.assertEqual(seen, ["0", "1", "2"])


class FlowControlTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.hub = EventHub(self.clock, queue_limit=3)

    def test_paused_subscriber_gets_queue_on_resume(self) -> None:
        r = Recorder()
        sub = self.hub.subscribe(r, None)
        sub.pause()
        for digit in "123":
            self.hub.publish(key("a", digit))
        self.assertEqual(r.events, [])
        self.assertEqual(sub.queued, 3)
        sub.resume()
        self.assertEqual(r.digits(), "123")
        self.assertEqual(sub.queued, 0)

    def test_overflow_drops_the_slow_subscriber_not_the_others(self) -> None:
        slow, fast = Recorder(), Recorder()
        sub = self.hub.subscribe(slow, None)
        self.hub.subscribe(fast, None)
        sub.pause()
        for digit in "12345":
            self.hub.publish(key("a", digit))
        self.assertEqual(slow.closed, ["overflow"])
        self.assertFalse(sub.active)
        self.assertEqual(fast.digits(), "12345")
        self.assertEqual(self.hub.dropped, 1)
        sub.resume()                        # too late: nothing is delivered
        self.assertEqual(slow.events, [])

    def test_pause_during_delivery(self) -> None:
        r = Recorder()
        r.pause_after_each = True
        r.sub = sub = self.hub.subscribe(r, None)
        for digit in "123":
            self.hub.publish(key("a", digit))
        self.assertEqual(r.digits(), "1")
        sub.resume()
        self.assertEqual(r.digits(), "12")
        sub.resume()
        sub.resume()
        self.assertEqual(r.digits(), "123")

    def test_replay_does_not_count_against_queue_limit(self) -> None:
        for digit in "1234567890":
            self.hub.publish(key("a", digit))
        r = Recorder()
        r.pause_after_each = True
        r.sub = sub = self.hub.subscribe(r, "a")
        self.assertTrue(sub.active)
        self.hub.publish(key("a", "#"))
        self.hub.publish(key("a", "*"))
        self.assertTrue(sub.active)
        r.pause_after_each = False
        sub.resume()
        self.assertEqual(r.digits(), "1234567890#*")
        self.assertEqual(r.closed, [])


class ReplayTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.hub = EventHub(self.clock, replay_per_call=4, replay_seconds=60.0)

    def test_late_call_subscriber_gets_buffer_then_live(self) -> None:
        self.hub.publish(started("a"))
        self.hub.publish(key("a", "1"))
        self.hub.publish(key("b", "9"))
        r = Recorder()
        self.hub.subscribe(r, "a")
        self.hub.publish(key("a", "2"))
        self.assertEqual(r.events, [started("a"), key("a", "1"), key("a", "2")])

    def test_replayed_json_is_the_live_json(self) -> None:
        # the buffer keeps events only; a replay encodes them again, to the same bytes
        live = Recorder()
        self.hub.subscribe(live, None)
        self.hub.publish(started("a"))
        self.hub.publish(key("a", "1"))
        late, late_all = Recorder(), Recorder()
        self.hub.subscribe(late, "a")
        self.hub.subscribe(late_all, None)
        self.assertEqual((late.events, late.data), (live.events, live.data))
        self.assertEqual((late_all.events, late_all.data), (live.events, live.data))
        self.assertEqual(live.data[0], encode(started("a")))

    def test_events_nobody_listens_to_are_encoded_only_on_replay(self) -> None:
        import sbc.agent.hub as hub_module

        encoded: list[AgentEvent] = []

        def counting(event: AgentEvent) -> bytes:
            encoded.append(event)
            return encode(event)

        self.patch(hub_module, "encode", counting)
        self.hub.publish(started("a"))
        self.hub.publish(key("a", "1"))
        self.assertEqual(encoded, [])
        self.assertEqual(self.hub.published, 2)
        late = Recorder()
        self.hub.subscribe(late, "a")
        self.assertEqual(late.data, [encode(started("a")), encode(key("a", "1"))])
        self.hub.publish(key("a", "2"))  # someone listens now: encoded at publish
        self.hub.publish(key("b", "3"))  # nobody listens to call b
        self.assertEqual(late.data[-1], encode(key("a", "2")))
        self.assertEqual(encoded, [started("a"), key("a", "1"), key("a", "2")])

    def test_replay_is_bounded_per_call(self) -> None:
        self.hub.publish(started("a"))
        for digit in "123456":
            self.hub.publish(key("a", digit))
        r = Recorder()
        self.hub.subscribe(r, "a")
        self.assertEqual(r.digits(), "3456")
        self.assertNotIn(started("a"), r.events)

    def test_replay_per_call_zero_means_no_replay(self) -> None:
        hub = EventHub(self.clock, replay_per_call=0)
        hub.publish(started("a"))
        r = Recorder()
        hub.subscribe(r, "a")
        hub.subscribe(r, None)
        hub.publish(key("a", "1"))
        self.assertEqual(r.events, [key("a", "1"), key("a", "1")])

    def test_all_calls_replay_covers_recent_calls_in_publish_order(self) -> None:
        self.hub.publish(started("old"))
        self.clock.advance(61)
        self.hub.publish(started("a"))
        self.hub.publish(started("b"))
        self.hub.publish(key("a", "1"))
        self.hub.publish(key("old", "7"))
        self.hub.publish(key("b", "2"))
        r = Recorder()
        self.hub.subscribe(r, None)
        self.assertEqual(r.events, [started("a"), started("b"), key("a", "1"), key("b", "2")])

    def test_ended_call_kept_for_replay_seconds_then_forgotten(self) -> None:
        self.hub.publish(started("a"))
        self.hub.publish(ended("a"))
        self.clock.advance(59)
        early = Recorder()
        self.hub.subscribe(early, "a")
        self.assertEqual(early.events, [started("a"), ended("a")])
        self.assertEqual(self.hub.calls, 1)
        self.clock.advance(1.5)
        self.assertEqual(self.hub.calls, 0)
        late = Recorder()
        self.hub.subscribe(late, "a")
        self.assertEqual(late.events, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_call_subscription_finishes_after_call_ended(self) -> None:
        r = Recorder()
        self.hub.subscribe(r, "a")
        self.hub.publish(started("a"))
        self.hub.publish(ended("a"))
        self.assertEqual(r.closed, ["call ended"])
        self.assertEqual(self.hub.subscribers, 0)
        self.assertEqual(self.hub.dropped, 0)
        self.hub.publish(key("a", "1"))
        self.assertEqual(r.events, [started("a"), ended("a")])

    def test_reused_call_id_starts_a_new_buffer(self) -> None:
        self.hub.publish(started("a"))
        self.hub.publish(key("a", "1"))
        self.hub.publish(ended("a"))
        self.hub.publish(started("a", at=5.0))
        r = Recorder()
        self.hub.subscribe(r, "a")
        self.assertEqual(r.events, [started("a", at=5.0)])
        self.clock.advance(120)           # the old call's timer must not forget the new call
        self.assertEqual(self.hub.calls, 1)

    def test_max_calls_evicts_the_oldest(self) -> None:
        hub = EventHub(self.clock, max_calls=2)
        for call_id in "abc":
            hub.publish(started(call_id))
        self.assertEqual(hub.calls, 2)
        self.assertEqual(hub.evicted, 1)
        r = Recorder()
        hub.subscribe(r, "a")
        self.assertEqual(r.events, [])

    def test_close_ends_everything(self) -> None:
        r1, r2 = Recorder(), Recorder()
        self.hub.subscribe(r1, None)
        self.hub.subscribe(r2, "a")
        self.hub.publish(ended("a"))      # r2 finishes here
        self.hub.publish(started("b"))
        self.hub.close()
        self.assertEqual(r1.closed, ["shutdown"])
        self.assertEqual(r2.closed, ["call ended"])
        self.assertEqual(self.hub.calls, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class PropertyTests(SynchronousTestCase):
    @given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("0123456789#"),
                              st.sampled_from(["publish", "pause", "resume", "advance"])), max_size=60),
           st.integers(1, 8))
    def test_delivered_in_order_exactly_once_or_dropped(self, steps: list[tuple[str, str, str]],
                                                        limit: int) -> None:
        clock = Clock()
        hub = EventHub(clock, queue_limit=limit, replay_per_call=1000)
        r = Recorder()
        sub = hub.subscribe(r, None)
        sent: list[AgentEvent] = []
        for call_id, digit, action in steps:
            if action == "pause":
                sub.pause()
            elif action == "resume":
                sub.resume()
            elif action == "advance":
                clock.advance(1)
            else:
                event = key(call_id, digit, float(len(sent)))
                sent.append(event)
                hub.publish(event)
        sub.resume()
        if r.closed:
            self.assertEqual(r.closed, ["overflow"])
            self.assertEqual(r.events, sent[:len(r.events)])
        else:
            self.assertEqual(r.events, sent)
        self.assertEqual(hub.published, len(sent))
