# -*- test-case-name: tests.test_config -*-
"""Tests for sbc.config: schema, defaults, one-line errors, TLS file checks."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

import attrs
from hypothesis import given
from hypothesis import strategies as st
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from sbc.config import (
    AdminConfig,
    AgentConfig,
    CallsConfig,
    RegisterConfig,
    Config,
    ConfigError,
    ListenConfig,
    SbcSection,
    SipConfig,
    TrunkConfig,
    default_config_path,
    iter_schema,
    load_config,
    load_config_text,
)

REPO = Path(__file__).resolve().parent.parent

TRUNK = """
[[trunk]]
name = "pbx"
allow = ["192.0.2.0/24"]
agent_uri = "sip:{user}@agent.example.com"
"""


def error_of(text: str, path: str = "etc/sbc.toml") -> str:
    """Load ``text``; return the one-line error, or fail if it loaded."""
    try:
        load_config_text(text, path)
    except ConfigError as e:
        message = str(e)
        assert "\n" not in message, message
        return message
    raise AssertionError(f"no ConfigError for {text!r}")


def make_tls_files(directory: Path, name: str = "sbc") -> tuple[Path, Path]:
    """Write a self-signed EC certificate and its key; return (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sbc.example.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{name}.crt"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class DefaultsTests(SynchronousTestCase):
    def test_empty_file_gives_documented_defaults(self) -> None:
        config = load_config_text("", "x.toml")
        self.assertEqual(config.sbc, SbcSection(fqdn="localhost", user_agent="sbc/0.1"))
        self.assertEqual(config.admin, AdminConfig(address="127.0.0.1", port=8080, enabled=True))
        self.assertEqual(
            config.sip,
            SipConfig(
                t1=0.5,
                t2=4.0,
                t4=5.0,
                max_message_size=65535,
                max_udp_size=1300,
                tcp_idle_timeout=300.0,
                max_connections=1024,
            ),
        )
        self.assertEqual((config.listen, config.trunks), ((), ()))
        self.assertEqual(config.path, Path("x.toml"))

    def test_shipped_default_config(self) -> None:
        """etc/sbc.toml: loopback UDP+TCP on v4 and v6, admin on 8080, trunk `local`."""
        path = default_config_path()
        self.assertEqual(path, REPO / "etc" / "sbc.toml")
        config = load_config(path)
        self.assertEqual(
            {(l.transport, l.address, l.port) for l in config.listen},
            {
                ("udp", "127.0.0.1", 5060),
                ("tcp", "127.0.0.1", 5060),
                ("udp", "::1", 5060),
                ("tcp", "::1", 5060),
            },
        )
        self.assertEqual((config.admin.address, config.admin.port, config.admin.enabled), ("127.0.0.1", 8080, True))
        [trunk] = config.trunks
        self.assertEqual(trunk.name, "local")
        self.assertEqual(
            trunk.allow, (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))
        )
        self.assertEqual(trunk.agent_uri, "sip:{user}@127.0.0.1:5090")
        self.assertEqual(trunk.agent_target("alice"), "sip:alice@127.0.0.1:5090")
        self.assertEqual(config.path, path)

    def test_shipped_example_configs_parse_up_to_tls_files(self) -> None:
        """Examples only fail on the TLS files they reference, never on a key or value."""
        for example in sorted((REPO / "etc" / "examples").glob("*.toml")):
            try:
                load_config(example)
            except ConfigError as e:
                self.assertRegex(str(e), r"listen\[\d+\]\.(certificate|private_key|chain): file ")

    def test_full_file(self) -> None:
        config = load_config_text(
            """
            [sbc]
            fqdn = "sbc.example.com"
            user_agent = "Example SBC 2"
            [[listen]]
            transport = "udp"
            address = "2001:DB8::0:1"
            port = 5062
            [admin]
            enabled = false
            address = "::"
            port = 9000
            [sip]
            t1 = 1
            t2 = 8
            t4 = 2.5
            max_message_size = 1024
            max_udp_size = 1024
            tcp_idle_timeout = 30
            max_connections = 1
            [[trunk]]
            name = "hq-1"
            vendor = "teams"
            allow = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
            agent_uri = "sips:{user}@[2001:db8::5]:5061;transport=tls"
            outbound_proxy = "sip:proxy.example.com:5070;lr"
            """,
            "f.toml",
        )
        self.assertEqual(config.sbc.fqdn, "sbc.example.com")
        self.assertEqual(config.listen, (ListenConfig(transport="udp", address="2001:db8::1", port=5062),))
        self.assertEqual(config.admin, AdminConfig(address="::", port=9000, enabled=False))
        self.assertEqual((config.sip.t1, config.sip.t2, config.sip.t4), (1.0, 8.0, 2.5))
        self.assertIsInstance(config.sip.t1, float)
        self.assertEqual(config.sip.tcp_idle_timeout, 30.0)
        [trunk] = config.trunks
        self.assertEqual(
            trunk,
            TrunkConfig(
                name="hq-1",
                vendor="teams",
                allow=(
                    ipaddress.IPv4Network("10.0.0.0/8"),
                    ipaddress.IPv6Network("2001:db8::/32"),
                    ipaddress.IPv4Network("192.0.2.7/32"),
                ),
                agent_uri="sips:{user}@[2001:db8::5]:5061;transport=tls",
                outbound_proxy="sip:proxy.example.com:5070;lr",
            ),
        )

    def test_frozen_and_slotted(self) -> None:
        config = load_config_text(TRUNK)
        for obj in (config, config.sbc, config.admin, config.sip, config.trunks[0]):
            self.assertFalse(hasattr(obj, "__dict__"), type(obj))
            with self.assertRaises(attrs.exceptions.FrozenInstanceError):
                obj.__setattr__(attrs.fields(type(obj))[0].name, None)

    def test_can_be_built_in_code(self) -> None:
        """Other modules' tests build configs directly; sections have defaults."""
        config = Config(trunks=(TrunkConfig(name="t", allow=(), agent_uri="sip:{user}@h"),))
        self.assertEqual(config.sip.t1, 0.5)
        self.assertEqual(config.trunks[0].vendor, "generic")


class FileErrorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(self.mktemp()).resolve()
        self.dir.mkdir(parents=True)

    def test_missing_file(self) -> None:
        path = self.dir / "nope.toml"
        with self.assertRaises(ConfigError) as cm:
            load_config(path)
        self.assertEqual(str(cm.exception), f"{path}: file not found")
        self.assertIsNone(cm.exception.key)
        self.assertEqual(cm.exception.path, str(path))

    def test_directory(self) -> None:
        with self.assertRaises(ConfigError) as cm:
            load_config(self.dir)
        self.assertEqual(str(cm.exception), f"{self.dir}: is a directory, not a file")

    def test_unreadable(self) -> None:
        if os.geteuid() == 0:
            raise self.skipTest("root can read any file")
        path = self.dir / "secret.toml"
        path.write_text("")
        path.chmod(0)
        with self.assertRaises(ConfigError) as cm:
            load_config(path)
        self.assertEqual(str(cm.exception), f"{path}: cannot read file: Permission denied")

    def test_not_utf8(self) -> None:
        path = self.dir / "latin1.toml"
        path.write_bytes(b'[sbc]\nuser_agent = "caf\xe9"\n')
        with self.assertRaises(ConfigError) as cm:
            load_config(path)
        self.assertEqual(str(cm.exception), f"{path}: not valid UTF-8 (byte 23)")

    def test_syntax_error_is_one_line_with_position(self) -> None:
        message = error_of("[sip]\nt1 = \n")
        self.assertTrue(message.startswith("etc/sbc.toml: TOML syntax error: "), message)
        self.assertIn("line 2", message)

    def test_deep_nesting_is_a_config_error(self) -> None:
        for text in ("a = " + "[" * 100_000 + "]" * 100_000, "a = " + "{b=" * 5000 + "1" + "}" * 5000):
            self.assertEqual(error_of(text), "etc/sbc.toml: TOML syntax error: arrays or tables nested too deeply")

    def test_nul_in_path(self) -> None:
        with self.assertRaises(ConfigError) as cm:
            load_config("a\x00b.toml")
        self.assertEqual(str(cm.exception), "'a\\x00b.toml': cannot read file: embedded null byte")

    def test_filepath_and_str_accepted(self) -> None:
        path = self.dir / "ok.toml"
        path.write_text(TRUNK)
        self.assertEqual(load_config(FilePath(str(path))).trunks[0].name, "pbx")
        self.assertEqual(load_config(str(path)).path, path)


class KeyErrorTests(SynchronousTestCase):
    """Each bad input gives exactly this one line."""

    cases = [
        # unknown keys, at every level
        ("colour = 1", "etc/sbc.toml: colour: unknown key"),
        ("[sbc]\nfqnd = 'x'", "etc/sbc.toml: sbc.fqnd: unknown key"),
        ("[sip]\nt3 = 1.0", "etc/sbc.toml: sip.t3: unknown key"),
        ("[admin]\nbind = '1.2.3.4'", "etc/sbc.toml: admin.bind: unknown key"),
        (
            "[[listen]]\ntransport='udp'\naddress='::1'\nport=5060\ninterface='lo'",
            "etc/sbc.toml: listen[0].interface: unknown key",
        ),
        (TRUNK + "trunk_name = 'x'\n", "etc/sbc.toml: trunk[0].trunk_name: unknown key"),
        ("[trunks]", "etc/sbc.toml: trunks: unknown key"),
        ('[sip]\n"t1 x" = 1', 'etc/sbc.toml: sip."t1 x": unknown key'),
        ('[sip]\n"a\\nb" = 1', 'etc/sbc.toml: sip."a\\nb": unknown key'),
        ("path = 'x'", "etc/sbc.toml: path: unknown key"),
        # wrong shapes
        ("sbc = 1", "etc/sbc.toml: sbc: expected a table, got an integer"),
        ("[[sbc]]", "etc/sbc.toml: sbc: expected a table, got an array"),
        ("[listen]", "etc/sbc.toml: listen: expected an array of tables, got a table"),
        ("listen = [1]", "etc/sbc.toml: listen[0]: expected a table, got an integer"),
        # wrong types
        ("[sip]\nt1 = true", "etc/sbc.toml: sip.t1: expected a number, got a boolean"),
        ("[sip]\nt1 = '0.5'", "etc/sbc.toml: sip.t1: expected a number, got a string"),
        ("[admin]\nport = true", "etc/sbc.toml: admin.port: expected an integer, got a boolean"),
        ("[admin]\nport = 80.0", "etc/sbc.toml: admin.port: expected an integer, got a float"),
        ("[admin]\nenabled = 1", "etc/sbc.toml: admin.enabled: expected a boolean, got an integer"),
        ("[sbc]\nfqdn = 7", "etc/sbc.toml: sbc.fqdn: expected a string, got an integer"),
        ("[sbc]\nfqdn = 2024-01-01", "etc/sbc.toml: sbc.fqdn: expected a string, got date"),
        # bad values
        ("[sbc]\nfqdn = 'bad_host!'", "etc/sbc.toml: sbc.fqdn: 'bad_host!' is not a host name or IP address"),
        ("[sbc]\nfqdn = '10.0.0.300'", "etc/sbc.toml: sbc.fqdn: '10.0.0.300' is not a host name or IP address"),
        (
            '[sbc]\nuser_agent = "a\\r\\nX-Evil: 1"',
            "etc/sbc.toml: sbc.user_agent: 'a\\r\\nX-Evil: 1' must be a non-empty string of printable characters",
        ),
        ("[sbc]\nuser_agent = ''", "etc/sbc.toml: sbc.user_agent: '' must be a non-empty string of printable characters"),
        ("[sbc]\ngc_interval = -1", "etc/sbc.toml: sbc.gc_interval: -1 must be a number >= 0"),
        ("[sbc]\ngc_interval = 'hourly'", "etc/sbc.toml: sbc.gc_interval: expected a number, got a string"),
        ("[admin]\naddress = 'localhost'", "etc/sbc.toml: admin.address: 'localhost' is not an IPv4 or IPv6 address"),
        ("[admin]\nport = 0", "etc/sbc.toml: admin.port: 0 is out of range (1..65535)"),
        ("[admin]\nport = 65536", "etc/sbc.toml: admin.port: 65536 is out of range (1..65535)"),
        ("[sip]\nt1 = 0", "etc/sbc.toml: sip.t1: 0 must be a positive number"),
        ("[sip]\nt4 = -1.5", "etc/sbc.toml: sip.t4: -1.5 must be a positive number"),
        ("[sip]\nt2 = inf", "etc/sbc.toml: sip.t2: inf must be a positive number"),
        ("[sip]\nt1 = nan", "etc/sbc.toml: sip.t1: nan must be a positive number"),
        ("[sip]\nt1 = 5.0", "etc/sbc.toml: sip.t2: 4.0 must be >= t1 (5.0)"),
        ("[sip]\nmax_message_size = 1023", "etc/sbc.toml: sip.max_message_size: 1023 is out of range (1024..65535)"),
        ("[sip]\nmax_message_size = 65536", "etc/sbc.toml: sip.max_message_size: 65536 is out of range (1024..65535)"),
        (
            "[sip]\nmax_message_size = 1200\nmax_udp_size = 1300",
            "etc/sbc.toml: sip.max_udp_size: 1300 must be <= max_message_size (1200)",
        ),
        ("[sip]\nmax_connections = 0", "etc/sbc.toml: sip.max_connections: 0 is out of range (must be >= 1)"),
        ("[sip]\ntcp_idle_timeout = 0", "etc/sbc.toml: sip.tcp_idle_timeout: 0 must be a positive number"),
    ]

    def test_cases(self) -> None:
        for text, expected in self.cases:
            self.assertEqual(error_of(text), expected, text)


