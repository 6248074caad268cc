# -*- test-case-name: tests.test_cdr -*-
"""Tests for sbc.cdr: CDR records from finished calls, JSON lines, sinks and the writer."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, strategies as st
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import Logger, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from sbc.cdr import (
    CDR_FIELDS,
    CdrWriter,
    FileSink,
    LogSink,
    MemorySink,
    call_result,
    cdr_line,
    cdr_record,
    iso_utc,
)
from sbc.sip.message import Request

from .test_b2bua_harness import SDP_B, TRUNK, Net, PbxDialog, ack_2xx, cancel, invite, reply


def run_answered_call(net: Net, *, ring: float = 2.5, talk: float = 61.25) -> Any:
    """INVITE at t=1000, 180, 200 after ``ring`` seconds, ACK, BYE from the PBX after ``talk``."""
    a_inv = invite(extra="Authorization: Digest username=\"alice\", response=\"s3cret\"\r\n")
    net.from_pbx(a_inv)
    b_inv = next(m for m in net.agent_take() if isinstance(m, Request) and m.method == "INVITE")
    net.from_agent(reply(b_inv, 180))
    net.advance(ring)
    net.from_agent(reply(b_inv, 200, body=SDP_B))
    a_ok = next(m for m in net.pbx_take() if getattr(m, "status", 0) == 200)
    net.from_pbx(ack_2xx(a_inv, a_ok))
    b_ack = next(m for m in net.agent_take() if isinstance(m, Request) and m.method == "ACK")
    assert b_ack is not None
    net.advance(talk)
    net.from_pbx(PbxDialog(a_inv, a_ok).request("BYE"))
    b_bye = next(m for m in net.agent_take() if isinstance(m, Request) and m.method == "BYE")
    net.from_agent(reply(b_bye, 200))
    [call] = net.b2b.ended_calls()
    return call


class FakeLeg:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


class FakeCall:
    """Just the attributes a CDR reads."""

    def __init__(self, *, created: Any = 100.0, answered: Any = None, ended: Any = 130.0,
                 end_reason: Any = "bye-a", a_status: Any = 200, b_status: Any = 200,
                 trunk: Any = "pbx", call_id: Any = "c1", a: Any = None, b: Any = None) -> None:
        self.id = call_id
        self.trunk = trunk
        self.created = created
        self.answered = answered
        self.ended = ended
        self.end_reason = end_reason
        self.a_status = a_status
        self.b_status = b_status
        self.a = a
        self.b = b


class IsoTests(SynchronousTestCase):
    def test_examples(self) -> None:
        self.assertEqual(iso_utc(0), "1970-01-01T00:00:00.000Z")
        self.assertEqual(iso_utc(1700000000.5), "2023-11-14T22:13:20.500Z")
        self.assertEqual(iso_utc(1700000000.0004), "2023-11-14T22:13:20.000Z")

    def test_impossible_times_are_none(self) -> None:
        for value in (None, math.nan, math.inf, -math.inf, 1e300, "12", True):
            self.assertIsNone(iso_utc(value), value)  # type: ignore[arg-type]


class RecordFromRealCallTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.net = Net()
        self.call = run_answered_call(self.net)

    def test_fields(self) -> None:
        record = cdr_record(self.call, vendor="generic")
        self.assertEqual(tuple(record), CDR_FIELDS)
        self.assertEqual(record["call_id"], self.call.id)
        self.assertEqual(record["b_call_id"], self.call.id)  # the B leg's Call-ID is ours
        self.assertEqual(record["a_call_id"], "pbx-call-1@10.0.0.5")
        self.assertEqual((record["trunk"], record["vendor"], record["direction"]), ("pbx", "generic", "inbound"))
        self.assertEqual((record["caller"], record["callee"]), ("alice", "agent42"))
        self.assertEqual(record["start"], "1970-01-01T00:16:40.000Z")  # the harness starts at t=1000
        self.assertEqual(record["start_unix"], 1000.0)
        self.assertEqual(record["answer"], "1970-01-01T00:16:42.500Z")
        self.assertEqual(record["answer_unix"], 1002.5)
        self.assertEqual(record["end_unix"], 1063.75)
        self.assertEqual(record["end"], "1970-01-01T00:17:43.750Z")
        self.assertEqual(record["setup_time"], 2.5)
        self.assertEqual(record["duration"], 61.25)
        self.assertEqual((record["result"], record["end_reason"]), ("answered", "bye-a"))
        self.assertEqual((record["a_final_status"], record["b_final_status"]), (200, 200))

    def test_line_has_no_sdp_and_no_credentials(self) -> None:
        line = cdr_line(cdr_record(self.call, vendor="generic"))
        self.assertEqual(line.count("\n"), 1)
        self.assertTrue(line.endswith("\n"))
        self.assertEqual(json.loads(line)["callee"], "agent42")
        for secret in ("v=0", "m=audio", "s3cret", "Digest", "10.0.0.5 ", "RTP/AVP"):
            self.assertNotIn(secret, line)

    def test_cancelled_call(self) -> None:
        net = Net()
        a_inv = invite(call_id="pbx-call-2@10.0.0.5")
        net.from_pbx(a_inv)
        b_inv = next(m for m in net.agent_take() if isinstance(m, Request) and m.method == "INVITE")
        net.from_agent(reply(b_inv, 180))
        net.advance(4.0)
        net.from_pbx(cancel(a_inv))
        b_cancel = next(m for m in net.agent_take() if isinstance(m, Request) and m.method == "CANCEL")
        net.from_agent(reply(b_cancel, 200))
        net.from_agent(reply(b_inv, 487))
        net.settle()
        [call] = net.b2b.ended_calls()
        record = cdr_record(call)
        self.assertEqual((record["result"], record["end_reason"]), ("cancelled", "cancel"))
        self.assertEqual(record["a_final_status"], 487)
        self.assertIsNone(record["answer"])
        self.assertIsNone(record["answer_unix"])
        self.assertIsNone(record["setup_time"])
        self.assertEqual(record["duration"], 0.0)
        self.assertEqual(record["a_call_id"], "pbx-call-2@10.0.0.5")

    def test_busy_agent_is_rejected(self) -> None:
        net = Net()
        net.from_pbx(invite(call_id="pbx-call-3@10.0.0.5"))
        b_inv = next(m for m in net.agent_take() if isinstance(m, Request) and m.method == "INVITE")
        net.from_agent(reply(b_inv, 486))
        net.settle()
        [call] = net.b2b.ended_calls()
        record = cdr_record(call)
        self.assertEqual((record["result"], record["a_final_status"], record["b_final_status"]),
                         ("rejected", 486, 486))
        self.assertEqual(record["end_reason"], "failed-486")


class ResultTests(SynchronousTestCase):
    def test_classification(self) -> None:
        cases = [
            (dict(answered=105.0), "answered"),
            (dict(answered=105.0, end_reason="max-duration"), "answered"),
            (dict(end_reason="cancel", a_status=487, b_status=487), "cancelled"),
            (dict(end_reason=None, a_status=487, b_status=None), "cancelled"),
            (dict(end_reason="failed-486", a_status=486, b_status=486), "rejected"),
            (dict(end_reason="failed-603", a_status=603, b_status=603), "rejected"),
            (dict(end_reason="failed-404", a_status=404, b_status=404), "rejected"),
            (dict(end_reason="failed-408", a_status=480, b_status=408), "failed"),
            (dict(end_reason="failed-503", a_status=503, b_status=503), "failed"),
            (dict(end_reason="no-answer", a_status=480, b_status=None), "failed"),
            (dict(end_reason=None, a_status=None, b_status=None), "failed"),
        ]
        for kwargs, expected in cases:
            self.assertEqual(call_result(FakeCall(**kwargs)), expected, kwargs)


class RecordRobustnessTests(SynchronousTestCase):
    def test_missing_legs_give_nulls(self) -> None:
        record = cdr_record(FakeCall(a=None, b=None, end_reason=None))
        self.assertEqual(tuple(record), CDR_FIELDS)
        for key in ("caller", "callee", "a_call_id", "b_call_id", "vendor"):
            self.assertIsNone(record[key], key)
        self.assertEqual(record["end_reason"], "unknown")

    def test_unreadable_leg_fields_give_nulls(self) -> None:
        class Broken:
            @property
            def from_(self) -> Any:
                raise ValueError("bad From")

            parsed_uri = None
            call_id = b"bytes-call-id"

        record = cdr_record(FakeCall(a=FakeLeg(invite=Broken()), b=FakeLeg(call_id=None)))
        self.assertIsNone(record["caller"])
        self.assertIsNone(record["callee"])
        self.assertEqual(record["a_call_id"], "bytes-call-id")
        self.assertIsNone(record["b_call_id"])

    def test_odd_text_is_printable_and_bounded(self) -> None:
        uri = FakeLeg(user="evil%0D%0AX-Injected:%201" + "9" * 1000)
        a = FakeLeg(invite=FakeLeg(from_=FakeLeg(uri=uri), parsed_uri=uri, call_id="x\r\ny"))
        record = cdr_record(FakeCall(a=a))
        self.assertTrue(record["caller"].startswith("evil??X-Injected: 1"))
        self.assertEqual(len(record["caller"]), 256)
        self.assertEqual(record["a_call_id"], "x??y")
        self.assertEqual(cdr_line(record).count("\n"), 1)

    def test_bad_statuses_and_times(self) -> None:
        record = cdr_record(FakeCall(created=math.nan, answered="soon", ended=math.inf, a_status=True, b_status=99))
        self.assertIsNone(record["start"])
        self.assertIsNone(record["answer"])
        self.assertIsNone(record["end"])
        self.assertIsNone(record["a_final_status"])
        self.assertIsNone(record["b_final_status"])
        json.loads(cdr_line(record))

    def test_answered_without_end(self) -> None:
        record = cdr_record(FakeCall(answered=110.0, ended=None))
        self.assertIsNone(record["duration"])
        self.assertEqual(record["setup_time"], 10.0)

    @given(
        created=st.one_of(st.none(), st.floats(allow_nan=True), st.integers(), st.text(max_size=3)),
        answered=st.one_of(st.none(), st.floats(allow_nan=True), st.booleans()),
        ended=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        reason=st.one_of(st.none(), st.text(max_size=40)),
        a_status=st.one_of(st.none(), st.integers(-10, 1000), st.text(max_size=3)),
        b_status=st.one_of(st.none(), st.integers(-10, 1000)),
        trunk=st.one_of(st.none(), st.text(max_size=20), st.integers()),
        user=st.one_of(st.none(), st.text(max_size=300), st.binary(max_size=20)),
    )
    def test_never_raises_and_is_one_json_line(self, created: Any, answered: Any, ended: Any, reason: Any,
                                               a_status: Any, b_status: Any, trunk: Any, user: Any) -> None:
        uri = FakeLeg(user=user)
        a = FakeLeg(invite=FakeLeg(from_=FakeLeg(uri=uri), parsed_uri=uri, call_id=user))
        call = FakeCall(created=created, answered=answered, ended=ended, end_reason=reason,
                        a_status=a_status, b_status=b_status, trunk=trunk, a=a, b=FakeLeg(call_id=user))
        record = cdr_record(call, vendor="generic")
        line = cdr_line(record)
        self.assertEqual(line.count("\n"), 1)
        self.assertTrue(line.isascii())
        parsed = json.loads(line)
        self.assertEqual(tuple(parsed), CDR_FIELDS)
        self.assertIn(parsed["result"], ("answered", "cancelled", "rejected", "failed"))
        for key in ("duration", "setup_time"):
            self.assertTrue(parsed[key] is None or parsed[key] >= 0, (key, parsed[key]))


class FileSinkTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sbc-cdr-test-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = self.dir / "cdr.jsonl"

    def test_appends_line_buffered(self) -> None:
        self.path.write_text('{"old":1}\n')
        sink = FileSink(self.path)
        self.addCleanup(sink.close)
        writer = CdrWriter(sink, {"pbx": "teams"})
        writer.write(FakeCall(call_id="one"))
        # on disk before any close or flush: line buffering
        lines = self.path.read_text().splitlines()
        self.assertEqual(len(lines), 2)
        self.assertEqual(json.loads(lines[0]), {"old": 1})
        record = json.loads(lines[1])
        self.assertEqual((record["call_id"], record["vendor"]), ("one", "teams"))
        self.assertEqual(writer.written, 1)

    def test_reopen_after_rotation(self) -> None:
        sink = FileSink(self.path)
        self.addCleanup(sink.close)
        writer = CdrWriter(sink)
        writer.write(FakeCall(call_id="before"))
        rotated = self.dir / "cdr.jsonl.1"
        os.rename(self.path, rotated)
        writer.write(FakeCall(call_id="still-old-file"))  # the open file follows the rename
        writer.reopen()
        writer.write(FakeCall(call_id="after"))
        self.assertEqual([json.loads(x)["call_id"] for x in rotated.read_text().splitlines()],
                         ["before", "still-old-file"])
        self.assertEqual([json.loads(x)["call_id"] for x in self.path.read_text().splitlines()], ["after"])

    def test_unwritable_path_fails_at_construction(self) -> None:
        self.assertRaises(OSError, FileSink, self.dir / "missing" / "cdr.jsonl")
        self.assertRaises(OSError, FileSink, self.dir)

    def test_close_is_idempotent_and_write_after_close_reopens(self) -> None:
        sink = FileSink(self.path)
        sink.close()
        sink.close()
        sink.write_line("x\n", {})
        sink.close()
        self.assertEqual(self.path.read_text(), "x\n")


class WriterTests(SynchronousTestCase):
    def test_failing_sink_is_counted_and_logged_not_raised(self) -> None:
        class Full(MemorySink):
            def write_line(self, line: str, record: Any) -> None:
                raise OSError(28, "No space left on device")

            def reopen(self) -> None:
                raise OSError(2, "gone")

        writer = CdrWriter(Full())
        record = writer.write(FakeCall(call_id="lost"))
        self.assertEqual(record["call_id"], "lost")
        self.assertEqual((writer.written, writer.errors), (0, 1))
        writer.reopen()
        self.assertEqual(writer.errors, 2)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 2)

    def test_for_trunks_maps_vendors(self) -> None:
        sink = MemorySink()
        writer = CdrWriter.for_trunks(sink, [TRUNK])
        writer.write(FakeCall(trunk="pbx"))
        writer.write(FakeCall(trunk="gone-after-reload"))
        vendors = [json.loads(line)["vendor"] for line in sink.lines]
        self.assertEqual(vendors, ["generic", None])

    def test_shutdown_record_of_a_call_in_progress(self) -> None:
        sink = MemorySink()
        writer = CdrWriter(sink)
        record = writer.write(FakeCall(answered=110.0, ended=None, end_reason=None), end=200.0, end_reason="shutdown")
        self.assertEqual((record["end_unix"], record["duration"], record["end_reason"]), (200.0, 90.0, "shutdown"))
        # a call that did end keeps its own end
        record = writer.write(FakeCall(answered=110.0, ended=120.0), end=200.0, end_reason="shutdown")
        self.assertEqual((record["end_unix"], record["duration"], record["end_reason"]), (120.0, 10.0, "bye-a"))

    def test_close_and_reopen_reach_the_sink(self) -> None:
        sink = MemorySink()
        writer = CdrWriter(sink)
        writer.reopen()
        writer.close()
        self.assertEqual((sink.reopened, sink.closed), (1, True))


class LogSinkTests(SynchronousTestCase):
    def test_event_carries_the_record(self) -> None:
        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        writer = CdrWriter(LogSink(Logger(namespace="sbc.cdr")))
        writer.write(FakeCall(call_id="logged"))
        self.assertEqual(len(observer), 1)
        event = observer[0]
        self.assertEqual(event["log_namespace"], "sbc.cdr")
        self.assertEqual(event["cdr"]["call_id"], "logged")
        self.assertEqual(json.loads(event["cdr_json"])["call_id"], "logged")
