# -*- test-case-name: tests.test_media_rewrite -*-
"""SDP rewriting for the media relay (pure: parsed SDP in, parsed SDP out).

The relay anchors one audio stream per call.  For each SDP that crosses it, it needs

* what the sending side signalled (`StreamInfo`: peer address and ports, RTCP mux, direction,
  payload types, the telephone-event payload type and clock rate, SRTP and its crypto lines),
  extracted by `relayed_index` + `stream_info`;
* the SDP for the other side (`rewrite_for`): every address and port pointing at the relay's
  ports facing that side, ICE and DTLS attributes removed, crypto lines replaced by the
  relay's own (RTP/SAVP) or removed (RTP/AVP), and a stable ``o=`` line per side-facing
  description whose sess-version grows by one each time the description changes (RFC 3264 §8,
  `FacingOrigin`).

Which streams are relayed
-------------------------
The first active (port != 0) ``audio`` stream with an RTP profile (``RTP/AVP``, ``RTP/AVPF``,
``RTP/SAVP``, ``RTP/SAVPF``, also with a ``UDP/TLS/`` prefix when it carries SDES crypto lines)
is relayed.  Every other stream -- video, T.38 image, a second audio stream, anything that is not
RTP -- is rejected with port 0 toward the other side (RFC 3264 §6), so the other side answers
port 0 and the original offerer sees it rejected.  The relay reserves two port pairs per call,
one facing each side; that is what the budget of the port range buys.  For the same reason
``a=group:BUNDLE`` is dropped (``a=rtcp-mux`` is kept: the relay demultiplexes RTCP on the
RTP port, RFC 5761).

Hold
----
Directions (``sendonly``/``recvonly``/``inactive``) pass through untouched.  The RFC 2543 hold
style ``c=0.0.0.0`` (outside ICE) cannot be passed through once the connection address points at
the relay, so it is turned into the equivalent direction on the relayed stream: ``sendrecv``
becomes ``sendonly`` and ``recvonly`` becomes ``inactive`` (the holder receives nothing either way).

No Twisted import (sbc/media/core is part of the pure core).
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import TYPE_CHECKING

import attrs
from attrs import frozen

from sbc.media.core.engine import MediaError, Side, SideOptions, other_side
from sbc.sip.errors import SipParseError
from sbc.sip.sdp import (
    Direction,
    MediaSection,
    Origin,
    SdpLine,
    SessionDescription,
    TelephoneEvent,
    parse_sdp,
)

if TYPE_CHECKING:  # pragma: no cover
    from sbc.media.core.sdes import SrtpKeying

__all__ = [
    "DEFAULT_SUITE",
    "Negotiator",
    "SideMedia",
    "DTLS_ATTRIBUTES",
    "FacingOrigin",
    "RelayPorts",
    "StreamInfo",
    "parse",
    "relayed_index",
    "rewrite_for",
    "stream_info",
]

#: DTLS-SRTP attributes (RFC 8842, RFC 8122): the relay terminates media with SDES or plain RTP.
DTLS_ATTRIBUTES: tuple[str, ...] = ("fingerprint", "setup", "tls-id", "connection")

_RTP_PROTOS = frozenset(
    {"RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"}
)


def parse(body: bytes) -> SessionDescription:
    """`parse_sdp`, with its errors turned into `MediaError` (400 stays 400-ish: both are 488
    for an offer we cannot use, which is what the B2BUA must answer)."""
    try:
        return parse_sdp(body)
    except SipParseError as e:
        raise MediaError(488, f"unusable SDP: {e.reason}") from None
    except (ValueError, TypeError):
        raise MediaError(488, "unusable SDP") from None


def _is_rtp(section: MediaSection) -> bool:
    return section.proto.upper() in _RTP_PROTOS


def _is_srtp_proto(proto: str) -> bool:
    return "SAVP" in proto.upper()


def relayed_index(sdp: SessionDescription) -> int | None:
    """Index of the stream the relay anchors: the first active audio RTP stream; a UDP/TLS
    (DTLS) profile only counts when it carries SDES crypto lines.  None if there is none."""
    for index, section in enumerate(sdp.media):
        if section.rejected or section.media.lower() != "audio" or not _is_rtp(section):
            continue
        if section.proto.upper().startswith("UDP/TLS/") and not section.crypto():
            continue
        return index
    return None


@frozen
class StreamInfo:
    """What one side signalled for the relayed stream."""

    index: int
    rejected: bool
    #: Where the side wants RTP (an IP literal), or None: hold address, FQDN, or rejected.
    address: str | None
    rtp_port: int
    #: Where the side wants RTCP when not muxed (a=rtcp, else rtp_port + 1).
    rtcp_address: str | None
    rtcp_port: int
    rtcp_mux: bool
    #: Effective direction, with c=0.0.0.0 hold folded in (see module doc).
    direction: Direction
    #: (payload type, upper-cased encoding name) for every format with a known name.
    codecs: tuple[tuple[int, str], ...]
    #: The telephone-event entry at the audio clock rate (else the first one), if any.
    telephone_event: TelephoneEvent | None
    #: The profile is SRTP (RTP/SAVP[F]).
    srtp: bool
    #: Raw a=crypto values (``b"1 AES_CM_128_HMAC_SHA1_80 inline:..."``), in order.
    crypto: tuple[bytes, ...] = attrs.field(repr=lambda v: f"<{len(v)} crypto lines>")
    proto: str = "RTP/AVP"
    #: Every telephone-event payload type offered (Teams offers one per clock rate).
    telephone_events: tuple[TelephoneEvent, ...] = ()

    def codec_map(self) -> dict[int, str]:
        return dict(self.codecs)

    @property
    def on_hold(self) -> bool:
        """The side does not want to receive, or sends nothing (RFC 3264 §8.4)."""
        return self.rejected or self.direction is not Direction.SENDRECV


def _ip_literal(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        parsed = ip_address(text.strip("[]"))
    except ValueError:
        return None
    if parsed.is_unspecified:
        return None
    return parsed.compressed


def stream_info(sdp: SessionDescription, index: int) -> StreamInfo:
    """Extract `StreamInfo` for media ``index`` of ``sdp``.  Raises `MediaError` (488) if the
    index does not exist."""
    if not 0 <= index < len(sdp.media):
        raise MediaError(488, f"no media stream {index} in SDP")
    section = sdp.media[index]
    connection = sdp.connection_for(index)
    address = _ip_literal(connection.address) if connection is not None else None
    direction = sdp.direction(index)
    if sdp.is_media_on_hold(index) and connection is not None and connection.is_hold_address:
        direction = _HOLD_FOLD[direction]
    rtcp = section.rtcp
    rtcp_port = section.port + 1 if section.port else 0
    rtcp_address = address
    if rtcp is not None and rtcp.port:
        rtcp_port = rtcp.port
        if rtcp.address is not None:
            rtcp_address = _ip_literal(rtcp.address)
    codecs = tuple(
        (c.payload_type, c.encoding.upper()) for c in section.codecs() if c.encoding is not None
    )
    audio_clock = next(
        (
            c.clock_rate
            for c in section.codecs()
            if c.encoding is not None and c.encoding.lower() not in ("telephone-event", "cn")
        ),
        None,
    )
    event = section.telephone_event(audio_clock) or section.telephone_event()
    return StreamInfo(
        index=index,
        rejected=section.rejected,
        address=None if section.rejected else address,
        rtp_port=section.port,
        rtcp_address=None if section.rejected else rtcp_address,
        rtcp_port=rtcp_port,
        rtcp_mux=section.rtcp_mux,
        direction=direction,
        codecs=codecs,
        telephone_event=event,
        srtp=_is_srtp_proto(section.proto),
        crypto=tuple(v for v in section.attributes("crypto") if v is not None),
        proto=section.proto,
        telephone_events=section.telephone_events(),
    )


_HOLD_FOLD = {
    Direction.SENDRECV: Direction.SENDONLY,
    Direction.RECVONLY: Direction.INACTIVE,
    Direction.SENDONLY: Direction.SENDONLY,
    Direction.INACTIVE: Direction.INACTIVE,
}


@frozen
class RelayPorts:
    """The relay's transport address facing one side."""

    address: str  # advertised IP literal (IPv4 or IPv6)
    rtp_port: int
    rtcp_port: int


