# -*- test-case-name: tests.test_media_relay -*-
"""Tests for sbc.media.relay: the RTP relay on real UDP sockets on 127.0.0.1.

Peers are small DatagramProtocols.  Nothing sleeps: every wait is a Deferred that fires when a
peer has received what it waits for, with a timeout.  Negative checks ("X was not forwarded")
send X first and a marker packet after it from the same socket, wait for the marker, then
look: the relay handles datagrams of one socket in order.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from pylibsrtp import Policy, Session
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sbc.media.core.engine import MediaError, SideOptions
from sbc.media.core.rfc4733 import Keypress, event_payload
from sbc.media.core.rtp import build_rtp
from sbc.media.core.sdes import SrtpKeying, crypto_value, new_keying, parse_crypto_value
from sbc.media.relay import RtpRelay
from sbc.sip.sdp import parse_sdp
from tests.media_strategies import g711_frames, noise, speech_like, tone

TIMEOUT = 3.0
HOST = "127.0.0.1"


def port_base(slot: int) -> int:
    """A port range of this process, away from other test runs on the same host."""
    return 40000 + (os.getpid() % 200) * 100 + slot * 10


class Listener:
    def __init__(self) -> None:
        self.keys: list[tuple[str, Keypress]] = []
        self.speech: list[tuple[str, float]] = []
        self.timeouts: list[tuple[str, float]] = []

    def media_keypress(self, call_id: str, key: Keypress) -> None:
        self.keys.append((call_id, key))

    def media_speech(self, call_id: str, now: float) -> None:
        self.speech.append((call_id, now))

    def media_timeout(self, call_id: str, now: float) -> None:
        self.timeouts.append((call_id, now))


class Peer(DatagramProtocol):
    """A UDP endpoint that records what it receives; `wait(n)` fires once it has n datagrams."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, Any]] = []
        self._waiters: list[tuple[int, Deferred[list[tuple[bytes, Any]]]]] = []

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.received.append((data, addr))
        still = []
        for n, d in self._waiters:
            if len(self.received) >= n:
                d.callback(self.received)
            else:
                still.append((n, d))
        self._waiters = still

    def wait(self, n: int = 1) -> Deferred[list[tuple[bytes, Any]]]:
        if len(self.received) >= n:
            return defer.succeed(self.received)
        d: Deferred[list[tuple[bytes, Any]]] = Deferred()
        self._waiters.append((n, d))
        d.addTimeout(TIMEOUT, reactor)
        return d

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.write(data, addr)

    @property
    def port(self) -> int:
        return self.transport.getHost().port


def offer_sdp(rtp: int, rtcp: int, *, srtp: SrtpKeying | None = None, te: int = 100,
              mux: bool = False, direction: str = "sendrecv") -> bytes:
    lines = [
        "v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
        f"m=audio {rtp} RTP/{'SAVP' if srtp else 'AVP'} 0 {te}",
        "a=rtpmap:0 PCMU/8000", f"a=rtpmap:{te} telephone-event/8000", f"a=fmtp:{te} 0-15",
        f"a=rtcp:{rtcp}", f"a={direction}",
    ]
    if mux:
        lines.append("a=rtcp-mux")
    if srtp is not None:
        lines.append("a=crypto:" + crypto_value(1, srtp).decode())
    return "".join(line + "\r\n" for line in lines).encode()


def audio(seq: int, ssrc: int = 0x1234, payload: bytes = b"\xff" * 160) -> bytes:
    return build_rtp(0, seq, seq * 160, ssrc, payload)


def rtcp_rr(ssrc: int = 0x1234) -> bytes:
    # An empty receiver report: V=2, RC=0, PT=201, length=1.
    return bytes([0x80, 201, 0, 1]) + ssrc.to_bytes(4, "big")


def media_port(sdp: bytes) -> tuple[int, int]:
    section = parse_sdp(sdp).media[0]
    return section.port, section.rtcp.port


