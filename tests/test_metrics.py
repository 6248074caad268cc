# -*- test-case-name: tests.test_metrics -*-
"""Tests for sbc.metrics and sbc.observe: families and values from fake running objects, the
traffic tap, /metrics and /readyz, the drain loop, SIGHUP and the service wiring."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from sbc.cdr import CdrWriter, FileSink, LogSink, MemorySink
from sbc.config import load_config_text
from sbc.metrics import ADMISSION_REASONS, SbcMetrics, SipTrafficTap, message_kind
from sbc.observe import Observability, attach_observability, build_cdr_writer
from sbc.service import build_service
from sbc.sip.message import Request

from .test_admin import get
from .test_b2bua_harness import TRUNK, Net, invite
from .test_cdr import FakeCall


def samples(metrics: SbcMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.exposition()
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics: SbcMetrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


class FakeB2bua:
    def __init__(self) -> None:
        self.calls: dict[str, Any] = {}
        self.accepting = True
        self.ended: list[Any] = []
        self.transactions = 0
        self.out: list[tuple[Any, Any]] = []

    def counts(self) -> dict[str, int]:
        return {"calls": len(self.calls), "dialogs": 2 * len(self.calls), "transactions": self.transactions,
                "timers": 0, "tx_bindings": 0}

    def ended_calls(self) -> list[Any]:
        out, self.ended = self.ended, []
        return out

    def messages_to_send(self) -> list[tuple[Any, Any]]:
        out, self.out = self.out, []
        return out


class FakeEndpoint:
    def __init__(self) -> None:
        self.out: list[tuple[bytes, Any]] = []

    def messages_to_send(self) -> list[tuple[bytes, Any]]:
        out, self.out = self.out, []
        return out


class FakeDriver:
    def __init__(self) -> None:
        self.counters = {"call-refused": 3, "connection-limit": 1, "stray-response": 2, "connection-gone": 5}
        self.stream_count = 4
        self.endpoint = FakeEndpoint()
        self.received: list[Any] = []

    def datagram_received(self, data: bytes, peer: Any) -> None:
        self.received.append(("datagram", data))

    def message_received(self, message: Any, peer: Any) -> None:
        self.received.append(("message", message))

    def parse_failure(self, data: bytes, error: Any, peer: Any) -> None:
        self.received.append(("failure", data))


class Trunk:
    def __init__(self, name: str, vendor: str = "generic") -> None:
        self.name = name
        self.vendor = vendor


def make_obs(**kwargs: Any) -> Observability:
    kwargs.setdefault("clock", Clock())
    kwargs.setdefault("driver", FakeDriver())
    kwargs.setdefault("b2bua", FakeB2bua())
    kwargs.setdefault("trunks", [Trunk("pbx"), Trunk("teams", "teams")])
    kwargs.setdefault("version", "9.9")
    return Observability(**kwargs)


class LiveFamiliesTests(SynchronousTestCase):
    def test_values_from_running_objects(self) -> None:
        obs = make_obs()
        obs.b2bua.calls = {"a": FakeCall(trunk="pbx"), "b": FakeCall(trunk="pbx"), "c": FakeCall(trunk="other")}
        obs.b2bua.transactions = 7
        obs.set_peer_up("agent-1", True, agent=True)
        obs.set_peer_up("pbx-1", False)
        m = obs.metrics
        self.assertEqual(value(m, "sbc_calls_active", trunk="pbx"), 2.0)
        self.assertEqual(value(m, "sbc_calls_active", trunk="teams"), 0.0)  # configured, idle
        self.assertEqual(value(m, "sbc_calls_active", trunk="other"), 1.0)
        self.assertEqual(value(m, "sbc_accepting_calls"), 1.0)
        self.assertEqual(value(m, "sbc_sip_transactions"), 7.0)
        self.assertEqual(value(m, "sbc_sip_dialogs"), 6.0)
        self.assertEqual(value(m, "sbc_tcp_connections"), 4.0)
        self.assertEqual(value(m, "sbc_admission_refusals_total", reason="call-refused"), 3.0)
        self.assertEqual(value(m, "sbc_admission_refusals_total", reason="connection-limit"), 1.0)
        self.assertEqual(value(m, "sbc_admission_refusals_total", reason="oversize"), 0.0)
        self.assertEqual(value(m, "sbc_sip_notices_total", reason="stray-response"), 2.0)
        self.assertEqual(value(m, "sbc_sip_notices_total", reason="connection-gone"), 5.0)
        self.assertIsNone(value(m, "sbc_sip_notices_total", reason="call-refused"))  # not counted twice
        self.assertEqual(value(m, "sbc_peer_up", peer="agent-1"), 1.0)
        self.assertEqual(value(m, "sbc_peer_up", peer="pbx-1"), 0.0)
        self.assertEqual(value(m, "sbc_sip_retransmissions_total"), 0.0)
        self.assertEqual(value(m, "sbc_cdr_records_total"), 0.0)
        info = [k for k in samples(m) if k[0] == "sbc_build_info"]
        self.assertEqual(len(info), 1)
        self.assertIn(("version", "9.9"), info[0][1])

    def test_values_follow_the_objects_between_scrapes(self) -> None:
        obs = make_obs()
        self.assertEqual(value(obs.metrics, "sbc_calls_active", trunk="pbx"), 0.0)
        obs.b2bua.calls["x"] = FakeCall(trunk="pbx")
        obs.b2bua.accepting = False
        obs.driver.stream_count = 0
        self.assertEqual(value(obs.metrics, "sbc_calls_active", trunk="pbx"), 1.0)
        self.assertEqual(value(obs.metrics, "sbc_accepting_calls"), 0.0)
        self.assertEqual(value(obs.metrics, "sbc_tcp_connections"), 0.0)

    def test_without_b2bua_or_driver(self) -> None:
        obs = make_obs(b2bua=None, driver=None, trunks=[])
        m = obs.metrics
        self.assertEqual(value(m, "sbc_accepting_calls"), 0.0)
        self.assertEqual(value(m, "sbc_sip_transactions"), 0.0)
        self.assertEqual(value(m, "sbc_tcp_connections"), 0.0)
        self.assertEqual(value(m, "sbc_admission_refusals_total", reason="call-refused"), 0.0)
        self.assertEqual(obs.drain(), 0)

    def test_a_broken_object_costs_its_families_not_the_scrape(self) -> None:
        obs = make_obs()

        def broken() -> dict[str, int]:
            raise RuntimeError("counts exploded")

        obs.b2bua.counts = broken
        s = samples(obs.metrics)
        self.assertNotIn(("sbc_sip_transactions", ()), s)
        self.assertIn(("sbc_calls_active", (("trunk", "pbx"),)), s)
        self.assertIn(("sbc_tcp_connections", ()), s)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_own_registry_not_the_global_one(self) -> None:
        first, second = make_obs(), make_obs()
        first.metrics.record_ended(FakeCall(answered=101.0))
        self.assertIsNone(REGISTRY.get_sample_value("sbc_calls_total", {"trunk": "pbx", "result": "answered",
                                                                        "status_class": "2xx"}))
        self.assertEqual(value(first.metrics, "sbc_calls_total", trunk="pbx", result="answered", status_class="2xx"), 1.0)
        self.assertIsNone(value(second.metrics, "sbc_calls_total", trunk="pbx", result="answered", status_class="2xx"))

    def test_admission_reasons_cover_the_refusal_notices(self) -> None:
        for reason in ("call-refused", "rejected", "parse-error", "connection-limit", "oversize"):
            self.assertIn(reason, ADMISSION_REASONS)


class RecordEndedTests(SynchronousTestCase):
    def test_calls_by_result_setup_and_duration(self) -> None:
        m = SbcMetrics(version="1")
        m.record_ended(FakeCall(created=100.0, answered=101.5, ended=161.5, a_status=200))
        m.record_ended(FakeCall(created=100.0, answered=None, end_reason="failed-486", a_status=486, b_status=486))
        m.record_ended(FakeCall(created=100.0, answered=None, end_reason="cancel", a_status=487, b_status=487))
        m.record_ended(FakeCall(created=100.0, answered=None, end_reason="failed-503", a_status=503, b_status=503))
        m.record_ended(FakeCall(created=100.0, answered=None, end_reason="no-answer", a_status=None, b_status=None))
        self.assertEqual(value(m, "sbc_calls_total", trunk="pbx", result="answered", status_class="2xx"), 1.0)
        self.assertEqual(value(m, "sbc_calls_total", trunk="pbx", result="rejected", status_class="4xx"), 1.0)
        self.assertEqual(value(m, "sbc_calls_total", trunk="pbx", result="cancelled", status_class="4xx"), 1.0)
        self.assertEqual(value(m, "sbc_calls_total", trunk="pbx", result="failed", status_class="5xx"), 1.0)
        self.assertEqual(value(m, "sbc_calls_total", trunk="pbx", result="failed", status_class="none"), 1.0)
        self.assertEqual(value(m, "sbc_call_setup_seconds_count", trunk="pbx"), 1.0)
        self.assertEqual(value(m, "sbc_call_setup_seconds_sum", trunk="pbx"), 1.5)
        self.assertEqual(value(m, "sbc_call_setup_seconds_bucket", trunk="pbx", le="1.0"), 0.0)
        self.assertEqual(value(m, "sbc_call_setup_seconds_bucket", trunk="pbx", le="2.0"), 1.0)
        self.assertEqual(value(m, "sbc_call_duration_seconds_sum", trunk="pbx"), 60.0)

    def test_odd_calls_do_not_raise(self) -> None:
        m = SbcMetrics(version="1")
        m.record_ended(FakeCall(trunk=None, created="x", answered=float("nan"), ended=None, a_status="200"))
        m.record_ended(object())
        self.assertEqual(value(m, "sbc_calls_total", trunk="unknown", result="failed", status_class="none"), 2.0)
        self.assertIsNone(value(m, "sbc_call_setup_seconds_count", trunk="unknown"))


class MessageKindTests(SynchronousTestCase):
    def test_bytes(self) -> None:
        cases = {
            b"INVITE sip:a@b SIP/2.0\r\n": "INVITE",
            b"OPTIONS sip:a@b SIP/2.0\r\n": "OPTIONS",
            b"FOO sip:a@b SIP/2.0\r\n": "other",
            b"SIP/2.0 180 Ringing\r\n": "1xx",
            b"SIP/2.0 200 OK\r\n": "2xx",
            b"SIP/2.0 603 Decline\r\n": "6xx",
            b"SIP/2.0 999 What\r\n": "invalid",
            b"\r\n\r\n": "keepalive",
            b"": "keepalive",
            b"garbage": "invalid",
        }
        for data, kind in cases.items():
            self.assertEqual(message_kind(data), kind, data)

    def test_objects(self) -> None:
        self.assertEqual(message_kind(invite()), "INVITE")
        self.assertEqual(message_kind(FakeCall()), "invalid")

        class R:
            status = 486

        self.assertEqual(message_kind(R()), "4xx")


class _Tu:
    """A transaction user whose output the test sets."""

    def __init__(self) -> None:
        self.out: list[tuple[Any, Any]] = []

    def messages_to_send(self) -> list[tuple[Any, Any]]:
        out, self.out = self.out, []
        return out

    def next_deadline(self) -> None:
        return None

    def handle_timer(self, now: float) -> None:
        pass


def _driver() -> Any:
    from sbc.sip.endpoint import Endpoint
    from sbc.transport.driver import SipDriver

    driver = SipDriver(Endpoint(fqdn="sbc.example.com"), Clock())
    driver.send_to_peer = lambda data, peer: True  # type: ignore[method-assign]
    return driver


class TapTests(SynchronousTestCase):
    """The tap is a traffic observer of the real SipDriver: no method of anything is replaced."""

    def test_counts_in_and_out(self) -> None:
        from sbc.sip.endpoint import Peer

        driver, tu = _driver(), _Tu()
        driver.add_tu(tu)
        tap = SipTrafficTap()
        tap.install(driver)
        peer = Peer("udp", "192.0.2.1", 5060, 1)
        options = (b"OPTIONS sip:sbc.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKt1\r\n"
                   b"Max-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:sbc.example.com>\r\n"
                   b"Call-ID: tap-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        driver.datagram_received(options, peer)  # answered 200 by the endpoint (bytes out)
        driver.datagram_received(b"\r\n\r\n", peer)
        driver.message_received(invite(), peer)
        from sbc.sip.errors import SipParseError

        driver.parse_failure(b"junk", SipParseError("Bad Request", 400), peer)
        request = invite()
        tu.out = [(request, Peer("udp", "192.0.2.9", 5060, 0))]
        driver.flush()
        self.assertEqual(tap.messages, {("in", "OPTIONS"): 1, ("in", "keepalive"): 1, ("in", "INVITE"): 1,
                                        ("in", "invalid"): 1, ("out", "2xx"): 1, ("out", "INVITE"): 1,
                                        ("out", "4xx"): 1})
        self.assertEqual(tap.retransmissions, 0)
        self.assertIn(tap, driver.observers)

    def test_retransmission_is_the_same_object_again(self) -> None:
        tap = SipTrafficTap()
        first, equal_copy = invite(call_id="same@x"), invite(call_id="same@x")
        tap.messages_out([(first, "p")])
        tap.messages_out([(equal_copy, "p")])  # equal by value, but a new message: not a retransmission
        self.assertEqual(tap.retransmissions, 0)
        tap.messages_out([(first, "p"), (first, "p")])
        self.assertEqual(tap.retransmissions, 2)
        self.assertEqual(tap.messages[("out", "INVITE")], 4)

    def test_nothing_is_kept_per_message(self) -> None:
        tap = SipTrafficTap()
        kept = invite(call_id="kept@x")
        tap.messages_out([(kept, "p")])
        state = {k: v for k, v in vars(tap).items() if k != "retransmissions"}
        for n in range(5000):  # each message is gone right after it is counted
            tap.messages_out([(invite(call_id=f"gone{n}@x"), "p")])
        self.assertEqual({k: v for k, v in vars(tap).items() if k not in ("retransmissions", "messages")},
                         {k: v for k, v in state.items() if k != "messages"})
        tap.messages_out([(kept, "p")])  # the mark travels with the message
        self.assertEqual(tap.retransmissions, 1)
        self.assertEqual(tap.messages[("out", "INVITE")], 5002)

    def test_a_copy_of_a_sent_message_is_not_a_retransmission(self) -> None:
        from sbc.sip.message import make_response

        tap = SipTrafficTap()
        request = invite(call_id="copied@x")
        tap.messages_out([(request, "p")])
        tap.messages_out([(make_response(request, 200), "p")])
        self.assertEqual(tap.retransmissions, 0)

    def test_uninstall_stops_counting(self) -> None:
        from sbc.sip.endpoint import Peer

        driver = _driver()
        tap = SipTrafficTap()
        tap.install(driver)
        tap.uninstall()
        self.assertEqual(driver.observers, [])
        driver.datagram_received(b"\r\n\r\n", Peer("udp", "192.0.2.1", 5060, 1))
        self.assertEqual(tap.messages, {})

    def test_a_failing_observer_costs_nothing_else(self) -> None:
        from sbc.sip.endpoint import Peer

        class Broken:
            def message_in(self, message: Any) -> None:
                raise RuntimeError("boom")

        driver = _driver()
        tap = SipTrafficTap()
        driver.add_observer(Broken())  # type: ignore[arg-type]
        tap.install(driver)
        driver.datagram_received(b"\r\n\r\n", Peer("udp", "192.0.2.1", 5060, 1))
        self.assertEqual(tap.messages, {("in", "keepalive"): 1})
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_timer_a_retransmission_in_the_b2bua(self) -> None:
        # The B2BUA's output batches as the driver hands them to the tap.
        net = Net()
        net.ep.receive(invite().to_bytes(), net.pbx_peer, net.now)
        tap = SipTrafficTap()
        tap.messages_out(net.b2b.messages_to_send())  # the B leg's INVITE
        net.b2b.handle_timer(net.now + 0.5)  # Timer A: the same INVITE again
        tap.messages_out(net.b2b.messages_to_send())
        net.b2b.handle_timer(net.now + 1.5)
        tap.messages_out(net.b2b.messages_to_send())
        self.assertEqual(tap.retransmissions, 2)
        self.assertEqual(tap.messages[("out", "INVITE")], 3)


class MetricsResourceTests(SynchronousTestCase):
    def test_text_exposition(self) -> None:
        obs = make_obs()
        root = obs.metrics_resource()
        code, headers, body = get(root, b"/")
        self.assertEqual(code, 200)
        self.assertTrue(headers[b"content-type"][0].startswith(b"text/plain; version="))
        self.assertEqual(headers[b"cache-control"], [b"no-store"])
        families = {f.name for f in text_string_to_metric_families(body.decode())}
        for name in ("sbc_calls_active", "sbc_calls", "sbc_call_setup_seconds", "sbc_sip_transactions",
                     "sbc_sip_retransmissions", "sbc_sip_messages", "sbc_admission_refusals", "sbc_peer_up",
                     "sbc_tcp_connections", "sbc_build_info"):
            self.assertIn(name, families)

    def test_openmetrics_when_asked(self) -> None:
        from twisted.web.test.requesthelper import DummyRequest

        obs = make_obs()
        request = DummyRequest([b""])
        request.requestHeaders.setRawHeaders(b"accept", [b"application/openmetrics-text; version=1.0.0"])
        body = obs.metrics_resource().render(request)
        content_type = request.responseHeaders.getRawHeaders(b"content-type")[0]
        self.assertTrue(content_type.startswith(b"application/openmetrics-text"), content_type)
        self.assertTrue(body.endswith(b"# EOF\n"))

    def test_subpath_is_404(self) -> None:
        from twisted.web.test.requesthelper import DummyRequest

        request = DummyRequest([b"extra"])
        make_obs().metrics_resource().render(request)
        self.assertEqual(request.responseCode, 404)

    def test_failure_is_500_and_logged(self) -> None:
        obs = make_obs()

        def broken(accept: str = "") -> tuple[bytes, str]:
            raise RuntimeError("encoder exploded")

        obs.metrics.exposition = broken  # type: ignore[method-assign]
        code, _, body = get(obs.metrics_resource(), b"/")
        self.assertEqual(code, 500)
        self.assertNotIn(b"exploded", body)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class ReadinessTests(SynchronousTestCase):
    def test_ready_only_while_running_healthy_accepting(self) -> None:
        health = {"status": "ok"}
        obs = make_obs(health=lambda: dict(health))
        self.assertEqual(get(obs.ready_resource(), b"/")[0], 503)  # not started
        obs.startService()
        self.addCleanup(obs.stopService)
        code, headers, body = get(obs.ready_resource(), b"/")
        self.assertEqual(code, 200)
        self.assertEqual(headers[b"content-type"], [b"application/json"])
        report = json.loads(body)
        self.assertEqual((report["ready"], report["status"], report["accepting"]), (True, "ready", True))
        obs.b2bua.accepting = False  # draining for shutdown
        self.assertEqual(get(obs.ready_resource(), b"/")[0], 503)
        obs.b2bua.accepting = True
        health["status"] = "unavailable"
        code, _, body = get(obs.ready_resource(), b"/")
        self.assertEqual((code, json.loads(body)["healthy"]), (503, False))

    def test_agent_hosts(self) -> None:
        obs = make_obs()
        obs.startService()
        self.addCleanup(obs.stopService)
        self.assertTrue(obs.ready()[0])  # nothing known yet: assume reachable
        obs.set_peer_up("pbx-a", False)  # a PBX being down does not make us unready
        self.assertTrue(obs.ready()[0])
        obs.set_peer_up("agent-1", False, agent=True)
        ok, details = obs.ready()
        self.assertFalse(ok)
        self.assertEqual(details["agent_hosts"], {"agent-1": "down"})
        obs.set_peer_up("agent-2", True, agent=True)
        self.assertTrue(obs.ready()[0])  # one reachable agent host is enough
        obs.set_peer_up("agent-2", False)
        self.assertFalse(obs.ready()[0])
        obs.forget_peer("agent-1")
        obs.forget_peer("agent-2")
        self.assertTrue(obs.ready()[0])
        self.assertEqual(value(obs.metrics, "sbc_peer_up", peer="pbx-a"), 0.0)
        self.assertIsNone(value(obs.metrics, "sbc_peer_up", peer="agent-1"))

    def test_without_b2bua(self) -> None:
        obs = make_obs(b2bua=None)
        obs.startService()
        self.addCleanup(obs.stopService)
        ok, details = obs.ready()
        self.assertTrue(ok)
        self.assertIn("disabled", details["calls"])

    def test_raising_ready_is_503(self) -> None:
        def broken() -> dict[str, Any]:
            raise RuntimeError("health exploded")

        obs = make_obs(health=broken)
        obs.startService()
        self.addCleanup(obs.stopService)
        code, _, body = get(obs.ready_resource(), b"/")
        self.assertEqual(code, 503)
        self.assertEqual(json.loads(body), {"ready": False, "error": "readiness check failed"})
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class DrainTests(SynchronousTestCase):
    def test_loop_drains_ended_calls_into_cdrs_and_metrics(self) -> None:
        clock, sink = Clock(), MemorySink()
        obs = make_obs(clock=clock, cdr=CdrWriter(sink, {"pbx": "generic"}))
        obs.startService()
        obs.b2bua.ended = [FakeCall(call_id="c1", answered=101.0), FakeCall(call_id="c2", end_reason="cancel",
                                                                            a_status=487, b_status=487)]
        clock.advance(0.4)
        self.assertEqual(sink.lines, [])
        clock.advance(0.1)
        self.assertEqual([json.loads(x)["call_id"] for x in sink.lines], ["c1", "c2"])
        self.assertEqual(obs.b2bua.ended, [])  # nothing piles up
        self.assertEqual(value(obs.metrics, "sbc_calls_total", trunk="pbx", result="answered", status_class="2xx"), 1.0)
        self.assertEqual(value(obs.metrics, "sbc_calls_total", trunk="pbx", result="cancelled", status_class="4xx"), 1.0)
        self.assertEqual(value(obs.metrics, "sbc_cdr_records_total"), 2.0)
        obs.b2bua.ended = [FakeCall(call_id="c3")]
        obs.b2bua.calls = {"c4": FakeCall(call_id="c4", answered=101.0, ended=None, end_reason=None)}
        obs.stopService()  # not lingering: finish now
        self.assertEqual([json.loads(x)["call_id"] for x in sink.lines], ["c1", "c2", "c3", "c4"])
        last = json.loads(sink.lines[-1])
        self.assertEqual((last["end_reason"], last["end_unix"]), ("shutdown", 0.5))
        self.assertTrue(sink.closed)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_lingering_stop_keeps_draining_until_finish(self) -> None:
        clock, sink = Clock(), MemorySink()
        obs = make_obs(clock=clock, cdr=CdrWriter(sink))
        obs.linger = True
        obs.startService()
        obs.b2bua.ended = [FakeCall(call_id="before-stop")]
        obs.stopService()
        self.assertEqual(len(sink.lines), 1)
        obs.b2bua.ended = [FakeCall(call_id="during-graceful-drain")]
        clock.advance(0.5)
        self.assertEqual(len(sink.lines), 2)
        self.assertFalse(sink.closed)
        obs.finish()
        obs.finish()
        self.assertTrue(sink.closed)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_a_failing_drain_is_logged_and_the_loop_goes_on(self) -> None:
        clock = Clock()
        obs = make_obs(clock=clock, cdr=CdrWriter(MemorySink()))
        calls = iter([RuntimeError("boom"), [FakeCall(call_id="later")]])

        def ended_calls() -> list[Any]:
            item = next(calls, [])
            if isinstance(item, Exception):
                raise item
            return item

        obs.b2bua.ended_calls = ended_calls
        obs.startService()
        self.addCleanup(obs.stopService)
        clock.advance(0.5)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        clock.advance(0.5)
        self.assertEqual(obs.drained, 1)


class SighupTests(SynchronousTestCase):
    def setUp(self) -> None:
        original = signal.getsignal(signal.SIGHUP)
        self.addCleanup(signal.signal, signal.SIGHUP, original)
        self.dir = Path(tempfile.mkdtemp(prefix="sbc-hup-"))
        self.addCleanup(shutil.rmtree, self.dir, True)

    def test_sighup_schedules_a_reopen_and_chains(self) -> None:
        previous: list[int] = []
        signal.signal(signal.SIGHUP, lambda signum, frame: previous.append(signum))
        scheduled: list[Any] = []
        path = self.dir / "cdr.jsonl"
        obs = make_obs(cdr=CdrWriter(FileSink(path)), call_from_thread=scheduled.append)
        obs.startService()
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertEqual(scheduled, [obs.reopen_cdr])
        self.assertEqual(previous, [signal.SIGHUP])
        os.rename(path, self.dir / "cdr.jsonl.1")
        scheduled[0]()  # what the reactor would run
        self.assertTrue(path.exists())
        obs.stopService()
        self.assertNotEqual(signal.getsignal(signal.SIGHUP), obs._on_sighup)
        os.kill(os.getpid(), signal.SIGHUP)  # back to the previous handler only
        self.assertEqual((len(scheduled), previous), (1, [signal.SIGHUP, signal.SIGHUP]))

    def test_no_handler_without_a_file(self) -> None:
        before = signal.getsignal(signal.SIGHUP)
        obs = make_obs(cdr=CdrWriter(LogSink()), call_from_thread=lambda f: None)
        obs.startService()
        self.addCleanup(obs.stopService)
        self.assertEqual(signal.getsignal(signal.SIGHUP), before)


CONFIG = """
[[listen]]
transport = "tcp"
address = "127.0.0.1"
port = 5999

