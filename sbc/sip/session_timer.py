# -*- test-case-name: tests.test_sip_session_timer -*-
"""SIP session timers (RFC 4028), sans-IO: headers, negotiation and a per-leg timer.

Nothing here holds a clock or sends anything.  Time comes in as ``now`` (seconds, float);
the caller asks :meth:`SessionTimer.next_deadline`, schedules a wake-up itself and calls
:meth:`SessionTimer.handle_timer` when it fires, exactly like the transaction layer.

Pieces
------
* **Headers** (§4, §5): :func:`parse_session_expires` / :class:`SessionExpires` (compact
  form ``x``; ``delta-seconds`` plus ``refresher=uac|uas`` and any generic parameters),
  :func:`parse_min_se` / :class:`MinSE`, :func:`supports_timer`, :func:`requires_timer`,
  :func:`allows_method`.  Malformed values raise only :class:`SipParseError` (status 400).
* **UAS negotiation** (§9): :func:`negotiate_uas` turns an incoming INVITE or UPDATE (initial
  or a refresh) into either :class:`Reject422` or :class:`UasAccept` (the timer and the
  headers for the 2xx).
* **UAC negotiation** (§7): :class:`UacNegotiation` gives the headers of an outgoing INVITE or
  UPDATE, retries once after a 422 with the larger Min-SE, and reads the 2xx.
* **The timer** (§10): :class:`SessionTimer` -- one per leg -- says when to send a refresh
  (half the interval, when we are the refresher) and when the session has expired (interval
  minus min(32, interval/3) without a refresh, when the peer is the refresher).
  :func:`build_refresh` gives the content of a refresh request (UPDATE when the peer allows
  it, else a re-INVITE repeating our last SDP unchanged); :func:`is_refresh_only` tells the
  B2BUA that an incoming re-INVITE/UPDATE changes nothing and can be answered on its leg.

Roles are absolute
------------------
On the wire ``refresher`` says ``uac`` or ``uas``, relative to the transaction that carries
it; the same leg's refresher is "uas" in the 2xx to the peer's INVITE and "uac" in our own
refresh.  Everything past the parser therefore speaks of :attr:`Refresher.US` (the SBC
refreshes this leg) and :attr:`Refresher.PEER` (the far end of this leg does).

Refresher choice (our rule)
---------------------------
When the UAC leaves the choice open (``Supported: timer`` and no ``refresher`` parameter) we
pick ``SessionTimerConfig.prefer_refresher``, by default :attr:`Refresher.US`: the SBC
refreshes its own legs.  We cannot trust a PBX or an agent host to keep refreshing for
hours, and a refresh we send ourselves costs one small transaction; if it fails with 408/481
or times out we learn that the peer is gone, which is what the timer is for.  When the UAC
names a refresher we must keep it (§9 table).  When the UAC does not support timers at all,
§9 still lets us run one as ``refresher=uas`` -- we do, so every leg is supervised.  As UAC
(the B leg, or our refreshes) we leave ``refresher`` out of the initial INVITE as §7.1
recommends, and if the 2xx comes back without Session-Expires we *insist* by default
(``SessionTimerConfig.uac_insist``): §7.2 allows the UAC to run the timer alone as refresher.

A B2BUA runs two independent timers
-----------------------------------
The SBC is a UA on each leg, so RFC 4028 ends at the SBC: the A leg negotiates its interval
and refresher with the PBX, the B leg with the agent host, and each leg gets its own
:class:`SessionTimer`.  A refresh on one leg is answered by the SBC on that leg and is not
relayed to the other leg: the other leg has its own timer and its own refresher, which is
often the SBC itself.  This decoupling is what keeps a long call alive when one side drops a
refresh: the PBX may refresh the A leg every 15 minutes while the SBC refreshes the B leg
every 15 minutes too, at different instants, and neither leg's timer depends on the other
side delivering anything in time.  The B2BUA should:

* on a 2xx to any re-INVITE/UPDATE, sent or received on a leg, call ``refreshed(now, ...)``
  on that leg's timer only (with the renegotiated :class:`Negotiated` from
  :func:`negotiate_uas` or :meth:`UacNegotiation.process_2xx`);
* answer an incoming re-INVITE/UPDATE that :func:`is_refresh_only` says changes nothing on
  the same leg (200 with our last SDP for that leg, or no body for UPDATE), without a
  transaction on the other leg; relay real changes (hold, codec change) as usual, each leg
  still negotiating its own Session-Expires;
* on :attr:`TimerAction.REFRESH` send :func:`build_refresh` on that leg, with the headers of
  :meth:`SessionTimer.uac_negotiation`; on :attr:`TimerAction.EXPIRED` (the peer stopped
  refreshing, or our refresh got 408/481/no answer) send BYE on **both** legs (§10).
"""