@frozen
class FacingOrigin:
    """The ``o=`` line of the descriptions the relay sends toward one side.

    One origin (username, sess-id, address) per side-facing description for the whole call;
    `stamp` puts it on each outgoing SDP and increments sess-version whenever the description
    differs from the previous one sent that way (RFC 3264 §8: an unchanged description, e.g. a
    session refresh, keeps the version).
    """

    sess_id: str
    address: str
    version: int = 1
    username: str = "-"
    #: The last body sent (with the o= line blanked), None before the first.
    last: bytes | None = attrs.field(default=None, repr=False)

    def stamp(self, sdp: SessionDescription) -> tuple["FacingOrigin", SessionDescription]:
        addrtype = "IP6" if ":" in self.address else "IP4"
        probe = sdp.with_origin(Origin(self.username, self.sess_id, 0, "IN", addrtype, self.address))
        body = probe.to_bytes()
        version = self.version
        if self.last is not None and body != self.last:
            version += 1
        stamped = sdp.with_origin(
            Origin(self.username, self.sess_id, version, "IN", addrtype, self.address)
        )
        return attrs.evolve(self, version=version, last=body), stamped


def _with_proto(section: MediaSection, proto: str) -> MediaSection:
    m = section.lines[0]
    fields = m.value.split()
    fields[2] = proto.encode("ascii")
    return attrs.evolve(section, lines=(SdpLine("m", b" ".join(fields), m.eol),) + section.lines[1:])


