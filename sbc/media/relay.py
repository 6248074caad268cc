# -*- test-case-name: tests.test_media_relay -*-
"""The built-in media engine: an RTP/RTCP relay on UDP sockets (Twisted).

Each call gets two port pairs from ``[port_min, port_max]`` on the bind address: one pair
(RTP on the even port, RTCP on the next odd one) faces side ``"a"``, the other faces side
``"b"``.  Whatever arrives on the ports facing one side leaves from the ports facing the other
side, toward that side's peer.

The per-packet path (`_Leg.rtp_received`) does only what the call needs: SRTP unprotect when
the sending side speaks SRTP, RFC 4733 decoding when the sending side has DTMF on and the payload
type is one of its telephone-event types (the rest of the packet is not parsed), VAD and in-band
detection only while on, SRTP protect when the receiving side speaks SRTP, one ``sendto`` from
the socket facing the receiving side.  Its Python part costs about 0.4 us per packet (0.6 us
with DTMF on); the rest is the two system calls.

Sockets: on Linux every relay socket sits in one private epoll set, which the reactor watches as
a single reader (`_EpollSockets`): with thousands of sockets at 50 packets/s each, the
reactor's per-descriptor dispatch cost more than the relaying.  Elsewhere each socket is a
``listenUDP`` DatagramProtocol (`_ReactorSockets`).  Both hand ``(data, addr)`` to the leg.

Symmetric RTP ("latching"): a side's peer address starts as the one signalled in its SDP and
follows the source of what the side really sends (NAT).  With SRTP only packets that
authenticate latch, and they may re-latch at any time.  On plain RTP the first packet latches,
and a later change of source is accepted only once the latched source has gone quiet for a
full tick of the relay's timer (one second) -- a NAT rebinding -- so that a stranger who
guesses the port cannot take the media over while the real peer still sends ("RTP bleed");
packets from other sources meanwhile are dropped (counted as ``foreign``).  ``strict_source`` turns latching off and drops
anything not from the signalled address and port.

Media timeout: one `LoopingCall` per relay (not per packet, not per call) compares each
session's RTP receive counters with the previous tick; a session whose counters have not moved
for ``media_timeout`` seconds -- once it has been answered (not counting ``provisional``
answers: early media in a 18x may stay silent while the call rings), and not while either side
holds -- is reported once to its listener's ``media_timeout``.
"""

from __future__ import annotations

import secrets
import select
import socket
from collections import deque
from typing import Any, Callable

from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from sbc.media.core.engine import MediaError, MediaListener, Side, SideOptions
from sbc.media.core.rewrite import Negotiator, RelayPorts, SideMedia
from sbc.media.srtp import SrtpEndpoint, SrtpError

__all__ = ["RtpRelay", "RelaySession"]

log = Logger()

_G711 = ("PCMU", "PCMA")


class _Port(DatagramProtocol):
    """One UDP socket of the portable backend; hands every datagram to its leg."""

    def __init__(self, handler: Callable[[bytes, Any], None]) -> None:
        self.datagramReceived = handler  # type: ignore[method-assign]


class _ReactorSockets:
    """Portable backend: one `reactor.listenUDP` port (a DatagramProtocol) per socket."""

    def __init__(self, reactor: Any, address: str) -> None:
        self.reactor = reactor
        self.address = address
        self._ports: dict[int, Any] = {}  # id(socket) -> listening port

    def open(self, port: int) -> Any:
        """A bound socket on ``port``; raises CannotListenError if it is taken."""
        listening = self.reactor.listenUDP(port, _Port(_drop), interface=self.address, maxPacketSize=8192)
        self._ports[id(listening.socket)] = listening
        return listening.socket

    def set_handler(self, sock: Any, handler: Callable[[bytes, Any], None]) -> None:
        self._ports[id(sock)].protocol.datagramReceived = handler

    def close(self, sock: Any) -> defer.Deferred[Any] | None:
        listening = self._ports.pop(id(sock))
        return defer.maybeDeferred(listening.stopListening)  # closes on the next reactor turn


