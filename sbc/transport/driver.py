# -*- test-case-name: tests.test_transport -*-
"""
The bridge between sockets and the sans-IO SIP core.

``SipDriver`` owns the registry of local sockets and stream connections, feeds what they
receive into the :class:`~sbc.sip.endpoint.Endpoint` with the current time from an injected
clock, writes out what the endpoint queues, and logs what the endpoint refused (rate-limited).
It never lets an exception escape into a transport callback.
"""

from __future__ import annotations

import itertools

from attrs import evolve
from typing import TYPE_CHECKING, Any, Callable, Protocol as TypingProtocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from sbc.sip.endpoint import Endpoint, Notice, Peer, with_top_via
from sbc.sip.errors import SipParseError
from sbc.sip.message import Request, Response, make_response

from ._ratelimit import RateLimitedLog

if TYPE_CHECKING:  # pragma: no cover
    from .admission import Admission
    from .stream import SipStreamProtocol
    from .udp import SipDatagramProtocol

__all__ = ["SipDriver", "Target"]

#: Seconds during which a next hop whose TCP connect failed gets large requests over UDP.
NO_TCP_MEMORY = 60.0


class _Writable(TypingProtocol):
    def write(self, data: bytes) -> None: ...


class Target(tuple):  # type: ignore[type-arg]
    """(transport, host, port) of a next hop for requests we originate."""

    __slots__ = ()

    def __new__(cls, transport: str, host: str, port: int) -> "Target":
        return tuple.__new__(cls, (transport, host, port))

    transport = property(lambda self: self[0])
    host = property(lambda self: self[1])
    port = property(lambda self: self[2])


