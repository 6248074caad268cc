# -*- test-case-name: tests.test_b2bua_auth -*-
"""Digest authentication of new calls per trunk (``[trunk.auth]``, :mod:`sbc.b2bua.auth`):
challenges, SHA-256 and MD5 answers, wrong passwords, replayed nonce-counts, stale nonces,
digest-only trunks, allowlist AND digest, the configuration section -- on the in-memory
network of :mod:`tests.test_b2bua_harness` with fake time."""

from __future__ import annotations

import itertools
from ipaddress import ip_network

import attrs
from twisted.trial.unittest import SynchronousTestCase

from sbc.b2bua.auth import Admit, Challenge, Refuse, TrunkAuth, is_digest_only
from sbc.config import AuthConfig, ConfigError, DigestUsers, TrunkConfig, load_config_text
from sbc.sip.digest import ClientCredentials, NonceCounter, authorize, challenges_in, parse_challenges
from sbc.sip.endpoint import Peer
from sbc.sip.message import Request, Response

from .test_b2bua_harness import TRUNK, Net, ack_non2xx, invite, reply

OUTSIDE = Peer("udp", "198.51.100.7", 5060, 1)  # in no trunk's allow
PASSWORD = "s3cret-Pa55word"

DIGEST_ONLY = TrunkConfig(
    name="carrier", agent_uri="sip:{user}@127.0.0.1:5090",
    auth=AuthConfig(users=DigestUsers({"alice": PASSWORD}), realm="sbc.example.com"))

_cnonces = (f"cn{i:06d}" for i in itertools.count())


def cnonce() -> str:
    return next(_cnonces)


def only(testcase: SynchronousTestCase, messages: list, kind: type = Response):
    testcase.assertEqual(len(messages), 1, messages)
    testcase.assertIsInstance(messages[0], kind)
    return messages[0]


class AuthTestCase(SynchronousTestCase):
    trunks = (TRUNK, DIGEST_ONLY)
    peer = OUTSIDE

    def setUp(self) -> None:
        self.net = Net(peer=self.peer, trunks=list(self.trunks))

    def challenge(self, inv: Request) -> Response:
        """Send ``inv``; expect a 401 (and ACK it)."""
        self.net.from_pbx(inv)
        r = only(self, self.net.pbx_take())
        self.assertEqual(r.status, 401, r)
        self.assertEqual(self.net.agent_take(), [])
        self.net.from_pbx(ack_non2xx(inv, r))
        self.assertEqual(self.net.pbx_take(), [])  # the ACK is absorbed, never challenged
        return r

    def answered(self, inv: Request, r: Response, *, user: str = "alice", password: str = PASSWORD,
                 prefer: tuple[str, ...] = ("SHA-256", "MD5"), counter: NonceCounter | None = None) -> Request:
        """``inv`` again (next CSeq, new branch) with credentials answering ``r``."""
        again = invite(call_id=inv.call_id, cseq=inv.cseq.seq + 1, from_tag=inv.from_.tag or "")
        out = authorize(again, challenges_in(r), ClientCredentials(user, password),
                        counter=counter or NonceCounter(), cnonce_source=cnonce, prefer=prefer)
        assert out is not None
        return out

    def admitted(self, inv: Request) -> Request:
        """Send ``inv``; expect 100 Trying and the B leg's INVITE, which is returned."""
        self.net.from_pbx(inv)
        self.assertEqual(only(self, self.net.pbx_take()).status, 100)
        b_inv = only(self, self.net.agent_take(), Request)
        self.assertEqual(b_inv.method, "INVITE")
        return b_inv

    def refused(self, inv: Request, status: int = 403) -> Response:
        self.net.from_pbx(inv)
        r = only(self, self.net.pbx_take())
        self.assertEqual(r.status, status, r)
        self.assertEqual(self.net.agent_take(), [])
        return r

    def auth_notices(self) -> list:
        return [n for n in self.net.b2b.notices() if n.reason == "auth-failed"]


