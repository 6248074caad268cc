# -*- test-case-name: tests.test_admission -*-
"""
Admission at the edge: what the transports ask before they parse a byte.

:class:`Admission` joins the pre-parse :class:`~sbc.policy.allowlist.Allowlist` and the
:class:`~sbc.policy.flood.FloodGuard` for the SIP driver, counts every refusal by reason in
the driver's counters (``sbc_admission_refusals_total{reason}``) and logs it, rate-limited,
with the source.  Refusal reasons:

``source-not-allowed``
    the source is in no trunk's or agent's network and is no peer we send to: a UDP
    datagram is dropped unread, a TCP/TLS connection is closed as it is accepted;
``banned``
    the source made ``security.ban_threshold`` refusals within ``security.ban_window``
    seconds: dropped (or closed) the same way until the ban expires;
``rate-limited``
    a request beyond the source's token bucket (dropped: answering a flood feeds it), or an
    INVITE beyond ``security.max_calls_per_source`` calls in progress from that source
    (503 with Retry-After, see :class:`CallCapHandler`);
``too-many-headers``
    more than ``security.max_headers`` header lines: 400 "Too Many Headers" when the request
    can be answered, else dropped.

Refusals by the SIP core and the B2BUA (``no-matching-trunk``, ``auth-failed``,
``parse-error`` ...) arrive as notices; :meth:`Admission.notice` counts them as strikes
against their source too.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from sbc.policy.allowlist import Allowlist
from sbc.policy.flood import FloodGuard, FloodSettings
from sbc.sip.endpoint import Peer
from sbc.sip.message import Request, make_response, salvage_error_response

from ._ratelimit import RateLimitedLog

__all__ = ["Admission", "CallCapHandler", "STRIKE_REASONS", "count_header_lines"]

#: Notice reasons (from the endpoint, the B2BUA and this module) that count as a strike
#: against their source.
STRIKE_REASONS = frozenset({
    "rate-limited", "too-many-headers", "no-matching-trunk", "auth-failed", "parse-error",
    "bad-request", "oversize", "framing-error", "rejected",
    # Responses cost no token (a peer's answers are never limited), so a flood of junk that
    # starts like a response is stopped by its refusals instead.
    "bad-response",
})

_RESPONSE_PREFIX = b"SIP/2.0 "


def count_header_lines(data: bytes) -> int:
    """Header lines of a message (folded continuation lines count too): the line ends
    before the empty line that ends the header block (or in the whole datagram if it has
    none).  C-speed: two ``bytes`` searches."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")  # bare LF line ends
        if end < 0:
            end = len(data)
    return data.count(b"\n", 0, end)


