# -*- test-case-name: tests.test_sip_digest -*-
"""Tests for sbc.sip.digest: RFC 7616 / RFC 2617 vectors, header parsing, the client answer,
algorithm choice, and the server verifier (nonces, stale, replay, wrong password, hygiene)."""

from __future__ import annotations

import base64
import itertools

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.digest import (
    ClientCredentials,
    DigestChallenge,
    DigestCredentials,
    DigestSecret,
    DigestVerifier,
    NonceCounter,
    Outcome,
    answer_challenge,
    authorize,
    challenges_in,
    compute_ha1,
    credentials_in,
    digest_response,
    format_challenge,
    format_credentials,
    parse_auth_header,
    parse_challenges,
    parse_credentials,
    select_challenges,
)
from sbc.sip.errors import SipParseError
from sbc.sip.message import Request, Response, parse_message

# RFC 7616 §3.9.1 (password per erratum 4495: "Circle of Life").
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CHALLENGE_SHA256 = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
    f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
)
RFC7616_CHALLENGE_MD5 = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
    f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
)
RFC7616_SHA256_RESPONSE = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
RFC7616_MD5_RESPONSE = "8ca523f5e9506fed4657c9700eebdbec"

# RFC 2617 §3.5.
RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_RESPONSE = "6629fae49393a05397450978507c4ef1"

SECRET = b"0123456789abcdef-test-secret"
REALM = "sbc.example.com"
PASSWORD = "s3cret-Pa55"


def fixed(value: str):  # type: ignore[no-untyped-def]
    return lambda: value


def register_request(authorization: bytes | None = None, *, uri: str = "sip:sbc.example.com", header: str = "Authorization",
                     body: bytes = b"") -> Request:
    lines = [
        f"REGISTER {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKreg1",
        "Max-Forwards: 70",
        "From: <sip:alice@sbc.example.com>;tag=a1",
        "To: <sip:alice@sbc.example.com>",
        "Call-ID: reg-1@192.0.2.10",
        "CSeq: 1 REGISTER",
        "Contact: <sip:alice@192.0.2.10:5060>",
    ]
    if authorization is not None:
        lines.append(f"{header}: " + authorization.decode())
    lines.append(f"Content-Length: {len(body)}")
    msg = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    assert isinstance(msg, Request)
    return msg


def counter_bytes():  # type: ignore[no-untyped-def]
    """Deterministic random_bytes: distinct values from a counter."""
    c = itertools.count(1)
    return lambda n: next(c).to_bytes(n, "big")


def lookup(username: str, realm: str) -> DigestSecret | None:
    if username == "alice" and realm == REALM:
        return DigestSecret.from_password(PASSWORD)
    if username == "hashed" and realm == REALM:
        return DigestSecret.from_ha1(
            {"MD5": compute_ha1("MD5", "hashed", REALM, PASSWORD), "SHA-256": compute_ha1("SHA-256", "hashed", REALM, PASSWORD)}
        )
    return None


