# -*- test-case-name: tests.test_sip_dialog -*-
"""Tests for sbc.sip.dialog: dialog creation on both sides, route sets, loose and strict
routing, CSeq rules, target refresh, state changes and the 481 lookup."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.dialog import (
    CONFIRMED,
    EARLY,
    TERMINATED,
    Dialog,
    DialogError,
    DialogId,
    DialogTable,
)
from sbc.sip.message import Request, Response, parse_message
from sbc.sip.uri import parse_uri

VIA = b"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnew1"


def msg(text: str) -> Request | Response:
    return parse_message(text.replace("\n", "\r\n").encode())


INVITE = """\
INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP p1.example.net;branch=z9hG4bKp1
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1
Max-Forwards: 69
Record-Route: <sip:p1.example.net;lr>
Record-Route: <sip:p2.example.net;lr>, <sip:p3.example.net;lr>
From: "Alice" <sip:alice@example.com>;tag=alice-tag
To: Bob <sip:bob@example.com>
Call-ID: dlg-1@192.0.2.10
CSeq: 10 INVITE
Contact: <sip:alice@192.0.2.10:5060;transport=udp>
Content-Length: 0

"""

OK_UAC = """\
SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa1
Record-Route: <sip:p3.example.net;lr>, <sip:p2.example.net;lr>
Record-Route: <sip:p1.example.net;lr>
From: "Alice" <sip:alice@example.com>;tag=alice-tag
To: Bob <sip:bob@example.com>;tag=bob-tag
Call-ID: dlg-1@192.0.2.10
CSeq: 10 INVITE
Contact: <sip:bob@198.51.100.20:5062>
Content-Length: 0

