# -*- test-case-name: tests.integration.test_srtp_e2e -*-
"""
SRTP <-> RTP bridged calls end to end through the running SBC (issue 5).

A small "PBX" lives in the test process: blocking UDP sockets on 127.0.0.1 with timeouts, one
for SIP and one for media.  It calls through a real SBC process (`RunningSbc`) to a SIPp UAS
playing the agent host with ``-rtp_echo`` over plain RTP (``[agent] srtp`` is off by default).

* ``srtp = "required"`` trunk, RTP/SAVP offer with an SDES AES_CM_128_HMAC_SHA1_80 key: the
  200 OK must carry RTP/SAVP and the SBC's own a=crypto line; ~50 SRTP G.711 packets (20 ms
  apart) go out, their echoes come back protected with the key the SBC gave, and unprotect
  (with pylibsrtp directly, not the SBC's wrapper) to exactly what was sent.  The agent saw a
  plain RTP/AVP offer without crypto (SIPp's message trace) and the echoed payloads prove it
  got the plain packets; the relay's a_to_b/b_to_a counters grew, no auth failure while the
  key is right; one packet under a wrong key is dropped and counted.  BYE ends the call (no
  call, no media session left).
* the same for every SDES suite (AES_CM_128_HMAC_SHA1_32 and both AEAD-GCM suites), with crypto
  lines the SBC cannot use (an MKI, an unknown suite) listed first: the answer takes the tag
  of the usable line; and on an ``optional`` trunk.
* RTP/SAVPF offered, RTP/AVP answered by the agent host: the PBX's answer still reads
  RTP/SAVPF (RFC 3264 §6).
* The SRTP leg under stress: sequence number wrap (rollover counter on both SRTP hops), a new
  SSRC, a replayed packet, SRTCP under the right and a wrong key, RFC 4733 digits inside SRTP.
* Early media (183 then 200): SRTP audio before the answer, the same SBC key in both.
* Re-INVITEs: a refresh keeps the SBC's key; a PBX re-key refuses the old key from then on; a
  plain re-offer on a ``required`` trunk gets 488 and leaves SRTP running; a suite change gets
  a key for the new suite.
* The other way round: a plain PBX and an agent host (in Python) with ``[agent] srtp =
  "required"``.
* ``srtp = "optional"`` trunk, plain RTP/AVP offer: plain answer, audio both ways.
* ``srtp = "required"`` trunk, plain offer, or an SDES offer without a usable line: 488, and
  nothing reaches the agent host.  ``srtp = "off"`` trunk, SRTP offer: 488 as well.
* No SDES key ever appears in the SBC's log.

Everything is bounded by timeouts and stays on loopback.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from sbc.media.core.sdes import SrtpKeying, crypto_value, new_keying, parse_crypto_value

from . import rtpgen, sipp
from .harness import RunningSbc, free_media_port, free_port

try:
    from pylibsrtp import Error as SrtpLibError
    from pylibsrtp import Policy, Session
except ImportError:  # pragma: no cover - pylibsrtp is a dependency of the relay
    Policy = Session = SrtpLibError = None  # type: ignore[assignment,misc]

SUITE = "AES_CM_128_HMAC_SHA1_80"
PACKETS = 50
PTIME = 0.020

_COMPACT = {"t": "to", "f": "from", "i": "call-id", "m": "contact", "v": "via", "l": "content-length",
            "c": "content-type"}


# -- a tiny SIP message model (only what the PBX needs) -----------------------------------------

class SipMsg:
    def __init__(self, data: bytes) -> None:
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("utf-8", "replace").split("\r\n")
        self.start = lines[0]
        self.headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                key = name.strip().lower()
                self.headers.append((_COMPACT.get(key, key), value.strip()))
        self.body = body
        self.raw = data

    @property
    def status(self) -> int | None:
        parts = self.start.split(" ", 2)
        if parts[0] == "SIP/2.0" and len(parts) > 1 and parts[1].isdigit():
            return int(parts[1])
        return None

    @property
    def method(self) -> str | None:
        return None if self.status is not None else self.start.split(" ", 1)[0]

    def get(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name.lower():
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    @property
    def cseq(self) -> tuple[int, str]:
        number, method = (self.get("cseq") or "0 ?").split()
        return int(number), method

    def __repr__(self) -> str:
        return f"<SipMsg {self.start!r}>"


def _tag(value: str) -> str | None:
    for param in value.split(";")[1:]:
        name, _, tag = param.partition("=")
        if name.strip().lower() == "tag":
            return tag.strip()
    return None


def _uri_of(value: str) -> str:
    """The URI inside a name-addr (``<...>``) or an addr-spec."""
    if "<" in value:
        return value[value.index("<") + 1:value.index(">")]
    return value.split(";", 1)[0].strip()


# -- SDP ---------------------------------------------------------------------------------------

def offer_sdp(media_port: int, *, srtp: SrtpKeying | None, tag: int = 1, decoys: tuple[str, ...] = (),
              version: int = 1, proto: str | None = None) -> bytes:
    """The PBX's SDP.  ``decoys``: a=crypto values listed before ours, which the SBC must skip."""
    if proto is None:
        proto = "RTP/SAVP" if srtp is not None or decoys else "RTP/AVP"
    lines = [
        "v=0",
        f"o=pbx 1001 {version} IN IP4 127.0.0.1",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=audio {media_port} {proto} 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
    ]
    lines += [f"a=crypto:{decoy}" for decoy in decoys]
    if srtp is not None:
        lines.append("a=crypto:" + crypto_value(tag, srtp).decode("ascii"))
    lines.append("a=sendrecv")
    return ("\r\n".join(lines) + "\r\n").encode()


class AudioSdp:
    """The first audio stream of an SDP body: where to send, which profile, which crypto."""

    def __init__(self, body: bytes) -> None:
        self.address: str | None = None
        self.port = 0
        self.proto = ""
        self.crypto: list[bytes] = []
        self.lines = body.replace(b"\r\n", b"\n").split(b"\n")
        session_c: str | None = None
        media_c: str | None = None
        in_audio = False
        seen_audio = False
        for raw in self.lines:
            line = raw.decode("ascii", "replace").strip()
            if line.startswith("m="):
                in_audio = not seen_audio and line.startswith("m=audio ")
                if in_audio:
                    seen_audio = True
                    fields = line[2:].split()
                    self.port, self.proto = int(fields[1]), fields[2]
            elif line.startswith("c="):
                address = line.split()[-1]
                if not seen_audio:
                    session_c = address
                elif in_audio:
                    media_c = address
            elif in_audio and line.startswith("a=crypto:"):
                self.crypto.append(raw.strip()[len(b"a=crypto:"):])
        self.address = media_c or session_c

    @property
    def target(self) -> tuple[str, int]:
        assert self.address is not None
        return (self.address, self.port)


