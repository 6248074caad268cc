# -*- test-case-name: tests.integration.test_auth_e2e -*-
"""
SIP digest authentication end to end through the running SBC (issue 4).

The SBC runs with the harness's trunk "local" (``allow`` 127.0.0.1 and ::1) plus a
digest-only trunk "carrier" (no ``allow``, ``[trunk.auth]`` with one user).  Callers bind to
127.0.0.3, which is inside no allowlist (all of 127.0.0.0/8 is loopback on Linux), so only
their credentials can admit them.

* A SIPp UAC (``-au``/``-ap``) sends an INVITE, gets 401 (``auth="true"``), ACKs it, sends
  the INVITE again with ``[authentication]`` and completes a call with a SIPp UAS playing the
  agent host; the agent host never sees the Authorization header.  SIPp 3.6.1 computes MD5
  only and answers the topmost challenge only, so these trunks offer ``["MD5"]`` and
  ``["MD5", "SHA-256"]``; its digest-uri defaults to ``sip:<remote_ip>:<port>``, which the
  SBC refuses (it must be the Request-URI), hence ``-auth_uri``.
* From a raw UDP socket: an INVITE answered with valid SHA-256 credentials is admitted (100
  Trying); the same Authorization re-sent on a new INVITE (a replayed nonce-count) is
  refused with 403; a wrong password gets 403; each refusal is logged as ``auth-failed``.
* The SBC's log holds no password, no Authorization value, digest response or nonce.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.digest import ClientCredentials, NonceCounter, authorize, challenges_in
from sbc.sip.message import Request, Response, parse_message

from . import sipp
from .harness import FQDN, RunningSbc, free_port

CALLER_IP = "127.0.0.3"
USER = "alice"
PASSWORD = "e2e-Digest-Pa55"

_OFFER = sipp.indented(sipp.sdp("user1", (0,)))
_CALLER_FROM = sipp.uac_from("sipp", "sipp")

_AUTH_UAC = sipp.scenario("UAC answering a 401 digest challenge", (
    sipp.uac_invite(_CALLER_FROM, "sipp", _OFFER)
    + sipp.expect_responses(100)
    + '  <recv response="401" auth="true"/>\n'
    # the ACK of the 401 belongs to the first INVITE's transaction: its Via, From and To
    + sipp.uac_ack("[last_From:]", uri=sipp.SERVICE_URI, via="[last_Via:]", routes=False)
    + sipp.uac_invite(_CALLER_FROM, "sipp", _OFFER, cseq=2, authentication=True)
    + sipp.expect_responses(100, 180, 183)
    + '  <recv response="200" rtd="true"/>\n'
    + sipp.uac_ack(_CALLER_FROM, 2, uri=sipp.SERVICE_URI, routes=False)
    + '  <pause milliseconds="300"/>\n'
    + sipp.uac_bye(_CALLER_FROM, 3, uri=sipp.SERVICE_URI, routes=False)
    + '  <recv response="200" crlf="true"/>\n'), doctype=True)

# The agent host: answers the INVITE at once (its message trace is checked for credentials).
_AGENT_UAS = sipp.scenario("agent host that must never see credentials", (
    '  <recv request="INVITE" crlf="true"/>\n'
    + sipp.uas_answer("200 OK", sipp.indented(sipp.sdp("agent", (0,), origin="1 1")), retrans=False)
    + '  <recv request="ACK" crlf="true"/>\n  <recv request="BYE"/>\n'
    + sipp.uas_bye_answer()), doctype=True)


def carrier_toml(agent_port: int, algorithms: str = "") -> str:
    return (
        '\n[[trunk]]\nname = "carrier"\n'
        f'agent_uri = "sip:{{user}}@127.0.0.1:{agent_port}"\n'
        "[trunk.auth]\n"
        f'realm = "{FQDN}"\n'
        f'users = {{{USER} = "{PASSWORD}"}}\n'
        + (f"algorithms = {algorithms}\n" if algorithms else "")
    )


def _branch() -> str:
    return f"z9hG4bK-e2e-{time.monotonic_ns():x}"


def raw_invite(port: int, local_port: int, call_id: str, cseq: int = 1, tag: str = "raw1",
               user: str = "agent42") -> Request:
    data = (
        f"INVITE sip:{user}@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {CALLER_IP}:{local_port};branch={_branch()};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:raw@{CALLER_IP}>;tag={tag}\r\n"
        f"To: <sip:{user}@127.0.0.1:{port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} INVITE\r\n"
        f"Contact: <sip:raw@{CALLER_IP}:{local_port}>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


class RawCaller:
    """A UDP socket on 127.0.0.3 that sends requests and collects responses."""

    def __init__(self, sbc_port: int) -> None:
        self.sbc_port = sbc_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((CALLER_IP, 0))
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def send(self, msg: Request) -> None:
        self.sock.sendto(msg.to_bytes(), ("127.0.0.1", self.sbc_port))

    def response(self, call_id: str, timeout: float = 3.0, skip: tuple[int, ...] = ()) -> Response | None:
        """The next response for ``call_id`` whose status is not in ``skip``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            msg = parse_message(data)
            if isinstance(msg, Response) and msg.call_id == call_id and msg.status not in skip:
                return msg
        return None

    def ack(self, invite: Request, response: Response) -> None:
        from sbc.sip.transaction import build_ack

        self.send(build_ack(invite, response))


