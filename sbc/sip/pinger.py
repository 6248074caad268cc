# -*- test-case-name: tests.test_sip_pinger -*-
"""OPTIONS keep-alive pings toward the agent host(s) and the PBX peers, as a sans-IO machine.

One :class:`Pinger` watches any number of :class:`PingTarget`\\ s.  For each target it sends
an OPTIONS every ``interval`` seconds, at most one at a time, and reads the outcome:

* a final response counts as **success** (the peer is alive, whatever it thinks of OPTIONS:
  RFC 3261 §11 lets it answer 200, 405 or 501), except
* ``503`` (overloaded or in maintenance), ``408`` and ``504`` (a proxy in front telling us the
  target did not answer), which count as **failure**, as does
* :meth:`Pinger.timeout`: the caller's non-INVITE client transaction hit Timer F or a
  transport error; or no outcome at all within ``timeout`` seconds (a safety net: the
  pinger never waits forever for a caller that lost the transaction).

Health follows the outcomes: a target starts *unknown*; ``down_after`` failures in a row
mark it *down*; one success marks it *up*.  Each change is queued as a :class:`Transition`
(:meth:`Pinger.transitions`).  :meth:`Pinger.is_up` is optimistic: unknown counts as up,
so calls are not refused before the first ping had a chance.

The caller sends each request returned by :meth:`Pinger.handle_timer` (:meth:`Pinger.set_targets`
never sends by itself: new targets are due at once, or after one interval) and
calls :meth:`Pinger.handle_timer` at :meth:`Pinger.next_deadline`.  Time is always an
argument.
"""

from __future__ import annotations

import itertools
import secrets
from typing import Callable, Iterable

from attrs import define, frozen

from sbc.sip.errors import SipParseError
from sbc.sip.message import Header, Request, Response
from sbc.sip.uri import parse_uri

__all__ = ["FAILURE_STATUSES", "PingTarget", "Pinger", "TargetStatus", "Transition"]

#: Final responses that count as a failed ping.
FAILURE_STATUSES = frozenset({408, 503, 504})


@frozen
class PingTarget:
    """What to ping: ``uri`` is the OPTIONS Request-URI (and To); ``transport``/``host``/
    ``port`` the next hop the caller sends to (the Via transport follows ``transport``)."""

    name: str
    uri: str
    transport: str
    host: str
    port: int
    interval: float

    def __attrs_post_init__(self) -> None:
        if parse_uri(self.uri).scheme not in ("sip", "sips"):
            raise ValueError("a ping target needs a sip: or sips: URI")
        if not self.interval > 0:
            raise ValueError("interval must be positive")


@frozen
class Transition:
    """Target ``name`` went up (``up=True``) or down; ``reason`` says why in one line."""

    name: str
    up: bool
    reason: str
    at: float


@frozen
class TargetStatus:
    """Snapshot of one target, for health and metrics.  ``state``: up, down or unknown."""

    name: str
    state: str
    failures: int
    last_status: int | None
    last_change: float | None
    last_success: float | None


@define
class _Target:
    target: PingTarget
    up: bool | None = None
    failures: int = 0
    next_at: float = 0.0
    pending: Request | None = None
    pending_deadline: float | None = None
    last_status: int | None = None
    last_change: float | None = None
    last_success: float | None = None


def _default_token() -> str:
    return secrets.token_hex(8)