class ChallengeTests(AuthTestCase):
    def test_challenge_one_header_per_algorithm_sha256_first(self) -> None:
        r = self.challenge(invite())
        values = r.get_all("WWW-Authenticate")
        self.assertEqual(len(values), 2)
        self.assertEqual(r.get_all("Proxy-Authenticate"), [])
        chs = [parse_challenges(v)[0] for v in values]
        self.assertEqual([c.algorithm for c in chs], ["SHA-256", "MD5"])
        self.assertEqual({c.realm for c in chs}, {"sbc.example.com"})
        self.assertEqual({c.qop for c in chs}, {("auth",)})
        self.assertEqual(len({c.nonce for c in chs}), 1)
        self.assertFalse(any(c.stale for c in chs))
        self.assertEqual(self.auth_notices(), [])  # a challenge is not a failure
        self.assertIsNotNone(r.to.tag)

    def test_fresh_nonce_per_challenge(self) -> None:
        first = challenges_in(self.challenge(invite(call_id="c1")))[0].nonce
        second = challenges_in(self.challenge(invite(call_id="c2")))[0].nonce
        self.assertNotEqual(first, second)

    def test_sha256_answer_admitted(self) -> None:
        inv = invite()
        r = self.challenge(inv)
        b_inv = self.admitted(self.answered(inv, r))
        self.assertEqual(b_inv.get_all("Authorization"), [])
        [call] = self.net.b2b.calls.values()
        self.assertEqual(call.trunk, "carrier")
        self.assertEqual(self.net.b2b.stats.get("auth-ok"), 1)

    def test_md5_answer_admitted(self) -> None:
        inv = invite()
        r = self.challenge(inv)
        again = self.answered(inv, r, prefer=("MD5",))
        self.assertIn(b"algorithm=MD5", again.get("Authorization") or b"")
        self.admitted(again)
        self.assertEqual([c.trunk for c in self.net.b2b.calls.values()], ["carrier"])

    def test_wrong_password_403_logged_without_credentials(self) -> None:
        inv = invite()
        again = self.answered(inv, self.challenge(inv), password="not-the-password")
        self.refused(again, 403)
        [notice] = self.auth_notices()
        self.assertEqual(notice.status, 403)
        self.assertIn("alice", notice.detail)
        self.assertNotIn("not-the-password", notice.detail)
        auth = (again.get("Authorization") or b"").decode()
        for secret in (PASSWORD, auth.split('response="')[1].split('"')[0], auth.split('nonce="')[1].split('"')[0]):
            self.assertNotIn(secret, repr(notice))
        self.assertEqual(self.net.b2b.calls, {})

    def test_unknown_user_403(self) -> None:
        inv = invite()
        self.refused(self.answered(inv, self.challenge(inv), user="mallory"), 403)
        self.assertEqual(len(self.auth_notices()), 1)

    def test_replayed_nonce_count_403(self) -> None:
        inv = invite()
        again = self.answered(inv, self.challenge(inv))
        self.admitted(again)
        # The same credentials on a new INVITE (new branch, new Call-ID): nc 1 was used.
        replay = invite(call_id="replay@198.51.100.7", cseq=2)
        replay = replay.append_header("Authorization", again.get("Authorization") or b"")
        self.refused(replay, 403)
        [notice] = self.auth_notices()
        self.assertIn("nonce-count", notice.detail)
        self.assertEqual(len(self.net.b2b.calls), 1)

    def test_next_nonce_count_admitted(self) -> None:
        inv = invite()
        r = self.challenge(inv)
        counter = NonceCounter()
        self.admitted(self.answered(inv, r, counter=counter))
        second = invite(call_id="second@198.51.100.7")
        again = authorize(second, challenges_in(r), ClientCredentials("alice", PASSWORD), counter=counter,
                          cnonce_source=cnonce)
        assert again is not None
        self.assertIn(b"nc=00000002", again.get("Authorization") or b"")
        self.admitted(again)
        self.assertEqual(len(self.net.b2b.calls), 2)

    def test_stale_nonce_401_stale_true(self) -> None:
        inv = invite()
        r = self.challenge(inv)
        again = self.answered(inv, r)
        self.net.now += 301  # nonce_ttl 300
        self.net.from_pbx(again)
        stale = only(self, self.net.pbx_take())
        self.assertEqual(stale.status, 401)
        chs = challenges_in(stale)
        self.assertTrue(chs and all(c.stale for c in chs))
        self.assertNotEqual(chs[0].nonce, challenges_in(r)[0].nonce)
        self.assertEqual(self.auth_notices(), [])
        # ... and the fresh nonce works.
        self.net.from_pbx(ack_non2xx(again, stale))
        self.admitted(self.answered(again, stale))

    def test_wrong_password_on_expired_nonce_is_403_not_stale(self) -> None:
        inv = invite()
        again = self.answered(inv, self.challenge(inv), password="wrong-one")
        self.net.now += 301
        self.refused(again, 403)

    def test_forged_nonce_challenged_again(self) -> None:
        inv = invite()
        r = self.challenge(inv)
        forged = r.without_header("WWW-Authenticate").append_header(
            "WWW-Authenticate", b'Digest realm="sbc.example.com", nonce="' + b"A" * 48 + b'", qop="auth", algorithm=MD5')
        self.net.from_pbx(self.answered(inv, forged))
        r2 = only(self, self.net.pbx_take())
        self.assertEqual(r2.status, 401)
        self.assertFalse(challenges_in(r2)[0].stale)

    def test_other_realm_credentials_challenged(self) -> None:
        inv = invite()
        r = self.challenge(inv)
        other = r.without_header("WWW-Authenticate").append_header(
            "WWW-Authenticate", (r.get("WWW-Authenticate") or b"").replace(b"sbc.example.com", b"elsewhere"))
        self.net.from_pbx(self.answered(inv, other))
        self.assertEqual(only(self, self.net.pbx_take()).status, 401)

    def test_malformed_credentials_400(self) -> None:
        bad = invite(extra='Authorization: Digest username="alice", realm="sbc.example.com", nonce=\r\n')
        self.refused(bad, 400)
        self.assertEqual(self.auth_notices()[0].status, 400)

    def test_retransmitted_invite_is_not_verified_twice(self) -> None:
        inv = invite()
        again = self.answered(inv, self.challenge(inv))
        self.admitted(again)
        self.net.from_pbx(again)  # same branch: the transaction answers, no new verification
        self.assertEqual([m.status for m in self.net.pbx_take()], [100])
        self.assertEqual(self.auth_notices(), [])