from __future__ import annotations

import enum
import re
from typing import Iterable

from attrs import define, field, frozen
from attrs.validators import ge, in_, instance_of

from sbc.sip.errors import SipParseError
from sbc.sip.message import Request, Response
from sbc.sip.sdp import parse_sdp

__all__ = [
    "ABSOLUTE_MIN_SE",
    "DEFAULT_MIN_SE",
    "DEFAULT_SESSION_EXPIRES",
    "MinSE",
    "Negotiated",
    "RefreshRequest",
    "Refresher",
    "Reject422",
    "SessionExpires",
    "SessionTimer",
    "SessionTimerConfig",
    "TimerAction",
    "UacNegotiation",
    "UasAccept",
    "allows_method",
    "build_refresh",
    "expiry_margin",
    "is_refresh_only",
    "min_se_of",
    "negotiate_uas",
    "parse_min_se",
    "parse_session_expires",
    "requires_timer",
    "session_expires_of",
    "supports_timer",
]

#: §4: the recommended session interval (30 minutes).
DEFAULT_SESSION_EXPIRES = 1800
#: §5: the default and absolute minimum Min-SE.
DEFAULT_MIN_SE = 90
ABSOLUTE_MIN_SE = 90
#: Largest delta-seconds we read (values above are a parse error).
MAX_DELTA_SECONDS = 2**31 - 1

TIMER_TAG = "timer"

# --------------------------------------------------------------------------- header grammar

_TOKEN = rb"[A-Za-z0-9\-.!%*_+`'~]+"
_HEAD_RE = re.compile(rb"[ \t]*([0-9]+)[ \t]*")
_PARAM_RE = re.compile(
    rb";[ \t]*(" + _TOKEN + rb")(?:[ \t]*=[ \t]*(\"(?:[^\"\\]|\\.)*\"|[A-Za-z0-9\-.!%*_+`'~:\[\]]+))?[ \t]*",
    re.S,
)

_Params = tuple[tuple[str, str | None], ...]


def _as_bytes(value: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    raise SipParseError("header value must be bytes")


def _parse_delta_and_params(value: bytes, what: str) -> tuple[int, _Params]:
    m = _HEAD_RE.match(value)
    if m is None:
        raise SipParseError(f"malformed {what}")
    digits = m.group(1)
    if len(digits) > 10 or int(digits) > MAX_DELTA_SECONDS:
        raise SipParseError(f"{what} out of range")
    params: list[tuple[str, str | None]] = []
    pos = m.end()
    n = len(value)
    while pos < n:
        pm = _PARAM_RE.match(value, pos)
        if pm is None:
            raise SipParseError(f"malformed {what} parameters")
        name, val = pm.group(1, 2)
        params.append((name.decode("latin-1"), None if val is None else val.decode("latin-1")))
        pos = pm.end()
    return int(digits), tuple(params)


def _format_params(params: _Params) -> bytes:
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params).encode("latin-1")


def _valid_param(instance: object, attribute: object, params: _Params) -> None:
    for name, val in params:
        data = _format_params(((name, val),))
        if _PARAM_RE.fullmatch(data) is None:
            raise ValueError(f"bad header parameter {name!r}")


# --------------------------------------------------------------------------- value types


class Refresher(enum.Enum):
    """Who refreshes a leg, independently of which side sent which request."""

    US = "us"
    PEER = "peer"


class TimerAction(enum.Enum):
    """What :meth:`SessionTimer.handle_timer` asks the caller to do."""

    #: We are the refresher and half the interval has passed: send :func:`build_refresh`.
    REFRESH = "refresh"
    #: The session on this leg is over (no refresh in time): BYE on both legs.
    EXPIRED = "expired"