def listen(transport: str = "udp", address: str = "127.0.0.1", port: int = 5060, extra: str = "") -> str:
    return f"[[listen]]\ntransport = '{transport}'\naddress = '{address}'\nport = {port}\n{extra}\n"


class ListenTests(SynchronousTestCase):
    def test_required_keys(self) -> None:
        self.assertEqual(error_of("[[listen]]\naddress='::1'\nport=1"), "etc/sbc.toml: listen[0].transport: required key is missing")
        self.assertEqual(error_of("[[listen]]\ntransport='tcp'\nport=1"), "etc/sbc.toml: listen[0].address: required key is missing")
        self.assertEqual(error_of("[[listen]]\ntransport='tcp'\naddress='::1'"), "etc/sbc.toml: listen[0].port: required key is missing")

    def test_bad_values(self) -> None:
        self.assertEqual(
            error_of(listen() + listen("sctp")),
            "etc/sbc.toml: listen[1].transport: 'sctp' is not one of 'udp', 'tcp', 'tls'",
        )
        self.assertEqual(
            error_of(listen(address="[::1]")), "etc/sbc.toml: listen[0].address: '[::1]' is not an IPv4 or IPv6 address"
        )
        self.assertEqual(error_of(listen(port=0)), "etc/sbc.toml: listen[0].port: 0 is out of range (1..65535)")

    def test_duplicates_compare_canonical_addresses(self) -> None:
        self.assertEqual(
            error_of(listen("udp", "::1") + listen("tcp", "::1") + listen("udp", "0:0::1")),
            "etc/sbc.toml: listen[2]: duplicate listener udp ::1 port 5060 (same as listen[0])",
        )
        config = load_config_text(listen("udp", "::1") + listen("udp", "::1", 5061) + listen("udp", "127.0.0.1"))
        self.assertEqual(len(config.listen), 3)

    def test_tls_needs_certificate_and_key(self) -> None:
        self.assertEqual(error_of(listen("tls")), "etc/sbc.toml: listen[0].certificate: required for a tls listener")

    def test_tls_options_rejected_on_plain_listeners(self) -> None:
        tmp = Path(self.mktemp()).resolve()
        tmp.mkdir(parents=True)
        cert, key = make_tls_files(tmp)
        self.assertEqual(
            error_of(listen("tcp", extra=f"certificate = '{cert}'")),
            "etc/sbc.toml: listen[0].certificate: only valid for a tls listener, not tcp",
        )


class TlsFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(self.mktemp()).resolve()
        self.dir.mkdir(parents=True)
        self.cert, self.key = make_tls_files(self.dir)

    def tls(self, **keys: str) -> str:
        return listen("tls", port=5061, extra="\n".join(f"{k} = '{v}'" for k, v in keys.items()))

    def test_good_files_load(self) -> None:
        config = load_config_text(self.tls(certificate=str(self.cert), private_key=str(self.key), chain=str(self.cert)))
        [l] = config.listen
        self.assertEqual((l.certificate, l.private_key, l.chain), (self.cert, self.key, self.cert))

    def test_relative_paths_resolve_against_config_directory(self) -> None:
        config_path = self.dir / "sbc.toml"
        config_path.write_text(self.tls(certificate="sbc.crt", private_key="sbc.key"))
        [l] = load_config(config_path).listen
        self.assertEqual((l.certificate, l.private_key), (self.cert, self.key))

    def test_missing_key_file(self) -> None:
        missing = self.dir / "missing.key"
        self.assertEqual(
            error_of(self.tls(certificate=str(self.cert), private_key=str(missing))),
            f"etc/sbc.toml: listen[0].private_key: file '{missing}' does not exist",
        )

    def test_garbage_certificate(self) -> None:
        junk = self.dir / "junk.pem"
        junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
        self.assertEqual(
            error_of(self.tls(certificate=str(junk), private_key=str(self.key))),
            f"etc/sbc.toml: listen[0].certificate: '{junk}' holds no PEM certificate",
        )

    def test_certificate_where_key_expected(self) -> None:
        self.assertEqual(
            error_of(self.tls(certificate=str(self.cert), private_key=str(self.cert))),
            f"etc/sbc.toml: listen[0].private_key: '{self.cert}' holds no usable PEM private key",
        )

    def test_mismatched_key(self) -> None:
        _, other_key = make_tls_files(self.dir, "other")
        self.assertEqual(
            error_of(self.tls(certificate=str(self.cert), private_key=str(other_key))),
            f"etc/sbc.toml: listen[0].private_key: '{other_key}' does not match certificate '{self.cert}'",
        )

    def test_odd_paths(self) -> None:
        self.assertEqual(
            error_of('[[listen]]\ntransport="tls"\naddress="::1"\nport=5061\ncertificate="a\\u0000b"'),
            "etc/sbc.toml: listen[0].certificate: 'a\\x00b' is not a valid file path",
        )
        self.assertEqual(
            error_of(self.tls(certificate=str(self.dir))),
            f"etc/sbc.toml: listen[0].certificate: '{self.dir}' is a directory, not a file",
        )
        self.assertEqual(
            error_of(self.tls(certificate="~no-such-user-xyz/c.pem")),
            "etc/sbc.toml: listen[0].certificate: '~no-such-user-xyz/c.pem': cannot expand the home directory",
        )

    def test_bad_chain(self) -> None:
        self.assertEqual(
            error_of(self.tls(certificate=str(self.cert), private_key=str(self.key), chain=str(self.key))),
            f"etc/sbc.toml: listen[0].chain: '{self.key}' holds no PEM certificate",
        )


