# -*- test-case-name: tests.test_sip_transaction -*-
"""The SIP transaction layer (RFC 3261 §17 as updated by RFC 6026), sans-IO.

Four small state machines -- INVITE client (ICT), non-INVITE client (NICT), INVITE server
(IST) and non-INVITE server (NIST) -- each with an explicit transition table
``(state, input) -> (action, next state)``, driven by one :class:`TransactionLayer`.

Nothing here reads a clock, opens a socket or schedules a call: every input carries ``now``,
the layer keeps every deadline (Timers A..M) in one heap and reports the earliest through
:meth:`TransactionLayer.next_deadline`; the caller invokes :meth:`TransactionLayer.handle_timer`
when that time comes.  Outputs are drained with :meth:`TransactionLayer.messages_to_send`
(messages with the opaque ``peer`` they go to) and :meth:`TransactionLayer.next_event`.

Timer values (RFC 3261 Table 4, RFC 6026 §8.11):

=====  ==================================  ==========================  ================
timer  meaning                             unreliable                  reliable
=====  ==================================  ==========================  ================
A      INVITE request retransmit           T1, doubling                not used
B      INVITE transaction timeout          64*T1                       64*T1
D      wait for response retransmits       ``Timers.d`` (32 s)         0
E      non-INVITE request retransmit       T1, doubling, max T2        not used
F      non-INVITE transaction timeout      64*T1                       64*T1
G      INVITE final response retransmit    T1, doubling, max T2        not used
H      wait for ACK                        64*T1                       64*T1
I      wait for ACK retransmits            T4                          0
J      wait for request retransmits        64*T1                       0
K      wait for response retransmits       T4                          0
L      wait for INVITE retransmits (2xx)   64*T1                       64*T1
M      wait for 2xx retransmits            64*T1                       64*T1
=====  ==================================  ==========================  ================
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections import deque
from typing import Any, Callable, ClassVar, Hashable, NamedTuple, Union

from attrs import frozen

from sbc.sip.errors import SipError, SipParseError
from sbc.sip.message import Header, Request, Response
from sbc.sip.slim import IDENTITY, slim_request

__all__ = [
    "AckMissing",
    "AckReceived",
    "AckTimeout",
    "CancelReceived",
    "DuplicateTransaction",
    "Event",
    "MAGIC_COOKIE",
    "RequestReceived",
    "ResponseReceived",
    "StrayResponse",
    "Timers",
    "TransactionDoesNotExist",
    "TransactionError",
    "TransactionKey",
    "TransactionLayer",
    "TransactionStateError",
    "TransactionTerminated",
    "TransactionTimeout",
    "TransportError",
    "TxState",
    "build_ack",
    "build_cancel",
]

MAGIC_COOKIE = "z9hG4bK"

Message = Union[Request, Response]
Peer = Hashable


# --------------------------------------------------------------------------- config, errors


@frozen
class Timers:
    """Timer base values (RFC 3261 §17, Table 4).  ``d`` is Timer D over unreliable
    transports (RFC 3261: "at least 32 seconds")."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    d: float = 32.0


class TransactionError(SipError):
    """Base class of the transaction layer's errors."""


class TransactionDoesNotExist(TransactionError):
    """The key names no live transaction (never created, or already terminated)."""

    def __init__(self, key: object) -> None:
        super().__init__(f"no such transaction: {key!r}")
        self.key = key


class TransactionStateError(TransactionError):
    """The TU asked for something the transaction cannot do in its current state
    (e.g. a 2xx after a 486 was sent through an INVITE server transaction)."""

    def __init__(self, key: object, state: "TxState", what: str) -> None:
        super().__init__(f"{what} not allowed in state {state.name} of {key!r}")
        self.key = key
        self.state = state


class DuplicateTransaction(TransactionError):
    """send_request() with a branch/method already used by a live client transaction."""

    def __init__(self, key: object) -> None:
        super().__init__(f"client transaction already exists: {key!r}")
        self.key = key


# --------------------------------------------------------------------------- keys and events


class TransactionKey(NamedTuple):
    """Identifies a transaction.  Hashable, cheap, comparable.

    * client: ``(False, method, branch, "")`` (RFC 3261 §17.1.3: branch + CSeq method);
    * server: ``(True, method, branch, sent_by)`` (§17.2.3, ACK looks up method INVITE);
    * server, RFC 2543 peer (branch without the magic cookie): ``branch`` holds a composite
      of Request-URI, To tag, From tag, Call-ID, CSeq number and top Via, ``sent_by`` is "".
    """

    server: bool
    method: str
    branch: str
    sent_by: str


@frozen
class RequestReceived:
    """A new request created server transaction ``key``; the TU must answer through it."""

    request: Request
    peer: Peer
    key: TransactionKey


@frozen
class AckReceived:
    """An ACK that belongs to no transaction (ACK for a 2xx), or one that matched an INVITE
    server transaction in the Accepted state (RFC 6026 §8.7: passed to the TU)."""

    request: Request
    peer: Peer


@frozen
class CancelReceived:
    """A CANCEL created server transaction ``key``.  ``invite_key`` is the live INVITE server
    transaction it targets, or None (then the TU answers the CANCEL with 481)."""

    request: Request
    peer: Peer
    key: TransactionKey
    invite_key: TransactionKey | None