def _target_proto(offered: str, srtp: bool) -> str:
    """RTP/AVP or RTP/SAVP, keeping the feedback profile (F) of ``offered``; never UDP/TLS."""
    feedback = offered.upper().endswith("F")
    return ("RTP/SAVP" if srtp else "RTP/AVP") + ("F" if feedback else "")


def rewrite_for(
    sdp: SessionDescription,
    index: int | None,
    ports: RelayPorts,
    *,
    crypto: bytes | None = None,
    rtcp_mux: bool | None = None,
    direction: Direction | None = None,
) -> SessionDescription:
    """The SDP to send to the other side in place of ``sdp`` (the o= line is set by
    `FacingOrigin.stamp` afterwards).

    ``index``: the relayed stream (None: every stream is rejected).  ``crypto``: the a=crypto
    value of the relay's key toward the receiving side, or None for plain RTP.  ``rtcp_mux``:
    keep (True) or drop (False) a=rtcp-mux on the relayed stream; None keeps what ``sdp`` says.
    ``direction``: force the relayed stream's direction; None passes it through, except that a
    c=0.0.0.0 hold is folded into a direction (module doc).

    Raises `MediaError` (488) if the rewrite cannot be expressed (e.g. an unusable address).
    """
    try:
        return _rewrite(sdp, index, ports, crypto, rtcp_mux, direction)
    except ValueError as e:
        raise MediaError(488, f"cannot rewrite SDP: {e}") from None


def _drop_session_attributes(sdp: SessionDescription, names: tuple[str, ...]) -> SessionDescription:
    for name in names:
        sdp = sdp.without_session_attribute(name)
    return sdp


def _rewrite(
    sdp: SessionDescription,
    index: int | None,
    ports: RelayPorts,
    crypto: bytes | None,
    rtcp_mux: bool | None,
    direction: Direction | None,
) -> SessionDescription:
    if direction is None and index is not None:
        connection = sdp.connection_for(index)
        if connection is not None and connection.is_hold_address and sdp.is_media_on_hold(index):
            direction = _HOLD_FOLD[sdp.direction(index)]
    out = sdp.without_ice()
    out = _drop_session_attributes(out, DTLS_ATTRIBUTES)
    # BUNDLE (RFC 8843) would put several streams on one port: the relay gives each side one
    # port pair for one stream, so the grouping is dropped (and bundle-only streams rejected).
    out = attrs.evolve(out, session=tuple(
        l for l in out.session
        if not (l.attribute_name == "group" and (l.attribute_value or b"").split(b" ")[0].upper() == b"BUNDLE")
    ))
    # k= lines (RFC 8866 §5.12, obsolete) could carry keys toward the wrong side: never relay them.
    out = attrs.evolve(out, session=tuple(l for l in out.session if l.type != "k"))
    out = out.with_connection(ports.address)
    media = []
    for i, section in enumerate(out.media):
        section = section.without_crypto()
        section = attrs.evolve(
            section, lines=section.lines[:1] + tuple(l for l in section.lines[1:] if l.type != "k")
        )
        if i != index:
            if not section.rejected:
                section = section.rejected_copy()
            media.append(section)
            continue
        for name in DTLS_ATTRIBUTES + ("bundle-only",):
            section = section.without_attribute(name)
        section = section.with_port(ports.rtp_port)
        section = _with_proto(section, _target_proto(section.proto, crypto is not None))
        if crypto is not None:
            section = section.with_added_attribute("crypto", crypto)
        mux = section.rtcp_mux if rtcp_mux is None else rtcp_mux
        section = section.without_attribute("rtcp-mux")
        section = section.with_rtcp(ports.rtcp_port)
        if mux:
            section = section.with_added_attribute("rtcp-mux")
        if direction is not None:
            section = section.with_direction(direction)
        media.append(section)
    return attrs.evolve(out, media=tuple(media))


