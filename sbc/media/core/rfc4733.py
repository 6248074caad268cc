# -*- test-case-name: tests.test_media_rfc4733 -*-
"""
RFC 4733 telephone-events in RTP -> keypresses, exactly one per event.

Payload (RFC 4733 §2.3): event code (8 bits), E (end) bit, R bit, volume (6 bits), duration
(16 bits, in RTP clock units, counted from the event's RTP timestamp).  Every packet of one
event carries the same RTP timestamp, the start time of the event; the first packet has the
marker bit; the final packet (E set) is normally sent three times.

A key is reported on the first packet seen of a new event, whichever packet of the event that
is (lowest latency, and no reliance on the marker bit or the start packet).  Every later packet
is matched against what this decoder has already seen, by RTP time:

* For each SSRC the decoder keeps a high-water mark: the end, in RTP time, of the latest event
  it has seen from that SSRC.  A packet that starts before that mark cannot be a new event (a sender's
  new event never starts before its previous one ended), so it is a duplicate, a
  retransmitted end, a reordered update or a late packet of an older event, and is dropped.
  The same digit up to ``TOLERANCE`` seconds after the mark is treated the same way: a real
  second press needs a pause between tones (ITU-T Q.24 asks for at least 40 ms).  Events
  packed into one packet (§2.5.1.5) follow each other with no pause, so a different digit
  starting exactly at the mark is new.
* An event not yet ended, continued with the same code and no marker bit up to
  ``CONTINUATION`` seconds after the mark, is the same event: a long press split into segments
  with new timestamps (RFC 4733 §2.5.1.3), a sender that stamps every packet with a new
  timestamp, or an event whose middle packets were lost.  So is one starting a whole number of
  0xFFFF after the event's first timestamp, however long the gap: a later segment of a long
  press whose packets in between were lost.
* An SSRC change while an event is in progress (same code, packet within ``SSRC_GAP`` seconds
  of the previous one, and the event not ended unless this packet is an end) continues it.
* Anything else is a new event: one keypress.

The end of an event, in RTP time, is ``timestamp + duration`` for senders that follow the RFC.
For senders that change the timestamp on every packet the decoder takes the later of "earliest
timestamp + longest duration" (durations counted from the event start) and "latest timestamp +
its duration" (durations counted per packet), choosing by whether durations reach back to the
earliest timestamp.

A timestamp more than ``BACKWARDS_RESET`` seconds behind an SSRC's mark means the sender
reset its clock: that SSRC's history is forgotten.  Memory is bounded: one event in progress
and the marks of the last ``MAX_SSRCS`` SSRCs.

Known limit: if every end packet of a press is lost, and the same digit is pressed again with
neither a marker bit nor a pause longer than ``CONTINUATION``, the two presses make one key.
"""

from __future__ import annotations

from attrs import define, frozen

from sbc.media.core.rtp import RtpPacket

__all__ = ["DIGITS", "Keypress", "TelephoneEventDecoder", "event_payload"]

#: RFC 4733 §3.2 (Table 3): DTMF event codes 0-15.
DIGITS = "0123456789*#ABCD"

TOLERANCE = 0.03
CONTINUATION = 0.5
SSRC_GAP = 0.5
BACKWARDS_RESET = 120.0
MAX_SSRCS = 8
#: At most this many events packed into one packet (RFC 4733 §2.5.1.5) are read.
MAX_PACKED = 8

_MASK = 0xFFFFFFFF


@frozen
class Keypress:
    """One DTMF key, whatever its source."""

    digit: str  # "0"-"9", "*", "#", "A"-"D"
    at: float  # `now` when it was recognised
    source: str  # "rfc4733" | "info" | "inband"


def _sdiff(a: int, b: int) -> int:
    """``a - b`` in 32-bit RTP timestamp arithmetic, as a signed number."""
    d = (a - b) & _MASK
    return d - 0x100000000 if d & 0x80000000 else d


def event_payload(code: int, end: bool = False, duration: int = 0, volume: int = 10) -> bytes:
    """Serialise one RFC 4733 event block; for tests and benches."""
    return bytes(
        (code & 0xFF, (0x80 if end else 0) | (volume & 0x3F), (duration >> 8) & 0xFF, duration & 0xFF)
    )


@define
class _Event:
    """The event in progress (or the last one): RTP times are offsets from ``base``."""

    code: int
    ssrc: int
    base: int
    ended: bool
    last_seen: float
    low: int = 0  # earliest timestamp seen, as an offset
    high: int = 0  # latest timestamp seen, as an offset
    longest: int = 0  # longest duration seen
    high_duration: int = 0  # longest duration among packets at the latest timestamp

    def add(self, timestamp: int, duration: int, end: bool, now: float) -> None:
        off = _sdiff(timestamp, self.base)
        if off < self.low:
            self.low = off
        if off > self.high:
            self.high = off
            self.high_duration = duration
        elif off == self.high and duration > self.high_duration:
            self.high_duration = duration
        if duration > self.longest:
            self.longest = duration
        if end:
            self.ended = True
        if now > self.last_seen:
            self.last_seen = now

    def end(self) -> int:
        """Where the event ends, in RTP time."""
        cumulative = self.low + self.longest
        if self.high_duration > self.high - self.low:
            extent = cumulative  # durations reach back to the earliest timestamp
        else:
            extent = max(cumulative, self.high + self.high_duration)
        return (self.base + extent) & _MASK