@frozen
class ResponseReceived:
    """A response the TU must see, for client transaction ``key``."""

    response: Response
    key: TransactionKey


@frozen
class StrayResponse:
    """A response that matches no client transaction (or whose Via/CSeq cannot be read)."""

    response: Response
    peer: Peer


@frozen
class TransactionTimeout:
    """Timer B or F fired (or the 64*T1 wait after :meth:`TransactionLayer.cancel`): the
    client transaction got no final response; the TU acts as if a 408 was received."""

    key: TransactionKey
    request: Request


@frozen
class AckTimeout:
    """Timer H fired: an INVITE server transaction sent a non-2xx final response and no ACK
    came (RFC 3261 §17.2.1 "transaction failure")."""

    key: TransactionKey
    request: Request


@frozen
class AckMissing:
    """With ``retransmit_2xx``: the 2xx sent through INVITE server transaction ``key`` got no
    ACK within 64*T1 (RFC 3261 §13.3.1.4: the UAS should end the session with a BYE)."""

    key: TransactionKey
    request: Request
    response: Response


@frozen
class TransportError:
    """The caller reported that the transport of transaction ``key`` failed
    (:meth:`TransactionLayer.transport_error`); the transaction is released.  For a client
    transaction the TU acts as if a 503 was received (RFC 3261 §8.1.3.1)."""

    key: TransactionKey
    request: Request


@frozen
class TransactionTerminated:
    """The transaction was released (always the last event about ``key``)."""

    key: TransactionKey


Event = Union[
    RequestReceived,
    AckReceived,
    CancelReceived,
    ResponseReceived,
    StrayResponse,
    TransactionTimeout,
    AckTimeout,
    AckMissing,
    TransportError,
    TransactionTerminated,
]


# --------------------------------------------------------------------------- message builders


#: Headers of an INVITE an Accepted transaction keeps (see :func:`sbc.sip.slim.slim_request`).
_TX_IDENTITY = IDENTITY | {"via"}


def _hdr(name: str, value: bytes) -> Header:
    return Header(name=name, value=value)


def build_ack(request: Request, response: Response) -> Request:
    """The ACK a client transaction sends for a non-2xx final response (RFC 3261 §17.1.1.3):
    Request-URI, top Via, Call-ID, From and Route of the INVITE, To of the response, the
    INVITE's CSeq number with method ACK, Max-Forwards 70, no body."""
    headers = [
        _hdr("Via", request.get_all("Via")[0]),
        _hdr("Max-Forwards", b"70"),
    ]
    headers.extend(_hdr("Route", h.value) for h in request.headers_named("Route"))
    headers.append(_hdr("From", _required(request, "From")))
    headers.append(_hdr("To", _required(response, "To")))
    headers.append(_hdr("Call-ID", _required(request, "Call-ID")))
    headers.append(_hdr("CSeq", b"%d ACK" % request.cseq.seq))
    headers.append(_hdr("Content-Length", b"0"))
    return Request(method="ACK", uri=request.uri, headers=tuple(headers), body=b"")


def build_cancel(request: Request) -> Request:
    """The CANCEL of a request (RFC 3261 §9.1): same Request-URI, Call-ID, To, From, CSeq
    number and top Via (so the same branch) as the request, its Route headers,
    Max-Forwards 70, no body."""
    headers = [
        _hdr("Via", request.get_all("Via")[0]),
        _hdr("Max-Forwards", b"70"),
    ]
    headers.extend(_hdr("Route", h.value) for h in request.headers_named("Route"))
    headers.append(_hdr("From", _required(request, "From")))
    headers.append(_hdr("To", _required(request, "To")))
    headers.append(_hdr("Call-ID", _required(request, "Call-ID")))
    headers.append(_hdr("CSeq", b"%d CANCEL" % request.cseq.seq))
    headers.append(_hdr("Content-Length", b"0"))
    return Request(method="CANCEL", uri=request.uri, headers=tuple(headers), body=b"")


def _required(message: Message, name: str) -> bytes:
    value = message.get(name)
    if value is None:
        raise SipParseError(f"missing {name} header")
    return value


# --------------------------------------------------------------------------- state machines