@frozen
class SessionExpires:
    """``Session-Expires: <interval>[;refresher=uac|uas][;generic-param]*`` (§4)."""

    interval: int = field(validator=[instance_of(int), ge(0)])
    refresher: str | None = field(default=None, validator=in_(("uac", "uas", None)))
    params: _Params = field(default=(), validator=_valid_param)  # other parameters, kept

    @params.validator
    def _no_refresher_param(self, attribute: object, params: _Params) -> None:
        if any(name.lower() == "refresher" for name, _ in params):
            raise ValueError("give the refresher as the refresher field")

    def to_bytes(self) -> bytes:
        out = b"%d" % self.interval
        if self.refresher is not None:
            out += b";refresher=" + self.refresher.encode("ascii")
        return out + _format_params(self.params)


@frozen
class MinSE:
    """``Min-SE: <delta-seconds>[;generic-param]*`` (§5)."""

    value: int = field(validator=[instance_of(int), ge(0)])
    params: _Params = field(default=(), validator=_valid_param)

    def to_bytes(self) -> bytes:
        return b"%d" % self.value + _format_params(self.params)


def parse_session_expires(value: bytes | str) -> SessionExpires:
    """Parse a Session-Expires value.  The refresher value is case-insensitive and kept
    lower-case; any value other than uac/uas, or a second refresher, is a SipParseError."""
    data = _as_bytes(value)
    interval, params = _parse_delta_and_params(data, "Session-Expires")
    refresher: str | None = None
    rest = []
    for name, val in params:
        if name.lower() == "refresher":
            if refresher is not None:
                raise SipParseError("duplicate refresher parameter")
            who = (val or "").lower()
            if who not in ("uac", "uas"):
                raise SipParseError("refresher must be uac or uas")
            refresher = who
        else:
            rest.append((name, val))
    return SessionExpires(interval, refresher, tuple(rest))


def parse_min_se(value: bytes | str) -> MinSE:
    """Parse a Min-SE value."""
    data = _as_bytes(value)
    seconds, params = _parse_delta_and_params(data, "Min-SE")
    return MinSE(seconds, params)


# --------------------------------------------------------------------------- message views


def _single_value(message: Request | Response, name: str) -> bytes | None:
    values = message.get_all(name)
    if not values:
        return None
    if len(values) > 1:
        raise SipParseError(f"duplicate {name} header")
    return values[0]


def session_expires_of(message: Request | Response) -> SessionExpires | None:
    """The message's Session-Expires (long or compact ``x``), None when absent."""
    value = _single_value(message, "Session-Expires")
    return None if value is None else parse_session_expires(value)


def min_se_of(message: Request | Response) -> int | None:
    """The message's Min-SE in seconds, None when absent."""
    value = _single_value(message, "Min-SE")
    return None if value is None else parse_min_se(value).value


def _has_tag(message: Request | Response, header: str, tag: str) -> bool:
    wanted = tag.lower()
    return any(item.strip(b" \t").decode("latin-1").lower() == wanted for item in message.get_all(header))


def supports_timer(message: Request | Response) -> bool:
    """Does the sender support RFC 4028?  ``Supported: timer`` (compact ``k``), or
    ``Require: timer`` -- a sender cannot require what it does not support."""
    return _has_tag(message, "Supported", TIMER_TAG) or _has_tag(message, "Require", TIMER_TAG)


def requires_timer(message: Request | Response) -> bool:
    """``Require: timer`` present?"""
    return _has_tag(message, "Require", TIMER_TAG)


def allows_method(message: Request | Response, method: str) -> bool:
    """Does the message's Allow list name ``method``?  No Allow header gives False: the
    caller then uses what every UA must support (re-INVITE rather than UPDATE)."""
    wanted = method.upper()
    return any(item.strip(b" \t").decode("latin-1").upper() == wanted for item in message.get_all("Allow"))


# --------------------------------------------------------------------------- configuration


def _check_config(instance: "SessionTimerConfig", attribute: object, value: int) -> None:
    if instance.session_expires < instance.min_se:
        raise ValueError("session_expires must not be below min_se")


