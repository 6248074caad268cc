# -*- test-case-name: tests.test_sip_registration -*-
"""Tests for sbc.sip.registration: the outbound REGISTER client of a trunk, driven by a fake
registrar (which authenticates with sbc.sip.digest.DigestVerifier) and a fake clock."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.digest import ClientCredentials, DigestSecret, DigestVerifier, Outcome, credentials_in
from sbc.sip.message import Request, Response, make_response, parse_message, validate_request
from sbc.sip.registration import RegistrationClient, RegistrationConfig, RegState

PASSWORD = "trunk-Pa55word"
REALM = "reg.example.com"
CONTACT = "sip:1000@203.0.113.5:5060"


def config(**kw) -> RegistrationConfig:  # type: ignore[no-untyped-def]
    base = dict(
        registrar="sip:reg.example.com",
        aor="sip:1000@reg.example.com",
        contact=CONTACT,
        via_sent_by="203.0.113.5:5060",
        credentials=ClientCredentials("1000", PASSWORD),
        expires=600,
    )
    base.update(kw)
    return RegistrationConfig(**base)  # type: ignore[arg-type]


def make_client(jitter: float = 0.0, **kw) -> RegistrationClient:  # type: ignore[no-untyped-def]
    branches = itertools.count(1)
    tokens = itertools.count(1)
    return RegistrationClient(
        config(**kw),
        branch_source=lambda: f"z9hG4bKbr{next(branches)}",
        token_source=lambda: f"tok{next(tokens)}",
        jitter=lambda: jitter,
    )


def reparse(req: Request) -> Request:
    """What the registrar would see on the wire."""
    msg = parse_message(req.to_bytes())
    assert isinstance(msg, Request)
    validate_request(msg)
    return msg


class Registrar:
    """A fake registrar with digest authentication (SHA-256 and MD5 offered)."""

    def __init__(self, *, algorithms: tuple[str, ...] = ("SHA-256", "MD5"), ttl: float = 300.0,
                 password: str = PASSWORD) -> None:
        counter = itertools.count(1)
        self.verifier = DigestVerifier(
            REALM,
            lambda u, r: DigestSecret.from_password(password) if u == "1000" else None,
            b"registrar-secret-0123456789",
            nonce_ttl=ttl,
            algorithms=algorithms,
            random_bytes=lambda n: next(counter).to_bytes(n, "big"),
        )
        self.results: list[Outcome] = []

    def handle(self, req: Request, now: float, *, granted: int | None = None, extra: tuple = ()) -> Response:  # type: ignore[type-arg]
        req = reparse(req)
        result = self.verifier.verify(req, now)
        self.results.append(result.outcome)
        if not result.ok:
            status = result.status() or 401
            headers = self.verifier.challenge(401, now=now, stale=result.stale) if status == 401 else []
            return make_response(req, status, to_tag="reg", headers=headers)
        asked = req.expires or 0
        value = asked if granted is None else granted
        return make_response(
            req, 200, to_tag="reg", headers=[("Contact", f"<{CONTACT}>;expires={value}".encode()), *extra]
        )


def plain(req: Request, status: int, *headers: tuple[str, bytes]) -> Response:
    return make_response(reparse(req), status, to_tag="reg", headers=list(headers))


class RequestShapeTests(SynchronousTestCase):
    def test_first_request(self) -> None:
        client = make_client()
        [req] = client.start(0.0)
        req = reparse(req)
        self.assertEqual(req.method, "REGISTER")
        self.assertEqual(req.uri, b"sip:reg.example.com")
        self.assertEqual(req.top_via.branch, "z9hG4bKbr1")
        self.assertEqual(req.top_via.host, "203.0.113.5")
        self.assertEqual(req.cseq.seq, 1)
        self.assertEqual(req.from_.tag, client.from_tag)
        self.assertIsNone(req.to.tag)
        self.assertEqual(str(req.to.uri), "sip:1000@reg.example.com")
        self.assertEqual(req.call_id, client.call_id)
        [contact] = req.contacts
        self.assertEqual((str(contact.uri), contact.param("expires")), (CONTACT, "600"))
        self.assertEqual(req.expires, 600)
        self.assertFalse(req.has("Authorization"))
        self.assertEqual(client.state, RegState.REGISTERING)
        self.assertIsNone(client.next_deadline())  # the transaction layer times the request

    def test_branch_prefixed_route_params_user_agent(self) -> None:
        client = RegistrationClient(
            config(route=("<sip:proxy.example.com;lr>",), contact_params=(("reg-id", "1"), ("+sip.instance", '"<urn:uuid:1>"')),
                   user_agent="sbc/1.0", via_transport="tls"),
            branch_source=lambda: "abc",
        )
        [req] = client.start(0.0)
        req = reparse(req)
        self.assertEqual(req.top_via.branch, "z9hG4bKabc")
        self.assertEqual(req.top_via.transport, "TLS")
        self.assertEqual(str(req.routes[0].uri), "sip:proxy.example.com;lr")
        self.assertEqual(req.contacts[0].param("reg-id"), "1")
        self.assertEqual(req.get("User-Agent"), b"sbc/1.0")

    def test_bad_config(self) -> None:
        self.assertRaises(ValueError, config, expires=0)
        self.assertRaises(ValueError, config, retry_base=0)
        self.assertRaises(Exception, config, registrar="not a uri")


class LifecycleTests(SynchronousTestCase):
    def test_full_lifecycle(self) -> None:
        registrar = Registrar(ttl=3600.0)
        client = make_client()
        self.assertEqual(client.status.state, "unregistered")
        [r1] = client.start(100.0)
        resp = registrar.handle(r1, 100.0)
        self.assertEqual(resp.status, 401)
        [r2] = client.response(resp, 100.1)
        # Challenged: same Call-ID, next CSeq, SHA-256 chosen over MD5.
        self.assertEqual((r2.call_id, r2.cseq.seq), (client.call_id, 2))
        [cred] = credentials_in(r2)
        self.assertEqual((cred.algorithm, cred.nc, cred.uri), ("SHA-256", "00000001", "sip:reg.example.com"))
        ok = registrar.handle(r2, 100.2)
        self.assertEqual(ok.status, 200)
        self.assertEqual(client.response(ok, 100.2), [])
        status = client.status
        self.assertEqual((status.state, status.detail, status.last_status), ("registered", RegState.REGISTERED, 200))
        self.assertEqual(status.expires_at, 700.2)
        # Refresh rule: max(600 / 2, 600 - 60) = 540 s after the 2xx.
        self.assertAlmostEqual(client.next_deadline() or 0, 640.2)
        self.assertEqual(client.handle_timer(640.0), [])
        [r3] = client.handle_timer(640.2)
        self.assertEqual((r3.call_id, r3.cseq.seq), (client.call_id, 3))
        self.assertEqual(client.state, RegState.REFRESHING)
        self.assertEqual(client.status.state, "registered")
        # Pre-emptive credentials on the same nonce, next nonce-count: accepted at once.
        self.assertEqual([c.nc for c in credentials_in(r3)], ["00000002"])
        ok2 = registrar.handle(r3, 640.3)
        self.assertEqual(ok2.status, 200)
        client.response(ok2, 640.3)
        self.assertEqual(client.status.expires_at, 1240.3)
        # Deregistration.
        [r4] = client.stop(700.0)
        r4 = reparse(r4)
        self.assertEqual(r4.expires, 0)
        self.assertEqual(r4.contacts[0].param("expires"), "0")
        self.assertFalse(r4.contact_star)
        self.assertEqual(r4.cseq.seq, 4)
        self.assertEqual(client.state, RegState.UNREGISTERING)
        bye = registrar.handle(r4, 700.1)
        self.assertEqual(bye.status, 200)
        self.assertEqual(client.response(bye, 700.1), [])
        self.assertEqual(client.state, RegState.STOPPED)
        self.assertEqual(client.status.state, "unregistered")
        self.assertIsNone(client.next_deadline())
        self.assertEqual(registrar.results, [Outcome.MISSING, Outcome.OK, Outcome.OK, Outcome.OK])

    def test_refresh_after_nonce_expired(self) -> None:
        registrar = Registrar(ttl=60.0)
        client = make_client()
        [r1] = client.start(0.0)
        [r2] = client.response(registrar.handle(r1, 0.0), 0.0)
        client.response(registrar.handle(r2, 0.0), 0.0)
        [r3] = client.handle_timer(540.0)
        stale = registrar.handle(r3, 540.0)
        self.assertEqual(stale.status, 401)
        self.assertIn(b"stale=true", stale.get("WWW-Authenticate") or b"")
        [r4] = client.response(stale, 540.0)
        ok = registrar.handle(r4, 540.1)
        self.assertEqual(ok.status, 200)
        client.response(ok, 540.1)
        self.assertEqual(client.status.state, "registered")
        self.assertEqual(client.status.failures, 0)

    def test_refresh_with_fresh_challenge_is_not_a_rejection(self) -> None:
        # A registrar that refuses nonce reuse answers the pre-emptive credentials with a new
        # challenge (stale=false); that is the first challenge of this request, so we answer it.
        registrar = Registrar()
        client = make_client()
        [r1] = client.start(0.0)
        [r2] = client.response(registrar.handle(r1, 0.0), 0.0)
        client.response(registrar.handle(r2, 0.0), 0.0)
        [r3] = client.handle_timer(540.0)
        fresh = plain(r3, 401, *Registrar().verifier.challenge(401, now=540.0))
        [r4] = client.response(fresh, 540.0)
        self.assertTrue(r4.has("Authorization"))
        self.assertEqual(client.state, RegState.REFRESHING)

    def test_stale_challenge_after_answer_is_retried(self) -> None:
        registrar = Registrar()
        client = make_client()
        [r1] = client.start(0.0)
        [r2] = client.response(registrar.handle(r1, 0.0), 0.0)
        # The registrar restarted and says our (valid) answer used an old nonce.
        stale = plain(r2, 401, *registrar.verifier.challenge(401, now=1.0, stale=True))
        [r3] = client.response(stale, 1.0)
        ok = registrar.handle(r3, 1.0)
        self.assertEqual(ok.status, 200)
        client.response(ok, 1.0)
        self.assertEqual(client.status.state, "registered")

    def test_endless_stale_is_bounded(self) -> None:
        registrar = Registrar()
        client = make_client()
        [req] = client.start(0.0)
        [req] = client.response(registrar.handle(req, 0.0), 0.0)
        sent = 0
        while True:
            out = client.response(plain(req, 401, *registrar.verifier.challenge(401, now=1.0, stale=True)), 1.0)
            if not out:
                break
            [req] = out
            sent += 1
            self.assertLess(sent, 10)
        self.assertEqual(sent, 2)
        self.assertEqual(client.status.state, "failed")

    def test_wrong_password_fails_after_one_retry(self) -> None:
        registrar = Registrar(password="the-real-one")
        client = make_client()
        [r1] = client.start(0.0)
        [r2] = client.response(registrar.handle(r1, 0.0), 0.0)
        rejected = plain(r2, 401, *registrar.verifier.challenge(401, now=0.5))
        self.assertEqual(client.response(rejected, 0.5), [])
        status = client.status
        self.assertEqual((status.state, status.detail, status.last_status), ("failed", RegState.RETRY_WAIT, 401))
        self.assertEqual(status.failures, 1)
        # Backoff with jitter 0: 50 % of 30 s.
        self.assertEqual(client.next_deadline(), 15.5)
        self.assertEqual(status.next_attempt_at, 15.5)
        # The retry starts afresh: no stale credentials, a fresh challenge is answered again.
        [r3] = client.handle_timer(15.5)
        self.assertFalse(r3.has("Authorization"))
        [r4] = client.response(registrar.handle(r3, 15.5), 15.5)
        self.assertTrue(r4.has("Authorization"))

    def test_registrar_403_on_answer(self) -> None:
        registrar = Registrar(password="other")
        client = make_client()
        [r1] = client.start(0.0)
        [r2] = client.response(registrar.handle(r1, 0.0), 0.0)
        forbidden = registrar.handle(r2, 0.0)
        self.assertEqual(forbidden.status, 403)
        self.assertEqual(client.response(forbidden, 0.0), [])
        self.assertEqual((client.status.state, client.status.last_status), ("failed", 403))

    def test_challenge_without_credentials(self) -> None:
        client = make_client(credentials=None)
        [r1] = client.start(0.0)
        self.assertEqual(client.response(Registrar().handle(r1, 0.0), 0.0), [])
        self.assertEqual(client.status.state, "failed")
        self.assertIn("no credentials", client.status.last_reason or "")

    def test_malformed_challenge_is_failure(self) -> None:
        client = make_client()
        [r1] = client.start(0.0)
        self.assertEqual(client.response(plain(r1, 401, ("WWW-Authenticate", b'Digest realm="x')), 0.0), [])
        self.assertEqual(client.status.state, "failed")
        self.assertIn("no usable", client.status.last_reason or "")

    def test_challenge_for_other_realm_refused(self) -> None:
        client = make_client(credentials=ClientCredentials("1000", PASSWORD, realm="expected.example"))
        [r1] = client.start(0.0)
        self.assertEqual(client.response(Registrar().handle(r1, 0.0), 0.0), [])
        self.assertEqual(client.status.state, "failed")

    def test_md5_only_registrar(self) -> None:
        registrar = Registrar(algorithms=("MD5",))
        client = make_client()
        [r1] = client.start(0.0)
        [r2] = client.response(registrar.handle(r1, 0.0), 0.0)
        self.assertEqual(credentials_in(r2)[0].algorithm, "MD5")
        client.response(registrar.handle(r2, 0.0), 0.0)
        self.assertEqual(client.status.state, "registered")

    def test_no_auth_needed(self) -> None:
        client = make_client(credentials=None)
        [r1] = client.start(0.0)
        client.response(plain(r1, 200, ("Contact", f"<{CONTACT}>;expires=120".encode())), 1.0)
        self.assertEqual(client.status.expires_at, 121.0)
        # Short registrations refresh at half time: max(60, 120 - 60) = 60.
        self.assertEqual(client.next_deadline(), 61.0)


class GrantedExpiryTests(SynchronousTestCase):
    def registered(self, *headers: tuple[str, bytes]) -> RegistrationClient:
        client = make_client(credentials=None)
        [r1] = client.start(0.0)
        client.response(plain(r1, 200, *headers), 0.0)
        return client

    def test_our_contact_among_several(self) -> None:
        client = self.registered(
            ("Contact", b"<sip:other@198.51.100.1>;expires=30, <sip:1000@203.0.113.5:5060>;expires=300"),
            ("Expires", b"900"),
        )
        self.assertEqual(client.status.expires_at, 300.0)

    def test_expires_header(self) -> None:
        client = self.registered(("Contact", b"<sip:other@198.51.100.1>;expires=30, <sip:x@198.51.100.2>"), ("Expires", b"900"))
        self.assertEqual(client.status.expires_at, 900.0)

    def test_single_rewritten_contact(self) -> None:
        client = self.registered(("Contact", b"<sip:1000@192.0.2.99:1234;alias>;expires=200"))
        self.assertEqual(client.status.expires_at, 200.0)

    def test_nothing_said(self) -> None:
        client = self.registered()
        self.assertEqual(client.status.expires_at, 600.0)

    def test_zero_granted_is_failure(self) -> None:
        client = self.registered(("Contact", f"<{CONTACT}>;expires=0".encode()))
        self.assertEqual(client.status.state, "failed")


class FailureTests(SynchronousTestCase):
    def test_423_interval_too_brief(self) -> None:
        client = make_client(credentials=None)
        [r1] = client.start(0.0)
        [r2] = client.response(plain(r1, 423, ("Min-Expires", b"1800")), 0.0)
        r2 = reparse(r2)
        self.assertEqual((r2.expires, r2.contacts[0].param("expires"), r2.cseq.seq), (1800, "1800", 2))
        self.assertEqual(client.status.last_status, 423)
        client.response(plain(r2, 200, ("Contact", f"<{CONTACT}>;expires=1800".encode())), 1.0)
        self.assertEqual(client.status.state, "registered")
        # Refreshes keep asking for the larger value.
        [r3] = client.handle_timer(client.next_deadline() or 0)
        self.assertEqual(reparse(r3).expires, 1800)

    def test_423_not_larger_or_missing_is_failure(self) -> None:
        for headers in ((("Min-Expires", b"60"),), (), (("Min-Expires", b"junk"),), (("Min-Expires", b"999999999"),)):
            client = make_client(credentials=None)
            [r1] = client.start(0.0)
            self.assertEqual(client.response(plain(r1, 423, *headers), 0.0), [])
            self.assertEqual(client.status.state, "failed")

    def test_503_retry_after(self) -> None:
        client = make_client(credentials=None)
        [r1] = client.start(10.0)
        client.response(plain(r1, 503, ("Retry-After", b"120 (maintenance);duration=60")), 10.0)
        self.assertEqual(client.status.state, "failed")
        self.assertEqual(client.next_deadline(), 130.0)
        self.assertEqual(client.handle_timer(129.0), [])
        [r2] = client.handle_timer(130.0)
        self.assertEqual(r2.cseq.seq, 2)

    def test_retry_after_bounded(self) -> None:
        client = make_client(credentials=None)
        [r1] = client.start(0.0)
        client.response(plain(r1, 503, ("Retry-After", b"999999")), 0.0)
        self.assertEqual(client.next_deadline(), 3600.0)

    def test_backoff_doubles_and_is_bounded(self) -> None:
        client = make_client(jitter=0.0, credentials=None)
        [req] = client.start(0.0)
        now = 0.0
        waits = []
        for _ in range(9):
            client.response(plain(req, 500), now)
            deadline = client.next_deadline()
            assert deadline is not None
            waits.append(deadline - now)
            now = deadline
            [req] = client.handle_timer(now)
        self.assertEqual(waits, [15.0, 30.0, 60.0, 120.0, 240.0, 480.0, 900.0, 900.0, 900.0])
        self.assertEqual(client.status.failures, 9)

    def test_backoff_jitter_range(self) -> None:
        client = make_client(jitter=0.999999, credentials=None)
        [req] = client.start(0.0)
        client.response(plain(req, 500), 0.0)
        self.assertAlmostEqual(client.next_deadline() or 0, 30.0, places=3)

    def test_timeout(self) -> None:
        client = make_client(credentials=None)
        [req] = client.start(0.0)
        self.assertEqual(client.timeout(32.0), [])
        self.assertEqual((client.status.state, client.status.last_status), ("failed", 408))
        self.assertEqual(client.next_deadline(), 47.0)
        self.assertEqual(client.timeout(33.0), [])  # nothing pending: ignored

    def test_success_resets_failures(self) -> None:
        client = make_client(credentials=None)
        [req] = client.start(0.0)
        client.timeout(32.0)
        [req] = client.handle_timer(47.0)
        client.response(plain(req, 200), 47.0)
        self.assertEqual((client.status.state, client.status.failures), ("registered", 0))

    def test_refresh_failure_keeps_binding_until_expiry(self) -> None:
        client = make_client(credentials=None)
        [req] = client.start(0.0)
        client.response(plain(req, 200), 0.0)  # expires at 600, refresh at 540
        [req] = client.handle_timer(540.0)
        client.timeout(572.0)
        self.assertEqual(client.status.state, "registered")  # binding still valid
        self.assertEqual(client.state, RegState.RETRY_WAIT)
        self.assertEqual(client.next_deadline(), 587.0)
        [req] = client.handle_timer(587.0)
        self.assertEqual(client.state, RegState.REFRESHING)
        self.assertEqual(client.next_deadline(), 600.0)
        self.assertEqual(client.handle_timer(600.0), [])
        self.assertEqual(client.status.state, "failed")
        self.assertIsNone(client.status.expires_at)
        self.assertEqual(client.state, RegState.REGISTERING)
        client.response(plain(req, 200), 601.0)
        self.assertEqual(client.status.state, "registered")

    def test_unrelated_responses_ignored(self) -> None:
        client = make_client(credentials=None)
        [req] = client.start(0.0)
        other_cseq = plain(req, 200).with_header("CSeq", "99 REGISTER")
        other_call = plain(req, 200).with_header("Call-ID", "someone-else")
        broken = plain(req, 200).with_header("CSeq", "junk")
        for resp in (other_cseq, other_call, broken, plain(req, 100), plain(req, 183)):
            self.assertEqual(client.response(resp, 1.0), [])
            self.assertEqual(client.state, RegState.REGISTERING)
        client.response(plain(req, 200), 1.0)
        self.assertEqual(client.state, RegState.REGISTERED)
        # A late retransmitted 200 for the same request is ignored too.
        self.assertEqual(client.response(plain(req, 200), 2.0), [])

    def test_one_request_at_a_time(self) -> None:
        client = make_client(credentials=None)
        [req] = client.start(0.0)
        self.assertEqual(client.start(1.0), [])
        self.assertEqual(client.handle_timer(10_000.0), [])
        self.assertIs(client.pending, req)

    def test_redirect_is_failure(self) -> None:
        client = make_client(credentials=None)
        [req] = client.start(0.0)
        client.response(plain(req, 302, ("Contact", b"<sip:elsewhere.example>")), 0.0)
        self.assertEqual((client.status.state, client.status.last_status), ("failed", 302))


class StopTests(SynchronousTestCase):
    def test_stop_never_registered(self) -> None:
        client = make_client()
        self.assertEqual(client.stop(0.0), [])
        self.assertEqual(client.state, RegState.STOPPED)
        [req] = client.start(1.0)  # can start again
        self.assertEqual(req.method, "REGISTER")

    def test_stop_after_failure_without_binding(self) -> None:
        client = make_client(credentials=None)
        [req] = client.start(0.0)
        client.response(plain(req, 500), 0.0)
        self.assertEqual(client.stop(1.0), [])
        self.assertEqual(client.state, RegState.STOPPED)
        self.assertIsNone(client.next_deadline())

    def test_stop_while_in_flight(self) -> None:
        client = make_client(credentials=None)
        [req] = client.start(0.0)
        self.assertEqual(client.stop(0.5), [])
        [unreg] = client.response(plain(req, 200), 1.0)
        self.assertEqual(reparse(unreg).expires, 0)
        self.assertEqual(client.state, RegState.UNREGISTERING)
        client.response(plain(unreg, 200), 1.1)
        self.assertEqual(client.state, RegState.STOPPED)

    def test_stop_while_in_flight_failure(self) -> None:
        client = make_client(credentials=None)
        [req] = client.start(0.0)
        client.stop(0.5)
        self.assertEqual(client.response(plain(req, 403), 1.0), [])
        self.assertEqual(client.state, RegState.STOPPED)

    def test_stop_while_in_flight_timeout_still_deregisters(self) -> None:
        client = make_client(credentials=None)
        client.start(0.0)
        client.stop(0.5)
        [unreg] = client.timeout(32.0)
        self.assertEqual(reparse(unreg).expires, 0)

    def test_deregistration_challenged_once(self) -> None:
        registrar = Registrar()
        client = make_client(reuse_nonce=False)
        [r1] = client.start(0.0)
        [r2] = client.response(registrar.handle(r1, 0.0), 0.0)
        client.response(registrar.handle(r2, 0.0), 0.0)
        [u1] = client.stop(10.0)
        self.assertFalse(u1.has("Authorization"))
        [u2] = client.response(registrar.handle(u1, 10.0), 10.0)
        self.assertTrue(u2.has("Authorization"))
        again = plain(u2, 401, *registrar.verifier.challenge(401, now=10.0))
        self.assertEqual(client.response(again, 10.0), [])
        self.assertEqual(client.state, RegState.STOPPED)

    def test_deregistration_timeout(self) -> None:
        client = make_client(credentials=None)
        [req] = client.start(0.0)
        client.response(plain(req, 200), 0.0)
        client.stop(1.0)
        self.assertEqual(client.timeout(33.0), [])
        self.assertEqual(client.state, RegState.STOPPED)


class HygieneTests(SynchronousTestCase):
    def test_no_password_in_repr(self) -> None:
        registrar = Registrar()
        client = make_client()
        [r1] = client.start(0.0)
        [r2] = client.response(registrar.handle(r1, 0.0), 0.0)
        client.response(registrar.handle(r2, 0.0), 0.0)
        response_hash = credentials_in(r2)[0].response
        for obj in (client, client.config, client.status, client.config.credentials, r2):
            for text in (repr(obj), str(obj)):
                self.assertNotIn(PASSWORD, text)
                self.assertNotIn(response_hash, text)


_EVENTS = st.lists(
    st.one_of(
        st.tuples(st.just("response"), st.sampled_from([100, 200, 202, 302, 401, 403, 407, 423, 480, 500, 503, 604]),
                  st.booleans()),
        st.tuples(st.just("timeout"), st.just(0), st.just(False)),
        st.tuples(st.just("timer"), st.just(0), st.just(False)),
        st.tuples(st.just("stop"), st.just(0), st.just(False)),
        st.tuples(st.just("start"), st.just(0), st.just(False)),
    ),
    max_size=40,
)


class PropertyTests(SynchronousTestCase):
    @given(_EVENTS, st.floats(min_value=0.0, max_value=0.999))
    def test_random_event_sequences(self, events: list[tuple[str, int, bool]], jitter: float) -> None:
        """Whatever happens: no exception, one request in flight at most, CSeq strictly up,
        Call-ID and From tag fixed, deadlines never in the past after handle_timer."""
        registrar = Registrar()
        client = make_client(jitter=jitter)
        now = 0.0
        sent: list[Request] = list(client.start(now))
        for kind, code, stale in events:
            now += 1.0
            out: list[Request] = []
            if kind == "response" and client.pending is not None:
                req = client.pending
                if code in (401, 407):
                    name_values = registrar.verifier.challenge(code, now=now, stale=stale)
                    resp = plain(req, code, *name_values)
                elif code == 423:
                    resp = plain(req, 423, ("Min-Expires", b"900"))
                elif code == 503:
                    resp = plain(req, 503, ("Retry-After", b"5"))
                else:
                    resp = plain(req, code)
                out = client.response(resp, now)
            elif kind == "timeout":
                out = client.timeout(now)
            elif kind == "timer":
                deadline = client.next_deadline()
                if deadline is not None:
                    now = max(now, deadline)
                out = client.handle_timer(now)
                after = client.next_deadline()
                self.assertTrue(after is None or after > now)
            elif kind == "stop":
                out = client.stop(now)
            elif kind == "start":
                out = client.start(now)
            self.assertLessEqual(len(out), 1)
            if out:
                self.assertIs(client.pending, out[0])
            sent.extend(out)
        seqs = [r.cseq.seq for r in sent]
        self.assertEqual(seqs, sorted(set(seqs)))
        self.assertEqual({r.call_id for r in sent} or {client.call_id}, {client.call_id})
        self.assertEqual({r.from_.tag for r in sent} or {client.from_tag}, {client.from_tag})
        self.assertIn(client.status.state, ("registered", "failed", "unregistered"))