# ---------------------------------------------------------------------------------------------
# Offer/answer through the relay


@frozen
class SideMedia:
    """What the relay applies for one side after an offer/answer step."""

    #: The side's latest SDP for the relayed stream (None before it sent any).
    info: StreamInfo | None = None
    #: The side's SRTP key (the relay unprotects what the side sends); None: plain RTP.
    inbound: SrtpKeying | None = attrs.field(default=None, repr=False)
    #: The relay's SRTP key toward the side (the relay protects what it sends); None: plain RTP.
    outbound: SrtpKeying | None = attrs.field(default=None, repr=False)
    #: The relayed stream as last described TO the side: a sender uses the payload type numbers
    #: of the description it received (RFC 3264 §5.1), so this is how to read its packets.
    told: StreamInfo | None = None

    @property
    def telephone_event(self) -> TelephoneEvent | None:
        """The telephone-event payload type the side sends with (told first, else its own)."""
        for info in (self.told, self.info):
            if info is not None and info.telephone_event is not None:
                return info.telephone_event
        return None

    def telephone_events(self) -> tuple[TelephoneEvent, ...]:
        """Every telephone-event payload type the side may send with (told first)."""
        seen: dict[int, TelephoneEvent] = {}
        for info in (self.told, self.info):
            if info is not None:
                for event in info.telephone_events:
                    seen.setdefault(event.payload_type, event)
        return tuple(seen.values())

    def codec_map(self) -> dict[int, str]:
        """Payload type -> encoding of what the side sends (told numbering wins)."""
        result: dict[int, str] = {}
        for info in (self.info, self.told):
            if info is not None:
                result.update(info.codecs)
        return result

    @property
    def srtp(self) -> bool:
        return self.inbound is not None and self.outbound is not None


@frozen
class _Pending:
    offerer: Side
    index: int
    info: StreamInfo
    inbound: SrtpKeying | None = attrs.field(repr=False)
    answer_crypto: bytes | None = attrs.field(repr=False)  # our crypto value for the answer to the offerer
    offered_crypto: tuple[int, SrtpKeying] | None = attrs.field(repr=False)  # (tag, key) offered to the answerer
    offered: SessionDescription = attrs.field(repr=False)  # the offer as sent to the answerer


#: The suite the relay offers toward a side that requires SRTP (every SDES peer has it).
DEFAULT_SUITE = "AES_CM_128_HMAC_SHA1_80"