# -- SRTP with pylibsrtp (the test's own oracle, independent of sbc.media.srtp) -----------------

def _srtp(key: SrtpKeying, inbound: bool) -> Any:
    profile = {
        "AES_CM_128_HMAC_SHA1_80": Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
        "AES_CM_128_HMAC_SHA1_32": Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
        "AEAD_AES_128_GCM": Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
        "AEAD_AES_256_GCM": Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
    }[key.suite]
    policy = Policy(key=key.key, ssrc_type=Policy.SSRC_ANY_INBOUND if inbound else Policy.SSRC_ANY_OUTBOUND,
                    srtp_profile=profile)
    return Session(policy)


def _unprotector(session: Any) -> Callable[[bytes], bytes | None]:
    def unprotect(data: bytes) -> bytes | None:
        try:
            return session.unprotect(data)  # type: ignore[no-any-return]
        except SrtpLibError:
            return None
    return unprotect


def rtp(seq: int, ts: int, ssrc: int, payload: bytes, pt: int = 0) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def g711_frame(seq: int) -> bytes:
    """160 bytes of µ-law, different for every packet (so a mix-up shows)."""
    return bytes(((seq * 37 + k * 11) % 0x70) + 0x08 for k in range(160))


# -- the PBX -----------------------------------------------------------------------------------

class Pbx:
    """A UAC over plain blocking UDP sockets: SIP on one, media on another."""

    def __init__(self, sbc_port: int) -> None:
        self.sbc = ("127.0.0.1", sbc_port)
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind(("127.0.0.1", 0))
        self.sip_port = self.sip.getsockname()[1]
        self.media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.media.bind(("127.0.0.1", 0))
        self.media_port = self.media.getsockname()[1]
        self.call_id = f"srtp-{os.getpid()}-{time.monotonic_ns()}@pbx.test"
        self.from_tag = "pbx%d" % (time.monotonic_ns() % 10**9)
        self.to_tag: str | None = None
        self.remote_target: str | None = None
        self.routes: list[str] = []
        self.seen: list[SipMsg] = []
        self._branch = 0

    def close(self) -> None:
        self.sip.close()
        self.media.close()

    # -- signalling ----------------------------------------------------------------------

    def branch(self) -> str:
        self._branch += 1
        return f"z9hG4bK-pbx-{self._branch}-{time.monotonic_ns() % 10**9}"

    def _from(self) -> str:
        return f'"PBX" <sip:+15551230000@127.0.0.1:{self.sip_port}>;tag={self.from_tag}'

    def _to(self, user: str) -> str:
        to = f"<sip:{user}@127.0.0.1:{self.sbc[1]}>"
        return to + (f";tag={self.to_tag}" if self.to_tag else "")

    def build(self, method: str, uri: str, cseq: int, branch: str, *, user: str = "agent",
              body: bytes = b"", content_type: str | None = None, routes: list[str] | None = None) -> bytes:
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.sip_port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: {self._from()}",
            f"To: {self._to(user)}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
        ]
        lines += [f"Route: {r}" for r in routes or ()]
        if method == "INVITE":
            lines.append(f"Contact: <sip:pbx@127.0.0.1:{self.sip_port}>")
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def _answer_request(self, msg: SipMsg) -> None:
        """Requests from the SBC to the PBX: OPTIONS and BYE get 200, anything else 501."""
        if msg.method == "ACK":
            return
        status = "200 OK" if msg.method in ("OPTIONS", "BYE") else "501 Not Implemented"
        head = [f"SIP/2.0 {status}"] + [f"Via: {v}" for v in msg.all("via")]
        for name in ("from", "to", "call-id", "cseq"):
            value = msg.get(name)
            if value is not None:
                head.append(f"{name.title()}: {value}")
        head.append("Content-Length: 0")
        self.sip.sendto(("\r\n".join(head) + "\r\n\r\n").encode(), self.sbc)

    def receive(self, until: Callable[[SipMsg], bool], timeout: float,
                resend: tuple[bytes, float] | None = None) -> SipMsg | None:
        """Read SIP until a message satisfies ``until`` (returned) or ``timeout`` passes (None).
        ``resend``: (request, interval) retransmitted while waiting, as UDP demands."""
        deadline = time.monotonic() + timeout
        next_resend = time.monotonic() + resend[1] if resend else None
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None
            wait = deadline - now
            if next_resend is not None:
                if now >= next_resend and resend is not None:
                    self.sip.sendto(resend[0], self.sbc)
                    next_resend = now + resend[1]
                wait = min(wait, max(0.001, next_resend - now))
            self.sip.settimeout(wait)
            try:
                data, _ = self.sip.recvfrom(65535)
            except socket.timeout:
                continue
            msg = SipMsg(data)
            self.seen.append(msg)
            if msg.method is not None:
                self._answer_request(msg)
                continue
            if until(msg):
                return msg

    def invite(self, sdp: bytes, timeout: float = 15.0, *, early: bool = False) -> SipMsg | None:
        """Send the INVITE and return the final response (provisional ones are skipped), or
        with ``early`` the first provisional response with a body (then `wait_final`)."""
        self.invite_branch = self.branch()
        self.invite_uri = f"sip:agent@127.0.0.1:{self.sbc[1]}"
        self.invite_data = self.build("INVITE", self.invite_uri, 1, self.invite_branch, body=sdp,
                                      content_type="application/sdp")
        self.sip.sendto(self.invite_data, self.sbc)
        self.got_provisional = False
        return self.wait_final(timeout, early=early)

    def wait_final(self, timeout: float = 15.0, *, early: bool = False) -> SipMsg | None:
        def wanted(msg: SipMsg) -> bool:
            if msg.get("call-id") != self.call_id or msg.cseq != (1, "INVITE"):
                return False
            if msg.status is not None and msg.status < 200:
                self.got_provisional = True
                return early and msg.status > 100 and bool(msg.body.strip())
            return True

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self.receive(wanted, min(0.5, deadline - time.monotonic()))
            if reply is not None:
                if reply.status is not None and 200 <= reply.status < 300:
                    self.to_tag = _tag(reply.get("to") or "")
                    contact = reply.get("contact")
                    self.remote_target = _uri_of(contact) if contact else self.invite_uri
                    self.routes = list(reversed(reply.all("record-route")))
                else:
                    self.to_tag = _tag(reply.get("to") or "")
                return reply
            # Timer A: retransmit until a provisional response; then only wait.
            if not self.got_provisional:
                self.sip.sendto(self.invite_data, self.sbc)
        return None

    def ack_2xx(self, cseq: int = 1) -> None:
        assert self.remote_target is not None
        self.sip.sendto(self.build("ACK", self.remote_target, cseq, self.branch(), routes=self.routes), self.sbc)

    def reinvite(self, sdp: bytes, cseq: int, timeout: float = 15.0) -> SipMsg | None:
        """A re-INVITE in the dialog; returns its final response (2xx: ACKed here)."""
        assert self.remote_target is not None
        branch = self.branch()
        data = self.build("INVITE", self.remote_target, cseq, branch, body=sdp,
                          content_type="application/sdp", routes=self.routes)
        self.sip.sendto(data, self.sbc)
        reply = self.receive(
            lambda m: m.get("call-id") == self.call_id and m.cseq == (cseq, "INVITE") and (m.status or 0) >= 200,
            timeout, resend=(data, 0.5))
        if reply is not None and reply.status is not None and 200 <= reply.status < 300:
            self.ack_2xx(cseq)
        elif reply is not None:
            # non-2xx: the ACK belongs to the INVITE's transaction (same branch and URI)
            self.sip.sendto(self.build("ACK", self.remote_target, cseq, branch, routes=self.routes), self.sbc)
        return reply

    def ack_non_2xx(self) -> None:
        """RFC 3261 §17.1.1.3: same branch and Request-URI as the INVITE, To with the tag."""
        self.sip.sendto(self.build("ACK", self.invite_uri, 1, self.invite_branch), self.sbc)

    def bye(self, timeout: float = 8.0) -> SipMsg | None:
        assert self.remote_target is not None
        data = self.build("BYE", self.remote_target, 9, self.branch(), routes=self.routes)
        self.sip.sendto(data, self.sbc)
        return self.receive(
            lambda m: m.get("call-id") == self.call_id and m.cseq == (9, "BYE") and (m.status or 0) >= 200,
            timeout, resend=(data, 0.5))

    # -- media ---------------------------------------------------------------------------

    def exchange(self, target: tuple[str, int], count: int, *, ssrc: int, first_seq: int = 4000,
                 protect: Callable[[bytes], bytes] = lambda p: p,
                 unprotect: Callable[[bytes], bytes | None] = lambda p: p,
                 tail: float = 2.0) -> tuple[dict[int, bytes], dict[int, bytes], list[bytes]]:
        """Send ``count`` G.711 packets 20 ms apart to ``target`` while reading what comes back.

        Returns (sent payload by sequence number, received payload by sequence number, packets
        that did not unprotect or parse)."""
        sent: dict[int, bytes] = {}
        received: dict[int, bytes] = {}
        bad: list[bytes] = []
        seq0, ts0 = first_seq, 320000 + 160 * first_seq
        start = time.monotonic()
        index = 0
        end = start + count * PTIME + tail
        while time.monotonic() < end:
            now = time.monotonic()
            if index < count and now >= start + index * PTIME:
                seq = (seq0 + index) & 0xFFFF
                payload = g711_frame(seq)
                sent[seq] = payload
                self.media.sendto(protect(rtp(seq, ts0 + 160 * index, ssrc, payload)), target)
                index += 1
                continue
            if index >= count and len(received) >= count:
                break
            wait = (start + index * PTIME - now) if index < count else (end - now)
            self.media.settimeout(max(0.001, wait))
            try:
                data, _ = self.media.recvfrom(4096)
            except socket.timeout:
                continue
            clear = unprotect(data)
            if clear is None or len(clear) < 12:
                bad.append(data)
                continue
            got_seq, got_ssrc = struct.unpack("!H4xI", clear[2:12])
            if got_ssrc != ssrc:
                bad.append(clear)
                continue
            received[got_seq] = clear[12:]
        return sent, received, bad


