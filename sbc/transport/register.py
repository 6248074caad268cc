# -*- test-case-name: tests.test_transport_register -*-
"""Outbound registration toward trunks, run by the :class:`~sbc.transport.driver.SipDriver`.

:class:`RegistrationTU` holds one sans-IO :class:`~sbc.sip.registration.RegistrationClient`
per trunk that has a ``[trunk.register]`` table and runs their REGISTER requests through a
transaction layer of its own (non-INVITE client transactions: retransmissions, Timer F).
It is a driver *transaction user*: ``driver.add_tu(tu)`` makes the driver send what
:meth:`~ClientTU.messages_to_send` returns and call :meth:`~ClientTU.handle_timer` at
:meth:`~ClientTU.next_deadline`.

Responses reach it through the service's response dispatcher: every branch this TU puts in
a Via starts with its own prefix, so :meth:`~ClientTU.owns` can tell its responses from the
B2BUA's without looking further than the top Via.

The module holds no reactor and no socket; time comes in as ``now``.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
from typing import Any, Callable, Iterable, Protocol

from twisted.logger import Logger

from sbc.sip.digest import ClientCredentials
from sbc.sip.endpoint import Peer
from sbc.sip.errors import SipError, SipParseError
from sbc.sip.message import Request, Response
from sbc.sip.registration import RegistrationClient, RegistrationConfig, RegState
from sbc.sip.transaction import (
    MAGIC_COOKIE,
    ResponseReceived,
    Timers,
    TransactionKey,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)
from sbc.sip.uri import URI, parse_uri

__all__ = ["ClientTU", "RegistrationTU", "Resolver", "sent_by_host"]


class Resolver(Protocol):
    """Locates a SIP URI: the peers to try, best first ([] if it cannot; None while it
    must ask DNS first -- see :class:`sbc.service.DnsResolver`)."""

    def resolve(self, uri: URI) -> list[Peer] | None: ...


def sent_by_host(local_host: str, fqdn: str) -> str:
    """The host for our Via: the listener's address, or our FQDN for a wildcard bind."""
    try:
        if ipaddress.ip_address(local_host).is_unspecified:
            return fqdn
    except ValueError:
        pass
    return local_host


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class ClientTU:
    """A transaction user that only sends requests, over a transaction layer of its own.

    Subclasses implement :meth:`_final` (a final response for transaction ``key``) and
    :meth:`_failed` (Timer F or a transport error).  Branches are ``z9hG4bK<prefix>-<n>``.
    """

    log = Logger()

    def __init__(self, timers: Any, prefix: str) -> None:
        if not isinstance(timers, Timers):
            timers = Timers(t1=timers.t1, t2=timers.t2, t4=timers.t4)
        self._tx = TransactionLayer(timers)
        self.prefix = prefix
        self._branch_prefix = f"{MAGIC_COOKIE}{prefix}-"
        self._seq = itertools.count(1)

    def new_branch(self) -> str:
        return f"{self._branch_prefix}{next(self._seq):x}"

    # -- driver interface ------------------------------------------------------------------

    def messages_to_send(self) -> list[tuple[Request | Response, Peer]]:
        return self._tx.messages_to_send()  # type: ignore[return-value]

    def next_deadline(self) -> float | None:
        own = self._own_deadline()
        tx = self._tx.next_deadline()
        if own is None:
            return tx
        return own if tx is None else min(own, tx)

    def handle_timer(self, now: float) -> None:
        self._tx.handle_timer(now)
        self._drain(now)
        self._own_timer(now)

    # -- response dispatch -----------------------------------------------------------------

    def owns(self, response: Response) -> bool:
        """True if ``response`` answers a live transaction of this TU."""
        if not len(self._tx):  # nothing of ours is waiting: every call's response passes here
            return False
        try:
            branch = response.top_via.branch
            method = response.cseq.method
        except SipParseError:
            return False
        if not branch or not branch.startswith(self._branch_prefix):
            return False
        return self._tx.state(TransactionKey(False, method, branch, "")) is not None

    def handle_response(self, response: Response, peer: Peer, now: float) -> None:
        self._tx.receive(response, peer, peer.reliable, now)
        self._drain(now)

    # -- internals -------------------------------------------------------------------------

    def _start(self, request: Request, peer: Peer, now: float) -> TransactionKey:
        key = self._tx.send_request(request, peer, peer.reliable, now)
        return key

    def _drain(self, now: float) -> None:
        while (event := self._tx.next_event()) is not None:
            try:
                if isinstance(event, ResponseReceived):
                    if event.response.status >= 200:
                        self._final(event.key, event.response, now)
                elif isinstance(event, (TransactionTimeout, TransportError)):
                    self._failed(event.key, now)
                elif isinstance(event, TransactionTerminated):
                    self._gone(event.key)
            except Exception:
                self.log.failure("{tu} raised on a transaction event", tu=type(self).__name__)

    def _own_deadline(self) -> float | None:
        return None

    def _own_timer(self, now: float) -> None:
        pass

    def _final(self, key: TransactionKey, response: Response, now: float) -> None:
        raise NotImplementedError

    def _failed(self, key: TransactionKey, now: float) -> None:
        raise NotImplementedError

    def _gone(self, key: TransactionKey) -> None:
        pass