class Negotiator:
    """The relay's half of RFC 3264 offer/answer for one call, both sides (pure, mutable).

    `offer`/`answer` take the SDP a side sent and return the SDP for the other side; `sides`
    holds what the relay must apply after each step.  A first offer takes effect at once (the
    offerer must be ready to receive once it has offered, RFC 3264 §5, and early media may
    precede the answer); a re-offer and every answer take effect at the answer, so a refused
    re-offer needs no rollback.  The relay's own keys toward each side stay the same for the
    call unless the crypto suite changes, so a re-INVITE does not restart SRTP.

    Raises only `MediaError` (488).
    """

    def __init__(
        self,
        options: dict[Side, SideOptions],
        ports: dict[Side, RelayPorts],
        sess_id: str,
        suites: tuple[str, ...] | None = None,
    ) -> None:
        self.options = options
        self.ports = ports
        self.suites = suites
        self.origins: dict[Side, FacingOrigin] = {
            side: FacingOrigin(sess_id, ports[side].address) for side in ("a", "b")
        }
        self.sides: dict[Side, SideMedia] = {"a": SideMedia(), "b": SideMedia()}
        self.index: int | None = None
        self._pending_told: tuple[Side, SessionDescription, int | None] | None = None
        self._ours: dict[Side, SrtpKeying | None] = {"a": None, "b": None}
        self._pending: _Pending | None = None

    # -- helpers --------------------------------------------------------------------------------

    def _our_key(self, side: Side, suite: str) -> SrtpKeying:
        from sbc.media.core import sdes

        current = self._ours[side]
        if current is None or current.suite != suite:
            current = sdes.new_keying(suite)
            self._ours[side] = current
        return current

    def _stamp(self, toward: Side, sdp: SessionDescription) -> bytes:
        self.origins[toward], stamped = self.origins[toward].stamp(sdp)
        return stamped.to_bytes()

    @property
    def on_hold(self) -> bool:
        """Either side holds the relayed stream (or it is rejected): no media timeout then."""
        return any(s.info is not None and s.info.on_hold for s in self.sides.values())

    @property
    def pending(self) -> Side | None:
        """The side whose offer awaits an answer."""
        return self._pending.offerer if self._pending is not None else None

    # -- offer/answer ---------------------------------------------------------------------------

    def _dtmf_for(self, toward: Side, out: SessionDescription, index: int | None,
                  source: StreamInfo | None) -> SessionDescription:
        """Make sure a side we decode DTMF from is told a telephone-event payload type, even when
        the other side did not offer or answer one (an agent host without RFC 4733 would
        otherwise keep the PBX from sending events at all)."""
        if index is None or not self.options[toward].dtmf:
            return out
        section = out.media[index]
        if section.rejected or section.telephone_events():
            return out
        clock = next(
            (
                c.clock_rate
                for c in section.codecs()
                if c.encoding is not None and c.encoding.lower() not in ("cn", "red")
            ),
            8000,
        )
        events = source.telephone_events if source is not None else ()
        wanted = next((e for e in events if e.clock_rate == clock), None) or TelephoneEvent(
            events[0].payload_type if events else 101, clock or 8000
        )
        return out.with_media(index, with_telephone_event(section, wanted))

    def _told(self, toward: Side, sdp: SessionDescription, index: int | None) -> None:
        told = stream_info(sdp, index) if index is not None else None
        self.sides[toward] = attrs.evolve(self.sides[toward], told=told)

    def offer(self, from_side: Side, body: bytes) -> bytes:
        """The SDP offer ``body`` from ``from_side``; returns the offer for the other side."""
        to_side = other_side(from_side)
        sdp = parse(body)
        index = relayed_index(sdp)
        if index is None:
            raise MediaError(488, "no audio RTP stream the relay can anchor")
        info = stream_info(sdp, index)
        policy = self.options[from_side].srtp
        inbound: SrtpKeying | None = None
        answer_crypto: bytes | None = None
        if info.srtp:
            if policy == "off":
                raise MediaError(488, f"side {from_side} offered SRTP; its policy is plain RTP")
            from sbc.media.core import sdes

            chosen = sdes.choose(info.crypto) if self.suites is None else sdes.choose(info.crypto, self.suites)
            if chosen is None:
                raise MediaError(488, f"side {from_side} offered no usable SDES crypto suite")
            tag, inbound = chosen
            answer_crypto = sdes.crypto_value(tag, self._our_key(from_side, inbound.suite))
        elif policy == "required":
            raise MediaError(488, f"side {from_side} offered plain RTP; its policy requires SRTP")

        offered: tuple[int, SrtpKeying] | None = None
        crypto: bytes | None = None
        if self.options[to_side].srtp == "required":
            from sbc.media.core import sdes

            offered = (1, self._our_key(to_side, DEFAULT_SUITE))
            crypto = sdes.crypto_value(*offered)
        out = rewrite_for(sdp, index, self.ports[to_side], crypto=crypto)
        out = self._dtmf_for(to_side, out, index, info)
        result = self._stamp(to_side, out)
        # Commit only once everything above succeeded: a refused offer changes nothing.
        self._pending = _Pending(from_side, index, info, inbound, answer_crypto, offered, out)
        self.index = index
        if self.sides[from_side].info is None:
            # The first offer: the offerer's address is needed at once (early media from the
            # answerer may arrive before the answer).  A re-offer takes effect at its answer,
            # so a refused re-offer (488, 491...) leaves the running media as it was.
            outbound = self._ours[from_side] if inbound is not None else None
            self.sides[from_side] = attrs.evolve(
                self.sides[from_side], info=info, inbound=inbound, outbound=outbound
            )
            self._told(to_side, out, index)
        self._pending_told = (to_side, out, index)
        return result

    def answer(self, from_side: Side, body: bytes) -> bytes:
        """The SDP answer ``body`` from ``from_side`` to the other side's last offer; returns the
        answer for the offerer.  May repeat for the same offer (early media in a 18x, then the
        2xx; forked 18x), each one replacing the previous."""
        pending = self._pending
        if pending is None or pending.offerer == from_side:
            raise MediaError(488, f"answer from side {from_side} without an offer to it")
        to_side = pending.offerer
        sdp = parse(body)
        offered = pending.offered.media
        if len(sdp.media) > len(offered):
            raise MediaError(488, "answer has more media streams than the offer")
        if len(sdp.media) < len(offered):
            # RFC 3264 §6: one answer line per offer line.  A short answer is padded with the
            # missing streams rejected, so the offerer still gets a well-formed answer.
            if len(sdp.media) <= pending.index:
                raise MediaError(488, "answer lacks the audio stream of the offer")
            padding = tuple(m.without_crypto().rejected_copy() for m in offered[len(sdp.media):])
            sdp = attrs.evolve(sdp, media=sdp.media + padding)
        info = stream_info(sdp, pending.index)
        inbound: SrtpKeying | None = None
        outbound: SrtpKeying | None = None
        if not info.rejected:
            if pending.offered_crypto is not None:
                if not info.srtp:
                    raise MediaError(488, f"side {from_side} answered plain RTP to an SRTP offer")
                from sbc.media.core import sdes

                tag, outbound = pending.offered_crypto
                for value in info.crypto:
                    parsed = sdes.parse_crypto_value(value)
                    if parsed is not None and parsed[0] == tag and parsed[1].suite == outbound.suite:
                        inbound = parsed[1]
                        break
                if inbound is None:
                    raise MediaError(488, f"side {from_side} answered without a usable crypto line")
            elif info.srtp:
                raise MediaError(488, f"side {from_side} answered SRTP to a plain RTP offer")
        offerer = pending.info
        index: int | None = None if info.rejected else pending.index
        if index is None:
            out = rewrite_for(sdp, None, self.ports[to_side])
        else:
            out = rewrite_for(
                sdp, index, self.ports[to_side],
                crypto=pending.answer_crypto, rtcp_mux=offerer.rtcp_mux,
            )
            # RFC 3264 §6: the answer carries the offer's transport, whatever the answerer wrote.
            proto = _target_proto(offerer.proto, pending.answer_crypto is not None)
            out = out.with_media(index, _with_proto(out.media[index], proto))
            out = self._dtmf_for(to_side, out, index, offerer)
        result = self._stamp(to_side, out)
        self.sides[from_side] = attrs.evolve(
            self.sides[from_side], info=info, inbound=inbound, outbound=outbound
        )
        offerer_out = self._ours[to_side] if pending.inbound is not None else None
        self.sides[to_side] = attrs.evolve(
            self.sides[to_side], info=offerer, inbound=pending.inbound, outbound=offerer_out
        )
        self._told(to_side, out, index)
        if self._pending_told is not None:
            self._told(*self._pending_told)
        return result


def with_telephone_event(section: MediaSection, wanted: TelephoneEvent | None) -> MediaSection:
    """``section`` with an RFC 4733 telephone-event format added (``0-15``), at the clock rate
    and, if free, the payload type of ``wanted`` (else 101, else the first free dynamic one)."""
    used = set(section.payload_types)
    clock = wanted.clock_rate if wanted is not None else 8000
    candidates = ([wanted.payload_type] if wanted is not None else []) + [101] + list(range(96, 128))
    pt = next((p for p in candidates if p not in used and 96 <= p <= 127), None)
    if pt is None:
        return section
    m = section.lines[0]
    value = m.value.rstrip() + b" %d" % pt
    section = attrs.evolve(section, lines=(SdpLine("m", value, m.eol),) + section.lines[1:])
    section = section.with_added_attribute("rtpmap", b"%d telephone-event/%d" % (pt, clock))
    return section.with_added_attribute("fmtp", b"%d 0-15" % pt)
