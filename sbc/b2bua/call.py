# -*- test-case-name: tests.test_b2bua -*-
"""The call controller: joins an A leg and a B leg through call-control events.

The controller is where call policy lives -- how an agent failure is presented to the PBX,
the no-answer and maximum-duration timers, the end reason -- while each leg only speaks SIP
to its own peer.  It keeps the facts a CDR or a metric needs: id, trunk, timestamps
(created / answered / ended), end reason and the final INVITE status of both legs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from .events import Answer, CallEvent, Disconnect, Fail, InfoAnswer, Try

#: Call timer kinds of the legs' session timers (RFC 4028), one per leg.
SESSION_TIMER = {"a": "session-a", "b": "session-b"}

if TYPE_CHECKING:  # pragma: no cover
    from .legs import Leg, UacLeg, UasLeg
    from .media import CallMedia

__all__ = ["Call", "CallHost", "map_failure", "PASS_THROUGH"]

#: Agent final statuses shown to the PBX unchanged.
PASS_THROUGH = frozenset({403, 404, 410, 480, 484, 485, 486, 488, 600, 603, 604, 606, 607, 608})

NO_ANSWER = "no-answer"
MAX_DURATION = "max-duration"

_NO_IDS: frozenset[int] = frozenset()


def map_failure(fail: Fail, retry_after: int) -> Fail:
    """How a failure of the B leg's INVITE is presented on the A leg.

    * 486, 600, 603, 404, 484 (and the other :data:`PASS_THROUGH` codes) pass through;
    * 408 / Timer B (the agent host did not answer) -> 480 with ``Retry-After``;
    * 3xx -> 480 (redirections are not followed);
    * 5xx -> 503 with the agent's ``Retry-After`` or ours;
    * any other 4xx -> 480, any other 6xx -> 603.
    """
    status = fail.status
    if status in PASS_THROUGH:
        return fail
    if status == 408:
        return Fail(480, "Temporarily Unavailable", retry_after)
    if 300 <= status < 400:
        return Fail(480, "Temporarily Unavailable", None)
    if 500 <= status < 600:
        return Fail(503, "Service Unavailable", fail.retry_after if fail.retry_after is not None else retry_after)
    if status >= 600:
        return Fail(603, "Decline", None)
    return Fail(480, "Temporarily Unavailable", None)


class CallHost(Protocol):
    """What a call needs from the B2BUA core."""

    @property
    def now(self) -> float: ...

    def set_timer(self, call: "Call", kind: str, when: float) -> None: ...

    def cancel_timer(self, call: "Call", kind: str) -> None: ...

    def call_ended(self, call: "Call") -> None: ...

    def notice(self, reason: str, detail: str, peer: Any, status: int | None = None, call_id: str = "") -> None: ...


class Call:
    """One bridged call.  ``a`` and ``b`` are set right after construction by the core."""

    a: "UasLeg"
    b: "UacLeg"

    def __init__(self, host: CallHost, call_id: str, trunk: str, created: float, *,
                 retry_after: int = 30, max_duration: float | None = None,
                 direction: str = "inbound", allow_refer: bool = False) -> None:
        self.host = host
        #: REFER (transfer) from the agent host may be relayed to the trunk's side.
        self.allow_refer = allow_refer
        #: "inbound": PBX -> agent host; "outbound": agent host -> trunk.  Either way ``a``
        #: is the calling leg (we are its UAS) and ``b`` the called leg (we are its UAC).
        self.direction = direction
        self.id = call_id
        self.trunk = trunk
        self.created = created
        self.answered: float | None = None
        self.ended: float | None = None
        self.end_reason: str | None = None
        self.retry_after = retry_after
        self.max_duration = max_duration
        #: Media anchoring and DTMF collection (None: neither; see :mod:`sbc.b2bua.media`).
        self.media: "CallMedia | None" = None
        #: Ids of the INFOs we send to the agent host ourselves (agent events): their
        #: answers end here instead of being relayed.  A shared empty frozenset until the
        #: first one (:meth:`add_own_info`): most calls send none.
        self.own_info: set[int] | frozenset[int] = _NO_IDS
        #: The canonical headers of the call (what the agent host was told), as
        #: (name, value) pairs, for the ``call.started`` event.
        self.headers: tuple[tuple[str, str], ...] = ()
        self.caller: str | None = None
        self.callee: str | None = None

    def __repr__(self) -> str:
        return (f"<Call {self.id} {self.direction} trunk={self.trunk} a={self.a.state.name} b={self.b.state.name} "
                f"reason={self.end_reason}>")

    @property
    def now(self) -> float:
        return self.host.now

    def detach(self) -> None:
        """The call is over and no transaction of its legs is left (the stack decides): drop
        the references from the legs and the media back to the call.  The call still holds
        them (CDRs read ``a``, ``b`` and ``media``), but nothing holds the call in a cycle,
        so it is freed as soon as its last user lets it go."""
        for leg in (self.a, self.b):
            leg.call = None  # type: ignore[assignment]
        if self.media is not None:
            self.media.call = None  # type: ignore[assignment]

    def add_own_info(self, rid: int) -> None:
        """Remember ``rid``, an INFO we send ourselves (its answer is not relayed)."""
        if type(self.own_info) is not set:
            self.own_info = set()
        self.own_info.add(rid)

    @property
    def a_status(self) -> int | None:
        """Final status we sent on the A leg's INVITE (None while ringing)."""
        return self.a.final_status

    @property
    def b_status(self) -> int | None:
        """Final status the agent sent on the B leg's INVITE (408 for a timeout)."""
        return self.b.final_status

    @property
    def agent_leg(self) -> "Leg":
        """The leg toward the agent host (``b`` inbound, ``a`` outbound)."""
        return self.a if self.direction == "outbound" else self.b

    def other(self, leg: "Leg") -> "Leg":
        return self.b if leg is self.a else self.a

    def leg(self, side: str) -> "Leg":
        return self.a if side == "a" else self.b

    def host_notice(self, reason: str, detail: str) -> None:
        self.host.notice(reason, detail, self.a.peer, None, self.id)

    def offer_busy(self) -> bool:
        """An offer/answer exchange is in progress on this call, in either direction."""
        return self.a.offer_pending or self.b.offer_pending

    # ------------------------------------------------------------------ events

    def start(self, event: Try, now: float) -> None:
        self.b.handle(event, now)

    def leg_event(self, leg: "Leg", event: CallEvent, now: float) -> None:
        """``leg`` reports ``event``; apply the call's policy and hand it to the other leg."""
        if isinstance(event, InfoAnswer) and event.id in self.own_info:
            self.own_info.discard(event.id)  # type: ignore[union-attr]  # a set once it has ids
            return
        if self.media is not None:
            filtered = self.media.filter(leg.side, event, now)
            if filtered is None:
                return
            event = filtered
        if leg is self.b:
            if isinstance(event, Fail):
                if self.end_reason is None:
                    self.end_reason = f"failed-{event.status}"
                event = map_failure(event, self.retry_after)
            elif isinstance(event, Answer) and self.answered is None:
                self.answered = now
                self.host.cancel_timer(self, NO_ANSWER)
                if self.max_duration is not None:
                    self.host.set_timer(self, MAX_DURATION, now + self.max_duration)
        if isinstance(event, Disconnect) and self.end_reason is None:
            self.end_reason = event.reason
        self.other(leg).handle(event, now)

    def hang_up(self, leg: "Leg", reason: str, now: float) -> None:
        """End both legs (BYE or CANCEL as each one's state requires)."""
        if self.end_reason is None:
            self.end_reason = reason
        for each in (leg, self.other(leg)):
            if not each.ended:
                each.handle(Disconnect(reason), now)

    def terminate(self, reason: str, now: float) -> None:
        """End the call from outside (shutdown, operator): BYE or CANCEL both legs, 480 on an
        unanswered A leg."""
        if self.end_reason is None:
            self.end_reason = reason
        if self.answered is None:
            self.a.handle(Fail(480, "Temporarily Unavailable", None), now)
        self.hang_up(self.a, reason, now)

    def leg_ended(self, leg: "Leg", now: float) -> None:
        if self.ended is None and self.a.ended and self.b.ended:
            self.ended = now
            self.host.cancel_timer(self, NO_ANSWER)
            self.host.cancel_timer(self, MAX_DURATION)
            for kind in (*SESSION_TIMER.values(), "prack-a"):
                self.host.cancel_timer(self, kind)
            if self.media is not None:
                self.media.release()
            self.host.call_ended(self)

    def on_timer(self, kind: str, now: float) -> None:
        if kind == NO_ANSWER and self.answered is None:
            if self.end_reason is None:
                self.end_reason = NO_ANSWER
            self.a.handle(Fail(480, "Temporarily Unavailable", None), now)
            self.b.handle(Disconnect(NO_ANSWER), now)
        elif kind == MAX_DURATION:
            self.hang_up(self.a, MAX_DURATION, now)
        elif kind == "dtmf-idle":
            if self.media is not None:
                self.media.on_timer(now)
        elif kind == "prack-a":
            self.a.on_prack_timer(now)
        elif kind == SESSION_TIMER["a"]:
            self.a.on_session_timer(now)
        elif kind == SESSION_TIMER["b"]:
            self.b.on_session_timer(now)
