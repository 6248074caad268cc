# -*- test-case-name: tests.integration.test_sipp_flows -*-
"""
The B2BUA's call flows end to end between real SIPp peers, over UDP and over TCP.

Each flow is a pair of scenarios in ``bench/scenarios/flows/``: ``<flow>_pbx.xml`` (a UAC
playing the PBX, sending to the SBC) and ``<flow>_agent.xml`` (a UAS playing the agent host,
which the SBC's trunk points at).  The scenarios check what they receive with regular
expressions (``check_it`` / ``check_it_inverse``), so a wrong or missing header or body makes
the call fail and SIPp exit non-zero.  After both SIPp processes exit the test also checks
that each side counted every call successful, that the SBC is still alive, holds no call
any more (``/healthz``) and logged neither a traceback nor an internal error.

SIPp's message and error logs go to a work directory named in the failure message; it is
removed after a passing flow unless ``SBC_FLOWS_KEEP`` is set in the environment.

The agent side is started first and waits with ``-m N`` for its calls; the PBX side then
places N calls at a low rate.  Only processes started here are ever stopped, by their pid.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from twisted.logger import eventFromJSON, formatEvent
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from .harness import SCENARIOS, RunningSbc, free_port, sipp_path

FLOWS = SCENARIOS / "flows"

#: The SBC pings the agent host with OPTIONS; a SIPp UAS would take a ping for a new call
#: (and count it against -m), so the flows turn pinging off (tests/integration/
#: test_lifecycle.py covers the pings).
NO_PINGS = "\n[agent]\noptions_interval = 0\n"

#: Short SIP timers for the flows that wait for a timeout (Timer B = 64*T1 = 3.2 s).
FAST_TIMERS = "\n[sip]\nt1 = 0.05\nt2 = 0.5\nt4 = 0.5\n"


def _port_taken(host: str, port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(none)"
    return text[-limit:]


def _log_summary(text: str, lines: int = 60) -> str:
    """The SBC's JSON log as text lines, without start-up chatter and admin requests."""
    out = []
    for line in re.split(r"[\x1e\n]", text):  # twisted's JSON log: RS before each record
        if not line.strip():
            continue
        try:
            event = eventFromJSON(line)
        except ValueError:
            event = {"log_namespace": "", "log_format": "{line}", "line": line}
        message = formatEvent(event)
        if not message.strip() or "GET /healthz" in message or "starting on" in message or "Starting " in message:
            continue
        failure = event.get("log_failure")
        if failure is not None:
            message += "\n" + failure.getTraceback()
        namespace = event.get("log_namespace", "")
        out.append(f"{namespace}: {message}" if namespace else message)
    return "\n".join(out[-lines:])


_SUCCESS_RE = re.compile(r"Successful call +\| +\d+ +\| +(\d+)")


def _successes(path: Path) -> int | None:
    """Successful calls in SIPp's final statistics screen (None if it printed none)."""
    try:
        found = _SUCCESS_RE.findall(path.read_text(errors="replace"))
    except FileNotFoundError:
        return None
    return int(found[-1]) if found else None


def _health(sbc: RunningSbc) -> dict[str, object]:
    url = f"http://127.0.0.1:{sbc.admin_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return json.loads(reply.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as e:
        return json.loads(e.read())  # type: ignore[no-any-return]


if TYPE_CHECKING:
    _Base = SynchronousTestCase
else:
    _Base = object


