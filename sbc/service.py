# -*- test-case-name: tests.test_service -*-
"""
Wiring: build the service tree from a validated :class:`~sbc.config.Config`.

This module and :mod:`sbc.tap` are the only places that know about the reactor; everything
below them receives it (or just a clock) as an argument.

Besides the listeners and the admin site, the tree holds three transaction users run by the
one :class:`~sbc.transport.driver.SipDriver`: the B2BUA, the outbound registrations
(:class:`~sbc.transport.register.RegistrationTU`) and the OPTIONS pinger
(:class:`~sbc.transport.pinger.PingerTU`).  Responses from the network go through a
:class:`ResponseDispatcher`: each client TU claims the responses to its own transactions
(by the branch prefix of the top Via), and everything else goes to the B2BUA.

Lifecycle (:class:`SbcService`):

* ``startService``: listeners up, then registrations and pings start; SIGHUP reloads.
* SIGHUP (:meth:`SbcService.reload`): the file is read again; if valid, trunks, ``[calls]``
  limits and ``[agent]`` settings are swapped in (calls in progress are untouched); if
  invalid, the one-line error is logged and the old configuration stays.
* Vendor plugins (issue 6, :func:`vendor_setup`): at start-up and on every reload the
  plugins are discovered, each trunk's ``vendor:<name>`` allow entries become the plugin's
  signalling ranges and an unset ``options_interval`` the plugin's interval, and one quirk
  chain per trunk goes to the B2BUA (``quirks=``) and to the OPTIONS pings toward each
  trunk's ``peer_uri``.  A plugin that cannot be loaded or a trunk naming an unknown vendor
  stops start-up with one line (:class:`~sbc.tap.ConfigExit`), or fails the reload.
* ``stopService`` (SIGTERM): new calls get 503, calls in progress get up to
  ``calls.drain_timeout`` seconds to end, the rest are ended on both legs, the trunks we
  registered with are de-registered, and only then the listeners close.
"""

from __future__ import annotations

import signal
from typing import Any, Callable, Mapping

import attrs
from twisted.application.internet import StreamServerEndpointService, UDPServer
from twisted.application.service import MultiService, Service
from twisted.internet.endpoints import (
    SSL4ServerEndpoint,
    TCP4ServerEndpoint,
    TCP6ServerEndpoint,
)
from twisted.internet.abstract import isIPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from sbc.observe import attach_observability
from sbc.sip.endpoint import Endpoint
from sbc.config import ConfigError, Invalid, load_config
from sbc.sip.message import Response
from sbc.sip.endpoint import Peer
from sbc.sip.locate import LocateError
from sbc.transport.driver import SipDriver
from sbc.transport.pinger import PingerTU, ping_targets
from sbc.transport.register import RegistrationTU, sent_by_host
from sbc.transport.stream import SipStreamFactory
from sbc.transport.tls import ClientTls, ServerTls, TlsSetupError, tls_admits
from sbc.transport.udp import MAX_DATAGRAM, SipDatagramProtocol

__all__ = ["DnsResolver", "LookupPump", "build_service", "ResponseDispatcher", "SbcService", "vendor_setup"]

#: While draining or waiting for de-registrations, how often to look again (seconds).
POLL_INTERVAL = 0.1
#: After the drain timeout, how long the BYEs and de-registrations may take (seconds).
FAREWELL_TIMEOUT = 3.0


class DnsResolver:
    """The B2BUA's (and the pinger's and registrations') resolver over the RFC 3263
    :class:`~sbc.transport.locator.Locator`.

    ``resolve(uri)`` answers from the locator's cache alone: the peers for an IP literal or a
    name whose records are cached, ``None`` when DNS must be asked first.  In that case it
    also starts the lookup (which fills the cache) and, when it completes, calls every
    ``on_answer`` callback; the B2BUA's waiting calls are served by :class:`LookupPump`.
    """

    log = Logger()

    #: A name is looked up in the background at most once per this many seconds.
    PREFETCH_INTERVAL = 30.0

    def __init__(self, locator: Any, clock: Any) -> None:
        self.locator = locator
        self.clock = clock
        self.on_answer: list[Callable[[], None]] = []
        self._asked: dict[str, float] = {}
        self._targets: dict[tuple[str, str, int], Any] = {}

    def resolve(self, uri: Any) -> list[Peer] | None:
        try:
            targets = self.locator.cached(uri)
        except LocateError:
            return []
        if targets is None:
            self.prefetch(uri)
            return None
        return self._peers(targets)

    def _peers(self, targets: Any) -> list[Peer]:
        peers = []
        for t in targets:
            self._targets[(t.transport, t.ip, t.port)] = t
            peers.append(Peer(t.transport, t.ip, t.port, 0))
        if len(self._targets) > 4096:
            self._targets.clear()
        return peers

    def lookup(self, uri: Any) -> Deferred[list[Peer]]:
        """Ask DNS (through the locator): fires with the peers, [] if none."""
        d = self.locator.resolve(uri)
        d.addCallbacks(self._peers, lambda failure: [])
        return d

    def prefetch(self, uri: Any) -> None:
        """Look ``uri`` up in the background (to fill the cache), at most once per
        :attr:`PREFETCH_INTERVAL`; ``on_answer`` callbacks run when it completes."""
        key = str(uri)
        now = self.clock.seconds()
        last = self._asked.get(key)
        if last is not None and now - last < self.PREFETCH_INTERVAL:
            return
        if len(self._asked) > 4096:
            self._asked.clear()
        self._asked[key] = now

        def done(result: Any) -> None:
            for callback in list(self.on_answer):
                try:
                    callback()
                except Exception:
                    self.log.failure("DNS answer callback raised")

        self.lookup(uri).addBoth(done)

    def server_name(self, transport: str, ip: str, port: int) -> str | None:
        """The name a located target's address came from (what its TLS certificate must
        carry), None if it was not located here."""
        target = self._targets.get((transport, ip, port))
        return target.host if target is not None else None

    def failed(self, peer: Peer, now: float) -> None:
        """A target timed out or answered 503: the locator puts it last for a while."""
        target = self._targets.get((peer.transport, peer.host, peer.port))
        if target is not None:
            self.locator.mark_failed(target, now)


