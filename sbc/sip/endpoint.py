# -*- test-case-name: tests.test_sip_endpoint -*-
"""
The server side of the SIP core: what happens to bytes that arrive from a peer.

``Endpoint`` is sans-IO.  A transport adapter hands it each datagram or framed stream
message together with the :class:`Peer` it came from and the current time; the endpoint
answers through :meth:`Endpoint.messages_to_send` and reports what it refused through
:meth:`Endpoint.notices` so the adapter can log it.  It never raises on bad input.

Order of checks for a request (RFC 3261 §8.2, with the syntax checks first, as a liberal
but safe element does):

1. syntax (``parse_message``/``validate_request``): 400, 505, ...; an unparseable request is
   answered from its raw lines when it still carries a Via (``salvage_error_response``);
2. Request-URI scheme: 416 for anything but sip, sips and tel;
3. method: 501 for a method the stack does not know, 405 (with Allow) for a known method this
   endpoint does not serve;
4. an in-dialog request (To tag) for a dialog that does not exist: 481;
5. ``Require`` with option tags we do not support: 420 with ``Unsupported``;
6. the method's own handler (OPTIONS: 200 with Allow, Accept, Supported and Contact).

Final responses that need no further state (OPTIONS and every error above) are sent
statelessly, as Kamailio's ``sl`` module does: a retransmitted request simply gets the same
answer again, and the To tag is derived from the request so that it is the same answer.
The transaction layer is reserved for requests that need it (INVITE and dialogs, in the
B2BUA), which plug in through :class:`RequestHandler`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import deque
from typing import Callable, Iterable, Protocol, TypeVar

from attrs import frozen

from .errors import SipParseError
from .message import (
    REASON_PHRASES,
    Header,
    Via,
    Request,
    Response,
    make_response,
    parse_message,
    split_first_via,
    salvage_error_response,
    validate_request,
    validate_response,
)

__all__ = [
    "Endpoint",
    "Notice",
    "Peer",
    "RequestHandler",
    "KNOWN_METHODS",
    "with_top_via",
]

#: Methods defined by RFC 3261 and its extensions that this stack recognises.  A method not in
#: this set is answered 501 Not Implemented; a known one that nobody serves gets 405.
KNOWN_METHODS = frozenset(
    {
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
        "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
    }
)

_M = TypeVar("_M", Request, Response)

_RECEIVED_RPORT = re.compile(rb";[ \t]*(?:rport|received)(?:[ \t]*=[ \t]*[^;,\s]*)?", re.I)

_URI_SCHEMES = frozenset({"sip", "sips", "tel"})


@frozen
class Peer:
    """Where a message came from (or goes to).

    ``transport`` is ``"udp"``, ``"tcp"``, ``"tls"``, ``"ws"`` or ``"wss"``; ``host`` is the IP
    address as text (IPv6 without brackets); ``conn`` identifies the local socket (a UDP
    listener) or the stream connection, so that a response leaves by the way its request came.
    """

    transport: str
    host: str
    port: int
    conn: int = 0

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"


@frozen
class Notice:
    """Something the endpoint refused or dropped, for the adapter to count and log."""

    reason: str  # short machine-readable reason, e.g. "parse-error", "stray-response"
    detail: str  # one human line, never containing credentials or bodies
    peer: Peer
    status: int | None = None  # the status answered, if any


class RequestHandler(Protocol):
    """A transaction user that serves some methods (the B2BUA plugs in here)."""

    methods: frozenset[str]

    def handle_request(self, request: Request, peer: Peer, now: float) -> None:
        ...


def _random_key() -> bytes:
    return os.urandom(16)


class Endpoint:
    """
    Sans-IO SIP server core: validation, stateless replies and dispatch.

    :param fqdn: the public FQDN written into ``Contact`` of our responses.
    :param contact_port: callable mapping the receiving ``Peer`` to the local port to advertise
        in ``Contact`` (the listener's port), or ``None`` to leave the port out.
    :param supported: option tags we support (``Supported`` header; ``Require`` checks).
    :param user_agent: the ``Server`` header value.
    """

    def __init__(
        self,
        *,
        fqdn: str,
        user_agent: str = "sbc",
        supported: Iterable[str] = (),
        contact_port: Callable[[Peer], int | None] = lambda peer: None,
        tag_key: bytes | None = None,
    ) -> None:
        self.fqdn = fqdn
        self.user_agent = user_agent.encode()
        self.supported = tuple(supported)
        self._supported_lower = frozenset(t.lower() for t in self.supported)
        self._contact_port = contact_port
        self._tag_key = tag_key if tag_key is not None else _random_key()
        self._handlers: dict[str, RequestHandler] = {}
        self._response_handler: Callable[[Response, Peer, float], None] | None = None
        # (transport, conn) -> the constant headers of an OPTIONS answer on that socket.  Stream
        # connections come and go, so the cache is bounded.
        self._options_headers: dict[tuple[str, int], tuple[Header, ...]] = {}
        #: ``options_hook(response, peer) -> response``: a last look at our answer to an
        #: out-of-dialog OPTIONS (vendor quirks: Teams wants X-MS-SBC on it).  An exception
        #: leaves the answer as it was.
        self.options_hook: Callable[[Response, Peer], Response] | None = None
        self._out: list[tuple[bytes, Peer]] = []
        self._notices: deque[Notice] = deque(maxlen=10_000)
        self.stats: dict[str, int] = {}

    # -- configuration ---------------------------------------------------------------------

    def add_handler(self, handler: RequestHandler) -> None:
        for method in handler.methods:
            self._handlers[method] = handler
        self._options_headers.clear()  # Allow changed

    def set_supported(self, tags: Iterable[str]) -> None:
        """Option tags we implement: listed in Supported and let through in Require."""
        self.supported = tuple(dict.fromkeys(tuple(self.supported) + tuple(tags)))
        self._supported_lower = frozenset(t.lower() for t in self.supported)
        self._options_headers.clear()

    def set_response_handler(self, handler: Callable[[Response, Peer, float], None]) -> None:
        """Responses go here (the transaction layer of a TU that sends requests)."""
        self._response_handler = handler

    @property
    def allowed_methods(self) -> tuple[str, ...]:
        served = {"OPTIONS", "ACK", "CANCEL"} | set(self._handlers)
        order = ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "UPDATE", "PRACK", "INFO",
                 "MESSAGE", "NOTIFY", "REFER", "SUBSCRIBE", "REGISTER", "PUBLISH"]
        return tuple(m for m in order if m in served)

    # -- outputs ---------------------------------------------------------------------------

    def messages_to_send(self) -> list[tuple[bytes, Peer]]:
        out, self._out = self._out, []
        return out

    def notices(self) -> list[Notice]:
        items = list(self._notices)
        self._notices.clear()
        return items

    def send(self, data: bytes, peer: Peer) -> None:
        """Queue bytes for a peer (used by handlers)."""
        self._out.append((data, peer))

    def _notice(self, reason: str, detail: str, peer: Peer, status: int | None = None) -> None:
        self.stats[reason] = self.stats.get(reason, 0) + 1
        self._notices.append(Notice(reason, detail, peer, status))

    # -- input -----------------------------------------------------------------------------

    def receive(self, data: bytes, peer: Peer, now: float) -> None:
        """One datagram, or one message framed from a stream."""
        try:
            message = parse_message(data)
        except SipParseError as e:
            self._unparseable(data, peer, e)
            return
        self.receive_message(message, peer, now, data)

    def receive_parse_failure(self, data: bytes, error: SipParseError, peer: Peer) -> None:
        """A stream message that was framed but did not parse."""
        self._unparseable(data, peer, error)

    def receive_message(
        self, message: Request | Response, peer: Peer, now: float, data: bytes = b""
    ) -> None:
        try:
            if isinstance(message, Response):
                self._response(message, peer, now)
            else:
                self._request(message, peer, now)
        except SipParseError as e:
            # A header that only turned out malformed when a later step looked at it.
            if isinstance(message, Request):
                self._reply_error(message, peer, e.status, e.reason)
            else:
                self._notice("bad-response", e.reason, peer)

    def _unparseable(self, data: bytes, peer: Peer, error: SipParseError) -> None:
        status = error.status if 400 <= error.status <= 699 else 400
        reply = salvage_error_response(data, status, error.reason or REASON_PHRASES.get(status, ""))
        if reply is None:
            self._notice("parse-error", f"dropped unparseable message: {error.reason}", peer)
            return
        self._notice("parse-error", f"answered {status}: {error.reason}", peer, status)
        self._out.append((reply, peer))

    def _response(self, response: Response, peer: Peer, now: float) -> None:
        try:
            validate_response(response)
        except SipParseError as e:
            self._notice("bad-response", f"dropped malformed response: {e.reason}", peer)
            return
        if self._response_handler is not None:
            self._response_handler(response, peer, now)
            return
        self._notice("stray-response", f"no transaction for {response.status} response", peer)

    def _request(self, request: Request, peer: Peer, now: float) -> None:
        method = request.method
        try:
            validate_request(request)
        except SipParseError as e:
            if method == "ACK":
                self._notice("bad-request", f"dropped malformed ACK: {e.reason}", peer)
            else:
                self._reply_error(request, peer, e.status, e.reason)
            return
        if method == "ACK":
            # An ACK for one of our stateless non-2xx answers ends here; ACKs for 2xx belong
            # to a dialog handler if one serves INVITE.
            handler = self._handlers.get("ACK") or self._handlers.get("INVITE")
            if handler is not None:
                handler.handle_request(self._stamp_via(request, peer), peer, now)
            return
        scheme = request.parsed_uri.scheme
        if scheme not in _URI_SCHEMES:
            self._reply_error(request, peer, 416, "Unsupported URI Scheme")
            return
        handler = self._handlers.get(method)
        if handler is None and method == "OPTIONS" and request.to.tag is not None:
            # An in-dialog OPTIONS (a PBX's keep-alive inside a call) belongs to whoever owns
            # the dialogs; without one it gets 481 below.
            handler = self._handlers.get("INVITE")
        if handler is None and method not in ("OPTIONS", "CANCEL"):
            if method in KNOWN_METHODS:
                self._reply_error(request, peer, 405, "Method Not Allowed",
                                  [("Allow", self._allow_value())])
            else:
                self._reply_error(request, peer, 501, "Not Implemented",
                                  [("Allow", self._allow_value())])
            return
        if handler is None:
            if request.to.tag is not None or method == "CANCEL":
                # No dialogs and no INVITE transactions exist without a handler.
                self._reply_error(request, peer, 481, "Call/Transaction Does Not Exist")
                return
        unsupported = self._unsupported(request)
        if unsupported:
            self._reply_error(request, peer, 420, "Bad Extension",
                              [("Unsupported", ", ".join(unsupported).encode())])
            return
        if handler is not None:
            handler.handle_request(self._stamp_via(request, peer), peer, now)
            return
        self._options(request, peer)

    # -- helpers ---------------------------------------------------------------------------

    def _received_via(self, request: Request, peer: Peer) -> bytes | None:
        """The request's first via-parm with received and rport set to what we saw.

        Done on bytes: this runs for every stateless answer, and a parsed Via rebuilt through
        evolve() costs several times more.  Any received/rport the client put there is replaced.
        """
        vias = request.headers_named("Via")
        if not vias:
            return None
        first = split_first_via(vias[0].value)[0].rstrip(b" \t")
        host = peer.host.encode("ascii")
        return (_RECEIVED_RPORT.sub(b"", first) + b";received=" + host
                + b";rport=" + str(peer.port).encode("ascii"))

    def _stamp_via(self, request: Request, peer: Peer) -> Request:
        """Fill in received and rport on the top Via (RFC 3261 §18.2.1, RFC 3581 §4).

        We behave as if every Via carried ``rport``: responses go to the source address and port
        in any case, and the parameters tell the client what we saw -- unless the Via already
        says exactly that (its host and port are the source's, and it asks for no rport).
        """
        via = request.top_via
        if via.host == peer.host and via.port == peer.port and via.rport is None and via.received is None:
            # The Via names the very address and port the request came from: received and
            # rport would repeat it (RFC 3261 §18.2.1 adds received only when the host
            # differs; RFC 3581 fills rport only when asked).
            return request
        stamped = via.with_param("received", peer.host).with_param("rport", str(peer.port))
        return with_top_via(request, stamped)

    def _unsupported(self, request: Request) -> list[str]:
        if not request.has("Require"):
            return []
        return [
            tag.decode("utf-8", "replace")
            for tag in request.get_all("Require")
            if tag.decode("utf-8", "replace").lower() not in self._supported_lower
        ]

    def _allow_value(self) -> bytes:
        return ", ".join(self.allowed_methods).encode()

    def to_tag(self, request: Request) -> str:
        """A To tag derived from the request, stable across its retransmissions."""
        h = hashlib.blake2b(key=self._tag_key, digest_size=8)
        h.update(request.call_id.encode())
        h.update(b"\0")
        h.update((request.from_.tag or "").encode())
        h.update(b"\0")
        h.update(str(request.cseq.seq).encode())
        return h.hexdigest()

    def _tag_for(self, request: Request) -> str | None:
        if request.to.tag is not None:
            return None
        try:
            return self.to_tag(request)
        except SipParseError:
            return None

    def _reply_error(
        self,
        request: Request,
        peer: Peer,
        status: int,
        reason: str,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        if request.method == "ACK":
            return
        extra = [("Server", self.user_agent)] + (headers or [])
        try:
            response = make_response(request, status, _reason_phrase(status, reason),
                                     to_tag=self._tag_for(request), headers=extra,
                                     top_via=self._received_via(request, peer))
            data = response.to_bytes()
        except SipParseError:
            data = salvage_error_response(request.to_bytes(), status, reason)
            if data is None:
                self._notice("bad-request", f"could not answer {status}: {reason}", peer)
                return
        self._notice("rejected", f"{request.method} answered {status}: {reason}", peer, status)
        self._out.append((data, peer))

    def _options(self, request: Request, peer: Peer) -> None:
        headers = self._options_headers.get((peer.transport, peer.conn))
        if headers is None:
            if len(self._options_headers) >= 1024:
                self._options_headers.clear()
            headers = self._options_headers[(peer.transport, peer.conn)] = self._build_options_headers(peer)
        response = make_response(request, 200, "OK", to_tag=self._tag_for(request),
                                  headers=headers, top_via=self._received_via(request, peer))
        if self.options_hook is not None:
            try:
                response = self.options_hook(response, peer)
            except Exception as e:  # noqa: BLE001 - a hook never costs the answer
                self._notice("options-hook-failed", f"{type(e).__name__}: {e}", peer)
        self.stats["options"] = self.stats.get("options", 0) + 1
        self._out.append((response.to_bytes(), peer))

    def _build_options_headers(self, peer: Peer) -> tuple[Header, ...]:
        """The constant part of our OPTIONS answer for the socket a peer reached."""
        port = self._contact_port(peer)
        hostport = self.fqdn if port is None else f"{self.fqdn}:{port}"
        transport = "" if peer.transport == "udp" else f";transport={peer.transport}"
        return (
            Header("Contact", f"<sip:{hostport}{transport}>".encode()),
            Header("Allow", self._allow_value()),
            Header("Accept", b"application/sdp"),
            Header("Supported", ", ".join(self.supported).encode()),
            Header("Server", self.user_agent),
        )


def _reason_phrase(status: int, reason: str) -> str:
    """Keep reason phrases to one printable line: never echo control characters."""
    text = "".join(ch for ch in reason if ch.isprintable())[:120]
    return text or REASON_PHRASES.get(status, "Error")


def with_top_via(message: _M, via: Via) -> _M:
    """Replace the first via-parm of the first Via header; every other byte stays as it was."""
    return message.with_top_via(via)
