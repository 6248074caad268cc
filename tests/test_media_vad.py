# -*- test-case-name: tests.test_media_vad -*-
"""G.711 tables, the voice activity detector and in-band DTMF (Goertzel), on synthesized audio."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.media.core.g711 import (
    ALAW_TO_LINEAR,
    ULAW_TO_LINEAR,
    alaw_to_linear,
    decoder_table,
    linear_to_alaw,
    linear_to_ulaw,
    ulaw_to_linear,
)
from sbc.media.core.goertzel import InbandDtmfDetector, dtmf_digit
from sbc.media.core.rfc4733 import DIGITS
from sbc.media.core.vad import VoiceActivityDetector
from tests.media_strategies import FRAME, dtmf, g711_frames, ints, mix, noise, speech_like, tone


def starts(vad: VoiceActivityDetector, frames: list[bytes], codec: str = "PCMU") -> list[int]:
    """Indexes of the frames on which ``feed`` said speech started (20 ms apart)."""
    return [i for i, f in enumerate(frames) if vad.feed(f, codec, i * 0.02)]


def silence(ms: float) -> list[float]:
    return [0.0] * int(ms * 8)


class G711Tests(SynchronousTestCase):
    def test_known_values(self) -> None:
        self.assertEqual((ULAW_TO_LINEAR[0xFF], ULAW_TO_LINEAR[0x7F]), (0, 0))
        self.assertEqual((ULAW_TO_LINEAR[0x80], ULAW_TO_LINEAR[0x00]), (32124, -32124))
        self.assertEqual((ALAW_TO_LINEAR[0xD5], ALAW_TO_LINEAR[0x55]), (8, -8))
        self.assertEqual((ALAW_TO_LINEAR[0xAA], ALAW_TO_LINEAR[0x2A]), (32256, -32256))
        self.assertEqual(linear_to_ulaw([0, 32767, -32768]), b"\xff\x80\x00")
        self.assertEqual(linear_to_alaw([0, 32767, -32768]), b"\xd5\xaa\x2a")

    def test_encode_decode_within_half_a_step(self) -> None:
        for encode, table in ((linear_to_ulaw, ULAW_TO_LINEAR), (linear_to_alaw, ALAW_TO_LINEAR)):
            samples = list(range(-32768, 32768, 37))
            decoded = [table[b] for b in encode(samples)]
            for x, y in zip(samples, decoded):
                self.assertLessEqual(abs(x - y), max(16, abs(x) // 16), (encode.__name__, x, y))

    def test_tables_are_fixed_points(self) -> None:
        for encode, table in ((linear_to_ulaw, ULAW_TO_LINEAR), (linear_to_alaw, ALAW_TO_LINEAR)):
            self.assertEqual([table[b] for b in encode(table)], list(table))

    def test_decoders(self) -> None:
        payload = bytes(range(256))
        self.assertEqual(list(ulaw_to_linear(payload)), list(ULAW_TO_LINEAR))
        self.assertEqual(list(alaw_to_linear(payload)), list(ALAW_TO_LINEAR))
        self.assertIs(decoder_table("pcma"), ALAW_TO_LINEAR)
        self.assertRaises(ValueError, decoder_table, "G729")

    @given(st.lists(st.integers(-100000, 100000), max_size=50))
    def test_encoders_clip_and_never_raise(self, samples: list[int]) -> None:
        self.assertEqual(len(linear_to_ulaw(samples)), len(samples))
        self.assertEqual(len(linear_to_alaw(samples)), len(samples))


class VadSpeechTests(SynchronousTestCase):
    def test_speech_after_silence_starts_within_100ms(self) -> None:
        for codec in ("PCMU", "PCMA"):
            for background in (silence(1000), noise(1000, 100.0)):
                frames = g711_frames(background + speech_like(1000), codec)
                got = starts(VoiceActivityDetector(), frames, codec)
                self.assertEqual(len(got), 1, (codec, got))
                latency = (got[0] + 1) * 20 - 1000
                self.assertTrue(60 <= latency <= 100, (codec, latency))

    def test_speech_over_steady_noise(self) -> None:
        frames = g711_frames(mix(noise(2000, 700.0), silence(1000) + speech_like(1000, 6000.0)))
        got = starts(VoiceActivityDetector(), frames)
        self.assertEqual(len(got), 1, got)
        self.assertLessEqual((got[0] + 1) * 20 - 1000, 100)

    def test_true_once_per_utterance(self) -> None:
        audio = silence(500) + speech_like(1500) + silence(800) + speech_like(600, seed=9)
        got = starts(VoiceActivityDetector(), g711_frames(audio))
        self.assertEqual(len(got), 2, got)
        self.assertLess(got[0], 35)
        self.assertGreater(got[1], (500 + 1500 + 800) // 20)

    def test_reset(self) -> None:
        vad = VoiceActivityDetector()
        frames = g711_frames(silence(200) + speech_like(400))
        self.assertEqual(len(starts(vad, frames)), 1)
        self.assertTrue(vad.speaking)
        vad.reset()
        self.assertFalse(vad.speaking)
        self.assertEqual(len(starts(vad, frames)), 1)


class VadRejectTests(SynchronousTestCase):
    def test_silence_and_low_noise_never_start(self) -> None:
        for sensitivity in (0.5, 1.0):
            for audio in (silence(3000), noise(3000, 60.0), noise(3000, 150.0, seed=3)):
                for codec in ("PCMU", "PCMA"):
                    vad = VoiceActivityDetector(sensitivity)
                    self.assertEqual(starts(vad, g711_frames(audio, codec), codec), [], (sensitivity, codec))
        idle = bytes([0xFF]) * FRAME
        vad = VoiceActivityDetector(1.0)
        self.assertFalse(any(vad.feed(idle, "PCMU", i * 0.02) for i in range(200)))

    def test_steady_loud_noise_is_the_floor(self) -> None:
        vad = VoiceActivityDetector()
        self.assertEqual(starts(vad, g711_frames(noise(3000, 1000.0))), [])

    def test_clicks_do_not_start(self) -> None:
        click = tone((1000.0,), (20000.0,), 20)
        audio = (silence(200) + click) * 5 + silence(200) + click * 2 + silence(200)
        self.assertEqual(starts(VoiceActivityDetector(1.0), g711_frames(audio)), [])

    def test_dtmf_tones_are_not_speech(self) -> None:
        audio: list[float] = silence(300)
        for digit in DIGITS:
            audio += dtmf(digit, 100, start=len(audio)) + silence(100)
        audio += dtmf("5", 2000) + silence(100) + dtmf("#", 500, amplitude=15000.0, twist_db=4.0)
        for codec in ("PCMU", "PCMA"):
            for sensitivity in (0.5, 1.0):
                frames = g711_frames(mix(audio, noise(len(audio) / 8, 50.0)), codec)
                self.assertEqual(starts(VoiceActivityDetector(sensitivity), frames, codec), [], (codec, sensitivity))

    def test_dtmf_first_then_speech(self) -> None:
        audio = dtmf("1", 300) + silence(300) + speech_like(500)
        got = starts(VoiceActivityDetector(), g711_frames(audio))
        self.assertEqual(len(got), 1)
        self.assertLessEqual((got[0] + 1) * 20 - 600, 100)


class VadSensitivityTests(SynchronousTestCase):
    def test_sensitivity_moves_the_threshold(self) -> None:
        quiet = g711_frames(silence(500) + speech_like(1000, rms=350.0))  # about -40 dBov
        self.assertEqual(len(starts(VoiceActivityDetector(0.9), quiet)), 1)
        self.assertEqual(starts(VoiceActivityDetector(0.3), quiet), [])
        self.assertGreater(VoiceActivityDetector(0.3).floor_db, VoiceActivityDetector(0.9).floor_db)
        self.assertGreater(VoiceActivityDetector(0.3).margin_db, VoiceActivityDetector(0.9).margin_db)

    def test_zero_is_deaf(self) -> None:
        loud = g711_frames(silence(200) + speech_like(1000, rms=8000.0))
        self.assertEqual(starts(VoiceActivityDetector(0.0), loud), [])

    def test_bad_arguments(self) -> None:
        self.assertRaises(ValueError, VoiceActivityDetector, 1.5)
        self.assertRaises(ValueError, VoiceActivityDetector, -0.1)
        self.assertRaises(ValueError, VoiceActivityDetector, 0.5, 0)
        self.assertRaises(ValueError, VoiceActivityDetector().feed, b"\xff" * 160, "G722", 0.0)
        self.assertFalse(VoiceActivityDetector().feed(b"", "PCMU", 0.0))
        frames = g711_frames(silence(200) + speech_like(300))
        self.assertEqual(len(starts(VoiceActivityDetector(), frames, "pcmu")), 1, "codec names are case-insensitive")

    @given(st.lists(st.binary(min_size=0, max_size=320), max_size=30), st.sampled_from(["PCMU", "PCMA"]),
           st.floats(0.0, 1.0))
    def test_arbitrary_payloads_never_raise(self, payloads: list[bytes], codec: str, sensitivity: float) -> None:
        vad = VoiceActivityDetector(sensitivity)
        results = [vad.feed(p, codec, i * 0.02) for i, p in enumerate(payloads)]
        self.assertLessEqual(sum(results), max(1, len(payloads) // 3))


def detect(audio: list[float], chunk: int = FRAME) -> str:
    detector = InbandDtmfDetector()
    samples = ints(audio)
    keys = []
    for i in range(0, len(samples), chunk):
        key = detector.feed(samples[i : i + chunk], i / 8000)
        if key is not None:
            keys.append(key.digit)
    return "".join(keys)


class GoertzelTests(SynchronousTestCase):
    def decode(self, audio: list[float]) -> list[int]:
        """Through G.711, as the relay would see it."""
        return list(ulaw_to_linear(linear_to_ulaw(ints(audio))))

    def test_each_digit_once_per_burst(self) -> None:
        audio: list[float] = silence(100)
        for digit in DIGITS:
            audio += dtmf(digit, 100, start=len(audio)) + silence(80)
        self.assertEqual(detect(self.decode(audio)), DIGITS)

    def test_keypress_fields(self) -> None:
        detector = InbandDtmfDetector()
        samples = self.decode(dtmf("7", 100))
        keys = [detector.feed(samples[i : i + FRAME], 5.0 + i / 8000) for i in range(0, len(samples), FRAME)]
        found = [k for k in keys if k is not None]
        self.assertEqual(len(found), 1)
        self.assertEqual((found[0].digit, found[0].source), ("7", "inband"))
        self.assertAlmostEqual(found[0].at, 5.02)

    def test_same_digit_twice(self) -> None:
        audio = dtmf("3", 120) + silence(60) + dtmf("3", 120) + silence(60) + dtmf("3", 1500)
        self.assertEqual(detect(self.decode(audio)), "333")

    def test_level_twist_detune_and_chunking(self) -> None:
        for amplitude, twist, detune, chunk in ((3000.0, 4.0, 1.015, 80), (12000.0, -4.0, 0.985, 240),
                                                (1200.0, 0.0, 1.0, 33)):
            audio: list[float] = []
            for digit in "159#*D":
                audio += dtmf(digit, 80, amplitude, twist, len(audio), detune) + silence(70)
            audio = mix(audio, noise(len(audio) / 8, 80.0))
            self.assertEqual(detect(self.decode(audio), chunk), "159#*D", (amplitude, twist, detune, chunk))

    def test_single_tones_and_speech_ignored(self) -> None:
        for freq in (697.0, 941.0, 1209.0, 1633.0, 440.0, 1000.0):
            self.assertEqual(detect(self.decode(tone((freq,), (8000.0,), 500))), "", freq)
        self.assertEqual(detect(self.decode(tone((350.0, 440.0), (6000.0, 6000.0), 500))), "", "dial tone")
        for seed in (1, 2, 3):
            self.assertEqual(detect(self.decode(speech_like(2000, rms=5000.0, seed=seed))), "", seed)

    def test_too_short_or_too_quiet(self) -> None:
        self.assertEqual(detect(self.decode(dtmf("1", 20) + silence(100))), "")
        self.assertEqual(detect(self.decode(dtmf("1", 200, amplitude=100.0))), "")
        self.assertIsNone(dtmf_digit([0] * 160))
        self.assertIsNone(dtmf_digit([1000] * 10))

    def test_bad_rate(self) -> None:
        self.assertRaises(ValueError, InbandDtmfDetector, 1000)

    def test_feed_payload(self) -> None:
        audio = silence(60) + dtmf("9", 100) + silence(100) + dtmf("A", 100) + silence(60)
        for codec in ("PCMU", "PCMA"):
            detector = InbandDtmfDetector()
            keys = [detector.feed_payload(f, codec, i * 0.02) for i, f in enumerate(g711_frames(audio, codec))]
            self.assertEqual("".join(k.digit for k in keys if k is not None), "9A", codec)
        self.assertRaises(ValueError, InbandDtmfDetector().feed_payload, b"\x00" * 160, "G729", 0.0)

    @settings(max_examples=25)
    @given(st.lists(st.tuples(st.sampled_from(DIGITS), st.integers(60, 200), st.integers(60, 200)),
                    min_size=1, max_size=5))
    def test_digit_sequences(self, presses: list[tuple[str, int, int]]) -> None:
        audio: list[float] = silence(40)
        for digit, on, off in presses:
            audio += dtmf(digit, on, start=len(audio)) + silence(off)
        self.assertEqual(detect(self.decode(audio)), "".join(d for d, _, _ in presses))