"""


def uas_dialog(invite: str = INVITE, **kw: object) -> Dialog:
    req = msg(invite)
    assert isinstance(req, Request)
    return Dialog.from_uas(req, "bob-tag", b"<sip:bob@198.51.100.20:5062>", **kw)  # type: ignore[arg-type]


def uac_dialog(invite: str = INVITE, response: str = OK_UAC) -> Dialog:
    req, resp = msg(invite), msg(response)
    assert isinstance(req, Request) and isinstance(resp, Response)
    return Dialog.from_uac(req, resp)


def in_dialog(method: str, cseq: int, *, contact: str | None = None, to_tag: str = "bob-tag",
              from_tag: str = "alice-tag", call_id: str = "dlg-1@192.0.2.10") -> Request:
    text = (
        f"{method} sip:bob@198.51.100.20:5062 SIP/2.0\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKx\n"
        f"From: <sip:alice@example.com>;tag={from_tag}\n"
        f"To: <sip:bob@example.com>;tag={to_tag}\n"
        f"Call-ID: {call_id}\n"
        f"CSeq: {cseq} {method}\n"
        + (f"Contact: {contact}\n" if contact else "")
        + "Content-Length: 0\n\n"
    )
    req = msg(text)
    assert isinstance(req, Request)
    return req


def reply(status: int, method: str, cseq: int, *, contact: str | None = None,
          record_route: str | None = None) -> Response:
    text = (
        f"SIP/2.0 {status} Whatever\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKx\n"
        + (f"Record-Route: {record_route}\n" if record_route else "")
        + "From: <sip:alice@example.com>;tag=alice-tag\n"
        "To: <sip:bob@example.com>;tag=bob-tag\n"
        "Call-ID: dlg-1@192.0.2.10\n"
        f"CSeq: {cseq} {method}\n"
        + (f"Contact: {contact}\n" if contact else "")
        + "Content-Length: 0\n\n"
    )
    resp = msg(text)
    assert isinstance(resp, Response)
    return resp


def route_hosts(routes: object) -> list[str]:
    return [r.uri.host for r in routes]  # type: ignore[attr-defined]


class CreationTests(SynchronousTestCase):
    def test_from_uas(self) -> None:
        d = uas_dialog()
        self.assertEqual(d.id, DialogId("dlg-1@192.0.2.10", "bob-tag", "alice-tag"))
        self.assertEqual((d.call_id, d.local_tag, d.remote_tag), ("dlg-1@192.0.2.10", "bob-tag", "alice-tag"))
        # §12.1.1: Record-Route in order, across header lines and comma lists
        self.assertEqual(route_hosts(d.route_set), ["p1.example.net", "p2.example.net", "p3.example.net"])
        self.assertEqual(d.remote_target, parse_uri("sip:alice@192.0.2.10:5060;transport=udp"))
        self.assertEqual(d.remote_seq, 10)
        self.assertIsNone(d.local_seq)
        self.assertEqual(d.remote_uri.uri, parse_uri("sip:alice@example.com"))
        self.assertEqual(d.remote_uri.display, "Alice")
        self.assertIsNone(d.remote_uri.tag)
        self.assertEqual(d.local_uri.uri, parse_uri("sip:bob@example.com"))
        self.assertIsNone(d.local_uri.tag)
        self.assertFalse(d.secure)
        self.assertFalse(d.is_uac)
        self.assertEqual(d.state, CONFIRMED)

    def test_from_uas_early_then_confirm(self) -> None:
        d = uas_dialog(early=True)
        self.assertEqual(d.state, EARLY)
        d.confirm()
        self.assertEqual(d.state, CONFIRMED)

    def test_from_uas_sips_is_secure(self) -> None:
        d = uas_dialog(INVITE.replace("INVITE sip:bob", "INVITE sips:bob"))
        self.assertTrue(d.secure)
        self.assertFalse(uas_dialog(secure=False).secure)

    def test_from_uac(self) -> None:
        d = uac_dialog()
        self.assertEqual(d.id, DialogId("dlg-1@192.0.2.10", "alice-tag", "bob-tag"))
        # §12.1.2: Record-Route of the response, reversed
        self.assertEqual(route_hosts(d.route_set), ["p1.example.net", "p2.example.net", "p3.example.net"])
        self.assertEqual(d.remote_target, parse_uri("sip:bob@198.51.100.20:5062"))
        self.assertEqual(d.local_seq, 10)
        self.assertIsNone(d.remote_seq)
        self.assertEqual(d.local_uri.display, "Alice")
        self.assertEqual(d.remote_uri.uri, parse_uri("sip:bob@example.com"))
        self.assertTrue(d.is_uac)
        self.assertEqual(d.state, CONFIRMED)
        self.assertEqual(d.local_contact, b"<sip:alice@192.0.2.10:5060;transport=udp>")

    def test_from_uac_reverses_order_as_received(self) -> None:
        resp = OK_UAC.replace(
            "Record-Route: <sip:p3.example.net;lr>, <sip:p2.example.net;lr>\nRecord-Route: <sip:p1.example.net;lr>\n",
            "Record-Route: <sip:a.example;lr>\nRecord-Route: <sip:b.example;lr>\n",
        )
        self.assertEqual(route_hosts(uac_dialog(response=resp).route_set), ["b.example", "a.example"])

    def test_from_uac_early(self) -> None:
        d = uac_dialog(response=OK_UAC.replace("200 OK", "180 Ringing"))
        self.assertEqual(d.state, EARLY)

    def test_missing_contact(self) -> None:
        e = self.assertRaises(DialogError, uas_dialog, INVITE.replace("Contact: <sip:alice@192.0.2.10:5060;transport=udp>\n", ""))
        self.assertEqual(e.status, 400)
        e = self.assertRaises(DialogError, uac_dialog, INVITE, OK_UAC.replace("Contact: <sip:bob@198.51.100.20:5062>\n", ""))
        self.assertEqual(e.status, 400)

    def test_bad_from_is_dialog_error(self) -> None:
        e = self.assertRaises(DialogError, uas_dialog, INVITE.replace('From: "Alice" <sip:alice@example.com>;tag=alice-tag', "From: <>"))
        self.assertEqual(e.status, 400)


class RequestConstructionTests(SynchronousTestCase):
    def test_loose_routing(self) -> None:
        d = uac_dialog()
        req = d.create_request("BYE", via=VIA)
        self.assertEqual(req.method, "BYE")
        self.assertEqual(req.uri, b"sip:bob@198.51.100.20:5062")  # the remote target
        self.assertEqual(req.get_all("Route"), [
            b"<sip:p1.example.net;lr>", b"<sip:p2.example.net;lr>", b"<sip:p3.example.net;lr>",
        ])
        self.assertEqual(req.get_all("Via"), [VIA])
        self.assertEqual(req.max_forwards, 70)
        self.assertEqual(req.from_.tag, "alice-tag")
        self.assertEqual(req.from_.display, "Alice")
        self.assertEqual(req.to.tag, "bob-tag")
        self.assertEqual(req.to.uri, parse_uri("sip:bob@example.com"))
        self.assertEqual(req.call_id, "dlg-1@192.0.2.10")
        self.assertEqual((req.cseq.seq, req.cseq.method), (11, "BYE"))
        self.assertEqual(d.local_seq, 11)
        self.assertFalse(req.has("Contact"))  # BYE is no target refresh
        self.assertEqual(req.content_length, 0)
        # round trip through the wire format
        again = parse_message(req.to_bytes())
        assert isinstance(again, Request)
        self.assertEqual(again.get_all("Route"), req.get_all("Route"))
        self.assertEqual(again.uri, req.uri)
        self.assertEqual(again.to.tag, "bob-tag")

    def test_uas_side_loose_routing_uses_record_route_order(self) -> None:
        d = uas_dialog()
        req = d.create_request("BYE", via=VIA)
        self.assertEqual(req.uri, b"sip:alice@192.0.2.10:5060;transport=udp")
        self.assertEqual(route_hosts(req.routes), ["p1.example.net", "p2.example.net", "p3.example.net"])
        self.assertEqual(req.from_.tag, "bob-tag")
        self.assertEqual(req.to.tag, "alice-tag")
        self.assertEqual(req.cseq.seq, 1)  # the local sequence space starts here
        self.assertEqual(d.create_request("INFO", via=VIA).cseq.seq, 2)

    def test_no_route_set(self) -> None:
        d = uac_dialog(response=OK_UAC.replace(
            "Record-Route: <sip:p3.example.net;lr>, <sip:p2.example.net;lr>\nRecord-Route: <sip:p1.example.net;lr>\n", ""))
        self.assertEqual(d.route_set, ())
        req = d.create_request("BYE", via=VIA)
        self.assertEqual(req.uri, b"sip:bob@198.51.100.20:5062")
        self.assertFalse(req.has("Route"))

    def test_strict_routing(self) -> None:
        """§12.2.1.1: first route without lr -> it becomes the Request-URI, the remote target
        goes last in Route."""
        resp = OK_UAC.replace(
            "Record-Route: <sip:p3.example.net;lr>, <sip:p2.example.net;lr>\nRecord-Route: <sip:p1.example.net;lr>\n",
            "Record-Route: <sip:p2.example.net;lr>\nRecord-Route: <sip:strict.example.net;maddr=203.0.113.5;method=INVITE?X-Foo=1>\n",
        )
        d = uac_dialog(response=resp)
        self.assertEqual(route_hosts(d.route_set), ["strict.example.net", "p2.example.net"])
        req = d.create_request("BYE", via=VIA)
        ruri = req.parsed_uri
        self.assertEqual(ruri.host, "strict.example.net")
        self.assertEqual(ruri.param("maddr"), "203.0.113.5")
        self.assertIsNone(ruri.param("method"))  # not allowed in a Request-URI
        self.assertEqual(ruri.headers, ())
        self.assertEqual(req.get_all("Route"), [b"<sip:p2.example.net;lr>", b"<sip:bob@198.51.100.20:5062>"])

    def test_strict_routing_single_route(self) -> None:
        resp = OK_UAC.replace(
            "Record-Route: <sip:p3.example.net;lr>, <sip:p2.example.net;lr>\nRecord-Route: <sip:p1.example.net;lr>\n",
            "Record-Route: <sip:strict.example.net>\n",
        )
        d = uac_dialog(response=resp)
        req = d.create_request("INFO", via=VIA)
        self.assertEqual(req.uri, b"sip:strict.example.net")
        self.assertEqual(req.get_all("Route"), [b"<sip:bob@198.51.100.20:5062>"])

    def test_lr_is_read_from_the_uri_not_the_header(self) -> None:
        resp = OK_UAC.replace(
            "Record-Route: <sip:p3.example.net;lr>, <sip:p2.example.net;lr>\nRecord-Route: <sip:p1.example.net;lr>\n",
            "Record-Route: <sip:strict.example.net>;lr\n",
        )
        req = uac_dialog(response=resp).create_request("BYE", via=VIA)
        self.assertEqual(req.parsed_uri.host, "strict.example.net")

    def test_target_refresh_request_carries_contact(self) -> None:
        d = uac_dialog()
        req = d.create_request("INVITE", via=VIA, headers=[("Content-Type", b"application/sdp")], body=b"v=0\r\n")
        self.assertEqual(req.get("Contact"), b"<sip:alice@192.0.2.10:5060;transport=udp>")
        self.assertEqual(req.get("Content-Type"), b"application/sdp")
        self.assertEqual(req.body, b"v=0\r\n")
        self.assertEqual(req.content_length, 5)
        other = d.create_request("UPDATE", via=VIA, contact=b"<sip:alice@192.0.2.99>")
        self.assertEqual(other.get("Contact"), b"<sip:alice@192.0.2.99>")

    def test_cseq_increments_ack_and_cancel_reuse(self) -> None:
        d = uac_dialog()
        reinvite = d.create_request("INVITE", via=VIA)
        self.assertEqual(reinvite.cseq.seq, 11)
        ack = d.create_ack(reinvite.cseq.seq, via=VIA)
        self.assertEqual((ack.cseq.seq, ack.cseq.method), (11, "ACK"))
        self.assertEqual(ack.uri, reinvite.uri)
        self.assertEqual(ack.get_all("Route"), reinvite.get_all("Route"))
        cancel = d.create_request("CANCEL", via=VIA, cseq=11)
        self.assertEqual((cancel.cseq.seq, cancel.cseq.method), (11, "CANCEL"))
        self.assertEqual(d.local_seq, 11)  # ACK/CANCEL do not advance it
        self.assertEqual(d.create_request("BYE", via=VIA).cseq.seq, 12)
        for method in ("ACK", "CANCEL"):
            e = self.assertRaises(DialogError, d.create_request, method, via=VIA)
            self.assertEqual(e.status, 500)

    def test_cseq_space_exhausted(self) -> None:
        d = uac_dialog()
        d.local_seq = 2**31 - 1
        self.assertRaises(DialogError, d.create_request, "BYE", via=VIA)

    def test_terminated_dialog_builds_nothing(self) -> None:
        d = uac_dialog()
        d.terminate()
        e = self.assertRaises(DialogError, d.create_request, "BYE", via=VIA)
        self.assertEqual(e.status, 481)


class ReceiveRequestTests(SynchronousTestCase):
    def test_cseq_rules(self) -> None:
        d = uas_dialog()
        self.assertEqual(d.remote_seq, 10)
        d.receive_request(in_dialog("INFO", 12))
        self.assertEqual(d.remote_seq, 12)
        e = self.assertRaises(DialogError, d.receive_request, in_dialog("INFO", 11))
        self.assertEqual(e.status, 500)
        self.assertEqual(d.remote_seq, 12)
        # ACK and CANCEL reuse an older number and are accepted
        d.receive_request(in_dialog("ACK", 10))
        d.receive_request(in_dialog("CANCEL", 10))
        self.assertEqual(d.remote_seq, 12)
        d.receive_request(in_dialog("BYE", 12))  # equal is not out of order
        self.assertEqual(d.remote_seq, 12)

    def test_first_request_on_uac_dialog_sets_remote_seq(self) -> None:
        d = uac_dialog()
        d.receive_request(in_dialog("BYE", 1))
        self.assertEqual(d.remote_seq, 1)
        self.assertRaises(DialogError, d.receive_request, in_dialog("INFO", 0))

    def test_target_refresh_by_reinvite_and_update(self) -> None:
        d = uas_dialog()
        d.receive_request(in_dialog("INVITE", 11, contact="<sip:alice@192.0.2.77:5070>"))
        self.assertEqual(d.remote_target, parse_uri("sip:alice@192.0.2.77:5070"))
        d.receive_request(in_dialog("UPDATE", 12, contact="<sip:alice@192.0.2.78>"))
        self.assertEqual(d.remote_target, parse_uri("sip:alice@192.0.2.78"))
        # a non target refresh request does not change it, nor a refresh without Contact
        d.receive_request(in_dialog("INFO", 13, contact="<sip:alice@192.0.2.79>"))
        d.receive_request(in_dialog("INVITE", 14))
        self.assertEqual(d.remote_target, parse_uri("sip:alice@192.0.2.78"))

    def test_rejected_out_of_order_request_does_not_refresh(self) -> None:
        d = uas_dialog()
        d.receive_request(in_dialog("INFO", 20))
        self.assertRaises(DialogError, d.receive_request, in_dialog("INVITE", 15, contact="<sip:evil@192.0.2.1>"))
        self.assertEqual(d.remote_target, parse_uri("sip:alice@192.0.2.10:5060;transport=udp"))


class ReceiveResponseTests(SynchronousTestCase):
    def test_2xx_to_reinvite_refreshes_target(self) -> None:
        d = uac_dialog()
        d.receive_response(reply(200, "INVITE", 11, contact="<sip:bob@198.51.100.30>"))
        self.assertEqual(d.remote_target, parse_uri("sip:bob@198.51.100.30"))
        d.receive_response(reply(200, "UPDATE", 12, contact="<sip:bob@198.51.100.31>"))
        self.assertEqual(d.remote_target, parse_uri("sip:bob@198.51.100.31"))

    def test_non_2xx_or_non_refresh_does_not(self) -> None:
        d = uac_dialog()
        before = d.remote_target
        d.receive_response(reply(488, "INVITE", 11, contact="<sip:bob@198.51.100.30>"))
        d.receive_response(reply(200, "INFO", 12, contact="<sip:bob@198.51.100.31>"))
        self.assertEqual(d.remote_target, before)
        self.assertEqual(d.state, CONFIRMED)  # a failed re-INVITE keeps the dialog

    def test_early_to_confirmed_recomputes_route_set(self) -> None:
        d = uac_dialog(response=OK_UAC.replace("200 OK", "183 Session Progress"))
        self.assertEqual(d.state, EARLY)
        d.receive_response(reply(180, "INVITE", 10, contact="<sip:bob@198.51.100.40>"))
        self.assertEqual(d.remote_target, parse_uri("sip:bob@198.51.100.40"))
        self.assertEqual(d.state, EARLY)
        d.receive_response(reply(200, "INVITE", 10, contact="<sip:bob@198.51.100.41>",
                                 record_route="<sip:q2.example;lr>, <sip:q1.example;lr>"))
        self.assertEqual(d.state, CONFIRMED)
        self.assertEqual(d.remote_target, parse_uri("sip:bob@198.51.100.41"))
        self.assertEqual(route_hosts(d.route_set), ["q1.example", "q2.example"])

    def test_early_terminated_by_non2xx(self) -> None:
        d = uac_dialog(response=OK_UAC.replace("200 OK", "180 Ringing"))
        d.receive_response(reply(486, "INVITE", 10))
        self.assertEqual(d.state, TERMINATED)

    def test_481_and_408_terminate(self) -> None:
        for status in (481, 408):
            d = uac_dialog()
            d.receive_response(reply(status, "INFO", 11))
            self.assertEqual(d.state, TERMINATED)


class DialogTableTests(SynchronousTestCase):
    def test_add_get_remove(self) -> None:
        table = DialogTable()
        d = uas_dialog()
        table.add(d)
        self.assertEqual(len(table), 1)
        self.assertIs(table.get(d.id), d)
        self.assertEqual(list(table), [d])
        self.assertIs(table.remove(d.id), d)
        self.assertIsNone(table.remove(d.id))
        self.assertEqual(len(table), 0)
        self.assertIsNone(table.get(d.id))

    def test_match_request_and_response(self) -> None:
        table = DialogTable()
        uas = uas_dialog()
        table.add(uas)
        self.assertIs(table.match_request(in_dialog("BYE", 11)), uas)
        self.assertIsNone(table.match_request(in_dialog("BYE", 11, from_tag="other")))
        self.assertIsNone(table.match_request(in_dialog("BYE", 11, call_id="other")))
        uac = uac_dialog()
        table.add(uac)
        # a response to our request: From tag local, To tag remote
        self.assertIs(table.match_response(reply(200, "BYE", 11)), uac)

    def test_route_in_dialog(self) -> None:
        table = DialogTable()
        d = uas_dialog()
        table.add(d)
        self.assertIs(table.route_in_dialog(in_dialog("BYE", 11)), d)
        self.assertEqual(d.remote_seq, 11)
        e = self.assertRaises(DialogError, table.route_in_dialog, in_dialog("INFO", 5))
        self.assertEqual(e.status, 500)

    def test_unknown_dialog_is_481(self) -> None:
        table = DialogTable()
        table.add(uas_dialog())
        e = self.assertRaises(DialogError, table.route_in_dialog, in_dialog("BYE", 11, to_tag="nope"))
        self.assertEqual(e.status, 481)
        self.assertEqual(e.reason, "Call/Transaction Does Not Exist")
        d = uas_dialog()
        d.terminate()
        table.add(d)
        e = self.assertRaises(DialogError, table.route_in_dialog, in_dialog("BYE", 11))
        self.assertEqual(e.status, 481)

    def test_out_of_dialog_request(self) -> None:
        table = DialogTable()
        req = msg(INVITE)
        assert isinstance(req, Request)
        self.assertIsNone(table.route_in_dialog(req))
        self.assertIsNone(table.match_request(req))

    def test_bad_headers_are_dialog_errors(self) -> None:
        table = DialogTable()
        bad = msg("BYE sip:x@y SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nTo: <>;tag=1\nContent-Length: 0\n\n")
        assert isinstance(bad, Request)
        e = self.assertRaises(DialogError, table.route_in_dialog, bad)
        self.assertEqual(e.status, 400)
