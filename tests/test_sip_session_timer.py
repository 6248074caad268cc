# -*- test-case-name: tests.test_sip_session_timer -*-
"""Tests for sbc.sip.session_timer (RFC 4028): header parsing, UAS negotiation (§9), UAC
negotiation and 422 handling (§7), the per-leg timer and its deadlines (§10), refresh
content, and long calls on a B2BUA with one independent timer per leg.  Time is fake:
every ``now`` is a number chosen by the test."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.dialog import Dialog
from sbc.sip.errors import SipParseError
from sbc.sip.message import Request, Response, make_response, parse_message
from sbc.sip.session_timer import (
    MinSE,
    Negotiated,
    Refresher,
    Reject422,
    SessionExpires,
    SessionTimer,
    SessionTimerConfig,
    TimerAction,
    UacNegotiation,
    UasAccept,
    allows_method,
    build_refresh,
    expiry_margin,
    is_refresh_only,
    min_se_of,
    negotiate_uas,
    parse_min_se,
    parse_session_expires,
    requires_timer,
    session_expires_of,
    supports_timer,
)

# --------------------------------------------------------------------------- helpers

_BASE = (
    "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{branch}\r\n"
    "From: <sip:alice@example.com>;tag=alice-tag\r\n"
    "To: <sip:bob@example.com>{to_tag}\r\n"
    "Call-ID: st-1@192.0.2.10\r\n"
    "CSeq: {cseq} {method}\r\n"
    "Contact: <sip:alice@192.0.2.10:5060>\r\n"
)


def request(method: str = "INVITE", *headers: str, body: bytes = b"", cseq: int = 1, to_tag: str = "") -> Request:
    text = f"{method} sip:bob@example.com SIP/2.0\r\n" + _BASE.format(
        branch=f"{method}{cseq}", to_tag=f";tag={to_tag}" if to_tag else "", cseq=cseq, method=method
    )
    text += "".join(h + "\r\n" for h in headers)
    data = text.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def response(status: int, *headers: str, method: str = "INVITE") -> Response:
    text = f"SIP/2.0 {status} Whatever\r\n" + _BASE.format(branch="r", to_tag=";tag=bob-tag", cseq=1, method=method)
    text += "".join(h + "\r\n" for h in headers) + "Content-Length: 0\r\n\r\n"
    msg = parse_message(text.encode())
    assert isinstance(msg, Response)
    return msg


def header(headers: tuple[tuple[str, bytes], ...], name: str) -> list[bytes]:
    return [v for n, v in headers if n.lower() == name.lower()]


SDP_V1 = (
    b"v=0\r\no=sbc 4711 1 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
SDP_V2 = SDP_V1.replace(b"4711 1 IN", b"4711 2 IN")
SDP_V1_HOLD = SDP_V1 + b"a=sendonly\r\n"


# --------------------------------------------------------------------------- headers


class SessionExpiresParsingTests(SynchronousTestCase):
    def test_plain_interval(self) -> None:
        self.assertEqual(parse_session_expires(b"1800"), SessionExpires(1800))

    def test_refresher_case_insensitive(self) -> None:
        self.assertEqual(parse_session_expires(b"4000 ; Refresher = UAC").refresher, "uac")
        self.assertEqual(parse_session_expires(b"4000;refresher=uas").refresher, "uas")

    def test_generic_params_kept_and_serialised(self) -> None:
        se = parse_session_expires(b'1800;x-foo=bar;refresher=uas;flag;q="a;b"')
        self.assertEqual(se.refresher, "uas")
        self.assertEqual(se.params, (("x-foo", "bar"), ("flag", None), ("q", '"a;b"')))
        self.assertEqual(se.to_bytes(), b'1800;refresher=uas;x-foo=bar;flag;q="a;b"')
        self.assertEqual(parse_session_expires(se.to_bytes()), se)

    def test_str_accepted(self) -> None:
        self.assertEqual(parse_session_expires("90;refresher=uac"), SessionExpires(90, "uac"))

    def test_errors(self) -> None:
        for bad in (b"", b"   ", b"abc", b"-5", b"1800;refresher=proxy", b"1800;refresher",
                    b"1800;refresher=uac;refresher=uas", b"1800 junk", b"1800;", b"1800,900",
                    b"99999999999", b"3000000000", b"1800;a=\"open", b"1800;=x"):
            with self.assertRaises(SipParseError, msg=bad) as ctx:
                parse_session_expires(bad)
            self.assertEqual(ctx.exception.status, 400)

    def test_largest_value(self) -> None:
        self.assertEqual(parse_session_expires(b"2147483647").interval, 2**31 - 1)

    def test_min_se(self) -> None:
        self.assertEqual(parse_min_se(b" 120 "), MinSE(120))
        self.assertEqual(parse_min_se(b"120;foo").to_bytes(), b"120;foo")
        for bad in (b"", b"x", b"120 120", b"120;refresher=uac=1"):
            self.assertRaises(SipParseError, parse_min_se, bad)

    def test_value_objects_validate(self) -> None:
        self.assertRaises(ValueError, SessionExpires, 1800, "proxy")
        self.assertRaises(ValueError, SessionExpires, -1)
        self.assertRaises(ValueError, MinSE, 90, (("bad name", None),))
        self.assertRaises(ValueError, SessionExpires, 1800, None, (("Refresher", "uac"),))
        self.assertEqual(SessionExpires(1800, "uac").to_bytes(), b"1800;refresher=uac")

    def test_from_message_long_and_compact(self) -> None:
        self.assertEqual(session_expires_of(request("INVITE", "x: 600;refresher=uac")), SessionExpires(600, "uac"))
        self.assertEqual(session_expires_of(request("INVITE", "Session-Expires: 700")), SessionExpires(700))
        self.assertIsNone(session_expires_of(request("INVITE")))
        self.assertEqual(min_se_of(request("INVITE", "Min-SE: 300")), 300)
        self.assertIsNone(min_se_of(request("INVITE")))

    def test_duplicate_headers_rejected(self) -> None:
        self.assertRaises(SipParseError, session_expires_of, request("INVITE", "Session-Expires: 600", "x: 900"))
        self.assertRaises(SipParseError, min_se_of, request("INVITE", "Min-SE: 90", "Min-SE: 120"))

    def test_option_tags(self) -> None:
        self.assertTrue(supports_timer(request("INVITE", "Supported: 100rel, timer")))
        self.assertTrue(supports_timer(request("INVITE", "k: replaces", "k: Timer")))
        self.assertTrue(supports_timer(request("INVITE", "Require: timer")))
        self.assertFalse(supports_timer(request("INVITE", "Supported: 100rel, timers")))
        self.assertFalse(supports_timer(request("INVITE")))
        self.assertTrue(requires_timer(request("INVITE", "Require: timer")))
        self.assertFalse(requires_timer(request("INVITE", "Supported: timer")))
        self.assertRaises(SipParseError, supports_timer, request("INVITE", "Supported: a,,timer"))

    def test_allows_method(self) -> None:
        msg = request("INVITE", "Allow: INVITE, ACK, CANCEL, BYE", "Allow: update")
        self.assertTrue(allows_method(msg, "UPDATE"))
        self.assertTrue(allows_method(msg, "bye"))
        self.assertFalse(allows_method(msg, "REFER"))
        self.assertFalse(allows_method(request("INVITE"), "UPDATE"))


class ConfigTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        cfg = SessionTimerConfig()
        self.assertEqual((cfg.session_expires, cfg.min_se, cfg.prefer_refresher, cfg.uac_insist),
                         (1800, 90, Refresher.US, True))

    def test_bad_values(self) -> None:
        self.assertRaises(ValueError, SessionTimerConfig, min_se=89)
        self.assertRaises(ValueError, SessionTimerConfig, session_expires=120, min_se=300)
        self.assertRaises(TypeError, SessionTimerConfig, session_expires="1800")
        self.assertRaises(ValueError, SessionTimerConfig, session_expires=2**40, min_se=90)


# --------------------------------------------------------------------------- UAS (§9)


class UasNegotiationTests(SynchronousTestCase):
    def accept(self, req: Request, cfg: SessionTimerConfig = SessionTimerConfig()) -> UasAccept:
        result = negotiate_uas(req, cfg)
        assert isinstance(result, UasAccept), result
        return result

    def test_open_refresher_sbc_refreshes(self) -> None:
        """Our rule: the UAC leaves the refresher open -> the SBC (uas) refreshes."""
        result = self.accept(request("INVITE", "Supported: timer", "Session-Expires: 1800"))
        self.assertEqual(result.timer, Negotiated(1800, Refresher.US, 90))
        self.assertEqual(header(result.headers, "Session-Expires"), [b"1800;refresher=uas"])
        self.assertEqual(header(result.headers, "Require"), [b"timer"])
        self.assertEqual(header(result.headers, "Supported"), [b"timer"])
        self.assertTrue(result.uac_supports)

    def test_open_refresher_peer_preference(self) -> None:
        cfg = SessionTimerConfig(prefer_refresher=Refresher.PEER)
        result = self.accept(request("INVITE", "Supported: timer", "Session-Expires: 1800"), cfg)
        self.assertEqual(result.timer.refresher, Refresher.PEER)
        self.assertEqual(header(result.headers, "Session-Expires"), [b"1800;refresher=uac"])
        self.assertEqual(header(result.headers, "Require"), [b"timer"])

    def test_uac_refresher_kept(self) -> None:
        result = self.accept(request("INVITE", "Supported: timer", "Session-Expires: 1200;refresher=uac"))
        self.assertEqual(result.timer, Negotiated(1200, Refresher.PEER, 90))
        self.assertEqual(header(result.headers, "Session-Expires"), [b"1200;refresher=uac"])
        self.assertEqual(header(result.headers, "Require"), [b"timer"])

    def test_uas_refresher_kept(self) -> None:
        cfg = SessionTimerConfig(prefer_refresher=Refresher.PEER)
        result = self.accept(request("INVITE", "Supported: timer", "x: 1200;refresher=uas"), cfg)
        self.assertEqual(result.timer.refresher, Refresher.US)
        self.assertEqual(header(result.headers, "Session-Expires"), [b"1200;refresher=uas"])

    def test_too_small_rejected_with_422(self) -> None:
        result = negotiate_uas(request("INVITE", "Supported: timer", "Session-Expires: 60"))
        self.assertEqual(result, Reject422(90))
        assert isinstance(result, Reject422)
        self.assertEqual(result.status, 422)
        self.assertEqual(result.headers, (("Min-SE", b"90"),))
        resp = make_response(request("INVITE", "Supported: timer", "Session-Expires: 60"), 422, headers=result.headers)
        self.assertEqual(resp.reason, "Session Interval Too Small")
        self.assertEqual(min_se_of(resp), 90)

    def test_configured_min_se_enforced(self) -> None:
        cfg = SessionTimerConfig(session_expires=1800, min_se=600)
        self.assertEqual(negotiate_uas(request("INVITE", "Supported: timer", "Session-Expires: 599"), cfg), Reject422(600))
        self.assertEqual(self.accept(request("INVITE", "Supported: timer", "Session-Expires: 600"), cfg).timer.interval, 600)

    def test_interval_at_our_minimum_accepted(self) -> None:
        self.assertEqual(self.accept(request("INVITE", "Supported: timer", "Session-Expires: 90")).timer.interval, 90)

    def test_larger_interval_reduced_to_ours(self) -> None:
        result = self.accept(request("INVITE", "Supported: timer", "Session-Expires: 7200"))
        self.assertEqual(result.timer.interval, 1800)

    def test_smaller_interval_kept(self) -> None:
        """§9: the UAS must not increase the interval."""
        self.assertEqual(self.accept(request("INVITE", "Supported: timer", "Session-Expires: 300")).timer.interval, 300)

    def test_reduction_stops_at_request_min_se(self) -> None:
        result = self.accept(request("INVITE", "Supported: timer", "Session-Expires: 7200", "Min-SE: 3600"))
        self.assertEqual(result.timer, Negotiated(3600, Refresher.US, 3600))
        self.assertEqual(header(result.headers, "Session-Expires"), [b"3600;refresher=uas"])

    def test_supported_without_session_expires(self) -> None:
        """The UAC supports timers but asks for none: we ask for ours in the 2xx."""
        result = self.accept(request("INVITE", "Supported: timer"))
        self.assertEqual(result.timer, Negotiated(1800, Refresher.US, 90))
        self.assertEqual(header(result.headers, "Session-Expires"), [b"1800;refresher=uas"])
        self.assertEqual(header(result.headers, "Require"), [b"timer"])

    def test_supported_without_session_expires_respects_min_se(self) -> None:
        result = self.accept(request("INVITE", "Supported: timer", "Min-SE: 2400"))
        self.assertEqual(result.timer.interval, 2400)

    def test_uac_without_timer_support(self) -> None:
        """§9: we may still run the timer, as refresher=uas, and must not Require it."""
        result = self.accept(request("INVITE"))
        self.assertEqual(result.timer, Negotiated(1800, Refresher.US, 90))
        self.assertEqual(header(result.headers, "Session-Expires"), [b"1800;refresher=uas"])
        self.assertEqual(header(result.headers, "Require"), [])
        self.assertFalse(result.uac_supports)

    def test_proxy_inserted_interval_without_support(self) -> None:
        result = self.accept(request("INVITE", "Session-Expires: 600;refresher=uac"))
        self.assertEqual(result.timer, Negotiated(600, Refresher.US, 90))
        self.assertEqual(header(result.headers, "Session-Expires"), [b"600;refresher=uas"])
        self.assertEqual(header(result.headers, "Require"), [])

    def test_too_small_without_support_raised_not_rejected(self) -> None:
        """A 422 would only fail the call of a UAC that cannot read it (erratum 1687)."""
        result = self.accept(request("INVITE", "Session-Expires: 30"), SessionTimerConfig(min_se=120))
        self.assertEqual(result.timer, Negotiated(120, Refresher.US, 120))

    def test_update_negotiates_the_same_way(self) -> None:
        upd = request("UPDATE", "Supported: timer", "Session-Expires: 900;refresher=uac", to_tag="bob-tag", cseq=2)
        self.assertEqual(self.accept(upd).timer, Negotiated(900, Refresher.PEER, 90))
        self.assertEqual(negotiate_uas(request("UPDATE", "k: timer", "x: 10", to_tag="t", cseq=3)), Reject422(90))

    def test_malformed_headers_raise_parse_error(self) -> None:
        for extra in (("Session-Expires: soon",), ("Session-Expires: 900", "x: 900"), ("Min-SE: lots",),
                      ("Supported: timer,,", "Session-Expires: 900")):
            with self.assertRaises(SipParseError) as ctx:
                negotiate_uas(request("INVITE", *extra))
            self.assertEqual(ctx.exception.status, 400)


# --------------------------------------------------------------------------- UAC (§7)


class UacNegotiationTests(SynchronousTestCase):
    def test_initial_request_headers(self) -> None:
        hdrs = UacNegotiation().request_headers()
        self.assertEqual(hdrs, (("Session-Expires", b"1800"), ("Min-SE", b"90"), ("Supported", b"timer")))
        self.assertEqual(header(hdrs, "Require"), [])

    def test_headers_fit_into_a_request(self) -> None:
        req = request("INVITE", *(f"{n}: {v.decode()}" for n, v in UacNegotiation().request_headers()))
        self.assertTrue(supports_timer(req))
        self.assertEqual(session_expires_of(req), SessionExpires(1800))
        self.assertEqual(min_se_of(req), 90)

    def test_configured_values(self) -> None:
        neg = UacNegotiation(SessionTimerConfig(session_expires=3600, min_se=300))
        self.assertEqual(neg.request_headers()[:2], (("Session-Expires", b"3600"), ("Min-SE", b"300")))

    def test_2xx_uac_refresher_means_us(self) -> None:
        n = UacNegotiation().process_2xx(response(200, "Require: timer", "Session-Expires: 900;refresher=uac"))
        self.assertEqual(n, Negotiated(900, Refresher.US, 90))

    def test_2xx_uas_refresher_means_peer(self) -> None:
        n = UacNegotiation().process_2xx(response(200, "x: 1800;refresher=uas"))
        self.assertEqual(n, Negotiated(1800, Refresher.PEER, 90))

    def test_2xx_without_refresher_we_refresh(self) -> None:
        self.assertEqual(UacNegotiation().process_2xx(response(200, "Session-Expires: 1800")),
                         Negotiated(1800, Refresher.US, 90))

    def test_2xx_without_session_expires_no_timer(self) -> None:
        """§7.2: no Session-Expires in the 2xx, no session expiration..."""
        neg = UacNegotiation(SessionTimerConfig(uac_insist=False))
        self.assertIsNone(neg.process_2xx(response(200)))

    def test_2xx_without_session_expires_we_insist(self) -> None:
        """...unless the UAC runs the timer alone as refresher (§7.2), our default."""
        self.assertEqual(UacNegotiation().process_2xx(response(200)), Negotiated(1800, Refresher.US, 90))

    def test_2xx_below_our_min_se_clamped(self) -> None:
        neg = UacNegotiation(SessionTimerConfig(min_se=300))
        self.assertEqual(neg.process_2xx(response(200, "Session-Expires: 100;refresher=uas")),
                         Negotiated(300, Refresher.PEER, 300))

    def test_2xx_malformed_session_expires_we_refresh(self) -> None:
        neg = UacNegotiation(SessionTimerConfig(uac_insist=False))
        self.assertEqual(neg.process_2xx(response(200, "Session-Expires: whenever")), Negotiated(1800, Refresher.US, 90))

    def test_422_retry_once_with_larger_min_se(self) -> None:
        neg = UacNegotiation()
        self.assertTrue(neg.process_422(response(422, "Min-SE: 3600")))
        self.assertEqual(neg.request_headers()[:2], (("Session-Expires", b"3600"), ("Min-SE", b"3600")))
        self.assertFalse(neg.process_422(response(422, "Min-SE: 7200")))
        self.assertEqual(neg.request_headers()[:2], (("Session-Expires", b"3600"), ("Min-SE", b"3600")))

    def test_422_min_se_below_our_interval(self) -> None:
        neg = UacNegotiation()
        self.assertTrue(neg.process_422(response(422, "Min-SE: 1200")))
        self.assertEqual(neg.request_headers()[:2], (("Session-Expires", b"1800"), ("Min-SE", b"1200")))

    def test_422_unusable(self) -> None:
        for hdrs in ((), ("Min-SE: 90",), ("Min-SE: 30",), ("Min-SE: many",), ("Min-SE: 90", "Min-SE: 900")):
            neg = UacNegotiation()
            self.assertFalse(neg.process_422(response(422, *hdrs)), hdrs)
            self.assertFalse(neg.retried)
        self.assertFalse(UacNegotiation().process_422(response(200, "Min-SE: 900")))

    def test_422_then_uas_accepts(self) -> None:
        """End to end: our UAS rejects a too-short interval, our UAC retries, the UAS accepts."""
        uas_cfg = SessionTimerConfig(session_expires=1800, min_se=600)
        neg = UacNegotiation(SessionTimerConfig(session_expires=300, min_se=90))
        first = request("INVITE", *(f"{n}: {v.decode()}" for n, v in neg.request_headers()))
        reject = negotiate_uas(first, uas_cfg)
        assert isinstance(reject, Reject422)
        self.assertTrue(neg.process_422(make_response(first, 422, headers=reject.headers)))
        second = request("INVITE", *(f"{n}: {v.decode()}" for n, v in neg.request_headers()), cseq=2)
        accept = negotiate_uas(second, uas_cfg)
        assert isinstance(accept, UasAccept)
        self.assertEqual(accept.timer, Negotiated(600, Refresher.US, 600))
        ok = make_response(second, 200, to_tag="bob-tag", headers=accept.headers)
        self.assertEqual(neg.process_2xx(ok), Negotiated(600, Refresher.PEER, 600))

    def test_refresher_from_timer(self) -> None:
        us = SessionTimer(Negotiated(1800, Refresher.US, 90), 0.0)
        peer = SessionTimer(Negotiated(1200, Refresher.PEER, 300), 0.0)
        self.assertEqual(header(us.request_headers(), "Session-Expires"), [b"1800;refresher=uac"])
        self.assertEqual(header(peer.request_headers(), "Session-Expires"), [b"1200;refresher=uas"])
        self.assertEqual(header(peer.request_headers(), "Min-SE"), [b"300"])


# --------------------------------------------------------------------------- the timer (§10)


class TimerDeadlineTests(SynchronousTestCase):
    def test_expiry_margin(self) -> None:
        self.assertEqual(expiry_margin(1800), 32.0)
        self.assertEqual(expiry_margin(96), 32.0)
        self.assertEqual(expiry_margin(90), 30.0)

    def test_we_refresh_at_half_interval(self) -> None:
        t = SessionTimer(Negotiated(1800, Refresher.US), 100.0)
        self.assertEqual(t.next_deadline(), 1000.0)
        self.assertIsNone(t.handle_timer(999.9))
        self.assertEqual(t.handle_timer(1000.0), TimerAction.REFRESH)
        self.assertTrue(t.refresh_pending)
        # While the refresh is in flight only the hard expiry remains.
        self.assertEqual(t.next_deadline(), 1900.0)
        self.assertIsNone(t.handle_timer(1000.5))
        t.refreshed(1001.0)
        self.assertFalse(t.refresh_pending)
        self.assertEqual(t.next_deadline(), 1901.0)

    def test_our_unanswered_refresh_expires_at_interval(self) -> None:
        t = SessionTimer(Negotiated(1800, Refresher.US), 0.0)
        self.assertEqual(t.handle_timer(900.0), TimerAction.REFRESH)
        self.assertIsNone(t.handle_timer(1799.9))
        self.assertEqual(t.handle_timer(1800.0), TimerAction.EXPIRED)
        self.assertIsNone(t.next_deadline())
        self.assertIsNone(t.handle_timer(5000.0))

    def test_peer_refresher_expires_before_interval(self) -> None:
        t = SessionTimer(Negotiated(1800, Refresher.PEER), 0.0)
        self.assertEqual(t.next_deadline(), 1768.0)
        for now in (900.0, 1767.9):
            self.assertIsNone(t.handle_timer(now))
        self.assertEqual(t.handle_timer(1768.0), TimerAction.EXPIRED)
        self.assertEqual(t.state, "expired")
        self.assertIsNone(t.handle_timer(1769.0))

    def test_peer_refresher_short_interval_third(self) -> None:
        t = SessionTimer(Negotiated(90, Refresher.PEER), 10.0)
        self.assertEqual(t.next_deadline(), 70.0)

    def test_peer_refresh_moves_expiry(self) -> None:
        t = SessionTimer(Negotiated(1800, Refresher.PEER), 0.0)
        t.refreshed(900.0)
        self.assertEqual(t.next_deadline(), 2668.0)
        self.assertIsNone(t.handle_timer(1768.0))
        self.assertEqual(t.refresh_count, 1)

    def test_late_wakeup_past_expiry_expires(self) -> None:
        t = SessionTimer(Negotiated(1800, Refresher.US), 0.0)
        self.assertEqual(t.handle_timer(2000.0), TimerAction.EXPIRED)

    def test_refresh_failures_that_end_the_session(self) -> None:
        for status in (408, 481, None):
            t = SessionTimer(Negotiated(1800, Refresher.US), 0.0)
            self.assertEqual(t.handle_timer(900.0), TimerAction.REFRESH)
            self.assertEqual(t.refresh_failed(930.0, status), TimerAction.EXPIRED)
            self.assertIsNone(t.next_deadline())

    def test_glare_retries(self) -> None:
        t = SessionTimer(Negotiated(1800, Refresher.US), 0.0)
        self.assertEqual(t.handle_timer(900.0), TimerAction.REFRESH)
        self.assertIsNone(t.refresh_failed(900.2, 491))
        self.assertEqual(t.next_deadline(), 904.2)
        self.assertIsNone(t.handle_timer(904.0))
        self.assertEqual(t.handle_timer(904.2), TimerAction.REFRESH)
        self.assertIsNone(t.refresh_failed(904.5, 500, retry_after=60))
        self.assertEqual(t.next_deadline(), 964.5)
        self.assertEqual(t.handle_timer(964.5), TimerAction.REFRESH)
        t.refreshed(965.0)
        self.assertEqual(t.next_deadline(), 1865.0)

    def test_retry_never_past_expiry(self) -> None:
        t = SessionTimer(Negotiated(1800, Refresher.US), 0.0)
        t.handle_timer(900.0)
        t.refresh_failed(1790.0, 503, retry_after=120)
        self.assertEqual(t.next_deadline(), 1800.0)
        self.assertEqual(t.handle_timer(1800.0), TimerAction.EXPIRED)

    def test_renegotiation_changes_roles(self) -> None:
        t = SessionTimer(Negotiated(1800, Refresher.PEER), 0.0)
        t.refreshed(500.0, Negotiated(600, Refresher.US, 90))
        self.assertEqual((t.interval, t.refresher), (600, Refresher.US))
        self.assertEqual(t.next_deadline(), 800.0)
        t.refreshed(800.0, Negotiated(1200, Refresher.PEER, 90))
        self.assertEqual(t.next_deadline(), 800.0 + 1200 - 32)

    def test_stop_and_restart(self) -> None:
        t = SessionTimer(Negotiated(1800, Refresher.US), 0.0)
        t.stop()
        self.assertIsNone(t.next_deadline())
        self.assertIsNone(t.handle_timer(10_000.0))
        t.refreshed(20.0)  # no negotiation: a stopped timer stays stopped
        self.assertIsNone(t.next_deadline())
        self.assertIsNone(t.refresh_failed(30.0, 408))
        t.refreshed(40.0, Negotiated(900, Refresher.PEER))
        self.assertTrue(t.running)
        self.assertEqual(t.next_deadline(), 40.0 + 900 - 32)

    def test_repr(self) -> None:
        self.assertIn("refresher=us", repr(SessionTimer(Negotiated(1800, Refresher.US), 0.0)))


# --------------------------------------------------------------------------- refresh content


class RefreshContentTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.timer = SessionTimer(Negotiated(1800, Refresher.US), 0.0)

    def test_update_when_allowed(self) -> None:
        peer_ok = response(200, "Allow: INVITE, ACK, BYE, CANCEL, UPDATE")
        rr = build_refresh(self.timer.request_headers(), peer_allows_update=allows_method(peer_ok, "UPDATE"),
                           last_local_sdp=SDP_V1)
        self.assertEqual(rr.method, "UPDATE")
        self.assertEqual(rr.body, b"")
        self.assertEqual(header(rr.headers, "Session-Expires"), [b"1800;refresher=uac"])
        self.assertEqual(header(rr.headers, "Supported"), [b"timer"])

    def test_reinvite_repeats_last_sdp_unchanged(self) -> None:
        peer_ok = response(200, "Allow: INVITE, ACK, BYE, CANCEL")
        rr = build_refresh(self.timer.request_headers(), peer_allows_update=allows_method(peer_ok, "UPDATE"),
                           last_local_sdp=SDP_V1)
        self.assertEqual(rr.method, "INVITE")
        self.assertEqual(rr.body, SDP_V1)
        self.assertEqual(header(rr.headers, "Content-Type"), [b"application/sdp"])

    def test_reinvite_without_sdp(self) -> None:
        rr = build_refresh(self.timer.request_headers(), peer_allows_update=False, last_local_sdp=None)
        self.assertEqual((rr.method, rr.body, header(rr.headers, "Content-Type")), ("INVITE", b"", []))

    def test_refresh_through_a_dialog(self) -> None:
        invite = request("INVITE", "Supported: timer", "Allow: INVITE, ACK, BYE, UPDATE")
        dialog = Dialog.from_uas(invite, "bob-tag", b"<sip:sbc@203.0.113.5>")
        rr = build_refresh(self.timer.request_headers(), peer_allows_update=allows_method(invite, "UPDATE"),
                           last_local_sdp=SDP_V1)
        out = dialog.create_request(rr.method, via=b"SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKr1",
                                    headers=rr.headers, body=rr.body)
        wire = parse_message(out.to_bytes())
        assert isinstance(wire, Request)
        self.assertEqual(wire.method, "UPDATE")
        self.assertEqual(session_expires_of(wire), SessionExpires(1800, "uac"))
        self.assertTrue(supports_timer(wire))
        # The peer answers it as UAS; the negotiation keeps us as refresher.
        accept = negotiate_uas(wire)
        assert isinstance(accept, UasAccept)
        self.assertEqual(accept.timer.refresher, Refresher.PEER)  # "uac" seen from the peer: us

    def test_is_refresh_only(self) -> None:
        self.assertTrue(is_refresh_only(request("UPDATE", to_tag="t", cseq=2), SDP_V1))
        self.assertTrue(is_refresh_only(request("INVITE", body=SDP_V1, to_tag="t", cseq=2), SDP_V1))
        self.assertTrue(is_refresh_only(request("UPDATE", body=SDP_V1, to_tag="t", cseq=2), SDP_V1))
        self.assertFalse(is_refresh_only(request("INVITE", body=SDP_V2, to_tag="t", cseq=2), SDP_V1))
        self.assertFalse(is_refresh_only(request("INVITE", to_tag="t", cseq=2), SDP_V1))
        self.assertFalse(is_refresh_only(request("INVITE", body=SDP_V1, to_tag="t", cseq=2), None))
        self.assertFalse(is_refresh_only(request("INVITE", body=b"garbage", to_tag="t", cseq=2), SDP_V1))
        self.assertFalse(is_refresh_only(request("INVITE", body=SDP_V1, to_tag="t", cseq=2), b"junk"))
        self.assertFalse(is_refresh_only(request("INFO", to_tag="t", cseq=2), SDP_V1))

    def test_same_version_with_other_content_still_refresh_only(self) -> None:
        """RFC 3264 §8: an unchanged o= version means no change, whatever else differs."""
        self.assertTrue(is_refresh_only(request("INVITE", body=SDP_V1_HOLD, to_tag="t", cseq=2), SDP_V1))


# --------------------------------------------------------------------------- B2BUA: two legs


class _Leg:
    """Test glue: one leg of a call as a B2BUA would drive it (not production code)."""

    def __init__(self, name: str, timer: SessionTimer) -> None:
        self.name = name
        self.timer = timer
        self.sent_refreshes: list[float] = []
        self.byes: list[float] = []


class _Call:
    """Two legs, one SessionTimer each; EXPIRED on either leg sends BYE on both."""

    def __init__(self, a: SessionTimer, b: SessionTimer) -> None:
        self.a = _Leg("A", a)
        self.b = _Leg("B", b)
        self.ended_at: float | None = None

    def legs(self) -> tuple[_Leg, _Leg]:
        return (self.a, self.b)

    def next_deadline(self) -> float | None:
        ds = [d for d in (leg.timer.next_deadline() for leg in self.legs()) if d is not None]
        return min(ds) if ds else None

    def wake(self, now: float, answer_our_refresh: bool = True) -> None:
        for leg in self.legs():
            action = leg.timer.handle_timer(now)
            if action is TimerAction.REFRESH:
                leg.sent_refreshes.append(now)
                if answer_our_refresh:
                    leg.timer.refreshed(now + 0.05)  # the 2xx comes back 50 ms later
            elif action is TimerAction.EXPIRED:
                self.end(now)

    def end(self, now: float) -> None:
        for leg in self.legs():
            leg.byes.append(now)
            leg.timer.stop()
        self.ended_at = now

    def run(self, until: float, peer_refreshes: dict[str, list[float]]) -> None:
        """Run the fake clock to ``until``; ``peer_refreshes[leg]`` are the times the peer's
        refresh on that leg succeeds (a 2xx we sent to its re-INVITE/UPDATE)."""
        events = sorted((t, name) for name, times in peer_refreshes.items() for t in times)
        while self.ended_at is None:
            deadline = self.next_deadline()
            nxt = events[0][0] if events else None
            candidates = [t for t in (deadline, nxt) if t is not None and t <= until]
            if not candidates:
                return
            now = min(candidates)
            if nxt is not None and now == nxt and (deadline is None or nxt <= deadline):
                _, name = events.pop(0)
                getattr(self, name.lower()).timer.refreshed(now)  # refresh stays on its own leg
            else:
                self.wake(now)


class TwoLegCallTests(SynchronousTestCase):
    def make_call(self) -> _Call:
        """A leg: the PBX asked to refresh (refresher=uac).  B leg: we INVITEd the agent host,
        whose 2xx made us the refresher."""
        pbx_invite = request("INVITE", "Supported: timer", "Session-Expires: 1800;refresher=uac")
        a = negotiate_uas(pbx_invite)
        assert isinstance(a, UasAccept)
        self.assertEqual(a.timer.refresher, Refresher.PEER)
        b = UacNegotiation().process_2xx(response(200, "Require: timer", "Session-Expires: 1800;refresher=uac"))
        assert b is not None
        self.assertEqual(b.refresher, Refresher.US)
        return _Call(SessionTimer(a.timer, 0.0), SessionTimer(b, 0.0))

    def test_two_hour_call_survives(self) -> None:
        call = self.make_call()
        pbx = [900.0 * k for k in range(1, 9)]  # the PBX refreshes every 15 minutes
        call.run(7201.0, {"A": pbx})
        self.assertIsNone(call.ended_at)
        self.assertEqual(call.a.byes + call.b.byes, [])
        # We refreshed the B leg at half its interval (each 2xx 50 ms later restarts it)...
        self.assertEqual(len(call.b.sent_refreshes), 8)
        self.assertAlmostEqual(call.b.sent_refreshes[0], 900.0)
        for earlier, later in zip(call.b.sent_refreshes, call.b.sent_refreshes[1:]):
            self.assertAlmostEqual(later - earlier, 900.05)
        # ...and never the A leg, whose peer refreshed it; its refreshes stayed on the A leg.
        self.assertEqual(call.a.sent_refreshes, [])
        self.assertEqual(call.a.timer.refresh_count, 8)
        self.assertEqual(call.b.timer.refresh_count, 8)
        self.assertTrue(call.a.timer.running and call.b.timer.running)
        self.assertEqual(call.a.timer.next_deadline(), 7200.0 + 1800 - 32)

    def test_agent_host_without_timers_still_refreshed(self) -> None:
        """The 15-minute drop: the far side never refreshes.  We insist on the B leg."""
        call = self.make_call()
        b = UacNegotiation().process_2xx(response(200))  # the agent host ignores timers
        assert b is not None
        call.b.timer = SessionTimer(b, 0.0)
        call.run(7201.0, {"A": [900.0 * k for k in range(1, 9)]})
        self.assertIsNone(call.ended_at)
        self.assertEqual(len(call.b.sent_refreshes), 8)

    def test_peer_stops_refreshing_tears_down_both_legs(self) -> None:
        call = self.make_call()
        call.run(7200.0, {"A": [900.0, 1800.0]})  # the PBX goes silent after 30 minutes
        self.assertEqual(call.ended_at, 1800.0 + 1800 - 32)
        self.assertEqual(call.a.byes, [3568.0])
        self.assertEqual(call.b.byes, [3568.0])
        self.assertIsNone(call.a.timer.next_deadline())
        self.assertIsNone(call.b.timer.next_deadline())

    def test_one_late_refresh_inside_the_window_is_fine(self) -> None:
        call = self.make_call()
        call.run(7200.0, {"A": [900.0, 2600.0, 4300.0, 6000.0]})  # 1700 s gaps < 1768
        self.assertIsNone(call.ended_at)

    def test_our_refresh_unanswered_tears_down(self) -> None:
        call = self.make_call()
        self.assertEqual(call.b.timer.handle_timer(900.0), TimerAction.REFRESH)
        # No answer: the transaction layer reports a timeout 32 s later.
        self.assertEqual(call.b.timer.refresh_failed(932.0, None), TimerAction.EXPIRED)
        call.end(932.0)
        self.assertEqual((call.a.byes, call.b.byes), ([932.0], [932.0]))


# --------------------------------------------------------------------------- properties

_values = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_se_texts = st.one_of(
    _values,
    st.builds(lambda n, rest: b"%d" % n + rest, st.integers(0, 2**32), _values),
    st.lists(st.sampled_from([b"1800", b";", b"refresher", b"=", b"uac", b"uas", b" ", b"\"", b"\\", b",", b"x"]),
             max_size=10).map(b"".join),
)
_tokens = st.text("abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=8)


@st.composite
def session_expires_values(draw: st.DrawFn) -> SessionExpires:
    params = draw(st.lists(st.tuples(_tokens.filter(lambda t: t != "refresher"), st.none() | _tokens), max_size=3))
    return SessionExpires(draw(st.integers(0, 2**31 - 1)), draw(st.sampled_from([None, "uac", "uas"])), tuple(params))


def _msg_with(name: str, value: bytes, status: int | None = None) -> Request | Response:
    start = b"SIP/2.0 %d OK" % status if status else b"INVITE sip:bob@example.com SIP/2.0"
    data = (start + b"\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\n"
            b"Call-ID: c\r\nCSeq: 1 INVITE\r\n" + name.encode() + b": " + value + b"\r\nContent-Length: 0\r\n\r\n")
    return parse_message(data)


class PropertyTests(SynchronousTestCase):
    @given(_se_texts)
    def test_session_expires_raises_only_parse_error(self, data: bytes) -> None:
        try:
            se = parse_session_expires(data)
        except SipParseError as e:
            self.assertEqual(e.status, 400)
        else:
            self.assertEqual(parse_session_expires(se.to_bytes()), se)

    @given(_se_texts)
    def test_min_se_raises_only_parse_error(self, data: bytes) -> None:
        try:
            m = parse_min_se(data)
        except SipParseError:
            pass
        else:
            self.assertEqual(parse_min_se(m.to_bytes()), m)

    @given(st.text(max_size=30))
    def test_str_input_raises_only_parse_error(self, text: str) -> None:
        for parse in (parse_session_expires, parse_min_se):
            try:
                parse(text)
            except SipParseError:
                pass

    @given(session_expires_values())
    def test_round_trip(self, se: SessionExpires) -> None:
        self.assertEqual(parse_session_expires(se.to_bytes()), se)

    @given(st.sampled_from(["Session-Expires", "x", "Min-SE", "Supported", "k", "Require"]), _se_texts)
    def test_negotiation_on_arbitrary_headers(self, name: str, value: bytes) -> None:
        """UAS: only SipParseError; UAC: never raises (a broken 2xx/422 has a defined meaning)."""
        msg = _msg_with(name, value)
        assert isinstance(msg, Request)
        try:
            result = negotiate_uas(msg)
        except SipParseError:
            pass
        else:
            if isinstance(result, UasAccept):
                self.assertGreaterEqual(result.timer.interval, 90)
        for status in (200, 422):
            resp = _msg_with(name, value, status)
            assert isinstance(resp, Response)
            neg = UacNegotiation()
            if status == 200:
                n = neg.process_2xx(resp)
                self.assertIsNotNone(n)
            else:
                self.assertIsInstance(neg.process_422(resp), bool)

    @given(st.integers(0, 10_000), st.none() | st.integers(0, 10_000), st.booleans(),
           st.sampled_from([None, "uac", "uas"]))
    def test_uas_never_below_minimum_never_increases(self, se: int, req_min: int | None, supported: bool,
                                                    refresher: str | None) -> None:
        cfg = SessionTimerConfig(session_expires=1800, min_se=120)
        hdrs = [f"Session-Expires: {se}" + (f";refresher={refresher}" if refresher else "")]
        if req_min is not None:
            hdrs.append(f"Min-SE: {req_min}")
        if supported:
            hdrs.append("Supported: timer")
        result = negotiate_uas(request("INVITE", *hdrs), cfg)
        if isinstance(result, Reject422):
            self.assertTrue(supported)
            self.assertLess(se, 120)
            self.assertGreaterEqual(result.min_se, 120)
            return
        floor = max(120, req_min or 90)
        self.assertGreaterEqual(result.timer.interval, floor)
        if se >= floor:
            self.assertLessEqual(result.timer.interval, se)
        if not supported:
            self.assertEqual(result.timer.refresher, Refresher.US)
            self.assertEqual(header(result.headers, "Require"), [])

    @given(st.integers(90, 7200), st.data())
    def test_peer_refreshing_in_time_never_expires(self, interval: int, data: st.DataObject) -> None:
        window = interval - expiry_margin(interval)
        gaps = data.draw(st.lists(st.floats(1.0, window - 0.01), min_size=1, max_size=30))
        t = SessionTimer(Negotiated(interval, Refresher.PEER), 0.0)
        now = 0.0
        for gap in gaps:
            now += gap
            deadline = t.next_deadline()
            assert deadline is not None
            self.assertGreater(deadline, now)
            self.assertIsNone(t.handle_timer(now))
            t.refreshed(now)
        self.assertEqual(t.handle_timer(now + window), TimerAction.EXPIRED)

    @given(st.integers(90, 7200), st.floats(0, 1e6))
    def test_we_refresh_at_half(self, interval: int, start: float) -> None:
        t = SessionTimer(Negotiated(interval, Refresher.US), start)
        self.assertEqual(t.next_deadline(), start + interval / 2)
        self.assertEqual(t.handle_timer(start + interval / 2), TimerAction.REFRESH)
        self.assertEqual(t.next_deadline(), start + interval)

    @given(st.integers(90, 7200), st.integers(90, 7200), st.integers(90, 7200), st.integers(90, 7200),
           st.sampled_from(list(Refresher)))
    def test_our_uac_and_uas_always_agree(self, a1: int, a2: int, b1: int, b2: int, prefer: Refresher) -> None:
        """Whatever two SBC configs meet, at most one 422 later both ends agree on the interval
        and on exactly one refresher."""
        uac_cfg = SessionTimerConfig(session_expires=max(a1, a2), min_se=min(a1, a2))
        uas_cfg = SessionTimerConfig(session_expires=max(b1, b2), min_se=min(b1, b2), prefer_refresher=prefer)
        neg = UacNegotiation(uac_cfg)
        for cseq in (1, 2):
            req = request("INVITE", *(f"{n}: {v.decode()}" for n, v in neg.request_headers()), cseq=cseq)
            result = negotiate_uas(req, uas_cfg)
            if isinstance(result, UasAccept):
                break
            self.assertEqual(cseq, 1)
            self.assertTrue(neg.process_422(make_response(req, 422, headers=result.headers)))
        assert isinstance(result, UasAccept)
        mine = neg.process_2xx(make_response(req, 200, to_tag="b", headers=result.headers))
        assert mine is not None
        self.assertEqual(mine.interval, result.timer.interval)
        self.assertNotEqual(mine.refresher, result.timer.refresher)
        self.assertGreaterEqual(result.timer.interval, max(uac_cfg.min_se, uas_cfg.min_se))
