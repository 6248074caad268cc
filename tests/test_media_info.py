# -*- test-case-name: tests.test_media_info -*-
"""DTMF in SIP INFO bodies."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.media.core.info import parse_dtmf_info
from sbc.media.core.rfc4733 import DIGITS


class DtmfRelayTests(SynchronousTestCase):
    def test_signal_and_duration(self) -> None:
        self.assertEqual(parse_dtmf_info("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n"), "5")

    def test_numeric_star_and_hash(self) -> None:
        self.assertEqual(parse_dtmf_info("application/dtmf-relay", b"Signal=10\r\nDuration=100"), "*")
        self.assertEqual(parse_dtmf_info("application/dtmf-relay", b"Signal=11\r\nDuration=100"), "#")
        self.assertEqual(parse_dtmf_info("application/dtmf-relay", b"Signal=12\r\n"), "A")
        self.assertEqual(parse_dtmf_info("application/dtmf-relay", b"Signal=15\r\n"), "D")

    def test_character_signals_and_spacing(self) -> None:
        self.assertEqual(parse_dtmf_info("application/dtmf-relay", b"Signal= *\nDuration= 250\n"), "*")
        self.assertEqual(parse_dtmf_info("application/dtmf-relay", b"Duration=250\nsignal = #"), "#")
        self.assertEqual(parse_dtmf_info("application/dtmf-relay", b"Signal=b\r\n"), "B")

    def test_content_type_parameters_and_case(self) -> None:
        self.assertEqual(parse_dtmf_info("Application/DTMF-Relay; charset=utf-8", b"Signal=0\r\n"), "0")

    def test_invalid(self) -> None:
        for body in (b"", b"Duration=160", b"Signal=", b"Signal=16", b"Signal=E", b"Signal=123", b"Signal=-1",
                     b"Signal=55", b"Signal 5"):
            self.assertIsNone(parse_dtmf_info("application/dtmf-relay", body), body)
        self.assertIsNone(parse_dtmf_info("application/dtmf-relay", b"Signal=5\r\n" + b"x" * 2000))


class DtmfTests(SynchronousTestCase):
    def test_plain_digit(self) -> None:
        self.assertEqual(parse_dtmf_info("application/dtmf", b"5"), "5")
        self.assertEqual(parse_dtmf_info("application/dtmf", b"#\r\n"), "#")
        self.assertEqual(parse_dtmf_info("application/dtmf", b"11"), "#")

    def test_invalid(self) -> None:
        self.assertIsNone(parse_dtmf_info("application/dtmf", b""))
        self.assertIsNone(parse_dtmf_info("application/dtmf", b"55"))
        self.assertIsNone(parse_dtmf_info("application/dtmf", b"Signal=5"))


class OtherTypesTests(SynchronousTestCase):
    def test_not_dtmf(self) -> None:
        self.assertIsNone(parse_dtmf_info("application/json", b'{"Signal": 5}'))
        self.assertIsNone(parse_dtmf_info("text/plain", b"Signal=5"))
        self.assertIsNone(parse_dtmf_info("", b"5"))
        self.assertIsNone(parse_dtmf_info("application/dtmf-relayx", b"Signal=5"))

    @given(st.sampled_from(["application/dtmf-relay", "application/dtmf", "x/y"]), st.binary(max_size=64))
    def test_arbitrary_bodies_never_raise(self, content_type: str, body: bytes) -> None:
        result = parse_dtmf_info(content_type, body)
        self.assertTrue(result is None or result in DIGITS)