class Call:
    """A relay session with a peer pair (RTP + RTCP socket) on each side, offer/answer done."""

    def __init__(self, test: TestCase, relay: RtpRelay, a: SideOptions = SideOptions(),
                 b: SideOptions = SideOptions(), *, a_key: SrtpKeying | None = None,
                 mux_a: bool = False, a_direction: str = "sendrecv") -> None:
        self.listener = Listener()
        self.peers: dict[str, tuple[Peer, Peer]] = {}
        for side in ("a", "b"):
            rtp, rtcp = Peer(), Peer()
            for proto in (rtp, rtcp):
                port = reactor.listenUDP(0, proto, interface=HOST)
                test.addCleanup(port.stopListening)
            self.peers[side] = (rtp, rtcp)
        self.session = relay.allocate("call-1", a, b, self.listener)
        test.addCleanup(self.session.release)
        a_rtp, a_rtcp = self.peers["a"]
        b_rtp, b_rtcp = self.peers["b"]
        self.a_key = a_key
        out = self.session.offer(
            "a", offer_sdp(a_rtp.port, a_rtcp.port, srtp=a_key, mux=mux_a, direction=a_direction)
        )
        self.to_b = media_port(out)  # the relay's ports facing b
        answer = self.session.answer("b", offer_sdp(b_rtp.port, b_rtcp.port))
        self.to_a = media_port(answer)  # the relay's ports facing a
        self.answer_to_a = parse_sdp(answer)

    def relay_key_for_a(self) -> SrtpKeying:
        (value,) = self.answer_to_a.media[0].attributes("crypto")
        return parse_crypto_value(value)[1]


