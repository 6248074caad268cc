# -*- test-case-name: tests.test_b2bua_media -*-
"""A call's media and DTMF, as the call controller sees them.

The legs never see a media address of the other side: every event that carries SDP goes
through :meth:`CallMedia.filter` on its way from one leg to the other, and the media
engine (:mod:`sbc.media.core.engine`; the RTP relay, or later rtpengine) rewrites it so that
each peer sends its media to the SBC.  Which call of the engine applies is decided by the
offer/answer state kept here (RFC 3264): SDP from a side while the other side's offer is
outstanding is an answer, anything else is a (new) offer -- which covers the initial offer,
a late offer in the 2xx answered in the ACK, re-INVITE and UPDATE in both directions,
offerless re-INVITEs and early media in 18x.

DTMF: keypresses reach :meth:`keypress` from the engine (RFC 4733 telephone-events) or as
in-dialog INFO from the PBX (taken here, answered 200 and not relayed).  A
:class:`~sbc.media.core.dtmf.DigitCollector` turns them into agent events: one audit event
per key and the buffered digits as text on the submit key, after the idle time, or when the
caller starts speaking (the engine runs voice activity detection only while digits are
buffered).  Agent events leave through the host's ``agent_event``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from sbc.events.schema import DtmfEventReceived, TextSubmitted
from sbc.media.core.dtmf import DigitAudit, DigitCollector, DigitSubmit
from sbc.media.core.engine import MediaError, MediaSession
from sbc.media.core.info import parse_dtmf_info
from sbc.media.core.rfc4733 import Keypress

from .events import (
    Answer,
    Body,
    CallEvent,
    Confirm,
    Fail,
    Info,
    InfoAnswer,
    Reoffer,
    ReofferAnswer,
    ReofferFail,
    Ring,
)

if TYPE_CHECKING:  # pragma: no cover
    from .call import Call

__all__ = ["CallMedia", "DTMF_TIMER", "is_sdp"]

#: Call timer kind of the DTMF collector's idle deadline.
DTMF_TIMER = "dtmf-idle"

_SDP_EVENTS = (Ring, Answer, Confirm, Reoffer, ReofferAnswer)


def is_sdp(body: Body | None) -> bool:
    return body is not None and body.content_type.split(b";", 1)[0].strip().lower() == b"application/sdp"


class CallMedia:
    """The media session (None when media is not anchored) and DTMF collector of one call.

    ``pbx_side`` is the side ("a" or "b") whose peer is the PBX: its keypresses are the
    caller's.  ``emit(event)`` publishes an agent event."""

    def __init__(self, call: "Call", session: MediaSession | None, collector: DigitCollector | None,
                 pbx_side: str, emit: Callable[[Any], None], *, info_dtmf: bool = True) -> None:
        self.call = call
        self.session = session
        self.collector = collector
        self.pbx_side = pbx_side
        self.info_dtmf = info_dtmf and collector is not None
        self._emit = emit
        #: The side whose offer awaits an answer (None: no offer outstanding).
        self.offer_from: str | None = None
        self._vad = False
        self.keys = 0

    # ------------------------------------------------------------------ SDP

    def first_offer(self, body: Body | None) -> Body | None:
        """The A leg's INVITE body toward the B leg (raises MediaError)."""
        if self.session is None or not is_sdp(body):
            return body
        assert body is not None
        return self._rewrite("a", body)

    def _rewrite(self, side: str, body: Body, provisional: bool = False) -> Body:
        assert self.session is not None
        if self.offer_from is not None and self.offer_from != side:
            # An answer in a 18x (early media): the call still rings, no media timeout yet.
            data = self.session.answer(side, body.data, provisional=provisional)
        else:
            data = self.session.offer(side, body.data)
            self.offer_from = side
        return Body(body.content_type, data)

    def filter(self, side: str, event: CallEvent, now: float) -> CallEvent | None:
        """``event`` from the leg on ``side`` on its way to the other leg: rewritten, or
        None when it was consumed here (DTMF INFO, or refused)."""
        if isinstance(event, Info):
            if self.info_dtmf and side == self.pbx_side and event.method == "INFO" and event.body is not None:
                digit = parse_dtmf_info(event.body.content_type.decode("latin-1"), event.body.data)
                if digit is not None:
                    self.call.leg(side).handle(InfoAnswer(event.id, 200, "OK"), now)
                    self.keypress(Keypress(digit, now, "info"), now)
                    return None
            return event
        if isinstance(event, (Fail, ReofferFail)):
            if self.offer_from is not None and self.offer_from != side:
                self.offer_from = None  # the offer was rejected
            return event
        if self.session is None or not isinstance(event, _SDP_EVENTS):
            return event
        body = event.body
        if is_sdp(body):
            assert body is not None
            try:
                new = self._rewrite(side, body, provisional=isinstance(event, Ring))
            except MediaError as e:
                return self._refused(side, event, e, now)
            event = _with_body(event, new)
        if isinstance(event, (Answer, ReofferAnswer, Confirm)) and self.offer_from != side:
            # An answer (or a 2xx/ACK without SDP) closes the exchange; an offer made by
            # this very event (late offer in a 2xx) stays outstanding.
            self.offer_from = None
        return event

    def _refused(self, side: str, event: CallEvent, error: MediaError, now: float) -> None:
        self.call.host_notice("media-refused", f"{type(event).__name__} from the {side} leg: {error.reason}")
        if isinstance(event, Reoffer):
            if self.offer_from == side:
                self.offer_from = None
            self.call.leg(side).handle(ReofferFail(event.id, error.status, error.reason), now)
        elif isinstance(event, ReofferAnswer):
            self.offer_from = None
            self.call.other(self.call.leg(side)).handle(ReofferFail(event.id, error.status, error.reason), now)
        else:
            self.call.terminate("media-error", now)
        return None

    # ------------------------------------------------------------------ DTMF

    def keypress(self, key: Keypress, now: float) -> None:
        if self.collector is None or self.call.ended is not None:
            return
        self.keys += 1
        for out in self.collector.key(key.digit, now):
            self._publish(out)
        self._rearm()

    def speech(self, now: float) -> None:
        if self.collector is None:
            return
        submit = self.collector.speech(now)
        if submit is not None:
            self._publish(submit)
        self._rearm()

    def on_timer(self, now: float) -> None:
        if self.collector is None:
            return
        submit = self.collector.handle_timer(now)
        if submit is not None:
            self._publish(submit)
        self._rearm()

    def _publish(self, out: DigitAudit | DigitSubmit) -> None:
        if isinstance(out, DigitAudit):
            self._emit(DtmfEventReceived(self.call.id, out.digit, out.at))
        else:
            self._emit(TextSubmitted(self.call.id, out.text, out.trigger, out.at))

    def _rearm(self) -> None:
        assert self.collector is not None
        deadline = self.collector.next_deadline()
        if deadline is None:
            self.call.host.cancel_timer(self.call, DTMF_TIMER)
        else:
            self.call.host.set_timer(self.call, DTMF_TIMER, deadline)
        buffering = self.collector.buffering
        if self.session is not None and buffering != self._vad:
            self._vad = buffering
            self.session.set_vad(buffering)

    # ------------------------------------------------------------------ end

    def release(self) -> None:
        if self.collector is not None:
            self.call.host.cancel_timer(self.call, DTMF_TIMER)
        if self.session is not None:
            session, self.session = self.session, None
            session.release()


def _with_body(event: CallEvent, body: Body) -> CallEvent:
    import attrs

    return attrs.evolve(event, body=body)  # type: ignore[misc]
