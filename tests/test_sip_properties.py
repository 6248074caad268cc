# -*- test-case-name: tests.test_sip_properties -*-
"""Property tests for the SIP message layer (Hypothesis, deterministic profile)."""

from __future__ import annotations

import random
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.errors import SipParseError
from sbc.sip.headers import split_values
from sbc.sip.message import (
    Message,
    Request,
    Response,
    make_response,
    parse_cseq,
    parse_message,
    _parse_name_addr_cached,
    _parse_via,
    parse_name_addr,
    parse_via,
    salvage_error_response,
    validate_request,
    validate_response,
)
from sbc.sip.parse import KeepAlive, ParseFailure, StreamFramer
from sbc.sip.uri import parse_uri
from tests import strategies as s

TORTURE = Path(__file__).resolve().parents[2] / "shared" / "torture"


def semantic(m: Message) -> tuple[object, ...]:
    """What a round trip must preserve: start line, header names + values, body."""
    if isinstance(m, Request):
        start: tuple[object, ...] = ("req", m.method, m.uri, m.version)
    else:
        assert isinstance(m, Response)
        start = ("resp", m.status, m.reason, m.version)
    return start + (tuple((h.name, h.value) for h in m.headers), m.body)


def exercise(msg: Message) -> None:
    """Validate and read every view; only SipParseError may escape."""
    getters = [
        "vias", "top_via", "cseq", "call_id", "from_", "to", "max_forwards", "content_length",
        "contacts", "contact_star", "routes", "record_routes", "expires",
    ]
    if isinstance(msg, Request):
        getters.append("parsed_uri")
    for name in getters:
        try:
            getattr(msg, name)
        except SipParseError:
            pass
    for name in ("Via", "Contact", "Allow", "To", "X-Unknown", "Supported"):
        try:
            msg.get_all(name)
        except SipParseError:
            pass
    try:
        if isinstance(msg, Request):
            validate_request(msg)
            make_response(msg, 400, to_tag="x").to_bytes()
        else:
            assert isinstance(msg, Response)
            validate_response(msg)
    except SipParseError:
        pass
    msg.with_header("Max-Forwards", b"1").to_bytes()


