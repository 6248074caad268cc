# -*- test-case-name: tests.test_service -*-
"""
Wiring: build the service tree from a validated :class:`~sbc.config.Config`.

This module and :mod:`sbc.tap` are the only places that know about the reactor; everything
below them receives it (or just a clock) as an argument.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.application.internet import StreamServerEndpointService, UDPServer
from twisted.application.service import MultiService
from twisted.internet.endpoints import (
    SSL4ServerEndpoint,
    TCP4ServerEndpoint,
    TCP6ServerEndpoint,
)
from twisted.internet.abstract import isIPv6Address

from sbc.observe import attach_observability
from sbc.sip.endpoint import Endpoint
from sbc.transport.driver import SipDriver
from sbc.transport.stream import SipStreamFactory
from sbc.transport.tls import server_tls_options
from sbc.transport.udp import MAX_DATAGRAM, SipDatagramProtocol

__all__ = ["build_service", "SbcService"]


class SbcService(MultiService):
    """The top of the service tree; keeps a handle on the SIP driver for health and tests."""

    def __init__(self, config: Any, driver: SipDriver) -> None:
        super().__init__()
        self.config = config
        self.driver = driver
        self.b2bua: Any = None

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
            "counters": dict(self.driver.counters),
        }


def _stream_endpoint(reactor: Any, address: str, port: int, tls: Any = None) -> Any:
    if tls is not None:
        return SSL4ServerEndpoint(reactor, port, tls, interface=address)
    if isIPv6Address(address):
        return TCP6ServerEndpoint(reactor, port, interface=address)
    return TCP4ServerEndpoint(reactor, port, interface=address)


def _listening(svc: StreamServerEndpointService) -> StreamServerEndpointService:
    # Fail start-up when a port cannot be bound, instead of logging and running deaf.
    svc._raiseSynchronously = True
    return svc


def build_service(config: Any, reactor: Any) -> SbcService:
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

    driver = SipDriver(
        endpoint,
        reactor,
        max_udp_size=sip.max_udp_size,
        max_message_size=sip.max_message_size,
        connect_tcp=connect_tcp,
    )
    endpoint_ref.append(driver)
    top = SbcService(config, driver)

    # The B2BUA: calls from a trunk's PBX to its agent host.  Its own requests leave from the
    # first UDP listener's address (Via and Contact), the socket the agent host answers to.
    udp = next((l for l in config.listen if l.transport == "udp"), None)
    first = udp or (config.listen[0] if config.listen else None)
    if first is not None and config.trunks:
        from sbc.b2bua.core import B2bua

        b2bua = B2bua(
            trunks=config.trunks,
            local_host=first.address,
            local_port=first.port,
            fqdn=config.sbc.fqdn,
            timers=sip,
            user_agent=config.sbc.user_agent,
        )
        endpoint.add_handler(b2bua)
        endpoint.set_response_handler(b2bua.handle_response)
        driver.add_tu(b2bua)
        top.b2bua = b2bua

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
            tls = server_tls_options(
                Path(listener.certificate), Path(listener.private_key),
                Path(listener.chain) if getattr(listener, "chain", None) else None)
            factory = SipStreamFactory(
                driver, "tls", max_message=sip.max_message_size,
                idle_timeout=sip.tcp_idle_timeout, max_connections=sip.max_connections)
            svc = _listening(StreamServerEndpointService(
                _stream_endpoint(reactor, listener.address, listener.port, tls), factory))
        svc.setName(name)
        svc.setServiceParent(top)

    admin = config.admin
    if admin.enabled:
        from sbc.admin import build_admin_site

        site = build_admin_site(top.health)
        svc = _listening(StreamServerEndpointService(
            _stream_endpoint(reactor, admin.address, admin.port), site))
        svc.setName("admin-http")
        svc.setServiceParent(top)
    attach_observability(top, config, driver, top.b2bua, reactor)
    return top
