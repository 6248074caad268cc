"""
The TLS listener against real clients (`openssl s_client`, Python's ssl): OPTIONS over TLS;
TLS 1.0/1.1 refused, 1.2/1.3 accepted; SNI picks the certificate; mutual TLS for a trunk
(right certificate accepted; wrong CA, wrong name or none refused and counted); an expired or
not yet valid certificate stops start-up with one line; SIGHUP serves a new certificate to
new handshakes while an established connection stays up (a bad new file keeps the old one).
"""

from __future__ import annotations

import datetime
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from ..tls_pki import Issued, issue, make_ca
from .harness import FQDN, RunningSbc, options_request, read_sip_message, status_of


def make_self_signed(directory: Path, name: str = "sbc.test.invalid") -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


class TlsListener(SynchronousTestCase):
    def setUp(self) -> None:
        if shutil.which("openssl") is None:
            raise SkipTest("openssl command not installed")
        certs = Path(self.mktemp()).resolve()
        certs.mkdir()
        self.sbc = RunningSbc(tls=make_self_signed(certs)).start()
        self.addCleanup(self.sbc.stop)

    def s_client(self, *flags: str) -> subprocess.CompletedProcess[bytes]:
        """A handshake only: stdin is empty, so s_client exits once it is done."""
        return subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{self.sbc.tls_port}",
             "-servername", "sbc.test.invalid", *flags],
            input=b"", capture_output=True, timeout=20)

    def test_options_over_tls(self) -> None:
        assert self.sbc.tls_port is not None
        request = options_request(self.sbc.tls_port, transport="TLS")
        proc = subprocess.Popen(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{self.sbc.tls_port}",
             "-servername", "sbc.test.invalid", "-quiet"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(request)
        proc.stdin.flush()
        out = b""
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                out += chunk
        start = out.find(b"SIP/2.0 ")
        self.assertGreaterEqual(start, 0, out[-500:])
        self.assertEqual(status_of(out[start:]), 200)
        self.assertIn(b"transport=tls", out)

    def test_tls_1_0_and_1_1_refused_1_2_and_1_3_accepted(self) -> None:
        for flag in ("-tls1", "-tls1_1"):
            old = self.s_client(flag, "-cipher", "DEFAULT@SECLEVEL=0")
            text = old.stdout + old.stderr
            self.assertIn(b"alert protocol version", text, flag)
            self.assertIn(b"Cipher is (NONE)", text, flag)
        modern = self.s_client("-tls1_2")
        self.assertRegex((modern.stdout + modern.stderr).decode(errors="replace"),
                         r"New, TLSv1\.2, Cipher is [A-Z0-9]")
        newest = self.s_client("-tls1_3")
        self.assertRegex((newest.stdout + newest.stderr).decode(errors="replace"),
                         r"New, TLSv1\.3, Cipher is TLS_")


# -- SNI, mutual TLS, expiry, reload (issue 4) ------------------------------------------------


def _read_until_message(sock: ssl.SSLSocket, timeout: float = 5.0) -> bytes | None:
    """One SIP message from a TLS socket; None when the connection ends (or an alert) first."""
    buf = bytearray()
    try:
        return read_sip_message(sock, buf, timeout)
    except (ssl.SSLError, ConnectionError, OSError):
        return None


def _tls_client(port: int, *, cert: tuple[Path, Path] | None = None, server_name: str = FQDN) -> ssl.SSLSocket:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(*cert)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname=server_name)


def _options_over(sock: ssl.SSLSocket, port: int, call_id: str) -> int | None:
    """Send OPTIONS on an open TLS connection: the status of the answer, None if none came."""
    try:
        sock.sendall(options_request(port, transport="TLS", call_id=call_id, branch=f"z9hG4bK-{call_id}"))
    except (ssl.SSLError, OSError):
        return None
    return status_of(_read_until_message(sock))


def _served_cn(port: int, server_name: str) -> str:
    with _tls_client(port, server_name=server_name) as sock:
        der = sock.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value  # type: ignore[return-value]


class TlsSni(SynchronousTestCase):
    def test_sni_picks_the_certificate(self) -> None:
        if shutil.which("openssl") is None:
            raise SkipTest("openssl command not installed")
        d = Path(self.mktemp()).resolve()
        d.mkdir()
        ca = make_ca("SNI test CA")
        default = issue(ca, FQDN).write(d, "default")
        other, other_key = issue(ca, "teams.sbc.test.invalid").write(d, "teams")
        sbc = RunningSbc(tls=default, extra_toml=(
            f'[[listen.sni]]\nname = "teams.sbc.test.invalid"\ncertificate = "{other}"\nprivate_key = "{other_key}"\n'))
        sbc.start()
        self.addCleanup(sbc.stop)
        assert sbc.tls_port is not None
        for name, expected in ((FQDN, FQDN), ("teams.sbc.test.invalid", "teams.sbc.test.invalid"),
                               ("unknown.test.invalid", FQDN)):
            proc = subprocess.run(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{sbc.tls_port}", "-servername", name],
                input=b"", capture_output=True, timeout=20)
            self.assertRegex(proc.stdout.decode(errors="replace"), rf"subject=.*CN\s?=\s?{re.escape(expected)}", name)
        self.assertEqual(_served_cn(sbc.tls_port, "teams.sbc.test.invalid"), "teams.sbc.test.invalid")


