# -*- test-case-name: tests.test_metrics -*-
"""Prometheus metrics for the SBC, in a registry of its own (never the global default one).

Most values are read from the running objects when Prometheus scrapes (:class:`LiveCollector`):
active calls from the B2BUA's call table, transactions and dialogs from its counts, TCP
connections and refusals from the SIP driver's counters, messages and retransmissions from
a :class:`SipTrafficTap`.  Nothing is updated on the SIP hot path except the tap's dictionary
increments.  The counters that only exist as history -- calls by result, setup time and
duration -- are fed once per finished call by :meth:`SbcMetrics.record_ended`, from the same
drain that writes the CDRs.

Families (``_total`` counters; "live" = read at scrape time)::

    sbc_calls_active{trunk}                      gauge, live
    sbc_calls_total{trunk,result,status_class}   counter: answered|failed|cancelled|rejected,
                                                 class of the final status sent to the PBX
    sbc_call_setup_seconds{trunk}                histogram: INVITE to answer (answered calls)
    sbc_call_duration_seconds{trunk}             histogram: answer to end (answered calls)
    sbc_accepting_calls                          gauge, live: 0 while draining for shutdown
    sbc_sip_transactions / sbc_sip_dialogs       gauges, live
    sbc_sip_retransmissions_total                counter, live: messages the SBC sent again
    sbc_sip_messages_total{direction,kind}       counter, live: in|out, method or 1xx..6xx
    sbc_admission_refusals_total{reason}         counter, live: requests/connections refused
    sbc_sip_notices_total{reason}                counter, live: other transport/core notices
    sbc_peer_up{peer}                            gauge: 1/0 from the OPTIONS pinger
    sbc_tcp_connections                          gauge, live: open TCP/TLS connections
    sbc_cdr_records_total / sbc_cdr_errors_total counters, live
    sbc_build_info{version,python,twisted}       info

This module imports ``twisted.web`` for :class:`MetricsResource` but never the global reactor.
"""

from __future__ import annotations

import math
import platform
from collections import Counter as _Tally
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request

from sbc.cdr import call_result

__all__ = [
    "ADMISSION_REASONS",
    "LiveCollector",
    "MetricsResource",
    "SbcMetrics",
    "SipTrafficTap",
    "message_kind",
]

#: Driver/endpoint/B2BUA notice reasons that mean "a request or connection was refused".
ADMISSION_REASONS = frozenset({
    "call-refused",  # B2BUA: INVITE answered 420/483/488/503 ... (limits, draining, agent down)
    "rejected",  # endpoint: request answered 4xx/5xx before any handler
    "parse-error",  # unparseable request (answered 400 or dropped)
    "bad-request",  # malformed request dropped
    "oversize",  # datagram larger than max_message_size (513)
    "framing-error",  # stream framing broken: connection closed
    "connection-limit",  # TCP/TLS connection refused at max_connections
    "rate-limited",  # admission: request over the source's rate (dropped), or its call cap (503)
    "source-not-allowed",  # admission: source in no allowlist, dropped/closed before parsing
    "banned",  # admission: source banned after repeated refusals, dropped/closed before parsing
    "too-many-headers",  # admission: more than security.max_headers header lines (400 or dropped)
    "no-matching-trunk",  # B2BUA: no trunk takes the INVITE (403 source, 404 match_ruri/dial)
    "auth-failed",  # B2BUA: digest authentication failed (403)
})

SETUP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)
DURATION_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0)

_METHODS = frozenset({
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "PRACK", "INFO", "MESSAGE", "NOTIFY",
    "REFER", "SUBSCRIBE", "REGISTER", "PUBLISH",
})
_METHODS_BYTES = {m.encode(): m for m in _METHODS}


_STATUS_KINDS = {n: f"{n}xx" for n in range(1, 7)}