@frozen
class SessionTimerConfig:
    """Our side of the negotiation, the same for every leg unless a trunk overrides it.

    ``session_expires`` is the interval we ask for (and the most we grant as UAS);
    ``min_se`` the least we accept (never below 90, §5).  ``prefer_refresher`` picks the
    refresher when the UAC leaves it open; ``uac_insist`` runs our own timer as refresher when
    a 2xx to our request comes back without Session-Expires (§7.2).  ``retry_delay`` is how
    long to wait before re-sending a refresh that failed without killing the session (491
    glare, 500, 503 ...)."""

    session_expires: int = field(
        default=DEFAULT_SESSION_EXPIRES,
        validator=[instance_of(int), ge(ABSOLUTE_MIN_SE), _check_config],
    )
    min_se: int = field(default=DEFAULT_MIN_SE, validator=[instance_of(int), ge(ABSOLUTE_MIN_SE)])
    prefer_refresher: Refresher = field(default=Refresher.US, validator=instance_of(Refresher))
    uac_insist: bool = field(default=True, validator=instance_of(bool))
    retry_delay: float = field(default=4.0, validator=[instance_of((int, float)), ge(0)])

    def __attrs_post_init__(self) -> None:
        if self.min_se > MAX_DELTA_SECONDS or self.session_expires > MAX_DELTA_SECONDS:
            raise ValueError("interval too large")


@frozen
class Negotiated:
    """The outcome of one negotiation on one leg: interval (seconds), who refreshes, and the
    Min-SE to carry in later requests on the leg."""

    interval: int
    refresher: Refresher
    min_se: int = DEFAULT_MIN_SE


def _wire_refresher(refresher: Refresher, we_are_uac: bool) -> bytes:
    if refresher is Refresher.US:
        return b"uac" if we_are_uac else b"uas"
    return b"uas" if we_are_uac else b"uac"


# --------------------------------------------------------------------------- UAS side (§9)


@frozen
class Reject422:
    """Answer the request with 422 (Session Interval Too Small) and these headers."""

    min_se: int
    status: int = 422

    @property
    def headers(self) -> tuple[tuple[str, bytes], ...]:
        return (("Min-SE", b"%d" % self.min_se),)


@frozen
class UasAccept:
    """Accept the request; put ``headers`` into the 2xx and run ``timer`` on the leg."""

    timer: Negotiated
    headers: tuple[tuple[str, bytes], ...]
    uac_supports: bool


def negotiate_uas(request: Request, config: SessionTimerConfig = SessionTimerConfig()) -> Reject422 | UasAccept:
    """§9: our answer to an incoming INVITE or UPDATE (initial request or refresh).

    * The UAC supports timers and asks for less than our ``min_se``: :class:`Reject422` with
      our Min-SE (the UAC retries with at least that, §7.3).
    * The UAC asks for an interval: we grant it, reduced to our ``session_expires`` if
      larger, but never below the request's Min-SE (§9 forbids going below it) or ours.
    * The UAC supports timers but asks for none: we ask for ``session_expires`` (at least the
      request's Min-SE) in the 2xx.
    * The UAC does not support timers: we still run one, ``refresher=uas`` (the only value
      allowed then), with the interval a proxy put in the request or ours.  A proxy-inserted
      interval below our minimum cannot be refused (the UAC would not understand a 422), so
      it is raised to our Min-SE (RFC 4028 erratum 1687, as proxies do in §8.1).

    Refresher: the request's ``refresher`` when the UAC supports timers and named one (§9
    table: it must be kept); ``uas`` when the UAC does not support timers; otherwise
    ``config.prefer_refresher`` (the SBC by default).  The 2xx gets ``Session-Expires`` with
    the refresher, ``Require: timer`` when the UAC supports timers (mandatory when the peer
    refreshes, allowed otherwise) and ``Supported: timer``.  Option tags come as header lines
    of their own; repeating Supported/Require is legal SIP, or the caller may merge them into
    the lines it already has.

    Raises SipParseError (400) on a malformed or repeated Session-Expires or Min-SE, and on
    a malformed Supported/Require list.
    """
    supported = supports_timer(request)
    se = session_expires_of(request)
    req_min = min_se_of(request)
    floor = max(config.min_se, req_min if req_min is not None else ABSOLUTE_MIN_SE)
    if se is not None:
        if se.interval < config.min_se:
            if supported:
                return Reject422(max(config.min_se, req_min or 0))
            interval = floor
        else:
            interval = max(min(se.interval, config.session_expires), floor)
    else:
        interval = max(config.session_expires, floor)
    if not supported:
        refresher = Refresher.US
    elif se is not None and se.refresher == "uac":
        refresher = Refresher.PEER
    elif se is not None and se.refresher == "uas":
        refresher = Refresher.US
    else:
        refresher = config.prefer_refresher
    headers: list[tuple[str, bytes]] = [
        ("Session-Expires", b"%d;refresher=%s" % (interval, _wire_refresher(refresher, we_are_uac=False)))
    ]
    if supported:
        headers.append(("Require", b"timer"))
    headers.append(("Supported", b"timer"))
    return UasAccept(Negotiated(interval, refresher, floor), tuple(headers), supported)


