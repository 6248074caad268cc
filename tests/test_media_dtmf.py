# -*- test-case-name: tests.test_media_dtmf -*-
"""DigitCollector: audits for every key, submits on the submit key, idle time and speech."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.media.core.dtmf import DigitAudit, DigitCollector, DigitSubmit
from sbc.media.core.rfc4733 import DIGITS


class SubmitKeyTests(SynchronousTestCase):
    def test_hash_submits_without_hash(self) -> None:
        c = DigitCollector()
        out = []
        for i, d in enumerate("1234#"):
            out += c.key(d, 10.0 + i)
        self.assertEqual(
            out,
            [DigitAudit("1", 10.0), DigitAudit("2", 11.0), DigitAudit("3", 12.0), DigitAudit("4", 13.0),
             DigitAudit("#", 14.0), DigitSubmit("1234", "#", 14.0)],
        )
        self.assertFalse(c.buffering)
        self.assertIsNone(c.next_deadline())
        self.assertIsNone(c.handle_timer(100.0), "nothing left for the idle timer")

    def test_hash_on_empty_buffer_submits_nothing(self) -> None:
        c = DigitCollector()
        self.assertEqual(c.key("#", 1.0), [DigitAudit("#", 1.0)])
        self.assertEqual(c.key("#", 2.0), [DigitAudit("#", 2.0)])
        self.assertEqual(c.key("9", 3.0)[1:], [])
        self.assertEqual(c.key("#", 4.0), [DigitAudit("#", 4.0), DigitSubmit("9", "#", 4.0)])
        self.assertEqual(c.key("#", 5.0), [DigitAudit("#", 5.0)], "buffer emptied by the submit")

    def test_configurable_submit_key(self) -> None:
        c = DigitCollector(submit_key="*")
        self.assertEqual(c.key("#", 1.0), [DigitAudit("#", 1.0)])
        self.assertTrue(c.buffering)
        self.assertEqual(c.key("*", 2.0), [DigitAudit("*", 2.0), DigitSubmit("#", "*", 2.0)])

    def test_no_submit_key(self) -> None:
        for none in ("", None):
            c = DigitCollector(submit_key=none)
            c.key("#", 1.0)
            self.assertEqual(c.handle_timer(3.5), DigitSubmit("#", "idle", 3.5))

    def test_letter_submit_key(self) -> None:
        c = DigitCollector(submit_key="d")
        c.key("1", 0.0)
        self.assertEqual(c.key("D", 1.0), [DigitAudit("D", 1.0), DigitSubmit("1", "D", 1.0)])

    def test_bad_arguments(self) -> None:
        self.assertRaises(ValueError, DigitCollector, submit_key="x")
        self.assertRaises(ValueError, DigitCollector, submit_key="##")
        self.assertRaises(ValueError, DigitCollector, idle_timeout=0)
        self.assertRaises(ValueError, DigitCollector, max_digits=0)
        self.assertRaises(ValueError, DigitCollector().key, "E", 1.0)
        self.assertRaises(ValueError, DigitCollector().key, "", 1.0)


class IdleTests(SynchronousTestCase):
    def test_idle_after_last_key(self) -> None:
        c = DigitCollector()
        c.key("1", 10.0)
        self.assertEqual(c.next_deadline(), 12.5)
        c.key("2", 12.0)  # restarts the wait
        self.assertEqual(c.next_deadline(), 14.5)
        self.assertIsNone(c.handle_timer(12.5), "the first key's deadline is gone")
        self.assertIsNone(c.handle_timer(14.49))
        self.assertTrue(c.buffering)
        self.assertEqual(c.handle_timer(14.5), DigitSubmit("12", "idle", 14.5))
        self.assertFalse(c.buffering)
        self.assertIsNone(c.next_deadline())
        self.assertIsNone(c.handle_timer(20.0))

    def test_configurable_idle_time(self) -> None:
        c = DigitCollector(idle_timeout=5.0)
        c.key("7", 0.0)
        self.assertIsNone(c.handle_timer(4.9))
        self.assertEqual(c.handle_timer(5.0), DigitSubmit("7", "idle", 5.0))

    def test_idle_disabled(self) -> None:
        c = DigitCollector(idle_timeout=None)
        c.key("7", 0.0)
        self.assertIsNone(c.next_deadline())
        self.assertIsNone(c.handle_timer(1000.0))
        self.assertEqual(c.speech(1001.0), DigitSubmit("7", "speech", 1001.0))

    def test_overdue_idle_submitted_before_next_key(self) -> None:
        c = DigitCollector()
        c.key("1", 0.0)
        self.assertEqual(c.key("2", 3.0), [DigitSubmit("1", "idle", 3.0), DigitAudit("2", 3.0)])
        self.assertEqual(c.next_deadline(), 5.5)
        self.assertEqual(c.key("#", 5.5), [DigitSubmit("2", "idle", 5.5), DigitAudit("#", 5.5)])
        c.key("3", 10.0)
        self.assertEqual(c.speech(13.0), DigitSubmit("3", "idle", 13.0))

    def test_submit_key_cancels_idle(self) -> None:
        c = DigitCollector()
        c.key("1", 0.0)
        c.key("#", 1.0)
        self.assertIsNone(c.next_deadline())
        c.key("2", 3.0)
        self.assertEqual(c.next_deadline(), 5.5)


class SpeechTests(SynchronousTestCase):
    def test_speech_submits_buffer(self) -> None:
        c = DigitCollector()
        c.key("4", 1.0)
        c.key("2", 1.5)
        self.assertEqual(c.speech(2.0), DigitSubmit("42", "speech", 2.0))
        self.assertFalse(c.buffering)
        self.assertIsNone(c.next_deadline())
        self.assertIsNone(c.handle_timer(10.0))

    def test_speech_on_empty_buffer(self) -> None:
        c = DigitCollector()
        self.assertIsNone(c.speech(1.0))
        c.key("#", 2.0)
        self.assertIsNone(c.speech(3.0))


class LengthTests(SynchronousTestCase):
    def test_flood_is_submitted_in_pieces(self) -> None:
        c = DigitCollector(max_digits=4)
        out = []
        for i in range(9):
            out += c.key("5", float(i))
        submits = [o for o in out if isinstance(o, DigitSubmit)]
        self.assertEqual(submits, [DigitSubmit("5555", "length", 3.0), DigitSubmit("5555", "length", 7.0)])
        self.assertEqual(c.handle_timer(20.0), DigitSubmit("5", "idle", 20.0))

    def test_clear(self) -> None:
        c = DigitCollector()
        c.key("1", 0.0)
        c.clear()
        self.assertFalse(c.buffering)
        self.assertIsNone(c.handle_timer(10.0))


class PropertyTests(SynchronousTestCase):
    @given(st.lists(st.tuples(st.sampled_from(DIGITS), st.floats(0.0, 4.0), st.booleans(), st.booleans()),
                    max_size=40))
    def test_every_key_audited_and_every_digit_submitted_once(
        self, presses: list[tuple[str, float, bool, bool]]
    ) -> None:
        """Whatever the timing, and whether or not the idle timer fires on time."""
        c = DigitCollector()
        now = 0.0
        audits: list[str] = []
        text = ""
        expected = ""
        for digit, wait, speak, timer_late in presses:
            deadline = c.next_deadline()
            now += wait
            if deadline is not None and deadline <= now and not timer_late:
                submit = c.handle_timer(now)
                assert submit is not None
                self.assertEqual(submit.trigger, "idle")
                text += submit.text
            if speak:
                s = c.speech(now)
                text += s.text if s is not None else ""
            for event in c.key(digit, now):
                if isinstance(event, DigitAudit):
                    audits.append(event.digit)
                else:
                    self.assertNotEqual(event.text, "")
                    self.assertNotIn("#", event.text)
                    self.assertIn(event.trigger, ("#", "idle", "length"))
                    text += event.text
            if digit != "#":
                expected += digit
        final = c.speech(now)
        text += final.text if final is not None else ""
        self.assertEqual(audits, [p[0] for p in presses])
        self.assertEqual(text, expected)
