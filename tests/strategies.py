# -*- test-case-name: tests.test_sip_properties -*-
"""Hypothesis strategies for SIP messages: tokens, URIs, header values, whole messages."""

from __future__ import annotations

from hypothesis import strategies as st

from sbc.sip.headers import canonical_name
from sbc.sip.message import CSeq, Header, NameAddr, Request, Response, Via
from sbc.sip.uri import URI

TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
_UNRESERVED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()"
_HEX = "0123456789ABCDEFabcdef"

tokens = st.text(TOKEN_ALPHABET, min_size=1, max_size=12)
lower_words = st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)


@st.composite
def escaped_text(draw: st.DrawFn, alphabet: str, min_size: int = 1, max_size: int = 10) -> str:
    """Text from ``alphabet`` with some %HH escapes mixed in."""
    parts = draw(
        st.lists(
            st.one_of(
                st.text(alphabet, min_size=1, max_size=4),
                st.tuples(st.sampled_from(_HEX), st.sampled_from(_HEX)).map(lambda t: "%" + t[0] + t[1]),
            ),
            min_size=min_size,
            max_size=max_size,
        )
    )
    return "".join(parts)


@st.composite
def hostnames(draw: st.DrawFn) -> str:
    labels = draw(st.lists(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True), min_size=1, max_size=4))
    return ".".join(labels)


ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: "%d.%d.%d.%d" % t)
ipv6_refs = st.ip_addresses(v=6).map(lambda a: f"[{a}]")
hosts = st.one_of(hostnames(), ipv4, ipv6_refs)
ports = st.one_of(st.none(), st.integers(0, 65535))

_PARAM_CHARS = _UNRESERVED + "[]/:&+$"


@st.composite
def uri_params(draw: st.DrawFn) -> tuple[tuple[str, str | None], ...]:
    names = draw(st.lists(lower_words, max_size=4, unique=True))
    return tuple((n, draw(st.one_of(st.none(), st.text(_PARAM_CHARS, min_size=1, max_size=8)))) for n in names)


@st.composite
def sip_uris(draw: st.DrawFn, with_headers: bool = True) -> URI:
    scheme = draw(st.sampled_from(["sip", "sips"]))
    user = draw(st.one_of(st.none(), escaped_text(_UNRESERVED + "&=+$,;?/")))
    password = None
    if user is not None:
        password = draw(st.one_of(st.none(), escaped_text(_UNRESERVED + "&=+$,", min_size=0)))
    headers: tuple[tuple[str, str], ...] = ()
    if with_headers:
        headers = tuple(
            draw(st.lists(st.tuples(lower_words, st.text(_UNRESERVED + "[]/?:+$", max_size=8)), max_size=2))
        )
    return URI(scheme, user, password, draw(hosts), draw(ports), draw(uri_params()), headers)


@st.composite
def tel_uris(draw: st.DrawFn) -> URI:
    number = draw(st.from_regex(r"\+?[0-9][0-9\-.]{0,14}", fullmatch=True))
    return URI("tel", user=number, params=draw(uri_params()))


other_uris = st.builds(
    lambda s, o: URI(s, opaque=o),
    st.from_regex(r"[a-z][a-z0-9+.\-]{0,10}", fullmatch=True).filter(lambda s: s not in ("sip", "sips", "tel")),
    st.text(_UNRESERVED + "/:@;?&=+$,", min_size=1, max_size=20),
)

uris = st.one_of(sip_uris(), tel_uris(), other_uris)
# a Request-URI never carries URI headers (validate_request rejects them)
request_uris = st.one_of(sip_uris(with_headers=False), tel_uris(), other_uris)

# display names: printable text, no control characters, never empty
display_names = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029\x85"), min_size=1, max_size=16
)

_GEN_VALUE = TOKEN_ALPHABET


@st.composite
def header_params(draw: st.DrawFn, reserved: tuple[str, ...] = ()) -> tuple[tuple[str, str | None], ...]:
    names = draw(st.lists(tokens.filter(lambda t: t.lower() not in reserved), max_size=3, unique_by=str.lower))
    out = []
    for n in names:
        value = draw(
            st.one_of(
                st.none(),
                st.text(_GEN_VALUE, min_size=1, max_size=10),
                st.text(TOKEN_ALPHABET + " ,;=<>:", max_size=10).map(lambda s: '"' + s + '"'),
            )
        )
        out.append((n, value))
    return tuple(out)


