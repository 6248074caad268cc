# -*- test-case-name: tests.test_b2bua -*-
"""The two legs of a call: each one INVITE usage over one :class:`~sbc.sip.dialog.Dialog`.

* :class:`UasLeg` -- the A leg, toward the PBX: we are the UAS of its initial INVITE.
* :class:`UacLeg` -- the B leg, toward the agent host: we are the UAC of its initial INVITE.

Each leg has one small transition table for the life of its initial INVITE usage
(``TRANSITIONS[(state, input)] -> next state``, as h2's ``stream.py`` does); an input the
table does not list raises :class:`LegStateError`, which the caller treats as "ignore and
log" (a retransmission, a late event on a leg that is already gone).

Inside the dialog both legs are symmetric: BYE, re-INVITE, UPDATE, INFO, MESSAGE and NOTIFY
from the peer become :mod:`call-control events <sbc.b2bua.events>` for the other leg, and
the other leg's events become requests or responses toward this peer.  A leg never sees the
other leg's messages, dialog or transactions.

The leg talks to the network only through its :class:`LegStack` (the B2BUA core): it hands
requests and responses to it and is called back with what arrives for its dialog and its
transactions.  Time is always passed in.
"""

from __future__ import annotations

import enum
import os
import re

import attrs
from typing import TYPE_CHECKING, ClassVar, Iterable, Protocol, Sequence

from sbc.sip.dialog import CONFIRMED, EARLY, TERMINATED, Dialog, DialogError, DialogId
from sbc.sip.endpoint import Peer
from sbc.sip.errors import SipParseError
from sbc.sip.message import (CSeq, Header, NameAddr, Request, Response, Via, make_response, parse_message, preparsed,
                              reason_phrase)
from sbc.sip.session_timer import (
    Negotiated,
    Reject422,
    SessionTimer,
    SessionTimerConfig,
    TimerAction,
    UacNegotiation,
    UasAccept,
    allows_method,
    build_refresh,
    is_refresh_only,
    negotiate_uas,
)
from sbc.sip.slim import slim_request
from sbc.sip.transaction import TransactionKey
from sbc.sip.uri import URI

from .events import (
    Answer,
    Body,
    CallEvent,
    Confirm,
    Disconnect,
    Fail,
    Info,
    InfoAnswer,
    Reoffer,
    ReofferAnswer,
    ReofferCancel,
    ReofferFail,
    Ring,
    Try,
)

from .call import SESSION_TIMER

if TYPE_CHECKING:  # pragma: no cover
    from .call import Call

__all__ = [
    "Leg",
    "LegStack",
    "LegStateError",
    "UacLeg",
    "UacState",
    "UasLeg",
    "UasState",
    "body_of",
    "retry_after_of",
]

#: Headers of INFO / MESSAGE / NOTIFY relayed with the body (RFC 6086, RFC 6665).
RELAYED_INFO_HEADERS = ("Event", "Subscription-State", "Info-Package", "Content-Disposition")
#: Headers of a REFER relayed with it (RFC 3515, RFC 4488).  Referred-By is not: it names the
#: agent host's side.
RELAYED_REFER_HEADERS = ("Refer-To", "Refer-Sub")

#: Requests that carry our Contact (target refresh, or a subscription usage: RFC 3515, 6665).
_WITH_CONTACT = frozenset({"INVITE", "UPDATE", "REFER", "NOTIFY"})

_EVENT_ID_RE = re.compile(rb";[ \t]*id[ \t]*=[ \t]*([0-9]{1,10})", re.I)


def _event_package(value: bytes) -> bytes:
    return value.split(b";", 1)[0].strip().lower()


def _event_id(value: bytes) -> int | None:
    m = _EVENT_ID_RE.search(value)
    return int(m.group(1)) if m else None


def _with_event_id(value: bytes, seq: int) -> bytes:
    """``Event: refer;id=<seq>`` -- the id parameter set to ``seq`` (RFC 3515 §2.4.6)."""
    rest = _EVENT_ID_RE.sub(b"", value)
    return rest.rstrip() + b";id=%d" % seq

#: Methods we accept inside a call (Allow header).
ALLOW = b"INVITE, ACK, CANCEL, BYE, UPDATE, PRACK, INFO, MESSAGE, NOTIFY"

#: Call timer kind of the A leg's reliable provisional responses (RFC 3262).
PRACK_TIMER = "prack-a"
PRACK_END = "prack-timeout"

_RSEQ_RE = re.compile(rb"\s*([0-9]{1,10})\s*\Z")


def _requires_100rel(response: Response) -> bool:
    """A provisional response sent reliably: ``Require: 100rel`` (RFC 3262 §4; never a 100)."""
    return response.status > 100 and any(t.strip().lower() == b"100rel" for t in response.get_all("Require"))


def _rseq_of(response: Response) -> int | None:
    """The RSeq of a reliable provisional response (1 .. 2**31-1), None if absent or bad."""
    m = _RSEQ_RE.match(response.get("RSeq") or b"")
    if m is None:
        return None
    rseq = int(m.group(1))
    return rseq if 1 <= rseq < 2**31 else None

_RACK_RE = re.compile(rb"\s*([0-9]{1,10})\s+([0-9]{1,10})\s+([A-Za-z]+)\s*\Z")

_DIGITS_RE = re.compile(rb"\s*([0-9]{1,9})")


class LegStateError(Exception):
    """An input the leg's transition table does not allow in its current state."""

    def __init__(self, leg: str, state: enum.Enum, what: str) -> None:
        super().__init__(f"{leg}: {what} not allowed in state {state.name}")
        self.state = state
        self.what = what


class LegStack(Protocol):
    """What a leg needs from the B2BUA core (one transaction layer shared by both legs)."""

    def send_request(self, leg: "Leg", request: Request, peer: Peer, now: float) -> TransactionKey: ...

    def send_response(self, key: TransactionKey, response: Response, now: float) -> None: ...

    def send_ack(self, request: Request, peer: Peer) -> None: ...

    def cancel(self, key: TransactionKey, now: float) -> None: ...

    def via(self, transport: str, peer_host: str | None = None) -> Via: ...

    def new_id(self) -> int: ...

    def bind_dialog(self, leg: "Leg", dialog_id: DialogId) -> None: ...

    def unbind_dialog(self, dialog_id: DialogId) -> None: ...

    def next_hop(self, dialog: Dialog, fallback: Peer) -> Peer: ...

    def notice(self, reason: str, detail: str, peer: Peer, status: int | None = None, call_id: str = "") -> None: ...

    def contact(self, transport: str, host: str | None = None, peer_host: str | None = None) -> bytes: ...

    def target_failed(self, peer: Peer, now: float) -> None: ...

    def resend_response(self, key: TransactionKey, response: Response, now: float) -> None: ...

    def map_refer_to(self, leg: "Leg", value: bytes) -> bytes | tuple[int, str]:
        """The Refer-To to relay for a REFER from ``leg``'s peer (an embedded Replaces mapped
        to the other leg's dialog, see the core), or (status, reason) to refuse the REFER."""
        ...

    #: RFC 3261 T1 in seconds (reliable provisional retransmissions, RFC 3262 §3)
    t1: float

    #: RFC 4028 settings for both legs; None: no session timers.
    session_timer: SessionTimerConfig | None


def body_of(message: Request | Response) -> Body | None:
    """The body of a message with its Content-Type, or None if it has none."""
    if not message.body:
        return None
    return Body(message.get("Content-Type") or b"application/sdp", message.body)


def retry_after_of(message: Request | Response) -> int | None:
    value = message.get("Retry-After")
    if value is None:
        return None
    m = _DIGITS_RE.match(value)
    return int(m.group(1)) if m else None


def _body_headers(body: Body | None) -> list[tuple[str, bytes]]:
    return [] if body is None else [("Content-Type", body.content_type)]


def _data(body: Body | None) -> bytes:
    return b"" if body is None else body.data


# Purposes of our client transactions.
_INVITE = "invite"
_REOFFER = "reoffer"
_INFO = "info"
_BYE = "bye"
_PRACK = "prack"  # our PRACK for a reliable provisional of the B leg's INVITE (RFC 3262 §4)
_REFRESH = "refresh"  # our session refresh (RFC 4028): answered on this leg only
_DONE = "done"  # final response seen; later ones (2xx retransmissions) only get re-ACKed

#: Relay id of an in-dialog INVITE answered by the leg itself (a session refresh): its ACK
#: ends there and is not relayed.
_LOCAL = -1

SESSION_END = "session-timer"


def _same_sdp(request: Request, last: Body | None) -> bool:
    """An incoming re-INVITE/UPDATE is a pure session refresh: no body (UPDATE), or the very
    SDP last received on this leg, o= line included (RFC 3264 §8).  Stricter than
    :func:`is_refresh_only` alone: a peer that changes its SDP without raising the o= version
    (seen in the field) still gets its change relayed."""
    if not request.body:
        return request.method == "UPDATE"
    if last is None or request.body.rstrip() != last.data.rstrip():
        return False
    return is_refresh_only(request, last.data)


