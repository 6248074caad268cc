"""
The demo agent host as a real process (``python -m twisted sbc-demo-agent``): SIPp calls
through a real SBC to it, and its RTP echo checked with plain sockets.
"""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import time

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from .harness import RunningSbc, TwistProcess, free_port, options_request, sipp_path, status_of, udp_exchange


_ENDED = re.compile(r"call \S+ ended after [0-9.]+s: BYE from the caller")


class RunningDemoAgent(TwistProcess):
    """A demo agent host process on 127.0.0.1."""

    name = "demo agent"

    def __init__(self, *args: str) -> None:
        super().__init__("sbc-demo-", "agent.log")
        self.port = free_port()
        low = random.randrange(30000, 39000, 100)
        self.rtp_ports = (low, low + 99)
        self.args = args

    def start(self, timeout: float = 20.0) -> "RunningDemoAgent":
        self.spawn(["sbc-demo-agent", "--listen", f"127.0.0.1:{self.port}",
                    "--rtp-ports", f"{self.rtp_ports[0]}-{self.rtp_ports[1]}", *self.args],
                   self.ping, timeout)
        return self

    def ping(self) -> bool:
        return status_of(udp_exchange(options_request(self.port), self.port, timeout=0.3)) == 200

    def cleanup(self) -> None:
        self.stop()


class SippThroughSbc(SynchronousTestCase):
    def run_calls(self, transport: str, calls: int = 5) -> None:
        sipp = sipp_path()
        if sipp is None:
            raise SkipTest("sipp is not installed (Debian package sip-tester)")
        agent = RunningDemoAgent().start()
        self.addCleanup(agent.cleanup)
        uri_transport = ";transport=tcp" if transport.startswith("t") else ""
        sbc = RunningSbc(agent_uri=f"sip:{{user}}@127.0.0.1:{agent.port}{uri_transport}").start()
        self.addCleanup(sbc.stop)
        uac = subprocess.run(
            [sipp, "-sn", "uac", "-s", "1000", "-i", "127.0.0.1", "-t", transport,
             "-m", str(calls), "-r", "5", "-nostdin", "-timeout", "60s", "-timeout_error",
             "-recv_timeout", "10000", f"127.0.0.1:{sbc.sip_port}"],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=90)
        # The SBC may answer the PBX's BYE before its own BYE reaches the agent: wait for
        # the agent to log every call's end before looking.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(_ENDED.findall(agent.log_text())) < calls:
            time.sleep(0.1)
        agent.stop()
        log = agent.log_text()
        detail = (f"UAC exit {uac.returncode}\n{uac.stdout[-2500:]}\n{uac.stderr[-1500:]}\n"
                  f"agent log:\n{log[-3000:]}\nSBC log:\n{sbc.log_text()[-3000:]}")
        self.assertEqual(uac.returncode, 0, detail)
        answered = re.findall(r"call \S+ answered: \S+ -> sip:1000@127\.0\.0\.1", log)
        ended = _ENDED.findall(log)
        self.assertEqual((len(answered), len(ended)), (calls, calls), detail)
        self.assertTrue(sbc.alive())

    def test_five_calls_udp(self) -> None:
        self.run_calls("u1")

    def test_five_calls_tcp(self) -> None:
        self.run_calls("t1")


def _invite(agent_port: int, local_port: int, call_id: str, sdp: bytes) -> bytes:
    return (
        f"INVITE sip:echo@127.0.0.1:{agent_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK-echo-1;rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:tester@127.0.0.1>;tag=t1\r\n"
        f"To: <sip:echo@127.0.0.1:{agent_port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:tester@127.0.0.1:{local_port}>\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(sdp)}\r\n\r\n"
    ).encode() + sdp


def _in_dialog(method: str, agent_port: int, local_port: int, call_id: str, to: str, cseq: int,
               branch: str) -> bytes:
    return (
        f"{method} sip:echo@127.0.0.1:{agent_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:tester@127.0.0.1>;tag=t1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _header(message: bytes, name: str) -> str:
    head = message.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    raise AssertionError(f"no {name} in {head}")


class RtpEchoDirect(SynchronousTestCase):
    def test_rtp_comes_back(self) -> None:
        agent = RunningDemoAgent().start()
        self.addCleanup(agent.cleanup)
        sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sip.close)
        sip.bind(("127.0.0.1", 0))
        sip.settimeout(5)
        local = sip.getsockname()[1]
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(rtp.close)
        rtp.bind(("127.0.0.1", 0))
        rtp.settimeout(5)
        sdp = (f"v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               f"m=audio {rtp.getsockname()[1]} RTP/AVP 0 101\r\n"
               "a=rtpmap:101 telephone-event/8000\r\n").encode()
        call_id = f"echo-{os.getpid()}@127.0.0.1"
        sip.sendto(_invite(agent.port, local, call_id, sdp), ("127.0.0.1", agent.port))
        replies = []
        while not replies or status_of(replies[-1]) != 200:
            replies.append(sip.recvfrom(65535)[0])
        self.assertEqual([status_of(r) for r in replies], [180, 200])
        ok = replies[-1]
        body = ok.split(b"\r\n\r\n", 1)[1]
        match = re.search(rb"^m=audio (\d+) RTP/AVP 0 101\r$", body, re.M)
        self.assertIsNotNone(match, body)
        assert match is not None
        port = int(match.group(1))
        self.assertTrue(agent.rtp_ports[0] <= port <= agent.rtp_ports[1], port)
        to = _header(ok, "To")
        sip.sendto(_in_dialog("ACK", agent.port, local, call_id, to, 1, "z9hG4bK-echo-2"),
                   ("127.0.0.1", agent.port))

        packet = bytes([0x80, 0x00, 0x00, 0x01]) + b"\x00\x00\x00\xa0" + b"\x12\x34\x56\x78" + b"\xff" * 160
        for seq in range(3):
            sent = packet[:2] + seq.to_bytes(2, "big") + packet[4:]
            rtp.sendto(sent, ("127.0.0.1", port))
            data, source = rtp.recvfrom(2048)
            self.assertEqual((data, source), (sent, ("127.0.0.1", port)))

        sip.sendto(_in_dialog("BYE", agent.port, local, call_id, to, 2, "z9hG4bK-echo-3"),
                   ("127.0.0.1", agent.port))
        reply = sip.recvfrom(65535)[0]
        self.assertEqual((status_of(reply), _header(reply, "CSeq")), (200, "2 BYE"))
        # The echo port is closed with the call: nothing comes back any more.
        rtp.settimeout(0.5)
        rtp.sendto(packet, ("127.0.0.1", port))
        try:
            echoed = rtp.recvfrom(2048)[0]
        except (socket.timeout, ConnectionRefusedError):
            echoed = None
        self.assertIsNone(echoed)
