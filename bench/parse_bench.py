#!/usr/bin/env python
"""Micro-benchmark of the sans-IO SIP message layer.

Run:  .venv/bin/python bench/parse_bench.py [--number N]

Prints microseconds per operation (best of 5 runs of N loops, timeit style) for a typical
~1 KB INVITE with SDP.  Target: parse_message + to_bytes under 50 us.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sbc.sip.message import make_response, parse_message, validate_request  # noqa: E402
from sbc.sip.parse import StreamFramer  # noqa: E402

SDP = (
    b"v=0\r\n"
    b"o=- 3917364532 3917364532 IN IP4 198.51.100.20\r\n"
    b"s=SBC\r\n"
    b"c=IN IP4 198.51.100.20\r\n"
    b"t=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:+15551230000@sbc.example.com:5060;transport=udp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.20:5060;rport;branch=z9hG4bK-524287-1---3b2c8f1a9e0d7c6b\r\n"
    b"Via: SIP/2.0/UDP 10.10.1.5:5060;received=10.10.1.5;branch=z9hG4bKPj0a1b2c3d4e5f\r\n"
    b"Max-Forwards: 69\r\n"
    b"Record-Route: <sip:198.51.100.20;lr;ftag=as5f3e9a1c>\r\n"
    b"From: \"Alice Example\" <sip:+15557654321@pbx.example.net>;tag=as5f3e9a1c\r\n"
    b"To: <sip:+15551230000@sbc.example.com>\r\n"
    b"Call-ID: 4f7e6d5c4b3a29180716f5e4d3c2b1a0@pbx.example.net\r\n"
    b"CSeq: 102 INVITE\r\n"
    b"Contact: <sip:+15557654321@198.51.100.20:5060;transport=udp>\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO, UPDATE, PRACK\r\n"
    b"Supported: replaces, timer, 100rel\r\n"
    b"User-Agent: ExamplePBX 18.12.1\r\n"
    b"Session-Expires: 1800;refresher=uac\r\n"
    b"Min-SE: 90\r\n"
    b"P-Asserted-Identity: \"Alice Example\" <sip:+15557654321@pbx.example.net>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)


def parse_serialise() -> bytes:
    return parse_message(INVITE).to_bytes()


def hot_path() -> tuple[object, ...]:
    m = parse_message(INVITE)
    return (m.top_via.branch, m.cseq, m.call_id, m.from_.tag, m.to.tag)


def rewrite() -> bytes:
    m = parse_message(INVITE)
    return m.prepend_header("Via", b"SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKsbc1").to_bytes()


def validate() -> None:
    validate_request(parse_message(INVITE))  # type: ignore[arg-type]


_req = parse_message(INVITE)


def response() -> bytes:
    return make_response(_req, 180, to_tag="sbc-1").to_bytes()  # type: ignore[arg-type]


def framer() -> list[object]:
    return StreamFramer().feed(INVITE)  # type: ignore[return-value]


CASES = [
    ("parse_message + to_bytes (untouched)", parse_serialise),
    ("parse + top_via.branch, cseq, call_id, from_.tag, to.tag", hot_path),
    ("parse + prepend Via + to_bytes", rewrite),
    ("parse + validate_request", validate),
    ("make_response(180) + to_bytes", response),
    ("StreamFramer().feed(one INVITE)", framer),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--number", type=int, default=20000)
    args = ap.parse_args()
    assert parse_serialise() == INVITE
    print(f"message size: {len(INVITE)} bytes ({len(SDP)} bytes SDP); {args.number} loops, best of 5")
    for label, fn in CASES:
        best = min(timeit.repeat(fn, number=args.number, repeat=5)) / args.number
        print(f"{best * 1e6:8.2f} us  {label}")


if __name__ == "__main__":
    main()
