# -*- test-case-name: tests.test_sip_slim -*-
"""Slim copies of long-kept requests (sbc.sip.slim)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.message import Request, parse_message
from sbc.sip.slim import IDENTITY, slim_request

INVITE = (
    b"INVITE sip:agent@10.0.0.1:5060;transport=udp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.5:5061;branch=z9hG4bK-1\r\n"
    b"v: SIP/2.0/UDP 10.0.0.6;branch=z9hG4bK-2\r\n"
    b"f: sipp <sip:sipp@10.0.0.5:5061>;tag=77\r\n"
    b"To: agent <sip:agent@10.0.0.1:5060>\r\n"
    b"Call-ID: 1-1234@10.0.0.5\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: sip:sipp@10.0.0.5:5061\r\n"
    b"Max-Forwards: 70\r\n"
    b"Subject: Performance Test\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n\r\nv=0\n"
)


def invite() -> Request:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    return msg


class SlimRequestTests(SynchronousTestCase):
    def test_identity_headers_only(self) -> None:
        original = invite()
        _ = (original.vias, original.from_, original.contacts)
        slim = slim_request(original)
        # the views of kept headers are shared (immutable values), those of dropped ones gone
        self.assertEqual(set(slim._cache), {"from_", "contacts", "contact_star"})
        self.assertIs(slim._cache["from_"], original.from_)
        self.assertIsNone(slim._raw)
        self.assertEqual((slim.method, slim.uri, slim.version, slim.body), ("INVITE", original.uri, "SIP/2.0", b""))
        self.assertEqual([h.name for h in slim.headers], ["From", "To", "Call-ID", "CSeq", "Contact"])
        self.assertEqual((slim.from_, slim.to, slim.call_id, slim.cseq, slim.contacts),
                         (original.from_, original.to, original.call_id, original.cseq, original.contacts))
        # the values are the original's bytes objects, not copies
        self.assertIs(slim.headers[0].value, original.headers[2].value)
        self.assertEqual(IDENTITY, {"from", "to", "call-id", "cseq", "contact"})

    def test_other_keys_and_a_valid_message(self) -> None:
        slim = slim_request(invite(), IDENTITY | {"via"})
        self.assertEqual([h.name for h in slim.headers], ["Via", "Via", "From", "To", "Call-ID", "CSeq", "Contact"])
        again = parse_message(slim.to_bytes())
        self.assertEqual([h.value for h in again.headers], [h.value for h in slim.headers])
        self.assertEqual(again.body, b"")
        self.assertEqual(slim_request(invite(), frozenset()).headers, ())