#: An offer we sent (re-INVITE/UPDATE): its session timer negotiation, method and body.
_Sent = tuple["UacNegotiation | None", str, "Body | None"]


class Leg:
    """What both legs share: the dialog, in-dialog relaying, BYE and teardown."""

    side: ClassVar[str] = "?"
    TERMINAL: ClassVar[enum.Enum]
    TERMINATING: ClassVar[enum.Enum]
    CONFIRMED_STATE: ClassVar[enum.Enum]  # the dialog is up and ACKed: refreshes may go out
    TRANSITIONS: ClassVar[dict[tuple[enum.Enum, str], enum.Enum]]
    #: states in which in-dialog requests may be relayed through this leg
    USABLE: ClassVar[frozenset[enum.Enum]]

    state: enum.Enum

    # A held call keeps its two legs for hours: their attributes live in slots, not in an
    # instance dict (more than 30 attributes make a large unshared dict).  ``__dict__`` stays
    # available for anything a subclass or a test adds without declaring it.
    __slots__ = ("stack", "call", "peer", "contact", "dialog", "_bound", "_in", "_out", "offer_in", "offer_out",
                 "_awaiting_ack", "_pending_2xx", "_last_ack", "_bye_after_ack", "_bye_headers", "session",
                 "peer_allows_update", "local_sdp", "remote_sdp", "_in_timer", "_refers_in", "_refers_out", "_neg",
                 "state", "tx_count", "__dict__")

    def __init__(self, stack: LegStack, call: "Call", peer: Peer, contact: bytes) -> None:
        self.stack = stack
        self.call = call
        self.peer = peer  # where requests to this leg's peer go (first hop)
        self.contact = contact  # our Contact on this leg
        self.dialog: Dialog | None = None
        self._bound: DialogId | None = None
        #: Transactions whose events the stack routes to this leg (kept by the stack).
        self.tx_count = 0
        # incoming requests waiting for the other leg's answer: relay id -> (server key, request)
        self._in: dict[int, tuple[TransactionKey, Request]] = {}
        # our client transactions: key -> (purpose, relay id)
        self._out: dict[TransactionKey, tuple[str, int]] = {}
        self.offer_in: int | None = None  # relay id of an incoming re-INVITE/UPDATE in progress
        self.offer_out: TransactionKey | None = None  # our re-INVITE/UPDATE in progress
        self._awaiting_ack: tuple[int, int] | None = None  # (INVITE CSeq, relay id) we 2xx'ed
        self._pending_2xx: tuple[int, Response] | None = None  # 2xx whose ACK waits for Confirm
        # (CSeq, the ACK's bytes) for re-ACKs: kept serialised, it is parsed again only when a
        # 2xx retransmission needs it (rare), and a held call keeps ~400 bytes instead of a message
        self._last_ack: tuple[int, bytes] | None = None
        self._bye_after_ack = False
        self._bye_headers: tuple[tuple[str, bytes], ...] = ()
        # RFC 4028: this leg's timer, what the peer allows, the SDP last sent / received here
        self.session: SessionTimer | None = None
        self.peer_allows_update = False
        self.local_sdp: Body | None = None
        self.remote_sdp: Body | None = None
        self._in_timer: dict[int, UasAccept] = {}  # relay id -> negotiation of a relayed offer
        # transfers: REFERs from our peer (relay id -> its CSeq) and ours (our CSeq -> relay id)
        self._refers_in: dict[int, int] = {}
        self._refers_out: dict[int, int] = {}
        # our re-INVITE/UPDATE (refresh or relayed offer) -> (negotiation, method, body, headers)
        self._neg: dict[TransactionKey, _Sent] = {}

    # ------------------------------------------------------------------ helpers

    @property
    def ended(self) -> bool:
        return self.state is self.TERMINAL

    def _go(self, what: str) -> None:
        nxt = self.TRANSITIONS.get((self.state, what))
        if nxt is None:
            raise LegStateError(self.side, self.state, what)
        self.state = nxt
        if nxt is self.TERMINAL or nxt is self.TERMINATING:
            self._stop_session()
        if nxt is self.TERMINAL:
            self._terminated()

    def _emit(self, event: CallEvent, now: float) -> None:
        self.call.leg_event(self, event, now)

    def _target(self) -> Peer:
        return self.peer

    def _via(self) -> Via:
        target = self._target()
        return self.stack.via(target.transport, target.host)

    def _bind(self, dialog: Dialog) -> None:
        if self._bound is not None and self._bound != dialog.id:
            self.stack.unbind_dialog(self._bound)
        self.dialog = dialog
        self._bound = dialog.id
        self.stack.bind_dialog(self, dialog.id)

    def _unbind(self) -> None:
        if self._bound is not None:
            self.stack.unbind_dialog(self._bound)
            self._bound = None

    def _request(self, method: str, body: Body | None = None,
                 headers: Iterable[tuple[str, bytes]] = ()) -> Request:
        assert self.dialog is not None
        hdrs = list(headers) + _body_headers(body)
        contact = self.contact if method in _WITH_CONTACT else None
        return self.dialog.create_request(method, via=self._via(), contact=contact,
                                          headers=hdrs, body=_data(body))

    def _send(self, request: Request, purpose: str, rid: int, now: float) -> TransactionKey:
        key = self.stack.send_request(self, request, self._target(), now)
        self._out[key] = (purpose, rid)
        return key

    def _respond(self, key: TransactionKey, request: Request, status: int, reason: str | None = None,
                 *, body: Body | None = None, headers: Iterable[tuple[str, bytes]] = (),
                 to_tag: str | None = None, now: float) -> Response:
        hdrs = list(headers)
        if 200 <= status < 300 and request.method in ("INVITE", "UPDATE", "REFER"):
            hdrs.append(("Contact", self.contact))
            if request.method == "INVITE":
                hdrs.append(("Allow", self.allow))
        hdrs.extend(_body_headers(body))
        response = make_response(request, status, reason, to_tag=to_tag, headers=hdrs, body=_data(body))
        self.stack.send_response(key, response, now)
        if body is not None and status < 300 and request.method in ("INVITE", "UPDATE"):
            self.local_sdp = body
        return response

    def _ack(self, cseq: int, body: Body | None, now: float) -> None:
        assert self.dialog is not None
        dialog = self.dialog
        if dialog.state == TERMINATED:
            # A 2xx that arrives after the dialog ended must still be ACKed (RFC 3261 §13.2.2.4).
            dialog = attrs.evolve(dialog, state=CONFIRMED)
        ack = dialog.create_ack(cseq, via=self._via(), headers=_body_headers(body), body=_data(body))
        self._last_ack = (cseq, ack.to_bytes())
        if body is not None:
            self.local_sdp = body
        self.stack.send_ack(ack, self._target())

    def _flush_pending_2xx(self, now: float, body: Body | None = None) -> None:
        """ACK a 2xx we were holding (end-to-end ACK) -- now, with ``body`` if any."""
        if self._pending_2xx is not None:
            cseq, _resp = self._pending_2xx
            self._pending_2xx = None
            self._ack(cseq, body, now)

    def _send_bye(self, now: float, headers: Iterable[tuple[str, bytes]] = ()) -> None:
        if self.dialog is not None and self.dialog.state != TERMINATED:
            self._flush_pending_2xx(now)
            bye = self._request("BYE", headers=headers)
            self._go("bye_out")
            self._send(bye, _BYE, 0, now)
            return
        # No dialog, or the peer already said it is gone (481/408): nothing to send.
        self._pending_2xx = None
        self._go("gone")

    def _terminated(self) -> None:
        """The usage is over: forget the dialog, answer what still waits, tell the call."""
        self._unbind()
        if self.dialog is not None:
            self.dialog.terminate()
        now = self.call.now
        for rid, (key, request) in list(self._in.items()):
            del self._in[rid]
            status = 487 if request.method == "INVITE" else 481
            try:
                self._respond(key, request, status, now=now)
            except Exception as e:  # noqa: BLE001 - the transaction may be gone already
                self.stack.notice("relay-dropped", f"{request.method}: {e}", self.peer, status, self.call.id)
        self.offer_in = None
        self.offer_out = None
        self._awaiting_ack = None
        self._in_timer.clear()
        self._neg.clear()
        self.call.leg_ended(self, now)

    # ------------------------------------------------------------------ network input

    def on_request(self, request: Request, key: TransactionKey, now: float) -> None:
        """An in-dialog request (the dialog already accepted it: tags and CSeq checked)."""
        method = request.method
        if method == "BYE":
            self._respond(key, request, 200, now=now)
            self._peer_bye(tuple(("Reason", v) for v in request.get_all("Reason")), now)
        elif method in ("INVITE", "UPDATE"):
            self._peer_offer(request, key, now)
        elif method in ("INFO", "MESSAGE", "NOTIFY"):
            if self.ended or not self.call.other(self).can_relay():
                self._respond(key, request, 481, now=now)
                return
            rid = self.stack.new_id()
            self._in[rid] = (key, request)
            headers = tuple((name, v) for name in RELAYED_INFO_HEADERS for v in request.get_all(name)[:1])
            self._emit(Info(rid, method, body_of(request), headers, self._refer_of(request)), now)
        elif method == "REFER":
            self._peer_refer(request, key, now)
        elif method == "PRACK":
            self._on_prack(request, key, now)
        elif method == "OPTIONS":
            # An in-dialog keep-alive: answered here, for this leg's dialog (not relayed).
            self._respond(key, request, 200, now=now,
                          headers=[("Allow", self.allow), ("Accept", b"application/sdp")])
        else:
            self._respond(key, request, 405, now=now, headers=[("Allow", self.allow)])

    def _on_prack(self, request: Request, key: TransactionKey, now: float) -> None:
        """A PRACK for a reliable provisional response we did not send: 481 (RFC 3262 §3)."""
        self._respond(key, request, 481, now=now)

    # ------------------------------------------------------------------ transfer (REFER)

    @property
    def allow(self) -> bytes:
        """Our Allow on this leg: REFER too on the agent host's leg when transfers are allowed."""
        if self.call.allow_refer and self is self.call.agent_leg:
            return ALLOW + b", REFER"
        return ALLOW

    def _peer_refer(self, request: Request, key: TransactionKey, now: float) -> None:
        """A REFER from this leg's peer: relayed to the other leg only when it comes from
        the agent host and the trunk allows transfers; refused otherwise, the call untouched."""
        if self is not self.call.agent_leg:
            self._respond(key, request, 405, now=now, headers=[("Allow", self.allow)])
            return
        if not self.call.allow_refer:
            self.stack.notice("refer-refused", "transfers are not allowed on this trunk", self.peer, 403,
                              self.call.id)
            self._respond(key, request, 403, "Transfer Not Allowed", now=now)
            return
        refer_to = request.get_all("Refer-To")
        if len(refer_to) != 1:
            self._respond(key, request, 400, "Exactly One Refer-To Required", now=now)
            return
        if self.ended or not self.call.other(self).can_relay():
            self._respond(key, request, 481, now=now)
            return
        # Attended transfer: a Replaces in the Refer-To names the agent host's dialog; the
        # core maps it to the PBX's view of that dialog (or refuses the REFER).
        mapped = self.stack.map_refer_to(self, refer_to[0])
        if isinstance(mapped, tuple):
            self._respond(key, request, mapped[0], mapped[1], now=now)
            return
        rid = self.stack.new_id()
        self._in[rid] = (key, request)
        self._refers_in[rid] = request.cseq.seq
        headers = tuple((name, mapped if name == "Refer-To" else v)
                        for name in RELAYED_REFER_HEADERS for v in request.get_all(name)[:1])
        self._emit(Info(rid, "REFER", body_of(request), headers), now)

    def _refer_of(self, request: Request) -> int | None:
        """For a NOTIFY of a transfer we relayed (``Event: refer``): the relay id of the REFER
        it reports on (by its ``id`` parameter, or the last REFER without one)."""
        if request.method != "NOTIFY" or not self._refers_out:
            return None
        event = request.get("Event")
        if event is None or _event_package(event) != b"refer":
            return None
        seq = _event_id(event)
        if seq is None:
            seq = max(self._refers_out)
        return self._refers_out.get(seq)

    @property
    def offer_pending(self) -> bool:
        """An offer/answer exchange or an INVITE transaction (2xx not yet ACKed) is in progress
        on this leg, in either direction (RFC 3261 §14.1: no new INVITE meanwhile)."""
        return (self.offer_in is not None or self.offer_out is not None
                or self._awaiting_ack is not None or self._pending_2xx is not None)

    def can_relay(self) -> bool:
        return self.state in self.USABLE and self.dialog is not None and self.dialog.state != TERMINATED

    def _peer_offer(self, request: Request, key: TransactionKey, now: float) -> None:
        method = request.method
        if not self.can_relay():
            self._respond(key, request, 481 if self.ended else 491, now=now)
            return
        pending = self._in.get(self.offer_in) if self.offer_in is not None else None
        if method == "INVITE" and pending is not None and pending[1].method == "INVITE":
            # RFC 3261 §14.2: a second INVITE while the first is still being answered.
            self._respond(key, request, 500, now=now, headers=[("Retry-After", b"%d" % (int(now) % 10))])
            return
        accept: UasAccept | None = None
        config = self.stack.session_timer
        if config is not None:
            try:
                verdict = negotiate_uas(request, config)
            except SipParseError as e:
                self._respond(key, request, 400, e.reason, now=now)
                return
            if isinstance(verdict, Reject422):
                self._respond(key, request, 422, "Session Interval Too Small", headers=verdict.headers, now=now)
                return
            accept = verdict
            if _same_sdp(request, self.remote_sdp) and (not request.body or self.local_sdp is not None):
                self._answer_refresh(request, key, accept, now)
                return
        other = self.call.other(self)
        if self.call.offer_busy() or not other.can_relay():
            # RFC 3261 §14.2 / RFC 3311 §5.2: glare (an offer is pending on this call).
            self._respond(key, request, 491, now=now)
            return
        if method == "INVITE":
            self._respond(key, request, 100, now=now)
        if request.body:
            self.remote_sdp = body_of(request)
        rid = self.stack.new_id()
        self._in[rid] = (key, request)
        if accept is not None:
            self._in_timer[rid] = accept
        self.offer_in = rid
        self._emit(Reoffer(rid, method, body_of(request)), now)

    def _answer_refresh(self, request: Request, key: TransactionKey, accept: UasAccept, now: float) -> None:
        """A session refresh from the peer (RFC 4028 §10): answered here, with our last SDP
        on this leg, and never relayed -- the other leg has its own timer."""
        if request.body and self.offer_pending:
            self._respond(key, request, 491, now=now)  # an offer exchange is in progress here
            return
        body = self.local_sdp if request.body else None
        self._respond(key, request, 200, body=body, headers=accept.headers, now=now)
        if request.method == "INVITE":
            self._awaiting_ack = (request.cseq.seq, _LOCAL)
        self._session_refreshed(now, accept.timer)

    def _peer_bye(self, headers: tuple[tuple[str, bytes], ...], now: float) -> None:
        """The peer hung up (its BYE was answered 200); ``headers``: its Reason headers."""
        raise NotImplementedError

    def on_ack(self, ack: Request, now: float) -> None:
        """An ACK for a 2xx we sent in this dialog."""
        try:
            cseq = ack.cseq.seq
        except SipParseError:
            return
        if self._awaiting_ack is None or self._awaiting_ack[0] != cseq:
            return  # a retransmission, or an ACK we do not wait for
        _cseq, rid = self._awaiting_ack
        self._awaiting_ack = None
        if ack.body:
            self.remote_sdp = body_of(ack)
        if rid == _LOCAL:
            return  # the ACK of a refresh we answered ourselves
        if rid:
            if self.offer_in == rid:
                self.offer_in = None
            self._emit(Confirm(body_of(ack)), now)
        else:
            self._initial_ack(ack, now)

    def _initial_ack(self, ack: Request, now: float) -> None:
        pass

    def on_cancel_reoffer(self, key: TransactionKey, now: float) -> None:
        """The peer sent CANCEL for its re-INVITE (server transaction ``key``)."""
        for rid, (pending_key, _request) in self._in.items():
            if pending_key == key:
                self._emit(ReofferCancel(rid), now)
                return

    def on_ack_missing(self, key: TransactionKey, now: float) -> None:
        """Our 2xx to an INVITE got no ACK in 64*T1: end the call (RFC 3261 §13.3.1.4)."""
        self._awaiting_ack = None
        self.offer_in = None
        self.stack.notice("ack-timeout", "no ACK for our 2xx; ending the call", self.peer, None, self.call.id)
        self.call.hang_up(self, "ack-timeout", now)

    def on_response(self, response: Response, key: TransactionKey, now: float) -> None:
        entry = self._out.get(key)
        if entry is None:
            return
        purpose, rid = entry
        status = response.status
        if purpose == _INVITE:
            self._invite_response(response, key, now)
            return
        if purpose == _DONE:
            if 200 <= status < 300 and key.method == "INVITE":
                self._reack(response)
            return
        if status < 200:
            return
        if purpose == _PRACK:
            # Absorbed here: the 200 ends the PRACK; a failure is only reported (the INVITE
            # transaction decides the call), and never touches the dialog.
            self._out[key] = (_DONE, rid)
            if status >= 300:
                self.stack.notice("prack-failed", f"PRACK for RSeq {rid} answered {status} {response.reason}",
                                  self.peer, status, self.call.id)
            return
        self._out[key] = (_DONE, rid)
        if self.dialog is not None:
            try:
                self.dialog.receive_response(response)
            except DialogError:
                pass
        if purpose == _BYE:
            self._bye_done(now)
            return
        if purpose == _REFRESH:
            self._refresh_answered(response, key, now)
            return
        dialog_gone = status in (408, 481)
        if purpose == _REOFFER:
            if self.offer_out == key:
                self.offer_out = None
            sent = self._neg.pop(key, None)
            if status == 422 and sent is not None and sent[0].process_422(response) and not self.ended:
                # RFC 4028 §7.3: once more with the larger Min-SE the peer asked for.
                self._send_offer(sent, _REOFFER, rid, now)
                return
            if 200 <= status < 300:
                if sent is not None and sent[2] is not None:
                    self.local_sdp = sent[2]
                if response.body:
                    self.remote_sdp = body_of(response)
                if sent is not None and self.stack.session_timer is not None:
                    self._session_refreshed(now, sent[0].process_2xx(response))
                if key.method == "INVITE":
                    if self.state in self.USABLE:
                        self._pending_2xx = (response.cseq.seq, response)
                    else:
                        self._ack(response.cseq.seq, None, now)
                self._emit(ReofferAnswer(rid, body_of(response)), now)
            else:
                self._emit(ReofferFail(rid, status, response.reason, retry_after_of(response)), now)
        elif purpose == _INFO:
            self._emit(InfoAnswer(rid, status, response.reason, body_of(response)), now)
        if dialog_gone and not self.ended:
            self.call.hang_up(self, f"dialog-gone-{self.side}", now)

    def on_timeout(self, key: TransactionKey, now: float, status: int = 408) -> None:
        """Our client transaction got no final response (Timer B/F), or its transport failed."""
        entry = self._out.get(key)
        if entry is None:
            return
        purpose, rid = entry
        if purpose == _INVITE:
            self._invite_failed(status, reason_phrase(status), None, now)
            return
        if purpose == _DONE:
            return
        self._out[key] = (_DONE, rid)
        if purpose == _PRACK:
            self.stack.notice("prack-failed", f"PRACK for RSeq {rid}: no answer ({status})", self.peer, status,
                              self.call.id)
            return
        if purpose == _BYE:
            self._bye_done(now)
            return
        if purpose == _REFRESH:
            self._refresh_lost(key, status, now)
            return
        if purpose == _REOFFER:
            if self.offer_out == key:
                self.offer_out = None
            self._neg.pop(key, None)
            self._emit(ReofferFail(rid, status, reason_phrase(status)), now)
        elif purpose == _INFO:
            self._emit(InfoAnswer(rid, status, reason_phrase(status)), now)
        if not self.ended:
            self.call.hang_up(self, f"timeout-{self.side}", now)

    def transaction_gone(self, key: TransactionKey) -> None:
        self._out.pop(key, None)

    def on_stray_2xx(self, response: Response, now: float) -> None:
        """A 2xx retransmission after our INVITE client transaction ended: re-ACK."""
        self._reack(response)

    def _reack(self, response: Response) -> None:
        try:
            cseq = response.cseq.seq
            tag = response.to.tag
        except SipParseError:
            return
        if self.dialog is not None and tag == self.dialog.remote_tag:
            if self._last_ack is not None and self._last_ack[0] == cseq:
                ack = parse_message(self._last_ack[1])
                assert isinstance(ack, Request)
                self.stack.send_ack(ack, self._target())
            elif self.state in (self.TERMINAL, self.TERMINATING) and self._pending_2xx is None:
                # A 2xx that lost the race with the peer's own BYE: nobody waits for it, but
                # it must be ACKed all the same.
                self._ack(cseq, None, self.call.now)
            # else: our ACK is not due yet (it waits for the other leg's ACK)
            return
        self._foreign_2xx(response)

    def _foreign_2xx(self, response: Response) -> None:
        pass

    def _bye_done(self, now: float) -> None:
        if self.state is self.TERMINATING:
            self._go("bye_done")

    def _invite_response(self, response: Response, key: TransactionKey, now: float) -> None:
        pass

    def _invite_failed(self, status: int, reason: str, retry_after: int | None, now: float) -> None:
        pass

    # ------------------------------------------------------------------ session timer (RFC 4028)

    def _uac_negotiation(self) -> UacNegotiation | None:
        """The negotiation for a re-INVITE/UPDATE we send on this leg (None: no timers)."""
        if self.session is not None and self.session.running:
            return self.session.uac_negotiation()
        config = self.stack.session_timer
        return UacNegotiation(config=config) if config is not None else None

    def _session_refreshed(self, now: float, negotiated: Negotiated | None) -> None:
        """A 2xx to a re-INVITE/UPDATE on this leg (or the initial INVITE): (re)start the
        leg's timer with what that transaction agreed on; None stops it."""
        if self.state is self.TERMINAL or self.state is self.TERMINATING:
            return
        if negotiated is None:
            if self.session is not None:
                self.session.stop()
        elif self.session is None:
            config = self.stack.session_timer
            self.session = SessionTimer(negotiated, now, config if config is not None else SessionTimerConfig())
        else:
            self.session.refreshed(now, negotiated)
        self._arm_session()

    def _arm_session(self) -> None:
        kind = SESSION_TIMER[self.side]
        when = None
        if self.session is not None and self.state is not self.TERMINAL and self.state is not self.TERMINATING:
            when = self.session.next_deadline()
        if when is None:
            self.call.host.cancel_timer(self.call, kind)
        else:
            self.call.host.set_timer(self.call, kind, when)

    def _stop_session(self) -> None:
        if self.session is not None:
            self.session.stop()
            self.call.host.cancel_timer(self.call, SESSION_TIMER[self.side])

    def on_session_timer(self, now: float) -> None:
        """The leg's session timer is due: refresh (we are the refresher) or give up."""
        session = self.session
        if session is None or self.state is self.TERMINAL or self.state is self.TERMINATING:
            return
        action = session.handle_timer(now)
        if action is TimerAction.EXPIRED:
            who = "the peer did not refresh" if session.refresher.value == "peer" else "our refresh did not succeed"
            self._session_expired(f"{who} within {session.interval}s", now)
            return
        if action is TimerAction.REFRESH:
            self._send_refresh(now)
        self._arm_session()

    def _session_expired(self, why: str, now: float) -> None:
        """RFC 4028 §10: the session is over -- BYE on both legs."""
        self.stack.notice("session-expired", f"{self.side} leg: {why}", self.peer, None, self.call.id)
        self.call.hang_up(self, SESSION_END, now)

    def _send_refresh(self, now: float) -> None:
        """Our session refresh: UPDATE without a body when the peer allows UPDATE, else a
        re-INVITE repeating the SDP we last sent on this leg (the peer sees no change)."""
        session = self.session
        assert session is not None
        use_update = self.peer_allows_update or self.local_sdp is None
        if (self.state is not self.CONFIRMED_STATE or self.dialog is None or self.dialog.state == TERMINATED
                or (not use_update and self.offer_pending)):
            # Not now (an offer exchange is under way, or the ACK is still due): a little later.
            session.refresh_failed(now, 491)
            return
        neg = session.uac_negotiation()
        refresh = build_refresh(
            (), peer_allows_update=use_update,
            last_local_sdp=self.local_sdp.data if self.local_sdp is not None else None,
            content_type=self.local_sdp.content_type if self.local_sdp is not None else b"application/sdp")
        body = Body(self.local_sdp.content_type, refresh.body) if refresh.body and self.local_sdp else None
        self._send_offer((neg, refresh.method, body), _REFRESH, 0, now)
        self.stack.notice("session-refresh", f"{self.side} leg: {refresh.method}", self.peer, None, self.call.id)

    def _refresh_answered(self, response: Response, key: TransactionKey, now: float) -> None:
        sent = self._neg.pop(key, None)
        if self.offer_out == key:
            self.offer_out = None
        status = response.status
        if 200 <= status < 300:
            if key.method == "INVITE":
                self._ack(response.cseq.seq, None, now)
            if response.body:
                self.remote_sdp = body_of(response)
            if sent is not None and sent[0] is not None:
                self._session_refreshed(now, sent[0].process_2xx(response))
            return
        session = self.session
        if session is None or self.state is self.TERMINAL or self.state is self.TERMINATING:
            return
        if status == 422 and sent is not None and sent[0] is not None and sent[0].process_422(response):
            self._send_offer(sent, _REFRESH, 0, now)
            return
        if session.refresh_failed(now, status, retry_after_of(response)) is TimerAction.EXPIRED:
            self._session_expired(f"our refresh was answered {status}", now)
            return
        self._arm_session()

    def _refresh_lost(self, key: TransactionKey, status: int, now: float) -> None:
        """Our refresh got no answer (408) or could not be sent (503)."""
        self._neg.pop(key, None)
        if self.offer_out == key:
            self.offer_out = None
        session = self.session
        if session is None or self.state is self.TERMINAL or self.state is self.TERMINATING:
            return
        if session.refresh_failed(now, None if status == 408 else status) is TimerAction.EXPIRED:
            self._session_expired("our refresh got no answer", now)
            return
        self._arm_session()

    # ------------------------------------------------------------------ events from the other leg

    def handle(self, event: CallEvent, now: float) -> None:
        if isinstance(event, Reoffer):
            self._relay_offer(event, now)
        elif isinstance(event, ReofferAnswer):
            self._answer_offer(event, now)
        elif isinstance(event, ReofferFail):
            self._fail_offer(event, now)
        elif isinstance(event, ReofferCancel):
            for key, (purpose, rid) in list(self._out.items()):
                if purpose == _REOFFER and rid == event.id and key.method == "INVITE":
                    self.stack.cancel(key, now)
        elif isinstance(event, Confirm):
            self._confirm(event, now)
        elif isinstance(event, Info):
            self._relay_info(event, now)
        elif isinstance(event, InfoAnswer):
            pending = self._in.pop(event.id, None)
            if pending is not None:
                self._respond(pending[0], pending[1], event.status, event.reason, body=event.body, now=now)
        elif isinstance(event, Disconnect):
            self._disconnect(event, now)
        else:
            self._initial_event(event, now)

    def _relay_offer(self, event: Reoffer, now: float) -> None:
        if not self.can_relay() or self.offer_pending:
            self._emit(ReofferFail(event.id, 491, "Request Pending"), now)
            return
        # The relayed change carries this leg's own session timer (RFC 4028 §7.4).
        self._send_offer((self._uac_negotiation(), event.method, event.body), _REOFFER, event.id, now)

    def _send_offer(self, sent: "_Sent", purpose: str, rid: int, now: float) -> None:
        """Send a re-INVITE or UPDATE (a relayed offer or our refresh) with the session timer
        headers of its negotiation."""
        neg, method, body = sent
        headers = neg.request_headers() if neg is not None else ()
        key = self._send(self._request(method, body, headers), purpose, rid, now)
        self._neg[key] = sent
        if purpose == _REOFFER or method == "INVITE":
            self.offer_out = key

    def _answer_offer(self, event: ReofferAnswer, now: float) -> None:
        pending = self._in.pop(event.id, None)
        accept = self._in_timer.pop(event.id, None)
        if pending is None:
            return
        key, request = pending
        self._respond(key, request, 200, body=event.body, headers=accept.headers if accept else (), now=now)
        if accept is not None:
            self._session_refreshed(now, accept.timer)
        if request.method == "INVITE":
            self._awaiting_ack = (request.cseq.seq, event.id)  # offer_in is cleared by the ACK
        elif self.offer_in == event.id:
            self.offer_in = None

    def _fail_offer(self, event: ReofferFail, now: float) -> None:
        pending = self._in.pop(event.id, None)
        self._in_timer.pop(event.id, None)
        if self.offer_in == event.id:
            self.offer_in = None
        if pending is None:
            return
        headers = [] if event.retry_after is None else [("Retry-After", b"%d" % event.retry_after)]
        self._respond(pending[0], pending[1], event.status, event.reason, headers=headers, now=now)

    def _confirm(self, event: Confirm, now: float) -> None:
        self._flush_pending_2xx(now, event.body)

    def _relay_info(self, event: Info, now: float) -> None:
        if not self.can_relay():
            self._emit(InfoAnswer(event.id, 481, reason_phrase(481)), now)
            return
        headers = event.headers
        if event.refer is not None and event.refer in self._refers_in:
            # The NOTIFY reports on our peer's REFER: its CSeq on this leg is the Event id.
            seq = self._refers_in[event.refer]
            headers = tuple((n, _with_event_id(v, seq) if n.lower() == "event" else v) for n, v in headers)
        request = self._request(event.method, event.body, headers)
        if event.method == "REFER":
            self._refers_out[request.cseq.seq] = event.id
        self._send(request, _INFO, event.id, now)

    def _disconnect(self, event: Disconnect, now: float) -> None:
        raise NotImplementedError

    def _initial_event(self, event: CallEvent, now: float) -> None:
        self.stack.notice("unexpected-event", f"{type(event).__name__} on the {self.side} leg",
                          self.peer, None, self.call.id)