# -- the agent host: SIPp UAS with -rtp_echo -------------------------------------------------------

UAS_SDP = sipp.sdp("agent", (0, 101), ("a=ptime:20", "a=sendrecv"), telephone_event=101)


def agent_host(*, early: bool = False, reinvite: bool = False) -> str:
    """The agent host's scenario: 200 with plain RTP (``early``: a 183 with the same SDP
    2.5 s before it), the ACK, then (``reinvite``) an optional re-INVITE answered with the
    same SDP, and the BYE."""
    body = '  <recv request="INVITE" crlf="true"/>\n'
    if early:
        body += sipp.uas_answer("183 Session Progress", UAS_SDP) + '  <pause milliseconds="2500"/>\n'
    body += sipp.uas_answer("200 OK", UAS_SDP) + '  <recv request="ACK" crlf="true"/>\n'
    if reinvite:
        body += ('  <recv request="INVITE" optional="true" next="reinvite"/>\n'
                 '  <recv request="BYE" next="bye"/>\n'
                 '  <label id="reinvite"/>\n'
                 + sipp.uas_answer("200 OK", UAS_SDP, to_tag=False)
                 + '  <recv request="ACK" crlf="true"/>\n'
                 '  <recv request="BYE"/>\n'
                 '  <label id="bye"/>\n')
    else:
        body += '  <recv request="BYE"/>\n'
    return sipp.scenario("agent host (plain RTP, echo)", body + sipp.uas_bye_answer())


UAS = agent_host()