def trunk(**keys: object) -> str:
    fields: dict[str, object] = {"name": "pbx", "allow": ["192.0.2.0/24"], "agent_uri": "sip:{user}@agent.example.com"}
    fields.update(keys)
    lines = ["[[trunk]]"]
    for k, v in fields.items():
        if v is None:
            continue
        if isinstance(v, list):
            lines.append(f"{k} = [{', '.join(repr(x) for x in v)}]")
        else:
            lines.append(f"{k} = {v!r}")
    return "\n".join(lines) + "\n"


class TrunkTests(SynchronousTestCase):
    def test_example_from_the_brief(self) -> None:
        self.assertEqual(
            error_of(trunk(allow=["10.0.0.0/8", "10.0.0.300/32"])),
            "etc/sbc.toml: trunk[0].allow[1]: '10.0.0.300/32' is not an IPv4 or IPv6 network",
        )

    def test_host_bits_set_is_an_error(self) -> None:
        self.assertEqual(
            error_of(trunk(allow=["192.0.2.1/24"])),
            "etc/sbc.toml: trunk[0].allow[0]: '192.0.2.1/24' has host bits set (did you mean '192.0.2.0/24'?)",
        )
        self.assertEqual(
            error_of(trunk(allow=["2001:db8::1/32"])),
            "etc/sbc.toml: trunk[0].allow[0]: '2001:db8::1/32' has host bits set (did you mean '2001:db8::/32'?)",
        )

    def test_allow_converted_to_networks(self) -> None:
        [t] = load_config_text(trunk(allow=["192.0.2.0/24", "2001:db8::/32", "::1"])).trunks
        self.assertEqual(
            t.allow,
            (ipaddress.IPv4Network("192.0.2.0/24"), ipaddress.IPv6Network("2001:db8::/32"), ipaddress.IPv6Network("::1/128")),
        )
        self.assertIn(ipaddress.ip_address("192.0.2.200"), t.allow[0])

    def test_allow_shape(self) -> None:
        self.assertEqual(error_of(trunk(allow=[])), "etc/sbc.toml: trunk[0].allow: must list at least one entry")
        self.assertEqual(
            error_of(trunk(allow="10.0.0.0/8")), "etc/sbc.toml: trunk[0].allow: expected an array, got a string"
        )
        self.assertEqual(
            error_of("[[trunk]]\nname='a'\nagent_uri='sip:{user}@h'\nallow=['10.0.0.0/8', 7]"),
            "etc/sbc.toml: trunk[0].allow[1]: expected a string, got an integer",
        )

    def test_required_keys(self) -> None:
        for key in ("name", "allow", "agent_uri"):
            self.assertEqual(
                error_of(trunk(**{key: None})), f"etc/sbc.toml: trunk[0].{key}: required key is missing"
            )

    def test_names(self) -> None:
        self.assertEqual(
            error_of(trunk(name="HQ_pbx")), "etc/sbc.toml: trunk[0].name: 'HQ_pbx' is not a valid name ([a-z0-9-]+)"
        )
        self.assertEqual(error_of(trunk(name="")), "etc/sbc.toml: trunk[0].name: '' is not a valid name ([a-z0-9-]+)")
        self.assertEqual(
            error_of(trunk() + trunk(name="other") + trunk()),
            "etc/sbc.toml: trunk[2].name: duplicate trunk name 'pbx' (same as trunk[0])",
        )
        self.assertEqual(
            error_of(trunk(vendor="Big Vendor")),
            "etc/sbc.toml: trunk[0].vendor: 'Big Vendor' is not a valid vendor name ([a-z0-9-]+)",
        )

    def test_agent_uri(self) -> None:
        good = [
            "sip:{user}@127.0.0.1:5090",
            "sips:{user}@agents.example.com;transport=tls",
            "sip:{user}@[::1]:5090",
            "sip:agent.example.com;user={user}",
        ]
        for uri in good:
            self.assertEqual(load_config_text(trunk(agent_uri=uri)).trunks[0].agent_uri, uri)
        bad = {
            "sip:alice@h": "'sip:alice@h' must contain the placeholder {user}",
            "sip:{user}@{host}": "'sip:{user}@{host}' may contain no placeholder but {user}",
            "sip:{user[0]}@h{user}": "'sip:{user[0]}@h{user}' may contain no placeholder but {user}",
            "sip:{user!r}@h{user}": "'sip:{user!r}@h{user}' may contain no placeholder but {user}",
            "sip:{user:>5}@h{user}": "'sip:{user:>5}@h{user}' may contain no placeholder but {user}",
            "sip:{user}@h}": "'sip:{user}@h}' may contain no placeholder but {user}",
            "sip:{user}@h{}": "'sip:{user}@h{}' may contain no placeholder but {user}",
            "tel:{user}": "'tel:{user}' is not a sip: or sips: URI template",
            "sip:{user}@": "'sip:{user}@' is not a sip: or sips: URI template",
            "sip:{user}@h:99999": "'sip:{user}@h:99999' is not a sip: or sips: URI template",
            "sip:{user}@h x": "'sip:{user}@h x' is not a sip: or sips: URI template",
        }
        for uri, problem in bad.items():
            self.assertEqual(error_of(trunk(agent_uri=uri)), f"etc/sbc.toml: trunk[0].agent_uri: {problem}")

    def test_outbound_proxy(self) -> None:
        [t] = load_config_text(trunk(outbound_proxy="sip:[2001:db8::1]:5060;lr")).trunks
        self.assertEqual(t.outbound_proxy, "sip:[2001:db8::1]:5060;lr")
        self.assertIsNone(load_config_text(trunk()).trunks[0].outbound_proxy)
        self.assertEqual(
            error_of(trunk(outbound_proxy="http://proxy")),
            "etc/sbc.toml: trunk[0].outbound_proxy: 'http://proxy' is not a sip: or sips: URI",
        )
        self.assertEqual(
            error_of(trunk(outbound_proxy="sip:[::1")),
            "etc/sbc.toml: trunk[0].outbound_proxy: 'sip:[::1' has a bad host part '[::1'",
        )