class TxState(enum.Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class _In(enum.Enum):
    """Inputs of the machines."""

    # from the network
    RECV_1XX = enum.auto()
    RECV_2XX = enum.auto()
    RECV_FINAL = enum.auto()  # 300..699
    RECV_REQUEST = enum.auto()  # retransmission of the request that created the server tx
    RECV_ACK = enum.auto()
    RECV_ACK_2XX = enum.auto()  # an ACK for our 2xx (own transaction; retransmit_2xx only)
    # from the TU
    SEND_1XX = enum.auto()
    SEND_2XX = enum.auto()
    SEND_FINAL = enum.auto()  # 300..699
    # timers
    TIMER_A = enum.auto()
    TIMER_B = enum.auto()
    TIMER_D = enum.auto()
    TIMER_E = enum.auto()
    TIMER_F = enum.auto()
    TIMER_G = enum.auto()
    TIMER_H = enum.auto()
    TIMER_I = enum.auto()
    TIMER_J = enum.auto()
    TIMER_K = enum.auto()
    TIMER_L = enum.auto()
    TIMER_M = enum.auto()
    CANCEL_WAIT = enum.auto()  # 64*T1 after a CANCEL was sent (RFC 3261 §9.1)
    TIMER_2XX = enum.auto()  # UAS core 2xx retransmission (RFC 3261 §13.3.1.4, opt-in)


_TU_INPUTS = frozenset({_In.SEND_1XX, _In.SEND_2XX, _In.SEND_FINAL})

# Timer slots: each transaction runs at most one retransmission timer (slot 0: A, E, G, 2xx)
# and one lifetime timer (slot 1: B, D, F, H, I, J, K, L, M, CANCEL_WAIT) at a time.
_RETRANSMIT = 0
_LIFETIME = 1

_Action = Callable[["_Transaction", "TransactionLayer", Any, float], None]
_Table = dict[tuple[TxState, _In], tuple[_Action | None, TxState]]

_S = TxState
_I = _In  # short names keep the tables readable


class _Transaction:
    """Common part: identity, timers bookkeeping and the table-driven ``handle``."""

    __slots__ = (
        "key",
        "request",
        "peer",
        "reliable",
        "state",
        "last",
        "interval",
        "timer_ids",
    )

    TRANSITIONS: ClassVar[_Table]
    INITIAL: ClassVar[TxState]

    def __init__(self, key: TransactionKey, request: Request, peer: Peer, reliable: bool) -> None:
        self.key = key
        self.request = request
        self.peer = peer
        self.reliable = reliable
        self.state = self.INITIAL
        self.last: Message | None = None  # last response sent (server) / ACK sent (ICT)
        self.interval = 0.0  # current retransmission interval (A, E, G)
        self.timer_ids = [0, 0]  # heap entry id armed per slot; 0 = none

    def handle(self, layer: "TransactionLayer", inp: _In, message: Any, now: float) -> bool:
        """Run the transition for ``inp``; False if the table has none (input ignored)."""
        entry = self.TRANSITIONS.get((self.state, inp))
        if entry is None:
            if inp in _TU_INPUTS:
                raise TransactionStateError(self.key, self.state, f"sending a {inp.name}")
            return False
        action, next_state = entry
        if action is not None:
            # The action runs first: if it raises (SipParseError on a message it must read),
            # the transaction stays in its current state.
            action(self, layer, message, now)
        self.state = next_state
        if next_state is TxState.TERMINATED:
            layer._release(self)
        return True

    # shared actions
    def _pass_up(self, layer: "TransactionLayer", response: Response, now: float) -> None:
        layer._events.append(ResponseReceived(response, self.key))

    def _timeout(self, layer: "TransactionLayer", _msg: Any, now: float) -> None:
        layer._events.append(TransactionTimeout(self.key, self.request))

    def _send(self, layer: "TransactionLayer", response: Response, now: float) -> None:
        self.last = response
        layer._out.append((response, self.peer))

    def _resend_last(self, layer: "TransactionLayer", _msg: Any, now: float) -> None:
        if self.last is not None:
            layer._out.append((self.last, self.peer))


class _InviteClient(_Transaction):
    """RFC 3261 §17.1.1, Figure 5 as amended by RFC 6026 (Accepted state, Timer M)."""

    __slots__ = ("cancel_requested", "cancel_sent")
    INITIAL = TxState.CALLING

    def __init__(self, key: TransactionKey, request: Request, peer: Peer, reliable: bool) -> None:
        super().__init__(key, request, peer, reliable)
        self.cancel_requested = False
        self.cancel_sent = False

    def start(self, layer: "TransactionLayer", now: float) -> None:
        layer._out.append((self.request, self.peer))
        if not self.reliable:
            self.interval = layer.timers.t1
            layer._arm(self, _RETRANSMIT, _I.TIMER_A, self.interval, now)
        layer._arm(self, _LIFETIME, _I.TIMER_B, layer._64t1, now)

    def _timer_a(self, layer: "TransactionLayer", _msg: Any, now: float) -> None:
        layer._out.append((self.request, self.peer))
        self.interval *= 2
        layer._arm(self, _RETRANSMIT, _I.TIMER_A, self.interval, now)

    def _proceeding(self, layer: "TransactionLayer", response: Response, now: float) -> None:
        layer._disarm(self, _RETRANSMIT)
        layer._disarm(self, _LIFETIME)
        layer._events.append(ResponseReceived(response, self.key))
        if self.cancel_requested and not self.cancel_sent:
            layer._send_cancel(self, now)

    def _accepted(self, layer: "TransactionLayer", response: Response, now: float) -> None:
        layer._disarm(self, _RETRANSMIT)
        # Accepted only passes 2xx retransmissions up for 64*T1 (no retransmission, no
        # CANCEL): the INVITE need not be held whole meanwhile.
        self.request = slim_request(self.request, _TX_IDENTITY)
        layer._events.append(ResponseReceived(response, self.key))
        layer._arm(self, _LIFETIME, _I.TIMER_M, layer._64t1, now)

    def _completed(self, layer: "TransactionLayer", response: Response, now: float) -> None:
        ack = build_ack(self.request, response)
        layer._disarm(self, _RETRANSMIT)
        self.last = ack
        layer._out.append((ack, self.peer))
        layer._events.append(ResponseReceived(response, self.key))
        layer._arm(self, _LIFETIME, _I.TIMER_D, 0.0 if self.reliable else layer.timers.d, now)

    TRANSITIONS: ClassVar[_Table] = {
        (_S.CALLING, _I.TIMER_A): (_timer_a, _S.CALLING),
        (_S.CALLING, _I.TIMER_B): (_Transaction._timeout, _S.TERMINATED),
        (_S.CALLING, _I.RECV_1XX): (_proceeding, _S.PROCEEDING),
        (_S.CALLING, _I.RECV_2XX): (_accepted, _S.ACCEPTED),
        (_S.CALLING, _I.RECV_FINAL): (_completed, _S.COMPLETED),
        (_S.PROCEEDING, _I.RECV_1XX): (_Transaction._pass_up, _S.PROCEEDING),
        (_S.PROCEEDING, _I.RECV_2XX): (_accepted, _S.ACCEPTED),
        (_S.PROCEEDING, _I.RECV_FINAL): (_completed, _S.COMPLETED),
        (_S.PROCEEDING, _I.CANCEL_WAIT): (_Transaction._timeout, _S.TERMINATED),
        (_S.COMPLETED, _I.RECV_FINAL): (_Transaction._resend_last, _S.COMPLETED),  # re-ACK
        (_S.COMPLETED, _I.TIMER_D): (None, _S.TERMINATED),
        (_S.ACCEPTED, _I.RECV_2XX): (_Transaction._pass_up, _S.ACCEPTED),
        (_S.ACCEPTED, _I.TIMER_M): (None, _S.TERMINATED),
    }


class _NonInviteClient(_Transaction):
    """RFC 3261 §17.1.2, Figure 6."""

    __slots__ = ()
    INITIAL = TxState.TRYING

    def start(self, layer: "TransactionLayer", now: float) -> None:
        layer._out.append((self.request, self.peer))
        if not self.reliable:
            self.interval = layer.timers.t1
            layer._arm(self, _RETRANSMIT, _I.TIMER_E, self.interval, now)
        layer._arm(self, _LIFETIME, _I.TIMER_F, layer._64t1, now)

    def _timer_e_trying(self, layer: "TransactionLayer", _msg: Any, now: float) -> None:
        layer._out.append((self.request, self.peer))
        self.interval = min(2 * self.interval, layer.timers.t2)
        layer._arm(self, _RETRANSMIT, _I.TIMER_E, self.interval, now)

    def _timer_e_proceeding(self, layer: "TransactionLayer", _msg: Any, now: float) -> None:
        layer._out.append((self.request, self.peer))
        self.interval = layer.timers.t2
        layer._arm(self, _RETRANSMIT, _I.TIMER_E, self.interval, now)

    def _completed(self, layer: "TransactionLayer", response: Response, now: float) -> None:
        layer._disarm(self, _RETRANSMIT)
        layer._events.append(ResponseReceived(response, self.key))
        layer._arm(self, _LIFETIME, _I.TIMER_K, 0.0 if self.reliable else layer.timers.t4, now)

    TRANSITIONS: ClassVar[_Table] = {
        (_S.TRYING, _I.TIMER_E): (_timer_e_trying, _S.TRYING),
        (_S.TRYING, _I.TIMER_F): (_Transaction._timeout, _S.TERMINATED),
        (_S.TRYING, _I.RECV_1XX): (_Transaction._pass_up, _S.PROCEEDING),
        (_S.TRYING, _I.RECV_2XX): (_completed, _S.COMPLETED),
        (_S.TRYING, _I.RECV_FINAL): (_completed, _S.COMPLETED),
        (_S.PROCEEDING, _I.TIMER_E): (_timer_e_proceeding, _S.PROCEEDING),
        (_S.PROCEEDING, _I.TIMER_F): (_Transaction._timeout, _S.TERMINATED),
        (_S.PROCEEDING, _I.RECV_1XX): (_Transaction._pass_up, _S.PROCEEDING),
        (_S.PROCEEDING, _I.RECV_2XX): (_completed, _S.COMPLETED),
        (_S.PROCEEDING, _I.RECV_FINAL): (_completed, _S.COMPLETED),
        (_S.COMPLETED, _I.TIMER_K): (None, _S.TERMINATED),
    }


class _InviteServer(_Transaction):
    """RFC 3261 §17.2.1, Figure 7 as amended by RFC 6026 (Accepted state, Timer L)."""

    __slots__ = ("to_tag", "ack_key")
    INITIAL = TxState.PROCEEDING

    def __init__(self, key: TransactionKey, request: Request, peer: Peer, reliable: bool) -> None:
        super().__init__(key, request, peer, reliable)
        self.to_tag: str | None = None  # To tag of the last response (RFC 2543 ACK matching)
        self.ack_key: tuple[str, int, str] | None = None  # waiting for the ACK of our 2xx

    def _send_response(self, layer: "TransactionLayer", response: Response, now: float) -> None:
        self.last = response
        self.to_tag = _to_tag(response)
        layer._out.append((response, self.peer))

    def _accept(self, layer: "TransactionLayer", response: Response, now: float) -> None:
        self._send_response(layer, response, now)
        layer._arm(self, _LIFETIME, _I.TIMER_L, layer._64t1, now)
        if layer.retransmit_2xx:
            # RFC 3261 §13.3.1.4 (UAS core, opt-in): retransmit the 2xx until its ACK comes.
            try:
                self.ack_key = (self.request.call_id, self.request.cseq.seq, self.to_tag or "")
            except SipParseError:
                return
            layer._awaiting_ack[self.ack_key] = self
            if not self.reliable:
                self.interval = layer.timers.t1
                layer._arm(self, _RETRANSMIT, _I.TIMER_2XX, self.interval, now)

    def _timer_2xx(self, layer: "TransactionLayer", _msg: Any, now: float) -> None:
        self._resend_last(layer, None, now)
        self.interval = min(2 * self.interval, layer.timers.t2)
        layer._arm(self, _RETRANSMIT, _I.TIMER_2XX, self.interval, now)

    def _acked(self, layer: "TransactionLayer", ack: Request, now: float) -> None:
        layer._disarm(self, _RETRANSMIT)
        layer._forget_ack(self)
        # Acknowledged: the 2xx is not sent again, and until Timer L the transaction only
        # absorbs INVITE retransmissions (matched by key): hold neither message whole.
        self.last = None
        self.request = slim_request(self.request, _TX_IDENTITY)
        layer._events.append(AckReceived(ack, self.peer))

    def _timer_l(self, layer: "TransactionLayer", _msg: Any, now: float) -> None:
        if self.ack_key is not None and self.last is not None:
            layer._events.append(AckMissing(self.key, self.request, self.last))  # type: ignore[arg-type]

    def _complete(self, layer: "TransactionLayer", response: Response, now: float) -> None:
        self._send_response(layer, response, now)
        if not self.reliable:
            self.interval = layer.timers.t1
            layer._arm(self, _RETRANSMIT, _I.TIMER_G, self.interval, now)
        layer._arm(self, _LIFETIME, _I.TIMER_H, layer._64t1, now)

    def _timer_g(self, layer: "TransactionLayer", _msg: Any, now: float) -> None:
        self._resend_last(layer, None, now)
        self.interval = min(2 * self.interval, layer.timers.t2)
        layer._arm(self, _RETRANSMIT, _I.TIMER_G, self.interval, now)

    def _ack_timeout(self, layer: "TransactionLayer", _msg: Any, now: float) -> None:
        layer._events.append(AckTimeout(self.key, self.request))

    def _confirm(self, layer: "TransactionLayer", _ack: Request, now: float) -> None:
        layer._disarm(self, _RETRANSMIT)
        layer._arm(self, _LIFETIME, _I.TIMER_I, 0.0 if self.reliable else layer.timers.t4, now)


    TRANSITIONS: ClassVar[_Table] = {
        (_S.PROCEEDING, _I.RECV_REQUEST): (_Transaction._resend_last, _S.PROCEEDING),
        (_S.PROCEEDING, _I.RECV_ACK): (None, _S.PROCEEDING),
        (_S.PROCEEDING, _I.SEND_1XX): (_send_response, _S.PROCEEDING),
        (_S.PROCEEDING, _I.SEND_2XX): (_accept, _S.ACCEPTED),
        (_S.PROCEEDING, _I.SEND_FINAL): (_complete, _S.COMPLETED),
        (_S.COMPLETED, _I.RECV_REQUEST): (_Transaction._resend_last, _S.COMPLETED),
        (_S.COMPLETED, _I.RECV_ACK): (_confirm, _S.CONFIRMED),
        (_S.COMPLETED, _I.TIMER_G): (_timer_g, _S.COMPLETED),
        (_S.COMPLETED, _I.TIMER_H): (_ack_timeout, _S.TERMINATED),
        (_S.CONFIRMED, _I.RECV_REQUEST): (None, _S.CONFIRMED),
        (_S.CONFIRMED, _I.RECV_ACK): (None, _S.CONFIRMED),
        (_S.CONFIRMED, _I.TIMER_I): (None, _S.TERMINATED),
        (_S.ACCEPTED, _I.RECV_REQUEST): (None, _S.ACCEPTED),
        (_S.ACCEPTED, _I.RECV_ACK): (_acked, _S.ACCEPTED),
        (_S.ACCEPTED, _I.RECV_ACK_2XX): (_acked, _S.ACCEPTED),
        (_S.ACCEPTED, _I.SEND_2XX): (_send_response, _S.ACCEPTED),
        (_S.ACCEPTED, _I.TIMER_2XX): (_timer_2xx, _S.ACCEPTED),
        (_S.ACCEPTED, _I.TIMER_L): (_timer_l, _S.TERMINATED),
    }


class _NonInviteServer(_Transaction):
    """RFC 3261 §17.2.2, Figure 8."""

    __slots__ = ()
    INITIAL = TxState.TRYING

    def _complete(self, layer: "TransactionLayer", response: Response, now: float) -> None:
        self._send(layer, response, now)
        layer._arm(self, _LIFETIME, _I.TIMER_J, 0.0 if self.reliable else layer._64t1, now)

    TRANSITIONS: ClassVar[_Table] = {
        (_S.TRYING, _I.RECV_REQUEST): (None, _S.TRYING),
        (_S.TRYING, _I.SEND_1XX): (_Transaction._send, _S.PROCEEDING),
        (_S.TRYING, _I.SEND_2XX): (_complete, _S.COMPLETED),
        (_S.TRYING, _I.SEND_FINAL): (_complete, _S.COMPLETED),
        (_S.PROCEEDING, _I.RECV_REQUEST): (_Transaction._resend_last, _S.PROCEEDING),
        (_S.PROCEEDING, _I.SEND_1XX): (_Transaction._send, _S.PROCEEDING),
        (_S.PROCEEDING, _I.SEND_2XX): (_complete, _S.COMPLETED),
        (_S.PROCEEDING, _I.SEND_FINAL): (_complete, _S.COMPLETED),
        (_S.COMPLETED, _I.RECV_REQUEST): (_Transaction._resend_last, _S.COMPLETED),
        # "Any other final responses passed by the TU ... MUST be discarded" (§17.2.2)
        (_S.COMPLETED, _I.SEND_1XX): (None, _S.COMPLETED),
        (_S.COMPLETED, _I.SEND_2XX): (None, _S.COMPLETED),
        (_S.COMPLETED, _I.SEND_FINAL): (None, _S.COMPLETED),
        (_S.COMPLETED, _I.TIMER_J): (None, _S.TERMINATED),
    }




def _to_tag(message: Message) -> str | None:
    try:
        return message.to.tag
    except SipParseError:
        return None


def _response_input(status: int) -> _In:
    if status < 200:
        return _In.RECV_1XX
    if status < 300:
        return _In.RECV_2XX
    return _In.RECV_FINAL


def _tu_input(status: int) -> _In:
    if status < 200:
        return _In.SEND_1XX
    if status < 300:
        return _In.SEND_2XX
    return _In.SEND_FINAL


# --------------------------------------------------------------------------- the layer


class TransactionLayer:
    """All transactions of one SIP endpoint, their timers and their output queues."""

    # Rebuild the heap when it holds this many dead entries and they are the majority.
    _COMPACT_MIN = 4096

    def __init__(self, timers: Timers = Timers(), *, retransmit_2xx: bool = False) -> None:
        """``retransmit_2xx`` (off by default) makes an INVITE server transaction do the UAS
        core's job of RFC 3261 §13.3.1.4: over unreliable transports the 2xx is retransmitted
        (T1 doubling, capped at T2) until an ACK with the same Call-ID, CSeq number and To tag
        arrives; without ACK for 64*T1 the event AckMissing is emitted.  The ACK is still
        reported as AckReceived."""
        self.timers = timers
        self.retransmit_2xx = retransmit_2xx
        self._awaiting_ack: dict[tuple[str, int, str], _InviteServer] = {}
        self._64t1 = 64 * timers.t1
        self._transactions: dict[TransactionKey, _Transaction] = {}
        self._heap: list[tuple[float, int, int, _In, _Transaction]] = []
        self._stale = 0  # dead entries in the heap
        self._ids = itertools.count(1)
        self._immediate: list[tuple[_Transaction, _In]] = []  # zero-length timers
        self._out: list[tuple[Message, Peer]] = []
        self._events: deque[Event] = deque()

    # ------------------------------------------------------------------ outputs

    def __len__(self) -> int:
        return len(self._transactions)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def messages_to_send(self) -> list[tuple[Message, Peer]]:
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            when, entry_id, slot, _inp, tx = heap[0]
            if tx.timer_ids[slot] == entry_id:
                return when
            heapq.heappop(heap)
            self._stale -= 1
        return None

    def state(self, key: TransactionKey) -> TxState | None:
        """State of a live transaction, None if there is none."""
        tx = self._transactions.get(key)
        return None if tx is None else tx.state

    def request(self, key: TransactionKey) -> Request:
        """The request that created a live transaction."""
        tx = self._transactions.get(key)
        if tx is None:
            raise TransactionDoesNotExist(key)
        return tx.request

    # ------------------------------------------------------------------ inputs

    def receive(self, message: Message, peer: Peer, reliable: bool, now: float) -> None:
        """A message from the network.  A malformed request (unreadable top Via, CSeq...)
        raises :class:`SipParseError`; a malformed response becomes a StrayResponse."""
        if message.is_request:
            self._receive_request(message, peer, reliable, now)  # type: ignore[arg-type]
        else:
            self._receive_response(message, peer, now)  # type: ignore[arg-type]
        self._run_immediate(now)

    def send_request(self, request: Request, peer: Peer, reliable: bool, now: float) -> TransactionKey:
        """Start a client transaction and queue the request.  The top Via must carry a
        branch (with the magic cookie: the layer matches responses by it).  An ACK creates no
        transaction: it is queued as is and the (never live) key is returned."""
        branch = request.top_via.branch
        if not branch:
            raise SipParseError("request to send has no Via branch")
        method = request.method
        if method == "INVITE":
            # read now what the ACK and CANCEL will need, so that a broken request fails here
            _ = (request.cseq, request.call_id, request.from_, request.to)
        key = TransactionKey(False, method, branch, "")
        if method == "ACK":
            self._out.append((request, peer))
            return key
        if key in self._transactions:
            raise DuplicateTransaction(key)
        tx: _InviteClient | _NonInviteClient
        if method == "INVITE":
            tx = _InviteClient(key, request, peer, reliable)
        else:
            tx = _NonInviteClient(key, request, peer, reliable)
        self._transactions[key] = tx
        tx.start(self, now)
        return key

    def send_stateless(self, message: Message, peer: Peer) -> None:
        """Queue a message outside any transaction (ACK for a 2xx, stateless replies)."""
        self._out.append((message, peer))

    def send_response(self, key: TransactionKey, response: Response, now: float) -> None:
        """Send a response through server transaction ``key``.  Raises
        TransactionDoesNotExist (unknown/ended key) or TransactionStateError (e.g. a response
        after an INVITE final response other than 2xx retransmissions in Accepted)."""
        tx = self._transactions.get(key)
        if tx is None or not key.server:
            raise TransactionDoesNotExist(key)
        tx.handle(self, _tu_input(response.status), response, now)
        self._run_immediate(now)

    def cancel(self, key: TransactionKey, now: float) -> TransactionKey | None:
        """Cancel an INVITE client transaction (RFC 3261 §9.1).

        Builds the CANCEL and starts its non-INVITE client transaction, whose key is returned
        (its responses arrive as ResponseReceived events with that key).  If no provisional
        response has arrived yet, the CANCEL is held and sent when one arrives (and never
        if a final response or Timer B comes first).  Once sent, if the INVITE still has no
        final response after 64*T1, the INVITE transaction ends with TransactionTimeout.
        Returns None when there is nothing to cancel (final response already received).
        Idempotent.  Raises TransactionDoesNotExist for an unknown key or a non-INVITE one."""
        tx = self._transactions.get(key)
        if not isinstance(tx, _InviteClient):
            raise TransactionDoesNotExist(key)
        if tx.state not in (TxState.CALLING, TxState.PROCEEDING):
            return None
        tx.cancel_requested = True
        if tx.state is TxState.PROCEEDING and not tx.cancel_sent:
            self._send_cancel(tx, now)
        self._run_immediate(now)
        return TransactionKey(False, "CANCEL", key.branch, "")

    def terminate(self, key: TransactionKey) -> bool:
        """Release a transaction at once (TransactionTerminated follows).  False if the key
        names no live transaction."""
        tx = self._transactions.get(key)
        if tx is None:
            return False
        tx.state = TxState.TERMINATED
        self._release(tx)
        return True

    def transport_error(self, key: TransactionKey) -> bool:
        """The transport under transaction ``key`` failed (e.g. its TCP connection broke):
        emit TransportError and release the transaction (RFC 3261 §17.1.4, §17.2.4).  False
        if the key names no live transaction."""
        tx = self._transactions.get(key)
        if tx is None:
            return False
        self._events.append(TransportError(key, tx.request))
        tx.state = TxState.TERMINATED
        self._release(tx)
        return True

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now`` (in deadline order)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _when, entry_id, slot, inp, tx = heapq.heappop(heap)
            if tx.timer_ids[slot] != entry_id:
                self._stale -= 1
                continue
            tx.timer_ids[slot] = 0
            tx.handle(self, inp, None, now)
        self._run_immediate(now)

    # ------------------------------------------------------------------ internals

    def _receive_request(self, request: Request, peer: Peer, reliable: bool, now: float) -> None:
        method = request.method
        via = request.top_via
        branch = via.branch
        cookie = branch is not None and branch.startswith(MAGIC_COOKIE)
        if cookie:
            sent_by = _sent_by(via)
            if method == "ACK":
                self._receive_ack(request, peer, TransactionKey(True, "INVITE", branch, sent_by), now)  # type: ignore[arg-type]
                return
            key = TransactionKey(True, method, branch, sent_by)  # type: ignore[arg-type]
        elif method == "ACK":
            self._receive_legacy_ack(request, peer, now)
            return
        else:
            key = _legacy_key(request, method, _to_tag(request))
        tx = self._transactions.get(key)
        if tx is not None:
            if key.server and tx.peer != peer:
                # A retransmission that came another way (a new TCP connection after the old
                # one broke, a NAT rebinding): answer the way the latest copy came, which is
                # the one way known to work now (RFC 3261 §18.2.2 prefers the connection the
                # request arrived on).
                tx.peer = peer
            tx.handle(self, _In.RECV_REQUEST, request, now)
            return
        event: Event
        if method == "INVITE":
            tx = _InviteServer(key, request, peer, reliable)
            event = RequestReceived(request, peer, key)
        else:
            tx = _NonInviteServer(key, request, peer, reliable)
            if method == "CANCEL":
                if cookie:
                    invite_key = key._replace(method="INVITE")
                else:
                    invite_key = _legacy_key(request, "INVITE", _to_tag(request))
                target = self._transactions.get(invite_key)
                event = CancelReceived(request, peer, key, invite_key if target is not None else None)
            else:
                event = RequestReceived(request, peer, key)
        self._transactions[key] = tx
        self._events.append(event)

    def _receive_ack(self, ack: Request, peer: Peer, key: TransactionKey, now: float) -> None:
        tx = self._transactions.get(key)
        if tx is None:
            self._ack_without_transaction(ack, peer, now)
        else:
            tx.handle(self, _In.RECV_ACK, ack, now)

    def _ack_without_transaction(self, ack: Request, peer: Peer, now: float) -> None:
        if self._awaiting_ack:
            try:
                ist = self._awaiting_ack.get((ack.call_id, ack.cseq.seq, _to_tag(ack) or ""))
            except SipParseError:
                ist = None
            if ist is not None:
                ist.handle(self, _In.RECV_ACK_2XX, ack, now)
                return
        self._events.append(AckReceived(ack, peer))

    def _receive_legacy_ack(self, ack: Request, peer: Peer, now: float) -> None:
        # §17.2.3: R-URI, From tag, Call-ID, CSeq number and top Via match the INVITE, and
        # the ACK's To tag is the one of the response the transaction sent.  The INVITE's
        # own To tag is unknown here: a re-INVITE carries the same tag as the ACK, an initial
        # INVITE none.
        ack_tag = _to_tag(ack)
        for invite_tag in (ack_tag, None) if ack_tag is not None else (None,):
            tx = self._transactions.get(_legacy_key(ack, "INVITE", invite_tag))
            if isinstance(tx, _InviteServer) and tx.to_tag == ack_tag:
                tx.handle(self, _In.RECV_ACK, ack, now)
                return
        self._ack_without_transaction(ack, peer, now)

    def _receive_response(self, response: Response, peer: Peer, now: float) -> None:
        try:
            branch = response.top_via.branch
            method = response.cseq.method
        except SipParseError:
            branch = None
        tx = None
        if branch:
            tx = self._transactions.get(TransactionKey(False, method, branch, ""))
        if tx is None:
            self._events.append(StrayResponse(response, peer))
            return
        try:
            tx.handle(self, _response_input(response.status), response, now)
        except SipParseError:
            # e.g. a 4xx without To: no ACK can be built; the transaction ignores it.
            self._events.append(StrayResponse(response, peer))

    def _send_cancel(self, tx: _InviteClient, now: float) -> None:
        tx.cancel_sent = True
        cancel = build_cancel(tx.request)
        key = TransactionKey(False, "CANCEL", tx.key.branch, "")
        if key not in self._transactions:
            ctx = _NonInviteClient(key, cancel, tx.peer, tx.reliable)
            self._transactions[key] = ctx
            ctx.start(self, now)
        self._arm(tx, _LIFETIME, _In.CANCEL_WAIT, self._64t1, now)

    def _arm(self, tx: _Transaction, slot: int, inp: _In, delay: float, now: float) -> None:
        if tx.timer_ids[slot]:
            self._stale += 1
        if delay <= 0:
            tx.timer_ids[slot] = 0
            self._immediate.append((tx, inp))
            return
        entry_id = next(self._ids)
        tx.timer_ids[slot] = entry_id
        heapq.heappush(self._heap, (now + delay, entry_id, slot, inp, tx))
        if self._stale > self._COMPACT_MIN and self._stale * 2 > len(self._heap):
            self._compact()

    def _disarm(self, tx: _Transaction, slot: int) -> None:
        if tx.timer_ids[slot]:
            tx.timer_ids[slot] = 0
            self._stale += 1

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if e[4].timer_ids[e[2]] == e[1]]
        heapq.heapify(self._heap)
        self._stale = 0

    def _forget_ack(self, tx: _InviteServer) -> None:
        if tx.ack_key is not None:
            if self._awaiting_ack.get(tx.ack_key) is tx:
                del self._awaiting_ack[tx.ack_key]
            tx.ack_key = None

    def _release(self, tx: _Transaction) -> None:
        if isinstance(tx, _InviteServer):
            self._forget_ack(tx)
        if self._transactions.get(tx.key) is tx:
            del self._transactions[tx.key]
            self._disarm(tx, _RETRANSMIT)
            self._disarm(tx, _LIFETIME)
            self._events.append(TransactionTerminated(tx.key))

    def _run_immediate(self, now: float) -> None:
        while self._immediate:
            batch, self._immediate = self._immediate, []
            for tx, inp in batch:
                if self._transactions.get(tx.key) is tx:
                    tx.handle(self, inp, None, now)


def _sent_by(via: Any) -> str:
    host = via.host.lower()
    return host if via.port is None else f"{host}:{via.port}"


def _legacy_key(request: Request, method: str, to_tag: str | None) -> TransactionKey:
    """RFC 3261 §17.2.3 matching for RFC 2543 peers (branch without the magic cookie)."""
    from_ = request.from_
    parts = (
        request.uri.decode("latin-1") if isinstance(request.uri, bytes) else str(request.uri),
        to_tag or "",
        from_.tag or "",
        request.call_id,
        str(request.cseq.seq),
        request.get_all("Via")[0].decode("latin-1"),
    )
    return TransactionKey(True, method, "2543\x1f" + "\x1f".join(parts), "")
