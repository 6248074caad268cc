# -*- test-case-name: tests.test_metrics -*-
"""Observability of a running SBC: CDRs, Prometheus metrics and readiness.

:class:`Observability` is a Twisted service.  While it runs it drains the B2BUA's finished
calls every ``interval`` seconds (a ``LoopingCall`` on the injected clock), writes one CDR for
each and counts it in the metrics, so finished calls never pile up in memory; on stop it
drains one last time and closes the CDR sink.  It owns the metrics registry, the traffic tap,
the peer up/down table fed by the OPTIONS pinger (:meth:`Observability.set_peer_up`) and
the ``/metrics`` and ``/readyz`` resources.

:func:`attach_observability` is what :mod:`sbc.service` calls after building the tree.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable
from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource

from sbc.admin import ReadyResource
from sbc.cdr import CdrWriter, FileSink, LogSink
from sbc.metrics import MetricsResource, SbcMetrics, SipTrafficTap

__all__ = ["Observability", "attach_observability", "build_cdr_writer"]


class Observability(Service):
    """CDRs, metrics and readiness for one SBC.

    :param clock: drives the drain loop (the reactor, or a ``Clock`` in tests).
    :param driver: the :class:`~sbc.transport.driver.SipDriver` (or None).
    :param b2bua: the :class:`~sbc.b2bua.core.B2bua` (None when no trunk is configured).
    :param trunks: the configured trunks (names for the per-trunk gauges).
    :param cdr: where CDRs go (None: no CDRs, calls are still counted).
    :param health: the service's health callable (``{"status": "ok", ...}``), used by readiness.
    :param call_from_thread: schedules a call on the reactor thread; used by the SIGHUP handler.
    """

    log = Logger()

    def __init__(
        self,
        *,
        clock: IReactorTime,
        driver: Any = None,
        b2bua: Any = None,
        trunks: Iterable[Any] = (),
        cdr: CdrWriter | None = None,
        health: Callable[[], dict[str, Any]] | None = None,
        interval: float = 0.5,
        call_from_thread: Callable[..., Any] | None = None,
        version: str | None = None,
    ) -> None:
        super().__init__()
        self.setName("observability")
        self.clock = clock
        self.driver = driver
        self.b2bua = b2bua
        self._trunks = tuple(trunks)
        self.cdr = cdr
        self.health = health
        self.interval = interval
        self.call_from_thread = call_from_thread
        self.peers: dict[str, bool] = {}
        self.agent_peers: set[str] = set()
        self.tap: SipTrafficTap | None = None
        self.metrics = SbcMetrics(self, version=version)
        self.drained = 0
        self._loop: LoopingCall | None = None
        self._previous_hup: Any = None
        self._hup_installed: Any = None
        self._finished = False
        self._vendors_from: Any = None
        #: Keep draining after stopService, until finish() (see stopService).
        self.linger = False

    # -- trunks (a reload swaps the B2BUA's) ------------------------------------------------

    @property
    def trunks(self) -> tuple[Any, ...]:
        current = getattr(self.b2bua, "trunks", None)
        return tuple(current) if current is not None else self._trunks

    @property
    def trunk_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.trunks)

    def _refresh_vendors(self) -> None:
        trunks = getattr(self.b2bua, "trunks", None)
        if self.cdr is not None and trunks is not None and trunks is not self._vendors_from:
            self._vendors_from = trunks
            # Calls of a trunk that a reload removed keep the vendor they were known by.
            self.cdr.vendors = {**self.cdr.vendors, **{t.name: t.vendor for t in trunks}}

    # -- feeding ---------------------------------------------------------------------------

    def install_tap(self) -> SipTrafficTap:
        """Count SIP messages and retransmissions on the driver and its transaction users
        (the B2BUA, registrations, OPTIONS pings)."""
        if self.tap is None:
            self.tap = SipTrafficTap()
            if self.driver is not None and hasattr(self.driver, "add_observer"):
                self.tap.install(self.driver)
        return self.tap

    def set_peer_up(self, name: str, up: bool, *, agent: bool = False) -> None:
        """Record whether peer ``name`` answers OPTIONS (``sbc_peer_up``).  ``agent`` marks an
        agent host: readiness requires one of those to be up, once any is known."""
        self.peers[name] = bool(up)
        if agent:
            self.agent_peers.add(name)

    def forget_peer(self, name: str) -> None:
        self.peers.pop(name, None)
        self.agent_peers.discard(name)

    def drain(self) -> int:
        """Write CDRs and count every call the B2BUA finished since the last drain."""
        if self.b2bua is None:
            return 0
        calls = self.b2bua.ended_calls()
        if calls:
            self._refresh_vendors()
        for call in calls:
            self.record_ended(call)
        self.drained += len(calls)
        return len(calls)

    def record_ended(self, call: Any) -> None:
        if self.cdr is not None:
            self.cdr.write(call)  # never raises
        try:
            self.metrics.record_ended(call)
        except Exception:
            self.log.failure("counting a finished call failed")

    def _drain_safely(self) -> None:
        try:
            self.drain()
        except Exception:
            self.log.failure("draining finished calls failed")

    # -- readiness -------------------------------------------------------------------------

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Ready for calls: the service runs and is healthy, the B2BUA accepts new calls, and
        an agent host is reachable -- at least one peer marked ``agent`` is up, or none has
        been reported yet (no OPTIONS pinger, or its first round is still out)."""
        details: dict[str, Any] = {"running": bool(self.running)}
        ok = bool(self.running)
        if self.health is not None:
            report = self.health()
            healthy = isinstance(report, dict) and report.get("status") == "ok"
            details["healthy"] = healthy
            ok = ok and healthy
        if self.b2bua is None:
            details["calls"] = "disabled (no trunk configured)"
        else:
            accepting = bool(self.b2bua.accepting)
            details["accepting"] = accepting
            ok = ok and accepting
        agents = {name: self.peers[name] for name in sorted(self.agent_peers) if name in self.peers}
        details["agent_hosts"] = {name: "up" if up else "down" for name, up in agents.items()}
        if agents and not any(agents.values()):
            ok = False
        details["status"] = "ready" if ok else "not ready"
        return ok, details

    # -- admin resources -------------------------------------------------------------------

    def metrics_resource(self) -> Resource:
        return MetricsResource(self.metrics)

    def ready_resource(self) -> Resource:
        return ReadyResource(self.ready)

    def mount(self, root: Resource) -> None:
        root.putChild(b"metrics", self.metrics_resource())
        root.putChild(b"readyz", self.ready_resource())

    # -- CDR file rotation -----------------------------------------------------------------

    def reopen_cdr(self) -> None:
        if self.cdr is not None:
            self.cdr.reopen()
            self.log.info("CDR sink reopened")

    def _on_sighup(self, signum: int, frame: Any) -> None:
        # A signal handler may interrupt a write in progress: do the reopen on the reactor.
        if self.call_from_thread is not None:
            self.call_from_thread(self.reopen_cdr)
        previous = self._previous_hup
        if callable(previous):
            previous(signum, frame)

    def _install_sighup(self) -> None:
        if self.call_from_thread is None or not isinstance(getattr(self.cdr, "sink", None), FileSink):
            return
        sighup = getattr(signal, "SIGHUP", None)
        if sighup is None:  # pragma: no cover - not on POSIX
            return
        try:
            self._previous_hup = signal.getsignal(sighup)
            signal.signal(sighup, self._on_sighup)
        except ValueError:  # not the main thread
            self._previous_hup = None
            return
        self._hup_installed = signal.getsignal(sighup)

    def _restore_sighup(self) -> None:
        if self._hup_installed is None:
            return
        try:
            if signal.getsignal(signal.SIGHUP) == self._hup_installed:
                previous = self._previous_hup
                signal.signal(signal.SIGHUP, previous if previous is not None else signal.SIG_DFL)
        except ValueError:  # pragma: no cover
            pass
        self._hup_installed = None

    # -- service ---------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._finished = False
        loop = LoopingCall(self._drain_safely)
        loop.clock = self.clock
        self._loop = loop
        loop.start(self.interval, now=False)
        self._install_sighup()

    def stopService(self) -> None:
        """Drain what ended so far.  With :attr:`linger` (set by :func:`attach_observability`)
        the drain loop keeps running while the rest of the tree stops -- a graceful shutdown
        lets calls finish, and their CDRs still count -- and :meth:`finish` runs in the
        reactor's "after shutdown" phase; without it, :meth:`finish` runs now."""
        super().stopService()
        if self.linger:
            self._drain_safely()
        else:
            self.finish()

    def finish(self) -> None:
        """Stop the drain loop, write the last CDRs and close the sink (idempotent).  Calls
        still in progress get a CDR too, ended now with the reason ``shutdown``."""
        if self._finished:
            return
        self._finished = True
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()
        self._restore_sighup()
        self._drain_safely()
        if self.b2bua is not None and self.cdr is not None:
            now = self.clock.seconds()
            for call in list(self.b2bua.calls.values()):
                self.cdr.write(call, end=now, end_reason="shutdown")
        if self.cdr is not None:
            self.cdr.close()


