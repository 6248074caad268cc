# -*- test-case-name: tests.test_sip_sdp -*-
"""Hypothesis strategies for SDP bodies and `sbc.sip.sdp` objects."""

from __future__ import annotations

from hypothesis import strategies as st

from sbc.sip.sdp import MediaSection, SdpLine, SessionDescription

EOLS = st.sampled_from([b"\r\n", b"\n"])

# Raw line values: anything but CR/LF (a trailing CR would be read back as part of CRLF).
_VALUE_BYTES = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_TOKEN = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+", min_size=1, max_size=12
)
_DIGITS = st.integers(0, 2**64 - 1).map(str)
_IPV4 = st.ip_addresses(v=4).map(str)
_IPV6 = st.ip_addresses(v=6).map(lambda a: a.compressed)


@st.composite
def connection_values(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return b"IN IP4 " + draw(_IPV4).encode()
    return b"IN IP6 " + draw(_IPV6).encode()


@st.composite
def origin_values(draw: st.DrawFn) -> bytes:
    user = draw(st.one_of(st.just("-"), _TOKEN))
    kind, addr = draw(st.one_of(st.tuples(st.just("IP4"), _IPV4), st.tuples(st.just("IP6"), _IPV6)))
    return f"{user} {draw(_DIGITS)} {draw(_DIGITS)} IN {kind} {addr}".encode()


_ATTRIBUTE_VALUES = st.one_of(
    st.sampled_from(
        [
            b"sendrecv", b"sendonly", b"recvonly", b"inactive", b"rtcp-mux", b"ice-lite",
            b"rtpmap:0 PCMU/8000", b"rtpmap:101 telephone-event/8000", b"fmtp:101 0-15",
            b"rtpmap:96 opus/48000/2", b"ptime:20", b"rtcp:9 IN IP4 0.0.0.0", b"mid:0",
            b"crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32",
            b"candidate:1 1 UDP 2130706431 192.0.2.1 49170 typ host",
            b"ice-ufrag:abcd", b"ice-pwd:0123456789abcdef012345", b"group:BUNDLE 0 1",
        ]
    ),
    _TOKEN.map(str.encode),
    st.tuples(_TOKEN, _VALUE_BYTES).map(lambda t: t[0].encode() + b":" + t[1]),
)

_OTHER_LINES = st.one_of(
    st.tuples(st.just("a"), _ATTRIBUTE_VALUES),
    st.tuples(st.sampled_from(["i", "b", "k", "u", "e", "p", "t", "r", "z", "x", "Y"]), _VALUE_BYTES),
    st.tuples(st.just(""), st.text(alphabet=" \t", max_size=3).map(str.encode)),
)


def _lines(pairs: list[tuple[str, bytes]], eols: list[bytes]) -> tuple[SdpLine, ...]:
    return tuple(SdpLine(t, v, e) for (t, v), e in zip(pairs, eols))


@st.composite
def media_sections(draw: st.DrawFn, need_connection: bool) -> MediaSection:
    media = draw(st.sampled_from(["audio", "video", "application", "image", "text"]))
    port = draw(st.integers(0, 65535))
    port_field = str(port)
    if draw(st.booleans()):
        port_field += "/" + str(draw(st.integers(1, 4)))
    proto = draw(st.sampled_from(["RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", "udptl", "TCP/MRCPv2"]))
    formats = draw(st.lists(st.one_of(st.integers(0, 127).map(str), _TOKEN), max_size=5))
    m_value = " ".join([media, port_field, proto, *formats]).encode()
    pairs: list[tuple[str, bytes]] = [("m", m_value)]
    if need_connection or draw(st.booleans()):
        pairs.append(("c", draw(connection_values())))
    pairs.extend(draw(st.lists(_OTHER_LINES, max_size=6)))
    eols = draw(st.lists(EOLS, min_size=len(pairs), max_size=len(pairs)))
    return MediaSection(_lines(pairs, eols))


@st.composite
def session_descriptions(draw: st.DrawFn) -> SessionDescription:
    """Valid descriptions in the form `parse_sdp` produces (so parse(to_bytes(x)) == x)."""
    pairs: list[tuple[str, bytes]] = [("v", b"0"), ("o", draw(origin_values()))]
    if draw(st.booleans()):
        pairs.append(("s", draw(_VALUE_BYTES)))
    session_c = draw(st.booleans())
    if session_c:
        pairs.append(("c", draw(connection_values())))
    pairs.extend(draw(st.lists(_OTHER_LINES, max_size=5)))
    eols = draw(st.lists(EOLS, min_size=len(pairs), max_size=len(pairs)))
    session = _lines(pairs, eols)
    media = tuple(draw(st.lists(media_sections(need_connection=not session_c), max_size=4)))
    sd = SessionDescription(session, media)
    # The last line may lack a line end, unless it is blank (it would then vanish).
    last = sd.all_lines()[-1]
    if last.type and last.value and draw(st.booleans()):
        if media:
            section = media[-1]
            media = media[:-1] + (MediaSection(section.lines[:-1] + (SdpLine(last.type, last.value, b""),)),)
            sd = SessionDescription(session, media)
        else:
            sd = SessionDescription(session[:-1] + (SdpLine(last.type, last.value, b""),), ())
    return sd


# Lines that parse, many with values the parsed views must tolerate.
_PARSEABLE_LINES = st.one_of(
    st.sampled_from(
        [
            b"s=-", b"t=0 0", b"c=IN IP4 192.0.2.1", b"c=IN IP6 2001:db8::1", b"c=IN IP4 0.0.0.0",
            b"c=IN IP6 [2001:db8::2]/3", b"c=IN IP4 224.2.1.1/127/3", b"c=IN IP4 host/x/y",
            b"c=ATM NSAP 47.0091", b"m=audio 49170 RTP/AVP 0 8 101", b"m=audio 0 RTP/AVP 0",
            b"m=video 9 UDP/TLS/RTP/SAVPF 96", b"m=audio 5/2 RTP/AVP", b"m=image 0 udptl t38",
            b"a=rtpmap:101 telephone-event/8000", b"a=rtpmap:x y", b"a=rtpmap:96", b"a=fmtp:",
            b"a=rtpmap:0 PCMU/x", b"a=rtpmap:8 /8000", b"a=fmtp:101", b"a=rtcp-fb:",
            b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc|2^20", b"a=crypto:x", b"a=crypto:",
            b"a=crypto:1 S inline", b"a=rtcp:", b"a=rtcp:70000", b"a=rtcp:53 IN IP6 ::1",
            b"a=rtcp:53 IN", b"a=candidate:1 1 UDP x y z typ", b"a=candidate:",
            b"a=candidate:1 1 UDP 1 192.0.2.1 5 typ host raddr 1 rport x odd",
            b"a=ptime:2.5", b"a=ptime:", b"a=maxptime:99999999999999999999999999999999999999",
            b"a=group:", b"a=group:BUNDLE", b"a=mid:", b"a=sendonly", b"a=inactive", b"a=sendrecv:x",
            b"a=ice-lite", b"a=ice-options:", b"a=ice-ufrag:", b"a=ice-pwd", b"a=fingerprint",
            b"a=", b"a=:", b"a= : ", b"b=TIAS:64000", b"b=AS:x", b"b=", b"b=:", b"k=clear:secret",
            b"k=", b"x=?", b"", b"  ", b"\t",
        ]
    ),
    st.tuples(st.sampled_from([b"a=", b"b=", b"i=", b"z="]), st.binary(max_size=20)).map(
        lambda t: t[0] + t[1].replace(b"\n", b"").replace(b"\r", b"")
    ),
)

# Lines that make parsing fail (or may).
_BREAKING_LINES = st.one_of(
    st.sampled_from(
        [
            b"v=1", b"v=x", b"o=- 1 x IN IP4 h", b"o=short", b"c=IN IP4 ::1", b"c=IN",
            b"m=video 99999 RTP/AVP 96", b"m=audio x RTP/AVP 0", b"m=audio 5/0 RTP/AVP 0",
            b"m=audio", b"=", b"a", b"1=2", b"m=audio 4000 RTP/AVP 0",
        ]
    ),
    st.binary(max_size=20),
)


@st.composite
def sdp_soup(draw: st.DrawFn) -> bytes:
    """Bytes that look like SDP: plausible, broken and random lines, mixed line ends."""
    lines = draw(st.lists(_PARSEABLE_LINES, max_size=15))
    if draw(st.integers(0, 3)) == 0:
        position = draw(st.integers(0, len(lines)))
        lines.insert(position, draw(_BREAKING_LINES))
    if draw(st.integers(0, 5)) > 0:
        prefix = [b"v=0", b"o=- 1 1 IN IP4 192.0.2.1"]
        if draw(st.booleans()):
            prefix.append(draw(st.sampled_from([b"c=IN IP4 192.0.2.1", b"c=IN IP6 ::", b"c=IN IP4 0.0.0.0"])))
        lines = prefix + lines
    eol = draw(st.sampled_from([b"\r\n"] * 5 + [b"\n"] * 3 + [b"\r", b""]))
    return eol.join(lines) + draw(st.sampled_from([b"", b"\r\n", b"\n"]))
