# -*- test-case-name: tests.test_transport_register -*-
"""OPTIONS pings toward the agent hosts and the PBX peers, run by the SIP driver.

:class:`PingerTU` drives a sans-IO :class:`~sbc.sip.pinger.Pinger` through a transaction
layer of its own (see :class:`~sbc.transport.register.ClientTU`), reports up/down changes
to an ``on_change(name, up)`` callback and the log, and answers :meth:`PingerTU.agent_up`
for the B2BUA's admission check.

:func:`ping_targets` turns the configuration into targets:

* the first hop of each trunk's calls to its agent host (the outbound proxy if the trunk has
  one, else the host of ``agent_uri``), every ``[agent] options_interval`` seconds; trunks that
  share an agent host share its target, named ``agent:<host>:<port>``;
* each trunk's ``peer_uri``, every ``options_interval`` seconds of that trunk, named
  ``peer:<trunk>``.

A target is first pinged one interval after start (or after a reload added it); until its
first outcome it counts as up.  A name the resolver must first look up in DNS is left out
until the answer arrives (the service then builds the plan again).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable

from attrs import frozen

from sbc.config import DEFAULT_OPTIONS_INTERVAL
from sbc.sip.endpoint import Peer
from sbc.sip.errors import SipError
from sbc.sip.message import Request, Response
from sbc.sip.pinger import PingTarget, Pinger
from sbc.sip.transaction import TransactionKey
from sbc.sip.uri import parse_uri

from .register import ClientTU, Resolver, _bracket

__all__ = ["PingPlan", "PingerTU", "ping_targets"]


@frozen
class PingPlan:
    """The targets, and which agent target serves each trunk (``agent_of[trunk]``)."""

    targets: tuple[PingTarget, ...]
    agent_of: dict[str, str]
    unresolved: tuple[str, ...] = ()  # one line per target that could not be located


def _target(name: str, uri_text: str, interval: float, resolver: Resolver) -> PingTarget | None | bool:
    """The target, or None if it cannot be located, or False while DNS is being asked."""
    try:
        uri = parse_uri(uri_text)
        peers = resolver.resolve(uri)
    except (SipError, ValueError):
        return None
    if peers is None:
        return False
    if not peers:
        return None
    peer = peers[0]
    return PingTarget(name, str(uri.with_user(None).without_param("lr")), peer.transport, peer.host,
                      peer.port, interval)


def ping_targets(trunks: Iterable[Any], agent: Any, resolver: Resolver) -> PingPlan:
    """Build the ping plan for ``trunks`` and the ``[agent]`` section."""
    targets: dict[str, PingTarget] = {}
    agent_of: dict[str, str] = {}
    unresolved: list[str] = []
    for trunk in trunks:
        if agent.options_interval > 0:
            hop = trunk.outbound_proxy or trunk.agent_uri.format(user="ping")
            probe = _target("agent", hop, agent.options_interval, resolver)
            if probe is None:
                unresolved.append(f"agent host of trunk {trunk.name}: cannot locate {hop}")
            elif isinstance(probe, PingTarget):
                name = f"agent:{_bracket(probe.host)}:{probe.port}"
                if probe.transport != "udp":
                    name += f";{probe.transport}"
                targets.setdefault(name, PingTarget(name, probe.uri, probe.transport, probe.host, probe.port,
                                                    probe.interval))
                agent_of[trunk.name] = name
        peer_uri = getattr(trunk, "peer_uri", None)
        interval = getattr(trunk, "options_interval", 0.0)
        if interval is None:  # not set in the file and not resolved against the vendor (service)
            interval = DEFAULT_OPTIONS_INTERVAL
        if peer_uri and interval > 0:
            name = f"peer:{trunk.name}"
            target = _target(name, peer_uri, interval, resolver)
            if target is None:
                unresolved.append(f"peer of trunk {trunk.name}: cannot locate {peer_uri}")
            elif isinstance(target, PingTarget):
                targets[name] = target
    return PingPlan(tuple(targets.values()), agent_of, tuple(unresolved))


class PingerTU(ClientTU):
    """Runs the pings; see the module docstring.

    :param on_change: called with ``(name, up)`` on every transition (metrics); exceptions
        it raises are logged and swallowed.
    :param request_hook: ``hook(name, request) -> request``, applied to every OPTIONS before
        it is sent (the service runs the trunk's vendor plugins on ``peer:<trunk>`` pings);
        if it raises, the ping goes out unchanged and the failure is logged.
    """

    def __init__(
        self,
        *,
        timers: Any,
        fqdn: str,
        via_host: str,
        via_port: int,
        down_after: int,
        user_agent: str | None = None,
        on_change: Callable[[str, bool], None] | None = None,
        prefix: str | None = None,
        request_hook: Callable[[str, Request], Request] | None = None,
    ) -> None:
        super().__init__(timers, prefix or f"opt{os.urandom(3).hex()}")
        self.request_hook = request_hook
        self.pinger = Pinger(
            fqdn=fqdn,
            via_host=via_host,
            via_port=via_port,
            down_after=down_after,
            timeout=64 * self._tx.timers.t1 + 1.0,
            branch_source=self.new_branch,
            user_agent=user_agent,
            first_after_interval=True,
        )
        self._callbacks: list[Callable[[str, bool], None]] = [on_change] if on_change else []
        self._by_key: dict[TransactionKey, tuple[str, Request]] = {}
        self._agent_of: dict[str, str] = {}
        self._warned: set[str] = set()
        self._running = False

    def on_change(self, callback: Callable[[str, bool], None]) -> None:
        """Add a callback ``(name, up)`` for transitions."""
        self._callbacks.append(callback)

    # -- configuration ---------------------------------------------------------------------

    def set_plan(self, plan: PingPlan, now: float) -> None:
        for line in plan.unresolved:
            if line not in self._warned:
                self.log.warn("not pinging the {line}", line=line)
        self._warned = set(plan.unresolved)
        self._agent_of = dict(plan.agent_of)
        self.pinger.set_targets(plan.targets, now)
        if self._running:
            self._own_timer(now)

    def set_down_after(self, down_after: int) -> None:
        self.pinger.down_after = down_after

    def start(self, now: float) -> None:
        self._running = True
        self._own_timer(now)

    def stop(self) -> None:
        self._running = False

    # -- views -----------------------------------------------------------------------------

    def peer_status(self) -> dict[str, bool]:
        """``{target: up}``; a target not yet answered counts as up."""
        return {name: self.pinger.is_up(name) for name in self.pinger.names()}

    def peer_details(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"state": s.state, "failures": s.failures, "last_status": s.last_status,
                   "last_change": s.last_change, "last_success": s.last_success}
            for name, s in self.pinger.status().items()
        }

    def agent_up(self, trunk: str) -> bool:
        """False only when the agent host of ``trunk`` is marked down."""
        name = self._agent_of.get(trunk)
        return True if name is None else self.pinger.is_up(name)

    # -- driving ---------------------------------------------------------------------------

    def _own_deadline(self) -> float | None:
        return self.pinger.next_deadline() if self._running else None

    def _own_timer(self, now: float) -> None:
        if not self._running:
            return
        for name, request in self.pinger.handle_timer(now):
            target = self.pinger.target(name)
            assert target is not None
            peer = Peer(target.transport, target.host, target.port, 0)
            request = self._hooked(name, request)
            try:
                key = self._start(request, peer, now)
            except SipError:
                self.log.failure("OPTIONS to {name} could not be sent", name=name)
                self.pinger.timeout(name, now)
                continue
            self._by_key[key] = (name, request)
        self._report()

    def _hooked(self, name: str, request: Request) -> Request:
        hook = self.request_hook
        if hook is None:
            return request
        try:
            out = hook(name, request)
        except Exception:
            self.log.failure("OPTIONS hook failed for {name}; sending the ping unchanged", name=name)
            return request
        return out if isinstance(out, Request) else request

    def _final(self, key: TransactionKey, response: Response, now: float) -> None:
        item = self._by_key.get(key)
        if item is not None:
            self.pinger.response(item[0], response, now)
            self._report()

    def _failed(self, key: TransactionKey, now: float) -> None:
        item = self._by_key.get(key)
        if item is not None:
            self.pinger.timeout(item[0], now, item[1])
            self._report()

    def _gone(self, key: TransactionKey) -> None:
        self._by_key.pop(key, None)

    def _report(self) -> None:
        for t in self.pinger.transitions():
            if t.up:
                self.log.info("{name} is up ({reason})", name=t.name, reason=t.reason)
            else:
                self.log.warn("{name} is down ({reason})", name=t.name, reason=t.reason)
            for callback in self._callbacks:
                try:
                    callback(t.name, t.up)
                except Exception:
                    self.log.failure("ping status callback raised for {name}", name=t.name)