def build_cdr_writer(config: Any) -> CdrWriter | None:
    """The CDR writer the ``[cdr]`` section asks for: a file, the log, or none."""
    section = getattr(config, "cdr", None)
    trunks = getattr(config, "trunks", ())
    if section is not None and not section.enabled:
        return None
    path = getattr(section, "path", None)
    sink = FileSink(path) if path is not None else LogSink()
    return CdrWriter.for_trunks(sink, trunks)


def _admin_root(top: Any) -> Resource | None:
    try:
        svc = top.getServiceNamed("admin-http")
    except KeyError:
        return None
    site = getattr(svc, "factory", None)
    root = getattr(site, "resource", None)
    return root if isinstance(root, Resource) else None


def attach_observability(top_service: Any, config: Any, driver: Any, b2bua: Any, reactor: Any) -> Observability:
    """Create the :class:`Observability` of a built service tree and hook it in: a child
    service of ``top_service`` (drain loop, SIGHUP reopen of the CDR file), the traffic tap
    on ``driver`` and ``b2bua`` (which may be None), and ``/metrics`` + ``/readyz`` on the
    admin site when there is one.  Call it after the admin service was added."""
    obs = Observability(
        clock=reactor,
        driver=driver,
        b2bua=b2bua,
        trunks=getattr(config, "trunks", ()),
        cdr=build_cdr_writer(config),
        health=getattr(top_service, "health", None),
        call_from_thread=getattr(reactor, "callFromThread", None),
    )
    obs.install_tap()
    # The media relay and the agent event hub (when built) are read at scrape time.
    obs.relay = getattr(top_service, "relay", None)
    obs.events_hub = getattr(top_service, "events_hub", None)
    if hasattr(reactor, "addSystemEventTrigger"):
        obs.linger = True
        reactor.addSystemEventTrigger("after", "shutdown", obs.finish)
    root = _admin_root(top_service)
    if root is not None:
        obs.mount(root)
    obs.setServiceParent(top_service)
    top_service.observability = obs
    return obs
