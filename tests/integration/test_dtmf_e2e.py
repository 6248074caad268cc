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

from twisted.trial.unittest import SynchronousTestCase

from . import rtpgen, sipp
from .harness import RunningSbc, free_media_port, free_port

HERE = Path(__file__).parent
TE_PT = 96  # not 101: the payload type must come from the SDP

SDP = sipp.sdp("user1", (0, TE_PT), ("a=ptime:20", "a=sendrecv"), telephone_event=TE_PT, events="0-16")
PBX_FROM = sipp.uac_from('"PBX"', "+15551230000")


def uac_scenario(actions: str) -> str:
    return sipp.scenario("dtmf uac", (
        sipp.uac_invite(PBX_FROM, "pbx", SDP)
        + sipp.expect_responses(100, 180)
        + '  <recv response="200" rrs="true"/>\n'
        + sipp.uac_ack(PBX_FROM)
        + f"{actions}\n"
        + sipp.uac_bye(PBX_FROM, 9)
        + '  <recv response="200"/>\n'))


def info_actions(digits: str) -> str:
    out = []
    for i, digit in enumerate(digits):
        out.append(
            sipp.uac_request("INFO", 2 + i, PBX_FROM, content_type="application/dtmf-relay",
                             body=sipp.indented(f"Signal={digit}\nDuration=160"))
            + '  <recv response="200"/>\n  <pause milliseconds="150"/>')
    return "\n".join(out) + '\n  <pause milliseconds="500"/>'


def play_actions(pcap: Path, seconds: float) -> str:
    return f"""  <nop>
    <action>
      <exec play_pcap_audio="{pcap}"/>
    </action>
  </nop>
  <pause milliseconds="{int(seconds * 1000)}"/>"""


UAS = sipp.scenario("agent host", (
    '  <recv request="INVITE" crlf="true"/>\n'
    + sipp.uas_answer("180 Ringing")
    + sipp.uas_answer("200 OK", SDP.replace("user1", "agent"))
    + '  <recv request="ACK" crlf="true"/>\n  <recv request="BYE"/>\n'
    + sipp.uas_bye_answer()))


class DtmfEndToEnd(SynchronousTestCase):
    def setUp(self) -> None:
        sipp.require_sipp()
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
        detail = sipp.run_pair(
            self, self.sbc,
            uas=["-sf", str(uas_xml), "-p", str(self.agent_port), "-mi", "127.0.0.1", "-mp", str(free_media_port()),
                 "-rtp_echo"],
            uac=["-sf", str(uac_xml), "-s", "agent", "-mi", "127.0.0.1", "-mp", str(free_media_port())])
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
