# -*- test-case-name: tests.test_events_schema -*-
"""Tests for sbc.events.schema: the agent event shapes and their JSON."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.events import schema
from sbc.events.schema import (
    CallEnded,
    CallStarted,
    DtmfEventReceived,
    TextSubmitted,
    encode,
    to_json,
)

finite_times = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)
texts = st.text(max_size=40)
# Includes lone surrogates, which a surrogateescape-decoded SIP header can hold.
any_text = st.text(alphabet=st.characters(), max_size=40)


@st.composite
def events(draw: st.DrawFn) -> schema.AgentEvent:
    call_id = draw(any_text)
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return DtmfEventReceived(call_id, draw(st.sampled_from(sorted(schema.DTMF_KEYS))), draw(finite_times))
    if kind == 1:
        return TextSubmitted(call_id, draw(any_text), draw(st.sampled_from(["#", "*", "idle", "speech"])),
                             draw(finite_times))
    if kind == 2:
        return CallStarted(call_id, draw(finite_times), draw(texts), draw(texts), "inbound", draw(any_text),
                           draw(any_text), draw(st.lists(st.tuples(any_text, any_text), max_size=5)))
    return CallEnded(call_id, draw(finite_times), draw(any_text),
                     draw(st.none() | finite_times), draw(st.none() | st.integers(100, 699)),
                     draw(st.none() | st.integers(100, 699)))


class ShapeTests(SynchronousTestCase):
    def test_dtmf_event_shape(self) -> None:
        event = DtmfEventReceived(call_id="c1", event="5", received_at=1730000000.9)
        self.assertEqual(to_json(event), {
            "type": "input_audio_buffer.dtmf_event_received",
            "event": "5",
            "received_at": 1730000000,
            "call_id": "c1",
        })

    def test_received_at_is_an_int(self) -> None:
        body = json.loads(encode(DtmfEventReceived("c1", "#", 1730000000.999)))
        self.assertIs(type(body["received_at"]), int)
        self.assertEqual(body["received_at"], 1730000000)

    def test_text_submitted_shape(self) -> None:
        event = TextSubmitted(call_id="c1", text="1234", trigger="#", at=1730000001.0)
        self.assertEqual(to_json(event), {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user",
                     "content": [{"type": "input_text", "text": "1234"}]},
            "call_id": "c1",
            "trigger": "#",
        })

    def test_call_started_shape(self) -> None:
        event = CallStarted(call_id="c1", at=1730000000.1234, trunk="pbx1", vendor="teams",
                            direction="inbound", caller="sip:100@pbx", callee="sip:200@sbc",
                            headers=[("From", "<sip:100@pbx>;tag=a"), ("X-Account", "42")])
        self.assertEqual(to_json(event), {
            "type": "call.started",
            "call_id": "c1",
            "at": 1730000000.123,
            "trunk": "pbx1",
            "vendor": "teams",
            "direction": "inbound",
            "caller": "sip:100@pbx",
            "callee": "sip:200@sbc",
            "headers": [{"name": "From", "value": "<sip:100@pbx>;tag=a"},
                        {"name": "X-Account", "value": "42"}],
        })
        self.assertEqual(event.headers, (("From", "<sip:100@pbx>;tag=a"), ("X-Account", "42")))

    def test_call_ended_shape(self) -> None:
        event = CallEnded(call_id="c1", at=1730000042.5, reason="bye from a", duration=41.25,
                          a_status=200, b_status=None)
        self.assertEqual(to_json(event), {
            "type": "call.ended", "call_id": "c1", "at": 1730000042.5, "reason": "bye from a",
            "duration": 41.25, "a_status": 200, "b_status": None,
        })

    def test_encode_is_compact_utf8(self) -> None:
        data = encode(TextSubmitted("café", "12", "idle", 0.0))
        self.assertNotIn(b" ", data)
        self.assertIn("café".encode("utf-8"), data)
        self.assertFalse(data.endswith(b"\n"))

    def test_lone_surrogate_is_replaced(self) -> None:
        data = encode(CallStarted("c", 0, "t", "v", "inbound", "a\udcff", "b", [("X", "\udc80")]))
        body = json.loads(data.decode("utf-8"))
        self.assertEqual(body["caller"], "a?")
        self.assertEqual(body["headers"], [{"name": "X", "value": "?"}])

    def test_events_are_frozen(self) -> None:
        event = DtmfEventReceived("c1", "1", 0)
        with self.assertRaises(AttributeError):
            event.event = "2"  # type: ignore[misc]

    def test_not_an_event(self) -> None:
        self.assertRaises(TypeError, to_json, {"type": "call.started"})
        self.assertRaises(TypeError, encode, None)


class ValidationTests(SynchronousTestCase):
    def test_bad_digit(self) -> None:
        self.assertRaises(ValueError, DtmfEventReceived, "c", "E", 0)
        self.assertRaises(ValueError, DtmfEventReceived, "c", "12", 0)
        self.assertRaises(TypeError, DtmfEventReceived, "c", 5, 0)

    def test_non_finite_times(self) -> None:
        for bad in (math.nan, math.inf, -math.inf):
            self.assertRaises(ValueError, DtmfEventReceived, "c", "1", bad)
            self.assertRaises(ValueError, CallEnded, "c", bad, "r")
        self.assertRaises(ValueError, CallEnded, "c", 0, "r", duration=math.nan)

    def test_wrong_types(self) -> None:
        self.assertRaises(TypeError, DtmfEventReceived, b"c", "1", 0)
        self.assertRaises(TypeError, DtmfEventReceived, "c", "1", "0")
        self.assertRaises(TypeError, DtmfEventReceived, "c", "1", True)
        self.assertRaises(TypeError, TextSubmitted, "c", b"12", "#", 0)
        self.assertRaises(TypeError, CallEnded, "c", 0, "r", a_status="200")
        self.assertRaises(TypeError, CallEnded, "c", 0, "r", a_status=True)

    def test_lenient_values_from_the_b2bua(self) -> None:
        # The B2BUA builds these while tearing a call down: odd but typed values must not raise.
        self.assertEqual(CallEnded("c", 0, "r", duration=-1.0).duration, 0.0)
        self.assertEqual(to_json(CallEnded("c", 0, "r", b_status=99, a_status=0))["b_status"], 99)

    def test_bad_headers(self) -> None:
        for bad in ("From: x", [("From",)], [("From", b"x")], [("a", "b", "c")], 5, [5]):
            self.assertRaises(TypeError, CallStarted, "c", 0, "t", "v", "inbound", "a", "b", bad)


class PropertyTests(SynchronousTestCase):
    @given(events())
    def test_encode_is_valid_json_matching_to_json(self, event: schema.AgentEvent) -> None:
        data = encode(event)
        body = json.loads(data.decode("utf-8"))   # strict UTF-8: raises on invalid bytes
        self.assertEqual(body["call_id"], to_json(event)["call_id"].encode("utf-8", "replace").decode())
        self.assertEqual(body["type"], to_json(event)["type"])
        self.assertNotIn(b"NaN", data)

    @given(st.text(max_size=20), finite_times)
    def test_received_at_floor(self, call_id: str, at: float) -> None:
        body = json.loads(encode(DtmfEventReceived(call_id, "0", at)))
        self.assertEqual(body["received_at"], math.floor(at))
        self.assertEqual(body["call_id"], call_id)
