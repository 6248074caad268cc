"""The sans-IO server core: validation, stateless answers and dispatch."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.endpoint import Endpoint, Peer
from sbc.sip.message import Request, parse_message

PEER = Peer("udp", "192.0.2.7", 5062, 1)


def request(method: str = "OPTIONS", uri: str = "sip:ping@sbc.example.com", *,
            extra: str = "", to_tag: str = "", cseq_method: str | None = None,
            via: str = "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-abc;rport",
            body: str = "") -> bytes:
    tag = f";tag={to_tag}" if to_tag else ""
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        "From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n"
        f"To: <sip:ping@sbc.example.com>{tag}\r\n"
        "Call-ID: c1@example.com\r\n"
        f"CSeq: 7 {cseq_method or method}\r\n"
        f"{extra}"
        f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
    ).encode()


class EndpointTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.endpoint = Endpoint(fqdn="sbc.example.com", user_agent="sbc-test",
                                 contact_port=lambda peer: 5060)

    def exchange(self, data: bytes, peer: Peer = PEER) -> list[tuple[bytes, Peer]]:
        self.endpoint.receive(data, peer, 1000.0)
        return self.endpoint.messages_to_send()

    def answer(self, data: bytes, peer: Peer = PEER):
        out = self.exchange(data, peer)
        self.assertEqual(len(out), 1, out)
        self.assertEqual(out[0][1], peer)
        return parse_message(out[0][0])

    def test_options_answered_200_with_capabilities(self) -> None:
        r = self.answer(request())
        self.assertEqual(r.status, 200)
        self.assertIn(b"OPTIONS", r.get("Allow"))
        self.assertEqual(r.get("Accept"), b"application/sdp")
        self.assertTrue(r.has("Supported"))
        contact = r.contacts[0]
        self.assertEqual(contact.uri.host, "sbc.example.com")
        self.assertEqual(contact.uri.port, 5060)
        self.assertEqual(r.get("Server"), b"sbc-test")
        self.assertIsNotNone(r.to.tag)
        self.assertEqual(r.call_id, "c1@example.com")
        self.assertEqual(r.cseq.seq, 7)

    def test_contact_names_stream_transport(self) -> None:
        peer = Peer("tcp", "192.0.2.7", 40000, 3)
        r = self.answer(request(via="SIP/2.0/TCP 10.0.0.5;branch=z9hG4bK-t"), peer)
        self.assertEqual(r.contacts[0].uri.transport, "tcp")

    def test_via_gets_received_and_rport(self) -> None:
        r = self.answer(request())
        via = r.top_via
        self.assertEqual(via.received, "192.0.2.7")
        self.assertEqual(via.rport, "5062")
        self.assertEqual(via.branch, "z9hG4bK-abc")

    def test_only_top_via_stamped(self) -> None:
        data = request(via="SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK-1, SIP/2.0/UDP 10.9.9.9;branch=z9hG4bK-2")
        r = self.answer(data)
        vias = r.vias
        self.assertEqual(len(vias), 2)
        self.assertEqual(vias[0].received, "192.0.2.7")
        self.assertIsNone(vias[1].received)
        self.assertEqual(vias[1].branch, "z9hG4bK-2")

    def test_retransmission_gets_identical_answer(self) -> None:
        first = self.exchange(request())[0][0]
        second = self.exchange(request())[0][0]
        self.assertEqual(first, second)

    def test_unknown_method_501(self) -> None:
        r = self.answer(request("FOOBAR"))
        self.assertEqual(r.status, 501)
        self.assertTrue(r.has("Allow"))

    def test_known_unserved_method_405_with_allow(self) -> None:
        r = self.answer(request("REGISTER", "sip:sbc.example.com"))
        self.assertEqual(r.status, 405)
        self.assertIn(b"OPTIONS", r.get("Allow"))

    def test_unknown_uri_scheme_416(self) -> None:
        r = self.answer(request(uri="mailto:bob@example.com"))
        self.assertEqual(r.status, 416)

    def test_in_dialog_request_without_dialog_481(self) -> None:
        r = self.answer(request(to_tag="zz9"))
        self.assertEqual(r.status, 481)
        self.assertEqual(r.to.tag, "zz9")

    def test_cancel_without_transaction_481(self) -> None:
        r = self.answer(request("CANCEL"))
        self.assertEqual(r.status, 481)

    def test_require_unknown_extension_420(self) -> None:
        r = self.answer(request(extra="Require: nothing-known, 100rel\r\n"))
        self.assertEqual(r.status, 420)
        self.assertEqual(r.get("Unsupported"), b"nothing-known, 100rel")

    def test_set_supported_lets_require_through_and_advertises(self) -> None:
        self.endpoint.set_supported(["timer"])
        r = self.answer(request(extra="Require: timer\r\n"))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.get("Supported"), b"timer")

    def test_cseq_mismatch_400(self) -> None:
        r = self.answer(request(cseq_method="INVITE"))
        self.assertEqual(r.status, 400)

    def test_garbage_request_answered_400_from_raw_lines(self) -> None:
        data = (b"INVITE  sip:user@example.com  SIP/2.0\r\n"
                b"Via: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK-x\r\n"
                b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n"
                b"Call-ID: g1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
        out = self.exchange(data)
        self.assertEqual(len(out), 1)
        self.assertTrue(out[0][0].startswith(b"SIP/2.0 400 "))
        self.assertIn(b"Call-ID: g1", out[0][0])
        self.assertEqual([n.reason for n in self.endpoint.notices()], ["parse-error"])

    def test_garbage_without_via_dropped_with_notice(self) -> None:
        self.assertEqual(self.exchange(b"\x00\x01garbage\r\n\r\n"), [])
        notices = self.endpoint.notices()
        self.assertEqual(len(notices), 1)
        self.assertEqual(notices[0].peer, PEER)

    def test_ack_never_answered(self) -> None:
        self.assertEqual(self.exchange(request("ACK", to_tag="t1")), [])
        self.assertEqual(self.exchange(request("ACK", cseq_method="INVITE")), [])

    def test_stray_response_dropped(self) -> None:
        data = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK-s\r\n"
                b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
                b"Call-ID: s1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(self.exchange(data), [])
        self.assertEqual([n.reason for n in self.endpoint.notices()], ["stray-response"])

    def test_response_handler_receives_responses(self) -> None:
        seen = []
        self.endpoint.set_response_handler(lambda r, p, now: seen.append((r.status, p, now)))
        data = (b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK-s\r\n"
                b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
                b"Call-ID: s1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(self.exchange(data), [])
        self.assertEqual(seen, [(180, PEER, 1000.0)])

    def test_handler_serves_its_methods(self) -> None:
        seen: list[Request] = []

        class Handler:
            methods = frozenset({"INVITE", "BYE"})

            def handle_request(self, req: Request, peer: Peer, now: float) -> None:
                seen.append(req)

        self.endpoint.add_handler(Handler())
        self.assertEqual(self.exchange(request("INVITE")), [])
        self.assertEqual(len(seen), 1)
        self.assertEqual(seen[0].top_via.received, "192.0.2.7")
        self.assertIn("INVITE", self.endpoint.allowed_methods)
        r = self.answer(request())
        self.assertIn(b"INVITE", r.get("Allow"))

    def test_in_dialog_options_goes_to_the_dialog_owner(self) -> None:
        seen: list[Request] = []

        class Handler:
            methods = frozenset({"INVITE"})

            def handle_request(self, req: Request, peer: Peer, now: float) -> None:
                seen.append(req)

        self.endpoint.add_handler(Handler())
        self.assertEqual(self.exchange(request(to_tag="d1")), [])
        self.assertEqual([r.method for r in seen], ["OPTIONS"])
        # out of dialog, OPTIONS is still ours
        self.assertEqual(self.answer(request()).status, 200)
        self.assertEqual(len(seen), 1)

    def test_reason_phrase_never_echoes_control_characters(self) -> None:
        r = self.answer(request(cseq_method="INVITE\x07"))
        self.assertEqual(r.status, 400)
        self.assertNotIn("\x07", r.reason)