# Values of every TOML type, for the fuzz tests below.
toml_values = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.floats(allow_nan=True).map(repr),
    st.booleans().map(lambda b: "true" if b else "false"),
    st.text(max_size=20).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    st.sampled_from(['["10.0.0.0/8"]', "[]", '["::1/128", 3]', "{}", '"sip:{user}@h"', '"udp"', '"::1"']),
)
schema_keys = sorted({e.key.split(".")[-1] for e in iter_schema()} | {"bogus"})
sections = ["sbc", "admin", "sip", "[listen]", "[trunk]", "trunk.register", "calls", "agent", "bogus"]


class FuzzTests(SynchronousTestCase):
    @given(st.text(max_size=200))
    def test_any_text_loads_or_raises_one_line_config_error(self, text: str) -> None:
        try:
            config = load_config_text(text, "fuzz.toml")
        except ConfigError as e:
            self.assertNotIn("\n", str(e))
            self.assertTrue(str(e).startswith("fuzz.toml: "))
        else:
            self.assertIsInstance(config, Config)

    @given(st.lists(st.tuples(st.sampled_from(sections), st.lists(st.tuples(st.sampled_from(schema_keys), toml_values), max_size=5)), max_size=4))
    def test_structured_input_loads_or_raises_one_line_config_error(
        self, tables: list[tuple[str, list[tuple[str, str]]]]
    ) -> None:
        text = ""
        for name, items in tables:
            text += f"[{name}]\n"
            seen = set()
            for key, value in items:
                if key not in seen:
                    seen.add(key)
                    text += f"{key} = {value}\n"
        try:
            load_config_text(text, "fuzz.toml")
        except ConfigError as e:
            self.assertNotIn("\n", str(e))
            self.assertRegex(str(e), r"^fuzz\.toml: \S")


class DocumentationTests(SynchronousTestCase):
    def test_schema_lists_every_key(self) -> None:
        keys = [e.key for e in iter_schema()]
        self.assertIn("trunk[].agent_uri", keys)
        self.assertIn("listen[].private_key", keys)
        self.assertEqual(len(keys), len(set(keys)))
        for key in ("calls.drain_timeout", "agent.down_after", "trunk[].register.password", "trunk[].match_ruri"):
            self.assertIn(key, keys)
        self.assertGreaterEqual(len(keys), 47)

    def test_readme_reference_covers_every_key(self) -> None:
        readme = (REPO / "README.md").read_text(encoding="utf-8")
        missing = [e.key for e in iter_schema() if f"| `{e.key}` |" not in readme]
        self.assertEqual(missing, [])

    def test_default_config_mentions_every_section(self) -> None:
        text = default_config_path().read_text(encoding="utf-8")
        for header in ("[sbc]", "[[listen]]", "[admin]", "[sip]", "[[trunk]]", "[calls]", "[agent]", "[trunk.register]"):
            self.assertIn(header, text)


def trunk_with(extra: str) -> str:
    return TRUNK + extra


REGISTER = """
[trunk.register]
registrar = "sip:registrar.example.com"
aor = "sip:+15550100@example.com"
username = "+15550100"
password = "s3cret-Pa55"
"""


class CallsAndAgentTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        config = load_config_text("", "x.toml")
        self.assertEqual(
            config.calls,
            CallsConfig(
                max_calls=1000,
                max_calls_per_trunk=0,
                no_answer_timeout=60.0,
                max_call_duration=14400.0,
                retry_after=30,
                drain_timeout=30.0,
                copy_headers=("P-Asserted-Identity", "Privacy", "User-to-User", "Diversion", "History-Info"),
                copy_x_headers=True,
            ),
        )
        self.assertEqual(config.agent, AgentConfig(allow=(), options_interval=30.0, down_after=2))

    def test_default_copy_headers_match_the_b2bua(self) -> None:
        from sbc.b2bua.core import DEFAULT_COPY_HEADERS

        self.assertEqual(load_config_text("").calls.copy_headers, DEFAULT_COPY_HEADERS)

    def test_values(self) -> None:
        config = load_config_text(
            """
            [calls]
            max_calls = 5
            max_calls_per_trunk = 2
            no_answer_timeout = 0
            max_call_duration = 7200.5
            retry_after = 120
            drain_timeout = 0
            copy_headers = ["X-Foo", "Diversion"]
            copy_x_headers = false
            [agent]
            allow = ["10.1.0.0/16", "2001:db8::/32"]
            options_interval = 0
            down_after = 5
            """
        )
        self.assertEqual(
            (config.calls.max_calls, config.calls.max_calls_per_trunk, config.calls.no_answer_timeout,
             config.calls.max_call_duration, config.calls.retry_after, config.calls.drain_timeout,
             config.calls.copy_headers, config.calls.copy_x_headers),
            (5, 2, 0.0, 7200.5, 120, 0.0, ("X-Foo", "Diversion"), False),
        )
        self.assertEqual(
            config.agent.allow,
            (ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("2001:db8::/32")),
        )
        self.assertEqual((config.agent.options_interval, config.agent.down_after), (0.0, 5))
        self.assertTrue(config.agent.reliable_provisionals)
        self.assertFalse(load_config_text("[agent]\nreliable_provisionals = false").agent.reliable_provisionals)

    def test_errors(self) -> None:
        cases = {
            "[calls]\nmax_calls = 0": "etc/sbc.toml: calls.max_calls: 0 is out of range (must be >= 1)",
            "[calls]\nmax_calls_per_trunk = -1": "etc/sbc.toml: calls.max_calls_per_trunk: -1 is out of range (must be >= 0)",
            "[calls]\nno_answer_timeout = -1": "etc/sbc.toml: calls.no_answer_timeout: -1 must be a number >= 0",
            "[calls]\ndrain_timeout = inf": "etc/sbc.toml: calls.drain_timeout: inf must be a number >= 0",
            "[calls]\nretry_after = 0": "etc/sbc.toml: calls.retry_after: 0 is out of range (1..86400)",
            '[calls]\ncopy_headers = ["Good", "bad header"]':
                "etc/sbc.toml: calls.copy_headers[1]: 'bad header' is not a SIP header name",
            "[calls]\ncopy_x_headers = 1": "etc/sbc.toml: calls.copy_x_headers: expected a boolean, got an integer",
            "[calls]\nbogus = 1": "etc/sbc.toml: calls.bogus: unknown key",
            '[agent]\nallow = ["10.0.0.1/8"]':
                "etc/sbc.toml: agent.allow[0]: '10.0.0.1/8' has host bits set (did you mean '10.0.0.0/8'?)",
            "[agent]\ndown_after = 0": "etc/sbc.toml: agent.down_after: 0 is out of range (1..100)",
            '[agent]\noptions_interval = "30"': "etc/sbc.toml: agent.options_interval: expected a number, got a string",
            '[agent]\nreliable_provisionals = "yes"':
                "etc/sbc.toml: agent.reliable_provisionals: expected a boolean, got a string",
        }
        for text, expected in cases.items():
            self.assertEqual(error_of(text), expected)


class TrunkAdditionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        [trunk] = load_config_text(TRUNK).trunks
        self.assertEqual(
            (trunk.match_tls_names, trunk.match_ruri, trunk.peer_uri, trunk.dial, trunk.options_interval,
             trunk.allow_refer, trunk.register),
            ((), (), None, (), None, False, None),  # options_interval: the vendor's, else 30
        )

    def test_values(self) -> None:
        [trunk] = load_config_text(
            trunk_with(
                """
                match_tls_names = ["PBX.example.com", "*.pbx.example.net"]
                match_ruri = ['^sips?:\\+1', 'trunk=a']
                peer_uri = "sip:192.0.2.10:5060"
                dial = ['\\+1[0-9]{10}']
                options_interval = 0
                allow_refer = true
                """
            )
        ).trunks
        self.assertEqual(trunk.match_tls_names, ("pbx.example.com", "*.pbx.example.net"))
        self.assertEqual([p.pattern for p in trunk.match_ruri], ["^sips?:\\+1", "trunk=a"])
        self.assertIsNotNone(trunk.match_ruri[0].search("sip:+15550100@h"))
        self.assertIsNone(trunk.match_ruri[0].search("sip:15550100@h"))
        self.assertEqual(trunk.peer_uri, "sip:192.0.2.10:5060")
        self.assertIsNotNone(trunk.dial[0].fullmatch("+15550100123"))
        self.assertEqual((trunk.options_interval, trunk.allow_refer), (0.0, True))

    def test_bad_regex_is_one_line_naming_the_key(self) -> None:
        message = error_of(trunk_with("match_ruri = ['ok', '(unclosed']"))
        self.assertTrue(
            message.startswith("etc/sbc.toml: trunk[0].match_ruri[1]: '(unclosed' is not a valid regular expression"),
            message,
        )
        message = error_of(trunk_with('peer_uri = "sip:192.0.2.1"\ndial = ["[a-"]'))
        self.assertTrue(message.startswith("etc/sbc.toml: trunk[0].dial[0]: '[a-' is not a valid"), message)

    def test_other_errors(self) -> None:
        cases = {
            "match_ruri = ['']": "etc/sbc.toml: trunk[0].match_ruri[0]: must be a non-empty regular expression",
            "match_ruri = 'x'": "etc/sbc.toml: trunk[0].match_ruri: expected an array, got a string",
            "match_tls_names = ['bad name']":
                "etc/sbc.toml: trunk[0].match_tls_names[0]: 'bad name' is not a DNS name (a leading '*.' is allowed)",
            "peer_uri = 'http://x'": "etc/sbc.toml: trunk[0].peer_uri: 'http://x' is not a sip: or sips: URI",
            "dial = ['1']": "etc/sbc.toml: trunk[0].dial: needs `peer_uri`: calls matched by `dial` are sent there",
            "options_interval = -5": "etc/sbc.toml: trunk[0].options_interval: -5 must be a number >= 0",
            "allow_refer = 'yes'": "etc/sbc.toml: trunk[0].allow_refer: expected a boolean, got a string",
        }
        for extra, expected in cases.items():
            self.assertEqual(error_of(trunk_with(extra)), expected)
        self.assertIn("longer than 500", error_of(trunk_with("match_ruri = ['" + "a" * 501 + "']")))

    def test_register_table(self) -> None:
        [trunk] = load_config_text(trunk_with(REGISTER)).trunks
        self.assertEqual(
            trunk.register,
            RegisterConfig(
                registrar="sip:registrar.example.com",
                aor="sip:+15550100@example.com",
                username="+15550100",
                password="s3cret-Pa55",
                realm=None,
                expires=3600,
                contact_user="sbc",
            ),
        )

    def test_password_never_shown(self) -> None:
        config = load_config_text(trunk_with(REGISTER))
        self.assertNotIn("s3cret-Pa55", repr(config))
        self.assertNotIn("s3cret-Pa55", str(config.trunks[0]))
        self.assertNotIn("s3cret-Pa55", repr(config.trunks[0].register))
        bad = REGISTER.replace('password = "s3cret-Pa55"', 'password = "s3cret\\u0007Pa55"')
        message = error_of(trunk_with(bad))
        self.assertEqual(
            message,
            "etc/sbc.toml: trunk[0].register.password: must be a non-empty string of printable characters "
            "(value not shown)",
        )
        self.assertNotIn("s3cret", message)

    def test_register_errors(self) -> None:
        cases = {
            REGISTER.replace('registrar = "sip:registrar.example.com"\n', ""):
                "etc/sbc.toml: trunk[0].register.registrar: required key is missing",
            REGISTER.replace('password = "s3cret-Pa55"\n', ""):
                "etc/sbc.toml: trunk[0].register.password: required when `username` is set",
            REGISTER.replace('username = "+15550100"\n', ""):
                "etc/sbc.toml: trunk[0].register.username: required when `password` is set",
            REGISTER + "expires = 10\n": "etc/sbc.toml: trunk[0].register.expires: 10 is out of range (60..86400)",
            REGISTER + "contact_user = 'a b'\n":
                "etc/sbc.toml: trunk[0].register.contact_user: 'a b' is not a valid SIP user part",
            REGISTER + "secret = 1\n": "etc/sbc.toml: trunk[0].register.secret: unknown key",
        }
        for text, expected in cases.items():
            self.assertEqual(error_of(trunk_with(text)), expected)

    def test_register_without_credentials(self) -> None:
        text = REGISTER.replace('username = "+15550100"\n', "").replace('password = "s3cret-Pa55"\n', "")
        [trunk] = load_config_text(trunk_with(text)).trunks
        assert trunk.register is not None
        self.assertEqual((trunk.register.username, trunk.register.password), (None, None))

    @given(st.text(max_size=30))
    def test_any_regex_text_loads_or_one_line_error(self, pattern: str) -> None:
        literal = " + pattern + " if "'" not in pattern and "\n" not in pattern and "\r" not in pattern else '""'
        try:
            load_config_text(trunk_with(f"match_ruri = [{literal}]"), "f.toml")
        except ConfigError as e:
            self.assertNotIn("\n", str(e))
            self.assertTrue(str(e).startswith("f.toml: "))


