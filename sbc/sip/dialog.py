# -*- test-case-name: tests.test_sip_dialog -*-
"""SIP dialogs (RFC 3261 §12), sans-IO.

A :class:`Dialog` holds the state both sides of a call share -- identifiers, sequence numbers,
remote target and route set -- and builds in-dialog requests from it (§12.2.1.1, including
the strict-routing fallback).  A :class:`DialogTable` finds the dialog of an incoming
in-dialog request and rejects unknown ones with 481.
"""

from __future__ import annotations

from typing import Iterable

import attrs
from attrs import define, frozen

from sbc.sip.errors import SipError, SipParseError
from sbc.sip.message import CSeq, Header, NameAddr, Request, Response, Via, preparsed, trusted_header
from sbc.sip.uri import URI

_MAX_FORWARDS_70 = Header("Max-Forwards", b"70")

__all__ = [
    "Dialog",
    "DialogError",
    "DialogId",
    "DialogTable",
    "TARGET_REFRESH_METHODS",
    "EARLY",
    "CONFIRMED",
    "TERMINATED",
]

EARLY = "early"
CONFIRMED = "confirmed"
TERMINATED = "terminated"

# Requests whose Contact replaces the remote target (RFC 3261 §12.2, RFC 3311, RFC 6665 §4.1).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY"})

# Initial local CSeq of a dialog whose local sequence number is still empty (UAS side).
_INITIAL_CSEQ = 1
_MAX_CSEQ = 2**31 - 1