class LookupPump:
    """A driver TU with no messages of its own: after every input it takes the URIs the
    B2BUA is waiting for (:meth:`~sbc.b2bua.core.B2bua.lookups`), resolves them and reports
    the answers (:meth:`~sbc.b2bua.core.B2bua.resolved`) on a later reactor turn."""

    log = Logger()

    def __init__(self, b2bua: Any, resolver: DnsResolver, driver: SipDriver, clock: Any) -> None:
        self.b2bua = b2bua
        self.resolver = resolver
        self.driver = driver
        self.clock = clock

    def messages_to_send(self) -> list[Any]:
        lookups = getattr(self.b2bua, "lookups", None)
        if lookups is not None:
            for uri in lookups():
                self.resolver.lookup(uri).addCallback(self._answer, uri)
        return []

    def _answer(self, peers: list[Peer], uri: Any) -> None:
        # Never re-enter the driver from inside its own output loop: report on a later turn.
        self.clock.callLater(0, self._report, uri, peers)

    def _report(self, uri: Any, peers: list[Peer]) -> None:
        try:
            self.b2bua.resolved(uri, peers, self.clock.seconds())
        except Exception:
            self.log.failure("B2BUA raised on a DNS answer for {uri}", uri=str(uri))
        self.driver.flush()

    def next_deadline(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass


class ResponseDispatcher:
    """The endpoint's response handler: offers each response to the client TUs (each
    claims responses to its own transactions with ``owns(response)``), else the fallback
    (the B2BUA)."""

    def __init__(self, fallback: Callable[[Response, Peer, float], None] | None = None) -> None:
        self.tus: list[Any] = []
        self.fallback = fallback

    def add(self, tu: Any) -> None:
        self.tus.append(tu)

    def __call__(self, response: Response, peer: Peer, now: float) -> None:
        for tu in self.tus:
            if tu.owns(response):
                tu.handle_response(response, peer, now)
                return
        if self.fallback is not None:
            self.fallback(response, peer, now)



class AgentEventPump:
    """A transaction user without SIP output: at every driver flush it moves the B2BUA's
    agent events (:mod:`sbc.events.schema`) to the sinks (the WebSocket hub, the webhook).
    A sink that raises is logged; the others still get the event."""

    log = Logger()

    def __init__(self, b2bua: Any, sinks: list[Any]) -> None:
        self.b2bua = b2bua
        self.sinks = sinks
        self.published = 0

    def messages_to_send(self) -> list[Any]:
        for event in self.b2bua.agent_events():
            self.published += 1
            for sink in self.sinks:
                try:
                    sink.publish(event)
                except Exception:
                    self.log.failure("agent event sink {sink!r} raised", sink=sink)
        return []

    def next_deadline(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass


class _FlushingListener:
    """Media events arrive from the relay's sockets, outside any SIP input: after handing
    each to the B2BUA, flush the driver so that what it caused (BYEs, agent events) goes
    out now."""

    def __init__(self, listener: Any, driver: SipDriver) -> None:
        self.listener = listener
        self.driver = driver

    def media_keypress(self, call_id: str, key: Any) -> None:
        self.listener.media_keypress(call_id, key)
        self.driver.flush()

    def media_speech(self, call_id: str, now: float) -> None:
        self.listener.media_speech(call_id, now)
        self.driver.flush()

    def media_timeout(self, call_id: str, now: float) -> None:
        self.listener.media_timeout(call_id, now)
        self.driver.flush()


class FlushingEngine:
    """A media engine whose listener calls flush the SIP driver (see :class:`_FlushingListener`)."""

    def __init__(self, engine: Any, driver: SipDriver) -> None:
        self.engine = engine
        self.driver = driver

    def allocate(self, call_id: str, a: Any, b: Any, listener: Any) -> Any:
        return self.engine.allocate(call_id, a, b, _FlushingListener(listener, self.driver))


class MediaRelayService(Service):
    """Closes the relay's sockets when the service tree stops (after the calls ended)."""

    def __init__(self, relay: Any) -> None:
        self.relay = relay

    def stopService(self) -> Any:
        super().stopService()
        try:
            return self.relay.close()  # fires once every socket is closed
        except Exception:
            Logger().failure("closing the media relay failed")
            return None


class SbcService(MultiService):
    """The top of the service tree: health, peer status, reload and graceful shutdown.

    ``reactor`` is used for time (``seconds``/``callLater``) and ``callFromThread`` (the
    SIGHUP handler schedules the reload with it).  ``install_signals=False`` keeps
    SIGHUP alone (tests, embedding).
    """

    log = Logger()

    def __init__(self, config: Any, driver: SipDriver, reactor: Any = None, *,
                 install_signals: bool = True) -> None:
        super().__init__()
        self.config = config
        self.driver = driver
        self.reactor = reactor
        self.install_signals = install_signals
        self.b2bua: Any = None
        self.relay: Any = None
        self.events_hub: Any = None
        self.registrations: RegistrationTU | None = None
        self.pinger: PingerTU | None = None
        self.dispatcher: ResponseDispatcher | None = None
        #: Trunk name -> :class:`~sbc.quirks.chain.QuirkChain` (see :func:`vendor_setup`).
        self.quirks: dict[str, Any] = {}
        #: Listener key -> its :class:`~sbc.transport.tls.ServerTls` (re-read on SIGHUP).
        self.tls_servers: dict[Any, ServerTls] = {}
        #: How we open TLS connections (:class:`~sbc.transport.tls.ClientTls`; re-read on SIGHUP).
        self.client_tls: ClientTls | None = None
        self.draining = False
        self._previous_hup: Any = None
        self._installed_hup: Any = None
        self._stopping: Deferred[None] | None = None

    # -- views -----------------------------------------------------------------------------

    def peer_status(self) -> dict[str, bool]:
        """``{target: up}`` for every OPTIONS target (``agent:<host>:<port>``,
        ``peer:<trunk>``); a target that has not answered yet counts as up."""
        return self.pinger.peer_status() if self.pinger is not None else {}

    def agent_up(self, trunk: str) -> bool:
        """False only while the agent host of ``trunk`` is marked down by the pinger."""
        return self.pinger.agent_up(trunk) if self.pinger is not None else True

    def registration_status(self) -> dict[str, dict[str, Any]]:
        """``{trunk: {state, detail, registrar, expires_at, last_status, last_reason,
        failures, next_attempt_at}}`` for every trunk that registers."""
        return self.registrations.status() if self.registrations is not None else {}

    def _now(self) -> float:
        return float(self.reactor.seconds())

    # -- start -----------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.draining = False
        now = self._now()
        if self.registrations is not None:
            self.registrations.start(now)
        if self.pinger is not None:
            self.pinger.start(now)
        self.driver.flush()
        if self.install_signals:
            self._install_sighup()

    def _install_sighup(self) -> None:
        sighup = getattr(signal, "SIGHUP", None)
        if sighup is None or not hasattr(self.reactor, "callFromThread"):  # pragma: no cover
            return
        try:
            self._previous_hup = signal.getsignal(sighup)
            signal.signal(sighup, self._on_sighup)
            self._installed_hup = signal.getsignal(sighup)
        except ValueError:  # not the main thread: no signals
            self._previous_hup = self._installed_hup = None

    def _restore_sighup(self) -> None:
        if self._installed_hup is None:
            return
        try:
            if signal.getsignal(signal.SIGHUP) == self._installed_hup:
                previous = self._previous_hup
                signal.signal(signal.SIGHUP, previous if previous is not None else signal.SIG_DFL)
        except ValueError:  # pragma: no cover
            pass
        self._installed_hup = None

    def _on_sighup(self, signum: int, frame: Any) -> None:
        # Runs between two bytecodes of whatever the reactor was doing: only schedule.
        self.reactor.callFromThread(self.reload)
        previous = self._previous_hup
        if callable(previous):
            previous(signum, frame)

    # -- reload ----------------------------------------------------------------------------

    def reload(self) -> bool:
        """Read the configuration file again and apply it; False (and the old configuration
        stays) if it is invalid.  Never raises."""
        path = self.config.path
        try:
            new = load_config(path)
        except ConfigError as e:
            self.log.error("configuration reload failed, keeping the running configuration: {error}",
                           error=str(e))
            return False
        except Exception:
            self.log.failure("configuration reload failed, keeping the running configuration")
            return False
        try:
            self.apply_config(new)
        except ConfigError as e:  # vendor plugins or vendor: ranges; nothing was changed
            self.log.error("configuration reload failed, keeping the running configuration: {error}",
                           error=str(e))
            return False
        except Exception:
            self.log.failure("applying the reloaded configuration failed")
            return False
        return True

    def apply_config(self, new: Any) -> None:
        """Swap in what can change at run time: trunks (B2BUA, registrations, pings),
        ``[calls]`` limits and ``[agent]`` settings.  Calls in progress are not touched.
        The vendor plugins are discovered again and the quirk chains rebuilt; a
        :class:`~sbc.config.ConfigError` from that (see :func:`vendor_setup`) leaves
        everything as it was."""
        new, chains, warnings = vendor_setup(new)
        for warning in warnings:
            self.log.warn("vendor settings: {problem}", problem=warning)
        old = self.config
        fixed = [name for name in ("listen", "sbc", "sip", "admin")
                 if getattr(old, name, None) != getattr(new, name, None)]
        if "listen" in fixed and _listen_shape(old.listen) == _listen_shape(new.listen):
            fixed.remove("listen")  # only TLS files changed: reloaded below
        if fixed:
            self.log.warn("reload: changes to {sections} need a restart; applying the rest",
                          sections=", ".join(f"[{n}]" for n in fixed))
        now = self._now()
        if self.b2bua is not None:
            reload_trunks = getattr(self.b2bua, "reload_trunks", None)
            if reload_trunks is not None:
                reload_trunks(new.trunks)
            else:  # pragma: no cover - older B2BUA
                self.b2bua.trunks = tuple(new.trunks)
            _apply_calls(self.b2bua, new.calls)
            _apply_agent(self.b2bua, new.agent)
            self.b2bua.quirks = self._chains_for_reload(chains)
        if self.driver.admission is not None:
            from sbc.transport.admission import apply_security

            apply_security(self.driver.admission, new)
        self.quirks = dict(chains)
        if self.registrations is not None:
            self.registrations.set_trunks(new.trunks, now)
        if self.pinger is not None:
            before = set(self.pinger.peer_status())
            self.pinger.set_down_after(new.agent.down_after)
            self.pinger.set_plan(ping_targets(new.trunks, new.agent, self._resolver()), now)
            obs = getattr(self, "observability", None)
            if obs is not None:
                for name in before - set(self.pinger.peer_status()):
                    obs.forget_peer(name)
        self._reload_tls(new)
        self.config = new
        self.driver.flush()
        self.log.info("configuration reloaded from {path}: {trunks} trunk(s): {names}",
                      path=str(new.path), trunks=len(new.trunks),
                      names=", ".join(t.name for t in new.trunks) or "none")

    def _reload_tls(self, new: Any) -> None:
        """Certificates, keys and CA bundles read again for the handshakes to come; a file
        that cannot be used is logged and the listener (or outgoing TLS) keeps the old ones.
        Established connections keep what they negotiated."""
        by_key = {listener.key: listener for listener in new.listen}
        for key, server in self.tls_servers.items():
            listener = by_key.get(key)
            if listener is None:
                continue
            try:
                server.update(listener, new.trunks, new.tls)
            except TlsSetupError as e:
                self.log.error("TLS reload failed for listener {addr}:{port}, keeping its old certificates: {error}",
                               addr=key[1], port=key[2], error=str(e))
            else:
                self.log.info("TLS certificates reloaded for listener {addr}:{port}", addr=key[1], port=key[2])
        if self.client_tls is not None:
            try:
                self.client_tls = ClientTls.from_config(new.tls, new.trunks)
            except TlsSetupError as e:
                self.log.error("TLS reload failed for outgoing connections, keeping the old settings: {error}",
                               error=str(e))

    def _chains_for_reload(self, chains: Mapping[str, Any]) -> dict[str, Any]:
        """The new chains, plus the old chain of a trunk that is gone but still has calls
        in progress (they keep the vendor handling they started with)."""
        merged = dict(chains)
        old = getattr(self.b2bua, "quirks", None) or {}
        for call in list(getattr(self.b2bua, "calls", {}).values()):
            name = getattr(call, "trunk", None)
            if name is not None and name not in merged and name in old:
                merged[name] = old[name]
        return merged

    def ping_request(self, name: str, request: Any) -> Any:
        """The pinger's hook: an OPTIONS toward ``peer:<trunk>`` goes through that trunk's
        ``request_to_pbx`` hooks (Teams: X-MS-SBC, Contact with our FQDN); hook failures
        are logged as ``quirk-error`` and leave the ping as it was."""
        if not name.startswith("peer:"):
            return request
        chains = self.b2bua.quirks if self.b2bua is not None and self.b2bua.quirks is not None else self.quirks
        chain = chains.get(name[len("peer:"):])
        if chain is None:
            return request
        call_id = request.get("Call-ID")
        ctx = chain.context("outbound", call_id.decode("latin-1") if call_id else "")
        out = chain.request_to_pbx(request, ctx)
        for n in chain.notices():
            self.log.warn("quirk-error: vendor plugin {quirk} failed in {hook} on the OPTIONS to {name} "
                          "(sent unmodified): {error}", quirk=n.quirk, hook=n.hook, name=name, error=n.error)
        return out

    def options_answer(self, response: Any, peer: Peer) -> Any:
        """The endpoint's ``options_hook``: our 200 to an out-of-dialog OPTIONS from a
        trunk's source address goes through that trunk's ``response_to_pbx`` hooks (Teams:
        X-MS-SBC and the FQDN Contact, which Microsoft's pings expect)."""
        trunk = self._trunk_of(peer)
        chains = self.b2bua.quirks if self.b2bua is not None and self.b2bua.quirks is not None else self.quirks
        chain = chains.get(trunk) if trunk is not None else None
        if chain is None:
            return response
        call_id = response.get("Call-ID")
        out = chain.response_to_pbx(response, chain.context("inbound", call_id.decode("latin-1") if call_id else ""))
        for n in chain.notices():
            self.log.warn("quirk-error: vendor plugin {quirk} failed in {hook} on our answer to an OPTIONS "
                          "from {host} (sent unmodified): {error}", quirk=n.quirk, hook=n.hook, host=peer.host,
                          error=n.error)
        return out

    def _trunk_of(self, peer: Peer) -> str | None:
        """The name of the trunk ``peer``'s address belongs to (the B2BUA's own matching)."""
        trunk = self.b2bua.trunk_of(peer) if self.b2bua is not None else None
        return str(trunk.name) if trunk is not None else None

    def dns_answered(self) -> None:
        """A background DNS lookup completed: retry what waited for it (on a later turn)."""
        self.reactor.callLater(0, self._retry_after_dns)

    def _retry_after_dns(self) -> None:
        now = self._now()
        try:
            if self.registrations is not None:
                self.registrations.release_held(now)
            if self.pinger is not None and not self.draining:
                self.pinger.set_plan(ping_targets(self.config.trunks, self.config.agent, self._resolver()), now)
        except Exception:
            self.log.failure("retrying after a DNS answer failed")
        self.driver.flush()

    def _resolver(self) -> Any:
        from sbc.b2bua.core import LiteralResolver

        return self.b2bua.resolver if self.b2bua is not None else LiteralResolver()

    # -- stop ------------------------------------------------------------------------------

    def stopService(self) -> Deferred[None]:
        """Graceful shutdown; the returned Deferred fires when the listeners are closed."""
        if self._stopping is not None:
            return self._stopping
        self._restore_sighup()
        self.draining = True
        b2bua = self.b2bua
        if b2bua is not None:
            stop_accepting = getattr(b2bua, "stop_accepting", None)
            if stop_accepting is not None:
                stop_accepting()
            else:  # pragma: no cover - older B2BUA
                b2bua.accepting = False
        timeout = float(getattr(getattr(self.config, "calls", None), "drain_timeout", 0.0))
        if b2bua is not None and b2bua.calls:
            self.log.info("shutting down: refusing new calls, {n} call(s) may continue for up to {t} s",
                          n=len(b2bua.calls), t=timeout)
        d = self._wait(lambda: b2bua is None or not b2bua.calls, timeout)
        d.addCallback(lambda _: self._end_calls())
        d.addCallback(lambda _: self._deregister())
        d.addBoth(self._stop_children)
        self._stopping = d
        return d

    def _wait(self, done: Callable[[], bool], timeout: float) -> Deferred[None]:
        """Fire (with None) as soon as ``done()`` is true, or after ``timeout`` seconds."""
        if done() or timeout <= 0:
            return succeed(None)
        result: Deferred[None] = Deferred()
        deadline = self._now() + timeout

        def check() -> None:
            try:
                finished = done()
            except Exception:
                self.log.failure("shutdown check raised")
                finished = True
            if finished or self._now() >= deadline:
                result.callback(None)
            else:
                self.reactor.callLater(min(POLL_INTERVAL, max(0.0, deadline - self._now())), check)

        self.reactor.callLater(min(POLL_INTERVAL, timeout), check)
        return result

    def _end_calls(self) -> Deferred[None]:
        b2bua = self.b2bua
        if b2bua is None or not b2bua.calls:
            return succeed(None)
        self.log.info("drain timeout: ending {n} call(s) on both legs", n=len(b2bua.calls))
        try:
            b2bua.terminate_all(self._now(), "shutdown")
        except Exception:
            self.log.failure("ending the calls at shutdown failed")
        self.driver.flush()
        # Give the BYEs (and their retransmissions) a moment to be answered.
        return self._wait(lambda: not b2bua.calls, FAREWELL_TIMEOUT)

    def _deregister(self) -> Deferred[None]:
        reg = self.registrations
        if self.pinger is not None:
            self.pinger.stop()
        if reg is None:
            return succeed(None)
        try:
            reg.stop(self._now())
        except Exception:
            self.log.failure("de-registration failed")
            return succeed(None)
        self.driver.flush()
        return self._wait(reg.stopped, FAREWELL_TIMEOUT)

    def _stop_children(self, result: Any) -> Any:
        if isinstance(result, Exception) or hasattr(result, "getErrorMessage"):
            self.log.failure("graceful shutdown step failed", failure=result)
        return MultiService.stopService(self)

    def health(self) -> dict[str, Any]:
        listening = [
            {"name": svc.name, "running": bool(svc.running)}
            for svc in self
            if svc.name and svc.name.startswith("sip-")
        ]
        ok = bool(self.running) and all(item["running"] for item in listening)
        return {
            "status": "ok" if ok else "unavailable",
            "ok": ok,
            "listeners": listening,
            "connections": self.driver.stream_count,
            "calls": len(self.b2bua.calls) if self.b2bua is not None else 0,
            "draining": self.draining,
            "peers": self.peer_status(),
            "registrations": {name: r["state"] for name, r in self.registration_status().items()},
            "counters": dict(self.driver.counters),
            "media": self._media_stats(),
            "events": self.events_hub.stats() if self.events_hub is not None else {},
        }

    def _media_stats(self) -> dict[str, Any]:
        if self.relay is None:
            return {}
        try:
            return dict(self.relay.stats())
        except Exception:
            self.log.failure("media relay stats failed")
            return {}


def _stream_endpoint(reactor: Any, address: str, port: int, tls: Any = None) -> Any:
    if tls is not None:
        return SSL4ServerEndpoint(reactor, port, tls, interface=address)
    if isIPv6Address(address):
        return TCP6ServerEndpoint(reactor, port, interface=address)
    return TCP4ServerEndpoint(reactor, port, interface=address)


def _listen_shape(listen: Any) -> tuple[Any, ...]:
    """The listeners without their TLS files (which a reload re-reads in place)."""
    return tuple(listener.key for listener in listen)


def _apply_calls(b2bua: Any, calls: Any) -> None:
    """Set the B2BUA's limits from a ``[calls]`` section (0 means "off" in the file)."""
    b2bua.max_calls = calls.max_calls
    b2bua.max_calls_per_trunk = calls.max_calls_per_trunk or None
    b2bua.no_answer_timeout = calls.no_answer_timeout or None
    b2bua.max_call_duration = calls.max_call_duration or None
    b2bua.retry_after = calls.retry_after
    b2bua.copy_headers = frozenset(h.lower() for h in calls.copy_headers)
    b2bua.copy_x_headers = calls.copy_x_headers


def _apply_agent(b2bua: Any, agent: Any) -> None:
    """Hand the B2BUA the agent hosts' source networks (calls toward the trunks), if it
    takes them (attribute ``agent_allow``)."""
    if hasattr(b2bua, "agent_allow"):
        b2bua.agent_allow = tuple(agent.allow)


def _listening(svc: StreamServerEndpointService) -> StreamServerEndpointService:
    # Fail start-up when a port cannot be bound, instead of logging and running deaf.
    svc._raiseSynchronously = True
    return svc


def _local_hosts(listeners: Any) -> dict[str, Any]:
    """Our address per IP version, from the listeners (UDP first): the B2BUA's Via and
    Contact toward an IPv6 agent host must carry an IPv6 address, and the other way round."""
    hosts: dict[int, str] = {}
    for listener in sorted(listeners, key=lambda l: l.transport != "udp"):
        version = 6 if ":" in listener.address else 4
        if listener.address not in ("0.0.0.0", "::"):
            hosts.setdefault(version, listener.address)
    return {"local_hosts": hosts} if hosts else {}


def vendor_setup(config: Any, plugins: Mapping[str, Any] | None = None) -> tuple[Any, dict[str, Any], list[str]]:
    """Apply the vendor plugins to a loaded configuration: ``(config, chains, warnings)``.

    ``config`` comes back with every trunk's ``vendor:<name>`` allow entries replaced by
    the plugin's published signalling ranges (the B2BUA sees only networks) and its
    ``options_interval`` resolved (the file's value, else the plugin's, else 30 s);
    ``chains`` maps each trunk to its :class:`~sbc.quirks.chain.QuirkChain`; ``warnings``
    are :func:`sbc.quirks.host.startup_warnings` sentences to log.  ``plugins``: ``{name:
    plugin}`` (default: :func:`sbc.quirks.loader.registry`, the installed plugins).

    Raises :class:`~sbc.config.ConfigError` (one line: file, key, problem) when a plugin
    cannot be loaded, a trunk names a vendor no plugin provides, or a ``vendor:`` entry
    names an unknown vendor or one that publishes no ranges.  Calling it again on its own
    result changes nothing."""
    from sbc.quirks.chain import UnknownVendor, build_chains
    from sbc.quirks.host import startup_warnings
    from sbc.quirks.loader import PluginError, registry

    where = getattr(config, "path", "<config>")
    if plugins is None:
        try:
            plugins = registry()
        except PluginError as e:
            raise ConfigError(where, None, f"vendor plugins: {e}") from None
    installed = ", ".join(sorted(plugins)) or "none"
    ranges = {name: tuple(q.defaults.signalling_ranges) for name, q in plugins.items()}
    trunks = []
    for i, trunk in enumerate(config.trunks):
        quirk = plugins.get(trunk.vendor)
        if quirk is None:
            raise ConfigError(where, f"trunk[{i}].vendor",
                              f"no vendor plugin named {trunk.vendor!r} (installed: {installed})")
        try:
            resolved = trunk.with_vendor_ranges(ranges)
        except Invalid as e:
            raise ConfigError(where, f"trunk[{i}].{e.key}" if e.key else f"trunk[{i}]", e.problem) from None
        interval = resolved.ping_interval(quirk.defaults.options_interval)
        if interval != resolved.options_interval:
            resolved = attrs.evolve(resolved, options_interval=interval)
        trunks.append(resolved)
    config = attrs.evolve(config, trunks=tuple(trunks))
    try:
        chains = build_chains(config.trunks, plugins, config.sbc.fqdn)
    except UnknownVendor as e:  # pragma: no cover - every vendor was checked above
        raise ConfigError(where, None, str(e)) from None
    warnings = startup_warnings(chains, fqdn=config.sbc.fqdn, transports=[l.transport for l in config.listen])
    return config, chains, warnings


def build_service(config: Any, reactor: Any, *, install_signals: bool = True, dns: Any = None) -> SbcService:
    """Build the whole tree.  ``install_signals=False``: no SIGHUP handler (tests); ``dns``:
    the ``IResolver`` for RFC 3263 location (default: the system's, bound to ``reactor``).

    A vendor plugin that cannot be loaded or a bad vendor reference in the trunks (see
    :func:`vendor_setup`) raises :class:`~sbc.tap.ConfigExit`: the process stops with the
    one-line error and no traceback, as for a bad configuration file."""
    try:
        config, chains, warnings = vendor_setup(config)
    except ConfigError as e:
        from sbc.tap import ConfigExit

        raise ConfigExit(e) from None
    sip = config.sip
    endpoint_ref: list[SipDriver] = []
    endpoint = Endpoint(
        fqdn=config.sbc.fqdn,
        user_agent=config.sbc.user_agent,
        contact_port=lambda peer: endpoint_ref[0].local_port(peer),
    )

    def connect_tcp(host: str, port: int) -> Any:
        from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint

        cls = TCP6ClientEndpoint if isIPv6Address(host) else TCP4ClientEndpoint
        return cls(reactor, host, port, timeout=10).connect(tcp_factory)

    def connect_tls(host: str, port: int) -> Any:
        """A TLS connection to ``host`` (an address) verifying the certificate against the
        name the address was located from (else the address itself); fires once the
        handshake succeeded."""
        from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS

        resolver = getattr(top, "resolver", None)
        name = (resolver.server_name("tls", host, port) if resolver is not None else None) or host
        assert top.client_tls is not None
        cls = TCP6ClientEndpoint if isIPv6Address(host) else TCP4ClientEndpoint
        endpoint = wrapClientTLS(top.client_tls.creator(name), cls(reactor, host, port, timeout=10))
        d = endpoint.connect(tls_client_factory)
        d.addCallback(lambda proto: proto.handshake if proto.handshake is not None else proto)
        return d

    driver = SipDriver(
        endpoint,
        reactor,
        max_udp_size=sip.max_udp_size,
        max_message_size=sip.max_message_size,
        connect_tcp=connect_tcp,
        connect_tls=connect_tls,
    )
    endpoint_ref.append(driver)
    # Admission at the edge: source allowlist, flood control, header limit ([security]).
    from sbc.transport.admission import CallCapHandler, admission_for

    driver.admission = admission_for(config, reactor, driver._count)
    top = SbcService(config, driver, reactor, install_signals=install_signals)
    top.quirks = dict(chains)
    try:
        top.client_tls = ClientTls.from_config(config.tls, config.trunks)
    except TlsSetupError as e:
        from sbc.tap import ConfigExit

        raise ConfigExit(ConfigError(config.path, "tls", str(e))) from None
    tls_client_factory = SipStreamFactory(
        driver, "tls", max_message=sip.max_message_size, idle_timeout=sip.tcp_idle_timeout,
        max_connections=sip.max_connections, client=True)
    for warning in warnings:
        top.log.warn("vendor settings: {problem}", problem=warning)
    if hasattr(endpoint, "options_hook"):
        endpoint.options_hook = top.options_answer

    # The B2BUA: calls from a trunk's PBX to its agent host.  Its own requests leave from the
    # first UDP listener's address (Via and Contact), the socket the agent host answers to.
    # It exists whenever there is a listener, so that a reload can add the first trunk.
    udp = next((l for l in config.listen if l.transport == "udp"), None)
    first = udp or (config.listen[0] if config.listen else None)
    dispatcher = ResponseDispatcher()
    top.dispatcher = dispatcher
    if first is not None:
        from sbc.b2bua.core import B2bua
        from sbc.transport.locator import Locator, system_resolver

        resolver = DnsResolver(Locator(dns if dns is not None else system_resolver(reactor), reactor), reactor)

        ports: dict[str, int] = {}
        for l in config.listen:
            ports.setdefault(l.transport, l.port)
        calls = config.calls
        b2bua = B2bua(
            trunks=config.trunks,
            local_host=first.address,
            local_port=first.port,
            fqdn=config.sbc.fqdn,
            timers=sip,
            user_agent=config.sbc.user_agent,
            max_calls=calls.max_calls,
            max_calls_per_trunk=calls.max_calls_per_trunk or None,
            no_answer_timeout=calls.no_answer_timeout or None,
            max_call_duration=calls.max_call_duration or None,
            retry_after=calls.retry_after,
            copy_headers=calls.copy_headers,
            copy_x_headers=calls.copy_x_headers,
            local_ports=ports,
            resolver=resolver,
            events_sip_info=config.events.sip_info,
            agent_100rel=config.agent.reliable_provisionals,
            quirks=chains,
            **_local_hosts(config.listen),
        )
        b2bua.agent_srtp = config.agent.srtp
        if config.media.enabled:
            from sbc.media.relay import RtpRelay

            relay = RtpRelay(reactor, config.media.address, config.media.advertise or config.media.address,
                             config.media.port_min, config.media.port_max, media_timeout=config.media.timeout)
            b2bua.media = FlushingEngine(relay, driver)
            top.relay = relay
            relay_svc = MediaRelayService(relay)
            relay_svc.setName("media-relay")
            relay_svc.setServiceParent(top)
        endpoint.add_handler(CallCapHandler(b2bua, driver.admission, endpoint))
        # Let through the option tags the B2BUA implements (timer, 100rel) in Require.
        endpoint.set_supported(getattr(b2bua, "option_tags", ()))
        dispatcher.fallback = b2bua.handle_response
        driver.add_tu(b2bua)
        from sbc.agent.hub import EventHub

        hub = EventHub(reactor, replay_per_call=config.events.replay_per_call,
                       replay_seconds=config.events.replay_seconds)
        top.events_hub = hub
        sinks: list[Any] = [hub]
        if config.events.webhook_url is not None:
            from sbc.agent.webhook import WebhookSink

            sinks.append(WebhookSink(reactor, config.events.webhook_url, config.events.webhook_secret,
                                     retries=config.events.webhook_retries))
        driver.add_tu(AgentEventPump(b2bua, sinks))
        driver.add_tu(LookupPump(b2bua, resolver, driver, reactor))
        top.b2bua = b2bua
        top.resolver = resolver
        # Admission hook: new calls toward a trunk whose agent host is down get 503.
        if hasattr(b2bua, "agent_up"):
            b2bua.agent_up = top.agent_up
        _apply_agent(b2bua, config.agent)
        if hasattr(b2bua, "tls_admits"):  # mutual TLS and match_tls_names in trunk matching
            b2bua.tls_admits = lambda peer, trunk: tls_admits(trunk, peer.transport, driver.tls_trunks(peer))

        via_host = sent_by_host(first.address, config.sbc.fqdn)
        registrations = RegistrationTU(
            timers=sip, fqdn=config.sbc.fqdn, via_host=via_host, ports=ports,
            resolver=b2bua.resolver, user_agent=config.sbc.user_agent)
        registrations.set_trunks(config.trunks, reactor.seconds())
        dispatcher.add(registrations)
        driver.add_tu(registrations)
        top.registrations = registrations

        pinger = PingerTU(
            timers=sip, fqdn=config.sbc.fqdn, via_host=via_host, via_port=first.port,
            down_after=config.agent.down_after, user_agent=config.sbc.user_agent,
            request_hook=top.ping_request)
        pinger.set_plan(ping_targets(config.trunks, config.agent, b2bua.resolver), reactor.seconds())
        dispatcher.add(pinger)
        driver.add_tu(pinger)
        top.pinger = pinger

        def peer_changed(name: str, up: bool) -> None:
            obs = getattr(top, "observability", None)
            if obs is not None:
                obs.set_peer_up(name, up, agent=name.startswith("agent:"))

        pinger.on_change(peer_changed)
        # A background DNS answer (a name was not cached yet): send held REGISTERs, ping the
        # targets that can be located now.
        resolver.on_answer.append(top.dns_answered)
    endpoint.set_response_handler(dispatcher)

    tcp_factory = SipStreamFactory(
        driver, "tcp", max_message=sip.max_message_size, idle_timeout=sip.tcp_idle_timeout,
        max_connections=sip.max_connections)

    for listener in config.listen:
        name = f"sip-{listener.transport}-{listener.address}-{listener.port}"
        if listener.transport == "udp":
            svc: Any = UDPServer(
                listener.port,
                SipDatagramProtocol(driver),
                interface=listener.address,
                maxPacketSize=MAX_DATAGRAM,
                reactor=reactor,
            )
        elif listener.transport == "tcp":
            svc = _listening(StreamServerEndpointService(
                _stream_endpoint(reactor, listener.address, listener.port), tcp_factory))
        else:
            try:
                tls = ServerTls.from_config(listener, config.trunks, config.tls)
            except TlsSetupError as e:
                from sbc.tap import ConfigExit

                index = config.listen.index(listener)
                raise ConfigExit(ConfigError(config.path, f"listen[{index}]", str(e))) from None
            top.tls_servers[listener.key] = tls
            tls.on_refused = driver.tls_refused
            factory = SipStreamFactory(
                driver, "tls", max_message=sip.max_message_size,
                idle_timeout=sip.tcp_idle_timeout, max_connections=sip.max_connections,
                server_tls=tls)
            svc = _listening(StreamServerEndpointService(
                _stream_endpoint(reactor, listener.address, listener.port, tls), factory))
        svc.setName(name)
        svc.setServiceParent(top)

    admin = config.admin
    if admin.enabled:
        from sbc.admin import build_admin_site

        site = build_admin_site(top.health)
        if top.events_hub is not None:
            from sbc.agent.websocket import events_resource

            site.resource.putChild(b"v1", events_resource(top.events_hub, config.events.token))
        svc = _listening(StreamServerEndpointService(
            _stream_endpoint(reactor, admin.address, admin.port), site))
        svc.setName("admin-http")
        svc.setServiceParent(top)
    attach_observability(top, config, driver, top.b2bua, reactor)
    return top
