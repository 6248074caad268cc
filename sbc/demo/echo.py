# -*- test-case-name: tests.test_demo_agent -*-
"""
RTP echo for the demo agent host: one UDP port per call, every packet sent back.

Each datagram goes back to the address and port it came from, whatever the SDP said
("latching" on the source, as a media relay behind NAT must): the echo works for a caller
behind a NAT or behind the SBC's relay without reading any SDP.  Ports come from a small
configurable range (even ports first, as RTP prefers; odd ones if the evens run out) and are
closed when the call ends.  This and the SIP transport are the only parts of the demo that
own sockets.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from sbc.demo.agent import MediaAddress

__all__ = ["EchoProtocol", "RtpEcho", "parse_port_range"]


def parse_port_range(text: str) -> tuple[int, int]:
    """``"20000-20999"`` -> ``(20000, 20999)``; ValueError for anything else."""
    low_text, sep, high_text = text.strip().partition("-")
    if not sep:
        raise ValueError(f"expected LOW-HIGH, got {text!r}")
    low, high = int(low_text), int(high_text)
    if not (1 <= low <= high <= 65535):
        raise ValueError(f"bad port range {text!r}: need 1 <= LOW <= HIGH <= 65535")
    return low, high


class EchoProtocol(DatagramProtocol):
    """Sends every datagram back to its source."""

    noisy = False  # one socket per call: no "starting on"/"stopping" log lines

    def __init__(self) -> None:
        self.packets = 0
        self.last_source: tuple[str, int] | None = None

    def datagramReceived(self, data: bytes, addr: Any) -> None:  # type: ignore[override]
        self.packets += 1
        self.last_source = (addr[0], addr[1])
        try:
            self.transport.write(data, addr)
        except OSError:
            pass  # an ICMP error from an earlier send; the next packet tries again


class RtpEcho:
    """A :class:`~sbc.demo.agent.MediaPorts` that opens a real echo socket per call.

    :param reactor: provides ``listenUDP``.
    :param ports: the inclusive range to take ports from.
    """

    log = Logger()

    def __init__(self, reactor: Any, ports: tuple[int, int] = (20000, 20999)) -> None:
        self.reactor = reactor
        low, high = ports
        self._candidates = ([p for p in range(low, high + 1) if p % 2 == 0]
                            + [p for p in range(low, high + 1) if p % 2 == 1])
        self._next = 0
        self._open: dict[str, tuple[Any, EchoProtocol, int]] = {}
        self._used: set[int] = set()

    def __len__(self) -> int:
        return len(self._open)

    def open(self, key: str, host: str) -> MediaAddress | None:
        if key in self._open:
            port = self._open[key][2]
            return MediaAddress(host, port)
        tries = len(self._candidates)
        for _ in range(tries):
            port = self._candidates[self._next]
            self._next = (self._next + 1) % tries
            if port in self._used:
                continue
            proto = EchoProtocol()
            try:
                listening = self.reactor.listenUDP(port, proto, interface=host)
            except CannotListenError:
                continue  # taken by something else: try the next one
            self._open[key] = (listening, proto, port)
            self._used.add(port)
            return MediaAddress(host, port)
        self.log.warn("no free RTP port left in the range ({n} ports)", n=tries)
        return None

    def close(self, key: str) -> None:
        entry = self._open.pop(key, None)
        if entry is None:
            return
        listening, proto, port = entry
        self._used.discard(port)
        self.log.debug("RTP echo on port {port} closed after {n} packets", port=port,
                       n=proto.packets)
        listening.stopListening()

    def close_all(self) -> None:
        for key in list(self._open):
            self.close(key)

    def packets(self, key: str) -> int:
        entry = self._open.get(key)
        return entry[1].packets if entry is not None else 0