def message_kind(message: Any) -> str:
    """The ``kind`` label of a message: its method (``other`` for unknown ones), ``2xx``
    style for responses, ``keepalive`` for CRLF pings, ``invalid`` for garbage.

    Accepts a parsed Request/Response or the raw bytes of one."""
    if isinstance(message, (bytes, bytearray, memoryview)):
        head = bytes(message[:24])
        if head.startswith(b"SIP/2.0 "):
            digit = head[8:9]
            return f"{digit.decode()}xx" if digit in (b"1", b"2", b"3", b"4", b"5", b"6") else "invalid"
        if not head.strip(b"\r\n"):
            return "keepalive"
        space = head.find(b" ")
        if space <= 0:
            return "invalid"
        return _METHODS_BYTES.get(head[:space], "other")
    status = getattr(message, "status", None)
    if isinstance(status, int):
        return _STATUS_KINDS.get(status // 100, "invalid") if 100 <= status <= 699 else "invalid"
    method = getattr(message, "method", None)
    if isinstance(method, str):
        return method if method in _METHODS else "other"
    return "invalid"


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _status_class(status: int | None) -> str:
    return f"{status // 100}xx" if isinstance(status, int) and 100 <= status <= 699 else "none"


# --------------------------------------------------------------------------------------
# Traffic tap


#: The tap's mark in a message's cache of parsed views (see :class:`SipTrafficTap`).
_SENT = "sbc.metrics:sent"


class SipTrafficTap:
    """Counts SIP messages in and out, and our retransmissions: a traffic observer of the
    :class:`~sbc.transport.driver.SipDriver` (``driver.add_observer(tap)``, see
    :meth:`install`).

    A retransmission is recognised by identity: the transaction layer queues the very same
    message object again (Timers A, E, G, the 2xx retransmissions, a re-sent final response
    or ACK).  The first time a message goes out, the tap marks it in the message's own cache
    of parsed views (a key no view uses); a message that comes back marked was sent before.
    Nothing is kept here, and the mark goes with the message.
    """

    def __init__(self) -> None:
        self.messages: dict[tuple[str, str], int] = {}
        self.retransmissions = 0
        self._driver: Any = None

    # -- counting --------------------------------------------------------------------------

    def count(self, direction: str, message: Any) -> None:
        key = (direction, message_kind(message))
        self.messages[key] = self.messages.get(key, 0) + 1

    # -- the driver's traffic observer -----------------------------------------------------

    def message_in(self, message: Any) -> None:
        self.count("in", message)

    def invalid_in(self) -> None:
        key = ("in", "invalid")
        self.messages[key] = self.messages.get(key, 0) + 1

    def messages_out(self, items: list[tuple[Any, Any]]) -> None:
        """Count a transaction user's output batch (message objects)."""
        messages = self.messages
        for message, _peer in items:
            key = ("out", message_kind(message))
            messages[key] = messages.get(key, 0) + 1
            marks = getattr(message, "_cache", None)
            if type(marks) is not dict:  # not an sbc.sip message: cannot tell, count as new
                continue
            if _SENT in marks:
                self.retransmissions += 1
            else:
                marks[_SENT] = True

    def bytes_out(self, items: list[tuple[bytes, Any]]) -> None:
        for data, _peer in items:
            self.count("out", data)

    # -- wiring ----------------------------------------------------------------------------

    def install(self, driver: Any) -> None:
        """Observe ``driver``'s traffic (every transaction user's output included)."""
        self.uninstall()
        driver.add_observer(self)
        self._driver = driver

    def uninstall(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.remove_observer(self)


class LiveCollector:
    """Reads live values from the running objects at scrape time.

    ``source`` is anything with the attributes ``driver``, ``b2bua``, ``tap``, ``cdr``,
    ``peers`` (name -> bool) and ``trunk_names`` -- in practice an
    :class:`~sbc.observe.Observability`.  A missing object (no B2BUA, no CDR writer) just
    leaves its families empty or at zero; an object that raises costs its families, not the
    scrape.
    """

    log = Logger()

    def __init__(self, source: Any) -> None:
        self.source = source

    def describe(self) -> list[Metric]:
        return list(self._families(live=False))

    def collect(self) -> Iterator[Metric]:
        return iter(list(self._families(live=True)))

    def _families(self, live: bool) -> Iterator[Metric]:
        src = self.source
        steps: list[Callable[[], Iterator[Metric]]] = [
            lambda: self._calls(src, live),
            lambda: self._sip(src, live),
            lambda: self._driver(src, live),
            lambda: self._peers(src, live),
            lambda: self._cdr(src, live),
            lambda: self._media(src, live),
            lambda: self._events(src, live),
        ]
        for step in steps:
            try:
                yield from list(step())
            except Exception:
                self.log.failure("collecting metrics failed")

    def _calls(self, src: Any, live: bool) -> Iterator[Metric]:
        active = GaugeMetricFamily("sbc_calls_active", "Calls in progress, by trunk.", labels=["trunk"])
        accepting = GaugeMetricFamily("sbc_accepting_calls", "1 while new calls are accepted, 0 while draining.")
        if live:
            b2bua = src.b2bua
            per_trunk = _Tally({name: 0 for name in src.trunk_names})
            if b2bua is not None:
                per_trunk.update(call.trunk for call in list(b2bua.calls.values()))
                accepting.add_metric([], 1.0 if b2bua.accepting else 0.0)
            else:
                accepting.add_metric([], 0.0)
            for trunk, n in sorted(per_trunk.items()):
                active.add_metric([str(trunk)], float(n))
        yield active
        yield accepting

    def _sip(self, src: Any, live: bool) -> Iterator[Metric]:
        transactions = GaugeMetricFamily("sbc_sip_transactions", "SIP transactions in progress (B2BUA).")
        dialogs = GaugeMetricFamily("sbc_sip_dialogs", "SIP dialogs in progress (B2BUA, both legs).")
        retrans = CounterMetricFamily(
            "sbc_sip_retransmissions", "SIP messages the SBC sent again (timers A/E/G, 2xx, re-sent finals).")
        messages = CounterMetricFamily(
            "sbc_sip_messages", "SIP messages received (in) and sent (out), by method or status class.",
            labels=["direction", "kind"])
        if live:
            b2bua = src.b2bua
            counts = b2bua.counts() if b2bua is not None else {}
            transactions.add_metric([], float(counts.get("transactions", 0)))
            dialogs.add_metric([], float(counts.get("dialogs", 0)))
            tap = src.tap
            retrans.add_metric([], float(tap.retransmissions if tap is not None else 0))
            if tap is not None:
                for (direction, kind), n in sorted(tap.messages.items()):
                    messages.add_metric([direction, kind], float(n))
        yield transactions
        yield dialogs
        yield retrans
        yield messages

    def _driver(self, src: Any, live: bool) -> Iterator[Metric]:
        refusals = CounterMetricFamily(
            "sbc_admission_refusals", "Requests and connections refused, by reason.", labels=["reason"])
        notices = CounterMetricFamily(
            "sbc_sip_notices", "Other SIP core and transport notices (stray responses, lost connections ...).",
            labels=["reason"])
        tcp = GaugeMetricFamily("sbc_tcp_connections", "Open SIP TCP/TLS connections.")
        if live:
            driver = src.driver
            counters: Mapping[str, int] = dict(getattr(driver, "counters", None) or {})
            for reason in sorted(ADMISSION_REASONS):
                refusals.add_metric([reason], float(counters.get(reason, 0)))
            for reason, n in sorted(counters.items()):
                if reason not in ADMISSION_REASONS:
                    notices.add_metric([str(reason)], float(n))
            tcp.add_metric([], float(driver.stream_count if driver is not None else 0))
        yield refusals
        yield notices
        yield tcp

    def _peers(self, src: Any, live: bool) -> Iterator[Metric]:
        up = GaugeMetricFamily("sbc_peer_up", "1 when the peer answers OPTIONS pings, 0 when it does not.",
                               labels=["peer"])
        if live:
            for name, state in sorted(dict(src.peers).items()):
                up.add_metric([name], 1.0 if state else 0.0)
        yield up

    def _cdr(self, src: Any, live: bool) -> Iterator[Metric]:
        written = CounterMetricFamily("sbc_cdr_records", "CDRs written.")
        errors = CounterMetricFamily("sbc_cdr_errors", "CDR writes (or reopens) that failed.")
        if live:
            cdr = src.cdr
            written.add_metric([], float(cdr.written if cdr is not None else 0))
            errors.add_metric([], float(cdr.errors if cdr is not None else 0))
        yield written
        yield errors


    def _media(self, src: Any, live: bool) -> Iterator[Metric]:
        sessions = GaugeMetricFamily("sbc_media_sessions", "Calls whose media the relay anchors.")
        ports = GaugeMetricFamily("sbc_media_ports_free", "RTP/RTCP ports of the relay's range still free.")
        packets = CounterMetricFamily(
            "sbc_media_packets", "RTP/RTCP packets through the relay, by what became of them.", labels=["kind"])
        relayed = CounterMetricFamily(
            "sbc_media_relayed_packets", "Packets relayed, by direction (a: the calling side).", labels=["direction"])
        dtmf = CounterMetricFamily("sbc_media_dtmf_events", "RFC 4733 keypresses decoded by the relay.")
        timeouts = CounterMetricFamily("sbc_media_timeouts", "Calls hung up because no RTP arrived.")
        srtp = CounterMetricFamily("sbc_media_srtp_auth_failures", "SRTP/SRTCP packets that failed authentication.")
        if live:
            relay = getattr(src, "relay", None)
            stats: Mapping[str, Any] = dict(relay.stats()) if relay is not None else {}
            sessions.add_metric([], float(stats.get("sessions", 0)))
            ports.add_metric([], float(stats.get("ports_free", 0)))
            for kind in ("received", "relayed", "dropped"):
                packets.add_metric([kind], float(stats.get(f"packets_{kind}", 0)))
            relayed.add_metric(["a_to_b"], float(stats.get("a_to_b", 0)))
            relayed.add_metric(["b_to_a"], float(stats.get("b_to_a", 0)))
            dtmf.add_metric([], float(stats.get("dtmf_events", 0)))
            timeouts.add_metric([], float(stats.get("timeouts", 0)))
            srtp.add_metric([], float(stats.get("srtp_auth_failures", 0)))
        yield from (sessions, ports, packets, relayed, dtmf, timeouts, srtp)

    def _events(self, src: Any, live: bool) -> Iterator[Metric]:
        published = CounterMetricFamily("sbc_agent_events_published", "Agent events published (DTMF, text, call start/end).")
        delivered = CounterMetricFamily("sbc_agent_events_delivered", "Agent events delivered to WebSocket subscribers.")
        dropped = CounterMetricFamily("sbc_agent_subscribers_dropped", "Event subscribers cut off (too slow or failing).")
        subscribers = GaugeMetricFamily("sbc_agent_subscribers", "Connected agent event subscribers.")
        if live:
            hub = getattr(src, "events_hub", None)
            stats: Mapping[str, Any] = dict(hub.stats()) if hub is not None else {}
            published.add_metric([], float(stats.get("published", 0)))
            delivered.add_metric([], float(stats.get("delivered", 0)))
            dropped.add_metric([], float(stats.get("dropped", 0)))
            subscribers.add_metric([], float(stats.get("subscribers", 0)))
        yield from (published, delivered, dropped, subscribers)


class SbcMetrics:
    """The SBC's registry: the live collector plus the per-call history counters."""

    def __init__(self, source: Any = None, *, version: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.calls = Counter(
            "sbc_calls", "Finished calls, by trunk, result and class of the final status sent to the PBX.",
            ["trunk", "result", "status_class"], registry=self.registry)
        self.setup = Histogram(
            "sbc_call_setup_seconds", "Seconds from the PBX's INVITE to the agent's answer (answered calls).",
            ["trunk"], buckets=SETUP_BUCKETS, registry=self.registry)
        self.duration = Histogram(
            "sbc_call_duration_seconds", "Seconds from answer to hang-up (answered calls).",
            ["trunk"], buckets=DURATION_BUCKETS, registry=self.registry)
        info = Info("sbc_build", "Version of the SBC and its runtime.", registry=self.registry)
        info.info(_build_labels(version))
        self.collector: LiveCollector | None = None
        if source is not None:
            self.collector = LiveCollector(source)
            self.registry.register(self.collector)

    def record_ended(self, call: Any) -> None:
        """Count one finished call (called once per call, from the CDR drain)."""
        trunk = str(getattr(call, "trunk", None) or "unknown")
        result = call_result(call)
        try:
            status = call.a_status
        except Exception:
            status = None
        self.calls.labels(trunk, result, _status_class(status)).inc()
        created = _seconds(getattr(call, "created", None))
        answered = _seconds(getattr(call, "answered", None))
        ended = _seconds(getattr(call, "ended", None))
        if answered is not None:
            if created is not None:
                self.setup.labels(trunk).observe(max(0.0, answered - created))
            if ended is not None:
                self.duration.labels(trunk).observe(max(0.0, ended - answered))

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The registry in the text format the ``Accept`` header asks for (Prometheus text by
        default, OpenMetrics when requested); returns (body, content type)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


def _build_labels(version: str | None) -> dict[str, str]:
    if version is None:
        try:
            from importlib.metadata import version as dist_version

            version = dist_version("sbc")
        except Exception:
            version = "unknown"
    try:
        import twisted

        twisted_version = twisted.__version__
    except Exception:  # pragma: no cover
        twisted_version = "unknown"
    return {"version": version, "python": platform.python_version(), "twisted": twisted_version}


# --------------------------------------------------------------------------------------
# /metrics


class MetricsResource(Resource):
    """``/metrics``: the registry rendered synchronously in the reactor thread (no thread pool:
    collecting reads a few dictionaries)."""

    isLeaf = True
    log = Logger()

    def __init__(self, metrics: SbcMetrics) -> None:
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request: Request) -> bytes:
        if request.postpath not in ([], [b""]):
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"not found\n"
        raw = request.getHeader(b"accept")
        accept = raw.decode("latin-1") if isinstance(raw, bytes) else (raw or "")
        try:
            body, content_type = self.metrics.exposition(accept)
        except Exception:
            self.log.failure("rendering /metrics failed")
            request.setResponseCode(500)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"metrics unavailable\n"
        request.setHeader(b"content-type", content_type.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return body

    def render_HEAD(self, request: Request) -> bytes:
        return self.render_GET(request)