class _EpollSockets:
    """Linux backend: the relay's sockets in a private epoll set, and that epoll set in the
    reactor as one reader.

    With thousands of sockets each seeing 50 datagrams/s, the reactor's per-descriptor
    dispatch (log context, doRead loop ending in an EAGAIN exception) costs more than the
    relaying itself.  Here one reactor wake-up reads one datagram from every ready socket (no
    EAGAIN: epoll said it is readable; what is left is reported again on the next turn, level
    triggered), and a socket closes at once.
    """

    def __init__(self, reactor: Any, address: str) -> None:
        self.reactor = reactor
        self.address = address
        self.family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self._epoll = select.epoll()
        self._handlers: dict[int, tuple[socket.socket, Callable[[bytes, Any], None]]] = {}
        self._reading = False

    # IReadDescriptor
    def fileno(self) -> int:
        return self._epoll.fileno()

    def logPrefix(self) -> str:
        return "RtpRelay"

    def connectionLost(self, reason: object) -> None:
        self._reading = False

    def doRead(self) -> None:
        handlers = self._handlers
        six = self.family == socket.AF_INET6
        for fd, _ in self._epoll.poll(0, 4096):
            entry = handlers.get(fd)
            if entry is None:
                continue
            sock, handler = entry
            try:
                data, addr = sock.recvfrom(8192)
            except OSError:
                continue
            if six:
                addr = addr[:2]
            try:
                handler(data, addr)
            except Exception:  # never let one packet end the reader (the reactor would drop it)
                log.failure("media datagram handler failed")

    def open(self, port: int) -> socket.socket:
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((self.address, port))
        except OSError as e:
            sock.close()
            raise CannotListenError(self.address, port, e) from None
        self._handlers[sock.fileno()] = (sock, _drop)
        self._epoll.register(sock.fileno(), select.EPOLLIN)
        if not self._reading:
            self._reading = True
            self.reactor.addReader(self)
        return sock

    def set_handler(self, sock: socket.socket, handler: Callable[[bytes, Any], None]) -> None:
        self._handlers[sock.fileno()] = (sock, handler)

    def close(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if self._handlers.pop(fd, None) is not None:
            self._epoll.unregister(fd)
        sock.close()
        if not self._handlers and self._reading:
            self._reading = False
            self.reactor.removeReader(self)


class _Leg:
    """The relay's two sockets facing one side, and what it knows about that side's peer."""

    def __init__(self, session: "RelaySession", side: Side, options: SideOptions, rtp_port: int) -> None:
        self.session = session
        self.side = side
        self.options = options
        self.rtp_port = rtp_port
        self.other: _Leg = self  # set by the session
        self.rtp_sock: Any = None
        self.rtcp_sock: Any = None
        # Peer addresses: signalled (from SDP) and current (latched).
        self.signalled: tuple[str, int] | None = None
        self.signalled_rtcp: tuple[str, int] | None = None
        self.peer: tuple[str, int] | None = None
        self.rtcp_peer: tuple[str, int] | None = None
        self.rtcp_latched = False  # rtcp_peer came from a packet, not from SDP or a guess
        self.latched = False  # peer came from a packet (not from SDP)
        self.quiet = True  # no RTP from the peer during the last full timer tick
        self._rx_at_tick = 0
        self.mux = False
        self.strict = options.strict_source
        # Per-packet state.
        self.srtp: SrtpEndpoint | None = None
        self.keys: tuple[Any, Any] | None = None
        self.dtmf_pts: frozenset[int] = frozenset()
        self.decoders: dict[int, Any] = {}
        self.codecs: dict[int, str] = {}
        self.vad: Any = None
        self.inband: Any = None
        # Counters.
        self.rx = 0
        self.rtcp_rx = 0
        self.tx = 0
        self.dropped = 0
        self.auth_failures = 0
        self.latches = 0
        self.foreign = 0
        self.events = 0

    # -- negotiation -----------------------------------------------------------------------------

    def apply(self, media: SideMedia) -> None:
        info = media.info
        if info is None or info.rejected:
            signalled = signalled_rtcp = None
            self.mux = False
        else:
            signalled = (info.address, info.rtp_port) if info.address is not None else None
            signalled_rtcp = (
                (info.rtcp_address, info.rtcp_port) if info.rtcp_address is not None else None
            )
            self.mux = info.rtcp_mux
        if signalled != self.signalled:
            self.signalled = self.peer = signalled
            self.latched = False  # a new address in the SDP: the next packet latches again
        if signalled_rtcp != self.signalled_rtcp:
            self.signalled_rtcp = self.rtcp_peer = signalled_rtcp
            self.rtcp_latched = False
        keys = (media.inbound, media.outbound) if media.srtp else None
        if keys != self.keys:
            if keys is None:
                self.srtp = None
            elif self.srtp is not None and self.keys is not None and self.keys[1] == keys[1]:
                # Only the peer re-keyed: keep our outbound session (its rollover counter).
                self.srtp.update_inbound(keys[0])
            else:
                self.srtp = SrtpEndpoint(keys[0], keys[1])
            self.keys = keys
        self.codecs = media.codec_map()
        if self.options.dtmf:
            from sbc.media.core.rfc4733 import TelephoneEventDecoder

            decoders = {}
            for event in media.telephone_events():
                decoder = self.decoders.get(event.payload_type)
                if decoder is None:
                    decoder = TelephoneEventDecoder(event.payload_type, event.clock_rate)
                decoders[event.payload_type] = decoder
            self.decoders = decoders
            self.dtmf_pts = frozenset(decoders)
        if self.options.inband and self.inband is None:
            from sbc.media.core.goertzel import InbandDtmfDetector

            self.inband = InbandDtmfDetector(8000)

    def set_vad(self, on: bool) -> None:
        if not self.options.vad:
            return
        if on and self.vad is None:
            from sbc.media.core.vad import VoiceActivityDetector

            self.vad = VoiceActivityDetector(self.options.vad_sensitivity)
        elif not on:
            self.vad = None

    # -- the per-packet path ---------------------------------------------------------------------

    def rtp_received(self, data: bytes, addr: Any) -> None:
        try:
            if len(data) < 12:
                if len(data) >= 8 and 192 <= data[1] <= 223:  # a short RTCP packet, muxed
                    self._rtcp(data, addr, True)
                else:
                    self.dropped += 1
                return
            if 192 <= data[1] <= 223:  # RFC 5761 §4: RTCP on the RTP port (rtcp-mux)
                self._rtcp(data, addr, True)
                return
            if self.strict:
                if addr != self.signalled:
                    self.dropped += 1
                    return
            srtp = self.srtp
            if srtp is not None:
                clear = srtp.unprotect_rtp(data)
                if clear is None:
                    self.auth_failures += 1
                    self.dropped += 1
                    return
                data = clear
            if addr != self.peer and not self.strict:
                if self.latched and srtp is None and not self.quiet:
                    # Plain RTP from a stranger while the latched peer still sends.
                    self.foreign += 1
                    self.dropped += 1
                    return
                self.peer = addr
                self.latched = True
                self.quiet = False
                self.latches += 1
                if not self.rtcp_latched:
                    # Until the side sends RTCP, guess it comes from beside its RTP (NAT).
                    self.rtcp_peer = (addr[0], addr[1] + 1)
            self.rx += 1
            if (data[1] & 0x7F) in self.dtmf_pts:
                if self._telephone_event(data):
                    return
            elif self.vad is not None or self.inband is not None:
                self._audio(data)
            other = self.other
            target = other.peer
            if target is None:
                self.dropped += 1
                return
            if other.srtp is not None:
                data = other.srtp.protect_rtp(data)
            other.rtp_sock.sendto(data, target)
            self.tx += 1
        except (SrtpError, OSError):  # will not protect / could not send: drop, no log flood
            self.dropped += 1
        except Exception:
            self.dropped += 1
            log.failure("RTP from {peer} on call {call_id} side {side} dropped",
                        peer=addr, call_id=self.session.call_id, side=self.side)

    def rtcp_received(self, data: bytes, addr: Any) -> None:
        try:
            self._rtcp(data, addr, False)
        except (SrtpError, OSError):  # will not protect / could not send: drop, no log flood
            self.dropped += 1
        except Exception:
            self.dropped += 1
            log.failure("RTCP from {peer} on call {call_id} side {side} dropped",
                        peer=addr, call_id=self.session.call_id, side=self.side)

    def _rtcp(self, data: bytes, addr: Any, muxed: bool) -> None:
        if self.strict:
            if addr != (self.signalled if muxed else self.signalled_rtcp):
                self.dropped += 1
                return
        srtp = self.srtp
        if srtp is not None:
            clear = srtp.unprotect_rtcp(data)
            if clear is None:
                self.auth_failures += 1
                self.dropped += 1
                return
            data = clear
        if not self.strict and not muxed and (addr != self.rtcp_peer or not self.rtcp_latched):
            self.rtcp_peer = addr
            self.rtcp_latched = True
        self.rtcp_rx += 1
        other = self.other
        if other.mux:
            target, sock = other.peer, other.rtp_sock
        else:
            target, sock = other.rtcp_peer, other.rtcp_sock
        if target is None:
            self.dropped += 1
            return
        if other.srtp is not None:
            data = other.srtp.protect_rtcp(data)
        sock.sendto(data, target)
        self.tx += 1

    def _telephone_event(self, data: bytes) -> bool:
        """Feed a telephone-event packet to the decoder; True if it must not be forwarded."""
        from sbc.media.core.rtp import parse_rtp

        packet = parse_rtp(data)
        if packet is None:
            self.dropped += 1
            return True
        decoder = self.decoders.get(packet.payload_type)
        if decoder is not None:
            now = self.session.relay.clock.seconds()
            for key in decoder.feed_all(packet, now):
                self.events += 1
                self.session.keypress(key)
        if self.options.pass_tones:
            return False
        self.dropped += 1
        return True

    def _audio(self, data: bytes) -> None:
        from sbc.media.core.rtp import parse_rtp

        packet = parse_rtp(data)
        if packet is None:
            return
        codec = self.codecs.get(packet.payload_type)
        if codec not in _G711:
            return
        now = self.session.relay.clock.seconds()
        if self.vad is not None and self.vad.feed(packet.payload, codec, now):
            self.session.speech(now)
        if self.inband is not None:
            key = self.inband.feed_payload(packet.payload, codec, now)
            if key is not None:
                self.events += 1
                self.session.keypress(key)


class RelaySession:
    """One call's media through the relay (a `MediaSession`)."""

    def __init__(self, relay: "RtpRelay", call_id: str, options: dict[Side, SideOptions],
                 ports: dict[Side, int], listener: MediaListener) -> None:
        self.relay = relay
        self.call_id = call_id
        self.listener = listener
        self.ports = ports
        self.legs: dict[Side, _Leg] = {side: _Leg(self, side, options[side], ports[side]) for side in ("a", "b")}
        self.legs["a"].other = self.legs["b"]
        self.legs["b"].other = self.legs["a"]
        advertise = relay.advertise
        self.negotiator = Negotiator(
            options,
            {side: RelayPorts(advertise, port, port + 1) for side, port in ports.items()},
            str(secrets.randbelow(10**12) + 1),
        )
        self.released = False
        self.answered = False
        self.timed_out = False
        self.last_activity = relay.clock.seconds()
        self._seen = (0, 0)
        self._on_hold = False

    # -- MediaSession ----------------------------------------------------------------------------

    def offer(self, from_side: Side, sdp: bytes) -> bytes:
        self._check()
        result = self.negotiator.offer(from_side, sdp)
        self._apply()
        return result

    def answer(self, from_side: Side, sdp: bytes, *, provisional: bool = False) -> bytes:
        self._check()
        result = self.negotiator.answer(from_side, sdp)
        if not self.answered and not provisional:
            self.answered = True
            self.last_activity = self.relay.clock.seconds()
        self._apply()
        return result

    def set_vad(self, on: bool) -> None:
        for leg in self.legs.values():
            leg.set_vad(on)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.relay._release(self)

    # -- internals -------------------------------------------------------------------------------

    def _check(self) -> None:
        if self.released:
            raise MediaError(500, "media session already released")

    def _apply(self) -> None:
        was_on_hold = self._on_hold
        for side, leg in self.legs.items():
            leg.apply(self.negotiator.sides[side])
        self._on_hold = self.negotiator.on_hold
        if was_on_hold and not self._on_hold:
            self.last_activity = self.relay.clock.seconds()  # resumed: the timeout starts over

    def keypress(self, key: Any) -> None:
        try:
            self.listener.media_keypress(self.call_id, key)
        except Exception:
            log.failure("media listener failed on a keypress of call {call_id}", call_id=self.call_id)

    def speech(self, now: float) -> None:
        try:
            self.listener.media_speech(self.call_id, now)
        except Exception:
            log.failure("media listener failed on speech of call {call_id}", call_id=self.call_id)

    def tick(self, now: float, timeout: float) -> None:
        """Called by the relay's timer: track RTP activity (per side, for re-latching), report
        a media timeout once."""
        for leg in self.legs.values():
            leg.quiet = leg.rx == leg._rx_at_tick
            leg._rx_at_tick = leg.rx
        seen = (self.legs["a"].rx, self.legs["b"].rx)
        if seen != self._seen:
            self._seen = seen
            self.last_activity = now
            return
        if self._on_hold:
            self.last_activity = now
            return
        if self.timed_out or not self.answered or timeout <= 0:
            return
        if now - self.last_activity >= timeout:
            self.timed_out = True
            try:
                self.listener.media_timeout(self.call_id, now)
            except Exception:
                log.failure("media listener failed on the media timeout of call {call_id}",
                            call_id=self.call_id)

    def stats(self) -> dict[str, Any]:
        return {
            side: {
                "rtp_port": leg.rtp_port,
                "peer": leg.peer,
                "received": leg.rx,
                "rtcp_received": leg.rtcp_rx,
                "sent_to_other": leg.tx,
                "dropped": leg.dropped,
                "srtp": leg.srtp is not None,
                "auth_failures": leg.auth_failures,
                "latches": leg.latches,
                "foreign": leg.foreign,
                "dtmf_events": leg.events,
            }
            for side, leg in self.legs.items()
        }


class RtpRelay:
    """The built-in `MediaEngine`: an RTP relay on this host's UDP ports.

    ``address``: the IP literal the sockets bind to; ``advertise``: the IP literal written into
    SDP (the same, or the public address behind 1:1 NAT).  ``port_min`` must be even; every
    call takes four consecutive-pair ports.  ``clock`` (default: the reactor) drives the media
    timeout and the ``now`` of DTMF and VAD events.  ``use_epoll`` (default: where available)
    picks the socket backend: one private epoll set read by the reactor as a single reader
    (Linux), or one ``listenUDP`` DatagramProtocol per socket (anywhere).
    """

    def __init__(self, reactor: Any, address: str, advertise: str, port_min: int, port_max: int,
                 media_timeout: float = 60.0, clock: Any = None, *, use_epoll: bool | None = None) -> None:
        if port_min % 2:
            raise ValueError("port_min must be even")
        if port_max - port_min < 3:
            raise ValueError("the port range must hold at least two RTP/RTCP pairs")
        self.reactor = reactor
        self.address = address
        self.advertise = advertise
        self.port_min = port_min
        self.port_max = port_max
        self.media_timeout = media_timeout
        self.clock = clock if clock is not None else reactor
        if use_epoll is None:
            use_epoll = hasattr(select, "epoll") and hasattr(reactor, "addReader")
        self._sockets: Any = (_EpollSockets if use_epoll else _ReactorSockets)(reactor, address)
        # Even RTP ports whose RTCP port (+1) is in range too; freed ports go to the back.
        self._free: deque[int] = deque(range(port_min, port_max, 2))
        self._capacity = len(self._free)
        self.sessions: dict[int, RelaySession] = {}
        self._timer: LoopingCall | None = None
        self._closing: set[defer.Deferred[Any]] = set()
        self._closed_counters = {"received": 0, "relayed": 0, "dropped": 0, "auth_failures": 0,
                                 "dtmf_events": 0, "a_to_b": 0, "b_to_a": 0}
        self.allocated = 0
        self.refused = 0
        self.timeouts = 0

    # -- MediaEngine -----------------------------------------------------------------------------

    def allocate(self, call_id: str, a: SideOptions, b: SideOptions, listener: MediaListener) -> RelaySession:
        pairs: list[tuple[int, tuple[Any, Any]]] = []
        try:
            for _ in ("a", "b"):
                pairs.append(self._open_pair())
        except MediaError:
            for port, pair in pairs:
                self._close_pair(port, pair)
            self.refused += 1
            raise
        ports: dict[Side, int] = {"a": pairs[0][0], "b": pairs[1][0]}
        session = RelaySession(self, call_id, {"a": a, "b": b}, ports, listener)
        sockets = self._sockets
        for (_, (rtp, rtcp)), leg in zip(pairs, (session.legs["a"], session.legs["b"])):
            leg.rtp_sock, leg.rtcp_sock = rtp, rtcp
            sockets.set_handler(rtp, leg.rtp_received)
            sockets.set_handler(rtcp, leg.rtcp_received)
        self.sessions[id(session)] = session
        self.allocated += 1
        self._start_timer()
        return session

    def _open_pair(self) -> tuple[int, tuple[Any, Any]]:
        """Bind the next free even port and the odd one above it.  A port some other program
        holds is skipped (and tried again later, from the back of the free list)."""
        sockets = self._sockets
        for _ in range(len(self._free)):
            port = self._free.popleft()
            rtp = None
            try:
                rtp = sockets.open(port)
                rtcp = sockets.open(port + 1)
            except CannotListenError:
                if rtp is not None:
                    self._track(sockets.close(rtp))
                self._free.append(port)
                continue
            return port, (rtp, rtcp)
        raise MediaError(503, "no media ports left")

    def _close_pair(self, port: int, pair: tuple[Any, Any]) -> None:
        """Close both sockets; the port goes back to the free list once they are closed (at
        once with epoll; on the next reactor turn with listenUDP)."""
        closing = []
        for sock in pair:
            try:
                result = self._sockets.close(sock)
            except Exception:
                log.failure("closing media port {port}", port=port)
                continue
            if result is not None:
                closing.append(result)
        if not closing:
            self._free.append(port)
            return
        done = self._track(defer.DeferredList(closing, consumeErrors=True))
        done.addCallback(lambda _: self._free.append(port))

    def _track(self, d: defer.Deferred[Any] | None) -> defer.Deferred[Any]:
        if d is None:
            return defer.succeed(None)
        self._closing.add(d)

        def done(result: object) -> object:
            self._closing.discard(d)
            return result

        return d.addBoth(done)

    def when_closed(self) -> defer.Deferred[None]:
        """A Deferred that fires once every socket being closed now is closed (and its port is
        back in the free list)."""
        d: defer.Deferred[Any] = defer.DeferredList(list(self._closing), consumeErrors=True)
        return d.addCallback(lambda _: None)

    def _release(self, session: RelaySession) -> None:
        if self.sessions.pop(id(session), None) is None:
            return
        for side, leg in session.legs.items():
            self._closed_counters["received"] += leg.rx + leg.rtcp_rx
            self._closed_counters["relayed"] += leg.tx
            self._closed_counters["dropped"] += leg.dropped
            self._closed_counters["auth_failures"] += leg.auth_failures
            self._closed_counters["dtmf_events"] += leg.events
            self._closed_counters["a_to_b" if side == "a" else "b_to_a"] += leg.tx
            self._close_pair(leg.rtp_port, (leg.rtp_sock, leg.rtcp_sock))
            leg.rtp_sock = leg.rtcp_sock = None
        if not self.sessions:
            self._stop_timer()

    # -- media timeout ---------------------------------------------------------------------------

    def _start_timer(self) -> None:
        # The timer runs even with the media timeout off: it also tells re-latching when a
        # side's source went quiet.
        if self._timer is not None:
            return
        timer = LoopingCall(self._tick)
        timer.clock = self.clock
        self._timer = timer
        interval = min(1.0, self.media_timeout) if self.media_timeout > 0 else 1.0
        timer.start(interval, now=False).addErrback(
            lambda f: log.failure("media timeout timer stopped", f)
        )

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.running:
            timer.stop()

    def _tick(self) -> None:
        now = self.clock.seconds()
        for session in list(self.sessions.values()):
            before = session.timed_out
            session.tick(now, self.media_timeout)
            if session.timed_out and not before:
                self.timeouts += 1

    # -- operations ------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        totals = dict(self._closed_counters)
        for session in self.sessions.values():
            for leg in session.legs.values():
                totals["received"] += leg.rx + leg.rtcp_rx
                totals["relayed"] += leg.tx
                totals["dropped"] += leg.dropped
                totals["auth_failures"] += leg.auth_failures
                totals["dtmf_events"] += leg.events
            totals["a_to_b"] += session.legs["a"].tx
            totals["b_to_a"] += session.legs["b"].tx
        return {
            "sessions": len(self.sessions),
            "ports_in_use": 4 * len(self.sessions),
            "ports_free": 2 * len(self._free),
            "capacity_calls": self._capacity // 2,
            "allocated": self.allocated,
            "refused": self.refused,
            "timeouts": self.timeouts,
            "packets_received": totals["received"],
            "packets_relayed": totals["relayed"],
            "packets_dropped": totals["dropped"],
            "srtp_auth_failures": totals["auth_failures"],
            "dtmf_events": totals["dtmf_events"],
            "a_to_b": totals["a_to_b"],  # packets relayed from side a's peer to side b's
            "b_to_a": totals["b_to_a"],
        }

    def close(self) -> defer.Deferred[None]:
        """Release every session and stop the timer; the Deferred fires once every socket is
        closed (a service's stopService can return it)."""
        for session in list(self.sessions.values()):
            session.release()
        self._stop_timer()
        return self.when_closed()


def _drop(data: bytes, addr: Any) -> None:
    """Datagrams that arrive before a socket is wired to its leg."""
