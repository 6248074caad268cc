# -*- test-case-name: tests.test_sip_registration -*-
"""Outbound registration (RFC 3261 §10.2) of the SBC toward one trunk, as a sans-IO machine.

One :class:`RegistrationClient` per trunk that must register.  It builds REGISTER requests
and reads their final responses; the caller sends each request through a non-INVITE client
transaction, feeds back the final response (:meth:`~RegistrationClient.response`) or the
transaction's failure (:meth:`~RegistrationClient.timeout`: Timer F or a transport error),
and calls :meth:`~RegistrationClient.handle_timer` at :meth:`~RegistrationClient.next_deadline`.
Every input takes ``now`` and returns the list of requests to send (zero or one).

Rules:

* **One request at a time** (RFC 3261 §10.2): nothing new is sent before the previous
  REGISTER got a final response or failed.  Call-ID and From tag stay the same for the
  life of the client; CSeq goes up by one per request.
* **Challenges**: a 401/407 is answered (SHA-256 preferred, see :mod:`sbc.sip.digest`) at most
  once.  If the answer is challenged again, that is a failure, unless every new challenge
  says ``stale=true`` (then one more answer with the new nonce is allowed, twice at most in a
  row).  After a success the challenge is remembered and the next refresh carries credentials
  for the same nonce with the next nonce-count (saving a round trip); a registrar that wants a
  new nonce just challenges again, and that challenge does not count as a rejection.
* **Refresh**: ``granted`` is the expiry the registrar granted for our contact (the
  ``expires`` parameter of our Contact in the 2xx, else its Expires header, else the single
  Contact's ``expires``, else what we asked for).  The refresh is sent at
  ``max(granted / 2, granted - refresh_margin)`` seconds after the 2xx (``refresh_margin``
  defaults to 60 s, so that a refresh that times out after 32 s still leaves time to retry).
* **423 Interval Too Brief**: the request is re-sent at once asking for ``Min-Expires``, if
  that is larger than what we asked for and not above ``max_expires``; otherwise a failure.
* **Failures** (timeouts, 3xx-6xx, a rejected answer to a challenge): retry after a backoff in
  the style of RFC 5626 §4.5: after the n-th consecutive failure wait
  ``W * (0.5 + 0.5 * jitter())`` with ``W = min(retry_max, retry_base * 2 ** (n - 1))``
  (``retry_base`` 30 s, ``retry_max`` 1800 s).  A ``Retry-After`` on the failure response
  (503 and the others that may carry it) is used instead, bounded by ``max_retry_after``.
  A binding still valid stays counted as registered until it expires.
* **Stop**: :meth:`~RegistrationClient.stop` sends a REGISTER with ``expires=0`` on our
  Contact (never ``Contact: *``, which would remove other devices' bindings too) and
  ``Expires: 0``.  If a REGISTER is in flight, the de-registration follows its outcome.

The password lives in :class:`~sbc.sip.digest.ClientCredentials` and never shows in any
``repr``/``str`` of this module's objects.
"""

from __future__ import annotations

import enum
import random
import re
import secrets
from typing import Callable

from attrs import frozen

from sbc.sip.digest import ClientCredentials, DigestChallenge, NonceCounter, authorize, challenges_in, select_challenges
from sbc.sip.errors import SipParseError
from sbc.sip.message import Header, Request, Response
from sbc.sip.uri import URI, parse_uri

__all__ = [
    "RegistrationConfig",
    "RegistrationClient",
    "RegistrationStatus",
    "RegState",
]

_RETRY_AFTER_RE = re.compile(rb"[ \t]*([0-9]{1,10})")
_DIGITS_RE = re.compile(r"[0-9]{1,10}\Z")


@frozen
class RegistrationConfig:
    """What one trunk registration needs.  Transport-side fields come from the caller.

    ``registrar``: Request-URI of the REGISTER (``sip:example.com``); ``aor``: the address of
    record in From and To; ``contact``: our contact URI; ``via_sent_by``/``via_transport``:
    our Via; ``route``: Route header values (an outbound proxy, ``<sip:p.example.com;lr>``);
    ``contact_params``: extra Contact parameters (``+sip.instance``, ``reg-id``...).
    """

    registrar: str
    aor: str
    contact: str
    via_sent_by: str
    via_transport: str = "UDP"
    credentials: ClientCredentials | None = None
    expires: int = 3600
    refresh_margin: float = 60.0
    retry_base: float = 30.0
    retry_max: float = 1800.0
    max_retry_after: float = 3600.0
    max_expires: int = 86400
    route: tuple[str, ...] = ()
    contact_params: tuple[tuple[str, str | None], ...] = ()
    user_agent: str | None = None
    reuse_nonce: bool = True

    def __attrs_post_init__(self) -> None:
        parse_uri(self.registrar)
        parse_uri(self.aor)
        parse_uri(self.contact)
        if not 0 < self.expires <= self.max_expires:
            raise ValueError("expires must be positive and not above max_expires")
        if self.retry_base <= 0 or self.retry_max < self.retry_base:
            raise ValueError("retry_base must be positive and not above retry_max")