# --------------------------------------------------------------------------- A leg (UAS)


@attrs.define
class _Reliable:
    """A reliable provisional response waiting for its PRACK (RFC 3262 §3)."""

    rseq: int
    response: Response
    has_sdp: bool
    next_at: float  # next retransmission (unreliable transports)
    interval: float
    give_up: float  # 64*T1 after it was first sent


class UasState(enum.Enum):
    PROCEEDING = "proceeding"  # INVITE received, 100 sent
    EARLY = "early"  # 1xx with To tag sent
    ACCEPTED = "accepted"  # 2xx sent, waiting for the ACK
    CONFIRMED = "confirmed"
    TERMINATING = "terminating"  # our BYE sent
    TERMINATED = "terminated"


_U = UasState


class UasLeg(Leg):
    """The A leg: the PBX's INVITE, answered by us with what the B leg learns."""

    side = "a"
    TERMINAL = _U.TERMINATED
    TERMINATING = _U.TERMINATING
    CONFIRMED_STATE = _U.CONFIRMED
    USABLE = frozenset({_U.EARLY, _U.ACCEPTED, _U.CONFIRMED})
    TRANSITIONS = {
        (_U.PROCEEDING, "ring"): _U.EARLY,
        (_U.EARLY, "ring"): _U.EARLY,
        (_U.PROCEEDING, "answer"): _U.ACCEPTED,
        (_U.EARLY, "answer"): _U.ACCEPTED,
        (_U.PROCEEDING, "fail"): _U.TERMINATED,
        (_U.EARLY, "fail"): _U.TERMINATED,
        (_U.PROCEEDING, "cancel"): _U.TERMINATED,
        (_U.EARLY, "cancel"): _U.TERMINATED,
        (_U.PROCEEDING, "bye_in"): _U.TERMINATED,
        (_U.EARLY, "bye_in"): _U.TERMINATED,
        (_U.ACCEPTED, "ack"): _U.CONFIRMED,
        (_U.ACCEPTED, "bye_in"): _U.TERMINATED,
        (_U.CONFIRMED, "bye_in"): _U.TERMINATED,
        (_U.ACCEPTED, "bye_out"): _U.TERMINATING,  # only once the ACK timed out
        (_U.CONFIRMED, "bye_out"): _U.TERMINATING,
        (_U.ACCEPTED, "gone"): _U.TERMINATED,  # the dialog died (481/408): no BYE to send
        (_U.CONFIRMED, "gone"): _U.TERMINATED,
        (_U.TERMINATING, "bye_in"): _U.TERMINATED,
        (_U.TERMINATING, "bye_done"): _U.TERMINATED,
    }

    __slots__ = ("invite", "invite_key", "local_tag", "final_status", "timer", "reliable", "_rseq", "_unacked",
                 "_rel_queue", "_held_answer", "_pracked")

    def __init__(self, stack: LegStack, call: "Call", invite: Request, key: TransactionKey,
                 peer: Peer, contact: bytes, local_tag: str, timer: UasAccept | None = None,
                 reliable: bool = False) -> None:
        """``timer``: the session timer negotiated for the INVITE (:func:`negotiate_uas`),
        put into our 2xx and run from then on; None: no session timer on this leg.
        ``reliable``: send provisional responses reliably (RFC 3262: the PBX requires or
        supports 100rel)."""
        super().__init__(stack, call, peer, contact)
        self.state = _U.PROCEEDING
        self.invite = invite
        self.invite_key = key
        self.local_tag = local_tag
        self.final_status: int | None = None
        self.timer = timer
        self.peer_allows_update = allows_method(invite, "UPDATE")
        self.remote_sdp = body_of(invite)
        # RFC 3262: the reliable provisional awaiting its PRACK, those queued behind it, a 2xx
        # held until an SDP-carrying provisional is PRACKed, and the RSeqs already PRACKed.
        self.reliable = reliable
        # The RSeq space starts at a random point (RFC 3262 §3); drawn only for a PBX that
        # takes reliable provisionals (a system call per call otherwise).
        self._rseq = int.from_bytes(os.urandom(3), "big") + 1 if reliable else 0
        self._unacked: _Reliable | None = None
        self._rel_queue: list[Ring] = []
        self._held_answer: Answer | None = None
        self._pracked: tuple[int, ...] = ()  # few if any: a tuple, not a set

    def start(self, now: float) -> None:
        self._respond(self.invite_key, self.invite, 100, now=now)

    def _dialog_for(self, early: bool) -> None:
        if self.dialog is None:
            self._bind(Dialog.from_uas(self.invite, self.local_tag, self.contact, early=early))
        elif not early:
            self.dialog.confirm()

    def _initial_event(self, event: CallEvent, now: float) -> None:
        if isinstance(event, Ring):
            if self.state not in (_U.PROCEEDING, _U.EARLY):
                return
            self._dialog_for(early=True)
            self._go("ring")
            if self.reliable:
                self._ring_reliably(event, now)
                return
            self._respond(self.invite_key, self.invite, event.status, event.reason, body=event.body,
                          headers=[("Contact", self.contact)], to_tag=self.local_tag, now=now)
        elif isinstance(event, Answer):
            if self.state not in (_U.PROCEEDING, _U.EARLY):
                # The PBX gave up (CANCEL) while the agent answered: end the B leg.
                self._emit(Disconnect("a-gone"), now)
                return
            if self._unacked is not None and self._unacked.has_sdp:
                # RFC 3262 §3: no 2xx before the PRACK of a provisional carrying SDP.
                self._held_answer = event
                return
            self._dialog_for(early=False)
            self._go("answer")
            self.final_status = 200
            self._awaiting_ack = (self.invite.cseq.seq, 0)
            self._respond(self.invite_key, self.invite, 200, body=event.body, to_tag=self.local_tag,
                          headers=self.timer.headers if self.timer is not None else (), now=now)
            if self.timer is not None:
                self._session_refreshed(now, self.timer.timer)
        elif isinstance(event, Fail):
            if self.state in (_U.PROCEEDING, _U.EARLY):
                self.final_status = event.status
                headers = [] if event.retry_after is None else [("Retry-After", b"%d" % event.retry_after)]
                self._respond(self.invite_key, self.invite, event.status, event.reason, headers=headers,
                              to_tag=self.local_tag, now=now)
                self._go("fail")
            else:
                self._disconnect(Disconnect("failed"), now)
        else:
            super()._initial_event(event, now)

    # ---- reliable provisional responses (RFC 3262), A leg only

    def _go(self, what: str) -> None:
        super()._go(what)
        if self.state is not _U.PROCEEDING and self.state is not _U.EARLY:
            self._reliable_done()

    def _reliable_done(self) -> None:
        """A final response went out: no more provisional retransmissions."""
        if self._unacked is not None:
            self._pracked += (self._unacked.rseq,)  # a late PRACK for it still gets 200
        self._unacked = None
        self._rel_queue.clear()
        self._held_answer = None
        self.call.host.cancel_timer(self.call, PRACK_TIMER)

    def _ring_reliably(self, event: Ring, now: float) -> None:
        if self._unacked is not None:
            self._rel_queue.append(event)  # one unacknowledged reliable provisional at a time
            return
        body = event.body
        if not self.invite.body:
            # Late offer: SDP in a reliable provisional would be an offer the PBX answers in
            # the PRACK, while the agent's (unreliable) early SDP binds nothing; keep it out.
            body = None
        self._rseq += 1
        response = self._respond(
            self.invite_key, self.invite, event.status, event.reason, body=body,
            headers=[("Contact", self.contact), ("Require", b"100rel"), ("RSeq", b"%d" % self._rseq)],
            to_tag=self.local_tag, now=now)
        t1 = self.stack.t1
        self._unacked = _Reliable(self._rseq, response, body is not None, now + t1, t1, now + 64 * t1)
        self._arm_prack()

    def _arm_prack(self) -> None:
        rel = self._unacked
        if rel is None:
            self.call.host.cancel_timer(self.call, PRACK_TIMER)
            return
        when = rel.give_up if self.peer.reliable else min(rel.next_at, rel.give_up)
        self.call.host.set_timer(self.call, PRACK_TIMER, when)

    def on_prack_timer(self, now: float) -> None:
        rel = self._unacked
        if rel is None or self.state not in (_U.PROCEEDING, _U.EARLY):
            return
        if now >= rel.give_up:
            # RFC 3262 §3: no PRACK within 64*T1 -- reject the INVITE with a 5xx.
            self.stack.notice("prack-timeout", f"no PRACK for RSeq {rel.rseq}", self.peer, 504, self.call.id)
            if self.call.end_reason is None:
                self.call.end_reason = PRACK_END
            self.final_status = 504
            self._respond(self.invite_key, self.invite, 504, "Server Time-out", to_tag=self.local_tag, now=now)
            self._emit(Disconnect(PRACK_END), now)
            self._go("fail")
            return
        if not self.peer.reliable and now >= rel.next_at:
            self.stack.resend_response(self.invite_key, rel.response, now)
            rel.interval *= 2
            rel.next_at = now + rel.interval
        self._arm_prack()

    def _on_prack(self, request: Request, key: TransactionKey, now: float) -> None:
        m = _RACK_RE.match(request.get("RAck") or b"")
        rack = (int(m.group(1)), int(m.group(2)), m.group(3).decode("ascii").upper()) if m else None
        rel = self._unacked
        if rack is None or rack[1:] != (self.invite.cseq.seq, "INVITE"):
            self._respond(key, request, 481 if rack is not None else 400, now=now)
            return
        if rel is None or rack[0] != rel.rseq:
            # A PRACK retransmitted in a new transaction, or late after our final response.
            self._respond(key, request, 200 if rack[0] in self._pracked else 481, now=now)
            return
        if request.body:
            # A new offer in the PRACK: we only bridge offers made in the INVITE or after the
            # answer (re-INVITE/UPDATE).
            self._respond(key, request, 488, now=now)
            return
        self._respond(key, request, 200, now=now)
        self._pracked += (rel.rseq,)
        self._unacked = None
        self.call.host.cancel_timer(self.call, PRACK_TIMER)
        held, self._held_answer = self._held_answer, None
        if held is not None:
            self._rel_queue.clear()
            self._initial_event(held, now)
        elif self._rel_queue and self.state in (_U.PROCEEDING, _U.EARLY):
            self._ring_reliably(self._rel_queue.pop(0), now)

    def _initial_ack(self, ack: Request, now: float) -> None:
        if self.state is not _U.ACCEPTED:
            return
        if ack.body:
            self.remote_sdp = body_of(ack)
        self._go("ack")
        # Confirmed: from now on the PBX's INVITE is only read for its identifiers.
        self.invite = slim_request(self.invite)
        self._emit(Confirm(body_of(ack)), now)
        if self._bye_after_ack:
            self._send_bye(now, self._bye_headers)

    def on_cancel(self, now: float) -> None:
        """The PBX cancelled our INVITE (the CANCEL itself was answered 200 already)."""
        if self.state not in (_U.PROCEEDING, _U.EARLY):
            return  # too late: a 2xx was sent (RFC 3261 §9.2)
        self.final_status = 487
        self._respond(self.invite_key, self.invite, 487, to_tag=self.local_tag, now=now)
        self._emit(Disconnect("cancel"), now)
        self._go("cancel")

    def _peer_bye(self, headers: tuple[tuple[str, bytes], ...], now: float) -> None:
        if self.state in (_U.PROCEEDING, _U.EARLY):
            self.final_status = 487
            self._respond(self.invite_key, self.invite, 487, to_tag=self.local_tag, now=now)
        self._awaiting_ack = None
        self._emit(Disconnect("bye-a", headers), now)
        if not self.ended:
            self._go("bye_in")

    def on_ack_missing(self, key: TransactionKey, now: float) -> None:
        if key == self.invite_key and self.state is _U.ACCEPTED:
            # RFC 3261 §15: with the 2xx unacknowledged past 64*T1 we may send BYE now.
            self._awaiting_ack = None
            self.stack.notice("ack-timeout", "the PBX never ACKed our 2xx", self.peer, None, self.call.id)
            self._send_bye(now)
            self._emit(Disconnect("ack-timeout"), now)
            return
        super().on_ack_missing(key, now)

    def _disconnect(self, event: Disconnect, now: float) -> None:
        if self.state in (_U.PROCEEDING, _U.EARLY):
            self.final_status = 480
            self._respond(self.invite_key, self.invite, 480, to_tag=self.local_tag, now=now)
            self._go("fail")
        elif self.state is _U.ACCEPTED:
            self._bye_after_ack = True  # RFC 3261 §15: no BYE before the ACK (or its timeout)
            self._bye_headers = event.headers
        elif self.state is _U.CONFIRMED:
            self._send_bye(now, event.headers)