@st.composite
def name_addrs(draw: st.DrawFn, tag: bool | None = None) -> NameAddr:
    uri = draw(st.one_of(sip_uris(), tel_uris()))
    display = draw(st.one_of(st.none(), display_names))
    params = draw(header_params(reserved=("tag",)))
    if tag is None:
        tag = draw(st.booleans())
    if tag:
        params = (("tag", draw(tokens)),) + params
    return NameAddr(display, uri, params, True)


@st.composite
def vias(draw: st.DrawFn) -> Via:
    transport = draw(st.one_of(st.sampled_from(["UDP", "TCP", "TLS", "WS", "WSS", "SCTP"]), tokens.map(str.upper)))
    params: list[tuple[str, str | None]] = [("branch", "z9hG4bK" + draw(tokens))]
    if draw(st.booleans()):
        params.append(("rport", draw(st.one_of(st.none(), st.integers(1, 65535).map(str)))))
    if draw(st.booleans()):
        params.append(("received", draw(st.one_of(ipv4, ipv6_refs, st.ip_addresses(v=6).map(str)))))
    return Via(transport, draw(hosts), draw(ports), tuple(params))


# header values: no CR/LF, no surrounding LWS (parsing strips it), anything else goes
header_values = st.binary(max_size=40).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").strip(b" \t")
)
extension_names = tokens.map(lambda t: "X-" + t).filter(lambda n: canonical_name(n) == n)
methods = st.one_of(st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO"]), tokens)
bodies = st.one_of(st.just(b""), st.binary(max_size=200))


@st.composite
def common_headers(draw: st.DrawFn, method: str) -> list[Header]:
    hs = [Header("Via", b", ".join(v.to_bytes() for v in draw(st.lists(vias(), min_size=1, max_size=3))))]
    hs.append(Header("From", draw(name_addrs(tag=True)).to_bytes()))
    hs.append(Header("To", draw(name_addrs()).to_bytes()))
    hs.append(Header("Call-ID", draw(st.text(TOKEN_ALPHABET + "@:()<>/[]?{}", min_size=1, max_size=30)).encode()))
    hs.append(Header("CSeq", CSeq(draw(st.integers(0, 2**31 - 1)), method).to_bytes()))
    if draw(st.booleans()):
        hs.append(Header("Max-Forwards", str(draw(st.integers(0, 255))).encode()))
    if draw(st.booleans()):
        contacts = draw(st.lists(name_addrs(tag=False), min_size=1, max_size=2))
        hs.append(Header("Contact", b", ".join(c.to_bytes() for c in contacts)))
    for name, value in draw(st.lists(st.tuples(extension_names, header_values), max_size=4)):
        hs.append(Header(name, value))
    order = draw(st.permutations(range(len(hs))))
    return [hs[i] for i in order]


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(methods)
    uri = draw(request_uris).to_bytes()
    headers = draw(common_headers(method))
    body = draw(bodies)
    headers.append(Header("Content-Length", str(len(body)).encode()))
    return Request(method, uri, tuple(headers), body)


@st.composite
def responses(draw: st.DrawFn) -> Response:
    method = draw(methods)
    headers = draw(common_headers(method))
    body = draw(bodies)
    headers.append(Header("Content-Length", str(len(body)).encode()))
    reason = draw(st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=20))
    return Response(draw(st.integers(100, 699)), reason, tuple(headers), body)


messages = st.one_of(requests(), responses())


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """Valid message bytes with a few random edits (flip, insert, delete, duplicate)."""
    data = bytearray(draw(base))
    specials = [b",", b";", b'"', b"<", b">", b":", b"\r\n", b" ", b"\r\n ", b"\x00", b"%", b"[", b"]", b"\\", b"=", b"@"]
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 3))
        pos = draw(st.integers(0, len(data)))
        if kind == 0 and data:
            data[min(pos, len(data) - 1)] = draw(st.integers(0, 255))
        elif kind == 1:
            data[pos:pos] = draw(st.one_of(st.sampled_from(specials), st.binary(min_size=1, max_size=4)))
        elif kind == 2:
            del data[pos : pos + draw(st.integers(1, 8))]
        else:
            end = min(len(data), pos + draw(st.integers(1, 30)))
            data[pos:pos] = data[pos:end]
    return bytes(data)
