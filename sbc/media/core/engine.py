# -*- test-case-name: tests.test_media_rewrite,tests.test_media_relay -*-
"""The media-engine interface: what the B2BUA asks of whatever anchors a call's media.

The built-in engine is `sbc.media.relay.RtpRelay` (Twisted, one process).  An external engine
(rtpengine over its ng control protocol, in a later issue) implements the same two protocols,
so the B2BUA never knows which one it drives.

Vocabulary
----------
A call's media has two sides.  ``"a"`` is the calling leg's peer (normally the trunk / PBX),
``"b"`` the called leg's peer (normally the agent host).  Each side gets its own `SideOptions`
(SRTP policy, latching, DTMF, VAD).  SDP flows through the session: ``offer(from_side, sdp)``
takes the SDP a side sent and returns the SDP to send to the *other* side (pointing at the
engine's ports), ``answer(from_side, sdp)`` does the same for the answer.  Offers and answers
may repeat for the life of the call (re-INVITE, UPDATE, hold/resume, codec change, and late
offers where the offer comes from ``"b"`` in a 2xx and the answer from ``"a"`` in the ACK).

Events flow back synchronously through a `MediaListener` the B2BUA passes to `allocate`.

Pure: no Twisted import (sbc/media/core is part of the pure core).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

from attrs import field, frozen

if TYPE_CHECKING:  # pragma: no cover - typing only; keeps the import graph flat
    from sbc.media.core.rfc4733 import Keypress

__all__ = [
    "SRTP_POLICIES",
    "MediaEngine",
    "MediaError",
    "MediaListener",
    "MediaSession",
    "Side",
    "SideOptions",
    "other_side",
]

Side = Literal["a", "b"]

#: What a side may be asked to speak: plain RTP only, whatever it offers, SRTP only.
SRTP_POLICIES: tuple[str, ...] = ("off", "optional", "required")


def other_side(side: Side) -> Side:
    """``"b"`` for ``"a"`` and ``"a"`` for ``"b"``."""
    return "b" if side == "a" else "a"


def _srtp_policy(_instance: object, _attribute: object, value: str) -> None:
    if value not in SRTP_POLICIES:
        raise ValueError(f"srtp must be one of {SRTP_POLICIES}, not {value!r}")


def _sensitivity(_instance: object, _attribute: object, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"vad_sensitivity must be within 0..1, not {value!r}")


@frozen
class SideOptions:
    """How the engine treats one side of a call.

    ``srtp``
        ``"off"``: this side speaks plain RTP (RTP/AVP); an SRTP-only offer from it is refused
        (488).  ``"optional"``: follow what the side offers (SRTP if it offers RTP/SAVP with a
        usable crypto line, else RTP); when we offer toward it, we offer plain RTP.
        ``"required"``: SRTP only (RTP/SAVP with SDES); a plain offer from it is refused (488)
        and our offers toward it carry a=crypto.
    ``strict_source``
        Accept packets only from the address and port signalled in this side's SDP.  Otherwise
        the engine latches on the source of the packets it receives (symmetric RTP, for NAT).
    ``dtmf``
        Decode RFC 4733 telephone-events arriving from this side and report each key to the
        listener (`MediaListener.media_keypress`).
    ``pass_tones``
        Forward this side's telephone-event packets to the other side too (default: drop them,
        so the other side does not receive the key twice, as tones and as an event).
    ``vad``
        Run voice-activity detection on this side's audio while `MediaSession.set_vad` is on.
    ``inband``
        Detect in-band DTMF tones in this side's G.711 audio (Goertzel).
    ``vad_sensitivity``
        0 (deaf) .. 1 (most sensitive).
    """

    srtp: str = field(default="off", validator=_srtp_policy)
    strict_source: bool = False
    dtmf: bool = False
    pass_tones: bool = False
    vad: bool = False
    inband: bool = False
    vad_sensitivity: float = field(default=0.5, validator=_sensitivity)


class MediaError(Exception):
    """The engine cannot do what was asked.

    ``status`` is the SIP status the B2BUA should answer with: 488 for SDP the engine cannot
    handle or an SRTP policy mismatch, 503 when no ports are left, 500 for anything else.
    ``reason`` is safe to log and to put in a Reason/Warning header (it never holds keys).
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


class MediaListener(Protocol):
    """Implemented by the B2BUA core; called synchronously by the engine, on its thread.

    Implementations must be quick and must not raise (an engine logs and ignores what they
    raise, so one bad listener cannot stop the media of other calls).
    """

    def media_keypress(self, call_id: str, key: Keypress) -> None:
        """A DTMF key arrived (from a side with ``dtmf`` or ``inband`` set)."""

    def media_speech(self, call_id: str, now: float) -> None:
        """Voice activity started on a side with ``vad`` set, while `set_vad` is on."""

    def media_timeout(self, call_id: str, now: float) -> None:
        """No RTP from either side for the engine's media timeout, while not on hold.
        Reported once per session."""


class MediaSession(Protocol):
    """One call's media, as returned by `MediaEngine.allocate`."""

    def offer(self, from_side: Side, sdp: bytes) -> bytes:
        """SDP offered by ``from_side``; returns the SDP to offer to the other side.
        Raises `MediaError` (488) for SDP the engine cannot handle."""

    def answer(self, from_side: Side, sdp: bytes, *, provisional: bool = False) -> bytes:
        """SDP answer from ``from_side`` to the last offer; returns the SDP answer for the side
        that made that offer.  Raises `MediaError` (488).  May repeat for the same offer (an
        early answer in a 18x, then the 2xx).  ``provisional=True`` marks an answer in a
        provisional response: the call is still ringing, so the media timeout does not run."""

    def set_vad(self, on: bool) -> None:
        """Start or stop voice-activity detection on each side whose options have ``vad``."""

    def release(self) -> None:
        """Free the session's ports and timers now.  Idempotent."""


class MediaEngine(Protocol):
    """Allocates per-call media sessions."""

    def allocate(
        self, call_id: str, a: SideOptions, b: SideOptions, listener: MediaListener
    ) -> MediaSession:
        """A new session for ``call_id``.  Raises `MediaError` (503) when no ports are left."""