# --------------------------------------------------------------------------- B leg (UAC)


class UacState(enum.Enum):
    INIT = "init"
    RESOLVING = "resolving"  # waiting for the resolver to locate the agent host
    CALLING = "calling"  # INVITE sent
    EARLY = "early"  # a provisional response received
    CANCELLING = "cancelling"  # CANCEL asked for; waiting for the INVITE's final response
    ANSWERED = "answered"  # 2xx received; its ACK waits for the A leg's ACK
    CONFIRMED = "confirmed"
    TERMINATING = "terminating"  # our BYE sent
    TERMINATED = "terminated"


_C = UacState


class UacLeg(Leg):
    """The B leg: our INVITE toward the agent host."""

    side = "b"
    TERMINAL = _C.TERMINATED
    TERMINATING = _C.TERMINATING
    CONFIRMED_STATE = _C.CONFIRMED
    USABLE = frozenset({_C.EARLY, _C.ANSWERED, _C.CONFIRMED})
    TRANSITIONS = {
        (_C.INIT, "try"): _C.CALLING,
        (_C.INIT, "resolve"): _C.RESOLVING,
        (_C.INIT, "cancel"): _C.TERMINATED,
        (_C.RESOLVING, "try"): _C.CALLING,
        (_C.RESOLVING, "cancel"): _C.TERMINATED,
        (_C.RESOLVING, "failed"): _C.TERMINATED,
        (_C.CALLING, "retry"): _C.CALLING,  # failover to the next target (RFC 3263 §4.3), or 422
        (_C.EARLY, "retry"): _C.CALLING,  # 422 after a provisional (RFC 4028 §7.3)
        (_C.CALLING, "provisional"): _C.EARLY,
        (_C.EARLY, "provisional"): _C.EARLY,
        (_C.CANCELLING, "provisional"): _C.CANCELLING,
        (_C.CALLING, "ok"): _C.ANSWERED,
        (_C.EARLY, "ok"): _C.ANSWERED,
        (_C.CALLING, "failed"): _C.TERMINATED,
        (_C.EARLY, "failed"): _C.TERMINATED,
        (_C.CANCELLING, "failed"): _C.TERMINATED,
        # The agent's BYE overtook its 2xx (reordering): the call is over on this leg.
        (_C.CALLING, "bye_in"): _C.TERMINATED,
        (_C.EARLY, "bye_in"): _C.TERMINATED,
        (_C.CANCELLING, "bye_in"): _C.TERMINATED,
        (_C.CALLING, "cancel"): _C.CANCELLING,
        (_C.EARLY, "cancel"): _C.CANCELLING,
        (_C.ANSWERED, "confirm"): _C.CONFIRMED,
        (_C.ANSWERED, "bye_in"): _C.TERMINATED,
        (_C.CONFIRMED, "bye_in"): _C.TERMINATED,
        (_C.ANSWERED, "bye_out"): _C.TERMINATING,  # ACK first, then BYE
        (_C.CONFIRMED, "bye_out"): _C.TERMINATING,
        (_C.CANCELLING, "bye_out"): _C.TERMINATING,  # a 2xx crossed our CANCEL
        (_C.ANSWERED, "gone"): _C.TERMINATED,
        (_C.CONFIRMED, "gone"): _C.TERMINATED,
        (_C.CANCELLING, "gone"): _C.TERMINATED,
        (_C.TERMINATING, "bye_in"): _C.TERMINATED,
        (_C.TERMINATING, "bye_done"): _C.TERMINATED,
    }

    __slots__ = ("contact_host", "alternatives", "resolving", "lookup_key", "_try", "target", "route",
                 "local_host", "user_agent", "call_id", "local_tag", "invite", "invite_key", "final_status",
                 "offerless", "_st_neg", "rel100", "_rseq_in", "_forks")

    def __init__(self, stack: LegStack, call: "Call", target: URI, peers: Sequence[Peer] | None,
                 *, local_host: str, route: bytes | None = None, user_agent: bytes | None = None,
                 call_id: str, local_tag: str, contact_host: str | None = None, rel100: bool = False) -> None:
        """``peers``: where the INVITE may go, best first (the next one is tried on a timeout
        or 503 before any provisional response); None while the resolver is still looking
        (then :meth:`resolved` follows).  ``contact_host``: the host of our Contact (our FQDN
        toward a trunk; default our address).  ``rel100``: offer ``100rel`` (RFC 3262) in the
        INVITE when it carries an offer, and PRACK the peer's reliable provisionals."""
        first = peers[0] if peers else Peer("udp", "0.0.0.0", 0)
        super().__init__(stack, call, first, stack.contact(first.transport, contact_host, first.host))
        self.contact_host = contact_host
        self.alternatives = list(peers[1:]) if peers else []
        self.resolving = peers is None
        self.lookup_key: str | None = None  # set by the core while a lookup is pending
        self._try: Try | None = None
        self.state = _C.INIT
        self.target = target
        self.route = route
        self.local_host = local_host
        self.user_agent = user_agent
        self.call_id = call_id
        self.local_tag = local_tag
        self.invite: Request | None = None
        self.invite_key: TransactionKey | None = None
        self.final_status: int | None = None
        self.offerless = False
        self._st_neg: UacNegotiation | None = None  # session timer of the initial INVITE
        self.rel100 = rel100
        # RFC 3262 §4, per early dialog (To tag): the RSeq of the last reliable provisional
        # taken in order, and the dialogs of other forks (PRACKed within their own dialog).
        self._rseq_in: dict[str, int] = {}
        self._forks: dict[str, Dialog] = {}

    def _target(self) -> Peer:
        if self.dialog is None:
            return self.peer
        return self.stack.next_hop(self.dialog, self.peer)

    # ---- the initial INVITE

    def _build_invite(self, event: Try, cseq: int = 1) -> Request:
        user = event.caller_user
        from_uri = URI("sip", user=user or "anonymous", host=self.local_host)
        from_ = NameAddr(event.caller_display, from_uri).with_tag(self.local_tag)
        to = NameAddr(None, URI(self.target.scheme, user=self.target.user, host=self.target.host,
                                port=self.target.port))
        via = self.stack.via(self.peer.transport, self.peer.host)
        headers: list[tuple[str, bytes]] = [
            ("Via", via.to_bytes()),
            ("Max-Forwards", b"%d" % max(event.max_forwards - 1, 0)),
        ]
        if self.route is not None:
            headers.append(("Route", self.route))
        headers += [
            ("From", from_.to_bytes()),
            ("To", to.to_bytes()),
            ("Call-ID", self.call_id.encode("latin-1")),
            ("CSeq", b"%d INVITE" % cseq),
            ("Contact", self.contact),
            ("Allow", self.allow),
        ]
        if self._st_neg is not None:
            headers.extend(self._st_neg.request_headers())
        if self._offers_100rel(event):
            supported = next((i for i, (n, _v) in enumerate(headers) if n == "Supported"), None)
            if supported is None:
                headers.append(("Supported", b"100rel"))
            else:
                headers[supported] = ("Supported", headers[supported][1] + b", 100rel")
        if self.user_agent:
            headers.append(("User-Agent", self.user_agent))
        headers.extend(event.headers)
        headers.extend(_body_headers(event.body))
        headers.append(("Content-Length", b"%d" % len(_data(event.body))))
        return preparsed(Request("INVITE", self.target.to_bytes(), tuple(Header(n, v) for n, v in headers),
                                 _data(event.body)),
                         from_=from_, to=to, call_id=self.call_id, cseq=CSeq(cseq, "INVITE"), top_via=via)

    def _initial_event(self, event: CallEvent, now: float) -> None:
        if isinstance(event, Try):
            self._try = event
            self.offerless = event.body is None
            config = self.stack.session_timer
            self._st_neg = UacNegotiation(config=config) if config is not None else None
            if self.resolving:
                self._go("resolve")
                return
            self._go("try")
            self._send_invite(1, now)
        else:
            super()._initial_event(event, now)

    def _offers_100rel(self, event: Try) -> bool:
        """Offer 100rel only with an offer in the INVITE: a reliable provisional answering a
        late-offer INVITE would carry an offer that we would have to answer in the PRACK,
        before the PBX has said anything (RFC 3262 §5)."""
        return self.rel100 and event.body is not None

    def _send_invite(self, cseq: int, now: float) -> None:
        assert self._try is not None
        self._rseq_in.clear()  # a new INVITE (failover, 422): new early dialogs
        self._forks.clear()
        self.contact = self.stack.contact(self.peer.transport, self.contact_host, self.peer.host)
        self.invite = self._build_invite(self._try, cseq)
        self.invite_key = self._send(self.invite, _INVITE, 0, now)

    def resolved(self, peers: Sequence[Peer], now: float) -> None:
        """The resolver located the agent host (``peers`` best first; [] if it could not)."""
        if self.state is not _C.RESOLVING:
            return
        self.resolving = False
        if not peers:
            self.final_status = 503
            self._emit(Fail(503, "Service Unavailable", None), now)
            self._go("failed")
            return
        self.peer = peers[0]
        self.alternatives = list(peers[1:])
        self._go("try")
        self._send_invite(1, now)

    def _failover(self, status: int, now: float) -> bool:
        """Try the next target after a timeout or 503 with no provisional response yet."""
        if self.state is not _C.CALLING or not self.alternatives or status not in (408, 503) \
                or self.invite is None:
            return False
        self.stack.target_failed(self.peer, now)
        failed = self.peer
        self.peer = self.alternatives.pop(0)
        self.stack.notice("failover", f"{status} from {failed.transport}:{failed.host}:{failed.port}; "
                          f"trying {self.peer.transport}:{self.peer.host}:{self.peer.port}",
                          failed, status, self.call.id)
        self._go("retry")
        self._send_invite(self.invite.cseq.seq + 1, now)
        return True

    def _new_dialog(self, response: Response) -> Dialog:
        assert self.invite is not None
        try:
            return Dialog.from_uac(self.invite, response)
        except DialogError:
            # No (usable) Contact: keep talking to the Request-URI's host.
            return Dialog(
                id=DialogId(self.call_id, self.local_tag, response.to.tag or ""),
                local_seq=self.invite.cseq.seq, remote_seq=None,
                local_uri=self.invite.from_.without_param("tag"),
                remote_uri=response.to.without_param("tag"),
                remote_target=self.target, route_set=(), secure=False,
                state=EARLY if response.status < 200 else CONFIRMED, is_uac=True,
                local_contact=self.contact)

    def _dialog_from(self, response: Response) -> None:
        self._bind(self._new_dialog(response))

    def _invite_response(self, response: Response, key: TransactionKey, now: float) -> None:
        status = response.status
        try:
            tag = response.to.tag
        except SipParseError:
            tag = None
        if status < 200:
            if status == 100 or self.state not in (_C.CALLING, _C.EARLY, _C.CANCELLING):
                return
            if tag and self.dialog is None:
                self._dialog_from(response)
            elif tag and self.dialog is not None and self.dialog.remote_tag == tag:
                try:
                    self.dialog.receive_response(response)
                except DialogError:
                    pass
            if _requires_100rel(response) and not self._reliable_provisional(response, tag, now):
                return  # a retransmission, or out of order: not relayed (RFC 3262 §4)
            cancelling = self.state is _C.CANCELLING
            self._go("provisional")
            if response.body:
                self.remote_sdp = body_of(response)
            if not cancelling:
                self._emit(Ring(status, response.reason, body_of(response)), now)
            return
        self._rseq_in.clear()  # a final response: no more reliable provisionals (RFC 3262 §4)
        self._forks.clear()
        if status < 300:
            if self.state not in (_C.CALLING, _C.EARLY, _C.CANCELLING):
                self._reack(response)
                return
            self._out[key] = (_DONE, 0)
            self.final_status = status
            if self.dialog is None or self.dialog.remote_tag != tag:
                self._dialog_from(response)
            else:
                try:
                    self.dialog.receive_response(response)
                except DialogError:
                    self.dialog.confirm()
            if self.state is _C.CANCELLING:
                # The 2xx crossed our CANCEL: take the call and hang it up at once.
                self.stack.notice("cancel-race", "2xx crossed the CANCEL; ACK and BYE", self.peer, status,
                                  self.call.id)
                self._ack(response.cseq.seq, None, now)
                self._send_bye(now)
                return
            self._go("ok")
            self._pending_2xx = (response.cseq.seq, response)
            if self._try is not None and self._try.body is not None:
                self.local_sdp = self._try.body
            if response.body:
                self.remote_sdp = body_of(response)
            self.peer_allows_update = allows_method(response, "UPDATE")
            if self._st_neg is not None:
                self._session_refreshed(now, self._st_neg.process_2xx(response))
            self._emit(Answer(body_of(response)), now)
            return
        self._out[key] = (_DONE, 0)
        if status == 422 and self._retry_422(response, now):
            return
        self._invite_failed(status, response.reason, retry_after_of(response), now)

    # ---- reliable provisional responses from the peer (RFC 3262 §4), B leg

    def _reliable_provisional(self, response: Response, tag: str | None, now: float) -> bool:
        """A provisional response with ``Require: 100rel``: PRACK it if it is the next one of
        its early dialog.  False: a retransmission (an RSeq already taken), or one out of
        order -- discarded, neither PRACKed nor relayed.  One we cannot PRACK (we did not
        offer 100rel, no RSeq, no To tag) is taken as an unreliable provisional (True) and
        reported; its retransmissions are dropped all the same when it has an RSeq."""
        offered = self._try is not None and self._offers_100rel(self._try)
        rseq = _rseq_of(response)
        if rseq is None or not tag:
            self.stack.notice("100rel-malformed", f"reliable {response.status} without "
                              f"{'a usable RSeq' if tag else 'a To tag'}; relayed as unreliable, no PRACK",
                              self.peer, response.status, self.call.id)
            return True
        last = self._rseq_in.get(tag)
        if last is not None and rseq <= last:
            return False  # retransmitted: our PRACK transaction retransmits by itself
        if not offered:
            self._rseq_in[tag] = rseq
            self.stack.notice("100rel-unrequested", f"{response.status} requires 100rel, which our INVITE "
                              "did not offer; relayed as unreliable, no PRACK", self.peer, response.status,
                              self.call.id)
            return True
        if last is not None and rseq != last + 1:
            self.stack.notice("100rel-out-of-order", f"RSeq {rseq} after {last}; discarded", self.peer,
                              response.status, self.call.id)
            return False
        self._rseq_in[tag] = rseq
        self._send_prack(response, tag, rseq, now)
        return True

    def _send_prack(self, response: Response, tag: str, rseq: int, now: float) -> None:
        """PRACK within the early dialog the response created (RFC 3262 §7.2: RAck = RSeq,
        CSeq number and method of the response); another fork's dialog for a fork."""
        dialog = self.dialog if self.dialog is not None and self.dialog.remote_tag == tag else None
        if dialog is None:
            dialog = self._forks.get(tag)
            if dialog is None:
                dialog = self._forks[tag] = self._new_dialog(response)
        cseq = response.cseq
        target = self.stack.next_hop(dialog, self.peer)
        try:
            prack = dialog.create_request(
                "PRACK", via=self.stack.via(target.transport, target.host),
                headers=[("RAck", b"%d %d %s" % (rseq, cseq.seq, cseq.method.encode("ascii")))])
        except DialogError as e:
            self.stack.notice("prack-failed", f"cannot PRACK RSeq {rseq}: {e.reason}", self.peer, None,
                              self.call.id)
            return
        key = self.stack.send_request(self, prack, target, now)
        self._out[key] = (_PRACK, rseq)

    def _retry_422(self, response: Response, now: float) -> bool:
        """RFC 4028 §7.3: the agent wants a longer session interval; send the INVITE once
        more (new CSeq) with its Min-SE."""
        if self.state not in (_C.CALLING, _C.EARLY) or self._st_neg is None or self.invite is None \
                or not self._st_neg.process_422(response):
            return False
        if self.dialog is not None:  # an early dialog of the refused INVITE
            self._unbind()
            self.dialog = None
        self.stack.notice("session-422", f"agent asked for Min-SE {self._st_neg.min_se}; retrying",
                          self.peer, 422, self.call.id)
        self._go("retry")
        self._send_invite(self.invite.cseq.seq + 1, now)
        return True

    def _invite_failed(self, status: int, reason: str, retry_after: int | None, now: float) -> None:
        if self.state not in (_C.CALLING, _C.EARLY, _C.CANCELLING):
            return
        if self.invite_key is not None and self._out.get(self.invite_key, ("",))[0] == _INVITE:
            self._out[self.invite_key] = (_DONE, 0)
        if self._failover(status, now):
            return
        self.final_status = status
        if self.state is not _C.CANCELLING:
            self._emit(Fail(status, reason, retry_after), now)
        self._go("failed")

    def _foreign_2xx(self, response: Response) -> None:
        """A 2xx from another fork (a different To tag) after we are answered: ACK and BYE it."""
        if self.invite is None or response.cseq.method != "INVITE" or response.cseq.seq != self.invite.cseq.seq:
            return
        try:
            fork = Dialog.from_uac(self.invite, response)
        except (DialogError, SipParseError):
            return
        now = self.call.now
        ack = fork.create_ack(response.cseq.seq, via=self._via())
        self.stack.send_ack(ack, self.stack.next_hop(fork, self.peer))
        bye = fork.create_request("BYE", via=self._via())
        key = self.stack.send_request(self, bye, self.stack.next_hop(fork, self.peer), now)
        self._out[key] = (_DONE, 0)

    def _confirm(self, event: Confirm, now: float) -> None:
        if self.state is _C.ANSWERED:
            self._flush_pending_2xx(now, event.body)
            self._go("confirm")
            # Confirmed: no new INVITE of this usage (failover, 422) can follow; a fork's late
            # 2xx needs only the INVITE's identifiers.
            if self.invite is not None:
                self.invite = slim_request(self.invite)
            self._try = None
        else:
            super()._confirm(event, now)

    def _peer_bye(self, headers: tuple[tuple[str, bytes], ...], now: float) -> None:
        self._flush_pending_2xx(now)  # the agent still waits for the ACK of its 2xx
        self._emit(Disconnect("bye-b", headers), now)
        if not self.ended:
            self._go("bye_in")

    def _disconnect(self, event: Disconnect, now: float) -> None:
        if self.state in (_C.INIT, _C.RESOLVING):
            self._go("cancel")
        elif self.state in (_C.CALLING, _C.EARLY):
            self._go("cancel")
            if self.invite_key is not None:
                self.stack.cancel(self.invite_key, now)
        elif self.state in (_C.ANSWERED, _C.CONFIRMED):
            self._send_bye(now, event.headers)

