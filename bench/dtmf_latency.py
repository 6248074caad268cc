#!/usr/bin/env python
"""Keypress-to-event latency: RFC 4733 telephone-events in, WebSocket audit events out.

Run:  .venv/bin/python bench/dtmf_latency.py [--calls 20] [--keys 10] [--spacing 0.3]
                                             [--no-audio] [--max-p99 MS] [--json] [--dump FILE]

Processes (all on loopback, all started here and stopped by their own pid):

* an **SBC** (``python -m twisted sbc``) with its own temporary config, SIP port, admin port
  and RTP port block (:class:`tests.integration.harness.RunningSbc`);
* a **demo agent host** (``python -m twisted sbc-demo-agent``) that answers every call and
  echoes its RTP.

This process runs one reactor with:

* a small SIP UAC playing the PBX (one UDP socket for signalling, one RTP socket per call):
  it sets up ``--calls`` calls through the SBC, offering PCMU plus telephone-event on payload
  type 96, and takes the telephone-event payload type from the SBC's answer;
* one WebSocket subscriber on ``ws://127.0.0.1:<admin>/v1/events`` (Twisted's
  ``twisted.web.websocket`` client), connected before the first call.

For every call it then plays ``--keys`` keys, ``--spacing`` seconds apart, each one as RFC 4733
prescribes (built with :mod:`tests.integration.rtpgen`): a start packet with the marker bit,
updates every 20 ms, three end packets at +100 ms.  The calls' keys are staggered evenly over
the spacing, so keypresses arrive at the SBC at a steady rate of calls/spacing per second.
Unless ``--no-audio``, every call also sends 20 ms PCMU silence packets (50/s) while no key
is being played, as a real PBX does, and the agent's echo of them comes back through the SBC.

The send of the FIRST packet of each key is timestamped with ``time.perf_counter()`` (and
``time.time()``); the arrival of the matching ``input_audio_buffer.dtmf_event_received`` event
on the WebSocket is timestamped the same way.  Events are matched by call (the SBC's
``call_id``, learnt from ``call.started``, whose ``caller`` is this call's unique From user) and
by digit order.  The report gives the count, p50/p95/p99/max latency in ms, and the keys that
yielded no event (missing), more than one (duplicate) or an event for a key never sent
(unexpected).  Each event's ``received_at`` (the SBC's unix seconds) must be the second of
the send or the next.  Any missing, duplicate or unexpected event, a wrong ``received_at``, a
call that failed, or (with ``--max-p99``) a p99 over the limit is a failure: exit status 1.
``--dump FILE`` writes every matched key with its latency, for plots.

For context the report also gives the SBC's and this process's CPU while keying (percent of
one core) and this process's reactor lag (how late a 5 ms timer fires): on a shared machine,
a tail that comes with a large lag here is CPU contention, not the SBC.

The latency is measured end to end from this process: it includes the loopback hop in, the
SBC's packet handling, DTMF decoding, the event hub, the WebSocket frame and this reactor's
own turn to read it.  The whole run is bounded (``--deadline``, 45 s by default, plus a few
seconds to stop the processes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration import rtpgen  # noqa: E402
from tests.integration.harness import (  # noqa: E402
    RunningSbc,
    TwistProcess,
    free_port,
    options_request,
    status_of,
    udp_exchange,
)

HOST = "127.0.0.1"
OFFER_TE_PT = 96  # not 101: the SBC must take it from the SDP
AUDIO_PT = 0
SILENCE = b"\xff" * 160
PTIME = 0.020
#: How long one key's packets take: 5 packets 20 ms apart, then the 3 end packets.
KEY_SPAN = 0.100
LAG_PROBE = 0.005
DIGITS = "0123456789*#"  # '#' also makes the SBC submit the buffered digits: more events, as in real use


# --------------------------------------------------------------------------------- processes


class DemoAgentProcess(TwistProcess):
    """``python -m twisted sbc-demo-agent`` on a free loopback port with its own RTP range."""

    name = "demo agent"

    def __init__(self, calls: int) -> None:
        super().__init__("sbc-bench-agent-", "agent.log")
        self.port = free_port()
        size = 2 * calls + 20  # the echo takes one port per call (even ones first)
        low = random.randrange(30000, 40000 - size, 2)
        self.rtp_ports = (low, low + size - 1)

    def start(self, timeout: float = 20.0) -> "DemoAgentProcess":
        self.spawn(["sbc-demo-agent", "--listen", f"{HOST}:{self.port}",
                    "--rtp-ports", f"{self.rtp_ports[0]}-{self.rtp_ports[1]}"],
                   self.ping, timeout)
        return self

    def ping(self) -> bool:
        return status_of(udp_exchange(options_request(self.port), self.port, timeout=0.3)) == 200


# --------------------------------------------------------------------------------- SIP UAC


def _headers(head: bytes) -> tuple[bytes, list[tuple[str, str]]]:
    lines = head.decode("utf-8", "replace").split("\r\n")
    out = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            out.append((name.strip().lower(), value.strip()))
    return lines[0].encode(), out


_COMPACT = {"i": "call-id", "f": "from", "t": "to", "v": "via", "m": "contact", "l": "content-length",
            "c": "content-type"}


def parse_sip(data: bytes) -> tuple[str, dict[str, list[str]], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    first, pairs = _headers(head)
    headers: dict[str, list[str]] = {}
    for name, value in pairs:
        headers.setdefault(_COMPACT.get(name, name), []).append(value)
    return first.decode("utf-8", "replace"), headers, body


def _uri_of(value: str) -> str:
    if "<" in value:
        return value[value.index("<") + 1:value.index(">")]
    return value.split(";")[0].strip()


def _tag_of(value: str) -> str | None:
    for part in value.split(";")[1:]:
        name, _, tag = part.strip().partition("=")
        if name.lower() == "tag":
            return tag
    return None


def parse_answer(sdp: bytes) -> tuple[str, int, int | None]:
    """(connection address, audio port, telephone-event payload type) from an SDP answer."""
    host, port, te = "", 0, None
    for line in sdp.decode("ascii", "replace").splitlines():
        line = line.strip()
        if line.startswith("c=IN IP"):
            host = line.split()[-1]
        elif line.startswith("m=audio "):
            port = int(line.split()[1])
        elif line.startswith("a=rtpmap:") and "telephone-event/" in line.lower():
            te = int(line[len("a=rtpmap:"):].split()[0])
    return host, port, te


class Call:
    """One call of the UAC: its SIP dialog, its RTP socket and what was sent and seen."""

    def __init__(self, index: int, uac: "Uac") -> None:
        self.index = index
        self.uac = uac
        self.user = f"bench{index:04d}"
        self.sip_call_id = f"dtmf-bench-{index}-{random.getrandbits(32):08x}@{HOST}"
        self.from_tag = f"t{random.getrandbits(32):08x}"
        self.to_header: str | None = None
        self.remote_target: str | None = None
        self.route: list[str] = []
        self.cseq = 1
        self.state = "new"  # new, inviting, proceeding, up, ending, ended, failed
        self.invite_branch = ""
        self.bye_branch = ""
        self.rtp: Any = None  # the listening UDP port
        self.rtp_port = 0
        self.media: tuple[str, int] | None = None
        self.te_pt: int | None = None
        self.stream = rtpgen.Stream(ssrc=random.getrandbits(32), seq=random.randrange(0, 30000),
                                    ts=random.getrandbits(31))
        self.ts_origin = 0.0
        self.ts_base = self.stream.ts
        self.keying_until = 0.0  # no audio before this perf_counter time (a key is playing)
        self.keys: list[str] = []  # digits in the order they were sent
        self.sent_at: list[float] = []  # perf_counter of each key's first packet
        self.sent_wall: list[float] = []
        self.sbc_call_id: str | None = None
        self.rtp_in = 0
        self.failure = ""

    # SIP

    def _request(self, method: str, uri: str, branch: str, cseq: int, body: bytes = b"",
                 extra: str = "") -> bytes:
        to = self.to_header or f"<sip:agent@{HOST}:{self.uac.sbc_port}>"
        route = "".join(f"Route: {r}\r\n" for r in self.route)  # empty until the 2xx
        head = (
            f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{self.uac.port};branch={branch};rport\r\n"
            f"Max-Forwards: 70\r\n"
            f'From: "Bench" <sip:{self.user}@{HOST}:{self.uac.port}>;tag={self.from_tag}\r\n'
            f"To: {to}\r\n"
            f"Call-ID: {self.sip_call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"Contact: <sip:{self.user}@{HOST}:{self.uac.port}>\r\n"
            f"{route}{extra}"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def invite(self) -> bytes:
        sdp = (
            "v=0\r\n"
            f"o=bench {self.index + 1000} 1 IN IP4 {HOST}\r\n"
            "s=-\r\n"
            f"c=IN IP4 {HOST}\r\n"
            "t=0 0\r\n"
            f"m=audio {self.rtp_port} RTP/AVP {AUDIO_PT} {OFFER_TE_PT}\r\n"
            "a=rtpmap:0 PCMU/8000\r\n"
            f"a=rtpmap:{OFFER_TE_PT} telephone-event/8000\r\n"
            f"a=fmtp:{OFFER_TE_PT} 0-16\r\n"
            "a=ptime:20\r\n"
            "a=sendrecv\r\n"
        ).encode()
        self.invite_branch = f"z9hG4bK-{random.getrandbits(48):012x}"
        self.state = "inviting"
        return self._request("INVITE", f"sip:agent@{HOST}:{self.uac.sbc_port}", self.invite_branch, 1, sdp,
                             "Content-Type: application/sdp\r\n")

    def ack(self) -> bytes:
        return self._request("ACK", self.remote_target or f"sip:agent@{HOST}:{self.uac.sbc_port}",
                             f"z9hG4bK-{random.getrandbits(48):012x}", 1)

    def bye(self) -> bytes:
        self.cseq += 1
        self.bye_branch = f"z9hG4bK-{random.getrandbits(48):012x}"
        self.state = "ending"
        return self._request("BYE", self.remote_target or "", self.bye_branch, self.cseq)


def build_uac_protocol(uac: "Uac") -> Any:
    from twisted.internet.protocol import DatagramProtocol

    class SipProtocol(DatagramProtocol):
        noisy = False

        def datagramReceived(self, data: bytes, addr: Any) -> None:  # type: ignore[override]
            uac.received(data, addr)

    return SipProtocol()


def build_rtp_protocol(call: Call) -> Any:
    from twisted.internet.protocol import DatagramProtocol

    class RtpProtocol(DatagramProtocol):
        noisy = False

        def datagramReceived(self, data: bytes, addr: Any) -> None:  # type: ignore[override]
            call.rtp_in += 1

    return RtpProtocol()


class Uac:
    """The PBX: sets up the calls, plays keys, hangs up."""

    def __init__(self, reactor: Any, sbc_port: int) -> None:
        self.reactor = reactor
        self.sbc_port = sbc_port
        self.sbc_addr = (HOST, sbc_port)
        self.port = 0
        self.transport: Any = None
        self.calls: dict[str, Call] = {}
        self.unexpected_requests: list[str] = []

    def listen(self) -> None:
        self.listening = self.reactor.listenUDP(0, build_uac_protocol(self), interface=HOST)
        self.transport = self.listening
        self.port = self.listening.getHost().port

    def send(self, data: bytes) -> None:
        self.transport.write(data, self.sbc_addr)

    def start_call(self, call: Call) -> None:
        call.rtp = self.reactor.listenUDP(0, build_rtp_protocol(call), interface=HOST)
        call.rtp_port = call.rtp.getHost().port
        self.calls[call.sip_call_id] = call
        data = call.invite()
        self.send(data)
        self._retransmit(call, data, "inviting", 0.5)

    def _retransmit(self, call: Call, data: bytes, state: str, interval: float) -> None:
        def again() -> None:
            if call.state == state:
                self.send(data)
                self.reactor.callLater(min(interval * 2, 4.0), again)
        self.reactor.callLater(interval, again)

    def hang_up(self, call: Call) -> None:
        if call.state != "up":
            return
        data = call.bye()
        self.send(data)
        self._retransmit(call, data, "ending", 0.5)

    def received(self, data: bytes, addr: Any) -> None:
        try:
            first, headers, body = parse_sip(data)
        except Exception:  # a bench: report and go on
            self.unexpected_requests.append(repr(data[:80]))
            return
        call = self.calls.get((headers.get("call-id") or [""])[0])
        if first.startswith("SIP/2.0 "):
            if call is not None:
                self._response(call, first, headers, body)
            return
        method = first.split(" ", 1)[0]
        # A request from the SBC (a BYE for a media timeout, an OPTIONS): answer 200.
        reply = "SIP/2.0 200 OK\r\n" + "".join(
            f"{name}: {value}\r\n" for key, name in (("via", "Via"), ("from", "From"), ("to", "To"),
                                                      ("call-id", "Call-ID"), ("cseq", "CSeq"))
            for value in headers.get(key, [])) + "Content-Length: 0\r\n\r\n"
        if method != "ACK":
            self.transport.write(reply.encode(), addr)
        if method == "BYE" and call is not None:
            call.state = "ended"
            call.failure = call.failure or "the SBC hung up (BYE)"
        elif method not in ("OPTIONS", "ACK"):
            self.unexpected_requests.append(method)

    def _response(self, call: Call, first: str, headers: dict[str, list[str]], body: bytes) -> None:
        status = int(first.split(" ", 2)[1])
        method = (headers.get("cseq") or ["0 X"])[0].split()[-1].upper()
        if method == "INVITE":
            if status < 200:
                if call.state == "inviting":
                    call.state = "proceeding"
                return
            if status >= 300:
                if call.state in ("inviting", "proceeding"):
                    call.state = "failed"
                    call.failure = first
                    # ACK for a non-2xx: same branch, To from the response
                    call.to_header = (headers.get("to") or [""])[0]
                    self.send(call._request("ACK", f"sip:agent@{HOST}:{self.sbc_port}",
                                            call.invite_branch, 1))
                return
            if call.state in ("inviting", "proceeding"):
                call.to_header = (headers.get("to") or [""])[0]
                contact = (headers.get("contact") or [""])[0]
                call.remote_target = _uri_of(contact) if contact else f"sip:agent@{HOST}:{self.sbc_port}"
                rr = [r.strip() for v in headers.get("record-route", []) for r in v.split(",")]
                call.route = list(reversed(rr))
                host, port, te = parse_answer(body)
                call.media = (host, port)
                call.te_pt = te
                call.state = "up" if port and te is not None else "failed"
                if call.state == "failed":
                    call.failure = f"SDP answer without audio or telephone-event: {body!r}"
            self.send(call.ack())  # every 2xx, retransmissions too
        elif method == "BYE" and call.state == "ending":
            call.state = "ended"


# --------------------------------------------------------------------------------- RTP


def ts_now(call: Call, now: float) -> int:
    return (call.ts_base + int(round((now - call.ts_origin) * 8000))) & 0xFFFFFFFF


def key_packets(call: Call, digit: str, now: float) -> list[tuple[float, bytes]]:
    """One key's RFC 4733 packets as (offset seconds, bytes): start with the marker bit,
    updates every 20 ms, three end packets."""
    stream = call.stream
    stream.ts = ts_now(call, now)
    stream.t = 0.0
    mark = len(stream.packets)
    assert call.te_pt is not None
    rtpgen.dtmf_packets(stream, digit, call.te_pt, press_ms=100, gap_ms=0, end_copies=3)
    out = stream.packets[mark:]
    del stream.packets[mark:]
    return out


def audio_packet(call: Call, now: float) -> bytes:
    stream = call.stream
    stream.add(AUDIO_PT, ts_now(call, now), SILENCE)
    return stream.packets.pop()[1]


# --------------------------------------------------------------------------------- events


class Collector:
    """The WebSocket subscriber's side: every event with its arrival time."""

    def __init__(self) -> None:
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.connected = False
        self.closed = False
        self.by_caller: dict[str, str] = {}  # caller user -> SBC call_id
        self.bad_frames = 0

    def text(self, data: str) -> None:
        now = time.perf_counter()
        try:
            event = json.loads(data)
        except ValueError:
            self.bad_frames += 1
            return
        self.events.append((now, event))
        if event.get("type") == "call.started":
            self.by_caller[event.get("caller", "")] = event.get("call_id", "")