class VectorTests(SynchronousTestCase):
    """Published test vectors."""

    def test_rfc7616_sha256(self) -> None:
        [ch] = parse_challenges(RFC7616_CHALLENGE_SHA256)
        value = answer_challenge(
            ch, "GET", "/dir/index.html", "Mufasa", "Circle of Life", cnonce_source=fixed(RFC7616_CNONCE), nc=1
        )
        [cr] = parse_credentials(value)
        self.assertEqual(cr.response, RFC7616_SHA256_RESPONSE)
        self.assertEqual((cr.algorithm, cr.qop, cr.nc, cr.cnonce, cr.opaque), ("SHA-256", "auth", "00000001", RFC7616_CNONCE, RFC7616_OPAQUE))

    def test_rfc7616_md5(self) -> None:
        [ch] = parse_challenges(RFC7616_CHALLENGE_MD5)
        value = answer_challenge(
            ch, "GET", "/dir/index.html", "Mufasa", "Circle of Life", cnonce_source=fixed(RFC7616_CNONCE), nc=1
        )
        self.assertEqual(parse_credentials(value)[0].response, RFC7616_MD5_RESPONSE)

    def test_rfc2617(self) -> None:
        [ch] = parse_challenges(RFC2617_CHALLENGE)
        self.assertEqual(ch.algorithm, "MD5")  # the default when absent
        value = answer_challenge(
            ch, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", cnonce_source=fixed("0a4f113b"), nc=1
        )
        [cr] = parse_credentials(value)
        self.assertEqual(cr.response, RFC2617_RESPONSE)
        self.assertEqual(cr.opaque, "5ccc069c403ebaf9f0171e9517f40e41")

    def test_digest_response_from_ha1(self) -> None:
        ha1 = compute_ha1("SHA-256", "Mufasa", "http-auth@example.org", "Circle of Life")
        got = digest_response(
            "SHA-256", ha1, nonce=RFC7616_NONCE, method="GET", uri="/dir/index.html", qop="auth", nc="00000001",
            cnonce=RFC7616_CNONCE,
        )
        self.assertEqual(got, RFC7616_SHA256_RESPONSE)

    def test_rfc2069_no_qop(self) -> None:
        # RFC 2069 style: response = H(HA1:nonce:HA2), no nc/cnonce sent.
        ch = DigestChallenge(realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093")
        value = answer_challenge(ch, "GET", "/dir/index.html", "Mufasa", "CircleOfLife", cnonce_source=fixed("x"), nc=1)
        [cr] = parse_credentials(value)
        self.assertEqual(cr.response, "1949323746fe6a43ef61f9606e7febea")
        self.assertIsNone(cr.qop)
        self.assertIsNone(cr.nc)
        self.assertNotIn(b"cnonce", value)

    def test_auth_int_hashes_body(self) -> None:
        ch = DigestChallenge(realm="r", nonce="n", algorithm="SHA-256", qop=("auth-int",))
        a = answer_challenge(ch, "MESSAGE", "sip:b@x", "u", "p", cnonce_source=fixed("c"), nc=1, body=b"hello")
        b = answer_challenge(ch, "MESSAGE", "sip:b@x", "u", "p", cnonce_source=fixed("c"), nc=1, body=b"hellO")
        self.assertIn(b"qop=auth-int", a)
        self.assertNotEqual(parse_credentials(a)[0].response, parse_credentials(b)[0].response)

    def test_sess_algorithm(self) -> None:
        ch = DigestChallenge(realm="r", nonce="n", algorithm="SHA-256-sess", qop=("auth",))
        value = answer_challenge(ch, "INVITE", "sip:b@x", "u", "p", cnonce_source=fixed("cn"), nc=3)
        [cr] = parse_credentials(value)
        base = compute_ha1("SHA-256", "u", "r", "p")
        self.assertEqual(cr.algorithm, "SHA-256-sess")
        self.assertEqual(cr.nc, "00000003")
        self.assertEqual(
            cr.response,
            digest_response("SHA-256-sess", base, nonce="n", method="INVITE", uri="sip:b@x", qop="auth", nc="00000003", cnonce="cn"),
        )
        self.assertNotEqual(
            cr.response,
            digest_response("SHA-256", base, nonce="n", method="INVITE", uri="sip:b@x", qop="auth", nc="00000003", cnonce="cn"),
        )

    def test_userhash(self) -> None:
        import hashlib

        ch = DigestChallenge(realm="r", nonce="n", algorithm="SHA-256", qop=("auth",), userhash=True)
        [cr] = parse_credentials(answer_challenge(ch, "REGISTER", "sip:x", "bob", "p", cnonce_source=fixed("c"), nc=1))
        self.assertTrue(cr.userhash)
        self.assertEqual(cr.username, hashlib.sha256(b"bob:r").hexdigest())

    def test_unanswerable(self) -> None:
        ch = DigestChallenge(realm="r", nonce="n", algorithm="SHA-512-256")
        self.assertFalse(ch.supported)
        self.assertRaises(ValueError, answer_challenge, ch, "GET", "/", "u", "p", cnonce_source=fixed("c"), nc=1)
        ok = DigestChallenge(realm="r", nonce="n")
        self.assertRaises(ValueError, answer_challenge, ok, "GET", "/", "u", "p", cnonce_source=fixed("c"), nc=0)


class ParseTests(SynchronousTestCase):
    def test_several_challenges_one_header(self) -> None:
        value = (
            b'Basic realm="legacy", Digest realm="a", nonce="n1", algorithm=SHA-256, qop="auth",'
            b'  Digest realm="a",nonce="n1",algorithm=MD5, Bearer abc==, Negotiate'
        )
        chs = parse_challenges(value)
        self.assertEqual([(c.realm, c.algorithm, c.qop) for c in chs], [("a", "SHA-256", ("auth",)), ("a", "MD5", ())])

    def test_scheme_case_and_token_values(self) -> None:
        [ch] = parse_challenges('digest REALM=r,NONCE=abc, stale=TRUE, algorithm=md5-sess, qop=auth')
        self.assertEqual((ch.realm, ch.nonce, ch.stale, ch.algorithm, ch.qop), ("r", "abc", True, "MD5-sess", ("auth",)))

    def test_escapes(self) -> None:
        [ch] = parse_challenges(b'Digest realm="a \\"quoted\\" \\\\ realm", nonce="x\\y"')
        self.assertEqual(ch.realm, 'a "quoted" \\ realm')
        self.assertEqual(ch.nonce, "xy")
        # Formatting escapes back, and parsing that gives the same challenge.
        self.assertEqual(parse_challenges(format_challenge(ch)), [ch])

    def test_commas_inside_quotes(self) -> None:
        [ch] = parse_challenges('Digest realm="a, Digest realm=b", nonce="n,1"')
        self.assertEqual((ch.realm, ch.nonce), ("a, Digest realm=b", "n,1"))

    def test_unknown_params_kept(self) -> None:
        [ch] = parse_challenges('Digest realm="r", nonce="n", foo=bar, baz="q"')
        self.assertIn(("foo", "bar"), ch.params)

    def test_unknown_scheme_only(self) -> None:
        self.assertEqual(parse_challenges('Basic realm="x"'), [])
        self.assertEqual(parse_challenges(""), [])
        self.assertEqual(parse_credentials("Bearer abcdef=="), [])

    def test_token68(self) -> None:
        self.assertEqual(parse_auth_header("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="), [("Basic", "QWxhZGRpbjpvcGVuIHNlc2FtZQ==")])

    def test_malformed(self) -> None:
        for bad in (
            'Digest realm="r" nonce="n"',  # missing comma
            'Digest realm="r, nonce="n"',  # unterminated quote
            'Digest realm="r", realm="s", nonce="n"',  # duplicate
            'Digest realm="r"',  # no nonce
            'Digest nonce="n"',  # no realm
            'Digest abc==',  # token68 for Digest
            "Digest realm=, nonce=n",
            '"Digest" realm="r"',
            'Digest realm="a\x00b", nonce="n"',
            "Digest realm=r, nonce=n, =x",
        ):
            self.assertRaises(SipParseError, parse_challenges, bad)

    def test_challenges_in_response(self) -> None:
        resp = parse_message(
            b"SIP/2.0 407 Proxy Authentication Required\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\n"
            b"From: <sip:a@x>;tag=1\r\nTo: <sip:a@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
            b'Proxy-Authenticate: Digest realm="p", nonce="pn", algorithm=MD5\r\n'
            b'WWW-Authenticate: Digest realm="w", nonce="wn"\r\n'
            b'Proxy-Authenticate: Digest realm="p", nonce="pn", algorithm=SHA-256\r\n'
            b"Content-Length: 0\r\n\r\n"
        )
        assert isinstance(resp, Response)
        chs = challenges_in(resp)
        self.assertEqual([(c.realm, c.proxy) for c in chs], [("w", False), ("p", True), ("p", True)])
        self.assertEqual(chs[1].response_header, "Proxy-Authorization")
        self.assertEqual(chs[0].response_header, "Authorization")

    def test_challenges_in_lenient(self) -> None:
        resp = parse_message(
            b"SIP/2.0 401 Unauthorized\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\n"
            b"From: <sip:a@x>;tag=1\r\nTo: <sip:a@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n"
            b'WWW-Authenticate: Digest realm="broken\r\n'
            b'WWW-Authenticate: Digest realm="w", nonce="wn"\r\n'
            b"Content-Length: 0\r\n\r\n"
        )
        assert isinstance(resp, Response)
        self.assertRaises(SipParseError, challenges_in, resp)
        self.assertEqual([c.realm for c in challenges_in(resp, strict=False)], ["w"])

    @given(
        username=st.text(max_size=20).filter(lambda s: not any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in s)),
        uri=st.text(min_size=1, max_size=20).filter(lambda s: not any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in s)),
        nc=st.integers(1, 0xFFFFFFFF),
    )
    def test_credentials_round_trip(self, username: str, uri: str, nc: int) -> None:
        cr = DigestCredentials(username=username, realm="r", nonce="n", uri=uri, response="ab", algorithm="MD5",
                               qop="auth", nc=f"{nc:08x}", cnonce="c")
        self.assertEqual(parse_credentials(format_credentials(cr)), [cr])

    def test_credentials_parse_and_format(self) -> None:
        cr = DigestCredentials(
            username='J"o', realm="r", nonce="n", uri="sip:x", response="ab", algorithm="SHA-256", qop="auth",
            nc="0000000a", cnonce="c", opaque="o",
        )
        [back] = parse_credentials(format_credentials(cr))
        self.assertEqual(back, cr)
        self.assertEqual(back.nc_value, 10)

    def test_credentials_required_fields(self) -> None:
        self.assertRaises(SipParseError, parse_credentials, 'Digest username="u", realm="r", nonce="n", uri="x"')
        self.assertRaises(
            SipParseError, parse_credentials, 'Digest username="u", realm="r", nonce="n", uri="x", response="a", qop=auth'
        )
        self.assertRaises(
            SipParseError,
            parse_credentials,
            'Digest username="u", realm="r", nonce="n", uri="x", response="a", qop=auth, nc=1, cnonce="c"',
        )

    def test_username_star(self) -> None:
        [cr] = parse_credentials(
            "Digest username*=UTF-8''J%C3%A4s%C3%B8n%20Doe, realm=\"r\", nonce=\"n\", uri=\"x\", response=\"a\""
        )
        self.assertEqual(cr.username, "J\u00e4s\u00f8n Doe")
        self.assertRaises(
            SipParseError, parse_credentials, "Digest username*=latin1''x, realm=\"r\", nonce=\"n\", uri=\"x\", response=\"a\""
        )

    @given(st.binary(max_size=200))
    def test_arbitrary_bytes_only_parse_errors(self, data: bytes) -> None:
        for fn in (parse_challenges, parse_credentials):
            try:
                result = fn(data)
            except SipParseError:
                continue
            self.assertIsInstance(result, list)

    @given(
        st.lists(
            st.one_of(
                st.sampled_from(
                    ["Digest", "digest", "Basic", " ", ",", "=", '"', "\\", "realm", "nonce", "username", "uri",
                     "response", "qop", "nc", "cnonce", "auth", "algorithm", "SHA-256", "MD5", "00000001", "stale",
                     "true", "username*", "UTF-8''", "%C3", "\t", "abc=="]
                ),
                st.text(max_size=4),
            ),
            max_size=40,
        )
    )
    def test_structured_junk_only_parse_errors(self, parts: list[str]) -> None:
        text = "".join(parts)
        for fn in (parse_challenges, parse_credentials):
            try:
                result = fn(text)
            except SipParseError:
                continue
            self.assertIsInstance(result, list)

    @given(
        realm=st.text(min_size=1, max_size=20).filter(lambda s: not any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in s)),
        nonce=st.text(min_size=1, max_size=20).filter(lambda s: not any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in s)),
        algorithm=st.sampled_from(["MD5", "MD5-sess", "SHA-256", "SHA-256-sess"]),
        stale=st.booleans(),
        qop=st.sampled_from([(), ("auth",), ("auth", "auth-int")]),
    )
    def test_challenge_round_trip(self, realm: str, nonce: str, algorithm: str, stale: bool, qop: tuple[str, ...]) -> None:
        ch = DigestChallenge(realm=realm, nonce=nonce, algorithm=algorithm, stale=stale, qop=qop)
        self.assertEqual(parse_challenges(format_challenge(ch)), [ch])


