# -*- test-case-name: tests.test_b2bua -*-
"""Call-control events: the only thing the two legs of a call exchange.

A leg turns what its peer says (SIP) into one of these events; the call controller hands it
to the other leg, which turns it back into SIP toward its own peer.  No event carries a
message, a dialog or a header object of the other side: only plain values (bytes, str,
ints), so nothing of one leg's topology can leak into the other by accident.

``id`` on the request/answer pairs (Reoffer/ReofferAnswer/ReofferFail, Info/InfoAnswer)
correlates an answer with its request when several are in flight (INFO, MESSAGE ...).
"""

from __future__ import annotations

from typing import Union

from attrs import frozen

__all__ = [
    "Answer",
    "Body",
    "CallEvent",
    "Confirm",
    "Disconnect",
    "Fail",
    "Info",
    "InfoAnswer",
    "Reoffer",
    "ReofferAnswer",
    "ReofferCancel",
    "ReofferFail",
    "Ring",
    "Try",
]


@frozen
class Body:
    """A message body and its Content-Type (kept as bytes: SDP may be multipart)."""

    content_type: bytes
    data: bytes


@frozen
class Try:
    """A new call: the A leg received an INVITE.

    ``caller_user``/``caller_display`` come from the From header; ``callee`` is the
    percent-decoded Request-URI user; ``headers`` are the allowlisted headers copied
    A -> B, as (canonical name, value) pairs; ``body`` is None for a late-offer INVITE."""

    caller_user: str | None
    caller_display: str | None
    callee: str
    body: Body | None
    headers: tuple[tuple[str, bytes], ...] = ()
    max_forwards: int = 70


@frozen
class Ring:
    """A provisional response (180/183...) with or without early media."""

    status: int
    reason: str
    body: Body | None


@frozen
class Answer:
    """A 2xx to the initial INVITE; ``body`` is None when the answer has no SDP."""

    body: Body | None


@frozen
class Confirm:
    """The ACK for a 2xx to an INVITE (initial or re-INVITE) arrived; ``body`` carries the
    answer of a late-offer exchange (None otherwise)."""

    body: Body | None


@frozen
class Fail:
    """The initial INVITE failed with ``status`` (the call controller maps it for the
    other side); ``retry_after`` in seconds if the peer gave one (or we choose one)."""

    status: int
    reason: str
    retry_after: int | None = None


@frozen
class Disconnect:
    """End this leg (BYE, or CANCEL before the answer).  ``reason`` is a short token used in
    logs and as the call's end reason (``bye-a``, ``cancel``, ``no-answer``...);
    ``headers`` are relayed in the BYE (the peer's ``Reason`` headers, RFC 3326)."""

    reason: str
    headers: tuple[tuple[str, bytes], ...] = ()


@frozen
class Reoffer:
    """A re-INVITE or UPDATE inside the dialog (hold, resume, codec change).  ``body`` is
    None for an offerless re-INVITE (the 2xx then carries the offer)."""

    id: int
    method: str  # "INVITE" or "UPDATE"
    body: Body | None


@frozen
class ReofferCancel:
    """The peer cancelled its re-INVITE ``id``: cancel the relayed one."""

    id: int


@frozen
class ReofferAnswer:
    id: int
    body: Body | None


@frozen
class ReofferFail:
    id: int
    status: int
    reason: str
    retry_after: int | None = None


@frozen
class Info:
    """An in-dialog INFO, MESSAGE, NOTIFY or REFER to relay (body and Content-Type kept).

    ``refer`` on a NOTIFY of a transfer (``Event: refer``): the ``id`` of the relayed REFER
    it reports on, so that the receiving leg can put its own peer's REFER CSeq into the
    Event ``id`` parameter (RFC 3515 §2.4.6); None otherwise."""

    id: int
    method: str
    body: Body | None
    headers: tuple[tuple[str, bytes], ...] = ()
    refer: int | None = None


@frozen
class InfoAnswer:
    """The final response to a relayed :class:`Info`."""

    id: int
    status: int
    reason: str
    body: Body | None = None


CallEvent = Union[
    Try, Ring, Answer, Confirm, Fail, Disconnect, Reoffer, ReofferAnswer, ReofferCancel, ReofferFail, Info,
    InfoAnswer,
]
