# -*- test-case-name: tests.integration.test_replaces_e2e -*-
"""
Attended transfer end to end: the Replaces in an agent host's REFER reaches the PBX mapped.

A real SBC process between two plain UDP sockets on loopback, one playing the PBX, one the
agent host (SIPp cannot correlate two calls, which this needs).  Two calls are set up and
answered; the agent host REFERs call 1 with ``Refer-To: <...?Replaces=...>`` naming its own
dialog of call 2.  The PBX must receive the REFER in call 1's dialog with a Refer-To whose
Replaces names call 2 as the PBX knows it (its Call-ID, its tag as to-tag, the SBC's tag as
from-tag) and whose URI is the PBX's own Contact; nothing of the agent side may show.  The
PBX's 202 goes back to the agent host, both calls are hung up, and the SBC ends idle.
"""

from __future__ import annotations

import socket
import time
from typing import Callable

from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.message import Request, Response, parse_message
from sbc.sip.replaces import Replaces, embedded_replaces, escape_header_value

from .harness import RunningSbc, free_port

SDP = ("v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")


class Peer:
    """A UDP socket that sends SIP text and waits for a message matching a predicate."""

    def __init__(self, test: SynchronousTestCase, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        test.addCleanup(self.sock.close)
        self._branch = 0

    def branch(self) -> str:
        self._branch += 1
        return f"z9hG4bK-e2e-{self.port}-{self._branch}"

    def send(self, text: str, port: int) -> None:
        head, _, body = text.partition("\r\n\r\n")
        data = (head.replace("{len}", str(len(body.encode()))) + "\r\n\r\n" + body).encode()
        self.sock.sendto(data, ("127.0.0.1", port))

    def wait(self, what: Callable[[Request | Response], bool], timeout: float = 5.0) -> Request | Response:
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                break
            msg = parse_message(data)
            if what(msg):
                return msg
        raise AssertionError(f"port {self.port}: nothing matching arrived in {timeout}s")


def request(method: str) -> Callable[[Request | Response], bool]:
    return lambda m: isinstance(m, Request) and m.method == method


def response(status: int, method: str) -> Callable[[Request | Response], bool]:
    return lambda m: isinstance(m, Response) and m.status == status and m.cseq.method == method


def answer(peer: Peer, req: Request, status: int, port: int, *, tag: str = "", contact: str = "",
           body: str = "") -> None:
    """``status`` for ``req`` from ``peer``, back to ``port`` (the SBC)."""
    to = req.get("To").decode() + (f";tag={tag}" if tag else "")
    vias = "".join(f"Via: {v.decode()}\r\n" for v in req.get_all("Via"))
    extra = f"Contact: {contact}\r\n" if contact else ""
    extra += "Content-Type: application/sdp\r\n" if body else ""
    peer.send(f"SIP/2.0 {status} X\r\n{vias}From: {req.get('From').decode()}\r\nTo: {to}\r\n"
              f"Call-ID: {req.call_id}\r\nCSeq: {req.get('CSeq').decode()}\r\n{extra}"
              "Content-Length: {len}\r\n\r\n" + body, port)


class ReferReplacesE2E(SynchronousTestCase):
    def test_replaces_in_refer_to_reaches_the_pbx_mapped(self) -> None:
        agent_port = free_port()
        sbc = RunningSbc(agent_uri=f"sip:{{user}}@127.0.0.1:{agent_port}", extra_toml="allow_refer = true\n").start()
        self.addCleanup(sbc.stop)
        pbx = Peer(self, free_port())
        agent = Peer(self, agent_port)
        sip = sbc.sip_port
        calls = []
        for n in (1, 2):
            pbx.send(f"INVITE sip:agent{n}@127.0.0.1:{sip} SIP/2.0\r\n"
                     f"Via: SIP/2.0/UDP 127.0.0.1:{pbx.port};branch={pbx.branch()}\r\nMax-Forwards: 70\r\n"
                     f"From: <sip:pbx@127.0.0.1>;tag=pbx{n}\r\nTo: <sip:agent{n}@127.0.0.1>\r\n"
                     f"Call-ID: pbx-call-{n}@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
                     f"Contact: <sip:pbx@127.0.0.1:{pbx.port}>\r\nContent-Type: application/sdp\r\n"
                     "Content-Length: {len}\r\n\r\n" + SDP.format(port=30000 + 2 * n), sip)
            b_inv = agent.wait(request("INVITE"))
            answer(agent, b_inv, 200, sip, tag=f"ag{n}", contact=f"<sip:agent@127.0.0.1:{agent.port}>",
                   body=SDP.format(port=31000 + 2 * n))
            a_ok = pbx.wait(response(200, "INVITE"))
            self.assertIn(b"m=audio", a_ok.body)
            sbc_contact = a_ok.contacts[0].uri
            pbx.send(f"ACK {sbc_contact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{pbx.port};branch={pbx.branch()}\r\n"
                     f"Max-Forwards: 70\r\nFrom: <sip:pbx@127.0.0.1>;tag=pbx{n}\r\nTo: {a_ok.get('To').decode()}\r\n"
                     f"Call-ID: pbx-call-{n}@127.0.0.1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n", sip)
            agent.wait(request("ACK"))
            calls.append((b_inv, a_ok))
        (b1, a1_ok), (b2, a2_ok) = calls
        # The agent host transfers call 1 to call 2's party: Replaces names its view of call 2.
        rep = escape_header_value(f"{b2.call_id};to-tag={b2.from_.tag};from-tag=ag2")
        agent.send(f"REFER {b1.contacts[0].uri} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{agent.port};branch={agent.branch()}\r\nMax-Forwards: 70\r\n"
                   f"From: {b1.get('To').decode()};tag=ag1\r\nTo: {b1.get('From').decode()}\r\n"
                   f"Call-ID: {b1.call_id}\r\nCSeq: 1 REFER\r\nContact: <sip:agent@127.0.0.1:{agent.port}>\r\n"
                   f"Refer-To: <sip:someone@127.0.0.1:{agent.port}?Replaces={rep}>\r\n"
                   "Content-Length: 0\r\n\r\n", sip)
        refer = pbx.wait(request("REFER"))
        self.assertEqual((refer.call_id, refer.to.tag), ("pbx-call-1@127.0.0.1", "pbx1"))
        refer_to = refer.get("Refer-To")
        found = embedded_replaces(refer_to)
        assert found is not None, refer_to
        addr, replaces = found
        self.assertEqual(replaces, Replaces("pbx-call-2@127.0.0.1", "pbx2", a2_ok.to.tag))
        self.assertEqual(str(addr.uri).split("?")[0], f"sip:pbx@127.0.0.1:{pbx.port}")
        for leak in (b2.call_id.encode(), b"ag2", str(agent.port).encode()):
            self.assertNotIn(leak, refer_to)
        answer(pbx, refer, 202, sip)
        accepted = agent.wait(response(202, "REFER"))
        self.assertEqual(accepted.call_id, b1.call_id)
        # Both calls end: the PBX hangs up, the agent host answers the BYEs.
        for n, (b_inv, a_ok) in enumerate(calls, 1):
            pbx.send(f"BYE {a_ok.contacts[0].uri} SIP/2.0\r\n"
                     f"Via: SIP/2.0/UDP 127.0.0.1:{pbx.port};branch={pbx.branch()}\r\nMax-Forwards: 70\r\n"
                     f"From: <sip:pbx@127.0.0.1>;tag=pbx{n}\r\nTo: {a_ok.get('To').decode()}\r\n"
                     f"Call-ID: pbx-call-{n}@127.0.0.1\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n", sip)
            pbx.wait(response(200, "BYE"))
            bye = agent.wait(request("BYE"))
            answer(agent, bye, 200, sip)
        deadline = time.monotonic() + 10
        while sbc.health().get("calls") != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(sbc.health().get("calls"), 0)
        log = sbc.log_text()
        self.assertNotIn("Traceback", log)
        self.assertNotIn("internal-error", log)