class FlowTests(_Base):
    """One call flow over UDP and TCP, mixed into a test case that names the scenario pair
    (a mixin, so that trial does not collect it on its own)."""

    #: scenario base name: flows/<flow>_pbx.xml and flows/<flow>_agent.xml
    flow: ClassVar[str]
    #: PBX-side scenario when it is not <flow>_pbx.xml
    pbx_scenario: ClassVar[str | None] = None
    agent_scenario: ClassVar[str | None] = None
    calls: ClassVar[int] = 5
    rate: ClassVar[int] = 5
    #: appended to the generated config right after the trunk's keys, so it may start with
    #: more keys of that trunk, then open other tables
    extra_toml: ClassVar[str] = ""
    #: more command-line arguments for the PBX side
    pbx_args: ClassVar[tuple[str, ...]] = ()
    #: the longest a PBX-side call may wait for a message (SIPp -recv_timeout), ms
    recv_timeout: ClassVar[int] = 10_000
    #: False: the SBC must not call the agent at all; the agent side is stopped after the PBX
    #: side and must have received nothing
    agent_called: ClassVar[bool] = True
    #: run both peers (and the agent URI) on ::1 instead of 127.0.0.1
    ipv6: ClassVar[bool] = False

    def run_flow(self, transport: str, agent_transport: str | None = None) -> None:
        """Run the flow with the PBX side on ``transport`` ("u1" or "t1") and the agent side
        on ``agent_transport`` (default: the same)."""
        sipp = sipp_path()
        if sipp is None:
            raise SkipTest("sipp is not installed (Debian package sip-tester)")
        pbx_xml = FLOWS / (self.pbx_scenario or f"{self.flow}_pbx.xml")
        agent_xml = FLOWS / (self.agent_scenario or f"{self.flow}_agent.xml")
        work = Path(tempfile.mkdtemp(prefix=f"flow-{self.flow}-"))
        agent_port = free_port()
        agent_transport = agent_transport or transport
        agent_tcp = agent_transport.startswith("t")
        host = "::1" if self.ipv6 else "127.0.0.1"
        uri_host = f"[{host}]" if self.ipv6 else host
        uri_transport = ";transport=tcp" if agent_tcp else ""
        sbc = RunningSbc(agent_uri=f"sip:{{user}}@{uri_host}:{agent_port}{uri_transport}",
                         extra_toml=self.extra_toml + NO_PINGS).start()
        self.addCleanup(sbc.stop)

        common = ["-i", host, "-m", str(self.calls), "-nostdin",
                  "-timeout", "90s", "-timeout_error", "-trace_err", "-trace_msg"]
        agent_log = open(work / "agent.out", "w")
        self.addCleanup(agent_log.close)
        agent = subprocess.Popen(
            [sipp, "-sf", str(agent_xml), "-p", str(agent_port), "-t", agent_transport, *common,
             "-error_file", str(work / "agent_errors.log"),
             "-message_file", str(work / "agent_messages.log")],
            stdout=agent_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=work)
        self.addCleanup(lambda: agent.poll() is None and agent.kill())
        deadline = time.monotonic() + 10
        kind = socket.SOCK_STREAM if agent_tcp else socket.SOCK_DGRAM
        while not _port_taken(host, agent_port, kind) and time.monotonic() < deadline and agent.poll() is None:
            time.sleep(0.05)

        pbx_log = open(work / "pbx.out", "w")
        self.addCleanup(pbx_log.close)
        pbx = subprocess.Popen(
            [sipp, "-sf", str(pbx_xml), "-s", "agent", "-r", str(self.rate), "-t", transport, *common,
             "-recv_timeout", str(self.recv_timeout),
             "-error_file", str(work / "pbx_errors.log"),
             "-message_file", str(work / "pbx_messages.log"), *self.pbx_args,
             f"{uri_host}:{sbc.sip_port}"],
            stdout=pbx_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=work)
        self.addCleanup(lambda: pbx.poll() is None and pbx.kill())
        try:
            pbx.wait(120)
        except subprocess.TimeoutExpired:
            pbx.kill()
            pbx.wait()
        if not self.agent_called and agent.poll() is None:
            agent.terminate()
        try:
            agent.wait(30 if pbx.returncode == 0 else 5)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()

        # Every call must be gone from the SBC once both peers are done.
        health: dict[str, object] = {}
        deadline = time.monotonic() + 15
        while sbc.alive() and time.monotonic() < deadline:
            health = _health(sbc)
            if health.get("calls") == 0:
                break
            time.sleep(0.2)
        log = sbc.log_text()
        detail = (f"\n== {self.flow}: PBX over {transport}, agent over {agent_transport} ({host}); "
                  f"work dir {work}\n"
                  f"== PBX exit {pbx.returncode}\n{_tail(work / 'pbx.out', 1500)}\n"
                  f"== PBX errors\n{_tail(work / 'pbx_errors.log')}\n"
                  f"== agent exit {agent.returncode}\n{_tail(work / 'agent.out', 1500)}\n"
                  f"== agent errors\n{_tail(work / 'agent_errors.log')}\n"
                  f"== SBC health {health}\n== SBC log\n{_log_summary(log)}")
        self.assertEqual(pbx.returncode, 0, "PBX-side SIPp failed" + detail)
        if self.agent_called:
            self.assertEqual(agent.returncode, 0, "agent-side SIPp failed" + detail)
        else:
            agent_messages = work / "agent_messages.log"
            received = agent_messages.read_text(errors="replace") if agent_messages.exists() else ""
            self.assertNotIn("message received", received, "the agent host was called" + detail)
        self.assertEqual(_successes(work / "pbx.out"), self.calls, "PBX-side call count" + detail)
        if self.agent_called:
            self.assertEqual(_successes(work / "agent.out"), self.calls, "agent-side call count" + detail)
        self.assertTrue(sbc.alive(), "SBC died" + detail)
        self.assertEqual(health.get("calls"), 0, "calls left in the SBC" + detail)
        self.assertNotIn("Traceback", log, "SBC logged a traceback" + detail)
        self.assertFalse('"internal-error"' in log or "internal-error from" in log,
                         "SBC logged an internal error" + detail)
        if not os.environ.get("SBC_FLOWS_KEEP"):
            shutil.rmtree(work, ignore_errors=True)  # kept when the flow failed

    def test_udp(self) -> None:
        self.run_flow("u1")

    def test_tcp(self) -> None:
        self.run_flow("t1")