def build_ws_factory(collector: Collector, reactor: Any) -> Any:
    class Subscriber:
        def negotiationStarted(self, transport: Any) -> None:
            self.transport = transport

        def negotiationFinished(self) -> None:
            collector.connected = True

        def textMessageReceived(self, data: str) -> None:
            collector.text(data)

        def bytesMessageReceived(self, data: bytes) -> None:
            collector.bad_frames += 1

        def pongReceived(self, payload: bytes) -> None:
            pass

        def connectionLost(self, reason: Any) -> None:
            collector.closed = True

    class Factory:
        def buildProtocol(self, url: str) -> Subscriber:
            return Subscriber()

    return Factory()


def match(calls: list[Call], collector: Collector) -> dict[str, Any]:
    """Pair each call's audit events with its keys in order; count what does not pair."""
    by_sbc_id = {c.sbc_call_id: c for c in calls if c.sbc_call_id}
    seen: dict[str, list[tuple[float, str, Any]]] = {}
    unexpected = 0
    for at, event in collector.events:
        if event.get("type") != "input_audio_buffer.dtmf_event_received":
            continue
        call = by_sbc_id.get(event.get("call_id"))
        if call is None:
            unexpected += 1
            continue
        seen.setdefault(call.sbc_call_id or "", []).append(
            (at, str(event.get("event")), event.get("received_at")))
    latencies: list[float] = []
    rows: list[tuple[int, int, str, float, float]] = []
    origin = min((c.sent_at[0] for c in calls if c.sent_at), default=0.0)
    missing = duplicate = clock_off = 0

    def matched(call: Call, k: int, at: float, received_at: Any) -> None:
        nonlocal clock_off
        latencies.append(at - call.sent_at[k])
        rows.append((call.index, k, call.keys[k], call.sent_at[k] - origin, at - call.sent_at[k]))
        # received_at is the SBC's wall clock in whole seconds: the second of the send or the next
        if not (isinstance(received_at, int) and 0 <= received_at - int(call.sent_wall[k]) <= 1):
            clock_off += 1

    for call in calls:
        nxt = 0
        for at, digit, received_at in seen.get(call.sbc_call_id or "", []):
            if nxt < len(call.keys) and digit == call.keys[nxt]:
                matched(call, nxt, at, received_at)
                nxt += 1
                continue
            if nxt > 0 and digit == call.keys[nxt - 1]:
                duplicate += 1
                continue
            later = [j for j in range(nxt + 1, len(call.keys)) if call.keys[j] == digit]
            if later:  # the keys in between were lost
                missing += later[0] - nxt
                nxt = later[0]
                matched(call, nxt, at, received_at)
                nxt += 1
                continue
            unexpected += 1
        missing += len(call.keys) - nxt
    return {"latencies": latencies, "missing": missing, "duplicate": duplicate, "unexpected": unexpected,
            "received_at_off": clock_off, "rows": sorted(rows, key=lambda r: r[3])}


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, int(-(-p * len(ordered) // 100)))  # ceil(p/100 * n)
    return ordered[min(rank, len(ordered)) - 1]


# --------------------------------------------------------------------------------- the run


async def run(reactor: Any, args: argparse.Namespace, sbc: RunningSbc) -> dict[str, Any]:
    from twisted.internet.defer import Deferred
    from twisted.internet.task import LoopingCall, deferLater
    from twisted.web.websocket import WebSocketClientEndpoint

    async def sleep(seconds: float) -> None:
        await deferLater(reactor, seconds)

    async def until(check: Any, timeout: float, step: float = 0.01) -> bool:
        end = time.perf_counter() + timeout
        while not check():
            if time.perf_counter() >= end:
                return False
            await sleep(step)
        return True

    collector = Collector()
    endpoint = WebSocketClientEndpoint.new(reactor, f"ws://{HOST}:{sbc.admin_port}/v1/events")
    await Deferred.fromCoroutine(endpoint.connect(build_ws_factory(collector, reactor)))
    if not await until(lambda: collector.connected, 5):
        raise RuntimeError("WebSocket subscriber did not connect")

    uac = Uac(reactor, sbc.sip_port)
    uac.listen()
    calls = [Call(i, uac) for i in range(args.calls)]
    setup_start = time.perf_counter()
    for call in calls:
        uac.start_call(call)
        await sleep(0.01)
    await until(lambda: all(c.state not in ("new", "inviting", "proceeding") for c in calls), 10)
    setup_seconds = time.perf_counter() - setup_start
    up = [c for c in calls if c.state == "up"]
    for call in calls:
        if call.state in ("inviting", "proceeding"):
            call.failure = "no final answer to the INVITE"
    # each call's SBC call_id, from its call.started event
    await until(lambda: all(c.user in collector.by_caller for c in up), 5)
    for call in up:
        call.sbc_call_id = collector.by_caller.get(call.user)

    # This process's own reactor lag (how late a 5 ms timer fires) while keying: a stall here
    # delays the reading of events, and shows as latency that is not the SBC's.
    lags: list[float] = []
    lag_state = {"on": True, "due": 0.0}

    def lag_tick() -> None:
        now = time.perf_counter()
        lags.append(now - lag_state["due"])
        if lag_state["on"]:
            lag_state["due"] = now + LAG_PROBE
            reactor.callLater(LAG_PROBE, lag_tick)

    start = time.perf_counter()
    lag_state["due"] = start + LAG_PROBE
    reactor.callLater(LAG_PROBE, lag_tick)
    cpu_start = (cpu_seconds(sbc.proc.pid) if sbc.proc else None, own_cpu_seconds())
    for call in up:
        call.ts_origin = start

    def send_rtp(call: Call, data: bytes) -> None:
        assert call.media is not None
        try:
            call.rtp.write(data, call.media)
        except OSError:
            pass

    audio_loops: list[Any] = []
    if args.audio:
        def audio_tick(call: Call) -> None:
            now = time.perf_counter()
            if call.state == "up" and now >= call.keying_until:
                send_rtp(call, audio_packet(call, now))

        for i, call in enumerate(up):
            loop = LoopingCall(audio_tick, call)
            loop.clock = reactor
            audio_loops.append(loop)
            reactor.callLater(PTIME * i / max(len(up), 1), loop.start, PTIME, True)

    def play_key(call: Call, k: int) -> None:
        if call.state != "up":
            return
        digit = DIGITS[(call.index + k) % len(DIGITS)]
        now = time.perf_counter()
        packets = key_packets(call, digit, now)
        call.keying_until = now + KEY_SPAN + PTIME
        call.keys.append(digit)
        call.sent_wall.append(time.time())
        call.sent_at.append(time.perf_counter())
        send_rtp(call, packets[0][1])  # the first packet, timestamped just above
        for offset, data in packets[1:]:
            reactor.callLater(offset, send_rtp, call, data)

    stagger = args.spacing / max(len(up), 1)
    lead = 0.2  # let the audio (and the relay's latching) start first
    for i, call in enumerate(up):
        for k in range(args.keys):
            reactor.callLater(lead + i * stagger + k * args.spacing, play_key, call, k)
    last_key = lead + args.spacing * args.keys + KEY_SPAN
    await sleep(last_key)
    expected = sum(len(c.keys) for c in up)

    def audits() -> int:
        return sum(1 for _, e in collector.events if e.get("type") == "input_audio_buffer.dtmf_event_received")

    await until(lambda: audits() >= expected, 2.0)
    await sleep(args.settle)  # duplicates would come now
    keys_seconds = time.perf_counter() - start
    lag_state["on"] = False
    sbc_cpu_end = cpu_seconds(sbc.proc.pid) if sbc.proc else None
    sbc_cpu = None if sbc_cpu_end is None or cpu_start[0] is None else sbc_cpu_end - cpu_start[0]
    bench_cpu = own_cpu_seconds() - cpu_start[1]
    for loop in audio_loops:
        if loop.running:
            loop.stop()
    for call in up:
        uac.hang_up(call)
    await until(lambda: all(c.state in ("ended", "failed") for c in up), 5)
    ended_ids = {c.sbc_call_id for c in up}
    await until(lambda: ended_ids <= {e.get("call_id") for _, e in collector.events
                                      if e.get("type") == "call.ended"}, 3)
    for call in calls:
        if call.rtp is not None:
            call.rtp.stopListening()
    uac.listening.stopListening()

    result = match(up, collector)
    result.update(
        calls=len(calls), calls_up=len(up), calls_failed=[f"{c.user}: {c.failure or c.state}" for c in calls
                                                          if c.state != "ended" or c.failure],
        keys_sent=expected, setup_seconds=setup_seconds, keys_seconds=keys_seconds,
        sbc_cpu_pct=None if sbc_cpu is None else 100 * sbc_cpu / keys_seconds,
        bench_cpu_pct=100 * bench_cpu / keys_seconds,
        lag_p99_ms=1000 * percentile(lags, 99) if lags else None, lag_max_ms=1000 * max(lags) if lags else None,
        rtp_echoed=sum(c.rtp_in for c in up), bad_frames=collector.bad_frames,
        unexpected_requests=uac.unexpected_requests, ws_closed_early=collector.closed,
        texts=sum(1 for _, e in collector.events if e.get("type") == "conversation.item.create"),
        te_pts=sorted({c.te_pt for c in up if c.te_pt is not None}),
    )
    return result


def report(result: dict[str, Any], args: argparse.Namespace) -> int:
    lat = [x * 1000 for x in result["latencies"]]
    failed = bool(result["missing"] or result["duplicate"] or result["unexpected"] or result["calls_failed"]
                  or result["received_at_off"]
                  or result["calls_up"] != result["calls"] or not lat)
    summary: dict[str, Any] = {
        "calls": result["calls"], "calls_up": result["calls_up"], "keys_per_call": args.keys,
        "spacing_ms": args.spacing * 1000, "audio": args.audio,
        "keys_sent": result["keys_sent"], "events_matched": len(lat),
        "missing": result["missing"], "duplicate": result["duplicate"], "unexpected": result["unexpected"],
        "received_at_off": result["received_at_off"],
        "text_events": result["texts"], "telephone_event_pt": result["te_pts"],
        "rtp_packets_echoed_back": result["rtp_echoed"],
        "sbc_cpu_pct": None if result["sbc_cpu_pct"] is None else round(result["sbc_cpu_pct"], 1),
        "bench_cpu_pct": round(result["bench_cpu_pct"], 1),
        "setup_seconds": round(result["setup_seconds"], 3), "keys_seconds": round(result["keys_seconds"], 3),
        "loadavg_1min": load_average(),
        "bench_reactor_lag_p99_ms": round(result["lag_p99_ms"], 3) if result["lag_p99_ms"] is not None else None,
        "bench_reactor_lag_max_ms": round(result["lag_max_ms"], 3) if result["lag_max_ms"] is not None else None,
    }
    if lat:
        summary.update({
            "p50_ms": round(percentile(lat, 50), 3), "p95_ms": round(percentile(lat, 95), 3),
            "p99_ms": round(percentile(lat, 99), 3), "max_ms": round(max(lat), 3),
            "min_ms": round(min(lat), 3), "mean_ms": round(statistics.fmean(lat), 3),
        })
        if args.max_p99 is not None and summary["p99_ms"] > args.max_p99:
            failed = True
            summary["p99_over_limit"] = args.max_p99
    if result["calls_failed"]:
        summary["calls_failed"] = result["calls_failed"][:10]
    if result["unexpected_requests"]:
        summary["unexpected_requests"] = result["unexpected_requests"][:10]
    summary["result"] = "FAIL" if failed else "PASS"
    if args.dump:
        with open(args.dump, "w", encoding="utf-8") as out:
            out.write("call\tkey\tdigit\tsent_s\tlatency_ms\n")
            for index, k, digit, sent, latency in result["rows"]:
                out.write(f"{index}\t{k}\t{digit}\t{sent:.6f}\t{latency * 1000:.3f}\n")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"keypress-to-event latency, {summary['calls_up']}/{summary['calls']} calls x {args.keys} keys, "
              f"{args.spacing * 1000:.0f} ms apart per call ({'with' if args.audio else 'no'} 50 pps PCMU audio), "
              f"telephone-event PT {summary['telephone_event_pt']}")
        if lat:
            print(f"  events {len(lat)}/{summary['keys_sent']}: p50 {summary['p50_ms']:.3f} ms  "
                  f"p95 {summary['p95_ms']:.3f} ms  p99 {summary['p99_ms']:.3f} ms  max {summary['max_ms']:.3f} ms  "
                  f"(min {summary['min_ms']:.3f}, mean {summary['mean_ms']:.3f})")
        print(f"  missing {summary['missing']}  duplicate {summary['duplicate']}  unexpected {summary['unexpected']}"
              f"  received_at off {summary['received_at_off']}  text events {summary['text_events']}"
              f"  RTP echoed back {summary['rtp_packets_echoed_back']}")
        print(f"  call setup {summary['setup_seconds']:.2f} s, keys {summary['keys_seconds']:.2f} s; CPU while "
              f"keying: SBC {summary['sbc_cpu_pct']}%, this process {summary['bench_cpu_pct']}% of a core; "
              f"load average {summary['loadavg_1min']} on {os.cpu_count()} CPUs")
        print(f"  this process's reactor lag while keying (a {LAG_PROBE * 1000:.0f} ms timer): "
              f"p99 {summary['bench_reactor_lag_p99_ms']} ms, max {summary['bench_reactor_lag_max_ms']} ms")
        for line in summary.get("calls_failed", []):
            print(f"  failed call: {line}")
        for line in summary.get("unexpected_requests", []):
            print(f"  unexpected request: {line}")
        print(f"  -> {summary['result']}")
    return 1 if failed else 0


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))
    except (OSError, IndexError, ValueError):
        return None


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_average() -> float | None:
    """The 1-minute load average: other work on the machine shows in the tail."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20, help="concurrent calls (default 20)")
    parser.add_argument("--keys", type=int, default=10, help="keys per call (default 10)")
    parser.add_argument("--spacing", type=float, default=0.3, help="seconds between a call's keys (default 0.3)")
    parser.add_argument("--no-audio", dest="audio", action="store_false",
                        help="send only telephone-events, no PCMU between keys")
    parser.add_argument("--settle", type=float, default=0.5,
                        help="seconds to wait after the last event for late duplicates (default 0.5)")
    parser.add_argument("--max-p99", type=float, default=None, help="fail when p99 exceeds this many ms")
    parser.add_argument("--deadline", type=float, default=45.0,
                        help="abort the run after this many seconds (default 45; stopping the processes "
                        "takes at most a few more)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--dump", metavar="FILE", help="write every matched key (call, key, digit, send time, "
                        "latency) as tab-separated lines")
    parser.add_argument("--keep-logs", action="store_true", help="print the SBC's and agent's log tails")
    args = parser.parse_args()
    if not (1 <= args.calls <= 500 and 1 <= args.keys <= 1000 and args.spacing >= KEY_SPAN + 0.05):
        parser.error("need 1 <= --calls <= 500, 1 <= --keys and --spacing >= 0.15")
    if 0.2 + args.spacing * args.keys + args.settle + 15 > args.deadline:
        parser.error("--keys x --spacing + --settle does not fit in --deadline")
    started = time.monotonic()

    agent = DemoAgentProcess(args.calls).start()
    sbc: RunningSbc | None = None
    try:
        # The SBC's own RTP block: an RTP/RTCP pair on each side per call, and some spare.
        size = 4 * args.calls + 40
        low = random.randrange(40000, 65000 - size, 2)
        sbc = RunningSbc(agent_uri=f"sip:{{user}}@{HOST}:{agent.port}",
                         extra_toml=(f"\n[calls]\nmax_calls = {max(100, args.calls * 2)}\n"
                                     # stop at once when told to (calls left up get their BYEs)
                                     "drain_timeout = 0\n\n"
                                     f"[media]\nport_min = {low}\nport_max = {low + size - 1}\n")).start()
        from twisted.internet import reactor
        from twisted.internet.defer import Deferred

        outcome: dict[str, Any] = {}

        def done(result: Any) -> None:
            outcome["result"] = result
            if reactor.running:
                reactor.stop()

        def failed(failure: Any) -> None:
            outcome["error"] = failure.getTraceback()
            if reactor.running:
                reactor.stop()

        def timeout() -> None:
            outcome.setdefault("error", f"run exceeded --deadline {args.deadline:.0f} s")
            if reactor.running:
                reactor.stop()

        remaining = args.deadline - (time.monotonic() - started)
        reactor.callLater(max(remaining, 1.0), timeout)
        reactor.callWhenRunning(
            lambda: Deferred.fromCoroutine(run(reactor, args, sbc)).addCallbacks(done, failed))
        reactor.run()
        if "result" not in outcome:
            print(f"dtmf_latency: {outcome.get('error')}", file=sys.stderr)
            print("SBC log tail:\n" + sbc.log_text()[-3000:], file=sys.stderr)
            return 1
        code = report(outcome["result"], args)
        if args.keep_logs or code:
            print("SBC log tail:\n" + sbc.log_text()[-2000:], file=sys.stderr)
            print("agent log tail:\n" + agent.log_text()[-1500:], file=sys.stderr)
        if not args.json:
            print(f"  wall {time.monotonic() - started:.1f} s")
        return code
    finally:
        if sbc is not None:
            stop(sbc)
        stop(agent)


def stop(process: TwistProcess, grace: float = 4.0) -> None:
    """SIGTERM the process we started (by its pid), SIGKILL after ``grace`` seconds."""
    proc = process.proc
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)


if __name__ == "__main__":
    sys.exit(main())
