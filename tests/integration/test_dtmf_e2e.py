"""
DTMF end to end: a SIPp UAC (the PBX) calls through the SBC to a SIPp UAS (the agent host,
echoing RTP), plays RFC 4733 telephone-events from a pcap or sends SIP INFO, and a real
WebSocket client subscribed to ``/v1/events`` must receive exactly one audit event per key
and the buffered digits as one text event, with the right trigger (``#``, idle, speech).
The media relay's counters show RTP crossing the SBC in both directions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from . import rtpgen
from .harness import RunningSbc, free_port, sipp_path

HERE = Path(__file__).parent
TE_PT = 96  # not 101: the payload type must come from the SDP

SDP = f"""v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 {TE_PT}
a=rtpmap:0 PCMU/8000
a=rtpmap:{TE_PT} telephone-event/8000
a=fmtp:{TE_PT} 0-16
a=ptime:20
a=sendrecv
"""


def _len() -> str:
    return "Content-Length: [len]"


def uac_scenario(actions: str) -> str:
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="dtmf uac">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "PBX" <sip:+15551230000@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:pbx@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      {_len()}

{SDP}
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "PBX" <sip:+15551230000@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
{actions}
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "PBX" <sip:+15551230000@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: 9 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""


def info_actions(digits: str) -> str:
    out = []
    for i, digit in enumerate(digits):
        out.append(f"""  <send retrans="500">
    <![CDATA[
      INFO [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "PBX" <sip:+15551230000@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: {2 + i} INFO
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      {_len()}

      Signal={digit}
      Duration=160
    ]]>
  </send>
  <recv response="200"/>
  <pause milliseconds="150"/>""")
    return "\n".join(out) + '\n  <pause milliseconds="500"/>'


def play_actions(pcap: Path, seconds: float) -> str:
    return f"""  <nop>
    <action>
      <exec play_pcap_audio="{pcap}"/>
    </action>
  </nop>
  <pause milliseconds="{int(seconds * 1000)}"/>"""


UAS = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="agent host">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:agent@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:agent@[local_ip]:[local_port]>
      Content-Type: application/sdp
      {_len()}

{SDP.replace("user1", "agent")}
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""


class DtmfEndToEnd(SynchronousTestCase):
    def setUp(self) -> None:
        self.sipp = sipp_path()
        if self.sipp is None:
            raise SkipTest("sipp is not installed (Debian package sip-tester)")
        self.agent_port = free_port()
        self.sbc = RunningSbc(agent_uri=f"sip:{{user}}@127.0.0.1:{self.agent_port}").start()
        self.addCleanup(self.sbc.stop)
        self.dir = self.sbc.dir

    def call(self, name: str, actions: str, listen_seconds: float) -> list[dict[str, Any]]:
        """Run one call with ``actions`` after the ACK; return the agent events seen."""
        uac_xml = self.dir / f"{name}_uac.xml"
        uac_xml.write_text(uac_scenario(actions))
        uas_xml = self.dir / "uas.xml"
        uas_xml.write_text(UAS)
        events_file = self.dir / f"{name}.jsonl"
        ws = subprocess.Popen(
            [sys.executable, str(HERE / "ws_listen.py"), f"ws://127.0.0.1:{self.sbc.admin_port}/v1/events",
             str(events_file), str(listen_seconds)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: ws.poll() is None and ws.kill())
        line = ws.stdout.readline() if ws.stdout is not None else ""
        if line.strip() != "connected":
            self.fail(f"WebSocket client: {line}{ws.stdout.read() if ws.stdout else ''}")
        uas_media = free_port()
        uas = subprocess.Popen(
            [self.sipp, "-sf", str(uas_xml), "-i", "127.0.0.1", "-p", str(self.agent_port), "-t", "u1",
             "-mi", "127.0.0.1", "-mp", str(uas_media), "-rtp_echo", "-m", "1", "-nostdin",
             "-timeout", "60s", "-timeout_error"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: uas.poll() is None and uas.kill())
        uac_media = free_port()
        uac = subprocess.run(
            [self.sipp, "-sf", str(uac_xml), "-i", "127.0.0.1", "-t", "u1", "-s", "agent",
             "-mi", "127.0.0.1", "-mp", str(uac_media), "-m", "1", "-nostdin", "-timeout", "60s",
             "-timeout_error", f"127.0.0.1:{self.sbc.sip_port}"],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=90)
        try:
            uas_out, _ = uas.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            uas.kill()
            uas_out, _ = uas.communicate()
        detail = (f"UAC exit {uac.returncode}\n{uac.stdout[-2000:]}\n{uac.stderr[-1000:]}\n"
                  f"UAS exit {uas.returncode}\n{uas_out[-2000:]}\nSBC log:\n{self.sbc.log_text()[-3000:]}")
        self.assertEqual(uac.returncode, 0, detail)
        self.assertEqual(uas.returncode, 0, detail)
        # the call.ended event closes the call's story: wait for it (bounded)
        deadline = time.monotonic() + 10
        events: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()] \
                if events_file.exists() else []
            if any(e.get("type") == "call.ended" for e in events):
                break
            time.sleep(0.1)
        ws.kill()
        ws.wait()
        self.detail = detail
        return events

    def assertDigits(self, events: list[dict[str, Any]], keys: str, text: str, trigger: str) -> None:
        audits = [e for e in events if e["type"] == "input_audio_buffer.dtmf_event_received"]
        texts = [e for e in events if e["type"] == "conversation.item.create"]
        self.assertEqual([a["event"] for a in audits], list(keys), (events, getattr(self, "detail", "")))
        for a in audits:
            self.assertIsInstance(a["received_at"], int)
            self.assertLess(abs(a["received_at"] - time.time()), 120)
        self.assertEqual(len(texts), 1, events)
        item = texts[0]["item"]
        self.assertEqual((item["type"], item["role"]), ("message", "user"))
        self.assertEqual(item["content"], [{"type": "input_text", "text": text}])
        self.assertEqual(texts[0]["trigger"], trigger)
        call_ids = {e["call_id"] for e in events}
        self.assertEqual(len(call_ids), 1, events)
        types = [e["type"] for e in events]
        self.assertEqual((types[0], types[-1]), ("call.started", "call.ended"))

    def media(self) -> dict[str, Any]:
        return self.sbc.health().get("media", {})

    def test_rfc4733_digits_and_hash(self) -> None:
        stream = rtpgen.Stream()
        rtpgen.silence_packets(stream, 600)
        rtpgen.dtmf_packets(stream, "123#", TE_PT)
        rtpgen.silence_packets(stream, 200)
        pcap = self.dir / "dtmf_123hash.pcap"
        rtpgen.write_pcap(pcap, stream.packets)
        before = self.media()
        events = self.call("rfc4733", play_actions(pcap, 3.0), 20)
        self.assertDigits(events, "123#", "123", "#")
        after = self.media()
        # RTP crossed the SBC both ways: the PBX's toward the agent, the agent's echo back
        self.assertGreater(after.get("a_to_b", 0) - before.get("a_to_b", 0), 20, (before, after, self.detail))
        self.assertGreater(after.get("b_to_a", 0) - before.get("b_to_a", 0), 20, (before, after, self.detail))
        # telephone-events were not passed to the agent as tones: 4 keys x (5 + 3) packets kept back
        self.assertGreaterEqual(after.get("dtmf_events", 0) - before.get("dtmf_events", 0), 4)

    def test_sip_info_digits_and_hash(self) -> None:
        events = self.call("info", info_actions("123#"), 20)
        self.assertDigits(events, "123#", "123", "#")

    def test_idle_submit(self) -> None:
        stream = rtpgen.Stream()
        rtpgen.dtmf_packets(stream, "45", TE_PT)
        pcap = self.dir / "dtmf_45.pcap"
        rtpgen.write_pcap(pcap, stream.packets)
        events = self.call("idle", play_actions(pcap, 4.0), 20)
        self.assertDigits(events, "45", "45", "idle")

    def test_speech_submits(self) -> None:
        stream = rtpgen.Stream()
        rtpgen.silence_packets(stream, 400)
        rtpgen.dtmf_packets(stream, "67", TE_PT)
        rtpgen.silence_packets(stream, 200)
        rtpgen.speech_packets(stream, 800)
        pcap = self.dir / "dtmf_67_speech.pcap"
        rtpgen.write_pcap(pcap, stream.packets)
        events = self.call("speech", play_actions(pcap, 2.5), 20)
        self.assertDigits(events, "67", "67", "speech")