class TopologyHiding(FlowTests, SynchronousTestCase):
    """A basic call with SDP in which nothing of one side's topology reaches the other:
    Call-ID, Via, Record-Route and Contact of the PBX; Contact of the agent host."""

    flow = "topology"
    pbx_args = ("-cid_str", "pbx-%u-%p")


class LateOffer(FlowTests, SynchronousTestCase):
    """INVITE without SDP: the agent's 200 carries the offer, the PBX's ACK the answer, and
    the agent's ACK must carry that answer too."""

    flow = "late_offer"


class EarlyMedia(FlowTests, SynchronousTestCase):
    """183 with SDP, then 200: the PBX receives the 183 with the agent's SDP."""

    flow = "early_media"


class RingingWithoutSdp(FlowTests, SynchronousTestCase):
    """180 without SDP, then 200 with SDP."""

    flow = "ringing"


class Reject486(FlowTests, SynchronousTestCase):
    """486 Busy Here from the agent passes through to the PBX."""

    flow = "reject_486"


class Reject603(FlowTests, SynchronousTestCase):
    """603 Decline from the agent passes through to the PBX."""

    flow = "reject_603"


class Reject500(FlowTests, SynchronousTestCase):
    """500 from the agent becomes 503 with Retry-After toward the PBX."""

    flow = "reject_500"


class NoAnswer(FlowTests, SynchronousTestCase):
    """The agent host ignores the INVITE: Timer B (64*T1 = 3.2 s with T1 = 0.05 s) ends the B
    leg and the PBX gets 480 with Retry-After."""

    flow = "no_answer"
    extra_toml = FAST_TIMERS


class CancelWhileRinging(FlowTests, SynchronousTestCase):
    """CANCEL from the PBX while the agent rings: 200 and 487 to the PBX, CANCEL to the agent."""

    flow = "cancel"


class AgentHangsUp(FlowTests, SynchronousTestCase):
    """BYE from the agent reaches the PBX, which answers 200."""

    flow = "agent_bye"


class RingingTimeout(FlowTests, SynchronousTestCase):
    """The agent rings and never answers: at the no-answer timeout (2 s here) the PBX gets 480
    and the agent a CANCEL."""

    flow = "ringing_timeout"
    extra_toml = "\n[calls]\nno_answer_timeout = 2.0\n"


class HoldResume(FlowTests, SynchronousTestCase):
    """re-INVITE from the PBX: hold (a=sendonly) and resume, relayed and answered."""

    flow = "hold"


class UpdateFromAgent(FlowTests, SynchronousTestCase):
    """UPDATE from the agent host relayed to the PBX, and the PBX's answer back."""

    flow = "update"


class InfoAndMessage(FlowTests, SynchronousTestCase):
    """In-dialog INFO (application/dtmf-relay) and MESSAGE from the PBX relayed with body."""

    flow = "info_message"


class CancelCrossedBy200(FlowTests, SynchronousTestCase):
    """The agent's 200 crosses the SBC's CANCEL: the PBX still gets 487, and the SBC ACKs the
    agent's 200 and hangs that leg up with BYE."""

    flow = "cancel_race"


class OfferlessReinvite(FlowTests, SynchronousTestCase):
    """re-INVITE without SDP from the PBX: the agent's offer in the 200, the PBX's answer in
    the ACK, relayed end to end."""

    flow = "reinvite_no_sdp"


class AgentHoldResume(FlowTests, SynchronousTestCase):
    """re-INVITE from the agent host (hold, resume) relayed to the PBX."""

    flow = "agent_hold"


class UpdateFromPbx(FlowTests, SynchronousTestCase):
    """UPDATE from the PBX relayed to the agent host."""

    flow = "pbx_update"


class ReinviteGlare(FlowTests, SynchronousTestCase):
    """Both sides re-INVITE at once: the SBC answers the agent's 491 and completes the PBX's."""

    flow = "glare"


class InfoFromAgent(FlowTests, SynchronousTestCase):
    """In-dialog INFO from the agent host relayed to the PBX."""

    flow = "agent_info"


class RecordRoute(FlowTests, SynchronousTestCase):
    """Record-Route on each leg stays on that leg: echoed in the SBC's 200 to the PBX and
    used as Route for in-dialog requests on both legs, never copied to the other leg."""

    flow = "record_route"


