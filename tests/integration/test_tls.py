"""The TLS listener: a real `openssl s_client` sends OPTIONS over TLS and gets 200."""

from __future__ import annotations

import datetime
import shutil
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from .harness import RunningSbc, options_request, status_of


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
        certs = Path(self.mktemp())
        certs.mkdir()
        self.sbc = RunningSbc(tls=make_self_signed(certs)).start()
        self.addCleanup(self.sbc.stop)

    def s_client(self, *flags: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{self.sbc.tls_port}",
             "-servername", "sbc.test.invalid", "-ign_eof", *flags],
            input=data, capture_output=True, timeout=20)

    def test_options_over_tls(self) -> None:
        assert self.sbc.tls_port is not None
        request = options_request(self.sbc.tls_port, transport="TLS")
        # -ign_eof keeps the session open until the server answers and we close stdin;
        # give the server a moment by sending the request and then reading.
        result = subprocess.run(
            f"(printf '%s' \"$REQ\"; sleep 1) | openssl s_client -connect "
            f"127.0.0.1:{self.sbc.tls_port} -servername sbc.test.invalid -quiet",
            shell=True, capture_output=True, timeout=20,
            env={"REQ": request.decode(), "PATH": "/usr/bin:/bin"})
        out = result.stdout
        start = out.find(b"SIP/2.0 ")
        self.assertGreaterEqual(start, 0, result.stderr.decode(errors="replace")[-1500:])
        self.assertEqual(status_of(out[start:]), 200)
        self.assertIn(b"transport=tls", out)

    def test_tls_1_1_refused_and_1_2_accepted(self) -> None:
        old = self.s_client("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
        self.assertNotEqual(old.returncode, 0)
        modern = self.s_client("-tls1_2")
        self.assertIn(b"Protocol  : TLSv1.2", modern.stdout + modern.stderr)