class Pinger:
    """Pings targets with OPTIONS and tracks their health.  See the module docstring.

    :param fqdn: our FQDN, put in Contact (and From).
    :param via_host: the sent-by host of our Via; ``via_port`` its port, also the Contact port.
    :param down_after: consecutive failures before a target is marked down (>= 1).
    :param timeout: the longest wait for an outcome (default 64*T1 = 32 s, Timer F).
    :param branch_source: a fresh Via branch per request (``z9hG4bK`` is prefixed if missing).
    :param first_after_interval: a new target is first pinged one interval after it was
        added, instead of at once (it counts as up meanwhile).
    """

    def __init__(
        self,
        *,
        fqdn: str,
        via_host: str,
        via_port: int,
        down_after: int = 2,
        timeout: float = 32.0,
        branch_source: Callable[[], str],
        token_source: Callable[[], str] = _default_token,
        user_agent: str | None = None,
        first_after_interval: bool = False,
    ) -> None:
        if down_after < 1:
            raise ValueError("down_after must be >= 1")
        self.fqdn = fqdn
        self.via_host = via_host
        self.via_port = via_port
        self.down_after = down_after
        self.timeout_after = timeout
        self._branch = branch_source
        self._token = token_source
        self.user_agent = user_agent
        self.first_after_interval = first_after_interval
        self._targets: dict[str, _Target] = {}
        self._transitions: list[Transition] = []
        self._cseq = itertools.count(1)

    # ------------------------------------------------------------------ views

    def names(self) -> list[str]:
        return list(self._targets)

    def target(self, name: str) -> PingTarget | None:
        state = self._targets.get(name)
        return state.target if state is not None else None

    def is_up(self, name: str) -> bool:
        """False only for a target marked down (unknown targets and unknown names are up)."""
        state = self._targets.get(name)
        return state is None or state.up is not False

    def status(self) -> dict[str, TargetStatus]:
        return {
            name: TargetStatus(
                name=name,
                state="unknown" if t.up is None else ("up" if t.up else "down"),
                failures=t.failures,
                last_status=t.last_status,
                last_change=t.last_change,
                last_success=t.last_success,
            )
            for name, t in self._targets.items()
        }

    def transitions(self) -> list[Transition]:
        items, self._transitions = self._transitions, []
        return items

    def pending(self, name: str) -> Request | None:
        state = self._targets.get(name)
        return state.pending if state is not None else None

    def next_deadline(self) -> float | None:
        times = []
        for t in self._targets.values():
            times.append(t.pending_deadline if t.pending is not None else t.next_at)
        present = [x for x in times if x is not None]
        return min(present) if present else None

    # ------------------------------------------------------------------ inputs

    def set_targets(self, targets: Iterable[PingTarget], now: float) -> None:
        """Replace the set of targets.  A target whose name and address are unchanged keeps
        its health and schedule (its interval may change); others start unknown, due now."""
        new: dict[str, _Target] = {}
        for target in targets:
            if target.name in new:
                raise ValueError(f"duplicate ping target {target.name!r}")
            old = self._targets.get(target.name)
            if old is not None and _same_place(old.target, target):
                old.target = target
                if old.pending is None:
                    old.next_at = min(old.next_at, now + target.interval)
                new[target.name] = old
            else:
                first = now + target.interval if self.first_after_interval else now
                new[target.name] = _Target(target, next_at=first)
        self._targets = new

    def handle_timer(self, now: float) -> list[tuple[str, Request]]:
        """Time out overdue pings and send those that are due: ``[(name, OPTIONS)]``."""
        out: list[tuple[str, Request]] = []
        for name, t in self._targets.items():
            if t.pending is not None:
                if t.pending_deadline is not None and now >= t.pending_deadline:
                    self._failure(t, now, "no answer", None)
                else:
                    continue
            if t.pending is None and now >= t.next_at:
                request = self._build(t.target)
                t.pending = request
                t.pending_deadline = now + self.timeout_after
                t.next_at = now + t.target.interval
                out.append((name, request))
        return out

    def response(self, name: str, response: Response, now: float) -> None:
        """A response to the pending OPTIONS of ``name`` (provisional ones are ignored,
        as are responses that do not match the pending request)."""
        t = self._targets.get(name)
        if t is None or t.pending is None or response.status < 200 or not _matches(response, t.pending):
            return
        t.last_status = response.status
        if response.status in FAILURE_STATUSES:
            self._failure(t, now, f"{response.status} {response.reason}".strip(), response.status)
        else:
            self._success(t, now)

    def timeout(self, name: str, now: float, request: Request | None = None) -> None:
        """The pending OPTIONS of ``name`` got no final response (Timer F, transport error).
        With ``request``, only if that is the pending one (not an older ping)."""
        t = self._targets.get(name)
        if t is None or t.pending is None or (request is not None and request is not t.pending):
            return
        t.last_status = None
        self._failure(t, now, "no answer", None)

    # ------------------------------------------------------------------ outcomes

    def _done(self, t: _Target, now: float) -> None:
        t.pending = None
        t.pending_deadline = None
        t.next_at = max(t.next_at, now)

    def _success(self, t: _Target, now: float) -> None:
        self._done(t, now)
        t.failures = 0
        t.last_success = now
        if t.up is not True:
            t.up = True
            t.last_change = now
            self._transitions.append(Transition(t.target.name, True, f"answered {t.last_status}", now))

    def _failure(self, t: _Target, now: float, reason: str, status: int | None) -> None:
        self._done(t, now)
        t.last_status = status
        t.failures += 1
        if t.failures >= self.down_after and t.up is not False:
            t.up = False
            t.last_change = now
            self._transitions.append(
                Transition(t.target.name, False, f"{t.failures} failed pings, last: {reason}", now)
            )

    # ------------------------------------------------------------------ messages

    def _build(self, target: PingTarget) -> Request:
        branch = self._branch()
        if not branch.startswith("z9hG4bK"):
            branch = "z9hG4bK" + branch
        host = _bracket(self.via_host)
        fqdn = _bracket(self.fqdn)
        transport = target.transport.upper()
        param = "" if target.transport == "udp" else f";transport={target.transport}"
        headers = [
            Header("Via", f"SIP/2.0/{transport} {host}:{self.via_port};branch={branch};rport"),
            Header("Max-Forwards", "70"),
            Header("From", f"<sip:ping@{fqdn}>;tag={self._token()}"),
            Header("To", f"<{target.uri}>"),
            Header("Call-ID", f"{self._token()}@{self.fqdn}"),
            Header("CSeq", f"{next(self._cseq)} OPTIONS"),
            Header("Contact", f"<sip:{fqdn}:{self.via_port}{param}>"),
            Header("Accept", "application/sdp"),
        ]
        if self.user_agent:
            headers.append(Header("User-Agent", self.user_agent))
        headers.append(Header("Content-Length", "0"))
        return Request("OPTIONS", target.uri, tuple(headers))


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _same_place(a: PingTarget, b: PingTarget) -> bool:
    return (a.uri, a.transport, a.host, a.port) == (b.uri, b.transport, b.host, b.port)


def _matches(response: Response, request: Request) -> bool:
    try:
        return (
            response.call_id == request.call_id
            and response.cseq.method == "OPTIONS"
            and response.cseq.seq == request.cseq.seq
        )
    except SipParseError:
        return False