class TelephoneEventDecoder:
    """Keypresses from the telephone-event packets of one media stream (one direction)."""

    def __init__(self, payload_type: int, clock_rate: int = 8000) -> None:
        if not 0 <= payload_type <= 127:
            raise ValueError(f"payload type {payload_type!r} out of range")
        if clock_rate <= 0:
            raise ValueError(f"clock rate {clock_rate!r} must be positive")
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self._tolerance = int(clock_rate * TOLERANCE)
        self._continuation = int(clock_rate * CONTINUATION)
        self._backwards = int(clock_rate * BACKWARDS_RESET)
        self._current: _Event | None = None
        self._marks: dict[int, int] = {}  # ssrc -> end of its latest event, in RTP time

    def feed(self, packet: RtpPacket, now: float) -> Keypress | None:
        """
        The keypress this packet starts, if it starts one.

        Packets of other payload types, truncated payloads and event codes above 15 give
        ``None``.  A packet packing several events (rare) may start more than one: use
        ``feed_all`` to get them all; this returns the first.
        """
        if packet.payload_type != self.payload_type:
            return None
        keys = self.feed_all(packet, now)
        return keys[0] if keys else None

    def feed_all(self, packet: RtpPacket, now: float) -> list[Keypress]:
        """Every keypress this packet starts (more than one only when events are packed)."""
        if packet.payload_type != self.payload_type:
            return []
        payload = packet.payload
        keys: list[Keypress] = []
        timestamp = packet.timestamp
        marker = packet.marker
        # RFC 4733 §2.5.1.5: events packed one after another, all but the last ended; the
        # packet timestamp is the first event's, each next starts where the previous ended.
        for index in range(min(len(payload) // 4, MAX_PACKED)):
            at = index * 4
            code = payload[at]
            end = bool(payload[at + 1] & 0x80)
            duration = (payload[at + 2] << 8) | payload[at + 3]
            if code < 16:
                key = self._event(packet.ssrc, timestamp, marker, code, end, duration, now)
                if key is not None:
                    keys.append(key)
            if not end:
                break
            timestamp = (timestamp + duration) & _MASK
            marker = False
        return keys

    def reset(self) -> None:
        """Forget everything (the stream was replaced)."""
        self._current = None
        self._marks.clear()

    def _event(
        self, ssrc: int, timestamp: int, marker: bool, code: int, end: bool, duration: int, now: float
    ) -> Keypress | None:
        current = self._current
        mark = self._marks.get(ssrc)
        if mark is not None:
            delta = _sdiff(timestamp, mark)
            if delta < -self._backwards:
                del self._marks[ssrc]  # the sender's clock went back: a fresh start
                mark = None
        if mark is not None and current is not None and current.ssrc == ssrc:
            same = current.code == code
            if delta < 0 or (same and delta <= self._tolerance):
                if same and _sdiff(timestamp, current.base) + duration >= current.low - self._tolerance:
                    self._add(current, timestamp, duration, end, now)
                return None  # duplicate, reordered or late packet
            if same and not current.ended and not marker and (
                delta <= self._continuation or _sdiff(timestamp, current.base + current.low) % 0xFFFF == 0
            ):
                self._add(current, timestamp, duration, end, now)
                return None  # long press segment, or a gap from loss
            return self._start(ssrc, timestamp, code, end, duration, now)
        if mark is not None and delta < 0:
            return None  # a late packet from an SSRC no longer current
        if (
            current is not None
            and current.ssrc != ssrc
            and current.code == code
            and (end or not current.ended)
            and now - current.last_seen <= SSRC_GAP
        ):
            # The SSRC changed in the middle of the event: carry on with the new one.
            self._current = _Event(code=code, ssrc=ssrc, base=timestamp, ended=current.ended, last_seen=now)
            self._add(self._current, timestamp, duration, end, now)
            return None
        return self._start(ssrc, timestamp, code, end, duration, now)

    def _start(self, ssrc: int, timestamp: int, code: int, end: bool, duration: int, now: float) -> Keypress:
        event = _Event(code=code, ssrc=ssrc, base=timestamp, ended=False, last_seen=now)
        self._current = event
        self._add(event, timestamp, duration, end, now)
        return Keypress(DIGITS[code], now, "rfc4733")

    def _add(self, event: _Event, timestamp: int, duration: int, end: bool, now: float) -> None:
        event.add(timestamp, duration, end, now)
        marks = self._marks
        ssrc = event.ssrc
        if ssrc in marks:
            del marks[ssrc]
        elif len(marks) >= MAX_SSRCS:
            del marks[next(iter(marks))]
        marks[ssrc] = event.end()