class NotChallengedTests(AuthTestCase):
    def test_cancel_and_in_dialog_requests_not_challenged(self) -> None:
        inv = invite()
        again = self.answered(inv, self.challenge(inv))
        b_inv = self.admitted(again)
        self.net.from_agent(reply(b_inv, 180))
        self.assertEqual(only(self, self.net.pbx_take()).status, 180)
        from sbc.sip.transaction import build_cancel

        self.net.from_pbx(build_cancel(again))
        statuses = sorted(m.status for m in self.net.pbx_take())
        self.assertIn(200, statuses)
        self.assertNotIn(401, statuses)
        self.assertNotIn(407, statuses)

    def test_allowlisted_source_not_challenged(self) -> None:
        net = Net(trunks=[TRUNK, DIGEST_ONLY])  # 10.0.0.5: inside TRUNK's allow
        net.from_pbx(invite())
        self.assertEqual([m.status for m in net.pbx_take()], [100])
        self.assertEqual([c.trunk for c in net.b2b.calls.values()], ["pbx"])

    def test_no_digest_trunk_unknown_source_still_403(self) -> None:
        net = Net(peer=OUTSIDE, trunks=[TRUNK])
        net.from_pbx(invite())
        r = only(self, net.pbx_take())
        self.assertEqual((r.status, r.get_all("WWW-Authenticate")), (403, []))
        self.assertEqual(net.b2b.notices()[0].reason, "no-matching-trunk")