class SelectionTests(SynchronousTestCase):
    def test_sha256_preferred_whatever_the_order(self) -> None:
        md5 = DigestChallenge(realm="r", nonce="n", algorithm="MD5", qop=("auth",))
        sha = DigestChallenge(realm="r", nonce="n", algorithm="SHA-256", qop=("auth",))
        self.assertEqual(select_challenges([md5, sha]), [sha])
        self.assertEqual(select_challenges([sha, md5]), [sha])

    def test_md5_when_only_md5(self) -> None:
        md5 = DigestChallenge(realm="r", nonce="n", algorithm="MD5", qop=("auth",))
        odd = DigestChallenge(realm="r", nonce="n", algorithm="SHA-512-256", qop=("auth",))
        self.assertEqual(select_challenges([odd, md5]), [md5])
        self.assertEqual(select_challenges([odd]), [])

    def test_one_per_realm_and_kind(self) -> None:
        a = DigestChallenge(realm="a", nonce="n", algorithm="MD5")
        b = DigestChallenge(realm="b", nonce="n", algorithm="MD5")
        pa = DigestChallenge(realm="a", nonce="n", algorithm="MD5", proxy=True)
        self.assertEqual(select_challenges([a, b, pa]), [a, b, pa])
        self.assertEqual(select_challenges([a, b, pa], realm="b"), [b])

    def test_local_preference(self) -> None:
        md5 = DigestChallenge(realm="r", nonce="n", algorithm="MD5")
        sha = DigestChallenge(realm="r", nonce="n", algorithm="SHA-256")
        self.assertEqual(select_challenges([sha, md5], prefer=("MD5",)), [md5])

    def test_authorize_request(self) -> None:
        req = register_request()
        resp_chs = parse_challenges(
            'Digest realm="sbc.example.com", nonce="N", algorithm=MD5, qop="auth", '
            'Digest realm="sbc.example.com", nonce="N", algorithm=SHA-256, qop="auth"'
        )
        counter = NonceCounter()
        creds = ClientCredentials("alice", PASSWORD)
        out = authorize(req, resp_chs, creds, counter=counter, cnonce_source=fixed("c1"))
        assert out is not None
        [cr] = credentials_in(out)
        self.assertEqual((cr.algorithm, cr.nc, cr.uri), ("SHA-256", "00000001", "sip:sbc.example.com"))
        # Same nonce again: nc goes up; the old header is replaced, not duplicated.
        again = authorize(out, resp_chs, creds, counter=counter, cnonce_source=fixed("c2"))
        assert again is not None
        self.assertEqual([c.nc for c in credentials_in(again)], ["00000002"])
        # A new nonce starts at 1.
        fresh = parse_challenges('Digest realm="sbc.example.com", nonce="M", algorithm=SHA-256, qop="auth"')
        third = authorize(again, fresh, creds, counter=counter, cnonce_source=fixed("c3"))
        assert third is not None
        self.assertEqual([c.nc for c in credentials_in(third)], ["00000001"])

    def test_authorize_realm_restriction(self) -> None:
        chs = parse_challenges('Digest realm="evil.example", nonce="N", qop="auth"')
        out = authorize(register_request(), chs, ClientCredentials("alice", PASSWORD, realm=REALM), counter=NonceCounter())
        self.assertIsNone(out)

    def test_authorize_proxy(self) -> None:
        chs = parse_challenges('Digest realm="p", nonce="N", qop="auth"', proxy=True)
        out = authorize(register_request(), chs, ClientCredentials("alice", PASSWORD), counter=NonceCounter())
        assert out is not None
        self.assertEqual(len(credentials_in(out, proxy=True)), 1)
        self.assertEqual(credentials_in(out), [])

    def test_nonce_counter_bounded(self) -> None:
        c = NonceCounter(limit=2)
        self.assertEqual([c.next("r", "a"), c.next("r", "a"), c.next("r", "b")], [1, 2, 1])
        c.next("r", "c")  # forgets "a"
        self.assertEqual(c.next("r", "a"), 1)


class VerifierTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.verifier = DigestVerifier(REALM, lookup, SECRET, nonce_ttl=300, random_bytes=counter_bytes())

    def challenge(self, now: float = 1000.0, code: int = 401, **kw) -> list[DigestChallenge]:  # type: ignore[no-untyped-def]
        out: list[DigestChallenge] = []
        for name, value in self.verifier.challenge(code, now=now, **kw):
            out.extend(parse_challenges(value, proxy=name == "Proxy-Authenticate"))
        return out

    def answer(self, ch: DigestChallenge, *, nc: int = 1, user: str = "alice", password: str = PASSWORD,
               uri: str = "sip:sbc.example.com", header: str = "Authorization") -> Request:
        value = answer_challenge(ch, "REGISTER", uri, user, password, cnonce_source=fixed("cn"), nc=nc)
        return register_request(value, header=header)

    def test_challenge_headers(self) -> None:
        pairs = self.verifier.challenge(401, now=1000.0)
        self.assertEqual([n for n, _ in pairs], ["WWW-Authenticate", "WWW-Authenticate"])
        chs = self.challenge()
        self.assertEqual([c.algorithm for c in chs], ["SHA-256", "MD5"])
        self.assertEqual({c.nonce for c in chs}.__len__(), 1)
        self.assertEqual(chs[0].qop, ("auth",))
        self.assertEqual(chs[0].realm, REALM)
        self.assertFalse(chs[0].stale)
        proxy = self.verifier.challenge(407, ("MD5",), now=1000.0)
        self.assertEqual([n for n, _ in proxy], ["Proxy-Authenticate"])
        self.assertRaises(ValueError, self.verifier.challenge, 403, now=1.0)
        self.assertRaises(ValueError, self.verifier.challenge, 401, ("MD5-sess",), now=1.0)

    def test_nonces_differ(self) -> None:
        a = self.challenge(1000.0)[0].nonce
        b = self.challenge(1000.0)[0].nonce
        self.assertNotEqual(a, b)

    def test_success_sha256_and_md5(self) -> None:
        sha, md5 = self.challenge()
        r1 = self.verifier.verify(self.answer(sha), 1001.0)
        self.assertTrue(r1.ok)
        self.assertEqual((r1.username, r1.algorithm), ("alice", "SHA-256"))
        self.assertIsNone(r1.status())
        md5_fresh = self.challenge(1002.0)[1]
        self.assertTrue(self.verifier.verify(self.answer(md5_fresh), 1003.0).ok)

    def test_ha1_secret(self) -> None:
        sha, md5 = self.challenge()
        self.assertTrue(self.verifier.verify(self.answer(sha, user="hashed"), 1001.0).ok)
        # Both challenges share one nonce, so the count must go up across algorithms too.
        self.assertEqual(self.verifier.verify(self.answer(md5, user="hashed"), 1001.0).outcome, Outcome.REPLAYED)
        self.assertTrue(self.verifier.verify(self.answer(md5, user="hashed", nc=2), 1001.0).ok)

    def test_plain_string_password_lookup(self) -> None:
        v = DigestVerifier(REALM, lambda u, r: PASSWORD if u == "alice" else None, SECRET, random_bytes=counter_bytes())
        [name_value] = v.challenge(401, ("SHA-256",), now=5.0)
        [ch] = parse_challenges(name_value[1])
        self.assertTrue(v.verify(self.answer(ch), 6.0).ok)

    def test_wrong_password(self) -> None:
        sha, _ = self.challenge()
        r = self.verifier.verify(self.answer(sha, password="guess"), 1001.0)
        self.assertEqual(r.outcome, Outcome.FAILED)
        self.assertEqual(r.status(), 403)
        self.assertNotIn("guess", repr(r))

    def test_unknown_user_same_outcome(self) -> None:
        sha, _ = self.challenge()
        wrong_pw = self.verifier.verify(self.answer(sha, password="guess"), 1001.0)
        unknown = self.verifier.verify(self.answer(sha, user="mallory"), 1001.0)
        self.assertEqual((unknown.outcome, unknown.reason), (wrong_pw.outcome, wrong_pw.reason))

    def test_replayed_nonce_count_refused(self) -> None:
        sha, _ = self.challenge()
        req = self.answer(sha, nc=1)
        self.assertTrue(self.verifier.verify(req, 1001.0).ok)
        replay = self.verifier.verify(req, 1002.0)
        self.assertEqual(replay.outcome, Outcome.REPLAYED)
        self.assertEqual(replay.status(), 403)
        # A lower count is refused too; a higher one is accepted.
        self.assertTrue(self.verifier.verify(self.answer(sha, nc=5), 1003.0).ok)
        self.assertEqual(self.verifier.verify(self.answer(sha, nc=4), 1004.0).outcome, Outcome.REPLAYED)
        self.assertEqual(self.verifier.verify(self.answer(sha, nc=5), 1004.0).outcome, Outcome.REPLAYED)
        self.assertTrue(self.verifier.verify(self.answer(sha, nc=6), 1005.0).ok)

    def test_stale_nonce(self) -> None:
        sha, _ = self.challenge(1000.0)
        self.assertTrue(self.verifier.verify(self.answer(sha), 1300.0).ok)  # exactly at the TTL
        r = self.verifier.verify(self.answer(sha, nc=2), 1301.0)
        self.assertEqual(r.outcome, Outcome.STALE)
        self.assertTrue(r.needs_challenge)
        self.assertEqual(r.status(407), 407)
        again = [c for name, v in self.verifier.challenge(401, now=1301.0, stale=r.stale) for c in parse_challenges(v)]
        self.assertTrue(all(c.stale for c in again))

    def test_expired_nonce_with_wrong_password_is_not_stale(self) -> None:
        sha, _ = self.challenge(1000.0)
        r = self.verifier.verify(self.answer(sha, password="guess"), 2000.0)
        self.assertEqual(r.outcome, Outcome.FAILED)

    def test_forged_nonce(self) -> None:
        other = DigestVerifier(REALM, lookup, b"another-secret-of-16+bytes", random_bytes=counter_bytes())
        [(_, value)] = other.challenge(401, ("SHA-256",), now=1000.0)
        [ch] = parse_challenges(value)
        r = self.verifier.verify(self.answer(ch), 1001.0)
        self.assertEqual(r.outcome, Outcome.INVALID_NONCE)
        self.assertEqual(r.status(), 401)
        for nonce in ("short", "x" * 48, RFC7616_NONCE):
            ch2 = DigestChallenge(realm=REALM, nonce=nonce, algorithm="SHA-256", qop=("auth",))
            self.assertEqual(self.verifier.verify(self.answer(ch2), 1001.0).outcome, Outcome.INVALID_NONCE)

    def test_tampered_timestamp(self) -> None:
        sha, _ = self.challenge(1000.0)
        raw = bytearray(base64.urlsafe_b64decode(sha.nonce))
        raw[7] ^= 0x01
        tampered = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
        ch = DigestChallenge(realm=REALM, nonce=tampered, algorithm="SHA-256", qop=("auth",))
        self.assertEqual(self.verifier.verify(self.answer(ch), 1001.0).outcome, Outcome.INVALID_NONCE)

    def test_future_nonce_refused(self) -> None:
        sha, _ = self.challenge(5000.0)
        self.assertEqual(self.verifier.verify(self.answer(sha), 1000.0).outcome, Outcome.INVALID_NONCE)

    def test_other_realm_is_missing(self) -> None:
        ch = DigestChallenge(realm="elsewhere", nonce="n", qop=("auth",))
        r = self.verifier.verify(self.answer(ch), 1.0)
        self.assertEqual(r.outcome, Outcome.MISSING)
        self.assertEqual(self.verifier.verify(register_request(), 1.0).outcome, Outcome.MISSING)

    def test_malformed_header(self) -> None:
        r = self.verifier.verify(register_request(b'Digest username="alice", realm="x'), 1.0)
        self.assertEqual(r.outcome, Outcome.MALFORMED)
        self.assertEqual(r.status(), 400)

    def test_uri_mismatch(self) -> None:
        sha, _ = self.challenge()
        value = answer_challenge(sha, "REGISTER", "sip:other.example.com", "alice", PASSWORD, cnonce_source=fixed("c"), nc=1)
        self.assertEqual(self.verifier.verify(register_request(value), 1001.0).outcome, Outcome.FAILED)

    def test_method_bound(self) -> None:
        sha, _ = self.challenge()
        value = answer_challenge(sha, "INVITE", "sip:sbc.example.com", "alice", PASSWORD, cnonce_source=fixed("c"), nc=1)
        self.assertEqual(self.verifier.verify(register_request(value), 1001.0).outcome, Outcome.FAILED)

    def test_no_qop_refused(self) -> None:
        sha, _ = self.challenge()
        legacy = DigestChallenge(realm=sha.realm, nonce=sha.nonce, algorithm="SHA-256")
        r = self.verifier.verify(self.answer(legacy), 1001.0)
        self.assertEqual(r.outcome, Outcome.FAILED)

    def test_algorithm_not_enabled(self) -> None:
        v = DigestVerifier(REALM, lookup, SECRET, algorithms=("SHA-256",), random_bytes=counter_bytes())
        [(_, value)] = v.challenge(401, now=10.0)
        [sha] = parse_challenges(value)
        md5 = DigestChallenge(realm=REALM, nonce=sha.nonce, algorithm="MD5", qop=("auth",))
        self.assertEqual(v.verify(self.answer(md5), 11.0).outcome, Outcome.FAILED)
        self.assertTrue(v.verify(self.answer(sha), 11.0).ok)

    def test_proxy_authorization(self) -> None:
        [sha] = self.challenge(code=407, algorithms=("SHA-256",))
        self.assertTrue(sha.proxy)
        req = self.answer(sha, header="Proxy-Authorization")
        self.assertEqual(self.verifier.verify(req, 1001.0).outcome, Outcome.MISSING)
        self.assertTrue(self.verifier.verify(req, 1001.0, proxy=True).ok)

    def test_auth_int(self) -> None:
        v = DigestVerifier(REALM, lookup, SECRET, qop=("auth-int",), random_bytes=counter_bytes())
        [(_, value), _md5] = v.challenge(401, now=10.0)
        [ch] = parse_challenges(value)
        good = answer_challenge(ch, "REGISTER", "sip:sbc.example.com", "alice", PASSWORD, cnonce_source=fixed("c"), nc=1,
                                body=b"payload")
        self.assertTrue(v.verify(register_request(good, body=b"payload"), 11.0).ok)
        self.assertEqual(v.verify(register_request(good, body=b"tampered"), 11.0).outcome, Outcome.FAILED)

    def test_second_good_credential_accepted(self) -> None:
        sha, md5 = self.challenge()
        bad = answer_challenge(sha, "REGISTER", "sip:sbc.example.com", "alice", "nope", cnonce_source=fixed("c"), nc=1)
        good = answer_challenge(md5, "REGISTER", "sip:sbc.example.com", "alice", PASSWORD, cnonce_source=fixed("c"), nc=1)
        req = register_request(bad).append_header("Authorization", good)
        self.assertTrue(self.verifier.verify(req, 1001.0).ok)

    @given(st.lists(st.integers(1, 20), min_size=1, max_size=15))
    def test_only_increasing_counts_accepted(self, counts: list[int]) -> None:
        v = DigestVerifier(REALM, lookup, SECRET, random_bytes=counter_bytes())
        [(_, value)] = v.challenge(401, ("SHA-256",), now=10.0)
        [ch] = parse_challenges(value)
        highest = 0
        for nc in counts:
            result = v.verify(self.answer(ch, nc=nc), 11.0)
            self.assertEqual(result.ok, nc > highest)
            if result.ok:
                highest = nc
            else:
                self.assertEqual(result.outcome, Outcome.REPLAYED)

    def test_credentials_examined_are_bounded(self) -> None:
        sha, md5 = self.challenge()
        req = register_request(
            answer_challenge(sha, "REGISTER", "sip:sbc.example.com", "alice", "nope", cnonce_source=fixed("c"), nc=1)
        )
        for i in range(2, 6):
            bad = answer_challenge(sha, "REGISTER", "sip:sbc.example.com", "alice", "nope", cnonce_source=fixed("c"), nc=i)
            req = req.append_header("Authorization", bad)
        good = answer_challenge(md5, "REGISTER", "sip:sbc.example.com", "alice", PASSWORD, cnonce_source=fixed("c"), nc=9)
        req = req.append_header("Authorization", good)
        self.assertEqual(self.verifier.verify(req, 1001.0).outcome, Outcome.FAILED)

    def test_clock_stepping_back_does_not_reopen_replays(self) -> None:
        sha, _ = self.challenge(1000.0)
        req = self.answer(sha)
        self.assertTrue(self.verifier.verify(req, 1000.0).ok)
        # Much later the entry is purged as expired...
        [later, _m] = self.challenge(2000.0)
        self.assertTrue(self.verifier.verify(self.answer(later), 2000.0).ok)
        self.assertEqual(self.verifier.tracked, 1)
        # ...then the clock steps back: the old request is still refused.
        self.assertFalse(self.verifier.verify(req, 1001.0).ok)

    def test_memory_bounded_without_reopening_replays(self) -> None:
        v = DigestVerifier(REALM, lookup, SECRET, max_nonces=3, nonce_ttl=300, random_bytes=counter_bytes())

        def fresh(now: float) -> DigestChallenge:
            return [c for _, val in v.challenge(401, ("SHA-256",), now=now) for c in parse_challenges(val)][0]

        first = fresh(100.0)
        req = self.answer(first)
        self.assertTrue(v.verify(req, 100.0).ok)
        for i in range(5):
            self.assertTrue(v.verify(self.answer(fresh(101.0 + i)), 101.0 + i).ok)
        self.assertLessEqual(v.tracked, 3)
        # The first nonce was evicted: its old request is not accepted again (stale, so the
        # client gets a new nonce), and neither is a new count on it.
        self.assertEqual(v.verify(req, 110.0).outcome, Outcome.STALE)
        self.assertEqual(v.verify(self.answer(first, nc=2), 110.0).outcome, Outcome.STALE)

    def test_expired_entries_purged(self) -> None:
        for i in range(20):
            [sha, _] = self.challenge(1000.0 + i)
            self.assertTrue(self.verifier.verify(self.answer(sha), 1000.0 + i).ok)
        self.assertEqual(self.verifier.tracked, 20)
        [sha, _] = self.challenge(5000.0)
        self.assertTrue(self.verifier.verify(self.answer(sha), 5000.0).ok)
        self.assertEqual(self.verifier.tracked, 1)

    def test_bad_construction(self) -> None:
        self.assertRaises(ValueError, DigestVerifier, REALM, lookup, b"short")
        self.assertRaises(ValueError, DigestVerifier, REALM, lookup, SECRET, algorithms=("SHA-1",))
        self.assertRaises(ValueError, DigestVerifier, REALM, lookup, SECRET, qop=("auth-conf",))
        self.assertRaises(ValueError, DigestSecret)

    @given(st.binary(max_size=300))
    def test_verify_never_raises(self, junk: bytes) -> None:
        header = junk.replace(b"\r", b"").replace(b"\n", b"")
        try:
            req = register_request(header)
        except (SipParseError, UnicodeDecodeError):
            return
        result = self.verifier.verify(req, 1000.0)
        self.assertFalse(result.ok)


