# -*- test-case-name: tests.test_b2bua -*-
"""The B2BUA transaction user: both legs of every call over ONE transaction layer, sans-IO.

Plug it into the endpoint::

    b2bua = B2bua(trunks=config.trunks, local_host="192.0.2.10", local_port=5060,
                  fqdn=config.sbc.fqdn, timers=Timers(t1=..., t2=..., t4=...))
    endpoint.add_handler(b2bua)
    endpoint.set_response_handler(b2bua.handle_response)

then, after every input and every timer, drain :meth:`B2bua.messages_to_send` (messages
with the :class:`~sbc.sip.endpoint.Peer` they go to), re-arm a timer for
:meth:`B2bua.next_deadline` and call :meth:`B2bua.handle_timer` when it fires.  A request
toward the agent host carries ``Peer(transport, host, port, conn=0)``: the driver picks the
socket (and switches to TCP for large UDP requests); everything toward the PBX carries the
``Peer`` its INVITE came from (same socket or connection).  :meth:`B2bua.notices` returns
what was refused or went wrong, with the call id, for the driver to log;
:meth:`B2bua.ended_calls` the finished calls (for CDRs); :meth:`B2bua.counts` the live
objects (all zero when idle).

Routing, inbound (PBX -> agent host): the A leg's trunk is the first trunk whose ``allow``
networks contain the source address (none -> 403).  Digest authentication
(``[trunk.auth]``, :mod:`sbc.b2bua.auth`) comes next: a source outside every allowlist may
still authenticate as a user of a trunk with an empty ``allow`` (401 challenge, then
admitted for that user's trunk, or 403 ``auth-failed``), and a trunk with ``auth.required``
challenges its own sources too; the Authorization header is never copied to the B leg.
ACK, CANCEL and in-dialog requests are never challenged.  The B leg goes to ``trunk.agent_uri`` with ``{user}`` the
percent-decoded Request-URI user (safe characters only, else 404), through the trunk's
outbound proxy if it has one, located by a :class:`Resolver`.  The default resolver only
knows IP literals; an FQDN target gives 503.  A resolver may also answer "later" (None):
the driver then resolves the URIs of :meth:`B2bua.lookups` and reports with
:meth:`B2bua.resolved`.  Before any provisional response, a timeout or a 503 moves the
INVITE to the next target (RFC 3263 §4.3).

Routing, outbound (agent host -> trunk): an INVITE whose source address is in
``agent_allow`` and whose percent-decoded Request-URI user fully matches one of a trunk's
``dial`` patterns goes to the first such trunk (in configuration order), to its ``peer_uri``
with ``{user}`` replaced by that user (a ``peer_uri`` without the placeholder and without a
user gets the user as its user part), through the trunk's outbound proxy if any.  A source
that is also in a trunk's ``allow`` is treated as inbound when no ``dial`` pattern matches;
an agent host that dials what no trunk matches gets 404.  Everything else is the same as
inbound -- the same leg classes (``a`` is always the calling leg, ``b`` the called one), events,
header allowlist, session timers, limits (the call counts against the trunk) and shutdown --
except that the agent-host-down check does not apply, the agent-facing leg's Contact is our
address and the trunk-facing leg's From host and Contact are our FQDN.  ``Call.direction``
says which way a call went (``"inbound"``/``"outbound"``, for CDRs).

Session timers (RFC 4028, :mod:`sbc.sip.session_timer`) run on each leg separately: the A
leg negotiates as UAS with the PBX (an interval below our Min-SE gets 422), the B leg as UAC
with the agent host (a 422 from it is retried once with its Min-SE).  When the SBC is a
leg's refresher it sends an UPDATE (the peer allows it) or a re-INVITE repeating the SDP it
last sent on that leg; a peer's refresh -- an UPDATE without body, or the very SDP it last
sent -- is answered on its own leg and never relayed; a real change crosses as usual and
refreshes both legs' timers.  When a leg's session expires (the peer stopped refreshing, or
our refresh got 408/481/no answer) both legs get BYE and the call ends with reason
``session-timer``.

Reliable provisional responses (RFC 3262) on the A leg: when the caller's INVITE requires or
supports ``100rel`` (and ``reliable_provisionals`` is on), every 18x we send it carries
``Require: 100rel`` and an ``RSeq``, is retransmitted over UDP (T1, doubling) until its PRACK
arrives, and is given up with 504 toward the caller and CANCEL toward the called side after
64*T1.  One reliable provisional is outstanding at a time (later ones queue); a 2xx waits
for the PRACK of a provisional that carried SDP.  PRACKs are answered on the A leg and never
relayed.  Limits: a late-offer INVITE gets its reliable provisionals without SDP (no early
media), and an offer inside a PRACK is refused with 488.

On the B leg toward the agent host (``agent_100rel``, config ``[agent]
reliable_provisionals``, default on) the INVITE offers 100rel (``Supported: 100rel``, never
``Require``) when it carries an SDP offer -- a late-offer INVITE does not, since a reliable
provisional would then carry an offer we would have to answer in the PRACK.  A provisional
from the agent host with ``Require: 100rel`` and an ``RSeq`` is PRACKed within its early
dialog (RFC 3262 §4: next CSeq of that dialog, ``RAck: <RSeq> <CSeq> INVITE``, the 18x's
route set and Contact), per To tag (another fork is PRACKed in its own dialog), and relayed
to the A leg as any provisional (reliably there when the PBX supports 100rel; its SDP is the
agent's early answer).  A retransmission (an RSeq already taken) is dropped, as is one out of
order (RSeq beyond the next; notice ``100rel-out-of-order``): neither is PRACKed nor relayed.
The PRACK's 200 is absorbed; a failure or no answer is only reported (notice
``prack-failed``) and the call goes on -- the INVITE's final response decides.  A reliable
provisional we cannot PRACK (100rel not offered: ``100rel-unrequested``; no To tag or no valid
RSeq: ``100rel-malformed``) is relayed as an unreliable one, once (its retransmissions are
dropped too).  The B leg toward a trunk (an outbound call) does not offer 100rel.

Transfers (REFER, RFC 3515): only the agent host may transfer, and only on a trunk with
``allow_refer``.  Its in-dialog REFER is relayed on the other leg of the same call, inside
that leg's own dialog (our Call-ID, tags, CSeq and Contact), with ``Refer-To`` passed through
(but see Replaces below) and ``Refer-Sub`` (RFC 4488) if present; ``Referred-By`` is dropped
(it names the agent host's side).  The PBX's answer (202, or a failure) goes back to the agent
host as is, and the NOTIFYs it then sends in its dialog (``Event: refer``, ``message/sipfrag``
bodies, ``Subscription-State``) are relayed back like any NOTIFY, the ``id`` of the Event
header rewritten to the CSeq of the agent host's REFER (a NOTIFY without ``id`` reports on
the last REFER).  The PBX then carries out the transfer itself and, typically, hangs up its
leg -- the BYE ends the call on both legs as usual.  A REFER the agent host sends on a trunk
without ``allow_refer`` is answered 403 (notice ``refer-refused``), a REFER from the PBX's
side 405, a REFER outside any call 403; none of these touch the call.  REFER is not relayed
toward the agent host.

Attended transfer (``Replaces``, RFC 3891).  A dialog is named by its Call-ID and two tags, and
each leg has its own: the agent host knows only the dialogs of the legs facing it, the PBX only
those of the legs facing it.  So the SBC maps a Replaces from one side's view to the other's (:meth:`B2bua.map_refer_to`,
:meth:`B2bua._invite_replaces`).  The tags of a Replaces are accepted either way round; the
mapped value has them as RFC 3891 §3 wants them for the peer that will compare them:
``to-tag`` that peer's own tag, ``from-tag`` ours; ``early-only`` and other parameters are
kept.

* REFER from the agent host whose ``Refer-To`` URI embeds ``?Replaces=...`` naming the agent
  host's dialog of a call we hold on the same trunk (call 2): the Replaces is rewritten to name
  the PBX's dialog of call 2 (its Call-ID, its tag as ``to-tag``, ours as ``from-tag``), and the
  URI becomes the PBX's Contact in that dialog -- the transfer target as the PBX knows it (RFC
  5589 §7); other URI headers, parameters and the display name are kept.  The PBX then replaces
  its own dialog, and its BYE for call 2's A leg ends call 2 on both legs.  A Replaces naming a
  call on another trunk, or whose PBX side has no dialog yet, gets 403 (notice
  ``refer-replaces-refused``): the PBX could only fail it later.  A Replaces naming no dialog we
  hold is passed on unchanged (notice ``refer-replaces-unknown``): it may name a dialog the
  agent host has with the PBX by another path.  A malformed or repeated embedded Replaces gets
  400 (``refer-replaces-bad``).
* INVITE (a new call) whose ``Replaces`` header names a dialog of the caller's side of a call
  we hold on the same trunk (the PBX's view of an A leg, or, on an outbound call, the agent
  host's view of its leg): the called side's INVITE carries a Replaces naming the other leg's
  dialog of that call (plus ``Require: replaces`` if the caller required it).  Here the SBC is
  the UAS of the dialog named, so RFC 3891 §3 applies: no such dialog (or one on another trunk,
  or the other side's view) 481, an early dialog the caller initiated 481, a dialog being torn
  down 603, ``early-only`` on a confirmed dialog 486, a malformed or repeated Replaces 400
  (notice ``replaces-refused``).  Passing such an INVITE on without its Replaces would ring the
  called side with a new call where the caller meant to take over an existing one.
  ``replaces`` is among our option
  tags, so ``Require: replaces`` is accepted.  Vendor plugins may still remove Replaces toward
  their platform (Teams does).

In-dialog requests toward the PBX go back to the address the INVITE came from (symmetric
signalling, the way PBX trunks behind NAT expect it); toward the agent host they follow the
dialog's route set / remote target when it is an IP literal, else the first hop of the call.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
from collections import deque
from ipaddress import ip_address
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from attrs import frozen

from sbc.sip.dialog import CONFIRMED, TERMINATED, Dialog, DialogError, DialogId
from sbc.sip.endpoint import Peer
from sbc.sip.errors import SipError, SipParseError
from sbc.sip.message import Request, Response, Via, make_response, reason_phrase
from sbc.sip.replaces import Replaces, embedded_replaces, parse_replaces, with_embedded_replaces
from sbc.sip.timers import TimerHeap
from sbc.sip.session_timer import Reject422, SessionTimerConfig, UasAccept, negotiate_uas
from sbc.sip.transaction import (
    AckMissing,
    AckReceived,
    AckTimeout,
    CancelReceived,
    Event,
    MAGIC_COOKIE,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    Timers,
    TransactionError,
    TransactionKey,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)
from sbc.sip.uri import URI, parse_uri, unescape
from sbc.quirks.chain import QuirkChain
from sbc.quirks.host import InboundCall, pbx_leg, record_route

from .auth import Admit, Challenge, TrunkAuth
from .call import NO_ANSWER, Call
from sbc.events.schema import CallEnded, CallStarted, encode as encode_event
from sbc.media.core.dtmf import DigitCollector
from sbc.media.core.engine import MediaError, SideOptions

from .events import Body, Info, Try
from .media import CallMedia
from .legs import Leg, LegStateError, UacLeg, UasLeg

__all__ = [
    "B2bua",
    "B2buaNotice",
    "DEFAULT_COPY_HEADERS",
    "LiteralResolver",
    "Resolver",
]

#: Headers copied from the A leg's INVITE to the B leg's (plus X-* when ``copy_x_headers``).
DEFAULT_COPY_HEADERS = ("P-Asserted-Identity", "Privacy", "User-to-User", "Diversion", "History-Info")

_SAFE_USER_RE = re.compile(r"[A-Za-z0-9+*#._~-]{1,128}\Z")


class Resolver(Protocol):
    """Locates a SIP URI (RFC 3263): the peers to try, best first; [] if it cannot.

    A resolver that needs to ask DNS first may return None: the call then waits (its A leg
    has had its 100 Trying) until the driver, which finds the URI in
    :meth:`B2bua.lookups`, calls :meth:`B2bua.resolved` with the answer.  A resolver may
    also have ``failed(peer, now)``: it is told about a target that timed out or answered
    503, before the call fails over to the next one."""

    def resolve(self, uri: URI) -> list[Peer] | None: ...


class LiteralResolver:
    """Knows only IP-literal hosts (no DNS): transport from ``;transport=`` (sips -> tls),
    port from the URI or 5060/5061."""

    def resolve(self, uri: URI) -> list[Peer]:
        host = uri.host[1:-1] if uri.host.startswith("[") else uri.host
        try:
            ip_address(host)
        except ValueError:
            return []
        transport = uri.transport or ("tls" if uri.scheme == "sips" else "udp")
        if transport not in ("udp", "tcp", "tls"):
            return []
        port = uri.port or (5061 if transport == "tls" else 5060)
        return [Peer(transport, host, port, 0)]


#: Headers that carry credentials: never copied to the other leg.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization"})

#: Notice reason of an INVITE no trunk takes (403 source of no trunk; 404 no trunk's
#: ``match_ruri`` or ``dial`` pattern matches), counted apart from other refusals.
NO_TRUNK = "no-matching-trunk"

#: ``_trunk_for``: the source belongs to trunks, but no trunk's ``match_ruri`` matches.
_RURI_MISMATCH = object()
_AGENT = 0  # in _source_trunks' answer: the agent host's networks hold the address (no id is 0)
_MISSING: Any = object()


@functools.lru_cache(maxsize=1024)
def _ip_version(host: str) -> int | None:
    """4 or 6 for an IP address (bracketed or not), else None (memoised: peers repeat)."""
    try:
        return ip_address(host.strip("[]")).version
    except ValueError:
        return None


@frozen
class B2buaNotice:
    """Something refused or gone wrong, for the driver to log (same fields as
    :class:`sbc.sip.endpoint.Notice`, plus the call id)."""

    reason: str
    detail: str
    peer: Peer
    status: int | None = None
    call_id: str = ""


_NOWHERE = Peer("udp", "0.0.0.0", 0)


def _contact(host: str, port: int, transport: str) -> bytes:
    param = "" if transport == "udp" else f";transport={transport}"
    return f"<sip:{_bracket(host)}:{port}{param}>".encode("latin-1")


def _shared_pairs(headers: Sequence[tuple[str, bytes]],
                  canonical: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """``headers`` as text pairs (for ``call.started``); the leading ones that equal the
    canonical pairs they were encoded from are those very pairs, so a held call stores them
    once."""
    out = []
    for i, (name, value) in enumerate(headers):
        pair = (name, value.decode("utf-8", "replace"))
        if i < len(canonical) and canonical[i] == pair:
            pair = canonical[i]
        out.append(pair)
    return tuple(out)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class B2bua:
    """The B2BUA core (a :class:`~sbc.sip.endpoint.RequestHandler`)."""

    methods = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "UPDATE", "PRACK", "INFO", "MESSAGE", "NOTIFY",
                         "REFER"})
    #: In-dialog OPTIONS (a PBX's keep-alive inside a call) is answered 200 by the dialog's leg
    #: when the endpoint hands it over; out-of-dialog OPTIONS stays with the endpoint.

    #: The agent host's networks (set by the service); see :meth:`_from_agent`.
    agent_allow: tuple[Any, ...] = ()
    #: (trunks, agent networks, address -> trunk ids): see :meth:`_source_trunks`.
    _sources_memo: tuple[Any, Any, dict[str, frozenset[int] | None]] | None = None

    def __init__(
        self,
        *,
        trunks: Sequence[Any],
        local_host: str,
        local_port: int,
        fqdn: str | None = None,
        timers: Any = None,
        resolver: Resolver | None = None,
        max_calls: int = 1000,
        max_calls_per_trunk: int | None = None,
        no_answer_timeout: float | None = 60.0,
        max_call_duration: float | None = 4 * 3600.0,
        retry_after: int = 30,
        copy_headers: Iterable[str] = DEFAULT_COPY_HEADERS,
        copy_x_headers: bool = True,
        user_agent: str = "sbc",
        supported: Iterable[str] = (),
        local_ports: Mapping[str, int] | None = None,
        contact_port: Callable[[Peer], int | None] | None = None,
        session_timer: SessionTimerConfig | None = SessionTimerConfig(),
        agent_allow: Iterable[Any] = (),
        reliable_provisionals: bool = True,
        agent_100rel: bool = True,
        local_hosts: Mapping[int, str] | None = None,
        quirks: Mapping[str, Any] | None = None,
        media: Any = None,
        events_sip_info: bool = False,
    ) -> None:
        """``timers`` is a :class:`~sbc.sip.transaction.Timers` or anything with ``t1``,
        ``t2`` and ``t4`` (e.g. the ``[sip]`` config section).  ``local_ports`` overrides
        ``local_port`` per transport (``{"tls": 5061}``) in our Via and Contact;
        ``contact_port(peer)`` (as :class:`~sbc.sip.endpoint.Endpoint` takes it) gives the
        port of the listener a PBX reached us on, for the A leg's Contact.

        ``session_timer``: RFC 4028 on both legs (each leg negotiates with its own peer, see
        :mod:`sbc.sip.session_timer`); None turns session timers off.  With timers on, the
        option tag ``timer`` is supported, with ``reliable_provisionals`` ``100rel`` (give
        :attr:`option_tags` to the Endpoint as its ``supported``, or it refuses ``Require:
        timer``/``Require: 100rel`` with 420 before we see it).  ``agent_100rel``: the INVITE
        toward the agent host offers ``100rel`` and its reliable provisionals are PRACKed
        (``[agent] reliable_provisionals``).  ``agent_allow``: the agent
        hosts' source networks, whose INVITEs are outbound calls (see above).  ``local_hosts``:
        our address per IP version, for Via and Contact toward peers of that family.

        ``media``: a :class:`~sbc.media.core.engine.MediaEngine` that anchors every call's
        media (None: SDP passes through untouched).  The core is its
        :class:`~sbc.media.core.engine.MediaListener`.  ``events_sip_info``: also send each
        agent event to the agent host as an in-dialog INFO (``application/json``)."""
        self.trunks = tuple(trunks)
        self.local_host = local_host
        #: Our address per IP version (``{6: "2001:db8::10"}``): Via and Contact toward a peer
        #: of that family use it instead of ``local_host``.
        self.local_hosts = dict(local_hosts or {})
        self.local_port = local_port
        self.local_ports = dict(local_ports or {})
        self._contact_port = contact_port
        self.fqdn = fqdn or local_host
        if timers is None:
            timers = Timers()
        elif not isinstance(timers, Timers):
            timers = Timers(t1=timers.t1, t2=timers.t2, t4=timers.t4)
        self.t1 = timers.t1
        self.resolver: Resolver = resolver if resolver is not None else LiteralResolver()
        self.max_calls = max_calls
        self.max_calls_per_trunk = max_calls_per_trunk
        self.no_answer_timeout = no_answer_timeout
        self.max_call_duration = max_call_duration
        self.retry_after = retry_after
        self.copy_headers = frozenset(h.lower() for h in copy_headers)
        self.copy_x_headers = copy_x_headers
        self.user_agent = user_agent.encode()
        self.session_timer = session_timer
        self.reliable_provisionals = reliable_provisionals
        self.agent_100rel = agent_100rel
        #: Source networks of the agent host(s): their INVITEs are calls toward a trunk
        #: (outbound dialling), routed by the trunks' ``dial`` patterns.
        self.agent_allow = tuple(agent_allow)
        #: ``(peer, trunk) -> True | False | None``: whether the client certificate of the
        #: peer's TLS connection admits it to the trunk whatever its source (True), keeps it
        #: out (False: the trunk requires mutual TLS), or does not matter (None); set by the
        #: service (:func:`sbc.transport.tls.tls_admits`).
        self.tls_admits: Any = None
        self.supported = frozenset(s.lower() for s in supported) | (
            {"timer"} if session_timer is not None else set()) | (
            {"100rel"} if reliable_provisionals else set()) | {"replaces"}
        self.accepting = True  # False: new calls get 503 (graceful shutdown)
        #: Admission hook: ``agent_up(trunk_name)`` False (the pinger marked the trunk's agent
        #: host down) makes new calls of that trunk get 503 with Retry-After.
        self.agent_up: Callable[[str], bool] | None = None

        self._tx = TransactionLayer(timers, retransmit_2xx=True)
        self.calls: dict[str, Call] = {}
        self._per_trunk: dict[str, int] = {}
        self._dialogs: dict[tuple[str, str], Leg] = {}  # (Call-ID, local tag) -> leg
        self._by_tx: dict[TransactionKey, Leg] = {}
        self._timers: TimerHeap[tuple[str, str]] = TimerHeap()  # (call id, kind)
        self._seq = itertools.count(1)
        self._prefix = os.urandom(5).hex()
        self._random_pool: list[str] = []
        self._waiting: dict[str, tuple[URI, list[str]]] = {}  # URI text -> (URI, call ids)
        self._lookup_queue: list[URI] = []
        self._notices: deque[B2buaNotice] = deque(maxlen=10_000)
        self._ended: deque[Call] = deque(maxlen=10_000)
        self._ended_pending: list[Call] = []
        self.media = media
        #: SRTP policy toward the agent host(s) ("off", "optional", "required").
        self.agent_srtp = "off"
        self.events_sip_info = events_sip_info
        self._agent_events: deque[Any] = deque(maxlen=100_000)
        #: Vendor quirks (issue 6): trunk name -> :class:`~sbc.quirks.chain.QuirkChain`.  None
        #: (the default): no plugin runs and no canonical headers are added; a mapping: every
        #: inbound INVITE is canonicalised (a trunk missing from it gets an empty chain, the
        #: generic behaviour) and the PBX-facing leg's messages go through its trunk's hooks.
        self.quirks: dict[str, QuirkChain] | None = dict(quirks) if quirks is not None else None
        #: Digest authentication of new calls (``[trunk.auth]``, see :mod:`sbc.b2bua.auth`).
        self.auth = TrunkAuth(self.trunks, default_realm=self.fqdn)
        self.now = 0.0
        self.stats: dict[str, int] = {}

    @property
    def option_tags(self) -> tuple[str, ...]:
        """The option tags we support (for the Endpoint's ``supported``)."""
        return tuple(sorted(self.supported))

    # ================================================================== outputs

    def messages_to_send(self) -> list[tuple[Request | Response, Peer]]:
        return self._tx.messages_to_send()  # type: ignore[return-value]

    def next_deadline(self) -> float | None:
        tx = self._tx.next_deadline()
        mine = self._timers.next_deadline()
        if tx is None:
            return mine
        return tx if mine is None else min(tx, mine)

    def notices(self) -> list[B2buaNotice]:
        items = list(self._notices)
        self._notices.clear()
        return items

    def lookups(self) -> list[URI]:
        """URIs the resolver could not answer at once (each reported once): resolve them and
        call :meth:`resolved`."""
        out, self._lookup_queue = self._lookup_queue, []
        return out

    def resolved(self, uri: URI, peers: Sequence[Peer], now: float) -> None:
        """The answer for a URI from :meth:`lookups` ([] if it cannot be located): the calls
        waiting for it go on (or fail with 503)."""
        self.now = now
        entry = self._waiting.pop(str(uri), None)
        if entry is not None:
            for call_id in entry[1]:
                call = self.calls.get(call_id)
                if call is not None:
                    self._guard(call.b.resolved, list(peers), now)
        self._drain(now)

    def agent_events(self) -> list[Any]:
        """Agent events (:mod:`sbc.events.schema`) produced since the last call, in order."""
        out = list(self._agent_events)
        self._agent_events.clear()
        return out

    def ended_calls(self) -> list[Call]:
        """Calls that ended since the last call (for CDRs and metrics)."""
        items = list(self._ended)
        self._ended.clear()
        return items

    def counts(self) -> dict[str, int]:
        """Live objects: calls, dialogs, transactions, timers (all 0 when idle)."""
        return {
            "calls": len(self.calls),
            "dialogs": len(self._dialogs),
            "transactions": len(self._tx),
            "timers": len(self._timers),
            "tx_bindings": len(self._by_tx),
            "lookups": len(self._waiting),
        }

    def __len__(self) -> int:
        return sum(self.counts().values())

    # ================================================================== lifecycle

    def reload_trunks(self, trunks: Sequence[Any]) -> None:
        """New trunk table (SIGHUP): new calls are routed by it; calls in progress keep going
        (they only remember their trunk's name, for limits and CDRs)."""
        self.trunks = tuple(trunks)
        self.auth.update(self.trunks)

    def stop_accepting(self) -> None:
        """Graceful shutdown, step 1: new calls get 503 with Retry-After; calls go on."""
        self.accepting = False

    def terminate_all(self, now: float, reason: str = "shutdown") -> None:
        """Graceful shutdown, step 2 (after the drain timeout): end every call on both legs."""
        self.now = now
        for call in list(self.calls.values()):
            self._guard(call.terminate, reason, now)
        self._drain(now)

    # ================================================================== inputs

    def handle_request(self, request: Request, peer: Peer, now: float) -> None:
        """A request from the endpoint (already validated, top Via stamped)."""
        self.now = now
        self._tx.receive(request, peer, peer.reliable, now)
        self._drain(now)

    def handle_response(self, response: Response, peer: Peer, now: float) -> None:
        self.now = now
        self._tx.receive(response, peer, peer.reliable, now)
        self._drain(now)

    def handle_timer(self, now: float) -> None:
        self.now = now
        self._tx.handle_timer(now)
        self._drain(now)
        while (due := self._timers.pop_due(now)) is not None:
            call_id, kind = due
            call = self.calls.get(call_id)
            if call is not None:
                self._guard(call.on_timer, kind, now)
            self._drain(now)

    # ================================================================== LegStack / CallHost

    def send_request(self, leg: Leg, request: Request, peer: Peer, now: float) -> TransactionKey:
        if self.quirks is not None:
            request = self._to_pbx(leg, request)
        key = self._tx.send_request(request, peer, peer.reliable, now)
        self._bind_tx(key, leg)
        return key

    def send_response(self, key: TransactionKey, response: Response, now: float) -> None:
        if self.quirks is not None:
            response = self._to_pbx(self._by_tx.get(key), response, key)
        self._tx.send_response(key, response, now)

    def resend_response(self, key: TransactionKey, response: Response, now: float) -> None:
        """Send a (reliable provisional) response again on its server transaction."""
        if self.quirks is not None:
            response = self._to_pbx(self._by_tx.get(key), response, key)
        self._tx.send_response(key, response, now)

    def send_ack(self, request: Request, peer: Peer) -> None:
        self._tx.send_stateless(request, peer)

    def cancel(self, key: TransactionKey, now: float) -> None:
        self._tx.cancel(key, now)

    def port_for(self, transport: str) -> int:
        return self.local_ports.get(transport.lower(), self.local_port)

    def host_for(self, peer_host: str | None) -> str:
        """Our address toward ``peer_host``: the ``local_hosts`` entry of its IP version, else
        ``local_host``."""
        if peer_host and self.local_hosts:
            version = _ip_version(peer_host)
            if version in self.local_hosts:
                return self.local_hosts[version]
        return self.local_host

    def via(self, transport: str, peer_host: str | None = None) -> Via:
        """Our Via for a request we originate (a new branch; ``rport`` asked for).  A parsed
        value: the request built with it starts with it as its ``top_via`` view."""
        branch = f"{MAGIC_COOKIE}{self._prefix}{next(self._seq):x}"
        return Via(transport.upper(), _bracket(self.host_for(peer_host)), self.port_for(transport),
                   (("branch", branch), ("rport", None)))

    def new_id(self) -> int:
        return next(self._seq)

    def new_token(self) -> str:
        """A tag or Call-ID: the process prefix, a counter, and 24 random bits (RFC 3261
        §19.3 wants at least 32 bits of randomness in a tag; the prefix gives 40 more).  The
        random hex comes from a buffer of os.urandom refilled 1,024 tokens at a time: one
        system call per call setup was measurable at a thousand calls a second."""
        pool = self._random_pool
        if not pool:
            raw = os.urandom(3 * 1024).hex()
            pool.extend(raw[i : i + 6] for i in range(0, len(raw), 6))
        return f"{self._prefix}{next(self._seq):x}{pool.pop()}"

    def bind_dialog(self, leg: Leg, dialog_id: DialogId) -> None:
        self._dialogs[(dialog_id.call_id, dialog_id.local_tag)] = leg

    def unbind_dialog(self, dialog_id: DialogId) -> None:
        self._dialogs.pop((dialog_id.call_id, dialog_id.local_tag), None)

    def next_hop(self, dialog: Dialog, fallback: Peer) -> Peer:
        uri = dialog.route_set[0].uri if dialog.route_set else dialog.remote_target
        try:
            peers = self.resolver.resolve(uri)
        except SipError:
            peers = []
        if not peers:
            return fallback
        peer = peers[0]
        if (peer.host, peer.port) == (fallback.host, fallback.port) and not uri.transport:
            # Same host and port as the call's first hop and no explicit ;transport=: stay on
            # the transport (and connection) the call already uses.
            return fallback
        return peer

    def notice(self, reason: str, detail: str, peer: Peer, status: int | None = None, call_id: str = "") -> None:
        self.stats[reason] = self.stats.get(reason, 0) + 1
        self._notices.append(B2buaNotice(reason, detail, peer, status, call_id))

    def contact(self, transport: str, host: str | None = None, peer_host: str | None = None) -> bytes:
        """Our Contact over ``transport``: our address toward ``peer_host`` (toward the agent
        host) or ``host`` (our FQDN toward a trunk)."""
        return _contact(host or self.host_for(peer_host), self.port_for(transport), transport)

    def target_failed(self, peer: Peer, now: float) -> None:
        failed = getattr(self.resolver, "failed", None)
        if failed is not None:
            failed(peer, now)

    def set_timer(self, call: Call, kind: str, when: float) -> None:
        self._timers.set((call.id, kind), when)

    def cancel_timer(self, call: Call, kind: str) -> None:
        self._timers.cancel((call.id, kind))

    # ------------------------------------------------------------------ Replaces (RFC 3891)

    def _replaced_leg(self, replaces: Replaces, *, agent_side: bool, trunk: str) -> tuple[Leg | None, str]:
        """The leg whose dialog ``replaces`` names as that leg's peer sees it (its Call-ID and
        our tag and the peer's, taken either way round), facing the agent host
        (``agent_side``) or the PBX, with a live call on trunk ``trunk``.  (None, why) if
        there is none: ``"unknown"`` (no such dialog on that side) or ``"other-trunk"``."""
        for local, remote in ((replaces.to_tag, replaces.from_tag), (replaces.from_tag, replaces.to_tag)):
            leg = self._dialogs.get((replaces.call_id, local))
            if leg is None or leg.dialog is None or leg.dialog.remote_tag != remote:
                continue
            if (leg is leg.call.agent_leg) != agent_side or leg.call.ended is not None:
                continue
            if leg.call.trunk != trunk:
                return None, "other-trunk"
            return leg, ""
        return None, "unknown"

    @staticmethod
    def _mapped(leg: Leg, replaces: Replaces) -> tuple[Replaces, Dialog] | None:
        """``replaces`` naming the dialog of the other leg of ``leg``'s call instead, as that
        leg's peer sees it: its Call-ID, ``to-tag`` its own tag and ``from-tag`` ours (RFC
        3891 §3: the tags as the UA receiving the INVITE compares them); ``early-only`` and
        other parameters kept.  None when the other leg has no live dialog."""
        dialog = leg.call.other(leg).dialog
        if dialog is None or dialog.state == TERMINATED or not dialog.remote_tag:
            return None
        return replaces.with_dialog(dialog.call_id, dialog.remote_tag, dialog.local_tag), dialog

    def map_refer_to(self, leg: Leg, value: bytes) -> bytes | tuple[int, str]:
        """The Refer-To of the agent host's REFER as relayed to the PBX (LegStack).

        Without an embedded Replaces it is unchanged.  A Replaces naming the agent host's
        dialog of a call we hold on the same trunk is rewritten to name the PBX's dialog of
        that call, and the URI becomes the PBX's Contact in that dialog (the transfer
        target as the PBX knows it, RFC 5589 §7).  A Replaces naming a call on another
        trunk, or one whose PBX side has no dialog, refuses the REFER with 403; one naming
        no dialog we hold is passed on unchanged (both with a notice); a malformed one gets
        400."""
        if b"replaces" not in value.lower():
            return value
        call = leg.call
        try:
            found = embedded_replaces(value)
        except SipParseError as e:
            self.notice("refer-replaces-bad", f"REFER refused 400: {e.reason}", leg.peer, 400, call.id)
            return 400, "Bad Refer-To"
        if found is None:
            return value
        addr, replaces = found
        named, why = self._replaced_leg(replaces, agent_side=True, trunk=call.trunk)
        if named is None and why == "unknown":
            self.notice("refer-replaces-unknown", "Replaces in Refer-To names no dialog we hold; passed on unchanged",
                        leg.peer, None, call.id)
            return value
        mapped = self._mapped(named, replaces) if named is not None else None
        if mapped is None:
            detail = ("names a call on another trunk" if named is None
                      else f"names call {named.call.id}, which has no dialog on the trunk's side")
            self.notice("refer-replaces-refused", f"REFER refused 403: Replaces in Refer-To {detail}", leg.peer,
                        403, call.id)
            return 403, "Forbidden"
        replaced, dialog = mapped
        target = dialog.remote_target if dialog.remote_target.is_sip else None
        self.stats["refer-replaces-mapped"] = self.stats.get("refer-replaces-mapped", 0) + 1
        return with_embedded_replaces(addr, replaced, target)

    def _invite_replaces(self, request: Request, peer: Peer, key: TransactionKey, trunk: Any, direction: str,
                         now: float) -> tuple[tuple[str, bytes], ...] | None:
        """The Replaces (and ``Require: replaces`` when the caller required it) for the new
        call's outgoing INVITE, () when the INVITE has none; None when it was refused here
        (RFC 3891 §3, as the UAS of the dialog it names): 400 for a malformed or repeated
        Replaces; 481 when it names no dialog of the caller's side we hold on this trunk
        (or an early dialog the caller initiated), 603 a dialog being torn down, 486 a
        confirmed dialog with ``early-only``."""
        values = request.get_all("Replaces")
        if not values:
            return ()
        try:
            if len(values) > 1:
                raise SipParseError("more than one Replaces")
            replaces = parse_replaces(values[0])
        except SipParseError as e:
            self._refuse(request, peer, key, 400, "Bad Replaces", e.reason, now, notice="replaces-refused")
            return None
        named, why = self._replaced_leg(replaces, agent_side=direction == "outbound", trunk=trunk.name)
        status, detail = 0, ""
        if named is None:
            status, detail = 481, ("names a call on another trunk" if why == "other-trunk"
                                   else "names no dialog we hold")
        elif named.ended or named.state is named.TERMINATING:
            status, detail = 603, "names a dialog being torn down"
        elif named.dialog is not None and named.dialog.state != CONFIRMED and isinstance(named, UasLeg):
            status, detail = 481, "names an early dialog we did not initiate"
        elif replaces.early_only and named.dialog is not None and named.dialog.state == CONFIRMED:
            status, detail = 486, "early-only, but the dialog is confirmed"
        mapped = self._mapped(named, replaces) if named is not None and not status else None
        if mapped is None and not status:
            status, detail = 481, "names a call whose other leg has no dialog"
        if mapped is None:
            self._refuse(request, peer, key, status, reason_phrase(status), f"Replaces {detail}", now,
                         notice="replaces-refused")
            return None
        self.stats["replaces-mapped"] = self.stats.get("replaces-mapped", 0) + 1
        headers: tuple[tuple[str, bytes], ...] = (("Replaces", mapped[0].to_bytes()),)
        if any(t.strip().lower() == b"replaces" for t in request.get_all("Require")):
            headers += (("Require", b"replaces"),)
        return headers

    # ------------------------------------------------------------------ vendor quirks

    def quirk_chain(self, trunk: str) -> QuirkChain | None:
        """The quirk chain of trunk ``trunk`` (None when quirks are off)."""
        if self.quirks is None:
            return None
        chain = self.quirks.get(trunk)
        if chain is None:
            vendor = next((getattr(t, "vendor", "generic") for t in self.trunks if t.name == trunk), "generic")
            chain = self.quirks[trunk] = QuirkChain((), trunk=trunk, sbc_fqdn=self.fqdn, vendor=vendor)
        return chain

    def _quirk_notices(self, chain: QuirkChain, notices: Iterable[Any], peer: Peer) -> None:
        for n in notices:
            self.notice("quirk-error", f"vendor plugin {n.quirk} failed in {n.hook} (message passed "
                        f"unmodified): {n.error}", peer, None, n.call_id)

    def _inbound_quirks(self, trunk: Any, request: Request, peer: Peer) -> InboundCall | None:
        chain = self.quirk_chain(trunk.name)
        if chain is None:
            return None
        inbound = InboundCall(chain, request)
        self._quirk_notices(chain, inbound.notices, peer)
        return inbound

    def _pbx_chain(self, leg: Leg | None) -> QuirkChain | None:
        if leg is None or leg.call is None or not pbx_leg(leg.call, leg):
            return None
        return self.quirk_chain(leg.call.trunk)

    def _to_pbx(self, leg: Leg | None, message: Any, key: TransactionKey | None = None) -> Any:
        """``message`` through the ``request_to_pbx``/``response_to_pbx`` hooks when ``leg``
        faces the PBX (``key``: the server transaction of a response); then our Record-Route
        when the vendor wants one (see :func:`sbc.quirks.host.record_route`)."""
        chain = self._pbx_chain(leg)
        if chain is None or leg is None:
            return message
        ctx = chain.context(leg.call.direction, leg.call.id)
        if isinstance(message, Request):
            out = chain.request_to_pbx(message, ctx)
            initial = message.method == "INVITE" and isinstance(leg, UacLeg) and leg.dialog is None
        else:
            out = chain.response_to_pbx(message, ctx)
            initial = isinstance(leg, UasLeg) and key is not None and leg.invite_key == key
        out = record_route(chain, out, initial=initial, fqdn=self.fqdn,
                           port=self.port_for(leg.peer.transport), transport=leg.peer.transport)
        self._quirk_notices(chain, chain.notices(), leg.peer)
        return out

    def _from_pbx(self, leg: Leg, message: Any) -> Any:
        """An in-dialog request or a response from the PBX through its trunk's hooks."""
        if self.quirks is None:
            return message
        chain = self._pbx_chain(leg)
        if chain is None:
            return message
        ctx = chain.context(leg.call.direction, leg.call.id)
        if isinstance(message, Request):
            out = chain.request_from_pbx(message, ctx)
        else:
            out = chain.response_from_pbx(message, ctx)
        self._quirk_notices(chain, chain.notices(), leg.peer)
        return out

    # ------------------------------------------------------------------ media listener

    def media_keypress(self, call_id: str, key: Any) -> None:
        call = self.calls.get(call_id)
        if call is not None and call.media is not None:
            self._guard(call.media.keypress, key, key.at)

    def media_speech(self, call_id: str, now: float) -> None:
        call = self.calls.get(call_id)
        if call is not None and call.media is not None:
            self._guard(call.media.speech, now)

    def media_timeout(self, call_id: str, now: float) -> None:
        call = self.calls.get(call_id)
        if call is not None and call.ended is None:
            self.notice("media-timeout", "no RTP from either side", call.a.peer, None, call_id)
            self._guard(call.hang_up, call.a, "media-timeout", now)

    def agent_event(self, call: Call, event: Any) -> None:
        """Publish an agent event of ``call`` (and send it as INFO when configured)."""
        self._agent_events.append(event)
        if self.events_sip_info and call.ended is None:
            leg = call.agent_leg
            if leg.can_relay():
                rid = self.new_id()
                call.add_own_info(rid)
                leg.handle(Info(rid, "INFO", Body(b"application/json", encode_event(event))), self.now)

    def _media_event(self, event: Any) -> None:
        """An agent event from a call's media (DTMF): published for its call (found by id,
        so that the media holds no reference back to the call through this callback)."""
        call = self.calls.get(event.call_id)
        if call is None:
            self._agent_events.append(event)
        else:
            self.agent_event(call, event)

    def call_ended(self, call: Call) -> None:
        if self.calls.pop(call.id, None) is not None:
            self._agent_events.append(CallEnded(
                call.id, call.ended if call.ended is not None else self.now, call.end_reason or "unknown",
                (call.ended - call.answered) if call.ended is not None and call.answered is not None else None,
                call.a_status, call.b_status))
            left = self._per_trunk.get(call.trunk, 1) - 1
            if left > 0:
                self._per_trunk[call.trunk] = left
            else:
                self._per_trunk.pop(call.trunk, None)
            self._ended.append(call)
            # Detached once its legs' last transactions end; checked after this event too,
            # outside the legs' own code (which may still run on the call).
            self._ended_pending.append(call)
            key = call.b.lookup_key
            if key is not None and key in self._waiting:
                waiting = self._waiting[key][1]
                if call.id in waiting:
                    waiting.remove(call.id)
                if not waiting:
                    del self._waiting[key]
            self.stats["calls-ended"] = self.stats.get("calls-ended", 0) + 1

    # ================================================================== event dispatch

    def _drain(self, now: float) -> None:
        tx = self._tx
        while (event := tx.next_event()) is not None:
            self._dispatch(event, now)
        if self._ended_pending:
            pending, self._ended_pending = self._ended_pending, []
            for call in pending:
                self._detach_if_done(call)

    def _bind_tx(self, key: TransactionKey, leg: Leg) -> None:
        """Route the events of transaction ``key`` to ``leg`` (until TransactionTerminated)."""
        old = self._by_tx.get(key)
        if old is not leg:
            if old is not None:
                old.tx_count -= 1
            self._by_tx[key] = leg
            leg.tx_count += 1

    def _detach_if_done(self, call: Call | None) -> None:
        """An ended call whose legs have no transaction left gets no more events: break its
        reference cycles (:meth:`Call.detach`), so that it is freed as soon as the CDR drain
        lets it go instead of waiting for the cyclic collector (a held call's objects sit in
        the oldest generation, collected rarely)."""
        if call is not None and call.ended is not None and call.a.tx_count == 0 and call.b.tx_count == 0:
            call.detach()

    def _guard(self, fn: Any, *args: Any, request: Request | None = None, key: TransactionKey | None = None,
               peer: Peer | None = None) -> None:
        """Run one step of call handling; an error is reported as a notice (and a request that
        caused it answered 500) instead of escaping into the transport."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - one call's trouble must not stop the others
            expected = isinstance(e, (LegStateError, DialogError, SipParseError, TransactionError))
            self.notice("call-error" if expected else "internal-error", f"{type(e).__name__}: {e}",
                        peer or _NOWHERE)
            if request is not None and key is not None and request.method != "ACK":
                try:
                    self._reply(request, key, 500, "Server Internal Error", now=self.now)
                except Exception:  # noqa: BLE001 - the transaction already answered or gone
                    pass

    def _dispatch(self, event: Event, now: float) -> None:
        if type(event) is TransactionTerminated:  # the most frequent: four per call
            leg = self._by_tx.pop(event.key, None)
            if leg is not None:
                leg.tx_count -= 1
                leg.transaction_gone(event.key)
                self._detach_if_done(leg.call)
        elif isinstance(event, RequestReceived):
            peer = event.peer if isinstance(event.peer, Peer) else _NOWHERE
            self._guard(self._request, event.request, peer, event.key, now,
                        request=event.request, key=event.key, peer=peer)
        elif isinstance(event, AckReceived):
            self._guard(self._ack, event.request, now)
        elif isinstance(event, CancelReceived):
            self._guard(self._cancel, event, now, peer=event.peer if isinstance(event.peer, Peer) else None)
        elif isinstance(event, ResponseReceived):
            leg = self._by_tx.get(event.key)
            if leg is not None:
                self._guard(leg.on_response, self._from_pbx(leg, event.response), event.key, now)
        elif isinstance(event, StrayResponse):
            self._guard(self._stray, event.response, now)
        elif isinstance(event, TransactionTimeout):
            leg = self._by_tx.get(event.key)
            if leg is not None:
                self._guard(leg.on_timeout, event.key, now, 408)
        elif isinstance(event, TransportError):
            leg = self._by_tx.get(event.key)
            if leg is not None and not event.key.server:
                self._guard(leg.on_timeout, event.key, now, 503)
        elif isinstance(event, AckMissing):
            leg = self._by_tx.get(event.key)
            if leg is not None:
                self._guard(leg.on_ack_missing, event.key, now)
        elif isinstance(event, AckTimeout):
            pass  # our non-2xx was never ACKed: the transaction is gone, nothing else to do
        elif isinstance(event, TransactionTerminated):
            leg = self._by_tx.pop(event.key, None)
            if leg is not None:
                leg.tx_count -= 1
                leg.transaction_gone(event.key)
                self._detach_if_done(leg.call)

    # ------------------------------------------------------------------ requests

    def _reply(self, request: Request, key: TransactionKey, status: int, reason: str | None = None,
               headers: Sequence[tuple[str, bytes]] = (), now: float = 0.0) -> None:
        tag = None
        if request.to.tag is None:
            tag = self.new_token()
        response = make_response(request, status, reason, to_tag=tag,
                                  headers=[("Server", self.user_agent), *headers])
        self._tx.send_response(key, response, now)

    def _request(self, request: Request, peer: Peer, key: TransactionKey, now: float) -> None:
        to_tag = request.to.tag
        if to_tag:
            self._in_dialog(request, key, to_tag, now)
        elif request.method == "INVITE":
            self._new_call(request, peer, key, now)
        elif request.method == "REFER":
            # A transfer outside any call (RFC 3515 allows it) is not something we relay.
            self._reply(request, key, 403, "Forbidden", now=now)
        else:
            self._reply(request, key, 481, now=now)

    def _in_dialog(self, request: Request, key: TransactionKey, to_tag: str, now: float) -> None:
        leg = self._dialogs.get((request.call_id, to_tag))
        dialog = leg.dialog if leg is not None else None
        if leg is None or dialog is None or dialog.remote_tag != (request.from_.tag or ""):
            self._reply(request, key, 481, now=now)
            return
        try:
            dialog.receive_request(request)
        except DialogError as e:
            self._reply(request, key, e.status, e.reason, now=now)
            return
        if request.method == "INVITE":
            self._bind_tx(key, leg)
        leg.on_request(self._from_pbx(leg, request), key, now)

    def _ack(self, ack: Request, now: float) -> None:
        tag = ack.to.tag
        leg = self._dialogs.get((ack.call_id, tag or ""))
        if leg is None or leg.dialog is None or leg.dialog.remote_tag != (ack.from_.tag or ""):
            return
        leg.on_ack(ack, now)

    def _cancel(self, event: CancelReceived, now: float) -> None:
        request = event.request
        if event.invite_key is None:
            self._reply(request, event.key, 481, now=now)
            return
        leg = self._by_tx.get(event.invite_key)
        tag = leg.local_tag if isinstance(leg, UasLeg) and leg.invite_key == event.invite_key else None
        response = make_response(request, 200, to_tag=tag or self.new_token())
        self._tx.send_response(event.key, response, now)
        if isinstance(leg, UasLeg) and leg.invite_key == event.invite_key:
            leg.on_cancel(now)
        elif leg is not None:
            # A CANCEL of a re-INVITE: the relayed re-INVITE on the other leg is cancelled
            # too, and its 487 (or its 2xx, if that won the race) comes back as the answer.
            leg.on_cancel_reoffer(event.invite_key, now)

    def _stray(self, response: Response, now: float) -> None:
        if not (200 <= response.status < 300) or response.cseq.method != "INVITE":
            return
        leg = self._dialogs.get((response.call_id, response.from_.tag or ""))
        if leg is not None:
            leg.on_stray_2xx(response, now)

    # ------------------------------------------------------------------ new calls

    def _trunk_for(self, peer: Peer, request: Request | None = None) -> Any:
        """The first trunk whose ``allow`` networks hold the source address and, when it has
        ``match_ruri`` patterns, whose patterns match the Request-URI (``re.search``).
        Returns :data:`_RURI_MISMATCH` when the source belongs to trunks but no trunk's
        patterns match, None when the source belongs to no trunk."""
        sources = self._source_trunks(peer.host)
        if sources is None:
            return None
        mismatch = False
        admits = self.tls_admits
        for trunk in self.trunks:
            by_certificate = admits(peer, trunk) if admits is not None else None
            if by_certificate is False:  # mutual TLS required and not satisfied
                continue
            if by_certificate or id(trunk) in sources:
                if request is None or self._ruri_ok(trunk, request):
                    return trunk
                mismatch = True
        return _RURI_MISMATCH if mismatch else None

    def trunk_of(self, peer: Peer) -> Any:
        """The trunk ``peer`` belongs to by its source address (or TLS certificate), None if
        none: what a request that is not a call (an OPTIONS ping) is attributed to."""
        return self._trunk_for(peer)

    @staticmethod
    def _ruri_ok(trunk: Any, request: Request) -> bool:
        """Does the trunk's ``match_ruri`` (if any) match the Request-URI (``re.search``)?"""
        patterns = getattr(trunk, "match_ruri", ())
        if not patterns:
            return True
        uri = request.uri.decode("utf-8", "replace") if isinstance(request.uri, bytes) else str(request.uri)
        return any(p.search(uri) for p in patterns)

    def _authenticate(self, request: Request, peer: Peer, key: TransactionKey, candidates: Sequence[Any],
                      now: float) -> Any:
        """The trunk the request's digest credentials admit it for, or None when it has been
        answered: 401 with a challenge, or 403/400 (notice ``auth-failed``; the reason never
        holds a credential)."""
        verdict = self.auth.admit(candidates, request, now)
        if isinstance(verdict, Admit):
            self.stats["auth-ok"] = self.stats.get("auth-ok", 0) + 1
            return verdict.trunk
        if isinstance(verdict, Challenge):
            self.stats["auth-challenged"] = self.stats.get("auth-challenged", 0) + 1
            self._reply(request, key, 401, "Unauthorized", verdict.headers, now)
            return None
        self.notice("auth-failed", f"INVITE refused {verdict.status}: {verdict.why}", peer, verdict.status)
        self._reply(request, key, verdict.status, reason_phrase(verdict.status), now=now)
        return None

    def _from_agent(self, peer: Peer) -> bool:
        if not self.agent_allow:
            return False
        sources = self._source_trunks(peer.host)
        return sources is not None and _AGENT in sources

    def _source_trunks(self, host: str) -> frozenset[int] | None:
        """The ids of the trunks whose ``allow`` networks hold ``host`` (and :data:`_AGENT` when the
        agent host's do), None when ``host`` is not an IP address.  Memoised per address:
        a trunk's few sources place every call (network containment costs microseconds);
        the memo starts again when the trunks or the agent networks change (reload)."""
        memo = self._sources_memo
        if memo is None or memo[0] is not self.trunks or memo[1] is not self.agent_allow:
            memo = self._sources_memo = (self.trunks, self.agent_allow, {})
        table = memo[2]
        found = table.get(host, _MISSING)
        if found is _MISSING:
            try:
                addr = ip_address(host)
            except ValueError:
                found = None
            else:
                hit = [id(t) for t in self.trunks if any(addr.version == n.version and addr in n for n in t.allow)]
                if any(addr.version == n.version and addr in n for n in self.agent_allow):
                    hit.append(_AGENT)
                found = frozenset(hit)
            if len(table) >= 4096:
                table.clear()
            table[host] = found
        return found  # type: ignore[no-any-return]

    def _dial_trunk(self, user: str) -> Any:
        """The first trunk whose ``dial`` patterns fully match ``user`` (and that has a
        ``peer_uri`` to send the call to)."""
        for trunk in self.trunks:
            if getattr(trunk, "peer_uri", None) is None:
                continue
            for pattern in getattr(trunk, "dial", ()):
                try:
                    if (re.fullmatch(pattern, user) if isinstance(pattern, str) else pattern.fullmatch(user)):
                        return trunk
                except (re.error, TypeError):
                    continue
        return None

    def _dial_target(self, trunk: Any, user: str) -> URI:
        """The Request-URI of an outbound call: the trunk's ``peer_uri`` with ``{user}``
        replaced, or with ``user`` as its user part when it has no placeholder (and no user)."""
        text = trunk.peer_uri
        escaped = user.replace("#", "%23")
        if "{user}" in text:
            return parse_uri(text.replace("{user}", escaped))
        uri = parse_uri(text)
        return uri if uri.user else uri.with_user(escaped)

    def _trunk_srtp(self, trunk: Any) -> str:
        """The trunk's SRTP policy: its own ``srtp``, else its vendor plugin's default, else
        "optional"."""
        policy = getattr(trunk, "srtp", None)
        if policy is not None:
            return str(policy)
        chain = self.quirk_chain(trunk.name)
        vendor = getattr(trunk, "vendor", "generic")
        for quirk in chain.quirks if chain is not None else ():
            if quirk.name == vendor and getattr(quirk.defaults, "srtp", None) in ("off", "optional", "required"):
                return str(quirk.defaults.srtp)
        return "optional"

    def _attach_media(self, call: Call, trunk: Any, direction: str, body: Body | None, now: float) -> Body | None:
        """Give ``call`` its media session and DTMF collector; returns the INVITE body for the
        B leg (rewritten when media is anchored).  Raises MediaError (503: no ports; 488)."""
        dtmf = getattr(trunk, "dtmf", None)
        pbx_side = "a" if direction == "inbound" else "b"
        collector = DigitCollector(dtmf.submit_key, dtmf.idle_timeout) if dtmf is not None else DigitCollector()
        session = None
        if self.media is not None:
            pbx = SideOptions(
                srtp=self._trunk_srtp(trunk),
                strict_source=bool(getattr(trunk, "strict_source", False)),
                dtmf=True,
                pass_tones=bool(getattr(dtmf, "pass_tones", False)),
                vad=True,
                inband=bool(getattr(dtmf, "inband", False)),
                vad_sensitivity=float(getattr(dtmf, "vad_sensitivity", 0.5)),
            )
            agent = SideOptions(srtp=self.agent_srtp)
            a, b = (pbx, agent) if pbx_side == "a" else (agent, pbx)
            session = self.media.allocate(call.id, a, b, self)
        call.media = CallMedia(call, session, collector, pbx_side, self._media_event,
                               info_dtmf=bool(getattr(dtmf, "info", True)))
        return call.media.first_offer(body)

    def _refuse(self, request: Request, peer: Peer, key: TransactionKey, status: int, reason: str,
                why: str, now: float, headers: Sequence[tuple[str, bytes]] = (), call_id: str = "", *,
                notice: str = "call-refused") -> None:
        """Answer a new INVITE with a final refusal; the notice (``call-refused``, or
        :data:`NO_TRUNK` when no trunk takes the call) says why, for counters and logs."""
        self.notice(notice, f"INVITE refused {status}: {why}", peer, status, call_id)
        self._reply(request, key, status, reason, headers, now)

    def _callee(self, request: Request) -> str | None:
        user = request.parsed_uri.user
        if not user:
            return None
        user = unescape(user)
        return user if _SAFE_USER_RE.match(user) else None

    def _new_call(self, request: Request, peer: Peer, key: TransactionKey, now: float) -> None:
        retry = [("Retry-After", b"%d" % self.retry_after)]
        direction = "inbound"
        trunk = None
        from_agent = self._from_agent(peer)
        if from_agent:
            dialled = self._callee(request)
            trunk = self._dial_trunk(dialled) if dialled is not None else None
            if trunk is not None:
                direction = "outbound"
        if trunk is None:
            trunk = self._trunk_for(peer, request)
            if trunk is _RURI_MISMATCH:
                self._refuse(request, peer, key, 404, "Not Found",
                             f"source {peer.host} belongs to trunks whose match_ruri patterns do not match", now,
                             notice=NO_TRUNK)
                return
            # Digest authentication: digest-only trunks for a source outside every allowlist,
            # `auth.required` trunks for their own sources (see sbc.b2bua.auth).
            candidates = None
            if trunk is None and not from_agent:
                candidates = [t for t in self.auth.open_trunks if self._ruri_ok(t, request)] or None
            elif trunk is not None and self.auth.required(trunk):
                candidates = [trunk]
            if candidates is not None:
                trunk = self._authenticate(request, peer, key, candidates, now)
                if trunk is None:
                    return
        if trunk is None:
            if from_agent:
                self._refuse(request, peer, key, 404, "Not Found", "no trunk dials the Request-URI user", now,
                             notice=NO_TRUNK)
            else:
                self._refuse(request, peer, key, 403, "Forbidden", f"source {peer.host} matches no trunk", now,
                             notice=NO_TRUNK)
            return
        if not self.accepting:
            self._refuse(request, peer, key, 503, "Service Unavailable", "shutting down", now, retry)
            return
        if direction == "inbound" and self.agent_up is not None and not self.agent_up(trunk.name):
            self._refuse(request, peer, key, 503, "Service Unavailable",
                         f"agent host of trunk {trunk.name} is down", now, retry)
            return
        required = [t.decode("latin-1", "replace") for t in request.get_all("Require")]
        unsupported = [t for t in required if t.lower() not in self.supported]
        if unsupported:
            self._refuse(request, peer, key, 420, "Bad Extension", f"Require: {', '.join(unsupported)}", now,
                         [("Unsupported", ", ".join(unsupported).encode("latin-1", "replace"))])
            return
        if not request.contacts:
            self._refuse(request, peer, key, 400, "Missing Contact", "INVITE without Contact", now)
            return
        timer: UasAccept | None = None
        if self.session_timer is not None:
            try:
                verdict = negotiate_uas(request, self.session_timer)
            except SipParseError as e:
                self._refuse(request, peer, key, 400, e.reason, f"session timer: {e.reason}", now)
                return
            if isinstance(verdict, Reject422):
                self._refuse(request, peer, key, 422, "Session Interval Too Small",
                             f"Session-Expires below our Min-SE {verdict.min_se}", now, verdict.headers)
                return
            timer = verdict
        max_forwards = request.max_forwards
        if max_forwards is not None and max_forwards <= 0:
            self._refuse(request, peer, key, 483, "Too Many Hops", "Max-Forwards 0", now)
            return
        replaces = self._invite_replaces(request, peer, key, trunk, direction, now)
        if replaces is None:
            return
        user = self._callee(request)
        # Vendor quirks and the canonical form toward the agent host (issue 6).
        inbound = self._inbound_quirks(trunk, request, peer) if direction == "inbound" else None
        source = request
        if inbound is not None:
            user = inbound.callee(user)
            source = inbound.request
        if user is None:
            self._refuse(request, peer, key, 404, "Not Found", "no usable user in the Request-URI", now)
            return
        if len(self.calls) >= self.max_calls:
            self._refuse(request, peer, key, 503, "Service Unavailable", "call limit reached", now, retry)
            return
        if self.max_calls_per_trunk is not None and self._per_trunk.get(trunk.name, 0) >= self.max_calls_per_trunk:
            self._refuse(request, peer, key, 503, "Service Unavailable",
                         f"call limit of trunk {trunk.name} reached", now, retry)
            return
        try:
            if direction == "outbound":
                target = self._dial_target(trunk, user)
            else:
                target = parse_uri(trunk.agent_uri.format(user=user.replace("#", "%23")))
            proxy = parse_uri(trunk.outbound_proxy) if trunk.outbound_proxy else None
        except (SipParseError, ValueError, KeyError, AttributeError, TypeError) as e:
            self._refuse(request, peer, key, 500, "Server Internal Error", f"bad target URI: {e}", now)
            return
        hop = proxy if proxy is not None else target
        try:
            peers = self.resolver.resolve(hop)
        except SipError as e:
            peers = []
            why = f": {e}"
        else:
            why = " (no resolver for FQDN targets)" if isinstance(self.resolver, LiteralResolver) else ""
        if peers is not None and not peers:
            self._refuse(request, peer, key, 503, "Service Unavailable", f"cannot locate {hop.host}{why}",
                         now, retry)
            return

        call_id = self.new_token()
        call = Call(self, call_id, trunk.name, now, retry_after=self.retry_after,
                    max_duration=self.max_call_duration, direction=direction,
                    allow_refer=bool(getattr(trunk, "allow_refer", False)))
        body = Body(source.get("Content-Type") or b"application/sdp", source.body) if source.body else None
        try:
            body = self._attach_media(call, trunk, direction, body, now)
        except MediaError as e:
            if call.media is not None:
                call.media.release()
            self._refuse(request, peer, key, e.status, reason_phrase(e.status), f"media: {e.reason}", now,
                         retry if e.status == 503 else ())
            return
        a_port = self._contact_port(peer) if self._contact_port is not None else None
        if a_port is None:
            a_port = self.port_for(peer.transport)
        # Toward a PBX we are the configured FQDN; toward the agent host our address.
        a_contact = _contact(self.fqdn if direction == "inbound" else self.host_for(peer.host), a_port,
                             peer.transport)
        route = None
        if proxy is not None:
            route = b"<" + (proxy if proxy.has_param("lr") else proxy.with_param("lr", None)).to_bytes() + b">"
        reliable = self.reliable_provisionals and any(
            t.strip().lower() == b"100rel" for t in (*request.get_all("Require"), *request.get_all("Supported")))
        call.a = UasLeg(self, call, request, key, peer, a_contact, self.new_token(), timer, reliable)
        outbound = direction == "outbound"
        call.b = UacLeg(self, call, target, peers, local_host=_bracket(self.fqdn if outbound else self.local_host),
                        route=route, user_agent=self.user_agent, call_id=call_id, local_tag=self.new_token(),
                        contact_host=self.fqdn if outbound else None, rel100=self.agent_100rel and not outbound)
        if peers is None:
            text = str(hop)
            call.b.lookup_key = text
            if text not in self._waiting:
                self._waiting[text] = (hop, [])
                self._lookup_queue.append(hop)
            self._waiting[text][1].append(call_id)
        self.calls[call_id] = call
        self._per_trunk[trunk.name] = self._per_trunk.get(trunk.name, 0) + 1
        self._bind_tx(key, call.a)
        self.stats["calls"] = self.stats.get("calls", 0) + 1
        call.a.start(now)
        if self.no_answer_timeout is not None:
            self.set_timer(call, NO_ANSWER, now + self.no_answer_timeout)
        from_ = request.from_
        headers = tuple(
            (h.name, h.value) for h in request.headers
            if h.key in self.copy_headers or (self.copy_x_headers and h.key.startswith("x-"))
        )
        caller_user, caller_display = from_.uri.user, from_.display
        # The canonical headers the agent host gets (for the call.started event); () without quirks.
        call.canonical_headers = inbound.headers() if inbound is not None else ()
        if inbound is not None:
            # A vendor's plugin decides which of its X- headers reach the agent host
            # (``calls.copy_x_headers`` is for trunks without one: vendor "generic").
            vendor = getattr(trunk, "vendor", "generic")
            headers = inbound.try_headers(self.copy_headers, self.copy_x_headers and vendor == "generic")
            caller_user, caller_display = inbound.caller(caller_user, caller_display)
        # Credentials are for the SBC alone: they never reach the agent host (nor events, CDRs).
        headers = tuple((name, value) for name, value in headers if name.lower() not in _CREDENTIAL_HEADERS)
        if replaces:
            # The Replaces as the called side knows the dialog (never the caller's own).
            headers = tuple((n, v) for n, v in headers if n.lower() != "replaces") + replaces
        call.caller = caller_user  # canonical with quirks: +E.164, None for an anonymous caller
        call.callee = user
        call.headers = _shared_pairs(headers, call.canonical_headers)
        self._agent_events.append(CallStarted(
            call_id, now, trunk.name, getattr(trunk, "vendor", "generic"), direction, call.caller or "", user,
            call.headers))
        call.start(Try(
            caller_user=caller_user,
            caller_display=caller_display,
            callee=user,
            body=body,
            headers=headers,
            max_forwards=max_forwards if max_forwards is not None else 70,
        ), now)