class SipDriver:
    """
    Feeds the SIP core and delivers its output.

    :param endpoint: the sans-IO core.
    :param clock: where ``now`` comes from.
    :param max_udp_size: requests larger than this go over TCP instead of UDP
        (RFC 3261 §18.1.1; 1300 bytes unless the path MTU is known).
    """

    log = Logger()

    def __init__(
        self,
        endpoint: Endpoint,
        clock: IReactorTime,
        *,
        max_udp_size: int = 1300,
        max_message_size: int = 65_535,
        connect_tcp: "ConnectTcp | None" = None,
        connect_tls: "ConnectTcp | None" = None,
    ) -> None:
        self.endpoint = endpoint
        self.clock = clock
        self.max_udp_size = max_udp_size
        self.max_message_size = max_message_size
        self._ids = itertools.count(1)
        self._udp: dict[int, SipDatagramProtocol] = {}
        self._streams: dict[int, SipStreamProtocol] = {}
        self._by_address: dict[tuple[str, str, int], int] = {}
        self._connect_tcp = connect_tcp
        #: Opens a TLS connection (server certificate and name verified); fires with the
        #: protocol once the handshake succeeded.
        self._connect_tls = connect_tls
        self._pending: dict[tuple[str, str, int], list[tuple[bytes, bytes | None, Request | None]]] = {}
        # (host, port) -> until when large requests to it go over UDP: its TCP connect failed.
        self._no_tcp: dict[tuple[str, int], float] = {}
        self._notice_log = RateLimitedLog(self.log, clock)
        self._tus: list[TransactionUser] = []
        self._tu_methods: list[tuple[Callable[[], Any], Callable[[], Any] | None, Callable[[], float | None]]] = []
        self._timer: IDelayedCall | None = None
        self._timer_at: float | None = None
        self.counters: dict[str, int] = {}
        #: Edge checks (:class:`~sbc.transport.admission.Admission`): the transports ask it
        #: before parsing; None admits everything.
        self.admission: Admission | None = None
        #: Traffic observers (metrics, see :class:`TrafficObserver`), told of every message
        #: in and out; an observer that raises is logged and costs nothing else.
        self.observers: list[TrafficObserver] = []

    # -- registry --------------------------------------------------------------------------

    def add_udp(self, proto: "SipDatagramProtocol") -> int:
        conn = next(self._ids)
        self._udp[conn] = proto
        return conn

    def remove_udp(self, conn: int) -> None:
        self._udp.pop(conn, None)

    def add_stream(self, proto: "SipStreamProtocol", reachable: bool = True) -> int:
        """Register a connection; ``reachable=False`` (TLS we opened, handshake still going):
        requests to its address do not use it until :meth:`stream_ready`."""
        conn = next(self._ids)
        self._streams[conn] = proto
        peer = proto.peer
        if peer is not None and reachable:
            self._by_address[(peer.transport, peer.host, peer.port)] = conn
        return conn

    def stream_ready(self, proto: "SipStreamProtocol") -> None:
        """A TLS connection we opened completed its handshake: requests may use it."""
        peer = proto.peer
        if peer is not None and self._streams.get(proto.conn) is proto:
            self._by_address[(peer.transport, peer.host, peer.port)] = proto.conn

    def tls_refused(self, host: str, port: int, reason: str) -> None:
        """A TLS client was refused for its certificate (in the handshake or right after):
        counted ``tls-client-refused`` and logged, rate-limited."""
        self._count("tls-client-refused")
        self._notice_log.emit("tls-client-refused", "TLS connection from {host}:{port} refused: {reason}",
                              host=host, port=port, reason=reason)

    def tls_trunks(self, peer: Peer) -> frozenset[str]:
        """The trunks whose certificate requirements the client of ``peer``'s TLS connection
        satisfies (mutual TLS, ``match_tls_names``); empty for anything else."""
        if peer.transport != "tls":
            return frozenset()
        proto = self._streams.get(peer.conn)
        return getattr(proto, "tls_trunks", frozenset()) if proto is not None else frozenset()

    def remove_stream(self, conn: int) -> None:
        proto = self._streams.pop(conn, None)
        if proto is not None and proto.peer is not None:
            key = (proto.peer.transport, proto.peer.host, proto.peer.port)
            if self._by_address.get(key) == conn:
                del self._by_address[key]

    def _udp_for(self, host: str) -> "SipDatagramProtocol | None":
        """A UDP socket of the right address family for ``host``."""
        v6 = ":" in host
        for proto in self._udp.values():
            if proto.is_ipv6 == v6:
                return proto
        return None

    # -- transaction users -----------------------------------------------------------------

    def add_observer(self, observer: "TrafficObserver") -> None:
        self.observers.append(observer)

    def remove_observer(self, observer: "TrafficObserver") -> None:
        if observer in self.observers:
            self.observers.remove(observer)

    def _observe(self, what: str, *args: Any) -> None:
        for observer in self.observers:
            try:
                getattr(observer, what)(*args)
            except Exception:
                self.log.failure("traffic observer {observer!r} raised in {what}", observer=observer, what=what)

    def add_tu(self, tu: "TransactionUser") -> None:
        """A transaction user (the B2BUA) whose output and timers this driver runs."""
        self._tus.append(tu)
        # The bound methods, looked up once: they run at every flush (every datagram).
        self._tu_methods.append((tu.messages_to_send, getattr(tu, "notices", None), tu.next_deadline))
        self._service_tus()

    def _service_tus(self) -> None:
        """Send what the TUs queued and schedule the earliest of their deadlines."""
        admission = self.admission
        allowlist = admission.allowlist if admission is not None else None
        for messages_to_send, notices, _ in self._tu_methods:
            items = messages_to_send()
            if not items:
                pass
            elif self.observers:
                self._observe("messages_out", items)
            for message, peer in items:
                is_request = isinstance(message, Request)
                if allowlist is not None and is_request:
                    # A peer we send requests to may answer and send requests back.
                    allowlist.remember(peer.host)
                try:
                    if peer.conn == 0 and is_request:
                        self.send_request(message, Target(peer.transport, peer.host, peer.port))
                    else:
                        self.send_to_peer(message.to_bytes(), peer)
                except Exception:
                    self.log.failure("sending a {kind} to {host}:{port} failed",
                                     kind=type(message).__name__, host=peer.host, port=peer.port)
            if notices is not None:
                for notice in notices():
                    self._log_notice(notice)
        at = None
        for _, _, next_deadline in self._tu_methods:
            d = next_deadline()
            if d is not None and (at is None or d < at):
                at = d
        if at == self._timer_at and (self._timer is None or self._timer.active()):
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = self.clock.callLater(max(0.0, at - self.clock.seconds()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self.clock.seconds()
        for tu in self._tus:
            try:
                tu.handle_timer(now)
            except Exception:
                self.log.failure("transaction user raised in handle_timer")
        self.flush()

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def local_port(self, peer: Peer) -> int | None:
        """The local port a peer reached us on (advertised in Contact)."""
        proto = self._udp.get(peer.conn) if peer.transport == "udp" else self._streams.get(peer.conn)
        return proto.local_port if proto is not None else None

    # -- input -----------------------------------------------------------------------------

    def datagram_received(self, data: bytes, peer: Peer) -> None:
        if self.observers:
            self._observe("message_in", data)
        try:
            admission = self.admission
            if len(data) > self.max_message_size:
                self._count("oversize")
                self.endpoint.receive_parse_failure(
                    data, SipParseError("Message Too Large", 513), peer)
            elif admission is not None and admission.max_headers and (
                    reply := admission.too_many_headers(data, peer)) is not False:
                if reply is not None:
                    self.send_to_peer(reply, peer)
            else:
                self.endpoint.receive(data, peer, self.clock.seconds())
        except Exception:
            self.log.failure("SIP core raised on a datagram from {host}:{port}",
                             host=peer.host, port=peer.port)
        self.flush()

    def message_received(self, message: Request | Response, peer: Peer) -> None:
        if self.observers:
            self._observe("message_in", message)
        try:
            admission = self.admission
            if admission is not None and admission.max_headers and len(message.headers) > admission.max_headers:
                reply = admission.too_many_headers(message.to_bytes(), peer, len(message.headers))
                if reply:
                    self.send_to_peer(reply, peer)
                return
            self.endpoint.receive_message(message, peer, self.clock.seconds())
        except Exception:
            self.log.failure("SIP core raised on a stream message from {host}:{port}",
                             host=peer.host, port=peer.port)
        self.flush()

    def parse_failure(self, data: bytes, error: SipParseError, peer: Peer) -> None:
        if self.observers:
            self._observe("invalid_in")
        try:
            self.endpoint.receive_parse_failure(data, error, peer)
        except Exception:
            self.log.failure("SIP core raised on a malformed message from {host}:{port}",
                             host=peer.host, port=peer.port)
        self.flush()

    # -- output ----------------------------------------------------------------------------

    def flush(self) -> None:
        out = self.endpoint.messages_to_send()
        if self.observers and out:
            self._observe("bytes_out", out)
        for data, peer in out:
            self.send_to_peer(data, peer)
        for notice in self.endpoint.notices():
            self._log_notice(notice)
        if self._tus:
            self._service_tus()

    def send_to_peer(self, data: bytes, peer: Peer) -> bool:
        """Send back the way a message came: the same UDP socket, or the same connection."""
        if peer.transport == "udp":
            proto = self._udp.get(peer.conn) or self._udp_for(peer.host)
            if proto is None or proto.transport is None:
                self._count("no-udp-socket")
                return False
            proto.send(data, (peer.host, peer.port))
            return True
        stream = self._streams.get(peer.conn)
        if stream is None:
            conn = self._by_address.get((peer.transport, peer.host, peer.port))
            stream = self._streams.get(conn) if conn is not None else None
        if stream is None:
            # RFC 3261 §18.2.2 would have us open a new connection to the Via's sent-by; a
            # response whose connection is gone is dropped and counted instead.
            self._count("connection-gone")
            self.log.info("connection to {host}:{port} gone; {size}-byte message dropped",
                          host=peer.host, port=peer.port, size=len(data))
            return False
        stream.send(data)
        return True

    def send_request(self, request: Request, target: Target) -> None:
        """
        Send a request we originate to a next hop.

        Over UDP a request larger than ``max_udp_size`` goes over TCP to the same host and port
        instead (RFC 3261 §18.1.1), with the top Via's transport changed to match.  If that
        connection cannot be made, the request goes over UDP after all, as §18.1.1 says, and
        the host is remembered for a while so that retransmissions go straight to UDP.
        """
        transport = target.transport
        if transport == "udp":
            data = request.to_bytes()
            now = self.clock.seconds()
            no_tcp_until = self._no_tcp.get((target.host, target.port))
            if len(data) <= self.max_udp_size or (no_tcp_until is not None and now < no_tcp_until):
                self._send_udp(data, target.host, target.port)
                return
            self._send_stream(_via_transport(request, "TCP").to_bytes(), "tcp", target.host,
                              target.port, udp_fallback=data)
            return
        self._send_stream(request.to_bytes(), transport, target.host, target.port, request=request)

    def _send_udp(self, data: bytes, host: str, port: int) -> None:
        proto = self._udp_for(host)
        if proto is None:
            self._count("no-udp-socket")
            return
        proto.send(data, (host, port))

    def _send_stream(self, data: bytes, transport: str, host: str, port: int,
                     udp_fallback: bytes | None = None, request: Request | None = None) -> None:
        key = (transport, host, port)
        conn = self._by_address.get(key)
        if conn is not None and conn in self._streams:
            self._streams[conn].send(data)
            return
        connect = {"tcp": self._connect_tcp, "tls": self._connect_tls}.get(transport)
        if connect is None:
            if udp_fallback is not None:
                self._send_udp(udp_fallback, host, port)
                return
            self._count("no-route")
            self.log.warn("no {transport} connection to {host}:{port}; request dropped",
                          transport=transport, host=host, port=port)
            return
        item = (data, udp_fallback, request)
        pending = self._pending.get(key)
        if pending is not None:
            pending.append(item)
            return
        self._pending[key] = [item]
        d = connect(host, port)

        def connected(proto: "SipStreamProtocol") -> None:
            for stream_data, _, _ in self._pending.pop(key, []):
                proto.send(stream_data)

        def failed(failure: Any) -> None:
            waiting = self._pending.pop(key, [])
            self._count("connect-failed")
            if transport == "tls":
                # Never re-enter the SIP core from inside the output loop: on a later turn.
                self.clock.callLater(0, self._tls_failed, host, port, waiting, failure)
                return
            fallback = [udp for _, udp, _ in waiting if udp is not None]
            if fallback:
                self._no_tcp[(host, port)] = self.clock.seconds() + NO_TCP_MEMORY
                if len(self._no_tcp) > 4096:
                    self._no_tcp.clear()
                for udp in fallback:
                    self._send_udp(udp, host, port)
            dropped = len(waiting) - len(fallback)
            self.log.warn("TCP connect to {host}:{port} failed; {sent} message(s) sent over UDP "
                          "instead, {dropped} dropped", host=host, port=port, sent=len(fallback),
                          dropped=dropped)

        d.addCallbacks(connected, failed)

    def _tls_failed(self, host: str, port: int, waiting: list[tuple[bytes, bytes | None, Request | None]],
                    failure: Any) -> None:
        """A TLS connection we opened failed (connect, handshake, the server's certificate
        or name): each request that waited for it is answered with a local 503, as if the
        next hop had sent it (RFC 3261 §8.1.3.1), so that its transaction ends now."""
        self._count("tls-connect-failed")
        reason = failure.getErrorMessage() if hasattr(failure, "getErrorMessage") else str(failure)
        self.log.warn("TLS connection to {host}:{port} failed ({reason}); {n} request(s) answered 503 locally",
                      host=host, port=port, reason=reason, n=len(waiting))
        peer = Peer("tls", host, port, 0)
        for _, _, request in waiting:
            if request is None or request.method == "ACK":
                continue
            try:
                response = make_response(request, 503, "Service Unavailable",
                                         headers=[("Warning", b'399 sbc "TLS connection to next hop failed"')])
                self.endpoint.receive_message(response, peer, self.clock.seconds())
            except Exception:
                self.log.failure("answering a request locally after a TLS failure raised")
        self.flush()

    # -- bookkeeping -----------------------------------------------------------------------

    def _count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1

    def _log_notice(self, notice: Notice) -> None:
        self._count(notice.reason)
        if self.admission is not None:
            self.admission.notice(notice.reason, notice.peer.host)
        self._notice_log.emit(
            notice.reason,
            "{reason} from {transport}:{host}:{port}: {detail}",
            reason=notice.reason,
            transport=notice.peer.transport,
            host=notice.peer.host,
            port=notice.peer.port,
            detail=notice.detail,
            status=notice.status,
        )


class TrafficObserver(TypingProtocol):
    """Told of the SIP traffic through a :class:`SipDriver` (``add_observer``)."""

    def message_in(self, message: bytes | Request | Response) -> None:
        """A datagram (bytes, before parsing) or a framed stream message arrived (admitted)."""

    def invalid_in(self) -> None:
        """A stream message could not be parsed."""

    def messages_out(self, items: list[tuple[Request | Response, Peer]]) -> None:
        """A transaction user's output batch (the same object again is a retransmission)."""

    def bytes_out(self, items: list[tuple[bytes, Peer]]) -> None:
        """The endpoint's own answers (stateless responses), as bytes."""


class TransactionUser(TypingProtocol):
    """What the driver needs of a sans-IO TU: its output and its timers."""

    def messages_to_send(self) -> list[tuple[Request | Response, Peer]]: ...

    def next_deadline(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


class ConnectTcp(TypingProtocol):
    def __call__(self, host: str, port: int) -> "Deferred[SipStreamProtocol]": ...


def _via_transport(request: Request, transport: str) -> Request:
    """Return ``request`` with its top Via's transport changed."""
    return with_top_via(request, evolve(request.top_via, transport=transport))


if TYPE_CHECKING:  # pragma: no cover
    from twisted.internet.defer import Deferred