[admin]
port = 18080
"""

TRUNK_TOML = """
[[trunk]]
name = "local"
vendor = "teams"
allow = ["127.0.0.1/32"]
agent_uri = "sip:{user}@127.0.0.1:5090"
"""


class WiringTests(SynchronousTestCase):
    def build(self, text: str) -> Any:
        reactor = MemoryReactorClock()
        top = build_service(load_config_text(text), reactor)
        return reactor, top

    def test_build_service_mounts_metrics_and_readyz(self) -> None:
        reactor, top = self.build(CONFIG + TRUNK_TOML)
        obs = top.observability
        self.assertIs(obs.b2bua, top.b2bua)
        self.assertIs(obs.driver, top.driver)
        self.assertTrue(obs.linger)
        self.assertEqual(reactor.triggers["after"]["shutdown"][0][0], obs.finish)
        root = top.getServiceNamed("admin-http").factory.resource
        self.assertEqual(get(root, b"/readyz")[0], 503)  # not started
        top.startService()
        code, _, body = get(root, b"/readyz")
        self.assertEqual(code, 200, body)
        code, headers, body = get(root, b"/metrics")
        self.assertEqual(code, 200)
        self.assertIn(b'sbc_calls_active{trunk="local"} 0.0', body)
        self.assertIn(b"sbc_accepting_calls 1.0", body)
        # the media relay and the agent event hub are read at scrape time
        self.assertIn(b"sbc_media_sessions 0.0", body)
        self.assertIn(b'sbc_media_relayed_packets_total{direction="a_to_b"} 0.0', body)
        self.assertIn(b"sbc_agent_events_published_total 0.0", body)
        self.assertIn(b"sbc_agent_subscribers 0.0", body)
        index = json.loads(get(root, b"/")[2])
        self.assertEqual(index["endpoints"], ["/healthz", "/metrics", "/readyz", "/v1"])
        self.assertIsInstance(obs.cdr.sink, LogSink)
        self.assertEqual(obs.cdr.vendors, {"local": "teams"})
        top.stopService()
        obs.finish()

    def test_without_listeners_there_is_no_b2bua(self) -> None:
        _, top = self.build("[admin]\nport = 18080\n")
        self.assertIsNone(top.b2bua)
        obs = top.observability
        self.assertIsNone(obs.b2bua)
        top.startService()
        self.addCleanup(top.stopService)
        ok, details = obs.ready()
        self.assertTrue(ok, details)
        self.assertEqual(value(obs.metrics, "sbc_accepting_calls"), 0.0)

    def test_the_tap_observes_the_driver(self) -> None:
        _, top = self.build(CONFIG + TRUNK_TOML)
        self.assertIn(top.observability.tap, top.driver.observers)
        self.assertIn(top.b2bua, list(top.driver._tus))
        for tu in top.driver._tus:
            self.assertNotIn("messages_to_send", vars(tu), tu)  # nothing is monkeypatched

    def test_vendors_follow_a_reload(self) -> None:
        from sbc.config import TrunkConfig

        _, top = self.build(CONFIG + TRUNK_TOML)
        obs = top.observability
        obs.cdr.sink = MemorySink()
        top.b2bua.trunks = (TrunkConfig(name="new", allow=(), agent_uri="sip:{user}@127.0.0.1:5090",
                                        vendor="webex"),)
        self.assertEqual(obs.trunk_names, ("new",))
        top.b2bua._ended.append(FakeCall(trunk="new"))
        top.b2bua._ended.append(FakeCall(trunk="local"))
        obs.drain()
        self.assertEqual([json.loads(x)["vendor"] for x in obs.cdr.sink.lines], ["webex", "teams"])

    def test_without_admin_site(self) -> None:
        _, top = self.build(CONFIG + "enabled = false\n")
        self.assertIsNotNone(top.observability)
        self.assertNotIn("admin-http", [s.name for s in top])

    def test_attach_with_a_plain_clock(self) -> None:
        from twisted.application.service import MultiService

        top = MultiService()
        obs = attach_observability(top, load_config_text(""), None, None, Clock())
        self.assertFalse(obs.linger)  # no reactor shutdown triggers: finish on stop
        self.assertIs(top.getServiceNamed("observability"), obs)


class CdrConfigTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sbc-cdrcfg-"))
        self.addCleanup(shutil.rmtree, self.dir, True)

    def test_file_log_or_none(self) -> None:
        path = self.dir / "cdr.jsonl"
        writer = build_cdr_writer(load_config_text(f'[cdr]\npath = "{path}"\n' + TRUNK_TOML))
        assert writer is not None
        self.addCleanup(writer.close)
        self.assertIsInstance(writer.sink, FileSink)
        self.assertEqual(writer.sink.path, str(path))
        self.assertEqual(writer.vendors, {"local": "teams"})
        writer = build_cdr_writer(load_config_text(""))
        assert writer is not None
        self.assertIsInstance(writer.sink, LogSink)
        self.assertIsNone(build_cdr_writer(load_config_text("[cdr]\nenabled = false\n")))

    def test_relative_path_is_relative_to_the_config_file(self) -> None:
        config = load_config_text('[cdr]\npath = "cdr.jsonl"\n', self.dir / "sbc.toml")
        self.assertEqual(config.cdr.path, self.dir / "cdr.jsonl")

    def test_bad_paths_are_config_errors(self) -> None:
        from sbc.config import ConfigError

        for text, problem in ((f'[cdr]\npath = "{self.dir}/nope/cdr.jsonl"\n', "does not exist"),
                              (f'[cdr]\npath = "{self.dir}"\n', "is a directory"),
                              ('[cdr]\npath = ""\n', "empty"),
                              ("[cdr]\npath = 3\n", "cdr.path"),
                              ("[cdr]\nrotate = true\n", "rotate")):
            with self.assertRaises(ConfigError) as caught:
                load_config_text(text)
            self.assertIn(problem, str(caught.exception))