class _Base(SynchronousTestCase):
    trunk_srtp = "required"
    uses_sipp = True
    uas_scenario = UAS

    def setUp(self) -> None:
        if Policy is None:
            raise SkipTest("pylibsrtp is not installed")
        self.sipp_exe = sipp.require_sipp() if self.uses_sipp else None
        self.agent_port = free_port()
        # extra_toml lands right after the generated `local` trunk's agent_uri line.
        self.sbc = RunningSbc(f'srtp = "{self.trunk_srtp}"\n',
                              agent_uri=f"sip:{{user}}@127.0.0.1:{self.agent_port}").start()
        self.addCleanup(self.sbc.stop)
        self.pbx = Pbx(self.sbc.sip_port)
        self.addCleanup(self.pbx.close)

    def start_uas(self) -> tuple[subprocess.Popen[str], Path]:
        """SIPp as the agent host, listening on the port the SBC's agent_uri names.  Parallel
        test runs may take its media port between `free_port` and SIPp's bind: a SIPp that
        exits at start-up is started again on another media port (bounded)."""
        assert self.sipp_exe is not None
        scenario = self.sbc.dir / "uas.xml"
        scenario.write_text(self.uas_scenario)
        trace = self.sbc.dir / "uas_messages.log"
        output = ""
        for _ in range(3):
            uas = subprocess.Popen(
                [self.sipp_exe, "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(self.agent_port), "-t", "u1",
                 "-mi", "127.0.0.1", "-mp", str(free_media_port()), "-rtp_echo", "-m", "1", "-nostdin",
                 "-timeout", "40s", "-timeout_error", "-trace_msg", "-message_file", str(trace)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                cwd=self.sbc.dir)
            self.addCleanup(lambda uas=uas: uas.poll() is None and uas.kill())
            # SIPp binds its SIP and media sockets at start-up: give it a bounded moment.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and uas.poll() is None and not sipp.udp_port_taken(self.agent_port):
                time.sleep(0.05)
            time.sleep(0.2)  # an early exit (a media port taken) shows by now
            if uas.poll() is None:
                self.uas = uas
                return uas, trace
            output = uas.communicate()[0]
        self.fail(f"SIPp (the agent host) would not start:\n{output[-3000:]}")

    def require(self, msg: SipMsg | None, what: str) -> SipMsg:
        """``msg``, or fail with everything known: the PBX's last messages, SIPp's output
        (SIPp is stopped for that) and the SBC's log."""
        if msg is not None:
            return msg
        uas = getattr(self, "uas", None)
        out = ""
        if uas is not None:
            if uas.poll() is None:
                uas.kill()
            out = uas.communicate()[0] or ""
        self.fail(self.detail(f"{what}\nSIPp (agent host) exit {uas.returncode if uas else None}:\n{out[-3000:]}"))

    def finish_uas(self, uas: subprocess.Popen[str]) -> str:
        return sipp.finish(uas, 20)

    def hang_up(self, uas: subprocess.Popen[str]) -> None:
        """BYE ends the call on both legs: the agent host got its BYE, no call or media left."""
        bye = self.pbx.bye()
        self.require(bye, "no answer to BYE")
        assert bye is not None
        self.assertEqual(bye.status, 200)
        uas_out = self.finish_uas(uas)
        self.assertEqual(uas.returncode, 0, self.detail(f"UAS exit {uas.returncode}\n{uas_out[-2000:]}"))
        health = self.wait_call_gone()
        self.assertEqual((health.get("calls"), health.get("media", {}).get("sessions")), (0, 0), health)

    def media(self) -> dict[str, Any]:
        return self.sbc.health().get("media", {})

    def detail(self, extra: str = "") -> str:
        sip = "\n".join(m.raw.decode("utf-8", "replace")[:1500] for m in self.pbx.seen[-6:])
        return f"{extra}\nPBX saw:\n{sip}\nSBC log:\n{self.sbc.log_text()[-4000:]}"

    def assertNoKeysLogged(self, *keys: SrtpKeying) -> None:
        """SDES keys never appear in the SBC's log (issue 5), whoever made them."""
        log = self.sbc.log_text()
        self.assertIn("Starting reactor", log)  # the log is the real one
        for key in keys:
            self.assertNotIn(theirs_b64(key), log)
            self.assertNotIn(key.key.hex(), log)

    def wait_call_gone(self, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            health = self.sbc.health()
            if health.get("calls") == 0 and health.get("media", {}).get("sessions") == 0:
                break
            time.sleep(0.1)
        return health

    def agent_invite(self, trace: Path) -> str:
        """The INVITE the agent host received, from SIPp's message trace."""
        text = trace.read_text(errors="replace") if trace.exists() else ""
        start = text.find("INVITE sip:")
        return text[start:start + 4000] if start >= 0 else ""


class _SrtpCall(_Base):
    """A PBX speaking SRTP (the trunk requires it), the agent host plain RTP: the SBC bridges."""

    trunk_srtp = "required"
    suite = SUITE
    tag = 1
    decoys: tuple[str, ...] = ()

    def call_up(self, ours: SrtpKeying) -> tuple[SipMsg, AudioSdp, SrtpKeying]:
        """INVITE with ``ours``; checks the SBC's SRTP answer; returns (200, its audio, its key)."""
        reply = self.pbx.invite(offer_sdp(self.pbx.media_port, srtp=ours, tag=self.tag, decoys=self.decoys))
        self.require(reply, "no final response to the INVITE")
        assert reply is not None
        self.assertEqual(reply.status, 200, self.detail(reply.raw.decode("utf-8", "replace")))
        self.pbx.ack_2xx()
        # The answer toward the PBX: SRTP with the SBC's own key, same tag and suite.
        answer = AudioSdp(reply.body)
        self.assertEqual(answer.proto, "RTP/SAVP", reply.body)
        self.assertEqual(answer.address, "127.0.0.1", reply.body)
        theirs = self.sbc_key(answer, ours)
        return reply, answer, theirs

    def sbc_key(self, answer: AudioSdp, ours: SrtpKeying) -> SrtpKeying:
        self.assertEqual(len(answer.crypto), 1, answer.lines)
        parsed = parse_crypto_value(answer.crypto[0])
        self.assertIsNotNone(parsed, answer.crypto)
        assert parsed is not None
        tag, theirs = parsed
        self.assertEqual((tag, theirs.suite), (self.tag, self.suite))
        self.assertNotEqual(theirs.key, ours.key, "the SBC must use its own key toward the PBX")
        self.assertNotIn(theirs_b64(ours).encode(), b"\n".join(answer.lines),
                         "the PBX's key must not be echoed back")
        return theirs

    def audio(self, target: tuple[str, int], tx: Any, rx: Any, *, ssrc: int, first_seq: int = 4000,
              count: int = PACKETS) -> dict[str, Any]:
        """SRTP out under ``tx``, the echoes back under ``rx``: every echo unprotects to what
        was sent, and the relay counted both directions without auth failures."""
        before = self.media()
        sent, received, bad = self.pbx.exchange(target, count, ssrc=ssrc, first_seq=first_seq,
                                                protect=tx.protect, unprotect=_unprotector(rx))
        mid = self.media()
        self.assertEqual(bad, [], self.detail(f"{len(bad)} echoed packets did not unprotect"))
        self.assertGreaterEqual(len(received), count - 2,
                                self.detail(f"echoed {len(received)}/{count}; media {before} -> {mid}"))
        for seq, payload in received.items():
            self.assertEqual(payload, sent.get(seq), f"echoed payload of packet {seq} differs")
        self.assertGreaterEqual(mid["a_to_b"] - before["a_to_b"], count - 2, (before, mid))
        self.assertGreaterEqual(mid["b_to_a"] - before["b_to_a"], len(received), (before, mid))
        self.assertEqual(mid["srtp_auth_failures"] - before["srtp_auth_failures"], 0, (before, mid))
        return mid

    def refused_packet(self, target: tuple[str, int], session: Any, seq: int, ssrc: int) -> None:
        """One packet ``session`` protects is dropped at the relay, counted as an auth failure,
        and nothing comes back for it."""
        mid = self.media()
        self.pbx.media.sendto(session.protect(rtp(seq, 160 * seq, ssrc, g711_frame(seq))), target)
        deadline = time.monotonic() + 5
        after = mid
        while time.monotonic() < deadline:
            after = self.media()
            if after["srtp_auth_failures"] > mid["srtp_auth_failures"]:
                break
            time.sleep(0.05)
        self.assertEqual(after["srtp_auth_failures"] - mid["srtp_auth_failures"], 1, (mid, after))
        self.assertEqual(after["a_to_b"], mid["a_to_b"], "a packet under a wrong key was relayed")
        self.pbx.media.settimeout(0.5)
        try:
            echoed: bytes | None = self.pbx.media.recvfrom(4096)[0]
        except socket.timeout:
            echoed = None
        self.assertIsNone(echoed, "something came back for a packet under a wrong key")

    def assertPlainOffer(self, trace: Path, *keys: SrtpKeying) -> None:
        """The agent host was offered plain RTP, no key material at all."""
        offered = self.agent_invite(trace)
        self.assertIn("m=audio ", offered, self.detail(f"SIPp trace:\n{offered}"))
        m_line = next(line for line in offered.splitlines() if line.startswith("m=audio "))
        self.assertEqual(m_line.split()[2], "RTP/AVP", offered)
        self.assertNotIn("a=crypto", offered)
        for key in keys:
            self.assertNotIn(theirs_b64(key), offered)



class SrtpRequiredToPlainAgent(_SrtpCall):
    """SRTP from the PBX, plain RTP to the agent host, audio both ways, a wrong key refused."""

    def test_srtp_pbx_bridged_to_plain_rtp_agent(self) -> None:
        uas, trace = self.start_uas()
        ours = new_keying(self.suite)
        reply, answer, theirs = self.call_up(ours)
        self.audio(answer.target, _srtp(ours, inbound=False), _srtp(theirs, inbound=True), ssrc=0x5EC0DE01)
        self.refused_packet(answer.target, _srtp(new_keying(self.suite), inbound=False), 9000, 0xBAD0BAD0)
        self.hang_up(uas)
        self.assertPlainOffer(trace, ours, theirs)
        self.assertNoKeysLogged(ours, theirs)


class Srtp32ToPlainAgent(SrtpRequiredToPlainAgent):
    """The 32-bit tag suite, offered after a line the SBC cannot use (an MKI): the answer
    takes the usable line's tag."""

    suite = "AES_CM_128_HMAC_SHA1_32"
    tag = 7
    decoys = ("3 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd|2^20|1:4",)


class AeadGcm128ToPlainAgent(SrtpRequiredToPlainAgent):
    suite = "AEAD_AES_128_GCM"
    tag = 2
    decoys = ("1 F8_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd",)


class AeadGcm256ToPlainAgent(SrtpRequiredToPlainAgent):
    suite = "AEAD_AES_256_GCM"


UAS_REINVITE = agent_host(reinvite=True)


class SrtpReinvite(_SrtpCall):
    """Re-INVITEs on the SRTP leg: a refresh repeating the PBX's SDP keeps the SBC's key and
    the media flowing; a new PBX key (RFC 4568 §7.1.4) is used from the answer on, the old
    one is refused, and the SBC's own key toward the PBX stays (its rollover counter too)."""

    uas_scenario = UAS_REINVITE

    def test_refresh_then_rekey(self) -> None:
        uas, trace = self.start_uas()
        ours = new_keying(self.suite)
        first, answer, theirs = self.call_up(ours)
        tx, rx = _srtp(ours, inbound=False), _srtp(theirs, inbound=True)
        self.audio(answer.target, tx, rx, ssrc=0x11112222, count=20)

        # A refresh: the very same SDP again.
        refresh = self.pbx.reinvite(offer_sdp(self.pbx.media_port, srtp=ours, tag=self.tag), 2)
        self.require(refresh, "no answer to the refresh re-INVITE")
        assert refresh is not None
        self.assertEqual(refresh.status, 200, self.detail(refresh.raw.decode("utf-8", "replace")))
        again = AudioSdp(refresh.body)
        self.assertEqual((again.proto, again.target), ("RTP/SAVP", answer.target), refresh.body)
        self.assertEqual(self.sbc_key(again, ours), theirs, "a refresh must not change the SBC's key")
        self.audio(answer.target, tx, rx, ssrc=0x11112222, first_seq=4020, count=20)

        # The PBX re-keys (new o= version, new key): the old key is refused from the answer on.
        new = new_keying(self.suite)
        rekey = self.pbx.reinvite(offer_sdp(self.pbx.media_port, srtp=new, tag=self.tag, version=2), 3)
        self.require(rekey, "no answer to the re-keying re-INVITE")
        assert rekey is not None
        self.assertEqual(rekey.status, 200, self.detail(rekey.raw.decode("utf-8", "replace")))
        after = AudioSdp(rekey.body)
        self.assertEqual((after.proto, after.target), ("RTP/SAVP", answer.target), rekey.body)
        sbc_key = self.sbc_key(after, new)
        if sbc_key != theirs:
            rx = _srtp(sbc_key, inbound=True)  # the SBC may re-key too (RFC 4568 allows it)
        tx_new = _srtp(new, inbound=False)
        self.audio(answer.target, tx_new, rx, ssrc=0x11112222, first_seq=4040, count=20)
        self.refused_packet(answer.target, tx, 4100, 0x11112222)
        self.hang_up(uas)
        self.assertPlainOffer(trace, ours, new, theirs)


def theirs_b64(key: SrtpKeying) -> str:
    return crypto_value(1, key).split(b"inline:")[1].decode("ascii")


class SrtpOptionalPlainOffer(_Base):
    """An `optional` trunk that offers plain RTP gets plain RTP, audio both ways."""

    trunk_srtp = "optional"

    def test_plain_offer_plain_answer_audio_both_ways(self) -> None:
        uas, trace = self.start_uas()
        before = self.media()
        reply = self.pbx.invite(offer_sdp(self.pbx.media_port, srtp=None))
        self.require(reply, "no final response to the INVITE")
        assert reply is not None
        self.assertEqual(reply.status, 200, self.detail(reply.raw.decode("utf-8", "replace")))
        self.pbx.ack_2xx()
        answer = AudioSdp(reply.body)
        self.assertEqual(answer.proto, "RTP/AVP", reply.body)
        self.assertEqual(answer.crypto, [], reply.body)

        sent, received, bad = self.pbx.exchange(answer.target, PACKETS, ssrc=0x0A0B0C0D)
        mid = self.media()
        self.assertEqual(bad, [])
        self.assertGreaterEqual(len(received), PACKETS - 2,
                                self.detail(f"echoed {len(received)}/{PACKETS}; media {before} -> {mid}"))
        for seq, payload in received.items():
            self.assertEqual(payload, sent.get(seq), f"echoed payload of packet {seq} differs")
        self.assertGreaterEqual(mid["a_to_b"] - before.get("a_to_b", 0), PACKETS - 2, (before, mid))
        self.assertGreaterEqual(mid["b_to_a"] - before.get("b_to_a", 0), len(received), (before, mid))
        self.assertEqual(mid["srtp_auth_failures"], before.get("srtp_auth_failures", 0))

        self.hang_up(uas)
        offered = self.agent_invite(trace)
        self.assertIn("RTP/AVP", offered, offered)
        self.assertNotIn("a=crypto", offered)


class _Refused:
    """An offer the trunk's SRTP policy refuses: 488, and the agent host hears nothing.
    (A mixin, so that trial runs it only through the concrete classes below.)"""

    uses_sipp = False
    offer_srtp = False

    def offer_body(self: Any) -> bytes:
        return offer_sdp(self.pbx.media_port, srtp=new_keying(SUITE) if self.offer_srtp else None)

    def test_refused_with_488(self: Any) -> None:
        agent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(agent.close)
        agent.bind(("127.0.0.1", self.agent_port))
        reply = self.pbx.invite(self.offer_body(), timeout=10)
        self.require(reply, "no final response to the INVITE")
        assert reply is not None
        self.assertEqual(reply.status, 488, self.detail(reply.raw.decode("utf-8", "replace")))
        self.pbx.ack_non_2xx()
        agent.settimeout(0.5)
        try:
            leaked = agent.recvfrom(65535)[0]
        except socket.timeout:
            leaked = None
        if leaked is not None and leaked.startswith(b"OPTIONS "):
            leaked = None  # a ping, not the call
        self.assertIsNone(leaked, "the refused call reached the agent host")
        health = self.wait_call_gone()
        self.assertEqual((health.get("calls"), health.get("media", {}).get("sessions")), (0, 0), health)
        # The 488 is not retransmitted forever: the ACK matched it (no retransmission after 1.5 s).
        self.pbx.seen.clear()
        again = self.pbx.receive(lambda m: m.status == 488, 1.5)
        self.assertIsNone(again, "the 488 was retransmitted after the ACK")


class SrtpRequiredPlainOffer(_Refused, _Base):
    trunk_srtp = "required"
    offer_srtp = False


class SrtpOffPlainOnlySrtpOffer(_Refused, _Base):
    trunk_srtp = "off"
    offer_srtp = True


class SrtpOptionalSrtpOffer(SrtpRequiredToPlainAgent):
    """An `optional` trunk follows the PBX: an SDES offer gets SRTP, bridged as above."""

    trunk_srtp = "optional"


def rtcp_sender_report(ssrc: int) -> bytes:
    """A minimal RTCP SR (RFC 3550 §6.4.1) with no report blocks."""
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 0xE1234567, 0x89ABCDEF, 160000, 10, 1600)


class SrtpMediaDetails(_SrtpCall):
    """What an SRTP leg must survive besides a steady stream: the sequence number wrapping
    (rollover counter), a new SSRC, a replayed packet, SRTCP, and RFC 4733 digits inside SRTP
    (decoded after unprotect, not passed on to the agent host)."""

    def rtcp_target(self, answer: AudioSdp) -> tuple[str, int]:
        for raw in answer.lines:
            line = raw.decode("ascii", "replace").strip()
            if line.startswith("a=rtcp:"):
                return (answer.target[0], int(line[len("a=rtcp:"):].split()[0]))
        return (answer.target[0], answer.port + 1)

    def wait_media(self, before: dict[str, Any], key: str, grown: int, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        now = self.media()
        while time.monotonic() < deadline and now[key] - before[key] < grown:
            time.sleep(0.05)
            now = self.media()
        return now

    def test_rollover_ssrc_change_replay_srtcp_and_dtmf(self) -> None:
        uas, trace = self.start_uas()
        ours = new_keying(self.suite)
        reply, answer, theirs = self.call_up(ours)
        tx, rx = _srtp(ours, inbound=False), _srtp(theirs, inbound=True)

        # The 16-bit sequence number wraps in the middle of the burst: both SRTP hops (PBX ->
        # SBC and SBC -> PBX) must follow the rollover counter.
        self.audio(answer.target, tx, rx, ssrc=0x2222AAAA, first_seq=65530, count=20)
        # A second source (a new SSRC, as after a transfer on the PBX) needs no signalling.
        self.audio(answer.target, tx, rx, ssrc=0x3333BBBB, first_seq=100, count=10)

        # A replayed SRTP packet (RFC 3711 §3.3.2) is dropped and counted.
        replayed = tx.protect(rtp(200, 32000, 0x4444CCCC, g711_frame(200)))
        before = self.media()
        self.pbx.media.sendto(replayed, answer.target)
        first = self.wait_media(before, "a_to_b", 1)
        self.assertEqual(first["a_to_b"] - before["a_to_b"], 1, (before, first))
        self.pbx.media.settimeout(2.0)
        try:
            self.pbx.media.recvfrom(4096)  # its echo
        except socket.timeout:
            self.fail("no echo for the first copy")
        self.pbx.media.sendto(replayed, answer.target)
        second = self.wait_media(first, "srtp_auth_failures", 1)
        self.assertEqual(second["srtp_auth_failures"] - first["srtp_auth_failures"], 1, (first, second))
        self.assertEqual(second["a_to_b"], first["a_to_b"], "a replayed SRTP packet was relayed")

        # SRTCP to the RTCP port the SBC signalled: unprotected and relayed toward the agent host;
        # one under a wrong key is refused.
        rtcp_target = self.rtcp_target(answer)
        before = self.media()
        self.pbx.media.sendto(tx.protect_rtcp(rtcp_sender_report(0x2222AAAA)), rtcp_target)
        good = self.wait_media(before, "packets_relayed", 1)
        self.assertEqual(good["packets_received"] - before["packets_received"], 1, (before, good))
        self.assertEqual(good["packets_relayed"] - before["packets_relayed"], 1, (before, good))
        self.assertEqual(good["srtp_auth_failures"], before["srtp_auth_failures"], (before, good))
        wrong = _srtp(new_keying(self.suite), inbound=False)
        self.pbx.media.sendto(wrong.protect_rtcp(rtcp_sender_report(0x2222AAAA)), rtcp_target)
        bad = self.wait_media(good, "srtp_auth_failures", 1)
        self.assertEqual(bad["srtp_auth_failures"] - good["srtp_auth_failures"], 1, (good, bad))
        self.assertEqual(bad["packets_relayed"], good["packets_relayed"], (good, bad))

        # RFC 4733 digits inside SRTP (payload type 101 from our SDP): decoded once each, and the
        # telephone-events are kept from the agent host (so nothing of them is echoed back).
        stream = rtpgen.Stream(ssrc=0x2222AAAA, seq=(65530 + 20) & 0xFFFF, ts=(320000 + 160 * 65550) & 0xFFFFFFFF)
        rtpgen.dtmf_packets(stream, "1#", 101)
        before = self.media()
        start = time.monotonic()
        for at, packet in stream.packets:
            delay = start + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.pbx.media.sendto(tx.protect(packet), answer.target)
        digits = self.wait_media(before, "dtmf_events", 2)
        self.assertEqual(digits["dtmf_events"] - before["dtmf_events"], 2, (before, digits))
        self.assertEqual(digits["srtp_auth_failures"], before["srtp_auth_failures"], (before, digits))
        self.assertEqual(digits["a_to_b"], before["a_to_b"], "telephone-events were passed to the agent host")
        self.pbx.media.settimeout(0.5)
        try:
            echoed: bytes | None = self.pbx.media.recvfrom(4096)[0]
        except socket.timeout:
            echoed = None
        self.assertIsNone(echoed, "a telephone-event came back from the agent host")

        self.hang_up(uas)
        self.assertPlainOffer(trace, ours, theirs)


MKI_ONLY = "1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd|2^20|1:4"


class SrtpRequiredNoUsableCrypto(_Refused, _Base):
    """RTP/SAVP whose only crypto lines the SBC cannot use (MKI, unknown suite): 488."""

    trunk_srtp = "required"

    def offer_body(self) -> bytes:
        return offer_sdp(self.pbx.media_port, srtp=None,
                         decoys=(MKI_ONLY, "2 F8_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"))


class SrtpFeedbackProfile(SrtpRequiredToPlainAgent):
    """The PBX offers RTP/SAVPF (SDES with RTCP feedback); the agent host answers RTP/AVP, as
    many endpoints do.  RFC 3264 §6: the answer's transport must be the offer's, so the SBC's
    answer to the PBX must read RTP/SAVPF."""

    def call_up(self, ours: SrtpKeying) -> tuple[SipMsg, AudioSdp, SrtpKeying]:
        reply = self.pbx.invite(offer_sdp(self.pbx.media_port, srtp=ours, proto="RTP/SAVPF"))
        self.require(reply, "no final response to the INVITE")
        assert reply is not None
        self.assertEqual(reply.status, 200, self.detail(reply.raw.decode("utf-8", "replace")))
        self.pbx.ack_2xx()
        answer = AudioSdp(reply.body)
        self.assertEqual(answer.proto, "RTP/SAVPF", reply.body)
        return reply, answer, self.sbc_key(answer, ours)

    def assertPlainOffer(self, trace: Path, *keys: SrtpKeying) -> None:
        offered = self.agent_invite(trace)
        m_line = next((line for line in offered.splitlines() if line.startswith("m=audio ")), "")
        self.assertIn(m_line.split()[2:3], (["RTP/AVP"], ["RTP/AVPF"]), offered)
        self.assertNotIn("a=crypto", offered)


UAS_EARLY = agent_host(early=True)


class SrtpEarlyMedia(_SrtpCall):
    """Early media: the agent host answers in a 183, then in the 200.  The PBX gets SRTP with
    the SBC's key in the 183, audio flows both ways before the answer, and the 200 repeats the
    same key (a new one would break the SRTP context the PBX already uses)."""

    uas_scenario = UAS_EARLY

    def test_183_then_200_same_key_audio_before_answer(self) -> None:
        uas, trace = self.start_uas()
        ours = new_keying(self.suite)
        early = self.pbx.invite(offer_sdp(self.pbx.media_port, srtp=ours), early=True)
        self.require(early, "no 183 with SDP")
        assert early is not None
        self.assertEqual(early.status, 183, self.detail(early.raw.decode("utf-8", "replace")))
        early_sdp = AudioSdp(early.body)
        self.assertEqual(early_sdp.proto, "RTP/SAVP", early.body)
        theirs = self.sbc_key(early_sdp, ours)
        tx, rx = _srtp(ours, inbound=False), _srtp(theirs, inbound=True)
        self.audio(early_sdp.target, tx, rx, ssrc=0x6666EEEE, count=25)

        final = self.pbx.wait_final(15)
        self.require(final, "no final response after the 183")
        assert final is not None
        self.assertEqual(final.status, 200, self.detail(final.raw.decode("utf-8", "replace")))
        self.pbx.ack_2xx()
        answer = AudioSdp(final.body)
        self.assertEqual((answer.proto, answer.target), ("RTP/SAVP", early_sdp.target), final.body)
        self.assertEqual(self.sbc_key(answer, ours), theirs, "the 200 changed the SBC's key of the 183")
        self.audio(answer.target, tx, rx, ssrc=0x6666EEEE, first_seq=4025, count=25)
        self.hang_up(uas)
        self.assertPlainOffer(trace, ours, theirs)


class SrtpAgent(threading.Thread):
    """The agent host in Python, speaking SRTP: answers the SBC's INVITE with its own SDES key
    (the tag and suite the SBC offered), then echoes every SRTP packet back re-protected under
    that key, recording the clear payloads it saw.  Bounded: it stops at ``stop`` or after
    ``lifetime`` seconds."""

    def __init__(self, port: int, lifetime: float = 30.0) -> None:
        super().__init__(daemon=True)
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind(("127.0.0.1", port))
        self.media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.media.bind(("127.0.0.1", 0))
        self.key = new_keying(SUITE)
        self.invite: SipMsg | None = None
        self.offered: SrtpKeying | None = None
        self.got_ack = False
        self.got_bye = False
        self.clear: dict[int, bytes] = {}
        self.failures = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.lifetime = lifetime
        self._rx: Any = None
        self._tx = _srtp(self.key, inbound=False)

    def close(self) -> None:
        self.stop.set()
        if self.is_alive():
            self.join(5)
        self.sip.close()
        self.media.close()

    def _reply(self, msg: SipMsg, status: str, to_tag: str | None, body: bytes = b"") -> bytes:
        head = [f"SIP/2.0 {status}"] + [f"Via: {v}" for v in msg.all("via")]
        head += [f"From: {msg.get('from')}", f"To: {msg.get('to')}" + (f";tag={to_tag}" if to_tag else ""),
                 f"Call-ID: {msg.get('call-id')}", f"CSeq: {msg.get('cseq')}",
                 f"Contact: <sip:agent@127.0.0.1:{self.sip.getsockname()[1]}>"]
        if body:
            head.append("Content-Type: application/sdp")
        head.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body

    def _answer_sdp(self, tag: int) -> bytes:
        port = self.media.getsockname()[1]
        return ("v=0\r\no=agent 7 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                f"m=audio {port} RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
                "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
                f"a=crypto:{crypto_value(tag, self.key).decode()}\r\na=sendrecv\r\n").encode()

    def run(self) -> None:
        deadline = time.monotonic() + self.lifetime
        ok: bytes | None = None
        while not self.stop.is_set() and time.monotonic() < deadline:
            ready, _, _ = select.select([self.sip, self.media], [], [], 0.05)
            for sock in ready:
                try:
                    data, addr = sock.recvfrom(65535)
                except OSError:
                    continue
                if sock is self.media:
                    self._echo(data, addr)
                    continue
                msg = SipMsg(data)
                if msg.method == "INVITE" and self.invite is None:
                    self.invite = msg
                    offer = AudioSdp(msg.body)
                    chosen = next((p for p in map(parse_crypto_value, offer.crypto) if p is not None), None)
                    if chosen is None:
                        self.errors.append("the SBC offered no usable crypto line")
                        sock.sendto(self._reply(msg, "488 Not Acceptable Here", "agent1"), addr)
                        continue
                    tag, self.offered = chosen
                    self._rx = _srtp(self.offered, inbound=True)
                    ok = self._reply(msg, "200 OK", "agent1", self._answer_sdp(tag))
                    sock.sendto(ok, addr)
                elif msg.method == "INVITE" and ok is not None:
                    sock.sendto(ok, addr)  # a retransmission
                elif msg.method == "ACK":
                    self.got_ack = True
                elif msg.method == "BYE":
                    self.got_bye = True
                    sock.sendto(self._reply(msg, "200 OK", None), addr)
                elif msg.method is not None:
                    sock.sendto(self._reply(msg, "200 OK", None), addr)

    def _echo(self, data: bytes, addr: Any) -> None:
        if self._rx is None:
            self.failures += 1
            return
        try:
            clear = self._rx.unprotect(data)
        except SrtpLibError:
            self.failures += 1
            return
        self.clear[struct.unpack("!H", clear[2:4])[0]] = clear[12:]
        self.media.sendto(self._tx.protect(clear), addr)


class PlainPbxToSrtpAgent(_Base):
    """The other way round: a plain RTP PBX (``srtp = "off"``) and an agent host that requires
    SRTP (``[agent] srtp = "required"``).  The agent is offered RTP/SAVP with the SBC's key,
    answers with its own; the PBX's RTP is protected toward the agent and the agent's SRTP
    unprotected toward the PBX."""

    trunk_srtp = "off"
    uses_sipp = False

    def setUp(self) -> None:
        if Policy is None:
            raise SkipTest("pylibsrtp is not installed")
        self.agent_port = free_port()
        self.agent = SrtpAgent(self.agent_port)
        self.addCleanup(self.agent.close)
        extra = '[agent]\noptions_interval = 0\nsrtp = "required"\n'
        self.sbc = RunningSbc(f'srtp = "{self.trunk_srtp}"\n\n' + extra,
                              agent_uri=f"sip:{{user}}@127.0.0.1:{self.agent_port}").start()
        self.addCleanup(self.sbc.stop)
        self.pbx = Pbx(self.sbc.sip_port)
        self.addCleanup(self.pbx.close)
        self.agent.start()

    def test_plain_pbx_bridged_to_srtp_agent(self) -> None:
        before = self.media()
        reply = self.require(self.pbx.invite(offer_sdp(self.pbx.media_port, srtp=None)),
                             "no final response to the INVITE")
        self.assertEqual(reply.status, 200, self.detail(reply.raw.decode("utf-8", "replace") + str(self.agent.errors)))
        self.pbx.ack_2xx()
        answer = AudioSdp(reply.body)
        self.assertEqual((answer.proto, answer.crypto), ("RTP/AVP", []), reply.body)

        # What the agent host was offered: RTP/SAVP with exactly the SBC's key.
        invite = self.agent.invite
        assert invite is not None
        offered = AudioSdp(invite.body)
        self.assertEqual(offered.proto, "RTP/SAVP", invite.body)
        self.assertEqual(len(offered.crypto), 1, invite.body)
        self.assertNotIn(theirs_b64(self.agent.key).encode(), reply.raw, "the agent's key leaked to the PBX")

        sent, received, bad = self.pbx.exchange(answer.target, PACKETS, ssrc=0x7777FFFF)
        mid = self.media()
        self.assertEqual(bad, [])
        self.assertEqual(self.agent.failures, 0, "the agent could not unprotect what the SBC sent")
        self.assertGreaterEqual(len(self.agent.clear), PACKETS - 2, (before, mid))
        for seq, payload in self.agent.clear.items():
            self.assertEqual(payload, sent.get(seq), f"the agent got packet {seq} wrong")
        self.assertGreaterEqual(len(received), PACKETS - 2, (before, mid))
        for seq, payload in received.items():
            self.assertEqual(payload, sent.get(seq), f"echoed payload of packet {seq} differs")
        self.assertEqual(mid["srtp_auth_failures"], before["srtp_auth_failures"], (before, mid))

        bye = self.require(self.pbx.bye(), "no answer to BYE")
        self.assertEqual(bye.status, 200)
        self.assertTrue(self.agent.got_ack, "the agent host never got its ACK")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not self.agent.got_bye:
            time.sleep(0.05)
        self.assertTrue(self.agent.got_bye, "the agent host never got its BYE")
        health = self.wait_call_gone()
        self.assertEqual((health.get("calls"), health.get("media", {}).get("sessions")), (0, 0), health)
        assert self.agent.offered is not None
        self.assertNoKeysLogged(self.agent.key, self.agent.offered)


class SrtpReofferRefusedThenSuiteChange(_SrtpCall):
    """A re-offer the trunk's policy refuses (plain RTP on a `required` trunk) gets 488 and
    leaves the running SRTP media untouched; a later re-offer switching the suite
    (80-bit to 32-bit tag) gets the SBC's key for the new suite, and audio follows it."""

    uas_scenario = UAS_REINVITE

    def test_refused_plain_reoffer_then_suite_change(self) -> None:
        uas, trace = self.start_uas()
        ours = new_keying(self.suite)
        first, answer, theirs = self.call_up(ours)
        tx, rx = _srtp(ours, inbound=False), _srtp(theirs, inbound=True)
        self.audio(answer.target, tx, rx, ssrc=0x12121212, count=15)

        refused = self.require(self.pbx.reinvite(offer_sdp(self.pbx.media_port, srtp=None, version=2), 2),
                               "no answer to the plain re-offer")
        self.assertEqual(refused.status, 488, refused.raw)
        self.audio(answer.target, tx, rx, ssrc=0x12121212, first_seq=4015, count=15)

        self.suite = "AES_CM_128_HMAC_SHA1_32"
        new = new_keying(self.suite)
        changed = self.require(self.pbx.reinvite(offer_sdp(self.pbx.media_port, srtp=new, version=3), 3),
                               "no answer to the suite-changing re-offer")
        self.assertEqual(changed.status, 200, self.detail(changed.raw.decode("utf-8", "replace")))
        after = AudioSdp(changed.body)
        self.assertEqual((after.proto, after.target), ("RTP/SAVP", answer.target), changed.body)
        sbc_new = self.sbc_key(after, new)  # checks tag 1 and the new suite
        self.assertNotEqual(sbc_new.key, theirs.key)
        self.audio(answer.target, _srtp(new, inbound=False), _srtp(sbc_new, inbound=True),
                   ssrc=0x12121212, first_seq=4030, count=20)
        self.hang_up(uas)
        self.assertPlainOffer(trace, ours, new, theirs, sbc_new)
