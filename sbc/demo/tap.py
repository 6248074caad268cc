# -*- test-case-name: tests.test_demo_agent -*-
"""``twistd -n sbc-demo-agent``: the demo agent host as a Twisted application.

It listens for SIP over UDP and TCP on each ``--listen`` address, answers every call
(:class:`~sbc.demo.agent.DemoAgent`), echoes each call's RTP from a port in ``--rtp-ports``
(:class:`~sbc.demo.echo.RtpEcho`) and logs each call's start and end, each INFO and MESSAGE
body, and each agent event handed to :meth:`DemoAgentService.on_agent_event`.

The drop-in ``twisted/plugins/sbc_demo_dropin.py`` names this module by string, so nothing
here is imported until the command runs.  Like :mod:`sbc.tap`, this is the only module of
the demo that touches the global reactor.
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any, Mapping

from twisted.application.internet import StreamServerEndpointService, UDPServer
from twisted.application.service import MultiService
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.logger import Logger
from twisted.python import usage

from sbc.demo.agent import DemoAgent, DemoEvent
from sbc.demo.echo import RtpEcho, parse_port_range
from sbc.sip.endpoint import Endpoint, Peer
from sbc.sip.message import Request, Response
from sbc.transport.driver import SipDriver
from sbc.transport.stream import SipStreamFactory
from sbc.transport.udp import MAX_DATAGRAM, SipDatagramProtocol

__all__ = ["DemoAgentService", "Options", "makeService", "parse_listen"]

DEFAULT_LISTEN = "127.0.0.1:5090"
DEFAULT_PORT = 5090

log = Logger()


def parse_listen(text: str) -> list[tuple[str, int]]:
    """``"127.0.0.1:5090,[::1]:5090"`` -> ``[("127.0.0.1", 5090), ("::1", 5090)]``.

    A missing port means 5090.  Addresses must be specific IP literals: they are written into
    Via, Contact and SDP, where 0.0.0.0 means nothing to the peer.  ValueError otherwise.
    """
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):
            host, sep, rest = item[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ValueError(f"bad address {item!r}: expected [IPv6]:PORT")
            port_text = rest[1:]
        elif item.count(":") > 1:
            host, port_text = item, ""  # a bare IPv6 literal
        else:
            host, _, port_text = item.partition(":")
        try:
            addr = ip_address(host)
        except ValueError:
            raise ValueError(f"bad address {item!r}: {host!r} is not an IP literal") from None
        if addr.is_unspecified:
            raise ValueError(f"bad address {item!r}: give a specific address, not {host}")
        port = int(port_text) if port_text else DEFAULT_PORT
        if not 1 <= port <= 65535:
            raise ValueError(f"bad address {item!r}: port out of range")
        out.append((str(addr), port))
    if not out:
        raise ValueError("no address given")
    return out


def _float(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses NaN
        raise ValueError(f"expected a number >= 0, got {text!r}")
    return value


class Options(usage.Options):
    synopsis = "[--listen HOST:PORT]... [--rtp-ports LOW-HIGH] [--ring SECONDS] [--max-duration SECONDS]"
    longdesc = (
        "A demo agent host for trying and testing the SBC: a SIP UAS over UDP and TCP that "
        "answers every call (180, then 200 after --ring seconds), echoes the caller's RTP back "
        "from a port in --rtp-ports and logs calls, INFO/MESSAGE bodies and agent events."
    )
    optParameters = [
        ["rtp-ports", None, "20000-20999", "Range of UDP ports for the per-call RTP echo.",
         parse_port_range],
        ["ring", None, 0.0, "Seconds between 180 Ringing and 200 OK.", _float],
        ["max-duration", None, None, "Hang up with BYE after this many seconds (default: never).",
         _float],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, value: str) -> None:
        """SIP address (UDP and TCP), HOST:PORT or [IPv6]:PORT; repeatable or comma-separated [default: 127.0.0.1:5090]"""
        try:
            self["listen"].extend(parse_listen(value))
        except ValueError as e:
            raise usage.UsageError(f"--listen: {e}") from None

    opt_l = opt_listen

    def postOptions(self) -> None:
        if isinstance(self["rtp-ports"], str):  # the default: coerce only sees given values
            self["rtp-ports"] = parse_port_range(self["rtp-ports"])
        if not self["listen"]:
            self["listen"] = parse_listen(DEFAULT_LISTEN)
        seen = set()
        for item in self["listen"]:
            if item in seen:
                raise usage.UsageError(f"--listen: {item[0]}:{item[1]} given twice")
            seen.add(item)


class _LoggedAgent:
    """The agent as the driver's transaction user; logs the agent's events as they come."""

    def __init__(self, agent: DemoAgent) -> None:
        self.agent = agent

    def messages_to_send(self) -> list[tuple[Request | Response, Peer]]:
        out = self.agent.messages_to_send()
        for event in self.agent.events():
            log_event(event)
        return out

    def next_deadline(self) -> float | None:
        return self.agent.next_deadline()

    def handle_timer(self, now: float) -> None:
        self.agent.handle_timer(now)


def log_event(event: DemoEvent) -> None:
    f = dict(event.fields)
    if event.kind == "call-started":
        late = " (late offer)" if f.get("late_offer") else ""
        log.info("call {call_id} answered: {caller} -> {callee} from {peer}; RTP echo on "
                 "{media}{late}", call_id=event.call_id, late=late,
                 **{k: f.get(k) for k in ("caller", "callee", "peer", "media")})
    elif event.kind == "call-ended":
        log.info("call {call_id} ended after {duration}s: {reason}", call_id=event.call_id,
                 duration=f.get("duration"), reason=f.get("reason"))
    elif event.kind == "call-refused":
        log.info("call {call_id} refused with {status}: {why}", call_id=event.call_id,
                 status=f.get("status"), why=f.get("why"))
    elif event.kind in ("info", "message"):
        log.info("{method} in call {call_id} ({content_type}): {body}",
                 method=event.kind.upper(), call_id=event.call_id,
                 content_type=f.get("content_type") or "no Content-Type", body=f.get("body"))
    elif event.kind == "agent-event":
        log.info("agent event for call {call_id}: {event}", call_id=event.call_id,
                 event=f.get("event"))
    else:
        log.warn("call {call_id}: {error}", call_id=event.call_id or "-",
                 error=f.get("error", event.kind))


class DemoAgentService(MultiService):
    """The listeners, the agent and its RTP echo; hangs up every call when stopped."""

    def __init__(self, agent: DemoAgent, driver: SipDriver, echo: RtpEcho, clock: Any) -> None:
        super().__init__()
        self.agent = agent
        self.driver = driver
        self.echo = echo
        self.clock = clock

    def on_agent_event(self, event: Mapping[str, Any]) -> None:
        """Entry point for the agent event channel (not built yet): log an event."""
        self.agent.on_agent_event(event)
        self.driver.flush()

    def stopService(self) -> Any:
        try:
            self.agent.hangup_all(self.clock.seconds())
            self.driver.flush()
        except Exception:
            log.failure("hanging up calls at shutdown failed")
        self.echo.close_all()
        return super().stopService()


def makeService(options: Options) -> DemoAgentService:
    from twisted.internet import reactor  # installed by twistd/twist by now

    listen: list[tuple[str, int]] = options["listen"] or parse_listen(DEFAULT_LISTEN)
    first_host = listen[0][0]
    driver_ref: list[SipDriver] = []
    endpoint = Endpoint(
        fqdn=f"[{first_host}]" if ":" in first_host else first_host,
        user_agent="sbc-demo-agent",
        contact_port=lambda peer: driver_ref[0].local_port(peer),
    )
    driver = SipDriver(endpoint, reactor)
    driver_ref.append(driver)

    def local_address(peer: Peer) -> tuple[str, int]:
        v6 = ":" in peer.host
        host, port = next(((h, p) for h, p in listen if (":" in h) == v6), listen[0])
        return host, driver.local_port(peer) or port

    echo = RtpEcho(reactor, options["rtp-ports"])
    agent = DemoAgent(local_address=local_address, media=echo, ring_delay=options["ring"],
                      max_duration=options["max-duration"])
    endpoint.add_handler(agent)
    endpoint.set_response_handler(agent.handle_response)
    top = DemoAgentService(agent, driver, echo, reactor)
    tcp = SipStreamFactory(driver, "tcp")
    for host, port in listen:
        udp = UDPServer(port, SipDatagramProtocol(driver), interface=host,
                        maxPacketSize=MAX_DATAGRAM, reactor=reactor)
        udp.setName(f"sip-udp-{host}-{port}")
        udp.setServiceParent(top)
        cls = TCP6ServerEndpoint if ":" in host else TCP4ServerEndpoint
        stream = StreamServerEndpointService(cls(reactor, port, interface=host), tcp)
        stream._raiseSynchronously = True  # fail start-up on a busy port, do not run deaf
        stream.setName(f"sip-tcp-{host}-{port}")
        stream.setServiceParent(top)
    driver.add_tu(_LoggedAgent(agent))
    low, high = options["rtp-ports"]
    log.info("sbc-demo-agent on {addresses} (UDP and TCP); RTP echo ports {low}-{high}; "
             "ring {ring}s; max duration {max}",
             addresses=", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in listen),
             low=low, high=high, ring=options["ring"],
             max=f"{options['max-duration']}s" if options["max-duration"] is not None else "none")
    return top