# --------------------------------------------------------------------------- UAC side (§7)


@define
class UacNegotiation:
    """One INVITE or UPDATE we send, from the request headers to the 2xx (§7).

    Build the request with :meth:`request_headers`.  On a 422 call :meth:`process_422`: True
    means "send the request again (new CSeq) with the new :meth:`request_headers`"; a second
    422 gives False (we retry once).  On the 2xx call :meth:`process_2xx`.
    """

    config: SessionTimerConfig = SessionTimerConfig()
    interval: int | None = None
    min_se: int | None = None
    refresher: Refresher | None = None  # None: leave the choice to the UAS (§7.1)
    retried: bool = False

    def __attrs_post_init__(self) -> None:
        if self.min_se is None:
            self.min_se = self.config.min_se
        if self.interval is None:
            self.interval = self.config.session_expires
        self.interval = max(self.interval, self.min_se)

    def request_headers(self) -> tuple[tuple[str, bytes], ...]:
        """Session-Expires (with ``refresher`` only when we have one to keep), Min-SE and
        ``Supported: timer`` (§7.1, §7.4).  No ``Require: timer``: that would fail calls to
        UAs without timer support, which we can supervise alone anyway."""
        assert self.interval is not None and self.min_se is not None
        se = b"%d" % self.interval
        if self.refresher is not None:
            se += b";refresher=" + _wire_refresher(self.refresher, we_are_uac=True)
        return (("Session-Expires", se), ("Min-SE", b"%d" % self.min_se), ("Supported", b"timer"))

    def process_422(self, response: Response) -> bool:
        """§7.3: retry with the 422's Min-SE as our Min-SE and Session-Expires raised to at
        least it.  False (give up, fail the request) when we already retried, or the 422
        carries no usable Min-SE larger than the one we sent."""
        if self.retried or response.status != 422:
            return False
        try:
            theirs = min_se_of(response)
        except SipParseError:
            return False
        assert self.interval is not None and self.min_se is not None
        if theirs is None:
            return False
        if theirs <= self.min_se and self.interval >= theirs:
            return False  # the same request again would get the same 422
        self.retried = True
        self.min_se = max(self.min_se, theirs)
        self.interval = max(self.interval, self.min_se)
        return True

    def process_2xx(self, response: Response) -> Negotiated | None:
        """§7.2: the timer the 2xx agreed on, or None for no timer on this leg.

        * Session-Expires present: its interval (a value below the Min-SE we sent breaks §9;
          we then use our Min-SE), refresher ``uac`` -> us, ``uas`` -> the peer.  A missing
          refresher also makes us the refresher: an extra refresh is harmless, a missing one
          ends the call.
        * Session-Expires absent: no timer, unless ``config.uac_insist`` -- then we run it
          alone as refresher with the interval we asked for (§7.2).
        * Session-Expires malformed: treated as absent, but always with us refreshing.
        """
        assert self.interval is not None and self.min_se is not None
        try:
            se = session_expires_of(response)
        except SipParseError:
            return Negotiated(self.interval, Refresher.US, self.min_se)
        if se is None:
            if self.config.uac_insist:
                return Negotiated(self.interval, Refresher.US, self.min_se)
            return None
        refresher = Refresher.PEER if se.refresher == "uas" else Refresher.US
        return Negotiated(max(se.interval, self.min_se), refresher, self.min_se)