class Admission:
    """The edge checks for one SIP driver.

    :param allowlist: the source filter, or None to admit every source (``security.allowlist``
        off).
    :param guard: per-source rate limits and bans, or None for none.
    :param count: the driver's counter (reason -> +1).
    :param max_headers: header lines a message may have (0: no limit).
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, count: Callable[[str], None], *, allowlist: Allowlist | None = None,
                 guard: FloodGuard | None = None, max_headers: int = 0, max_calls_per_source: int = 0,
                 retry_after: int = 30) -> None:
        self.clock = clock
        self.count = count
        self.allowlist = allowlist
        self.guard = guard
        self.max_headers = max_headers
        self.max_calls_per_source = max_calls_per_source
        self.retry_after = retry_after
        self._log = RateLimitedLog(self.log, clock)

    # -- configuration (SIGHUP) ------------------------------------------------------------

    def set_allowlist(self, allowlist: Allowlist | None) -> None:
        if allowlist is not None and self.allowlist is not None:
            allowlist.carry_over(self.allowlist)
        self.allowlist = allowlist
        if allowlist is None:
            self.log.warn("source allowlist off (security.allowlist = false): every source is parsed")
        elif not allowlist.admit_all:
            owners = sorted({rule.owner for rule in allowlist.rules})
            self.log.info("source allowlist: {n} network(s) of {owners}; every other source is dropped before "
                          "parsing", n=len(allowlist.rules), owners=", ".join(owners) or "nobody")
        if allowlist is not None and allowlist.admit_all:
            self.log.warn("source allowlist admits every source ({why}): the pre-parse filter lets all "
                          "through; authentication and flood control decide", why=allowlist.admit_all_why)

    def set_flood(self, settings: FloodSettings | None) -> None:
        if settings is None:
            self.guard = None
        elif self.guard is None:
            self.guard = FloodGuard(settings)
        else:
            self.guard.configure(settings)

    # -- the drop paths --------------------------------------------------------------------

    def source_admitted(self, transport: str, host: str, port: int) -> bool:
        """May this source send anything at all (before any parsing)?  Counts and logs a no."""
        allowlist = self.allowlist
        if allowlist is not None and not allowlist.admits(host):
            self._refused("source-not-allowed", transport, host, port,
                          "no trunk or agent network admits it; dropped before parsing")
            return False
        guard = self.guard
        if guard is not None and guard._bans and guard.banned(host, self.clock.seconds()):
            self._refused("banned", transport, host, port, "banned for repeated abuse; dropped before parsing")
            return False
        return True

    def datagram(self, data: bytes, host: str, port: int) -> bool:
        """The whole pre-parse check of one UDP datagram: source, ban, request rate."""
        if not self.source_admitted("udp", host, port):
            return False
        guard = self.guard
        if guard is not None and not data.startswith(_RESPONSE_PREFIX):
            now = self.clock.seconds()
            if not guard.take(host, now):
                self._refused("rate-limited", "udp", host, port, "request rate above security.request_rate; dropped")
                self._strike(host, now)
                return False
        return True

    def stream_request(self, transport: str, host: str, port: int) -> bool:
        """One framed request on a stream connection: its source's bucket (bans were checked
        at accept time and are checked again here)."""
        guard = self.guard
        if guard is None:
            return True
        now = self.clock.seconds()
        if guard._bans and guard.banned(host, now):
            self._refused("banned", transport, host, port, "banned for repeated abuse; message dropped")
            return False
        if not guard.take(host, now):
            self._refused("rate-limited", transport, host, port, "request rate above security.request_rate; dropped")
            self._strike(host, now)
            return False
        return True

    def too_many_headers(self, data: bytes, peer: Peer, headers: int | None = None) -> bytes | None | bool:
        """False when the message is within ``max_headers``; else the refusal is counted and
        the 400 to send back is returned (None: nothing can be sent, drop it)."""
        limit = self.max_headers
        if not limit:
            return False
        n = headers if headers is not None else count_header_lines(data)
        if n <= limit:
            return False
        self._refused("too-many-headers", peer.transport, peer.host, peer.port,
                      f"{n} header lines, more than security.max_headers ({limit})")
        if self.guard is not None:
            self._strike(peer.host, self.clock.seconds())
        if data.startswith(_RESPONSE_PREFIX):
            return None
        return salvage_error_response(data[:65_535], 400, "Too Many Headers")

    # -- refusals reported by the core -----------------------------------------------------

    def notice(self, reason: str, host: str) -> None:
        """A refusal the SIP core or the B2BUA reported: a strike against its source."""
        if self.guard is not None and reason in STRIKE_REASONS:
            self._strike(host, self.clock.seconds())

    def refused(self, reason: str, transport: str, host: str, port: int, detail: str) -> None:
        """Count and log a refusal decided elsewhere (see :class:`CallCapHandler`)."""
        self._refused(reason, transport, host, port, detail)
        if self.guard is not None and reason in STRIKE_REASONS:
            self._strike(host, self.clock.seconds())

    def _strike(self, host: str, now: float) -> None:
        guard = self.guard
        if guard is not None and guard.strike(host, now):
            self.log.warn("banned {host} for {seconds} s: {n} refusals within {window} s",
                          host=host, seconds=guard.settings.ban_duration, n=guard.settings.threshold,
                          window=guard.settings.window)

    def _refused(self, reason: str, transport: str, host: str, port: int, detail: str) -> None:
        self.count(reason)
        self._log.emit(reason, "{reason} from {transport}:{host}:{port}: {detail}", reason=reason,
                       transport=transport, host=host, port=port, detail=detail)


class CallCapHandler:
    """Wraps the B2BUA as the endpoint's request handler: a new INVITE from a source that
    already has ``admission.max_calls_per_source`` calls in progress gets 503 with
    Retry-After (``rate-limited``) and never reaches the B2BUA.  Everything else, and every
    other attribute, is the B2BUA's.

    ``endpoint`` (:class:`~sbc.sip.endpoint.Endpoint`) queues the stateless answer and gives
    its To tag (the same for every retransmission of the INVITE)."""

    def __init__(self, inner: Any, admission: Admission, endpoint: Any) -> None:
        self.inner = inner
        self.admission = admission
        self.endpoint = endpoint
        self.methods: frozenset[str] = inner.methods

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def handle_request(self, request: Request, peer: Peer, now: float) -> None:
        cap = self.admission.max_calls_per_source
        if cap and request.method == "INVITE" and request.to.tag is None:
            if self._calls_from(peer.host, request.call_id) >= cap:
                self._refuse(request, peer)
                return
        self.inner.handle_request(request, peer, now)

    def _calls_from(self, host: str, call_id: str) -> int:
        """Calls in progress whose A leg came from ``host``; -1 when ``call_id`` is one of them
        (a retransmitted INVITE, which the B2BUA absorbs)."""
        n = 0
        for call in _values(getattr(self.inner, "calls", {})):
            a = getattr(call, "a", None)
            peer = getattr(a, "peer", None)
            if peer is None or peer.host != host or getattr(call, "ended", None) is not None:
                continue
            invite = getattr(a, "invite", None)
            if invite is not None and invite.call_id == call_id:
                return -1
            n += 1
        return n

    def _refuse(self, request: Request, peer: Peer) -> None:
        cap = self.admission.max_calls_per_source
        self.admission.refused("rate-limited", peer.transport, peer.host, peer.port,
                               f"INVITE answered 503: {cap} call(s) in progress from this source "
                               "(security.max_calls_per_source)")
        response = make_response(request, 503, "Service Unavailable", to_tag=self.endpoint.to_tag(request),
                                 headers=[("Retry-After", b"%d" % self.admission.retry_after)])
        self.endpoint.send(response.to_bytes(), peer)


def _values(table: Any) -> Iterable[Any]:
    return list(table.values()) if hasattr(table, "values") else ()


def flood_settings(security: Any) -> FloodSettings:
    """The :class:`FloodSettings` of a ``[security]`` section."""
    return FloodSettings(rate=float(security.request_rate), burst=int(security.request_burst),
                         threshold=int(security.ban_threshold), window=float(security.ban_window),
                         ban_duration=float(security.ban_duration), max_sources=int(security.max_sources))


def allowlist_for(config: Any) -> Allowlist:
    """The source allowlist of a loaded configuration (``vendor:`` entries already resolved
    to networks by the service): every trunk's ``allow``, the peers it names by IP literal,
    and ``[agent] allow``."""
    from sbc.policy.allowlist import rules_from_config

    rules, why = rules_from_config(config.trunks, getattr(config.agent, "allow", ()))
    return Allowlist(rules, admit_all=bool(why), admit_all_why=why)


def apply_security(admission: Admission, config: Any) -> None:
    """Apply a configuration's ``[security]`` section and trunk networks (start-up and SIGHUP):
    the allowlist is rebuilt (the peers remembered so far are kept), the limits replaced."""
    security = config.security
    admission.set_allowlist(allowlist_for(config) if security.allowlist else None)
    admission.set_flood(flood_settings(security))
    admission.max_headers = int(security.max_headers)
    admission.max_calls_per_source = int(security.max_calls_per_source)
    admission.retry_after = int(getattr(getattr(config, "calls", None), "retry_after", 30))


def admission_for(config: Any, clock: IReactorTime, count: Callable[[str], None]) -> Admission:
    """A new :class:`Admission` set up from ``config``."""
    admission = Admission(clock, count)
    apply_security(admission, config)
    return admission