def parse_anything(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError:
        out = salvage_error_response(data, 400, "Bad Request")
        if out is not None:
            again = parse_message(out)
            assert isinstance(again, Response)
        return
    assert msg.to_bytes() == data[len(data) - len(data.lstrip(b"\r\n")) :][: len(msg.to_bytes())]
    exercise(msg)


class RoundTripProperties(SynchronousTestCase):
    @given(s.uris)
    def test_uri_round_trip(self, uri: object) -> None:
        parsed = parse_uri(uri.to_bytes())  # type: ignore[attr-defined]
        self.assertEqual(parsed, uri)
        self.assertEqual(parsed.to_bytes(), uri.to_bytes())  # type: ignore[attr-defined]

    @given(s.name_addrs())
    def test_name_addr_round_trip(self, na: object) -> None:
        self.assertEqual(parse_name_addr(na.to_bytes()), na)  # type: ignore[attr-defined]

    @given(s.vias())
    def test_via_round_trip(self, via: object) -> None:
        self.assertEqual(parse_via(via.to_bytes()), via)  # type: ignore[attr-defined]

    @given(st.one_of(s.vias().map(lambda v: v.to_bytes()),
                     s.mutated(s.vias().map(lambda v: v.to_bytes())),
                     st.builds(lambda v, b: v.to_bytes() + b";branch=" + b,
                               s.vias(), st.binary(max_size=12))))
    def test_via_memo_agrees_with_a_whole_parse(self, value: bytes) -> None:
        """parse_via's memo (the via-parm without its branch) gives what a whole parse gives,
        or refuses what it refuses."""
        self.assertEqual(_outcome(parse_via, value), _outcome(_parse_via, value))

    @given(st.one_of(s.name_addrs().map(lambda n: n.to_bytes()),
                     s.mutated(s.name_addrs(tag=True).map(lambda n: n.to_bytes())),
                     st.builds(lambda n, t: n.to_bytes() + b";tag=" + t, s.name_addrs(), st.binary(max_size=12))))
    def test_name_addr_memo_agrees_with_a_whole_parse(self, value: bytes) -> None:
        """parse_name_addr's memo (the value without a final tag) gives what a whole parse
        gives, or refuses what it refuses."""
        self.assertEqual(_outcome(parse_name_addr, value), _outcome(_parse_name_addr_cached.__wrapped__, value))

    @given(st.integers(0, 2**31 - 1), s.tokens)
    def test_cseq(self, seq: int, method: str) -> None:
        self.assertEqual(parse_cseq(b"%d %s" % (seq, method.encode())).seq, seq)

    @given(s.requests())
    def test_request_round_trip(self, req: Request) -> None:
        data = req.to_bytes()
        parsed = parse_message(data)
        self.assertEqual(semantic(parsed), semantic(req))
        self.assertEqual(parsed.to_bytes(), data)
        assert isinstance(parsed, Request)
        validate_request(parsed)
        self.assertEqual(parsed.cseq.method, req.method)
        self.assertEqual(len(parsed.vias), sum(len(split_values(h.value)) for h in req.headers_named("Via")))

    @given(s.responses())
    def test_response_round_trip(self, resp: Response) -> None:
        data = resp.to_bytes()
        parsed = parse_message(data)
        self.assertEqual(semantic(parsed), semantic(resp))
        assert isinstance(parsed, Response)
        validate_response(parsed)

    @given(s.requests(), st.lists(st.tuples(s.extension_names, s.header_values), max_size=3))
    def test_rewrite_keeps_others(self, req: Request, extra: list[tuple[str, bytes]]) -> None:
        parsed = parse_message(req.to_bytes())
        out = parsed
        for name, value in extra:
            out = out.append_header(name, value)
        out = out.with_header("Max-Forwards", b"7").prepend_header("Via", b"SIP/2.0/UDP sbc;branch=z9hG4bKsbc")
        again = parse_message(out.to_bytes())
        kept = [h for h in again.headers if h.key not in ("via", "max-forwards")]
        before = [h for h in parsed.headers if h.key not in ("via", "max-forwards")]
        self.assertEqual(kept[: len(before)], before)
        self.assertEqual(again.top_via.branch, "z9hG4bKsbc")
        self.assertEqual(again.max_forwards, 7)
        self.assertEqual(again.body, req.body)


class ResponseProperties(SynchronousTestCase):
    @given(s.requests(), st.integers(100, 699), s.tokens)
    def test_make_response(self, req: Request, status: int, tag: str) -> None:
        parsed = parse_message(req.to_bytes())
        assert isinstance(parsed, Request)
        resp = parse_message(make_response(parsed, status, to_tag=tag).to_bytes())
        assert isinstance(resp, Response)
        validate_response(resp)
        self.assertEqual(resp.status, status)
        self.assertEqual(resp.vias, parsed.vias)
        self.assertEqual((resp.cseq, resp.call_id, resp.from_), (parsed.cseq, parsed.call_id, parsed.from_))
        self.assertEqual(resp.to.tag, parsed.to.tag if parsed.to.tag is not None else tag)
        self.assertEqual(resp.to.uri, parsed.to.uri)

    @given(s.requests())
    def test_salvage_from_broken_request(self, req: Request) -> None:
        data = req.to_bytes().replace(b" SIP/2.0\r\n", b" SIP/2.0 junk\r\n", 1)
        with self.assertRaises(SipParseError):
            parse_message(data)
        out = salvage_error_response(data, 400, "Bad Request")
        assert out is not None
        resp = parse_message(out)
        assert isinstance(resp, Response)
        validate_response(resp)
        self.assertEqual(resp.vias, req.vias)
        self.assertEqual((resp.call_id, resp.cseq), (req.call_id, req.cseq))


class FramerProperties(SynchronousTestCase):
    @given(st.lists(s.messages, min_size=1, max_size=4), st.lists(st.integers(1, 50), min_size=1, max_size=40))
    def test_split_anywhere(self, msgs: list[Message], sizes: list[int]) -> None:
        stream = b"".join(m.to_bytes() for m in msgs)
        framer = StreamFramer(max_message=1 << 20)
        out: list[object] = []
        pos = 0
        i = 0
        while pos < len(stream):
            size = sizes[i % len(sizes)]
            out.extend(framer.feed(stream[pos : pos + size]))
            pos += size
            i += 1
        self.assertEqual([semantic(m) for m in out], [semantic(m) for m in msgs])  # type: ignore[arg-type]
        self.assertEqual(framer.buffered, 0)

    @given(
        st.lists(st.tuples(st.sampled_from([None, "ping", "pong"]), s.messages), min_size=1, max_size=4),
        st.lists(st.integers(1, 50), min_size=1, max_size=20),
    )
    def test_keepalives_between_messages(self, items: list[tuple[str | None, Message]], sizes: list[int]) -> None:
        # A keep-alive directly before a message is unambiguous: a message never starts with CR.
        # (Splits inside a ping are avoided: a lone CRLF is reported as a pong at once.)
        stream = b""
        expected: list[object] = []
        cuts: set[int] = set()
        for keepalive, msg in items:
            if keepalive == "ping":
                stream += b"\r\n\r\n"
                expected.append(KeepAlive(True))
            elif keepalive == "pong":
                stream += b"\r\n"
                expected.append(KeepAlive(False))
            cuts.add(len(stream))
            stream += msg.to_bytes()
            expected.append(semantic(msg))
        framer = StreamFramer(max_message=1 << 20)
        got: list[object] = []
        pos = i = 0
        while pos < len(stream):
            end = pos + sizes[i % len(sizes)]
            # move a cut that would fall inside a keep-alive to the keep-alive's end
            while end < len(stream) and stream[end - 1 : end + 1] in (b"\r\n", b"\n\r") and end not in cuts:
                end += 1
            got.extend(x if isinstance(x, KeepAlive) else semantic(x) for x in framer.feed(stream[pos:end]))  # type: ignore[arg-type]
            pos = end
            i += 1
        self.assertEqual(got, expected)

    @given(st.lists(st.binary(max_size=64), max_size=10))
    def test_garbage_stream(self, chunks: list[bytes]) -> None:
        framer = StreamFramer(max_message=2048)
        try:
            for chunk in chunks:
                for item in framer.feed(chunk):
                    self.assertIsInstance(item, (Request, Response, KeepAlive, ParseFailure))
                    if isinstance(item, (Request, Response)):
                        exercise(item)
        except SipParseError:
            pass


class RobustnessProperties(SynchronousTestCase):
    @given(st.binary(max_size=400))
    def test_arbitrary_bytes(self, data: bytes) -> None:
        parse_anything(data)

    @given(st.binary(max_size=200).map(lambda b: b"INVITE sip:a@h SIP/2.0\r\n" + b))
    def test_arbitrary_headers(self, data: bytes) -> None:
        parse_anything(data)

    @given(s.mutated(s.messages.map(lambda m: m.to_bytes())))
    def test_mutated_messages(self, data: bytes) -> None:
        parse_anything(data)

    @given(st.binary(max_size=100))
    def test_views_on_arbitrary_values(self, value: bytes) -> None:
        for fn in (parse_uri, parse_name_addr, parse_via, parse_cseq, split_values):
            try:
                fn(value)  # type: ignore[operator]
            except SipParseError:
                pass
        self.assertIsInstance(salvage_error_response(value, 400, "Bad Request"), (bytes, type(None)))


def _outcome(parse: object, value: bytes) -> object:
    try:
        return ("parsed", parse(value))  # type: ignore[operator]
    except SipParseError as e:
        return ("refused", e.reason)


class TortureFuzzTests(SynchronousTestCase):
    """A bounded, seeded fuzz run over the torture corpus (2,000 mutations, < ~20 s)."""

    MUTATIONS = 2000
    TIME_LIMIT = 20.0

    def test_fuzz_corpus(self) -> None:
        files = sorted(TORTURE.glob("*/*.dat"))
        if not files:
            raise self.skipTest(f"torture archive not found at {TORTURE}")
        corpus = [f.read_bytes() for f in files]
        corpus += [c.replace(b"\n", b"\r\n") for c in corpus if b"\r\n" not in c]
        rng = random.Random(4475)
        specials = [b",", b";", b'"', b"<", b">", b":", b"\r\n", b" ", b"\r\n ", b"\x00", b"%", b"[", b"]",
                    b"\\", b"=", b"@", b"\r\n\r\n", b"-", b"9" * 30, b"Content-Length: 99\r\n"]
        deadline = time.monotonic() + self.TIME_LIMIT
        done = 0
        for _ in range(self.MUTATIONS):
            if time.monotonic() > deadline:
                break
            data = bytearray(rng.choice(corpus))
            for _ in range(rng.randint(1, 5)):
                pos = rng.randrange(len(data) + 1)
                op = rng.randrange(4)
                if op == 0 and data:
                    data[min(pos, len(data) - 1)] = rng.randrange(256)
                elif op == 1:
                    data[pos:pos] = rng.choice(specials)
                elif op == 2:
                    del data[pos : pos + rng.randint(1, 16)]
                else:
                    data[pos:pos] = data[pos : pos + rng.randint(1, 40)]
            parse_anything(bytes(data))
            framer = StreamFramer()
            try:
                framer.feed(bytes(data))
            except SipParseError:
                pass
            done += 1
        self.assertGreater(done, 100)