# ---- issue 6: vendor settings of a trunk (vendor: allow entries, [trunk.vendor_options])

from sbc.config import VendorOptions, VendorRange  # noqa: E402


VENDOR_OPTIONS = """
[trunk.vendor_options]
x_ms_sbc = "Acme/SBC/1.0"
tls_port = 5062
ratio = 0.5
allow_replaces = false
telnyx_token = "tok-never-shown"
"""


class VendorAllowTests(SynchronousTestCase):
    def test_vendor_entries_parsed(self) -> None:
        [t] = load_config_text(trunk(allow=["vendor:teams", "203.0.113.0/24"])).trunks
        self.assertEqual(t.allow, (VendorRange("teams"), ipaddress.ip_network("203.0.113.0/24")))
        self.assertEqual(t.allow_vendors, ("teams",))
        self.assertEqual(t.networks, (ipaddress.ip_network("203.0.113.0/24"),))
        self.assertEqual(str(t.allow[0]), "vendor:teams")

    def test_vendor_entry_syntax(self) -> None:
        for bad in ("vendor:", "vendor:Teams", "vendor:te ams", "vendor:teams/24"):
            self.assertEqual(
                error_of(trunk(allow=["10.0.0.0/8", bad])),
                f"etc/sbc.toml: trunk[0].allow[1]: {bad!r} is not vendor:<name> with a vendor name of [a-z0-9-]+",
            )
        # Not a vendor reference, not a network.
        self.assertEqual(
            error_of(trunk(allow=["vendors:teams"])),
            "etc/sbc.toml: trunk[0].allow[0]: 'vendors:teams' is not an IPv4 or IPv6 network",
        )

    def test_only_vendor_entries_is_enough_for_the_file(self) -> None:
        [t] = load_config_text(trunk(allow=["vendor:teams"])).trunks
        self.assertEqual(t.networks, ())

    def test_with_vendor_ranges(self) -> None:
        [t] = load_config_text(trunk(allow=["vendor:teams", "52.112.0.0/14", "10.0.0.0/8"])).trunks
        resolved = t.with_vendor_ranges({"teams": ("52.112.0.0/14", "52.122.0.0/15"), "generic": ()})
        self.assertEqual(
            resolved.allow,
            tuple(ipaddress.ip_network(n) for n in ("52.112.0.0/14", "52.122.0.0/15", "10.0.0.0/8")),
        )
        self.assertEqual(resolved.allow_vendors, ())
        self.assertEqual(resolved.with_vendor_ranges({}), resolved)  # nothing left to resolve
        self.assertEqual(attrs.evolve(resolved, allow=t.allow), t)  # only allow changed

    def test_with_vendor_ranges_errors(self) -> None:
        [t] = load_config_text(trunk(allow=["10.0.0.0/8", "vendor:acme"])).trunks
        with self.assertRaises(Exception) as e:
            t.with_vendor_ranges({"teams": ("52.112.0.0/14",), "webex": ()})
        self.assertEqual((e.exception.key, e.exception.problem),
                         ("allow[1]", "no vendor plugin named 'acme' (installed: teams, webex)"))
        with self.assertRaises(Exception) as e:
            t.with_vendor_ranges({"acme": ()})
        self.assertEqual(e.exception.key, "allow[1]")
        self.assertIn("publishes no signalling ranges", e.exception.problem)
        with self.assertRaises(Exception) as e:
            t.with_vendor_ranges({"acme": ("10.0.0.1/8",)})
        self.assertIn("vendor plugin 'acme': '10.0.0.1/8' has host bits set", e.exception.problem)

    def test_ping_interval(self) -> None:
        [t] = load_config_text(trunk()).trunks
        self.assertIsNone(t.options_interval)
        self.assertEqual((t.ping_interval(None), t.ping_interval(60.0)), (30.0, 60.0))
        [t] = load_config_text(trunk() + "options_interval = 0\n").trunks
        self.assertEqual(t.ping_interval(60.0), 0.0)
        [t] = load_config_text(trunk() + "options_interval = 15\n").trunks
        self.assertEqual(t.ping_interval(60.0), 15.0)


