# -*- test-case-name: tests.test_transport -*-
"""
SIP over stream transports (TCP and TLS): Content-Length framing, RFC 5626 CRLF keep-alives,
size limits and idle timeouts.  The framing itself is the sans-IO ``StreamFramer``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from sbc.sip.endpoint import Peer
from sbc.sip.errors import MessageTooLarge, SipParseError
from sbc.sip.message import Response, salvage_error_response
from sbc.sip.parse import KeepAlive, ParseFailure, StreamFramer

from .driver import SipDriver

__all__ = ["SipStreamProtocol", "SipStreamFactory"]


@implementer(IHandshakeListener)
class SipStreamProtocol(Protocol, TimeoutMixin):
    """One TCP or TLS connection.

    TLS, accepted (``server_tls``, a :class:`~sbc.transport.tls.ServerTls`): when the
    handshake completes the client's certificate is judged (mutual TLS per trunk); a refused
    client's connection is aborted before any SIP is read (counted ``tls-client-refused``).
    ``tls_trunks`` are the trunks the certificate satisfies.  TLS, opened by us
    (``client=True``): the connection is offered for requests only once the handshake (and
    the server's certificate and name) succeeded; ``handshake`` fires then, or fails with
    the reason the connection was lost.
    """

    log = Logger()

    def __init__(self, driver: SipDriver, transport_name: str, *, max_message: int,
                 idle_timeout: float | None, server_tls: Any = None, client: bool = False) -> None:
        self.driver = driver
        self.server_tls = server_tls
        self.client_tls = client and transport_name == "tls"
        #: Trunks whose certificate requirements this connection's client satisfies.
        self.tls_trunks: frozenset[str] = frozenset()
        self.handshake: Deferred[SipStreamProtocol] | None = Deferred() if self.client_tls else None
        # Accepted TLS: nothing is read before the client's certificate was judged.
        self._unchecked = server_tls is not None
        #: The source allowlist is asked after the handshake, not at accept (a certificate
        #: named in a trunk's match_tls_names admits any source).
        self.source_deferred = False
        self.transport_name = transport_name
        self.framer = StreamFramer(max_message=max_message)
        self.idle_timeout = idle_timeout
        self.peer: Peer | None = None
        self.conn = 0
        self.local_port: int | None = None
        self._closing = False

    def connectionMade(self) -> None:
        remote = self.transport.getPeer()
        self.local_port = self.transport.getHost().port
        self.peer = Peer(self.transport_name, remote.host, remote.port, 0)
        self.conn = self.driver.add_stream(self, reachable=not self.client_tls)
        self.peer = Peer(self.transport_name, remote.host, remote.port, self.conn)
        self.setTimeout(self.idle_timeout)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.setTimeout(None)
        self.driver.remove_stream(self.conn)
        handshake, self.handshake = self.handshake, None
        if handshake is not None:
            handshake.errback(reason if reason is not None else Failure(ConnectionError("connection lost")))

    def handshakeCompleted(self) -> None:
        if self.client_tls:
            handshake, self.handshake = self.handshake, None
            self.driver.stream_ready(self)
            if handshake is not None:
                handshake.callback(self)
            return
        if self.server_tls is None or self.peer is None:
            return
        try:
            verdict = self.server_tls.check_client(self.peer.host, self.transport.getHandle())
        except Exception:
            self.log.failure("judging the TLS client certificate of {host} failed", host=self.peer.host)
            verdict = None
        if verdict is None or not verdict.admitted:
            self._closing = True
            self.driver.tls_refused(self.peer.host, self.peer.port,
                                    verdict.reason if verdict is not None else "internal error")
            self.transport.abortConnection()
            return
        admission = self.driver.admission
        if self.source_deferred and not verdict.trunks and admission is not None and \
                not admission.source_admitted(self.transport_name, self.peer.host, self.peer.port):
            # Let through to the handshake for match_tls_names; no certificate names a trunk.
            self._closing = True
            self.transport.abortConnection()
            return
        self.tls_trunks = verdict.trunks
        self._unchecked = False

    def timeoutConnection(self) -> None:
        self.log.info("closing idle {transport} connection from {host}:{port}",
                      transport=self.transport_name, host=self.peer.host if self.peer else "?",
                      port=self.peer.port if self.peer else 0)
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._closing or self._unchecked:
            return
        self.resetTimeout()
        try:
            items = self.framer.feed(data)
        except SipParseError as e:
            self._framing_error(e)
            return
        assert self.peer is not None
        admission = self.driver.admission
        for item in items:
            if isinstance(item, KeepAlive):
                if item.pong_required:
                    self.transport.write(b"\r\n")
            elif admission is not None and not isinstance(item, Response) and not admission.stream_request(
                    self.transport_name, self.peer.host, self.peer.port):
                # Over its rate: the request is dropped.  Banned meanwhile: the connection goes.
                guard = admission.guard
                if guard is not None and guard.banned(self.peer.host, self.driver.clock.seconds()):
                    self._closing = True
                    self.transport.abortConnection()
                    return
            elif isinstance(item, ParseFailure):
                self.driver.parse_failure(item.data, item.error, self.peer)
            else:
                self.driver.message_received(item, self.peer)

    def _framing_error(self, error: SipParseError) -> None:
        """The byte stream can no longer be framed: answer if we can, then close."""
        assert self.peer is not None
        self._closing = True
        status = 513 if isinstance(error, MessageTooLarge) else error.status
        head = bytes(self.framer.pending()[:8192]) if hasattr(self.framer, "pending") else b""
        reply = salvage_error_response(head, status, error.reason) if head else None
        self.log.info("{transport} connection from {host}:{port} closed: {reason}",
                      transport=self.transport_name, host=self.peer.host, port=self.peer.port,
                      reason=error.reason)
        self.driver._count("framing-error")
        if reply is not None:
            self.transport.write(reply)
        self.transport.loseConnection()

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self._closing:
            self.transport.write(data)


class SipStreamFactory(Factory):
    """Builds stream protocols for one listener; refuses connections over the limit."""

    log = Logger()

    def __init__(self, driver: SipDriver, transport_name: str, *, max_message: int = 65_535,
                 idle_timeout: float | None = 300.0, max_connections: int = 1024,
                 server_tls: Any = None, client: bool = False) -> None:
        self.driver = driver
        self.server_tls = server_tls
        self.client = client
        self.transport_name = transport_name
        self.max_message = max_message
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections

    def buildProtocol(self, addr: object) -> Protocol | None:  # type: ignore[override]
        admission = self.driver.admission
        # TLS listeners whose trunks admit clients by certificate name see every source
        # through the handshake; the allowlist is asked once the certificate is known.
        by_name = self.server_tls is not None and getattr(self.server_tls, "admits_by_name", False)
        if admission is not None and not by_name and not admission.source_admitted(
                self.transport_name, getattr(addr, "host", ""), getattr(addr, "port", 0)):
            # Refused before any byte is read: plain TCP by building no protocol at all (the
            # reactor closes the socket); TLS wraps whatever we return, so it gets a protocol
            # that aborts the connection as it is made, before the handshake.
            return _Refused() if self.transport_name == "tls" else None
        if self.driver.stream_count >= self.max_connections:
            self.driver._count("connection-limit")
            self.log.warn("refusing {transport} connection from {addr}: limit of {n} reached",
                          transport=self.transport_name, addr=addr, n=self.max_connections)
            return None
        proto = SipStreamProtocol(self.driver, self.transport_name, max_message=self.max_message,
                                  idle_timeout=self.idle_timeout, server_tls=self.server_tls,
                                  client=self.client)
        proto.source_deferred = by_name
        return proto


class _Refused(Protocol):
    """A connection refused by admission: aborted as soon as it exists."""

    def connectionMade(self) -> None:
        self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:  # pragma: no cover - aborted before
        pass