class RequiredAuthTests(AuthTestCase):
    """``auth.required``: allowlist AND digest."""

    peer = Peer("udp", "10.0.0.5", 5060, 1)
    trunks = (attrs.evolve(TRUNK, auth=AuthConfig(users=DigestUsers({"pbx-user": "pbx-password-1"}),
                                                  realm="pbx.realm", required=True)),)

    def test_allowed_source_must_authenticate(self) -> None:
        inv = invite()
        r = self.challenge(inv)
        self.assertEqual({c.realm for c in challenges_in(r)}, {"pbx.realm"})
        self.admitted(self.answered(inv, r, user="pbx-user", password="pbx-password-1"))
        self.assertEqual([c.trunk for c in self.net.b2b.calls.values()], ["pbx"])

    def test_outside_source_refused_even_with_credentials(self) -> None:
        net = Net(peer=OUTSIDE, trunks=list(self.trunks))
        net.from_pbx(invite())
        r = only(self, net.pbx_take())
        self.assertEqual((r.status, r.get_all("WWW-Authenticate")), (403, []))

    def test_not_required_allowlist_suffices(self) -> None:
        trunk = attrs.evolve(self.trunks[0], auth=attrs.evolve(self.trunks[0].auth, required=False))
        net = Net(trunks=[trunk])
        net.from_pbx(invite())
        self.assertEqual([m.status for m in net.pbx_take()], [100])


class SharedRealmTests(AuthTestCase):
    """Two digest-only trunks in one realm: one challenge, the user name picks the trunk."""

    trunks = (
        TRUNK,
        attrs.evolve(DIGEST_ONLY, name="one", auth=AuthConfig(users=DigestUsers({"alice": PASSWORD}), realm="r")),
        attrs.evolve(DIGEST_ONLY, name="two", auth=AuthConfig(users=DigestUsers({"bob": "bobs-password"}), realm="r"),
                     agent_uri="sip:two-{user}@127.0.0.1:5090"),
        attrs.evolve(TRUNK, name="req", auth=AuthConfig(users=DigestUsers({"carol": "carols-password"}), realm="r",
                                                        required=True)),
    )

    def test_one_challenge_user_picks_trunk(self) -> None:
        inv = invite()
        r = self.challenge(inv)
        self.assertEqual(len(r.get_all("WWW-Authenticate")), 2)
        b_inv = self.admitted(self.answered(inv, r, user="bob", password="bobs-password"))
        self.assertTrue(b_inv.uri.startswith(b"sip:two-agent42@"))
        self.assertEqual([c.trunk for c in self.net.b2b.calls.values()], ["two"])

    def test_user_of_a_trunk_that_does_not_admit_the_source_403(self) -> None:
        inv = invite()
        self.refused(self.answered(inv, self.challenge(inv), user="carol", password="carols-password"))
        self.assertIn("carol", self.auth_notices()[0].detail)

    def test_match_ruri_limits_candidates(self) -> None:
        import re

        trunks = [attrs.evolve(self.trunks[1], match_ruri=(re.compile("^sip:9"),))]
        net = Net(peer=OUTSIDE, trunks=trunks)
        net.from_pbx(invite(user="123"))
        self.assertEqual(only(self, net.pbx_take()).status, 403)
        net.from_pbx(invite(user="900", call_id="x2"))
        self.assertEqual(only(self, net.pbx_take()).status, 401)


class ReloadTests(AuthTestCase):
    def test_nonce_survives_reload_password_change_applies(self) -> None:
        inv = invite()
        r = self.challenge(inv)
        self.net.b2b.reload_trunks([TRUNK, DIGEST_ONLY])
        self.admitted(self.answered(inv, r))
        changed = attrs.evolve(DIGEST_ONLY, auth=attrs.evolve(DIGEST_ONLY.auth,
                                                              users=DigestUsers({"alice": "a-new-password"})))
        self.net.b2b.reload_trunks([TRUNK, changed])
        inv2 = invite(call_id="after-reload")
        r2 = self.challenge(inv2)
        self.refused(self.answered(inv2, r2), 403)

    def test_removing_the_trunk_stops_challenges(self) -> None:
        self.net.b2b.reload_trunks([TRUNK])
        self.refused(invite(), 403)


