# -*- test-case-name: tests.test_transport -*-
"""SIP over UDP: one datagram is one message (RFC 3261 §18.3)."""

from __future__ import annotations

import socket

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from sbc.sip.endpoint import Peer

from .driver import SipDriver

__all__ = ["SipDatagramProtocol", "MAX_DATAGRAM"]

#: Receive buffer asked for on each UDP socket (the kernel may grant less).
RECEIVE_BUFFER = 4 * 1024 * 1024

#: Listen with this maximum: Twisted's default of 8,192 would truncate large INVITEs.
MAX_DATAGRAM = 65_535

# Datagrams that are only whitespace: RFC 5626 keep-alives sent over UDP by some phones, and
# NAT-binding refreshes.  They need no answer.
_WHITESPACE = frozenset(b" \t\r\n")


class SipDatagramProtocol(DatagramProtocol):
    log = Logger()

    def __init__(self, driver: SipDriver) -> None:
        self.driver = driver
        self.conn = 0
        self.local_port: int | None = None
        self.is_ipv6 = False
        self._ip_hosts: set[str] = set()

    def startProtocol(self) -> None:
        host = self.transport.getHost()
        self.local_port = host.port
        self.is_ipv6 = ":" in getattr(host, "host", "")
        self.conn = self.driver.add_udp(self)
        self._grow_receive_buffer()

    def _grow_receive_buffer(self) -> None:
        """Ask for a large socket receive buffer, so a burst is queued rather than dropped.

        The kernel caps SO_RCVBUF at net.core.rmem_max; the size granted is logged so an
        operator can raise that limit.
        """
        sock = getattr(self.transport, "socket", None)
        if sock is None:
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        except OSError as e:
            self.log.warn("could not set UDP receive buffer: {error}", error=e)
            return
        self.log.info("UDP receive buffer on port {port}: {size} bytes",
                      port=self.local_port, size=granted)

    def stopProtocol(self) -> None:
        self.driver.remove_udp(self.conn)

    def _is_ip(self, host: str) -> bool:
        """``host`` is an IP address of our socket's family (checked once per host), so that
        ``sendto`` never resolves a name; anything else goes through Twisted's ``write``."""
        known = self._ip_hosts
        if host in known:
            return True
        ok = isIPv6Address(host) if self.is_ipv6 else isIPAddress(host)
        if ok:
            if len(known) >= 4096:
                known.clear()
            known.add(host)
        return ok

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        if len(data) <= 4 and not (set(data) - _WHITESPACE):
            return
        host, port = addr[0], addr[1]
        # Admission before any parsing or state: source allowlist, bans, request rate.
        admission = self.driver.admission
        if admission is not None and not admission.datagram(data, host, port):
            return
        self.driver.datagram_received(data, Peer("udp", host, port, self.conn))

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        # Straight to the socket: Twisted's ``Port.write`` checks the address's syntax on every
        # datagram, and ours always come from a parsed peer or a resolved target.  Its error
        # handling is kept: a full send buffer (EAGAIN/ENOBUFS) or an ICMP error loses one
        # datagram, which SIP's retransmissions cover.
        sock = getattr(self.transport, "socket", None)
        try:
            if sock is not None and self._is_ip(addr[0]):
                sock.sendto(data, addr)
            else:
                self.transport.write(data, addr)
        except OSError as e:
            # ICMP errors surface here on some platforms; one lost datagram is not fatal.
            self.log.info("UDP send to {host}:{port} failed: {error}", host=addr[0],
                          port=addr[1], error=e)
