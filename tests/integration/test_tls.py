"""The TLS listener: a real `openssl s_client` sends OPTIONS over TLS and gets 200."""

from __future__ import annotations

import datetime
import os
import select
import shutil
import subprocess
import time
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
