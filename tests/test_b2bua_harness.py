"""An in-memory network for B2BUA tests: a fake PBX (UAC) and a fake agent host (UAS).

Everything goes through the real :class:`~sbc.sip.endpoint.Endpoint` (so validation and Via
stamping happen as in production) and every message is serialised and parsed again on its
way, as on a wire.  Time is fake: :meth:`Net.advance` steps through the B2BUA's deadlines.
"""

from __future__ import annotations

import itertools
from ipaddress import ip_network
from typing import Any

from sbc.b2bua.core import B2bua
from sbc.config import TrunkConfig
from sbc.sip.dialog import Dialog
from sbc.sip.endpoint import Endpoint, Peer
from sbc.sip.message import Request, Response, make_response, parse_message
from sbc.sip.transaction import build_ack, build_cancel

PBX = Peer("udp", "10.0.0.5", 5060, 1)
AGENT = Peer("udp", "127.0.0.1", 5090, 0)
TRUNK = TrunkConfig(name="pbx", allow=(ip_network("10.0.0.0/24"),), agent_uri="sip:{user}@127.0.0.1:5090")

SDP_A = (b"v=0\r\no=pbx 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n"
         b"m=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n")
SDP_B = (b"v=0\r\no=agent 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         b"m=audio 6000 RTP/AVP 0\r\na=sendrecv\r\n")
SDP_HOLD = SDP_A.replace(b"a=sendrecv", b"a=sendonly")

_branches = itertools.count(1)


def branch() -> str:
    return f"z9hG4bKtest{next(_branches)}"


class Net:
    def __init__(self, peer: Peer = PBX, endpoint_supported: tuple[str, ...] | None = None, **kwargs: Any) -> None:
        """``endpoint_supported``: the Endpoint's option tags (default: the B2BUA's, as the
        service should wire them)."""
        self.now = 1000.0
        kwargs.setdefault("trunks", [TRUNK])
        self.b2b = B2bua(local_host="192.0.2.10", local_port=5060, fqdn="sbc.example.com", **kwargs)
        supported = self.b2b.option_tags if endpoint_supported is None else endpoint_supported
        self.ep = Endpoint(fqdn="sbc.example.com", supported=supported)
        self.ep.add_handler(self.b2b)
        self.ep.set_response_handler(self.b2b.handle_response)
        self.pbx_peer = peer
        self.to_pbx: list[Request | Response] = []
        self.to_agent: list[Request | Response] = []

    # ---- plumbing

    def _route(self, data: bytes, peer: Peer) -> None:
        msg = parse_message(data)
        if (peer.host, peer.port) == (self.pbx_peer.host, self.pbx_peer.port):
            self.to_pbx.append(msg)
        elif (peer.host, peer.port) == (AGENT.host, AGENT.port):
            self.to_agent.append(msg)
        else:  # pragma: no cover - a test failure
            raise AssertionError(f"message to unexpected peer {peer}: {msg!r}")

    def flush(self) -> None:
        for data, peer in self.ep.messages_to_send():
            self._route(data, peer)
        for msg, peer in self.b2b.messages_to_send():
            self._route(msg.to_bytes(), peer)

    def from_pbx(self, msg: Request | Response | bytes) -> None:
        data = msg if isinstance(msg, bytes) else msg.to_bytes()
        self.ep.receive(data, self.pbx_peer, self.now)
        self.flush()

    def from_agent(self, msg: Request | Response | bytes) -> None:
        data = msg if isinstance(msg, bytes) else msg.to_bytes()
        self.ep.receive(data, AGENT, self.now)
        self.flush()

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            deadline = self.b2b.next_deadline()
            if deadline is None or deadline > end:
                break
            self.now = max(self.now, deadline)
            self.b2b.handle_timer(self.now)
            self.flush()
        self.now = end

    def pbx_take(self) -> list[Request | Response]:
        out, self.to_pbx = self.to_pbx, []
        return out

    def agent_take(self) -> list[Request | Response]:
        out, self.to_agent = self.to_agent, []
        return out

    def settle(self) -> None:
        """Let every transaction and timer run out (a long quiet period)."""
        for _ in range(20):
            self.advance(600)
            if self.b2b.next_deadline() is None:
                break


def invite(*, call_id: str = "pbx-call-1@10.0.0.5", user: str = "agent42", body: bytes = SDP_A,
           from_tag: str = "pbx1", extra: str = "", cseq: int = 1, uri: str | None = None) -> Request:
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    ruri = uri or f"sip:{user}@sbc.example.com"
    data = (
        f"INVITE {ruri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 10.0.0.5:5060;branch={branch()}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: \"Alice\" <sip:alice@10.0.0.5>;tag={from_tag}\r\n"
        f"To: <sip:{user}@sbc.example.com>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} INVITE\r\n"
        "Contact: <sip:alice@10.0.0.5:5060>\r\n"
        "Record-Route: <sip:10.0.0.99;lr>\r\n"
        f"{extra}{ctype}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def reply(request: Request, status: int, *, tag: str | None = "ag1", body: bytes = b"",
          contact: bytes = b"<sip:agent@127.0.0.1:5090>", headers: list[tuple[str, bytes]] | None = None) -> Response:
    hdrs: list[tuple[str, bytes]] = list(headers or [])
    if contact and (status < 300) and request.method in ("INVITE", "UPDATE") and status > 100:
        hdrs.append(("Contact", contact))
    if body:
        hdrs.append(("Content-Type", b"application/sdp"))
    return make_response(request, status, to_tag=tag if request.to.tag is None else None, headers=hdrs, body=body)


def ack_2xx(invite_req: Request, response: Response, body: bytes = b"") -> Request:
    """The ACK a UAC sends for a 2xx (a new transaction)."""
    dialog = Dialog.from_uac(invite_req, response)
    headers = [("Content-Type", b"application/sdp")] if body else []
    return dialog.create_ack(invite_req.cseq.seq, via=f"SIP/2.0/UDP 10.0.0.5:5060;branch={branch()}".encode(),
                             headers=headers, body=body)


def ack_non2xx(invite_req: Request, response: Response) -> Request:
    return build_ack(invite_req, response)


def cancel(invite_req: Request) -> Request:
    return build_cancel(invite_req)


class _PeerDialog:
    """One peer's side of an answered call (its address and Contact below): builds its
    in-dialog requests and ACKs."""

    hostport = ""
    contact = b""
    dialog: Dialog

    def _via(self) -> bytes:
        return f"SIP/2.0/UDP {self.hostport};branch={branch()}".encode()

    def request(self, method: str, body: bytes = b"", headers: list[tuple[str, bytes]] | None = None) -> Request:
        hdrs = list(headers or [])
        if body:
            hdrs.append(("Content-Type", b"application/sdp"))
        return self.dialog.create_request(
            method, via=self._via(), contact=self.contact if method in ("INVITE", "UPDATE") else None,
            headers=hdrs, body=body)

    def ack(self, invite_req: Request, body: bytes = b"") -> Request:
        hdrs = [("Content-Type", b"application/sdp")] if body else []
        return self.dialog.create_ack(invite_req.cseq.seq, via=self._via(), headers=hdrs, body=body)


class PbxDialog(_PeerDialog):
    """The PBX's side of an answered call (we are its UAC's peer)."""

    hostport = "10.0.0.5:5060"
    contact = b"<sip:alice@10.0.0.5:5060>"

    def __init__(self, invite_req: Request, response: Response) -> None:
        self.dialog = Dialog.from_uac(invite_req, response)


class AgentDialog(_PeerDialog):
    """The agent host's side: a UAS dialog built from the B leg's INVITE."""

    hostport = "127.0.0.1:5090"
    contact = b"<sip:agent@127.0.0.1:5090>"

    def __init__(self, invite_req: Request, tag: str = "ag1") -> None:
        self.dialog = Dialog.from_uas(invite_req, tag, self.contact)