class TrunkAuthUnitTests(SynchronousTestCase):
    def test_outcomes(self) -> None:
        auth = TrunkAuth([DIGEST_ONLY], default_realm="fallback")
        self.assertEqual(auth.open_trunks, (DIGEST_ONLY,))
        self.assertTrue(is_digest_only(DIGEST_ONLY))
        self.assertFalse(is_digest_only(TRUNK))
        verdict = auth.admit([DIGEST_ONLY], invite(), 10.0)
        self.assertIsInstance(verdict, Challenge)
        self.assertIsInstance(auth.admit([TRUNK], invite(), 10.0), Refuse)
        ch = [parse_challenges(v)[0] for _, v in verdict.headers]
        req = authorize(invite(), ch, ClientCredentials("alice", PASSWORD), counter=NonceCounter(),
                        cnonce_source=cnonce)
        self.assertEqual(auth.admit([DIGEST_ONLY], req, 11.0), Admit(DIGEST_ONLY, "alice"))
        self.assertEqual(auth.admit([DIGEST_ONLY], req, 12.0).status, 403)

    def test_default_realm_and_no_secret_in_repr(self) -> None:
        trunk = attrs.evolve(DIGEST_ONLY, auth=attrs.evolve(DIGEST_ONLY.auth, realm=None))
        auth = TrunkAuth([trunk], default_realm="sbc.fqdn.example")
        self.assertEqual(auth.realm_of(trunk), "sbc.fqdn.example")
        self.assertNotIn(PASSWORD, repr(auth))
        self.assertIn("alice", repr(auth))

    def test_configured_secret_shared_between_processes(self) -> None:
        trunk = attrs.evolve(DIGEST_ONLY, auth=attrs.evolve(DIGEST_ONLY.auth, nonce_secret="0123456789abcdef-x"))
        one = TrunkAuth([trunk], default_realm="x")
        two = TrunkAuth([trunk], default_realm="x")
        verdict = one.admit([trunk], invite(), 5.0)
        assert isinstance(verdict, Challenge)
        req = authorize(invite(), [parse_challenges(verdict.headers[0][1])[0]], ClientCredentials("alice", PASSWORD),
                        counter=NonceCounter(), cnonce_source=cnonce)
        self.assertIsInstance(two.admit([trunk], req, 6.0), Admit)
        # Without a configured secret each process has its own key: the nonce is not ours.
        three = TrunkAuth([DIGEST_ONLY], default_realm="x")
        self.assertIsInstance(three.admit([DIGEST_ONLY], req, 6.0), Challenge)


BASE = """
[[trunk]]
name = "carrier"
agent_uri = "sip:{user}@127.0.0.1:5090"
"""