class RelayTests(TestCase):
    #: The socket backend (None: epoll where available); `PortableRelayTests` runs listenUDP.
    use_epoll: bool | None = None
    slot = 0

    def setUp(self) -> None:
        self.relay = RtpRelay(reactor, HOST, HOST, port_base(self.slot), port_base(self.slot) + 9,
                              use_epoll=self.use_epoll)
        self.addCleanup(self.relay.close)

    @inlineCallbacks
    def test_audio_both_ways(self) -> Any:
        call = Call(self, self.relay)
        a, _ = call.peers["a"]
        b, _ = call.peers["b"]
        a.send(audio(1), (HOST, call.to_a[0]))
        ((data, source),) = yield b.wait(1)
        self.assertEqual(data, audio(1))
        self.assertEqual(source, (HOST, call.to_b[0]))  # leaves from the port facing b
        b.send(audio(7, ssrc=99), (HOST, call.to_b[0]))
        ((data, source),) = yield a.wait(1)
        self.assertEqual(data, audio(7, ssrc=99))
        self.assertEqual(source, (HOST, call.to_a[0]))
        stats = self.relay.stats()
        self.assertEqual(stats["sessions"], 1)
        self.assertEqual(stats["packets_relayed"], 2)

    @inlineCallbacks
    def test_ssrc_and_sequence_changes_tolerated(self) -> Any:
        call = Call(self, self.relay)
        a, _ = call.peers["a"]
        b, _ = call.peers["b"]
        packets = [audio(1, ssrc=1), audio(60000, ssrc=1), audio(5, ssrc=2), audio(4, ssrc=2)]
        for p in packets:
            a.send(p, (HOST, call.to_a[0]))
        received = yield b.wait(4)
        self.assertEqual([d for d, _ in received], packets)

    @inlineCallbacks
    def test_latching(self) -> Any:
        call = Call(self, self.relay)
        b, _ = call.peers["b"]
        natted = Peer()  # a behind NAT: sends from a port it never signalled
        port = reactor.listenUDP(0, natted, interface=HOST)
        self.addCleanup(port.stopListening)
        natted.send(audio(1), (HOST, call.to_a[0]))
        yield b.wait(1)
        b.send(audio(2), (HOST, call.to_b[0]))
        ((data, _),) = yield natted.wait(1)  # b's audio goes where a really sends from
        self.assertEqual(data, audio(2))
        self.assertEqual(call.peers["a"][0].received, [])
        # RTCP toward a NAT-ed side goes beside its latched RTP until it sends RTCP itself.
        leg = call.session.legs["a"]
        self.assertEqual(leg.rtcp_peer, (HOST, natted.port + 1))
        # Plain RTP from another source while the latched one still sends is dropped
        # (RTP bleed): the natted source's next packet is the only one b gets.
        a, _ = call.peers["a"]
        a.send(audio(3), (HOST, call.to_a[0]))
        natted.send(audio(30), (HOST, call.to_a[0]))
        received = yield b.wait(2)
        self.assertEqual(([d for d, _ in received], leg.foreign), ([audio(1), audio(30)], 1))
        # Once the latched source has been quiet for a full timer tick (a NAT rebinding),
        # a new source re-latches.
        now = self.relay.clock.seconds()
        call.session.tick(now, 0)
        self.assertFalse(leg.quiet)  # it sent since the last tick
        call.session.tick(now + 1, 0)
        self.assertTrue(leg.quiet)
        a.send(audio(3), (HOST, call.to_a[0]))
        received = yield b.wait(3)
        self.assertEqual(received[-1][0], audio(3))
        b.send(audio(4), (HOST, call.to_b[0]))
        ((data, _),) = yield a.wait(1)
        self.assertEqual(data, audio(4))

    @inlineCallbacks
    def test_strict_source_drops_stranger(self) -> Any:
        call = Call(self, self.relay, a=SideOptions(strict_source=True))
        a, _ = call.peers["a"]
        b, _ = call.peers["b"]
        stranger = Peer()
        port = reactor.listenUDP(0, stranger, interface=HOST)
        self.addCleanup(port.stopListening)
        stranger.send(audio(66), (HOST, call.to_a[0]))
        # The stranger's packet is queued before this one; once this arrives, it was handled.
        a.send(audio(1), (HOST, call.to_a[0]))
        yield b.wait(1)
        b.send(audio(2), (HOST, call.to_b[0]))
        yield a.wait(1)
        self.assertEqual([d for d, _ in b.received], [audio(1)])
        self.assertEqual(stranger.received, [])
        self.assertGreaterEqual(self.relay.stats()["packets_dropped"], 1)

    @inlineCallbacks
    def test_rtcp_relayed(self) -> Any:
        call = Call(self, self.relay)
        _, a_rtcp = call.peers["a"]
        _, b_rtcp = call.peers["b"]
        a_rtcp.send(rtcp_rr(1), (HOST, call.to_a[1]))
        ((data, source),) = yield b_rtcp.wait(1)
        self.assertEqual(data, rtcp_rr(1))
        self.assertEqual(source, (HOST, call.to_b[1]))
        b_rtcp.send(rtcp_rr(2), (HOST, call.to_b[1]))
        ((data, _),) = yield a_rtcp.wait(1)
        self.assertEqual(data, rtcp_rr(2))

    @inlineCallbacks
    def test_rtcp_mux_to_separate_rtcp(self) -> Any:
        call = Call(self, self.relay, mux_a=True)
        self.assertTrue(call.answer_to_a.media[0].rtcp_mux)
        a_rtp, _ = call.peers["a"]
        b_rtp, b_rtcp = call.peers["b"]
        a_rtp.send(rtcp_rr(1), (HOST, call.to_a[0]))  # muxed on the RTP port
        ((data, _),) = yield b_rtcp.wait(1)  # b does not mux: its RTCP port
        self.assertEqual(data, rtcp_rr(1))
        b_rtcp.send(rtcp_rr(2), (HOST, call.to_b[1]))
        ((data, _),) = yield a_rtp.wait(1)  # back to a's RTP port
        self.assertEqual(data, rtcp_rr(2))
        self.assertEqual(b_rtp.received, [])

    def _event(self, code: int, seq: int, ts: int, end: bool = False, marker: bool = False) -> bytes:
        return build_rtp(100, seq, ts, 0x1234, event_payload(code, end=end, duration=160 * (seq - 9)),
                         marker=marker)

    def _digit(self, code: int) -> list[bytes]:
        ts = 8000
        return [self._event(code, 10, ts, marker=True), self._event(code, 11, ts),
                self._event(code, 12, ts, end=True), self._event(code, 13, ts, end=True),
                self._event(code, 14, ts, end=True)]

    @inlineCallbacks
    def test_telephone_event_reported_and_dropped(self) -> Any:
        call = Call(self, self.relay, a=SideOptions(dtmf=True))
        a, _ = call.peers["a"]
        b, _ = call.peers["b"]
        for packet in self._digit(5):
            a.send(packet, (HOST, call.to_a[0]))
        a.send(audio(20), (HOST, call.to_a[0]))
        received = yield b.wait(1)
        self.assertEqual([d for d, _ in received], [audio(20)])
        self.assertEqual([(c, k.digit, k.source) for c, k in call.listener.keys], [("call-1", "5", "rfc4733")])
        self.assertEqual(self.relay.stats()["dtmf_events"], 1)

    @inlineCallbacks
    def test_telephone_event_passed_when_asked(self) -> Any:
        call = Call(self, self.relay, a=SideOptions(dtmf=True, pass_tones=True))
        a, _ = call.peers["a"]
        b, _ = call.peers["b"]
        packets = self._digit(11)
        for packet in packets:
            a.send(packet, (HOST, call.to_a[0]))
        received = yield b.wait(len(packets))
        self.assertEqual([d for d, _ in received], packets)
        self.assertEqual([k.digit for _, k in call.listener.keys], ["#"])

    @inlineCallbacks
    def test_no_dtmf_side_forwards_events(self) -> Any:
        call = Call(self, self.relay)  # dtmf off on both sides
        a, _ = call.peers["a"]
        b, _ = call.peers["b"]
        packets = self._digit(1)
        for packet in packets:
            a.send(packet, (HOST, call.to_a[0]))
        yield b.wait(len(packets))
        self.assertEqual(call.listener.keys, [])

    @inlineCallbacks
    def test_vad_while_asked(self) -> Any:
        call = Call(self, self.relay, a=SideOptions(vad=True))
        a, _ = call.peers["a"]
        b, _ = call.peers["b"]
        frames = g711_frames(noise(100, 30.0)) + g711_frames(speech_like(400))
        for seq, frame in enumerate(frames):  # VAD off: nothing reported
            a.send(audio(seq, payload=frame), (HOST, call.to_a[0]))
        yield b.wait(len(frames))
        self.assertEqual(call.listener.speech, [])
        call.session.set_vad(True)
        for seq, frame in enumerate(frames, 100):
            a.send(audio(seq, payload=frame), (HOST, call.to_a[0]))
        received = yield b.wait(2 * len(frames))
        self.assertEqual(len(call.listener.speech), 1)  # once, and the audio still flows
        self.assertEqual(received[-1][0], audio(99 + len(frames), payload=frames[-1]))
        call.session.set_vad(False)
        for seq, frame in enumerate(frames, 200):
            a.send(audio(seq, payload=frame), (HOST, call.to_a[0]))
        yield b.wait(3 * len(frames))
        self.assertEqual(len(call.listener.speech), 1)

    @inlineCallbacks
    def test_failing_listener_does_not_stop_media(self) -> Any:
        call = Call(self, self.relay, a=SideOptions(dtmf=True))

        def broken(call_id: str, key: Keypress) -> None:
            raise RuntimeError("listener bug")

        call.listener.media_keypress = broken  # type: ignore[method-assign]
        a, _ = call.peers["a"]
        b, _ = call.peers["b"]
        for packet in self._digit(3):
            a.send(packet, (HOST, call.to_a[0]))
        a.send(audio(30), (HOST, call.to_a[0]))
        received = yield b.wait(1)
        self.assertEqual([d for d, _ in received], [audio(30)])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    @inlineCallbacks
    def test_inband_dtmf(self) -> Any:
        call = Call(self, self.relay, a=SideOptions(inband=True))
        a, _ = call.peers["a"]
        b, _ = call.peers["b"]
        frames = g711_frames(tone((852.0, 1209.0), (6000.0, 6000.0), 120)) + g711_frames(noise(60, 20.0))
        for seq, frame in enumerate(frames):
            a.send(audio(seq, payload=frame), (HOST, call.to_a[0]))
        yield b.wait(len(frames))  # in-band tones are audio: forwarded
        self.assertEqual([(k.digit, k.source) for _, k in call.listener.keys], [("7", "inband")])

    @inlineCallbacks
    def test_srtp_rtp_bridge(self) -> Any:
        a_key = new_keying("AES_CM_128_HMAC_SHA1_80")
        call = Call(self, self.relay, a=SideOptions(srtp="required", dtmf=True), a_key=a_key)
        self.assertEqual(call.answer_to_a.media[0].proto, "RTP/SAVP")
        relay_key = call.relay_key_for_a()
        self.assertNotEqual(relay_key.key, a_key.key)
        a, a_rtcp = call.peers["a"]
        b, b_rtcp = call.peers["b"]
        protect = Session(Policy(key=a_key.key, ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                                 srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80))
        unprotect = Session(Policy(key=relay_key.key, ssrc_type=Policy.SSRC_ANY_INBOUND,
                                   srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80))
        # a -> b: decrypted.
        a.send(protect.protect(audio(1)), (HOST, call.to_a[0]))
        ((data, _),) = yield b.wait(1)
        self.assertEqual(data, audio(1))
        # b -> a: encrypted with the key the relay put in its SDP.
        b.send(audio(2, ssrc=77), (HOST, call.to_b[0]))
        ((data, _),) = yield a.wait(1)
        self.assertNotEqual(data, audio(2, ssrc=77))
        self.assertEqual(unprotect.unprotect(data), audio(2, ssrc=77))
        # SRTCP both ways.
        a_rtcp.send(protect.protect_rtcp(rtcp_rr(1)), (HOST, call.to_a[1]))
        ((data, _),) = yield b_rtcp.wait(1)
        self.assertEqual(data, rtcp_rr(1))
        b_rtcp.send(rtcp_rr(3), (HOST, call.to_b[1]))
        ((data, _),) = yield a_rtcp.wait(1)
        self.assertEqual(unprotect.unprotect_rtcp(data), rtcp_rr(3))
        # DTMF inside SRTP is decoded too; a forged packet is dropped and does not latch.
        forger = Peer()
        port = reactor.listenUDP(0, forger, interface=HOST)
        self.addCleanup(port.stopListening)
        forger.send(audio(3) + b"\x00" * 10, (HOST, call.to_a[0]))
        for packet in self._digit(9):
            a.send(protect.protect(packet), (HOST, call.to_a[0]))
        a.send(protect.protect(audio(4)), (HOST, call.to_a[0]))
        received = yield b.wait(2)
        self.assertEqual([d for d, _ in received], [audio(1), audio(4)])
        self.assertEqual([k.digit for _, k in call.listener.keys], ["9"])
        self.assertEqual(self.relay.stats()["srtp_auth_failures"], 1)
        b.send(audio(5, ssrc=77), (HOST, call.to_b[0]))
        yield a.wait(2)
        self.assertEqual(forger.received, [])

    @inlineCallbacks
    def test_reinvite_moves_peer(self) -> Any:
        call = Call(self, self.relay)
        b, _ = call.peers["b"]
        moved, moved_rtcp = Peer(), Peer()
        for proto in (moved, moved_rtcp):
            port = reactor.listenUDP(0, proto, interface=HOST)
            self.addCleanup(port.stopListening)
        out = call.session.offer("a", offer_sdp(moved.port, moved_rtcp.port))
        self.assertEqual(media_port(out), call.to_b)  # same relay ports
        call.session.answer("b", offer_sdp(b.port, call.peers["b"][1].port))
        b.send(audio(1), (HOST, call.to_b[0]))
        ((data, _),) = yield moved.wait(1)
        self.assertEqual(data, audio(1))

    @inlineCallbacks
    def test_release_frees_ports(self) -> Any:
        relay = RtpRelay(reactor, HOST, HOST, port_base(self.slot + 1), port_base(self.slot + 1) + 3,
                         use_epoll=self.use_epoll)  # two pairs: one call
        self.addCleanup(relay.close)
        first = relay.allocate("c1", SideOptions(), SideOptions(), Listener())
        self.assertEqual(relay.stats()["ports_in_use"], 4)
        e = self.assertRaises(MediaError, relay.allocate, "c2", SideOptions(), SideOptions(), Listener())
        self.assertEqual(e.status, 503)
        self.assertEqual(relay.stats()["refused"], 1)
        ports = [leg.rtp_port for leg in first.legs.values()]
        first.release()
        first.release()  # idempotent
        self.assertEqual(relay.stats()["ports_in_use"], 0)
        yield relay.when_closed()
        for port in ports:  # really closed: we can bind them ourselves
            for p in (port, port + 1):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((HOST, p))
                s.close()
        second = relay.allocate("c3", SideOptions(), SideOptions(), Listener())
        self.assertEqual(sorted(leg.rtp_port for leg in second.legs.values()), sorted(ports))
        second.release()
        self.assertRaises(MediaError, second.offer, "a", offer_sdp(1000, 1001))

    def test_bad_sdp_is_488_and_frees_nothing(self) -> None:
        relay = self.relay
        session = relay.allocate("c", SideOptions(), SideOptions(), Listener())
        e = self.assertRaises(MediaError, session.offer, "a", b"v=0\r\nnonsense")
        self.assertEqual(e.status, 488)
        self.assertEqual(relay.stats()["sessions"], 1)
        session.release()
        self.assertEqual(relay.stats()["sessions"], 0)

    def test_port_in_use_skipped(self) -> None:
        base = port_base(self.slot + 2)
        relay = RtpRelay(reactor, HOST, HOST, base, base + 5, use_epoll=self.use_epoll)  # three pairs
        self.addCleanup(relay.close)
        blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        blocker.bind((HOST, base + 1))  # the RTCP port of the first pair
        self.addCleanup(blocker.close)
        session = relay.allocate("c", SideOptions(), SideOptions(), Listener())
        self.assertEqual(sorted(leg.rtp_port for leg in session.legs.values()), [base + 2, base + 4])
        e = self.assertRaises(MediaError, relay.allocate, "d", SideOptions(), SideOptions(), Listener())
        self.assertEqual(e.status, 503)
        session.release()

    @inlineCallbacks
    def test_half_allocated_call_gives_its_pair_back(self) -> Any:
        base = port_base(self.slot + 3)
        relay = RtpRelay(reactor, HOST, HOST, base, base + 5, use_epoll=self.use_epoll)  # three pairs
        self.addCleanup(relay.close)
        first = relay.allocate("c1", SideOptions(), SideOptions(), Listener())
        self.assertEqual(relay.stats()["ports_free"], 2)
        # One pair left: the second call gets it, then fails on its second pair.
        e = self.assertRaises(MediaError, relay.allocate, "c2", SideOptions(), SideOptions(), Listener())
        self.assertEqual(e.status, 503)
        yield relay.when_closed()
        self.assertEqual(relay.stats()["ports_free"], 2)
        self.assertEqual(relay.stats()["sessions"], 1)
        first.release()
        yield relay.when_closed()
        self.assertEqual(relay.stats()["ports_free"], 6)


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Ipv6Tests(TestCase):
    if not _has_ipv6():
        skip = "no IPv6 loopback"

    @inlineCallbacks
    def test_ipv6_relay(self) -> Any:
        relay = RtpRelay(reactor, "::1", "::1", port_base(4), port_base(4) + 9)
        self.addCleanup(relay.close)
        peers = {}
        for side in ("a", "b"):
            peer = Peer()
            port = reactor.listenUDP(0, peer, interface="::1")
            self.addCleanup(port.stopListening)
            peers[side] = peer
        session = relay.allocate("v6", SideOptions(strict_source=True), SideOptions(), Listener())
        self.addCleanup(session.release)

        def sdp(port: int) -> bytes:
            return offer_sdp(port, port + 1).replace(b"IN IP4 127.0.0.1", b"IN IP6 ::1")

        to_b = parse_sdp(session.offer("a", sdp(peers["a"].port)))
        to_a = parse_sdp(session.answer("b", sdp(peers["b"].port)))
        self.assertEqual((to_b.connection.addrtype, to_b.connection.address), ("IP6", "::1"))
        peers["a"].send(audio(1), ("::1", to_a.media[0].port))
        ((data, _),) = yield peers["b"].wait(1)
        self.assertEqual(data, audio(1))
        peers["b"].send(audio(2), ("::1", to_b.media[0].port))
        ((data, _),) = yield peers["a"].wait(1)
        self.assertEqual(data, audio(2))