class _Entry:
    __slots__ = ("name", "register", "client", "retiring")

    def __init__(self, name: str, register: Any, client: RegistrationClient) -> None:
        self.name = name
        self.register = register
        self.client = client
        self.retiring = False


class RegistrationTU(ClientTU):
    """Registers the SBC with every trunk that has a ``register`` table.

    :param fqdn: our FQDN: the Contact host.
    :param via_host: the sent-by host of our Via (see :func:`sent_by_host`).
    :param ports: our listening port per transport (``{"udp": 5060, "tcp": 5060}``), for
        Via and Contact.
    :param resolver: locates the registrar (the B2BUA's resolver).
    """

    def __init__(
        self,
        *,
        timers: Any,
        fqdn: str,
        via_host: str,
        ports: dict[str, int],
        resolver: Resolver,
        user_agent: str | None = None,
        prefix: str | None = None,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(timers, prefix or f"reg{os.urandom(3).hex()}")
        self.fqdn = fqdn
        self.via_host = via_host
        self.ports = dict(ports)
        self.resolver = resolver
        self.user_agent = user_agent
        self._jitter = jitter
        self._entries: dict[str, _Entry] = {}
        self._retiring: list[_Entry] = []
        self._by_key: dict[TransactionKey, _Entry] = {}
        self._held: dict[int, tuple[_Entry, Request]] = {}
        self._started = False

    # -- configuration ---------------------------------------------------------------------

    def set_trunks(self, trunks: Iterable[Any], now: float) -> None:
        """Register with the trunks that have a ``register`` table.  An unchanged table keeps
        its registration; a removed or changed one is de-registered (a new one starts)."""
        wanted = {t.name: t.register for t in trunks if getattr(t, "register", None) is not None}
        for name, entry in list(self._entries.items()):
            if wanted.get(name) != entry.register:
                del self._entries[name]
                self._retire(entry, now)
        for name, register in wanted.items():
            if name in self._entries:
                continue
            try:
                client = self._make_client(register)
            except (SipError, ValueError):
                self.log.failure("cannot register with trunk {trunk}", trunk=name)
                continue
            entry = _Entry(name, register, client)
            self._entries[name] = entry
            if self._started:
                self._run(entry, entry.client.start(now), now)

    def _make_client(self, register: Any) -> RegistrationClient:
        transport = self._transport_for(register.registrar)
        port = self.ports.get(transport) or self.ports.get("udp") or next(iter(self.ports.values()), 5060)
        param = "" if transport == "udp" else f";transport={transport}"
        credentials = None
        if register.username is not None and register.password is not None:
            credentials = ClientCredentials(register.username, register.password, register.realm)
        config = RegistrationConfig(
            registrar=register.registrar,
            aor=register.aor,
            contact=f"sip:{register.contact_user}@{_bracket(self.fqdn)}:{port}{param}",
            via_sent_by=f"{_bracket(self.via_host)}:{port}",
            via_transport=transport.upper(),
            credentials=credentials,
            expires=register.expires,
            user_agent=self.user_agent,
        )
        kwargs: dict[str, Any] = {}
        if self._jitter is not None:
            kwargs["jitter"] = self._jitter
        return RegistrationClient(config, branch_source=self.new_branch, **kwargs)

    def _transport_for(self, registrar: str) -> str:
        peer = self._locate(registrar)
        if peer is not None:
            return peer.transport
        uri = parse_uri(registrar)
        return uri.transport or ("tls" if uri.scheme == "sips" else "udp")

    def _locate(self, registrar: str) -> Peer | None:
        peers = self._lookup(registrar)
        return peers[0] if peers else None

    def _lookup(self, registrar: str) -> list[Peer] | None:
        """Peers for the registrar; None when the resolver must ask DNS first."""
        try:
            return self.resolver.resolve(parse_uri(registrar))
        except (SipError, ValueError):
            return []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, now: float) -> None:
        self._started = True
        for entry in list(self._entries.values()):
            self._run(entry, entry.client.start(now), now)

    def stop(self, now: float) -> None:
        """De-register everywhere (REGISTER with expires=0 where a binding may exist)."""
        self._started = False
        for name, entry in list(self._entries.items()):
            del self._entries[name]
            self._retire(entry, now)

    def stopped(self) -> bool:
        """True once every de-registration finished (or none was needed)."""
        return not self._retiring and not any(
            e.client.state not in (RegState.IDLE, RegState.STOPPED) for e in self._entries.values()
        )

    def _retire(self, entry: _Entry, now: float) -> None:
        entry.retiring = True
        self._retiring.append(entry)
        self._run(entry, entry.client.stop(now), now)
        self._forget_stopped()

    def _forget_stopped(self) -> None:
        self._retiring = [e for e in self._retiring if e.client.state is not RegState.STOPPED]

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, dict[str, Any]]:
        """``{trunk: {state, detail, expires_at, last_status, last_reason, failures,
        next_attempt_at}}`` for the trunks configured now."""
        out: dict[str, dict[str, Any]] = {}
        for name, entry in self._entries.items():
            s = entry.client.status
            out[name] = {
                "state": s.state,
                "detail": s.detail.value,
                "registrar": entry.register.registrar,
                "expires_at": s.expires_at,
                "last_status": s.last_status,
                "last_reason": s.last_reason,
                "failures": s.failures,
                "next_attempt_at": s.next_attempt_at,
            }
        return out

    # -- driving the clients ---------------------------------------------------------------

    def release_held(self, now: float) -> None:
        """DNS answered: send the requests that waited for it (or fail them if the
        registrar still cannot be located)."""
        held, self._held = self._held, {}
        for entry, request in held.values():
            self._run(entry, [request], now, may_wait=False)

    def _run(self, entry: _Entry, requests: list[Request], now: float, *, may_wait: bool = True) -> None:
        queue = list(requests)
        while queue:
            request = queue.pop(0)
            peers = self._lookup(entry.register.registrar)
            if peers is None and may_wait:
                self._held[id(entry)] = (entry, request)  # sent when DNS answers
                continue
            peer = peers[0] if peers else None
            if peer is None:
                self.log.warn("cannot locate registrar {registrar} of trunk {trunk}",
                              registrar=entry.register.registrar, trunk=entry.name)
                queue.extend(entry.client.timeout(now))
                continue
            try:
                key = self._start(request, peer, now)
            except SipError:
                self.log.failure("REGISTER toward {trunk} could not be sent", trunk=entry.name)
                queue.extend(entry.client.timeout(now))
                continue
            self._by_key[key] = entry
        if entry.retiring:
            self._forget_stopped()

    def _final(self, key: TransactionKey, response: Response, now: float) -> None:
        entry = self._by_key.get(key)
        if entry is None:
            return
        before = entry.client.status.state
        self._run(entry, entry.client.response(response, now), now)
        self._log_change(entry, before)

    def _failed(self, key: TransactionKey, now: float) -> None:
        entry = self._by_key.get(key)
        if entry is None:
            return
        before = entry.client.status.state
        self._run(entry, entry.client.timeout(now), now)
        self._log_change(entry, before)

    def _gone(self, key: TransactionKey) -> None:
        self._by_key.pop(key, None)

    def _own_deadline(self) -> float | None:
        if not self._entries and not self._retiring:  # asked at every driver flush
            return None
        times = [e.client.next_deadline() for e in self._all()]
        present = [t for t in times if t is not None]
        return min(present) if present else None

    def _own_timer(self, now: float) -> None:
        for entry in self._all():
            deadline = entry.client.next_deadline()
            if deadline is not None and deadline <= now:
                before = entry.client.status.state
                self._run(entry, entry.client.handle_timer(now), now)
                self._log_change(entry, before)

    def _all(self) -> list[_Entry]:
        return [*self._entries.values(), *self._retiring]

    def _log_change(self, entry: _Entry, before: str) -> None:
        s = entry.client.status
        if s.state == before:
            return
        if entry.retiring:
            return
        self.log.info(
            "registration of trunk {trunk} with {registrar}: {state} (last {status} {reason})",
            trunk=entry.name, registrar=entry.register.registrar, state=s.state,
            status=s.last_status, reason=s.last_reason,
        )