class AuthConfigTests(SynchronousTestCase):
    def test_table_and_array_of_users(self) -> None:
        [t] = load_config_text(BASE + '[trunk.auth]\nusers = {alice = "pw-alice"}\n').trunks
        self.assertEqual(t.allow, ())
        self.assertEqual(dict(t.auth.users), {"alice": "pw-alice"})
        self.assertEqual((t.auth.realm, t.auth.algorithms, t.auth.nonce_ttl, t.auth.required, t.auth.nonce_secret),
                         (None, ("SHA-256", "MD5"), 300.0, False, None))
        [t] = load_config_text(BASE + 'allow = []\n[trunk.auth]\nrealm = "r"\nalgorithms = ["md5"]\n'
                               'users = [{username = "a", password = "pw-a"}, {username = "b", password = "pw-b"}]\n'
                               'nonce_secret = "a-long-enough-secret"\n').trunks
        self.assertEqual(dict(t.auth.users), {"a": "pw-a", "b": "pw-b"})
        self.assertEqual(t.auth.algorithms, ("MD5",))

    def test_secrets_never_shown(self) -> None:
        config = load_config_text(BASE + '[trunk.auth]\nusers = {alice = "pw-alice-123"}\n'
                                  'nonce_secret = "nonce-secret-value-1"\n')
        for text in (repr(config), str(config.trunks[0]), repr(config.trunks[0].auth.users)):
            self.assertNotIn("pw-alice-123", text)
            self.assertNotIn("nonce-secret-value-1", text)
            self.assertIn("alice", text)
        bad = [BASE + '[trunk.auth]\nusers = {alice = "pw\\u0001"}\n',
               BASE + '[trunk.auth]\nusers = {alice = "pw"}\nnonce_secret = "short-pw-x"\n']
        for text in bad:
            with self.assertRaises(ConfigError) as e:
                load_config_text(text)
            self.assertIn("value not shown", str(e.exception))

    def test_errors(self) -> None:
        cases = {
            "": "<string>: trunk[0].allow: required key is missing",
            "allow = []": "<string>: trunk[0].allow: must list at least one entry",
            "[trunk.auth]": "<string>: trunk[0].auth.users: required key is missing",
            "[trunk.auth]\nusers = {}": "<string>: trunk[0].auth.users: must list at least one user",
            "[trunk.auth]\nusers = [{username = \"a\"}]": "<string>: trunk[0].auth.users[0].password: required key is missing",
            "[trunk.auth]\nusers = [{username = \"a\", password = \"p\"}, {username = \"a\", password = \"q\"}]":
                "<string>: trunk[0].auth.users[1].username: duplicate user name 'a'",
            "[trunk.auth]\nusers = {a = \"p\"}\nalgorithms = [\"SHA-512\"]":
                "<string>: trunk[0].auth.algorithms[0]: 'SHA-512' is not a digest algorithm ('SHA-256' or 'MD5')",
            "[trunk.auth]\nusers = {a = \"p\"}\nalgorithms = []": "<string>: trunk[0].auth.algorithms: must list at least one entry",
            "[trunk.auth]\nusers = {a = \"p\"}\nnonce_ttl = 0": "<string>: trunk[0].auth.nonce_ttl: 0 must be a positive number",
            "[trunk.auth]\nusers = {a = \"p\"}\nbogus = 1": "<string>: trunk[0].auth.bogus: unknown key",
        }
        for extra, expected in cases.items():
            with self.assertRaises(ConfigError, msg=extra) as e:
                load_config_text(BASE + extra + "\n")
            self.assertEqual(str(e.exception), expected)

    def test_shared_realm_rules(self) -> None:
        two = (BASE + '[trunk.auth]\nrealm = "r"\nusers = {a = "p"}\n'
               + BASE.replace("carrier", "other") + '[trunk.auth]\nrealm = "r"\nusers = {b = "q"}\n')
        self.assertEqual(len(load_config_text(two).trunks), 2)
        with self.assertRaises(ConfigError) as e:
            load_config_text(two.replace("{b = ", "{a = "))
        self.assertEqual(str(e.exception), "<string>: trunk[1].auth.users: user 'a' of realm 'r' is already a user of trunk[0]")
        with self.assertRaises(ConfigError) as e:
            load_config_text(two + "nonce_ttl = 60\n")
        self.assertEqual(str(e.exception), "<string>: trunk[1].auth.nonce_ttl: differs from trunk[0]'s, which shares the realm 'r'")
        # The default realm is [sbc] fqdn.
        with self.assertRaises(ConfigError) as e:
            load_config_text('[sbc]\nfqdn = "r"\n' + two.replace('realm = "r"\n', "", 1).replace("{b = ", "{a = "))
        self.assertIn("already a user of trunk[0]", str(e.exception))


# ---- log hygiene: a whole call with SRTP and digest credentials through the service