class PortableRelayTests(RelayTests):
    """The same with one listenUDP DatagramProtocol per socket (the non-Linux backend)."""

    use_epoll = False
    slot = 6


class MediaTimeoutTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.relay = RtpRelay(reactor, HOST, HOST, port_base(5), port_base(5) + 9,
                              media_timeout=60.0, clock=self.clock)
        self.addCleanup(self.relay.close)

    def advance(self, seconds: int) -> None:
        for _ in range(seconds):
            self.clock.advance(1.0)

    def test_timeout_once(self) -> None:
        call = Call(self, self.relay)
        self.advance(59)
        self.assertEqual(call.listener.timeouts, [])
        self.advance(1)
        self.assertEqual(call.listener.timeouts, [("call-1", 60.0)])
        self.advance(120)
        self.assertEqual(len(call.listener.timeouts), 1)
        self.assertEqual(self.relay.stats()["timeouts"], 1)

    def test_not_before_answer(self) -> None:
        listener = Listener()
        session = self.relay.allocate("ringing", SideOptions(), SideOptions(), listener)
        self.addCleanup(session.release)
        session.offer("a", offer_sdp(20000, 20001))
        self.advance(300)
        self.assertEqual(listener.timeouts, [])

    def test_not_while_ringing_with_early_media(self) -> None:
        listener = Listener()
        session = self.relay.allocate("early", SideOptions(), SideOptions(), listener)
        self.addCleanup(session.release)
        session.offer("a", offer_sdp(20000, 20001))
        session.answer("b", offer_sdp(20002, 20003), provisional=True)  # 183
        self.advance(300)
        self.assertEqual(listener.timeouts, [])
        session.answer("b", offer_sdp(20002, 20003))  # 200
        self.advance(60)
        self.assertEqual(len(listener.timeouts), 1)

    def test_not_on_hold(self) -> None:
        call = Call(self, self.relay, a_direction="sendonly")
        self.advance(300)
        self.assertEqual(call.listener.timeouts, [])
        # Resumed: the timeout counts from the resume.
        a_rtp, a_rtcp = call.peers["a"]
        b_rtp, b_rtcp = call.peers["b"]
        call.session.offer("a", offer_sdp(a_rtp.port, a_rtcp.port))
        call.session.answer("b", offer_sdp(b_rtp.port, b_rtcp.port))
        self.advance(59)
        self.assertEqual(call.listener.timeouts, [])
        self.advance(2)
        self.assertEqual(len(call.listener.timeouts), 1)

    @inlineCallbacks
    def test_rtp_keeps_it_alive(self) -> Any:
        call = Call(self, self.relay)
        a, _ = call.peers["a"]
        b, _ = call.peers["b"]
        self.advance(50)
        a.send(audio(1), (HOST, call.to_a[0]))
        yield b.wait(1)
        self.advance(50)  # 50 s since the packet
        self.assertEqual(call.listener.timeouts, [])
        self.advance(11)
        self.assertEqual(len(call.listener.timeouts), 1)

    def test_timer_stops_with_last_session(self) -> None:
        call = Call(self, self.relay)
        self.assertTrue(self.clock.getDelayedCalls())
        call.session.release()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ConstructionTests(SynchronousTestCase):
    def test_bad_ranges(self) -> None:
        self.assertRaises(ValueError, RtpRelay, reactor, HOST, HOST, 10001, 10009)
        self.assertRaises(ValueError, RtpRelay, reactor, HOST, HOST, 10000, 10002)

