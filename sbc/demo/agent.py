# -*- test-case-name: tests.test_demo_agent -*-
"""
The demo agent host's user agent, sans-IO: it answers every call.

:class:`DemoAgent` is a transaction user in the project's usual shape (a
:class:`~sbc.sip.endpoint.RequestHandler` for the :class:`~sbc.sip.endpoint.Endpoint`, with
``messages_to_send()``, ``next_deadline()`` and ``handle_timer(now)`` for the
:class:`~sbc.transport.driver.SipDriver`).  For every INVITE it

* sends 180 Ringing, then 200 OK after ``ring_delay`` seconds (at once by default), the 2xx
  retransmitted until its ACK arrives (``TransactionLayer(retransmit_2xx=True)``);
* answers the SDP offer with one audio stream on a port it gets from a :class:`MediaPorts`
  (the RTP echo in production, a fake in tests): the first offered codec it supports (PCMU or
  PCMA at 8 kHz) plus the offer's telephone-event payload type, if any.  An INVITE without
  SDP (late offer) gets our offer in the 200 and the answer is taken from the ACK;
* hangs up with BYE after ``max_duration`` seconds if that is set, or when the 2xx is never
  acknowledged (RFC 3261 §13.3.1.4);
* answers a re-INVITE or UPDATE with its current SDP (matched to the new offer), INFO and
  MESSAGE with 200, BYE with 200, and CANCEL of a ringing call with 200 plus 487.

What it saw is reported as :class:`DemoEvent` objects drained with :meth:`DemoAgent.events`
(call start and end, INFO and MESSAGE bodies, and agent events passed to
:meth:`DemoAgent.on_agent_event`); the Twisted side logs them.  Nothing here reads a clock,
opens a socket or logs.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import deque
from ipaddress import ip_address
from typing import Any, Callable, Mapping, Protocol

from attrs import define, field, frozen

from sbc.sip.timers import TimerHeap
from sbc.sip.dialog import Dialog, DialogError
from sbc.sip.endpoint import Peer
from sbc.sip.errors import SipError, SipParseError
from sbc.sip.message import Request, Response, make_response
from sbc.sip.sdp import SessionDescription, parse_sdp
from sbc.sip.transaction import (
    MAGIC_COOKIE,
    AckMissing,
    AckReceived,
    CancelReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    Timers,
    TransactionError,
    TransactionKey,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
    TxState,
)

__all__ = [
    "DemoAgent",
    "DemoEvent",
    "MediaAddress",
    "MediaPorts",
    "SUPPORTED_CODECS",
    "answer_sdp",
    "offer_sdp",
]

#: Codecs the echo can "speak" (it only reflects packets, but the answer must name one):
#: encoding name -> static payload type (RFC 3551).
SUPPORTED_CODECS: Mapping[str, int] = {"PCMU": 0, "PCMA": 8}

#: Payload type of telephone-event in our own offers (late-offer calls).
OFFER_TELEPHONE_EVENT = 101

_SDP_TYPE = b"application/sdp"
_ALLOW = b"INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, MESSAGE"
_MAX_BODY_SHOWN = 2000


@frozen
class MediaAddress:
    """Where the media of one call is received (host as an IP literal, no brackets)."""

    host: str
    port: int


class MediaPorts(Protocol):
    """Hands out one media port per call (the RTP echo in production)."""

    def open(self, key: str, host: str) -> MediaAddress | None:
        """A port for call ``key`` on (or in the address family of) ``host``; None when
        none is free."""

    def close(self, key: str) -> None:
        """The call ended: release its port (unknown keys are ignored)."""


@frozen
class DemoEvent:
    """Something worth a log line.  ``kind`` is one of ``call-started``, ``call-ended``,
    ``call-refused``, ``info``, ``message``, ``agent-event`` and ``warning``."""

    kind: str
    call_id: str
    fields: Mapping[str, Any] = field(factory=dict, hash=False)


# --------------------------------------------------------------------------- SDP


def _family(host: str) -> bytes:
    return b"IP6" if ":" in host else b"IP4"


def _session_lines(origin_id: int, version: int, media: MediaAddress) -> list[bytes]:
    family = _family(media.host)
    host = media.host.encode("ascii")
    return [
        b"v=0",
        b"o=- %d %d IN %s %s" % (origin_id, version, family, host),
        b"s=sbc-demo-agent",
        b"c=IN %s %s" % (family, host),
        b"t=0 0",
    ]


def _supported(encoding: str | None, clock_rate: int | None, channels: int | None) -> bool:
    return (encoding is not None and encoding.upper() in SUPPORTED_CODECS
            and clock_rate == 8000 and channels in (None, 1))


def answer_sdp(offer: SessionDescription, media: MediaAddress, origin_id: int,
               version: int) -> bytes | None:
    """RFC 3264 answer to ``offer``, or None when no stream is acceptable (answer 488).

    The first active ``audio`` stream over RTP/AVP (or RTP/AVPF) that offers PCMU or PCMA at
    8 kHz is accepted on ``media``: with the first such codec in the offer's order, the
    offer's 8 kHz telephone-event payload type (and its fmtp) if any, and the mirror of the
    offer's direction.  Every other stream is rejected with port 0, as RFC 3264 §6 asks.
    """
    lines = _session_lines(origin_id, version, media)
    accepted = False
    for index, section in enumerate(offer.media):
        chosen = None
        if (not accepted and not section.rejected and section.media == "audio"
                and section.proto.upper() in ("RTP/AVP", "RTP/AVPF")):
            chosen = next((c for c in section.codecs()
                           if _supported(c.encoding, c.clock_rate, c.channels)), None)
        proto = section.proto.encode("ascii", "replace")
        kind = section.media.encode("ascii", "replace")
        if chosen is None or chosen.encoding is None:
            first = section.formats[0].encode("ascii", "replace") if section.formats else b"0"
            lines.append(b"m=%s 0 %s %s" % (kind, proto, first))
            continue
        accepted = True
        event = section.telephone_event(8000)
        formats = [chosen.payload_type] + ([event.payload_type] if event is not None else [])
        lines.append(b"m=audio %d %s %s" % (media.port, proto,
                                             b" ".join(b"%d" % pt for pt in formats)))
        lines.append(b"a=rtpmap:%d %s/8000" % (chosen.payload_type,
                                                chosen.encoding.upper().encode("ascii")))
        if event is not None:
            lines.append(b"a=rtpmap:%d telephone-event/8000" % event.payload_type)
            events = (event.events or "0-16").encode("ascii", "replace")
            lines.append(b"a=fmtp:%d %s" % (event.payload_type, events))
        lines.append(b"a=ptime:20")
        lines.append(b"a=" + offer.direction(index).reversed().value.encode("ascii"))
    if not accepted:
        return None
    return b"\r\n".join(lines) + b"\r\n"


def offer_sdp(media: MediaAddress, origin_id: int, version: int) -> bytes:
    """Our offer for a late-offer call: PCMU, PCMA and telephone-event 101, sendrecv."""
    te = OFFER_TELEPHONE_EVENT
    lines = _session_lines(origin_id, version, media) + [
        b"m=audio %d RTP/AVP 0 8 %d" % (media.port, te),
        b"a=rtpmap:0 PCMU/8000",
        b"a=rtpmap:8 PCMA/8000",
        b"a=rtpmap:%d telephone-event/8000" % te,
        b"a=fmtp:%d 0-16" % te,
        b"a=ptime:20",
        b"a=sendrecv",
    ]
    return b"\r\n".join(lines) + b"\r\n"


def _acceptable_answer(answer: SessionDescription) -> bool:
    """Does an answer to :func:`offer_sdp` pick one of our codecs on an active stream?"""
    if len(answer.media) != 1:
        return False
    section = answer.media[0]
    if section.rejected or section.media != "audio":
        return False
    return any(_supported(c.encoding, c.clock_rate, c.channels) for c in section.codecs())


def _sdp_body(message: Request | Response) -> bytes | None:
    """The SDP body of a message, None without a body; SipParseError(415) for another type."""
    if not message.body:
        return None
    ctype = (message.get("Content-Type") or b"").split(b";")[0].strip().lower()
    if ctype != _SDP_TYPE:
        raise SipParseError("only application/sdp bodies are accepted", 415)
    return message.body


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _without_origin(sdp: bytes) -> bytes:
    return b"\n".join(line for line in sdp.split(b"\n") if not line.startswith(b"o="))


# --------------------------------------------------------------------------- calls


RINGING = "ringing"  # 180 sent, waiting for the ring delay to end
ANSWERED = "answered"  # 200 sent, waiting for the ACK
CONFIRMED_STATE = "confirmed"  # ACK received


@define
class _Call:
    key: str  # Call-ID + local tag: unique per call here
    dialog: Dialog
    peer: Peer
    invite: Request
    invite_key: TransactionKey
    media: MediaAddress
    started: float
    origin_id: int
    state: str = RINGING
    sdp_version: int = 1
    local_sdp: bytes | None = None
    offer: SessionDescription | None = None  # the remote offer being answered
    awaiting_ack_answer: bool = False  # our 200 carried an offer (late offer / re-INVITE)
    answered_at: float | None = None


class DemoAgent:
    """The demo agent host's UAS core (see the module docstring).

    :param local_address: the ``(host, port)`` of our own socket that a peer reached, for
        Via and Contact (IPv6 without brackets).
    :param media: hands out and releases the per-call media ports.
    :param ring_delay: seconds between 180 and 200.
    :param max_duration: seconds after the 200 at which we hang up; None: never.
    """

    methods = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "UPDATE", "INFO", "MESSAGE"})

    def __init__(
        self,
        *,
        local_address: Callable[[Peer], tuple[str, int]],
        media: MediaPorts,
        ring_delay: float = 0.0,
        max_duration: float | None = None,
        timers: Timers = Timers(),
        user_agent: str = "sbc-demo-agent",
    ) -> None:
        self._local_address = local_address
        self.media = media
        self.ring_delay = max(0.0, ring_delay)
        self.max_duration = max_duration
        self.user_agent = user_agent.encode()
        self._tx = TransactionLayer(timers, retransmit_2xx=True)
        self.calls: dict[str, _Call] = {}
        self._by_invite: dict[TransactionKey, str] = {}
        self._our_requests: dict[TransactionKey, str] = {}  # BYEs we sent -> call key
        self._timers: TimerHeap[tuple[str, str]] = TimerHeap()  # (call key, kind)
        self._seq = itertools.count(1)
        self._prefix = os.urandom(4).hex()
        self._events: deque[DemoEvent] = deque(maxlen=10_000)
        self.stats: dict[str, int] = {}

    # ================================================================== outputs

    def messages_to_send(self) -> list[tuple[Request | Response, Peer]]:
        return self._tx.messages_to_send()  # type: ignore[return-value]

    def next_deadline(self) -> float | None:
        tx = self._tx.next_deadline()
        mine = self._timers.next_deadline()
        if tx is None:
            return mine
        return tx if mine is None else min(tx, mine)

    def events(self) -> list[DemoEvent]:
        """What happened since the last call, oldest first."""
        items = list(self._events)
        self._events.clear()
        return items

    def counts(self) -> dict[str, int]:
        """Live state (all 0 when idle): calls, transactions, timers, bindings."""
        return {
            "calls": len(self.calls),
            "transactions": len(self._tx),
            "timers": len(self._timers),
            "bindings": len(self._by_invite) + len(self._our_requests),
        }

    # ================================================================== inputs

    def handle_request(self, request: Request, peer: Peer, now: float) -> None:
        """A request from the endpoint (validated, top Via stamped)."""
        try:
            self._tx.receive(request, peer, peer.reliable, now)
        except SipParseError:
            self._count("bad-request")
            return
        self._drain(now)

    def handle_response(self, response: Response, peer: Peer, now: float) -> None:
        self._tx.receive(response, peer, peer.reliable, now)
        self._drain(now)

    def handle_timer(self, now: float) -> None:
        self._tx.handle_timer(now)
        self._drain(now)
        while (due := self._timers.pop_due(now)) is not None:
            key, kind = due
            call = self.calls.get(key)
            if call is not None:
                self._guard(self._on_timer, call, kind, now)
            self._drain(now)

    def on_agent_event(self, event: Mapping[str, Any]) -> None:
        """An agent event the SBC sent about one of our calls (DTMF audit, submitted digits,
        call start/end), from an INFO with an ``application/json`` body or a WebSocket
        subscription.  It is reported as an ``agent-event``."""
        call_id = event.get("call_id", "") if isinstance(event, Mapping) else ""
        self._events.append(DemoEvent("agent-event", str(call_id), {"event": dict(event)}))

    def hangup_all(self, now: float) -> None:
        """Send BYE on every answered call and drop the ringing ones with 480 (shutdown)."""
        for call in list(self.calls.values()):
            if call.state == RINGING:
                self._guard(self._fail_invite, call, 480, "Temporarily Unavailable", now,
                            "shutdown")
            else:
                self._guard(self._hang_up, call, now, "shutdown")
        self._drain(now)

    # ================================================================== dispatch

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except (SipError, TransactionError) as e:
            self._count("call-error")
            self._events.append(DemoEvent("warning", "", {"error": f"{type(e).__name__}: {e}"}))

    def _failed_request(self, key: TransactionKey, request: Request, error: Exception,
                        now: float) -> None:
        """A request we could not handle still gets a final answer (500), so that its
        server transaction ends; if even that fails, the transaction is dropped."""
        self._count("call-error")
        self._events.append(DemoEvent("warning", "", {
            "error": f"{request.method} failed: {type(error).__name__}: {error}"}))
        if self._tx.state(key) not in (TxState.PROCEEDING, TxState.TRYING):
            return  # answered already (or gone): leave the transaction alone
        try:
            self._reply(request, key, 500, "Server Internal Error", now=now)
        except (SipError, TransactionError):
            self._tx.terminate(key)

    def _drain(self, now: float) -> None:
        while (event := self._tx.next_event()) is not None:
            self._dispatch(event, now)

    def _dispatch(self, event: Event, now: float) -> None:
        if isinstance(event, RequestReceived):
            try:
                self._request(event.request, event.peer, event.key, now)
            except (SipError, TransactionError) as e:
                self._failed_request(event.key, event.request, e, now)
        elif isinstance(event, AckReceived):
            self._guard(self._ack, event.request, now)
        elif isinstance(event, CancelReceived):
            self._guard(self._cancel, event, now)
        elif isinstance(event, AckMissing):
            key = self._by_invite.get(event.key)
            call = self.calls.get(key) if key is not None else None
            if call is not None and call.state == ANSWERED:
                self._guard(self._hang_up, call, now, "no ACK for our 200")
        elif isinstance(event, (ResponseReceived, TransactionTimeout, TransportError)):
            pass  # responses to our BYEs: the call is already gone either way
        elif isinstance(event, TransactionTerminated):
            self._by_invite.pop(event.key, None)
            self._our_requests.pop(event.key, None)

    # ================================================================== requests

    def _reply(self, request: Request, key: TransactionKey, status: int, reason: str | None = None,
               *, to_tag: str | None = None, headers: list[tuple[str, bytes]] | None = None,
               body: bytes = b"", now: float) -> None:
        if to_tag is None and request.to.tag is None:
            to_tag = self._token()
        extra = [("Server", self.user_agent)] + (headers or [])
        if body:
            extra.append(("Content-Type", _SDP_TYPE))
        response = make_response(request, status, reason, to_tag=to_tag, headers=extra, body=body)
        self._tx.send_response(key, response, now)

    def _request(self, request: Request, peer: Peer, key: TransactionKey, now: float) -> None:
        method = request.method
        if request.to.tag:
            self._in_dialog(request, peer, key, now)
        elif method == "INVITE":
            self._new_call(request, peer, key, now)
        elif method == "MESSAGE":
            self._report_body("message", request)
            self._reply(request, key, 200, now=now)
        else:
            self._reply(request, key, 481, now=now)

    def _call_of(self, request: Request) -> _Call | None:
        call = self.calls.get(f"{request.call_id}\x1f{request.to.tag}")
        if call is None or call.dialog.remote_tag != (request.from_.tag or ""):
            return None
        return call

    def _in_dialog(self, request: Request, peer: Peer, key: TransactionKey, now: float) -> None:
        call = self._call_of(request)
        if call is None:
            self._reply(request, key, 481, now=now)
            return
        try:
            call.dialog.receive_request(request)
        except DialogError as e:
            self._reply(request, key, e.status, e.reason, now=now)
            return
        method = request.method
        if method == "BYE":
            self._reply(request, key, 200, now=now)
            if call.state == RINGING:
                # RFC 3261 §15.1.2: the pending INVITE still needs its answer.
                self._reply(call.invite, call.invite_key, 487, "Request Terminated",
                            to_tag=call.dialog.local_tag, now=now)
            self._end(call, now, "BYE from the caller")
        elif method in ("INFO", "MESSAGE"):
            event = _agent_event_of(request) if method == "INFO" else None
            if event is not None:
                self.on_agent_event(event)  # the SBC's agent events sent as INFO (events.sip_info)
            else:
                self._report_body(method.lower(), request, call)
            self._reply(request, key, 200, now=now)
        elif method == "UPDATE":
            self._update(call, request, key, now)
        elif method == "INVITE":
            self._reinvite(call, request, key, now)
        else:  # pragma: no cover - the Endpoint only passes our methods
            self._reply(request, key, 405, headers=[("Allow", _ALLOW)], now=now)

    def _report_body(self, kind: str, request: Request, call: _Call | None = None) -> None:
        body = request.body[:_MAX_BODY_SHOWN].decode("utf-8", "replace")
        self._events.append(DemoEvent(kind, request.call_id, {
            "content_type": (request.get("Content-Type") or b"").decode("latin-1"),
            "body": body,
            "in_dialog": call is not None,
        }))

    # ------------------------------------------------------------------ new calls

    def _token(self) -> str:
        return f"{self._prefix}{next(self._seq):x}{os.urandom(3).hex()}"

    def _contact(self, peer: Peer) -> bytes:
        host, port = self._local_address(peer)
        if ":" in host:
            host = f"[{host}]"
        transport = "" if peer.transport == "udp" else f";transport={peer.transport}"
        return f"<sip:agent@{host}:{port}{transport}>".encode("latin-1")

    def _new_call(self, request: Request, peer: Peer, key: TransactionKey, now: float) -> None:
        call_id = request.call_id
        try:
            body = _sdp_body(request)
            offer = parse_sdp(body) if body is not None else None
        except SipParseError as e:
            status = 415 if e.status == 415 else 400
            self._refuse(request, key, status, f"bad SDP offer: {e.reason}", now,
                         [("Accept", _SDP_TYPE)] if status == 415 else [])
            return
        tag = self._token()
        call_key = f"{call_id}\x1f{tag}"
        host = self._local_address(peer)[0]
        media = self.media.open(call_key, host)
        if media is None:
            self._refuse(request, key, 503, "no free media port", now, [("Retry-After", b"5")])
            return
        origin_id = int.from_bytes(os.urandom(4), "big")
        if offer is not None:
            local_sdp = answer_sdp(offer, media, origin_id, 1)
            if local_sdp is None:
                self.media.close(call_key)
                self._refuse(request, key, 488, "no supported codec in the offer", now,
                             [("Warning", b'304 sbc-demo-agent "PCMU or PCMA only"')])
                return
        else:
            local_sdp = offer_sdp(media, origin_id, 1)
        try:
            dialog = Dialog.from_uas(request, tag, self._contact(peer), early=True)
        except DialogError as e:
            self.media.close(call_key)
            self._refuse(request, key, e.status, e.reason, now)
            return
        call = _Call(key=call_key, dialog=dialog, peer=peer, invite=request, invite_key=key,
                     media=media, started=now, origin_id=origin_id, local_sdp=local_sdp,
                     offer=offer, awaiting_ack_answer=offer is None)
        self.calls[call_key] = call
        self._by_invite[key] = call_key
        self._reply(request, key, 180, to_tag=tag,
                    headers=[("Contact", dialog.local_contact or b"")], now=now)
        if self.ring_delay > 0:
            self._set_timer(call, "answer", now + self.ring_delay)
        else:
            self._answer(call, now)

    def _refuse(self, request: Request, key: TransactionKey, status: int, why: str, now: float,
                headers: list[tuple[str, bytes]] | None = None) -> None:
        self._count("calls-refused")
        self._events.append(DemoEvent("call-refused", request.call_id,
                                      {"status": status, "why": why}))
        self._reply(request, key, status, headers=headers, now=now)

    def _answer(self, call: _Call, now: float) -> None:
        call.state = ANSWERED
        call.answered_at = now
        call.dialog.confirm()
        self._reply(call.invite, call.invite_key, 200, to_tag=call.dialog.local_tag,
                    headers=self._dialog_headers(call), body=call.local_sdp or b"", now=now)
        if self.max_duration is not None:
            self._set_timer(call, "hangup", now + self.max_duration)
        self._count("calls-answered")
        invite = call.invite
        self._events.append(DemoEvent("call-started", call.dialog.call_id, {
            "caller": invite.from_.uri.to_bytes().decode("latin-1"),
            "callee": invite.parsed_uri.to_bytes().decode("latin-1"),
            "peer": f"{call.peer.transport}:{_hostport(call.peer.host, call.peer.port)}",
            "media": _hostport(call.media.host, call.media.port),
            "late_offer": call.offer is None,
        }))

    def _dialog_headers(self, call: _Call) -> list[tuple[str, bytes]]:
        return [("Contact", call.dialog.local_contact or b""), ("Allow", _ALLOW)]

    # ------------------------------------------------------------------ ACK, CANCEL

    def _ack(self, ack: Request, now: float) -> None:
        call = self._call_of(ack) if ack.to.tag else None
        if call is None:
            return  # an ACK for a non-2xx (absorbed by the transaction) or a stray one
        if call.state == ANSWERED:
            call.state = CONFIRMED_STATE
        if call.awaiting_ack_answer:
            call.awaiting_ack_answer = False
            try:
                body = _sdp_body(ack)
                answer = parse_sdp(body) if body is not None else None
            except SipParseError as e:
                answer = None
                self._warn(call, f"unreadable SDP answer in ACK: {e.reason}")
                return
            if answer is None:
                self._warn(call, "our 200 carried an offer but the ACK brought no answer")
            elif not _acceptable_answer(answer):
                self._warn(call, "the answer in the ACK picks none of our codecs")

    def _warn(self, call: _Call, text: str) -> None:
        self._events.append(DemoEvent("warning", call.dialog.call_id, {"error": text}))

    def _cancel(self, event: CancelReceived, now: float) -> None:
        request = event.request
        call_key = self._by_invite.get(event.invite_key) if event.invite_key else None
        call = self.calls.get(call_key) if call_key is not None else None
        tag = call.dialog.local_tag if call is not None else None
        self._reply(request, event.key, 200 if event.invite_key else 481, to_tag=tag, now=now)
        if call is not None and call.state == RINGING and call.invite_key == event.invite_key:
            self._fail_invite(call, 487, "Request Terminated", now, "CANCEL from the caller")

    def _fail_invite(self, call: _Call, status: int, reason: str, now: float, why: str) -> None:
        self._reply(call.invite, call.invite_key, status, reason, to_tag=call.dialog.local_tag,
                    now=now)
        self._end(call, now, why)

    # ------------------------------------------------------------------ re-INVITE, UPDATE

    def _new_answer(self, call: _Call, offer: SessionDescription) -> bytes | None:
        """Our SDP answering ``offer`` on the call's port; the o= version moves only when
        the description changes (RFC 3264 §8)."""
        sdp = answer_sdp(offer, call.media, call.origin_id, call.sdp_version)
        if sdp is None:
            return None
        if call.local_sdp is not None and _without_origin(sdp) == _without_origin(call.local_sdp):
            return call.local_sdp
        call.sdp_version += 1
        return answer_sdp(offer, call.media, call.origin_id, call.sdp_version)

    def _session_offer(self, request: Request, key: TransactionKey, now: float
                       ) -> tuple[bool, SessionDescription | None]:
        try:
            body = _sdp_body(request)
            return True, (parse_sdp(body) if body is not None else None)
        except SipParseError as e:
            status = 415 if e.status == 415 else 400
            self._reply(request, key, status, e.reason,
                        headers=[("Accept", _SDP_TYPE)] if status == 415 else [], now=now)
            return False, None

    def _reinvite(self, call: _Call, request: Request, key: TransactionKey, now: float) -> None:
        if call.state != CONFIRMED_STATE:
            # RFC 3261 §14.2: an INVITE while ours is still unacknowledged.
            self._reply(request, key, 500, "Server Internal Error",
                        headers=[("Retry-After", b"1")], now=now)
            return
        ok, offer = self._session_offer(request, key, now)
        if not ok:
            return
        if offer is None:  # late-offer re-INVITE: we offer what we have, the ACK answers
            sdp = call.local_sdp or offer_sdp(call.media, call.origin_id, call.sdp_version)
            call.awaiting_ack_answer = True
        else:
            answer = self._new_answer(call, offer)
            if answer is None:
                self._reply(request, key, 488, headers=[("Warning", b'304 sbc-demo-agent "PCMU or PCMA only"')],
                            now=now)
                return
            sdp = call.local_sdp = answer
            call.offer = offer
        call.state = ANSWERED
        self._by_invite[key] = call.key
        self._reply(request, key, 200, headers=self._dialog_headers(call), body=sdp, now=now)

    def _update(self, call: _Call, request: Request, key: TransactionKey, now: float) -> None:
        ok, offer = self._session_offer(request, key, now)
        if not ok:
            return
        if offer is None:
            self._reply(request, key, 200, headers=self._dialog_headers(call), now=now)
            return
        answer = self._new_answer(call, offer)
        if answer is None:
            self._reply(request, key, 488, now=now)
            return
        call.local_sdp = answer
        call.offer = offer
        self._reply(request, key, 200, headers=self._dialog_headers(call), body=answer, now=now)

    # ------------------------------------------------------------------ timers, hang-up

    def _set_timer(self, call: _Call, kind: str, when: float) -> None:
        self._timers.set((call.key, kind), when)

    def _on_timer(self, call: _Call, kind: str, now: float) -> None:
        if kind == "answer" and call.state == RINGING:
            self._answer(call, now)
        elif kind == "hangup" and call.state != RINGING:
            self._hang_up(call, now, "maximum duration reached")

    def _next_hop(self, call: _Call) -> Peer:
        """Where an in-dialog request goes: over a stream, the connection the call came on;
        over UDP, the first route or the remote target when it is an IP literal (from the
        socket the call came in on), else back to where the INVITE came from."""
        peer = call.peer
        if peer.transport != "udp":
            return peer
        dialog = call.dialog
        uri = dialog.route_set[0].uri if dialog.route_set else dialog.remote_target
        if uri.transport not in (None, "udp"):
            return peer
        host = uri.host[1:-1] if uri.host.startswith("[") else uri.host
        try:
            ip_address(host)
        except ValueError:
            return peer
        return Peer("udp", host, uri.port or 5060, peer.conn)

    def _via(self, peer: Peer) -> bytes:
        host, port = self._local_address(peer)
        if ":" in host:
            host = f"[{host}]"
        branch = f"{MAGIC_COOKIE}{self._token()}"
        return f"SIP/2.0/{peer.transport.upper()} {host}:{port};branch={branch};rport".encode("latin-1")

    def _hang_up(self, call: _Call, now: float, why: str) -> None:
        hop = self._next_hop(call)
        bye = call.dialog.create_request(
            "BYE", via=self._via(hop), headers=[("User-Agent", self.user_agent)])
        key = self._tx.send_request(bye, hop, hop.reliable, now)
        self._our_requests[key] = call.key
        self._end(call, now, why)

    def _end(self, call: _Call, now: float, why: str) -> None:
        if self.calls.pop(call.key, None) is None:
            return
        call.dialog.terminate()
        self.media.close(call.key)
        for kind in ("answer", "hangup"):
            self._timers.cancel((call.key, kind))
        self._count("calls-ended")
        answered = call.answered_at
        self._events.append(DemoEvent("call-ended", call.dialog.call_id, {
            "reason": why,
            "answered": answered is not None,
            "duration": round(now - answered, 3) if answered is not None else 0.0,
        }))



def _agent_event_of(request: Request) -> dict[str, Any] | None:
    """The agent event in an INFO's ``application/json`` body, or None."""
    ctype = (request.get("Content-Type") or b"").split(b";", 1)[0].strip().lower()
    if ctype != b"application/json":
        return None
    try:
        value = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) and isinstance(value.get("type"), str) else None