class LogHygieneTests(SynchronousTestCase):
    """The running service (memory reactor, real relay sockets on loopback) takes a call
    from a digest-only SRTP trunk: wrong password, challenge, answer, SRTP both ways, BYE.
    Every event logged meanwhile (the driver's notices, CDRs, start-up lines) is checked for
    the password, the Authorization value, the SDES keys and the SDP body."""

    PBX_ADDR = ("203.0.113.9", 5060)
    AGENT_ADDR = ("127.0.0.1", 5090)

    def setUp(self) -> None:
        import random

        from twisted.internet.testing import EventLoggingObserver
        from twisted.logger import globalLogPublisher

        from sbc.service import build_service

        from .test_service import FakeReactor

        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        block = random.randrange(30000, 60000, 200)
        config = load_config_text(f"""
[sbc]
fqdn = "sbc.example.com"
[[listen]]
transport = "udp"
address = "127.0.0.1"
port = 5060
[admin]
enabled = false
[agent]
options_interval = 0
[media]
address = "127.0.0.1"
port_min = {block}
port_max = {block + 199}
[[trunk]]
name = "carrier"
agent_uri = "sip:{{user}}@127.0.0.1:5090"
srtp = "required"
[trunk.auth]
realm = "sbc.example.com"
users = {{alice = "{PASSWORD}"}}
""")
        self.reactor = FakeReactor()
        self.top = build_service(config, self.reactor, install_signals=False)
        self.top.startService()
        self.addCleanup(self.top.stopService)
        self.port = self.reactor.udp_ports[0]

    def deliver(self, msg: Request | Response, addr: tuple[str, int]) -> None:
        self.port.protocol.datagramReceived(msg.to_bytes(), addr)
        self.reactor.advance(0)

    def take(self, addr: tuple[str, int]) -> list:
        from sbc.sip.message import parse_message

        out = [parse_message(data) for data, to in self.port.written if to == addr]
        self.port.written[:] = [(d, to) for d, to in self.port.written if to != addr]
        return out

    def test_no_secret_in_any_log_event(self) -> None:
        from twisted.logger import formatEvent

        from sbc.media.core.sdes import crypto_value, new_keying
        from sbc.sip.message import make_response
        from sbc.sip.transaction import build_ack

        from .test_b2bua_harness import SDP_A, SDP_B, ack_2xx

        pbx_key = crypto_value(1, new_keying("AES_CM_128_HMAC_SHA1_80"))
        inline = pbx_key.split(b"inline:")[1].split(b"|")[0].decode()
        offer = (SDP_A.replace(b"10.0.0.5", b"203.0.113.9").replace(b"RTP/AVP 0", b"RTP/SAVP 0")
                 + b"a=crypto:" + pbx_key + b"\r\n")

        def pbx_invite(call_id: str, cseq: int = 1) -> Request:
            inv = invite(call_id=call_id, cseq=cseq, body=offer)
            return attrs.evolve(inv, headers=tuple(
                attrs.evolve(h, value=h.value.replace(b"10.0.0.5", b"203.0.113.9")) for h in inv.headers))

        # A wrong password first (auth-failed is logged), then the right one.
        first = pbx_invite("hyg-1")
        self.deliver(first, self.PBX_ADDR)
        [challenge] = self.take(self.PBX_ADDR)
        self.assertEqual(challenge.status, 401)
        self.deliver(build_ack(first, challenge), self.PBX_ADDR)
        counter = NonceCounter()
        wrong = authorize(pbx_invite("hyg-wrong"), challenges_in(challenge),
                          ClientCredentials("alice", "wrong-" + PASSWORD), counter=counter, cnonce_source=cnonce)
        assert wrong is not None
        self.deliver(wrong, self.PBX_ADDR)
        self.assertEqual([m.status for m in self.take(self.PBX_ADDR)], [403])

        again = authorize(pbx_invite("hyg-1", cseq=2), challenges_in(challenge),
                          ClientCredentials("alice", PASSWORD), counter=counter, cnonce_source=cnonce)
        assert again is not None
        credentials = (again.get("Authorization") or b"").decode()
        self.deliver(again, self.PBX_ADDR)
        self.assertEqual([m.status for m in self.take(self.PBX_ADDR)], [100])
        [b_inv] = self.take(self.AGENT_ADDR)
        self.assertEqual(b_inv.get_all("Authorization"), [])
        self.assertNotIn(inline.encode(), b_inv.body)

        ok = make_response(b_inv, 200, to_tag="ag1", headers=[("Contact", b"<sip:agent@127.0.0.1:5090>"),
                                                               ("Content-Type", b"application/sdp")], body=SDP_B)
        self.deliver(ok, self.AGENT_ADDR)
        [a_ok] = [m for m in self.take(self.PBX_ADDR) if isinstance(m, Response) and m.status == 200]
        self.assertIn(b"a=crypto:", a_ok.body)
        sbc_inline = a_ok.body.split(b"inline:")[1].split(b"|")[0].split(b"\r")[0].decode()
        self.deliver(ack_2xx(again, a_ok), self.PBX_ADDR)
        self.take(self.AGENT_ADDR)
        from sbc.sip.dialog import Dialog

        pbx = Dialog.from_uac(again, a_ok)
        bye = pbx.create_request("BYE", via=b"SIP/2.0/UDP 203.0.113.9:5060;branch=z9hG4bK-hyg-bye")
        self.deliver(bye, self.PBX_ADDR)
        [b_bye] = [m for m in self.take(self.AGENT_ADDR) if isinstance(m, Request)]
        self.deliver(make_response(b_bye, 200), self.AGENT_ADDR)
        self.reactor.advance(5)
        self.assertEqual(self.top.b2bua.calls, {})

        texts = []
        for event in self.events:
            texts.append(repr(event))
            if event.get("log_format"):
                texts.append(formatEvent(event))
            failure = event.get("log_failure")
            if failure is not None:
                texts.append(failure.getTraceback())
        logged = "\n".join(texts)
        self.assertIn("auth-failed", logged)  # the refusal was logged ...
        self.assertIn("CDR", logged)  # ... and so was the call
        nonce = credentials.split('nonce="')[1].split('"')[0]
        response = credentials.split('response="')[1].split('"')[0]
        for secret in (PASSWORD, "wrong-" + PASSWORD, nonce, response, inline, sbc_inline, "inline:",
                       "Authorization", "a=crypto", "v=0"):
            self.assertNotIn(secret, logged)


