# -*- test-case-name: tests.test_media_rfc4733 -*-
"""RFC 4733 telephone-events: exactly one keypress per event however the packets arrive."""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.media.core.rfc4733 import DIGITS, Keypress, TelephoneEventDecoder, event_payload
from sbc.media.core.rtp import RtpPacket, build_rtp, parse_rtp
from tests.media_strategies import PT, event_train, mangled, stamping_train, te_packet


def run(decoder: TelephoneEventDecoder, packets: Iterable[RtpPacket], start: float = 100.0,
        step: float = 0.02) -> list[Keypress]:
    """Feed packets 20 ms apart (fake clock); the keypresses in order."""
    keys = []
    now = start
    for packet in packets:
        key = decoder.feed(packet, now)
        if key is not None:
            keys.append(key)
        now += step
    return keys


def digits(keys: list[Keypress]) -> str:
    return "".join(k.digit for k in keys)


class NormalEventTests(SynchronousTestCase):
    def test_one_key_on_first_packet(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        keys = run(decoder, event_train(5, 8000))
        self.assertEqual(keys, [Keypress("5", 100.0, "rfc4733")])

    def test_every_code(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = [p for code in range(16) for p in event_train(code, 1000 + code * 4000)]
        self.assertEqual(digits(run(decoder, packets)), DIGITS)

    def test_digit_sequence_1234_hash(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = []
        for i, code in enumerate((1, 2, 3, 11)):
            packets += event_train(code, 160 * 50 * i, sequence=20 * i)
        self.assertEqual(digits(run(decoder, packets)), "123#")

    def test_duplicated_end_packets(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        train = event_train(7, 500, ends=3)
        keys = run(decoder, train + train[-1:] * 5 + train)
        self.assertEqual(digits(keys), "7")

    def test_missing_start_packet(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        keys = run(decoder, event_train(4, 500)[1:])
        self.assertEqual(keys, [Keypress("4", 100.0, "rfc4733")])

    def test_sender_without_marker_bit(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = [te_packet(9, 500, d) for d in (160, 320, 480)] + [te_packet(9, 500, 640, True)] * 3
        packets += [te_packet(9, 8500, d) for d in (160, 320)] + [te_packet(9, 8500, 480, True)] * 3
        self.assertEqual(digits(run(decoder, packets)), "99")

    def test_only_end_packets(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        self.assertEqual(digits(run(decoder, event_train(0, 500)[-3:])), "0")

    def test_any_single_packet_is_enough(self) -> None:
        train = event_train(6, 500)
        for packet in train:
            self.assertEqual(digits(run(TelephoneEventDecoder(PT), [packet])), "6")

    def test_timestamp_wraps(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = event_train(1, 0xFFFFFF00) + event_train(2, 0x00000400) + event_train(3, 0x00002000)
        self.assertEqual(digits(run(decoder, packets)), "123")


class ReorderingTests(SynchronousTestCase):
    def test_end_before_updates(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        train = event_train(2, 500)
        keys = run(decoder, [train[-1]] + train[:-1])
        self.assertEqual(digits(keys), "2")

    def test_late_packets_of_old_event_after_new_one_began(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        first = event_train(1, 1000)
        second = event_train(2, 1000 + 1600)
        packets = first[:2] + second[:2] + first[2:] + first[:1] + second[2:]
        self.assertEqual(digits(run(decoder, packets)), "12")

    def test_late_packets_of_old_event_same_digit(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        first = event_train(8, 1000)
        second = event_train(8, 1000 + 1600)
        packets = first[:2] + second[:1] + first[2:] + second[1:] + first
        self.assertEqual(digits(run(decoder, packets)), "88")


class SamePressTwiceTests(SynchronousTestCase):
    def test_two_presses_same_digit(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = event_train(5, 1000) + event_train(5, 1000 + 800 + 400)  # 50 ms pause
        self.assertEqual(digits(run(decoder, packets)), "55")

    def test_two_presses_ends_lost_marker_present(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = event_train(5, 1000)[:-3] + event_train(5, 1000 + 800 + 400)
        self.assertEqual(digits(run(decoder, packets)), "55")

    def test_two_presses_long_pause_no_marker_no_end(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = event_train(5, 1000)[:-3] + event_train(5, 1000 + 8000)[1:]
        self.assertEqual(digits(run(decoder, packets)), "55")

    def test_repeated_digit_run(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = [p for i in range(6) for p in event_train(0, 500 + i * 1600, sequence=10 * i)]
        self.assertEqual(digits(run(decoder, packets)), "000000")


class LongPressTests(SynchronousTestCase):
    def segments(self, code: int, timestamp: int, segments: int) -> list[RtpPacket]:
        """RFC 4733 §2.5.1.3: each full segment lasts 0xFFFF, the next one restarts there."""
        packets = []
        for s in range(segments):
            ts = (timestamp + s * 0xFFFF) & 0xFFFFFFFF
            last = s == segments - 1
            top = 4000 if last else 0xFFFF
            duration = 400
            while duration < top:
                packets.append(te_packet(code, ts, duration, False, s == 0 and duration == 400))
                duration += 400
            packets.append(te_packet(code, ts, top, last))
            if last:
                packets += [te_packet(code, ts, top, True)] * 2
        return packets

    def test_segments_make_one_key(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = self.segments(3, 1000, 3)
        self.assertEqual(digits(run(decoder, packets)), "3")
        after = event_train(3, 1000 + 3 * 0xFFFF + 800)
        self.assertEqual(digits(run(decoder, after, start=200.0)), "3", "a new press after the long one")

    def test_segment_boundary_lost(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = self.segments(3, 1000, 2)
        boundary = next(i for i, p in enumerate(packets) if p.timestamp != 1000)
        kept = packets[: boundary - 3] + packets[boundary + 2:]  # 250 ms lost across the boundary
        self.assertEqual(digits(run(decoder, kept)), "3")

    def test_segments_with_long_loss(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = self.segments(3, 1000, 3)
        kept = packets[:2] + [p for p in packets if p.timestamp == 1000 + 2 * 0xFFFF]  # 16 s lost
        self.assertEqual(digits(run(decoder, kept)), "3")

    def test_segments_across_wrap(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        self.assertEqual(digits(run(decoder, self.segments(12, 0xFFFF0000, 2))), "A")


class SsrcTests(SynchronousTestCase):
    def test_ssrc_change_mid_event(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        before = event_train(1, 1000, ssrc=0xAAAA)[:3]
        after = [te_packet(1, 777777, d, d >= 800, False, 0xBBBB) for d in (640, 800, 800, 800)]
        self.assertEqual(digits(run(decoder, before + after)), "1")
        # The next event on the new SSRC is a key; late packets on the old SSRC are not.
        more = event_train(2, 777777 + 2000, ssrc=0xBBBB) + event_train(1, 1000, ssrc=0xAAAA)[3:]
        self.assertEqual(digits(run(decoder, more, start=101.0)), "2")

    def test_ssrc_change_between_events(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = event_train(1, 1000, ssrc=1) + event_train(1, 5000, ssrc=2)
        self.assertEqual(digits(run(decoder, packets)), "11")

    def test_ssrc_change_same_digit_later_is_new(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        self.assertEqual(digits(run(decoder, event_train(4, 1000, ssrc=1)[:3])), "4")
        self.assertEqual(digits(run(decoder, event_train(4, 9000, ssrc=2), start=102.0)), "4")

    def test_sender_clock_reset(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = event_train(1, 8000 * 600) + event_train(2, 100) + event_train(2, 8000 * 200)
        self.assertEqual(digits(run(decoder, packets)), "122")
        late = event_train(1, 8000 * 150)  # 50 s behind: a late packet, not a reset
        self.assertEqual(digits(run(decoder, late, start=200.0)), "")


class StampingSenderTests(SynchronousTestCase):
    """Senders that put a new RTP timestamp on every packet of an event."""

    def test_per_packet_durations(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = stamping_train(6, 1000, packets=8) + stamping_train(6, 1000 + 8 * 160 + 400, packets=8)
        self.assertEqual(digits(run(decoder, packets)), "66")

    def test_cumulative_durations(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = stamping_train(6, 1000, 8, cumulative=True) + stamping_train(6, 1000 + 8 * 160 + 400, 8, cumulative=True)
        self.assertEqual(digits(run(decoder, packets)), "66")

    def test_with_loss(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = stamping_train(2, 1000, packets=12)
        kept = packets[:2] + packets[5:]  # three in the middle lost
        self.assertEqual(digits(run(decoder, kept)), "2")

    def test_different_digits(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = stamping_train(1, 1000) + stamping_train(2, 1000 + 6 * 160 + 320) + stamping_train(3, 1000 + 12 * 160 + 640)
        self.assertEqual(digits(run(decoder, packets)), "123")


class PayloadTypeTests(SynchronousTestCase):
    def test_other_payload_types(self) -> None:
        for pt in (96, 127, 101):
            decoder = TelephoneEventDecoder(pt)
            packets = event_train(1, 1000, payload_type=pt) + event_train(2, 5000, payload_type=(pt + 1) % 128)
            self.assertEqual(digits(run(decoder, packets)), "1", pt)

    def test_audio_packets_ignored(self) -> None:
        decoder = TelephoneEventDecoder(96)
        audio = parse_rtp(build_rtp(0, 1, 1000, 0x1234, b"\x05\x0a\x00\xa0"))
        assert audio is not None
        self.assertIsNone(decoder.feed(audio, 1.0))
        self.assertEqual(decoder.feed_all(audio, 1.0), [])

    def test_payload_type_changed_by_reinvite(self) -> None:
        decoder = TelephoneEventDecoder(101)
        decoder.payload_type = 96
        packets = event_train(1, 1000, payload_type=101) + event_train(2, 5000, payload_type=96)
        self.assertEqual(digits(run(decoder, packets)), "2")

    def test_16000_hz_clock(self) -> None:
        decoder = TelephoneEventDecoder(96, clock_rate=16000)
        packets = []
        for i, code in enumerate((1, 1, 2)):
            packets += event_train(code, 1000 + i * 3200, length=1600, step=320, payload_type=96)  # 100 ms + 100 ms gap
        self.assertEqual(digits(run(decoder, packets)), "112")

    def test_bad_construction(self) -> None:
        self.assertRaises(ValueError, TelephoneEventDecoder, 128)
        self.assertRaises(ValueError, TelephoneEventDecoder, 101, 0)


class BadPayloadTests(SynchronousTestCase):
    def test_codes_above_15_ignored(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = event_train(16, 500) + event_train(70, 1500) + event_train(255, 2500) + event_train(5, 3500)
        self.assertEqual(digits(run(decoder, packets)), "5")

    def test_flash_does_not_hide_next_digit(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        packets = event_train(5, 500) + event_train(16, 1500) + event_train(5, 2500)
        self.assertEqual(digits(run(decoder, packets)), "55")

    def test_truncated_payloads(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        for payload in (b"", b"\x05", b"\x05\x8a", b"\x05\x8a\x00"):
            packet = parse_rtp(build_rtp(PT, 1, 1000, 1, payload, marker=True))
            assert packet is not None
            self.assertIsNone(decoder.feed(packet, 1.0), payload)

    def test_packed_events(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        payload = event_payload(1, True, 800) + event_payload(2, True, 800) + event_payload(3, False, 400)
        packet = parse_rtp(build_rtp(PT, 1, 1000, 1, payload))
        assert packet is not None
        self.assertEqual(digits(decoder.feed_all(packet, 1.0)), "123")
        self.assertEqual(decoder.feed_all(packet, 1.02), [], "a retransmission adds nothing")
        # trailing bytes after an event that is not ended are not read as events
        junk = parse_rtp(build_rtp(PT, 2, 9000, 1, event_payload(4, False, 160) + b"\x07\x00\x01\x00"))
        assert junk is not None
        self.assertEqual(digits(decoder.feed_all(junk, 1.1)), "4")

    def test_reset_forgets(self) -> None:
        decoder = TelephoneEventDecoder(PT)
        train = event_train(5, 500)
        run(decoder, train)
        decoder.reset()
        self.assertEqual(digits(run(decoder, train)), "5")


# Hypothesis ---------------------------------------------------------------------------------

_codes = st.integers(0, 15)
_timestamps = st.integers(0, 0xFFFFFFFF)


def segmented_train(code: int, timestamp: int, segments: int, step: int = 8191) -> list[RtpPacket]:
    """A long press in RFC 4733 §2.5.1.3 segments, updates every ``step`` (~1 s) to keep it short."""
    packets = []
    for s in range(segments):
        ts = (timestamp + s * 0xFFFF) & 0xFFFFFFFF
        last = s == segments - 1
        top = 3 * step if last else 0xFFFF
        durations = list(range(step, top, step)) + [top]
        for i, d in enumerate(durations):
            packets.append(te_packet(code, ts, d, last and d == top, s == 0 and i == 0))
    return packets + packets[-1:] * 2


@st.composite
def one_event(draw: st.DrawFn) -> list[RtpPacket]:
    code, ts = draw(_codes), draw(_timestamps)
    kind = draw(st.sampled_from(["rfc", "per-packet", "cumulative", "segments"]))
    if kind == "rfc":
        train = event_train(code, ts, length=draw(st.integers(1, 12)) * 160)
    elif kind == "segments":
        train = segmented_train(code, ts, draw(st.integers(2, 3)))
    else:
        train = stamping_train(code, ts, draw(st.integers(3, 10)), cumulative=kind == "cumulative")
    return draw(mangled(train))


class PropertyTests(SynchronousTestCase):
    @given(one_event())
    def test_any_mangling_of_one_event_is_one_key(self, packets: list[RtpPacket]) -> None:
        keys = run(TelephoneEventDecoder(PT), packets)
        self.assertEqual(len(keys), 1)
        self.assertEqual(keys[0].digit, DIGITS[packets[0].payload[0]])

    @given(_codes, _timestamps, _timestamps, st.integers(1, 8), st.booleans(), st.data())
    def test_ssrc_change_anywhere_in_an_event(self, code: int, ts: int, other_ts: int, split: int,
                                              restart: bool, data: st.DataObject) -> None:
        """The sender switches SSRC (and timestamp base) at any packet; each part mangled in turn."""
        train = event_train(code, ts, length=1280, ssrc=1)
        split = min(split, len(train) - 3)  # never between end packets: those are sent together
        moved = [te_packet(code, other_ts, 160 if restart and i == 0 else p.payload[2] << 8 | p.payload[3],
                           bool(p.payload[1] & 0x80), False, 2) for i, p in enumerate(train[split:])]
        packets = data.draw(mangled(train[:split])) + data.draw(mangled(moved))
        self.assertEqual(digits(run(TelephoneEventDecoder(PT), packets)), DIGITS[code])

    @given(st.lists(st.tuples(_codes, st.integers(0, 3)), min_size=1, max_size=8), _timestamps, st.data())
    def test_event_sequences(self, events: list[tuple[int, int]], start: int, data: st.DataObject) -> None:
        """Events 60 ms to 2 s apart, each mangled but keeping one of its end packets."""
        decoder = TelephoneEventDecoder(PT)
        ts = start
        now = 10.0
        got = []
        for code, gap in events:
            train = event_train(code, ts, length=800)
            packets = data.draw(mangled(train)) + [train[-1]]
            packets = data.draw(st.permutations(packets))
            for p in packets:
                key = decoder.feed(p, now)
                if key is not None:
                    got.append(key.digit)
                now += 0.02
            pause = (0.06, 0.2, 0.6, 2.0)[gap]
            ts = (ts + 800 + int(pause * 8000)) & 0xFFFFFFFF
            now += pause
        self.assertEqual("".join(got), "".join(DIGITS[c] for c, _ in events))

    @given(st.lists(st.binary(max_size=40), max_size=30), st.integers(0, 63) | st.integers(96, 127))
    def test_arbitrary_packets_never_raise(self, payloads: list[bytes], pt: int) -> None:
        decoder = TelephoneEventDecoder(pt)
        count = 0
        for i, payload in enumerate(payloads):
            packet = parse_rtp(build_rtp(pt, i, (i * 7919) & 0xFFFFFFFF, i % 3, payload, marker=i % 2 == 0))
            assert packet is not None
            keys = decoder.feed_all(packet, float(i))
            for key in keys:
                self.assertIn(key.digit, DIGITS)
            count += len(keys)
        self.assertLessEqual(count, 8 * len(payloads))