class TlsMutual(SynchronousTestCase):
    """Trunk "local" (127.0.0.1) requires a client certificate from its CA named pbx.test.invalid."""

    def setUp(self) -> None:
        d = Path(self.mktemp()).resolve()
        d.mkdir()
        self.dir = d
        self.ca = make_ca("Trunk CA")
        ca_path = d / "trunk-ca.pem"
        ca_path.write_bytes(self.ca.cert_pem)
        self.sbc = RunningSbc(tls=issue(make_ca("Server CA"), FQDN).write(d, "server"), trunk_toml=(
            '[[trunk]]\nname = "local"\nallow = ["127.0.0.1/32"]\nagent_uri = "sip:{user}@127.0.0.1:5090"\n'
            f'tls_ca = "{ca_path}"\nmatch_tls_names = ["pbx.test.invalid"]\n\n'))
        self.sbc.start()
        self.addCleanup(self.sbc.stop)
        assert self.sbc.tls_port is not None
        self.port = self.sbc.tls_port

    def attempt(self, cert: tuple[Path, Path] | None, call_id: str) -> int | None:
        try:
            sock = _tls_client(self.port, cert=cert)
        except (ssl.SSLError, OSError):
            return None
        with sock:
            return _options_over(sock, self.port, call_id)

    def test_right_certificate_accepted(self) -> None:
        good = issue(self.ca, "pbx.test.invalid").write(self.dir, "good")
        self.assertEqual(self.attempt(good, "mtls-good"), 200)

    def test_wrong_ca_refused(self) -> None:
        bad = issue(make_ca("Rogue CA"), "pbx.test.invalid").write(self.dir, "rogue")
        self.assertIsNone(self.attempt(bad, "mtls-rogue"))

    def test_wrong_name_refused(self) -> None:
        wrong = issue(self.ca, "other.test.invalid").write(self.dir, "wrong")
        self.assertIsNone(self.attempt(wrong, "mtls-wrong-name"))
        self.sbc.stop()
        log = self.sbc.log_text()
        self.assertIn("TLS connection from 127.0.0.1", log)
        self.assertIn("match none of ['pbx.test.invalid']", log)

    def test_no_certificate_refused(self) -> None:
        self.assertIsNone(self.attempt(None, "mtls-none"))
        self.assertEqual(self.sbc.health()["counters"].get("tls-client-refused"), 1)

    def test_refusals_counted(self) -> None:
        wrong = issue(self.ca, "other.test.invalid").write(self.dir, "wrong")
        self.assertIsNone(self.attempt(wrong, "mtls-count-1"))
        self.assertIsNone(self.attempt(None, "mtls-count-2"))
        good = issue(self.ca, "pbx.test.invalid").write(self.dir, "good")
        self.assertEqual(self.attempt(good, "mtls-count-3"), 200)
        self.assertEqual(self.sbc.health()["counters"].get("tls-client-refused"), 2)


class TlsStartup(SynchronousTestCase):
    def check_refused(self, cert: "Issued", problem: str) -> None:
        d = Path(self.mktemp()).resolve()
        d.mkdir()
        sbc = RunningSbc(tls=cert.write(d, "sbc"))
        self.addCleanup(sbc.stop)
        with self.assertRaises(RuntimeError):
            sbc.start(timeout=15)
        lines = [l for l in sbc.log_text().splitlines() if "listen[" in l]
        self.assertTrue(lines, sbc.log_text()[-2000:])
        self.assertRegex(lines[0], rf"sbc\.toml: listen\[4\]\.certificate: '.*sbc\.pem' {problem}")
        self.assertNotIn("Traceback", sbc.log_text())

    def test_expired_certificate_stops_startup(self) -> None:
        self.check_refused(issue(None, FQDN, not_before=datetime.timedelta(days=-30),
                                 not_after=datetime.timedelta(days=-1)), "expired on ")

    def test_not_yet_valid_certificate_stops_startup(self) -> None:
        self.check_refused(issue(None, FQDN, not_before=datetime.timedelta(days=1),
                                 not_after=datetime.timedelta(days=30)), "is not valid yet")


class TlsReload(SynchronousTestCase):
    def test_sighup_new_certificate_old_connection_stays(self) -> None:
        d = Path(self.mktemp()).resolve()
        d.mkdir()
        ca = make_ca("Reload CA")
        cert, key = issue(ca, FQDN, cn="first").write(d, "sbc")
        sbc = RunningSbc(tls=(cert, key)).start()
        self.addCleanup(sbc.stop)
        assert sbc.tls_port is not None and sbc.proc is not None
        port = sbc.tls_port
        self.assertEqual(_served_cn(port, FQDN), "first")
        established = _tls_client(port)
        self.addCleanup(established.close)
        self.assertEqual(_options_over(established, port, "reload-1"), 200)

        # A bad file first: logged, the old certificate stays.
        cert.write_bytes(b"not a certificate\n")
        os.kill(sbc.proc.pid, signal.SIGHUP)
        self.assertTrue(_wait_for(lambda: "reload failed" in sbc.log_text()), sbc.log_text()[-2000:])
        self.assertEqual(_served_cn(port, FQDN), "first")

        second = issue(ca, FQDN, cn="second")
        cert.write_bytes(second.cert_pem)
        key.write_bytes(second.key_pem)
        os.kill(sbc.proc.pid, signal.SIGHUP)
        self.assertTrue(_wait_for(lambda: "TLS certificates reloaded" in sbc.log_text()), sbc.log_text()[-2000:])
        self.assertEqual(_served_cn(port, FQDN), "second")
        # The connection made before the reload is still up and served.
        self.assertEqual(_options_over(established, port, "reload-2"), 200)
        self.assertEqual(established.getpeercert(binary_form=True) is not None, True)


def _wait_for(predicate: "Callable[[], bool]", timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()