# --------------------------------------------------------------------------- the timer (§10)


def expiry_margin(interval: float) -> float:
    """§10: a non-refresher ends the session this long before the interval runs out."""
    return min(32.0, interval / 3.0)


RUNNING = "running"
STOPPED = "stopped"
EXPIRED = "expired"


class SessionTimer:
    """The session timer of one leg.  Mutable, private to the leg's usage.

    Start it when the 2xx to the initial INVITE is sent or received, with the
    :class:`Negotiated` of that transaction and ``now``.  Then:

    * every 2xx to a re-INVITE or UPDATE on this leg, in either direction:
      :meth:`refreshed` (``negotiated`` from that transaction; a 2xx to our request without
      Session-Expires and no insisting: :meth:`stop`);
    * schedule a wake-up at :meth:`next_deadline` and call :meth:`handle_timer` then;
    * our refresh failed: :meth:`refresh_failed`.

    Deadlines, with ``t0`` the last refresh: we refresh at ``t0 + interval/2``; if our
    refresh has not succeeded by ``t0 + interval`` the session is expired.  When the peer
    refreshes, the session expires at ``t0 + interval - min(32, interval/3)``.
    """

    def __init__(self, negotiated: Negotiated, now: float, config: SessionTimerConfig = SessionTimerConfig()) -> None:
        self.config = config
        self.interval = negotiated.interval
        self.refresher = negotiated.refresher
        self.min_se = negotiated.min_se
        self.last_refresh = float(now)
        self.state = RUNNING
        self.refresh_pending = False
        self._retry_at: float | None = None
        self.refresh_count = 0

    def __repr__(self) -> str:
        return (
            f"<SessionTimer {self.state} interval={self.interval} refresher={self.refresher.value} "
            f"last={self.last_refresh}>"
        )

    # ------------------------------------------------------------------ inputs

    def refreshed(self, now: float, negotiated: Negotiated | None = None) -> None:
        """A refresh succeeded (a 2xx to a re-INVITE or UPDATE, in either direction).
        ``negotiated`` carries the interval/refresher that transaction agreed on (it may
        change both); None keeps them.  Restarts a stopped timer when ``negotiated`` is given."""
        if negotiated is not None:
            self.interval = negotiated.interval
            self.refresher = negotiated.refresher
            self.min_se = negotiated.min_se
            self.state = RUNNING
        elif self.state != RUNNING:
            return
        self.last_refresh = float(now)
        self.refresh_pending = False
        self._retry_at = None
        self.refresh_count += 1

    def refresh_failed(self, now: float, status: int | None, retry_after: float | None = None) -> TimerAction | None:
        """Our refresh got a final non-2xx ``status`` (None: the transaction timed out).

        408, 481 and a timeout end the session (§10): returns :attr:`TimerAction.EXPIRED`.
        Anything else (491 glare, 500, 503, 488 ...) leaves the session as it was: the refresh
        is retried ``retry_after`` seconds from now (default ``config.retry_delay``) as long
        as that is before the session runs out; returns None.
        """
        if self.state != RUNNING:
            return None
        self.refresh_pending = False
        if status is None or status in (408, 481):
            self.state = EXPIRED
            return TimerAction.EXPIRED
        delay = self.config.retry_delay if retry_after is None else max(0.0, float(retry_after))
        self._retry_at = float(now) + delay
        return None

    def stop(self) -> None:
        """No timer on this leg any more (a 2xx without Session-Expires, or the call ended)."""
        self.state = STOPPED
        self.refresh_pending = False
        self._retry_at = None

    # ------------------------------------------------------------------ deadlines

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    def refresh_at(self) -> float:
        """When we send our refresh (meaningful when we are the refresher)."""
        return self.last_refresh + self.interval / 2.0

    def expires_at(self) -> float:
        """When this leg's session is over without a refresh: the full interval when we
        refresh, interval - min(32, interval/3) when the peer does (§10)."""
        if self.refresher is Refresher.US:
            return self.last_refresh + self.interval
        return self.last_refresh + (self.interval - expiry_margin(self.interval))

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` next has something to do; None when not running."""
        if self.state != RUNNING:
            return None
        expires = self.expires_at()
        if self.refresher is Refresher.PEER or self.refresh_pending:
            return expires
        if self._retry_at is not None:
            return min(self._retry_at, expires)
        return min(self.refresh_at(), expires)

    def handle_timer(self, now: float) -> TimerAction | None:
        """Called at (or after) :meth:`next_deadline`.  Returns :attr:`TimerAction.REFRESH`
        once per due refresh (the refresh is then pending until :meth:`refreshed` or
        :meth:`refresh_failed`), :attr:`TimerAction.EXPIRED` once when the session is over
        (the timer then stops), or None when nothing is due (an early wake-up is harmless)."""
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return None
        if now >= self.expires_at():
            self.state = EXPIRED
            self.refresh_pending = False
            self._retry_at = None
            return TimerAction.EXPIRED
        # Only a due refresh is left: we are the refresher and nothing is in flight.
        self.refresh_pending = True
        self._retry_at = None
        return TimerAction.REFRESH

    # ------------------------------------------------------------------ requests we send

    def uac_negotiation(self) -> UacNegotiation:
        """The negotiation for a re-INVITE or UPDATE we send on this leg -- our refresh or a
        relayed change (§7.4): the current interval, the current refresher, our Min-SE."""
        return UacNegotiation(
            config=self.config,
            interval=self.interval,
            min_se=max(self.min_se, self.config.min_se),
            refresher=self.refresher,
        )

    def request_headers(self) -> tuple[tuple[str, bytes], ...]:
        """Shortcut: ``self.uac_negotiation().request_headers()``."""
        return self.uac_negotiation().request_headers()


# --------------------------------------------------------------------------- refresh content


@frozen
class RefreshRequest:
    """What to send as a refresh: feed it to ``Dialog.create_request(method, via=...,
    headers=headers, body=body)``."""

    method: str
    headers: tuple[tuple[str, bytes], ...]
    body: bytes = b""


def build_refresh(
    timer_headers: Iterable[tuple[str, bytes]],
    *,
    peer_allows_update: bool,
    last_local_sdp: bytes | None,
    content_type: bytes = b"application/sdp",
) -> RefreshRequest:
    """The content of a session refresh (§10).

    UPDATE, without a body, when the peer allows it (``allows_method(peer_message,
    "UPDATE")`` on the peer's INVITE/2xx): it needs no offer/answer.  Otherwise a re-INVITE
    carrying ``last_local_sdp`` -- the exact bytes we last sent on this leg, so the o= version
    is unchanged and the peer sees no change (RFC 3264 §8); never a re-rendered copy with a
    bumped version, which would be a new offer.  Without a last SDP the re-INVITE has no body
    (the peer then offers and we answer in the ACK).

    ``timer_headers`` is :meth:`SessionTimer.request_headers` (or that of the negotiation
    object the caller keeps for the 422 retry).
    """
    headers = tuple(timer_headers)
    if peer_allows_update:
        return RefreshRequest("UPDATE", headers, b"")
    if last_local_sdp:
        return RefreshRequest("INVITE", headers + (("Content-Type", bytes(content_type)),), bytes(last_local_sdp))
    return RefreshRequest("INVITE", headers, b"")


def is_refresh_only(request: Request, last_remote_sdp: bytes | None) -> bool:
    """Is an incoming in-dialog INVITE/UPDATE only a session refresh (nothing to relay)?

    True for an UPDATE without a body, and for an INVITE or UPDATE whose SDP has the same
    o= line (same session id and version) as ``last_remote_sdp``, the SDP last received on
    this leg (RFC 3264 §8: an unchanged version means no change).  The B2BUA answers such a
    request itself on the same leg.  A re-INVITE without a body asks us for an offer, and
    anything unparsable is not "only a refresh": both go the normal way.  Never raises.
    """
    if request.method not in ("INVITE", "UPDATE"):
        return False
    body = request.body
    if not body:
        return request.method == "UPDATE"
    if not last_remote_sdp:
        return False
    try:
        return bool(parse_sdp(body).origin == parse_sdp(last_remote_sdp).origin)
    except (SipParseError, ValueError, TypeError, UnicodeError):
        return False
