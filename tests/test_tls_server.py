# -*- test-case-name: tests.test_tls_server -*-
"""
The TLS listener's side (sbc.transport.tls): certificates checked at load (expired, not yet
valid, mismatched key), SNI selection, per-trunk mutual TLS (CA bundle and names), trunk
matching by certificate, and reload.  Handshakes run between two pyOpenSSL connections over
memory BIOs: no sockets, no reactor.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hypothesis import given, strategies as st
from OpenSSL import SSL, crypto
from twisted.trial.unittest import SynchronousTestCase

from sbc.config import ConfigError, load_config_text
from sbc.transport.tls import (
    ClientPolicy,
    ServerTls,
    TlsSetupError,
    TrunkTls,
    load_identity,
    names_match,
    tls_admits,
)

from .tls_pki import Issued, issue, make_ca


def x509(issued: Issued) -> crypto.X509:
    return crypto.X509.from_cryptography(issued.cert)


def net(text: str) -> Any:
    return ipaddress.ip_network(text)


class _Peer:
    def __init__(self, host: str) -> None:
        self.host = host


class _Transport:
    def __init__(self, host: str) -> None:
        self._host = host

    def getPeer(self) -> _Peer:
        return _Peer(self._host)


class _Protocol:
    """What the verify callback looks at: ``protocol.transport.getPeer().host``."""

    def __init__(self, host: str) -> None:
        self.transport = _Transport(host)


def client_context(cert: Issued | None = None, *, chain: Issued | None = None,
                   max_version: int | None = None) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    if max_version is not None:
        ctx.set_max_proto_version(max_version)
        ctx.set_cipher_list(b"DEFAULT@SECLEVEL=0")
    if cert is not None:
        ctx.use_certificate(x509(cert))
        ctx.use_privatekey(crypto.PKey.from_cryptography_key(cert.key))
        if chain is not None:
            ctx.add_extra_chain_cert(x509(chain))
    ctx.set_verify(SSL.VERIFY_NONE, lambda *a: True)
    return ctx


def handshake(server: SSL.Connection, client: SSL.Connection) -> str | None:
    """Run the handshake over memory BIOs, then let one byte of application data through
    (TLS 1.3 servers judge the client certificate after the client's Finished).  None when
    it all worked, else which side failed: ``"server"`` or ``"client"``."""
    server.set_accept_state()
    client.set_connect_state()
    done = {"server": False, "client": False}
    for _ in range(30):
        for name, a, b in (("client", client, server), ("server", server, client)):
            if not done[name]:
                try:
                    a.do_handshake()
                    done[name] = True
                except SSL.WantReadError:
                    pass
                except SSL.Error:
                    return name
            try:
                b.bio_write(a.bio_read(65536))
            except SSL.WantReadError:
                pass
        if all(done.values()):
            break
    else:
        return "stuck"
    client.send(b"x")
    try:
        server.bio_write(client.bio_read(65536))
    except SSL.WantReadError:
        pass
    try:
        server.recv(10)
    except SSL.WantReadError:
        pass
    except SSL.Error:
        return "server"
    return None


class _Files:
    """A temporary folder with a default certificate and an SNI one."""

    def __init__(self, case: SynchronousTestCase) -> None:
        self.dir = Path(case.mktemp())
        self.dir.mkdir(parents=True)
        self.server_ca = make_ca("Server CA")
        self.default = issue(self.server_ca, "sbc.example.com")
        self.other = issue(self.server_ca, "teams.example.net")
        self.wild = issue(self.server_ca, "*.tenants.example.org")
        self.default_files = self.default.write(self.dir, "default")
        self.other_files = self.other.write(self.dir, "other")
        self.wild_files = self.wild.write(self.dir, "wild")

    def listener(self, **overrides: Any) -> SimpleNamespace:
        cert, key = self.default_files
        sni = (
            SimpleNamespace(name="teams.example.net", certificate=self.other_files[0],
                            private_key=self.other_files[1], chain=None),
            SimpleNamespace(name="*.tenants.example.org", certificate=self.wild_files[0],
                            private_key=self.wild_files[1], chain=None),
        )
        values = dict(certificate=cert, private_key=key, chain=None, sni=sni)
        values.update(overrides)
        return SimpleNamespace(**values)


def trunk(name: str, allow: str, ca: Path | None = None, names: tuple[str, ...] = ()) -> SimpleNamespace:
    return SimpleNamespace(name=name, allow=(net(allow),), tls_ca=ca, match_tls_names=names)


def served_cn(server_tls: ServerTls, server_name: bytes | None, host: str = "192.0.2.50") -> str:
    client = SSL.Connection(client_context())
    if server_name is not None:
        client.set_tlsext_host_name(server_name)
    server = server_tls.serverConnectionForTLS(_Protocol(host))
    assert handshake(server, client) is None
    cert = client.get_peer_certificate()
    assert cert is not None
    return cert.get_subject().CN


class SniTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.files = _Files(self)
        self.tls = ServerTls.from_config(self.files.listener())

    def test_default_without_sni(self) -> None:
        self.assertEqual(served_cn(self.tls, None), "sbc.example.com")

    def test_sni_picks_certificate(self) -> None:
        self.assertEqual(served_cn(self.tls, b"teams.example.net"), "teams.example.net")
        self.assertEqual(served_cn(self.tls, b"TEAMS.example.net"), "teams.example.net")

    def test_wildcard_sni_one_label(self) -> None:
        self.assertEqual(served_cn(self.tls, b"acme.tenants.example.org"), "*.tenants.example.org")
        self.assertEqual(served_cn(self.tls, b"a.b.tenants.example.org"), "sbc.example.com")
        self.assertEqual(served_cn(self.tls, b"tenants.example.org"), "sbc.example.com")

    def test_unknown_name_gets_default(self) -> None:
        self.assertEqual(served_cn(self.tls, b"nobody.example.com"), "sbc.example.com")

    def test_old_tls_refused(self) -> None:
        for version in (SSL.TLS1_VERSION, SSL.TLS1_1_VERSION):
            client = SSL.Connection(client_context(max_version=version))
            server = self.tls.serverConnectionForTLS(_Protocol("192.0.2.50"))
            self.assertIsNotNone(handshake(server, client), version)

    def test_full_chain_served(self) -> None:
        root = make_ca("Root")
        inter = make_ca("Intermediate", issuer=root)
        leaf = issue(inter, "sbc.example.com")
        cert, key = leaf.write(self.files.dir, "chained", chain=inter)
        tls = ServerTls.from_config(self.files.listener(certificate=cert, private_key=key, sni=()))
        client = SSL.Connection(client_context())
        self.assertIsNone(handshake(tls.serverConnectionForTLS(_Protocol("192.0.2.1")), client))
        chain = client.get_peer_cert_chain() or []
        self.assertEqual([c.get_subject().CN for c in chain], ["sbc.example.com", "Intermediate"])


class ReloadTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.files = _Files(self)
        self.tls = ServerTls.from_config(self.files.listener())

    def test_update_serves_new_certificate_to_new_handshakes(self) -> None:
        before = self.tls.serverConnectionForTLS(_Protocol("192.0.2.1"))
        renewed = issue(self.files.server_ca, "sbc.example.com", cn="renewed")
        cert, key = renewed.write(self.files.dir, "renewed")
        self.tls.update(self.files.listener(certificate=cert, private_key=key))
        self.assertEqual(served_cn(self.tls, None), "renewed")
        self.assertEqual(served_cn(self.tls, b"teams.example.net"), "teams.example.net")
        # A connection created before the update finishes its handshake with the old one.
        client = SSL.Connection(client_context())
        self.assertIsNone(handshake(before, client))
        peer = client.get_peer_certificate()
        assert peer is not None
        self.assertEqual(peer.get_subject().CN, "sbc.example.com")

    def test_bad_new_file_keeps_old(self) -> None:
        expired = issue(self.files.server_ca, "sbc.example.com", cn="expired",
                        not_before=datetime.timedelta(days=-10), not_after=datetime.timedelta(days=-1))
        cert, key = expired.write(self.files.dir, "expired")
        with self.assertRaises(TlsSetupError) as e:
            self.tls.update(self.files.listener(certificate=cert, private_key=key))
        self.assertIn("expired on", str(e.exception))
        self.assertIn("expired.pem", str(e.exception))
        self.assertEqual(served_cn(self.tls, None), "sbc.example.com")

    def test_missing_sni_file_keeps_old(self) -> None:
        listener = self.files.listener()
        broken = (SimpleNamespace(name="x.example.com", certificate=self.files.dir / "gone.pem",
                                  private_key=self.files.dir / "gone.key", chain=None),)
        with self.assertRaises(TlsSetupError):
            self.tls.update(SimpleNamespace(**{**vars(listener), "sni": broken}))
        self.assertEqual(served_cn(self.tls, b"teams.example.net"), "teams.example.net")


class IdentityTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(self.mktemp())
        self.dir.mkdir()

    def test_expired(self) -> None:
        cert, key = issue(None, "a.example.com", not_before=datetime.timedelta(days=-9),
                          not_after=datetime.timedelta(days=-2)).write(self.dir, "old")
        with self.assertRaises(TlsSetupError) as e:
            load_identity(cert, key)
        self.assertRegex(str(e.exception), r"old\.pem' expired on \d{4}-\d\d-\d\d")

    def test_not_yet_valid(self) -> None:
        cert, key = issue(None, "a.example.com", not_before=datetime.timedelta(days=2),
                          not_after=datetime.timedelta(days=9)).write(self.dir, "future")
        with self.assertRaises(TlsSetupError) as e:
            load_identity(cert, key)
        self.assertIn("is not valid yet", str(e.exception))

    def test_mismatched_key(self) -> None:
        cert, _ = issue(None, "a.example.com").write(self.dir, "a")
        _, other_key = issue(None, "b.example.com").write(self.dir, "b")
        with self.assertRaises(TlsSetupError) as e:
            load_identity(cert, other_key)
        self.assertIn("does not match certificate", str(e.exception))

    def test_missing_file(self) -> None:
        with self.assertRaises(TlsSetupError) as e:
            load_identity(self.dir / "none.pem", self.dir / "none.key")
        self.assertIn("none.pem", str(e.exception))


class ConfigTests(SynchronousTestCase):
    """Start-up stops with one line naming the file, the key and the problem."""

    def setUp(self) -> None:
        self.dir = Path(self.mktemp()).resolve()
        self.dir.mkdir()

    def load(self, listen_extra: str = "", cert: Issued | None = None, extra: str = "") -> Any:
        cert_path, key_path = (cert or issue(None, "sbc.example.com")).write(self.dir, "sbc")
        text = (f'[[listen]]\ntransport = "tls"\naddress = "127.0.0.1"\nport = 5061\n'
                f'certificate = "{cert_path}"\nprivate_key = "{key_path}"\n{listen_extra}\n{extra}')
        return load_config_text(text, str(self.dir / "sbc.toml"))

    def test_expired_listener_certificate(self) -> None:
        old = issue(None, "sbc.example.com", not_before=datetime.timedelta(days=-9),
                    not_after=datetime.timedelta(days=-1))
        with self.assertRaises(ConfigError) as e:
            self.load(cert=old)
        message = str(e.exception)
        self.assertNotIn("\n", message)
        self.assertRegex(message, r"sbc\.toml: listen\[0\]\.certificate: '.*sbc\.pem' expired on ")

    def test_not_yet_valid_listener_certificate(self) -> None:
        early = issue(None, "sbc.example.com", not_before=datetime.timedelta(days=1),
                      not_after=datetime.timedelta(days=9))
        with self.assertRaises(ConfigError) as e:
            self.load(cert=early)
        self.assertIn("listen[0].certificate: ", str(e.exception))
        self.assertIn("is not valid yet", str(e.exception))

    def test_sni_entries(self) -> None:
        c, k = issue(None, "b.example.com").write(self.dir, "b")
        config = self.load(f'[[listen.sni]]\nname = "B.example.com"\ncertificate = "{c}"\nprivate_key = "{k}"\n')
        self.assertEqual(config.listen[0].sni[0].name, "b.example.com")
        self.assertEqual(config.listen[0].sni[0].certificate, c)

    def test_sni_mismatched_key(self) -> None:
        c, _ = issue(None, "b.example.com").write(self.dir, "b")
        _, k = issue(None, "c.example.com").write(self.dir, "c")
        with self.assertRaises(ConfigError) as e:
            self.load(f'[[listen.sni]]\nname = "b.example.com"\ncertificate = "{c}"\nprivate_key = "{k}"\n')
        self.assertIn("listen[0].sni[0].private_key: ", str(e.exception))

    def test_sni_missing_file(self) -> None:
        with self.assertRaises(ConfigError) as e:
            self.load(f'[[listen.sni]]\nname = "b.example.com"\ncertificate = "{self.dir}/no.pem"\n'
                      f'private_key = "{self.dir}/no.key"\n')
        self.assertIn("listen[0].sni[0].certificate: file ", str(e.exception))
        self.assertIn("does not exist", str(e.exception))

    def test_sni_only_on_tls(self) -> None:
        c, k = issue(None, "b.example.com").write(self.dir, "b")
        with self.assertRaises(ConfigError) as e:
            load_config_text(f'[[listen]]\ntransport = "tcp"\naddress = "127.0.0.1"\nport = 5060\n'
                             f'[[listen.sni]]\nname = "b.example.com"\ncertificate = "{c}"\nprivate_key = "{k}"\n',
                             str(self.dir / "sbc.toml"))
        self.assertIn("listen[0].sni: only valid for a tls listener", str(e.exception))

    def test_trunk_tls_ca_and_tls_section(self) -> None:
        ca = make_ca()
        ca_path = self.dir / "ca.pem"
        ca_path.write_bytes(ca.cert_pem)
        cc, ck = issue(ca, "sbc.example.com").write(self.dir, "client")
        config = self.load(extra=(
            f'[tls]\nclient_certificate = "{cc}"\nclient_private_key = "{ck}"\nca = "{ca_path}"\n'
            f'[[trunk]]\nname = "teams"\nallow = ["192.0.2.0/24"]\nagent_uri = "sip:{{user}}@127.0.0.1"\n'
            f'tls_ca = "{ca_path}"\nmatch_tls_names = ["sip.pstnhub.example.com"]\n'))
        self.assertEqual(config.trunks[0].tls_ca, ca_path)
        self.assertEqual(config.tls.client_certificate, cc)
        self.assertEqual(config.tls.ca, ca_path)

    def test_client_certificate_needs_key(self) -> None:
        cc, _ = issue(None, "sbc.example.com").write(self.dir, "client")
        with self.assertRaises(ConfigError) as e:
            self.load(extra=f'[tls]\nclient_certificate = "{cc}"\n')
        self.assertIn("tls.client_private_key: required", str(e.exception))

    def test_client_certificate_key_mismatch(self) -> None:
        cc, _ = issue(None, "sbc.example.com").write(self.dir, "client")
        _, other = issue(None, "x.example.com").write(self.dir, "other")
        with self.assertRaises(ConfigError) as e:
            self.load(extra=f'[tls]\nclient_certificate = "{cc}"\nclient_private_key = "{other}"\n')
        self.assertIn("tls.client_private_key: ", str(e.exception))
        self.assertIn("does not match", str(e.exception))


class _Pki:
    def __init__(self) -> None:
        self.teams_ca = make_ca("Teams CA")
        self.other_ca = make_ca("Other CA")
        self.teams = issue(self.teams_ca, "sip.pstnhub.example.com")
        self.teams_wrong_name = issue(self.teams_ca, "evil.example.com")
        self.from_other_ca = issue(self.other_ca, "sip.pstnhub.example.com")

    def policy(self, *, default_ca: bool = False) -> ClientPolicy:
        return ClientPolicy([
            TrunkTls("teams", (net("52.112.0.0/14"),), (x509(self.teams_ca),), ("sip.pstnhub.example.com",)),
            TrunkTls("zoom", (net("198.51.100.0/24"),), (x509(self.other_ca),), ()),
            TrunkTls("pbx", (net("10.0.0.0/8"),)),
            TrunkTls("named", (), (), ("*.partner.example.com",)),
        ], default_ca=[x509(self.other_ca)] if default_ca else ())


class PolicyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.pki = _Pki()
        self.policy = self.pki.policy(default_ca=True)

    def test_right_ca_and_name_accepted(self) -> None:
        verdict = self.policy.check("52.112.1.1", x509(self.pki.teams))
        self.assertTrue(verdict.admitted)
        self.assertEqual(verdict.trunks, frozenset({"teams"}))
        self.assertEqual(verdict.names, ("sip.pstnhub.example.com",))

    def test_wrong_ca_refused(self) -> None:
        verdict = self.policy.check("52.112.1.1", x509(self.pki.from_other_ca))
        self.assertFalse(verdict.admitted)
        self.assertIn("trunk teams: certificate not verified by its CA bundle", verdict.reason)

    def test_wrong_name_refused(self) -> None:
        verdict = self.policy.check("52.112.1.1", x509(self.pki.teams_wrong_name))
        self.assertFalse(verdict.admitted)
        self.assertIn("['evil.example.com'] match none of ['sip.pstnhub.example.com']", verdict.reason)

    def test_no_certificate_refused_for_mutual_trunk(self) -> None:
        verdict = self.policy.check("52.112.1.1", None)
        self.assertFalse(verdict.admitted)
        self.assertIn("no client certificate", verdict.reason)

    def test_other_trunks_ca_from_mutual_source_refused(self) -> None:
        # A certificate zoom's bundle verifies does not open teams' sources.
        zoom_client = issue(self.pki.other_ca, "zoom.example.com")
        verdict = self.policy.check("52.112.1.1", x509(zoom_client))
        self.assertFalse(verdict.admitted)

    def test_plain_trunk_source_needs_nothing(self) -> None:
        self.assertTrue(self.policy.check("10.1.2.3", None).admitted)
        selfsigned = issue(None, "whatever.example.com")
        verdict = self.policy.check("10.1.2.3", x509(selfsigned))
        self.assertTrue(verdict.admitted)
        self.assertEqual(verdict.trunks, frozenset())

    def test_unknown_source_left_to_admission(self) -> None:
        self.assertTrue(self.policy.check("203.0.113.9", None).admitted)

    def test_names_admit_from_any_source(self) -> None:
        partner = issue(self.pki.other_ca, "edge.partner.example.com")
        verdict = self.policy.check("203.0.113.9", x509(partner))
        self.assertEqual(verdict.trunks, frozenset({"named", "zoom"}))

    def test_names_need_a_verified_certificate(self) -> None:
        forged = issue(make_ca("Nobody"), "edge.partner.example.com")
        self.assertEqual(self.policy.check("203.0.113.9", x509(forged)).trunks, frozenset())
        without_ca = self.pki.policy(default_ca=False)
        partner = issue(self.pki.other_ca, "edge.partner.example.com")
        self.assertNotIn("named", without_ca.check("203.0.113.9", x509(partner)).trunks)

    def test_intermediate_chain(self) -> None:
        inter = make_ca("Teams Intermediate", issuer=self.pki.teams_ca)
        leaf = issue(inter, "sip.pstnhub.example.com")
        self.assertFalse(self.policy.check("52.112.1.1", x509(leaf)).admitted)
        verdict = self.policy.check("52.112.1.1", x509(leaf), [x509(inter)])
        self.assertEqual(verdict.trunks, frozenset({"teams"}))

    def test_requires_certificate(self) -> None:
        self.assertTrue(self.policy.requires_certificate("52.113.0.1"))
        self.assertFalse(self.policy.requires_certificate("10.0.0.1"))
        self.assertFalse(self.policy.requires_certificate("203.0.113.1"))
        self.assertFalse(self.policy.requires_certificate("not an address"))

    @given(host=st.one_of(st.ip_addresses().map(str), st.text(max_size=40)),
           which=st.sampled_from(["teams", "wrong_name", "other", None]))
    def test_check_never_raises(self, host: str, which: str | None) -> None:
        certs = {"teams": self.pki.teams, "wrong_name": self.pki.teams_wrong_name, "other": self.pki.from_other_ca}
        leaf = x509(certs[which]) if which else None
        verdict = self.policy.check(host, leaf)
        self.assertIsInstance(verdict.admitted, bool)
        if not verdict.admitted:
            self.assertTrue(verdict.reason)


class NamesTests(SynchronousTestCase):
    def test_configured_wildcard_one_label(self) -> None:
        self.assertTrue(names_match(x509(issue(None, "a.example.com")), ["*.example.com"]))
        self.assertFalse(names_match(x509(issue(None, "a.b.example.com")), ["*.example.com"]))
        self.assertFalse(names_match(x509(issue(None, "example.com")), ["*.example.com"]))

    def test_certificate_wildcard(self) -> None:
        self.assertTrue(names_match(x509(issue(None, "*.example.com")), ["sbc.example.com"]))
        self.assertFalse(names_match(x509(issue(None, "*.example.com")), ["a.b.example.com"]))

    def test_exact_and_case(self) -> None:
        cert = x509(issue(None, "SIP.pstnhub.Example.com"))
        self.assertTrue(names_match(cert, ["sip.pstnhub.example.com"]))
        self.assertFalse(names_match(cert, ["sip2.pstnhub.example.com"]))
        self.assertFalse(names_match(cert, []))


class TrunkMatchingTests(SynchronousTestCase):
    """What the B2BUA's trunk matching asks (sbc.transport.tls.tls_admits)."""

    def test_table(self) -> None:
        mutual = SimpleNamespace(name="teams", tls_ca=Path("/ca.pem"), match_tls_names=("a.example.com",))
        named = SimpleNamespace(name="partner", tls_ca=None, match_tls_names=("a.example.com",))
        plain = SimpleNamespace(name="pbx", tls_ca=None, match_tls_names=())
        self.assertIs(tls_admits(mutual, "tls", frozenset({"teams"})), True)
        self.assertIs(tls_admits(mutual, "tls", frozenset({"partner"})), False)
        self.assertIs(tls_admits(mutual, "udp", frozenset()), False)
        self.assertIs(tls_admits(named, "tls", frozenset({"partner"})), True)
        self.assertIsNone(tls_admits(named, "tls", frozenset()))
        self.assertIsNone(tls_admits(named, "tcp", frozenset({"partner"})))
        self.assertIsNone(tls_admits(plain, "tls", frozenset({"pbx"})))

    def test_b2bua_trunk_for(self) -> None:
        from sbc.b2bua.core import B2bua
        from sbc.sip.endpoint import Peer

        trunks = [
            SimpleNamespace(name="teams", allow=(net("52.112.0.0/14"),), tls_ca=Path("/ca.pem"),
                            match_tls_names=(), match_ruri=()),
            SimpleNamespace(name="partner", allow=(net("10.0.0.0/8"),), tls_ca=None,
                            match_tls_names=("a.example.com",), match_ruri=()),
        ]
        b2bua = B2bua.__new__(B2bua)
        b2bua.trunks = tuple(trunks)
        accepted: dict[int, frozenset[str]] = {1: frozenset({"teams"}), 2: frozenset({"partner"})}
        b2bua.tls_admits = lambda peer, t: tls_admits(t, peer.transport, accepted.get(peer.conn, frozenset()))
        self.assertEqual(b2bua._trunk_for(Peer("tls", "52.112.0.9", 5061, 1)).name, "teams")
        self.assertIsNone(b2bua._trunk_for(Peer("udp", "52.112.0.9", 5060, 0)))
        self.assertIsNone(b2bua._trunk_for(Peer("tls", "52.112.0.9", 5061, 3)))
        self.assertEqual(b2bua._trunk_for(Peer("tls", "203.0.113.7", 5061, 2)).name, "partner")
        self.assertIsNone(b2bua._trunk_for(Peer("tls", "203.0.113.7", 5061, 3)))
        self.assertEqual(b2bua._trunk_for(Peer("udp", "10.1.1.1", 5060, 0)).name, "partner")


class HandshakeTests(SynchronousTestCase):
    """Mutual TLS through the listener's real OpenSSL connections."""

    def setUp(self) -> None:
        self.pki = _Pki()
        self.files = _Files(self)
        ca_path = self.files.dir / "teams-ca.pem"
        ca_path.write_bytes(self.pki.teams_ca.cert_pem)
        self.trunks = [
            trunk("teams", "52.112.0.0/14", ca_path, ("sip.pstnhub.example.com",)),
            trunk("pbx", "10.0.0.0/8"),
        ]
        self.tls = ServerTls.from_config(self.files.listener(), self.trunks)

    def connect(self, host: str, cert: Issued | None) -> tuple[str | None, SSL.Connection]:
        server = self.tls.serverConnectionForTLS(_Protocol(host))
        client = SSL.Connection(client_context(cert))
        return handshake(server, client), server

    def test_right_certificate_accepted(self) -> None:
        failed, server = self.connect("52.112.0.1", self.pki.teams)
        self.assertIsNone(failed)
        verdict = self.tls.check_client("52.112.0.1", server)
        self.assertTrue(verdict.admitted)
        self.assertEqual(verdict.trunks, frozenset({"teams"}))

    def test_wrong_ca_fails_handshake(self) -> None:
        refused: list[tuple[str, int, str]] = []
        self.tls.on_refused = lambda host, port, reason: refused.append((host, port, reason))
        failed, _ = self.connect("52.112.0.1", self.pki.from_other_ca)
        self.assertEqual(failed, "server")
        self.assertEqual(self.tls.refused_in_handshake, 1)
        self.assertEqual(len(refused), 1)
        self.assertEqual(refused[0][0], "52.112.0.1")
        self.assertIn("not verified by any trunk's CA bundle (unable to get local issuer certificate", refused[0][2])

    def test_admits_by_name(self) -> None:
        self.assertTrue(self.tls.admits_by_name)
        plain = ServerTls.from_config(self.files.listener(), [trunk("pbx", "10.0.0.0/8")])
        self.assertFalse(plain.admits_by_name)

    def test_wrong_name_refused_after_handshake(self) -> None:
        failed, server = self.connect("52.112.0.1", self.pki.teams_wrong_name)
        self.assertIsNone(failed)
        verdict = self.tls.check_client("52.112.0.1", server)
        self.assertFalse(verdict.admitted)
        self.assertIn("match none of", verdict.reason)

    def test_no_certificate_refused_after_handshake(self) -> None:
        failed, server = self.connect("52.112.0.1", None)
        self.assertIsNone(failed)
        self.assertFalse(self.tls.check_client("52.112.0.1", server).admitted)

    def test_plain_source_any_certificate(self) -> None:
        failed, server = self.connect("10.0.0.5", self.pki.from_other_ca)
        self.assertIsNone(failed)
        self.assertTrue(self.tls.check_client("10.0.0.5", server).admitted)
        failed, server = self.connect("10.0.0.5", None)
        self.assertIsNone(failed)
        self.assertTrue(self.tls.check_client("10.0.0.5", server).admitted)

    def test_mutual_tls_with_sni_certificate(self) -> None:
        server = self.tls.serverConnectionForTLS(_Protocol("52.112.0.1"))
        client = SSL.Connection(client_context(self.pki.from_other_ca))
        client.set_tlsext_host_name(b"teams.example.net")
        self.assertEqual(handshake(server, client), "server")
        server = self.tls.serverConnectionForTLS(_Protocol("52.112.0.1"))
        client = SSL.Connection(client_context(self.pki.teams))
        client.set_tlsext_host_name(b"teams.example.net")
        self.assertIsNone(handshake(server, client))
        peer = client.get_peer_certificate()
        assert peer is not None
        self.assertEqual(peer.get_subject().CN, "teams.example.net")
        self.assertTrue(self.tls.check_client("52.112.0.1", server).admitted)

    def test_client_ca_names_sent(self) -> None:
        server = self.tls.serverConnectionForTLS(_Protocol("10.0.0.5"))
        client = SSL.Connection(client_context())
        self.assertIsNone(handshake(server, client))
        self.assertEqual([n.CN for n in client.get_client_ca_list()], ["Teams CA"])

    def test_reloaded_ca_bundle(self) -> None:
        new_ca = self.files.dir / "new-ca.pem"
        new_ca.write_bytes(self.pki.other_ca.cert_pem)
        self.tls.update(self.files.listener(), [trunk("teams", "52.112.0.0/14", new_ca, ("sip.pstnhub.example.com",))])
        failed, server = self.connect("52.112.0.1", self.pki.from_other_ca)
        self.assertIsNone(failed)
        self.assertTrue(self.tls.check_client("52.112.0.1", server).admitted)
        self.assertEqual(self.connect("52.112.0.1", self.pki.teams)[0], "server")