class VendorOptionsTests(SynchronousTestCase):
    def test_default_empty(self) -> None:
        [t] = load_config_text(trunk()).trunks
        self.assertEqual(t.vendor_options, {})
        self.assertEqual(repr(t.vendor_options), "{}")

    def test_scalars_kept_with_their_types(self) -> None:
        [t] = load_config_text(trunk() + VENDOR_OPTIONS).trunks
        options = t.vendor_options
        self.assertEqual(
            dict(options),
            {"x_ms_sbc": "Acme/SBC/1.0", "tls_port": 5062, "ratio": 0.5, "allow_replaces": False,
             "telnyx_token": "tok-never-shown"},
        )
        self.assertIs(options["allow_replaces"], False)
        self.assertIsInstance(options["tls_port"], int)
        self.assertIsInstance(options["telnyx_token"], str)
        self.assertEqual(f"{options['telnyx_token']}", "tok-never-shown")  # plugins can use it
        self.assertEqual(options["telnyx_token"].encode(), b"tok-never-shown")

    def test_secrets_never_shown(self) -> None:
        config = load_config_text(
            trunk() + "[trunk.vendor_options]\ntelnyx_token = 'tok-1'\napi_secret = 's-2'\n"
            "sip_password = 'pw-3'\nx_ms_sbc = 'shown'\n"
        )
        [t] = config.trunks
        for text in (repr(config), repr(t), repr(t.vendor_options), repr(dict(t.vendor_options)),
                     repr(list(t.vendor_options.values())), str(dict(t.vendor_options))):
            for secret in ("tok-1", "s-2", "pw-3"):
                self.assertNotIn(secret, text)
        self.assertIn('x_ms_sbc = "shown"', repr(t))
        self.assertIn('telnyx_token = "<secret>"', repr(t))

    def test_errors_name_the_key(self) -> None:
        base = trunk() + "[trunk.vendor_options]\n"
        cases = {
            "nested = { a = 1 }": "etc/sbc.toml: trunk[0].vendor_options.nested: expected a string, integer, float "
                                  "or boolean, got a table",
            "codes = [1, 2]": "etc/sbc.toml: trunk[0].vendor_options.codes: expected a string, integer, float or "
                              "boolean, got an array",
            "when = 1979-05-27": "etc/sbc.toml: trunk[0].vendor_options.when: expected a string, integer, float or "
                                 "boolean, got date",
            "Big = 1": "etc/sbc.toml: trunk[0].vendor_options.Big: 'Big' is not a vendor option name ([a-z0-9_]+)",
            "x-ms-sbc = 'a'": "etc/sbc.toml: trunk[0].vendor_options.x-ms-sbc: 'x-ms-sbc' is not a vendor option "
                              "name ([a-z0-9_]+)",
            '"a b" = 1': "etc/sbc.toml: trunk[0].vendor_options.\"a b\": 'a b' is not a vendor option name "
                         "([a-z0-9_]+)",
            "telnyx_token = 12345678": "etc/sbc.toml: trunk[0].vendor_options.telnyx_token: expected a string, "
                                       "got an integer",
            "telnyx_token = ''": "etc/sbc.toml: trunk[0].vendor_options.telnyx_token: must be a non-empty string of "
                                 "printable characters (value not shown)",
        }
        for line, expected in cases.items():
            self.assertEqual(error_of(base + line + "\n"), expected)
        message = error_of(base + 'my_token = "bad\\ttoken"\n')  # a TAB: not printable
        self.assertEqual(message, "etc/sbc.toml: trunk[0].vendor_options.my_token: must be a non-empty string "
                                  "of printable characters (value not shown)")
        self.assertEqual(error_of(trunk(vendor_options="x")),
                         "etc/sbc.toml: trunk[0].vendor_options: expected a table, got a string")

    def test_equality_and_hash(self) -> None:
        a = VendorOptions({"a": 1, "b": "x"})
        self.assertEqual(a, VendorOptions([("b", "x"), ("a", 1)]))
        self.assertEqual(hash(a), hash(VendorOptions({"b": "x", "a": 1})))
        self.assertNotEqual(a, VendorOptions({"a": 1}))
        self.assertNotEqual(VendorOptions({"a": 1}), VendorOptions({"a": True}))
        [t1] = load_config_text(trunk() + VENDOR_OPTIONS).trunks
        [t2] = load_config_text(trunk() + VENDOR_OPTIONS).trunks
        self.assertEqual((t1, hash(t1)), (t2, hash(t2)))

    @given(st.dictionaries(st.from_regex(r"[a-z0-9_]{1,12}", fullmatch=True),
                           st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1),
                                     st.floats(allow_nan=False, allow_infinity=False),
                                     st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                                             min_size=1, max_size=20)),
                           max_size=6))
    def test_any_scalar_table_round_trips(self, table: dict[str, object]) -> None:
        import json as _json

        def toml_value(v: object) -> str:
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, str):
                return _json.dumps(v)
            return repr(v)

        text = trunk() + "[trunk.vendor_options]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items())
        [t] = load_config_text(text).trunks
        self.assertEqual(dict(t.vendor_options), table)
        for k, v in table.items():
            self.assertIs(type(t.vendor_options[k]) is bool, type(v) is bool)


class VendorSettingsPropertyTests(SynchronousTestCase):
    @given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
    def test_any_allow_entry_loads_or_is_one_line(self, text: str) -> None:
        import json as _json

        source = ('[[trunk]]\nname = "pbx"\nagent_uri = "sip:{user}@h"\n'
                  f"allow = [{_json.dumps('vendor:' + text, ensure_ascii=False)}, {_json.dumps(text, ensure_ascii=False)}]\n")
        try:
            [t] = load_config_text(source).trunks
        except ConfigError as e:
            self.assertNotIn("\n", str(e))
            self.assertTrue(str(e).startswith(("<string>: trunk[0].allow[", "<string>: TOML syntax error")), str(e))
        else:
            self.assertEqual(t.allow_vendors, (text,))
            self.assertEqual(len(t.networks), 1)

    @given(st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
                     st.sampled_from(["api_token", "secret", "sip_password"])),
           st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20))
    def test_any_option_key_loads_or_is_one_line(self, key: str, value: str) -> None:
        import json as _json

        source = trunk() + f"[trunk.vendor_options]\n{_json.dumps(key, ensure_ascii=False)} = {_json.dumps('v' + value, ensure_ascii=False)}\n"
        secret = any(word in key for word in ("token", "secret", "password"))
        try:
            [t] = load_config_text(source).trunks
        except ConfigError as e:
            self.assertNotIn("\n", str(e))
            self.assertTrue(str(e).startswith(("<string>: trunk[0].vendor_options.", "<string>: TOML syntax error")),
                            str(e))
            if secret:
                self.assertNotIn("v" + value, str(e))
        else:
            self.assertEqual(dict(t.vendor_options), {key: "v" + value})
            if secret:
                self.assertNotIn("v" + value, repr(t))