class HygieneTests(SynchronousTestCase):
    """No password, HA1, response hash or nonce key in any repr/str."""

    def test_reprs(self) -> None:
        ha1 = compute_ha1("SHA-256", "alice", REALM, PASSWORD)
        objects = [
            ClientCredentials("alice", PASSWORD),
            DigestSecret.from_password(PASSWORD),
            DigestSecret.from_ha1({"SHA-256": ha1}),
            DigestVerifier(REALM, lookup, SECRET),
            NonceCounter(),
        ]
        ch = DigestChallenge(realm=REALM, nonce="n", algorithm="SHA-256", qop=("auth",))
        value = answer_challenge(ch, "REGISTER", "sip:x", "alice", PASSWORD, cnonce_source=fixed("c"), nc=1)
        [cr] = parse_credentials(value)
        objects.append(cr)
        v = DigestVerifier(REALM, lookup, SECRET, random_bytes=counter_bytes())
        [(_, cv), _m] = v.challenge(401, now=1.0)
        [vch] = parse_challenges(cv)
        objects.append(v.verify(register_request(answer_challenge(vch, "REGISTER", "sip:sbc.example.com", "alice", PASSWORD,
                                                                  cnonce_source=fixed("c"), nc=1)), 2.0))
        for obj in objects:
            for text in (repr(obj), str(obj)):
                self.assertNotIn(PASSWORD, text)
                self.assertNotIn(ha1, text)
                self.assertNotIn(cr.response, text)
                self.assertNotIn(SECRET.decode(), text)
                self.assertNotIn(repr(SECRET), text)