class RegState(enum.Enum):
    IDLE = "idle"  # never started
    REGISTERING = "registering"  # a REGISTER in flight, no valid binding
    REGISTERED = "registered"  # binding valid, refresh scheduled
    REFRESHING = "refreshing"  # a REGISTER in flight, binding still valid
    RETRY_WAIT = "retry-wait"  # the last attempt failed; waiting to retry
    UNREGISTERING = "unregistering"  # the Expires: 0 REGISTER in flight
    STOPPED = "stopped"


@frozen
class RegistrationStatus:
    """A snapshot for metrics and the admin API.

    ``state`` is ``"registered"`` while a binding is valid, else ``"failed"`` after a failure
    (until the next success or a stop), else ``"unregistered"``.
    """

    state: str
    detail: RegState
    expires_at: float | None
    last_status: int | None
    last_reason: str | None
    failures: int
    next_attempt_at: float | None


def _default_token() -> str:
    return secrets.token_hex(10)


def _uri_key(uri: URI) -> tuple[str, str | None, str, int | None]:
    return (uri.scheme, uri.user, uri.host.lower(), uri.port)


class RegistrationClient:
    """Registration state machine for one trunk.  See the module docstring for the rules.

    ``branch_source()`` gives a fresh Via branch per request (``z9hG4bK`` is prefixed if
    missing); ``token_source()`` gives the Call-ID, the From tag and cnonces; ``jitter()``
    a number in [0, 1) for the backoff.
    """

    def __init__(
        self,
        config: RegistrationConfig,
        *,
        branch_source: Callable[[], str],
        token_source: Callable[[], str] = _default_token,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self._branch = branch_source
        self._token = token_source
        self._jitter = jitter
        self.call_id = f"{token_source()}@sbc"
        self.from_tag = token_source()
        self._contact_key = _uri_key(parse_uri(config.contact))
        self._cseq = 0
        self._state = RegState.IDLE
        self._expires_req = config.expires
        self._pending: Request | None = None
        self._pending_unregister = False
        self._answered = False  # the pending request answers a challenge to the one before
        self._stale_retries = 0
        self._challenges: list[DigestChallenge] = []  # remembered for pre-emptive answers
        self._counter = NonceCounter()
        self._stop_requested = False
        self._expires_at: float | None = None
        self._refresh_at: float | None = None
        self._retry_at: float | None = None
        self._failures = 0
        self._failed = False
        self._last_status: int | None = None
        self._last_reason: str | None = None

    def __repr__(self) -> str:
        return (
            f"<RegistrationClient aor={self.config.aor!r} state={self._state.value} "
            f"expires_at={self._expires_at!r} last_status={self._last_status!r}>"
        )

    __str__ = __repr__

    # ------------------------------------------------------------------ views

    @property
    def state(self) -> RegState:
        return self._state

    @property
    def pending(self) -> Request | None:
        """The REGISTER awaiting its final response, if any."""
        return self._pending

    @property
    def status(self) -> RegistrationStatus:
        if self._expires_at is not None:
            summary = "registered"
        elif self._failed:
            summary = "failed"
        else:
            summary = "unregistered"
        return RegistrationStatus(
            state=summary,
            detail=self._state,
            expires_at=self._expires_at,
            last_status=self._last_status,
            last_reason=self._last_reason,
            failures=self._failures,
            next_attempt_at=self._retry_at if self._state is RegState.RETRY_WAIT else self._refresh_at,
        )

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next run (None: waiting for a response or idle)."""
        times = [self._expires_at]
        if self._state is RegState.REGISTERED:
            times.append(self._refresh_at)
        elif self._state is RegState.RETRY_WAIT:
            times.append(self._retry_at)
        present = [t for t in times if t is not None]
        return min(present) if present else None

    # ------------------------------------------------------------------ inputs

    def start(self, now: float) -> list[Request]:
        """Begin registering (from IDLE or STOPPED); otherwise does nothing."""
        if self._state not in (RegState.IDLE, RegState.STOPPED):
            return []
        self._stop_requested = False
        self._failures = 0
        self._failed = False
        self._expires_req = self.config.expires
        self._state = RegState.REGISTERING
        return [self._send(self._build(self._expires_req, preemptive=True), unregister=False, answered=False)]

    def stop(self, now: float) -> list[Request]:
        """De-register: REGISTER with expires=0 now, or once the request in flight completes."""
        if self._state in (RegState.IDLE, RegState.STOPPED, RegState.UNREGISTERING):
            if self._state is RegState.IDLE:
                self._state = RegState.STOPPED
            return []
        if self._pending is not None:
            self._stop_requested = True
            return []
        return self._unregister_or_stop(now, binding_unknown=False)

    def response(self, resp: Response, now: float) -> list[Request]:
        """A response to the pending REGISTER.  Others (older CSeq, other Call-ID) are ignored."""
        pending = self._pending
        if pending is None or not self._matches(resp, pending):
            return []
        if resp.status < 200:
            return []
        self._pending = None
        self._last_status = resp.status
        self._last_reason = resp.reason
        if self._pending_unregister:
            return self._unregister_response(resp, now)
        if self._stop_requested:
            return self._after_stop_request(resp, now)
        code = resp.status
        if 200 <= code < 300:
            self._success(resp, now)
            return []
        if code in (401, 407):
            return self._challenged(resp, now, pending)
        if code == 423:
            return self._interval_too_brief(resp, now)
        return self._fail(now, resp.reason or str(code), _retry_after(resp))

    def timeout(self, now: float) -> list[Request]:
        """The pending REGISTER's transaction timed out or hit a transport error."""
        if self._pending is None:
            return []
        self._pending = None
        self._last_status = 408
        self._last_reason = "Request Timeout (no response)"
        if self._pending_unregister:
            self._finish_stop()
            return []
        if self._stop_requested:
            return self._unregister_or_stop(now, binding_unknown=True)
        return self._fail(now, self._last_reason, None)

    def handle_timer(self, now: float) -> list[Request]:
        """Run what is due at ``now``: binding expiry, refresh, retry."""
        if self._expires_at is not None and now >= self._expires_at:
            self._expires_at = None
            self._refresh_at = None
            if self._state is RegState.REFRESHING:
                self._state = RegState.REGISTERING
            if self._state is RegState.REGISTERED:  # refresh_at is always earlier; defensive
                self._state = RegState.RETRY_WAIT
                self._retry_at = now
        if self._state is RegState.REGISTERED and self._refresh_at is not None and now >= self._refresh_at:
            self._state = RegState.REFRESHING
            self._refresh_at = None
            return [self._send(self._build(self._expires_req, preemptive=True), unregister=False, answered=False)]
        if self._state is RegState.RETRY_WAIT and self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            self._state = RegState.REFRESHING if self._expires_at is not None else RegState.REGISTERING
            return [self._send(self._build(self._expires_req, preemptive=True), unregister=False, answered=False)]
        return []

    # ------------------------------------------------------------------ outcomes

    def _success(self, resp: Response, now: float) -> None:
        granted = self._granted(resp)
        if granted <= 0:
            self._fail(now, "registrar granted no binding", None)
            return
        self._expires_at = now + granted
        self._refresh_at = now + max(granted / 2, granted - self.config.refresh_margin)
        self._retry_at = None
        self._state = RegState.REGISTERED
        self._failures = 0
        self._failed = False
        self._stale_retries = 0

    def _challenged(self, resp: Response, now: float, pending: Request) -> list[Request]:
        creds = self.config.credentials
        if creds is None:
            return self._fail(now, "authentication required but no credentials configured", None)
        chosen = select_challenges(challenges_in(resp, strict=False), realm=creds.realm)
        if not chosen:
            return self._fail(now, "no usable authentication challenge", None)
        if self._answered:
            if not all(ch.stale for ch in chosen) or self._stale_retries >= 2:
                self._challenges = []
                return self._fail(now, "credentials rejected", None)
            self._stale_retries += 1
        else:
            self._stale_retries = 0
        self._challenges = chosen
        request = self._build(self._expires_req, preemptive=False)
        authorized = authorize(request, chosen, creds, counter=self._counter, cnonce_source=self._token)
        if authorized is None:  # pragma: no cover - select_challenges already filtered
            return self._fail(now, "no usable authentication challenge", None)
        return [self._send(authorized, unregister=False, answered=True)]

    def _interval_too_brief(self, resp: Response, now: float) -> list[Request]:
        value = resp.get("Min-Expires")
        text = value.decode("latin-1").strip() if value is not None else ""
        if not _DIGITS_RE.match(text):
            return self._fail(now, "423 without a usable Min-Expires", None)
        minimum = int(text)
        if minimum <= self._expires_req or minimum > self.config.max_expires:
            return self._fail(now, f"423 asks for Min-Expires {minimum}", None)
        self._expires_req = minimum
        return [self._send(self._build(minimum, preemptive=True), unregister=False, answered=False)]

    def _fail(self, now: float, reason: str, retry_after: float | None) -> list[Request]:
        self._failures += 1
        self._failed = True
        self._last_reason = reason
        self._answered = False
        self._stale_retries = 0
        self._challenges = []
        cfg = self.config
        if retry_after is not None:
            delay = min(max(retry_after, 1.0), cfg.max_retry_after)
        else:
            window = min(cfg.retry_max, cfg.retry_base * 2 ** min(self._failures - 1, 32))
            delay = window * (0.5 + 0.5 * self._jitter())
        self._retry_at = now + delay
        self._refresh_at = None
        self._state = RegState.RETRY_WAIT
        return []

    # ------------------------------------------------------------------ stopping

    def _after_stop_request(self, resp: Response, now: float) -> list[Request]:
        if 200 <= resp.status < 300:
            granted = self._granted(resp)
            self._expires_at = now + granted if granted > 0 else None
        return self._unregister_or_stop(now, binding_unknown=False)

    def _unregister_or_stop(self, now: float, *, binding_unknown: bool) -> list[Request]:
        self._stop_requested = False
        if binding_unknown or (self._expires_at is not None and now < self._expires_at):
            self._state = RegState.UNREGISTERING
            self._refresh_at = self._retry_at = None
            return [self._send(self._build(0, preemptive=True), unregister=True, answered=False)]
        self._finish_stop()
        return []

    def _unregister_response(self, resp: Response, now: float) -> list[Request]:
        creds = self.config.credentials
        if resp.status in (401, 407) and creds is not None and not self._answered:
            chosen = select_challenges(challenges_in(resp, strict=False), realm=creds.realm)
            if chosen:
                request = authorize(self._build(0, preemptive=False), chosen, creds, counter=self._counter,
                                    cnonce_source=self._token)
                if request is not None:
                    return [self._send(request, unregister=True, answered=True)]
        self._finish_stop()
        return []

    def _finish_stop(self) -> None:
        self._state = RegState.STOPPED
        self._pending_unregister = False
        self._answered = False
        self._expires_at = self._refresh_at = self._retry_at = None
        self._failed = False

    # ------------------------------------------------------------------ messages

    def _send(self, request: Request, *, unregister: bool, answered: bool) -> Request:
        self._pending = request
        self._pending_unregister = unregister
        self._answered = answered
        return request

    def _build(self, expires: int, *, preemptive: bool) -> Request:
        cfg = self.config
        self._cseq += 1
        branch = self._branch()
        if not branch.startswith("z9hG4bK"):
            branch = "z9hG4bK" + branch
        params = "".join(f";{n}" if v is None else f";{n}={v}" for n, v in cfg.contact_params)
        headers = [Header("Via", f"SIP/2.0/{cfg.via_transport.upper()} {cfg.via_sent_by};branch={branch};rport")]
        headers.append(Header("Max-Forwards", "70"))
        headers.extend(Header("Route", r) for r in cfg.route)
        headers += [
            Header("From", f"<{cfg.aor}>;tag={self.from_tag}"),
            Header("To", f"<{cfg.aor}>"),
            Header("Call-ID", self.call_id),
            Header("CSeq", f"{self._cseq} REGISTER"),
            Header("Contact", f"<{cfg.contact}>{params};expires={expires}"),
            Header("Expires", str(expires)),
        ]
        if cfg.user_agent:
            headers.append(Header("User-Agent", cfg.user_agent))
        headers.append(Header("Content-Length", "0"))
        request = Request("REGISTER", cfg.registrar, tuple(headers))
        if preemptive and cfg.reuse_nonce and self._challenges and cfg.credentials is not None:
            authorized = authorize(
                request, self._challenges, cfg.credentials, counter=self._counter, cnonce_source=self._token
            )
            if authorized is not None:
                request = authorized
        return request

    def _matches(self, resp: Response, pending: Request) -> bool:
        try:
            cseq = resp.cseq
            call_id: str = resp.call_id
            seq: int = pending.cseq.seq
            return call_id == self.call_id and cseq.method == "REGISTER" and cseq.seq == seq
        except SipParseError:
            return False

    def _granted(self, resp: Response) -> int:
        try:
            contacts = resp.contacts
        except SipParseError:
            contacts = ()
        for c in contacts:
            try:
                if _uri_key(c.uri) != self._contact_key:
                    continue
            except AttributeError:  # pragma: no cover - URI always has the fields
                continue
            value = c.param("expires")
            if value is not None and _DIGITS_RE.match(value.strip()):
                return int(value.strip())
        try:
            header: int | None = resp.expires
        except SipParseError:
            header = None
        if header is not None:
            return header
        if len(contacts) == 1:
            value = contacts[0].param("expires")
            if value is not None and _DIGITS_RE.match(value.strip()):
                return int(value.strip())
        return self._expires_req


def _retry_after(resp: Response) -> float | None:
    value = resp.get("Retry-After")
    if value is None:
        return None
    m = _RETRY_AFTER_RE.match(value)
    return float(int(m.group(1))) if m else None
