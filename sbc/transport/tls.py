# -*- test-case-name: tests.integration.test_tls -*-
"""TLS server contexts for SIP over TLS (RFC 3261 §26.2.1; TLS 1.2 minimum)."""

from __future__ import annotations

import re
from pathlib import Path

from OpenSSL import crypto
from twisted.internet.ssl import CertificateOptions, TLSVersion

__all__ = ["server_tls_options", "split_pem_certificates"]

_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s.+?\s-----END CERTIFICATE-----", re.DOTALL
)


def split_pem_certificates(data: bytes) -> list[bytes]:
    return _PEM_CERT.findall(data)


def server_tls_options(
    certificate: Path, private_key: Path, chain: Path | None = None
) -> CertificateOptions:
    """
    Options for a TLS listener: our certificate (the first one in ``certificate``; further
    certificates there, and those in ``chain``, are served as the chain), TLS 1.2 or newer,
    Twisted's modern cipher list.  Client certificates are not requested here: mutual TLS is per
    trunk and belongs to the security layer.
    """
    pems = split_pem_certificates(certificate.read_bytes())
    if not pems:
        raise ValueError(f"{certificate}: no PEM certificate found")
    if chain is not None:
        pems += split_pem_certificates(chain.read_bytes())
    leaf = crypto.load_certificate(crypto.FILETYPE_PEM, pems[0])
    key = crypto.load_privatekey(crypto.FILETYPE_PEM, private_key.read_bytes())
    extra = [crypto.load_certificate(crypto.FILETYPE_PEM, p) for p in pems[1:]]
    return CertificateOptions(
        privateKey=key,
        certificate=leaf,
        extraCertChain=extra,
        raiseMinimumTo=TLSVersion.TLSv1_2,
    )