class DialogError(SipError):
    """A request or response does not fit a dialog; ``status`` is what a UAS answers
    (481 unknown dialog, 500 out-of-order CSeq, 400 missing Contact...)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


@frozen
class DialogId:
    call_id: str
    local_tag: str
    remote_tag: str


def _contact_uri(message: Request | Response) -> URI | None:
    try:
        contacts = message.contacts
    except SipParseError as e:
        raise DialogError(400, f"bad Contact: {e.reason}") from e
    return contacts[0].uri if contacts else None


def _strip_tag(addr: NameAddr) -> NameAddr:
    return addr.without_param("tag")


@define
class Dialog:
    """One dialog, seen from our side (``is_uac``: we sent the request that created it)."""

    id: DialogId
    local_seq: int | None
    remote_seq: int | None
    local_uri: NameAddr  # our From/To, without tag
    remote_uri: NameAddr  # their From/To, without tag
    remote_target: URI
    route_set: tuple[NameAddr, ...]
    secure: bool
    state: str = EARLY
    is_uac: bool = False
    local_contact: bytes | None = None

    @property
    def call_id(self) -> str:
        return self.id.call_id

    @property
    def local_tag(self) -> str:
        return self.id.local_tag

    @property
    def remote_tag(self) -> str:
        return self.id.remote_tag

    # ------------------------------------------------------------------ creation

    @classmethod
    def from_uas(
        cls,
        request: Request,
        response_to_tag: str,
        local_contact: bytes | None,
        *,
        early: bool = False,
        secure: bool | None = None,
    ) -> "Dialog":
        """§12.1.1: we answer ``request`` with a 1xx (``early=True``) or 2xx carrying To tag
        ``response_to_tag``.  Route set = Record-Route as received; remote target = the
        request's Contact; remote sequence number = its CSeq.  ``secure`` defaults to
        whether the Request-URI is sips (the transport is not known here)."""
        try:
            target = _contact_uri(request)
            if target is None:
                raise DialogError(400, "Missing Contact")
            from_ = request.from_
            dialog = cls(
                id=DialogId(request.call_id, response_to_tag, from_.tag or ""),
                local_seq=None,
                remote_seq=request.cseq.seq,
                local_uri=_strip_tag(request.to),
                remote_uri=_strip_tag(from_),
                remote_target=target,
                route_set=tuple(request.record_routes),
                secure=request.parsed_uri.scheme == "sips" if secure is None else secure,
                state=EARLY if early else CONFIRMED,
                is_uac=False,
                local_contact=local_contact,
            )
        except SipParseError as e:
            raise DialogError(400, e.reason) from e
        return dialog

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> "Dialog":
        """§12.1.2: ``response`` (1xx with a To tag, or 2xx) answers our ``request``.
        Route set = Record-Route of the response reversed; remote target = its Contact;
        local sequence number = the request's CSeq."""
        try:
            target = _contact_uri(response)
            if target is None:
                raise DialogError(400, "Missing Contact")
            dialog = cls(
                id=DialogId(request.call_id, request.from_.tag or "", response.to.tag or ""),
                local_seq=request.cseq.seq,
                remote_seq=None,
                local_uri=_strip_tag(request.from_),
                remote_uri=_strip_tag(response.to),
                remote_target=target,
                route_set=tuple(reversed(response.record_routes)),
                secure=request.parsed_uri.scheme == "sips",
                state=EARLY if response.status < 200 else CONFIRMED,
                is_uac=True,
                local_contact=request.get("Contact"),
            )
        except SipParseError as e:
            raise DialogError(400, e.reason) from e
        return dialog

    # ------------------------------------------------------------------ requests we send

    def create_request(
        self,
        method: str,
        *,
        via: bytes | Via,
        contact: bytes | None = None,
        headers: Iterable[tuple[str, bytes]] = (),
        body: bytes = b"",
        cseq: int | None = None,
    ) -> Request:
        """Build an in-dialog request (§12.2.1.1).

        The CSeq is the local sequence number plus one (which becomes the new local sequence
        number), or ``cseq`` when given: ACK and CANCEL reuse the number of their INVITE and
        must pass it (see :meth:`create_ack`).  Request-URI and Route follow the route set:
        empty -> R-URI is the remote target; first route loose (``;lr``) -> R-URI is the
        remote target and Route is the route set; first route strict -> R-URI is the first
        route's URI (minus parameters not allowed in a Request-URI), Route is the rest of the
        route set followed by the remote target.  ``contact`` defaults to the dialog's local
        contact for target refresh requests."""
        if self.state == TERMINATED:
            raise DialogError(481, "Call/Transaction Does Not Exist")
        if cseq is None:
            if method in ("ACK", "CANCEL"):
                raise DialogError(500, f"{method} must reuse the CSeq of its INVITE")
            seq = _INITIAL_CSEQ if self.local_seq is None else self.local_seq + 1
            if seq > _MAX_CSEQ:
                raise DialogError(500, "CSeq space exhausted")
            self.local_seq = seq
        else:
            seq = cseq
        ruri, routes = self._request_target()
        top_via = via if type(via) is Via else None
        hdrs = [Header("Via", top_via.to_bytes() if top_via is not None else via), _MAX_FORWARDS_70]
        hdrs.extend(Header("Route", r) for r in routes)
        from_ = self.local_uri.with_tag(self.id.local_tag)
        hdrs.append(trusted_header("From", "from", from_.to_bytes()))
        remote = self.remote_uri
        if self.id.remote_tag:
            remote = remote.with_tag(self.id.remote_tag)
        hdrs.append(trusted_header("To", "to", remote.to_bytes()))
        call_id = self.id.call_id
        hdrs.append(Header("Call-ID", call_id.encode("latin-1")))
        hdrs.append(trusted_header("CSeq", "cseq", b"%d %s" % (seq, method.encode("ascii"))))
        if contact is None and method in TARGET_REFRESH_METHODS:
            contact = self.local_contact
        if contact is not None:
            hdrs.append(Header("Contact", contact))
        hdrs.extend(Header(n, v) for n, v in headers)
        hdrs.append(trusted_header("Content-Length", "content-length", b"%d" % len(body)))
        request = preparsed(Request(method, ruri, tuple(hdrs), body),
                            from_=from_, to=remote, call_id=call_id, cseq=CSeq(seq, method))
        return request if top_via is None else preparsed(request, top_via=top_via)

    def create_ack(
        self,
        invite_cseq: int,
        *,
        via: bytes | Via,
        headers: Iterable[tuple[str, bytes]] = (),
        body: bytes = b"",
    ) -> Request:
        """The ACK for a 2xx to the INVITE sent with CSeq number ``invite_cseq`` (§13.2.2.4)."""
        return self.create_request("ACK", via=via, headers=headers, body=body, cseq=invite_cseq)

    def _request_target(self) -> tuple[bytes, list[bytes]]:
        routes = self.route_set
        if not routes:
            return self.remote_target.to_bytes(), []
        first = routes[0]
        if first.uri.has_param("lr"):
            return self.remote_target.to_bytes(), [r.to_bytes() for r in routes]
        # Strict router (§12.2.1.1): it must see itself in the Request-URI.
        ruri = attrs.evolve(first.uri, headers=()).without_param("method")
        rest = [r.to_bytes() for r in routes[1:]]
        rest.append(b"<" + self.remote_target.to_bytes() + b">")
        return ruri.to_bytes(), rest

    # ------------------------------------------------------------------ what we receive

    def receive_request(self, request: Request) -> None:
        """§12.2.2: CSeq check and target refresh for an in-dialog request.  A CSeq lower than
        the remote sequence number raises DialogError(500).  ACK and CANCEL carry their
        INVITE's number and neither check nor advance it."""
        try:
            method = request.method
            if method in ("ACK", "CANCEL"):
                return
            seq = request.cseq.seq
            if self.remote_seq is not None and seq < self.remote_seq:
                raise DialogError(500, "CSeq out of order")
            self.remote_seq = seq
            if method in TARGET_REFRESH_METHODS:
                target = _contact_uri(request)
                if target is not None:
                    self.remote_target = target
        except SipParseError as e:
            raise DialogError(400, e.reason) from e

    def receive_response(self, response: Response) -> None:
        """A response to a request we sent in this dialog (§12.2.1.2, §13.2.2.4).

        A 2xx to a target refresh request replaces the remote target by its Contact.  In the
        early state a provisional with a Contact updates the remote target, a 2xx to INVITE
        confirms the dialog (the UAC recomputes the route set from its Record-Route) and a
        non-2xx final response to INVITE terminates it.  481 and 408 terminate the dialog."""
        try:
            status = response.status
            method = response.cseq.method
            if status in (481, 408):
                self.state = TERMINATED
                return
            if self.state == EARLY and method == "INVITE":
                if status < 200:
                    target = _contact_uri(response)
                    if target is not None:
                        self.remote_target = target
                    return
                if status >= 300:
                    self.state = TERMINATED
                    return
                self.state = CONFIRMED
                if self.is_uac:
                    self.route_set = tuple(reversed(response.record_routes))
            if 200 <= status < 300 and method in TARGET_REFRESH_METHODS:
                target = _contact_uri(response)
                if target is not None:
                    self.remote_target = target
        except SipParseError as e:
            raise DialogError(400, e.reason) from e

    def confirm(self) -> None:
        """UAS side: our 2xx was sent, the early dialog is now confirmed."""
        if self.state == EARLY:
            self.state = CONFIRMED

    def terminate(self) -> None:
        self.state = TERMINATED