def _secrets_in(text: str) -> list[str]:
    found = []
    for pattern in (PASSWORD, r"Authorization", r'response="', r"nonce=\""):
        if re.search(pattern, text):
            found.append(pattern)
    return found


class DigestEndToEnd(SynchronousTestCase):
    def start_sbc(self, algorithms: str = "") -> tuple[RunningSbc, int]:
        agent_port = free_port()
        sbc = RunningSbc(carrier_toml(agent_port, algorithms),
                         agent_uri=f"sip:{{user}}@127.0.0.1:{agent_port}").start()
        self.addCleanup(sbc.stop)
        return sbc, agent_port

    def sipp_call(self, algorithms: str = "") -> None:
        sipp.require_sipp()
        sbc, agent_port = self.start_sbc(algorithms)
        folder = Path(sbc.dir)
        (folder / "auth_uac.xml").write_text(_AUTH_UAC)
        (folder / "agent_uas.xml").write_text(_AGENT_UAS)
        sipp.run_pair(
            self, sbc, timeout=30, uac_ip=CALLER_IP, cwd=folder, stop_sbc=True,
            uas=["-sf", str(folder / "agent_uas.xml"), "-p", str(agent_port), "-trace_msg"],
            uac=["-sf", str(folder / "auth_uac.xml"), "-p", str(free_port()), "-s", "agent42", "-au", USER,
                 "-ap", PASSWORD, "-auth_uri", f"agent42@127.0.0.1:{sbc.sip_port}", "-recv_timeout", "10000"])
        log = sbc.log_text()
        self.assertEqual(_secrets_in(log), [], log[-3000:])
        [trace] = folder.glob("agent_uas_*messages.log")
        agent_saw = trace.read_text(errors="replace")
        self.assertIn("INVITE sip:agent42@", agent_saw)
        self.assertNotIn("Authorization", agent_saw)
        self.assertNotIn(PASSWORD, agent_saw)

    def test_sipp_md5_trunk_completes_a_call(self) -> None:
        self.sipp_call('["MD5"]')

    def test_sipp_takes_the_topmost_challenge(self) -> None:
        # SIPp 3.6.1 answers only the first WWW-Authenticate and only MD5: with the default
        # order (SHA-256 first, RFC 8760 §2.4) it gives up; an operator whose PBX is like
        # that lists MD5 first.
        self.sipp_call('["MD5", "SHA-256"]')

    def test_replayed_nonce_count_and_wrong_password_refused(self) -> None:
        sbc, _agent_port = self.start_sbc()
        caller = RawCaller(sbc.sip_port)
        self.addCleanup(caller.close)

        first = raw_invite(sbc.sip_port, caller.port, "e2e-first")
        caller.send(first)
        challenge = caller.response("e2e-first")
        self.assertIsNotNone(challenge, sbc.log_text()[-2000:])
        assert challenge is not None
        self.assertEqual(challenge.status, 401)
        algorithms = [c.algorithm for c in challenges_in(challenge)]
        self.assertEqual(algorithms, ["SHA-256", "MD5"])
        caller.ack(first, challenge)

        counter = NonceCounter()
        again = authorize(raw_invite(sbc.sip_port, caller.port, "e2e-first", cseq=2), challenges_in(challenge),
                          ClientCredentials(USER, PASSWORD), counter=counter)
        assert again is not None
        self.assertIn(b"algorithm=SHA-256", again.get("Authorization") or b"")
        caller.send(again)
        trying = caller.response("e2e-first")
        self.assertEqual(trying.status if trying else None, 100)

        # The very same Authorization on another INVITE: nonce-count 1 again.
        replay = raw_invite(sbc.sip_port, caller.port, "e2e-replay", tag="raw2").append_header(
            "Authorization", again.get("Authorization") or b"")
        caller.send(replay)
        refused = caller.response("e2e-replay")
        self.assertEqual(refused.status if refused else None, 403)

        # A wrong password on a fresh nonce.
        wrong = authorize(raw_invite(sbc.sip_port, caller.port, "e2e-wrong", tag="raw3"), challenges_in(challenge),
                          ClientCredentials(USER, "not-" + PASSWORD), counter=counter)
        assert wrong is not None
        caller.send(wrong)
        refused = caller.response("e2e-wrong")
        self.assertEqual(refused.status if refused else None, 403)

        sbc.stop()
        log = sbc.log_text()
        self.assertGreaterEqual(log.count("auth-failed"), 1, log[-3000:])
        self.assertIn("nonce-count", log)
        self.assertEqual(_secrets_in(log), [], log[-3000:])