class BadCredentialsPropertyTests(SynchronousTestCase):
    """Whatever a caller puts into Authorization, admission answers Admit, Challenge or
    Refuse -- it never raises -- and a refusal's reason never echoes the response value."""

    @staticmethod
    def _values():
        from hypothesis import strategies as st

        params = st.dictionaries(
            st.sampled_from(["username", "realm", "nonce", "uri", "response", "algorithm", "qop", "nc", "cnonce",
                             "opaque", "userhash", "x"]),
            st.one_of(st.sampled_from(["alice", "sbc.example.com", "MD5", "SHA-256", "auth", "00000001", "true",
                                       "sip:agent42@sbc.example.com", "A" * 48, ""]),
                      st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)),
            max_size=10)

        def render(items: dict, quoted: bool) -> bytes:
            parts = [f'{k}="{v}"' if quoted else f"{k}={v}" for k, v in items.items()]
            return ("Digest " + ", ".join(parts)).encode("latin-1", "replace")

        return st.one_of(
            st.builds(render, params, st.booleans()),
            st.binary(max_size=120).filter(lambda b: b"\r" not in b and b"\n" not in b),
        )

    def test_never_raises(self) -> None:
        from hypothesis import given

        auth = TrunkAuth([DIGEST_ONLY], default_realm="x")

        @given(self._values())
        def check(value: bytes) -> None:
            request = invite().append_header("Authorization", value)
            verdict = auth.admit([DIGEST_ONLY], request, 1000.0)
            self.assertIsInstance(verdict, (Admit, Challenge, Refuse))
            if isinstance(verdict, Refuse):
                self.assertIn(verdict.status, (400, 403))
                self.assertNotIn(PASSWORD, verdict.why)
                if len(value) > 40:  # a long header value is never quoted back whole
                    self.assertNotIn(value.decode("latin-1"), verdict.why)

        check()