class DialogTable:
    """Dialogs by id; finds the dialog of an in-dialog request or response."""

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._dialogs.values()))

    def add(self, dialog: Dialog) -> None:
        self._dialogs[dialog.id] = dialog

    def remove(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.pop(dialog_id, None)

    def get(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def match_request(self, request: Request) -> Dialog | None:
        """The dialog of a received request: Call-ID, To tag = local tag, From tag = remote
        tag.  None when the request has no To tag or no dialog matches."""
        try:
            to_tag = request.to.tag
            if not to_tag:
                return None
            return self._dialogs.get(DialogId(request.call_id, to_tag, request.from_.tag or ""))
        except SipParseError as e:
            raise DialogError(400, e.reason) from e

    def match_response(self, response: Response) -> Dialog | None:
        """The dialog of a response to our request: From tag = local, To tag = remote."""
        try:
            from_tag = response.from_.tag
            if not from_tag:
                return None
            return self._dialogs.get(DialogId(response.call_id, from_tag, response.to.tag or ""))
        except SipParseError as e:
            raise DialogError(400, e.reason) from e

    def route_in_dialog(self, request: Request) -> Dialog | None:
        """Find the dialog of an in-dialog request and apply it (:meth:`Dialog.receive_request`).

        Returns None for a request outside any dialog (no To tag).  Raises
        DialogError(481, "Call/Transaction Does Not Exist") for a request with a To tag that
        matches no dialog (the TU must silently drop an ACK instead of answering), and
        DialogError(500) for an out-of-order CSeq."""
        try:
            to_tag = request.to.tag
        except SipParseError as e:
            raise DialogError(400, e.reason) from e
        if not to_tag:
            return None
        dialog = self.match_request(request)
        if dialog is None or dialog.state == TERMINATED:
            raise DialogError(481, "Call/Transaction Does Not Exist")
        dialog.receive_request(request)
        return dialog