class RecordRouteEchoed(FlowTests, SynchronousTestCase):
    """The SBC's 200 on the A leg carries the PBX's Record-Route (RFC 3261 §12.1.1)."""

    flow = "record_route_echo"
    agent_scenario = "record_route_agent.xml"


class MixedTransportsPbxOffer(FlowTests, SynchronousTestCase):
    """Hold and resume from the PBX with the legs on different transports: test_udp runs the
    PBX over UDP and the agent over TCP, test_tcp the other way round."""

    flow = "hold"

    def test_udp(self) -> None:
        self.run_flow("u1", agent_transport="t1")

    def test_tcp(self) -> None:
        self.run_flow("t1", agent_transport="u1")


class MixedTransportsAgentOffer(FlowTests, SynchronousTestCase):
    """Hold and resume from the agent host with the legs on different transports (as
    :class:`MixedTransportsPbxOffer`)."""

    flow = "agent_hold"

    def test_udp(self) -> None:
        self.run_flow("u1", agent_transport="t1")

    def test_tcp(self) -> None:
        self.run_flow("t1", agent_transport="u1")


class Ipv6(FlowTests, SynchronousTestCase):
    """A call over IPv6 on both legs; the B leg's Via and Contact are IPv6."""

    flow = "ipv6"
    ipv6 = True


class SlowAck(FlowTests, SynchronousTestCase):
    """The PBX ACKs 2 s late: the call survives, the ACK reaches the agent end to end."""

    flow = "slow_ack"


class Ipv6ViaAndContact(FlowTests, SynchronousTestCase):
    """Over IPv6 the B leg's Via sent-by and Contact are IPv6 addresses of the SBC."""

    flow = "ipv6_family"
    pbx_scenario = "ipv6_pbx.xml"
    ipv6 = True


class Reject302(FlowTests, SynchronousTestCase):
    """A 3xx from the agent host is not followed: the PBX gets 480."""

    flow = "reject_302"


class CancelAfter100(FlowTests, SynchronousTestCase):
    """CANCEL while the agent host has only sent 100 Trying."""

    flow = "cancel_after_100"


class CancelBeforeProvisional(FlowTests, SynchronousTestCase):
    """CANCEL before the agent host answered anything: the SBC holds its CANCEL until the
    first provisional response (RFC 3261 §9.1)."""

    flow = "cancel_early"


class ReferRefused(FlowTests, SynchronousTestCase):
    """REFER from the agent host to a trunk without allow_refer is refused; the call goes on."""

    flow = "refer_refused"


class ReferRelayed(FlowTests, SynchronousTestCase):
    """REFER from the agent host relayed to a trunk with allow_refer = true; the PBX's 202 and
    NOTIFY come back."""

    flow = "refer_relayed"
    extra_toml = "allow_refer = true\n"

    def run_flow(self, transport: str, agent_transport: str | None = None) -> None:
        from sbc.b2bua.core import B2bua

        if "REFER" not in B2bua.methods:
            raise SkipTest("the B2BUA does not relay REFER yet (sbc/b2bua: REFER not in B2bua.methods)")
        super().run_flow(transport, agent_transport)


def _session_timers() -> bool:
    import inspect

    from sbc.b2bua.core import B2bua

    return "session_timer" in inspect.signature(B2bua.__init__).parameters


class SessionTimerPbxRefreshes(FlowTests, SynchronousTestCase):
    """RFC 4028 on the A leg: the PBX's 90 s interval with refresher=uac is granted
    (Session-Expires, Require: timer) and its refresh re-INVITE answered."""

    flow = "session_timer"

    def run_flow(self, transport: str, agent_transport: str | None = None) -> None:
        if not _session_timers():
            raise SkipTest("the B2BUA has no session timers yet")
        super().run_flow(transport, agent_transport)


class SessionIntervalTooSmall(FlowTests, SynchronousTestCase):
    """RFC 4028: Session-Expires below the SBC's Min-SE gets 422 with Min-SE; the agent host
    is never called."""

    flow = "session_timer_422"
    agent_called = False

    def run_flow(self, transport: str, agent_transport: str | None = None) -> None:
        if not _session_timers():
            raise SkipTest("the B2BUA has no session timers yet")
        super().run_flow(transport, agent_transport)


class LargeInvite(FlowTests, SynchronousTestCase):
    """An INVITE over 1300 bytes reaches the agent host and the call completes."""

    flow = "large_invite"



class InDialogFailures(FlowTests, SynchronousTestCase):
    """A re-INVITE refused 488 and an INFO refused 415 by the agent reach the PBX with those
    statuses, and the call stays up."""

    flow = "in_dialog_errors"
